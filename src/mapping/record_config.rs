//! The config-file forms of a map's record rules: match keys, scope filters
//! and safety guards. (Matching mode, record direction, delete policies and
//! scope exit are written with their own serde names.)

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::match_key::MatchKey;
use crate::guard::{Budget, Guards};
use crate::mapping::Normalization;
use crate::scope::{Condition, Filter};

/// A match key in a config file: a canonical field name (compared trimmed
/// and case-folded), or `{ field = "phone", normalize = "digits_only" }`
/// with a normalization's [name](Normalization::name).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MatchKeyConfig {
    /// The canonical field.
    pub field: String,
    /// The normalization's name; `None` is `"case_insensitive"`.
    pub normalize: Option<String>,
}

impl MatchKeyConfig {
    pub(crate) fn from_key(key: &MatchKey) -> Self {
        MatchKeyConfig {
            field: key.field().to_owned(),
            normalize: match key.normalization() {
                Normalization::CaseInsensitive => None,
                n => Some(n.name().to_owned()),
            },
        }
    }
}

impl Serialize for MatchKeyConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.normalize {
            None => serializer.serialize_str(&self.field),
            Some(n) => {
                let mut m = serializer.serialize_map(Some(2))?;
                m.serialize_entry("field", &self.field)?;
                m.serialize_entry("normalize", n)?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchKeyTable {
    field: String,
    normalize: Option<String>,
}

impl<'de> Deserialize<'de> for MatchKeyConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MatchKeyConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name or { field = \"name\", normalize = \"digits_only\" }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MatchKeyConfig, E> {
                Ok(MatchKeyConfig {
                    field: v.to_owned(),
                    normalize: None,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MatchKeyConfig, A::Error> {
                let t = MatchKeyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MatchKeyConfig {
                    field: t.field,
                    normalize: t.normalize,
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A scope filter in a config file: a condition on one native field, or
/// filters composed with `all`, `any` and `not`.
///
/// ```toml
/// [objects.scope]
/// salesforce = { all = [
///   { field = "Status", in = ["Open", "Working"] },
///   { not = { field = "Email", is_empty = true } },
/// ] }
/// hubspot = { field = "hs_archived", not_equals = true }
/// ```
///
/// The conditions are `equals`, `not_equals`, `in`, `not_in`,
/// `is_present = true` and `is_empty = true` ([`Condition`]). `{ all = [] }`
/// passes every record. A predicate in code ([`Filter::Custom`]) cannot be
/// written in a config file: `{ custom = "name" }` is read only to say so.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FilterConfig {
    /// A condition on one native field.
    Field {
        /// The native field name.
        field: String,
        /// The condition.
        condition: Condition,
    },
    /// Every filter passes (none: every record).
    All(Vec<FilterConfig>),
    /// Some filter passes.
    Any(Vec<FilterConfig>),
    /// The filter does not pass.
    Not(Box<FilterConfig>),
    /// A custom predicate, by name: code-only, so loading reports it.
    Custom(String),
}

impl FilterConfig {
    /// The config form of a filter.
    pub fn from_filter(filter: &Filter) -> Self {
        match filter {
            Filter::All => FilterConfig::All(Vec::new()),
            Filter::Field { field, condition } => FilterConfig::Field {
                field: field.clone(),
                condition: condition.clone(),
            },
            Filter::And(fs) => {
                FilterConfig::All(fs.iter().map(FilterConfig::from_filter).collect())
            }
            Filter::Or(fs) => FilterConfig::Any(fs.iter().map(FilterConfig::from_filter).collect()),
            Filter::Not(f) => FilterConfig::Not(Box::new(FilterConfig::from_filter(f))),
            Filter::Custom { name, .. } => FilterConfig::Custom(name.clone()),
        }
    }

    /// The filter, or the name of the first custom predicate in it (which
    /// a config file cannot supply).
    pub fn to_filter(&self) -> Result<Filter, String> {
        let all = |fs: &[FilterConfig]| -> Result<Vec<Filter>, String> {
            fs.iter().map(FilterConfig::to_filter).collect()
        };
        Ok(match self {
            FilterConfig::Field { field, condition } => Filter::Field {
                field: field.clone(),
                condition: condition.clone(),
            },
            FilterConfig::All(fs) if fs.is_empty() => Filter::All,
            FilterConfig::All(fs) => Filter::And(all(fs)?),
            FilterConfig::Any(fs) => Filter::Or(all(fs)?),
            FilterConfig::Not(f) => Filter::Not(Box::new(f.to_filter()?)),
            FilterConfig::Custom(name) => return Err(name.clone()),
        })
    }

    /// The name of the first custom predicate in the filter, if any.
    pub(crate) fn custom_name(&self) -> Option<&str> {
        match self {
            FilterConfig::Custom(name) => Some(name),
            FilterConfig::All(fs) | FilterConfig::Any(fs) => fs.iter().find_map(Self::custom_name),
            FilterConfig::Not(f) => f.custom_name(),
            FilterConfig::Field { .. } => None,
        }
    }
}

impl Serialize for FilterConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FilterConfig::Field { field, condition } => {
                let mut m = serializer.serialize_map(Some(2))?;
                m.serialize_entry("field", field)?;
                match condition {
                    Condition::Equals(v) => m.serialize_entry("equals", v)?,
                    Condition::NotEquals(v) => m.serialize_entry("not_equals", v)?,
                    Condition::In(vs) => m.serialize_entry("in", vs)?,
                    Condition::NotIn(vs) => m.serialize_entry("not_in", vs)?,
                    Condition::Present => m.serialize_entry("is_present", &true)?,
                    Condition::Empty => m.serialize_entry("is_empty", &true)?,
                }
                m.end()
            }
            FilterConfig::All(fs) | FilterConfig::Any(fs) => {
                let key = if matches!(self, FilterConfig::All(_)) {
                    "all"
                } else {
                    "any"
                };
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry(key, fs)?;
                m.end()
            }
            FilterConfig::Not(f) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("not", f)?;
                m.end()
            }
            FilterConfig::Custom(name) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("custom", name)?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterTable {
    field: Option<String>,
    equals: Option<Value>,
    not_equals: Option<Value>,
    #[serde(rename = "in")]
    is_in: Option<Vec<Value>>,
    not_in: Option<Vec<Value>>,
    is_present: Option<bool>,
    is_empty: Option<bool>,
    all: Option<Vec<FilterConfig>>,
    any: Option<Vec<FilterConfig>>,
    not: Option<Box<FilterConfig>>,
    custom: Option<String>,
}

const CONDITIONS: &str = "equals, not_equals, in, not_in, is_present = true or is_empty = true";

impl FilterTable {
    fn into_config(self) -> Result<FilterConfig, String> {
        let mut conditions = Vec::new();
        if let Some(v) = self.equals {
            conditions.push(Condition::Equals(v));
        }
        if let Some(v) = self.not_equals {
            conditions.push(Condition::NotEquals(v));
        }
        if let Some(v) = self.is_in {
            conditions.push(Condition::In(v));
        }
        if let Some(v) = self.not_in {
            conditions.push(Condition::NotIn(v));
        }
        for (flag, condition, name) in [
            (self.is_present, Condition::Present, "is_present"),
            (self.is_empty, Condition::Empty, "is_empty"),
        ] {
            match flag {
                Some(true) => conditions.push(condition),
                Some(false) => return Err(format!("{name} can only be true")),
                None => {}
            }
        }
        let mut shapes = Vec::new();
        if let Some(field) = self.field {
            let condition = match conditions.len() {
                1 => conditions.pop(),
                0 => None,
                _ => {
                    return Err(format!(
                        "a filter on field {field} has more than one condition"
                    ))
                }
            };
            match condition {
                Some(condition) => shapes.push(FilterConfig::Field { field, condition }),
                None => {
                    return Err(format!(
                        "a filter on field {field} needs one of {CONDITIONS}"
                    ))
                }
            }
        } else if !conditions.is_empty() {
            return Err("a condition needs the `field` it is about".to_owned());
        }
        if let Some(fs) = self.all {
            shapes.push(FilterConfig::All(fs));
        }
        if let Some(fs) = self.any {
            shapes.push(FilterConfig::Any(fs));
        }
        if let Some(f) = self.not {
            shapes.push(FilterConfig::Not(f));
        }
        if let Some(name) = self.custom {
            shapes.push(FilterConfig::Custom(name));
        }
        match (shapes.pop(), shapes.is_empty()) {
            (Some(shape), true) => Ok(shape),
            (Some(_), false) => Err(
                "a filter table is one of: a `field` condition, `all`, `any`, `not` or `custom`"
                    .to_owned(),
            ),
            (None, _) => Err(format!(
                "a filter needs `field` with one of {CONDITIONS}, or `all`, `any` or `not`"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for FilterConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FilterTable::deserialize(deserializer)?
            .into_config()
            .map_err(de::Error::custom)
    }
}

/// A safety budget in a config file: `{ count = 10, share = 0.1 }` (either
/// may be left out: 0), or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BudgetConfig {
    /// [`Budget::unlimited`].
    Unlimited,
    /// A [`Budget`] of `count` changes or `share` of the entities.
    Limit {
        /// Allowed whatever the share.
        count: u64,
        /// Allowed share of the entities (0.1 is 10%).
        share: f64,
    },
}

impl BudgetConfig {
    fn from_budget(b: &Budget) -> Self {
        if b.count == usize::MAX || b.share == f64::INFINITY {
            BudgetConfig::Unlimited
        } else {
            BudgetConfig::Limit {
                count: u64::try_from(b.count).unwrap_or(u64::MAX),
                share: b.share,
            }
        }
    }

    fn to_budget(self) -> Result<Budget, String> {
        match self {
            BudgetConfig::Unlimited => Ok(Budget::unlimited()),
            BudgetConfig::Limit { count, share } => {
                if !share.is_finite() || share < 0.0 {
                    return Err(format!(
                        "share {share} is not a finite number of at least 0"
                    ));
                }
                let count =
                    usize::try_from(count).map_err(|_| format!("count {count} is too large"))?;
                Ok(Budget::new(count, share))
            }
        }
    }
}

impl Serialize for BudgetConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            BudgetConfig::Unlimited => serializer.serialize_str("unlimited"),
            BudgetConfig::Limit { count, share } => {
                let mut m = serializer.serialize_map(Some(2))?;
                m.serialize_entry("count", count)?;
                m.serialize_entry("share", share)?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetTable {
    #[serde(default)]
    count: u64,
    #[serde(default)]
    share: f64,
}

impl<'de> Deserialize<'de> for BudgetConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BudgetConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"unlimited\" or { count = 10, share = 0.1 }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<BudgetConfig, E> {
                match v {
                    "unlimited" => Ok(BudgetConfig::Unlimited),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BudgetConfig, A::Error> {
                let t = BudgetTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(BudgetConfig::Limit {
                    count: t.count,
                    share: t.share,
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The safety guards in a config file; what is left out keeps its
/// [default](Guards::default).
///
/// ```toml
/// guards = { deletes = { count = 5, share = 0.05 }, emptied_fields = "unlimited", empty_snapshot = true }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GuardsConfig {
    /// [`Guards::deletes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<BudgetConfig>,
    /// [`Guards::emptied_fields`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emptied_fields: Option<BudgetConfig>,
    /// [`Guards::scope_exits`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_exits: Option<BudgetConfig>,
    /// [`Guards::empty_snapshot`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_snapshot: Option<bool>,
}

impl GuardsConfig {
    /// The config of `guards`, naming only what differs from the default;
    /// `None` when nothing does.
    pub(crate) fn from_guards(guards: &Guards) -> Option<Self> {
        let d = Guards::default();
        let differs = |a: &Budget, b: &Budget| (a != b).then(|| BudgetConfig::from_budget(a));
        let c = GuardsConfig {
            deletes: differs(&guards.deletes, &d.deletes),
            emptied_fields: differs(&guards.emptied_fields, &d.emptied_fields),
            scope_exits: differs(&guards.scope_exits, &d.scope_exits),
            empty_snapshot: (guards.empty_snapshot != d.empty_snapshot)
                .then_some(guards.empty_snapshot),
        };
        (c != GuardsConfig::default()).then_some(c)
    }

    /// The guards, or every budget that is out of range (entry, message).
    pub(crate) fn to_guards(self) -> Result<Guards, Vec<(&'static str, String)>> {
        let mut guards = Guards::default();
        let mut problems = Vec::new();
        for (name, budget, slot) in [
            ("deletes", self.deletes, &mut guards.deletes),
            (
                "emptied_fields",
                self.emptied_fields,
                &mut guards.emptied_fields,
            ),
            ("scope_exits", self.scope_exits, &mut guards.scope_exits),
        ] {
            if let Some(b) = budget {
                match b.to_budget() {
                    Ok(b) => *slot = b,
                    Err(message) => problems.push((name, message)),
                }
            }
        }
        if let Some(on) = self.empty_snapshot {
            guards.empty_snapshot = on;
        }
        if problems.is_empty() {
            Ok(guards)
        } else {
            Err(problems)
        }
    }
}

//! Config files: field maps as JSON or TOML.
//!
//! The file shape is a set of plain serde structs ([`MapConfig`] for one
//! object, [`MapSetConfig`] for several sharing one `systems` list),
//! converted to and from the [`FieldMapBuilder`]:
//! what a config file can say is exactly what the builder can, and
//! [`build`](super::FieldMapBuilder::build) checks it the same way. Custom
//! transforms, normalizers and resolvers are named in the file and supplied
//! through a [`Registry`].
//!
//! ```toml
//! systems = ["hubspot", "salesforce"]     # priority order
//!
//! [[objects]]
//! name = "contacts"
//! key = "email"                           # or match_keys = ["email", { field = "phone", normalize = "digits_only" }]
//! matching = "match_then_create"          # "match_only", "create_only"
//! records = "both"                        # like a field's direction: where records are created and deleted
//! mirror = false                          # with a one-way `records`: records only in targets are deleted there
//! read_only = { warehouse = "report" }    # never written; "report" what it would need, or "error"
//! deletes = "hold"                        # "propagate", "unlink"
//! deletes_from = { salesforce = "unlink" }
//! delete_vs_edit = "hold"                 # "edit_wins", "delete_wins"
//! scope.salesforce = { all = [{ field = "Status", in = ["Open", "Working"] }, { not = { field = "Email", is_empty = true } }] }
//! scope_exit = "unlink"                   # "freeze"
//! guards = { deletes = { count = 10, share = 0.1 }, emptied_fields = "unlimited", empty_snapshot = true }
//! default_policy = "last_write_wins"      # or "manual_review",
//!                                         # { authority = "hubspot", fallback = "priority" },
//!                                         # { resolver = "name in the registry" }
//! no_overwrite_on_empty = true
//! skew_tolerance_ms = 2000
//!
//! [[objects.fields]]
//! name = "email"
//! normalize = "case_insensitive"          # exact, trim, digits_only, numeric, "phone:US"
//!                                         # (feature `phone`; the default region), or a registry name
//! systems.salesforce = { native = "Email", validate = { required = true, type = "email" } }
//!
//! [[objects.fields]]
//! name = "last_activity"
//! direction = { one_way_from = "hubspot" } # "both" (default), "not_synced", { enforced_from = ".." }
//! systems.hubspot = { native = "notes_last_updated", transform = { type = "date_time", native = "epoch_millis" } }
//! systems.salesforce = { native = "Last_Activity__c", custom_transform = "name in the registry" }
//!
//! [[objects.fields]]
//! name = "company"
//! references = "companies"                # native values are record ids of that object
//!
//! [[objects.fields]]
//! name = "stage"
//! value_map.unmapped = "error"            # "skip", "pass_through", { default = "Lead" }
//! value_map.rows = [
//!   { from = "hubspot", values = { hubspot = "Subscriber", salesforce = "New" } },
//!   { values = { hubspot = "Opportunity", salesforce = "Converted (Opportunity)" } },
//! ]
//! ```
//!
//! A file with one object has the object's keys at the top level next to
//! `systems`, with `object` naming it.

use std::fmt;

use chrono::TimeDelta;
use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::match_key::{MatchKey, MatchMode};
use super::record_config::{FilterConfig, GuardsConfig, MatchKeyConfig};
use super::PHONE_PREFIX;
use super::{
    Builtin, Direction, Field, FieldMap, FieldMapBuilder, MapProblem, Normalization, Registry,
    RowDirection, Slot, Unmapped, Validation, ValueMap, ValueRow,
};
use crate::policy::{ConflictPolicy, DeleteEditPolicy, DeletePolicy, Fallback, ReadOnlyMode};
use crate::scope::ScopeExit;

/// A field map config file with one object: [`FieldMap::from_json`] and
/// [`FieldMap::from_toml`] read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MapConfig {
    /// The systems, in priority order.
    pub systems: Vec<String>,
    /// The object type (`"contacts"`). Default: `"records"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The canonical key field, compared trimmed and case-folded (or give
    /// `match_keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Match keys, tried in order, instead of `key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_keys: Vec<MatchKeyConfig>,
    /// How records not linked yet become entities: `"match_then_create"`
    /// (the default), `"match_only"` or `"create_only"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<MatchMode>,
    /// Which way whole records flow (creates and deletes), written like a
    /// field's `direction`. Default: both.
    #[serde(default, skip_serializing_if = "DirectionConfig::is_both")]
    pub records: DirectionConfig,
    /// With a one-way `records`, the targets mirror the source: records
    /// only in targets are deleted there. Default: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror: bool,
    /// Read-only systems (never written), each with what becomes of the
    /// writes it would need: `"report"` or `"error"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub read_only: IndexMap<String, ReadOnlyMode>,
    /// What a delete does to the other systems: `"propagate"`, `"unlink"`
    /// or `"hold"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<DeletePolicy>,
    /// Per deleting system, instead of `deletes`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub deletes_from: IndexMap<String, DeletePolicy>,
    /// What wins when one system deleted a record another changed:
    /// `"edit_wins"`, `"delete_wins"` or `"hold"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_vs_edit: Option<DeleteEditPolicy>,
    /// Per system, the records that are in sync. Default: all.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub scope: IndexMap<String, FilterConfig>,
    /// What a linked record leaving scope means: `"unlink"` (the default)
    /// or `"freeze"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_exit: Option<ScopeExit>,
    /// The safety guards. Default: [`Guards::default`](crate::guard::Guards::default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guards: Option<GuardsConfig>,
    /// The policy of fields without their own. Default: last-write-wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_policy: Option<PolicyConfig>,
    /// The empty-value guard of fields without their own. Default: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_overwrite_on_empty: bool,
    /// The skew tolerance of last-write-wins, in milliseconds. Default: 0.
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub skew_tolerance_ms: i64,
    /// The canonical fields.
    #[serde(default)]
    pub fields: Vec<FieldConfig>,
}

/// A config file with several objects sharing one `systems` list:
/// [`MapSet`] reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MapSetConfig {
    /// The systems, in priority order.
    pub systems: Vec<String>,
    /// The objects, in order.
    #[serde(default)]
    pub objects: Vec<ObjectConfig>,
}

/// One object of a [`MapSetConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ObjectConfig {
    /// The object type (`"contacts"`).
    pub name: String,
    /// The canonical key field, compared trimmed and case-folded (or give
    /// `match_keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Match keys, tried in order, instead of `key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_keys: Vec<MatchKeyConfig>,
    /// How records not linked yet become entities: `"match_then_create"`
    /// (the default), `"match_only"` or `"create_only"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<MatchMode>,
    /// Which way whole records flow (creates and deletes), written like a
    /// field's `direction`. Default: both.
    #[serde(default, skip_serializing_if = "DirectionConfig::is_both")]
    pub records: DirectionConfig,
    /// With a one-way `records`, the targets mirror the source: records
    /// only in targets are deleted there. Default: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror: bool,
    /// Read-only systems (never written), each with what becomes of the
    /// writes it would need: `"report"` or `"error"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub read_only: IndexMap<String, ReadOnlyMode>,
    /// What a delete does to the other systems: `"propagate"`, `"unlink"`
    /// or `"hold"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<DeletePolicy>,
    /// Per deleting system, instead of `deletes`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub deletes_from: IndexMap<String, DeletePolicy>,
    /// What wins when one system deleted a record another changed:
    /// `"edit_wins"`, `"delete_wins"` or `"hold"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_vs_edit: Option<DeleteEditPolicy>,
    /// Per system, the records that are in sync. Default: all.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub scope: IndexMap<String, FilterConfig>,
    /// What a linked record leaving scope means: `"unlink"` (the default)
    /// or `"freeze"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_exit: Option<ScopeExit>,
    /// The safety guards. Default: [`Guards::default`](crate::guard::Guards::default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guards: Option<GuardsConfig>,
    /// The policy of fields without their own. Default: last-write-wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_policy: Option<PolicyConfig>,
    /// The empty-value guard of fields without their own. Default: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_overwrite_on_empty: bool,
    /// The skew tolerance of last-write-wins, in milliseconds. Default: 0.
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub skew_tolerance_ms: i64,
    /// The canonical fields.
    #[serde(default)]
    pub fields: Vec<FieldConfig>,
}

fn is_zero_ms(ms: &i64) -> bool {
    *ms == 0
}

/// Serde's default for a flag that is on unless turned off.
fn yes() -> bool {
    true
}

/// Whether a flag is on (its default, left out when written).
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
fn is_yes(on: &bool) -> bool {
    *on
}

/// One canonical field in a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FieldConfig {
    /// The canonical name (also the native name in systems that do not
    /// give their own).
    pub name: String,
    /// Which way the field flows. Default: both.
    #[serde(default, skip_serializing_if = "DirectionConfig::is_both")]
    pub direction: DirectionConfig,
    /// The field's conflict policy, instead of the object's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyConfig>,
    /// The field's empty-value guard, instead of the object's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_overwrite_on_empty: Option<bool>,
    /// The normalization's name. Default: `"exact"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    /// The field holds personal data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// The write journal keeps the field's values (default); `false` keeps
    /// them out ([`Field::not_journaled`](super::Field::not_journaled)).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub journal: bool,
    /// Systems that do not have the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_in: Vec<String>,
    /// Systems whose records may leave the field out
    /// ([`Field::may_be_absent_in`](super::Field::may_be_absent_in)): no
    /// schema-drift issue there when no record holds it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub may_be_absent_in: Vec<String>,
    /// Per system: native name, transform, validation rules.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub systems: IndexMap<String, SystemFieldConfig>,
    /// The value map (picklist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_map: Option<ValueMapConfig>,
    /// The object type the field refers to (`"companies"`): its native
    /// values are that object's record ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

/// One field's settings for one system.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SystemFieldConfig {
    /// The native field name. Default: the canonical name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<String>,
    /// A built-in transform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Builtin>,
    /// The name of a custom transform in the [`Registry`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_transform: Option<String>,
    /// Rules for values written to the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<Validation>,
}

/// A field's direction in a config file: `"both"`, `"not_synced"`,
/// `{ one_way_from = "hubspot" }` or `{ enforced_from = "hubspot" }` (one
/// way, and the targets' own edits are overwritten).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DirectionConfig {
    /// Bidirectional.
    #[default]
    Both,
    /// Mapped, not synced.
    NotSynced,
    /// One way from this system.
    OneWayFrom(String),
    /// One way from this system, enforced.
    EnforcedFrom(String),
}

impl DirectionConfig {
    fn is_both(&self) -> bool {
        *self == DirectionConfig::Both
    }
}

/// A conflict policy in a config file: `"last_write_wins"`,
/// `"manual_review"`, `{ authority = "hubspot" }` (optionally with
/// `fallback = "last_write_wins" | "priority" | "manual_review"`), or
/// `{ resolver = "name" }` for a resolver in the [`Registry`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyConfig {
    /// Last-write-wins.
    LastWriteWins,
    /// Manual review.
    ManualReview,
    /// Authority of a system.
    Authority {
        /// The system.
        system: String,
        /// What decides when the authority did not change the field.
        fallback: Fallback,
    },
    /// A custom resolver, by name.
    Resolver(String),
}

impl Serialize for PolicyConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            PolicyConfig::LastWriteWins => serializer.serialize_str("last_write_wins"),
            PolicyConfig::ManualReview => serializer.serialize_str("manual_review"),
            PolicyConfig::Authority { system, fallback } => {
                let default = *fallback == Fallback::LastWriteWins;
                let mut m = serializer.serialize_map(Some(if default { 1 } else { 2 }))?;
                m.serialize_entry("authority", system)?;
                if !default {
                    m.serialize_entry("fallback", fallback)?;
                }
                m.end()
            }
            PolicyConfig::Resolver(name) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("resolver", name)?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyTable {
    authority: Option<String>,
    fallback: Option<Fallback>,
    resolver: Option<String>,
}

impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "\"last_write_wins\", \"manual_review\", { authority = \"system\" } or { resolver = \"name\" }",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyConfig, E> {
                match v {
                    "last_write_wins" => Ok(PolicyConfig::LastWriteWins),
                    "manual_review" => Ok(PolicyConfig::ManualReview),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PolicyConfig, A::Error> {
                let t = PolicyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (t.authority, t.fallback, t.resolver) {
                    (Some(system), fallback, None) => Ok(PolicyConfig::Authority {
                        system,
                        fallback: fallback.unwrap_or(Fallback::LastWriteWins),
                    }),
                    (None, None, Some(name)) => Ok(PolicyConfig::Resolver(name)),
                    _ => Err(de::Error::custom(
                        "a policy table has either `authority` (and maybe `fallback`) or `resolver`",
                    )),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A value map in a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ValueMapConfig {
    /// What happens to values no row covers. Default: an error.
    #[serde(default, skip_serializing_if = "UnmappedConfig::is_error")]
    pub unmapped: UnmappedConfig,
    /// The rows.
    pub rows: Vec<RowConfig>,
}

/// One value map row in a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RowConfig {
    /// The system the row maps from, one way. Default: both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Each system's native value.
    pub values: IndexMap<String, Value>,
    /// The canonical value. Default: the first system's value, in priority
    /// order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<Value>,
}

/// An unmapped-value policy in a config file: `"error"`, `"skip"`,
/// `"pass_through"` or `{ default = value }`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnmappedConfig {
    /// [`Unmapped::Error`].
    #[default]
    Error,
    /// [`Unmapped::Skip`].
    Skip,
    /// [`Unmapped::PassThrough`].
    PassThrough,
    /// [`Unmapped::Default`].
    Default(Value),
}

impl UnmappedConfig {
    fn is_error(&self) -> bool {
        *self == UnmappedConfig::Error
    }
}

/// A config file that could not be loaded, or a map that could not be
/// written as one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid JSON or TOML, or does not have the config's
    /// shape (an unknown key, a value of the wrong type).
    #[error("{format} config, line {line}, column {column}: {message}")]
    Parse {
        /// `"json"` or `"toml"`.
        format: &'static str,
        /// The line, from 1.
        line: usize,
        /// The column, from 1.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file parses, but the maps it describes are invalid: every
    /// problem found.
    #[error("{}", ProblemList(.problems))]
    Invalid {
        /// Every problem, object by object: names the registry lacks and
        /// contradictory entries first, then what `build()` found.
        problems: Vec<ConfigProblem>,
    },
    /// The map could not be written in the format.
    #[error("cannot write the map as {format}: {message}")]
    Write {
        /// `"json"` or `"toml"`.
        format: &'static str,
        /// What went wrong.
        message: String,
    },
}

struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid config: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// One problem with a config file's content, naming the object and entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A problem [`build`](super::FieldMapBuilder::build) found.
    #[error("object {object}: {problem}")]
    Map {
        /// The object.
        object: String,
        /// The problem.
        problem: MapProblem,
    },
    /// A custom transform, normalizer or resolver the registry lacks.
    #[error("object {object}, {entry}: unknown {kind} {name:?}, not in the registry")]
    UnknownName {
        /// The object.
        object: String,
        /// Where (`"field stage, system hubspot"`).
        entry: String,
        /// `"transform"`, `"normalizer"` or `"resolver"`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// An entry that says something contradictory or out of range.
    #[error("object {object}, {entry}: {message}")]
    Entry {
        /// The object.
        object: String,
        /// Where.
        entry: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigProblem {
    /// The field the problem is about, where it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigProblem::Map { problem, .. } => problem.field(),
            ConfigProblem::UnknownName { entry, .. } | ConfigProblem::Entry { entry, .. } => entry
                .strip_prefix("field ")
                .map(|rest| rest.split(',').next().unwrap_or(rest)),
        }
    }
}

/// Where `offset` is in `text`, as line and column counted from 1.
#[cfg_attr(not(feature = "toml"), allow(dead_code))]
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line, column)
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        ConfigError::Parse {
            format: "json",
            line: e.line(),
            column: e.column(),
            message: full.strip_suffix(&suffix).unwrap_or(&full).to_owned(),
        }
    })
}

#[cfg(feature = "toml")]
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        ConfigError::Parse {
            format: "toml",
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })
}

/// A scope filter with a predicate in code cannot be written to a file.
fn no_custom_filter(
    format: &'static str,
    object: &str,
    scope: &IndexMap<String, FilterConfig>,
) -> Result<(), ConfigError> {
    for (system, f) in scope {
        if let Some(name) = f.custom_name() {
            return Err(ConfigError::Write {
                format,
                message: format!(
                    "object {object}, scope.{system}: custom filter {name:?} is a predicate in code, which a config file cannot hold"
                ),
            });
        }
    }
    Ok(())
}

fn write_json<T: Serialize>(value: &T) -> Result<String, ConfigError> {
    serde_json::to_string_pretty(value).map_err(|e| ConfigError::Write {
        format: "json",
        message: e.to_string(),
    })
}

#[cfg(feature = "toml")]
fn write_toml<T: Serialize>(value: &T) -> Result<String, ConfigError> {
    toml::to_string_pretty(value).map_err(|e| ConfigError::Write {
        format: "toml",
        message: e.to_string(),
    })
}

/// Converts config entries into builder calls, collecting problems.
struct Loader<'a> {
    object: String,
    registry: &'a Registry,
    problems: Vec<ConfigProblem>,
}

impl Loader<'_> {
    fn unknown(&mut self, entry: String, kind: &'static str, name: &str) {
        self.problems.push(ConfigProblem::UnknownName {
            object: self.object.clone(),
            entry,
            kind,
            name: name.to_owned(),
        });
    }

    fn entry(&mut self, entry: String, message: String) {
        self.problems.push(ConfigProblem::Entry {
            object: self.object.clone(),
            entry,
            message,
        });
    }

    fn policy(&mut self, entry: String, p: &PolicyConfig) -> Option<ConflictPolicy> {
        Some(match p {
            PolicyConfig::LastWriteWins => ConflictPolicy::LastWriteWins,
            PolicyConfig::ManualReview => ConflictPolicy::ManualReview,
            PolicyConfig::Authority { system, fallback } => ConflictPolicy::Authority {
                system: system.as_str().into(),
                fallback: *fallback,
            },
            PolicyConfig::Resolver(name) => match self.registry.get_resolver(name) {
                Some(r) => ConflictPolicy::Custom(r.clone()),
                None => {
                    self.unknown(entry, "resolver", name);
                    return None;
                }
            },
        })
    }

    fn field(&mut self, systems: &[String], fc: &FieldConfig) -> Field {
        let at = format!("field {}", fc.name);
        let mut f = Field::new(fc.name.as_str()).direction(direction(&fc.direction));
        if let Some(p) = &fc.policy {
            if let Some(p) = self.policy(at.clone(), p) {
                f = f.policy(p);
            }
        }
        if let Some(on) = fc.no_overwrite_on_empty {
            f = f.no_overwrite_on_empty(on);
        }
        if let Some(name) = &fc.normalize {
            if let Some(n) = self.normalization(at.clone(), name) {
                f = f.normalize(n);
            }
        }
        if fc.sensitive {
            f = f.sensitive();
        }
        if !fc.journal {
            f = f.not_journaled();
        }
        if let Some(object) = &fc.references {
            f = f.references(object.as_str());
        }
        for s in &fc.not_in {
            f = f.not_in(s.as_str());
        }
        for s in &fc.may_be_absent_in {
            f = f.may_be_absent_in(s.as_str());
        }
        for (system, sc) in &fc.systems {
            if !systems.contains(system) {
                // Reported once here, whatever the entry sets.
                self.problems.push(ConfigProblem::Map {
                    object: self.object.clone(),
                    problem: MapProblem::UnknownSystem {
                        field: fc.name.clone(),
                        system: system.as_str().into(),
                    },
                });
                continue;
            }
            let at = format!("field {}, system {system}", fc.name);
            if let Some(n) = &sc.native {
                f = f.native(system.as_str(), n.as_str());
            }
            match (&sc.transform, &sc.custom_transform) {
                (Some(_), Some(_)) => self.entry(
                    at.clone(),
                    "gives both `transform` and `custom_transform`".to_owned(),
                ),
                (Some(b), None) => f = f.transform(system.as_str(), b.clone()),
                (None, Some(name)) => match self.registry.get_transform(name) {
                    Some(t) => f = f.transform_shared(system.as_str(), t.clone()),
                    None => self.unknown(at.clone(), "transform", name),
                },
                (None, None) => {}
            }
            if let Some(v) = &sc.validate {
                f = f.validate(system.as_str(), v.clone());
            }
        }
        if let Some(vm) = &fc.value_map {
            let mut map = ValueMap::new().unmapped(match &vm.unmapped {
                UnmappedConfig::Error => Unmapped::Error,
                UnmappedConfig::Skip => Unmapped::Skip,
                UnmappedConfig::PassThrough => Unmapped::PassThrough,
                UnmappedConfig::Default(v) => Unmapped::Default(v.clone()),
            });
            for row in &vm.rows {
                let values = row.values.iter().map(|(s, v)| (s.as_str(), v.clone()));
                let mut r = match &row.from {
                    Some(from) => ValueRow::from_system(from.as_str(), values),
                    None => ValueRow::both(values),
                };
                if let Some(c) = &row.canonical {
                    r = r.canonical(c.clone());
                }
                map = map.row(r);
            }
            f = f.value_map(map);
        }
        f
    }

    /// A normalization by name: built in, else from the registry.
    fn normalization(&mut self, entry: String, name: &str) -> Option<Normalization> {
        match Normalization::builtin(name) {
            Some(n) => Some(n),
            None => match self.registry.get_normalizer(name) {
                Some(n) => Some(Normalization::Custom(n.clone())),
                None if cfg!(not(feature = "phone")) && name.starts_with(PHONE_PREFIX) => {
                    self.entry(
                        entry,
                        format!(
                            "normalization {name:?} needs recsync's `phone` feature \
                             (recsync = {{ features = [\"phone\"] }})"
                        ),
                    );
                    None
                }
                None if name == "phone" => {
                    self.entry(
                        entry,
                        "the phone normalization needs a default region: \"phone:US\", say"
                            .to_owned(),
                    );
                    None
                }
                None => {
                    self.unknown(entry, "normalizer", name);
                    None
                }
            },
        }
    }

    /// Whether `system` is one of the map's, reporting the entry if not.
    fn known_system(&mut self, systems: &[String], entry: String, system: &str) -> bool {
        let known = systems.iter().any(|s| s == system);
        if !known {
            self.entry(
                entry,
                format!("system {system} is not one of the map's systems"),
            );
        }
        known
    }

    /// The record rules: match keys, matching, record direction, deletes,
    /// scope and guards.
    fn records(
        &mut self,
        systems: &[String],
        o: &ObjectConfig,
        mut b: FieldMapBuilder,
    ) -> FieldMapBuilder {
        for (i, k) in o.match_keys.iter().enumerate() {
            let mut key = MatchKey::new(k.field.as_str());
            if let Some(name) = &k.normalize {
                match self.normalization(format!("match_keys[{i}] ({})", k.field), name) {
                    Some(n) => key = key.normalize(n),
                    None => continue,
                }
            }
            b = b.match_key(key);
        }
        if let Some(mode) = o.matching {
            b = b.matching(mode);
        }
        let flow = direction(&o.records);
        match &flow {
            Direction::OneWay { from, .. }
                if !self.known_system(systems, "records".to_owned(), from.as_str()) => {}
            _ => b = b.records(flow),
        }
        if o.mirror {
            b = b.mirror(true);
        }
        for (system, mode) in &o.read_only {
            if self.known_system(systems, format!("read_only.{system}"), system) {
                b = b.read_only_mode(system.as_str(), *mode);
            }
        }
        if let Some(p) = o.deletes {
            b = b.deletes(p);
        }
        for (system, p) in &o.deletes_from {
            if self.known_system(systems, format!("deletes_from.{system}"), system) {
                b = b.deletes_from(system.as_str(), *p);
            }
        }
        if let Some(p) = o.delete_vs_edit {
            b = b.delete_vs_edit(p);
        }
        for (system, f) in &o.scope {
            let entry = format!("scope.{system}");
            if !self.known_system(systems, entry.clone(), system) {
                continue;
            }
            match f.to_filter() {
                Ok(filter) => b = b.scope(system.as_str(), filter),
                Err(name) => self.entry(
                    entry,
                    format!(
                        "custom filter {name:?} is a predicate in code and cannot come from a config file; give it with FieldMapBuilder::scope"
                    ),
                ),
            }
        }
        if let Some(exit) = o.scope_exit {
            b = b.scope_exit(exit);
        }
        if let Some(g) = o.guards {
            match g.to_guards() {
                Ok(guards) => b = b.guards(guards),
                Err(problems) => {
                    for (name, message) in problems {
                        self.entry(format!("guards.{name}"), message);
                    }
                }
            }
        }
        b
    }

    fn object(&mut self, systems: &[String], o: &ObjectConfig) -> Option<FieldMap> {
        let mut b = FieldMap::builder()
            .object(o.name.as_str())
            .systems(systems.iter().map(String::as_str))
            .no_overwrite_on_empty(o.no_overwrite_on_empty);
        match TimeDelta::try_milliseconds(o.skew_tolerance_ms) {
            Some(t) => b = b.skew_tolerance(t),
            None => self.entry(
                "skew_tolerance_ms".to_owned(),
                format!("{} milliseconds is out of range", o.skew_tolerance_ms),
            ),
        }
        if let Some(k) = &o.key {
            if !o.match_keys.is_empty() {
                self.entry(
                    "key".to_owned(),
                    "give either `key` or `match_keys`, not both".to_owned(),
                );
            }
            b = b.key(k.as_str());
        }
        b = self.records(systems, o, b);
        if let Some(p) = &o.default_policy {
            if let Some(p) = self.policy("default_policy".to_owned(), p) {
                b = b.default_policy(p);
            }
        }
        for fc in &o.fields {
            let field = self.field(systems, fc);
            b = b.field(field);
        }
        match b.build() {
            Ok(map) if self.problems.is_empty() => Some(map),
            Ok(_) => None,
            Err(e) => {
                let object = self.object.clone();
                self.problems
                    .extend(e.problems.into_iter().map(|problem| ConfigProblem::Map {
                        object: object.clone(),
                        problem,
                    }));
                None
            }
        }
    }
}

fn policy_config(p: &ConflictPolicy) -> PolicyConfig {
    match p {
        ConflictPolicy::LastWriteWins => PolicyConfig::LastWriteWins,
        ConflictPolicy::ManualReview => PolicyConfig::ManualReview,
        ConflictPolicy::Authority { system, fallback } => PolicyConfig::Authority {
            system: system.as_str().to_owned(),
            fallback: *fallback,
        },
        ConflictPolicy::Custom(r) => PolicyConfig::Resolver(r.name().to_owned()),
    }
}

fn direction_config(d: &Direction) -> DirectionConfig {
    match d {
        Direction::Bidirectional => DirectionConfig::Both,
        Direction::NotSynced => DirectionConfig::NotSynced,
        Direction::OneWay {
            from,
            enforce: false,
        } => DirectionConfig::OneWayFrom(from.as_str().to_owned()),
        Direction::OneWay {
            from,
            enforce: true,
        } => DirectionConfig::EnforcedFrom(from.as_str().to_owned()),
    }
}

fn direction(d: &DirectionConfig) -> Direction {
    match d {
        DirectionConfig::Both => Direction::Bidirectional,
        DirectionConfig::NotSynced => Direction::NotSynced,
        DirectionConfig::OneWayFrom(s) => Direction::OneWay {
            from: s.as_str().into(),
            enforce: false,
        },
        DirectionConfig::EnforcedFrom(s) => Direction::OneWay {
            from: s.as_str().into(),
            enforce: true,
        },
    }
}

fn field_config(map: &FieldMap, f: &Field) -> FieldConfig {
    let mut systems: IndexMap<String, SystemFieldConfig> = IndexMap::new();
    for s in map.systems() {
        let mut sc = SystemFieldConfig::default();
        if let Some((_, n)) = f.natives.iter().rev().find(|(x, _)| x == s) {
            sc.native = Some(n.clone());
        }
        match f.transforms.iter().rev().find(|(x, _)| x == s) {
            Some((_, Slot::Builtin(b))) => sc.transform = Some(b.clone()),
            Some((_, Slot::Custom(t))) => sc.custom_transform = Some(t.name().to_owned()),
            None => {}
        }
        if let Some((_, v)) = f.validations.iter().rev().find(|(x, _)| x == s) {
            sc.validate = Some(v.clone());
        }
        if sc != SystemFieldConfig::default() {
            systems.insert(s.as_str().to_owned(), sc);
        }
    }
    FieldConfig {
        name: f.name.clone(),
        direction: direction_config(&f.direction),
        policy: f.policy.as_ref().map(policy_config),
        no_overwrite_on_empty: f.no_overwrite_on_empty,
        normalize: match &f.normalization {
            Normalization::Exact => None,
            n => Some(n.name().to_owned()),
        },
        sensitive: f.sensitive,
        journal: f.journaled,
        not_in: f.absent.iter().map(|s| s.as_str().to_owned()).collect(),
        may_be_absent_in: f
            .may_be_absent
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        systems,
        value_map: f.value_map.as_ref().map(|vm| ValueMapConfig {
            unmapped: match vm.unmapped_policy() {
                Unmapped::Error => UnmappedConfig::Error,
                Unmapped::Skip => UnmappedConfig::Skip,
                Unmapped::PassThrough => UnmappedConfig::PassThrough,
                Unmapped::Default(v) => UnmappedConfig::Default(v.clone()),
            },
            rows: vm
                .rows()
                .iter()
                .map(|r| RowConfig {
                    from: match r.direction() {
                        RowDirection::Both => None,
                        RowDirection::From(s) => Some(s.as_str().to_owned()),
                    },
                    values: r
                        .values()
                        .iter()
                        .map(|(s, v)| (s.as_str().to_owned(), v.clone()))
                        .collect(),
                    canonical: r.canonical_value().cloned(),
                })
                .collect(),
        }),
        references: f.reference.clone(),
    }
}

impl ObjectConfig {
    /// The config of one built map (its systems aside).
    pub fn from_map(map: &FieldMap) -> Self {
        let r = &map.record_defs;
        let (key, match_keys) = match r.match_keys.as_slice() {
            [one] if one.normalization == Normalization::CaseInsensitive => {
                (Some(one.field.clone()), Vec::new())
            }
            keys => (None, keys.iter().map(MatchKeyConfig::from_key).collect()),
        };
        ObjectConfig {
            name: map.object().to_owned(),
            key,
            match_keys,
            matching: (r.mode != MatchMode::default()).then_some(r.mode),
            records: r
                .flow
                .as_ref()
                .map_or(DirectionConfig::Both, direction_config),
            mirror: r.mirror,
            read_only: r
                .read_only
                .iter()
                .map(|(s, m)| (s.as_str().to_owned(), *m))
                .collect(),
            deletes: (r.deletes != DeletePolicy::default()).then_some(r.deletes),
            deletes_from: r
                .deletes_from
                .iter()
                .map(|(s, p)| (s.as_str().to_owned(), *p))
                .collect(),
            delete_vs_edit: (r.delete_vs_edit != DeleteEditPolicy::default())
                .then_some(r.delete_vs_edit),
            scope: r
                .scope
                .iter()
                .map(|(s, f)| (s.as_str().to_owned(), FilterConfig::from_filter(f)))
                .collect(),
            scope_exit: (r.scope_exit != ScopeExit::default()).then_some(r.scope_exit),
            guards: GuardsConfig::from_guards(&r.guards),
            default_policy: match map.default_policy() {
                ConflictPolicy::LastWriteWins => None,
                p => Some(policy_config(p)),
            },
            no_overwrite_on_empty: map.default_no_overwrite_on_empty(),
            skew_tolerance_ms: map.skew_tolerance().num_milliseconds(),
            fields: map.defs.iter().map(|f| field_config(map, f)).collect(),
        }
    }
}

impl MapConfig {
    /// The config of a built map.
    pub fn from_map(map: &FieldMap) -> Self {
        let o = ObjectConfig::from_map(map);
        MapConfig {
            systems: map
                .systems()
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            object: Some(o.name),
            key: o.key,
            match_keys: o.match_keys,
            matching: o.matching,
            records: o.records,
            mirror: o.mirror,
            read_only: o.read_only,
            deletes: o.deletes,
            deletes_from: o.deletes_from,
            delete_vs_edit: o.delete_vs_edit,
            scope: o.scope,
            scope_exit: o.scope_exit,
            guards: o.guards,
            default_policy: o.default_policy,
            no_overwrite_on_empty: o.no_overwrite_on_empty,
            skew_tolerance_ms: o.skew_tolerance_ms,
            fields: o.fields,
        }
    }

    /// Builds the map, finding custom code in `registry`; every problem is
    /// listed.
    pub fn into_map(self, registry: &Registry) -> Result<FieldMap, ConfigError> {
        let object = ObjectConfig {
            name: self.object.unwrap_or_else(|| "records".to_owned()),
            key: self.key,
            match_keys: self.match_keys,
            matching: self.matching,
            records: self.records,
            mirror: self.mirror,
            read_only: self.read_only,
            deletes: self.deletes,
            deletes_from: self.deletes_from,
            delete_vs_edit: self.delete_vs_edit,
            scope: self.scope,
            scope_exit: self.scope_exit,
            guards: self.guards,
            default_policy: self.default_policy,
            no_overwrite_on_empty: self.no_overwrite_on_empty,
            skew_tolerance_ms: self.skew_tolerance_ms,
            fields: self.fields,
        };
        let mut loader = Loader {
            object: object.name.clone(),
            registry,
            problems: Vec::new(),
        };
        match loader.object(&self.systems, &object) {
            Some(map) => Ok(map),
            None => Err(ConfigError::Invalid {
                problems: loader.problems,
            }),
        }
    }
}

impl FieldMap {
    /// Loads a map from a JSON config file ([`MapConfig`]'s shape), finding
    /// custom transforms, normalizers and resolvers in `registry`.
    ///
    /// ```
    /// use recsync::mapping::{FieldMap, Registry};
    ///
    /// let map = FieldMap::from_json(r#"{
    ///     "systems": ["crm", "shop"],
    ///     "object": "customers",
    ///     "key": "email",
    ///     "fields": [
    ///         { "name": "email", "normalize": "case_insensitive" },
    ///         { "name": "vip", "systems": { "shop": { "native": "is_vip",
    ///             "transform": { "type": "string_to_bool", "true": "Y", "false": "N" } } } }
    ///     ]
    /// }"#, &Registry::new())?;
    /// assert_eq!(map.object(), "customers");
    /// assert_eq!(map.field("vip").unwrap().native_name("shop"), Some("is_vip"));
    /// # Ok::<(), recsync::mapping::ConfigError>(())
    /// ```
    pub fn from_json(text: &str, registry: &Registry) -> Result<FieldMap, ConfigError> {
        parse_json::<MapConfig>(text)?.into_map(registry)
    }

    /// Loads a map from a TOML config file ([`MapConfig`]'s shape).
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str, registry: &Registry) -> Result<FieldMap, ConfigError> {
        parse_toml::<MapConfig>(text)?.into_map(registry)
    }

    /// The map as a JSON config file.
    pub fn to_json(&self) -> Result<String, ConfigError> {
        let c = MapConfig::from_map(self);
        no_custom_filter("json", self.object(), &c.scope)?;
        write_json(&c)
    }

    /// The map as a TOML config file.
    #[cfg(feature = "toml")]
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let c = MapConfig::from_map(self);
        no_custom_filter("toml", self.object(), &c.scope)?;
        write_toml(&c)
    }
}

/// Several objects' field maps sharing one list of systems, loaded from one
/// config file ([`MapSetConfig`]'s shape), in file order.
///
/// ```
/// use recsync::mapping::{MapSet, Registry};
///
/// let set = MapSet::from_json(r#"{
///     "systems": ["crm", "erp"],
///     "objects": [
///         { "name": "contacts", "key": "email", "fields": [{ "name": "email" }, { "name": "phone" }] },
///         { "name": "companies", "key": "domain", "fields": [{ "name": "domain" }] }
///     ]
/// }"#, &Registry::new())?;
/// let names: Vec<&str> = set.iter().map(|m| m.object()).collect();
/// assert_eq!(names, ["contacts", "companies"]);
/// assert!(set.get("companies").is_some());
/// # Ok::<(), recsync::mapping::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MapSet {
    maps: Vec<FieldMap>,
}

impl MapSet {
    /// Builds every object's map, finding custom code in `registry`; every
    /// problem in every object is listed.
    pub fn from_config(config: MapSetConfig, registry: &Registry) -> Result<MapSet, ConfigError> {
        let mut maps = Vec::new();
        let mut problems = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for o in &config.objects {
            if names.contains(&o.name.as_str()) {
                problems.push(ConfigProblem::Entry {
                    object: o.name.clone(),
                    entry: "name".to_owned(),
                    message: "the object is defined twice".to_owned(),
                });
            }
            names.push(&o.name);
            let mut loader = Loader {
                object: o.name.clone(),
                registry,
                problems: Vec::new(),
            };
            match loader.object(&config.systems, o) {
                Some(map) => maps.push(map),
                None => problems.append(&mut loader.problems),
            }
        }
        if config.objects.is_empty() {
            problems.push(ConfigProblem::Entry {
                object: "(none)".to_owned(),
                entry: "objects".to_owned(),
                message: "the file defines no object".to_owned(),
            });
        }
        if problems.is_empty() {
            Ok(MapSet { maps })
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// Loads a JSON config file.
    pub fn from_json(text: &str, registry: &Registry) -> Result<MapSet, ConfigError> {
        MapSet::from_config(parse_json(text)?, registry)
    }

    /// Loads a TOML config file.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str, registry: &Registry) -> Result<MapSet, ConfigError> {
        MapSet::from_config(parse_toml(text)?, registry)
    }

    /// The config of the set.
    pub fn to_config(&self) -> MapSetConfig {
        MapSetConfig {
            systems: self
                .systems()
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            objects: self.maps.iter().map(ObjectConfig::from_map).collect(),
        }
    }

    /// The set as a JSON config file.
    pub fn to_json(&self) -> Result<String, ConfigError> {
        let c = self.to_config();
        for o in &c.objects {
            no_custom_filter("json", &o.name, &o.scope)?;
        }
        write_json(&c)
    }

    /// The set as a TOML config file.
    #[cfg(feature = "toml")]
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let c = self.to_config();
        for o in &c.objects {
            no_custom_filter("toml", &o.name, &o.scope)?;
        }
        write_toml(&c)
    }

    /// The shared systems, in priority order.
    pub fn systems(&self) -> &[crate::model::SystemId] {
        self.maps.first().map_or(&[], |m| m.systems())
    }

    /// The map of object `name`.
    pub fn get(&self, name: &str) -> Option<&FieldMap> {
        self.maps.iter().find(|m| m.object() == name)
    }

    /// Every object's map, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldMap> {
        self.maps.iter()
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether the set has no objects (never true for a loaded set).
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
}

impl<'a> IntoIterator for &'a MapSet {
    type Item = &'a FieldMap;
    type IntoIter = std::slice::Iter<'a, FieldMap>;

    fn into_iter(self) -> Self::IntoIter {
        self.maps.iter()
    }
}

impl IntoIterator for MapSet {
    type Item = FieldMap;
    type IntoIter = std::vec::IntoIter<FieldMap>;

    fn into_iter(self) -> Self::IntoIter {
        self.maps.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}

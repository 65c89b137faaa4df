//! Scope: which records of each system are in sync, and what leaving scope
//! means.
//!
//! A map may give each system a [`Filter`]. A record that does not pass is
//! out of scope: it is never matched, created elsewhere or written. A linked
//! record that leaves scope is **unlinked** or **frozen** as the map's
//! [`ScopeExit`] says, and never deleted elsewhere: leaving scope is not a
//! delete. Because records out of scope are still in the snapshot (recsync
//! filters, the connector need not), changing the filter itself reads as
//! records leaving or entering scope, never as deletes; the
//! [scope-exit guard](crate::guard::Guards::scope_exits) refuses a change
//! that sweeps through.
//!
//! ```
//! use recsync::scope::Filter;
//! use recsync::Record;
//! use serde_json::json;
//!
//! let active_leads = Filter::field("Status")
//!     .is_in([json!("Open"), json!("Working")])
//!     .and(Filter::field("Email").present());
//! let r = Record::new("1").field("Status", "Open").field("Email", "a@x");
//! assert!(active_leads.matches(&r));
//! assert!(!active_leads.matches(&Record::new("2").field("Status", "Closed")));
//! ```

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hash::StableHasher;
use crate::model::{is_empty_value, Record};

/// A condition on one native field's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Condition {
    /// Equal to the value (numbers compare by value, `1` equals `1.0`).
    Equals(Value),
    /// Not equal to the value (a missing field is not equal).
    NotEquals(Value),
    /// Equal to one of the values.
    In(Vec<Value>),
    /// Equal to none of the values.
    NotIn(Vec<Value>),
    /// Present and not [empty](crate::is_empty_value).
    Present,
    /// Missing or empty.
    Empty,
}

/// A record predicate: which records of a system are in sync.
#[derive(Clone)]
#[non_exhaustive]
pub enum Filter {
    /// Every record.
    All,
    /// A condition on one native field.
    Field {
        /// The native field name.
        field: String,
        /// The condition.
        condition: Condition,
    },
    /// Every filter passes.
    And(Vec<Filter>),
    /// Some filter passes.
    Or(Vec<Filter>),
    /// The filter does not pass.
    Not(Box<Filter>),
    /// A predicate in code. Its name stands for it in fingerprints and
    /// reports: give a new name when its behaviour changes.
    Custom {
        /// The name.
        name: String,
        /// The predicate; it must be pure.
        predicate: Arc<dyn Fn(&Record) -> bool + Send + Sync>,
    },
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => f.write_str("All"),
            Filter::Field { field, condition } => f
                .debug_struct("Field")
                .field("field", field)
                .field("condition", condition)
                .finish(),
            Filter::And(v) => f.debug_tuple("And").field(v).finish(),
            Filter::Or(v) => f.debug_tuple("Or").field(v).finish(),
            Filter::Not(v) => f.debug_tuple("Not").field(v).finish(),
            Filter::Custom { name, .. } => f.debug_tuple("Custom").field(name).finish(),
        }
    }
}

/// Starts a condition on one field: [`Filter::field`].
#[derive(Debug, Clone)]
pub struct FieldFilter(String);

impl FieldFilter {
    fn with(self, condition: Condition) -> Filter {
        Filter::Field {
            field: self.0,
            condition,
        }
    }

    /// The field equals `value`.
    pub fn equals(self, value: impl Into<Value>) -> Filter {
        self.with(Condition::Equals(value.into()))
    }

    /// The field does not equal `value`.
    pub fn not_equals(self, value: impl Into<Value>) -> Filter {
        self.with(Condition::NotEquals(value.into()))
    }

    /// The field equals one of `values`.
    pub fn is_in(self, values: impl IntoIterator<Item = Value>) -> Filter {
        self.with(Condition::In(values.into_iter().collect()))
    }

    /// The field equals none of `values`.
    pub fn not_in(self, values: impl IntoIterator<Item = Value>) -> Filter {
        self.with(Condition::NotIn(values.into_iter().collect()))
    }

    /// The field is present and not empty.
    pub fn present(self) -> Filter {
        self.with(Condition::Present)
    }

    /// The field is missing or empty.
    pub fn empty(self) -> Filter {
        self.with(Condition::Empty)
    }
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Filter {
    /// A condition on the native field `name`.
    pub fn field(name: impl Into<String>) -> FieldFilter {
        FieldFilter(name.into())
    }

    /// A predicate in code.
    pub fn custom(
        name: impl Into<String>,
        predicate: impl Fn(&Record) -> bool + Send + Sync + 'static,
    ) -> Filter {
        Filter::Custom {
            name: name.into(),
            predicate: Arc::new(predicate),
        }
    }

    /// This filter and `other`.
    #[must_use]
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            first => Filter::And(vec![first, other]),
        }
    }

    /// This filter or `other`.
    #[must_use]
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut v) => {
                v.push(other);
                Filter::Or(v)
            }
            first => Filter::Or(vec![first, other]),
        }
    }

    /// Whether the filter does not pass.
    #[allow(clippy::should_implement_trait)] // reads as a filter combinator
    #[must_use]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Whether `record` passes.
    pub fn matches(&self, record: &Record) -> bool {
        match self {
            Filter::All => true,
            Filter::Field { field, condition } => {
                let v = record.get(field);
                match condition {
                    Condition::Equals(x) => v.is_some_and(|v| value_eq(v, x)),
                    Condition::NotEquals(x) => !v.is_some_and(|v| value_eq(v, x)),
                    Condition::In(xs) => v.is_some_and(|v| xs.iter().any(|x| value_eq(v, x))),
                    Condition::NotIn(xs) => !v.is_some_and(|v| xs.iter().any(|x| value_eq(v, x))),
                    Condition::Present => v.is_some_and(|v| !is_empty_value(v)),
                    Condition::Empty => v.is_none_or(is_empty_value),
                }
            }
            Filter::And(fs) => fs.iter().all(|f| f.matches(record)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(record)),
            Filter::Not(f) => !f.matches(record),
            Filter::Custom { predicate, .. } => predicate(record),
        }
    }

    /// Whether a record with these native fields would pass, where that can
    /// be told from the fields alone (a custom predicate sees a record with
    /// only them).
    pub(crate) fn matches_fields<'a>(
        &self,
        fields: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) -> bool {
        let mut r = Record::new("");
        for (k, v) in fields {
            r.fields.insert(k, v.clone());
        }
        self.matches(&r)
    }

    pub(crate) fn fingerprint(&self, h: &mut StableHasher) {
        match self {
            Filter::All => h.str("all"),
            Filter::Field { field, condition } => {
                h.str("field");
                h.str(field);
                match condition {
                    Condition::Equals(v) => {
                        h.str("eq");
                        h.value(v);
                    }
                    Condition::NotEquals(v) => {
                        h.str("ne");
                        h.value(v);
                    }
                    Condition::In(vs) | Condition::NotIn(vs) => {
                        h.str(if matches!(condition, Condition::In(_)) {
                            "in"
                        } else {
                            "not_in"
                        });
                        h.u64(vs.len() as u64);
                        for v in vs {
                            h.value(v);
                        }
                    }
                    Condition::Present => h.str("present"),
                    Condition::Empty => h.str("empty"),
                }
            }
            Filter::And(fs) | Filter::Or(fs) => {
                h.str(if matches!(self, Filter::And(_)) {
                    "and"
                } else {
                    "or"
                });
                h.u64(fs.len() as u64);
                for f in fs {
                    f.fingerprint(h);
                }
            }
            Filter::Not(f) => {
                h.str("not");
                f.fingerprint(h);
            }
            Filter::Custom { name, .. } => {
                h.str("custom");
                h.str(name);
            }
        }
    }
}

/// What happens to a linked record that leaves its system's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScopeExit {
    /// The record is unlinked; the entity stays linked elsewhere, and the
    /// record is matched again if it returns. The default.
    #[default]
    Unlink,
    /// The link is kept but nothing is read or written until the record
    /// returns; then sync resumes where it was.
    Freeze,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_on_missing_and_present_fields() {
        let r = Record::new("1")
            .field("n", 1)
            .field("s", "x")
            .field("e", "");
        assert!(Filter::field("n").equals(1.0).matches(&r));
        assert!(!Filter::field("missing").equals(1).matches(&r));
        assert!(Filter::field("missing").not_equals(1).matches(&r));
        assert!(Filter::field("s")
            .is_in([json!("y"), json!("x")])
            .matches(&r));
        assert!(Filter::field("missing").not_in([json!("x")]).matches(&r));
        assert!(Filter::field("s").present().matches(&r));
        assert!(!Filter::field("e").present().matches(&r));
        assert!(Filter::field("e").empty().matches(&r));
        assert!(Filter::field("missing").empty().matches(&r));
        assert!(Filter::field("s")
            .equals("x")
            .and(Filter::field("n").equals(2))
            .not()
            .matches(&r));
        assert!(Filter::field("s")
            .equals("z")
            .or(Filter::custom("has n", |r| r.get("n").is_some()))
            .matches(&r));
    }
}

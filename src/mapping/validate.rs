//! Validation of native values before they are written: [`Validation`]
//! rules per field and target system, and the [`ValueProblem`]s they find.

use std::fmt;

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Normalization;
use crate::model::is_empty_value;
use crate::redact::{shown, view, Redactable};

/// The type a native value must have, for [`Validation::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueType {
    /// A JSON string.
    String,
    /// A JSON number.
    Number,
    /// A JSON number without a fractional part.
    Integer,
    /// A JSON boolean.
    Bool,
    /// A string holding an ISO 8601 date, `2026-03-01`.
    Date,
    /// A string holding an RFC 3339 datetime, `2026-03-01T09:30:00Z`.
    Datetime,
    /// A string that looks like an email address: one `@`, something before
    /// it, a dotted domain after it, no whitespace.
    Email,
}

impl ValueType {
    /// Whether `value` is of this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ValueType::String => value.is_string(),
            ValueType::Number => value.is_number(),
            ValueType::Integer => match value {
                Value::Number(n) => {
                    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
                }
                _ => false,
            },
            ValueType::Bool => value.is_boolean(),
            ValueType::Date => value
                .as_str()
                .is_some_and(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            ValueType::Datetime => value
                .as_str()
                .is_some_and(|s| DateTime::parse_from_rfc3339(s).is_ok()),
            ValueType::Email => value.as_str().is_some_and(looks_like_email),
        }
    }
}

fn looks_like_email(s: &str) -> bool {
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .split_once('.')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !b.ends_with('.'))
        }
        None => false,
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Integer => "integer",
            ValueType::Bool => "bool",
            ValueType::Date => "date (YYYY-MM-DD)",
            ValueType::Datetime => "datetime (RFC 3339)",
            ValueType::Email => "email address",
        })
    }
}

/// What a target system accepts for one field: the rules a native value
/// about to be written is checked against. Set them per field and system
/// with [`Field::validate`](super::Field::validate).
///
/// An [empty](crate::is_empty_value) value breaks only `required`; the other
/// rules apply to values that are there.
///
/// ```
/// use recsync::mapping::{Validation, ValueProblem, ValueType};
/// use serde_json::json;
///
/// let rules = Validation::new().required().kind(ValueType::String).max_length(5);
/// assert!(rules.check(&json!("Ada")).is_ok());
/// assert!(matches!(rules.check(&json!("Adelaide")), Err(ValueProblem::TooLong { max: 5, .. })));
/// assert!(matches!(rules.check(&json!(null)), Err(ValueProblem::Missing { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Validation {
    /// The field must have a value in this system: a write that would leave
    /// it empty is blocked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The type the value must have.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ValueType>,
    /// The longest string allowed, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The only values allowed (a picklist), compared with the field's
    /// normalization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
}

impl Validation {
    /// No rules.
    pub fn new() -> Self {
        Validation::default()
    }

    /// The field must have a value.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The value must be of type `kind`.
    #[must_use]
    pub fn kind(mut self, kind: ValueType) -> Self {
        self.kind = Some(kind);
        self
    }

    /// A string value must be at most `max` characters long.
    #[must_use]
    pub fn max_length(mut self, max: usize) -> Self {
        self.max_length = Some(max);
        self
    }

    /// The value must be one of `values`.
    #[must_use]
    pub fn allowed<V: Into<Value>>(mut self, values: impl IntoIterator<Item = V>) -> Self {
        self.allowed = Some(values.into_iter().map(Into::into).collect());
        self
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        *self == Validation::default()
    }

    /// Checks `value` against the rules, comparing allowed values exactly.
    pub fn check(&self, value: &Value) -> Result<(), ValueProblem> {
        self.check_with(&Normalization::Exact, value)
    }

    /// Checks `value` against the rules, comparing allowed values with
    /// `normalization`.
    pub fn check_with(
        &self,
        normalization: &Normalization,
        value: &Value,
    ) -> Result<(), ValueProblem> {
        if is_empty_value(value) {
            return if self.required {
                Err(ValueProblem::Missing {
                    value: value.clone(),
                    sensitive: false,
                })
            } else {
                Ok(())
            };
        }
        if let Some(kind) = self.kind {
            if !kind.accepts(value) {
                return Err(ValueProblem::WrongType {
                    expected: kind,
                    value: value.clone(),
                    sensitive: false,
                });
            }
        }
        if let (Some(max), Value::String(s)) = (self.max_length, value) {
            let length = s.chars().count();
            if length > max {
                return Err(ValueProblem::TooLong {
                    value: value.clone(),
                    length,
                    max,
                    sensitive: false,
                });
            }
        }
        if let Some(allowed) = &self.allowed {
            if !allowed
                .iter()
                .any(|a| normalization.equal(Some(a), Some(value)))
            {
                return Err(ValueProblem::NotAllowed {
                    value: value.clone(),
                    allowed: allowed.clone(),
                    sensitive: false,
                });
            }
        }
        Ok(())
    }
}

/// A native value that breaks a target system's [`Validation`] rules: the
/// value and the rule broken.
///
/// Its `Display` and `Debug` name the value, except where the field is
/// marked [sensitive](super::Field::sensitive) (the map sets `sensitive`
/// when it checks such a field's value): then they print `[redacted]` in
/// its place. [`value`](ValueProblem::value) and
/// [`unredacted`](ValueProblem::unredacted) give it, and serde keeps it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueProblem {
    /// The field is required and the value is empty.
    Missing {
        /// The empty value.
        value: Value,
        /// The field is marked sensitive: the value is printed as
        /// `[redacted]`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
    /// The value is not of the required type.
    WrongType {
        /// The type required.
        expected: ValueType,
        /// The value.
        value: Value,
        /// The field is marked sensitive: the value is printed as
        /// `[redacted]`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
    /// The string is longer than allowed.
    TooLong {
        /// The value.
        value: Value,
        /// Its length in characters.
        length: usize,
        /// The longest allowed.
        max: usize,
        /// The field is marked sensitive: the value is printed as
        /// `[redacted]`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
    /// The value is not one of the allowed values.
    NotAllowed {
        /// The value.
        value: Value,
        /// The allowed values.
        allowed: Vec<Value>,
        /// The field is marked sensitive: the value is printed as
        /// `[redacted]`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
}

impl ValueProblem {
    /// The value that broke the rule.
    pub fn value(&self) -> &Value {
        match self {
            ValueProblem::Missing { value, .. }
            | ValueProblem::WrongType { value, .. }
            | ValueProblem::TooLong { value, .. }
            | ValueProblem::NotAllowed { value, .. } => value,
        }
    }

    /// Whether the value is of a field marked sensitive (and so printed as
    /// `[redacted]`).
    pub fn is_sensitive(&self) -> bool {
        match self {
            ValueProblem::Missing { sensitive, .. }
            | ValueProblem::WrongType { sensitive, .. }
            | ValueProblem::TooLong { sensitive, .. }
            | ValueProblem::NotAllowed { sensitive, .. } => *sensitive,
        }
    }

    /// The problem's message with the value shown, even where it is
    /// sensitive. Ask for it by name, never for logs.
    pub fn unredacted(&self) -> impl fmt::Display + fmt::Debug + '_ {
        view(self, false)
    }

    /// The same problem, marked sensitive where `sensitive`.
    pub(crate) fn sensitive_if(mut self, sensitive: bool) -> Self {
        match &mut self {
            ValueProblem::Missing { sensitive: s, .. }
            | ValueProblem::WrongType { sensitive: s, .. }
            | ValueProblem::TooLong { sensitive: s, .. }
            | ValueProblem::NotAllowed { sensitive: s, .. } => *s |= sensitive,
        }
        self
    }
}

impl Redactable for ValueProblem {
    fn fmt_display(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        let value = shown(self.value(), redact);
        match self {
            ValueProblem::Missing { .. } => write!(f, "a value is required, got {value}"),
            ValueProblem::WrongType { expected, .. } => {
                write!(f, "value {value} is not a {expected}")
            }
            ValueProblem::TooLong { length, max, .. } => write!(
                f,
                "value {value} is {length} characters long, more than the {max} allowed"
            ),
            ValueProblem::NotAllowed { .. } => {
                write!(f, "value {value} is not one of the allowed values")
            }
        }
    }

    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        let mut d = f.debug_struct(match self {
            ValueProblem::Missing { .. } => "Missing",
            ValueProblem::WrongType { .. } => "WrongType",
            ValueProblem::TooLong { .. } => "TooLong",
            ValueProblem::NotAllowed { .. } => "NotAllowed",
        });
        if let ValueProblem::WrongType { expected, .. } = self {
            d.field("expected", expected);
        }
        d.field("value", &shown(self.value(), redact));
        match self {
            ValueProblem::TooLong { length, max, .. } => {
                d.field("length", length).field("max", max);
            }
            ValueProblem::NotAllowed { allowed, .. } => {
                d.field("allowed", allowed);
            }
            ValueProblem::Missing { .. } | ValueProblem::WrongType { .. } => {}
        }
        if self.is_sensitive() {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_display(f, self.is_sensitive())
    }
}

impl fmt::Debug for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug(f, self.is_sensitive())
    }
}

impl std::error::Error for ValueProblem {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types() {
        let ok = [
            (ValueType::String, json!("x")),
            (ValueType::Number, json!(1.5)),
            (ValueType::Integer, json!(3)),
            (ValueType::Integer, json!(3.0)),
            (ValueType::Bool, json!(false)),
            (ValueType::Date, json!("2026-03-01")),
            (ValueType::Datetime, json!("2026-03-01T09:30:00+02:00")),
            (ValueType::Email, json!("ada@example.com")),
        ];
        for (t, v) in ok {
            assert!(t.accepts(&v), "{t} {v}");
        }
        let bad = [
            (ValueType::String, json!(1)),
            (ValueType::Number, json!("1")),
            (ValueType::Integer, json!(3.5)),
            (ValueType::Bool, json!("true")),
            (ValueType::Date, json!("03/01/2026")),
            (ValueType::Datetime, json!("2026-03-01")),
            (ValueType::Email, json!("ada@example")),
            (ValueType::Email, json!("ada @example.com")),
            (ValueType::Email, json!("@example.com")),
            (ValueType::Email, json!("a@b@example.com")),
        ];
        for (t, v) in bad {
            assert!(!t.accepts(&v), "{t} {v}");
        }
    }

    #[test]
    fn each_rule() {
        let rules = Validation::new()
            .required()
            .kind(ValueType::String)
            .max_length(3)
            .allowed(["New", "Won"]);
        assert_eq!(rules.check(&json!("New")), Ok(()));
        assert_eq!(
            rules.check(&json!("")),
            Err(ValueProblem::Missing {
                value: json!(""),
                sensitive: false
            })
        );
        assert_eq!(
            rules.check(&json!(7)),
            Err(ValueProblem::WrongType {
                expected: ValueType::String,
                value: json!(7),
                sensitive: false
            })
        );
        assert!(matches!(
            rules.check(&json!("Lost")),
            Err(ValueProblem::TooLong {
                length: 4,
                max: 3,
                ..
            })
        ));
        let p = rules.check(&json!("new")).unwrap_err();
        assert_eq!(
            p.to_string(),
            r#"value "new" is not one of the allowed values"#
        );
        assert_eq!(p.value(), &json!("new"));
        // Marked sensitive (as the map marks a sensitive field's problems),
        // it names no value unless asked.
        let p = p.sensitive_if(true);
        assert!(p.is_sensitive());
        assert_eq!(
            p.to_string(),
            "value [redacted] is not one of the allowed values"
        );
        assert!(!format!("{p:?}").contains("new"), "{p:?}");
        assert_eq!(
            p.unredacted().to_string(),
            r#"value "new" is not one of the allowed values"#
        );
        assert_eq!(
            rules.check_with(&Normalization::CaseInsensitive, &json!("new")),
            Ok(())
        );
        // Optional fields may be emptied; the other rules skip empty values.
        assert_eq!(
            Validation::new()
                .kind(ValueType::Number)
                .check(&json!(null)),
            Ok(())
        );
    }
}

//! Normalized equality: when two values count as the same for change
//! detection.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::is_empty_value;

/// How a field's values are compared when detecting changes.
///
/// A system that reformats a value on write (`"CA"` stored as `"ca"`, a phone
/// number with its dashes stripped) would otherwise look like it changed the
/// value, and start a sync loop. Whatever the normalization, all
/// [empty](crate::is_empty_value) values are equal to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Normalization {
    /// Values are equal when they are the same JSON value.
    #[default]
    Exact,
    /// Strings are compared with surrounding whitespace trimmed.
    Trim,
    /// Strings are compared trimmed and case-folded (`" A@X "` equals `"a@x"`).
    CaseInsensitive,
    /// Strings are compared by their digits only (`"+1 (555) 010-1"` equals
    /// `"155501 01"`).
    DigitsOnly,
    /// Numbers, and strings that parse as numbers, are compared by numeric
    /// value (`1`, `1.0` and `"1"` are equal).
    Numeric,
}

impl Normalization {
    /// Whether values are compared as they are.
    pub fn is_exact(&self) -> bool {
        matches!(self, Normalization::Exact)
    }

    /// The value in the form it is compared in.
    pub fn apply<'v>(&self, value: &'v Value) -> Cow<'v, Value> {
        match (self, value) {
            (Normalization::Exact, _) => Cow::Borrowed(value),
            (Normalization::Trim, Value::String(s)) => Cow::Owned(Value::from(s.trim())),
            (Normalization::CaseInsensitive, Value::String(s)) => {
                Cow::Owned(Value::from(s.trim().to_lowercase()))
            }
            (Normalization::DigitsOnly, Value::String(s)) => Cow::Owned(Value::from(
                s.chars().filter(char::is_ascii_digit).collect::<String>(),
            )),
            (Normalization::Numeric, Value::Number(n)) => match n.as_f64() {
                Some(f) => Cow::Owned(Value::from(f)),
                None => Cow::Borrowed(value),
            },
            (Normalization::Numeric, Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Cow::Owned(Value::from(f)),
                _ => Cow::Borrowed(value),
            },
            _ => Cow::Borrowed(value),
        }
    }

    /// Whether two values count as the same. `None` (no value known) counts
    /// as `null`, so it equals every empty value.
    pub fn equal(&self, a: Option<&Value>, b: Option<&Value>) -> bool {
        let a = a.unwrap_or(&Value::Null);
        let b = b.unwrap_or(&Value::Null);
        if a == b {
            return true;
        }
        match (is_empty_value(a), is_empty_value(b)) {
            (true, true) => true,
            (true, false) | (false, true) => false,
            (false, false) => self.apply(a) == self.apply(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_normalization() {
        let n = Normalization::CaseInsensitive;
        assert!(n.equal(Some(&json!(" A@X ")), Some(&json!("a@x"))));
        assert!(!Normalization::Exact.equal(Some(&json!("A")), Some(&json!("a"))));
        assert!(Normalization::Trim.equal(Some(&json!("a ")), Some(&json!("a"))));
        assert!(Normalization::DigitsOnly.equal(Some(&json!("555-01")), Some(&json!("55501"))));
        assert!(Normalization::Numeric.equal(Some(&json!(1)), Some(&json!(1.0))));
        assert!(Normalization::Numeric.equal(Some(&json!("2")), Some(&json!(2))));
        assert!(Normalization::Exact.equal(None, Some(&json!(""))));
        assert!(Normalization::Exact.equal(Some(&json!([])), Some(&json!(null))));
        assert!(!Normalization::Exact.equal(None, Some(&json!(0))));
    }
}

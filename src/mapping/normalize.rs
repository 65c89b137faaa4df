//! Normalized equality: when two values count as the same for change
//! detection.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::model::is_empty_value;

/// How a field's values are compared when detecting changes.
///
/// A system that reformats a value on write (`"CA"` stored as `"ca"`, a phone
/// number with its dashes stripped) would otherwise look like it changed the
/// value, and start a sync loop. Whatever the normalization, all
/// [empty](crate::is_empty_value) values are equal to each other.
///
/// Value maps match native values with the field's normalization too, so a
/// case-insensitive field reads `"new"` by the row that says `"New"`.
///
/// In config files a normalization is written by its [name](Normalization::name):
/// `"exact"`, `"trim"`, `"case_insensitive"`, `"digits_only"`, `"numeric"`,
/// or the name of a custom [`Normalizer`] supplied through a
/// [`Registry`](super::Registry).
///
/// ```
/// use std::borrow::Cow;
/// use recsync::mapping::{Normalization, Normalizer};
/// use serde_json::{json, Value};
///
/// /// Country names and codes compare equal.
/// #[derive(Debug)]
/// struct Country;
///
/// impl Normalizer for Country {
///     fn name(&self) -> &str {
///         "country"
///     }
///     fn normalize<'v>(&self, value: &'v Value) -> Cow<'v, Value> {
///         match value.as_str().map(str::trim) {
///             Some("Norway" | "NO") => Cow::Owned(json!("NO")),
///             _ => Cow::Borrowed(value),
///         }
///     }
/// }
///
/// let n = Normalization::custom(Country);
/// assert!(n.equal(Some(&json!("Norway")), Some(&json!("NO"))));
/// assert_eq!(n.name(), "country");
/// ```
#[derive(Debug, Clone, Default)]
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
    /// A function you write.
    Custom(Arc<dyn Normalizer>),
}

/// A normalization you write, for [`Normalization::Custom`].
///
/// # Contract
///
/// `normalize` is a pure function: two values count as the same when their
/// normalized forms are equal JSON values. It must be idempotent
/// (normalizing a normalized value changes nothing). Empty values never
/// reach it: they are all equal to each other whatever the normalization.
pub trait Normalizer: Send + Sync + fmt::Debug {
    /// A short name, used in config files to find the normalizer in a
    /// [`Registry`](super::Registry).
    fn name(&self) -> &str;

    /// The value in the form it is compared in.
    fn normalize<'v>(&self, value: &'v Value) -> Cow<'v, Value>;
}

impl PartialEq for Normalization {
    /// Built-in normalizations are equal by kind; custom ones when they are
    /// the same normalizer (the same `Arc`).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Normalization::Custom(a), Normalization::Custom(b)) => Arc::ptr_eq(a, b),
            (Normalization::Exact, Normalization::Exact)
            | (Normalization::Trim, Normalization::Trim)
            | (Normalization::CaseInsensitive, Normalization::CaseInsensitive)
            | (Normalization::DigitsOnly, Normalization::DigitsOnly)
            | (Normalization::Numeric, Normalization::Numeric) => true,
            _ => false,
        }
    }
}

impl Normalization {
    /// Whether values are compared as they are.
    pub fn is_exact(&self) -> bool {
        matches!(self, Normalization::Exact)
    }

    /// A custom normalization.
    pub fn custom(normalizer: impl Normalizer + 'static) -> Self {
        Normalization::Custom(Arc::new(normalizer))
    }

    /// The name config files use: `"exact"`, `"trim"`,
    /// `"case_insensitive"`, `"digits_only"`, `"numeric"`, or a custom
    /// normalizer's own name.
    pub fn name(&self) -> &str {
        match self {
            Normalization::Exact => "exact",
            Normalization::Trim => "trim",
            Normalization::CaseInsensitive => "case_insensitive",
            Normalization::DigitsOnly => "digits_only",
            Normalization::Numeric => "numeric",
            Normalization::Custom(n) => n.name(),
        }
    }

    /// The built-in normalization with this [name](Normalization::name).
    pub fn builtin(name: &str) -> Option<Self> {
        Some(match name {
            "exact" => Normalization::Exact,
            "trim" => Normalization::Trim,
            "case_insensitive" => Normalization::CaseInsensitive,
            "digits_only" => Normalization::DigitsOnly,
            "numeric" => Normalization::Numeric,
            _ => return None,
        })
    }

    /// The value in the form it is compared in.
    pub fn apply<'v>(&self, value: &'v Value) -> Cow<'v, Value> {
        match (self, value) {
            (Normalization::Exact, _) => Cow::Borrowed(value),
            (Normalization::Custom(n), _) => n.normalize(value),
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

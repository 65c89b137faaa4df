//! The [`Transform`] trait between a system's native form and the canonical
//! form, and its typed [`TransformError`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::redact::{shown, view, Redactable};

/// Converts one field's values between a system's native form and the
/// canonical form, both ways.
///
/// Without a transform a field's native and canonical forms are the same
/// (identity). The crate ships the common ones as [`Builtin`](super::Builtin);
/// implement this trait for anything else.
///
/// # Contract
///
/// - Both directions are pure functions: no clock, no randomness, no I/O.
/// - [Empty](crate::is_empty_value) values never reach a transform: the map
///   passes them through unchanged, since "no value" needs no conversion.
/// - For a field that flows both ways through the system, the transform must
///   round-trip: `from_canonical(to_canonical(v))` equals `v` (after the
///   field's normalization) for every native value the system holds, or the
///   field would be rewritten on every sync. [`build`](super::FieldMapBuilder::build)
///   checks this on [`samples`](Transform::samples).
/// - A transform that cannot round-trip (it rounds, or drops the time of
///   day) says so with [`lossy`](Transform::lossy); `build` then refuses it
///   on any system that is both a source and a target of the field.
/// - A value that cannot be converted is a typed [`TransformError`], never a
///   panic; the plan reports it as an issue on that record and field.
///
/// ```
/// use recsync::mapping::{Transform, TransformError};
/// use serde_json::{json, Value};
///
/// /// The system stores cents as an integer; canonical is a decimal amount.
/// #[derive(Debug)]
/// struct Cents;
///
/// impl Transform for Cents {
///     fn name(&self) -> &str {
///         "cents"
///     }
///     fn to_canonical(&self, native: &Value) -> Result<Value, TransformError> {
///         let cents = native.as_i64().ok_or_else(|| TransformError::wrong_type("integer", native))?;
///         Ok(json!(cents as f64 / 100.0))
///     }
///     fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError> {
///         let amount = canonical.as_f64().ok_or_else(|| TransformError::wrong_type("number", canonical))?;
///         Ok(json!((amount * 100.0).round() as i64))
///     }
///     fn samples(&self) -> Vec<Value> {
///         vec![json!(0), json!(1250), json!(-99)]
///     }
/// }
///
/// assert_eq!(Cents.to_canonical(&json!(1250)).unwrap(), json!(12.5));
/// assert_eq!(Cents.from_canonical(&json!(12.5)).unwrap(), json!(1250));
/// let err = Cents.to_canonical(&json!("12")).unwrap_err();
/// assert_eq!(err.to_string(), r#"expected integer, got "12""#);
/// ```
pub trait Transform: Send + Sync + fmt::Debug {
    /// A short name, used in config files (to find a custom transform in a
    /// [`Registry`](super::Registry)), in `build` problems and in reports.
    fn name(&self) -> &str;

    /// Native value to canonical.
    fn to_canonical(&self, native: &Value) -> Result<Value, TransformError>;

    /// Canonical value to native.
    #[allow(clippy::wrong_self_convention)] // the pair reads as to/from canonical
    fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError>;

    /// Whether the transform loses information, so that a native value does
    /// not come back unchanged (rounding, dropping the time of day). A lossy
    /// transform may only be used where the field flows one way for the
    /// system. Default: not lossy.
    fn lossy(&self) -> bool {
        false
    }

    /// Native values `build` converts to canonical and back to check the
    /// transform round-trips. Default: none (nothing is checked).
    fn samples(&self) -> Vec<Value> {
        Vec::new()
    }
}

/// What kind of value a [`Transform`] could not convert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransformErrorKind {
    /// The value is not of the type the transform converts.
    WrongType {
        /// The type expected (`"string"`, `"number"`, ...).
        expected: String,
    },
    /// The value is of the right type but does not parse in the format.
    Unparseable {
        /// The format expected (`"MM/DD/YYYY"`, `"RFC 3339 datetime"`, ...).
        format: String,
    },
    /// The value parses but is outside what the other form can hold.
    OutOfRange {
        /// What the limit is.
        detail: String,
    },
    /// Anything else, in the transform's words.
    Custom {
        /// What was wrong.
        message: String,
    },
}

/// A value a [`Transform`] could not convert: what was wrong, and the value.
///
/// Its `Display` and `Debug` name the value, except where the field is
/// marked [sensitive](super::Field::sensitive): then they print
/// `[redacted]` in its place ([`unredacted`](TransformError::unredacted)
/// shows it, and serde keeps it).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformError {
    /// What was wrong.
    pub kind: TransformErrorKind,
    /// The value that could not be converted.
    pub value: Value,
    /// The value is of a field marked sensitive. The map sets it when it
    /// converts a sensitive field's value; a transform leaves it unset (the
    /// constructors do).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl TransformError {
    /// An error of any kind about `value`.
    pub fn of_kind(kind: TransformErrorKind, value: &Value) -> Self {
        TransformError {
            kind,
            value: value.clone(),
            sensitive: false,
        }
    }

    /// The error's message with the value shown, even where it is
    /// sensitive. Ask for it by name, never for logs.
    pub fn unredacted(&self) -> impl fmt::Display + fmt::Debug + '_ {
        view(self, false)
    }

    /// `value` is not of the `expected` type.
    pub fn wrong_type(expected: impl Into<String>, value: &Value) -> Self {
        Self::of_kind(
            TransformErrorKind::WrongType {
                expected: expected.into(),
            },
            value,
        )
    }

    /// `value` does not parse as `format`.
    pub fn unparseable(format: impl Into<String>, value: &Value) -> Self {
        Self::of_kind(
            TransformErrorKind::Unparseable {
                format: format.into(),
            },
            value,
        )
    }

    /// `value` is out of range; `detail` says what the limit is.
    pub fn out_of_range(detail: impl Into<String>, value: &Value) -> Self {
        Self::of_kind(
            TransformErrorKind::OutOfRange {
                detail: detail.into(),
            },
            value,
        )
    }

    /// A custom error about `value`, in the transform's words.
    pub fn new(message: impl Into<String>, value: &Value) -> Self {
        Self::of_kind(
            TransformErrorKind::Custom {
                message: message.into(),
            },
            value,
        )
    }
}

impl Redactable for TransformError {
    fn fmt_display(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        let value = shown(&self.value, redact);
        match &self.kind {
            TransformErrorKind::WrongType { expected } => {
                write!(f, "expected {expected}, got {value}")
            }
            TransformErrorKind::Unparseable { format } => {
                write!(f, "value {value} is not a {format}")
            }
            TransformErrorKind::OutOfRange { detail } => {
                write!(f, "value {value} is out of range: {detail}")
            }
            TransformErrorKind::Custom { message } => write!(f, "{message} (value {value})"),
        }
    }

    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        let mut d = f.debug_struct("TransformError");
        d.field("kind", &self.kind)
            .field("value", &shown(&self.value, redact));
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_display(f, self.sensitive)
    }
}

impl fmt::Debug for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug(f, self.sensitive)
    }
}

impl std::error::Error for TransformError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_name_the_value() {
        let v = json!("x");
        assert_eq!(
            TransformError::wrong_type("number", &v).to_string(),
            r#"expected number, got "x""#
        );
        assert_eq!(
            TransformError::unparseable("MM/DD/YYYY", &v).to_string(),
            r#"value "x" is not a MM/DD/YYYY"#
        );
        assert_eq!(
            TransformError::out_of_range("at most 2^53", &v).to_string(),
            r#"value "x" is out of range: at most 2^53"#
        );
        assert_eq!(
            TransformError::new("no such code", &v).to_string(),
            r#"no such code (value "x")"#
        );
    }

    #[test]
    fn a_sensitive_value_is_redacted_unless_asked_for() {
        let mut e = TransformError::unparseable("MM/DD/YYYY", &json!("s3cr3t"));
        e.sensitive = true;
        assert_eq!(e.to_string(), "value [redacted] is not a MM/DD/YYYY");
        assert!(!format!("{e:?}").contains("s3cr3t"), "{e:?}");
        assert_eq!(
            e.unredacted().to_string(),
            r#"value "s3cr3t" is not a MM/DD/YYYY"#
        );
    }

    #[test]
    fn object_safe() {
        fn _takes(_: Box<dyn Transform>) {}
    }
}

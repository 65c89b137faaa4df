//! Value transforms between a system's native form and the canonical form.

use std::fmt;

use serde_json::Value;

/// Converts one field's values between a system's native form and the
/// canonical form, both ways.
///
/// Without a transform a field's native and canonical forms are the same
/// (identity).
///
/// # Contract
///
/// Both directions must be pure functions. For a bidirectional field they
/// must round-trip: `from_canonical(to_canonical(v)) == v` for every native
/// value the system holds, or the field would oscillate between syncs. A
/// failure is a typed [`TransformError`]; the plan reports it as an issue on
/// that record and field, and the field is left alone.
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
///     fn to_canonical(&self, native: &Value) -> Result<Value, TransformError> {
///         let cents = native.as_i64().ok_or_else(|| TransformError::new("expected integer cents", native))?;
///         Ok(json!(cents as f64 / 100.0))
///     }
///     fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError> {
///         let amount = canonical.as_f64().ok_or_else(|| TransformError::new("expected a number", canonical))?;
///         Ok(json!((amount * 100.0).round() as i64))
///     }
/// }
///
/// assert_eq!(Cents.to_canonical(&json!(1250)).unwrap(), json!(12.5));
/// assert!(Cents.to_canonical(&json!("12")).is_err());
/// ```
pub trait Transform: Send + Sync + fmt::Debug {
    /// Native value to canonical.
    fn to_canonical(&self, native: &Value) -> Result<Value, TransformError>;

    /// Canonical value to native.
    #[allow(clippy::wrong_self_convention)] // the pair reads as to/from canonical
    fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError>;
}

/// A value a [`Transform`] could not convert.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (value {value})")]
pub struct TransformError {
    /// What was wrong.
    pub message: String,
    /// The value that could not be converted.
    pub value: Value,
}

impl TransformError {
    /// A transform error about `value`.
    pub fn new(message: impl Into<String>, value: &Value) -> Self {
        TransformError {
            message: message.into(),
            value: value.clone(),
        }
    }
}

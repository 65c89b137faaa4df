//! How `Debug` and `Display` show a field value that may be sensitive.
//!
//! Every public type that holds a field value and knows its field (a write,
//! a conflict, an issue, a mapping error, a value problem) carries a
//! `sensitive` flag the engine or the map sets, and prints its values
//! through [`shown`]: a sensitive value is `[redacted]`. Baseline state that
//! does not know the map prints values through [`hidden`]: never. Serde is
//! not touched: serialized plans and baselines are data and keep every value.

use std::fmt;

use serde_json::Value;

/// What a redacted value prints as.
pub(crate) const REDACTED: &str = "[redacted]";

/// A value as `Debug` and `Display` show it: itself, or `[redacted]`.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a> {
    value: &'a Value,
    redact: bool,
}

/// `value`, or `[redacted]` where `redact`.
pub(crate) fn shown(value: &Value, redact: bool) -> Shown<'_> {
    Shown { value, redact }
}

/// A value kept from a print: `[redacted]`, whatever it is.
pub(crate) fn hidden(value: &Value) -> Shown<'_> {
    shown(value, true)
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.redact {
            f.write_str(REDACTED)
        } else {
            fmt::Debug::fmt(self.value, f)
        }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.redact {
            f.write_str(REDACTED)
        } else {
            fmt::Display::fmt(self.value, f)
        }
    }
}

/// An optional value, shown or redacted.
pub(crate) struct ShownOpt<'a> {
    value: Option<&'a Value>,
    redact: bool,
}

/// `value` (if any), or `Some([redacted])` where `redact`.
pub(crate) fn shown_opt(value: Option<&Value>, redact: bool) -> ShownOpt<'_> {
    ShownOpt { value, redact }
}

impl fmt::Debug for ShownOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(v) => f.debug_tuple("Some").field(&shown(v, self.redact)).finish(),
            None => f.write_str("None"),
        }
    }
}

/// A `Debug` made of a closure.
pub(crate) struct DebugWith<F>(F);

/// A `Debug` that runs `f`.
pub(crate) fn debug_with<F>(f: F) -> DebugWith<F>
where
    F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result,
{
    DebugWith(f)
}

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Debug for DebugWith<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

/// A type that prints values of a field that may be sensitive: it prints
/// itself either way, and its own `Debug` and `Display` pick the way by its
/// flag.
pub(crate) trait Redactable {
    /// `Display`, with values redacted or not.
    fn fmt_display(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result;
    /// `Debug`, with values redacted or not.
    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result;
}

/// A [`Redactable`] printed one chosen way.
pub(crate) struct View<'a, T: ?Sized> {
    item: &'a T,
    redact: bool,
}

/// `item`, printed with its values redacted or not.
pub(crate) fn view<T: ?Sized>(item: &T, redact: bool) -> View<'_, T> {
    View { item, redact }
}

impl<T: Redactable + ?Sized> fmt::Display for View<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.item.fmt_display(f, self.redact)
    }
}

impl<T: Redactable + ?Sized> fmt::Debug for View<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.item.fmt_debug(f, self.redact)
    }
}

/// Only the keys of a map: which fields hold a value, not the values.
pub(crate) struct Keys<I>(pub(crate) I);

impl<I, K> fmt::Debug for Keys<I>
where
    I: Iterator<Item = K> + Clone,
    K: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shown_redacts_only_when_asked() {
        let v = json!("s3cr3t");
        assert_eq!(format!("{:?}", shown(&v, false)), r#"String("s3cr3t")"#);
        assert_eq!(format!("{}", shown(&v, false)), r#""s3cr3t""#);
        assert_eq!(format!("{:?}", shown(&v, true)), "[redacted]");
        assert_eq!(format!("{}", hidden(&v)), "[redacted]");
        assert_eq!(
            format!("{:?}", shown_opt(Some(&v), true)),
            "Some([redacted])"
        );
        assert_eq!(format!("{:?}", shown_opt(None, true)), "None");
    }
}

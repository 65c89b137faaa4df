//! Converting one field's values between native and canonical form, as the
//! engine does: [`MappingError`], and the crate-internal `Mapped` result of
//! `FieldSpec::read` / `FieldSpec::write`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::builtin::Builtin;
use super::transform::{Transform, TransformError};
use super::validate::ValueProblem;
use super::value_map::Lookup;
use super::FieldSpec;
use crate::model::is_empty_value;
use crate::redact::{shown, view, Redactable};

/// Which way a value was being converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conversion {
    /// Read: a system's native value to the canonical form.
    ToCanonical,
    /// Write: the canonical value to a system's native form.
    ToNative,
}

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conversion::ToCanonical => "to canonical",
            Conversion::ToNative => "to native",
        })
    }
}

/// A value a field's mapping could not convert.
///
/// Its `Display` and `Debug` name the value, except where the field is
/// marked [sensitive](super::Field::sensitive): then they print
/// `[redacted]` in its place. [`value`](MappingError::value) and
/// [`unredacted`](MappingError::unredacted) give it, and serde keeps it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MappingError {
    /// The field's transform failed.
    Transform {
        /// What failed (marked [sensitive](TransformError::sensitive) where
        /// the field is).
        error: TransformError,
        /// Which way.
        direction: Conversion,
    },
    /// No value map row covers the value in this direction, and the field's
    /// unmapped policy is [`Unmapped::Error`](super::Unmapped::Error).
    Unmapped {
        /// The value.
        value: Value,
        /// Which way.
        direction: Conversion,
        /// The field is marked sensitive: the value is printed as
        /// `[redacted]`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
}

impl MappingError {
    /// The value that could not be converted.
    pub fn value(&self) -> &Value {
        match self {
            MappingError::Transform { error, .. } => &error.value,
            MappingError::Unmapped { value, .. } => value,
        }
    }

    /// Which way the value was being converted.
    pub fn direction(&self) -> Conversion {
        match self {
            MappingError::Transform { direction, .. }
            | MappingError::Unmapped { direction, .. } => *direction,
        }
    }

    /// Whether the value is of a field marked sensitive (and so printed as
    /// `[redacted]`).
    pub fn is_sensitive(&self) -> bool {
        match self {
            MappingError::Transform { error, .. } => error.sensitive,
            MappingError::Unmapped { sensitive, .. } => *sensitive,
        }
    }

    /// The error's message with the value shown, even where it is
    /// sensitive. Ask for it by name, never for logs.
    pub fn unredacted(&self) -> impl fmt::Display + fmt::Debug + '_ {
        view(self, false)
    }
}

impl Redactable for MappingError {
    fn fmt_display(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        match self {
            MappingError::Transform { error, .. } => error.fmt_display(f, redact),
            MappingError::Unmapped {
                value, direction, ..
            } => write!(
                f,
                "value {} has no row in the value map {direction}",
                shown(value, redact)
            ),
        }
    }

    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        match self {
            MappingError::Transform { error, direction } => f
                .debug_struct("Transform")
                .field("error", &view(error, redact))
                .field("direction", direction)
                .finish(),
            MappingError::Unmapped {
                value,
                direction,
                sensitive,
            } => {
                let mut d = f.debug_struct("Unmapped");
                d.field("value", &shown(value, redact))
                    .field("direction", direction);
                if *sensitive {
                    d.field("sensitive", sensitive);
                }
                d.finish()
            }
        }
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_display(f, self.is_sensitive())
    }
}

impl fmt::Debug for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug(f, self.is_sensitive())
    }
}

impl std::error::Error for MappingError {}

/// One value converted by a field's mapping.
#[derive(Debug)]
pub(crate) enum Mapped<'a> {
    /// The converted value (borrowed where nothing changed).
    Value(Cow<'a, Value>),
    /// The unmapped policy says: leave the field alone for this record and
    /// system.
    Skip,
    /// The value could not be converted.
    Failed(MappingError),
}

/// How a field converts one system's values: a value map, a transform, or
/// nothing (identity).
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    Builtin(Builtin),
    Custom(std::sync::Arc<dyn Transform>),
}

impl Slot {
    pub(crate) fn get(&self) -> &dyn Transform {
        match self {
            Slot::Builtin(b) => b,
            Slot::Custom(t) => t.as_ref(),
        }
    }

    pub(crate) fn is_identity(&self) -> bool {
        matches!(self, Slot::Builtin(Builtin::Identity))
    }
}

fn transformed<'a>(
    result: Result<Value, TransformError>,
    direction: Conversion,
    sensitive: bool,
) -> Mapped<'a> {
    match result {
        Ok(v) => Mapped::Value(Cow::Owned(v)),
        Err(mut error) => {
            error.sensitive |= sensitive;
            Mapped::Failed(MappingError::Transform { error, direction })
        }
    }
}

fn looked_up<'a>(
    lookup: Lookup<'a>,
    value: &Value,
    direction: Conversion,
    sensitive: bool,
) -> Mapped<'a> {
    match lookup {
        Lookup::Found(v) => Mapped::Value(v),
        Lookup::Skip => Mapped::Skip,
        Lookup::Unmapped => Mapped::Failed(MappingError::Unmapped {
            value: value.clone(),
            direction,
            sensitive,
        }),
    }
}

fn owned(m: Mapped<'_>) -> Result<Option<Value>, MappingError> {
    match m {
        Mapped::Value(v) => Ok(Some(v.into_owned())),
        Mapped::Skip => Ok(None),
        Mapped::Failed(e) => Err(e),
    }
}

impl FieldSpec {
    /// `system`'s native value in canonical form. Empty values, and systems
    /// with neither a value map nor a transform, borrow the value as it is.
    pub(crate) fn read<'a>(&'a self, system: usize, native: &'a Value) -> Mapped<'a> {
        if is_empty_value(native) {
            return Mapped::Value(Cow::Borrowed(native));
        }
        if let Some(vm) = self.value_map.as_deref().filter(|vm| vm.covers(system)) {
            return looked_up(
                vm.read(&self.normalization, system, native),
                native,
                Conversion::ToCanonical,
                self.sensitive,
            );
        }
        match self.transforms.get(system).and_then(Option::as_ref) {
            Some(t) if !t.is_identity() => transformed(
                t.get().to_canonical(native),
                Conversion::ToCanonical,
                self.sensitive,
            ),
            _ => Mapped::Value(Cow::Borrowed(native)),
        }
    }

    /// The canonical value in `system`'s native form. Empty values, and
    /// systems with neither a value map nor a transform, borrow the value as
    /// it is.
    pub(crate) fn write<'a>(&'a self, system: usize, canonical: &'a Value) -> Mapped<'a> {
        if is_empty_value(canonical) {
            return Mapped::Value(Cow::Borrowed(canonical));
        }
        if let Some(vm) = self.value_map.as_deref().filter(|vm| vm.covers(system)) {
            return looked_up(
                vm.write(&self.normalization, system, canonical),
                canonical,
                Conversion::ToNative,
                self.sensitive,
            );
        }
        match self.transforms.get(system).and_then(Option::as_ref) {
            Some(t) if !t.is_identity() => transformed(
                t.get().from_canonical(canonical),
                Conversion::ToNative,
                self.sensitive,
            ),
            _ => Mapped::Value(Cow::Borrowed(canonical)),
        }
    }

    /// `system`'s native value in canonical form, as a plan reads it
    /// (through the system's value map or transform). `Ok(None)` when the
    /// value map's unmapped policy skips the value, or the field is not in
    /// `system`. Reference fields are translated by the engine through the
    /// parent's links, not here.
    ///
    /// ```
    /// use recsync::mapping::{Builtin, DateFormat, Field, FieldMap};
    /// use serde_json::json;
    ///
    /// let map = FieldMap::builder()
    ///     .systems(["crm", "erp"])
    ///     .field(Field::new("born").transform("crm", Builtin::Date { native: DateFormat::MonthDayYear }))
    ///     .build()?;
    /// let born = map.field("born").unwrap();
    /// assert_eq!(born.to_canonical("crm", &json!("03/01/2026"))?, Some(json!("2026-03-01")));
    /// assert_eq!(born.to_native("crm", &json!("2026-03-01"))?, Some(json!("03/01/2026")));
    /// assert!(born.to_canonical("crm", &json!("2026-03-01")).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_canonical(
        &self,
        system: &str,
        native: &Value,
    ) -> Result<Option<Value>, MappingError> {
        match self.system_at(system) {
            Some(s) => owned(self.read(s, native)),
            None => Ok(None),
        }
    }

    /// The canonical value in `system`'s native form, as a plan writes it.
    /// `Ok(None)` when the value map's unmapped policy skips the value, or
    /// the field is not in `system`.
    pub fn to_native(
        &self,
        system: &str,
        canonical: &Value,
    ) -> Result<Option<Value>, MappingError> {
        match self.system_at(system) {
            Some(s) => owned(self.write(s, canonical)),
            None => Ok(None),
        }
    }

    /// The index of `system` if the field is in it.
    fn system_at(&self, system: &str) -> Option<usize> {
        self.systems
            .iter()
            .position(|s| s == system)
            .filter(|&i| self.native_at(i).is_some())
    }

    /// Whether `system`'s values go through a transform (not a value map,
    /// not the identity).
    /// Whether values pass to and from `system` unchanged: no value map
    /// covers it and its transform (if any) is the identity.
    pub(crate) fn passes_through(&self, system: usize) -> bool {
        !self
            .value_map
            .as_deref()
            .is_some_and(|vm| vm.covers(system))
            && self
                .transforms
                .get(system)
                .and_then(Option::as_ref)
                .is_none_or(Slot::is_identity)
    }

    pub(crate) fn has_transform(&self, system: usize) -> bool {
        !self
            .value_map
            .as_deref()
            .is_some_and(|vm| vm.covers(system))
            && self
                .transforms
                .get(system)
                .and_then(Option::as_ref)
                .is_some_and(|t| !t.is_identity())
    }

    // For the map checker (`testkit::check`).
    #[cfg(feature = "proptest")]
    /// The index of `system` in the map's systems.
    pub(crate) fn index_of(&self, system: &str) -> Option<usize> {
        self.systems.iter().position(|s| s == system)
    }

    // For the map checker (`testkit::check`).
    #[cfg(feature = "proptest")]
    /// The native values a value map reads from `system`; `None` without a
    /// value map covering it.
    pub(crate) fn mapped_natives(&self, system: &str) -> Option<Vec<Value>> {
        let s = self.index_of(system)?;
        let vm = self.value_map.as_deref().filter(|vm| vm.covers(s))?;
        Some(vm.readable(s).cloned().collect())
    }

    /// Whether `system` (by index in the map's systems) requires the field:
    /// a write that would leave it empty there must be blocked.
    pub fn is_required(&self, system: usize) -> bool {
        self.validations
            .get(system)
            .and_then(Option::as_ref)
            .is_some_and(|v| v.required)
    }

    /// Checks a native value about to be written to `system` (by index in
    /// the map's systems) against that system's [`Validation`](super::Validation)
    /// rules for the field. A system without rules accepts anything. The
    /// problem is marked [sensitive](ValueProblem::is_sensitive) where the
    /// field is.
    pub fn check(&self, system: usize, value: &Value) -> Result<(), ValueProblem> {
        match self.validations.get(system).and_then(Option::as_ref) {
            Some(rules) => rules
                .check_with(&self.normalization, value)
                .map_err(|p| p.sensitive_if(self.sensitive)),
            None => Ok(()),
        }
    }
}

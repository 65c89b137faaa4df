//! Value maps (picklists): [`ValueMap`], its [`ValueRow`]s, and the
//! [`Unmapped`] policy for values no row covers.

use std::borrow::Cow;

use serde_json::Value;

use super::{Conversion, MapProblem, Normalization};
use crate::model::{is_empty_value, SystemId};

/// Which way one [`ValueRow`] maps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RowDirection {
    /// Every system's value in the row is read and written.
    Both,
    /// Only this system's value is read (mapped toward the others); the
    /// others' values in the row are only written.
    From(SystemId),
}

/// One row of a [`ValueMap`]: the native value each system uses for one
/// canonical value, and which way the row maps.
///
/// The canonical value is the value of the first system, in the map's
/// priority order, that the row has, unless [`canonical`](ValueRow::canonical)
/// sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRow {
    values: Vec<(SystemId, Value)>,
    direction: RowDirection,
    canonical: Option<Value>,
}

impl ValueRow {
    /// A row that maps both ways: each system's value is read as the row's
    /// canonical value, and written for it.
    pub fn both<S: Into<SystemId>, V: Into<Value>>(
        values: impl IntoIterator<Item = (S, V)>,
    ) -> Self {
        ValueRow {
            values: values
                .into_iter()
                .map(|(s, v)| (s.into(), v.into()))
                .collect(),
            direction: RowDirection::Both,
            canonical: None,
        }
    }

    /// A row that maps one way, from `system` to the others: `system`'s
    /// value is read; the other systems' values are written, never read.
    pub fn from_system<S: Into<SystemId>, V: Into<Value>>(
        system: impl Into<SystemId>,
        values: impl IntoIterator<Item = (S, V)>,
    ) -> Self {
        ValueRow {
            direction: RowDirection::From(system.into()),
            ..ValueRow::both(values)
        }
    }

    /// Sets the row's canonical value (default: the value of the first
    /// system, in priority order, that the row has).
    #[must_use]
    pub fn canonical(mut self, value: impl Into<Value>) -> Self {
        self.canonical = Some(value.into());
        self
    }

    /// Each system's native value, as given.
    pub fn values(&self) -> &[(SystemId, Value)] {
        &self.values
    }

    /// Which way the row maps.
    pub fn direction(&self) -> &RowDirection {
        &self.direction
    }

    /// The canonical value, where set explicitly.
    pub fn canonical_value(&self) -> Option<&Value> {
        self.canonical.as_ref()
    }
}

/// What happens to a value that no row of a [`ValueMap`] covers in the
/// direction it is converted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unmapped {
    /// A per-record issue in the plan; the field is left alone for that
    /// record.
    #[default]
    Error,
    /// The field is left alone for that record, quietly: not read from that
    /// system, or not written to it.
    Skip,
    /// The value is used as it is.
    PassThrough,
    /// This canonical value is used instead (read), or written in the
    /// target's native form (write).
    Default(Value),
}

/// A value map (picklist): rows of native values per system, each with a
/// direction, between systems that spell one field's values differently.
///
/// Reading a system's value uses the rows whose direction allows that system
/// as a source; writing uses the rows that allow it as a target, and then
/// the rows that come from it (so a value read from a one-way row is written
/// back to its own system as it was). Native values are matched with the
/// field's [`Normalization`]. A value no row covers follows the
/// [`Unmapped`] policy.
///
/// A value map applies to the systems its rows name; a field's other systems
/// use their transform (or none). A system cannot have both.
///
/// ```
/// use recsync::mapping::{Field, FieldMap, ValueMap, ValueRow};
///
/// let stage = ValueMap::new()
///     .row(ValueRow::from_system("hubspot", [("hubspot", "Subscriber"), ("salesforce", "New")]))
///     .row(ValueRow::both([("hubspot", "Opportunity"), ("salesforce", "Converted (Opportunity)")]))
///     .row(ValueRow::from_system("salesforce", [("hubspot", "Customer"), ("salesforce", "Won")]));
/// let map = FieldMap::builder()
///     .systems(["hubspot", "salesforce"])
///     .field(
///         Field::new("stage")
///             .native("hubspot", "lifecyclestage")
///             .native("salesforce", "Status")
///             .value_map(stage),
///     )
///     .build()?;
/// # let _ = map;
/// # Ok::<(), recsync::MapError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValueMap {
    rows: Vec<ValueRow>,
    unmapped: Unmapped,
}

impl ValueMap {
    /// An empty value map whose unmapped values are errors.
    pub fn new() -> Self {
        ValueMap::default()
    }

    /// Adds a row.
    #[must_use]
    pub fn row(mut self, row: ValueRow) -> Self {
        self.rows.push(row);
        self
    }

    /// Adds a row that maps both ways ([`ValueRow::both`]).
    #[must_use]
    pub fn both<S: Into<SystemId>, V: Into<Value>>(
        self,
        values: impl IntoIterator<Item = (S, V)>,
    ) -> Self {
        self.row(ValueRow::both(values))
    }

    /// Adds a row that maps one way from `system` ([`ValueRow::from_system`]).
    #[must_use]
    pub fn one_way<S: Into<SystemId>, V: Into<Value>>(
        self,
        system: impl Into<SystemId>,
        values: impl IntoIterator<Item = (S, V)>,
    ) -> Self {
        self.row(ValueRow::from_system(system, values))
    }

    /// What happens to values no row covers. Default: [`Unmapped::Error`].
    #[must_use]
    pub fn unmapped(mut self, policy: Unmapped) -> Self {
        self.unmapped = policy;
        self
    }

    /// The rows, in order.
    pub fn rows(&self) -> &[ValueRow] {
        &self.rows
    }

    /// The unmapped-value policy.
    pub fn unmapped_policy(&self) -> &Unmapped {
        &self.unmapped
    }
}

/// One lookup entry: the normalized key, the value it maps to, and the
/// value the key came from (for reports).
#[derive(Debug, Clone)]
struct Entry {
    key: Value,
    to: Value,
    from: Value,
}

/// A value map checked against the field map and ready for lookups.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedMap {
    /// Per system: native value (normalized) to canonical.
    read: Vec<Vec<Entry>>,
    /// Per system: canonical value (normalized) to native, rows that allow
    /// the system as a target.
    write: Vec<Vec<Entry>>,
    /// Per system: canonical to native, rows that come from the system.
    echo: Vec<Vec<Entry>>,
    /// Whether the map names the system at all.
    covers: Vec<bool>,
    unmapped: Unmapped,
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    Found(Cow<'a, Value>),
    Skip,
    Unmapped,
}

fn find<'a>(entries: &'a [Entry], key: &Value) -> Option<&'a Value> {
    entries.iter().find(|e| e.key == *key).map(|e| &e.to)
}

impl ResolvedMap {
    // For the map checker (`testkit::check`).
    #[cfg(feature = "proptest")]
    /// The native values `system` has rows to read (as given, not
    /// normalized).
    pub(crate) fn readable(&self, system: usize) -> impl Iterator<Item = &Value> {
        self.read.get(system).into_iter().flatten().map(|e| &e.from)
    }

    pub(crate) fn covers(&self, system: usize) -> bool {
        self.covers.get(system).copied().unwrap_or(false)
    }

    fn write_lookup(
        &self,
        norm: &Normalization,
        system: usize,
        canonical: &Value,
    ) -> Option<&Value> {
        let key = norm.apply(canonical);
        self.write
            .get(system)
            .and_then(|e| find(e, &key))
            .or_else(|| self.echo.get(system).and_then(|e| find(e, &key)))
    }

    /// Native (not empty) to canonical.
    pub(crate) fn read<'a>(
        &'a self,
        norm: &Normalization,
        system: usize,
        native: &'a Value,
    ) -> Lookup<'a> {
        let key = norm.apply(native);
        if let Some(c) = self.read.get(system).and_then(|e| find(e, &key)) {
            return Lookup::Found(Cow::Borrowed(c));
        }
        match &self.unmapped {
            Unmapped::Error => Lookup::Unmapped,
            Unmapped::Skip => Lookup::Skip,
            Unmapped::PassThrough => Lookup::Found(Cow::Borrowed(native)),
            Unmapped::Default(d) => Lookup::Found(Cow::Borrowed(d)),
        }
    }

    /// Canonical (not empty) to native.
    pub(crate) fn write<'a>(
        &'a self,
        norm: &Normalization,
        system: usize,
        canonical: &'a Value,
    ) -> Lookup<'a> {
        if let Some(n) = self.write_lookup(norm, system, canonical) {
            return Lookup::Found(Cow::Borrowed(n));
        }
        match &self.unmapped {
            Unmapped::Error => Lookup::Unmapped,
            Unmapped::Skip => Lookup::Skip,
            Unmapped::PassThrough => Lookup::Found(Cow::Borrowed(canonical)),
            Unmapped::Default(d) => match self.write_lookup(norm, system, d) {
                Some(n) => Lookup::Found(Cow::Borrowed(n)),
                None => Lookup::Unmapped,
            },
        }
    }
}

/// What [`resolve`] needs to know about the field.
pub(crate) struct FieldShape<'a> {
    pub(crate) name: &'a str,
    pub(crate) systems: &'a [SystemId],
    pub(crate) present: &'a [bool],
    pub(crate) source: &'a [bool],
    pub(crate) target: &'a [bool],
    pub(crate) normalization: &'a Normalization,
}

/// Checks `map` against the field and builds its lookup tables, reporting
/// every problem into `problems`: the rows' own problems, row by row, then
/// ambiguous values, values that do not round-trip, and an unmapped default
/// that cannot be written.
pub(crate) fn resolve(
    map: &ValueMap,
    field: &FieldShape<'_>,
    problems: &mut Vec<MapProblem>,
) -> ResolvedMap {
    let n = field.systems.len();
    let mut resolved = ResolvedMap {
        read: vec![Vec::new(); n],
        write: vec![Vec::new(); n],
        echo: vec![Vec::new(); n],
        covers: vec![false; n],
        unmapped: map.unmapped.clone(),
    };
    for (r, row) in map.rows.iter().enumerate() {
        resolved.add_row(field, r, row, problems);
    }
    let ambiguous = resolved.ambiguities(field, problems);
    resolved.round_trips(field, &ambiguous, problems);
    resolved.default_writable(field, problems);
    resolved
}

/// A problem with row `r` (counted from 0) of the field's value map.
fn bad_row(field: &FieldShape<'_>, r: usize, reason: String) -> MapProblem {
    MapProblem::BadValueMapRow {
        field: field.name.to_owned(),
        row: r + 1,
        reason,
    }
}

fn unknown_system(field: &FieldShape<'_>, system: &SystemId) -> MapProblem {
    MapProblem::UnknownSystem {
        field: field.name.to_owned(),
        system: system.clone(),
    }
}

/// Row `r`'s values by system index; the unusable ones (an unknown system, a
/// system without the field, a second value for a system, an empty value)
/// are reported and left out.
fn row_values<'v>(
    field: &FieldShape<'_>,
    r: usize,
    row: &'v ValueRow,
    problems: &mut Vec<MapProblem>,
) -> Vec<Option<&'v Value>> {
    let mut at: Vec<Option<&Value>> = vec![None; field.systems.len()];
    for (s, v) in &row.values {
        match field.index(s) {
            None => problems.push(unknown_system(field, s)),
            Some(i) if !field.present[i] => problems.push(MapProblem::NotInSystem {
                field: field.name.to_owned(),
                system: s.clone(),
                what: "a value map value",
            }),
            Some(i) if at[i].is_some() => {
                problems.push(bad_row(field, r, format!("it has two values for {s}")));
            }
            Some(_) if is_empty_value(v) => {
                problems.push(bad_row(field, r, format!("its value for {s} is empty")));
            }
            Some(i) => at[i] = Some(v),
        }
    }
    at
}

/// The system row `r` maps from: `Some(None)` for both ways, `Some(Some(i))`
/// for one way from system `i`; `None`, reported, when that system is unknown
/// or the row has no value for it.
fn row_from(
    field: &FieldShape<'_>,
    r: usize,
    row: &ValueRow,
    at: &[Option<&Value>],
    problems: &mut Vec<MapProblem>,
) -> Option<Option<usize>> {
    let s = match &row.direction {
        RowDirection::Both => return Some(None),
        RowDirection::From(s) => s,
    };
    match field.index(s) {
        None => {
            problems.push(unknown_system(field, s));
            None
        }
        Some(i) if at[i].is_none() => {
            let reason = format!("it maps from {s} but has no value for {s}");
            problems.push(bad_row(field, r, reason));
            None
        }
        Some(i) => Some(Some(i)),
    }
}

/// Row `r`'s canonical value: the one it sets, else its first system's value;
/// `None` when it has no usable value, and, reported, when it is empty
/// (reading a value as empty would empty the field everywhere).
fn row_canonical<'v>(
    field: &FieldShape<'_>,
    r: usize,
    row: &'v ValueRow,
    at: &[Option<&'v Value>],
    problems: &mut Vec<MapProblem>,
) -> Option<&'v Value> {
    match row
        .canonical
        .as_ref()
        .or_else(|| at.iter().flatten().next().copied())
    {
        Some(c) if is_empty_value(c) => {
            problems.push(bad_row(field, r, "its canonical value is empty".to_owned()));
            None
        }
        other => other,
    }
}

impl FieldShape<'_> {
    fn index(&self, system: &SystemId) -> Option<usize> {
        self.systems.iter().position(|x| x == system)
    }
}

impl ResolvedMap {
    /// Adds row `r`'s entries to the tables, or reports why it cannot.
    fn add_row(
        &mut self,
        field: &FieldShape<'_>,
        r: usize,
        row: &ValueRow,
        problems: &mut Vec<MapProblem>,
    ) {
        if row.values.is_empty() {
            problems.push(bad_row(field, r, "it has no values".to_owned()));
            return;
        }
        let at = row_values(field, r, row, problems);
        let Some(from) = row_from(field, r, row, &at, problems) else {
            return;
        };
        let Some(canonical) = row_canonical(field, r, row, &at, problems) else {
            return;
        };
        self.add_entries(field.normalization, &at, from, canonical);
    }

    /// Adds one row's entries: each system's value reads as `canonical`
    /// (where the row is read from that system), and `canonical` writes as
    /// the system's value (an echo on the system the row maps from).
    fn add_entries(
        &mut self,
        norm: &Normalization,
        at: &[Option<&Value>],
        from: Option<usize>,
        canonical: &Value,
    ) {
        let canon_key = norm.apply(canonical).into_owned();
        for (s, v) in at.iter().enumerate() {
            let Some(v) = v else { continue };
            self.covers[s] = true;
            if from.is_none() || from == Some(s) {
                self.read[s].push(Entry {
                    key: norm.apply(v).into_owned(),
                    to: canonical.clone(),
                    from: (*v).clone(),
                });
            }
            let entry = Entry {
                key: canon_key.clone(),
                to: (*v).clone(),
                from: canonical.clone(),
            };
            if from == Some(s) {
                self.echo[s].push(entry);
            } else {
                self.write[s].push(entry);
            }
        }
    }

    /// Reports each key that maps to two different values, reading from a
    /// source or writing to a target; returns, per system, whether any did.
    fn ambiguities(&self, field: &FieldShape<'_>, problems: &mut Vec<MapProblem>) -> Vec<bool> {
        let mut ambiguous = vec![false; field.systems.len()];
        let tables = [
            (&self.read, field.source, Conversion::ToCanonical),
            (&self.write, field.target, Conversion::ToNative),
            (&self.echo, field.target, Conversion::ToNative),
        ];
        for (table, allowed, direction) in tables {
            for (s, entries) in table.iter().enumerate() {
                if allowed[s] && report_clashes(field, s, entries, direction, problems) {
                    ambiguous[s] = true;
                }
            }
        }
        ambiguous
    }

    /// Reports each value read from a system that is both a source and a
    /// target (and not ambiguous) that is not written back as it was.
    fn round_trips(
        &self,
        field: &FieldShape<'_>,
        ambiguous: &[bool],
        problems: &mut Vec<MapProblem>,
    ) {
        let norm = field.normalization;
        for (s, entries) in self.read.iter().enumerate() {
            if !(field.source[s] && field.target[s]) || ambiguous[s] {
                continue;
            }
            for e in entries {
                let back = self.write_lookup(norm, s, &e.to);
                if !back.is_some_and(|b| norm.equal(Some(b), Some(&e.from))) {
                    problems.push(MapProblem::NoRoundTrip {
                        field: field.name.to_owned(),
                        system: field.systems[s].clone(),
                        value: e.from.clone(),
                        back: back.cloned(),
                    });
                }
            }
        }
    }

    /// Reports an unmapped default that cannot be written to a target the
    /// map applies to.
    fn default_writable(&self, field: &FieldShape<'_>, problems: &mut Vec<MapProblem>) {
        let Unmapped::Default(d) = &self.unmapped else {
            return;
        };
        for s in 0..field.systems.len() {
            if self.covers[s]
                && field.target[s]
                && self.write_lookup(field.normalization, s, d).is_none()
            {
                problems.push(MapProblem::UnmappedDefault {
                    field: field.name.to_owned(),
                    system: field.systems[s].clone(),
                    value: d.clone(),
                });
            }
        }
    }
}

/// Reports, once each, the keys of system `s`'s `entries` that map to two
/// different values; returns whether there was any.
fn report_clashes(
    field: &FieldShape<'_>,
    s: usize,
    entries: &[Entry],
    direction: Conversion,
    problems: &mut Vec<MapProblem>,
) -> bool {
    let norm = field.normalization;
    let mut reported: Vec<&Value> = Vec::new();
    for (i, a) in entries.iter().enumerate() {
        let clash = entries[i + 1..]
            .iter()
            .any(|b| b.key == a.key && !norm.equal(Some(&a.to), Some(&b.to)));
        if clash && !reported.contains(&&a.key) {
            reported.push(&a.key);
            problems.push(MapProblem::AmbiguousValue {
                field: field.name.to_owned(),
                system: field.systems[s].clone(),
                value: a.from.clone(),
                direction,
            });
        }
    }
    !reported.is_empty()
}

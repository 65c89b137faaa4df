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
/// every problem into `problems`.
pub(crate) fn resolve(
    map: &ValueMap,
    field: &FieldShape<'_>,
    problems: &mut Vec<MapProblem>,
) -> ResolvedMap {
    let n = field.systems.len();
    let name = field.name;
    let norm = field.normalization;
    let index = |s: &SystemId| field.systems.iter().position(|x| x == s);
    let mut resolved = ResolvedMap {
        read: vec![Vec::new(); n],
        write: vec![Vec::new(); n],
        echo: vec![Vec::new(); n],
        covers: vec![false; n],
        unmapped: map.unmapped.clone(),
    };
    let bad_row = |row: usize, reason: String, problems: &mut Vec<MapProblem>| {
        problems.push(MapProblem::BadValueMapRow {
            field: name.to_owned(),
            row: row + 1,
            reason,
        });
    };
    for (r, row) in map.rows.iter().enumerate() {
        if row.values.is_empty() {
            bad_row(r, "it has no values".to_owned(), problems);
            continue;
        }
        // The row's values by system index; unusable entries are reported.
        let mut at: Vec<Option<&Value>> = vec![None; n];
        for (s, v) in &row.values {
            match index(s) {
                None => problems.push(MapProblem::UnknownSystem {
                    field: name.to_owned(),
                    system: s.clone(),
                }),
                Some(i) if !field.present[i] => problems.push(MapProblem::NotInSystem {
                    field: name.to_owned(),
                    system: s.clone(),
                    what: "a value map value",
                }),
                Some(i) if at[i].is_some() => {
                    bad_row(r, format!("it has two values for {s}"), problems)
                }
                Some(_) if is_empty_value(v) => {
                    bad_row(r, format!("its value for {s} is empty"), problems)
                }
                Some(i) => at[i] = Some(v),
            }
        }
        let from = match &row.direction {
            RowDirection::Both => None,
            RowDirection::From(s) => match index(s) {
                None => {
                    problems.push(MapProblem::UnknownSystem {
                        field: name.to_owned(),
                        system: s.clone(),
                    });
                    continue;
                }
                Some(i) if at[i].is_none() => {
                    bad_row(
                        r,
                        format!("it maps from {s} but has no value for {s}"),
                        problems,
                    );
                    continue;
                }
                Some(i) => Some(i),
            },
        };
        let canonical = match row
            .canonical
            .as_ref()
            .or_else(|| at.iter().flatten().next().copied())
        {
            Some(c) => c.clone(),
            None => continue,
        };
        let canon_key = norm.apply(&canonical).into_owned();
        for (s, v) in at.iter().enumerate() {
            let Some(v) = v else { continue };
            resolved.covers[s] = true;
            if from.is_none() || from == Some(s) {
                resolved.read[s].push(Entry {
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
                resolved.echo[s].push(entry);
            } else {
                resolved.write[s].push(entry);
            }
        }
    }

    // Ambiguity: one key mapping to two different values.
    let mut ambiguous = vec![false; n];
    let mut ambiguity = |table: &[Vec<Entry>], allowed: &[bool], direction: Conversion| {
        for (s, entries) in table.iter().enumerate() {
            if !allowed[s] {
                continue;
            }
            let mut reported: Vec<&Value> = Vec::new();
            for (i, a) in entries.iter().enumerate() {
                let clash = entries[i + 1..]
                    .iter()
                    .any(|b| b.key == a.key && !norm.equal(Some(&a.to), Some(&b.to)));
                if clash && !reported.contains(&&a.key) {
                    reported.push(&a.key);
                    ambiguous[s] = true;
                    problems.push(MapProblem::AmbiguousValue {
                        field: name.to_owned(),
                        system: field.systems[s].clone(),
                        value: a.from.clone(),
                        direction,
                    });
                }
            }
        }
    };
    ambiguity(&resolved.read, field.source, Conversion::ToCanonical);
    ambiguity(&resolved.write, field.target, Conversion::ToNative);
    ambiguity(&resolved.echo, field.target, Conversion::ToNative);

    // Round trip on every system that is both a source and a target.
    for (s, entries) in resolved.read.iter().enumerate() {
        if !(field.source[s] && field.target[s]) || ambiguous[s] {
            continue;
        }
        for e in entries {
            let back = resolved.write_lookup(norm, s, &e.to);
            if !back.is_some_and(|b| norm.equal(Some(b), Some(&e.from))) {
                problems.push(MapProblem::NoRoundTrip {
                    field: name.to_owned(),
                    system: field.systems[s].clone(),
                    value: e.from.clone(),
                    back: back.cloned(),
                });
            }
        }
    }

    // A default must be writable wherever the map applies.
    if let Unmapped::Default(d) = &map.unmapped {
        for s in 0..n {
            if resolved.covers[s] && field.target[s] && resolved.write_lookup(norm, s, d).is_none()
            {
                problems.push(MapProblem::UnmappedDefault {
                    field: name.to_owned(),
                    system: field.systems[s].clone(),
                    value: d.clone(),
                });
            }
        }
    }
    resolved
}

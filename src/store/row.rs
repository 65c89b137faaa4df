//! One entity as a compact JSON row, written straight from the baseline's
//! in-memory form, and read back as an [`EntityRecord`].
//!
//! The row is the JSON of the entity's `EntityRecord` with one change: as
//! in memory, a system's shadow lists only the fields where it differs from
//! the canonical value (`"shadows"`: the differing values; `"absent"`: the
//! fields the system does not hold though a canonical value exists). Most
//! shadows equal the canonical value, so a row of twenty fields in two
//! systems is about a third of the spelled-out record.
//!
//! [`EntityJson`] writes it without building the `EntityRecord`: values are
//! read in place from the compact encoding, nothing is decoded into a
//! `serde_json::Value` and no field name is copied. [`decode`] reads a row
//! back. Rows are only ever read through [`decode`], so the format can
//! grow: unknown keys are ignored.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::baseline::{
    Baseline, DeleteReview, Entity, EntityId, EntityRecord, Held, LinkRecord, Observed,
    Unconfirmed, ValuesView,
};
use crate::codec::{get_bytes, get_value, ValueRef};
use crate::model::SystemId;

/// Serializes like the entity's `EntityRecord`.
pub(crate) struct EntityJson<'a> {
    baseline: &'a Baseline,
    entity: &'a Entity,
    view: ValuesView<'a>,
}

impl<'a> EntityJson<'a> {
    /// The entity `id`, if the baseline has it.
    pub(crate) fn new(baseline: &'a Baseline, id: &EntityId) -> Option<Self> {
        let entity = baseline
            .find_entity(id)
            .and_then(|slot| baseline.entity_at(slot))?;
        Some(EntityJson {
            baseline,
            entity,
            view: entity.view(),
        })
    }

    fn system(&self, s: usize) -> &'a str {
        self.baseline
            .systems()
            .get(s)
            .map_or("", |s: &SystemId| s.as_str())
    }

    fn field(&self, f: usize) -> &'a str {
        self.baseline.fields().get(f).map_or("", String::as_str)
    }

    /// The shadows that differ from the canonical value, by system slot
    /// (sorted by system name), each in field slot order.
    fn overrides(&self) -> Vec<OverrideRow<'a>> {
        let mut by_system: Vec<OverrideRow<'a>> = Vec::new();
        for (s, f, v) in &self.view.overrides {
            let (s, f) = (*s as usize, *f as usize);
            match by_system.iter_mut().find(|(os, _)| *os == s) {
                Some((_, row)) => row.push((f, *v)),
                None => by_system.push((s, vec![(f, *v)])),
            }
        }
        by_system.sort_by(|a, b| self.system(a.0).cmp(self.system(b.0)));
        for (_, row) in &mut by_system {
            row.sort_by_key(|(f, _)| *f);
        }
        by_system
    }
}

impl Serialize for EntityJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = self.entity.extra.as_deref();
        let held = extra.map_or(&[][..], |x| &x.held[..]);
        let pending = extra.map_or(&[][..], |x| &x.pending[..]);
        let delete = extra.and_then(|x| x.delete.as_ref());
        let mut st = serializer.serialize_struct("EntityRow", 12)?;
        st.serialize_field("id", &self.entity.id)?;
        st.serialize_field("links", &Links(self))?;
        st.serialize_field("canonical", &Canonical(self))?;
        let overrides = self.overrides();
        if overrides
            .iter()
            .any(|(_, row)| row.iter().any(|(_, v)| v.is_some()))
        {
            st.serialize_field("shadows", &Overrides(self, &overrides, true))?;
        } else {
            st.skip_field("shadows")?;
        }
        if overrides
            .iter()
            .any(|(_, row)| row.iter().any(|(_, v)| v.is_none()))
        {
            st.serialize_field("absent", &Overrides(self, &overrides, false))?;
        } else {
            st.skip_field("absent")?;
        }
        if !held.is_empty() {
            let map: IndexMap<&str, &Held> = held
                .iter()
                .map(|(f, h)| (self.field(*f as usize), h))
                .collect();
            st.serialize_field("held", &map)?;
        } else {
            st.skip_field("held")?;
        }
        if !pending.is_empty() {
            let mut map: BTreeMap<&str, IndexMap<&str, &Observed>> = BTreeMap::new();
            for (s, f, o) in pending {
                map.entry(self.system(*s as usize))
                    .or_default()
                    .insert(self.field(*f as usize), o);
            }
            st.serialize_field("pending", &map)?;
        } else {
            st.skip_field("pending")?;
        }
        match delete {
            Some(d) => st.serialize_field("delete_review", d)?,
            None => st.skip_field("delete_review")?,
        }
        if self.entity.unsettled {
            st.serialize_field("unsettled", &true)?;
        } else {
            st.skip_field("unsettled")?;
        }
        let unconfirmed = extra.map_or(&[][..], |x| &x.unconfirmed[..]);
        if unconfirmed.is_empty() {
            st.skip_field("unconfirmed")?;
        } else {
            let map: BTreeMap<&str, Unconfirmed> = unconfirmed
                .iter()
                .map(|(s, a)| (self.system(*s as usize), a.to_plain(self.baseline.fields())))
                .collect();
            st.serialize_field("unconfirmed", &map)?;
        }
        let rewritten = extra.map_or(&[][..], |x| &x.rewritten[..]);
        if rewritten.is_empty() {
            st.skip_field("rewritten")?;
        } else {
            let mut map: BTreeMap<&str, IndexMap<&str, &Value>> = BTreeMap::new();
            for (s, f, v) in rewritten {
                map.entry(self.system(*s as usize))
                    .or_default()
                    .insert(self.field(*f as usize), v);
            }
            st.serialize_field("rewritten", &map)?;
        }
        let undone = extra.map_or(&[][..], |x| &x.undone[..]);
        if undone.is_empty() {
            st.skip_field("undone")?;
        } else {
            let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (s, id) in undone {
                map.entry(self.system(*s as usize)).or_default().push(id);
            }
            st.serialize_field("undone", &map)?;
        }
        st.end()
    }
}

struct Links<'e, 'a>(&'e EntityJson<'a>);

impl Serialize for Links<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut links: Vec<(&str, LinkRecord)> = e
            .entity
            .links
            .iter()
            .enumerate()
            .filter_map(|(s, l)| {
                let l = l.as_ref()?;
                Some((
                    e.system(s),
                    LinkRecord {
                        id: l.id.to_string(),
                        version: l.version.as_deref().map(str::to_owned),
                        hash: l.hash,
                        status: l.status,
                    },
                ))
            })
            .collect();
        links.sort_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(links.len()))?;
        for (system, link) in &links {
            map.serialize_entry(system, link)?;
        }
        map.end()
    }
}

struct Canonical<'e, 'a>(&'e EntityJson<'a>);

impl Serialize for Canonical<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = serializer.serialize_map(None)?;
        for (f, v) in e.view.canonical.iter().enumerate() {
            if let Some(v) = v {
                map.serialize_entry(e.field(f), &Val(*v))?;
            }
        }
        map.end()
    }
}

/// One system's differing shadows: (system slot, [(field slot, value or
/// absent)]).
type OverrideRow<'a> = (usize, Vec<(usize, Option<ValueRef<'a>>)>);
type OverrideRows<'a> = [OverrideRow<'a>];

/// `"shadows"` (`values`: the differing values, by system then field) or
/// `"absent"` (the fields a system lacks, by system).
struct Overrides<'e, 'a>(&'e EntityJson<'a>, &'e OverrideRows<'a>, bool);

impl Serialize for Overrides<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (e, rows, values) = (self.0, self.1, self.2);
        let mut map = serializer.serialize_map(None)?;
        for (s, row) in rows {
            if values {
                if row.iter().any(|(_, v)| v.is_some()) {
                    map.serialize_entry(e.system(*s), &Present(e, row))?;
                }
            } else if row.iter().any(|(_, v)| v.is_none()) {
                map.serialize_entry(e.system(*s), &Absent(e, row))?;
            }
        }
        map.end()
    }
}

struct Present<'e, 'a>(&'e EntityJson<'a>, &'e [(usize, Option<ValueRef<'a>>)]);

impl Serialize for Present<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (f, v) in self.1 {
            if let Some(v) = v {
                map.serialize_entry(self.0.field(*f), &Val(*v))?;
            }
        }
        map.end()
    }
}

struct Absent<'e, 'a>(&'e EntityJson<'a>, &'e [(usize, Option<ValueRef<'a>>)]);

impl Serialize for Absent<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for (f, v) in self.1 {
            if v.is_none() {
                seq.serialize_element(self.0.field(*f))?;
            }
        }
        seq.end()
    }
}

/// A value read in place, serialized as its `serde_json::Value` would be.
struct Val<'a>(ValueRef<'a>);

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ValueRef::Null => serializer.serialize_unit(),
            ValueRef::Bool(b) => serializer.serialize_bool(b),
            ValueRef::Uint(u) => serializer.serialize_u64(u),
            ValueRef::Neg(i) => serializer.serialize_i64(i),
            // A float that is not finite has no JSON number: `Value` holds
            // it as null.
            ValueRef::Float(f) if f.is_finite() => serializer.serialize_f64(f),
            ValueRef::Float(_) => serializer.serialize_unit(),
            ValueRef::Str(_) => serializer.serialize_str(self.0.as_str().unwrap_or_default()),
            ValueRef::Array(items, count) => {
                let mut seq = serializer.serialize_seq(usize::try_from(count).ok())?;
                let mut pos = 0;
                for _ in 0..count {
                    match get_value(items, &mut pos) {
                        Some(v) => seq.serialize_element(&Val(v))?,
                        None => seq.serialize_element(&Val(ValueRef::Null))?,
                    }
                }
                seq.end()
            }
            ValueRef::Object(items, count) => {
                let mut map = serializer.serialize_map(usize::try_from(count).ok())?;
                let mut pos = 0;
                for _ in 0..count {
                    let key = get_bytes(items, &mut pos)
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .unwrap_or_default();
                    let v = get_value(items, &mut pos).unwrap_or(ValueRef::Null);
                    map.serialize_entry(key, &Val(v))?;
                }
                map.end()
            }
        }
    }
}

/// A row as stored: [`EntityRecord`]'s fields, shadows as overrides.
#[derive(Deserialize)]
struct StoredRow {
    id: EntityId,
    links: BTreeMap<SystemId, LinkRecord>,
    #[serde(default)]
    canonical: IndexMap<String, Value>,
    #[serde(default)]
    shadows: BTreeMap<SystemId, IndexMap<String, Value>>,
    #[serde(default)]
    absent: BTreeMap<SystemId, Vec<String>>,
    #[serde(default)]
    held: IndexMap<String, Held>,
    #[serde(default)]
    pending: BTreeMap<SystemId, IndexMap<String, Observed>>,
    #[serde(default)]
    delete_review: Option<DeleteReview>,
    #[serde(default)]
    unsettled: bool,
    #[serde(default)]
    unconfirmed: BTreeMap<SystemId, Unconfirmed>,
    #[serde(default)]
    rewritten: BTreeMap<SystemId, IndexMap<String, Value>>,
    #[serde(default)]
    undone: BTreeMap<SystemId, Vec<String>>,
}

/// Reads a row written by [`EntityJson`] back as the entity's record.
pub(crate) fn decode(bytes: &[u8]) -> serde_json::Result<EntityRecord> {
    let row: StoredRow = serde_json::from_slice(bytes)?;
    let mut shadows: BTreeMap<SystemId, IndexMap<String, Value>> = BTreeMap::new();
    // Every linked system has a shadow row, as does every system with a
    // shadow that differs.
    for s in row
        .links
        .keys()
        .chain(row.shadows.keys())
        .chain(row.absent.keys())
    {
        if !shadows.contains_key(s) {
            shadows.insert(s.clone(), row.canonical.clone());
        }
    }
    for (s, values) in row.shadows {
        if let Some(shadow) = shadows.get_mut(&s) {
            shadow.extend(values);
        }
    }
    for (s, fields) in row.absent {
        if let Some(shadow) = shadows.get_mut(&s) {
            for f in fields {
                shadow.shift_remove(&f);
            }
        }
    }
    Ok(EntityRecord {
        id: row.id,
        links: row.links,
        canonical: row.canonical,
        shadows,
        held: row.held,
        pending: row.pending,
        delete_review: row.delete_review,
        unsettled: row.unsettled,
        unconfirmed: row.unconfirmed,
        rewritten: row.rewritten,
        undone: row.undone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{BaselineHeader, LinkStatus};
    use serde_json::json;

    fn values() -> Vec<Value> {
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(u64::MAX),
            json!(-17),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.25e-7),
            json!(1e300),
            json!(""),
            json!("Zoë \"quoted\" \\ \n\t \u{1F600}"),
            json!([]),
            json!([1, "two", [3.5, null], {"k": false}]),
            json!({}),
            json!({"b": 1, "a": [true], "nested": {"z": "y", "c": null}}),
        ]
    }

    fn record(i: usize) -> EntityRecord {
        let vals = values();
        let mut r = EntityRecord {
            id: EntityId::new(format!("crm:{i}")),
            unsettled: i.is_multiple_of(3),
            ..EntityRecord::default()
        };
        let fields = ["email", "name", "score", "tags", "notes", "misc"];
        for (k, f) in fields.iter().enumerate() {
            if !(i + k).is_multiple_of(5) {
                r.canonical
                    .insert((*f).to_owned(), vals[(i + k) % vals.len()].clone());
            }
        }
        for (s, system) in ["crm", "mkt", "erp"].iter().enumerate() {
            if (i + s) % 4 == 3 {
                continue;
            }
            r.links.insert(
                SystemId::new(*system),
                LinkRecord {
                    id: format!("{system}-{i}"),
                    version: i.is_multiple_of(2).then(|| format!("v{i}")),
                    hash: (i * 31 + s) as u64 % 3,
                    status: if i % 7 == s {
                        LinkStatus::Deleted
                    } else {
                        LinkStatus::Active
                    },
                },
            );
            let mut row = r.canonical.clone();
            if (i + s).is_multiple_of(2) {
                row.insert("score".into(), vals[(i * 7 + s) % vals.len()].clone());
                row.shift_remove("name");
            }
            r.shadows.insert(SystemId::new(*system), row);
        }
        if i % 4 == 1 {
            // A shadow row for a system with no link.
            let mut row = IndexMap::new();
            row.insert("misc".to_owned(), json!("only here"));
            r.shadows.insert(SystemId::new("old"), row);
            r.pending.entry(SystemId::new("mkt")).or_default().insert(
                "notes".into(),
                Observed {
                    value: json!("seen"),
                    changed_at: None,
                },
            );
        }
        if i % 6 == 4 {
            r.rewritten
                .entry(SystemId::new("erp"))
                .or_default()
                .insert("name".into(), vals[i % vals.len()].clone());
        }
        if i % 5 == 2 {
            r.held.insert(
                "score".into(),
                Held {
                    conflict: None,
                    observed: BTreeMap::new(),
                    resolution: Some(json!(7)),
                },
            );
        }
        r
    }

    #[test]
    fn rows_read_back_as_the_exported_record() {
        let b = Baseline::from_parts(BaselineHeader::default(), (0..60).map(record)).unwrap();
        let (mut rows, mut full) = (0, 0);
        for e in b.entities() {
            let expected = e.to_record();
            let row = serde_json::to_vec(&EntityJson::new(&b, e.id()).unwrap()).unwrap();
            let back = decode(&row).unwrap();
            assert_eq!(back, expected, "entity {}", e.id());
            rows += row.len();
            full += serde_json::to_vec(&expected).unwrap().len();
        }
        assert!(rows < full, "{rows} >= {full}");
        assert!(EntityJson::new(&b, &EntityId::new("nope")).is_none());
    }

    #[test]
    fn a_bad_row_is_an_error_with_its_place() {
        let err = decode(br#"{"id": "crm:1", "links": {"crm": 7}}"#).unwrap_err();
        assert_eq!((err.line(), err.column() > 0), (1, true), "{err}");
    }
}

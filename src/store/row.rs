//! One entity as the JSON of its [`EntityRecord`], written straight from the
//! baseline's compact in-memory form.
//!
//! `serde_json::to_vec(&baseline.export(id))` builds an `EntityRecord` first:
//! every value decoded into a `serde_json::Value`, every shadow spelled out
//! and every field name copied, only to be serialized and dropped. Stores
//! that write entities one by one write the same bytes from [`EntityJson`]
//! without those allocations, reading values in place. The output is
//! byte-for-byte what serializing the exported record gives (the tests
//! check it), so rows read back through `EntityRecord`'s `Deserialize`.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::baseline::{Baseline, Entity, EntityId, Held, LinkRecord, Observed, ValuesView};
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

    /// System slots that have a shadow row, sorted by system name: those
    /// linked, and those with a shadow that differs from the canonical value.
    fn shadow_systems(&self) -> Vec<usize> {
        let mut slots: Vec<usize> = self
            .entity
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_some())
            .map(|(s, _)| s)
            .collect();
        for (s, _, _) in &self.view.overrides {
            let s = *s as usize;
            if !slots.contains(&s) {
                slots.push(s);
            }
        }
        slots.sort_by(|a, b| self.system(*a).cmp(self.system(*b)));
        slots
    }

    fn shadow(&self, s: usize, f: usize) -> Option<ValueRef<'a>> {
        match self
            .view
            .overrides
            .iter()
            .find(|(os, of, _)| *os as usize == s && *of as usize == f)
        {
            Some((_, _, v)) => *v,
            None => self.view.canonical.get(f).copied().flatten(),
        }
    }

    /// The highest field slot a shadow row of `s` can have, plus one.
    fn row_len(&self, s: usize) -> usize {
        let overrides = self
            .view
            .overrides
            .iter()
            .filter(|(os, _, _)| *os as usize == s)
            .map(|(_, f, _)| *f as usize + 1)
            .max()
            .unwrap_or(0);
        overrides.max(self.view.canonical.len())
    }
}

impl Serialize for EntityJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = self.entity.extra.as_deref();
        let held = extra.map_or(&[][..], |x| &x.held[..]);
        let pending = extra.map_or(&[][..], |x| &x.pending[..]);
        let delete = extra.and_then(|x| x.delete.as_ref());
        let mut st = serializer.serialize_struct("EntityRecord", 8)?;
        st.serialize_field("id", &self.entity.id)?;
        st.serialize_field("links", &Links(self))?;
        st.serialize_field("canonical", &Canonical(self))?;
        st.serialize_field("shadows", &Shadows(self))?;
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

struct Shadows<'e, 'a>(&'e EntityJson<'a>);

impl Serialize for Shadows<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let systems = e.shadow_systems();
        let mut map = serializer.serialize_map(Some(systems.len()))?;
        for s in systems {
            map.serialize_entry(e.system(s), &Row(e, s))?;
        }
        map.end()
    }
}

struct Row<'e, 'a>(&'e EntityJson<'a>, usize);

impl Serialize for Row<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (e, s) = (self.0, self.1);
        let mut map = serializer.serialize_map(None)?;
        for f in 0..e.row_len(s) {
            if let Some(v) = e.shadow(s, f) {
                map.serialize_entry(e.field(f), &Val(v))?;
            }
        }
        map.end()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{BaselineHeader, EntityRecord, LinkStatus};
    use serde_json::{json, Value};

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
            unsettled: i % 3 == 0,
            ..EntityRecord::default()
        };
        let fields = ["email", "name", "score", "tags", "notes", "misc"];
        for (k, f) in fields.iter().enumerate() {
            if (i + k) % 5 != 0 {
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
                    version: (i % 2 == 0).then(|| format!("v{i}")),
                    hash: (i * 31 + s) as u64 % 3,
                    status: if i % 7 == s {
                        LinkStatus::Deleted
                    } else {
                        LinkStatus::Active
                    },
                },
            );
            let mut row = r.canonical.clone();
            if (i + s) % 2 == 0 {
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
    fn writes_the_bytes_of_the_exported_record() {
        let b = Baseline::from_parts(BaselineHeader::default(), (0..60).map(record)).unwrap();
        for e in b.entities() {
            let expected = serde_json::to_vec(&e.to_record()).unwrap();
            let direct = serde_json::to_vec(&EntityJson::new(&b, e.id()).unwrap()).unwrap();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                String::from_utf8(expected).unwrap(),
                "entity {}",
                e.id()
            );
        }
        assert!(EntityJson::new(&b, &EntityId::new("nope")).is_none());
    }
}

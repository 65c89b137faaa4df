//! One entity as the baseline keeps it in memory.
//!
//! The canonical values and the shadows are one byte buffer: the canonical
//! section lists `(field slot, value)` pairs; the override section lists,
//! per system, only the shadows that differ from the canonical value (a
//! system that holds what was synced costs nothing). Slots index the
//! baseline's tables of system and field names.

use indexmap::IndexMap;
use serde_json::Value;

use super::{
    DeleteReview, EntityId, EntityRecord, Held, LinkRecord, LinkStatus, Observed, Unconfirmed,
};
use crate::codec::{self, get_slot, get_value, get_varint, put_value, put_varint, ValueRef};
use crate::ids::OpKind;
use crate::model::SystemId;

use super::Text;

/// An entity's link to one system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkState {
    /// Short ids and versions are kept in place: the compares of a plan's
    /// lookups read no other cache line.
    pub(crate) id: Text,
    pub(crate) version: Option<Text>,
    /// Content hash of the record as last seen; 0 when not known.
    pub(crate) hash: u64,
    pub(crate) status: LinkStatus,
}

impl LinkState {
    pub(crate) fn active(id: Text, version: Option<Text>, hash: u64) -> Self {
        LinkState {
            id,
            version,
            hash,
            status: LinkStatus::Active,
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.status == LinkStatus::Active
    }
}

/// A write reported applied that no read has confirmed yet
/// ([`Unconfirmed`], kept compact).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Awaiting {
    pub(crate) kind: OpKind,
    pub(crate) version: Option<Text>,
    pub(crate) version_before: Option<Text>,
    /// The fields written and what the record held before: a count, then
    /// per field its slot and the value (or [`codec::ABSENT`]).
    before: Box<[u8]>,
    pub(crate) attempts: u32,
    /// The write was planned again because a plan found it not made.
    pub(crate) redone: bool,
}

impl Awaiting {
    pub(crate) fn new(
        kind: OpKind,
        version: Option<&str>,
        version_before: Option<&str>,
        before: &[(u32, Option<&Value>)],
        attempts: u32,
    ) -> Self {
        let mut a = Awaiting {
            kind,
            version: version.map(Text::new),
            version_before: version_before.map(Text::new),
            before: Box::new([]),
            attempts,
            // Made with attempts only when planned again after a plan found
            // it not made (see `commit`).
            redone: attempts > 0,
        };
        a.set_before(before);
        a
    }

    fn set_before(&mut self, before: &[(u32, Option<&Value>)]) {
        let mut out = Vec::new();
        put_varint(&mut out, before.len() as u64);
        for (f, v) in before {
            put_varint(&mut out, u64::from(*f));
            match v {
                // Empty is empty: a null kept is the same as none.
                Some(v) if !v.is_null() => put_value(&mut out, v),
                _ => out.push(codec::ABSENT),
            }
        }
        self.before = out.into_boxed_slice();
    }

    /// The fields written (by field slot), with what the record held
    /// before.
    pub(crate) fn before(&self) -> Vec<(u32, Option<ValueRef<'_>>)> {
        let bytes = &self.before;
        let mut out = Vec::new();
        let mut pos = 0;
        let n = get_varint(bytes, &mut pos).unwrap_or(0);
        for _ in 0..n {
            let Some(f) = get_varint(bytes, &mut pos).and_then(|f| u32::try_from(f).ok()) else {
                break;
            };
            let Some(v) = get_slot(bytes, &mut pos) else {
                break;
            };
            out.push((f, v));
        }
        out
    }

    /// A later write to the same record while this one is unconfirmed: the
    /// kind of the first (a create stays a create), the value each field
    /// held before the first write that wrote it, the newest version.
    pub(crate) fn merge(&mut self, later: Awaiting) {
        let mut before: Vec<(u32, Option<Value>)> = self
            .before()
            .into_iter()
            .map(|(f, v)| (f, v.map(ValueRef::to_value)))
            .collect();
        for (f, v) in later.before() {
            if !before.iter().any(|(x, _)| *x == f) {
                before.push((f, v.map(ValueRef::to_value)));
            }
        }
        if self.kind == OpKind::Update || later.kind == OpKind::Delete {
            self.kind = later.kind;
        }
        self.version = later.version;
        self.attempts = self.attempts.max(later.attempts);
        self.redone = later.redone;
        let refs: Vec<(u32, Option<&Value>)> =
            before.iter().map(|(f, v)| (*f, v.as_ref())).collect();
        self.set_before(&refs);
    }

    /// Forgets the fields a later write, seen made, wrote again; whether
    /// any field is still awaited.
    pub(crate) fn forget(&mut self, written: &[u32]) -> bool {
        let kept: Vec<(u32, Option<Value>)> = self
            .before()
            .into_iter()
            .filter(|(f, _)| !written.contains(f))
            .map(|(f, v)| (f, v.map(ValueRef::to_value)))
            .collect();
        let refs: Vec<(u32, Option<&Value>)> = kept.iter().map(|(f, v)| (*f, v.as_ref())).collect();
        self.set_before(&refs);
        !kept.is_empty()
    }

    pub(crate) fn to_plain(&self, fields: &[String]) -> Unconfirmed {
        Unconfirmed {
            kind: self.kind,
            version: self.version.as_deref().map(str::to_owned),
            version_before: self.version_before.as_deref().map(str::to_owned),
            before: self
                .before()
                .into_iter()
                .map(|(f, v)| {
                    (
                        fields.get(f as usize).cloned().unwrap_or_default(),
                        v.map(ValueRef::to_value),
                    )
                })
                .collect(),
            attempts: self.attempts,
            redone: self.redone,
        }
    }

    fn from_plain(u: Unconfirmed, field: impl Fn(&str) -> usize) -> Self {
        let before: Vec<(u32, Option<&Value>)> = u
            .before
            .iter()
            .map(|(name, v)| (field(name) as u32, v.as_ref()))
            .collect();
        let mut a = Awaiting::new(
            u.kind,
            u.version.as_deref(),
            u.version_before.as_deref(),
            &before,
            u.attempts,
        );
        a.redone = u.redone;
        a
    }
}

/// What only some entities have.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Extra {
    /// Held fields by field slot.
    pub(crate) held: Vec<(u32, Held)>,
    /// Values seen in skipped records: (system slot, field slot, observed).
    pub(crate) pending: Vec<(u32, u32, Observed)>,
    /// A delete held for review.
    pub(crate) delete: Option<DeleteReview>,
    /// Writes not confirmed yet, by system slot.
    pub(crate) unconfirmed: Vec<(u32, Awaiting)>,
    /// Fields a system stores in its own form of what recsync wrote: system
    /// slot, field slot, the value written (the shadow holds the stored
    /// form). Needs no plan's attention.
    pub(crate) rewritten: Vec<(u32, u32, Value)>,
    /// Records an undo deleted that were created for this entity: system
    /// slot, record id. Their tombstones carry the entity's id as their
    /// correlation key and are not the entity's record deleted. Kept until
    /// the entity has a live record in that system again. Needs no plan's
    /// attention.
    pub(crate) undone: Vec<(u32, String)>,
}

impl Extra {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
            && self.pending.is_empty()
            && self.delete.is_none()
            && self.unconfirmed.is_empty()
            && self.rewritten.is_empty()
            && self.undone.is_empty()
    }

    /// Whether record `id` of system slot `system` was created for this
    /// entity and deleted by an undo.
    pub(crate) fn undone(&self, system: u32, id: &str) -> bool {
        self.undone.iter().any(|(s, r)| *s == system && r == id)
    }

    /// Whether something here needs the next plan to look at the entity:
    /// anything but what was written where a system rewrote it.
    pub(crate) fn wants_plan(&self) -> bool {
        !(self.held.is_empty()
            && self.pending.is_empty()
            && self.delete.is_none()
            && self.unconfirmed.is_empty())
    }

    /// The value recsync wrote to field slot `field` of system slot
    /// `system`, where the system holds it in another form.
    pub(crate) fn rewritten(&self, system: u32, field: u32) -> Option<&Value> {
        self.rewritten
            .iter()
            .find(|(s, f, _)| *s == system && *f == field)
            .map(|(_, _, v)| v)
    }

    pub(crate) fn held(&self, field: u32) -> Option<&Held> {
        self.held.iter().find(|(f, _)| *f == field).map(|(_, h)| h)
    }

    pub(crate) fn pending(&self, system: u32, field: u32) -> Option<&Observed> {
        self.pending
            .iter()
            .find(|(s, f, _)| *s == system && *f == field)
            .map(|(_, _, o)| o)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entity {
    pub(crate) id: EntityId,
    /// By system slot.
    pub(crate) links: Box<[Option<LinkState>]>,
    /// Encoded canonical values and shadow overrides.
    pub(crate) values: Box<[u8]>,
    pub(crate) extra: Option<Box<Extra>>,
    pub(crate) unsettled: bool,
}

impl Entity {
    pub(crate) fn new(id: EntityId) -> Self {
        Entity {
            id,
            links: Box::new([]),
            values: encode(&OwnedValues::default()),
            extra: None,
            unsettled: false,
        }
    }

    pub(crate) fn link(&self, s: usize) -> Option<&LinkState> {
        self.links.get(s).and_then(Option::as_ref)
    }

    /// Sets the link in slot `s`; returns the old one.
    pub(crate) fn set_link(&mut self, s: usize, link: Option<LinkState>) -> Option<LinkState> {
        if s >= self.links.len() {
            link.as_ref()?;
            let mut v = std::mem::take(&mut self.links).into_vec();
            v.resize(s + 1, None);
            self.links = v.into_boxed_slice();
        }
        std::mem::replace(&mut self.links[s], link)
    }

    pub(crate) fn view(&self) -> ValuesView<'_> {
        ValuesView::new(&self.values)
    }

    pub(crate) fn owned_values(&self) -> OwnedValues {
        let view = self.view();
        let canonical: Vec<Option<Value>> = view
            .canonical
            .iter()
            .map(|v| v.map(ValueRef::to_value))
            .collect();
        let mut shadows: Vec<Option<Vec<Option<Value>>>> = vec![None; self.links.len()];
        for (s, l) in self.links.iter().enumerate() {
            if l.is_some() {
                shadows[s] = Some(canonical.clone());
            }
        }
        for (s, f, v) in &view.overrides {
            let (s, f) = (*s as usize, *f as usize);
            if s >= shadows.len() {
                shadows.resize(s + 1, None);
            }
            let row = shadows[s].get_or_insert_with(|| canonical.clone());
            if f >= row.len() {
                row.resize(f + 1, None);
            }
            row[f] = v.map(ValueRef::to_value);
        }
        OwnedValues { canonical, shadows }
    }

    pub(crate) fn set_values(&mut self, values: &OwnedValues) {
        self.values = encode(values);
    }

    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Drops the extra part when nothing is in it.
    pub(crate) fn tidy(&mut self) {
        if self.extra.as_ref().is_some_and(|x| x.is_empty()) {
            self.extra = None;
        }
    }

    pub(crate) fn needs_attention(&self) -> bool {
        self.unsettled || self.extra.as_ref().is_some_and(|x| x.wants_plan())
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let links: usize = self
            .links
            .iter()
            .flatten()
            .map(|l| l.id.heap_len() + l.version.as_ref().map_or(0, Text::heap_len))
            .sum();
        self.id.as_str().len()
            + std::mem::size_of_val(&*self.links)
            + links
            + self.values.len()
            + self
                .extra
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<Extra>())
    }

    pub(crate) fn to_record(&self, systems: &[SystemId], fields: &[String]) -> EntityRecord {
        let sys = |s: usize| systems.get(s).cloned().unwrap_or_default();
        let field = |f: usize| fields.get(f).cloned().unwrap_or_default();
        let mut record = EntityRecord {
            id: self.id.clone(),
            unsettled: self.unsettled,
            ..EntityRecord::default()
        };
        for (s, l) in self.links.iter().enumerate() {
            if let Some(l) = l {
                record.links.insert(
                    sys(s),
                    LinkRecord {
                        id: l.id.to_string(),
                        version: l.version.as_deref().map(str::to_owned),
                        hash: l.hash,
                        status: l.status,
                    },
                );
            }
        }
        let owned = self.owned_values();
        for (f, v) in owned.canonical.iter().enumerate() {
            if let Some(v) = v {
                record.canonical.insert(field(f), v.clone());
            }
        }
        for (s, row) in owned.shadows.iter().enumerate() {
            let Some(row) = row else { continue };
            let out: IndexMap<String, Value> = row
                .iter()
                .enumerate()
                .filter_map(|(f, v)| Some((field(f), v.clone()?)))
                .collect();
            record.shadows.insert(sys(s), out);
        }
        if let Some(x) = &self.extra {
            for (f, h) in &x.held {
                record.held.insert(field(*f as usize), h.clone());
            }
            for (s, f, o) in &x.pending {
                record
                    .pending
                    .entry(sys(*s as usize))
                    .or_default()
                    .insert(field(*f as usize), o.clone());
            }
            record.delete_review = x.delete.clone();
            for (s, a) in &x.unconfirmed {
                record
                    .unconfirmed
                    .insert(sys(*s as usize), a.to_plain(fields));
            }
            for (s, f, v) in &x.rewritten {
                record
                    .rewritten
                    .entry(sys(*s as usize))
                    .or_default()
                    .insert(field(*f as usize), v.clone());
            }
            for (s, id) in &x.undone {
                record
                    .undone
                    .entry(sys(*s as usize))
                    .or_default()
                    .push(id.clone());
            }
        }
        record
    }

    /// Builds an entity from its plain form; every system and field it names
    /// must be in `systems` and `fields` already.
    pub(crate) fn from_record(
        record: EntityRecord,
        systems: &[SystemId],
        fields: &[String],
    ) -> Self {
        let sys = |name: &SystemId| systems.iter().position(|s| s == name).unwrap_or(0);
        let field = |name: &str| fields.iter().position(|f| f == name).unwrap_or(0);
        let mut entity = Entity::new(record.id);
        for (name, l) in record.links {
            entity.set_link(
                sys(&name),
                Some(LinkState {
                    id: l.id.into(),
                    version: l.version.map(Text::from),
                    hash: l.hash,
                    status: l.status,
                }),
            );
        }
        let mut owned = OwnedValues::default();
        for (name, v) in record.canonical {
            owned.set_canonical(field(&name), Some(v));
        }
        for (name, row) in record.shadows {
            let s = sys(&name);
            owned.ensure_system(s);
            for (fname, v) in row {
                owned.set_shadow(s, field(&fname), Some(v));
            }
        }
        // A linked system without a shadow row holds nothing known.
        for (s, l) in entity.links.iter().enumerate() {
            if l.is_some() {
                owned.ensure_system(s);
            }
        }
        entity.set_values(&owned);
        let mut extra = Extra::default();
        for (name, h) in record.held {
            extra.held.push((field(&name) as u32, h));
        }
        for (name, row) in record.pending {
            let s = sys(&name) as u32;
            for (fname, o) in row {
                extra.pending.push((s, field(&fname) as u32, o));
            }
        }
        extra.delete = record.delete_review;
        for (name, u) in record.unconfirmed {
            let s = sys(&name) as u32;
            extra.unconfirmed.push((s, Awaiting::from_plain(u, field)));
        }
        for (name, row) in record.rewritten {
            let s = sys(&name) as u32;
            for (fname, v) in row {
                extra.rewritten.push((s, field(&fname) as u32, v));
            }
        }
        for (name, ids) in record.undone {
            let s = sys(&name) as u32;
            extra.undone.extend(ids.into_iter().map(|id| (s, id)));
        }
        if !extra.is_empty() {
            entity.extra = Some(Box::new(extra));
        }
        entity.unsettled = record.unsettled;
        entity
    }
}

/// An entity's values read in place.
#[derive(Debug, Clone, Default)]
pub(crate) struct ValuesView<'a> {
    /// By field slot.
    pub(crate) canonical: Vec<Option<ValueRef<'a>>>,
    /// (system slot, field slot, shadow) where the shadow differs.
    pub(crate) overrides: Vec<(u32, u32, Option<ValueRef<'a>>)>,
}

impl<'a> ValuesView<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        let mut view = ValuesView::default();
        // Buffers are written by `encode` or checked on import: a read that
        // fails stops early rather than panics.
        let _ = view.read(bytes);
        view
    }

    fn read(&mut self, bytes: &'a [u8]) -> Option<()> {
        let mut pos = 0;
        let n = get_varint(bytes, &mut pos)?;
        // Fields are stored by slot, mostly every slot from 0.
        self.canonical
            .reserve(usize::try_from(n).unwrap_or(0).min(bytes.len()));
        for _ in 0..n {
            let f = usize::try_from(get_varint(bytes, &mut pos)?).ok()?;
            let v = get_value(bytes, &mut pos)?;
            if f >= self.canonical.len() {
                self.canonical.resize(f + 1, None);
            }
            self.canonical[f] = Some(v);
        }
        let m = get_varint(bytes, &mut pos)?;
        for _ in 0..m {
            let s = u32::try_from(get_varint(bytes, &mut pos)?).ok()?;
            let k = get_varint(bytes, &mut pos)?;
            for _ in 0..k {
                let f = u32::try_from(get_varint(bytes, &mut pos)?).ok()?;
                let v = get_slot(bytes, &mut pos)?;
                self.overrides.push((s, f, v));
            }
        }
        Some(())
    }

    pub(crate) fn canonical(&self, f: usize) -> Option<ValueRef<'a>> {
        self.canonical.get(f).copied().flatten()
    }

    pub(crate) fn shadow(&self, s: usize, f: usize) -> Option<ValueRef<'a>> {
        match self
            .overrides
            .iter()
            .find(|(os, of, _)| *os as usize == s && *of as usize == f)
        {
            Some((_, _, v)) => *v,
            None => self.canonical(f),
        }
    }
}

/// An entity's values, owned and fully spelled out, for commit to change.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct OwnedValues {
    /// By field slot.
    pub(crate) canonical: Vec<Option<Value>>,
    /// By system slot: the system's shadows by field slot, for systems the
    /// entity is or was linked in.
    pub(crate) shadows: Vec<Option<Vec<Option<Value>>>>,
}

impl OwnedValues {
    pub(crate) fn set_canonical(&mut self, f: usize, v: Option<Value>) {
        if f >= self.canonical.len() {
            self.canonical.resize(f + 1, None);
        }
        self.canonical[f] = v;
    }

    /// Gives system `s` a row of shadows, all absent, if it has none: a
    /// system newly linked holds nothing recsync knows of yet.
    pub(crate) fn ensure_system(&mut self, s: usize) {
        if s >= self.shadows.len() {
            self.shadows.resize(s + 1, None);
        }
        if self.shadows[s].is_none() {
            self.shadows[s] = Some(vec![None; self.canonical.len()]);
        }
    }

    pub(crate) fn set_shadow(&mut self, s: usize, f: usize, v: Option<Value>) {
        self.ensure_system(s);
        if let Some(row) = self.shadows[s].as_mut() {
            if f >= row.len() {
                row.resize(f + 1, None);
            }
            row[f] = v;
        }
    }

    /// Forgets a system's shadows (its link is gone).
    pub(crate) fn drop_system(&mut self, s: usize) {
        if let Some(row) = self.shadows.get_mut(s) {
            *row = None;
        }
    }

    pub(crate) fn shadow(&self, s: usize, f: usize) -> Option<&Value> {
        self.shadows
            .get(s)
            .and_then(Option::as_ref)
            .and_then(|row| row.get(f))
            .and_then(Option::as_ref)
    }
}

/// Encodes values: canonical values, then the shadows that differ.
pub(crate) fn encode(values: &OwnedValues) -> Box<[u8]> {
    let mut out = Vec::with_capacity(64);
    let present = values.canonical.iter().filter(|v| v.is_some()).count();
    put_varint(&mut out, present as u64);
    for (f, v) in values.canonical.iter().enumerate() {
        if let Some(v) = v {
            put_varint(&mut out, f as u64);
            put_value(&mut out, v);
        }
    }
    let differing = |row: &Vec<Option<Value>>| -> Vec<usize> {
        let len = row.len().max(values.canonical.len());
        (0..len)
            .filter(|f| {
                row.get(*f).and_then(Option::as_ref)
                    != values.canonical.get(*f).and_then(Option::as_ref)
            })
            .collect()
    };
    let rows: Vec<(usize, Vec<usize>)> = values
        .shadows
        .iter()
        .enumerate()
        .filter_map(|(s, row)| {
            let d = differing(row.as_ref()?);
            (!d.is_empty()).then_some((s, d))
        })
        .collect();
    put_varint(&mut out, rows.len() as u64);
    for (s, fs) in rows {
        put_varint(&mut out, s as u64);
        put_varint(&mut out, fs.len() as u64);
        for f in fs {
            put_varint(&mut out, f as u64);
            match values.shadow(s, f) {
                Some(v) => put_value(&mut out, v),
                None => out.push(codec::ABSENT),
            }
        }
    }
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shadows_equal_to_canonical_cost_nothing() {
        let mut v = OwnedValues::default();
        v.set_canonical(0, Some(json!("a@x")));
        v.set_canonical(1, Some(json!("555")));
        for s in 0..2 {
            v.set_shadow(s, 0, Some(json!("a@x")));
            v.set_shadow(s, 1, Some(json!("555")));
        }
        let same = encode(&v);
        assert_eq!(
            same.len(),
            encode(&OwnedValues {
                shadows: Vec::new(),
                ..v.clone()
            })
            .len()
        );
        v.set_shadow(1, 0, Some(json!("A@X")));
        v.set_shadow(1, 1, None);
        let differ = encode(&v);
        assert!(differ.len() > same.len());
        let view = ValuesView::new(&differ);
        assert!(view.shadow(0, 0).unwrap().eq_value(&json!("a@x")));
        assert!(view.shadow(1, 0).unwrap().eq_value(&json!("A@X")));
        assert_eq!(view.shadow(1, 1), None);
        assert!(view.canonical(1).unwrap().eq_value(&json!("555")));
        let mut e = Entity::new(EntityId::new("x"));
        e.set_link(0, Some(LinkState::active("1".into(), None, 0)));
        e.set_link(1, Some(LinkState::active("2".into(), None, 0)));
        e.set_values(&v);
        assert_eq!(e.owned_values(), v);
    }
}

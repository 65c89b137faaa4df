//! Undo: the plan that takes back what one run wrote, three ways.
//!
//! For each record the run wrote, the journal says what it held before the
//! run and what the run left; a read says what it holds now. A field that
//! still holds what the run left goes back to its value before; one that
//! holds its value before already is done; any other was changed since,
//! by a person or a system, and is held, never overwritten. A record the
//! run created is deleted (if nobody changed it since; under the delete
//! guard); a record it deleted is created again from its values before.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::baseline::{Baseline, EntityId};
use crate::guard::{Trip, Withheld, WithheldKind};
use crate::hash::StableHasher;
use crate::journal::{same, JournalEntry, JournalField, RunId};
use crate::mapping::FieldMap;
use crate::model::{is_empty_value, Name, Record, Snapshot, SystemId};
use crate::plan::{
    EntityChange, FieldWrite, Hold, HoldKind, OpId, OpKind, Reason, SyncPlan, WriteOp,
};

use super::PlanOptions;

/// The correlation key an undo gives the record it creates again in place
/// of one `run` deleted: a later undo finds the record by it, where the
/// system keeps correlation keys, and does not create it twice.
pub(crate) fn correlation(run: RunId, system: &SystemId, record_id: &str) -> String {
    format!("undo:{}:{system}:{record_id}", run.0)
}

/// One record the run wrote: its entries, in the order they were made.
struct Written<'j> {
    system: &'j SystemId,
    record_id: &'j str,
    entity: &'j EntityId,
    entries: Vec<&'j JournalEntry>,
}

impl<'j> Written<'j> {
    fn first(&self) -> Option<&'j JournalEntry> {
        self.entries.first().copied()
    }

    fn last(&self) -> Option<&'j JournalEntry> {
        self.entries.last().copied()
    }

    /// Each field the run wrote, by canonical name in the order first
    /// written: what it held before the run (the first entry's), what the
    /// run left (the last entry's), and the op of that last write.
    fn fields(&self) -> Vec<(&'j JournalField, &'j JournalField, OpId)> {
        let mut out: Vec<(&JournalField, &JournalField, OpId)> = Vec::new();
        for e in &self.entries {
            for f in &e.fields {
                match out.iter_mut().find(|(first, _, _)| first.field == f.field) {
                    Some(slot) => {
                        slot.1 = f;
                        slot.2 = e.op;
                    }
                    None => out.push((f, f, e.op)),
                }
            }
        }
        out
    }

    /// Fields the run wrote that the journal has no value of.
    fn omitted(&self) -> Vec<&'j str> {
        let mut names: Vec<&str> = Vec::new();
        for e in &self.entries {
            for name in &e.omitted {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }
}

/// The undo plan of `run` from its journal `entries` (those of other runs
/// are passed over) and the records the systems hold now (`current`: at
/// least every record the run wrote, in each system it wrote; a system
/// with records the run deleted, read whole, so that one created again by
/// an earlier undo is found by its correlation key).
pub(super) fn plan_undo(
    map: &FieldMap,
    baseline: &Baseline,
    run: RunId,
    entries: &[JournalEntry],
    current: &[Snapshot],
    options: &PlanOptions<'_>,
) -> SyncPlan {
    let mut undo = Undo {
        map,
        baseline,
        run,
        now: HashMap::new(),
        recreated: HashSet::new(),
        again: HashSet::new(),
        plan: SyncPlan {
            object: map.object().to_owned(),
            baseline_revision: baseline.revision(),
            fingerprint: map.fingerprint(),
            undo: Some(run),
            ..SyncPlan::default()
        },
        changes: HashMap::new(),
    };
    for snapshot in current {
        for r in snapshot.records.iter().filter(|r| !r.deleted) {
            undo.now
                .insert((snapshot.system.as_str(), r.id.as_str()), r);
            if let Some(c) = &r.correlation {
                undo.recreated
                    .insert((snapshot.system.as_str(), c.as_str()));
            }
        }
    }
    for e in entries.iter().filter(|e| e.kind == OpKind::Create) {
        for f in &e.fields {
            if let Some(Reason::Undo { run: r, op }) = &f.reason {
                if *r == run {
                    undo.again.insert(*op);
                }
            }
        }
    }
    for w in written(run, entries) {
        undo.record(&w);
    }
    let mut plan = undo.guard(options);
    let mut changes: Vec<EntityChange> = undo.changes.into_values().collect();
    changes.sort_by(|a, b| a.entity.cmp(&b.entity));
    plan.changes = changes;
    plan
}

/// The records `run` wrote, each with its entries, in the order first
/// written.
fn written(run: RunId, entries: &[JournalEntry]) -> Vec<Written<'_>> {
    let mut written: Vec<Written<'_>> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for e in entries.iter().filter(|e| e.run == run) {
        let key = (e.system.as_str(), e.record_id.as_str());
        let i = *index.entry(key).or_insert_with(|| {
            written.push(Written {
                system: &e.system,
                record_id: &e.record_id,
                entity: &e.entity,
                entries: Vec::new(),
            });
            written.len() - 1
        });
        if let Some(w) = written.get_mut(i) {
            w.entries.push(e);
        }
    }
    written
}

/// An undo being planned.
struct Undo<'a> {
    map: &'a FieldMap,
    baseline: &'a Baseline,
    run: RunId,
    /// The live records read now, by system and id.
    now: HashMap<(&'a str, &'a str), &'a Record>,
    /// The correlation keys of the live records read, by system.
    recreated: HashSet<(&'a str, &'a str)>,
    /// The run's deletes an earlier undo of it created again (by the op
    /// that deleted): a record so made and gone since was deleted by a
    /// person, and stays deleted.
    again: HashSet<OpId>,
    plan: SyncPlan,
    /// The baseline changes, by entity.
    changes: HashMap<EntityId, EntityChange>,
}

/// One record the run wrote, as the undo sees it now.
struct Target<'w, 'a> {
    w: &'w Written<'a>,
    /// The record now, if live.
    record: Option<&'a Record>,
    /// The entity it is linked to now (an earlier undo may have given it a
    /// new id); a record no longer linked is not recsync's to take back.
    linked: Option<EntityId>,
}

impl Target<'_, '_> {
    fn hold(&self, field: Option<&str>, kind: HoldKind) -> Hold {
        Hold {
            entity: self.linked.clone().unwrap_or_else(|| self.w.entity.clone()),
            field: field.map(str::to_owned),
            kind,
        }
    }

    fn changed(&self, run: RunId, field: Option<&str>) -> Hold {
        self.hold(
            field,
            HoldKind::ChangedSince {
                system: self.w.system.clone(),
                record_id: self.w.record_id.to_owned(),
                run,
            },
        )
    }

    fn gone(&self, run: RunId) -> Hold {
        self.hold(
            None,
            HoldKind::Gone {
                system: self.w.system.clone(),
                record_id: self.w.record_id.to_owned(),
                run,
            },
        )
    }

    fn read_only(&self, run: RunId) -> Hold {
        self.hold(
            None,
            HoldKind::NotWritable {
                system: self.w.system.clone(),
                record_id: self.w.record_id.to_owned(),
                run,
            },
        )
    }

    fn not_journaled(&self, run: RunId, field: &str) -> Hold {
        self.hold(
            Some(field),
            HoldKind::NotJournaled {
                system: self.w.system.clone(),
                record_id: self.w.record_id.to_owned(),
                run,
            },
        )
    }
}

impl<'a> Undo<'a> {
    /// Plans the undo of what the run wrote to one record.
    fn record(&mut self, w: &Written<'a>) {
        let (Some(first), Some(last)) = (w.first(), w.last()) else {
            return;
        };
        let target = Target {
            w,
            record: self.now.get(&(w.system.as_str(), w.record_id)).copied(),
            linked: self
                .baseline
                .find_linked(w.system.as_str(), w.record_id)
                .map(|e| e.id().clone()),
        };
        if self.map.system_index(w.system.as_str()).is_none()
            || self.map.read_only(w.system.as_str()).is_some()
        {
            self.plan.held.push(target.read_only(self.run));
            return;
        }
        if first.kind == OpKind::Create {
            // The record did not exist before the run.
            if last.kind != OpKind::Delete {
                self.created(&target);
            }
        } else if last.kind == OpKind::Delete {
            self.deleted(&target);
        } else {
            self.updated(&target);
        }
    }

    /// Whether a field holding `value` holds what the run left there: the
    /// same value, or the same under the field's normalization (the map
    /// calls them one), or the form the system stores what the run wrote
    /// in, as a read after the run saw it.
    fn left(&self, t: &Target<'_, '_>, left: &JournalField, value: Option<&Value>) -> bool {
        if left.left(value) {
            return true;
        }
        let norm = self.map.field(&left.field).map(|f| f.normalization());
        let wrote = left.sent.as_ref().or(left.after.as_ref());
        if norm.is_some_and(|n| !n.is_exact() && n.equal(value, wrote)) {
            return true;
        }
        let system = t.w.system.as_str();
        t.linked
            .as_ref()
            .and_then(|id| self.baseline.entity(id))
            .is_some_and(|e| {
                e.rewritten(system, &left.field).as_ref() == wrote
                    && same(value, e.shadow(system, &left.field).as_ref())
            })
    }

    /// Whether the map marks field `name` sensitive now (a value journaled
    /// before it was is not printed either).
    fn sensitive(&self, name: &str) -> bool {
        self.map.field(name).is_some_and(|f| f.is_sensitive())
    }

    /// A journaled field's canonical and native names in system `system`:
    /// the map's own, shared, where the map still names the field so; else
    /// the journal's.
    fn names(&self, system: &SystemId, field: &str, native: &str) -> (Name, Name) {
        let spec = self.map.field(field);
        let shared_native = self
            .map
            .system_index(system.as_str())
            .and_then(|s| spec?.shared_native_at(s))
            .filter(|n| *n == native);
        (
            spec.map_or_else(|| Name::from(field), |f| f.shared_name().clone()),
            shared_native.map_or_else(|| Name::from(native), Name::clone),
        )
    }

    fn op_id(&self, domain: &str, w: &Written<'_>, fields: &[FieldWrite]) -> OpId {
        let mut h = StableHasher::new(domain);
        h.u64(self.run.0);
        h.str(w.system.as_str());
        h.str(w.record_id);
        for f in fields {
            h.str(&f.native);
            h.value(&f.value);
        }
        OpId(h.finish())
    }

    /// A record the run created: deleted, unless it changed since (a field
    /// holds what the run did not leave, or one the run left empty holds a
    /// value now; mapped fields only: a system's own fields, such as its
    /// timestamps, are its own) or the journal cannot tell.
    fn created(&mut self, t: &Target<'_, 'a>) {
        let Some(record) = t.record else { return };
        let Some(entity) = &t.linked else {
            self.plan.held.push(t.gone(self.run));
            return;
        };
        let fields = t.w.fields();
        let omitted = t.w.omitted();
        let system = t.w.system.as_str();
        let moved = matches!(
            (&record.version, t.w.last().and_then(|e| e.version.as_ref())),
            (Some(now), Some(then)) if now != then
        );
        let edited = moved
            || fields
                .iter()
                .any(|(_, left, _)| !self.left(t, left, record.get(&left.native)))
            || self.map.fields().iter().any(|f| {
                f.native_name(system).is_some_and(|native| {
                    !fields.iter().any(|(_, left, _)| left.native == native)
                        && !omitted.contains(&f.name())
                        && record.get(native).is_some_and(|v| !is_empty_value(v))
                })
            });
        if edited {
            self.plan.held.push(t.changed(self.run, None));
            return;
        }
        if let Some(name) = omitted.first() {
            // Values the journal does not have may have been edited: the
            // record is not deleted on trust.
            self.plan.held.push(t.not_journaled(self.run, name));
            return;
        }
        self.plan.ops.push(WriteOp {
            id: self.op_id("undo-delete", t.w, &[]),
            kind: OpKind::Delete,
            object: self.map.shared_object().clone(),
            system: t.w.system.clone(),
            record_id: Some(t.w.record_id.to_owned()),
            entity: entity.clone(),
            expected_version: record.version.clone(),
            correlation: None,
            fields: Vec::new(),
        });
        touch(&mut self.changes, entity).undone = true;
    }

    /// A record the run deleted: created again from its values before,
    /// unless it is back (live under its id, or created again by an
    /// earlier undo, found by its correlation key).
    fn deleted(&mut self, t: &Target<'_, 'a>) {
        let key = correlation(self.run, t.w.system, t.w.record_id);
        let system = t.w.system.as_str();
        if t.record.is_some() || self.recreated.contains(&(system, key.as_str())) {
            return;
        }
        if t.w.last().is_some_and(|e| self.again.contains(&e.op)) {
            // Created again by an earlier undo, and gone since: deleted by
            // a person.
            self.plan.held.push(t.gone(self.run));
            return;
        }
        let back = self
            .baseline
            .entity(t.w.entity)
            .is_some_and(|e| e.link_status(system) == Some(crate::baseline::LinkStatus::Active));
        if back {
            // The entity has a record there again (a later run made it).
            self.plan.held.push(t.changed(self.run, None));
            return;
        }
        let omitted = t.w.omitted();
        if let Some(name) = omitted.first() {
            // A record made again without values the journal does not
            // have (a match key, say) would not be the record deleted.
            self.plan.held.push(t.not_journaled(self.run, name));
            return;
        }
        let mut writes = Vec::new();
        for (before, _, op) in &t.w.fields() {
            let Some(value) = before.before.clone() else {
                continue;
            };
            let (field, native) = self.names(t.w.system, &before.field, &before.native);
            writes.push(FieldWrite {
                field,
                native,
                value,
                reason: Reason::Undo {
                    run: self.run,
                    op: *op,
                },
                sensitive: before.sensitive || self.sensitive(&before.field),
            });
        }
        self.plan.ops.push(WriteOp {
            id: self.op_id("undo-create", t.w, &writes),
            kind: OpKind::Create,
            object: self.map.shared_object().clone(),
            system: t.w.system.clone(),
            record_id: None,
            entity: t.w.entity.clone(),
            expected_version: None,
            correlation: Some(key),
            fields: writes,
        });
    }

    /// A record the run updated: each field still holding what the run
    /// left goes back; one back already is left; any other is held.
    fn updated(&mut self, t: &Target<'_, 'a>) {
        let (Some(record), Some(entity)) = (t.record, &t.linked) else {
            self.plan.held.push(t.gone(self.run));
            return;
        };
        let s = self
            .map
            .system_index(t.w.system.as_str())
            .unwrap_or(usize::MAX);
        let mut writes = Vec::new();
        let mut held_now = Vec::new();
        for (before, left, op) in &t.w.fields() {
            let value = record.get(&left.native);
            if same(value, before.before.as_ref()) {
                continue;
            }
            if !self.left(t, left, value) {
                self.plan.held.push(t.changed(self.run, Some(&left.field)));
                continue;
            }
            if let Some(f) = self
                .map
                .fields()
                .iter()
                .position(|f| f.name() == left.field)
            {
                held_now.push((s as u32, f as u32, value.cloned()));
            }
            let (field, native) = self.names(t.w.system, &left.field, &left.native);
            writes.push(FieldWrite {
                field,
                native,
                value: before.before.clone().unwrap_or(Value::Null),
                reason: Reason::Undo {
                    run: self.run,
                    op: *op,
                },
                sensitive: before.sensitive || self.sensitive(&before.field),
            });
        }
        for name in t.w.omitted() {
            self.plan.held.push(t.not_journaled(self.run, name));
        }
        if writes.is_empty() {
            return;
        }
        self.plan.ops.push(WriteOp {
            id: self.op_id("undo-update", t.w, &writes),
            kind: OpKind::Update,
            object: self.map.shared_object().clone(),
            system: t.w.system.clone(),
            record_id: Some(t.w.record_id.to_owned()),
            entity: entity.clone(),
            expected_version: record.version.clone(),
            correlation: None,
            fields: writes,
        });
        touch(&mut self.changes, entity).before.extend(held_now);
    }

    /// The deletes of records the run created, and the writes that empty
    /// a field holding a value now: what the map's delete and
    /// emptied-field guards count.
    fn guarded(&self) -> (Vec<Withheld>, Vec<Withheld>) {
        let mut deletes = Vec::new();
        let mut emptied = Vec::new();
        for op in &self.plan.ops {
            let item = |kind, field: Option<&str>| Withheld {
                kind,
                entity: op.entity.clone(),
                system: op.system.clone(),
                record_id: op.record_id.clone(),
                field: field.map(str::to_owned),
            };
            match op.kind {
                OpKind::Delete => deletes.push(item(WithheldKind::Delete, None)),
                OpKind::Update => {
                    let record = op
                        .record_id
                        .as_deref()
                        .and_then(|id| self.now.get(&(op.system.as_str(), id)));
                    for w in op.fields.iter().filter(|w| is_empty_value(&w.value)) {
                        let holds = record
                            .and_then(|r| r.get(&w.native))
                            .is_some_and(|v| !is_empty_value(v));
                        if holds {
                            emptied.push(item(WithheldKind::EmptiedField, Some(&w.field)));
                        }
                    }
                }
                _ => {}
            }
        }
        (deletes, emptied)
    }

    /// The map's delete and emptied-field guards over the undo: over
    /// budget and not approved, those changes are withheld and the plan
    /// says why.
    fn guard(&mut self, options: &PlanOptions<'_>) -> SyncPlan {
        let entities = self.baseline.len();
        let guards = self.map.guards();
        let (deletes, emptied) = self.guarded();
        let mut trips = Vec::new();
        let mut items = Vec::new();
        if !guards.deletes.allows(deletes.len(), entities) {
            trips.push(Trip::Deletes {
                count: deletes.len(),
                entities,
                budget: guards.deletes,
            });
            items.extend(deletes);
        }
        if !guards.emptied_fields.allows(emptied.len(), entities) {
            trips.push(Trip::EmptiedFields {
                count: emptied.len(),
                entities,
                budget: guards.emptied_fields,
            });
            items.extend(emptied);
        }
        let mut plan = std::mem::take(&mut self.plan);
        items.sort();
        let approved = options
            .approvals
            .contains(&crate::guard::fingerprint(&trips, &items));
        if trips.is_empty() || approved {
            return plan;
        }
        withhold(&mut plan, &items, &mut self.changes);
        let mut refusal = plan
            .refusal
            .take()
            .unwrap_or_else(crate::guard::Refusal::empty);
        refusal.add(trips, items);
        plan.refusal = Some(refusal);
        plan
    }
}

/// Takes the withheld changes `items` out of `plan`: the deletes, and the
/// fields emptied (an update left with none goes). An entity left with no
/// op keeps nothing from the undo but the next plan's second look.
fn withhold(
    plan: &mut SyncPlan,
    items: &[Withheld],
    changes: &mut HashMap<EntityId, EntityChange>,
) {
    let withheld = |op: &WriteOp, kind: WithheldKind, field: Option<&str>| {
        items.iter().any(|i| {
            i.kind == kind
                && i.entity == op.entity
                && i.system == op.system
                && i.record_id == op.record_id
                && i.field.as_deref() == field
        })
    };
    for op in &mut plan.ops {
        if op.kind == OpKind::Update {
            let fields = std::mem::take(&mut op.fields);
            op.fields = fields
                .into_iter()
                .filter(|w| !withheld(op, WithheldKind::EmptiedField, Some(&w.field)))
                .collect();
        }
    }
    plan.ops.retain(|op| match op.kind {
        OpKind::Delete => !withheld(op, WithheldKind::Delete, None),
        OpKind::Update => !op.fields.is_empty(),
        _ => true,
    });
    let kept: HashSet<&EntityId> = plan.ops.iter().map(|op| &op.entity).collect();
    for (id, c) in changes.iter_mut() {
        if !kept.contains(id) {
            c.before.clear();
            c.undone = false;
        }
    }
}

/// The baseline change of an entity an undo writes to: it is looked at
/// again by the next plan, whatever the undo's outcome (its records no
/// longer hold what the baseline last saw them hold).
fn touch<'c>(
    changes: &'c mut HashMap<EntityId, EntityChange>,
    entity: &EntityId,
) -> &'c mut EntityChange {
    changes.entry(entity.clone()).or_insert_with(|| {
        let mut c = EntityChange::new(entity.clone());
        c.unsettled = true;
        c
    })
}

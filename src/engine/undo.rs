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
use crate::model::{is_empty_value, Record, Snapshot, SystemId};
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
    let mut now: HashMap<(&str, &str), &Record> = HashMap::new();
    let mut recreated: HashSet<(&str, &str)> = HashSet::new();
    for snapshot in current {
        for r in snapshot.records.iter().filter(|r| !r.deleted) {
            now.insert((snapshot.system.as_str(), r.id.as_str()), r);
            if let Some(c) = &r.correlation {
                recreated.insert((snapshot.system.as_str(), c.as_str()));
            }
        }
    }

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
        written[i].entries.push(e);
    }

    let mut plan = SyncPlan {
        object: map.object().to_owned(),
        baseline_revision: baseline.revision(),
        fingerprint: map.fingerprint(),
        undo: Some(run),
        ..SyncPlan::default()
    };
    let mut changes: HashMap<EntityId, EntityChange> = HashMap::new();
    for w in &written {
        let (Some(first), Some(last)) = (w.first(), w.last()) else {
            continue;
        };
        let Some(t) = map.system_index(w.system.as_str()) else {
            continue;
        };
        if map.read_only(w.system.as_str()).is_some() {
            continue;
        }
        let record = now.get(&(w.system.as_str(), w.record_id)).copied();
        // The entity the record is linked to now (an earlier undo may have
        // given it a new id); a record no longer linked is not recsync's
        // to take back.
        let linked = baseline
            .find_linked(w.system.as_str(), w.record_id)
            .map(|e| e.id().clone());
        let gone = HoldKind::Gone {
            system: w.system.clone(),
            record_id: w.record_id.to_owned(),
            run,
        };
        let hold = |field: Option<&str>, kind: HoldKind| Hold {
            entity: linked.clone().unwrap_or_else(|| w.entity.clone()),
            field: field.map(str::to_owned),
            kind,
        };
        let changed = |field: Option<&str>| {
            hold(
                field,
                HoldKind::ChangedSince {
                    system: w.system.clone(),
                    record_id: w.record_id.to_owned(),
                    run,
                },
            )
        };
        let not_journaled = |field: &str| {
            hold(
                Some(field),
                HoldKind::NotJournaled {
                    system: w.system.clone(),
                    record_id: w.record_id.to_owned(),
                    run,
                },
            )
        };
        let fields = w.fields();
        if first.kind == OpKind::Create {
            // The record did not exist before the run.
            let Some(record) = record else { continue };
            if last.kind == OpKind::Delete {
                continue;
            }
            let Some(entity) = &linked else {
                plan.held.push(hold(None, gone));
                continue;
            };
            // Changed since: a field holds what the run did not leave, or
            // one the run left empty holds a value now (mapped fields: a
            // system's own fields, such as its timestamps, are its own).
            let edited = fields
                .iter()
                .any(|(_, left, _)| !left.left(record.get(&left.native)))
                || map.fields().iter().any(|f| {
                    f.native_name(w.system.as_str()).is_some_and(|native| {
                        !fields.iter().any(|(_, left, _)| left.native == native)
                            && !w.omitted().contains(&f.name())
                            && record.get(native).is_some_and(|v| !is_empty_value(v))
                    })
                });
            let omitted = w.omitted();
            if edited {
                plan.held.push(changed(None));
            } else if let Some(name) = omitted.first() {
                // Values the journal does not have may have been edited:
                // the record is not deleted on trust.
                plan.held.push(not_journaled(name));
            } else {
                let mut h = StableHasher::new("undo-delete");
                h.u64(run.0);
                h.str(w.system.as_str());
                h.str(w.record_id);
                plan.ops.push(WriteOp {
                    id: OpId(h.finish()),
                    kind: OpKind::Delete,
                    object: map.object().to_owned(),
                    system: w.system.clone(),
                    record_id: Some(w.record_id.to_owned()),
                    entity: entity.clone(),
                    expected_version: record.version.clone(),
                    correlation: None,
                    fields: Vec::new(),
                });
                touch(&mut changes, entity).rekey = true;
            }
            continue;
        }
        if last.kind == OpKind::Delete {
            // The record existed before the run and is gone after it.
            let key = correlation(run, w.system, w.record_id);
            if record.is_some() || recreated.contains(&(w.system.as_str(), key.as_str())) {
                continue;
            }
            let mut writes = Vec::new();
            for (before, _, op) in &fields {
                let Some(value) = before.before.clone() else {
                    continue;
                };
                writes.push(FieldWrite {
                    field: before.field.clone(),
                    native: before.native.clone(),
                    value,
                    reason: Reason::Undo { run, op: *op },
                    sensitive: before.sensitive,
                });
            }
            for name in w.omitted() {
                plan.held.push(not_journaled(name));
            }
            let mut h = StableHasher::new("undo-create");
            h.u64(run.0);
            h.str(w.system.as_str());
            h.str(w.record_id);
            for f in &writes {
                h.str(&f.native);
                h.value(&f.value);
            }
            plan.ops.push(WriteOp {
                id: OpId(h.finish()),
                kind: OpKind::Create,
                object: map.object().to_owned(),
                system: w.system.clone(),
                record_id: None,
                entity: w.entity.clone(),
                expected_version: None,
                correlation: Some(key),
                fields: writes,
            });
            continue;
        }
        // Updates only.
        let (Some(record), Some(entity)) = (record, &linked) else {
            plan.held.push(hold(None, gone));
            continue;
        };
        let mut writes = Vec::new();
        let mut held_now = Vec::new();
        for (before, left, op) in &fields {
            let value = record.get(&left.native);
            if same(value, before.before.as_ref()) {
                continue;
            }
            if !left.left(value) {
                plan.held.push(changed(Some(&left.field)));
                continue;
            }
            if let Some(f) = map.fields().iter().position(|f| f.name() == left.field) {
                held_now.push((t as u32, f as u32, value.cloned()));
            }
            writes.push(FieldWrite {
                field: left.field.clone(),
                native: left.native.clone(),
                value: before.before.clone().unwrap_or(Value::Null),
                reason: Reason::Undo { run, op: *op },
                sensitive: before.sensitive,
            });
        }
        for name in w.omitted() {
            plan.held.push(not_journaled(name));
        }
        if writes.is_empty() {
            continue;
        }
        let mut h = StableHasher::new("undo-update");
        h.u64(run.0);
        h.str(w.system.as_str());
        h.str(w.record_id);
        for f in &writes {
            h.str(&f.native);
            h.value(&f.value);
        }
        plan.ops.push(WriteOp {
            id: OpId(h.finish()),
            kind: OpKind::Update,
            object: map.object().to_owned(),
            system: w.system.clone(),
            record_id: Some(w.record_id.to_owned()),
            entity: entity.clone(),
            expected_version: record.version.clone(),
            correlation: None,
            fields: writes,
        });
        touch(&mut changes, entity).before.extend(held_now);
    }
    guard(map, baseline, options, &mut plan, &now, &mut changes);
    let mut changes: Vec<EntityChange> = changes.into_values().collect();
    changes.sort_by(|a, b| a.entity.cmp(&b.entity));
    plan.changes = changes;
    plan
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

/// The map's delete and emptied-field guards, over the undo: deletes of
/// records the run created, and writes that empty a field that holds a
/// value now. Over budget and not approved, those are withheld and the
/// plan says why.
fn guard(
    map: &FieldMap,
    baseline: &Baseline,
    options: &PlanOptions<'_>,
    plan: &mut SyncPlan,
    now: &HashMap<(&str, &str), &Record>,
    changes: &mut HashMap<EntityId, EntityChange>,
) {
    let entities = baseline.len();
    let guards = map.guards();
    let mut deletes = Vec::new();
    let mut emptied = Vec::new();
    for op in &plan.ops {
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
                    .and_then(|id| now.get(&(op.system.as_str(), id)));
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
    let mut trips = Vec::new();
    let mut items = Vec::new();
    let (mut no_deletes, mut no_emptied) = (false, false);
    if !guards.deletes.allows(deletes.len(), entities) {
        trips.push(Trip::Deletes {
            count: deletes.len(),
            entities,
            budget: guards.deletes,
        });
        items.extend(deletes);
        no_deletes = true;
    }
    if !guards.emptied_fields.allows(emptied.len(), entities) {
        trips.push(Trip::EmptiedFields {
            count: emptied.len(),
            entities,
            budget: guards.emptied_fields,
        });
        items.extend(emptied);
        no_emptied = true;
    }
    if trips.is_empty() {
        return;
    }
    items.sort();
    if options
        .approvals
        .contains(&crate::guard::fingerprint(&trips, &items))
    {
        return;
    }
    for op in &mut plan.ops {
        if no_emptied && op.kind == OpKind::Update {
            op.fields.retain(|w| {
                !items.iter().any(|i| {
                    i.kind == WithheldKind::EmptiedField
                        && i.entity == op.entity
                        && i.system == op.system
                        && i.field.as_deref() == Some(w.field.as_str())
                })
            });
        }
    }
    plan.ops.retain(|op| {
        let withheld = no_deletes && op.kind == OpKind::Delete;
        let emptied = op.kind == OpKind::Update && op.fields.is_empty();
        !withheld && !emptied
    });
    // An entity left with no op keeps nothing from the undo but the next
    // plan's second look.
    let kept: HashSet<&EntityId> = plan.ops.iter().map(|op| &op.entity).collect();
    for (id, c) in changes.iter_mut() {
        if !kept.contains(id) {
            c.before.clear();
        }
    }
    let mut refusal = plan
        .refusal
        .take()
        .unwrap_or_else(crate::guard::Refusal::empty);
    refusal.add(trips, items);
    plan.refusal = Some(refusal);
}

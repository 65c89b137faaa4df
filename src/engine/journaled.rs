//! The journal of a commit: what each applied op wrote, with the values
//! its targets held before, for a store to keep with the baseline.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::baseline::{Baseline, EntityId};
use crate::ids::{OpKind, RunId};
use crate::journal::{same, JournalBatch, JournalEntry, JournalField, Retention};
use crate::mapping::FieldMap;
use crate::model::{Record, Snapshot};
use crate::plan::{SyncPlan, WriteOp};

use super::{OpOutcome, Outcomes};

impl JournalBatch {
    /// The journal of a commit of `plan` into `baseline` (called before
    /// the commit): an entry for each op that `outcomes` reports applied.
    /// Values before are what the plan saw each target hold: for an
    /// update, as the plan kept them; for a delete, the record as `read`
    /// (the snapshots the plan was made from), else as the baseline last
    /// saw it (an incremental read lists only records that changed).
    /// Values after are what each op sent, or the form the system
    /// reported storing.
    pub fn of_commit(
        map: &FieldMap,
        baseline: &Baseline,
        plan: &SyncPlan,
        outcomes: &Outcomes,
        read: &[Snapshot],
        run: RunId,
        at: DateTime<Utc>,
    ) -> Self {
        let mut records = HashMap::new();
        for snapshot in read {
            for r in &snapshot.records {
                records.insert((snapshot.system.as_str(), r.id.as_str()), r);
            }
        }
        // What each update's target held, as the plan saw it: by entity,
        // map system and field index.
        let mut seen: HashMap<(&EntityId, u32, u32), Option<&Value>> = HashMap::new();
        for c in &plan.changes {
            for (t, f, v) in &c.before {
                seen.insert((&c.entity, *t, *f), v.as_ref());
            }
        }
        let sources = Sources {
            map,
            baseline,
            records,
            seen,
        };
        let mut entries = Vec::new();
        for op in &plan.ops {
            let Some(OpOutcome::Applied {
                record_id,
                stored,
                version,
                ..
            }) = outcomes.get(op.id)
            else {
                continue;
            };
            let id = match op.kind {
                OpKind::Create => record_id.as_ref(),
                _ => op.record_id.as_ref(),
            };
            let Some(id) = id else { continue };
            let mut entry = JournalEntry {
                run,
                at,
                op: op.id,
                kind: op.kind,
                object: op.object.as_str().to_owned(),
                system: op.system.clone(),
                record_id: id.clone(),
                entity: op.entity.clone(),
                fields: Vec::new(),
                omitted: Vec::new(),
                version: version.clone(),
            };
            if op.kind == OpKind::Delete {
                sources.deleted(op, &mut entry);
            }
            sources.written(op, stored, &mut entry);
            entries.push(entry);
        }
        JournalBatch {
            run,
            at,
            entries,
            retention: Retention::default(),
        }
    }
}

/// Where a commit's journal takes the values before from.
struct Sources<'a> {
    map: &'a FieldMap,
    /// The baseline before the commit.
    baseline: &'a Baseline,
    /// The records read, by system and id.
    records: HashMap<(&'a str, &'a str), &'a Record>,
    /// What each update's target held, as its plan saw it.
    seen: HashMap<(&'a EntityId, u32, u32), Option<&'a Value>>,
}

impl Sources<'_> {
    /// The record an op writes, as read.
    fn prior(&self, op: &WriteOp, id: &str) -> Option<&Record> {
        self.records.get(&(op.system.as_str(), id)).copied()
    }

    /// A delete's fields: every mapped field the record held, as read, else
    /// as the baseline last saw it.
    fn deleted(&self, op: &WriteOp, entry: &mut JournalEntry) {
        let prior = self.prior(op, &entry.record_id);
        let known = self.baseline.entity(&op.entity);
        for f in self.map.fields() {
            let Some(native) = f.native_name(op.system.as_str()) else {
                continue;
            };
            let before = match prior {
                Some(r) => r.get(native).cloned(),
                None => known
                    .as_ref()
                    .and_then(|e| e.shadow(op.system.as_str(), f.name())),
            };
            if before.is_none() {
                continue;
            }
            if !f.is_journaled() {
                entry.omitted.push(f.name().to_owned());
                continue;
            }
            entry.fields.push(JournalField {
                field: f.name().to_owned(),
                native: native.to_owned(),
                before,
                after: None,
                sent: None,
                reason: None,
                sensitive: f.is_sensitive(),
            });
        }
    }

    /// The fields an op wrote: before as its plan saw them (none for a
    /// create), after as sent, or as the system reported storing them.
    fn written(&self, op: &WriteOp, stored: &BTreeMap<String, Value>, entry: &mut JournalEntry) {
        let t = self
            .map
            .system_index(op.system.as_str())
            .unwrap_or(usize::MAX) as u32;
        let prior = self.prior(op, &entry.record_id);
        for w in &op.fields {
            let f = self.map.fields().iter().position(|f| w.field == f.name());
            if f.and_then(|f| self.map.fields().get(f))
                .is_some_and(|f| !f.is_journaled())
            {
                entry.omitted.push(w.field.as_str().to_owned());
                continue;
            }
            let before = match op.kind {
                OpKind::Create => None,
                _ => match f.and_then(|f| self.seen.get(&(&op.entity, t, f as u32))) {
                    Some(v) => v.cloned(),
                    None => prior.and_then(|r| r.get(&w.native)).cloned(),
                },
            };
            let (after, sent) = match stored.get(w.native.as_str()) {
                Some(v) if !same(Some(v), Some(&w.value)) => (v.clone(), Some(w.value.clone())),
                _ => (w.value.clone(), None),
            };
            entry.fields.push(JournalField {
                field: w.field.as_str().to_owned(),
                native: w.native.as_str().to_owned(),
                before,
                after: Some(after),
                sent,
                reason: Some(w.reason.clone()),
                sensitive: w.sensitive,
            });
        }
    }
}

//! The debounce: records edited too recently wait for a later run, with
//! every other record of their entities (and, for a record not linked yet,
//! the records not linked yet that share a key value with it).

use std::collections::HashSet;
use std::time::Duration;

use chrono::TimeDelta;

use super::{Fetched, SyncRunner};
use crate::baseline::{Baseline, EntityId, EntityRef, LinkStatus};
use crate::engine::holds_last_commit;
use crate::identity;
use crate::mapping::FieldMap;
use crate::model::{Coverage, Record};
use crate::plan::OpKind;

impl SyncRunner {
    /// Leaves out records edited less than `quiet` ago, and with them every
    /// record of their entities in the other systems: an entity is planned
    /// once all its records are quiet, so that what each system changed
    /// meanwhile is decided together, by the conflict policy, not in the
    /// order the records happen to settle. A record not linked yet that is
    /// left out leaves out every record not linked yet that shares a match
    /// key value with it; one whose key value is a waiting entity's waits
    /// with the entity.
    ///
    /// Returns the entities that wait: nothing is written to them in this
    /// run either, not even what a failed write left behind, since their
    /// records as they are now were not read into the plan.
    pub(super) fn debounce_records(
        &self,
        reads: &mut [Fetched],
        baseline: &Baseline,
        quiet: Duration,
    ) -> HashSet<EntityId> {
        let now = self.clock.now();
        let cutoff = TimeDelta::from_std(quiet)
            .ok()
            .and_then(|q| now.checked_sub_signed(q))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        // A record as the last commit left it (the read-back of the
        // runner's own write, say) has nothing new to wait for.
        let mut recent: Vec<Vec<bool>> = reads
            .iter()
            .map(|read| {
                let name = read.snapshot.system.as_str();
                read.snapshot
                    .records
                    .iter()
                    .map(|r| {
                        !r.deleted
                            && r.updated_at.is_some_and(|at| at > cutoff)
                            && !holds_last_commit(baseline, name, r)
                    })
                    .collect()
            })
            .collect();
        self.hold_back_key_sharers(reads, baseline, &mut recent);
        let mut waiting: HashSet<&EntityId> = HashSet::new();
        for (read, recent) in reads.iter().zip(&recent) {
            let name = read.snapshot.system.as_str();
            for (r, _) in read
                .snapshot
                .records
                .iter()
                .zip(recent)
                .filter(|(_, x)| **x)
            {
                // A record not linked yet that carries a correlation key was
                // made by recsync for that entity (a create whose outcome
                // was lost): once linked, what it holds is compared with
                // the entity's values, so the entity waits with it.
                let entity = baseline.find_linked(name, &r.id).or_else(|| {
                    r.correlation
                        .as_deref()
                        .and_then(|key| baseline.entity(&EntityId::new(key)))
                });
                if let Some(e) = entity {
                    waiting.insert(e.id());
                }
            }
        }
        // A record not linked yet that a waiting entity's key value would
        // link to it is one of its records: it waits too (planned alone, it
        // would be left unlinked while the entity waits, and its read would
        // move the cursor past it).
        let map = self.engine.map();
        let mut waiting_keys: HashSet<(usize, String)> = HashSet::new();
        for id in &waiting {
            let Some(e) = baseline
                .find_entity(id)
                .and_then(|slot| baseline.entity_at(slot))
            else {
                continue;
            };
            for k in 0..map.match_keys().len() {
                if let Some(t) = identity::entity_key(map, baseline.fields(), k, e) {
                    waiting_keys.insert((k, t));
                }
            }
        }
        for (read, recent) in reads.iter_mut().zip(recent) {
            let system = read.snapshot.system.clone();
            let s = map.system_index(system.as_str());
            let of_waiting = |r: &Record| match baseline.find_linked(system.as_str(), &r.id) {
                Some(e) => waiting.contains(e.id()),
                None => match r.correlation.as_deref() {
                    Some(key) => waiting.contains(&EntityId::new(key)),
                    None => !r.deleted && s.is_some_and(|s| shares_a_key(map, s, r, &waiting_keys)),
                },
            };
            let held: Vec<bool> = read
                .snapshot
                .records
                .iter()
                .zip(&recent)
                .map(|(r, recent)| *recent || (!waiting.is_empty() && of_waiting(r)))
                .collect();
            let debounced = held.iter().filter(|x| **x).count();
            let complete = read.snapshot.coverage == Coverage::Complete;
            if debounced == 0 && (!complete || waiting.is_empty()) {
                continue;
            }
            // What a complete snapshot lacks of the system's live links: the
            // record ids it says were deleted.
            let present: HashSet<&str> = if complete {
                read.snapshot
                    .records
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect()
            } else {
                HashSet::new()
            };
            let missing = |e: &EntityRef<'_>| {
                let live = matches!(
                    e.link_status(system.as_str()),
                    Some(LinkStatus::Active | LinkStatus::Frozen)
                );
                e.link(system.as_str())
                    .filter(|id| live && !present.contains(id))
                    .map(str::to_owned)
            };
            // A delete of a waiting entity waits too: the snapshot turns
            // partial even when it holds no record back.
            let misses_waiting = complete
                && waiting
                    .iter()
                    .any(|id| baseline.entity(id).is_some_and(|e| missing(&e).is_some()));
            if debounced == 0 && !misses_waiting {
                continue;
            }
            // Partial from now on: the deletes a complete snapshot says by
            // leaving records out are added as tombstones (but for waiting
            // entities).
            let gone: Vec<Record> = if complete {
                baseline
                    .entities()
                    .filter(|e| !waiting.contains(e.id()))
                    // A record the runner created and no read has shown is
                    // no evidence of a delete: no tombstone stands for it.
                    .filter(|e| {
                        e.unconfirmed(system.as_str())
                            .is_none_or(|u| u.kind != OpKind::Create)
                    })
                    .filter_map(|e| missing(&e))
                    .map(|id| Record::new(id).deleted())
                    .collect()
            } else {
                Vec::new()
            };
            let snapshot = &mut read.snapshot;
            snapshot.coverage = Coverage::Partial;
            let mut i = 0;
            snapshot.records.retain(|_| {
                i += 1;
                !held.get(i - 1).copied().unwrap_or(false)
            });
            snapshot.records.extend(gone);
            read.cursor = None;
            read.debounced = debounced;
        }
        waiting.into_iter().cloned().collect()
    }

    /// Marks in `recent` every record not linked yet that shares a match
    /// key value with a record not linked yet that `recent` holds back.
    /// Read without it, such a record could look unique and be created in
    /// the other systems, where with it the value is ambiguous (a
    /// placeholder email on two records, one of them edited just now): it
    /// waits, so that the next read shows both.
    fn hold_back_key_sharers(
        &self,
        reads: &[Fetched],
        baseline: &Baseline,
        recent: &mut [Vec<bool>],
    ) {
        let map = self.engine.map();
        let unlinked =
            |name: &str, r: &Record| !r.deleted && baseline.find_linked(name, &r.id).is_none();
        let mut held: HashSet<(usize, String)> = HashSet::new();
        for (read, recent) in reads.iter().zip(recent.iter()) {
            let name = read.snapshot.system.as_str();
            let Some(s) = map.system_index(name) else {
                continue;
            };
            for (r, _) in read
                .snapshot
                .records
                .iter()
                .zip(recent)
                .filter(|(r, x)| **x && unlinked(name, r))
            {
                held.extend(identity::match_texts(map, s, r));
            }
        }
        if held.is_empty() {
            return;
        }
        for (read, recent) in reads.iter().zip(recent.iter_mut()) {
            let name = read.snapshot.system.as_str();
            let Some(s) = map.system_index(name) else {
                continue;
            };
            for (r, x) in read.snapshot.records.iter().zip(recent.iter_mut()) {
                if !*x && unlinked(name, r) && shares_a_key(map, s, r, &held) {
                    *x = true;
                }
            }
        }
    }
}

/// Whether record `r` of system `s` holds a match key value in `keys` (by
/// match key index and normalized value).
fn shares_a_key(map: &FieldMap, s: usize, r: &Record, keys: &HashSet<(usize, String)>) -> bool {
    !keys.is_empty()
        && identity::match_texts(map, s, r)
            .iter()
            .any(|t| keys.contains(t))
}

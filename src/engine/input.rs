//! What a plan reads: its context ([`Cx`]: the map, the baseline and the
//! snapshots, resolved once) and, for each entity to plan, what the
//! snapshots hold of it ([`EntityInput`]).
//!
//! Gathering ([`gather`](super::gather)) makes the inputs; the decision of
//! each entity ([`entity`](super::entity)) reads them. Neither is imported
//! here.

use std::collections::HashSet;

use crate::baseline::{Baseline, EntityId};
use crate::mapping::FieldMap;
use crate::model::{Coverage, Record, Snapshot};

use super::drift::Drift;
use super::hints::Hints;
use super::{PlanError, PlanOptions};

/// A reference field's parent baseline, and its system slots by map system
/// index.
pub(crate) type Parent<'a> = (&'a Baseline, Vec<Option<usize>>);

/// Everything a plan reads, resolved once.
pub(crate) struct Cx<'a> {
    pub(crate) map: &'a FieldMap,
    pub(crate) baseline: &'a Baseline,
    /// Map system index to baseline system slot.
    pub(crate) sys_slot: Vec<Option<usize>>,
    /// Map field index to baseline field slot.
    pub(crate) field_slot: Vec<Option<usize>>,
    /// Per map system, its snapshot.
    pub(crate) snaps: Vec<Option<&'a Snapshot>>,
    /// Per map field, for reference fields: the parent baseline and its
    /// system slots by map system index.
    pub(crate) parents: Vec<Option<Parent<'a>>>,
    /// Whether entities may be skipped on unchanged versions and hashes.
    pub(crate) fast: bool,
    /// Every field of every entity planned goes through the field steps
    /// ([`PlanOptions::full_walk`]).
    pub(crate) full_walk: bool,
    /// Where each native field was last found in a record: the engine's,
    /// kept from plan to plan.
    hints: &'a Hints,
    /// Threads the plan may use (`None`: one per core).
    pub(crate) threads: Option<usize>,
    /// Entities that wait: planned as a record listed twice is.
    waiting: HashSet<EntityId>,
    /// Mapped native fields no record of a complete snapshot holds.
    pub(crate) drift: Drift,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(
        map: &'a FieldMap,
        hints: &'a Hints,
        baseline: &'a Baseline,
        snapshots: &'a [Snapshot],
        options: &PlanOptions<'a>,
    ) -> Result<Self, PlanError> {
        let snaps = by_system(map, snapshots)?;
        let sys_slot = map
            .systems()
            .iter()
            .map(|s| baseline.system_slot(s.as_str()))
            .collect();
        let field_slot = map
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| baseline.field_slot_near(i, f.name()))
            .collect();
        let parents = parents(map, baseline, options)?;
        let drift = Drift::scan(map, &snaps);
        Ok(Cx {
            map,
            baseline,
            sys_slot,
            field_slot,
            snaps,
            parents,
            fast: !options.full_walk && baseline.header().fingerprint == Some(map.fingerprint()),
            full_walk: options.full_walk,
            hints,
            threads: options.thread_count(),
            waiting: options.waiting.clone(),
            drift,
        })
    }

    /// Record `r` of system `s`: its native name and value of field `f`.
    pub(crate) fn field_value<'r>(
        &self,
        s: usize,
        f: usize,
        r: &'r Record,
    ) -> Option<(&'a str, &'r serde_json::Value)> {
        let nat = self.map.fields().get(f)?.native_at(s)?;
        let v = self.hints.find(s * self.map.fields().len() + f, nat, r)?;
        Some((nat, v))
    }

    /// Complete snapshots with no records from systems with linked records:
    /// (system index, records linked there).
    pub(crate) fn empty_snapshots(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (s, snap) in self.snaps.iter().enumerate() {
            let Some(snap) = snap else { continue };
            if snap.coverage != Coverage::Complete || !snap.records.is_empty() {
                continue;
            }
            // Records deleted, or created and never seen, missing from it
            // are no sign that a listing failed.
            let linked = self.sys_slot[s].map_or(0, |b| {
                self.baseline
                    .linked_count(b)
                    .saturating_sub(self.baseline.unseen_links(b))
            });
            if linked > 0 {
                out.push((s, linked));
            }
        }
        out
    }

    /// Whether field `f` is absent from every record of system `s`'s
    /// complete snapshot (schema drift): nothing is written to it there.
    #[inline]
    pub(crate) fn field_absent(&self, s: usize, f: usize) -> bool {
        self.drift.absent(s, f, self.map.fields().len())
    }

    pub(crate) fn ignore_snapshot(&mut self, s: usize) {
        if let Some(slot) = self.snaps.get_mut(s) {
            *slot = None;
        }
    }

    pub(crate) fn coverage(&self, s: usize) -> Option<Coverage> {
        self.snaps[s].map(|snap| snap.coverage)
    }

    #[inline]
    pub(crate) fn in_scope(&self, s: usize, r: &Record) -> bool {
        self.map.records().scope[s]
            .as_ref()
            .is_none_or(|f| f.matches(r))
    }

    /// Whether the entity at baseline slot `slot` waits
    /// ([`PlanOptions::wait`]).
    #[inline]
    pub(crate) fn waits(&self, slot: u32) -> bool {
        !self.waiting.is_empty()
            && self
                .baseline
                .entity_at(slot)
                .is_some_and(|e| self.waiting.contains(&e.id))
    }
}

/// Each map system's snapshot, by map system index. A snapshot of a system
/// the map does not have, or a second one of a system, is an error.
fn by_system<'a>(
    map: &FieldMap,
    snapshots: &'a [Snapshot],
) -> Result<Vec<Option<&'a Snapshot>>, PlanError> {
    let mut snaps: Vec<Option<&'a Snapshot>> = vec![None; map.systems().len()];
    for snap in snapshots {
        let Some(s) = map.system_index(snap.system.as_str()) else {
            return Err(PlanError::UnknownSystem {
                system: snap.system.clone(),
            });
        };
        if snaps[s].is_some() {
            return Err(PlanError::DuplicateSnapshot {
                system: snap.system.clone(),
            });
        }
        snaps[s] = Some(snap);
    }
    Ok(snaps)
}

/// Per map field, for reference fields: the parent baseline (the one
/// `options` gives for the object referred to, or `baseline` itself for a
/// reference to the map's own object) and its system slots.
fn parents<'a>(
    map: &FieldMap,
    baseline: &'a Baseline,
    options: &PlanOptions<'a>,
) -> Result<Vec<Option<Parent<'a>>>, PlanError> {
    let mut parents = Vec::with_capacity(map.fields().len());
    for f in map.fields() {
        let Some(object) = f.reference() else {
            parents.push(None);
            continue;
        };
        let parent = match options.parent_of(object) {
            Some(b) => b,
            None if object == map.object() => baseline,
            None => {
                return Err(PlanError::MissingParent {
                    field: f.name().to_owned(),
                    object: object.to_owned(),
                })
            }
        };
        let slots = map
            .systems()
            .iter()
            .map(|s| parent.system_slot(s.as_str()))
            .collect();
        parents.push(Some((parent, slots)));
    }
    Ok(parents)
}

/// One entity to plan.
#[derive(Debug, Clone)]
pub(crate) struct EntityInput<'a> {
    /// The baseline slot, or `None` for an entity new in this plan.
    pub(crate) slot: Option<u32>,
    pub(crate) id: EntityId,
    /// Per map system: what its snapshot holds of the entity (one list,
    /// so that an entity's input is one allocation).
    pub(crate) sides: Vec<Side<'a>>,
    /// The map systems whose deletion evidence is absence from a complete
    /// snapshot (not a tombstone).
    pub(crate) absent: Vec<usize>,
    /// A record of the entity is listed more than once in its snapshot (a
    /// paging bug): which copy holds what the system holds now is unknown,
    /// so nothing about the entity is decided until a read lists it once.
    /// Set too for an entity that waits ([`PlanOptions::wait`]).
    pub(crate) listed_twice: bool,
}

impl<'a> EntityInput<'a> {
    /// Entity `id` (at baseline slot `slot`, if it has one) over `n` map
    /// systems, with nothing seen yet.
    #[inline]
    pub(crate) fn empty(slot: Option<u32>, id: EntityId, n: usize) -> Self {
        EntityInput {
            slot,
            id,
            sides: vec![Side::default(); n],
            absent: Vec::new(),
            listed_twice: false,
        }
    }
}

/// What one system's snapshot holds of an entity to plan.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Side<'a> {
    /// The record seen (linked, or linked by this plan).
    pub(crate) seen: Option<&'a Record>,
    /// The seen record's content hash (0 if none).
    pub(crate) hash: u64,
    /// Deletion evidence (a tombstone, or absent from a complete snapshot).
    pub(crate) deleted: bool,
    /// The record was linked by this plan.
    pub(crate) new_link: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::map;
    use crate::mapping::Field;

    #[test]
    fn baseline_fields_are_found_by_name_where_the_map_has_them_elsewhere() {
        let engine = crate::SyncEngine::new(map());
        let record = |id: &str, phone: bool| {
            let r = Record::new(id).field("email", "a@x.io");
            let r = if phone { r.field("phone", "555") } else { r };
            r.field("name", "Ann")
        };
        let snaps = [
            Snapshot::complete("crm", vec![record("c1", true)]),
            Snapshot::complete("shop", vec![record("s1", false)]),
            Snapshot::complete("erp", vec![record("e1", true)]),
        ];
        let mut baseline = Baseline::new();
        let plan = engine.plan(&baseline, &snaps).expect("plan");
        engine
            .commit(&mut baseline, &plan, &crate::Outcomes::all_applied(&plan))
            .expect("commit");
        assert_eq!(baseline.field_slot("name"), Some(2));
        // A map without phone has name second; the baseline keeps it third.
        let narrower = FieldMap::builder()
            .object("contacts")
            .systems(["crm", "shop", "erp"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("name"))
            .build()
            .expect("a valid map");
        let hints = Hints::new(&narrower);
        let cx = Cx::new(&narrower, &hints, &baseline, &[], &PlanOptions::default()).expect("cx");
        assert_eq!(cx.field_slot, [Some(0), Some(2)]);
    }
}

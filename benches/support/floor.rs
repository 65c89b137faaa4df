//! The floor: the simplest fast hand-written three-way compare.
//!
//! Records are vectors sorted by id with their fields aligned by index
//! (`Vec<Value>` in [`FIELDS`](super::FIELDS) order); the baseline is the same
//! form (one value per field, every system's id). One merge pass walks the
//! baseline and every system's records together and produces the writes per
//! system. No mapping, no normalization, no policy beyond "changed on one side
//! wins; changed on several sides: the first system wins". A record the
//! baseline does not know is created in the other systems; a linked record
//! that is gone is deleted in the others.
//!
//! The merge relies on the baseline being in the same order as each
//! system's ids, which the generated ids guarantee (entity order is id order
//! in every system).

use serde_json::Value;

use super::{per_system, GenRecord, Spec, State};

/// Systems the floor handles at most (it keeps per-entity state on the stack).
const MAX_SYSTEMS: usize = 4;

/// One record: its id and its values by field index.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorRecord {
    /// The native id.
    pub id: String,
    /// Values, aligned with the fields.
    pub values: Vec<Value>,
}

/// One entity of the floor's baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorEntity {
    /// The record id in each system (`None`: not linked there yet).
    pub ids: Vec<Option<String>>,
    /// The last synced values, aligned with the fields.
    pub values: Vec<Value>,
}

/// The floor's baseline: entities in id order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloorBaseline {
    /// The entities.
    pub entities: Vec<FloorEntity>,
}

/// An update of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorWrite {
    /// The target record's id.
    pub record: String,
    /// Field index and new value.
    pub fields: Vec<(u16, Value)>,
}

/// A record to create in a target system.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorCreate {
    /// The system the record came from.
    pub from: u8,
    /// Its id there.
    pub record: String,
    /// Its values.
    pub values: Vec<Value>,
}

/// The floor's plan: writes per target system, and what commit needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloorPlan {
    /// Per target system: updates.
    pub updates: Vec<Vec<FloorWrite>>,
    /// Per target system: creates.
    pub creates: Vec<Vec<FloorCreate>>,
    /// Per target system: ids of records to delete.
    pub deletes: Vec<Vec<String>>,
    /// Entity index and the new values of its changed fields.
    pub canonical: Vec<(usize, Vec<(u16, Value)>)>,
    /// Indexes of deleted entities, ascending.
    pub gone: Vec<usize>,
}

impl FloorPlan {
    fn new(systems: usize) -> FloorPlan {
        FloorPlan {
            updates: vec![Vec::new(); systems],
            creates: vec![Vec::new(); systems],
            deletes: vec![Vec::new(); systems],
            canonical: Vec::new(),
            gone: Vec::new(),
        }
    }

    fn create(&mut self, from: usize, r: &FloorRecord) {
        for t in 0..self.creates.len() {
            if t != from {
                self.creates[t].push(FloorCreate {
                    from: from as u8,
                    record: r.id.clone(),
                    values: r.values.clone(),
                });
            }
        }
    }

    /// The writes the plan has: updates, creates and deletes.
    pub fn writes(&self) -> String {
        let (u, c, d) = (
            total(&self.updates),
            total(&self.creates),
            total(&self.deletes),
        );
        format!(
            "{} writes ({u} updates, {c} creates, {d} deletes)",
            u + c + d
        )
    }
}

/// A generated record in the floor's form.
pub fn to_floor(g: GenRecord) -> FloorRecord {
    FloorRecord {
        id: g.id(),
        values: g.values,
    }
}

/// Every system's records in `state`, sorted by id.
pub fn snapshots(spec: &Spec, state: State) -> Vec<Vec<FloorRecord>> {
    per_system(spec, state, to_floor)
}

/// The baseline after the initial sync.
pub fn baseline(spec: &Spec) -> FloorBaseline {
    let mut entities = Vec::with_capacity(spec.n);
    spec.entities(|i, values| {
        entities.push(FloorEntity {
            ids: (0..spec.systems)
                .map(|s| Some(super::data::record_id(s, i)))
                .collect(),
            values,
        });
    });
    FloorBaseline { entities }
}

/// `k` edited records of the first system, sorted by id.
pub fn increment(spec: &Spec, k: usize) -> Vec<FloorRecord> {
    let mut out = Vec::with_capacity(k);
    spec.increment(k, |g| out.push(to_floor(g)));
    out
}

/// The full three-way compare of complete snapshots against the baseline,
/// in one merge pass.
pub fn plan(base: &FloorBaseline, snaps: &[Vec<FloorRecord>]) -> FloorPlan {
    let ns = snaps.len();
    assert!(ns <= MAX_SYSTEMS);
    let mut plan = FloorPlan::new(ns);
    let mut pos = [0usize; MAX_SYSTEMS];
    for (ei, e) in base.entities.iter().enumerate() {
        let mut cur: [Option<&FloorRecord>; MAX_SYSTEMS] = [None; MAX_SYSTEMS];
        let mut missing = false;
        for s in 0..ns {
            let Some(id) = e.ids[s].as_deref() else {
                continue;
            };
            let recs = &snaps[s];
            while pos[s] < recs.len() && recs[pos[s]].id.as_str() < id {
                plan.create(s, &recs[pos[s]]);
                pos[s] += 1;
            }
            if pos[s] < recs.len() && recs[pos[s]].id == id {
                cur[s] = Some(&recs[pos[s]]);
                pos[s] += 1;
            } else {
                missing = true;
            }
        }
        if missing {
            for (s, r) in cur[..ns].iter().enumerate() {
                if let Some(r) = r {
                    plan.deletes[s].push(r.id.clone());
                }
            }
            plan.gone.push(ei);
            continue;
        }
        let mut canon: Vec<(u16, Value)> = Vec::new();
        let mut writes: [Vec<(u16, Value)>; MAX_SYSTEMS] = Default::default();
        for (f, old) in e.values.iter().enumerate() {
            let Some(new) = cur[..ns]
                .iter()
                .flatten()
                .map(|r| &r.values[f])
                .find(|v| *v != old)
            else {
                continue;
            };
            for s in 0..ns {
                if let Some(r) = cur[s] {
                    if r.values[f] != *new {
                        writes[s].push((f as u16, new.clone()));
                    }
                }
            }
            canon.push((f as u16, new.clone()));
        }
        if !canon.is_empty() {
            for s in 0..ns {
                if let (Some(r), false) = (cur[s], writes[s].is_empty()) {
                    plan.updates[s].push(FloorWrite {
                        record: r.id.clone(),
                        fields: std::mem::take(&mut writes[s]),
                    });
                }
            }
            plan.canonical.push((ei, canon));
        }
    }
    for s in 0..ns {
        for r in &snaps[s][pos[s]..] {
            plan.create(s, r);
        }
    }
    plan
}

/// The three-way compare of `k` records of system `s` (a partial snapshot:
/// the other systems are taken to hold the baseline), each found by binary
/// search.
pub fn plan_partial(base: &FloorBaseline, s: usize, recs: &[FloorRecord]) -> FloorPlan {
    let ns = base.entities.first().map_or(0, |e| e.ids.len());
    let mut plan = FloorPlan::new(ns);
    for r in recs {
        let found = base
            .entities
            .binary_search_by(|e| e.ids[s].as_deref().unwrap_or("").cmp(r.id.as_str()));
        let Ok(ei) = found else {
            plan.create(s, r);
            continue;
        };
        let e = &base.entities[ei];
        let mut canon: Vec<(u16, Value)> = Vec::new();
        for (f, (new, old)) in r.values.iter().zip(&e.values).enumerate() {
            if new != old {
                canon.push((f as u16, new.clone()));
            }
        }
        if canon.is_empty() {
            continue;
        }
        for (t, id) in e.ids.iter().enumerate() {
            if let (Some(id), true) = (id, t != s) {
                plan.updates[t].push(FloorWrite {
                    record: id.clone(),
                    fields: canon.clone(),
                });
            }
        }
        plan.canonical.push((ei, canon));
    }
    plan
}

/// Applies a plan as if every write succeeded: new values, deleted entities
/// dropped, created records become entities (linked in their own system;
/// the created records' ids would come back from the targets).
pub fn commit(base: &mut FloorBaseline, plan: &FloorPlan) {
    for (ei, fields) in &plan.canonical {
        let e = &mut base.entities[*ei];
        for (f, v) in fields {
            e.values[*f as usize] = v.clone();
        }
    }
    if !plan.gone.is_empty() {
        let mut gone = plan.gone.iter().peekable();
        let mut i = 0;
        base.entities.retain(|_| {
            let keep = gone.peek() != Some(&&i);
            if !keep {
                gone.next();
            }
            i += 1;
            keep
        });
    }
    let ns = plan.creates.len();
    for (t, creates) in plan.creates.iter().enumerate() {
        for c in creates {
            // Each new record is listed once per target; take it once.
            let first_target = usize::from(c.from == 0);
            if t != first_target {
                continue;
            }
            let mut ids = vec![None; ns];
            ids[usize::from(c.from)] = Some(c.record.clone());
            base.entities.push(FloorEntity {
                ids,
                values: c.values.clone(),
            });
        }
    }
}

/// Items in all of the per-system lists.
fn total<T>(per_system: &[Vec<T>]) -> usize {
    per_system.iter().map(Vec::len).sum()
}

//! The typical user's version: what most of us would write first.
//!
//! Each system's records are a `HashMap<String, IndexMap<String, Value>>` by
//! record id; the baseline is the same map by entity id (with each entity's
//! record id per system) plus, per system, a map from record id to entity id.
//! Fields are compared one by one by name. Same rules as the floor: changed
//! on one side wins; changed on several sides: the first system wins; unknown
//! records are created in the other systems, gone ones deleted.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::{per_system, GenRecord, Spec, State, FIELDS, SYSTEMS};

/// A record's fields by name.
pub type Fields = IndexMap<String, Value>;

/// One system's records by id.
pub type TypicalSnapshot = HashMap<String, Fields>;

/// One entity of the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct TypicalEntity {
    /// Record id per system (empty: not linked there yet).
    pub ids: Vec<String>,
    /// The last synced values by field name.
    pub fields: Fields,
}

/// The typical user's baseline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypicalBaseline {
    /// Entities by entity id.
    pub entities: HashMap<String, TypicalEntity>,
    /// Per system: record id to entity id.
    pub links: Vec<HashMap<String, String>>,
}

/// The typical user's plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypicalPlan {
    /// Per target system: record id and the fields to write.
    pub updates: Vec<Vec<(String, Fields)>>,
    /// Per target system: the source system, record id and fields of records
    /// to create.
    pub creates: Vec<Vec<(usize, String, Fields)>>,
    /// Per target system: ids of records to delete.
    pub deletes: Vec<Vec<String>>,
    /// Entity id and the new values of its changed fields.
    pub canonical: Vec<(String, Fields)>,
    /// Deleted entities.
    pub gone: Vec<String>,
}

impl TypicalPlan {
    fn new(systems: usize) -> TypicalPlan {
        TypicalPlan {
            updates: vec![Vec::new(); systems],
            creates: vec![Vec::new(); systems],
            deletes: vec![Vec::new(); systems],
            ..TypicalPlan::default()
        }
    }

    fn create(&mut self, from: usize, id: &str, fields: &Fields) {
        for t in 0..self.creates.len() {
            if t != from {
                self.creates[t].push((from, id.to_string(), fields.clone()));
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

fn fields(values: Vec<Value>) -> Fields {
    FIELDS
        .iter()
        .map(|f| (*f).to_string())
        .zip(values)
        .collect()
}

/// A generated record in the typical user's form.
pub fn to_typical(g: GenRecord) -> (String, Fields) {
    (g.id(), fields(g.values))
}

/// Every system's records in `state`, by id.
pub fn snapshots(spec: &Spec, state: State) -> Vec<TypicalSnapshot> {
    per_system(spec, state, to_typical)
        .into_iter()
        .map(|records| {
            let mut map = HashMap::with_capacity(records.len());
            map.extend(records);
            map
        })
        .collect()
}

/// The baseline after the initial sync.
pub fn baseline(spec: &Spec) -> TypicalBaseline {
    let mut base = TypicalBaseline {
        entities: HashMap::with_capacity(spec.n),
        links: (0..spec.systems)
            .map(|_| HashMap::with_capacity(spec.n))
            .collect(),
    };
    spec.entities(|i, values| {
        let ids: Vec<String> = (0..spec.systems)
            .map(|s| super::data::record_id(s, i))
            .collect();
        let eid = format!("{}:{}", SYSTEMS[0], ids[0]);
        for (s, id) in ids.iter().enumerate() {
            base.links[s].insert(id.clone(), eid.clone());
        }
        base.entities.insert(
            eid,
            TypicalEntity {
                ids,
                fields: fields(values),
            },
        );
    });
    base
}

/// `k` edited records of the first system, by id.
pub fn increment(spec: &Spec, k: usize) -> TypicalSnapshot {
    let mut out = HashMap::with_capacity(k);
    spec.increment(k, |g| {
        let (id, f) = to_typical(g);
        out.insert(id, f);
    });
    out
}

/// The full three-way compare of complete snapshots against the baseline.
pub fn plan(base: &TypicalBaseline, snaps: &[TypicalSnapshot]) -> TypicalPlan {
    let mut plan = TypicalPlan::new(snaps.len());
    for (eid, entity) in &base.entities {
        let records: Vec<Option<&Fields>> = snaps
            .iter()
            .enumerate()
            .map(|(s, snap)| snap.get(&entity.ids[s]))
            .collect();
        if records.iter().any(Option::is_none) {
            for (s, r) in records.iter().enumerate() {
                if r.is_some() {
                    plan.deletes[s].push(entity.ids[s].clone());
                }
            }
            plan.gone.push(eid.clone());
            continue;
        }
        let mut changed = Fields::new();
        for (name, old) in &entity.fields {
            for record in records.iter().flatten() {
                if let Some(new) = record.get(name) {
                    if new != old {
                        changed.insert(name.clone(), new.clone());
                        break;
                    }
                }
            }
        }
        if changed.is_empty() {
            continue;
        }
        for (s, record) in records.iter().enumerate() {
            let Some(record) = record else { continue };
            let mut update = Fields::new();
            for (name, value) in &changed {
                if record.get(name) != Some(value) {
                    update.insert(name.clone(), value.clone());
                }
            }
            if !update.is_empty() {
                plan.updates[s].push((entity.ids[s].clone(), update));
            }
        }
        plan.canonical.push((eid.clone(), changed));
    }
    for (s, snap) in snaps.iter().enumerate() {
        for (id, fields) in snap {
            if !base.links[s].contains_key(id) {
                plan.create(s, id, fields);
            }
        }
    }
    plan
}

/// The three-way compare of a partial snapshot of system `s` (the other
/// systems are taken to hold the baseline).
pub fn plan_partial(base: &TypicalBaseline, s: usize, snap: &TypicalSnapshot) -> TypicalPlan {
    let mut plan = TypicalPlan::new(base.links.len());
    for (id, record) in snap {
        let Some(entity) = base.links[s].get(id).and_then(|e| base.entities.get(e)) else {
            plan.create(s, id, record);
            continue;
        };
        let mut changed = Fields::new();
        for (name, old) in &entity.fields {
            if let Some(new) = record.get(name) {
                if new != old {
                    changed.insert(name.clone(), new.clone());
                }
            }
        }
        if changed.is_empty() {
            continue;
        }
        for (t, target) in entity.ids.iter().enumerate() {
            if t != s && !target.is_empty() {
                plan.updates[t].push((target.clone(), changed.clone()));
            }
        }
        let eid = &base.links[s][id];
        plan.canonical.push((eid.clone(), changed));
    }
    plan
}

/// Applies a plan as if every write succeeded.
pub fn commit(base: &mut TypicalBaseline, plan: &TypicalPlan) {
    for (eid, changed) in &plan.canonical {
        if let Some(entity) = base.entities.get_mut(eid) {
            for (name, value) in changed {
                entity.fields.insert(name.clone(), value.clone());
            }
        }
    }
    for eid in &plan.gone {
        if let Some(entity) = base.entities.remove(eid) {
            for (s, id) in entity.ids.iter().enumerate() {
                base.links[s].remove(id);
            }
        }
    }
    let ns = base.links.len();
    for (t, creates) in plan.creates.iter().enumerate() {
        for (from, id, fields) in creates {
            // Each new record is listed once per target; take it once.
            if t != usize::from(*from == 0) {
                continue;
            }
            let eid = format!("{}:{}", SYSTEMS[*from], id);
            let mut ids = vec![String::new(); ns];
            ids[*from].clone_from(id);
            base.links[*from].insert(id.clone(), eid.clone());
            base.entities.insert(
                eid,
                TypicalEntity {
                    ids,
                    fields: fields.clone(),
                },
            );
        }
    }
}

/// Items in all of the per-system lists.
fn total<T>(per_system: &[Vec<T>]) -> usize {
    per_system.iter().map(Vec::len).sum()
}

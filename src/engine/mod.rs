//! [`SyncEngine`]: plan and commit, pure and deterministic.
//!
//! For each entity and canonical field: **detect** which sources changed it
//! (current native value against the shadow, after normalization); **decide**
//! the canonical value (none changed: it stays; one changed or all agree: it
//! wins; several disagree: the field's policy); **propagate** it to every
//! target whose value differs; after the host reports outcomes, **commit**
//! advances canonical values and shadows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::baseline::{Baseline, Entity, EntityId, Held, Link, Observed};
use crate::hash::StableHasher;
use crate::mapping::{FieldMap, Mapped, MappingError};
use crate::model::{is_empty_value, Coverage, Record, Snapshot, SystemId};
use crate::plan::*;
use crate::policy::{self, Candidate, ConflictInput, ConflictPolicy, Decision};

/// Plans and commits syncs for one [`FieldMap`].
#[derive(Debug, Clone)]
pub struct SyncEngine {
    map: FieldMap,
}

/// Input the engine cannot plan from at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A snapshot is from a system the map does not have.
    #[error("snapshot from system {system}, which the map does not have")]
    UnknownSystem {
        /// The system.
        system: SystemId,
    },
    /// Two snapshots are from the same system.
    #[error("two snapshots from system {system}")]
    DuplicateSnapshot {
        /// The system.
        system: SystemId,
    },
}

/// Why a commit was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The plan was made from another baseline revision.
    #[error(
        "plan was made from baseline revision {plan}, but the baseline is at revision {baseline}"
    )]
    StalePlan {
        /// The plan's revision.
        plan: u64,
        /// The baseline's revision.
        baseline: u64,
    },
    /// An outcome names an op that is not in the plan.
    #[error("outcome for op {0}, which is not in the plan")]
    UnknownOp(OpId),
}

/// What became of one write op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpOutcome {
    /// The write was applied.
    Applied {
        /// For a create, the new record's native id (required: a create
        /// applied without one cannot be linked). Ignored for other ops.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record_id: Option<String>,
        /// The record's new version, if the system reports one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// The write failed; it is planned again next time.
    Failed {
        /// What went wrong.
        message: String,
    },
}

impl OpOutcome {
    /// Applied, with no new version reported.
    pub fn applied() -> Self {
        OpOutcome::Applied {
            record_id: None,
            version: None,
        }
    }

    /// A create applied, making the record `record_id`.
    pub fn created(record_id: impl Into<String>) -> Self {
        OpOutcome::Applied {
            record_id: Some(record_id.into()),
            version: None,
        }
    }

    /// Failed, with what went wrong.
    pub fn failed(message: impl Into<String>) -> Self {
        OpOutcome::Failed {
            message: message.into(),
        }
    }

    /// The same outcome with the record's new version, where applied.
    #[must_use]
    pub fn with_version(self, version: impl Into<String>) -> Self {
        match self {
            OpOutcome::Applied { record_id, .. } => OpOutcome::Applied {
                record_id,
                version: Some(version.into()),
            },
            failed => failed,
        }
    }
}

/// The outcome of each op of a plan. An op with no outcome counts as not
/// applied.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outcomes(BTreeMap<OpId, OpOutcome>);

impl Outcomes {
    /// No outcomes yet.
    pub fn new() -> Self {
        Outcomes::default()
    }

    /// Every op of `plan` applied.
    pub fn all_applied(plan: &SyncPlan) -> Self {
        Outcomes(
            plan.ops
                .iter()
                .map(|op| (op.id, OpOutcome::applied()))
                .collect(),
        )
    }

    /// Records an op's outcome.
    pub fn record(&mut self, op: OpId, outcome: OpOutcome) -> &mut Self {
        self.0.insert(op, outcome);
        self
    }

    /// An op's outcome.
    pub fn get(&self, op: OpId) -> Option<&OpOutcome> {
        self.0.get(&op)
    }
}

impl SyncEngine {
    /// An engine for `map`.
    pub fn new(map: FieldMap) -> Self {
        SyncEngine { map }
    }

    /// The map.
    pub fn map(&self) -> &FieldMap {
        &self.map
    }

    /// Plans a sync of `snapshots` against `baseline`. Input order does not
    /// matter; the same input always gives the same plan.
    pub fn plan(&self, baseline: &Baseline, snapshots: &[Snapshot]) -> Result<SyncPlan, PlanError> {
        let map = &self.map;
        let n = map.systems().len();
        let mut plan = SyncPlan {
            baseline_revision: baseline.revision(),
            ..SyncPlan::default()
        };
        // Per system: records by id, duplicates reported.
        #[allow(clippy::type_complexity)]
        let mut by_system: Vec<
            Option<(Coverage, BTreeMap<&str, &Record>, BTreeSet<&str>)>,
        > = (0..n).map(|_| None).collect();
        for snap in snapshots {
            let Some(s) = map.system_index(snap.system.as_str()) else {
                return Err(PlanError::UnknownSystem {
                    system: snap.system.clone(),
                });
            };
            if by_system[s].is_some() {
                return Err(PlanError::DuplicateSnapshot {
                    system: snap.system.clone(),
                });
            }
            let mut records: BTreeMap<&str, &Record> = BTreeMap::new();
            let mut dup = BTreeSet::new();
            for r in &snap.records {
                if records.insert(r.id.as_str(), r).is_some() {
                    dup.insert(r.id.as_str());
                }
            }
            for d in &dup {
                records.remove(d);
                plan.issues.push(Issue {
                    system: snap.system.clone(),
                    record_id: (*d).to_owned(),
                    entity: None,
                    field: None,
                    kind: IssueKind::DuplicateRecordId,
                });
            }
            by_system[s] = Some((snap.coverage, records, dup));
        }

        // Which linked records were seen, deleted or are unlinked.
        let mut link_index: HashMap<(usize, &str), &EntityId> = HashMap::new();
        for (id, e) in baseline.entities_map() {
            for (sys, link) in &e.links {
                if let Some(s) = map.system_index(sys.as_str()) {
                    link_index.insert((s, link.id.as_str()), id);
                }
            }
        }
        let mut seen: BTreeMap<EntityId, Vec<Option<&Record>>> = BTreeMap::new();
        let mut deleted: BTreeMap<EntityId, BTreeSet<usize>> = BTreeMap::new();
        let mut unlinked: Vec<(usize, &Record)> = Vec::new();
        for (s, entry) in by_system.iter().enumerate() {
            let Some((coverage, records, dup)) = entry else {
                continue;
            };
            for (rid, r) in records {
                match link_index.get(&(s, *rid)) {
                    Some(eid) if r.deleted => {
                        deleted.entry((*eid).clone()).or_default().insert(s);
                    }
                    Some(eid) => {
                        seen.entry((*eid).clone()).or_insert_with(|| vec![None; n])[s] = Some(r);
                    }
                    None if r.deleted => {}
                    None => unlinked.push((s, r)),
                }
            }
            if *coverage == Coverage::Complete {
                let sys = &map.systems()[s];
                for (eid, e) in baseline.entities_map() {
                    if let Some(link) = e.links.get(sys) {
                        // A duplicated id was there, just ambiguous: not a delete.
                        let id = link.id.as_str();
                        if !records.contains_key(id) && !dup.contains(id) {
                            deleted.entry(eid.clone()).or_default().insert(s);
                        }
                    }
                }
            }
        }

        // Link unlinked records by key.
        let new_entities = self.match_unlinked(baseline, unlinked, &mut plan);
        let mut new_links: BTreeMap<EntityId, Vec<(usize, &Record)>> = BTreeMap::new();
        for (eid, recs) in new_entities {
            for (s, r) in &recs {
                seen.entry(eid.clone()).or_insert_with(|| vec![None; n])[*s] = Some(r);
            }
            new_links.insert(eid, recs);
        }

        let mut examine: BTreeSet<EntityId> = seen.keys().cloned().collect();
        examine.extend(deleted.keys().cloned());
        for (id, e) in baseline.entities_map() {
            if e.unsettled || !e.held.is_empty() {
                examine.insert(id.clone());
            }
        }
        let empty = Entity::default();
        let unseen = vec![None; n];
        let no_deletes = BTreeSet::new();
        for eid in examine {
            let entity = baseline.entity(&eid).unwrap_or(&empty);
            let seen_here = seen.get(&eid).unwrap_or(&unseen);
            let gone = deleted.get(&eid).unwrap_or(&no_deletes);
            let links = new_links.get(&eid).map(Vec::as_slice).unwrap_or(&[]);
            self.plan_entity(&eid, entity, seen_here, gone, links, &mut plan);
        }
        Ok(plan)
    }

    fn match_unlinked<'r>(
        &self,
        baseline: &Baseline,
        unlinked: Vec<(usize, &'r Record)>,
        plan: &mut SyncPlan,
    ) -> BTreeMap<EntityId, Vec<(usize, &'r Record)>> {
        let map = &self.map;
        let mut out = BTreeMap::new();
        let issue = |s: usize, r: &Record, kind: IssueKind| Issue {
            system: map.systems()[s].clone(),
            record_id: r.id.clone(),
            entity: None,
            field: None,
            kind,
        };
        let Some(key) = map.key_field() else {
            for (s, r) in unlinked {
                plan.issues.push(issue(s, r, IssueKind::NoKey));
            }
            return out;
        };
        let norm = |v: &Value| -> Option<String> {
            match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_lowercase()),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        Some(format!("{f:.0}"))
                    }
                    _ => Some(n.to_string()),
                },
                _ => None,
            }
        };
        let mut groups: BTreeMap<String, Vec<(usize, &Record)>> = BTreeMap::new();
        for (s, r) in unlinked {
            let value =
                key.native_at(s)
                    .and_then(|nat| r.get(nat))
                    .and_then(|v| match key.read(s, v) {
                        Mapped::Value(v) => norm(&v),
                        Mapped::Skip | Mapped::Failed(_) => None,
                    });
            match value {
                Some(k) => groups.entry(k).or_default().push((s, r)),
                None => plan.issues.push(issue(s, r, IssueKind::NoKey)),
            }
        }
        if groups.is_empty() {
            return out;
        }
        let mut existing: HashMap<String, Vec<&EntityId>> = HashMap::new();
        for (id, e) in baseline.entities_map() {
            if let Some(k) = e.canonical(key.name()).and_then(norm) {
                existing.entry(k).or_default().push(id);
            }
        }
        for (k, mut recs) in groups {
            recs.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
            let ents = existing.get(&k).cloned().unwrap_or_default();
            let per_system_dup = recs.windows(2).any(|w| w[0].0 == w[1].0);
            let taken = ents.first().map(|e| {
                baseline
                    .entity(e)
                    .map(|ent| {
                        recs.iter()
                            .any(|(s, _)| ent.links.contains_key(&map.systems()[*s]))
                    })
                    .unwrap_or(false)
            });
            if per_system_dup || ents.len() > 1 || taken == Some(true) {
                let mut candidates: Vec<(SystemId, String)> = recs
                    .iter()
                    .map(|(s, r)| (map.systems()[*s].clone(), r.id.clone()))
                    .collect();
                for e in &ents {
                    if let Some(ent) = baseline.entity(e) {
                        for (sys, l) in &ent.links {
                            candidates.push((sys.clone(), l.id.clone()));
                        }
                    }
                }
                for (s, r) in &recs {
                    plan.issues.push(issue(
                        *s,
                        r,
                        IssueKind::AmbiguousMatch {
                            key: k.clone(),
                            candidates: candidates.clone(),
                        },
                    ));
                }
                continue;
            }
            match ents.first() {
                Some(e) => {
                    out.insert((*e).clone(), recs);
                }
                None if recs.len() >= 2 => {
                    let (s, r) = recs[0];
                    out.insert(EntityId::from_link(&map.systems()[s], &r.id), recs);
                }
                None => {
                    for (s, r) in recs {
                        plan.issues.push(issue(s, r, IssueKind::Unmatched));
                    }
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_lines)]
    fn plan_entity(
        &self,
        eid: &EntityId,
        entity: &Entity,
        seen: &[Option<&Record>],
        gone: &BTreeSet<usize>,
        new_links: &[(usize, &Record)],
        plan: &mut SyncPlan,
    ) {
        let map = &self.map;
        let systems = map.systems();
        let mut change = EntityChange {
            entity: eid.clone(),
            ..EntityChange::default()
        };
        for (s, r) in new_links {
            change
                .links
                .push((systems[*s].clone(), r.id.clone(), r.version.clone()));
        }
        for (s, r) in seen.iter().enumerate() {
            if let Some(r) = r {
                let known = entity.links.get(&systems[s]);
                if known.is_some_and(|l| l.version != r.version) {
                    change
                        .links
                        .push((systems[s].clone(), r.id.clone(), r.version.clone()));
                }
            }
        }
        for s in gone {
            let sys = &systems[*s];
            if let Some(l) = entity.links.get(sys) {
                plan.held.push(Hold {
                    entity: eid.clone(),
                    field: None,
                    kind: HoldKind::Deleted {
                        system: sys.clone(),
                        record_id: l.id.clone(),
                    },
                });
            }
        }
        let linked: Vec<bool> = (0..systems.len())
            .map(|s| {
                // Newly linked records are among the seen ones.
                !gone.contains(&s) && (seen[s].is_some() || entity.links.contains_key(&systems[s]))
            })
            .collect();
        // Per target: field writes.
        let mut writes: Vec<Vec<(FieldWrite, Option<Value>)>> = vec![Vec::new(); systems.len()];

        for field in map.fields() {
            let name = field.name();
            let norm = field.normalization();
            let held_before = entity.held.get(name);
            let shadow = |s: usize| entity.shadow(systems[s].as_str(), name);
            // Current native value of each system, where known.
            let current = |s: usize| -> Option<(&Value, Option<chrono::DateTime<chrono::Utc>>)> {
                let nat = field.native_at(s)?;
                // A record seen without the field says nothing about it: fall
                // back to what a hold last observed, so it is not forgotten.
                seen[s]
                    .and_then(|r| r.get(nat).map(|v| (v, r.changed_at(nat))))
                    .or_else(|| {
                        held_before
                            .and_then(|h| h.observed.get(&systems[s]))
                            .map(|o| (&o.value, o.changed_at))
                    })
            };
            // Detect.
            let mut cands: Vec<(usize, &Value, Value, Option<chrono::DateTime<chrono::Utc>>)> =
                Vec::new();
            let mut unreadable = false;
            let mut unmapped = Vec::new();
            let issue = |s: usize, e: MappingError| Issue {
                system: systems[s].clone(),
                record_id: seen[s].map(|r| r.id.clone()).unwrap_or_default(),
                entity: Some(eid.clone()),
                field: Some(name.to_owned()),
                kind: IssueKind::Transform {
                    message: e.to_string(),
                    value: e.value().clone(),
                },
            };
            for s in 0..systems.len() {
                if !linked[s] || !field.source_at(s) {
                    continue;
                }
                let Some((cur, at)) = current(s) else {
                    continue;
                };
                if norm.equal(Some(cur), shadow(s)) {
                    continue;
                }
                match field.read(s, cur) {
                    Mapped::Value(canon) => cands.push((s, cur, canon.into_owned(), at)),
                    // The unmapped policy says: this system's value is not read.
                    Mapped::Skip => {}
                    Mapped::Failed(e @ MappingError::Unmapped { .. }) => unmapped.push((s, cur, e)),
                    Mapped::Failed(e) => {
                        unreadable = true;
                        plan.issues.push(issue(s, e));
                    }
                }
            }
            // A value no value map row reads (a one-way row's target value)
            // is no change when it is what the map writes to that system for
            // the value the others hold: on first sight, or an echo.
            if !unmapped.is_empty() {
                let agreed = match cands.split_first() {
                    None => entity.canonical(name),
                    Some((first, rest)) => rest
                        .iter()
                        .all(|c| norm.equal(Some(&c.2), Some(&first.2)))
                        .then_some(&first.2),
                };
                for (s, cur, e) in unmapped {
                    let echo = agreed.is_some_and(|v| {
                        matches!(field.write(s, v), Mapped::Value(n) if norm.equal(Some(cur), Some(&n)))
                    });
                    if !echo {
                        unreadable = true;
                        plan.issues.push(issue(s, e));
                    }
                }
            }
            if unreadable {
                // Never decide without a source whose value could not be read:
                // the issue is reported and the field left alone.
                continue;
            }
            let canonical = entity.canonical(name);
            // Decide.
            let mut held = false;
            let mut conflict_id = None;
            let mut decided: Option<(Value, Reason)> = None;
            let mut live: Vec<_> = cands.iter().collect();
            if field.no_overwrite_on_empty() && canonical.is_some_and(|c| !is_empty_value(c)) {
                let authority = match field.policy() {
                    ConflictPolicy::Authority { system, .. } => map.system_index(system.as_str()),
                    _ => None,
                };
                let mut authority_emptied = false;
                live.retain(|(s, _, canon, _)| {
                    if is_empty_value(canon) {
                        plan.held.push(Hold {
                            entity: eid.clone(),
                            field: Some(name.to_owned()),
                            kind: HoldKind::EmptyValue {
                                system: systems[*s].clone(),
                            },
                        });
                        authority_emptied |= Some(*s) == authority;
                        false
                    } else {
                        true
                    }
                });
                if live.len() < cands.len() && (live.is_empty() || authority_emptied) {
                    held = true;
                }
            }
            if !held && !live.is_empty() {
                let mut distinct: Vec<&Value> = Vec::new();
                for (_, _, c, _) in &live {
                    if !distinct.iter().any(|d| norm.equal(Some(d), Some(c))) {
                        distinct.push(c);
                    }
                }
                if distinct.len() == 1 {
                    let reason = if live.len() == 1 {
                        Reason::Changed {
                            system: systems[live[0].0].clone(),
                        }
                    } else {
                        Reason::Agreed {
                            systems: live.iter().map(|c| systems[c.0].clone()).collect(),
                        }
                    };
                    decided = Some((live[0].2.clone(), reason));
                } else {
                    let mut h = StableHasher::new("conflict");
                    h.str(eid.as_str());
                    h.str(name);
                    h.opt_value(canonical);
                    for (s, _, c, _) in &live {
                        h.str(systems[*s].as_str());
                        h.value(c);
                    }
                    let id = ConflictId(h.finish());
                    let resolution = held_before
                        .filter(|hb| hb.conflict == Some(id))
                        .and_then(|hb| hb.resolution.clone());
                    if let Some(v) = resolution {
                        decided = Some((v, Reason::Reviewed { conflict: id }));
                    } else {
                        let input_c: Vec<Candidate<'_>> = live
                            .iter()
                            .map(|(s, _, c, at)| Candidate {
                                system: &systems[*s],
                                value: c,
                                changed_at: *at,
                            })
                            .collect();
                        let input = ConflictInput {
                            entity: eid,
                            field: name,
                            baseline: canonical,
                            candidates: &input_c,
                        };
                        let stamps: Vec<_> = live
                            .iter()
                            .map(|(s, _, _, at)| (systems[*s].clone(), *at))
                            .collect();
                        match policy::decide(field.policy(), &input, map.skew_tolerance()) {
                            Decision::Take(i, rule) => {
                                let winner = systems[live[i].0].clone();
                                decided = Some((
                                    live[i].2.clone(),
                                    Reason::ConflictWon {
                                        winner,
                                        rule,
                                        candidates: stamps,
                                    },
                                ));
                            }
                            Decision::Value(v, resolver) => {
                                decided = Some((v, Reason::Resolver { resolver }))
                            }
                            Decision::Hold(by) => {
                                held = true;
                                conflict_id = Some(id);
                                plan.conflicts.push(Conflict {
                                    id,
                                    entity: eid.clone(),
                                    field: name.to_owned(),
                                    baseline: canonical.cloned(),
                                    candidates: live
                                        .iter()
                                        .map(|(s, _, c, at)| ConflictCandidate {
                                            system: systems[*s].clone(),
                                            value: c.clone(),
                                            changed_at: *at,
                                        })
                                        .collect(),
                                    held_by: by,
                                    sensitive: field.is_sensitive(),
                                });
                            }
                        }
                    }
                    if let Some(hb) = held_before {
                        if hb.resolution.is_some() && hb.conflict != Some(id) {
                            plan.issues.push(Issue {
                                system: systems[live[0].0].clone(),
                                record_id: seen[live[0].0]
                                    .map(|r| r.id.clone())
                                    .unwrap_or_default(),
                                entity: Some(eid.clone()),
                                field: Some(name.to_owned()),
                                kind: IssueKind::StaleResolution,
                            });
                        }
                    }
                }
            }
            if held {
                let observed = cands
                    .iter()
                    .map(|(s, native, _, at)| {
                        (
                            systems[*s].clone(),
                            Observed {
                                value: (*native).clone(),
                                changed_at: *at,
                            },
                        )
                    })
                    .collect();
                let resolution = held_before
                    .filter(|hb| hb.conflict == conflict_id)
                    .and_then(|hb| hb.resolution.clone());
                let new_held = Held {
                    conflict: conflict_id,
                    observed,
                    resolution,
                };
                if held_before != Some(&new_held) {
                    change.hold.push((name.to_owned(), new_held));
                }
                continue;
            }
            if held_before.is_some() {
                change.release.push(name.to_owned());
            }
            let (value, reason) = match decided {
                Some((v, r)) => (Some(v), r),
                None => (canonical.cloned(), Reason::Behind),
            };
            if let Some(v) = &value {
                if canonical != Some(v) {
                    change.canonical.push((name.to_owned(), v.clone()));
                }
            }
            // Sources' shadows adopt what they were seen holding.
            // A target seen for the first time starts its shadow at what it holds.
            for s in 0..systems.len() {
                let first_sight = field.target_at(s) && shadow(s).is_none();
                if !linked[s] || !(field.source_at(s) || first_sight) {
                    continue;
                }
                if let Some((cur, _)) = current(s) {
                    if shadow(s) != Some(cur) {
                        change
                            .shadows
                            .push((systems[s].clone(), name.to_owned(), cur.clone()));
                    }
                }
            }
            // Propagate.
            let Some(value) = value else { continue };
            for t in 0..systems.len() {
                if !linked[t] || !field.target_at(t) {
                    continue;
                }
                let Some(nat) = field.native_at(t) else {
                    continue;
                };
                let native = match field.write(t, &value) {
                    Mapped::Value(v) => v,
                    // The unmapped policy says: leave this target alone.
                    Mapped::Skip => continue,
                    Mapped::Failed(e) => {
                        plan.issues.push(Issue {
                            system: systems[t].clone(),
                            record_id: self.record_id(entity, seen, t),
                            entity: Some(eid.clone()),
                            field: Some(name.to_owned()),
                            kind: IssueKind::Transform {
                                message: e.to_string(),
                                value: e.value().clone(),
                            },
                        });
                        continue;
                    }
                };
                let observed_now = current(t).map(|(v, _)| v);
                // What the target will hold if not written: a source (or an
                // enforced target) keeps what it holds now; a one-way target
                // is judged by what it was last written.
                let expected = if field.source_at(t) || field.enforced() {
                    observed_now.or_else(|| shadow(t))
                } else {
                    shadow(t).or(observed_now)
                };
                if norm.equal(expected, Some(&native)) {
                    continue;
                }
                // A value the unmapped policy skips is left alone.
                if expected.is_some_and(|v| matches!(field.read(t, v), Mapped::Skip)) {
                    continue;
                }
                writes[t].push((
                    FieldWrite {
                        field: name.to_owned(),
                        native: nat.to_owned(),
                        value: native.into_owned(),
                        reason: reason.clone(),
                        sensitive: field.is_sensitive(),
                    },
                    expected.cloned(),
                ));
            }
        }

        for (t, fields) in writes.into_iter().enumerate() {
            if fields.is_empty() {
                continue;
            }
            let record_id = self.record_id(entity, seen, t);
            let mut h = StableHasher::new("update");
            h.str(systems[t].as_str());
            h.str(&record_id);
            for (w, before) in &fields {
                h.str(&w.native);
                h.opt_value(before.as_ref());
                h.value(&w.value);
            }
            let expected_version = seen[t].and_then(|r| r.version.clone()).or_else(|| {
                entity
                    .links
                    .get(&systems[t])
                    .and_then(|l| l.version.clone())
            });
            plan.ops.push(WriteOp {
                id: OpId(h.finish()),
                kind: OpKind::Update,
                object: map.object().to_owned(),
                system: systems[t].clone(),
                record_id: Some(record_id),
                entity: eid.clone(),
                expected_version,
                correlation: None,
                fields: fields.into_iter().map(|(w, _)| w).collect(),
            });
        }
        let touched = !change.links.is_empty()
            || !change.canonical.is_empty()
            || !change.shadows.is_empty()
            || !change.hold.is_empty()
            || !change.release.is_empty()
            || entity.unsettled
            || plan.ops.last().is_some_and(|op| &op.entity == eid);
        if touched {
            plan.changes.push(change);
        }
    }

    fn record_id(&self, entity: &Entity, seen: &[Option<&Record>], s: usize) -> String {
        seen[s]
            .map(|r| r.id.clone())
            .or_else(|| {
                entity
                    .link(self.map.systems()[s].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }

    /// Records what happened: canonical values advance, sources' shadows
    /// become what was seen, targets' shadows become what was written where
    /// the write was applied. An op that failed, or has no outcome, leaves its
    /// target's shadow behind, so the next plan writes it again.
    ///
    /// Checks the plan and outcomes first; on error the baseline is unchanged.
    pub fn commit(
        &self,
        baseline: &mut Baseline,
        plan: &SyncPlan,
        outcomes: &Outcomes,
    ) -> Result<(), CommitError> {
        if plan.baseline_revision != baseline.revision() {
            return Err(CommitError::StalePlan {
                plan: plan.baseline_revision,
                baseline: baseline.revision(),
            });
        }
        let ids: BTreeSet<OpId> = plan.ops.iter().map(|o| o.id).collect();
        if let Some(unknown) = outcomes.0.keys().find(|id| !ids.contains(id)) {
            return Err(CommitError::UnknownOp(*unknown));
        }
        let entities = baseline.entities_mut();
        for c in &plan.changes {
            let e = entities.entry(c.entity.clone()).or_default();
            for (s, id, version) in &c.links {
                e.links.insert(
                    s.clone(),
                    Link {
                        id: id.clone(),
                        version: version.clone(),
                    },
                );
            }
            for (f, v) in &c.canonical {
                e.canonical.insert(f.clone(), v.clone());
            }
            for (s, f, v) in &c.shadows {
                e.shadows
                    .entry(s.clone())
                    .or_default()
                    .insert(f.clone(), v.clone());
            }
            for f in &c.release {
                e.held.shift_remove(f);
            }
            for (f, h) in &c.hold {
                e.held.insert(f.clone(), h.clone());
            }
            e.unsettled = false;
        }
        for op in &plan.ops {
            let Some(e) = entities.get_mut(&op.entity) else {
                continue;
            };
            match outcomes.get(op.id) {
                Some(OpOutcome::Applied { version, .. }) => {
                    let shadow = e.shadows.entry(op.system.clone()).or_default();
                    for w in &op.fields {
                        shadow.insert(w.field.clone(), w.value.clone());
                    }
                    if let Some(link) = e.links.get_mut(&op.system) {
                        link.version = version.clone();
                    }
                }
                _ => e.unsettled = true,
            }
        }
        baseline.bump_revision();
        Ok(())
    }
}

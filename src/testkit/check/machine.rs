//! The sync machine the checker runs a drawn history through: records in
//! memory, one [`MemorySystem`] per system of the map, planned, written
//! (with faults) and committed by the engine, checked after every run and
//! once the runs settle.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::case::{Case, Fault, Pick, Step};
use super::{Promise, Stats};
use crate::engine::{OpOutcome, PlanOptions, SyncEngine};
use crate::guard::Refusal;
use crate::mapping::{Direction, FieldMap, FieldSpec, Normalization};
use crate::model::{is_empty_value, Snapshot};
use crate::plan::{IssueKind, OpKind, Reason, SyncPlan};
use crate::policy::ConflictPolicy;
use crate::testkit::{apply_with, snapshots, Fate, MemorySystem};
use crate::Baseline;
use crate::{EntityId, SystemId};

use super::domain::{read, typed};

/// How many fault-free runs the machine gives the systems to settle after
/// the last step.
const SETTLE_RUNS: usize = 8;

/// One object of the user's map, ready to run histories on.
pub(super) struct Object {
    pub(super) map: FieldMap,
    pub(super) engine: SyncEngine,
    /// Per field: its canonical values.
    pub(super) pools: Vec<Vec<Value>>,
    /// The fields a person types into (not references).
    pub(super) editable: Vec<usize>,
    /// Per field: values are compared under its normalization (one of
    /// recsync's own, or one the user trusts); otherwise exactly.
    pub(super) trusted: Vec<bool>,
}

/// A promise a history broke, and how.
pub(super) struct Broken {
    pub(super) promise: Promise,
    pub(super) what: String,
}

fn broken(promise: Promise, what: String) -> Broken {
    Broken { promise, what }
}

/// A value a person typed.
struct Claim {
    step: usize,
    sys: usize,
    record: String,
    field: usize,
    native: Value,
    canonical: Option<Value>,
    /// The entity's canonical value of the field when it was typed.
    decided: Option<Value>,
    /// Whether the value is a change from what the last read saw: one
    /// that is not supersedes the values typed before it, and is not
    /// checked itself.
    checked: bool,
    at: DateTime<Utc>,
}

/// A write the host never heard back from (its answer lost, or the host
/// died before its commit): the field and what it held before (no field
/// for a create, which wrote the whole record).
struct Unheard {
    step: usize,
    sys: usize,
    record: String,
    field: Option<usize>,
    before: Option<Value>,
}

/// A history being run.
pub(super) struct World<'a> {
    obj: &'a Object,
    case: &'a Case,
    /// Per field, per system: the native values a person types.
    typed: Vec<Vec<Vec<Value>>>,
    systems: Vec<MemorySystem>,
    baseline: Baseline,
    now: DateTime<Utc>,
    step: usize,
    runs: usize,
    claims: Vec<Claim>,
    /// Every entity each record was ever linked to, last one kept.
    ever: HashMap<(usize, String), EntityId>,
    /// The step of the run whose commit first linked each record.
    first_linked: HashMap<(usize, String), usize>,
    plans: Vec<(usize, SyncPlan)>,
    /// The steps the sync ran at.
    syncs: Vec<usize>,
    /// What the systems held when the last run was done.
    last_state: Vec<Snapshot>,
    unheard: Vec<Unheard>,
    refusal: Option<Refusal>,
    story: Option<Vec<String>>,
    pub(super) stats: Stats,
}

impl<'a> World<'a> {
    pub(super) fn new(obj: &'a Object, case: &'a Case, story: bool) -> Self {
        let systems = obj.map.systems();
        let typed = obj
            .map
            .fields()
            .iter()
            .enumerate()
            .map(|(fi, spec)| {
                let extra = case.extra.get(fi).map(Vec::as_slice).unwrap_or_default();
                systems
                    .iter()
                    .map(|s| {
                        let mut out: Vec<Value> = Vec::new();
                        for c in obj.pools[fi].iter().chain(extra) {
                            if let Some(n) = typed(spec, s.as_str(), c) {
                                if !out.contains(&n) {
                                    out.push(n);
                                }
                            }
                        }
                        out
                    })
                    .collect()
            })
            .collect();
        World {
            obj,
            case,
            typed,
            systems: systems
                .iter()
                .map(|s| MemorySystem::new(s.clone()))
                .collect(),
            baseline: Baseline::new(),
            now: DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
            step: 0,
            runs: 0,
            claims: Vec::new(),
            ever: HashMap::new(),
            first_linked: HashMap::new(),
            plans: Vec::new(),
            syncs: Vec::new(),
            last_state: Vec::new(),
            unheard: Vec::new(),
            refusal: None,
            story: story.then(Vec::new),
            stats: Stats::default(),
        }
    }

    /// Runs the history, lets the systems settle, and checks the promises.
    pub(super) fn run(&mut self) -> Result<(), Broken> {
        let case = self.case;
        for (i, step) in case.steps.iter().enumerate() {
            self.step = i + 1;
            match step {
                Step::Create { sys, fields, after } => self.create(*sys, fields, *after),
                Step::Edit {
                    sys,
                    record,
                    field,
                    pick,
                    after,
                } => self.edit(*sys, record, field, *pick, *after),
                Step::Delete { sys, record, after } => {
                    self.wait(*after);
                    if let Some(id) = self.pick_record(*sys, record) {
                        self.systems[*sys].remove(&id);
                        self.say(|w| format!("{} deletes {id}", w.name(*sys)));
                    }
                }
                Step::Sync { faults, dies } => {
                    self.sync(faults, !*dies)?;
                }
            }
        }
        self.step = case.steps.len() + 1;
        let last = self.settle()?;
        self.no_lost_update()?;
        self.convergence(&last)
    }

    /// A person types `canonical` into `field` of a new record in `sys`,
    /// and the sync runs until it settles; the promises are checked.
    pub(super) fn replay(&mut self, sys: usize, field: usize, native: Value) -> Result<(), Broken> {
        self.step = 1;
        let Some(name) = self
            .spec(field)
            .native_name(self.name(sys))
            .map(str::to_owned)
        else {
            return Ok(());
        };
        self.create_with(sys, vec![(field, name, native)]);
        self.step = 2;
        let last = self.settle()?;
        self.no_lost_update()?;
        self.convergence(&last)
    }

    /// What happened, step by step, once [`run`](Self::run) is done.
    pub(super) fn story(&self) -> Vec<String> {
        self.story.clone().unwrap_or_default()
    }

    fn name(&self, sys: usize) -> &str {
        self.obj.map.systems()[sys].as_str()
    }

    /// A run the engine refused to plan or commit.
    fn failed_to(&self, what: &str, e: &dyn std::fmt::Display) -> Broken {
        broken(
            Promise::Runs,
            format!("run {} could not {what}: {e}", self.runs),
        )
    }

    fn map_index(&self, system: &str) -> Option<usize> {
        self.obj.map.systems().iter().position(|s| s == system)
    }

    fn spec(&self, field: usize) -> &FieldSpec {
        &self.obj.map.fields()[field]
    }

    fn say(&mut self, line: impl FnOnce(&Self) -> String) {
        if self.story.is_some() {
            let line = format!("{:>3}. {}", self.step, line(self));
            if let Some(story) = &mut self.story {
                story.push(line);
            }
        }
    }

    /// A value as the story prints it: `[redacted]` for a sensitive field.
    pub(super) fn shown(&self, field: usize, value: Option<&Value>) -> String {
        shown(self.spec(field), value)
    }

    fn wait(&mut self, secs: u8) {
        self.now += TimeDelta::seconds(i64::from(secs));
    }

    fn pick_record(&self, sys: usize, index: &proptest::sample::Index) -> Option<String> {
        let system = &self.systems[sys];
        if system.is_empty() {
            return None;
        }
        let record = system.records().nth(index.index(system.len()))?;
        Some(record.id.clone())
    }

    fn typed_value(&self, field: usize, sys: usize, pick: Pick) -> Option<Value> {
        match pick {
            Pick::Empty => Some(Value::Null),
            Pick::Value(i) => {
                let values = &self.typed[field][sys];
                (!values.is_empty()).then(|| values[i.index(values.len())].clone())
            }
        }
    }

    fn claim(&mut self, sys: usize, record: &str, field: usize, native: &Value, checked: bool) {
        let canonical = if is_empty_value(native) {
            Some(Value::Null)
        } else {
            read(self.spec(field), self.name(sys), native)
        };
        let decided = self
            .baseline
            .find_linked(self.name(sys), record)
            .and_then(|e| e.canonical(self.spec(field).name()));
        self.claims.push(Claim {
            step: self.step,
            sys,
            record: record.to_owned(),
            field,
            native: native.clone(),
            canonical,
            decided,
            checked,
            at: self.now,
        });
    }

    fn create(&mut self, sys: usize, picks: &[Option<Pick>], after: u8) {
        self.wait(after);
        let mut values = Vec::new();
        for &field in &self.obj.editable {
            let Some(Some(pick)) = picks.get(field) else {
                continue;
            };
            let Some(native) = self.spec(field).native_name(self.name(sys)) else {
                continue;
            };
            if matches!(pick, Pick::Empty) {
                continue;
            }
            if let Some(value) = self.typed_value(field, sys, *pick) {
                values.push((field, native.to_owned(), value));
            }
        }
        self.create_with(sys, values);
    }

    /// A person creates a record in `sys` with these values: (field,
    /// native name, native value).
    fn create_with(&mut self, sys: usize, values: Vec<(usize, String, Value)>) {
        let now = self.now;
        // As APIs list records: every field the system has, null where
        // the person typed nothing.
        let system = self.name(sys);
        let mut fields: Vec<(String, Value)> = self
            .obj
            .map
            .fields()
            .iter()
            .filter_map(|f| f.native_name(system))
            .map(|n| (n.to_owned(), Value::Null))
            .collect();
        for (_, native, value) in &values {
            if let Some(slot) = fields.iter_mut().find(|(n, _)| n == native) {
                slot.1 = value.clone();
            }
        }
        let id = self.systems[sys].insert(fields, now);
        for (field, _, value) in &values {
            self.claim(sys, &id, *field, value, true);
        }
        self.say(|w| {
            let shown: Vec<String> = values
                .iter()
                .map(|(f, n, v)| format!("{n} {}", w.shown(*f, Some(v))))
                .collect();
            format!("{} creates {id}: {}", w.name(sys), shown.join(", "))
        });
    }

    fn edit(
        &mut self,
        sys: usize,
        record: &proptest::sample::Index,
        field: &proptest::sample::Index,
        pick: Pick,
        after: u8,
    ) {
        self.wait(after);
        let Some(id) = self.pick_record(sys, record) else {
            return;
        };
        if self.obj.editable.is_empty() {
            return;
        }
        let field = self.obj.editable[field.index(self.obj.editable.len())];
        let Some(native) = self
            .spec(field)
            .native_name(self.name(sys))
            .map(str::to_owned)
        else {
            return;
        };
        let Some(value) = self.typed_value(field, sys, pick) else {
            return;
        };
        let before = self.systems[sys]
            .record(&id)
            .and_then(|r| r.get(&native))
            .cloned();
        let unchanged = match &before {
            Some(b) => *b == value || (is_empty_value(b) && is_empty_value(&value)),
            None => is_empty_value(&value),
        };
        if unchanged {
            // Typing what the field holds changes nothing.
            return;
        }
        let now = self.now;
        if self.systems[sys]
            .edit(&id, [(native.clone(), value.clone())], now)
            .is_err()
        {
            return;
        }
        // A change the field's (trusted) normalization calls none is not
        // one: the engine is right to let a real change elsewhere win.
        let canonical = |v: &Value| {
            if is_empty_value(v) {
                Some(Value::Null)
            } else {
                read(self.spec(field), self.name(sys), v)
            }
        };
        let now_is = canonical(&value);
        let differs = |b: Option<&Value>| {
            let was = b.and_then(canonical);
            was.is_none()
                || now_is.is_none()
                || self.is_change(field, was.as_ref(), now_is.as_ref())
        };
        if differs(before.as_ref()) {
            // A change since the last read is one the engine can see; a
            // value put back to what the last read saw is none to it, but
            // still comes after the values typed before it.
            // What the engine compares it with: the record's shadow where it
            // is linked, else what it held when the last run was done.
            let shadow = self
                .baseline
                .find_linked(self.name(sys), &id)
                .and_then(|e| e.shadow(self.name(sys), self.spec(field).name()));
            let last = self
                .last_state
                .get(sys)
                .and_then(|snap| snap.records.iter().find(|r| r.id == id))
                .map(|r| r.get(&native).cloned().unwrap_or(Value::Null));
            let seen = match shadow {
                Some(sh) => differs(Some(&sh)),
                None => last.is_none_or(|r| differs(Some(&r))),
            };
            self.claim(sys, &id, field, &value, seen);
        }
        self.say(|w| {
            let v = w.shown(field, Some(&value));
            format!("{} edits {id}: {native} {v}", w.name(sys))
        });
    }

    /// One run: plan, check the plan, write with `faults`, commit unless
    /// the host died.
    fn sync(
        &mut self,
        faults: &[(proptest::sample::Index, Fault)],
        commit: bool,
    ) -> Result<SyncPlan, Broken> {
        self.now += TimeDelta::seconds(1);
        self.runs += 1;
        let snaps = snapshots(&self.systems);
        let plan = self.plan(&snaps)?;
        let n = plan.ops.len();
        let at = |i: &proptest::sample::Index| i.index(n.max(1));
        let crash = faults
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Crash))
            .map(|(i, _)| at(i))
            .min();
        let fate = |i: usize| {
            if crash.is_some_and(|c| i >= c) {
                return Fate::Skipped;
            }
            match faults.iter().find(|(p, _)| at(p) == i).map(|(_, f)| *f) {
                Some(Fault::Fail) => Fate::Failed,
                Some(Fault::Lost) => Fate::Lost,
                _ => Fate::Applied,
            }
        };
        let commit = commit && crash.is_none();
        self.say(|w| {
            let mut line = format!("run {}", w.runs);
            let mut notes = Vec::new();
            for i in 0..n {
                match fate(i) {
                    Fate::Failed => notes.push(format!("write {} fails", i + 1)),
                    Fate::Lost => notes.push(format!("write {} is made, its answer lost", i + 1)),
                    _ => {}
                }
            }
            if let Some(c) = crash.filter(|c| *c < n) {
                notes.push(format!("the host dies before write {}", c + 1));
            } else if !commit {
                notes.push("the host dies before it commits".to_owned());
            }
            if !notes.is_empty() {
                line.push_str(&format!(" ({})", notes.join("; ")));
            }
            format!("{line}:\n{}", indent(&plan.to_string()))
        });
        // The host commits the plan before it writes, every write awaiting
        // a read, so that a host dying before its last commit leaves a
        // baseline that knows what it may have written.
        let mut ahead = self.baseline.clone();
        self.obj
            .engine
            .commit(&mut ahead, &plan, &crate::Outcomes::new())
            .map_err(|e| self.failed_to("commit", &e))?;
        let outcomes = apply_with(&plan, &mut self.systems, self.now, |i, _| fate(i));
        self.syncs.push(self.step);
        self.unheard_writes(&plan, snaps.as_slice(), commit, &outcomes, &fate);
        self.rewrite(&plan, &outcomes);
        self.fill();
        self.linked_by(&plan);
        if !commit {
            self.baseline = ahead;
        } else {
            self.obj
                .engine
                .commit(&mut self.baseline, &plan, &outcomes)
                .map_err(|e| self.failed_to("commit", &e))?;
        }
        for entity in self.baseline.entities() {
            for (system, id) in entity.links() {
                if let Some(s) = self.map_index(system.as_str()) {
                    self.ever.insert((s, id.to_owned()), entity.id().clone());
                    self.first_linked
                        .entry((s, id.to_owned()))
                        .or_insert(self.step);
                }
            }
        }
        self.last_state = snapshots(&self.systems);
        self.stats.runs += 1;
        self.stats.writes += plan.ops.len();
        self.stats.conflicts += plan.conflicts.len();
        self.stats.held += plan.held.len();
        self.stats.issues += plan.issues.len();
        self.plans.push((self.step, plan.clone()));
        Ok(plan)
    }

    /// Plans, approving what a guard refused last time (as an operator
    /// would), and checks the plan keeps the map's policies.
    fn plan(&mut self, snaps: &[Snapshot]) -> Result<SyncPlan, Broken> {
        let mut options = PlanOptions::new();
        if let Some(refusal) = &self.refusal {
            options = options.approve(refusal);
        }
        let engine = &self.obj.engine;
        let plan = engine
            .plan_with(&self.baseline, snaps, &options)
            .map_err(|e| self.failed_to("plan", &e))?;
        let mut shuffled = snaps.to_vec();
        shuffled.reverse();
        for (i, s) in shuffled.iter_mut().enumerate() {
            s.records.reverse();
            let len = s.records.len();
            if len > 1 {
                s.records.rotate_left((self.step + i) % len);
            }
        }
        let again = engine
            .plan_with(&self.baseline, &shuffled, &options)
            .map_err(|e| self.failed_to("plan", &e))?;
        if again != plan {
            return Err(broken(
                Promise::Determinism,
                format!(
                    "run {} plans differently when the systems list their records in another order:\n{}\n  and\n{}",
                    self.runs,
                    indent(&plan.to_string()),
                    indent(&again.to_string())
                ),
            ));
        }
        self.refusal = plan.refusal.clone();
        self.policies(&plan, snaps)?;
        Ok(plan)
    }

    /// The map's own policies, in one plan: directions, the empty-value
    /// guard, authority, review.
    fn policies(&self, plan: &SyncPlan, snaps: &[Snapshot]) -> Result<(), Broken> {
        let map = &self.obj.map;
        for op in &plan.ops {
            let sys = map.systems().iter().position(|s| *s == op.system);
            for w in &op.fields {
                let Some(spec) = map.field(&w.field) else {
                    continue;
                };
                let run = self.runs;
                if !spec.is_target(op.system.as_str()) {
                    return Err(broken(
                        Promise::Directions,
                        format!(
                            "run {run} writes {} to {}, which the map does not write it to",
                            w.field, op.system
                        ),
                    ));
                }
                if spec.no_overwrite_on_empty()
                    && op.kind == OpKind::Update
                    && is_empty_value(&w.value)
                {
                    let held = sys
                        .and_then(|s| snaps.iter().find(|x| x.system == map.systems()[s]))
                        .and_then(|snap| {
                            snap.records
                                .iter()
                                .find(|r| Some(&r.id) == op.record_id.as_ref())
                        })
                        .and_then(|r| r.get(&w.native))
                        .is_some_and(|v| !is_empty_value(v));
                    if held {
                        return Err(broken(
                            Promise::NoOverwriteOnEmpty,
                            format!(
                                "run {run} empties {} in {} record {}, which the map guards with no-overwrite-on-empty",
                                w.field,
                                op.system,
                                op.record_id.as_deref().unwrap_or("?")
                            ),
                        ));
                    }
                }
                match (spec.policy(), &w.reason) {
                    (
                        ConflictPolicy::Authority { system, .. },
                        Reason::ConflictWon {
                            winner, candidates, ..
                        },
                    ) if candidates.iter().any(|(s, _)| s == system) && winner != system => {
                        return Err(broken(
                            Promise::Authority,
                            format!(
                                "run {run} writes {}'s value of {} over {}'s, which the map makes its authority",
                                winner, w.field, system
                            ),
                        ));
                    }
                    (
                        ConflictPolicy::ManualReview,
                        Reason::ConflictWon { .. } | Reason::Resolver { .. },
                    ) => {
                        return Err(broken(
                            Promise::ReviewHolds,
                            format!(
                                "run {run} decides a conflict on {} ({}), which the map holds for review",
                                w.field, w.reason
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Systems that store values in their own form: each value written is
    /// kept in another form its field's normalization calls the same.
    fn rewrite(&mut self, plan: &SyncPlan, outcomes: &crate::Outcomes) {
        for op in &plan.ops {
            let Some(sys) = self.map_index(op.system.as_str()) else {
                continue;
            };
            if !self.case.rewrites.get(sys).copied().unwrap_or(false) {
                continue;
            }
            let id = match outcomes.get(op.id) {
                Some(OpOutcome::Applied { record_id, .. }) => {
                    record_id.clone().or_else(|| op.record_id.clone())
                }
                _ => None,
            };
            let Some(id) = id else { continue };
            for w in &op.fields {
                let Some(spec) = self.obj.map.field(&w.field) else {
                    continue;
                };
                let Some(stored) = own_form(spec, op.system.as_str(), &w.value) else {
                    continue;
                };
                let now = self.now;
                if let Some(record) = self.systems[sys].record_mut(&id) {
                    record.edit(w.native.as_str(), stored, now);
                }
            }
        }
    }

    /// Remembers the writes of a run the host never heard back from: their
    /// answer lost, or the run not committed.
    fn unheard_writes(
        &mut self,
        plan: &SyncPlan,
        snaps: &[Snapshot],
        commit: bool,
        outcomes: &crate::Outcomes,
        fate: &dyn Fn(usize) -> Fate,
    ) {
        for (i, op) in plan.ops.iter().enumerate() {
            // Every update awaits the next read; a create only where its
            // answer was never heard.
            let heard = commit && outcomes.get(op.id).is_some();
            let awaited = match op.kind {
                OpKind::Update => true,
                OpKind::Create => !heard,
                _ => false,
            };
            if !awaited || matches!(fate(i), Fate::Failed | Fate::Skipped) {
                continue;
            }
            let Some(sys) = self.map_index(op.system.as_str()) else {
                continue;
            };
            if op.kind == OpKind::Create {
                let made = self.systems[sys]
                    .records()
                    .find(|r| r.correlation.is_some() && r.correlation == op.correlation)
                    .map(|r| r.id.clone());
                if let Some(record) = made {
                    let step = self.step;
                    self.unheard.push(Unheard {
                        step,
                        sys,
                        record,
                        field: None,
                        before: None,
                    });
                }
                continue;
            }
            let Some(id) = &op.record_id else {
                continue;
            };
            let record = snaps[sys].records.iter().find(|r| &r.id == id);
            for w in &op.fields {
                let Some(field) = self
                    .obj
                    .map
                    .fields()
                    .iter()
                    .position(|f| w.field == f.name())
                else {
                    continue;
                };
                self.unheard.push(Unheard {
                    step: self.step,
                    sys,
                    record: id.clone(),
                    field: Some(field),
                    before: record.and_then(|r| r.get(&w.native)).cloned(),
                });
            }
        }
    }

    /// Remembers which entity each record a plan wrote to was written for,
    /// committed or not: a record created by a write whose answer was lost,
    /// or updated by a run that died before its commit, is that entity's.
    fn linked_by(&mut self, plan: &SyncPlan) {
        for op in &plan.ops {
            let Some(sys) = self.map_index(op.system.as_str()) else {
                continue;
            };
            let id = match (&op.record_id, &op.correlation) {
                (Some(id), _) => Some(id.clone()),
                (None, Some(key)) => self.systems[sys]
                    .records()
                    .find(|r| r.correlation.as_ref() == Some(key))
                    .map(|r| r.id.clone()),
                (None, None) => None,
            };
            if let Some(id) = id {
                self.ever.insert((sys, id), op.entity.clone());
            }
        }
    }

    /// Every record lists every field its system has, as APIs list them:
    /// null where a create wrote nothing.
    fn fill(&mut self) {
        let fields = self.obj.map.fields();
        for (sys, system) in self.systems.iter_mut().enumerate() {
            let name = self.obj.map.systems()[sys].as_str();
            let natives: Vec<&str> = fields.iter().filter_map(|f| f.native_name(name)).collect();
            let ids: Vec<String> = system.records().map(|r| r.id.clone()).collect();
            for id in ids {
                if let Some(record) = system.record_mut(&id) {
                    for n in &natives {
                        if !record.fields.contains_key(n) {
                            record.fields.insert(n, Value::Null);
                        }
                    }
                }
            }
        }
    }

    /// `canonical` as `sys` keeps it: written in its native form and read
    /// back. A target whose transform loses information (one way, as the
    /// map allows) keeps less than it was given.
    fn image(&self, field: usize, sys: usize, canonical: &Value) -> Value {
        let spec = self.spec(field);
        let name = self.name(sys);
        spec.to_native(name, canonical)
            .ok()
            .flatten()
            .and_then(|n| read(spec, name, &n))
            .unwrap_or_else(|| canonical.clone())
    }

    /// Fault-free runs until one plans nothing; that one is returned.
    fn settle(&mut self) -> Result<SyncPlan, Broken> {
        let mut last = None;
        for i in 0..SETTLE_RUNS {
            if i > 0 {
                self.step += 1;
            }
            let plan = self.sync(&[], true)?;
            if plan.ops.is_empty() {
                return Ok(plan);
            }
            last = Some(plan);
        }
        let last = last.map(|p| indent(&p.to_string())).unwrap_or_default();
        Err(broken(
            Promise::Quiescence,
            format!(
                "the runs never settle: {SETTLE_RUNS} runs after the last step, with no fault and no one editing, run {} still writes:\n{last}",
                self.runs
            ),
        ))
    }

    /// The values compare as a person would: empty ones alike; under the
    /// field's normalization where trusted, else exactly.
    fn same(&self, field: usize, a: Option<&Value>, b: Option<&Value>) -> bool {
        same(self.spec(field), self.obj.trusted[field], a, b)
    }

    /// Whether a person typing `b` over `a` changes the field: to the
    /// engine (under the field's normalization), or to a person (under a
    /// normalizer of the user's that the check does not trust). Empty
    /// values are alike.
    fn is_change(&self, field: usize, a: Option<&Value>, b: Option<&Value>) -> bool {
        let ea = a.is_none_or(is_empty_value);
        let eb = b.is_none_or(is_empty_value);
        if ea || eb {
            return ea != eb;
        }
        a != b && !(self.obj.trusted[field] && self.spec(field).normalization().equal(a, b))
    }

    /// The value of `field` in record `id` of `sys`, read into canonical
    /// form: `None` if the record is gone, `Some(None)` if it cannot be read.
    fn value(&self, sys: usize, id: &str, field: usize) -> Option<Option<Value>> {
        let record = self.systems[sys].record(id)?;
        let spec = self.spec(field);
        let native = spec.native_name(self.name(sys))?;
        match record.get(native) {
            None => Some(Some(Value::Null)),
            Some(v) if is_empty_value(v) => Some(Some(Value::Null)),
            Some(v) => Some(read(spec, self.name(sys), v)),
        }
    }

    /// Whether a run after `step` gave a reason for what became of a value
    /// of `field` in `entity` (or in record `id` of `sys`): a conflict, a
    /// hold, an issue, a conflict decided with the system among the
    /// candidates, a guard's refusal.
    fn explained(
        &self,
        step: usize,
        sys: usize,
        id: &str,
        entity: Option<&EntityId>,
        field: usize,
    ) -> bool {
        let name = self.spec(field).name();
        let system = self.name(sys);
        if self.restores(step, sys, id, field) {
            return true;
        }
        let is_entity = |e: &EntityId| entity == Some(e);
        let of_field = |f: Option<&String>| f.is_none_or(|f| f == name);
        if let Some(e) = entity.and_then(|e| self.baseline.entity(e)) {
            if e.held().any(|(f, _)| f == name) || e.delete_review().is_some() {
                return true;
            }
        }
        let ours = |s: &SystemId, record: &str| {
            (s == system && record == id)
                || self.map_index(s.as_str()).is_some_and(|s| {
                    entity.is_some() && self.ever.get(&(s, record.to_owned())) == entity
                })
        };
        self.plans
            .iter()
            .filter(|(s, _)| *s >= step)
            .any(|(at, plan)| {
                plan.conflicts
                    .iter()
                    .any(|c| is_entity(&c.entity) && c.field == name)
                    || plan
                        .held
                        .iter()
                        .any(|h| is_entity(&h.entity) && of_field(h.field.as_ref()))
                    || plan.issues.iter().any(|i| {
                        // A mapping failure skips the whole record; other
                        // issues name their field.
                        let whole =
                            i.field.is_none() || matches!(i.kind, IssueKind::Mapping { .. });
                        (i.entity.as_ref().is_some_and(is_entity) || ours(&i.system, &i.record_id))
                            && (whole || of_field(i.field.as_ref()))
                    })
                    || plan.read_only.iter().any(|r| is_entity(&r.entity))
                    || plan.refusal.as_ref().is_some_and(|r| {
                        r.withheld
                            .iter()
                            .any(|w| is_entity(&w.entity) && of_field(w.field.as_ref()))
                    })
                    || plan
                        .ops
                        .iter()
                        .filter(|op| {
                            is_entity(&op.entity)
                                || (op.system == *system && op.record_id.as_deref() == Some(id))
                        })
                        .any(|op| {
                            op.fields.iter().any(|w| {
                                w.field == name
                                    && match &w.reason {
                                        Reason::ConflictWon { candidates, .. } => {
                                            candidates.iter().any(|(s, _)| s == system)
                                        }
                                        Reason::Resolver { .. } | Reason::Reviewed { .. } => true,
                                        Reason::Changed { system: from } => {
                                            self.linked_late(entity, from, *at)
                                        }
                                        _ => false,
                                    }
                            })
                        })
            })
    }

    /// Whether a record of `from` was first linked to `entity` by the run
    /// at `step`, into an entity the baseline already held: the engine takes
    /// what the record holds, where it differs from the entity's value, for
    /// `from`'s change, and it wins over the entity's records.
    fn linked_late(&self, entity: Option<&EntityId>, from: &SystemId, step: usize) -> bool {
        let Some(s) = self.map_index(from.as_str()) else {
            return false;
        };
        self.first_linked.iter().any(|((sys, record), at)| {
            *sys == s
                && *at == step
                && entity.is_some()
                && self.ever.get(&(s, record.clone())) == entity
        }) && self.first_linked.iter().any(|((sys, record), at)| {
            *sys != s
                && *at < step
                && entity.is_some()
                && self.ever.get(&(*sys, record.clone())) == entity
        })
    }

    /// Whether the value a person typed at `step` into `field` of record
    /// `id` of `sys`, after a write to it the host never heard back from
    /// and before the next read, is what the field held before that write
    /// or what the sync had decided for it. The engine takes the first for
    /// the write not made (and makes it again) and the second for its own
    /// write, as documented ([`Unconfirmed`](crate::baseline::Unconfirmed)):
    /// a read cannot tell either from a person's edit.
    fn restores(&self, step: usize, sys: usize, id: &str, field: usize) -> bool {
        let Some(claim) = self
            .claims
            .iter()
            .rev()
            .find(|c| c.step == step && c.sys == sys && c.record == id && c.field == field)
        else {
            return false;
        };
        // The decided value, or the form the map writes it in there.
        let decided = claim.decided.as_ref().is_some_and(|d| {
            self.same(field, claim.canonical.as_ref(), Some(d))
                || self
                    .spec(field)
                    .to_native(self.name(sys), d)
                    .ok()
                    .flatten()
                    .is_some_and(|n| n == claim.native)
        });
        self.unheard.iter().any(|u| {
            let next_read = self.syncs.iter().find(|s| **s > u.step);
            let before = match (&u.before, u.field) {
                (_, None) => false,
                (Some(b), _) if is_empty_value(b) => is_empty_value(&claim.native),
                (Some(b), _) => {
                    let b = read(self.spec(field), self.name(sys), b);
                    self.same(field, b.as_ref(), claim.canonical.as_ref())
                }
                (None, _) => is_empty_value(&claim.native),
            };
            u.step < step
                && next_read.is_none_or(|r| *r > step)
                && u.sys == sys
                && u.record == id
                && u.field.is_none_or(|f| f == field)
                && (before || decided)
        })
    }

    /// Whether the claim's record was linked to its entity after another
    /// record of it, with the value the entity holds: no change to the
    /// engine, so a one-way target's own value stays (the map leaves it
    /// alone until the source changes the field).
    fn late_and_alike(&self, claim: &Claim, typed: &Value) -> bool {
        let key = (claim.sys, claim.record.clone());
        let (Some(entity), Some(at)) = (self.ever.get(&key), self.first_linked.get(&key)) else {
            return false;
        };
        let earlier = self
            .first_linked
            .iter()
            .any(|(k, a)| a < at && k.0 != claim.sys && self.ever.get(k) == Some(entity));
        earlier
            && self
                .baseline
                .entity(entity)
                .and_then(|e| e.canonical(self.spec(claim.field).name()))
                .is_some_and(|c| self.same(claim.field, Some(&c), Some(typed)))
    }

    /// Whether record `id` of `sys` is linked, at the end, to a record of
    /// another system still there: one whose values must be synced.
    fn linked_to_others(&self, sys: usize, id: &str) -> bool {
        self.baseline
            .find_linked(self.name(sys), id)
            .is_some_and(|e| {
                e.links().any(|(other, oid)| {
                    self.map_index(other.as_str())
                        .is_some_and(|o| o != sys && self.systems[o].record(oid).is_some())
                })
            })
    }

    /// Whether record `id` of `sys` holds, in `field`, what the map writes
    /// there for the value a record linked to it holds: a value a one-way
    /// row of a value map writes but does not read back.
    fn echoes(&self, sys: usize, id: &str, field: usize) -> bool {
        let spec = self.spec(field);
        let system = self.name(sys);
        let Some(native) = spec.native_name(system) else {
            return false;
        };
        let Some(held) = self.systems[sys].record(id).and_then(|r| r.get(native)) else {
            return false;
        };
        let Some(entity) = self.baseline.find_linked(system, id) else {
            return false;
        };
        entity.links().any(|(other, oid)| {
            let Some(o) = self.map_index(other.as_str()) else {
                return false;
            };
            o != sys
                && matches!(self.value(o, oid, field), Some(Some(c))
                    if spec.to_native(system, &c).ok().flatten().as_ref() == Some(held))
        })
    }

    /// Every value a person typed last, in a record still there, is in
    /// that record and every record linked to it that the field is
    /// written to, or a run said why not.
    fn no_lost_update(&self) -> Result<(), Broken> {
        let tolerance = self.obj.map.skew_tolerance();
        for (k, claim) in self.claims.iter().enumerate() {
            let spec = self.spec(claim.field);
            let system = self.name(claim.sys);
            if !claim.checked
                || !spec.is_source(system)
                || self.systems[claim.sys].record(&claim.record).is_none()
            {
                continue;
            }
            let entity = self.ever.get(&(claim.sys, claim.record.clone()));
            let group = |c: &Claim| {
                (c.sys == claim.sys && c.record == claim.record)
                    || entity.is_some_and(|e| self.ever.get(&(c.sys, c.record.clone())) == Some(e))
            };
            let superseded = self.claims.iter().enumerate().any(|(j, c)| {
                j != k
                    && c.field == claim.field
                    && group(c)
                    && if c.sys == claim.sys && c.record == claim.record {
                        j > k
                    } else {
                        c.at + tolerance >= claim.at
                    }
            });
            if superseded {
                continue;
            }
            let Some(typed) = &claim.canonical else {
                // A record not linked to another one still there is not
                // synced: its value stays in it, and there is nothing to
                // report.
                if self.linked_to_others(claim.sys, &claim.record)
                    && !self.echoes(claim.sys, &claim.record, claim.field)
                    && !self.explained(claim.step, claim.sys, &claim.record, entity, claim.field)
                {
                    return Err(broken(
                        Promise::NoLostUpdate,
                        format!(
                            "{system}'s value of {} in {} (step {}) cannot be read through the map, and no run reported it",
                            spec.name(),
                            claim.record,
                            claim.step
                        ),
                    ));
                }
                continue;
            };
            if is_empty_value(typed) {
                continue;
            }
            if self.late_and_alike(claim, typed) {
                continue;
            }
            let entity_form = claim
                .decided
                .as_ref()
                .and_then(|d| spec.to_native(system, d).ok().flatten());
            if entity_form.as_ref() == Some(&claim.native) {
                // The form the map gives the entity's value in this system
                // (a many-to-one value map): no change to the engine.
                continue;
            }
            let mut holders = vec![(claim.sys, claim.record.clone())];
            if let Some(e) = self.baseline.find_linked(system, &claim.record) {
                for (s, id) in e.links() {
                    let Some(s) = self.map_index(s.as_str()) else {
                        continue;
                    };
                    if s != claim.sys && spec.is_target(self.name(s)) {
                        holders.push((s, id.to_owned()));
                    }
                }
            }
            for (s, id) in holders {
                let Some(Some(held)) = self.value(s, &id, claim.field) else {
                    continue;
                };
                let want = if s == claim.sys {
                    typed.clone()
                } else {
                    self.image(claim.field, s, typed)
                };
                if self.same(claim.field, Some(&held), Some(&want)) {
                    continue;
                }
                if self.explained(claim.step, claim.sys, &claim.record, entity, claim.field) {
                    break;
                }
                let hint = self.hint(claim.field, s, typed, &held);
                return Err(broken(
                    Promise::NoLostUpdate,
                    format!(
                        "{system}'s edit of {} in {} to {} (step {}) is lost: after the runs settle, {} {id} holds {}, and no run gave a reason (no conflict, hold, issue or refusal for it).{hint}",
                        spec.name(),
                        claim.record,
                        shown(spec, Some(typed)),
                        claim.step,
                        self.name(s),
                        shown(spec, Some(&held)),
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every two records linked to one entity hold the same value of each
    /// field that flows from one to the other, unless the last run held or
    /// reported it.
    fn convergence(&self, last: &SyncPlan) -> Result<(), Broken> {
        let systems = self.obj.map.systems();
        for entity in self.baseline.entities() {
            let live: Vec<(usize, &str)> = entity
                .links()
                .filter_map(|(s, id)| {
                    let s = systems.iter().position(|x| x == s)?;
                    self.systems[s].record(id).map(|_| (s, id))
                })
                .collect();
            if live.len() < 2 || entity.delete_review().is_some() {
                continue;
            }
            for &field in &self.obj.editable {
                let spec = self.spec(field);
                let name = spec.name();
                let excused = entity.held().any(|(f, _)| f == name)
                    || last
                        .conflicts
                        .iter()
                        .any(|c| &c.entity == entity.id() && c.field == name)
                    || last.held.iter().any(|h| {
                        &h.entity == entity.id() && h.field.as_ref().is_none_or(|f| f == name)
                    })
                    || last.issues.iter().any(|i| {
                        i.entity.as_ref() == Some(entity.id())
                            || live
                                .iter()
                                .any(|(s, id)| i.system == systems[*s] && i.record_id == *id)
                    })
                    || last.read_only.iter().any(|r| &r.entity == entity.id());
                if excused {
                    continue;
                }
                for &(a, ida) in &live {
                    for &(b, idb) in &live {
                        if a == b || !spec.is_source(self.name(a)) || !spec.is_target(self.name(b))
                        {
                            continue;
                        }
                        let (Some(Some(va)), Some(Some(vb))) =
                            (self.value(a, ida, field), self.value(b, idb, field))
                        else {
                            continue;
                        };
                        if let Direction::OneWay { enforce, .. } = spec.direction() {
                            // A target's own edit is left alone until the
                            // source changes (which a read may not see: a
                            // source changed and changed back between two
                            // runs did not), unless the map enforces the
                            // direction; an empty source clears it only then.
                            let edited_since = self
                                .claims
                                .iter()
                                .any(|c| c.sys == b && c.record == idb && c.field == field);
                            if (!enforce && edited_since)
                                || (is_empty_value(&va)
                                    && (!enforce || spec.no_overwrite_on_empty()))
                            {
                                continue;
                            }
                        }
                        if !is_empty_value(&va)
                            && spec.to_native(self.name(b), &va).ok().flatten().is_none()
                        {
                            continue;
                        }
                        let native_a = spec
                            .native_name(self.name(a))
                            .and_then(|n| self.systems[a].record(ida)?.get(n).cloned());
                        let image_of_b = spec.to_native(self.name(a), &vb).ok().flatten();
                        if native_a.is_some() && native_a == image_of_b {
                            // `a` holds what the map writes there for `b`'s
                            // value (a many-to-one value map).
                            continue;
                        }
                        if self.same(field, Some(&self.image(field, b, &va)), Some(&vb)) {
                            continue;
                        }
                        let hint = self.hint(field, b, &va, &vb);
                        return Err(broken(
                            Promise::Convergence,
                            format!(
                                "after the runs settle, {} {ida} holds {} and {} {idb} holds {} for {name} of the same record (entity {}), though the map syncs it from {} to {}, and no run held or reported it.{hint}",
                                self.name(a),
                                shown(spec, Some(&va)),
                                self.name(b),
                                shown(spec, Some(&vb)),
                                entity.id(),
                                self.name(a),
                                self.name(b),
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Why two values may differ where the map says they should not: a
    /// normalizer of the user's that calls them equal, or a transform
    /// that does not give back what it is given.
    fn hint(&self, field: usize, sys: usize, want: &Value, got: &Value) -> String {
        let spec = self.spec(field);
        let mut out = String::new();
        if let Normalization::Custom(n) = spec.normalization() {
            if spec.normalization().equal(Some(want), Some(got)) {
                out.push_str(&format!(
                    "\n  The field's normalizer `{}` calls {} and {} equal, so a change from one to the other is not seen as a change.",
                    n.name(),
                    shown(spec, Some(want)),
                    shown(spec, Some(got))
                ));
            }
        }
        if let Some(t) = spec.transform(self.name(sys)) {
            let native = spec.to_native(self.name(sys), want).ok().flatten();
            let back = native.as_ref().and_then(|n| read(spec, self.name(sys), n));
            if back.as_ref() != Some(want) {
                out.push_str(&format!(
                    "\n  {}'s transform `{}` writes {} as {}, which reads back as {}.",
                    self.name(sys),
                    t.name(),
                    shown(spec, Some(want)),
                    shown(spec, native.as_ref()),
                    shown(spec, back.as_ref())
                ));
            }
        }
        out
    }
}

/// `value` in the form a system that rewrites what it is sent would keep
/// it, where the field's normalization (one of recsync's own) calls the
/// two the same.
fn own_form(spec: &FieldSpec, system: &str, value: &Value) -> Option<Value> {
    let s = value.as_str()?;
    let stored = match spec.normalization() {
        Normalization::CaseInsensitive => s.to_uppercase(),
        Normalization::Trim => format!("{s} "),
        Normalization::DigitsOnly => s.replace('-', " "),
        #[cfg(feature = "phone")]
        Normalization::Phone(_) => s.replace('-', " "),
        _ => return None,
    };
    let stored = Value::from(stored);
    if stored == *value {
        return None;
    }
    let a = read(spec, system, value)?;
    let b = read(spec, system, &stored)?;
    spec.normalization()
        .equal(Some(&a), Some(&b))
        .then_some(stored)
}

/// Whether two canonical values are the same to a person: empty ones
/// alike, numbers by value; others under the field's normalization where
/// `trusted`, else exactly.
pub(super) fn same(spec: &FieldSpec, trusted: bool, a: Option<&Value>, b: Option<&Value>) -> bool {
    let ea = a.is_none_or(is_empty_value);
    let eb = b.is_none_or(is_empty_value);
    if ea || eb {
        return ea && eb;
    }
    if let (Some(Value::Number(x)), Some(Value::Number(y))) = (a, b) {
        // 42 and 42.0 are one number to a person.
        if x.as_f64() == y.as_f64() {
            return true;
        }
    }
    if trusted {
        spec.normalization().equal(a, b)
    } else {
        a == b
    }
}

/// A value as a story prints it.
pub(super) fn shown(spec: &FieldSpec, value: Option<&Value>) -> String {
    match value {
        _ if spec.is_sensitive() => "[redacted]".to_owned(),
        None => "nothing".to_owned(),
        Some(v) if is_empty_value(v) => "nothing".to_owned(),
        Some(v) => v.to_string(),
    }
}

pub(super) fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("       {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

//! [`SyncEngine`]: plan and commit, pure and deterministic.
//!
//! # The algorithm
//!
//! [`SyncEngine::plan_with`] takes the baseline (what every system held at
//! the last commit) and a snapshot per system (what each holds now), and
//! goes through these steps. Each is a function of its own in the file
//! named; the decisions are [`policy`](crate::policy)'s, as pure functions
//! over small facts.
//!
//! 1. **Context** (`engine/input.rs`): the snapshots by system, the parent
//!    baselines of reference fields, resolved once. A complete snapshot
//!    that is suddenly empty is ignored unless approved (the
//!    [empty-snapshot guard](crate::guard::Guards), `engine/mod.rs`).
//!    Each complete snapshot is scanned for schema drift
//!    (`engine/drift.rs`): a mapped native field none of its records holds
//!    is a [`FieldNotFound`](crate::plan::IssueKind::FieldNotFound) issue,
//!    and is not written in that system.
//! 2. **Gather** (`engine/gather.rs`): each record is looked up in the
//!    baseline's links. Linked records fill their entity's row; records not
//!    linked yet are correlated, matched or made new entities
//!    ([`identity`](crate::identity)); a complete snapshot's missing
//!    records and every tombstone are deletion evidence.
//! 3. **Skip the unchanged** (`engine/fast_path.rs`): an entity whose
//!    records all report the version a read saw, or have the content hash,
//!    they had at the last commit, with nothing pending, is skipped without
//!    reading a field. (The first read after a write is planned in full:
//!    a version is trusted once a read has seen its content.)
//!    [`PlanOptions::full_walk`] turns this and the unchanged-field
//!    shortcut off; the plan is the same. This only chooses which entities the next step sees. (Steps 2
//!    to 4 run together: an entity of the baseline is skipped or planned
//!    as soon as its row is gathered, while its records are fresh in the
//!    cache; the new entities are planned after.)
//! 4. **Plan each entity** (`engine/entity.rs`, one file per step under
//!    `engine/entity/`):
//!    1. *confirm* writes reported applied but not yet seen in a read
//!       ([`Unconfirmed`](crate::baseline::Unconfirmed)): made, not made
//!       (planned again, never taken for an edit), or still awaited; a
//!       write made in a form of the system's own (at the version the
//!       write reported, or equal under the field's normalization) makes
//!       that form the system's shadow, and what was written is kept beside
//!       it, so the form is neither read as an edit nor written over;
//!    2. *scope*: records that left their system's scope are unlinked or
//!       frozen ([`scope`](crate::scope));
//!    3. *deletes*: a record deleted in some systems is propagated,
//!       unlinked, restored or held for review, by the map's
//!       [`DeletePolicy`](crate::DeletePolicy) and
//!       [`DeleteEditPolicy`](crate::DeleteEditPolicy) (a one-way target's
//!       copy, not enforced, waits for the source to change);
//!       then, where the map [mirrors](crate::mapping::FieldMapBuilder::mirror),
//!       records only in targets are deleted (`entity/mirror.rs`);
//!    4. per canonical field (`entity/field.rs`), unless nothing touched it
//!       (`entity/unchanged.rs`):
//!       - **detect** (`entity/detect.rs`): each source whose current value
//!         differs from its shadow, after normalization, is a candidate;
//!       - **decide** (`entity/decide.rs`): no candidate, the value stays;
//!         one, or several that agree, it wins; several that disagree, a
//!         reviewer's decision on that conflict or the field's
//!         [`ConflictPolicy`](crate::ConflictPolicy); a field whose value
//!         was emptied is guarded by its empty-value rule. A field not
//!         decided is **held**, with its [`Conflict`](crate::Conflict);
//!       - **propagate** (`entity/propagate.rs`): sources' shadows adopt
//!         what they hold; every linked target whose value differs, once
//!         converted to its native form, gets a write with its
//!         [`Reason`](crate::Reason);
//!    5. *writes* (`entity/writes.rs`): creates and updates of only the
//!       changed fields, each with a stable [`OpId`]. An op to a
//!       [read-only](crate::mapping::FieldMapBuilder::read_only) system is
//!       not planned but listed in
//!       [`SyncPlan::read_only`](crate::SyncPlan::read_only)
//!       (`entity/read_only.rs`), or refuses the plan
//!       ([`PlanError::ReadOnly`], checked as the plan is assembled).
//!
//!    Entities are planned on several threads where the `parallel` feature
//!    is on (`engine/par.rs`): in chunks, joined in order, so the plan is
//!    the same.
//! 5. **Guards** (`engine/mod.rs`): the plan is checked against the map's
//!    safety [guards](crate::guard); what a budget refuses is withheld and
//!    reported in the plan's refusal until approved.
//! 6. **Assemble**: ops, conflicts, holds and issues in a fixed order.
//!
//! After the host (or the runner) executes the plan and reports outcomes,
//! [`SyncEngine::commit`] (`engine/commit.rs`) advances canonical values,
//! shadows, links and holds for what was written, and keeps what failed to
//! be planned again.
//!
//! A plan looks only at the entities a snapshot mentions, plus those that
//! hold something (a failed write, a held field or delete, a write not
//! confirmed).

mod commit;
mod drift;
mod entity;
mod fast_path;
mod gather;
mod hints;
mod input;
mod journaled;
mod par;
mod rows;
#[cfg(test)]
mod testing;
mod undo;

pub(crate) use drift::held_names;
pub(crate) use fast_path::holds_last_commit;

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, BaselineError, EntityId};
use crate::guard::{Approval, Refusal, Trip, Withheld};
use crate::mapping::FieldMap;
use crate::model::{Snapshot, SystemId};
use crate::plan::{EntityChange, OpId, SyncPlan};

pub use commit::CommitSummary;
use input::{Cx, EntityInput};

/// From how many plans in a row that find a write not made (or do not see
/// it in a read of its system) the write is reported as an
/// [`UnconfirmedWrite`](crate::plan::IssueKind::UnconfirmedWrite) issue.
/// One plan that misses a write is common (a read racing the write, a
/// change feed that lags); three in a row is a connector to look at.
pub const UNCONFIRMED_PLANS: u32 = 3;

/// Plans and commits syncs for one [`FieldMap`].
#[derive(Clone)]
pub struct SyncEngine {
    map: FieldMap,
    hints: hints::Hints,
}

/// What a plan needs beside the baseline and snapshots: the baselines of the
/// object types reference fields point to, and approvals of refused
/// changes.
///
/// ```
/// use recsync::engine::PlanOptions;
/// use recsync::Baseline;
///
/// let companies = Baseline::new();
/// let options = PlanOptions::new().parent("companies", &companies);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PlanOptions<'a> {
    parents: Vec<(String, &'a Baseline)>,
    approvals: Vec<Approval>,
    threads: Option<usize>,
    /// Entities that wait (the runner's debounce): nothing is decided for
    /// them, and what was seen is kept for a later plan.
    waiting: HashSet<EntityId>,
    full_walk: bool,
}

impl<'a> PlanOptions<'a> {
    /// No parents, no approvals.
    pub fn new() -> Self {
        PlanOptions::default()
    }

    /// The baseline of object type `object`, which reference fields of the
    /// map point to.
    #[must_use]
    pub fn parent(mut self, object: impl Into<String>, baseline: &'a Baseline) -> Self {
        self.parents.push((object.into(), baseline));
        self
    }

    /// Approves what a guard refused: a plan that would make exactly those
    /// changes makes them.
    #[must_use]
    pub fn approve(mut self, refusal: &Refusal) -> Self {
        self.approvals.extend(refusal.approvals.iter().copied());
        self
    }

    /// Approves one refused stage by its [`Approval`] (as kept from a
    /// [`Refusal`]).
    #[must_use]
    pub fn approve_stage(mut self, approval: Approval) -> Self {
        self.approvals.push(approval);
        self
    }

    /// Plans on up to `threads` threads (feature `parallel`; at least 1).
    /// Without this, a plan uses every core
    /// ([`std::thread::available_parallelism`]). Only large plans are split
    /// (a few thousand entities per thread at least); the plan is the same
    /// on any number of threads.
    #[cfg(feature = "parallel")]
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    pub(crate) fn thread_count(&self) -> Option<usize> {
        self.threads
    }

    /// Plans without the shortcuts: no entity is skipped because its
    /// records report the versions or content they had at the last commit,
    /// and no field because nothing touched it; every entity a snapshot
    /// mentions is read field by field. The plan is the same as without
    /// (the crate's property tests compare them over random histories),
    /// only slower: for an audit of a baseline you have reason to doubt,
    /// and for your own tests of the same promise.
    #[must_use]
    pub fn full_walk(mut self) -> Self {
        self.full_walk = true;
        self
    }

    /// Plans nothing for `entities`: they wait for records held back (the
    /// runner's debounce), and are decided once those are read. What the
    /// snapshots show of them is kept, as for a record listed twice.
    #[must_use]
    pub(crate) fn wait(mut self, entities: impl IntoIterator<Item = EntityId>) -> Self {
        self.waiting.extend(entities);
        self
    }

    fn parent_of(&self, object: &str) -> Option<&'a Baseline> {
        self.parents
            .iter()
            .find(|(o, _)| o == object)
            .map(|(_, b)| *b)
    }
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
    /// A reference field points to an object type whose baseline was not
    /// given ([`PlanOptions::parent`]).
    #[error("field {field} refers to object {object}, whose baseline was not given to the plan")]
    MissingParent {
        /// The field.
        field: String,
        /// The object type.
        object: String,
    },
    /// The plan would write to a system the map declares read-only with
    /// [`ReadOnlyMode::Error`](crate::policy::ReadOnlyMode::Error): the
    /// whole plan is refused. Names the first such write, in the plan's
    /// order (by entity, then system); no value is quoted.
    #[error(
        "system {system} is read-only, but the plan would {kind} {} of entity {entity}{}{}",
        record_id.as_deref().map_or_else(|| "a record".to_owned(), |r| format!("record {r}")),
        field.as_deref().map_or_else(String::new, |f| format!(" (field {f})")),
        if *count > 1 { format!("; {} such writes in all", count) } else { String::new() }
    )]
    ReadOnly {
        /// The read-only system.
        system: SystemId,
        /// The entity.
        entity: EntityId,
        /// The record the write would change; `None` for a create.
        record_id: Option<String>,
        /// The first canonical field the write would set; `None` for a
        /// delete.
        field: Option<String>,
        /// What the write would do.
        kind: crate::plan::OpKind,
        /// How many writes to read-only systems in that mode the plan
        /// would make in all.
        count: usize,
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
    /// The plan was made with another field map.
    #[error("plan was made with map {plan:016x}, but the engine's map is {map:016x}")]
    OtherMap {
        /// The plan's map fingerprint.
        plan: u64,
        /// The engine's.
        map: u64,
    },
    /// An outcome names an op that is not in the plan.
    #[error("outcome for op {0}, which is not in the plan")]
    UnknownOp(OpId),
    /// A create was reported applied without the new record's id.
    #[error("create op {0} was reported applied without the new record's id")]
    MissingRecordId(OpId),
    /// The baseline could not take the change (a record linked twice).
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    /// The baseline's revision is the largest there is, so no commit can
    /// follow it. Nothing was changed. A baseline gets there only by being
    /// built or stored so; rebuild it with a lower revision
    /// ([`Baseline::from_parts`](crate::Baseline::from_parts)) to go on.
    #[error("baseline revision {revision} is the last there is: no commit can follow it")]
    RevisionExhausted {
        /// The baseline's revision.
        revision: u64,
    },
}

/// What became of one write op.
///
/// Its `Debug` shows the names of stored fields, never their values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
        /// What the system stored, by native field name, where it differs
        /// from what was written or the system reports it
        /// ([`Applied::stored`](crate::connector::Applied::stored)): the
        /// record's shadows take these values, so the system's own form of a
        /// value is not read as an edit at the next plan.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        stored: BTreeMap<String, serde_json::Value>,
        /// A read made right after the write showed it made (the runner's
        /// [read-back](crate::runner::SyncRunnerBuilder::read_back)): no
        /// later read is awaited to confirm it
        /// ([`Unconfirmed`](crate::baseline::Unconfirmed)). A delete so
        /// confirmed unlinks the record at once.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        confirmed: bool,
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
            stored: BTreeMap::new(),
            confirmed: false,
        }
    }

    /// A create applied, making the record `record_id`.
    pub fn created(record_id: impl Into<String>) -> Self {
        OpOutcome::Applied {
            record_id: Some(record_id.into()),
            version: None,
            stored: BTreeMap::new(),
            confirmed: false,
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
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        if let OpOutcome::Applied { version: v, .. } = &mut self {
            *v = Some(version.into());
        }
        self
    }

    /// The same outcome, where applied, with what the system stored in
    /// native field `field` (see [`Applied::stored`]).
    ///
    /// [`Applied::stored`]: crate::connector::Applied::stored
    #[must_use]
    pub fn with_stored(
        mut self,
        field: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        if let OpOutcome::Applied { stored, .. } = &mut self {
            stored.insert(field.into(), value.into());
        }
        self
    }

    /// The same outcome, confirmed by a read made right after the write:
    /// the record was seen holding what was written (a create there, a
    /// delete gone), so no later read is awaited for it.
    #[must_use]
    pub fn confirmed(mut self) -> Self {
        if let OpOutcome::Applied { confirmed, .. } = &mut self {
            *confirmed = true;
        }
        self
    }
}

impl fmt::Debug for OpOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpOutcome::Applied {
                record_id,
                version,
                stored,
                confirmed,
            } => f
                .debug_struct("Applied")
                .field("record_id", record_id)
                .field("version", version)
                .field("stored", &stored.keys().collect::<Vec<_>>())
                .field("confirmed", confirmed)
                .finish(),
            OpOutcome::Failed { message } => {
                f.debug_struct("Failed").field("message", message).finish()
            }
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

    /// Every op of `plan` applied. Creates need the new record's id, so
    /// this reports each create as having made a record whose id is the
    /// op's correlation key; use it where the executor really does that, or
    /// in tests.
    pub fn all_applied(plan: &SyncPlan) -> Self {
        Outcomes(
            plan.ops
                .iter()
                .map(|op| {
                    let outcome = match (&op.kind, &op.correlation) {
                        (crate::plan::OpKind::Create, Some(c)) => OpOutcome::created(c.clone()),
                        _ => OpOutcome::applied(),
                    };
                    (op.id, outcome)
                })
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

    /// Every outcome, by op.
    pub fn iter(&self) -> impl Iterator<Item = (&OpId, &OpOutcome)> {
        self.0.iter()
    }
}

/// Puts issues in the plan's order: by system (in the map's order), record
/// id, entity, then field (in the map's order, none first), whatever order
/// the snapshots listed records in. Issues alike in all of these keep the
/// order they were found in, which does not depend on the input's order
/// either (gathering finds a record's problems before its entity is
/// planned); an issue found twice (a record listed twice) is kept once.
fn sort_issues(map: &FieldMap, issues: &mut Vec<crate::plan::Issue>) {
    if issues.len() < 2 {
        return;
    }
    let fields: std::collections::HashMap<&str, usize> = map
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name(), i + 1))
        .collect();
    let rank = |i: &crate::plan::Issue| {
        (
            map.system_index(i.system.as_str()).unwrap_or(usize::MAX),
            i.field
                .as_deref()
                .map_or(0, |f| fields.get(f).copied().unwrap_or(usize::MAX)),
        )
    };
    let mut keyed: Vec<((usize, usize), crate::plan::Issue)> =
        issues.drain(..).map(|i| (rank(&i), i)).collect();
    keyed.sort_by(|(a, x), (b, y)| {
        a.0.cmp(&b.0)
            .then_with(|| x.record_id.cmp(&y.record_id))
            .then_with(|| x.entity.cmp(&y.entity))
            .then_with(|| a.1.cmp(&b.1))
    });
    issues.extend(keyed.into_iter().map(|(_, i)| i));
    issues.dedup();
}

impl fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncEngine")
            .field("map", &self.map)
            .finish_non_exhaustive()
    }
}

impl SyncEngine {
    /// An engine for `map`.
    pub fn new(map: FieldMap) -> Self {
        let hints = hints::Hints::new(&map);
        SyncEngine { map, hints }
    }

    /// The map.
    pub fn map(&self) -> &FieldMap {
        &self.map
    }

    /// Plans a sync of `snapshots` against `baseline`. Input order does not
    /// matter; the same input always gives the same plan.
    pub fn plan(&self, baseline: &Baseline, snapshots: &[Snapshot]) -> Result<SyncPlan, PlanError> {
        self.plan_with(baseline, snapshots, &PlanOptions::default())
    }

    /// [`plan`](SyncEngine::plan) with parent baselines for reference
    /// fields and approvals of refused changes.
    pub fn plan_with(
        &self,
        baseline: &Baseline,
        snapshots: &[Snapshot],
        options: &PlanOptions<'_>,
    ) -> Result<SyncPlan, PlanError> {
        let mut cx = Cx::new(&self.map, &self.hints, baseline, snapshots, options)?;
        let mut refusal = Refusal::empty();
        self.guard_empty_snapshots(&mut cx, options, &mut refusal);
        let mut plan = SyncPlan {
            object: self.map.object().to_owned(),
            baseline_revision: baseline.revision(),
            fingerprint: self.map.fingerprint(),
            ..SyncPlan::default()
        };
        plan.issues.append(&mut cx.drift.issues);
        let gathered = gather::gather(&cx, &mut plan.issues);
        plan.ambiguous = gathered.ambiguous;
        // The baseline's entities were planned as they were gathered; the
        // new ones are planned here.
        let mut results = gathered.results;
        let mut kept = gathered.kept;
        plan_new(&cx, gathered.new, &mut results, &mut kept);
        self.guard_budgets(&cx, options, &mut results, &kept, &mut refusal);
        if !refusal.trips.is_empty() {
            plan.refusal = Some(refusal);
        }
        assemble(&mut plan, results, gathered.touches);
        sort_issues(&self.map, &mut plan.issues);
        refuse_read_only(&self.map, &plan)?;
        Ok(plan)
    }

    /// The empty-snapshot guard: a complete snapshot that is suddenly empty
    /// is ignored (`cx` forgets it, `refusal` says why) unless approved.
    fn guard_empty_snapshots(
        &self,
        cx: &mut Cx<'_>,
        options: &PlanOptions<'_>,
        refusal: &mut Refusal,
    ) {
        let empty = cx.empty_snapshots();
        if !self.map.guards().empty_snapshot || empty.is_empty() {
            return;
        }
        let trips: Vec<Trip> = empty
            .iter()
            .map(|(s, linked)| Trip::EmptySnapshot {
                system: self.map.systems()[*s].clone(),
                linked: *linked,
            })
            .collect();
        if !options
            .approvals
            .contains(&crate::guard::fingerprint(&trips, &[]))
        {
            for (s, _) in &empty {
                cx.ignore_snapshot(*s);
            }
            refusal.add(trips, Vec::new());
        }
    }

    /// The budget guards (deletes, emptied fields, scope exits), over what
    /// the plan would do: where one is exceeded and not approved, the
    /// entities it affects are planned again (from `kept`) without those
    /// changes, and `refusal` says why.
    fn guard_budgets(
        &self,
        cx: &Cx<'_>,
        options: &PlanOptions<'_>,
        results: &mut [entity::EntityResult],
        kept: &[(usize, EntityInput<'_>)],
        refusal: &mut Refusal,
    ) {
        let (trips, mut items, withhold) = over_budget(&self.map, cx.baseline.len(), results);
        if trips.is_empty() {
            return;
        }
        items.sort();
        if !options
            .approvals
            .contains(&crate::guard::fingerprint(&trips, &items))
        {
            for (i, input) in kept {
                if let Some(r) = results.get_mut(*i).filter(|r| r.affected_by(withhold)) {
                    *r = entity::plan_entity(cx, input, withhold);
                }
            }
            refusal.add(trips, items);
        }
    }

    /// Records what happened: canonical values advance, sources' shadows
    /// become what was seen, targets' shadows become what was written where
    /// the write was applied; created records are linked, deleted ones kept
    /// as deleted until a read shows them gone, and an entity with no record
    /// left leaves the baseline. Each write applied awaits a later read to
    /// confirm it ([`Unconfirmed`](crate::baseline::Unconfirmed)). An op
    /// that failed, or has no outcome, leaves its target behind, so the
    /// next plan writes it again.
    ///
    /// Checks the plan and outcomes first; on error the baseline is
    /// unchanged. Returns which entities changed, for stores that write only
    /// those.
    pub fn commit(
        &self,
        baseline: &mut Baseline,
        plan: &SyncPlan,
        outcomes: &Outcomes,
    ) -> Result<CommitSummary, CommitError> {
        commit::commit(&self.map, baseline, plan, outcomes)
    }

    /// Plans the undo of `run` from its [journal](crate::journal) entries
    /// (`entries`: the journal, or at least the run's entries and those of
    /// earlier undos of it; others are passed over) and what the systems
    /// hold now (`current`: at least every record the run wrote, by id, in
    /// each system it wrote to; whole, in a system where it deleted
    /// records, so that a record an earlier undo created again is found by
    /// its correlation key, where the system keeps them).
    ///
    /// Three ways, per field of each record the run wrote: a field still
    /// holding what the run left goes back to its value before the run
    /// ([`Reason::Undo`](crate::Reason::Undo)); one holding its value
    /// before already is left; one changed since is held
    /// ([`HoldKind::ChangedSince`](crate::plan::HoldKind::ChangedSince)),
    /// never overwritten. A record the run created is deleted, unless it
    /// changed since (held) or is gone; a record it deleted is created again
    /// from its values before the run, unlinked, so the next plan links it
    /// by its match keys like any new record (or, where its match is gone
    /// too, creates it in the other systems). A record the run updated that
    /// is gone is held ([`Gone`](crate::plan::HoldKind::Gone)), and fields
    /// kept out of the journal are held
    /// ([`NotJournaled`](crate::plan::HoldKind::NotJournaled)). Writes are
    /// conditional on the versions read, where the systems have them.
    ///
    /// The plan is an ordinary plan: it passes the map's delete and
    /// emptied-field [guards](crate::guard) (approve a refusal with
    /// [`PlanOptions::approve`]), is executed like any other and committed
    /// with [`commit`](Self::commit). Committed, each record it wrote holds,
    /// for the baseline, what it was given back: the entity's canonical
    /// values stay what the run made them, so the next plan finds the
    /// targets behind and writes them again, through the map as it is
    /// then. **Fix the map before the next run**, or the run undone is done
    /// again. Only the parts of `options` that approve refusals are used.
    pub fn plan_undo(
        &self,
        baseline: &Baseline,
        run: crate::journal::RunId,
        entries: &[crate::journal::JournalEntry],
        current: &[Snapshot],
        options: &PlanOptions<'_>,
    ) -> SyncPlan {
        undo::plan_undo(&self.map, baseline, run, entries, current, options)
    }
}

/// Plans the entities new in this plan (on the plan's threads), appending
/// their results to `results` and, for those that plan a guarded change,
/// their inputs to `kept` (by index in `results`).
fn plan_new<'a>(
    cx: &Cx<'a>,
    new: Vec<EntityInput<'a>>,
    results: &mut Vec<entity::EntityResult>,
    kept: &mut Vec<(usize, EntityInput<'a>)>,
) {
    let new_results = par::chunked(&new, cx.threads, |inputs| {
        let mut scratch = entity::Scratch::default();
        inputs
            .iter()
            .map(|input| {
                entity::plan_entity_with(cx, input, entity::Withhold::default(), &mut scratch)
            })
            .collect::<Vec<_>>()
    });
    for (result, input) in new_results.into_iter().flatten().zip(new) {
        if result.guarded() {
            kept.push((results.len(), input));
        }
        results.push(result);
    }
}

/// The budgets of `map`'s guards that `results` exceed, over a baseline of
/// `entities` entities: the trips, every change they count, and what to
/// withhold from the entities they affect.
fn over_budget(
    map: &FieldMap,
    entities: usize,
    results: &[entity::EntityResult],
) -> (Vec<Trip>, Vec<Withheld>, entity::Withhold) {
    let guards = map.guards();
    let mut withhold = entity::Withhold::default();
    let mut trips = Vec::new();
    let mut items: Vec<Withheld> = Vec::new();
    type Pick = fn(&entity::EntityResult) -> &Vec<Withheld>;
    let kinds: [(Pick, crate::guard::Budget, u8); 3] = [
        (|r| &r.deletes, guards.deletes, 0),
        (|r| &r.emptied, guards.emptied_fields, 1),
        (|r| &r.exits, guards.scope_exits, 2),
    ];
    for (pick, budget, kind) in kinds {
        let count: usize = results.iter().map(|r| pick(r).len()).sum();
        if budget.allows(count, entities) {
            continue;
        }
        trips.push(match kind {
            0 => Trip::Deletes {
                count,
                entities,
                budget,
            },
            1 => Trip::EmptiedFields {
                count,
                entities,
                budget,
            },
            _ => Trip::ScopeExits {
                count,
                entities,
                budget,
            },
        });
        match kind {
            0 => withhold.deletes = true,
            1 => withhold.emptied = true,
            _ => withhold.scope_exits = true,
        }
        items.extend(results.iter().flat_map(|r| pick(r).iter().cloned()));
    }
    (trips, items, withhold)
}

/// The error of a plan that would write to a read-only system in
/// [`ReadOnlyMode::Error`](crate::policy::ReadOnlyMode::Error): the first
/// such write, and how many there are.
fn refuse_read_only(map: &FieldMap, plan: &SyncPlan) -> Result<(), PlanError> {
    let refused = |w: &&crate::plan::ReadOnlyWrite| {
        map.read_only(w.system.as_str()) == Some(crate::policy::ReadOnlyMode::Error)
    };
    let Some(first) = plan.read_only.iter().find(refused) else {
        return Ok(());
    };
    Err(PlanError::ReadOnly {
        system: first.system.clone(),
        entity: first.entity.clone(),
        record_id: first.record_id.clone(),
        field: first.fields.first().map(|w| w.field.as_str().to_owned()),
        kind: first.kind,
        count: plan.read_only.iter().filter(refused).count(),
    })
}

/// Puts the entities' results into `plan`, in entity order. Results are
/// large: their order is sorted, not they. Entities planned and entities
/// only touched (a version moved, nothing else) are apart, so their
/// changes merge.
fn assemble(
    plan: &mut SyncPlan,
    results: Vec<entity::EntityResult>,
    mut touches: Vec<EntityChange>,
) {
    // Often mostly in order already (rows follow the order of the first
    // snapshot, which a system mostly keeps from one read to the next): a
    // stable sort merges the runs it finds. Ids are unique, so the order
    // is the one an unstable sort gives.
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by(|a, b| results[*a].change.entity.cmp(&results[*b].change.entity));
    plan.ops.reserve(results.iter().map(|r| r.ops.len()).sum());
    let mut results: Vec<Option<entity::EntityResult>> = results.into_iter().map(Some).collect();
    touches.sort_by(|a, b| a.entity.cmp(&b.entity));
    let mut touches = touches.into_iter().peekable();
    for i in order {
        let Some(r) = results.get_mut(i).and_then(Option::take) else {
            continue;
        };
        plan.ops.extend(r.ops);
        plan.read_only.extend(r.read_only);
        plan.conflicts.extend(r.conflicts);
        plan.held.extend(r.held);
        plan.issues.extend(r.issues);
        if !r.change.is_empty() || r.has_ops {
            while let Some(t) = touches.next_if(|t| t.entity < r.change.entity) {
                plan.changes.push(t);
            }
            plan.changes.push(r.change);
        }
    }
    plan.changes.extend(touches);
}

//! [`SyncRunner`]: the loop around the engine, run on any async executor.
//!
//! A runner syncs one object type (`"contacts"`) between the systems of its
//! [`FieldMap`](crate::FieldMap), through one [`Connector`] per system, and
//! keeps the baseline in a [`StateStore`]. One [`run`](SyncRunner::run):
//!
//! 1. loads the baseline;
//! 2. reads every system at once: the changes since the cursor kept with the
//!    baseline where the connector fetches incrementally (from the
//!    beginning, a complete snapshot, the first time), else a complete
//!    snapshot; with a [debounce](SyncRunnerBuilder::debounce), records
//!    edited too recently are left for a later run, with the other
//!    systems' records of their entities;
//! 3. plans;
//! 4. executes the plan per system in batches of the connector's
//!    [`max_batch_size`](crate::connector::Capabilities::max_batch_size), in
//!    the plan's order within a system, several systems at once (at most
//!    [`max_concurrent_systems`](SyncRunnerBuilder::max_concurrent_systems));
//!    rate-limited and transient failures are tried again after the
//!    [`RetryPolicy`]'s wait, per op, until its attempts are spent: then that
//!    op fails for this run, the others go on;
//! 5. commits the outcomes and saves the baseline with the new cursors (a
//!    failed op leaves its target behind, so the next plan writes it again);
//! 6. where a conditional write was refused because the record changed
//!    since it was read, reads those records again
//!    ([`fetch_records`](Connector::fetch_records)), plans their entities
//!    again and executes and commits that, **in the same run**: the change
//!    that was not seen is taken into account, never overwritten. A
//!    connector that cannot fetch by ids leaves them for the next run (its
//!    stale ops are reported as failed with
//!    [`PreconditionFailed`](ErrorKind::PreconditionFailed)).
//!
//! [`dry_run`](SyncRunner::dry_run) stops after step 3 and returns the plan:
//! nothing is executed, nothing saved. Progress reaches the host as
//! [`SyncEvent`]s ([`subscribe`](SyncRunner::subscribe)) and each run
//! returns a [`SyncReport`].
//!
//! The runner depends on no async runtime: waiting goes through a
//! [`Sleeper`] (a tokio host passes `tokio::time::sleep`) and the time
//! through a [`Clock`]. Stores are called inline (they are synchronous).
//!
//! ```
//! # #[cfg(feature = "testkit")]
//! # futures::executor::block_on(async {
//! use recsync::runner::SyncRunner;
//! use recsync::testkit::MemoryConnector;
//! use recsync::{Field, FieldMap, MemoryStore, SyncEngine};
//! use serde_json::json;
//!
//! let map = FieldMap::builder()
//!     .object("contacts")
//!     .systems(["crm", "shop"])
//!     .key("email")
//!     .field(Field::new("email"))
//!     .field(Field::new("name"))
//!     .build()?;
//! let crm = MemoryConnector::new("crm");
//! let shop = MemoryConnector::new("shop");
//! crm.insert("contacts", [("email", json!("ada@example.com")), ("name", json!("Ada"))]);
//!
//! let runner = SyncRunner::builder(SyncEngine::new(map))
//!     .connector(crm.clone())
//!     .connector(shop.clone())
//!     .store(MemoryStore::new())
//!     .build()?;
//! let report = runner.run().await?;
//! assert_eq!(report.applied(), 1);
//! assert_eq!(shop.records("contacts")[0].get("name"), Some(&json!("Ada")));
//! assert!(runner.dry_run().await?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod events;
mod report;
mod retry;
mod time;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures::channel::mpsc;
use futures::stream::{self, StreamExt};

use crate::baseline::{Baseline, EntityId, EntityRef, LinkStatus};
use crate::connector::{Applied, Connector, ConnectorError, ConnectorExt, Cursor, ErrorKind};
use crate::engine::{
    holds_last_commit, CommitError, OpOutcome, Outcomes, PlanError, PlanOptions, SyncEngine,
};
use crate::guard::{Approval, Refusal};
use crate::model::{Coverage, Record, Snapshot, SystemId};
use crate::plan::{OpKind, SyncPlan, WriteOp};
use crate::store::{StateStore, StoreError};

pub use events::SyncEvent;
pub use report::{ErrorGroup, FailedOp, OpCounts, SyncReport, SystemReport};
pub use retry::RetryPolicy;
pub use time::{Clock, Sleeper, SystemClock, ThreadSleeper};

/// Why a run stopped before it committed. Nothing was saved; ops already
/// executed are found again by the next run (creates by their correlation
/// keys, updates as values already in place).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The store could not load or save.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A system could not be read, retries included: without its records the
    /// plan cannot tell what changed.
    #[error("fetching {object} from {system} failed: {source}")]
    Fetch {
        /// The system.
        system: SystemId,
        /// The object type.
        object: String,
        /// The connector's error.
        #[source]
        source: ConnectorError,
    },
    /// The engine refused the input.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The engine refused to commit (another process saved in between).
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// A [`SyncRunnerBuilder`] setting that
/// [`build`](SyncRunnerBuilder::build) refused, with every problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sync runner: {}", problems.join("; "))]
pub struct BuildError {
    /// Every problem found.
    pub problems: Vec<String>,
}

/// Syncs one object type between its systems; see the
/// [module docs](self).
pub struct SyncRunner {
    engine: SyncEngine,
    object: String,
    systems: Vec<SystemId>,
    /// One per system, in the map's order.
    connectors: Vec<Arc<dyn Connector>>,
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    retry: RetryPolicy,
    concurrency: usize,
    debounce: Option<Duration>,
    replan: bool,
    parents: Vec<String>,
    subscribers: events::Subscribers,
    running: futures::lock::Mutex<()>,
    /// Approvals for the next run's plan.
    approvals: std::sync::Mutex<Vec<Approval>>,
}

impl fmt::Debug for SyncRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncRunner")
            .field("object", &self.object)
            .field("connectors", &self.connectors)
            .field("store", &self.store)
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .field("debounce", &self.debounce)
            .field("replan", &self.replan)
            .field("parents", &self.parents)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SyncRunner`]; see [`SyncRunner::builder`].
pub struct SyncRunnerBuilder {
    engine: SyncEngine,
    connectors: Vec<Arc<dyn Connector>>,
    store: Option<Arc<dyn StateStore>>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    retry: RetryPolicy,
    concurrency: usize,
    debounce: Option<Duration>,
    replan: bool,
    parents: Vec<String>,
}

impl fmt::Debug for SyncRunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncRunnerBuilder")
            .field("object", &self.engine.map().object())
            .field("connectors", &self.connectors)
            .finish_non_exhaustive()
    }
}

impl SyncRunnerBuilder {
    /// Adds the connector of one of the map's systems (the system it names).
    /// A connector shared with other runners is passed as an `Arc`.
    #[must_use]
    pub fn connector(mut self, connector: impl Connector + 'static) -> Self {
        self.connectors.push(Arc::new(connector));
        self
    }

    /// Where the baseline is kept (required).
    #[must_use]
    pub fn store(mut self, store: impl StateStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Where the time is read from (default [`SystemClock`]): debounce and
    /// run durations.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How to wait between retries (default [`ThreadSleeper`]; on tokio,
    /// pass `tokio::time::sleep`).
    #[must_use]
    pub fn sleeper(mut self, sleeper: impl Sleeper + 'static) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// How to retry rate limits and transient failures (default
    /// [`RetryPolicy::new`]).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How many systems are written to at once (default 4; at least 1).
    #[must_use]
    pub fn max_concurrent_systems(mut self, systems: usize) -> Self {
        self.concurrency = systems;
        self
    }

    /// Leaves records edited less than `quiet` ago (by their `updated_at`
    /// and the runner's clock) for a later run, so that a record someone is
    /// still editing is synced once they stop, and with them the other
    /// systems' records of their entities: what each system changed
    /// meanwhile is then decided together, by the conflict policy, once
    /// all are quiet (an older edit held back is not taken for a newer one
    /// when it arrives). The systems they are left out of are read as
    /// partial snapshots (a record missing from a complete one still counts
    /// as deleted, unless its entity waits: then the delete waits too), and
    /// their cursors are not moved on, so the next run reads them again. An
    /// entity edited again and again, never quiet for `quiet`, waits until
    /// it is. A record as the last commit left it is not held
    /// back, since nothing in it is new: its content is what the last read
    /// saw, or it reports the version the runner's own write to it reported
    /// (for a system without versions, the read-back of the runner's write
    /// waits like an edit).
    #[must_use]
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.debounce = Some(quiet);
        self
    }

    /// Whether records refused as stale are read again and their entities
    /// planned again in the same run (default on). Off, they wait for the
    /// next run.
    #[must_use]
    pub fn replan_stale(mut self, on: bool) -> Self {
        self.replan = on;
        self
    }

    /// An object type the map's reference fields point to: its baseline is
    /// loaded from the same store for every plan
    /// ([`PlanOptions::parent`]).
    #[must_use]
    pub fn parent(mut self, object: impl Into<String>) -> Self {
        self.parents.push(object.into());
        self
    }

    /// Checks the settings: a store, exactly one connector for each of the
    /// map's systems and none for others, a concurrency of at least 1.
    pub fn build(self) -> Result<SyncRunner, BuildError> {
        let map = self.engine.map();
        let mut problems = Vec::new();
        if self.store.is_none() {
            problems.push("no state store given".to_owned());
        }
        if self.concurrency == 0 {
            problems.push("max concurrent systems is 0, must be at least 1".to_owned());
        }
        let mut by_system: HashMap<&SystemId, Arc<dyn Connector>> = HashMap::new();
        for c in &self.connectors {
            let system = c.system();
            if !map.systems().contains(system) {
                problems.push(format!(
                    "connector for system {system}, which the map does not have"
                ));
            } else if by_system.insert(system, Arc::clone(c)).is_some() {
                problems.push(format!("two connectors for system {system}"));
            }
        }
        let mut connectors = Vec::with_capacity(map.systems().len());
        for system in map.systems() {
            match by_system.get(system) {
                Some(c) => connectors.push(Arc::clone(c)),
                None => problems.push(format!("no connector for system {system}")),
            }
        }
        let store = match self.store {
            Some(store) if problems.is_empty() => store,
            _ => return Err(BuildError { problems }),
        };
        Ok(SyncRunner {
            object: map.object().to_owned(),
            systems: map.systems().to_vec(),
            engine: self.engine,
            connectors,
            store,
            clock: self.clock,
            sleeper: self.sleeper,
            retry: self.retry,
            concurrency: self.concurrency,
            debounce: self.debounce,
            replan: self.replan,
            parents: self.parents,
            subscribers: events::Subscribers::default(),
            running: futures::lock::Mutex::new(()),
            approvals: std::sync::Mutex::new(Vec::new()),
        })
    }
}

/// One system's records as read for a plan.
struct Fetched {
    snapshot: Snapshot,
    /// The cursor to keep after commit; `None` keeps the one kept before.
    cursor: Option<Cursor>,
    incremental: bool,
    retries: usize,
    debounced: usize,
}

/// The final result of each op of one system, by index in the ops given.
struct Executed {
    system: usize,
    results: Vec<(usize, Result<Applied, ConnectorError>)>,
    retries: usize,
}

impl SyncRunner {
    /// A builder for a runner of `engine`'s object type.
    pub fn builder(engine: SyncEngine) -> SyncRunnerBuilder {
        SyncRunnerBuilder {
            engine,
            connectors: Vec::new(),
            store: None,
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(ThreadSleeper),
            retry: RetryPolicy::new(),
            concurrency: 4,
            debounce: None,
            replan: true,
            parents: Vec::new(),
        }
    }

    /// The object type it syncs.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The engine it plans with.
    pub fn engine(&self) -> &SyncEngine {
        &self.engine
    }

    /// Approves what a safety guard refused in a run (its report's
    /// [`refusal`](SyncReport::refusal)): the next run plans those changes
    /// if they are still exactly what was refused. An approval is used by
    /// one run.
    pub fn approve(&self, refusal: &Refusal) {
        self.approvals().extend(refusal.approvals.iter().copied());
    }

    fn approvals(&self) -> std::sync::MutexGuard<'_, Vec<Approval>> {
        // A panic while holding the lock leaves a whole Vec behind.
        self.approvals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A stream of the [`SyncEvent`]s of every run from now on. Events are
    /// queued until read; drop the stream to stop them.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<SyncEvent> {
        self.subscribers.subscribe()
    }

    /// Runs one sync; see the [module docs](self). Runs of one runner never
    /// overlap: a second call waits for the first.
    pub async fn run(&self) -> Result<SyncReport, RunError> {
        self.go(false).await.map(|(report, _)| report)
    }

    /// Reads every system and plans, as [`run`](Self::run) would, and
    /// returns the plan: nothing is executed and nothing saved. The
    /// [`RunDone`](SyncEvent::RunDone) event has a report with the planned
    /// counts.
    pub async fn dry_run(&self) -> Result<SyncPlan, RunError> {
        self.go(true).await.map(|(_, plan)| plan)
    }

    fn emit(&self, event: SyncEvent) {
        self.subscribers.emit(event);
    }

    async fn go(&self, dry: bool) -> Result<(SyncReport, SyncPlan), RunError> {
        let _running = self.running.lock().await;
        let started = self.clock.now();
        let mut report = SyncReport::new(self.object.clone(), &self.systems, started);
        report.dry_run = dry;
        let mut baseline = self.store.load(&self.object)?;

        let reads = futures::future::join_all(
            self.connectors
                .iter()
                .map(|c| self.fetch(c.as_ref(), &baseline)),
        )
        .await;
        let mut reads = reads.into_iter().collect::<Result<Vec<Fetched>, _>>()?;
        if let Some(quiet) = self.debounce {
            self.debounce_records(&mut reads, &baseline, quiet);
        }
        let mut snapshots = Vec::with_capacity(reads.len());
        let mut cursors = Vec::new();
        for (read, system) in reads.into_iter().zip(&self.systems) {
            if let Some(s) = report.system_mut(system) {
                s.fetched = read.snapshot.records.len();
                s.retries += read.retries;
            }
            report.debounced += read.debounced;
            self.emit(SyncEvent::Fetched {
                system: system.clone(),
                records: read.snapshot.records.len(),
                debounced: read.debounced,
                incremental: read.incremental,
            });
            if let Some(cursor) = read.cursor {
                cursors.push((system.clone(), cursor));
            }
            snapshots.push(read.snapshot);
        }

        let parents = self
            .parents
            .iter()
            .map(|p| self.store.load(p))
            .collect::<Result<Vec<Baseline>, _>>()?;
        let mut options = PlanOptions::new();
        for (name, parent) in self.parents.iter().zip(&parents) {
            options = options.parent(name.clone(), parent);
        }
        let approvals = std::mem::take(&mut *self.approvals());
        for a in &approvals {
            options = options.approve_stage(*a);
        }
        let plan = self.engine.plan_with(&baseline, &snapshots, &options)?;
        drop(snapshots);
        report.conflicts = plan.conflicts.len();
        report.held = plan.held.len();
        report.issues = plan.issues.len();
        report.refusal = plan.refusal.clone();
        for op in &plan.ops {
            if let Some(s) = report.system_mut(&op.system) {
                s.planned.add(op.kind);
            }
        }
        self.emit(SyncEvent::Planned {
            ops: plan.ops.len(),
            conflicts: plan.conflicts.len(),
            held: plan.held.len(),
            issues: plan.issues.len(),
        });
        self.emit_conflicts(&plan, None);
        if dry {
            return Ok((self.finish(report), plan));
        }

        // Execute, commit, save.
        let executed = self.execute(&plan.ops).await;
        let mut outcomes = Outcomes::new();
        let mut stale: Vec<usize> = Vec::new();
        for done in executed {
            self.count_retries(&mut report, done.system, done.retries);
            for (i, result) in done.results {
                let Some(op) = plan.ops.get(i) else { continue };
                let replannable = self.replan
                    && op.record_id.is_some()
                    && self.connectors[done.system].capabilities().fetch_by_ids;
                match &result {
                    Err(e) if replannable && *e.kind() == ErrorKind::PreconditionFailed => {
                        stale.push(i);
                    }
                    _ => tally(&mut report, op, &result),
                }
                outcomes.record(op.id, OpOutcome::from(result));
            }
        }
        let summary = self.engine.commit(&mut baseline, &plan, &outcomes)?;
        for (system, cursor) in &cursors {
            baseline.set_cursor(system.clone(), cursor.as_str());
        }
        self.store.save(&self.object, &baseline, &summary)?;

        if !stale.is_empty() {
            let stale_ops: Vec<&WriteOp> = stale.iter().filter_map(|i| plan.ops.get(*i)).collect();
            self.replan_stale(&mut report, &mut baseline, &stale_ops, &options)
                .await?;
        }
        Ok((self.finish(report), plan))
    }

    fn finish(&self, mut report: SyncReport) -> SyncReport {
        let end = self.clock.now();
        report.duration = (end - report.started_at).to_std().unwrap_or(Duration::ZERO);
        self.emit(SyncEvent::RunDone {
            report: report.clone(),
        });
        report
    }

    fn count_retries(&self, report: &mut SyncReport, system: usize, retries: usize) {
        if let Some(s) = self
            .systems
            .get(system)
            .and_then(|name| report.system_mut(name))
        {
            s.retries += retries;
        }
    }

    fn emit_conflicts(&self, plan: &SyncPlan, only: Option<&HashSet<&EntityId>>) {
        for c in &plan.conflicts {
            if only.is_none_or(|set| set.contains(&c.entity)) {
                self.emit(SyncEvent::ConflictHeld {
                    conflict: c.id,
                    entity: c.entity.clone(),
                    field: c.field.clone(),
                });
            }
        }
    }

    /// Step 6: read the records whose conditional write was refused again,
    /// plan their entities again, execute that, commit and save.
    async fn replan_stale(
        &self,
        report: &mut SyncReport,
        baseline: &mut Baseline,
        stale: &[&WriteOp],
        options: &PlanOptions<'_>,
    ) -> Result<(), RunError> {
        let mut snapshots = Vec::new();
        let mut entities: HashSet<&EntityId> = HashSet::new();
        for (s, connector) in self.connectors.iter().enumerate() {
            let system = &self.systems[s];
            let ops: Vec<&WriteOp> = stale
                .iter()
                .copied()
                .filter(|op| &op.system == system)
                .collect();
            let ids: Vec<String> = ops.iter().filter_map(|op| op.record_id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            self.emit(SyncEvent::Replanning {
                system: system.clone(),
                records: ids.len(),
            });
            let (read, retries) = self
                .with_retry(system, || connector.fetch_records(&self.object, &ids))
                .await;
            self.count_retries(report, s, retries);
            match read {
                Ok(snapshot) => {
                    report.replanned += ops.len();
                    entities.extend(ops.iter().map(|op| &op.entity));
                    snapshots.push(snapshot);
                }
                Err(error) => {
                    // Left for the next run, which reads them anyway.
                    let stale_error = ConnectorError::precondition_failed(format!(
                        "the record changed since it was read, and reading it again failed: {error}"
                    ));
                    for op in ops {
                        tally(report, op, &Err(stale_error.clone()));
                    }
                }
            }
        }
        if snapshots.is_empty() {
            return Ok(());
        }
        let plan = self.engine.plan_with(baseline, &snapshots, options)?;
        drop(snapshots);
        let chosen: Vec<WriteOp> = plan
            .ops
            .iter()
            .filter(|op| entities.contains(&op.entity))
            .cloned()
            .collect();
        for op in &chosen {
            if let Some(s) = report.system_mut(&op.system) {
                s.planned.add(op.kind);
            }
        }
        report.conflicts += plan
            .conflicts
            .iter()
            .filter(|c| entities.contains(&c.entity))
            .count();
        self.emit_conflicts(&plan, Some(&entities));
        let mut outcomes = Outcomes::new();
        for done in self.execute(&chosen).await {
            self.count_retries(report, done.system, done.retries);
            for (i, result) in done.results {
                let Some(op) = chosen.get(i) else { continue };
                tally(report, op, &result);
                outcomes.record(op.id, OpOutcome::from(result));
            }
        }
        // Ops of other entities get no outcome: they stay for the next run.
        let summary = self.engine.commit(baseline, &plan, &outcomes)?;
        self.store.save(&self.object, baseline, &summary)?;
        Ok(())
    }

    /// Calls `call` until it succeeds, fails for good, or the retry policy
    /// gives up; returns its last result and the number of retries.
    async fn with_retry<T, F, Fut>(
        &self,
        system: &SystemId,
        mut call: F,
    ) -> (Result<T, ConnectorError>, usize)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let error = match call().await {
                Ok(value) => return (Ok(value), (attempt - 1) as usize),
                Err(e) => e,
            };
            let delay = error
                .is_retryable()
                .then(|| self.retry.delay(attempt, error.retry_after()))
                .flatten();
            let Some(after) = delay else {
                return (Err(error), (attempt - 1) as usize);
            };
            self.emit(SyncEvent::Retrying {
                system: system.clone(),
                attempt,
                after,
                error: error.kind().clone(),
                ops: 0,
            });
            self.sleeper.sleep(after).await;
        }
    }

    /// Reads one system: changes since its cursor, or a complete snapshot.
    async fn fetch(
        &self,
        connector: &dyn Connector,
        baseline: &Baseline,
    ) -> Result<Fetched, RunError> {
        let system = connector.system();
        let object = self.object.as_str();
        let fail = |source: ConnectorError| RunError::Fetch {
            system: system.clone(),
            object: object.to_owned(),
            source,
        };
        if connector.capabilities().incremental_fetch {
            let kept = baseline.cursor(system.as_str()).map(Cursor::new);
            let (read, mut retries) = self
                .with_retry(system, || {
                    connector.fetch_all_changes(object, kept.as_ref())
                })
                .await;
            let read = match read {
                Err(e) if kept.is_some() && *e.kind() == ErrorKind::InvalidCursor => {
                    // The cursor is too old: read everything again.
                    let (again, more) = self
                        .with_retry(system, || connector.fetch_all_changes(object, None))
                        .await;
                    retries += more;
                    again.map(|changes| (changes, false))
                }
                other => other.map(|changes| (changes, kept.is_some())),
            };
            match read {
                Ok((changes, incremental)) => {
                    return Ok(Fetched {
                        snapshot: changes.snapshot,
                        cursor: Some(changes.cursor),
                        incremental,
                        retries,
                        debounced: 0,
                    })
                }
                Err(e) if *e.kind() != ErrorKind::NotSupported => return Err(fail(e)),
                Err(_) => {}
            }
        }
        let (read, retries) = self.with_retry(system, || connector.fetch(object)).await;
        Ok(Fetched {
            snapshot: read.map_err(fail)?,
            cursor: None,
            incremental: false,
            retries,
            debounced: 0,
        })
    }

    /// Leaves out records edited less than `quiet` ago, and with them every
    /// record of their entities in the other systems: an entity is planned
    /// once all its records are quiet, so that what each system changed
    /// meanwhile is decided together, by the conflict policy, not in the
    /// order the records happen to settle.
    fn debounce_records(&self, reads: &mut [Fetched], baseline: &Baseline, quiet: Duration) {
        let now = self.clock.now();
        let cutoff = TimeDelta::from_std(quiet)
            .ok()
            .and_then(|q| now.checked_sub_signed(q))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        // A record as the last commit left it (the read-back of the
        // runner's own write, say) has nothing new to wait for.
        let recent: Vec<Vec<bool>> = reads
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
                if let Some(e) = baseline.find_linked(name, &r.id) {
                    waiting.insert(e.id());
                }
            }
        }
        for (read, recent) in reads.iter_mut().zip(recent) {
            let system = read.snapshot.system.clone();
            let of_waiting = |id: &str| {
                baseline
                    .find_linked(system.as_str(), id)
                    .is_some_and(|e| waiting.contains(e.id()))
            };
            let held: Vec<bool> = read
                .snapshot
                .records
                .iter()
                .zip(&recent)
                .map(|(r, recent)| *recent || (!waiting.is_empty() && of_waiting(&r.id)))
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
    }

    /// Executes `ops`, per system, several systems at once.
    async fn execute(&self, ops: &[WriteOp]) -> Vec<Executed> {
        let groups: Vec<(usize, Vec<usize>)> = self
            .systems
            .iter()
            .enumerate()
            .map(|(s, system)| {
                let mine = ops
                    .iter()
                    .enumerate()
                    .filter(|(_, op)| &op.system == system)
                    .map(|(i, _)| i)
                    .collect::<Vec<usize>>();
                (s, mine)
            })
            .filter(|(_, mine)| !mine.is_empty())
            .collect();
        stream::iter(groups)
            .map(|(s, mine)| self.execute_system(s, ops, mine))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await
    }

    /// Executes one system's ops in order, batch after batch; within a
    /// batch, retryable failures are sent again (as a smaller batch) until
    /// they succeed or their attempts are spent, before the next batch.
    async fn execute_system(&self, s: usize, ops: &[WriteOp], mine: Vec<usize>) -> Executed {
        let connector = &self.connectors[s];
        let system = &self.systems[s];
        let size = connector.capabilities().max_batch_size.max(1);
        let mut done = Executed {
            system: s,
            results: Vec::with_capacity(mine.len()),
            retries: 0,
        };
        for chunk in mine.chunks(size) {
            let mut results: Vec<Option<Result<Applied, ConnectorError>>> = vec![None; chunk.len()];
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let batch: Vec<WriteOp> = pending
                    .iter()
                    .filter_map(|k| ops.get(chunk[*k]).cloned())
                    .collect();
                match connector.apply(&self.object, &batch).await {
                    Ok(answers) if answers.len() == batch.len() => {
                        for ((k, answer), op) in pending.iter().zip(answers).zip(&batch) {
                            results[*k] = Some(settle(op, answer));
                        }
                    }
                    Ok(answers) => {
                        let error = ConnectorError::permanent(format!(
                            "{system} returned {} results for a batch of {} ops",
                            answers.len(),
                            batch.len()
                        ));
                        for k in &pending {
                            results[*k] = Some(Err(error.clone()));
                        }
                    }
                    Err(error) => {
                        for (k, op) in pending.iter().zip(&batch) {
                            results[*k] = Some(settle(op, Err(error.clone())));
                        }
                    }
                }
                let retry: Vec<usize> = pending
                    .iter()
                    .copied()
                    .filter(|k| matches!(&results[*k], Some(Err(e)) if e.is_retryable()))
                    .collect();
                let Some(first) = retry.first().and_then(|k| match &results[*k] {
                    Some(Err(e)) => Some(e.kind().clone()),
                    _ => None,
                }) else {
                    break;
                };
                let retry_after = retry
                    .iter()
                    .filter_map(|k| match &results[*k] {
                        Some(Err(e)) => e.retry_after(),
                        _ => None,
                    })
                    .max();
                let Some(after) = self.retry.delay(attempt, retry_after) else {
                    break;
                };
                self.emit(SyncEvent::Retrying {
                    system: system.clone(),
                    attempt,
                    after,
                    error: first,
                    ops: retry.len(),
                });
                done.retries += 1;
                self.sleeper.sleep(after).await;
                pending = retry;
            }
            let mut applied = 0;
            let mut failed = 0;
            for (k, result) in results.into_iter().enumerate() {
                let result =
                    result.unwrap_or_else(|| Err(ConnectorError::permanent("op was not sent")));
                if result.is_ok() {
                    applied += 1;
                } else {
                    failed += 1;
                }
                done.results.push((chunk[k], result));
            }
            self.emit(SyncEvent::BatchDone {
                system: system.clone(),
                applied,
                failed,
            });
        }
        done
    }
}

/// What an op's answer means for the plan: a delete of a record that is
/// already gone did what it was meant to; a create applied without the new
/// record's id cannot be linked, so it counts as failed (the next run finds
/// the record by its correlation key).
fn settle(
    op: &WriteOp,
    answer: Result<Applied, ConnectorError>,
) -> Result<Applied, ConnectorError> {
    match answer {
        Err(e) if op.kind == OpKind::Delete && *e.kind() == ErrorKind::NotFound => {
            Ok(Applied::new())
        }
        Ok(applied) if op.kind == OpKind::Create && applied.record_id.is_none() => Err(
            ConnectorError::permanent("create reported applied without the new record's id"),
        ),
        other => other,
    }
}

fn tally(report: &mut SyncReport, op: &WriteOp, result: &Result<Applied, ConnectorError>) {
    if let Some(s) = report.system_mut(&op.system) {
        match result {
            Ok(_) => s.applied.add(op.kind),
            Err(_) => s.failed.add(op.kind),
        }
    }
    if let Err(error) = result {
        report.add_error(
            error.kind(),
            FailedOp {
                system: op.system.clone(),
                kind: op.kind,
                record_id: op.record_id.clone(),
                entity: op.entity.clone(),
            },
        );
    }
}

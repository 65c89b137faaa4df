//! [`SyncRunner`]: the loop around the engine, run on any async executor.
//!
//! A runner syncs one object type (`"contacts"`) between the systems of its
//! [`FieldMap`](crate::FieldMap), through one [`Connector`] per system, and
//! keeps the baseline in an [`AsyncStateStore`]. One [`run`](SyncRunner::run):
//!
//! 1. loads the baseline;
//! 2. reads every system at once: the changes since the cursor kept with the
//!    baseline where the connector fetches incrementally (from the
//!    beginning, a complete snapshot, the first time), else a complete
//!    snapshot; with a [debounce](SyncRunnerBuilder::debounce), records
//!    edited too recently are left for a later run, with every other record
//!    of their entities, and nothing is written to those entities in this
//!    run;
//! 3. plans;
//! 4. executes the plan per system in batches of one kind of op (creates,
//!    updates or deletes, as most batch endpoints take them) and at most
//!    the connector's
//!    [`max_batch_size`](crate::connector::Capabilities::max_batch_size),
//!    up to [`batches_in_flight`](SyncRunnerBuilder::batches_in_flight) at
//!    once (default 1), each entity's ops in the plan's order, several
//!    systems at once (at most
//!    [`max_concurrent_systems`](SyncRunnerBuilder::max_concurrent_systems));
//!    rate-limited, transient and timed-out failures are tried again after
//!    the [`RetryPolicy`]'s wait, per op, until its attempts are spent: then
//!    that op fails for this run, the others go on;
//! 5. reads back what each system reported applied, where its connector
//!    can fetch by ids ([`read_back`](SyncRunnerBuilder::read_back)): a
//!    write that does not show fails as
//!    [`Unconfirmed`](ErrorKind::Unconfirmed);
//! 6. commits the outcomes and saves the baseline with the new cursors (a
//!    failed op leaves its target behind, so the next plan writes it again);
//! 7. where a conditional write was refused because the record changed
//!    since it was read, reads again every record of those entities
//!    ([`fetch_records`](Connector::fetch_records)), plans them again and
//!    executes and commits that, **in the same run**: the change that was
//!    not seen is decided together with the others, never overwritten. A
//!    connector that cannot fetch by ids leaves them for the next run (its
//!    stale ops are reported as failed with
//!    [`PreconditionFailed`](ErrorKind::PreconditionFailed)).
//!
//! # Connectors that fail, lie or hang
//!
//! A call that fails as a whole, or an op that fails, is retried where the
//! error says it may succeed later, and otherwise reported in the
//! [`SyncReport`] by its [`ErrorKind`]; the op is planned again by the next
//! run. A write reported applied counts only once a read shows it (step
//! 5; without read-back, the next plan's read is the check). A call that
//! does not answer within the [`timeout`](SyncRunnerBuilder::timeout) is
//! abandoned: a read is tried again, a write too, under its conditions and
//! idempotency key, since it may have taken effect. A
//! [`deadline`](SyncRunnerBuilder::deadline) bounds a whole run: what was
//! not sent by then waits for the next run, and what was done is committed.
//! A read that lists a record twice (overlapping pages) is reported, and
//! no system's cursor moves on in that run: the next run reads the changes
//! again, so that nothing the faulty pages hid or held back is passed over.
//! A run's future may also be dropped at any point: nothing is saved that
//! was not committed, and the next run finds what was written (creates by
//! their correlation keys, updates as values already in place).
//!
//! [`dry_run`](SyncRunner::dry_run) stops after step 3 and returns the plan
//! (without the writes to entities the debounce holds back): nothing is
//! executed, nothing saved. Progress reaches the host as
//! [`SyncEvent`]s ([`subscribe`](SyncRunner::subscribe)) and each run
//! returns a [`SyncReport`].
//!
//! # At an API's limits
//!
//! With a `RateLimit` for a system (feature `rate-limit`;
//! `SyncRunnerBuilder::rate_limit`), every request the runner sends there
//! (each read, page of changes, write batch and read-back) waits for a
//! permit, and a connector that sends more than one request per call
//! takes one for each further request from a clone of the limit, so the
//! runner runs at the system's limit without going over it; clones of one
//! limit, given to the runners of one account, share it. A 429 answered
//! anyway pauses every holder of the limit for the retry's wait. Once its
//! budget is spent, the runner sends the system no more requests: ops not
//! sent fail as [`BudgetSpent`](ErrorKind::BudgetSpent), the run says so
//! ([`SyncEvent::BudgetSpent`], [`SystemReport::budget_spent`]) and
//! commits what was done, and the next run plans the rest; a read that
//! cannot be made stops the run before it plans
//! ([`RunError::Fetch`]). Each report counts the requests sent per
//! system ([`SystemReport::requests`]).
//!
//! The runner depends on no async runtime: waiting goes through a
//! [`Sleeper`] (a tokio host passes `tokio::time::sleep`) and the time
//! through a [`Clock`]. The store is an [`AsyncStateStore`]: loads and saves
//! never block the executor.
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

mod calls;
mod confirm;
mod debounce;
mod events;
mod execute;
#[cfg(feature = "rate-limit")]
mod pace;
mod paced;
mod report;
mod retry;
mod sharding;
mod time;
mod undo;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures::channel::mpsc;

use crate::baseline::{Baseline, EntityId, LinkStatus};
use crate::connector::{Applied, Connector, ConnectorError, Cursor, ErrorKind};
use crate::engine::{CommitError, CommitSummary, Outcomes, PlanError, PlanOptions, SyncEngine};
use crate::guard::{Approval, Refusal};
use crate::journal::{Retention, RunId};
use crate::model::{Snapshot, SystemId};
use crate::plan::{IssueKind, SyncPlan, WriteOp};
use crate::shard::Shard;
use crate::store::{AsyncStateStore, StoreError};

use calls::Run;

pub use events::SyncEvent;
#[cfg(feature = "rate-limit")]
pub use pace::{PaceStats, RateLimit, RateLimitBuilder};
pub use report::{ErrorGroup, FailedOp, OpCounts, SyncReport, SystemReport};
pub use retry::RetryPolicy;
pub use time::{Clock, Sleeper, SystemClock, ThreadSleeper};
pub use undo::Undone;

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
    /// An undo of a run the journal has no entries of: it wrote nothing,
    /// its entries were dropped by the retention, or no journal was kept
    /// ([`SyncRunnerBuilder::journal`]).
    #[error("{run} has no journal entries: it wrote nothing, retention dropped them, or no journal was kept")]
    NotJournaled {
        /// The run.
        run: RunId,
    },
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
    store: Arc<dyn AsyncStateStore>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    retry: RetryPolicy,
    concurrency: usize,
    in_flight: usize,
    /// One per system, in the map's order.
    #[cfg(feature = "rate-limit")]
    limits: Vec<Option<RateLimit>>,
    /// One per system, in the map's order: the current run's requests.
    counts: Vec<paced::Counts>,
    debounce: Option<Duration>,
    replan: bool,
    read_back: bool,
    timeout: Option<Duration>,
    fetch_timeout: Option<Duration>,
    deadline: Option<Duration>,
    parents: Vec<String>,
    /// The part of the object's entities it plans and writes.
    shard: Shard,
    /// What the store keeps of the write journal; `None`: no journal.
    journal: Option<Retention>,
    /// The key its baseline is kept under: the object's, or its shard's.
    state: String,
    subscribers: events::Subscribers,
    running: futures::lock::Mutex<()>,
    /// Approvals for the next run's plan.
    approvals: std::sync::Mutex<Vec<Approval>>,
}

impl fmt::Debug for SyncRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Systems, not connectors, and no store: their `Debug` is the
        // host's, and may print credentials.
        f.debug_struct("SyncRunner")
            .field("object", &self.object)
            .field("systems", &self.systems)
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .field("in_flight", &self.in_flight)
            .field("debounce", &self.debounce)
            .field("replan", &self.replan)
            .field("parents", &self.parents)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SyncRunner`]; see [`SyncRunner::builder`].
pub struct SyncRunnerBuilder {
    engine: SyncEngine,
    connectors: Vec<Arc<dyn Connector>>,
    store: Option<Arc<dyn AsyncStateStore>>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    retry: RetryPolicy,
    concurrency: usize,
    in_flight: usize,
    #[cfg(feature = "rate-limit")]
    limits: Vec<(SystemId, RateLimit)>,
    debounce: Option<Duration>,
    replan: bool,
    read_back: bool,
    timeout: Option<Duration>,
    fetch_timeout: Option<Duration>,
    deadline: Option<Duration>,
    parents: Vec<String>,
    shard: Shard,
    journal: Option<Retention>,
}

impl fmt::Debug for SyncRunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The systems of the connectors given, never the connectors.
        let systems: Vec<&SystemId> = self.connectors.iter().map(|c| c.system()).collect();
        f.debug_struct("SyncRunnerBuilder")
            .field("object", &self.engine.map().object())
            .field("systems", &systems)
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

    /// Where the baseline is kept (required): any
    /// [`AsyncStateStore`], which every shipped store is. A store of your
    /// own that implements only [`StateStore`](crate::StateStore) is
    /// passed as [`Blocking::new(store)`](crate::store::Blocking).
    #[must_use]
    pub fn store(mut self, store: impl AsyncStateStore + 'static) -> Self {
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

    /// How many write batches may be in flight to one system at once
    /// (default 1; at least 1). A record never has two ops in flight, and
    /// each entity's ops are sent in the plan's order: a batch that holds
    /// an op of an entity whose earlier op is still in flight waits for it
    /// (and the batches after it wait too). With a
    /// [`rate_limit`](Self::rate_limit), more batches in flight let the
    /// runner send at the limit when each request takes longer than the
    /// pace's interval.
    #[must_use]
    pub fn batches_in_flight(mut self, batches: usize) -> Self {
        self.in_flight = batches;
        self
    }

    /// Paces every request to `system` (each read, page of changes, write
    /// batch and read-back: one permit per call to its connector) under
    /// `limit`, and sends none once its budget is spent:
    /// the ops not sent fail as [`BudgetSpent`](ErrorKind::BudgetSpent),
    /// the run says so ([`SyncEvent::BudgetSpent`],
    /// [`SystemReport::budget_spent`]) and commits what was done, and the
    /// next run plans the rest. Give the runners of one account clones of
    /// one [`RateLimit`]: they share it. A 429 answered anyway pauses every
    /// holder of the limit for the retry's wait. Feature `rate-limit`.
    #[cfg(feature = "rate-limit")]
    #[must_use]
    pub fn rate_limit(mut self, system: impl Into<SystemId>, limit: RateLimit) -> Self {
        self.limits.push((system.into(), limit));
        self
    }

    /// Leaves records edited less than `quiet` ago (by their `updated_at`
    /// and the runner's clock) for a later run, so that a record someone is
    /// still editing is synced once they stop, and with them the other
    /// systems' records of their entities: what each system changed
    /// meanwhile is then decided together, by the conflict policy, once
    /// all are quiet (an older edit held back is not taken for a newer one
    /// when it arrives). A record not linked yet that is held back holds
    /// back with it every record not linked yet that shares a match key
    /// value with it (read alone, a record sharing a placeholder email
    /// would look unique and be created elsewhere). The systems they are
    /// left out of are read as partial snapshots (a record missing from a
    /// complete one still counts as deleted, unless its entity waits: then
    /// the delete waits too), and their cursors are not moved on, so the
    /// next run reads them again. An
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

    /// Whether what a connector reports applied is read back right after
    /// (with [`fetch_records`](Connector::fetch_records), where the
    /// connector can fetch by ids) and counted as applied only where it
    /// shows (default on): a created record that is not there, a deleted
    /// one still there, or an updated one whose written fields all still
    /// hold what they held before (and that does not report the version
    /// the write reported) fails as
    /// [`Unconfirmed`](ErrorKind::Unconfirmed), advances nothing, and is
    /// written again by the next plan. Turn it off for a system whose
    /// reads lag behind its writes, or to save the calls; the next plan's
    /// read is then the only check.
    #[must_use]
    pub fn read_back(mut self, on: bool) -> Self {
        self.read_back = on;
        self
    }

    /// How long one call to a connector may take before it is abandoned
    /// and fails as [`TimedOut`](ErrorKind::TimedOut), retryable (default:
    /// no limit): a write batch, a read-back, a read of records by ids, and
    /// reading a system unless [`fetch_timeout`](Self::fetch_timeout) says
    /// otherwise. The runner's wait for a rate limit's permit before a call
    /// does not count. A write that timed out may have taken effect: it is tried
    /// again as a conditional write (the record's version tells), or a
    /// create under the same idempotency key and correlation key, so that
    /// it never takes effect twice. The wait goes through the runner's
    /// [`Sleeper`]: give one of your runtime's (`tokio::time::sleep`), since
    /// the default [`ThreadSleeper`] holds a thread for every call it
    /// times.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// How long one read of a system's records may take: a
    /// [`fetch`](Connector::fetch) (a complete snapshot, every page the
    /// connector reads for it), or one page of the changes since the cursor
    /// (default: the [`timeout`](Self::timeout)). The runner's wait for a
    /// rate limit's permit before it does not count; the waits a connector
    /// makes inside one call (a permit for each later page of a complete
    /// read) do, so give a paced complete read the time its pages take. A read that times out is
    /// tried again under the retry policy; if it still fails, the run stops
    /// before it plans, with nothing written or saved.
    #[must_use]
    pub fn fetch_timeout(mut self, limit: Duration) -> Self {
        self.fetch_timeout = Some(limit);
        self
    }

    /// How long one run may take, by the runner's [`Clock`] (default: no
    /// limit). Once it has passed, no call is started and none is retried:
    /// a read not finished stops the run with nothing written or saved; ops
    /// not sent fail as [`TimedOut`](ErrorKind::TimedOut) and the next run
    /// writes them; what was written is committed and saved as usual. The
    /// wait for the deadline goes through the runner's [`Sleeper`]: with
    /// the default [`ThreadSleeper`], every call it bounds (each request,
    /// each wait for a permit) holds a thread until the deadline, so give
    /// a deadline together with your runtime's sleep.
    #[must_use]
    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
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

    /// The shard of the object's entities this runner plans and writes
    /// (default [`Shard::whole`]): see [`shard`](crate::shard). Its
    /// baseline is kept under the shard's
    /// [state key](Shard::state_key), and the records of the other shards
    /// it reads are left to them (counted in
    /// [`SystemReport::other_shards`]). Runners of one object's shards
    /// share one store that keeps the shards' routes
    /// ([`AsyncStateStore::route`]): a [`MemoryStore`](crate::MemoryStore)
    /// in one process, `PostgresStore` (feature `postgres`) on several
    /// hosts, whose leases keep two runners off one shard; with another
    /// store the run fails with [`StoreError::Unsupported`]. A
    /// [`ReviewQueue`](crate::store::ReviewQueue) of a shard is made with
    /// the shard's state key. A runner on a shard takes no
    /// [`parent`](Self::parent) (`build` refuses it): a parent object's
    /// baseline is kept whole, under its own key.
    #[must_use]
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Keeps a [write journal](crate::journal) in the store, under
    /// `retention`: every write a run applies, with each field's value
    /// before and after and the reason, saved with the baseline. It lets
    /// [`undo`](SyncRunner::undo) take a run back and
    /// [`history`](SyncRunner::history) tell who changed a field. Off by
    /// default: it keeps people's data beyond what syncing needs.
    ///
    /// Every shipped store keeps journals. A store of your own that does
    /// not ignores the batches it is given, and
    /// [`journal`](SyncRunner::journal), `history` and `undo` are refused
    /// with [`StoreError::Unsupported`].
    #[must_use]
    pub fn journal(mut self, retention: Retention) -> Self {
        self.journal = Some(retention);
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
        if self.in_flight == 0 {
            problems.push("batches in flight is 0, must be at least 1".to_owned());
        }
        if self.shard.count() > 1 && !self.parents.is_empty() {
            // A parent's baseline is loaded whole under its object's key;
            // a sharded object's entities are spread over its shards' keys.
            problems.push(format!(
                "{} with parent objects: a runner on a shard loads no parent baseline",
                self.shard
            ));
        }
        #[cfg(feature = "rate-limit")]
        let mut limits: Vec<Option<RateLimit>> = vec![None; map.systems().len()];
        #[cfg(feature = "rate-limit")]
        for (system, limit) in &self.limits {
            match map.systems().iter().position(|s| s == system) {
                None => problems.push(format!(
                    "rate limit for system {system}, which the map does not have"
                )),
                Some(s) if limits[s].is_some() => {
                    problems.push(format!("two rate limits for system {system}"))
                }
                Some(s) => limits[s] = Some(limit.clone()),
            }
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
        let counts = map
            .systems()
            .iter()
            .map(|_| paced::Counts::default())
            .collect();
        Ok(SyncRunner {
            counts,
            object: map.object().to_owned(),
            state: self.shard.state_key(map.object()),
            shard: self.shard,
            systems: map.systems().to_vec(),
            engine: self.engine,
            connectors,
            store,
            clock: self.clock,
            sleeper: self.sleeper,
            retry: self.retry,
            concurrency: self.concurrency,
            in_flight: self.in_flight,
            #[cfg(feature = "rate-limit")]
            limits,
            debounce: self.debounce,
            replan: self.replan,
            read_back: self.read_back,
            timeout: self.timeout,
            fetch_timeout: self.fetch_timeout,
            deadline: self.deadline,
            parents: self.parents,
            journal: self.journal,
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
            in_flight: 1,
            #[cfg(feature = "rate-limit")]
            limits: Vec::new(),
            debounce: None,
            replan: true,
            read_back: true,
            timeout: None,
            fetch_timeout: None,
            deadline: None,
            parents: Vec::new(),
            shard: Shard::whole(),
            journal: None,
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

    /// A run starting now (called with the runner's lock held): its
    /// deadline, and its report, the request counts reset.
    fn start(&self, dry: bool) -> (Run, SyncReport) {
        let started = self.clock.now();
        let run = Run {
            deadline: self
                .deadline
                .and_then(|d| TimeDelta::from_std(d).ok())
                .and_then(|d| started.checked_add_signed(d)),
        };
        let mut report = SyncReport::new(self.object.clone(), &self.systems, started);
        for counts in &self.counts {
            counts.reset();
        }
        report.dry_run = dry;
        (run, report)
    }

    async fn go(&self, dry: bool) -> Result<(SyncReport, SyncPlan), RunError> {
        let _running = self.running.lock().await;
        let (run, mut report) = self.start(dry);
        let started = report.started_at;
        let mut baseline = self.store.load(&self.state).await?;

        let paced: Vec<paced::Paced<'_>> = (0..self.connectors.len())
            .filter_map(|s| self.paced(run, s))
            .collect();
        let reads =
            futures::future::join_all(paced.iter().map(|c| self.fetch(run, c, &baseline))).await;
        let mut reads = reads.into_iter().collect::<Result<Vec<Fetched>, _>>()?;
        let kept = self.keep_shard(&mut reads, &baseline, dry).await?;
        for (system, left) in self.systems.iter().zip(&kept.left) {
            if let Some(s) = report.system_mut(system) {
                s.other_shards = *left;
            }
        }
        // Before debounce holds records back: a new field is seen at once.
        for (read, system) in reads.iter().zip(&self.systems) {
            let unmapped =
                report::unmapped_fields(self.engine.map(), system.as_str(), &read.snapshot.records);
            if let Some(s) = report.system_mut(system) {
                s.unmapped = unmapped;
            }
        }
        let waiting = match self.debounce {
            Some(quiet) => self.debounce_records(&mut reads, &baseline, quiet),
            None => HashSet::new(),
        };
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

        let mut parents = Vec::with_capacity(self.parents.len());
        for p in &self.parents {
            parents.push(self.store.load(p).await?);
        }
        let mut options = PlanOptions::new();
        for (name, parent) in self.parents.iter().zip(&parents) {
            options = options.parent(name.clone(), parent);
        }
        let approvals = std::mem::take(&mut *self.approvals());
        for a in &approvals {
            options = options.approve_stage(*a);
        }
        // An entity the debounce holds back is neither decided nor written
        // to: what its records hold now was not read into the plan, and
        // values an earlier plan kept are not taken for it. (The engine
        // plans no ops for it; any it had would get no outcome, so the
        // commit would keep them for a later run.)
        options = options.wait(waiting.iter().cloned());
        let mut plan = self.engine.plan_with(&baseline, &snapshots, &options)?;
        let ops: Vec<&WriteOp> = plan
            .ops
            .iter()
            .filter(|op| !waiting.contains(&op.entity))
            .collect();
        let prior = self.prior_reads(&ops, &snapshots);
        let read = self.journal_reads(&ops, &snapshots);
        drop(snapshots);
        report.conflicts = plan.conflicts.len();
        report.held = plan.held.len();
        report.issues = plan.issues.len();
        report.refusal = plan.refusal.clone();
        for op in &ops {
            if let Some(s) = report.system_mut(&op.system) {
                s.planned.add(op.kind);
            }
        }
        for w in &plan.read_only {
            if let Some(s) = report.system_mut(&w.system) {
                s.read_only.add(w.kind);
            }
        }
        self.emit(SyncEvent::Planned {
            ops: ops.len(),
            conflicts: plan.conflicts.len(),
            held: plan.held.len(),
            issues: plan.issues.len(),
        });
        self.emit_conflicts(&plan, None);
        if dry {
            drop(ops);
            plan.ops.retain(|op| !waiting.contains(&op.entity));
            return Ok((self.finish(report), plan));
        }

        // Execute, commit, save.
        let executed = self.execute(run, &ops, &baseline, &prior).await;
        let mut outcomes = Outcomes::new();
        let mut stale: Vec<&WriteOp> = Vec::new();
        for done in executed {
            self.count_retries(&mut report, done.system, done.retries);
            for (op, result) in done.results {
                let replannable = self.replan
                    && op.record_id.is_some()
                    && self.connectors[done.system].capabilities().fetch_by_ids;
                match &result {
                    Err(e) if replannable && *e.kind() == ErrorKind::PreconditionFailed => {
                        stale.push(op);
                    }
                    _ => tally(&mut report, op, &result),
                }
                outcomes.record(op.id, execute::outcome(&done.shown, op, result));
            }
        }
        let run_id = RunId::of(started, baseline.revision().saturating_add(1));
        let summary = self.commit_journaled(&mut baseline, &plan, &outcomes, &read, run_id)?;
        report.run = Some(run_id);
        drop(read);
        // A read that listed a record twice came from a connector whose
        // pages overlap, and may have skipped records too; the entity of
        // copies that differ was not planned, and the other records of it
        // read now must be read again: every system is read again from the
        // cursors kept before.
        let listed_twice = plan
            .issues
            .iter()
            .any(|i| i.kind == IssueKind::DuplicateRecordId);
        for (system, cursor) in cursors.iter().filter(|_| !listed_twice) {
            baseline.set_cursor(system.clone(), cursor.as_str());
        }
        // The records this run reserved that its commit did not make its
        // own, known before the baseline goes to the store, released once
        // it is saved.
        let unused = self.unused(&kept.reserved, &baseline);
        let baseline = self.save(baseline, summary, !stale.is_empty()).await?;
        self.release(&unused).await?;

        if let Some(mut baseline) = baseline {
            self.replan_stale(run, &mut report, &mut baseline, &stale, &options, run_id)
                .await?;
        }
        drop(stale);
        drop(ops);
        Ok((self.finish(report), plan))
    }

    fn finish(&self, mut report: SyncReport) -> SyncReport {
        for (counts, system) in self.counts.iter().zip(&self.systems) {
            if let Some(s) = report.system_mut(system) {
                s.requests = counts.requests.load(std::sync::atomic::Ordering::Relaxed);
                s.budget_spent = counts.spent.load(std::sync::atomic::Ordering::Relaxed);
            }
        }
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

    /// Step 6: read again every record of the entities whose conditional
    /// write was refused, in every system that can fetch by ids, plan those
    /// entities again (all of an entity's changes are decided together, as
    /// in any plan), execute that, commit and save.
    async fn replan_stale(
        &self,
        run: Run,
        report: &mut SyncReport,
        baseline: &mut Baseline,
        stale: &[&WriteOp],
        options: &PlanOptions<'_>,
        run_id: RunId,
    ) -> Result<(), RunError> {
        let mut entities: HashSet<&EntityId> = stale.iter().map(|op| &op.entity).collect();
        let mut reads = Vec::new();
        for (s, connector) in self.connectors.iter().enumerate() {
            let system = &self.systems[s];
            let mine: Vec<&WriteOp> = stale
                .iter()
                .copied()
                .filter(|op| &op.system == system)
                .collect();
            let ids: Vec<String> = if connector.capabilities().fetch_by_ids {
                let mut ids: Vec<String> = entities
                    .iter()
                    .filter_map(|e| baseline.entity(e))
                    .filter(|e| e.link_status(system.as_str()) == Some(LinkStatus::Active))
                    .filter_map(|e| e.link(system.as_str()).map(str::to_owned))
                    .collect();
                ids.sort_unstable();
                ids
            } else {
                Vec::new()
            };
            if ids.is_empty() {
                continue;
            }
            self.emit(SyncEvent::Replanning {
                system: system.clone(),
                records: ids.len(),
            });
            let (read, retries) = if self.past(run) {
                let late = ConnectorError::timed_out("not read: the run's deadline passed");
                (Err(late), 0)
            } else {
                self.with_retry(run, system, || async {
                    self.permit(run, s).await?;
                    self.bounded(
                        run,
                        self.timeout,
                        "reading again from",
                        system,
                        connector.fetch_records(&self.object, &ids),
                    )
                    .await
                })
                .await
            };
            self.count_retries(report, s, retries);
            match read {
                Ok(snapshot) => {
                    report.replanned += mine.len();
                    reads.push(Fetched {
                        snapshot,
                        cursor: None,
                        incremental: false,
                        retries: 0,
                        debounced: 0,
                    });
                }
                Err(error) => {
                    // Left for the next run, which reads them anyway.
                    let stale_error = ConnectorError::precondition_failed(format!(
                        "the record changed since it was read, and reading it again failed: {error}"
                    ));
                    for op in mine {
                        tally(report, op, &Err(stale_error.clone()));
                        entities.remove(&op.entity);
                    }
                }
            }
        }
        let mut waiting = HashSet::new();
        if let Some(quiet) = self.debounce {
            // An entity a person is still editing waits, as in any run.
            waiting = self.debounce_records(&mut reads, baseline, quiet);
            report.debounced += reads.iter().map(|r| r.debounced).sum::<usize>();
            entities.retain(|e| !waiting.contains(*e));
        }
        if reads.is_empty() || entities.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<Snapshot> = reads.into_iter().map(|r| r.snapshot).collect();
        let options = options.clone().wait(waiting);
        let plan = self.engine.plan_with(baseline, &snapshots, &options)?;
        let chosen: Vec<&WriteOp> = plan
            .ops
            .iter()
            .filter(|op| entities.contains(&op.entity))
            .collect();
        let prior = self.prior_reads(&chosen, &snapshots);
        let read = self.journal_reads(&chosen, &snapshots);
        drop(snapshots);
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
        for done in self.execute(run, &chosen, baseline, &prior).await {
            self.count_retries(report, done.system, done.retries);
            for (op, result) in done.results {
                tally(report, op, &result);
                outcomes.record(op.id, execute::outcome(&done.shown, op, result));
            }
        }
        // Ops of other entities get no outcome: they stay for the next run.
        let summary = self.commit_journaled(baseline, &plan, &outcomes, &read, run_id)?;
        self.save(std::mem::take(baseline), summary, false).await?;
        Ok(())
    }

    /// Saves `baseline` after the commit `summary` describes, handing the
    /// store a pointer to it (a store that writes it elsewhere lets go when
    /// done; [`MemoryStore`](crate::MemoryStore) keeps it). Gives it back
    /// if `again`, copied only if the store kept it.
    async fn save(
        &self,
        baseline: Baseline,
        summary: CommitSummary,
        again: bool,
    ) -> Result<Option<Baseline>, StoreError> {
        let shared = Arc::new(baseline);
        self.store
            .save(&self.state, Arc::clone(&shared), Arc::new(summary))
            .await?;
        Ok(again.then(|| Arc::try_unwrap(shared).unwrap_or_else(|kept| (*kept).clone())))
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

//! Every request the runner sends to a system takes a permit first: it
//! waits for the system's rate limit (feature `rate-limit`), is counted for
//! the report, and is not sent once the budget is spent. [`Paced`] is a
//! system's connector as a run reads it: each page a permit, then the
//! call's timeout.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::calls::Run;
use super::{SyncEvent, SyncRunner};
use crate::connector::{
    Applied, Capabilities, Changes, Connector, ConnectorError, Cursor, ErrorKind,
};
use crate::model::{Snapshot, SystemId};
use crate::plan::WriteOp;

/// Per system, what one run counted of its requests (runs of a runner
/// never overlap).
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Requests sent.
    pub(super) requests: AtomicUsize,
    /// The budget was spent in this run.
    pub(super) spent: AtomicBool,
}

impl Counts {
    pub(super) fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.spent.store(false, Ordering::Relaxed);
    }
}

/// System `s`'s connector as one run reads it: each call is one request,
/// paced and counted, then bounded by the runner's timeout (a read of
/// records, or of a page of them, by the fetch timeout where set); the wait
/// for the permit is not.
pub(super) struct Paced<'r> {
    runner: &'r SyncRunner,
    run: Run,
    s: usize,
    inner: &'r dyn Connector,
}

impl fmt::Debug for Paced<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paced")
            .field("system", self.inner.system())
            .finish_non_exhaustive()
    }
}

/// The error of a request not sent because the budget is spent.
fn spent() -> ConnectorError {
    ConnectorError::budget_spent("not sent: the request budget is spent; the next run sends it")
}

impl Paced<'_> {
    /// One request, after its permit: bounded by `limit` and the run's
    /// deadline, and noted.
    async fn bounded<T>(
        &self,
        limit: Option<Duration>,
        what: &str,
        call: impl std::future::Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        let runner = self.runner;
        let answer = runner
            .bounded(self.run, limit, what, self.inner.system(), call)
            .await;
        if let Err(error) = &answer {
            runner.saw(self.s, error);
        }
        answer
    }
}

impl SyncRunner {
    /// System `s`'s connector, paced for `run`; `None` for no such system.
    pub(super) fn paced(&self, run: Run, s: usize) -> Option<Paced<'_>> {
        let inner = self.connectors.get(s)?.as_ref();
        Some(Paced {
            runner: self,
            run,
            s,
            inner,
        })
    }

    /// Waits for a permit to send a request to system `s`, never past the
    /// run's deadline, and counts the request. Once the system's budget is
    /// spent in this run (by its rate limit, or as its connector said),
    /// fails at once with [`BudgetSpent`](ErrorKind::BudgetSpent).
    pub(super) async fn permit(&self, run: Run, s: usize) -> Result<(), ConnectorError> {
        if self.spent(s) {
            return Err(spent());
        }
        #[cfg(feature = "rate-limit")]
        if let (Some(Some(limit)), Some(system)) = (self.limits.get(s), self.systems.get(s)) {
            let waited = self
                .bounded(
                    run,
                    None,
                    "waiting for a request permit for",
                    system,
                    limit.until_ready(),
                )
                .await;
            if let Err(error) = waited {
                self.saw(s, &error);
                return Err(error);
            }
            if self.past(run) {
                // A permit given at the deadline sends nothing: its budget
                // is given back.
                limit.give_back();
                return Err(ConnectorError::timed_out(
                    "not sent: the run's deadline passed; the next run sends it",
                ));
            }
            if self.spent(s) {
                // The system reported its cap while this one waited.
                limit.give_back();
                return Err(spent());
            }
        }
        #[cfg(not(feature = "rate-limit"))]
        let _ = run;
        if let Some(counts) = self.counts.get(s) {
            counts.requests.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether system `s`'s budget was spent in this run.
    fn spent(&self, s: usize) -> bool {
        self.counts
            .get(s)
            .is_some_and(|c| c.spent.load(Ordering::Relaxed))
    }

    /// Takes note of an error from system `s`: a spent budget (its rate
    /// limit's, or its own cap as the connector reports it) stops every
    /// request to it for the rest of the run, said once.
    pub(super) fn saw(&self, s: usize, error: &ConnectorError) {
        if *error.kind() != ErrorKind::BudgetSpent {
            return;
        }
        let (Some(counts), Some(system)) = (self.counts.get(s), self.systems.get(s)) else {
            return;
        };
        if !counts.spent.swap(true, Ordering::Relaxed) {
            self.emit(SyncEvent::BudgetSpent {
                system: system.clone(),
            });
        }
    }

    /// System `s` refused a request with `kind`: a rate limit answered
    /// anyway (the pace kept to the limit, but another client shares the
    /// account, or its window counts differently) holds every request
    /// through the system's rate limit, from every holder, for the wait it
    /// asked for, or else for `wait` (the retry's), whether or not this
    /// request is tried again.
    pub(super) fn refused(&self, s: usize, kind: &ErrorKind, wait: Option<Duration>) {
        let ErrorKind::RateLimited { retry_after } = kind else {
            return;
        };
        #[cfg(feature = "rate-limit")]
        if let (Some(Some(limit)), Some(wait)) = (self.limits.get(s), retry_after.or(wait)) {
            limit.pause(wait);
        }
        #[cfg(not(feature = "rate-limit"))]
        let _ = (s, retry_after, wait);
    }

    /// The index of `system`.
    pub(super) fn index(&self, system: &SystemId) -> Option<usize> {
        self.systems.iter().position(|x| x == system)
    }
}

#[async_trait]
impl Connector for Paced<'_> {
    fn system(&self) -> &SystemId {
        self.inner.system()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        self.runner.permit(self.run, self.s).await?;
        let limit = self.runner.fetch_timeout.or(self.runner.timeout);
        self.bounded(limit, "reading", self.inner.fetch(object))
            .await
    }

    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        self.runner.permit(self.run, self.s).await?;
        let call = self.inner.fetch_changes(object, cursor);
        let limit = self.runner.fetch_timeout.or(self.runner.timeout);
        self.bounded(limit, "reading changes from", call).await
    }

    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        self.runner.permit(self.run, self.s).await?;
        let call = self.inner.fetch_records(object, ids);
        self.bounded(self.runner.timeout, "reading records from", call)
            .await
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.runner.permit(self.run, self.s).await?;
        let call = self.inner.apply(object, ops);
        self.bounded(self.runner.timeout, "writing to", call).await
    }
}

//! Every request the runner sends to a system goes through [`Paced`]: it
//! waits for the system's rate limit (feature `rate-limit`), counts the
//! request for the report, and stops at a spent budget.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::calls::Run;
#[cfg(feature = "rate-limit")]
use super::SyncEvent;
use super::SyncRunner;
use crate::connector::{Applied, Capabilities, Changes, Connector, ConnectorError, Cursor};
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

/// System `s`'s connector as one run calls it: each call is one request,
/// paced and counted.
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
    /// run's deadline, and counts the request.
    pub(super) async fn permit(&self, run: Run, s: usize) -> Result<(), ConnectorError> {
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
                if *error.kind() == crate::connector::ErrorKind::BudgetSpent {
                    self.budget_spent(s);
                }
                return Err(error);
            }
        }
        #[cfg(not(feature = "rate-limit"))]
        let _ = run;
        if let Some(counts) = self.counts.get(s) {
            counts.requests.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Says once per run that system `s`'s budget is spent.
    #[cfg(feature = "rate-limit")]
    fn budget_spent(&self, s: usize) {
        let (Some(counts), Some(system)) = (self.counts.get(s), self.systems.get(s)) else {
            return;
        };
        if !counts.spent.swap(true, Ordering::Relaxed) {
            self.emit(SyncEvent::BudgetSpent {
                system: system.clone(),
            });
        }
    }

    /// Holds every request to system `s` through its rate limit for
    /// `wait`: it answered 429 although paced.
    pub(super) fn pause(&self, s: usize, wait: Duration) {
        #[cfg(feature = "rate-limit")]
        if let Some(Some(limit)) = self.limits.get(s) {
            limit.pause(wait);
        }
        #[cfg(not(feature = "rate-limit"))]
        let _ = (s, wait);
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
        self.inner.fetch(object).await
    }

    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        self.runner.permit(self.run, self.s).await?;
        self.inner.fetch_changes(object, cursor).await
    }

    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        self.runner.permit(self.run, self.s).await?;
        self.inner.fetch_records(object, ids).await
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.runner.permit(self.run, self.s).await?;
        self.inner.apply(object, ops).await
    }
}

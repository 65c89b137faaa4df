//! Calls to connectors: each bounded by the runner's timeouts and the run's
//! deadline, retried under the [`RetryPolicy`](super::RetryPolicy).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{select, Either};

use super::{Fetched, RunError, SyncEvent, SyncRunner};
use crate::baseline::Baseline;
use crate::connector::{Connector, ConnectorError, ConnectorExt, Cursor, ErrorKind};
use crate::model::SystemId;

/// What bounds one run in time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    /// When the run stops sending new calls, by the runner's clock.
    pub(super) deadline: Option<DateTime<Utc>>,
}

impl SyncRunner {
    /// Whether the run's deadline has passed.
    pub(super) fn past(&self, run: Run) -> bool {
        run.deadline.is_some_and(|d| self.clock.now() >= d)
    }

    /// Awaits `call`, for at most `limit` and never past the run's
    /// deadline: a call still running then is abandoned (its future
    /// dropped) and fails with [`ErrorKind::TimedOut`], retryable. Whether
    /// it took effect is unknown; a write is tried again under its
    /// conditions and idempotency key.
    pub(super) async fn bounded<T>(
        &self,
        run: Run,
        limit: Option<Duration>,
        what: &str,
        system: &SystemId,
        call: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        let left = run
            .deadline
            .map(|d| (d - self.clock.now()).to_std().unwrap_or(Duration::ZERO));
        let limit = match (limit, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(limit) = limit else {
            return call.await;
        };
        let timed_out = || {
            ConnectorError::timed_out(format!(
                "{what} {system}: no answer within {:.3}s",
                limit.as_secs_f64()
            ))
        };
        if limit.is_zero() {
            return Err(timed_out());
        }
        let wait = self.sleeper.sleep(limit);
        match select(pin!(call), wait).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(timed_out()),
        }
    }

    /// How long to wait before trying again after `error`, the
    /// `attempt`-th failure; `None` to give up (not retryable, attempts
    /// spent, or the wait would end past the run's deadline).
    pub(super) fn retry_wait(
        &self,
        run: Run,
        attempt: u32,
        error: &ConnectorError,
    ) -> Option<Duration> {
        self.retry_wait_after(run, attempt, error.is_retryable(), error.retry_after())
    }

    pub(super) fn retry_wait_after(
        &self,
        run: Run,
        attempt: u32,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let after = retryable
            .then(|| self.retry.delay(attempt, retry_after))
            .flatten()?;
        let fits = run.deadline.is_none_or(|d| {
            chrono::TimeDelta::from_std(after)
                .ok()
                .and_then(|a| self.clock.now().checked_add_signed(a))
                .is_some_and(|end| end < d)
        });
        fits.then_some(after)
    }

    /// Calls `call` until it succeeds, fails for good, or the retry policy
    /// (or the deadline) gives up; returns its last result and the number
    /// of retries.
    pub(super) async fn with_retry<T, F, Fut>(
        &self,
        run: Run,
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
            let after = self.retry_wait(run, attempt, &error);
            if let Some(s) = self.index(system) {
                self.saw(s, &error);
                self.refused(s, error.kind(), after);
            }
            let Some(after) = after else {
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

    /// Reads one system through its [`Paced`](super::paced::Paced)
    /// connector: changes since its cursor, or a complete snapshot. Each
    /// call (a page of changes) is a request of its own, paced, then
    /// bounded by the fetch timeout; the whole read by the run's deadline.
    pub(super) async fn fetch(
        &self,
        run: Run,
        connector: &dyn Connector,
        baseline: &Baseline,
    ) -> Result<Fetched, RunError> {
        let system = connector.system();
        let object = self.object.as_str();
        // Each call (each page) is bounded after its permit (`Paced`); the
        // whole read only by the run's deadline.
        let limit = None;
        let fail = |source: ConnectorError| RunError::Fetch {
            system: system.clone(),
            object: object.to_owned(),
            source,
        };
        if connector.capabilities().incremental_fetch {
            let kept = baseline.cursor(system.as_str()).map(Cursor::new);
            let changes = |from: Option<&Cursor>| {
                let from = from.cloned();
                move || {
                    let from = from.clone();
                    async move {
                        self.bounded(
                            run,
                            limit,
                            "reading changes from",
                            system,
                            connector.fetch_all_changes(object, from.as_ref()),
                        )
                        .await
                    }
                }
            };
            let (read, mut retries) = self.with_retry(run, system, changes(kept.as_ref())).await;
            let read = match read {
                Err(e) if kept.is_some() && *e.kind() == ErrorKind::InvalidCursor => {
                    // The cursor is too old: read everything again.
                    let (again, more) = self.with_retry(run, system, changes(None)).await;
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
        let (read, retries) = self
            .with_retry(run, system, || {
                self.bounded(run, limit, "reading", system, connector.fetch(object))
            })
            .await;
        Ok(Fetched {
            snapshot: read.map_err(fail)?,
            cursor: None,
            incremental: false,
            retries,
            debounced: 0,
        })
    }
}

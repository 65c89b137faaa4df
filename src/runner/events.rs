//! [`SyncEvent`]: what a run reports while it goes.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc;

use crate::baseline::EntityId;
use crate::connector::ErrorKind;
use crate::model::SystemId;
use crate::plan::ConflictId;

use super::report::SyncReport;

/// Progress of a run, in the order it happens. Events carry counts, ids
/// and field names, never field values: they may be logged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SyncEvent {
    /// A system's records were read.
    Fetched {
        /// The system.
        system: SystemId,
        /// How many records (tombstones included) the plan reads.
        records: usize,
        /// How many were left for a later run by the debounce (edited too
        /// recently, or of an entity another record of which was).
        debounced: usize,
        /// Read as changes since the last cursor, not as a complete snapshot.
        incremental: bool,
    },
    /// The plan is made.
    Planned {
        /// Write ops.
        ops: usize,
        /// Conflicts held for review.
        conflicts: usize,
        /// Values and records held back.
        held: usize,
        /// Per-record issues.
        issues: usize,
    },
    /// A conflict is held for review: nothing is written for the field.
    ConflictHeld {
        /// The conflict's id, to resolve it by.
        conflict: ConflictId,
        /// The entity.
        entity: EntityId,
        /// The canonical field.
        field: String,
    },
    /// A call failed in a way worth retrying; the runner waits, then tries
    /// again.
    Retrying {
        /// The system.
        system: SystemId,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// How long the runner waits.
        after: Duration,
        /// Why.
        error: ErrorKind,
        /// How many ops are tried again (0 for a fetch).
        ops: usize,
    },
    /// The system's request budget is spent (its `RateLimit`'s, feature
    /// `rate-limit`, or its own cap as its connector reported it): the run
    /// sends it no more requests, and what is left is planned by the next
    /// run. Once per run and system.
    BudgetSpent {
        /// The system.
        system: SystemId,
    },
    /// A batch of ops is settled: every op applied, or failed for this run.
    BatchDone {
        /// The system.
        system: SystemId,
        /// Ops applied.
        applied: usize,
        /// Ops that failed.
        failed: usize,
    },
    /// Records whose conditional write was refused (they changed since they
    /// were read) are read again and their entities planned again.
    Replanning {
        /// The system.
        system: SystemId,
        /// How many records are read again.
        records: usize,
    },
    /// What a system reported applied was read back
    /// ([`read_back`](super::SyncRunnerBuilder::read_back)); the writes
    /// that did not show fail as
    /// [`Unconfirmed`](crate::connector::ErrorKind::Unconfirmed).
    ReadBack {
        /// The system.
        system: SystemId,
        /// How many records were read back.
        records: usize,
        /// How many writes did not show.
        unconfirmed: usize,
    },
    /// The run is over.
    RunDone {
        /// What it did.
        report: SyncReport,
    },
}

/// The runner's subscribers.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    senders: Mutex<Vec<mpsc::UnboundedSender<SyncEvent>>>,
}

impl Subscribers {
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<SyncEvent> {
        let (tx, rx) = mpsc::unbounded();
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }

    /// Sends to every subscriber still listening; forgets the others.
    pub(crate) fn emit(&self, event: SyncEvent) {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        if senders.is_empty() {
            return;
        }
        senders.retain(|tx| tx.unbounded_send(event.clone()).is_ok());
    }
}

//! [`SyncEvent`]: what a run reports while it goes.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc;

use crate::baseline::EntityId;
use crate::connector::ErrorKind;
use crate::model::SystemId;
use crate::plan::ConflictId;

use super::report::{plural, SyncReport};

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

/// One line, for a log: what happened, to which system, with its counts.
/// No value is printed (an event carries none).
///
/// ```text
/// crm: fetched 12 records (changes since the last cursor), 2 debounced
/// planned 3 writes, 1 conflict for review, 0 held, 0 issues
/// conflict 3f0c9a1d5e7b2c48 on crm:1 field stage held for review
/// erp: rate limited on attempt 1, 3 ops retried after 2s
/// erp: batch done, 3 applied, 0 failed
/// run done: contacts: 3 planned, 3 applied, 0 failed, 1 retry in 2.004s
/// ```
impl fmt::Display for SyncEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncEvent::Fetched {
                system,
                records,
                debounced,
                incremental,
            } => {
                let how = if *incremental {
                    "changes since the last cursor"
                } else {
                    "complete snapshot"
                };
                write!(
                    f,
                    "{system}: fetched {} ({how})",
                    plural(*records, "record", "records")
                )?;
                if *debounced > 0 {
                    write!(f, ", {debounced} debounced")?;
                }
                Ok(())
            }
            SyncEvent::Planned {
                ops,
                conflicts,
                held,
                issues,
            } => write!(
                f,
                "planned {}, {} for review, {held} held, {}",
                plural(*ops, "write", "writes"),
                plural(*conflicts, "conflict", "conflicts"),
                plural(*issues, "issue", "issues")
            ),
            SyncEvent::ConflictHeld {
                conflict,
                entity,
                field,
            } => write!(
                f,
                "conflict {conflict} on {entity} field {field} held for review"
            ),
            SyncEvent::Retrying {
                system,
                attempt,
                after,
                error,
                ops,
            } => {
                let what = if *ops == 0 {
                    "the fetch".to_owned()
                } else {
                    plural(*ops, "op", "ops")
                };
                write!(
                    f,
                    "{system}: {error} on attempt {attempt}, {what} retried after {after:?}"
                )
            }
            SyncEvent::BudgetSpent { system } => write!(
                f,
                "{system}: request budget spent, the rest waits for the next run"
            ),
            SyncEvent::BatchDone {
                system,
                applied,
                failed,
            } => write!(
                f,
                "{system}: batch done, {applied} applied, {failed} failed"
            ),
            SyncEvent::Replanning { system, records } => write!(
                f,
                "{system}: {} changed since read, read again and planned again",
                plural(*records, "record", "records")
            ),
            SyncEvent::ReadBack {
                system,
                records,
                unconfirmed,
            } => write!(
                f,
                "{system}: read back {}, {} not showing",
                plural(*records, "record", "records"),
                plural(*unconfirmed, "write", "writes")
            ),
            SyncEvent::RunDone { report } => {
                f.write_str("run done: ")?;
                report.fmt_headline(f)
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(event: SyncEvent) -> String {
        event.to_string()
    }

    #[test]
    fn each_event_is_one_line_without_values() {
        let system = SystemId::from("crm");
        assert_eq!(
            shown(SyncEvent::Fetched {
                system: system.clone(),
                records: 12,
                debounced: 2,
                incremental: true,
            }),
            "crm: fetched 12 records (changes since the last cursor), 2 debounced"
        );
        assert_eq!(
            shown(SyncEvent::Fetched {
                system: system.clone(),
                records: 1,
                debounced: 0,
                incremental: false,
            }),
            "crm: fetched 1 record (complete snapshot)"
        );
        assert_eq!(
            shown(SyncEvent::Planned {
                ops: 3,
                conflicts: 1,
                held: 0,
                issues: 0,
            }),
            "planned 3 writes, 1 conflict for review, 0 held, 0 issues"
        );
        assert_eq!(
            shown(SyncEvent::ConflictHeld {
                conflict: ConflictId(0x3f0c_9a1d_5e7b_2c48),
                entity: EntityId::new("crm:1"),
                field: "stage".into(),
            }),
            "conflict 3f0c9a1d5e7b2c48 on crm:1 field stage held for review"
        );
        assert_eq!(
            shown(SyncEvent::Retrying {
                system: system.clone(),
                attempt: 1,
                after: Duration::from_secs(2),
                error: ErrorKind::RateLimited { retry_after: None },
                ops: 3,
            }),
            "crm: rate limited on attempt 1, 3 ops retried after 2s"
        );
        assert_eq!(
            shown(SyncEvent::Retrying {
                system: system.clone(),
                attempt: 2,
                after: Duration::from_millis(500),
                error: ErrorKind::Transient,
                ops: 0,
            }),
            "crm: transient failure on attempt 2, the fetch retried after 500ms"
        );
        assert_eq!(
            shown(SyncEvent::BudgetSpent {
                system: system.clone()
            }),
            "crm: request budget spent, the rest waits for the next run"
        );
        assert_eq!(
            shown(SyncEvent::BatchDone {
                system: system.clone(),
                applied: 3,
                failed: 1,
            }),
            "crm: batch done, 3 applied, 1 failed"
        );
        assert_eq!(
            shown(SyncEvent::Replanning {
                system: system.clone(),
                records: 2,
            }),
            "crm: 2 records changed since read, read again and planned again"
        );
        assert_eq!(
            shown(SyncEvent::ReadBack {
                system: system.clone(),
                records: 4,
                unconfirmed: 1,
            }),
            "crm: read back 4 records, 1 write not showing"
        );
        let started = chrono::DateTime::UNIX_EPOCH;
        let report = SyncReport::new("contacts".into(), &[system], started);
        assert_eq!(
            shown(SyncEvent::RunDone { report }),
            "run done: contacts: 0 planned, 0 applied, 0 failed, 0 retries in 0.000s"
        );
    }
}

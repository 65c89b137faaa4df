//! The write journal: every write a run applied, with what each field
//! held before and after, and why; and the history of a field drawn from
//! it.
//!
//! A mapping mistake (a swapped value-table row, a wrong transform) can
//! write bad values into thousands of records before anyone notices. The
//! journal keeps what recsync needs to take such a run back
//! ([`SyncRunner::undo`](crate::runner::SyncRunner::undo), planned by
//! [`SyncEngine::plan_undo`](crate::SyncEngine::plan_undo)) and to answer
//! "who changed this field, when, from what, and why"
//! ([`history`]).
//!
//! # What it keeps
//!
//! One [`JournalEntry`] per write a system reported applied (a failed write
//! changed nothing and is not kept): the [run](RunId) that made it, when,
//! the op's id, the system, the record and its entity, and for each field
//! written ([`JournalField`]) its value before the write, as the system
//! held it when read, its value after, as the system stores it (its own
//! form, where it reported one), what was sent where that differs, and the
//! [reason](crate::Reason). A create has no value before; a delete keeps
//! every mapped field of the record as it was read, and none after.
//!
//! A field the map keeps out of the journal
//! ([`Field::not_journaled`](crate::Field::not_journaled)) is named in the
//! entry's [`omitted`](JournalEntry::omitted) and no value of it is kept: an
//! undo cannot restore it and says so. A field marked
//! [sensitive](crate::Field::sensitive) is kept (an undo needs it) but no
//! `Debug` of the journal prints its values.
//!
//! # Size and retention
//!
//! An entry is stored as JSON: about 180 bytes for the entry, plus, for
//! each field written, its names twice, its values before and after and
//! its reason, about 100 bytes with short names and values. Measured
//! (`tests/undo.rs`, `an_entry_is_the_size_the_docs_say`): 326 bytes for
//! an update of one field, 2,202 for a create of 20 fields. A first sync of a million records journals a million creates: a
//! [`Retention`] bounds what the store keeps, by runs, by age, or both, and
//! each save drops what falls outside it. The journal is off unless the
//! host turns it on
//! ([`SyncRunnerBuilder::journal`](crate::runner::SyncRunnerBuilder::journal)):
//! it keeps people's data beyond what syncing needs, so keeping it is a
//! decision for the host.
//!
//! # Where it is kept
//!
//! With the baseline, by the same store, in the same save: a
//! [`JournalBatch`] rides on the [`CommitSummary`](crate::engine::CommitSummary)
//! of the commit whose writes it records
//! ([`journal`](crate::engine::CommitSummary::journal)), and a store that
//! keeps journals writes it with the baseline (in one transaction, for
//! SQLite and PostgreSQL) and lists it again through
//! [`StateStore::journal`](crate::StateStore::journal). A store that keeps
//! none (a host's own, unless it implements it) ignores it.
//!
//! # What it does not know
//!
//! - The writes of a run whose save failed are made but not journaled (the
//!   batch goes with the save); the next run finds the values in place and
//!   writes nothing, so no undo can take them back. The run's error says
//!   the save failed.
//! - A value a system stores in its own form (trimmed, reformatted) is
//!   known in that form once a read shows it: with read-back, at once
//!   (where the system has versions); without, after the next run. Until
//!   then an undo holds the field as changed since, never overwriting it.
//! - In the JSON file store, a crash between the journal's rename and the
//!   state file's leaves entries of a commit whose baseline was not saved;
//!   they are kept (the writes they record were made).
//! - An undo reads the whole journal kept for the object (to find earlier
//!   undos of the same run); retention bounds it.
//! - A value equal to what the run left under the field's normalization
//!   counts as what the run left (the map calls the two one): a person's
//!   change of case alone, in a case-insensitive field, is put back.
//! - A record the run created is kept, not deleted, when its version moved
//!   since; a system that reports no version on create gives no version
//!   to compare, and only the mapped fields are compared.
//! - A write of an undo whose call failed in a way that may have made it
//!   (a dropped connection, a timeout) is awaited by the next read, not
//!   journaled.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::ids::RunId;
use crate::ids::{EntityId, OpId, OpKind};
use crate::model::{is_empty_value, SystemId};
use crate::plan::Reason;
use crate::redact::shown_opt;

/// One field of a journaled write.
///
/// Its `Debug` prints `[redacted]` for the values of a field marked
/// sensitive; serde writes them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalField {
    /// The canonical field.
    pub field: String,
    /// The system's native field name.
    pub native: String,
    /// What the record held before the write, as read (`None`: the record
    /// did not hold the field, or did not exist: a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// What the record holds after it, in the system's own form where the
    /// system reported storing another form of what was sent (`None`: the
    /// record is gone: a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// What was sent, where the system stores another form of it (`after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Value>,
    /// Why the value was written (`None` for a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The field is marked sensitive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl JournalField {
    /// Whether `value` is what the write left: its value after, or what
    /// was sent (a field holding nothing matches any empty value).
    pub fn left(&self, value: Option<&Value>) -> bool {
        same(value, self.after.as_ref()) || self.sent.as_ref().is_some_and(|s| same(value, Some(s)))
    }
}

/// Two field values as undo compares them: equal, or both empty (absent,
/// `null`, `""`, `[]`).
pub(crate) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let empty = |v: Option<&Value>| v.is_none_or(is_empty_value);
    match (a, b) {
        (Some(a), Some(b)) if a == b => true,
        _ => empty(a) && empty(b),
    }
}

impl fmt::Debug for JournalField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JournalField");
        d.field("field", &self.field)
            .field("native", &self.native)
            .field("before", &shown_opt(self.before.as_ref(), self.sensitive))
            .field("after", &shown_opt(self.after.as_ref(), self.sensitive));
        if self.sent.is_some() {
            d.field("sent", &shown_opt(self.sent.as_ref(), self.sensitive));
        }
        d.field("reason", &self.reason);
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

/// One write a system reported applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalEntry {
    /// The run that made it.
    pub run: RunId,
    /// When its run committed it.
    pub at: DateTime<Utc>,
    /// The op (its idempotency key).
    pub op: OpId,
    /// Create, update or delete.
    pub kind: OpKind,
    /// The object type.
    pub object: String,
    /// The system written.
    pub system: SystemId,
    /// The record written (for a create, the id the system gave it).
    pub record_id: String,
    /// The entity.
    pub entity: EntityId,
    /// Each field written, or for a delete each mapped field the record
    /// held.
    pub fields: Vec<JournalField>,
    /// Fields written whose values the map keeps out of the journal
    /// ([`Field::not_journaled`](crate::Field::not_journaled)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
    /// The record's version after the write, where the system reported one:
    /// an undo does not delete a record it created whose version moved
    /// since (edited, perhaps in a field the map does not sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl JournalEntry {
    /// The journaled field `name`, by canonical or native name.
    pub fn field(&self, name: &str) -> Option<&JournalField> {
        self.fields
            .iter()
            .find(|f| f.field == name)
            .or_else(|| self.fields.iter().find(|f| f.native == name))
    }
}

/// How much of the journal a store keeps: the entries of the last `runs`
/// runs, those younger than `age`, or (with both) those both keep. Each
/// save drops what falls outside it, timed by the saved batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Retention {
    /// Keep the entries of at most this many runs: those saved last.
    pub runs: Option<usize>,
    /// Keep entries at most this old (by their run's commit time).
    pub age: Option<TimeDelta>,
}

impl Retention {
    /// Keep the entries of the last `runs` runs.
    pub fn runs(runs: usize) -> Self {
        Retention {
            runs: Some(runs),
            age: None,
        }
    }

    /// Keep entries younger than `age`.
    pub fn age(age: TimeDelta) -> Self {
        Retention {
            runs: None,
            age: Some(age),
        }
    }

    /// Also keep no more than `runs` runs.
    #[must_use]
    pub fn and_runs(mut self, runs: usize) -> Self {
        self.runs = Some(runs);
        self
    }

    /// Also keep nothing older than `age`.
    #[must_use]
    pub fn and_age(mut self, age: TimeDelta) -> Self {
        self.age = Some(age);
        self
    }

    /// Keep everything (the store grows with every run).
    pub fn forever() -> Self {
        Retention {
            runs: None,
            age: None,
        }
    }

    /// The oldest commit time kept by age, as of `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.age.map(|a| {
            now.checked_sub_signed(a)
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        })
    }

    /// Drops from `entries` what this retention does not keep after a
    /// save at `now`: the store's journal, in the order saved.
    pub fn prune(&self, entries: &mut Vec<JournalEntry>, now: DateTime<Utc>) {
        if let Some(cutoff) = self.cutoff(now) {
            entries.retain(|e| e.at >= cutoff);
        }
        if let Some(kept) = self.kept_runs(entries.iter().map(|e| e.run)) {
            entries.retain(|e| kept.contains(&e.run));
        }
    }

    /// The runs kept by count, among `runs` in the order they were saved
    /// (repeats allowed): the last ones saved, whatever their ids say (a
    /// clock set back gives a later run a smaller id); `None` keeps every
    /// run.
    pub fn kept_runs(
        &self,
        runs: impl DoubleEndedIterator<Item = RunId>,
    ) -> Option<std::collections::HashSet<RunId>> {
        let n = self.runs?;
        let mut kept = std::collections::HashSet::new();
        for run in runs.rev() {
            if kept.len() == n && !kept.contains(&run) {
                break;
            }
            kept.insert(run);
        }
        Some(kept)
    }
}

impl Default for Retention {
    /// The last 30 runs, and 90 days.
    fn default() -> Self {
        Retention::runs(30).and_age(TimeDelta::days(90))
    }
}

/// The journal entries of one commit, with the retention the store keeps
/// them under: what a save writes beside the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalBatch {
    /// The run.
    pub run: RunId,
    /// When it committed.
    pub at: DateTime<Utc>,
    /// Its entries, in the plan's order.
    pub entries: Vec<JournalEntry>,
    /// What the store keeps after saving them.
    pub retention: Retention,
}

impl JournalBatch {
    /// The same batch, kept under `retention`.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The batch, shared, as [`CommitSummary::journal`](crate::engine::CommitSummary::journal) takes it.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

/// Which journal entries a store lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JournalQuery {
    /// Only this run's.
    pub run: Option<RunId>,
    /// Only writes to this system.
    pub system: Option<SystemId>,
    /// Only writes to this record (with `system`).
    pub record_id: Option<String>,
}

impl JournalQuery {
    /// Every entry kept.
    pub fn all() -> Self {
        JournalQuery::default()
    }

    /// The entries of one run.
    pub fn run(run: RunId) -> Self {
        JournalQuery {
            run: Some(run),
            ..JournalQuery::default()
        }
    }

    /// The entries of one record.
    pub fn record(system: impl Into<SystemId>, record_id: impl Into<String>) -> Self {
        JournalQuery {
            run: None,
            system: Some(system.into()),
            record_id: Some(record_id.into()),
        }
    }

    /// Whether `entry` is one this query lists.
    pub fn matches(&self, entry: &JournalEntry) -> bool {
        self.run.is_none_or(|r| entry.run == r)
            && self.system.as_ref().is_none_or(|s| entry.system == *s)
            && self
                .record_id
                .as_deref()
                .is_none_or(|id| entry.record_id == id)
    }
}

/// One change of one field of one record, as [`history`] tells it.
///
/// Its `Debug` prints `[redacted]` for the values of a field marked
/// sensitive.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FieldChange {
    /// The run that wrote it.
    pub run: RunId,
    /// When.
    pub at: DateTime<Utc>,
    /// The op.
    pub op: OpId,
    /// The op's kind (a create sets the field, a delete ends it).
    pub kind: OpKind,
    /// What the field held before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// What it held after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
    /// Why: which system changed it, which rule won, which review or undo
    /// decided it (`None` for a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The field is marked sensitive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl fmt::Debug for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldChange")
            .field("run", &self.run)
            .field("at", &self.at)
            .field("op", &self.op)
            .field("kind", &self.kind)
            .field("from", &shown_opt(self.from.as_ref(), self.sensitive))
            .field("to", &shown_opt(self.to.as_ref(), self.sensitive))
            .field("reason", &self.reason)
            .finish()
    }
}

impl fmt::Display for FieldChange {
    /// One line: when, which run, from what to what (`[redacted]` for a
    /// sensitive field), and why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, op {}): {} from ",
            self.at.format("%Y-%m-%d %H:%M:%S"),
            self.run,
            self.op,
            self.kind,
        )?;
        self.value(f, self.from.as_ref())?;
        f.write_str(" to ")?;
        self.value(f, self.to.as_ref())?;
        if let Some(reason) = &self.reason {
            write!(f, ", {reason}")?;
        }
        Ok(())
    }
}

impl FieldChange {
    fn value(&self, f: &mut fmt::Formatter<'_>, v: Option<&Value>) -> fmt::Result {
        match v {
            Some(v) => write!(f, "{}", crate::redact::shown(v, self.sensitive)),
            None => f.write_str("nothing"),
        }
    }
}

/// The changes recsync made to `field` (canonical or native name) of
/// `record_id` in `system`, in the order they were saved (oldest first),
/// from journal `entries` as a store lists them (those of other records
/// are passed over).
pub fn history<'a>(
    entries: impl IntoIterator<Item = &'a JournalEntry>,
    system: &str,
    record_id: &str,
    field: &str,
) -> Vec<FieldChange> {
    let changes: Vec<FieldChange> = entries
        .into_iter()
        .filter(|e| e.system == system && e.record_id == record_id)
        .filter_map(|e| {
            let f = e.field(field)?;
            Some(FieldChange {
                run: e.run,
                at: e.at,
                op: e.op,
                kind: e.kind,
                from: f.before.clone(),
                to: f.after.clone(),
                reason: f.reason.clone(),
                sensitive: f.sensitive,
            })
        })
        .collect();
    changes
}

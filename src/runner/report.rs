//! [`SyncReport`]: what one run did, for people and for programs.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::baseline::EntityId;
use crate::connector::ErrorKind;
use crate::guard::Refusal;
use crate::journal::RunId;
use crate::mapping::FieldMap;
use crate::model::Record;
use crate::model::SystemId;
use crate::plan::OpKind;

/// How many ops of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OpCounts {
    /// Creates.
    pub create: usize,
    /// Updates.
    pub update: usize,
    /// Deletes.
    pub delete: usize,
}

impl OpCounts {
    /// All of them.
    pub fn total(&self) -> usize {
        self.create + self.update + self.delete
    }

    /// The count of one kind.
    pub fn of(&self, kind: OpKind) -> usize {
        match kind {
            OpKind::Create => self.create,
            OpKind::Update => self.update,
            OpKind::Delete => self.delete,
        }
    }

    pub(crate) fn add(&mut self, kind: OpKind) {
        match kind {
            OpKind::Create => self.create += 1,
            OpKind::Update => self.update += 1,
            OpKind::Delete => self.delete += 1,
        }
    }
}

/// What a run did in one system.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SystemReport {
    /// The system.
    pub system: SystemId,
    /// Records read (tombstones included, debounced records not, nor the
    /// records of other shards).
    pub fetched: usize,
    /// Records read that belong to other shards, left to their runners
    /// (see [`SyncRunnerBuilder::shard`](super::SyncRunnerBuilder::shard)).
    pub other_shards: usize,
    /// Ops planned for it.
    pub planned: OpCounts,
    /// Ops applied.
    pub applied: OpCounts,
    /// Ops that failed for this run (planned again by the next).
    pub failed: OpCounts,
    /// Retries: calls tried again after a rate limit or transient failure.
    pub retries: usize,
    /// Requests the runner sent: one per call to the connector (a
    /// complete read, a page of changes, a write batch, a read-back),
    /// retries included. What a connector sends beyond one per call (the
    /// later pages of a complete read) it paces and counts itself.
    pub requests: usize,
    /// The system's request budget (its `RateLimit`'s, feature
    /// `rate-limit`, or its own cap as its connector reported it) was spent
    /// in this run: the ops not sent failed as
    /// [`BudgetSpent`](crate::connector::ErrorKind::BudgetSpent), and the
    /// next run plans them again.
    pub budget_spent: bool,
    /// Writes the system would need but that were not planned, because the
    /// map declares it read-only
    /// ([`SyncPlan::read_only`](crate::SyncPlan::read_only)); none is
    /// applied, and the next run counts them again while they are needed.
    pub read_only: OpCounts,
    /// Native fields the records read hold that the map does not mention
    /// for this system (a custom field added there, say), sorted.
    pub unmapped: Vec<String>,
}

impl SystemReport {
    pub(crate) fn new(system: SystemId) -> Self {
        SystemReport {
            system,
            fetched: 0,
            other_shards: 0,
            planned: OpCounts::default(),
            applied: OpCounts::default(),
            failed: OpCounts::default(),
            retries: 0,
            requests: 0,
            budget_spent: false,
            read_only: OpCounts::default(),
            unmapped: Vec::new(),
        }
    }
}

/// An op that failed for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedOp {
    /// The target system.
    pub system: SystemId,
    /// What the op did.
    pub kind: OpKind,
    /// The target record, except for a create.
    pub record_id: Option<String>,
    /// The entity.
    pub entity: EntityId,
}

/// The ops that failed with one kind of error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorGroup {
    /// The kind (a rate limit's retry-after is left out, so that all rate
    /// limits are one group).
    pub kind: ErrorKind,
    /// The ops, in the order they failed.
    pub ops: Vec<FailedOp>,
}

/// What one run did: counts per system and op kind, the ops that failed
/// grouped by error kind with their record ids, and what the plan held.
///
/// It holds ids and counts, never field values or error messages (which may
/// quote values), so it can be logged. `Display` prints a short table:
///
/// ```text
/// contacts: 5 planned, 4 applied, 1 failed, 2 retries in 1.500s
/// system    fetched  created  updated  deleted  failed  retries
/// shop            3        1        1        0       1        2
/// erp             2        1        1        0       0        0
/// failed: rate limited: shop:shop-2
/// unmapped in shop: loyalty_tier
/// held: 0 conflicts, 0 values; issues: 0; re-planned: 0; debounced: 0
/// ```
///
/// A read-only system that needed writes adds a line such as
/// `read-only warehouse: not written 1 create, 2 updates, 0 deletes`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SyncReport {
    /// The object type synced.
    pub object: String,
    /// Planned only: nothing was executed or saved.
    pub dry_run: bool,
    /// When the run started, by the runner's clock.
    pub started_at: DateTime<Utc>,
    /// How long it took, by the runner's clock.
    pub duration: Duration,
    /// Per system, in the map's order.
    pub systems: Vec<SystemReport>,
    /// Failed ops by error kind, in the order the kinds first failed.
    pub errors: Vec<ErrorGroup>,
    /// Conflicts held for review.
    pub conflicts: usize,
    /// Values and records held back (empty values, held deletes, frozen
    /// records).
    pub held: usize,
    /// Per-record issues in the plan.
    pub issues: usize,
    /// Ops refused as stale (the record changed since it was read) whose
    /// entities were read again and planned again in this run.
    pub replanned: usize,
    /// Records left for a later run because they, or another system's
    /// record of their entity, were edited too recently.
    pub debounced: usize,
    /// What a safety guard refused: those changes wait until approved with
    /// [`SyncRunner::approve`](super::SyncRunner::approve).
    pub refusal: Option<Refusal>,
    /// The run's id, once it committed: the journal names its writes by
    /// it ([`SyncRunner::undo`](super::SyncRunner::undo) takes it).
    /// `None` for a dry run.
    pub run: Option<RunId>,
}

impl SyncReport {
    pub(crate) fn new(object: String, systems: &[SystemId], started_at: DateTime<Utc>) -> Self {
        SyncReport {
            object,
            dry_run: false,
            started_at,
            duration: Duration::ZERO,
            systems: systems.iter().cloned().map(SystemReport::new).collect(),
            errors: Vec::new(),
            conflicts: 0,
            held: 0,
            issues: 0,
            replanned: 0,
            debounced: 0,
            run: None,
            refusal: None,
        }
    }

    /// One system's report.
    pub fn system(&self, system: &str) -> Option<&SystemReport> {
        self.systems.iter().find(|s| s.system == system)
    }

    pub(crate) fn system_mut(&mut self, system: &SystemId) -> Option<&mut SystemReport> {
        self.systems.iter_mut().find(|s| &s.system == system)
    }

    /// Ops planned, over every system.
    pub fn planned(&self) -> usize {
        self.systems.iter().map(|s| s.planned.total()).sum()
    }

    /// Ops applied, over every system.
    pub fn applied(&self) -> usize {
        self.systems.iter().map(|s| s.applied.total()).sum()
    }

    /// Ops failed, over every system.
    pub fn failed(&self) -> usize {
        self.systems.iter().map(|s| s.failed.total()).sum()
    }

    /// Retries, over every system.
    pub fn retries(&self) -> usize {
        self.systems.iter().map(|s| s.retries).sum()
    }

    /// Writes read-only systems would need, not planned, over every
    /// system.
    pub fn read_only(&self) -> usize {
        self.systems.iter().map(|s| s.read_only.total()).sum()
    }

    /// The failed ops of one kind of error (compared without retry-after).
    pub fn errors_of(&self, kind: &ErrorKind) -> &[FailedOp] {
        let kind = group_kind(kind);
        self.errors
            .iter()
            .find(|g| g.kind == kind)
            .map_or(&[], |g| g.ops.as_slice())
    }

    pub(crate) fn add_error(&mut self, kind: &ErrorKind, op: FailedOp) {
        let kind = group_kind(kind);
        match self.errors.iter_mut().find(|g| g.kind == kind) {
            Some(group) => group.ops.push(op),
            None => self.errors.push(ErrorGroup {
                kind,
                ops: vec![op],
            }),
        }
    }
}

/// The native fields `records` (read from system `system`) hold that
/// `map` does not mention for that system, sorted. A record whose keys are
/// those of the record before it is not looked at key by key.
pub(crate) fn unmapped_fields(map: &FieldMap, system: &str, records: &[Record]) -> Vec<String> {
    let Some(s) = map.system_index(system) else {
        return Vec::new();
    };
    let mapped: HashSet<&str> = map.fields().iter().filter_map(|f| f.native_at(s)).collect();
    crate::engine::held_names(records)
        .into_iter()
        .filter(|n| !mapped.contains(n))
        .map(str::to_owned)
        .collect()
}

fn group_kind(kind: &ErrorKind) -> ErrorKind {
    match kind {
        ErrorKind::RateLimited { .. } => ErrorKind::RateLimited { retry_after: None },
        other => other.clone(),
    }
}

/// At most this many record ids per error line.
const IDS_SHOWN: usize = 5;

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl SyncReport {
    /// The first line of the `Display`, without its line break.
    pub(super) fn fmt_headline(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let took = self.duration.as_secs_f64();
        if self.dry_run {
            write!(
                f,
                "{} (dry run): {} planned in {took:.3}s",
                self.object,
                self.planned()
            )
        } else {
            write!(
                f,
                "{}: {} planned, {} applied, {} failed, {} in {took:.3}s",
                self.object,
                self.planned(),
                self.applied(),
                self.failed(),
                plural(self.retries(), "retry", "retries")
            )
        }
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_headline(f)?;
        writeln!(f)?;
        let width = self
            .systems
            .iter()
            .map(|s| s.system.as_str().chars().count())
            .chain(std::iter::once("system".len()))
            .max()
            .unwrap_or(6);
        let (c, u, d) = if self.dry_run {
            ("creates", "updates", "deletes")
        } else {
            ("created", "updated", "deleted")
        };
        writeln!(
            f,
            "{:<width$}  {:>7}  {c:>7}  {u:>7}  {d:>7}  {:>6}  {:>7}",
            "system", "fetched", "failed", "retries"
        )?;
        for s in &self.systems {
            let shown = if self.dry_run { s.planned } else { s.applied };
            writeln!(
                f,
                "{:<width$}  {:>7}  {:>7}  {:>7}  {:>7}  {:>6}  {:>7}",
                s.system.as_str(),
                s.fetched,
                shown.create,
                shown.update,
                shown.delete,
                s.failed.total(),
                s.retries
            )?;
        }
        for group in &self.errors {
            write!(f, "failed: {}:", group.kind)?;
            for (i, op) in group.ops.iter().take(IDS_SHOWN).enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                match &op.record_id {
                    Some(id) => write!(f, "{sep}{}:{id}", op.system)?,
                    None => write!(f, "{sep}{}:new {}", op.system, op.entity)?,
                }
            }
            if group.ops.len() > IDS_SHOWN {
                write!(f, " and {} more", group.ops.len() - IDS_SHOWN)?;
            }
            writeln!(f)?;
        }
        for s in self.systems.iter().filter(|s| s.read_only.total() > 0) {
            let n = s.read_only;
            writeln!(
                f,
                "read-only {}: not written {}, {}, {}",
                s.system,
                plural(n.create, "create", "creates"),
                plural(n.update, "update", "updates"),
                plural(n.delete, "delete", "deletes")
            )?;
        }
        for s in self.systems.iter().filter(|s| !s.unmapped.is_empty()) {
            writeln!(f, "unmapped in {}: {}", s.system, s.unmapped.join(", "))?;
        }
        for s in self.systems.iter().filter(|s| s.budget_spent) {
            writeln!(
                f,
                "request budget of {} spent: the rest waits for the next run",
                s.system
            )?;
        }
        if self.refusal.is_some() {
            writeln!(
                f,
                "refused by a safety guard: part of the plan waits for approval"
            )?;
        }
        write!(
            f,
            "held: {}, {}; issues: {}; re-planned: {}; debounced: {}",
            plural(self.conflicts, "conflict", "conflicts"),
            plural(self.held, "value", "values"),
            self.issues,
            self.replanned,
            self.debounced
        )
    }
}

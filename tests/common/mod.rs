//! A tiny simulated system that applies write ops the way a well-behaved
//! connector does, shared by the lifecycle, crash-safety and property tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

use recsync::{Coverage, OpKind, OpOutcome, Outcomes, Record, Snapshot, SyncPlan, WriteOp};

/// One system: records by native id, and the ids it hands out to creates.
#[derive(Debug, Clone, PartialEq)]
pub struct Sys {
    pub name: String,
    /// Prefix of the ids this system makes (`"m"` gives `m1`, `m2`...).
    pub prefix: String,
    pub next: u32,
    pub records: BTreeMap<String, Record>,
    /// Whether a create's correlation key is kept (an external-id field).
    pub keeps_correlation: bool,
}

impl Sys {
    pub fn new(name: &str, prefix: &str) -> Self {
        Sys {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            next: 0,
            records: BTreeMap::new(),
            keeps_correlation: true,
        }
    }

    /// Adds (or replaces) a record as a user of the system would.
    pub fn put(&mut self, r: Record) {
        // Ids this system would make are never handed out twice.
        if let Some(n) =
            r.id.strip_prefix(self.prefix.as_str())
                .and_then(|rest| rest.parse::<u32>().ok())
        {
            self.next = self.next.max(n);
        }
        self.records.insert(r.id.clone(), r);
    }

    pub fn get(&self, id: &str) -> &Record {
        self.records
            .get(id)
            .unwrap_or_else(|| panic!("{} has no record {id}", self.name))
    }

    pub fn edit(&mut self, id: &str, field: &str, value: impl Into<serde_json::Value>) {
        let r = self
            .records
            .get_mut(id)
            .unwrap_or_else(|| panic!("{} has no record {id}", self.name));
        r.fields.insert(field.to_owned(), value.into());
    }

    pub fn remove(&mut self, id: &str) {
        self.records.remove(id);
    }

    pub fn complete(&self) -> Snapshot {
        Snapshot::complete(self.name.as_str(), self.records.values().cloned().collect())
    }

    pub fn snapshot(&self, coverage: Coverage) -> Snapshot {
        let mut s = self.complete();
        s.coverage = coverage;
        s
    }

    /// Applies one op; a create gets the next id, and keeps the op's
    /// correlation key where the system does.
    pub fn apply(&mut self, op: &WriteOp) -> OpOutcome {
        assert_eq!(op.system, self.name.as_str(), "op for another system");
        match op.kind {
            OpKind::Create => {
                assert!(op.record_id.is_none(), "a create names no record");
                self.next += 1;
                let id = format!("{}{}", self.prefix, self.next);
                let mut r = Record::new(id.clone());
                for w in &op.fields {
                    r.fields.insert(w.native.clone(), w.value.clone());
                }
                if self.keeps_correlation {
                    r.correlation = op.correlation.clone();
                }
                self.records.insert(id.clone(), r);
                OpOutcome::created(id)
            }
            OpKind::Update => {
                let id = op.record_id.as_deref().unwrap_or_default();
                match self.records.get_mut(id) {
                    Some(r) => {
                        for w in &op.fields {
                            r.fields.insert(w.native.clone(), w.value.clone());
                        }
                        OpOutcome::applied()
                    }
                    None => OpOutcome::failed("not found"),
                }
            }
            OpKind::Delete => {
                let id = op.record_id.as_deref().unwrap_or_default();
                match self.records.remove(id) {
                    Some(_) => OpOutcome::applied(),
                    None => OpOutcome::failed("not found"),
                }
            }
            _ => OpOutcome::failed("unknown op kind"),
        }
    }
}

impl Sys {
    /// Reports `op` applied without applying it, as a connector that lies
    /// does: a create reports the next id (and uses it up), an update or a
    /// delete of a record the system has reports success.
    pub fn lie(&mut self, op: &WriteOp) -> OpOutcome {
        match op.kind {
            OpKind::Create => {
                self.next += 1;
                OpOutcome::created(format!("{}{}", self.prefix, self.next))
            }
            _ => OpOutcome::applied(),
        }
    }
}

/// Applies the first `limit` ops of `plan` (all of them with `usize::MAX`)
/// to the systems they name; returns their outcomes.
pub fn execute(systems: &mut [Sys], plan: &SyncPlan, limit: usize) -> Outcomes {
    let mut out = Outcomes::new();
    for op in plan.ops.iter().take(limit) {
        let sys = systems
            .iter_mut()
            .find(|s| op.system == s.name.as_str())
            .unwrap_or_else(|| panic!("no system {}", op.system));
        out.record(op.id, sys.apply(op));
    }
    out
}

/// What becomes of one op when it is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Applied, and reported so.
    Applied,
    /// Not applied, and reported failed.
    Failed,
    /// Applied, but its outcome never reached the engine (the process died
    /// before it was recorded).
    Lost,
    /// Not applied, but reported applied: a connector that lies. A create
    /// reports the id the system would have given it.
    Lied,
    /// Neither applied nor reported (the run stopped before it).
    Skipped,
}

/// Executes each op of `plan` as `fate` says (by position in the plan);
/// returns the outcomes reported.
pub fn execute_fates(
    systems: &mut [Sys],
    plan: &SyncPlan,
    fate: impl Fn(usize) -> Fate,
) -> Outcomes {
    let mut out = Outcomes::new();
    for (i, op) in plan.ops.iter().enumerate() {
        let sys = systems
            .iter_mut()
            .find(|s| op.system == s.name.as_str())
            .unwrap_or_else(|| panic!("no system {}", op.system));
        match fate(i) {
            Fate::Applied => {
                out.record(op.id, sys.apply(op));
            }
            Fate::Failed => {
                out.record(op.id, OpOutcome::failed("failed (simulated)"));
            }
            Fate::Lost => {
                sys.apply(op);
            }
            Fate::Lied => {
                out.record(op.id, sys.lie(op));
            }
            Fate::Skipped => {}
        }
    }
    out
}

pub fn snapshots(systems: &[Sys]) -> Vec<Snapshot> {
    systems.iter().map(Sys::complete).collect()
}

/// Cases for a property test: `PROPTEST_CASES` when it is set (so a run by
/// hand can go to 100,000), else the file's own default.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

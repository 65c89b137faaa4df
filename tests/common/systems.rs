//! The simulated systems of the lifecycle, crash-safety and property
//! tests: `recsync::testkit::MemorySystem`s that keep the versions and
//! timestamps the tests give their records (writes stamp none), executed
//! with `recsync::testkit::apply`.

use chrono::{DateTime, Utc};
use recsync::testkit::{self, Fate, MemorySystem};
use recsync::{Coverage, OpOutcome, Outcomes, Record, Snapshot, SyncPlan};

/// A simulated system: ids `{prefix}{n}`, a create's correlation key kept;
/// no versions or timestamps of its own, so a record holds the ones the
/// test gave it.
pub fn sim(name: &str, prefix: &str) -> MemorySystem {
    MemorySystem::new(name)
        .id_prefix(prefix)
        .versions(false)
        .timestamps(false)
}

/// The time writes are made at (the simulated systems stamp none).
pub fn write_time() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

/// Applies every op of `plan` to the systems it names; returns the
/// outcomes. Panics on a create made twice (see [`made_once`]).
pub fn execute(systems: &mut [MemorySystem], plan: &SyncPlan) -> Outcomes {
    made_once(plan, testkit::apply(plan, systems, write_time()))
}

/// Executes each op of `plan` as `fate` says (by position in the plan).
/// Panics on a create made twice (see [`made_once`]).
pub fn execute_fates(
    systems: &mut [MemorySystem],
    plan: &SyncPlan,
    fate: impl Fn(usize) -> Fate,
) -> Outcomes {
    made_once(
        plan,
        testkit::apply_with(plan, systems, write_time(), |i, _| fate(i)),
    )
}

/// `outcomes`, unless a create failed because its correlation key is
/// taken: a second create of a record the system has. The systems refuse
/// it, as a real external-id field does; the tests fail on it, as they do
/// on a duplicate record.
fn made_once(plan: &SyncPlan, outcomes: Outcomes) -> Outcomes {
    for (_, outcome) in outcomes.iter() {
        if let OpOutcome::Failed { message } = outcome {
            assert!(
                !message.contains("is taken by record"),
                "a create made twice: {message}\n{plan}"
            );
        }
    }
    outcomes
}

/// What a person does to a simulated system's records, for the tests.
pub trait Person {
    /// The record `id`; panics if there is none.
    fn get(&self, id: &str) -> &Record;
    /// Sets `field` of the record `id`, touching no timestamp or version;
    /// panics if there is no such record.
    fn set(&mut self, id: &str, field: &str, value: impl Into<serde_json::Value>);
    /// The records, as a snapshot of `coverage`.
    fn snapshot_as(&self, coverage: Coverage) -> Snapshot;
}

impl Person for MemorySystem {
    fn get(&self, id: &str) -> &Record {
        self.record(id)
            .unwrap_or_else(|| panic!("{} has no record {id}", self.system()))
    }

    fn set(&mut self, id: &str, field: &str, value: impl Into<serde_json::Value>) {
        let system = self.system().clone();
        let r = self
            .record_mut(id)
            .unwrap_or_else(|| panic!("{system} has no record {id}"));
        r.fields.insert(field, value.into());
    }

    fn snapshot_as(&self, coverage: Coverage) -> Snapshot {
        let mut s = self.snapshot();
        s.coverage = coverage;
        s
    }
}

pub fn snapshots(systems: &[MemorySystem]) -> Vec<Snapshot> {
    testkit::snapshots(systems)
}

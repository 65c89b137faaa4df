//! The undo promise, as a property: a run and then its undo, with nobody
//! touching the records in between, leave every system as it was before
//! the run, record for record; with edits in between, no edit is lost and
//! each edit to a value the run wrote is reported.
#![cfg(feature = "testkit")]

mod common;

use std::collections::BTreeMap;

use futures::executor::block_on;
use proptest::prelude::*;
use recsync::journal::Retention;
use recsync::plan::HoldKind;
use recsync::runner::{RetryPolicy, RunError, SyncRunner};
use recsync::testkit::MemoryConnector;
use recsync::{
    is_empty_value, DeletePolicy, Field, FieldMap, Guards, MemoryStore, SyncEngine, SystemId,
};
use serde_json::{json, Value};

const OBJ: &str = "contacts";
const SYSTEMS: [&str; 2] = ["crm", "shop"];
const FIELDS: [&str; 2] = ["name", "status"];

fn map() -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(SYSTEMS)
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status"))
        .build()
        .expect("the map builds")
}

/// A person's act on one system.
#[derive(Debug, Clone)]
enum Act {
    /// Sets field `field` of the `pick`-th live record to `value`.
    Edit {
        system: usize,
        pick: usize,
        field: usize,
        value: &'static str,
    },
    /// Deletes the `pick`-th live record.
    Delete { system: usize, pick: usize },
    /// Creates a contact with email `e{email}`.
    Insert {
        system: usize,
        email: usize,
        name: &'static str,
    },
}

fn value() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(""),
        Just("lead"),
        Just("customer"),
        Just("Ada"),
        Just("Bob")
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (0..2usize, any::<usize>(), 0..2usize, value())
            .prop_map(|(system, pick, field, value)| Act::Edit { system, pick, field, value }),
        1 => (0..2usize, any::<usize>()).prop_map(|(system, pick)| Act::Delete { system, pick }),
        2 => (0..2usize, 0..8usize, value())
            .prop_map(|(system, email, name)| Act::Insert { system, email, name }),
    ]
}

/// An edit in between the run and its undo: sets field `field` of the
/// `pick`-th live record of `system` to a value no one else writes, or
/// (with `delete`) deletes it.
#[derive(Debug, Clone)]
struct Between {
    system: usize,
    pick: usize,
    field: usize,
    delete: bool,
}

fn between() -> impl Strategy<Value = Between> {
    (
        0..2usize,
        any::<usize>(),
        0..2usize,
        prop::bool::weighted(0.15),
    )
        .prop_map(|(system, pick, field, delete)| Between {
            system,
            pick,
            field,
            delete,
        })
}

struct World {
    systems: Vec<MemoryConnector>,
    runner: SyncRunner,
}

/// How the systems' connectors behave: whether they read changes since a
/// cursor, write conditionally on versions, and fetch by ids (else an undo
/// reads them whole).
#[derive(Debug, Clone, Copy)]
struct Kind {
    incremental: bool,
    versions: bool,
    by_ids: bool,
}

fn kind() -> impl Strategy<Value = Kind> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(incremental, versions, by_ids)| Kind {
        incremental,
        versions,
        by_ids,
    })
}

fn world(kind: Kind) -> World {
    world_with(kind, RetryPolicy::new())
}

fn world_with(kind: Kind, retry: RetryPolicy) -> World {
    let systems: Vec<MemoryConnector> = SYSTEMS
        .iter()
        .map(|s| {
            MemoryConnector::builder(*s)
                .id_prefix(&s[..1])
                .fetch_by_ids(kind.by_ids)
                .incremental_fetch(kind.incremental)
                .versions(kind.versions)
                .conditional_writes(kind.versions)
                .external_ids(true)
                .build()
                .expect("the connector builds")
        })
        .collect();
    let mut builder = SyncRunner::builder(SyncEngine::new(map()))
        .store(MemoryStore::new())
        .retry(retry)
        .journal(Retention::forever());
    for c in &systems {
        builder = builder.connector(c.clone());
    }
    World {
        systems,
        runner: builder.build().expect("the runner builds"),
    }
}

impl World {
    fn act(&self, act: &Act) {
        match act {
            Act::Edit {
                system,
                pick,
                field,
                value,
            } => {
                let records = self.systems[*system].records(OBJ);
                if records.is_empty() {
                    return;
                }
                let id = &records[pick % records.len()].id;
                let _ = self.systems[*system].edit(OBJ, id, [(FIELDS[*field], json!(value))]);
            }
            Act::Delete { system, pick } => {
                let records = self.systems[*system].records(OBJ);
                if records.is_empty() {
                    return;
                }
                let id = &records[pick % records.len()].id;
                let _ = self.systems[*system].delete(OBJ, id);
            }
            Act::Insert {
                system,
                email,
                name,
            } => {
                let email = format!("e{email}@example.com");
                let taken = self.systems[*system]
                    .records(OBJ)
                    .iter()
                    .any(|r| r.get("email") == Some(&json!(email)));
                if !taken {
                    self.systems[*system].insert(
                        OBJ,
                        [
                            ("email", json!(email)),
                            ("name", json!(name)),
                            ("status", json!("lead")),
                        ],
                    );
                }
            }
        }
    }

    /// Each system's live records: id to fields, empty values left out
    /// (recsync reads an absent field and an empty one alike).
    fn state(&self) -> Vec<BTreeMap<String, BTreeMap<String, Value>>> {
        self.systems
            .iter()
            .map(|c| {
                c.records(OBJ)
                    .into_iter()
                    .map(|r| {
                        let fields = r
                            .fields
                            .into_iter()
                            .filter(|(_, v)| !is_empty_value(v))
                            .collect();
                        (r.id, fields)
                    })
                    .collect()
            })
            .collect()
    }
}

/// The records of one system as contents, ids set aside: a record an undo
/// creates again has a new id.
fn contents(records: &BTreeMap<String, BTreeMap<String, Value>>) -> Vec<String> {
    let mut all: Vec<String> = records
        .values()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    all.sort();
    all
}

fn check(
    kind: Kind,
    before: Vec<Act>,
    run_acts: Vec<Act>,
    in_between: Vec<Between>,
) -> Result<(), TestCaseError> {
    let w = world(kind);
    for a in &before {
        w.act(a);
    }
    block_on(w.runner.run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for a in &run_acts {
        w.act(a);
    }
    let s0 = w.state();
    let report = block_on(w.runner.run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(report.errors.is_empty(), "{:?}", report.errors);
    let Some(run) = report.run else {
        return Err(TestCaseError::fail("the run did not commit"));
    };
    let written = block_on(w.runner.journal(&recsync::journal::JournalQuery::run(run)))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    if written.is_empty() {
        // Nothing to take back: the undo says so.
        let refused = block_on(w.runner.undo(run));
        prop_assert!(
            matches!(refused, Err(RunError::NotJournaled { run: r }) if r == run),
            "{:?}",
            refused.map(|u| u.plan)
        );
        return Ok(());
    }

    // The edits in between: each sets a value no one else writes.
    let mut edits: Vec<(usize, String, &str, Value)> = Vec::new();
    let mut deleted: Vec<(usize, String)> = Vec::new();
    for (n, b) in in_between.iter().enumerate() {
        let records = w.systems[b.system].records(OBJ);
        if records.is_empty() {
            continue;
        }
        let id = records[b.pick % records.len()].id.clone();
        if b.delete {
            w.systems[b.system]
                .delete(OBJ, &id)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            edits.retain(|(s, r, _, _)| !(*s == b.system && *r == id));
            deleted.push((b.system, id));
        } else {
            let v = json!(format!("edit {n}"));
            w.systems[b.system]
                .edit(OBJ, &id, [(FIELDS[b.field], v.clone())])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            edits.retain(|(s, r, f, _)| !(*s == b.system && *r == id && *f == FIELDS[b.field]));
            edits.push((b.system, id, FIELDS[b.field], v));
        }
    }
    let s1 = w.state();

    let undone = block_on(w.runner.undo(run)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        undone.report.errors.is_empty(),
        "{:?}",
        undone.report.errors
    );
    let s2 = w.state();

    if in_between.is_empty() {
        // Every system as it was before the run, record for record: the
        // same ids hold the same values, and the records the run deleted
        // are back (under new ids) with the values they had.
        for (s, (was, is)) in s0.iter().zip(&s2).enumerate() {
            for (id, fields) in is {
                if let Some(old) = was.get(id) {
                    prop_assert_eq!(old, fields, "{} record {}", SYSTEMS[s], id);
                }
            }
            prop_assert_eq!(contents(was), contents(is), "{}", SYSTEMS[s]);
        }
        prop_assert!(undone.plan.held.is_empty(), "{}", undone.plan);
        // The next runs do the run again (fix the map first!), without
        // deleting anything: the records the run deleted, created again,
        // are new to recsync, and no one deleted anything since.
        for _ in 0..2 {
            let next = block_on(w.runner.run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(next.errors.is_empty(), "{:?}", next.errors);
        }
        let s3 = w.state();
        for (s, (was, is)) in s2.iter().zip(&s3).enumerate() {
            for id in was.keys() {
                prop_assert!(
                    is.contains_key(id),
                    "{} record {} deleted after the undo",
                    SYSTEMS[s],
                    id
                );
            }
        }
        let left = block_on(w.runner.dry_run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(left.ops.is_empty(), "{}", left);
        return Ok(());
    }

    // With edits in between: no edit is lost.
    for (s, id, field, v) in &edits {
        let record = s2[*s].get(id);
        prop_assert!(
            record.is_some(),
            "{} record {} edited, then gone",
            SYSTEMS[*s],
            id
        );
        prop_assert_eq!(
            record.and_then(|r| r.get(*field)),
            Some(v),
            "{} record {} field {}",
            SYSTEMS[*s],
            id,
            field
        );
    }
    // A record a person deleted stays deleted.
    for (s, id) in &deleted {
        prop_assert!(
            !s2[*s].contains_key(id),
            "{} record {} came back",
            SYSTEMS[*s],
            id
        );
    }
    // Each edit to a value the run wrote is reported, and so is a record
    // the run wrote to that is gone since.
    for (s, id, field, _) in &edits {
        let system = SystemId::new(SYSTEMS[*s]);
        let wrote = written
            .iter()
            .filter(|e| e.system == system && e.record_id == *id);
        let created = wrote.clone().any(|e| e.kind == recsync::OpKind::Create);
        let field_written = wrote.clone().any(|e| e.field(field).is_some());
        if !(created || field_written) {
            continue;
        }
        let reported = undone.plan.held.iter().any(|h| match &h.kind {
            HoldKind::ChangedSince {
                system: hs,
                record_id,
                ..
            } => {
                *hs == system
                    && record_id == id
                    && (h.field.is_none() || h.field.as_deref() == Some(*field))
            }
            _ => false,
        });
        prop_assert!(
            reported,
            "the edit of {} record {} field {} was not reported:\n{}",
            SYSTEMS[*s],
            id,
            field,
            undone.plan
        );
    }
    // Records no one touched in between are as before the run, where the
    // run wrote them.
    for (s, (was, is)) in s0.iter().zip(&s2).enumerate() {
        for (id, fields) in is {
            let touched =
                s1[s].get(id) != s0[s].get(id) && written.iter().all(|e| e.record_id != *id);
            let edited = edits.iter().any(|(es, eid, _, _)| *es == s && eid == id);
            if let (Some(old), false, false) = (was.get(id), touched, edited) {
                prop_assert_eq!(old, fields, "{} record {}", SYSTEMS[s], id);
            }
        }
    }
    Ok(())
}

/// An undo cut short: one system dies after `after` of the undo's writes
/// (no retries). The runs after it delete nothing, lose no value a person
/// set before the run, and settle.
fn check_cut_short(
    kind: Kind,
    before: Vec<Act>,
    run_acts: Vec<Act>,
    dying: usize,
    after: usize,
) -> Result<(), TestCaseError> {
    let w = world_with(kind, RetryPolicy::new().max_attempts(1));
    for a in &before {
        w.act(a);
    }
    block_on(w.runner.run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for a in &run_acts {
        w.act(a);
    }
    let report = block_on(w.runner.run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let Some(run) = report.run else {
        return Err(TestCaseError::fail("the run did not commit"));
    };
    w.systems[dying].crash_after_ops(after);
    let undone = block_on(w.runner.undo(run));
    for c in &w.systems {
        c.clear_faults();
    }
    if matches!(undone, Err(RunError::NotJournaled { .. })) {
        return Ok(());
    }
    undone.map_err(|e| TestCaseError::fail(e.to_string()))?;
    let s2 = w.state();
    for _ in 0..3 {
        let next = block_on(w.runner.run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(next.errors.is_empty(), "{:?}", next.errors);
    }
    let s3 = w.state();
    for (s, (was, is)) in s2.iter().zip(&s3).enumerate() {
        for id in was.keys() {
            prop_assert!(
                is.contains_key(id),
                "{} record {} deleted after the undo",
                SYSTEMS[s],
                id
            );
        }
    }
    let left = block_on(w.runner.dry_run()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(left.ops.is_empty(), "{}", left);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn a_run_and_its_undo_leave_the_systems_as_they_were(
        kind in kind(),
        before in prop::collection::vec(act(), 0..12),
        run_acts in prop::collection::vec(act(), 0..10),
    ) {
        check(kind, before, run_acts, Vec::new())?;
    }

    #[test]
    fn an_undo_cut_short_loses_nothing(
        kind in kind(),
        before in prop::collection::vec(act(), 0..12),
        run_acts in prop::collection::vec(act(), 0..10),
        dying in 0..2usize,
        after in 0..4usize,
    ) {
        check_cut_short(kind, before, run_acts, dying, after)?;
    }

    #[test]
    fn edits_in_between_are_kept_and_reported(
        kind in kind(),
        before in prop::collection::vec(act(), 0..12),
        run_acts in prop::collection::vec(act(), 0..10),
        in_between in prop::collection::vec(between(), 1..6),
    ) {
        check(kind, before, run_acts, in_between)?;
    }
}

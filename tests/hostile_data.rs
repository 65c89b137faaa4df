//! Data an adversary, or a careless system, hands recsync: one placeholder
//! key on tens of thousands of records, keys that are not strings or
//! numbers, numbers JSON cannot hold, and records listed twice.

mod common;

use common::{execute, snapshots, Sys};
use recsync::plan::IssueKind;
use recsync::{Baseline, Field, FieldMap, MatchMode, Record, Snapshot, SyncEngine, SyncPlan};
use serde_json::Value;

const PLACEHOLDER: &str = "noemail@example.com";

/// `crm` and `mkt`, matched by email; a score and a name.
fn engine_with(mode: MatchMode) -> SyncEngine {
    let map = FieldMap::builder()
        .systems(["crm", "mkt"])
        .key("email")
        .matching(mode)
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("score"))
        .build()
        .expect("valid map");
    SyncEngine::new(map)
}

fn engine() -> SyncEngine {
    engine_with(MatchMode::MatchThenCreate)
}

fn contact(id: &str, email: impl Into<Value>, name: &str) -> Record {
    Record::new(id)
        .field("email", email)
        .field("name", name)
        .field("score", 1)
}

fn systems() -> Vec<Sys> {
    vec![Sys::new("crm", "c"), Sys::new("mkt", "m")]
}

fn sync(engine: &SyncEngine, baseline: &mut Baseline, sys: &mut [Sys]) -> SyncPlan {
    let plan = engine.plan(baseline, &snapshots(sys)).expect("plan");
    let outcomes = execute(sys, &plan, usize::MAX);
    engine.commit(baseline, &plan, &outcomes).expect("commit");
    plan
}

fn kinds(plan: &SyncPlan) -> Vec<(String, String, Option<String>, IssueKind)> {
    plan.issues
        .iter()
        .map(|i| {
            (
                i.system.to_string(),
                i.record_id.clone(),
                i.field.clone(),
                i.kind.clone(),
            )
        })
        .collect()
}

// ------------------------------------------------------- records listed twice

/// A connector's paging bug lists records twice. Each id is reported once,
/// every copy is ignored, and the plan is the same however the snapshot is
/// ordered: before, the issues of linked records came in input order.
#[test]
fn records_listed_twice_give_the_same_plan_in_any_order() {
    let engine = engine();
    let mut sys = systems();
    for i in 0..6 {
        let email = format!("p{i}@example.com");
        sys[0].put(contact(&format!("c{i}"), email.as_str(), "P"));
        sys[1].put(contact(&format!("m{i}"), email.as_str(), "P"));
    }
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    assert_eq!(baseline.len(), 6);
    // New records too, one of them listed twice, and a placeholder pair.
    sys[0].put(contact("c9", "new@example.com", "New"));
    sys[0].put(contact("c7", PLACEHOLDER, "X"));
    sys[0].put(contact("c8", PLACEHOLDER, "Y"));
    let base = snapshots(&sys);
    let mut crm = base[0].records.clone();
    // Linked c1, c4 and c5 and new c9 twice; c4's second copy differs.
    for id in ["c5", "c1", "c9", "c4"] {
        let mut copy = sys[0].get(id).clone();
        if id == "c4" {
            copy = copy.field("name", "Paged twice");
        }
        crm.push(copy);
    }
    let listed = |order: &[usize]| {
        let crm: Vec<Record> = order.iter().map(|i| crm[*i].clone()).collect();
        vec![Snapshot::complete("crm", crm), base[1].clone()]
    };
    let forward: Vec<usize> = (0..crm.len()).collect();
    let plan = engine.plan(&baseline, &listed(&forward)).expect("plan");
    let dups: Vec<&str> = plan
        .issues
        .iter()
        .filter(|i| i.kind == IssueKind::DuplicateRecordId)
        .map(|i| i.record_id.as_str())
        .collect();
    assert_eq!(dups, ["c1", "c4", "c5", "c9"], "{plan}");
    assert!(plan
        .issues
        .iter()
        .any(|i| matches!(i.kind, IssueKind::AmbiguousMatch { .. })));
    // Nothing is created for c9, nor deleted for the linked duplicates.
    assert!(plan.ops.is_empty(), "{plan}");
    let json = serde_json::to_value(&plan).expect("json");
    let mut seed = 0x5eed_u64;
    for _ in 0..20 {
        let mut order = forward.clone();
        for i in (1..order.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let shuffled = engine.plan(&baseline, &listed(&order)).expect("plan");
        assert_eq!(
            serde_json::to_value(&shuffled).expect("json"),
            json,
            "order {order:?}"
        );
    }
    let reversed: Vec<usize> = forward.iter().rev().copied().collect();
    let plan = engine.plan(&baseline, &listed(&reversed)).expect("plan");
    assert_eq!(serde_json::to_value(&plan).expect("json"), json);
}

/// A tombstone and a live copy of one unlinked id: a duplicate too, not a
/// create.
#[test]
fn an_unlinked_id_listed_as_a_record_and_a_tombstone_is_a_duplicate() {
    let engine = engine();
    let crm = vec![
        contact("c1", "ada@example.com", "Ada"),
        contact("c1", "ada@example.com", "Ada").deleted(),
    ];
    let plan = engine
        .plan(
            &Baseline::new(),
            &[
                Snapshot::complete("crm", crm),
                Snapshot::complete("mkt", vec![]),
            ],
        )
        .expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(
        kinds(&plan),
        [(
            "crm".to_owned(),
            "c1".to_owned(),
            None,
            IssueKind::DuplicateRecordId
        )]
    );
}

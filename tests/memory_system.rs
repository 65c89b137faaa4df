//! `testkit::MemorySystem` and `testkit::apply`: a plan executed on records
//! in memory leaves what `MemoryConnector` leaves, and reports outcomes
//! that commit as a connector's do.
#![cfg(feature = "proptest")]

mod common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures::executor::block_on;
use proptest::prelude::*;
use recsync::connector::ErrorKind;
use recsync::testkit::strategies::{edit_history, field_map, Edit};
use recsync::testkit::{self, Fate, ManualClock, MemoryConnector, MemorySystem, OpBuilder};
use recsync::{
    Baseline, Connector, Field, FieldMap, OpKind, OpOutcome, Outcomes, Record, Snapshot,
    SyncEngine, SyncPlan, WriteOp,
};
use serde_json::{json, Value};

/// The object of the maps here (their default).
const OBJECT: &str = "records";

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, minute, 0).unwrap()
}

fn engine() -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "shop"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("name").no_overwrite_on_empty(false))
            .field(Field::new("phone"))
            .build()
            .unwrap(),
    )
}

fn outcome(outcomes: &Outcomes, op: &WriteOp) -> OpOutcome {
    outcomes.get(op.id).cloned().expect("an outcome")
}

fn failed(outcome: &OpOutcome) -> bool {
    matches!(outcome, OpOutcome::Failed { .. })
}

/// crm holds Ada and Grace; synced once at minute 0 (two creates in shop)
/// and read back.
fn synced() -> (SyncEngine, Baseline, [MemorySystem; 2]) {
    let engine = engine();
    let mut systems = [
        MemorySystem::new("crm").id_prefix("c"),
        MemorySystem::new("shop"),
    ];
    systems[0].put(
        Record::new("c1")
            .field("email", "ada@x.io")
            .field("name", "Ada")
            .field("phone", "555-0000")
            .version("7"),
    );
    systems[0].put(Record::new("c2").field("email", "grace@x.io"));
    let mut baseline = Baseline::new();
    let plan = engine
        .plan(&baseline, &testkit::snapshots(&systems))
        .unwrap();
    let outcomes = testkit::apply(&plan, &mut systems, at(0));
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    // A read shows the creates made.
    let quiet = engine
        .plan(&baseline, &testkit::snapshots(&systems))
        .unwrap();
    assert!(quiet.ops.is_empty(), "{quiet}");
    engine
        .commit(&mut baseline, &quiet, &Outcomes::new())
        .unwrap();
    (engine, baseline, systems)
}

#[test]
fn creates_updates_and_deletes_leave_what_a_system_would() {
    let (engine, mut baseline, mut systems) = synced();
    // Creates: generated ids in order, the fields written, the correlation
    // key kept, version 1, every field stamped.
    let shop = &systems[1];
    assert_eq!(
        shop.records().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["shop-1", "shop-2"]
    );
    let ada = shop.record("shop-1").unwrap();
    assert_eq!(ada.get("name"), Some(&json!("Ada")));
    assert_eq!(ada.get("phone"), Some(&json!("555-0000")));
    let grace = shop.record("shop-2").unwrap();
    assert_eq!(grace.get("phone"), None, "a field never written is absent");
    assert_eq!(ada.version.as_deref(), Some("1"));
    assert_eq!(ada.updated_at, Some(at(0)));
    assert_eq!(ada.changed_at("email"), Some(at(0)));
    let entity = baseline.find_linked("crm", "c1").unwrap();
    assert_eq!(ada.correlation.as_deref(), Some(entity.id().as_str()));
    assert_eq!(entity.link("shop"), Some("shop-1"));
    assert_eq!(entity.version("shop"), Some("1"), "the version reported");

    // An update writes only its fields; one written empty is cleared.
    systems[1]
        .edit("shop-1", [("phone", "555-0101")], at(1))
        .unwrap();
    systems[0]
        .edit("c1", [("name", Value::Null)], at(2))
        .unwrap();
    assert_eq!(
        systems[0].record("c1").unwrap().version.as_deref(),
        Some("8")
    );
    let plan = engine
        .plan(&baseline, &testkit::snapshots(&systems))
        .unwrap();
    assert_eq!(plan.ops.len(), 2, "{}", plan.display_unredacted());
    let outcomes = testkit::apply(&plan, &mut systems, at(3));
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    let c1 = systems[0].record("c1").unwrap();
    assert_eq!(c1.get("phone"), Some(&json!("555-0101")));
    assert_eq!(
        c1.version.as_deref(),
        Some("9"),
        "7, moved on by an edit and a write"
    );
    assert_eq!(c1.changed_at("phone"), Some(at(3)));
    assert_eq!(c1.changed_at("name"), Some(at(2)), "not written: kept");
    assert_eq!(c1.updated_at, Some(at(3)));
    let ada = systems[1].record("shop-1").unwrap();
    assert_eq!(ada.get("name"), Some(&Value::Null), "cleared");
    assert_eq!(ada.get("email"), Some(&json!("ada@x.io")));
    assert_eq!(ada.version.as_deref(), Some("3"), "an edit and a write");
    assert_eq!(ada.changed_at("name"), Some(at(3)));
    assert_eq!(ada.changed_at("email"), Some(at(0)), "not written: kept");
    let plan = engine
        .plan(&baseline, &testkit::snapshots(&systems))
        .unwrap();
    assert!(plan.ops.is_empty(), "synced: {plan}");

    // A delete removes the record.
    let delete = OpBuilder::delete("shop", OBJECT, "shop-2")
        .expected_version("1")
        .build();
    let applied = systems[1].apply(&delete, at(4)).unwrap();
    assert_eq!(applied.version.as_deref(), Some("2"));
    assert!(!systems[1].contains("shop-2"));
    assert_eq!(systems[1].len(), 1);
    let again = systems[1].apply(&delete, at(4)).unwrap_err();
    assert_eq!(*again.kind(), ErrorKind::NotFound);

    // A person's create: the next id, as a create's.
    let cy = systems[0].insert([("email", "cy@x.io")], at(5));
    assert_eq!(cy, "c3");
    let cy = systems[0].record(&cy).unwrap();
    assert_eq!(cy.version.as_deref(), Some("1"));
    assert_eq!(cy.changed_at("email"), Some(at(5)));
    assert_eq!(cy.correlation, None);
}

#[test]
fn writes_a_system_would_refuse_fail() {
    let (_, _, mut systems) = synced();
    let shop = &mut systems[1];
    // A stale expected version.
    let stale = OpBuilder::update("shop", OBJECT, "shop-1")
        .field("name", "Ada L.")
        .expected_version("0")
        .build();
    let e = shop.apply(&stale, at(1)).unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::PreconditionFailed);
    assert_eq!(
        shop.record("shop-1").unwrap().get("name"),
        Some(&json!("Ada"))
    );
    // A correlation key a record has.
    let key = shop.record("shop-1").unwrap().correlation.clone().unwrap();
    let twice = OpBuilder::create("shop", OBJECT)
        .field("email", "ada@x.io")
        .correlation(key)
        .build();
    let e = shop.apply(&twice, at(1)).unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::Duplicate);
    assert_eq!(shop.len(), 2);
    // Another system's op; an update of a record not there.
    let e = shop
        .apply(&OpBuilder::create("crm", OBJECT).build(), at(1))
        .unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::Permanent);
    let e = shop
        .apply(&OpBuilder::update("shop", OBJECT, "nope").build(), at(1))
        .unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::NotFound);
    // An op for a system not given fails in the outcomes.
    let mut plan = SyncPlan::default();
    plan.ops.push(OpBuilder::create("erp", OBJECT).build());
    let outcomes = testkit::apply(&plan, &mut systems, at(1));
    assert!(failed(&outcome(&outcomes, &plan.ops[0])));
}

#[test]
fn fates_fail_lose_lie_about_and_skip_chosen_ops() {
    let engine = engine();
    let mut systems = [MemorySystem::new("crm"), MemorySystem::new("shop")];
    for (i, name) in ["ada", "bob", "cy", "dee", "eve"].iter().enumerate() {
        systems[0].put(Record::new(format!("c{i}")).field("email", format!("{name}@x.io")));
    }
    let plan = engine
        .plan(&Baseline::new(), &testkit::snapshots(&systems))
        .unwrap();
    assert_eq!(plan.ops.len(), 5, "{plan}");
    let fates = [
        Fate::Applied,
        Fate::Failed,
        Fate::Lost,
        Fate::Lied,
        Fate::Skipped,
    ];
    let mut seen = Vec::new();
    let outcomes = testkit::apply_with(&plan, &mut systems, at(1), |i, op| {
        seen.push(op.id);
        fates[i]
    });
    assert_eq!(seen, plan.ops.iter().map(|op| op.id).collect::<Vec<_>>());
    let emails = |s: &MemorySystem| -> Vec<Value> {
        s.records()
            .filter_map(|r| r.get("email").cloned())
            .collect()
    };
    // Made: the applied and the lost one; the lie used up an id.
    assert_eq!(emails(&systems[1]), [json!("ada@x.io"), json!("cy@x.io")]);
    assert_eq!(
        outcome(&outcomes, &plan.ops[0]),
        OpOutcome::created("shop-1").with_version("1")
    );
    assert!(failed(&outcome(&outcomes, &plan.ops[1])));
    assert_eq!(outcomes.get(plan.ops[2].id), None, "lost");
    assert_eq!(
        outcome(&outcomes, &plan.ops[3]),
        OpOutcome::created("shop-3").with_version("1"),
        "reported, never made"
    );
    assert!(!systems[1].contains("shop-3"));
    assert_eq!(outcomes.get(plan.ops[4].id), None, "skipped");
    assert_eq!(systems[1].new_id(), "shop-4");
}

#[test]
fn a_system_without_versions_timestamps_or_external_ids_keeps_none() {
    let mut shop = MemorySystem::new("shop")
        .versions(false)
        .timestamps(false)
        .external_ids(false)
        .id_prefix("s");
    shop.put(Record::new("s7").field("name", "Ada").version("v1"));
    let create = OpBuilder::create("shop", OBJECT)
        .field("name", "Grace")
        .correlation("e2")
        .build();
    let applied = shop.apply(&create, at(1)).unwrap();
    assert_eq!(applied.record_id.as_deref(), Some("s8"), "after the id put");
    assert_eq!(applied.version, None);
    let grace = shop.record("s8").unwrap();
    assert_eq!(
        (grace.updated_at, grace.correlation.as_deref()),
        (None, None)
    );
    assert!(grace.field_updated_at.is_empty());
    let update = OpBuilder::update("shop", OBJECT, "s7")
        .field("name", "Ada L.")
        .expected_version("elsewhere")
        .build();
    shop.apply(&update, at(2)).unwrap();
    let ada = shop.record("s7").unwrap();
    assert_eq!(ada.get("name"), Some(&json!("Ada L.")));
    assert_eq!(ada.version.as_deref(), Some("v1"), "as put");
    assert_eq!(ada.updated_at, None);
    assert!(ada.field_updated_at.is_empty());
}

// ------------------------------------------- the same as MemoryConnector

const SYSTEMS: [&str; 3] = ["crm", "shop", "erp"];

/// What a record holds, with a created record known by its correlation key
/// (the two number their creates alike only while nothing was deleted).
fn held(records: impl IntoIterator<Item = Record>) -> Vec<(String, Record)> {
    let mut out: Vec<(String, Record)> = records
        .into_iter()
        .map(|mut r| {
            let name = match &r.correlation {
                Some(key) => format!("created for {key}"),
                None => r.id.clone(),
            };
            r.id.clear();
            (name, r)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A created record's id and the outcome's, replaced by its entity.
fn outcomes_by_entity(plan: &SyncPlan, outcomes: &Outcomes) -> Vec<(String, OpOutcome)> {
    plan.ops
        .iter()
        .map(|op| {
            let mut o = outcome(outcomes, op);
            if op.kind == OpKind::Create {
                if let OpOutcome::Applied { record_id, .. } = &mut o {
                    *record_id = None;
                }
            }
            (op.entity.to_string(), o)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    /// At every sync of a random history, the plan executed by
    /// `testkit::apply` on the connectors' records leaves the records the
    /// connectors' own `apply` leaves, and reports the same outcomes.
    #[test]
    fn apply_leaves_what_memory_connector_leaves(
        map in field_map(&SYSTEMS, &["email", "phone", "city"]),
        history in edit_history(3, "email", &["phone", "city"], 0..30),
    ) {
        let engine = SyncEngine::new(map);
        let clock = ManualClock::new(at(0));
        let connectors: Vec<MemoryConnector> = SYSTEMS
            .iter()
            .map(|s| MemoryConnector::builder(*s).clock(clock.clone()).build().unwrap())
            .collect();
        let mut baseline = Baseline::new();
        for edit in history.iter().chain([&Edit::Sync]) {
            clock.advance(TimeDelta::minutes(1));
            edit.apply(&connectors, OBJECT);
            if *edit != Edit::Sync {
                continue;
            }
            let read = |c: &MemoryConnector| block_on(c.fetch(OBJECT)).unwrap();
            let snaps: Vec<Snapshot> = connectors.iter().map(read).collect();
            let mut systems: Vec<MemorySystem> = snaps
                .iter()
                .map(|s| {
                    let mut m = MemorySystem::new(s.system.clone());
                    for r in &s.records {
                        m.put(r.clone());
                    }
                    m
                })
                .collect();
            let plan = engine.plan(&baseline, &snaps).unwrap();
            clock.advance(TimeDelta::minutes(1));
            let outcomes = testkit::apply(&plan, &mut systems, clock.peek());
            let mut by_connectors = Outcomes::new();
            for c in &connectors {
                let ops: Vec<WriteOp> = plan.writes_to(c.system().as_str()).cloned().collect();
                let results = block_on(c.apply(OBJECT, &ops)).unwrap();
                for (op, r) in ops.iter().zip(results) {
                    by_connectors.record(op.id, r.into());
                }
            }
            prop_assert_eq!(
                outcomes_by_entity(&plan, &outcomes),
                outcomes_by_entity(&plan, &by_connectors),
                "{}", plan
            );
            for (c, m) in connectors.iter().zip(&systems) {
                prop_assert_eq!(held(read(c).records), held(m.records().cloned()), "{}", plan);
            }
            engine.commit(&mut baseline, &plan, &by_connectors).unwrap();
        }
    }
}

#[test]
fn a_tombstone_put_removes_the_record_and_is_never_listed_or_written() {
    let (_, _, mut systems) = synced();
    systems[0].put(Record::new("c2").deleted());
    assert!(!systems[0].contains("c2"));
    assert!(systems[0].snapshot().records.iter().all(|r| r.id != "c2"));
    let update = OpBuilder::update("crm", OBJECT, "c2")
        .field("name", "G")
        .build();
    let refused = systems[0].apply(&update, at(5)).unwrap_err();
    assert_eq!(refused.kind(), &ErrorKind::NotFound);
    // A tombstone of a record never there changes nothing.
    systems[1].put(Record::new("nobody").deleted());
    assert_eq!(systems[1].len(), 2);
}

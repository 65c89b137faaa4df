//! The worked example, row by row: one contact linked between `crm`
//! and `marketing`, per-field timestamps.
#![cfg(feature = "testkit")]

use recsync::testkit::{self, MemorySystem};
use recsync::{
    Baseline, ConflictPolicy, Field, FieldMap, Outcomes, Record, Snapshot, SyncEngine, SyncPlan,
};
use serde_json::{json, Value};

fn t(n: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_700_000_000 + n, 0).unwrap()
}

fn engine() -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "marketing"])
            .key("id")
            .field(Field::new("id"))
            .field(Field::new("phone"))
            .field(Field::new("title").policy(ConflictPolicy::authority("crm")))
            .field(Field::new("name").policy(ConflictPolicy::authority("crm")))
            .field(Field::new("city").no_overwrite_on_empty(true))
            .field(Field::new("score").one_way_from("marketing"))
            .field(Field::new("amount").policy(ConflictPolicy::ManualReview))
            .field(Field::new("email").case_insensitive().sensitive())
            .build()
            .unwrap(),
    )
}

fn base(id: &str) -> Record {
    Record::new(id)
        .field("id", "k1")
        .field("phone", "555-1")
        .field("title", "CTO")
        .field("name", "Bo")
        .field("city", "Oslo")
        .field("score", 10)
        .field("amount", 100)
        .field("email", "a@x")
        .updated_at(t(0))
}

fn set(r: Record, f: &str, v: Value, at: i64) -> Record {
    r.field_at(f, v, t(at))
}

fn writes(plan: &SyncPlan) -> Vec<(String, String, Value)> {
    let mut w: Vec<_> = plan
        .ops
        .iter()
        .flat_map(|op| {
            op.fields
                .iter()
                .map(|f| (op.system.to_string(), f.field.to_string(), f.value.clone()))
        })
        .collect();
    w.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    w
}

#[test]
fn the_worked_example() {
    let e = engine();
    let mut baseline = Baseline::new();
    let first = e
        .plan(
            &baseline,
            &[
                Snapshot::complete("crm", vec![base("c")]),
                Snapshot::complete("marketing", vec![base("m")]),
            ],
        )
        .unwrap();
    assert!(first.ops.is_empty());
    e.commit(&mut baseline, &first, &Outcomes::all_applied(&first))
        .unwrap();

    let mut crm = base("c");
    crm = set(crm, "phone", json!("555-2"), 9);
    crm = set(crm, "name", json!("Bob"), 3);
    crm = set(crm, "city", json!(""), 9);
    crm = set(crm, "score", json!(99), 9);
    crm = set(crm, "amount", json!(120), 5);
    let mut mkt = base("m");
    mkt = set(mkt, "phone", json!("555-3"), 7);
    mkt = set(mkt, "title", json!("VP"), 8);
    mkt = set(mkt, "name", json!("Robert"), 9);
    mkt = set(mkt, "amount", json!(130), 6);
    mkt = set(mkt, "email", json!("A@X"), 6);

    // Systems that keep what they are written, stamping nothing.
    let mut systems =
        ["crm", "marketing"].map(|s| MemorySystem::new(s).versions(false).timestamps(false));
    systems[0].put(crm);
    systems[1].put(mkt);
    let plan = e.plan(&baseline, &testkit::snapshots(&systems)).unwrap();
    assert_eq!(
        writes(&plan),
        vec![
            ("crm".into(), "title".into(), json!("VP")),
            ("marketing".into(), "name".into(), json!("Bob")),
            ("marketing".into(), "phone".into(), json!("555-2")),
        ],
        "{plan}"
    );
    assert_eq!(plan.held.len(), 1, "{plan}");
    assert_eq!(plan.held[0].field.as_deref(), Some("city"));
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(plan.conflicts[0].field, "amount");
    assert_eq!(plan.conflicts[0].baseline, Some(json!(100)));

    // Apply, commit, plan again: only what is still held.
    let outcomes = testkit::apply(&plan, &mut systems, t(10));
    e.commit(&mut baseline, &plan, &outcomes).unwrap();
    let again = e.plan(&baseline, &testkit::snapshots(&systems)).unwrap();
    assert!(again.ops.is_empty(), "{again}");
    assert_eq!(again.held.len(), 1);
    assert_eq!(again.conflicts.len(), 1);
}

#[test]
fn display_redacts_sensitive_fields() {
    let e = engine();
    let mut baseline = Baseline::new();
    let first = e
        .plan(
            &baseline,
            &[
                Snapshot::complete("crm", vec![base("c")]),
                Snapshot::complete("marketing", vec![base("m")]),
            ],
        )
        .unwrap();
    e.commit(&mut baseline, &first, &Outcomes::all_applied(&first))
        .unwrap();
    let crm = set(base("c"), "email", json!("secret@x"), 5);
    let plan = e
        .plan(
            &baseline,
            &[
                Snapshot::complete("crm", vec![crm]),
                Snapshot::complete("marketing", vec![base("m")]),
            ],
        )
        .unwrap();
    assert_eq!(plan.ops.len(), 1);
    assert!(!plan.to_string().contains("secret@x"));
    assert!(plan.to_string().contains("[redacted]"));
    assert!(plan.display_unredacted().to_string().contains("secret@x"));
}

//! The record lifecycle, case by case: matching, creates (and creates whose
//! commit was lost), deletes and their policies, scope, references between
//! object types, and the safety guards.
#![cfg(feature = "testkit")]

mod common;

use common::{execute, sim, snapshots, Person};
use recsync::baseline::{LinkStatus, Review};
use recsync::guard::{Trip, WithheldKind};
use recsync::plan::{DeleteHeldBy, HoldKind, IssueKind};
use recsync::testkit::MemorySystem;
use recsync::{
    Baseline, Budget, DeleteEditPolicy, DeletePolicy, EntityId, Field, FieldMap, Filter, Guards,
    MatchKey, MatchMode, Normalization, OpKind, OpOutcome, Outcomes, PlanOptions, Record,
    ReviewChoice, ScopeExit, Snapshot, SyncEngine, SyncPlan, SystemId,
};
use serde_json::{json, Value};

/// Two systems, `crm` and `mkt`, with email (the key), name and phone.
fn builder() -> recsync::mapping::FieldMapBuilder {
    FieldMap::builder()
        .systems(["crm", "mkt"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("phone"))
}

fn engine(b: recsync::mapping::FieldMapBuilder) -> SyncEngine {
    SyncEngine::new(b.build().expect("valid map"))
}

fn contact(id: &str, email: &str, name: &str) -> Record {
    Record::new(id)
        .field("email", email)
        .field("name", name)
        .field("phone", "555")
}

fn systems() -> Vec<MemorySystem> {
    vec![sim("crm", "c"), sim("mkt", "m")]
}

/// Plans, executes every op, commits; returns the plan.
fn sync(engine: &SyncEngine, baseline: &mut Baseline, systems: &mut [MemorySystem]) -> SyncPlan {
    sync_with(engine, baseline, systems, &PlanOptions::new())
}

fn sync_with(
    engine: &SyncEngine,
    baseline: &mut Baseline,
    systems: &mut [MemorySystem],
    options: &PlanOptions<'_>,
) -> SyncPlan {
    let plan = engine
        .plan_with(baseline, &snapshots(systems), options)
        .expect("plan");
    let outcomes = execute(systems, &plan);
    engine.commit(baseline, &plan, &outcomes).expect("commit");
    plan
}

/// `n` contacts linked in both systems: crm `c1..cn`, mkt `m1..mn`.
fn linked(engine: &SyncEngine, n: usize) -> (Baseline, Vec<MemorySystem>) {
    let mut sys = systems();
    for i in 1..=n {
        let email = format!("p{i}@example.com");
        sys[0].put(contact(&format!("c{i}"), &email, &format!("P{i}")));
        sys[1].put(contact(&format!("m{i}"), &email, &format!("P{i}")));
    }
    let mut baseline = Baseline::new();
    let plan = sync(engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(baseline.len(), n);
    (baseline, sys)
}

fn link<'b>(baseline: &'b Baseline, system: &str, id: &str, other: &str) -> Option<&'b str> {
    baseline.find_linked(system, id).and_then(|e| e.link(other))
}

fn entity_of(baseline: &Baseline, system: &str, id: &str) -> EntityId {
    baseline
        .find_linked(system, id)
        .unwrap_or_else(|| panic!("{system} {id} not linked"))
        .id()
        .clone()
}

fn assert_quiet(engine: &SyncEngine, baseline: &Baseline, sys: &[MemorySystem]) {
    let plan = engine.plan(baseline, &snapshots(sys)).expect("plan");
    assert!(plan.ops.is_empty(), "not quiet:\n{plan}");
    assert!(plan.issues.is_empty(), "not quiet:\n{plan}");
    assert!(plan.refusal.is_none(), "not quiet:\n{plan}");
}

fn ops_of(plan: &SyncPlan, kind: OpKind) -> Vec<(String, Option<String>)> {
    plan.ops
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| (o.system.to_string(), o.record_id.clone()))
        .collect()
}

fn field_value(op: &recsync::WriteOp, field: &str) -> Option<Value> {
    op.fields
        .iter()
        .find(|w| w.field == field)
        .map(|w| w.value.clone())
}

fn sid(s: &str) -> SystemId {
    SystemId::new(s)
}

/// After a commit of deletes reported applied: the entity stays, its
/// records in `systems` kept as deleted until a read shows them gone; the
/// next sync reads them gone, and the entity leaves.
fn confirm_deleted(
    engine: &SyncEngine,
    baseline: &mut Baseline,
    sys: &mut [MemorySystem],
    eid: &EntityId,
    systems: &[&str],
) {
    let e = baseline.entity(eid).expect("kept until a read confirms");
    for s in systems {
        assert_eq!(e.link_status(s), Some(LinkStatus::Deleted), "{s}");
        assert_eq!(e.unconfirmed(s).map(|u| u.kind), Some(OpKind::Delete));
    }
    let plan = sync(engine, baseline, sys);
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    assert!(
        baseline.entity(eid).is_none(),
        "the entity left the baseline"
    );
}

// ---------------------------------------------------------------- matching

#[test]
fn matches_by_email_after_case_and_whitespace_differences() {
    let engine = engine(builder());
    let mut sys = systems();
    sys[0].put(contact("c1", "Ada@Example.com ", "Ada"));
    sys[1].put(contact("m1", "  ada@example.COM", "Ada"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(
        plan.ops.is_empty(),
        "matched records need no write:\n{plan}"
    );
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(baseline.len(), 1);
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert_eq!(sys[0].len(), 1);
    assert_eq!(sys[1].len(), 1);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn ambiguous_duplicate_email_names_every_candidate_and_links_nothing() {
    let engine = engine(builder());
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    sys[0].put(contact("c2", "ADA@example.com", "Ada L."));
    sys[1].put(contact("m1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "nothing created:\n{plan}");
    let expected: Vec<(SystemId, String)> = vec![
        (sid("crm"), "c1".into()),
        (sid("crm"), "c2".into()),
        (sid("mkt"), "m1".into()),
    ];
    // One issue per system, naming its first record and how many it holds
    // back.
    let mut reported: Vec<(String, String, usize)> = Vec::new();
    for issue in &plan.issues {
        match &issue.kind {
            IssueKind::AmbiguousMatch {
                key,
                records,
                candidate_count,
                candidates,
            } => {
                assert_eq!(key, "ada@example.com");
                assert_eq!(candidates, &expected);
                assert_eq!(*candidate_count, 3);
                assert!(issue.entity.is_none());
                assert_eq!(issue.field.as_deref(), Some("email"));
                reported.push((issue.system.to_string(), issue.record_id.clone(), *records));
            }
            other => panic!("unexpected issue {other:?}"),
        }
    }
    assert_eq!(
        reported,
        [
            ("crm".into(), "c1".into(), 2),
            ("mkt".into(), "m1".into(), 1)
        ],
        "{plan}"
    );
    assert_eq!(baseline.len(), 0, "nothing linked");
    assert_eq!(sys[0].len(), 2);
    assert_eq!(sys[1].len(), 1);
}

#[test]
fn a_new_record_matching_a_linked_entity_already_linked_there_is_ambiguous() {
    let engine = engine(builder());
    let (mut baseline, mut sys) = linked(&engine, 1);
    // A second mkt record with the linked entity's email.
    sys[1].put(contact("m9", "P1@example.com", "Copy"));
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "no create for it:\n{plan}");
    assert_eq!(plan.issues.len(), 1, "{plan}");
    let issue = &plan.issues[0];
    assert_eq!(
        (issue.system.as_str(), issue.record_id.as_str()),
        ("mkt", "m9")
    );
    match &issue.kind {
        IssueKind::AmbiguousMatch { candidates, .. } => {
            assert_eq!(
                candidates,
                &vec![
                    (sid("crm"), "c1".to_owned()),
                    (sid("mkt"), "m1".to_owned()),
                    (sid("mkt"), "m9".to_owned()),
                ]
            );
        }
        other => panic!("unexpected issue {other:?}"),
    }
    assert!(baseline.find_linked("mkt", "m9").is_none());
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
}

#[test]
fn match_keys_are_tried_in_order_email_then_phone() {
    let engine = engine(
        FieldMap::builder()
            .systems(["crm", "mkt"])
            .key("email")
            .match_key(MatchKey::new("phone").normalize(Normalization::DigitsOnly))
            .field(Field::new("email").case_insensitive())
            .field(Field::new("phone").normalize(Normalization::DigitsOnly)),
    );
    let mut sys = systems();
    // Same email, different phones: linked by email, the first key.
    sys[0].put(
        Record::new("c1")
            .field("email", "a@x.com")
            .field("phone", "111"),
    );
    sys[1].put(
        Record::new("m1")
            .field("email", "A@x.com")
            .field("phone", "222"),
    );
    // No email on one side: linked by phone, the second key.
    sys[0].put(
        Record::new("c2")
            .field("email", "b@x.com")
            .field("phone", "(555) 010-9"),
    );
    sys[1].put(Record::new("m2").field("phone", "555-0109"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.issues.is_empty(), "{plan}");
    assert!(ops_of(&plan, OpKind::Create).is_empty(), "{plan}");
    assert_eq!(baseline.len(), 2);
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert_eq!(link(&baseline, "crm", "c2", "mkt"), Some("m2"));
    // m2 receives c2's email.
    let op = plan
        .ops
        .iter()
        .find(|o| o.record_id.as_deref() == Some("m2"))
        .expect("update of m2");
    assert_eq!(field_value(op, "email"), Some(json!("b@x.com")));
}

#[test]
fn match_only_reports_unmatched_records_and_creates_nothing() {
    let engine = engine(builder().matching(MatchMode::MatchOnly));
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    sys[0].put(contact("c2", "bo@example.com", "Bo"));
    sys[1].put(contact("m1", "ADA@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.issues.len(), 1, "{plan}");
    assert_eq!(plan.issues[0].kind, IssueKind::Unmatched);
    assert_eq!(
        (
            plan.issues[0].system.as_str(),
            plan.issues[0].record_id.as_str()
        ),
        ("crm", "c2")
    );
    assert_eq!(baseline.len(), 1);
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert!(baseline.find_linked("crm", "c2").is_none());
    assert_eq!(sys[1].len(), 1);
}

#[test]
fn match_then_create_links_matches_and_creates_the_rest() {
    let engine = engine(builder());
    assert_eq!(engine.map().match_mode(), MatchMode::MatchThenCreate);
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    sys[0].put(contact("c2", "bo@example.com", "Bo"));
    sys[1].put(contact("m1", "ADA@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(ops_of(&plan, OpKind::Create), vec![("mkt".into(), None)]);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(baseline.len(), 2);
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert_eq!(link(&baseline, "crm", "c2", "mkt"), Some("m2"));
    assert_eq!(
        sys[1].get("m2").get("email"),
        Some(&json!("bo@example.com"))
    );
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn create_only_matches_nothing() {
    let engine = engine(builder().matching(MatchMode::CreateOnly));
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    sys[1].put(contact("m1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    let mut creates = ops_of(&plan, OpKind::Create);
    creates.sort();
    assert_eq!(
        creates,
        vec![("crm".into(), None), ("mkt".into(), None)],
        "{plan}"
    );
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(baseline.len(), 2);
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m2"));
    assert_eq!(link(&baseline, "mkt", "m1", "crm"), Some("c2"));
    // The records it made carry their correlation keys; nothing is made twice.
    assert_quiet(&engine, &baseline, &sys);
}

// ----------------------------------------------------------------- creates

#[test]
fn create_in_the_other_system_then_link_on_commit() {
    let engine = engine(builder());
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert_eq!(plan.ops.len(), 1, "{plan}");
    let op = &plan.ops[0];
    assert_eq!(op.kind, OpKind::Create);
    assert_eq!(op.system, "mkt");
    assert_eq!(op.record_id, None);
    assert_eq!(op.object, "records");
    assert_eq!(op.correlation.as_deref(), Some(op.entity.as_str()));
    let fields: Vec<(&str, &Value)> = op
        .fields
        .iter()
        .map(|w| (w.native.as_str(), &w.value))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("email", &json!("ada@example.com")),
            ("name", &json!("Ada")),
            ("phone", &json!("555")),
        ]
    );
    let mut outcomes = Outcomes::new();
    outcomes.record(op.id, OpOutcome::created("m77").with_version("v1"));
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    let e = baseline.find_linked("crm", "c1").expect("linked");
    assert_eq!(e.id(), &op.entity);
    assert_eq!(e.link("mkt"), Some("m77"));
    assert_eq!(e.version("mkt"), Some("v1"));
    assert_eq!(e.shadow("mkt", "name"), Some(json!("Ada")));

    // The system now holds the record; the next plan has nothing to do.
    let mut m = contact("m77", "ada@example.com", "Ada").version("v1");
    m.correlation = op.correlation.clone();
    sys[1].put(m);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_create_applied_without_its_id_is_refused_at_commit() {
    let engine = engine(builder());
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    let mut outcomes = Outcomes::new();
    outcomes.record(plan.ops[0].id, OpOutcome::applied());
    let err = engine.commit(&mut baseline, &plan, &outcomes).unwrap_err();
    assert_eq!(err, recsync::CommitError::MissingRecordId(plan.ops[0].id));
    assert_eq!(baseline.len(), 0);
    assert_eq!(baseline.revision(), 0);
}

#[test]
fn a_create_whose_outcome_was_lost_is_found_by_its_correlation_key() {
    let engine = engine(builder());
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert_eq!(ops_of(&plan, OpKind::Create).len(), 1);
    // Executed, then the process died: no commit.
    execute(&mut sys, &plan);
    assert_eq!(
        sys[1].get("m1").correlation.as_deref(),
        Some(plan.ops[0].entity.as_str())
    );
    // Even with a different key value now, the correlation key links it.
    sys[1].set("m1", "email", "ada.l@example.com");
    let again = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert!(
        ops_of(&again, OpKind::Create).is_empty(),
        "second create:\n{again}"
    );
    assert!(again.issues.is_empty(), "{again}");
    let outcomes = execute(&mut sys, &again);
    engine
        .commit(&mut baseline, &again, &outcomes)
        .expect("commit");
    assert_eq!(baseline.len(), 1);
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert_eq!(
        baseline.find_linked("mkt", "m1").expect("linked").id(),
        &plan.ops[0].entity
    );
    assert_eq!(sys[1].len(), 1, "no duplicate");
    assert_eq!(
        sys[0].get("c1").get("email"),
        sys[1].get("m1").get("email"),
        "the email converged"
    );
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_create_whose_outcome_was_lost_is_found_by_its_match_key() {
    let engine = engine(builder());
    let mut sys = systems();
    sys[1] = sim("mkt", "m").external_ids(false);
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    execute(&mut sys, &plan);
    assert_eq!(sys[1].get("m1").correlation, None);
    let again = sync(&engine, &mut baseline, &mut sys);
    assert!(again.ops.is_empty(), "second create:\n{again}");
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert_eq!(sys[1].len(), 1, "no duplicate");
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_lost_create_for_a_linked_entity_is_found_by_its_correlation_key() {
    // Three systems; the entity is linked in two and created in the third
    // when it is added to the sync. The create's commit is lost.
    let map = |n: &[&str]| {
        SyncEngine::new(
            FieldMap::builder()
                .systems(n.iter().copied())
                .key("email")
                .field(Field::new("email").case_insensitive())
                .field(Field::new("name"))
                .build()
                .expect("map"),
        )
    };
    let two = map(&["crm", "mkt"]);
    let three = map(&["crm", "mkt", "erp"]);
    let mut sys = vec![sim("crm", "c"), sim("mkt", "m"), sim("erp", "e")];
    sys[0].put(Record::new("c1").field("email", "a@x").field("name", "A"));
    sys[1].put(Record::new("m1").field("email", "a@x").field("name", "A"));
    let mut baseline = Baseline::new();
    let p = two.plan(&baseline, &snapshots(&sys[..2])).expect("plan");
    two.commit(&mut baseline, &p, &Outcomes::all_applied(&p))
        .expect("commit");
    let eid = entity_of(&baseline, "crm", "c1");

    let plan = three.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert_eq!(ops_of(&plan, OpKind::Create), vec![("erp".into(), None)]);
    assert_eq!(plan.ops[0].correlation.as_deref(), Some(eid.as_str()));
    execute(&mut sys, &plan);
    // Lost commit; the name changes meanwhile, so the key alone would not do.
    sys[2].set("e1", "email", "other@x");
    let again = three.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert!(ops_of(&again, OpKind::Create).is_empty(), "{again}");
    let outcomes = execute(&mut sys, &again);
    three
        .commit(&mut baseline, &again, &outcomes)
        .expect("commit");
    assert_eq!(link(&baseline, "crm", "c1", "erp"), Some("e1"));
    assert_eq!(sys[2].len(), 1);
    assert_quiet(&three, &baseline, &sys);
}

// ----------------------------------------------------------------- deletes

#[test]
fn a_delete_is_propagated() {
    let engine = engine(builder().deletes(DeletePolicy::Propagate));
    let (mut baseline, mut sys) = linked(&engine, 2);
    let eid = entity_of(&baseline, "crm", "c1");
    sys[0].remove("c1");
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert!(plan.refusal.is_none(), "{plan}");
    assert_eq!(plan.ops.len(), 1, "{plan}");
    let op = &plan.ops[0];
    assert_eq!(op.kind, OpKind::Delete);
    assert_eq!(op.system, "mkt");
    assert_eq!(op.record_id.as_deref(), Some("m1"));
    assert_eq!(op.entity, eid);
    assert!(op.fields.is_empty());
    let outcomes = execute(&mut sys, &plan);
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    confirm_deleted(&engine, &mut baseline, &mut sys, &eid, &["mkt"]);
    assert_eq!(baseline.len(), 1);
    assert!(!sys[1].contains("m1"));
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_failed_delete_is_planned_again() {
    let engine = engine(builder().deletes(DeletePolicy::Propagate));
    let (mut baseline, mut sys) = linked(&engine, 2);
    sys[0].remove("c1");
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    let mut outcomes = Outcomes::new();
    outcomes.record(plan.ops[0].id, OpOutcome::failed("timeout"));
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    let again = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(
        ops_of(&again, OpKind::Delete),
        vec![("mkt".into(), Some("m1".into()))]
    );
    sync(&engine, &mut baseline, &mut sys);
    assert_eq!(baseline.len(), 1);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_delete_under_unlink_keeps_the_other_records() {
    let engine = engine(builder().deletes(DeletePolicy::Unlink));
    let (mut baseline, mut sys) = linked(&engine, 2);
    sys[0].remove("c1");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert!(plan.held.is_empty(), "{plan}");
    let e = baseline
        .find_linked("mkt", "m1")
        .expect("still linked in mkt");
    assert_eq!(e.link("crm"), None);
    assert!(sys[1].contains("m1"));
    // Never re-created in crm.
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_delete_is_held_for_review_by_default_and_resolved() {
    let engine = engine(builder());
    // Four contacts, so crm's snapshot never comes back empty.
    let (mut baseline, mut sys) = linked(&engine, 4);
    for (i, choice) in [
        ReviewChoice::Delete,
        ReviewChoice::Unlink,
        ReviewChoice::Restore,
    ]
    .into_iter()
    .enumerate()
    {
        let c = format!("c{}", i + 1);
        let m = format!("m{}", i + 1);
        let eid = entity_of(&baseline, "crm", &c);
        sys[0].remove(&c);
        let plan = sync(&engine, &mut baseline, &mut sys);
        assert!(plan.ops.is_empty(), "held, not propagated:\n{plan}");
        let review = match &plan.held[..] {
            [h] => match &h.kind {
                HoldKind::Deleted {
                    system,
                    record_id,
                    review,
                    by,
                    edited_in,
                } => {
                    assert_eq!(h.entity, eid);
                    assert_eq!(system.as_str(), "crm");
                    assert_eq!(record_id, &c);
                    assert_eq!(*by, DeleteHeldBy::Policy);
                    assert!(edited_in.is_empty());
                    *review
                }
                other => panic!("unexpected hold {other:?}"),
            },
            other => panic!("round {i}: expected one hold, got {other:?}\n{plan}"),
        };
        let e = baseline.entity(&eid).expect("kept");
        assert_eq!(e.link_status("crm"), Some(LinkStatus::Deleted));
        assert_eq!(e.link("mkt"), Some(m.as_str()));
        let reviews = baseline.reviews();
        assert!(
            matches!(reviews.as_slice(), [Review::Delete(d)] if d.id == review && d.deleted_in == vec![(sid("crm"), c.clone())]),
            "{reviews:?}"
        );
        // Held again, unchanged, until resolved.
        let still = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
        assert!(still.ops.is_empty() && still.held.len() == 1, "{still}");

        assert_eq!(baseline.resolve(review, choice.clone()), Ok(eid.clone()));
        let plan = sync(&engine, &mut baseline, &mut sys);
        match choice {
            ReviewChoice::Delete => {
                assert_eq!(
                    ops_of(&plan, OpKind::Delete),
                    vec![("mkt".into(), Some(m.clone()))]
                );
                confirm_deleted(&engine, &mut baseline, &mut sys, &eid, &["mkt"]);
                assert!(!sys[1].contains(&m));
            }
            ReviewChoice::Unlink => {
                assert!(plan.ops.is_empty(), "{plan}");
                let e = baseline.entity(&eid).expect("kept");
                assert_eq!(e.link("crm"), None);
                assert_eq!(e.link("mkt"), Some(m.as_str()));
            }
            _ => {
                assert_eq!(ops_of(&plan, OpKind::Create), vec![("crm".into(), None)]);
                let e = baseline.entity(&eid).expect("kept");
                let new_id = e.link("crm").expect("re-created and linked");
                assert_ne!(new_id, c);
                assert_eq!(
                    sys[0].get(new_id).get("name"),
                    Some(&json!(format!("P{}", i + 1)))
                );
            }
        }
        assert!(baseline.reviews().is_empty(), "{:?}", baseline.reviews());
        assert_quiet(&engine, &baseline, &sys);
    }
}

#[test]
fn absence_from_a_partial_snapshot_is_not_a_delete() {
    let engine = engine(builder().deletes(DeletePolicy::Propagate));
    let (mut baseline, mut sys) = linked(&engine, 2);
    let snaps = [
        Snapshot::partial("crm", vec![sys[0].get("c2").clone()]),
        sys[1].snapshot(),
    ];
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    assert!(plan.held.is_empty(), "{plan}");
    let outcomes = execute(&mut sys, &plan);
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert_eq!(
        baseline
            .find_linked("crm", "c1")
            .and_then(|e| e.link_status("crm")),
        Some(LinkStatus::Active)
    );
    // An empty partial snapshot is no evidence either, and no guard trips.
    let plan = engine
        .plan(
            &baseline,
            &[Snapshot::partial("crm", vec![]), sys[1].snapshot()],
        )
        .expect("plan");
    assert!(plan.ops.is_empty() && plan.refusal.is_none(), "{plan}");
    assert_eq!(sys[1].len(), 2);
}

#[test]
fn a_tombstone_in_a_partial_snapshot_is_a_delete() {
    let engine = engine(builder().deletes(DeletePolicy::Propagate));
    let (mut baseline, mut sys) = linked(&engine, 2);
    let snaps = [
        Snapshot::partial("crm", vec![Record::new("c1").deleted()]),
        Snapshot::partial("mkt", vec![]),
    ];
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    assert_eq!(
        ops_of(&plan, OpKind::Delete),
        vec![("mkt".into(), Some("m1".into()))]
    );
    sys[0].remove("c1");
    let outcomes = execute(&mut sys, &plan);
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    // A partial read that lacks m1 does not confirm its delete; a
    // tombstone does.
    let eid = entity_of(&baseline, "mkt", "m1");
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::new())
        .expect("commit");
    assert!(baseline.entity(&eid).is_some());
    let snaps = [
        Snapshot::partial("crm", vec![]),
        Snapshot::partial("mkt", vec![Record::new("m1").deleted()]),
    ];
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::new())
        .expect("commit");
    assert!(baseline.find_linked("crm", "c1").is_none());
    assert!(baseline.find_linked("mkt", "m1").is_none());
    assert_eq!(baseline.len(), 1);
    assert_quiet(&engine, &baseline, &sys);
}

/// One contact linked, deleted in crm while mkt changed its phone.
fn delete_against_edit(
    policy: Option<DeleteEditPolicy>,
) -> (SyncEngine, Baseline, Vec<MemorySystem>, SyncPlan, EntityId) {
    let mut b = builder().deletes(DeletePolicy::Propagate);
    if let Some(p) = policy {
        b = b.delete_vs_edit(p);
    }
    let engine = engine(b);
    let (mut baseline, mut sys) = linked(&engine, 2);
    let eid = entity_of(&baseline, "crm", "c1");
    sys[0].remove("c1");
    sys[1].set("m1", "phone", "999");
    let plan = sync(&engine, &mut baseline, &mut sys);
    (engine, baseline, sys, plan, eid)
}

#[test]
fn delete_against_edit_is_held_by_default() {
    let (engine, mut baseline, mut sys, plan, eid) = delete_against_edit(None);
    assert!(plan.ops.is_empty(), "{plan}");
    match &plan.held[..] {
        [h] => match &h.kind {
            HoldKind::Deleted {
                by,
                edited_in,
                system,
                ..
            } => {
                assert_eq!(*by, DeleteHeldBy::DeleteAgainstEdit);
                assert_eq!(edited_in, &vec![sid("mkt")]);
                assert_eq!(system.as_str(), "crm");
            }
            other => panic!("unexpected hold {other:?}"),
        },
        other => panic!("expected one hold, got {other:?}"),
    }
    assert!(sys[1].contains("m1"), "the edit is not lost");
    // Still held on the next plans, though the commit took in the edit.
    for _ in 0..2 {
        let again = sync(&engine, &mut baseline, &mut sys);
        assert!(again.ops.is_empty(), "{again}");
        assert!(
            matches!(&again.held[..], [h] if matches!(&h.kind,
                HoldKind::Deleted { by: DeleteHeldBy::DeleteAgainstEdit, edited_in, .. }
                    if edited_in == &vec![sid("mkt")])),
            "{again}"
        );
    }
    assert_eq!(sys[1].get("m1").get("phone"), Some(&json!("999")));
    // The review restores the record with the edit.
    let review = baseline.reviews()[0].id();
    baseline
        .resolve(review, ReviewChoice::Restore)
        .expect("resolve");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(ops_of(&plan, OpKind::Create), vec![("crm".into(), None)]);
    let new_id = baseline
        .entity(&eid)
        .and_then(|e| e.link("crm"))
        .expect("linked");
    assert_eq!(sys[0].get(new_id).get("phone"), Some(&json!("999")));
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn delete_against_edit_edit_wins_re_creates_the_record() {
    let (engine, baseline, sys, plan, eid) = delete_against_edit(Some(DeleteEditPolicy::EditWins));
    assert_eq!(plan.ops.len(), 1, "{plan}");
    let op = &plan.ops[0];
    assert_eq!((op.kind, op.system.as_str()), (OpKind::Create, "crm"));
    assert_eq!(field_value(op, "phone"), Some(json!("999")));
    assert_eq!(field_value(op, "name"), Some(json!("P1")));
    assert_eq!(op.correlation.as_deref(), Some(eid.as_str()));
    let e = baseline.entity(&eid).expect("kept");
    let new_id = e.link("crm").expect("re-created");
    assert_eq!(e.link("mkt"), Some("m1"));
    assert_eq!(sys[0].get(new_id).get("phone"), Some(&json!("999")));
    assert!(sys[1].contains("m1"));
    assert!(baseline.reviews().is_empty());
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_restore_whose_commit_was_lost_is_not_made_twice() {
    let engine = engine(
        builder()
            .deletes(DeletePolicy::Propagate)
            .delete_vs_edit(DeleteEditPolicy::EditWins),
    );
    let (mut baseline, mut sys) = linked(&engine, 2);
    let eid = entity_of(&baseline, "crm", "c1");
    sys[0].remove("c1");
    sys[1].set("m1", "phone", "999");
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert_eq!(ops_of(&plan, OpKind::Create), vec![("crm".into(), None)]);
    execute(&mut sys, &plan);
    // No commit. The re-created record carries the entity's correlation key,
    // while the baseline still links the deleted c1.
    let again = sync(&engine, &mut baseline, &mut sys);
    assert!(again.ops.is_empty(), "{again}");
    assert!(again.issues.is_empty(), "{again}");
    assert_eq!(sys[0].len(), 2, "no second create");
    let e = baseline.entity(&eid).expect("kept");
    assert_eq!(e.link("crm"), Some("c3"));
    assert_eq!(sys[0].get("c3").get("phone"), Some(&json!("999")));
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn delete_against_edit_delete_wins_propagates() {
    let (engine, mut baseline, mut sys, plan, eid) =
        delete_against_edit(Some(DeleteEditPolicy::DeleteWins));
    assert_eq!(
        ops_of(&plan, OpKind::Delete),
        vec![("mkt".into(), Some("m1".into()))]
    );
    assert_eq!(plan.ops.len(), 1, "{plan}");
    confirm_deleted(&engine, &mut baseline, &mut sys, &eid, &["mkt"]);
    assert!(!sys[1].contains("m1"));
    assert_quiet(&engine, &baseline, &sys);
}

// ------------------------------------------------------------------- scope

fn scoped(exit: ScopeExit) -> SyncEngine {
    engine(
        builder()
            .deletes(DeletePolicy::Propagate)
            .scope("crm", Filter::field("status").not_equals("archived"))
            .scope_exit(exit),
    )
}

#[test]
fn a_record_leaving_scope_is_unlinked_and_not_deleted() {
    let engine = scoped(ScopeExit::Unlink);
    let (mut baseline, mut sys) = linked(&engine, 2);
    let eid = entity_of(&baseline, "crm", "c1");
    sys[0].set("c1", "status", "archived");
    sys[0].set("c1", "name", "Changed while out of scope");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "nothing deleted or written:\n{plan}");
    let e = baseline.entity(&eid).expect("the entity stays");
    assert_eq!(e.link("crm"), None);
    assert_eq!(e.link_status("crm"), Some(LinkStatus::Detached));
    assert_eq!(e.link("mkt"), Some("m1"));
    assert!(sys[1].contains("m1"));
    assert_eq!(sys[1].get("m1").get("name"), Some(&json!("P1")));
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_record_leaving_scope_is_frozen_and_resumes_on_return() {
    let engine = scoped(ScopeExit::Freeze);
    let (mut baseline, mut sys) = linked(&engine, 2);
    let eid = entity_of(&baseline, "crm", "c1");
    sys[0].set("c1", "status", "archived");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert!(
        plan.held.iter().any(|h| h.entity == eid
            && h.kind
                == HoldKind::Frozen {
                    system: sid("crm"),
                    record_id: "c1".into()
                }),
        "{plan}"
    );
    assert_eq!(
        baseline.entity(&eid).and_then(|e| e.link_status("crm")),
        Some(LinkStatus::Frozen)
    );
    // While frozen, mkt's edit is not written to crm, and crm's is not read.
    sys[1].set("m1", "phone", "777");
    sys[0].set("c1", "name", "Frozen edit");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(sys[0].get("c1").get("phone"), Some(&json!("555")));
    // Back in scope: sync resumes where it was.
    sys[0].set("c1", "status", "active");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(
        baseline.entity(&eid).and_then(|e| e.link_status("crm")),
        Some(LinkStatus::Active)
    );
    assert!(ops_of(&plan, OpKind::Delete).is_empty());
    assert_eq!(sys[0].get("c1").get("phone"), Some(&json!("777")), "{plan}");
    assert_eq!(
        sys[1].get("m1").get("name"),
        Some(&json!("Frozen edit")),
        "{plan}"
    );
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_filter_change_does_not_read_as_deletes() {
    let all = engine(builder().deletes(DeletePolicy::Propagate));
    let (mut baseline, mut sys) = linked(&all, 4);
    sys[0].set("c1", "status", "archived");
    sys[0].set("c2", "status", "archived");
    // The host narrows crm's scope: two records leave it.
    let narrow = scoped(ScopeExit::Unlink);
    let plan = sync(&narrow, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert!(plan.refusal.is_none(), "{plan}");
    assert!(
        !plan
            .held
            .iter()
            .any(|h| matches!(h.kind, HoldKind::Deleted { .. })),
        "{plan}"
    );
    assert_eq!(baseline.len(), 4);
    assert_eq!(sys[1].len(), 4);
    assert_eq!(link(&baseline, "mkt", "m1", "crm"), None);
    assert_eq!(link(&baseline, "mkt", "m3", "crm"), Some("c3"));
    assert_quiet(&narrow, &baseline, &sys);
    // Widening it again links them back by their key, without creates.
    let plan = sync(&all, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(link(&baseline, "mkt", "m1", "crm"), Some("c1"));
    assert_eq!(baseline.len(), 4);
}

#[test]
fn records_out_of_scope_are_not_matched_or_created() {
    let engine = scoped(ScopeExit::Unlink);
    let mut sys = systems();
    sys[0].put(contact("c1", "a@x", "A").field("status", "archived"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(baseline.len(), 0);
}

// -------------------------------------------------------------- references

fn companies() -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .object("companies")
            .systems(["crm", "mkt"])
            .key("domain")
            .field(Field::new("domain").case_insensitive())
            .field(Field::new("name"))
            .build()
            .expect("map"),
    )
}

fn contacts() -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .object("contacts")
            .systems(["crm", "mkt"])
            .key("email")
            .field(Field::new("email").case_insensitive())
            .field(Field::new("company").references("companies"))
            .build()
            .expect("map"),
    )
}

#[test]
fn a_contact_waits_for_its_company_then_is_linked_once_it_is_created() {
    let (co, ct) = (companies(), contacts());
    let mut co_sys = vec![sim("crm", "cc"), sim("mkt", "mc")];
    let mut ct_sys = vec![sim("crm", "c"), sim("mkt", "m")];
    co_sys[0].put(
        Record::new("cc1")
            .field("domain", "acme.com")
            .field("name", "Acme"),
    );
    ct_sys[0].put(
        Record::new("c1")
            .field("email", "ada@acme.com")
            .field("company", "cc1"),
    );
    let mut co_base = Baseline::new();
    let mut ct_base = Baseline::new();

    // Without the companies baseline, the plan cannot translate.
    assert!(matches!(
        ct.plan(&ct_base, &snapshots(&ct_sys)),
        Err(recsync::PlanError::MissingParent { .. })
    ));

    // The contact is planned before its company was synced: it waits.
    let plan = ct
        .plan_with(
            &ct_base,
            &snapshots(&ct_sys),
            &PlanOptions::new().parent("companies", &co_base),
        )
        .expect("plan");
    assert!(
        plan.ops.is_empty(),
        "no contact created before its company:\n{plan}"
    );
    let waits: Vec<_> = plan
        .issues
        .iter()
        .filter(|i| {
            matches!(&i.kind, IssueKind::WaitingForParent { object, parent }
                if object == "companies" && parent == "cc1")
        })
        .collect();
    assert_eq!(waits.len(), 1, "{plan}");
    assert_eq!(waits[0].field.as_deref(), Some("company"));
    assert_eq!(
        (waits[0].system.as_str(), waits[0].record_id.as_str()),
        ("crm", "c1")
    );
    let outcomes = execute(&mut ct_sys, &plan);
    ct.commit(&mut ct_base, &plan, &outcomes).expect("commit");

    // The company is created in mkt and committed.
    let plan = sync(&co, &mut co_base, &mut co_sys);
    assert_eq!(ops_of(&plan, OpKind::Create), vec![("mkt".into(), None)]);
    let company = entity_of(&co_base, "crm", "cc1");
    assert_eq!(
        co_base.entity(&company).and_then(|e| e.link("mkt")),
        Some("mc1")
    );

    // Now the contact is created, pointing at mkt's copy of the company.
    let plan = sync_with(
        &ct,
        &mut ct_base,
        &mut ct_sys,
        &PlanOptions::new().parent("companies", &co_base),
    );
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(ops_of(&plan, OpKind::Create), vec![("mkt".into(), None)]);
    assert_eq!(field_value(&plan.ops[0], "company"), Some(json!("mc1")));
    let e = ct_base.find_linked("crm", "c1").expect("linked");
    assert_eq!(e.link("mkt"), Some("m1"));
    assert_eq!(e.canonical("company"), Some(json!(company.as_str())));
    assert_eq!(ct_sys[1].get("m1").get("company"), Some(&json!("mc1")));

    // A new company reference set in mkt is translated back to crm's id.
    co_sys[1].put(
        Record::new("mc9")
            .field("domain", "globex.com")
            .field("name", "Globex"),
    );
    sync(&co, &mut co_base, &mut co_sys);
    let crm_globex = link(&co_base, "mkt", "mc9", "crm")
        .expect("created in crm")
        .to_owned();
    ct_sys[1].set("m1", "company", "mc9");
    let plan = sync_with(
        &ct,
        &mut ct_base,
        &mut ct_sys,
        &PlanOptions::new().parent("companies", &co_base),
    );
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(
        field_value(&plan.ops[0], "company"),
        Some(json!(crm_globex))
    );
    let quiet = ct
        .plan_with(
            &ct_base,
            &snapshots(&ct_sys),
            &PlanOptions::new().parent("companies", &co_base),
        )
        .expect("plan");
    assert!(quiet.ops.is_empty() && quiet.issues.is_empty(), "{quiet}");
}

#[test]
fn creates_are_ordered_parents_first() {
    // Companies with a parent company (a reference to the same object type):
    // a child is created only after its parent is created and linked.
    let co = SyncEngine::new(
        FieldMap::builder()
            .object("companies")
            .systems(["crm", "mkt"])
            .key("domain")
            .field(Field::new("domain").case_insensitive())
            // mkt's records hold only the fields written to them: until a
            // child is made there, none has a parent.
            .field(
                Field::new("parent")
                    .references("companies")
                    .may_be_absent_in("mkt"),
            )
            .build()
            .expect("map"),
    );
    let mut sys = vec![sim("crm", "c"), sim("mkt", "m")];
    sys[0].put(Record::new("c1").field("domain", "holding.com"));
    sys[0].put(
        Record::new("c2")
            .field("domain", "sub.com")
            .field("parent", "c1"),
    );
    sys[0].put(
        Record::new("c3")
            .field("domain", "subsub.com")
            .field("parent", "c2"),
    );
    let mut baseline = Baseline::new();
    let mut rounds: Vec<Vec<String>> = Vec::new();
    for _ in 0..5 {
        let plan = sync(&co, &mut baseline, &mut sys);
        if plan.ops.is_empty() {
            break;
        }
        for op in &plan.ops {
            assert_eq!(op.kind, OpKind::Create, "{plan}");
            // Every reference a create writes names a record that exists.
            if let Some(Value::String(p)) = field_value(op, "parent") {
                assert!(sys[1].contains(&p), "parent {p} missing:\n{plan}");
            }
        }
        rounds.push(
            plan.ops
                .iter()
                .filter_map(|o| field_value(o, "domain"))
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect(),
        );
    }
    assert_eq!(
        rounds,
        vec![
            vec!["holding.com".to_owned()],
            vec!["sub.com".to_owned()],
            vec!["subsub.com".to_owned()]
        ]
    );
    let m2 = link(&baseline, "crm", "c2", "mkt").expect("linked");
    let m1 = link(&baseline, "crm", "c1", "mkt").expect("linked");
    assert_eq!(sys[1].get(m2).get("parent"), Some(&json!(m1)));
    assert_quiet(&co, &baseline, &sys);
}

// ------------------------------------------------------------------ guards

#[test]
fn a_60_percent_delete_is_refused_then_applied_after_approval() {
    let engine = engine(builder().deletes(DeletePolicy::Propagate));
    assert_eq!(engine.map().guards(), &Guards::default());
    let (mut baseline, mut sys) = linked(&engine, 20);
    for i in 1..=12 {
        sys[0].remove(&format!("c{i}"));
    }
    let plan = sync(&engine, &mut baseline, &mut sys);
    let refusal = plan.refusal.clone().expect("refused");
    assert!(ops_of(&plan, OpKind::Delete).is_empty(), "{plan}");
    assert_eq!(
        refusal.trips,
        vec![Trip::Deletes {
            count: 12,
            entities: 20,
            budget: Budget::new(10, 0.1)
        }]
    );
    assert_eq!(refusal.withheld.len(), 12);
    let mut ids: Vec<String> = refusal
        .withheld
        .iter()
        .map(|w| {
            assert_eq!(w.kind, WithheldKind::Delete);
            assert_eq!(w.system.as_str(), "mkt");
            assert!(w.field.is_none());
            w.record_id.clone().expect("record id")
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (1..=12).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(
        plan.held
            .iter()
            .filter(|h| matches!(
                h.kind,
                HoldKind::Deleted {
                    by: DeleteHeldBy::Guard,
                    ..
                }
            ))
            .count(),
        12,
        "{plan}"
    );
    assert_eq!(sys[1].len(), 20, "nothing deleted");
    assert_eq!(baseline.len(), 20);

    // Planned again without approval: refused the same way.
    let again = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert_eq!(
        again.refusal.as_ref().map(|r| &r.approvals),
        Some(&refusal.approvals)
    );

    let plan = sync_with(
        &engine,
        &mut baseline,
        &mut sys,
        &PlanOptions::new().approve(&refusal),
    );
    assert!(plan.refusal.is_none(), "{plan}");
    assert_eq!(ops_of(&plan, OpKind::Delete).len(), 12, "{plan}");
    assert_eq!(sys[1].len(), 8);
    // The deleted records' entities stay until a read shows them gone.
    assert_eq!(baseline.len(), 20);
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty() && plan.refusal.is_none(), "{plan}");
    assert_eq!(baseline.len(), 8);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn an_approval_covers_only_the_changes_it_was_given_for() {
    let engine = engine(builder().deletes(DeletePolicy::Propagate));
    let (baseline, mut sys) = linked(&engine, 20);
    for i in 1..=12 {
        sys[0].remove(&format!("c{i}"));
    }
    let refusal = engine
        .plan(&baseline, &snapshots(&sys))
        .expect("plan")
        .refusal
        .expect("refused");
    sys[0].remove("c13");
    let plan = engine
        .plan_with(
            &baseline,
            &snapshots(&sys),
            &PlanOptions::new().approve(&refusal),
        )
        .expect("plan");
    assert!(ops_of(&plan, OpKind::Delete).is_empty(), "{plan}");
    let r = plan.refusal.expect("refused again");
    assert_eq!(r.withheld.len(), 13);
    assert_ne!(r.approvals, refusal.approvals);
}

#[test]
fn an_empty_complete_snapshot_is_refused() {
    let engine = engine(builder().deletes(DeletePolicy::Propagate));
    let (mut baseline, mut sys) = linked(&engine, 3);
    let snaps = [sys[0].snapshot(), Snapshot::complete("mkt", vec![])];
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    let refusal = plan.refusal.clone().expect("refused");
    assert_eq!(
        refusal.trips,
        vec![Trip::EmptySnapshot {
            system: sid("mkt"),
            linked: 3
        }]
    );
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .expect("commit");
    for i in 1..=3 {
        assert_eq!(
            baseline
                .find_linked("mkt", &format!("m{i}"))
                .and_then(|e| e.link_status("mkt")),
            Some(LinkStatus::Active)
        );
    }
    // Approved, it reads as the deletes it means.
    let plan = engine
        .plan_with(&baseline, &snaps, &PlanOptions::new().approve(&refusal))
        .expect("plan");
    assert!(plan.refusal.is_none(), "{plan}");
    let mut deletes = ops_of(&plan, OpKind::Delete);
    deletes.sort();
    assert_eq!(
        deletes,
        (1..=3)
            .map(|i| ("crm".to_owned(), Some(format!("c{i}"))))
            .collect::<Vec<_>>()
    );
    sys[1].clear();
    let outcomes = execute(&mut sys, &plan);
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    assert!(sys[0].is_empty());
    // Both snapshots are empty now, and expected to be: the next read
    // confirms the deletes, and nothing is refused.
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty() && plan.refusal.is_none(), "{plan}");
    assert_eq!(baseline.len(), 0);
}

#[test]
fn the_emptied_fields_budget_refuses_a_blanked_column() {
    let engine = engine(builder().guards(Guards::default().emptied_fields(Budget::new(1, 0.0))));
    let (mut baseline, mut sys) = linked(&engine, 3);
    sys[0].set("c1", "phone", "");
    sys[0].set("c2", "phone", "");
    sys[0].set("c3", "name", "P3 renamed");
    let plan = sync(&engine, &mut baseline, &mut sys);
    let refusal = plan.refusal.clone().expect("refused");
    assert!(matches!(
        refusal.trips.as_slice(),
        [Trip::EmptiedFields {
            count: 2,
            entities: 3,
            ..
        }]
    ));
    let withheld: Vec<(Option<&str>, Option<&str>)> = refusal
        .withheld
        .iter()
        .map(|w| (w.record_id.as_deref(), w.field.as_deref()))
        .collect();
    assert_eq!(withheld.len(), 2);
    assert!(withheld.contains(&(Some("m1"), Some("phone"))));
    assert!(withheld.contains(&(Some("m2"), Some("phone"))));
    // The rest of the plan goes ahead.
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(sys[1].get("m3").get("name"), Some(&json!("P3 renamed")));
    assert_eq!(sys[1].get("m1").get("phone"), Some(&json!("555")));

    let plan = sync_with(
        &engine,
        &mut baseline,
        &mut sys,
        &PlanOptions::new().approve(&refusal),
    );
    assert!(plan.refusal.is_none(), "{plan}");
    assert_eq!(plan.ops.len(), 2, "{plan}");
    assert_eq!(sys[1].get("m1").get("phone"), Some(&json!("")));
    assert_eq!(sys[1].get("m2").get("phone"), Some(&json!("")));
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn the_scope_exit_budget_refuses_a_sweeping_filter() {
    let engine = engine(
        builder()
            .scope("crm", Filter::field("status").not_equals("archived"))
            .guards(Guards::default().scope_exits(Budget::new(1, 0.0))),
    );
    let (mut baseline, mut sys) = linked(&engine, 3);
    sys[0].set("c1", "status", "archived");
    sys[0].set("c2", "status", "archived");
    let plan = sync(&engine, &mut baseline, &mut sys);
    let refusal = plan.refusal.clone().expect("refused");
    assert!(matches!(
        refusal.trips.as_slice(),
        [Trip::ScopeExits {
            count: 2,
            entities: 3,
            ..
        }]
    ));
    assert!(refusal
        .withheld
        .iter()
        .all(|w| w.kind == WithheldKind::ScopeExit && w.system.as_str() == "crm"));
    assert_eq!(refusal.withheld.len(), 2);
    // Withheld: still linked as before.
    assert_eq!(link(&baseline, "crm", "c1", "mkt"), Some("m1"));
    assert_eq!(
        baseline
            .find_linked("crm", "c1")
            .and_then(|e| e.link_status("crm")),
        Some(LinkStatus::Active)
    );
    let plan = sync_with(
        &engine,
        &mut baseline,
        &mut sys,
        &PlanOptions::new().approve(&refusal),
    );
    assert!(plan.refusal.is_none() && plan.ops.is_empty(), "{plan}");
    assert_eq!(link(&baseline, "mkt", "m1", "crm"), None);
    assert_eq!(link(&baseline, "mkt", "m2", "crm"), None);
    assert_eq!(link(&baseline, "mkt", "m3", "crm"), Some("c3"));
    assert_eq!(sys[1].len(), 3);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn guard_defaults() {
    let g = Guards::default();
    assert_eq!(g.deletes, Budget::new(10, 0.1));
    assert_eq!(g.emptied_fields, Budget::new(100, 0.1));
    assert_eq!(g.scope_exits, Budget::new(10, 0.1));
    assert!(g.empty_snapshot);
    assert_eq!(DeletePolicy::default(), DeletePolicy::Hold);
    assert_eq!(DeleteEditPolicy::default(), DeleteEditPolicy::Hold);
    assert_eq!(ScopeExit::default(), ScopeExit::Unlink);
    assert_eq!(MatchMode::default(), MatchMode::MatchThenCreate);
    assert_eq!(
        MatchKey::new("email").normalization(),
        &Normalization::CaseInsensitive
    );
}

//! The field rules of a HubSpot/Salesforce contact sync: email as key; Name
//! and Title bidirectional with Salesforce authority; Phone and Industry
//! bidirectional last-write-wins; Lead Score one way HubSpot to Salesforce;
//! ARR one way Salesforce to HubSpot; no-overwrite-on-empty on; Amount under
//! manual review.

use recsync::plan::{HoldKind, IssueKind, Reason};
use recsync::policy::WinRule;
use recsync::{
    Baseline, ConflictPolicy, Field, FieldMap, OpOutcome, Outcomes, Record, ReviewChoice, Snapshot,
    SyncEngine, SyncPlan,
};
use serde_json::{json, Value};

fn t(h: u32) -> chrono::DateTime<chrono::Utc> {
    format!("2026-05-01T{h:02}:00:00Z").parse().unwrap()
}

fn engine() -> SyncEngine {
    let map = FieldMap::builder()
        .systems(["hubspot", "salesforce"])
        .key("email")
        .no_overwrite_on_empty(true)
        .field(
            Field::new("email")
                .native("hubspot", "email")
                .native("salesforce", "Email")
                .case_insensitive(),
        )
        .field(
            Field::new("name")
                .native("hubspot", "name")
                .native("salesforce", "Name")
                .policy(ConflictPolicy::authority("salesforce")),
        )
        .field(
            Field::new("title")
                .native("hubspot", "jobtitle")
                .native("salesforce", "Title")
                .policy(ConflictPolicy::authority("salesforce")),
        )
        .field(
            Field::new("phone")
                .native("hubspot", "phone")
                .native("salesforce", "Phone"),
        )
        .field(
            Field::new("industry")
                .native("hubspot", "industry")
                .native("salesforce", "Industry"),
        )
        .field(
            Field::new("lead_score")
                .native("hubspot", "hubspotscore")
                .native("salesforce", "Lead_Score__c")
                .one_way_from("hubspot"),
        )
        .field(
            Field::new("arr")
                .native("hubspot", "arr")
                .native("salesforce", "ARR__c")
                .one_way_from("salesforce"),
        )
        .field(
            Field::new("amount")
                .native("hubspot", "amount")
                .native("salesforce", "Amount")
                .policy(ConflictPolicy::ManualReview),
        )
        .build()
        .unwrap();
    SyncEngine::new(map)
}

fn hs() -> Record {
    Record::new("h1")
        .field("email", "ada@example.com")
        .field("name", "Ada")
        .field("jobtitle", "CTO")
        .field("phone", "555-1")
        .field("industry", "Tech")
        .field("hubspotscore", 10)
        .field("arr", 1000)
        .field("amount", 100)
        .updated_at(t(0))
}

fn sf() -> Record {
    Record::new("s1")
        .field("Email", " ADA@example.com")
        .field("Name", "Ada")
        .field("Title", "CTO")
        .field("Phone", "555-1")
        .field("Industry", "Tech")
        .field("Lead_Score__c", 10)
        .field("ARR__c", 1000)
        .field("Amount", 100)
        .updated_at(t(0))
}

/// Links the two records and returns the committed baseline.
fn synced(engine: &SyncEngine) -> Baseline {
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snap(hs(), sf())).unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    assert_eq!(baseline.len(), 1);
    baseline
}

fn snap(h: Record, s: Record) -> [Snapshot; 2] {
    [
        Snapshot::complete("hubspot", vec![h]),
        Snapshot::complete("salesforce", vec![s]),
    ]
}

fn writes(plan: &SyncPlan, system: &str) -> Vec<(String, Value)> {
    plan.ops
        .iter()
        .filter(|op| op.system == system)
        .flat_map(|op| {
            op.fields
                .iter()
                .map(|w| (w.native.to_string(), w.value.clone()))
        })
        .collect()
}

fn edit(r: Record, field: &str, value: Value, h: u32) -> Record {
    r.field_at(field, value, t(h))
}

#[test]
fn first_sync_links_by_email_case_and_whitespace_insensitive() {
    let e = engine();
    let b = synced(&e);
    let entity = b.entities().next().unwrap();
    let id = entity.id();
    assert_eq!(id.as_str(), "hubspot:h1");
    assert_eq!(entity.link("salesforce"), Some("s1"));
}

#[test]
fn name_and_title_salesforce_authority() {
    let e = engine();
    let b = synced(&e);
    // Both changed the name: Salesforce wins though HubSpot is newer.
    let plan = e
        .plan(
            &b,
            &snap(
                edit(hs(), "name", json!("Ada L"), 9),
                edit(sf(), "Name", json!("Ada Lovelace"), 3),
            ),
        )
        .unwrap();
    assert_eq!(
        writes(&plan, "hubspot"),
        vec![("name".into(), json!("Ada Lovelace"))]
    );
    assert!(writes(&plan, "salesforce").is_empty());
    assert!(matches!(
        &plan.ops[0].fields[0].reason,
        Reason::ConflictWon {
            rule: WinRule::Authority,
            ..
        }
    ));
    // Only HubSpot changed the title: no conflict, it flows to Salesforce.
    let plan = e
        .plan(&b, &snap(edit(hs(), "jobtitle", json!("VP"), 8), sf()))
        .unwrap();
    assert_eq!(
        writes(&plan, "salesforce"),
        vec![("Title".into(), json!("VP"))]
    );
}

#[test]
fn phone_and_industry_last_write_wins() {
    let e = engine();
    let b = synced(&e);
    let plan = e
        .plan(
            &b,
            &snap(
                edit(
                    edit(hs(), "phone", json!("555-2"), 9),
                    "industry",
                    json!("Retail"),
                    2,
                ),
                edit(
                    edit(sf(), "Phone", json!("555-3"), 7),
                    "Industry",
                    json!("Finance"),
                    5,
                ),
            ),
        )
        .unwrap();
    assert_eq!(
        writes(&plan, "salesforce"),
        vec![("Phone".into(), json!("555-2"))]
    );
    assert_eq!(
        writes(&plan, "hubspot"),
        vec![("industry".into(), json!("Finance"))]
    );
}

#[test]
fn lead_score_flows_only_from_hubspot_and_arr_only_from_salesforce() {
    let e = engine();
    let b = synced(&e);
    // Edits on the wrong side of a one-way field are not sources.
    let plan = e
        .plan(
            &b,
            &snap(
                edit(hs(), "arr", json!(5), 9),
                edit(sf(), "Lead_Score__c", json!(99), 9),
            ),
        )
        .unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    let plan = e
        .plan(
            &b,
            &snap(
                edit(hs(), "hubspotscore", json!(50), 9),
                edit(sf(), "ARR__c", json!(2000), 9),
            ),
        )
        .unwrap();
    assert_eq!(
        writes(&plan, "salesforce"),
        vec![("Lead_Score__c".into(), json!(50))]
    );
    assert_eq!(writes(&plan, "hubspot"), vec![("arr".into(), json!(2000))]);
}

#[test]
fn emptied_value_is_held_not_propagated() {
    let e = engine();
    let b = synced(&e);
    let plan = e
        .plan(&b, &snap(edit(hs(), "phone", json!(""), 9), sf()))
        .unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.held.len(), 1);
    assert_eq!(plan.held[0].field.as_deref(), Some("phone"));
    assert!(matches!(&plan.held[0].kind, HoldKind::EmptyValue { system } if system == "hubspot"));
    // Held values advance nothing: the next plan reports it again.
    let mut b2 = b.clone();
    e.commit(&mut b2, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    let again = e
        .plan(&b2, &snap(edit(hs(), "phone", json!(""), 9), sf()))
        .unwrap();
    assert_eq!(again.held.len(), 1);
    assert!(again.ops.is_empty());
}

#[test]
fn amount_is_held_for_review_then_resolution_applied() {
    let e = engine();
    let mut b = synced(&e);
    let (h, s) = (
        edit(hs(), "amount", json!(120), 5),
        edit(sf(), "Amount", json!(130), 6),
    );
    let plan = e.plan(&b, &snap(h.clone(), s.clone())).unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.conflicts.len(), 1);
    let conflict = plan.conflicts[0].clone();
    assert_eq!(conflict.baseline, Some(json!(100)));
    assert_eq!(conflict.candidates.len(), 2);
    e.commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    // Still held, same id, until resolved.
    let again = e.plan(&b, &snap(h.clone(), s.clone())).unwrap();
    assert_eq!(again.conflicts[0].id, conflict.id);
    b.resolve(&conflict, ReviewChoice::System("salesforce".into()))
        .unwrap();
    let resolved = e.plan(&b, &snap(h, s)).unwrap();
    assert!(resolved.conflicts.is_empty());
    assert_eq!(
        writes(&resolved, "hubspot"),
        vec![("amount".into(), json!(130))]
    );
    assert!(matches!(
        resolved.ops[0].fields[0].reason,
        Reason::Reviewed { .. }
    ));
}

#[test]
fn failed_write_is_planned_again_with_the_same_id() {
    let e = engine();
    let mut b = synced(&e);
    let h = edit(hs(), "phone", json!("555-9"), 9);
    let plan = e.plan(&b, &snap(h.clone(), sf())).unwrap();
    assert_eq!(plan.ops.len(), 1);
    let mut outcomes = Outcomes::new();
    outcomes.record(
        plan.ops[0].id,
        OpOutcome::Failed {
            message: "rate limited".into(),
        },
    );
    e.commit(&mut b, &plan, &outcomes).unwrap();
    let retry = e.plan(&b, &snap(h.clone(), sf())).unwrap();
    assert_eq!(
        writes(&retry, "salesforce"),
        vec![("Phone".into(), json!("555-9"))]
    );
    assert_eq!(retry.ops[0].id, plan.ops[0].id);
    // Applied this time: the echo of the write is not a change.
    e.commit(&mut b, &retry, &Outcomes::all_applied(&retry))
        .unwrap();
    let quiet = e.plan(&b, &snap(h, sf().field("Phone", "555-9"))).unwrap();
    assert!(quiet.ops.is_empty() && quiet.held.is_empty(), "{quiet}");
}

#[test]
fn unmatched_record_is_created_not_dropped() {
    let e = engine();
    let b = synced(&e);
    let plan = e
        .plan(
            &b,
            &[
                Snapshot::complete(
                    "hubspot",
                    vec![hs(), Record::new("h2").field("email", "new@example.com")],
                ),
                Snapshot::complete("salesforce", vec![sf()]),
            ],
        )
        .unwrap();
    // Matched by nothing: created in Salesforce, carrying its correlation key.
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(plan.ops.len(), 1, "{plan}");
    let op = &plan.ops[0];
    assert_eq!(op.kind, recsync::OpKind::Create);
    assert_eq!(op.system, "salesforce");
    assert_eq!(op.correlation.as_deref(), Some("hubspot:h2"));
    assert_eq!(
        op.fields
            .iter()
            .map(|w| (w.native.as_str(), w.value.clone()))
            .collect::<Vec<_>>(),
        vec![("Email", json!("new@example.com"))]
    );
}

#[test]
fn stale_plan_is_refused_and_plan_round_trips_through_serde() {
    let e = engine();
    let mut b = synced(&e);
    let plan = e
        .plan(&b, &snap(edit(hs(), "phone", json!("555-7"), 9), sf()))
        .unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    let back: SyncPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    let baseline_json = serde_json::to_string(&b).unwrap();
    assert_eq!(serde_json::from_str::<Baseline>(&baseline_json).unwrap(), b);
    e.commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    assert!(e
        .commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .is_err());
}

#[test]
fn held_conflict_survives_a_partial_record_without_the_field() {
    let e = engine();
    let mut b = synced(&e);
    let plan = e
        .plan(
            &b,
            &snap(
                edit(hs(), "amount", json!(120), 5),
                edit(sf(), "Amount", json!(130), 6),
            ),
        )
        .unwrap();
    assert_eq!(plan.conflicts.len(), 1);
    e.commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    // A webhook from HubSpot carrying only the name.
    let webhook = Record::new("h1").field("name", "Ada");
    let next = e
        .plan(
            &b,
            &[
                Snapshot::partial("hubspot", vec![webhook]),
                Snapshot::complete("salesforce", vec![edit(sf(), "Amount", json!(130), 6)]),
            ],
        )
        .unwrap();
    assert!(next.ops.is_empty(), "{next}");
    assert_eq!(next.conflicts.len(), 1);
    assert_eq!(next.conflicts[0].id, plan.conflicts[0].id);
}

#[test]
fn duplicate_record_id_in_a_complete_snapshot_is_not_a_delete() {
    let e = engine();
    let b = synced(&e);
    let plan = e
        .plan(
            &b,
            &[
                Snapshot::complete("hubspot", vec![hs(), hs()]),
                Snapshot::complete("salesforce", vec![sf()]),
            ],
        )
        .unwrap();
    assert!(matches!(plan.issues[0].kind, IssueKind::DuplicateRecordId));
    assert!(plan.held.is_empty(), "{plan}");
}

#[test]
fn numeric_keys_match_across_number_forms() {
    let map = FieldMap::builder()
        .systems(["a", "b"])
        .key("n")
        .field(Field::new("n"))
        .build()
        .unwrap();
    let e = SyncEngine::new(map);
    let plan = e
        .plan(
            &Baseline::new(),
            &[
                Snapshot::complete("a", vec![Record::new("1").field("n", json!(7))]),
                Snapshot::complete("b", vec![Record::new("2").field("n", json!(7.0))]),
            ],
        )
        .unwrap();
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(plan.changes.len(), 1);
}

#[derive(Debug)]
struct OnlyNumbers;

impl recsync::mapping::Transform for OnlyNumbers {
    fn name(&self) -> &str {
        "only_numbers"
    }
    fn to_canonical(&self, v: &Value) -> Result<Value, recsync::mapping::TransformError> {
        if v.is_number() {
            Ok(v.clone())
        } else {
            Err(recsync::mapping::TransformError::new("not a number", v))
        }
    }
    fn from_canonical(&self, v: &Value) -> Result<Value, recsync::mapping::TransformError> {
        Ok(v.clone())
    }
}

#[test]
fn unreadable_authority_value_holds_the_field_with_an_issue() {
    let map = FieldMap::builder()
        .systems(["a", "b"])
        .key("k")
        .field(Field::new("k"))
        .field(
            Field::new("n")
                .policy(ConflictPolicy::authority("a"))
                .transform("a", OnlyNumbers),
        )
        .build()
        .unwrap();
    let e = SyncEngine::new(map);
    let mut b = Baseline::new();
    let rec = |id: &str, n: Value| Record::new(id).field("k", "x").field("n", n);
    let first = e
        .plan(
            &b,
            &[
                Snapshot::complete("a", vec![rec("1", json!(1))]),
                Snapshot::complete("b", vec![rec("2", json!(1))]),
            ],
        )
        .unwrap();
    e.commit(&mut b, &first, &Outcomes::all_applied(&first))
        .unwrap();
    let plan = e
        .plan(
            &b,
            &[
                Snapshot::complete("a", vec![rec("1", json!("oops"))]),
                Snapshot::complete("b", vec![rec("2", json!(5))]),
            ],
        )
        .unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    assert!(matches!(plan.issues[0].kind, IssueKind::Mapping { .. }));
    assert_eq!(plan.issues[0].field.as_deref(), Some("n"));
}

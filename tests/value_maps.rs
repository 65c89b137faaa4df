//! Value maps end to end through `SyncEngine::plan`: every row of the issue's
//! HubSpot lifecycle stage / Salesforce lead status table in each direction
//! it allows, the rows' one-way behaviour, and every unmapped-value policy.

use recsync::mapping::{MappingError, Unmapped, ValueMap, ValueRow};
use recsync::plan::IssueKind;
use recsync::{Baseline, Field, FieldMap, Outcomes, Record, Snapshot, SyncEngine, SyncPlan};
use serde_json::{json, Value};

/// (HubSpot lifecycle stage, Salesforce lead status, which system the row
/// maps from; None: both ways).
const TABLE: [(&str, &str, Option<&str>); 7] = [
    ("Subscriber", "New", Some("hubspot")),
    ("Lead", "Open", Some("hubspot")),
    (
        "Marketing Qualified Lead",
        "MQL - Reviewing",
        Some("hubspot"),
    ),
    ("Sales Qualified Lead", "SQL - Working", None),
    ("Opportunity", "Converted (Opportunity)", None),
    ("Customer", "Won", Some("salesforce")),
    ("Evangelist", "Customer - Active", Some("salesforce")),
];

fn lifecycle() -> ValueMap {
    TABLE.iter().fold(ValueMap::new(), |vm, (hs, sf, from)| {
        let values = [("hubspot", *hs), ("salesforce", *sf)];
        vm.row(match from {
            Some(system) => ValueRow::from_system(*system, values),
            None => ValueRow::both(values),
        })
    })
}

fn engine_with(map: ValueMap) -> SyncEngine {
    let map = FieldMap::builder()
        .object("contacts")
        .systems(["hubspot", "salesforce"])
        .key("email")
        .field(
            Field::new("email")
                .native("salesforce", "Email")
                .case_insensitive(),
        )
        .field(
            Field::new("stage")
                .native("hubspot", "lifecyclestage")
                .native("salesforce", "Status")
                .value_map(map),
        )
        .build()
        .unwrap();
    SyncEngine::new(map)
}

fn records(hs: &str, sf: &str) -> [Snapshot; 2] {
    [
        Snapshot::complete(
            "hubspot",
            vec![Record::new("h1")
                .field("email", "ada@example.com")
                .field("lifecyclestage", hs)],
        ),
        Snapshot::complete(
            "salesforce",
            vec![Record::new("s1")
                .field("Email", "ada@example.com")
                .field("Status", sf)],
        ),
    ]
}

/// Links the contact with both sides at the "both ways" SQL row.
fn synced(engine: &SyncEngine) -> Baseline {
    let mut baseline = Baseline::new();
    let plan = engine
        .plan(&baseline, &records("Sales Qualified Lead", "SQL - Working"))
        .unwrap();
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    baseline
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

fn unmapped_issue(plan: &SyncPlan, system: &str, value: &str) -> bool {
    plan.issues.iter().any(|i| {
        i.system == system
            && i.field.as_deref() == Some("stage")
            && matches!(&i.kind, IssueKind::Mapping { error: MappingError::Unmapped { value: v, .. } }
                if v == value)
    })
}

#[test]
fn hubspot_changes_reach_salesforce_through_rows_that_allow_it() {
    let e = engine_with(lifecycle());
    let b = synced(&e);
    for (hs, sf, from) in TABLE {
        let plan = e.plan(&b, &records(hs, "SQL - Working")).unwrap();
        if from == Some("salesforce") {
            // HubSpot's "Customer" is not mapped toward Salesforce.
            assert!(plan.ops.is_empty(), "{hs}: {plan}");
            assert!(unmapped_issue(&plan, "hubspot", hs), "{hs}: {plan}");
        } else if hs == "Sales Qualified Lead" {
            assert!(plan.is_empty(), "{plan}");
        } else {
            assert!(plan.issues.is_empty(), "{hs}: {plan}");
            assert_eq!(writes(&plan, "salesforce"), [("Status".into(), json!(sf))]);
            assert!(writes(&plan, "hubspot").is_empty(), "{hs}: {plan}");
        }
    }
}

#[test]
fn salesforce_changes_reach_hubspot_through_rows_that_allow_it() {
    let e = engine_with(lifecycle());
    let b = synced(&e);
    for (hs, sf, from) in TABLE {
        let plan = e.plan(&b, &records("Sales Qualified Lead", sf)).unwrap();
        if from == Some("hubspot") {
            // Salesforce's "New" is not mapped toward HubSpot.
            assert!(plan.ops.is_empty(), "{sf}: {plan}");
            assert!(unmapped_issue(&plan, "salesforce", sf), "{sf}: {plan}");
        } else if sf == "SQL - Working" {
            assert!(plan.is_empty(), "{plan}");
        } else {
            assert!(plan.issues.is_empty(), "{sf}: {plan}");
            assert_eq!(
                writes(&plan, "hubspot"),
                [("lifecyclestage".into(), json!(hs))]
            );
            // The source keeps its own spelling: no echo write.
            assert!(writes(&plan, "salesforce").is_empty(), "{sf}: {plan}");
        }
    }
}

#[test]
fn a_synced_one_way_row_stays_quiet_after_commit() {
    let e = engine_with(lifecycle());
    let mut b = synced(&e);
    let plan = e.plan(&b, &records("Sales Qualified Lead", "Won")).unwrap();
    e.commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    // HubSpot now holds "Customer", Salesforce still "Won".
    let again = e.plan(&b, &records("Customer", "Won")).unwrap();
    assert!(again.ops.is_empty() && again.issues.is_empty(), "{again}");
}

#[test]
fn matching_uses_the_field_normalization() {
    let map = FieldMap::builder()
        .systems(["hubspot", "salesforce"])
        .key("email")
        .field(Field::new("email").native("salesforce", "Email"))
        .field(
            Field::new("stage")
                .native("hubspot", "lifecyclestage")
                .native("salesforce", "Status")
                .case_insensitive()
                .value_map(lifecycle()),
        )
        .build()
        .unwrap();
    let e = SyncEngine::new(map);
    let b = synced(&e);
    // Salesforce reports "won" in lower case: read as the "Won" row.
    let plan = e.plan(&b, &records("Sales Qualified Lead", "won")).unwrap();
    assert_eq!(
        writes(&plan, "hubspot"),
        [("lifecyclestage".into(), json!("Customer"))]
    );
    assert!(writes(&plan, "salesforce").is_empty(), "{plan}");
}

fn small(unmapped: Unmapped) -> SyncEngine {
    engine_with(
        ValueMap::new()
            .both([("hubspot", "Lead"), ("salesforce", "Open")])
            .both([
                ("hubspot", "Sales Qualified Lead"),
                ("salesforce", "SQL - Working"),
            ])
            .unmapped(unmapped),
    )
}

#[test]
fn unmapped_error_is_an_issue_and_nothing_is_written() {
    let e = small(Unmapped::Error);
    let b = synced(&e);
    let plan = e.plan(&b, &records("Churned", "SQL - Working")).unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    assert!(unmapped_issue(&plan, "hubspot", "Churned"), "{plan}");
    assert_eq!(plan.issues[0].record_id, "h1");
}

#[test]
fn unmapped_skip_leaves_the_field_alone_quietly() {
    let e = small(Unmapped::Skip);
    let b = synced(&e);
    let plan = e.plan(&b, &records("Churned", "SQL - Working")).unwrap();
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
}

#[test]
fn unmapped_pass_through_uses_the_value_as_is() {
    let e = small(Unmapped::PassThrough);
    let b = synced(&e);
    let plan = e.plan(&b, &records("Churned", "SQL - Working")).unwrap();
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(
        writes(&plan, "salesforce"),
        [("Status".into(), json!("Churned"))]
    );
}

#[test]
fn unmapped_default_uses_the_default_canonical_value() {
    let e = small(Unmapped::Default(json!("Lead")));
    let b = synced(&e);
    let plan = e.plan(&b, &records("Churned", "SQL - Working")).unwrap();
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(
        writes(&plan, "salesforce"),
        [("Status".into(), json!("Open"))]
    );
    // Every system ends up agreeing on the default, the source included.
    assert_eq!(
        writes(&plan, "hubspot"),
        [("lifecyclestage".into(), json!("Lead"))]
    );
}

#[test]
fn unmapped_on_write_follows_the_policy_too() {
    // A third system without a value map feeds canonical values the map
    // does not know.
    let build = |unmapped: Unmapped| {
        let map = FieldMap::builder()
            .systems(["hubspot", "salesforce", "erp"])
            .key("email")
            .field(Field::new("email"))
            .field(
                Field::new("stage").value_map(
                    ValueMap::new()
                        .both([("hubspot", "Lead"), ("salesforce", "Open")])
                        .both([("hubspot", "Customer"), ("salesforce", "Won")])
                        .unmapped(unmapped),
                ),
            )
            .build()
            .unwrap();
        SyncEngine::new(map)
    };
    let snaps = |erp: &str| {
        let rec = |id: &str, v: &str| Record::new(id).field("email", "a@x").field("stage", v);
        [
            Snapshot::complete("hubspot", vec![rec("h", "Lead")]),
            Snapshot::complete("salesforce", vec![rec("s", "Open")]),
            Snapshot::complete("erp", vec![rec("e", erp)]),
        ]
    };
    for (policy, expect_issue, expect_sf) in [
        (Unmapped::Error, true, None),
        (Unmapped::Skip, false, None),
        (Unmapped::PassThrough, false, Some("Closed")),
        (Unmapped::Default(json!("Customer")), false, Some("Won")),
    ] {
        let e = build(policy.clone());
        let mut b = Baseline::new();
        let first = e.plan(&b, &snaps("Lead")).unwrap();
        assert!(first.ops.is_empty(), "{first}");
        e.commit(&mut b, &first, &Outcomes::all_applied(&first))
            .unwrap();
        let plan = e.plan(&b, &snaps("Closed")).unwrap();
        let sf = writes(&plan, "salesforce");
        match expect_sf {
            Some(v) => assert_eq!(sf, [("stage".into(), json!(v))], "{policy:?}"),
            None => assert!(sf.is_empty(), "{policy:?}: {plan}"),
        }
        let issue = plan
            .issues
            .iter()
            .any(|i| i.system == "salesforce" && i.field.as_deref() == Some("stage"));
        assert_eq!(issue, expect_issue, "{policy:?}: {plan}");
    }
}

#[test]
fn a_one_way_rows_target_value_that_agrees_is_no_issue() {
    let e = engine_with(lifecycle());
    // First link: each side holds the other's value per a one-way row.
    for (hs, sf, _) in TABLE {
        let mut b = Baseline::new();
        let plan = e.plan(&b, &records(hs, sf)).unwrap();
        assert!(
            plan.ops.is_empty() && plan.issues.is_empty(),
            "{hs}: {plan}"
        );
        e.commit(&mut b, &plan, &Outcomes::all_applied(&plan))
            .unwrap();
        let again = e.plan(&b, &records(hs, sf)).unwrap();
        assert!(again.is_empty(), "{hs}: {again}");
    }
    // First link where Salesforce's one-way value disagrees: an issue.
    let plan = e.plan(&Baseline::new(), &records("Lead", "New")).unwrap();
    assert!(unmapped_issue(&plan, "salesforce", "New"), "{plan}");
    assert!(plan.ops.is_empty(), "{plan}");
}

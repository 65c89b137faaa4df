//! Schema drift (issue 16): a mapped native field that no record of a
//! system's complete snapshot holds is reported once, with the closest
//! field the records do hold, and is not written in that system until the
//! map is fixed, the field appears, or the map says it may be absent; and
//! the runner's report lists the fields systems hold that the map does not
//! mention.

use recsync::mapping::{MapConfig, MapProblem, Registry};
use recsync::plan::{Issue, IssueKind};
use recsync::{
    Baseline, Field, FieldMap, MapError, Outcomes, Record, Snapshot, SyncEngine, SyncPlan,
};
use serde_json::json;

/// crm and marketing; `name` is `name_native` in crm; `phone` everywhere.
fn map_with(name: Field) -> FieldMap {
    FieldMap::builder()
        .systems(["crm", "marketing"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(name)
        .field(Field::new("phone"))
        .build()
        .expect("a valid map")
}

fn crm(id: &str, email: &str, full_name: Option<&str>, phone: Option<&str>) -> Record {
    Record::new(id)
        .field("email", email)
        .field("full_name", full_name)
        .field("phone", phone)
}

fn mkt(id: &str, email: &str, name: &str, phone: &str) -> Record {
    Record::new(id)
        .field("email", email)
        .field("name", name)
        .field("phone", phone)
}

fn drift_issues(plan: &SyncPlan) -> Vec<&Issue> {
    plan.issues
        .iter()
        .filter(|i| matches!(i.kind, IssueKind::FieldNotFound { .. }))
        .collect()
}

/// Every native name an op of `plan` writes to `system`.
fn natives_written<'p>(plan: &'p SyncPlan, system: &str) -> Vec<&'p str> {
    plan.ops
        .iter()
        .filter(|op| op.system == system)
        .flat_map(|op| op.fields.iter().map(|w| w.native.as_str()))
        .collect()
}

fn value_written(plan: &SyncPlan, system: &str, record: &str, native: &str) -> Option<String> {
    plan.ops
        .iter()
        .filter(|op| op.system == system && op.record_id.as_deref() == Some(record))
        .flat_map(|op| &op.fields)
        .find(|w| w.native == native)
        .map(|w| w.value.to_string())
}

/// Both crm contacts' nicknames are written (neither was recorded as
/// written while the field was missing).
fn both_nicknames_written(plan: &SyncPlan) {
    assert_eq!(
        value_written(plan, "crm", "c1", "nickname").as_deref(),
        Some(r#""Countess""#),
        "{plan}"
    );
    assert_eq!(
        value_written(plan, "crm", "c2", "nickname").as_deref(),
        Some(r#""Bobby""#),
        "{plan}"
    );
}

fn commit(engine: &SyncEngine, baseline: &mut Baseline, plan: &SyncPlan) {
    engine
        .commit(baseline, plan, &Outcomes::all_applied(plan))
        .expect("commit");
}

/// crm's records hold `full_name` (empty on c1, c2); the map says
/// `fullname`. Marketing has a third person crm lacks, and a phone for
/// the first, whose phone crm holds empty.
fn typo_snapshots() -> Vec<Snapshot> {
    vec![
        Snapshot::complete(
            "crm",
            vec![
                crm("c1", "ada@x.io", None, None),
                crm("c2", "bob@x.io", None, Some("555-2")),
            ],
        ),
        Snapshot::complete(
            "marketing",
            vec![
                mkt("m1", "ada@x.io", "Ada", "555-9"),
                mkt("m2", "bob@x.io", "Bob", "555-2"),
                mkt("m3", "cy@x.io", "Cy", "555-3"),
            ],
        ),
    ]
}

#[test]
fn a_typo_is_reported_once_with_the_closest_field_and_nothing_is_written_to_it() {
    let engine = SyncEngine::new(map_with(Field::new("name").native("crm", "fullname")));
    let plan = engine
        .plan(&Baseline::new(), &typo_snapshots())
        .expect("plan");
    let drift = drift_issues(&plan);
    assert_eq!(drift.len(), 1, "{plan}");
    let issue = drift[0];
    assert_eq!(issue.system, "crm");
    assert_eq!(issue.field.as_deref(), Some("name"));
    assert_eq!(issue.record_id, "");
    assert_eq!(issue.entity, None);
    assert_eq!(
        issue.kind,
        IssueKind::FieldNotFound {
            native: "fullname".to_owned(),
            closest: Some("full_name".to_owned()),
        }
    );
    let text = plan.to_string();
    assert!(
        text.contains(r#"issue crm field name: native field "fullname" is held by no record"#),
        "{text}"
    );
    for advice in [
        r#"closest held: "full_name""#,
        "Fix the native name",
        r#".not_in("crm")"#,
        r#".may_be_absent_in("crm")"#,
    ] {
        assert!(text.contains(advice), "{advice} in {text}");
    }
    // Nothing carries the native name in crm, creates included...
    assert!(plan.ops.iter().any(|op| op.system == "crm"), "{plan}");
    let crm_natives = natives_written(&plan, "crm");
    assert!(!crm_natives.contains(&"fullname"), "{plan}");
    // ...while the other fields still go: Ada's new phone, and Cy created
    // in crm with email and phone.
    assert_eq!(
        value_written(&plan, "crm", "c1", "phone").as_deref(),
        Some(r#""555-9""#),
        "{plan}"
    );
    let create = plan
        .ops
        .iter()
        .find(|op| op.system == "crm" && op.record_id.is_none())
        .expect("Cy created in crm");
    let created: Vec<&str> = create.fields.iter().map(|w| w.native.as_str()).collect();
    assert_eq!(created, ["email", "phone"], "{plan}");
    // No issue for marketing, which holds all its fields.
    assert!(drift.iter().all(|i| i.system == "crm"));
}

#[test]
fn once_the_map_is_fixed_the_value_waiting_is_written() {
    let snaps = typo_snapshots();
    let typo = SyncEngine::new(map_with(Field::new("name").native("crm", "fullname")));
    let mut baseline = Baseline::new();
    let plan = typo.plan(&baseline, &snaps).expect("plan");
    commit(&typo, &mut baseline, &plan);
    // The same map plans the same issue again, and still writes nothing.
    let again = typo.plan(&baseline, &snaps).expect("plan");
    assert_eq!(drift_issues(&again).len(), 1, "{again}");
    assert!(!natives_written(&again, "crm").contains(&"fullname"));

    let fixed = SyncEngine::new(map_with(Field::new("name").native("crm", "full_name")));
    let plan = fixed.plan(&baseline, &snaps).expect("plan");
    assert!(drift_issues(&plan).is_empty(), "{plan}");
    assert_eq!(
        value_written(&plan, "crm", "c1", "full_name").as_deref(),
        Some(r#""Ada""#),
        "{plan}"
    );
    assert_eq!(
        value_written(&plan, "crm", "c2", "full_name").as_deref(),
        Some(r#""Bob""#),
        "{plan}"
    );
}

/// crm's records lack `nickname` altogether: the field is not made there
/// yet. Marketing holds one for each.
fn nickname_engine(may_be_absent: bool) -> SyncEngine {
    let field = Field::new("nickname");
    let field = if may_be_absent {
        field.may_be_absent_in("crm")
    } else {
        field
    };
    SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "marketing"])
            .key("email")
            .field(Field::new("email"))
            .field(field)
            .build()
            .expect("a valid map"),
    )
}

fn nickname_snaps(crm_records: Vec<Record>) -> Vec<Snapshot> {
    vec![
        Snapshot::complete("crm", crm_records),
        Snapshot::complete(
            "marketing",
            vec![
                Record::new("m1")
                    .field("email", "ada@x.io")
                    .field("nickname", "Countess"),
                Record::new("m2")
                    .field("email", "bob@x.io")
                    .field("nickname", "Bobby"),
            ],
        ),
    ]
}

fn plain(id: &str, email: &str) -> Record {
    Record::new(id).field("email", email)
}

#[test]
fn a_field_that_appears_in_the_system_is_written_by_the_next_plan() {
    let engine = nickname_engine(false);
    let mut baseline = Baseline::new();
    let before = nickname_snaps(vec![plain("c1", "ada@x.io"), plain("c2", "bob@x.io")]);
    let plan = engine.plan(&baseline, &before).expect("plan");
    let drift = drift_issues(&plan);
    assert_eq!(drift.len(), 1, "{plan}");
    // Nothing held is close to "nickname".
    assert_eq!(
        drift[0].kind,
        IssueKind::FieldNotFound {
            native: "nickname".to_owned(),
            closest: None,
        }
    );
    assert!(
        !natives_written(&plan, "crm").contains(&"nickname"),
        "{plan}"
    );
    commit(&engine, &mut baseline, &plan);

    // The field is made in crm; only c1's read shows it (empty), c2 is
    // read as before. Both are written: nothing recorded c2 as written.
    let after = nickname_snaps(vec![
        plain("c1", "ada@x.io").field("nickname", ()),
        plain("c2", "bob@x.io"),
    ]);
    let plan = engine.plan(&baseline, &after).expect("plan");
    assert!(drift_issues(&plan).is_empty(), "{plan}");
    both_nicknames_written(&plan);
}

#[test]
fn a_field_that_may_be_absent_is_written_where_no_record_holds_it() {
    let crm_records = || vec![plain("c1", "ada@x.io"), plain("c2", "bob@x.io")];
    // First with the check on: the writes wait.
    let strict = nickname_engine(false);
    let mut baseline = Baseline::new();
    let plan = strict
        .plan(&baseline, &nickname_snaps(crm_records()))
        .expect("plan");
    assert_eq!(drift_issues(&plan).len(), 1, "{plan}");
    commit(&strict, &mut baseline, &plan);
    // Then the map says crm may leave it out: written, nothing reported.
    let lenient = nickname_engine(true);
    assert!(lenient
        .map()
        .field("nickname")
        .expect("field")
        .may_be_absent_in("crm"));
    let plan = lenient
        .plan(&baseline, &nickname_snaps(crm_records()))
        .expect("plan");
    assert!(drift_issues(&plan).is_empty(), "{plan}");
    both_nicknames_written(&plan);
}

#[test]
fn empty_partial_and_tombstone_only_snapshots_report_nothing() {
    let engine = SyncEngine::new(map_with(Field::new("name").native("crm", "fullname")));
    let marketing = Snapshot::complete("marketing", vec![mkt("m1", "ada@x.io", "Ada", "555-1")]);
    let cases = [
        Snapshot::complete("crm", Vec::new()),
        Snapshot::partial(
            "crm",
            vec![crm("c1", "ada@x.io", Some("Ada"), Some("555-1"))],
        ),
        Snapshot::complete("crm", vec![Record::new("c9").deleted()]),
    ];
    for crm_snap in cases {
        let plan = engine
            .plan(&Baseline::new(), &[crm_snap.clone(), marketing.clone()])
            .expect("plan");
        assert!(drift_issues(&plan).is_empty(), "{crm_snap:?}: {plan}");
    }
    // A partial snapshot says nothing of the field: a value for it is
    // written as usual.
    let mut baseline = Baseline::new();
    let first = [
        Snapshot::complete("crm", vec![crm("c1", "ada@x.io", None, Some("555-1"))]),
        marketing.clone(),
    ];
    let plan = engine.plan(&baseline, &first).expect("plan");
    commit(&engine, &mut baseline, &plan);
    let partial = [
        Snapshot::partial("crm", vec![crm("c1", "ada@x.io", None, Some("555-2"))]),
        Snapshot::partial("marketing", Vec::new()),
    ];
    let plan = engine.plan(&baseline, &partial).expect("plan");
    assert!(drift_issues(&plan).is_empty(), "{plan}");
    assert_eq!(
        value_written(&plan, "crm", "c1", "fullname").as_deref(),
        Some(r#""Ada""#),
        "{plan}"
    );
}

#[test]
fn a_field_absent_from_many_records_is_one_issue_per_system_and_held_once_is_none() {
    let engine = SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "marketing"])
            .key("email")
            .field(Field::new("email"))
            .field(
                Field::new("name")
                    .native("crm", "nmae")
                    .native("marketing", "Nam"),
            )
            .field(Field::new("phone"))
            .build()
            .expect("a valid map"),
    );
    let crm_records: Vec<Record> = (0..100)
        .map(|i| {
            crm(
                &format!("c{i}"),
                &format!("p{i}@x.io"),
                Some("N"),
                Some("5"),
            )
        })
        .collect();
    // Only the last marketing record holds phone, as null: held.
    let mut mkt_records: Vec<Record> = (0..100)
        .map(|i| {
            Record::new(format!("m{i}"))
                .field("email", format!("p{i}@x.io"))
                .field("name", "N")
        })
        .collect();
    mkt_records.push(
        Record::new("m100")
            .field("email", "z@x.io")
            .field("phone", ()),
    );
    let plan = engine
        .plan(
            &Baseline::new(),
            &[
                Snapshot::complete("crm", crm_records),
                Snapshot::complete("marketing", mkt_records),
            ],
        )
        .expect("plan");
    let drift: Vec<(&str, &str, &IssueKind)> = drift_issues(&plan)
        .into_iter()
        .map(|i| (i.system.as_str(), i.field.as_deref().unwrap_or(""), &i.kind))
        .collect();
    assert_eq!(
        drift,
        [
            (
                "crm",
                "name",
                &IssueKind::FieldNotFound {
                    native: "nmae".to_owned(),
                    closest: None,
                }
            ),
            (
                "marketing",
                "name",
                &IssueKind::FieldNotFound {
                    native: "Nam".to_owned(),
                    closest: Some("name".to_owned()),
                }
            ),
        ],
        "{plan}"
    );
}

#[test]
fn may_be_absent_in_is_checked_by_build_and_round_trips_through_config_files() {
    let refused = FieldMap::builder()
        .systems(["crm", "shop"])
        .field(Field::new("email"))
        .field(
            Field::new("vip")
                .not_in("crm")
                .may_be_absent_in("crm")
                .may_be_absent_in("erp"),
        )
        .build()
        .expect_err("refused");
    let MapError { problems } = refused;
    assert!(problems.contains(&MapProblem::NotInSystem {
        field: "vip".to_owned(),
        system: "crm".into(),
        what: "may_be_absent_in",
    }));
    assert!(problems.contains(&MapProblem::UnknownSystem {
        field: "vip".to_owned(),
        system: "erp".into(),
    }));

    let map = FieldMap::from_json(
        r#"{
            "systems": ["crm", "shop"],
            "fields": [
                { "name": "email" },
                { "name": "vip", "may_be_absent_in": ["shop"] }
            ]
        }"#,
        &Registry::new(),
    )
    .expect("map");
    let vip = map.field("vip").expect("vip");
    assert!(vip.may_be_absent_in("shop") && !vip.may_be_absent_in("crm"));
    let json = map.to_json().expect("json");
    assert!(json.contains("may_be_absent_in"), "{json}");
    let back = FieldMap::from_json(&json, &Registry::new()).expect("back");
    assert_eq!(MapConfig::from_map(&back), MapConfig::from_map(&map));
    assert_eq!(back.fingerprint(), map.fingerprint());
    // The option leaves the fingerprint as it was (a write that waited
    // keeps its entity planned until it is made), so that adding it does
    // not make the next plan look at every entity.
    let without = FieldMap::builder()
        .systems(["crm", "shop"])
        .field(Field::new("email"))
        .field(Field::new("vip"))
        .build()
        .expect("map");
    assert_eq!(without.fingerprint(), map.fingerprint());
    assert!(!MapConfig::from_map(&without)
        .fields
        .iter()
        .any(|f| !f.may_be_absent_in.is_empty()));
    #[cfg(feature = "toml")]
    {
        let toml = map.to_toml().expect("toml");
        assert!(toml.contains("may_be_absent_in = [\"shop\"]"), "{toml}");
        let back = FieldMap::from_toml(&toml, &Registry::new()).expect("back");
        assert_eq!(MapConfig::from_map(&back), MapConfig::from_map(&map));
    }
}

#[test]
fn the_issue_serializes_with_its_names() {
    let engine = SyncEngine::new(map_with(Field::new("name").native("crm", "fullname")));
    let plan = engine
        .plan(&Baseline::new(), &typo_snapshots())
        .expect("plan");
    let issue = drift_issues(&plan)[0];
    let value = serde_json::to_value(issue).expect("json");
    assert_eq!(
        value,
        json!({
            "system": "crm",
            "record_id": "",
            "field": "name",
            "kind": { "kind": "field_not_found", "native": "fullname", "closest": "full_name" },
        })
    );
}

#[cfg(feature = "testkit")]
mod runner {
    use futures::executor::block_on;
    use recsync::testkit::MemoryConnector;
    use recsync::{Field, FieldMap, MemoryStore, SyncEngine, SyncRunner};
    use serde_json::json;

    /// Against a system with a schema (every record read lists every
    /// field; a write to another fails, as Salesforce's does): the typo is
    /// reported with the field the system has, and no write is sent to
    /// the field it lacks, so nothing fails either.
    #[test]
    fn a_typo_against_a_system_with_a_schema_is_reported_and_never_sent() {
        let map = FieldMap::builder()
            .object("contacts")
            .systems(["crm", "shop"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("name").native("crm", "fullname"))
            .build()
            .expect("a valid map");
        let crm = MemoryConnector::builder("crm")
            .schema(["email", "full_name"])
            .build()
            .expect("crm");
        let shop = MemoryConnector::builder("shop")
            .schema(["email", "name"])
            .build()
            .expect("shop");
        crm.insert("contacts", [("email", json!("ada@x.io"))]);
        shop.insert(
            "contacts",
            [("email", json!("bob@x.io")), ("name", json!("Bob"))],
        );
        let runner = SyncRunner::builder(SyncEngine::new(map))
            .store(MemoryStore::new())
            .connector(crm.clone())
            .connector(shop)
            .build()
            .expect("runner");
        let plan = block_on(runner.dry_run()).expect("plan");
        let drift: Vec<_> = plan
            .issues
            .iter()
            .filter_map(|i| match &i.kind {
                recsync::plan::IssueKind::FieldNotFound { native, closest } => {
                    Some((i.system.as_str(), native.as_str(), closest.as_deref()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(drift, [("crm", "fullname", Some("full_name"))], "{plan}");
        let report = block_on(runner.run()).expect("run");
        assert_eq!(report.failed(), 0, "{report}");
        let bob = crm
            .records("contacts")
            .into_iter()
            .find(|r| r.get("email") == Some(&json!("bob@x.io")))
            .expect("bob made in crm");
        assert_eq!(bob.get("fullname"), None);
        assert_eq!(bob.get("full_name"), Some(&json!(null)));
    }

    #[test]
    fn the_report_lists_fields_the_map_does_not_mention() {
        let map = FieldMap::builder()
            .object("contacts")
            .systems(["crm", "shop"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("name"))
            .build()
            .expect("a valid map");
        let crm = MemoryConnector::new("crm");
        let shop = MemoryConnector::new("shop");
        crm.insert(
            "contacts",
            [
                ("email", json!("ada@x.io")),
                ("name", json!("Ada")),
                ("loyalty_tier", json!("gold")),
            ],
        );
        crm.insert(
            "contacts",
            [
                ("email", json!("bob@x.io")),
                ("name", json!("Bob")),
                ("loyalty_tier", json!(null)),
            ],
        );
        crm.insert(
            "contacts",
            [
                ("email", json!("cy@x.io")),
                ("name", json!("Cy")),
                ("birthday", json!("1990-01-01")),
            ],
        );
        shop.insert(
            "contacts",
            [("email", json!("ada@x.io")), ("name", json!("Ada"))],
        );
        let runner = SyncRunner::builder(SyncEngine::new(map))
            .store(MemoryStore::new())
            .connector(crm)
            .connector(shop)
            .build()
            .expect("runner");
        let report = block_on(runner.run()).expect("run");
        let crm = report.system("crm").expect("crm");
        assert_eq!(crm.unmapped, ["birthday", "loyalty_tier"]);
        assert!(report.system("shop").expect("shop").unmapped.is_empty());
        let text = report.to_string();
        assert!(
            text.contains("\nunmapped in crm: birthday, loyalty_tier\n"),
            "{text}"
        );
        assert!(!text.contains("unmapped in shop"), "{text}");
        assert_eq!(report.issues, 0, "{text}");
    }
}

//! Read-only systems (issue 16): a system the map declares read-only is
//! read and never written. What it would need (creates, updates, deletes,
//! restores, enforced fields) is listed in `plan.read_only`, plan after
//! plan, or, in error mode, refuses the plan; its edits still reach the
//! others; a runner makes no `apply` call to it.
#![cfg(feature = "testkit")]

mod common;

use common::{execute, sim, snapshots, Person};
use recsync::mapping::{FieldMapBuilder, MapConfig, Registry};
use recsync::plan::ReadOnlyWrite;
use recsync::testkit::MemorySystem;
use recsync::{
    Baseline, Budget, DeletePolicy, Direction, Field, FieldMap, Guards, OpKind, PlanError,
    ReadOnlyMode, Record, SyncEngine, SyncPlan, SystemId,
};
use serde_json::json;

/// `crm` and `wh` (a warehouse, read-only), with email (the key), name and
/// phone; deletes propagate.
fn builder() -> FieldMapBuilder {
    FieldMap::builder()
        .systems(["crm", "wh"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("phone"))
}

fn engine(b: FieldMapBuilder) -> SyncEngine {
    SyncEngine::new(b.build().expect("valid map"))
}

fn contact(id: &str, email: &str, name: &str) -> Record {
    Record::new(id)
        .field("email", email)
        .field("name", name)
        .field("phone", "555")
}

fn systems() -> Vec<MemorySystem> {
    vec![sim("crm", "c"), sim("wh", "w")]
}

/// Plans, executes every op, commits; returns the plan. Asserts that no op
/// names a read-only system (`wh`).
fn sync(engine: &SyncEngine, baseline: &mut Baseline, sys: &mut [MemorySystem]) -> SyncPlan {
    let plan = engine.plan(baseline, &snapshots(sys)).expect("plan");
    assert!(
        plan.ops.iter().all(|op| op.system != "wh"),
        "an op to the read-only system:\n{plan}"
    );
    let outcomes = execute(sys, &plan);
    engine.commit(baseline, &plan, &outcomes).expect("commit");
    plan
}

/// The writes `plan` lists for `wh`, as (kind, record, fields).
fn needs(plan: &SyncPlan) -> Vec<(OpKind, Option<String>, Vec<String>)> {
    plan.read_only
        .iter()
        .map(|w: &ReadOnlyWrite| {
            assert_eq!(w.system, "wh");
            let fields = w.fields.iter().map(|f| f.field.to_string()).collect();
            (w.kind, w.record_id.clone(), fields)
        })
        .collect()
}

fn s(x: &str) -> Option<String> {
    Some(x.to_owned())
}

#[test]
fn a_read_only_system_gets_no_create_and_its_records_still_reach_the_others() {
    let engine = engine(builder().read_only("wh"));
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@x.io", "Ada"));
    sys[1].put(contact("w1", "bo@x.io", "Bo"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    // wh's record is created in crm; crm's would be created in wh.
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].kind, OpKind::Create);
    assert_eq!(plan.ops[0].system, "crm");
    assert_eq!(
        needs(&plan),
        vec![(
            OpKind::Create,
            None,
            vec!["email".into(), "name".into(), "phone".into()]
        )]
    );
    assert_eq!(sys[1].len(), 1, "nothing created in wh");
    // Nothing pretends the create was made: the next plan lists it again,
    // and again.
    for _ in 0..2 {
        let plan = sync(&engine, &mut baseline, &mut sys);
        assert!(plan.ops.is_empty(), "{plan}");
        assert_eq!(needs(&plan).len(), 1, "{plan}");
        assert_eq!(needs(&plan)[0].0, OpKind::Create);
    }
    // Someone makes the record in wh: it is matched, and nothing is needed.
    sys[1].put(contact("w2", "ada@x.io", "Ada"));
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty() && plan.read_only.is_empty(), "{plan}");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty() && plan.read_only.is_empty(), "{plan}");
}

#[test]
fn an_update_a_read_only_system_needs_is_reported_until_it_holds_the_value() {
    let engine = engine(builder().read_only("wh"));
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@x.io", "Ada"));
    sys[1].put(contact("w1", "ada@x.io", "Ada"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty() && plan.read_only.is_empty(), "{plan}");

    sys[0].set("c1", "name", "Ada L.");
    for round in 0..3 {
        let plan = sync(&engine, &mut baseline, &mut sys);
        assert!(plan.ops.is_empty(), "round {round}:\n{plan}");
        assert_eq!(
            needs(&plan),
            vec![(OpKind::Update, s("w1"), vec!["name".into()])],
            "round {round}:\n{plan}"
        );
        assert_eq!(plan.read_only[0].fields[0].value, json!("Ada L."));
        assert_eq!(sys[1].get("w1").get("name"), Some(&json!("Ada")));
    }
    // wh's own edit still flows to crm (and crm's name is still needed).
    sys[1].set("w1", "phone", "777");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].system, "crm");
    assert_eq!(sys[0].get("c1").get("phone"), Some(&json!("777")));
    assert_eq!(needs(&plan).len(), 1, "{plan}");
    // Once wh holds the value (its owner loaded it), nothing is needed.
    sys[1].set("w1", "name", "Ada L.");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty() && plan.read_only.is_empty(), "{plan}");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty() && plan.read_only.is_empty(), "{plan}");
}

#[test]
fn a_delete_a_read_only_system_needs_is_reported_and_counts_for_no_guard() {
    let engine = engine(
        builder().read_only("wh").guards(
            Guards::default()
                .deletes(Budget::none())
                .empty_snapshot(false),
        ),
    );
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@x.io", "Ada"));
    sys[1].put(contact("w1", "ada@x.io", "Ada"));
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    sys[0].remove("c1");
    for round in 0..2 {
        let plan = sync(&engine, &mut baseline, &mut sys);
        assert!(plan.ops.is_empty(), "round {round}:\n{plan}");
        assert!(plan.refusal.is_none(), "not a delete made:\n{plan}");
        assert_eq!(
            needs(&plan),
            vec![(OpKind::Delete, s("w1"), vec![])],
            "round {round}:\n{plan}"
        );
        assert!(sys[1].contains("w1"));
        assert_eq!(baseline.len(), 1, "the entity stays while wh needs it");
    }
    // Gone from wh too: nothing more is needed, and the entity leaves.
    sys[1].remove("w1");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.read_only.is_empty(), "{plan}");
    assert!(baseline.is_empty());
}

#[test]
fn restores_and_enforced_fields_into_a_read_only_system_are_reported() {
    let from_crm = || Direction::OneWay {
        from: SystemId::new("crm"),
        enforce: true,
    };
    let engine = engine(
        FieldMap::builder()
            .systems(["crm", "wh"])
            .key("email")
            .records(from_crm())
            .read_only("wh")
            .guards(Guards::off())
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name").direction(from_crm())),
    );
    let mut sys = systems();
    sys[0].put(
        Record::new("c1")
            .field("email", "ada@x.io")
            .field("name", "Ada"),
    );
    sys[1].put(
        Record::new("w1")
            .field("email", "ada@x.io")
            .field("name", "Ada"),
    );
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    // wh's own edit of an enforced field would be reverted.
    sys[1].set("w1", "name", "Mine");
    for _ in 0..2 {
        let plan = sync(&engine, &mut baseline, &mut sys);
        assert!(plan.ops.is_empty(), "{plan}");
        assert_eq!(
            needs(&plan),
            vec![(OpKind::Update, s("w1"), vec!["name".into()])]
        );
        assert_eq!(plan.read_only[0].fields[0].value, json!("Ada"));
    }
    // wh's record deleted: it would be restored from crm's.
    sys[1].remove("w1");
    for _ in 0..2 {
        let plan = sync(&engine, &mut baseline, &mut sys);
        assert!(plan.ops.is_empty(), "{plan}");
        assert_eq!(
            needs(&plan),
            vec![(OpKind::Create, None, vec!["email".into(), "name".into()])],
            "{plan}"
        );
    }
    assert!(sys[1].is_empty());
}

#[test]
fn error_mode_refuses_the_plan_naming_the_system_record_and_field() {
    let engine = engine(builder().read_only_mode("wh", ReadOnlyMode::Error));
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@x.io", "Ada"));
    sys[1].put(contact("w1", "ada@x.io", "Ada"));
    let mut baseline = Baseline::new();
    // wh's edits flow to crm: no write to wh, no error.
    sync(&engine, &mut baseline, &mut sys);
    sys[1].set("w1", "phone", "777");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    // crm's edit would need a write to wh: the plan is refused, every time.
    sys[0].set("c1", "name", "Ada L.");
    for _ in 0..2 {
        let err = engine
            .plan(&baseline, &snapshots(&sys))
            .expect_err("refused");
        match &err {
            PlanError::ReadOnly {
                system,
                entity: _,
                record_id,
                field,
                kind,
                count,
            } => {
                assert_eq!(system, "wh");
                assert_eq!(record_id.as_deref(), Some("w1"));
                assert_eq!(field.as_deref(), Some("name"));
                assert_eq!(*kind, OpKind::Update);
                assert_eq!(*count, 1);
            }
            other => panic!("expected a read-only error, got {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("wh") && text.contains("w1") && text.contains("name"),
            "{text}"
        );
        assert!(!text.contains("Ada L."), "no value quoted: {text}");
    }
}

#[test]
fn read_only_systems_and_mirror_load_from_and_save_to_config_files() {
    let map = FieldMap::from_json(
        r#"{
          "systems": ["crm", "wh", "bi"],
          "key": "email",
          "records": { "one_way_from": "crm" },
          "mirror": true,
          "read_only": { "wh": "report", "bi": "error" },
          "fields": [{ "name": "email" }]
        }"#,
        &Registry::new(),
    )
    .expect("valid config");
    assert_eq!(map.read_only("wh"), Some(ReadOnlyMode::Report));
    assert_eq!(map.read_only("bi"), Some(ReadOnlyMode::Error));
    assert_eq!(map.read_only("crm"), None);
    assert!(map.mirrors());
    let code = FieldMap::builder()
        .systems(["crm", "wh", "bi"])
        .key("email")
        .records(Direction::OneWay {
            from: "crm".into(),
            enforce: false,
        })
        .mirror(true)
        .read_only("wh")
        .read_only_mode("bi", ReadOnlyMode::Error)
        .field(Field::new("email"))
        .build()
        .unwrap();
    assert_eq!(map.fingerprint(), code.fingerprint());
    assert_eq!(MapConfig::from_map(&map), MapConfig::from_map(&code));
    // Saved and loaded again: the same map.
    let text = map.to_json().unwrap();
    let again = FieldMap::from_json(&text, &Registry::new()).unwrap();
    assert_eq!(again.fingerprint(), map.fingerprint());
    assert_eq!(MapConfig::from_map(&again), MapConfig::from_map(&map));
    // Without either, the config says nothing of them.
    let plain = FieldMap::builder()
        .systems(["crm", "wh"])
        .field(Field::new("email"))
        .build()
        .unwrap();
    let text = plain.to_json().unwrap();
    assert!(
        !text.contains("read_only") && !text.contains("mirror"),
        "{text}"
    );
    // An unknown system is named by its entry.
    let err = FieldMap::from_json(
        r#"{ "systems": ["crm", "wh"], "read_only": { "nope": "report" }, "fields": [{ "name": "email" }] }"#,
        &Registry::new(),
    )
    .expect_err("unknown system");
    assert!(err.to_string().contains("read_only.nope"), "{err}");
}

#[test]
fn the_builder_refuses_a_mirror_without_a_one_way_record_direction_and_unknown_read_only_systems() {
    let err = builder().mirror(true).build().expect_err("refused");
    assert!(
        err.problems
            .contains(&recsync::mapping::MapProblem::MirrorNotOneWay),
        "{err}"
    );
    let err = builder().read_only("nope").build().expect_err("refused");
    assert!(err.to_string().contains("nope"), "{err}");
    let err = builder()
        .read_only("wh")
        .read_only_mode("wh", ReadOnlyMode::Error)
        .build()
        .expect_err("refused");
    assert!(err.to_string().contains("wh"), "{err}");
}

#[cfg(feature = "testkit")]
mod runner {
    use super::*;
    use recsync::testkit::MemoryConnector;
    use recsync::{MemoryStore, StateStore, SyncRunner};

    const OBJ: &str = "contacts";

    #[tokio::test]
    async fn a_runner_makes_no_apply_call_to_a_read_only_system_and_counts_what_it_needs() {
        let map = builder()
            .object(OBJ)
            .read_only("wh")
            .guards(Guards::off())
            .build()
            .unwrap();
        let crm = MemoryConnector::new("crm");
        let wh = MemoryConnector::new("wh");
        crm.insert(OBJ, [("email", json!("ada@x.io")), ("name", json!("Ada"))]);
        wh.insert(OBJ, [("email", json!("bo@x.io")), ("name", json!("Bo"))]);
        let store = MemoryStore::new();
        let runner = SyncRunner::builder(SyncEngine::new(map))
            .store(store.clone())
            .connector(crm.clone())
            .connector(wh.clone())
            .build()
            .unwrap();

        let report = runner.run().await.unwrap();
        assert_eq!(report.failed(), 0, "{report}");
        let w = report.system("wh").unwrap();
        assert_eq!(w.read_only.create, 1, "{report}");
        assert_eq!(w.planned.total(), 0, "{report}");
        assert_eq!(w.applied.total(), 0, "{report}");
        assert_eq!(report.read_only(), 1);
        assert!(report.to_string().contains("read-only wh"), "{report}");
        assert_eq!(report.system("crm").unwrap().applied.create, 1, "{report}");
        assert_eq!(crm.len(OBJ), 2);
        assert_eq!(wh.len(OBJ), 1);

        // An edit in crm: wh would need it, run after run.
        let bo = crm
            .records(OBJ)
            .into_iter()
            .find(|r| r.get("email") == Some(&json!("bo@x.io")))
            .unwrap();
        crm.edit(OBJ, &bo.id, [("name", json!("Bo B."))]).unwrap();
        for _ in 0..2 {
            let report = runner.run().await.unwrap();
            let w = report.system("wh").unwrap();
            assert_eq!((w.read_only.create, w.read_only.update), (1, 1), "{report}");
        }
        assert_eq!(wh.stats().applies, 0, "no apply call to wh");
        assert!(crm.stats().applies > 0);
        assert_eq!(store.load(OBJ).unwrap().len(), 2);
    }
}

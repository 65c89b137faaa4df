//! Divergence that never heals: two systems left holding different records
//! or values for good, with nothing reported. Each case was found by
//! running a mature two-way sync tool's test suite against recsync.
#![cfg(feature = "testkit")]

mod common;

use common::{execute, sim, snapshots, Person};
use recsync::plan::HoldKind;
use recsync::testkit::MemorySystem;
use recsync::{
    Baseline, DeletePolicy, Direction, Field, FieldMap, Guards, OpKind, PlanOptions, Record,
    Snapshot, SyncEngine, SyncPlan, SystemId,
};
use serde_json::{json, Value};

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

fn assert_quiet(engine: &SyncEngine, baseline: &Baseline, systems: &[MemorySystem]) {
    let plan = engine.plan(baseline, &snapshots(systems)).expect("plan");
    assert!(plan.ops.is_empty(), "not quiet:\n{plan}");
}

fn emails(sys: &MemorySystem) -> Vec<String> {
    let mut out: Vec<String> = sys
        .records()
        .filter_map(|r| r.get("email").and_then(Value::as_str).map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn two_way(guards: Guards) -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .systems(["a", "b"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("name"))
            .deletes(DeletePolicy::Propagate)
            .guards(guards)
            .build()
            .expect("valid map"),
    )
}

/// a's only record is deleted while b gains u0; the first sync refuses a's
/// empty snapshot; a later one (approved, or with the guard off) reads a.
fn create_withheld_by_an_ignored_snapshot(later: Option<Guards>) {
    let engine = two_way(Guards::default());
    let mut sys = vec![sim("a", "a"), sim("b", "b")];
    sys[0].put(Record::new("a1").field("email", "p@x").field("name", "P"));
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    assert_eq!(emails(&sys[1]), ["p@x"]);

    sys[0].remove("a1");
    sys[1].put(Record::new("u0").field("email", "u@x").field("name", "U"));
    let plan = sync(&engine, &mut baseline, &mut sys);
    let refusal = plan.refusal.clone().expect("a's empty snapshot is refused");
    assert!(plan.ops.is_empty(), "{plan}");
    // Refused again while a still reads empty: u0 waits, and is not lost.
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.refusal.is_some() && plan.ops.is_empty(), "{plan}");

    let plan = match later {
        Some(guards) => {
            let engine = two_way(guards);
            let plan = sync(&engine, &mut baseline, &mut sys);
            sync(&engine, &mut baseline, &mut sys);
            plan
        }
        None => {
            let options = PlanOptions::new().approve(&refusal);
            let plan = sync_with(&engine, &mut baseline, &mut sys, &options);
            sync(&engine, &mut baseline, &mut sys);
            plan
        }
    };
    assert!(
        plan.ops
            .iter()
            .any(|o| o.kind == OpKind::Create && o.system.as_str() == "a"),
        "u0 is created in a once a is read:\n{plan}"
    );
    assert_eq!(emails(&sys[0]), ["u@x"]);
    assert_eq!(emails(&sys[1]), ["u@x"]);
    assert_eq!(baseline.len(), 1);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_create_withheld_while_its_target_was_unread_is_made_once_the_target_is_approved() {
    create_withheld_by_an_ignored_snapshot(None);
}

#[test]
fn a_create_withheld_while_its_target_was_unread_is_made_once_the_guard_is_off() {
    create_withheld_by_an_ignored_snapshot(Some(Guards::off()));
}

#[test]
fn a_create_withheld_while_its_target_had_no_snapshot_is_made_once_it_has_one() {
    let engine = two_way(Guards::off());
    let mut sys = vec![sim("a", "a"), sim("b", "b")];
    sys[1].put(Record::new("u0").field("email", "u@x").field("name", "U"));
    let mut baseline = Baseline::new();
    // Only b is read: nothing is known of a, so nothing is created there.
    let plan = engine.plan(&baseline, &[sys[1].snapshot()]).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    let outcomes = execute(&mut sys, &plan);
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    // a is read partially, and b's u0 is not in b's changes: u0 is still
    // created.
    let snaps = [
        Snapshot::partial("a", Vec::new()),
        Snapshot::partial("b", Vec::new()),
    ];
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].kind, OpKind::Create);
    let outcomes = execute(&mut sys, &plan);
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    assert_eq!(emails(&sys[0]), ["u@x"]);
    assert_quiet(&engine, &baseline, &sys);
}

fn enforced_from_b(guard: bool) -> SyncEngine {
    let one_way = || Direction::OneWay {
        from: SystemId::new("b"),
        enforce: true,
    };
    SyncEngine::new(
        FieldMap::builder()
            .systems(["a", "b"])
            .key("email")
            .field(Field::new("email").direction(one_way()))
            .field(
                Field::new("name")
                    .direction(one_way())
                    .no_overwrite_on_empty(guard),
            )
            .records(one_way())
            .guards(Guards::off())
            .build()
            .expect("valid map"),
    )
}

#[test]
fn a_record_only_ever_in_an_enforced_target_is_not_restored_blank_when_deleted() {
    let engine = enforced_from_b(false);
    let mut sys = vec![sim("a", "a"), sim("b", "b")];
    sys[0].put(Record::new("a1").field("email", "p@x").field("name", "P"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "a is no source of records:\n{plan}");
    sys[0].remove("a1");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "nothing to restore it from:\n{plan}");
    assert!(
        sys[0].is_empty(),
        "{:?}",
        sys[0].records().collect::<Vec<_>>()
    );
    assert!(baseline.is_empty());
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_target_record_deleted_under_enforcement_is_restored_from_the_source() {
    let engine = enforced_from_b(false);
    let mut sys = vec![sim("a", "a"), sim("b", "b")];
    sys[1].put(Record::new("b1").field("email", "p@x").field("name", "P"));
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    let created = sys[0]
        .records()
        .next()
        .map(|r| r.id.clone())
        .expect("created in a");
    sys[0].remove(&created);
    sync(&engine, &mut baseline, &mut sys);
    let restored: Vec<&Record> = sys[0].records().collect();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].get("email"), Some(&json!("p@x")));
    assert_eq!(restored[0].get("name"), Some(&json!("P")));
    assert_quiet(&engine, &baseline, &sys);
}

/// a1 and b1 linked, b (the source) holding `source` for name (`None`:
/// no name at all), a filling in its own.
fn fill_in(
    guard: bool,
    source: Option<Value>,
) -> (SyncEngine, Baseline, Vec<MemorySystem>, SyncPlan) {
    let engine = enforced_from_b(guard);
    let mut sys = vec![sim("a", "a"), sim("b", "b")];
    let mut b1 = Record::new("b1").field("email", "p@x");
    if let Some(v) = source {
        b1 = b1.field("name", v);
    }
    sys[1].put(b1);
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    let a = sys[0]
        .records()
        .next()
        .map(|r| r.id.clone())
        .expect("created in a");
    sys[0].set(&a, "name", "filled in");
    let plan = sync(&engine, &mut baseline, &mut sys);
    (engine, baseline, sys, plan)
}

#[test]
fn an_enforced_field_reverts_a_target_fill_in_when_the_source_is_empty() {
    for source in [None, Some(Value::Null), Some(json!(""))] {
        let (engine, baseline, sys, plan) = fill_in(false, source.clone());
        assert_eq!(plan.ops.len(), 1, "source {source:?}:\n{plan}");
        let a = sys[0].records().next().expect("a's record");
        assert!(
            a.get("name").is_none_or(recsync::is_empty_value),
            "source {source:?}: a kept {:?}",
            a.get("name")
        );
        assert_quiet(&engine, &baseline, &sys);
    }
    // As a source's value is.
    let (_, _, sys, plan) = fill_in(false, Some(json!("B")));
    assert_eq!(plan.ops.len(), 1, "{plan}");
    let a = sys[0].records().next().expect("a's record");
    assert_eq!(a.get("name"), Some(&json!("B")));
}

#[test]
fn the_empty_value_guard_keeps_a_target_fill_in_and_says_so() {
    for source in [None, Some(json!(""))] {
        let (engine, baseline, sys, plan) = fill_in(true, source.clone());
        assert!(plan.ops.is_empty(), "source {source:?}:\n{plan}");
        assert!(
            plan.held.iter().any(|h| h.field.as_deref() == Some("name")
                && h.kind
                    == HoldKind::EmptyValue {
                        system: SystemId::new("b")
                    }),
            "source {source:?}:\n{plan}"
        );
        let a = sys[0].records().next().expect("a's record");
        assert_eq!(a.get("name"), Some(&json!("filled in")));
        assert_quiet(&engine, &baseline, &sys);
    }
}

//! Write confirmation: a write reported applied is believed only once a
//! later read shows it made (the record holding what was written, or the
//! version the write reported; a deleted record gone). A connector that
//! reports success without writing loses nothing: the write is planned
//! again, never taken for an edit, and reported once it stays unconfirmed.
//!
//! First with the pure engine and a simulated system that lies
//! (`common::Fate::Lied`), then through the runner with a lying
//! `MemoryConnector`.
#![cfg(feature = "testkit")]

mod common;

use common::{execute_fates, sim, snapshots, write_time, Person};
use recsync::baseline::LinkStatus;
use recsync::engine::UNCONFIRMED_PLANS;
use recsync::plan::{HoldKind, IssueKind};
use recsync::testkit::{Fate, MemorySystem};
use recsync::{
    Baseline, DeleteEditPolicy, DeletePolicy, EntityId, Field, FieldMap, Guards, OpKind, OpOutcome,
    Outcomes, Record, Snapshot, SyncEngine, SyncPlan,
};
use serde_json::json;

fn engine(deletes: DeletePolicy) -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "mkt"])
            .key("email")
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name"))
            .field(Field::new("phone"))
            .deletes(deletes)
            .build()
            .expect("valid map"),
    )
}

fn contact(id: &str, email: &str, name: &str) -> Record {
    Record::new(id)
        .field("email", email)
        .field("name", name)
        .field("phone", "555")
}

/// Two contacts linked in both systems: crm `c1`, `c2`, mkt `m1`, `m2`.
fn linked(engine: &SyncEngine) -> (Baseline, Vec<MemorySystem>) {
    let mut sys = vec![sim("crm", "c"), sim("mkt", "m")];
    for i in 1..=2 {
        let email = format!("p{i}@x.io");
        sys[0].put(contact(&format!("c{i}"), &email, &format!("P{i}")));
        sys[1].put(contact(&format!("m{i}"), &email, &format!("P{i}")));
    }
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .expect("commit");
    (baseline, sys)
}

/// Plans from complete snapshots, executes every op as `fate` says,
/// commits; returns the plan.
fn sync(
    engine: &SyncEngine,
    baseline: &mut Baseline,
    sys: &mut [MemorySystem],
    fate: Fate,
) -> SyncPlan {
    let plan = engine.plan(baseline, &snapshots(sys)).expect("plan");
    let outcomes = execute_fates(sys, &plan, |_| fate);
    engine.commit(baseline, &plan, &outcomes).expect("commit");
    plan
}

fn unconfirmed(plan: &SyncPlan) -> Vec<(String, OpKind, u32)> {
    plan.issues
        .iter()
        .filter_map(|i| match &i.kind {
            IssueKind::UnconfirmedWrite { op, attempts } => {
                Some((i.system.to_string(), *op, *attempts))
            }
            _ => None,
        })
        .collect()
}

/// Each op's id (its idempotency key), target and values written: the
/// same write planned again has them all (the reason may differ).
fn writes(
    plan: &SyncPlan,
) -> Vec<(
    recsync::OpId,
    String,
    Option<String>,
    Vec<serde_json::Value>,
)> {
    plan.ops
        .iter()
        .map(|o| {
            (
                o.id,
                o.system.to_string(),
                o.record_id.clone(),
                o.fields.iter().map(|w| w.value.clone()).collect(),
            )
        })
        .collect()
}

fn assert_quiet(engine: &SyncEngine, baseline: &Baseline, sys: &[MemorySystem]) {
    let plan = engine.plan(baseline, &snapshots(sys)).expect("plan");
    assert!(
        plan.ops.is_empty() && plan.issues.is_empty(),
        "not quiet:\n{plan}"
    );
}

// ------------------------------------------------------------- updates

#[test]
fn an_update_reported_applied_but_not_made_is_planned_again_not_taken_for_an_edit() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].set("c1", "name", "Ada");
    let first = sync(&engine, &mut baseline, &mut sys, Fate::Lied);
    assert_eq!(first.ops.len(), 1, "{first}");
    let eid = first.ops[0].entity.clone();
    assert_eq!(
        baseline
            .entity(&eid)
            .and_then(|e| e.unconfirmed("mkt"))
            .map(|u| u.kind),
        Some(OpKind::Update)
    );
    assert_eq!(sys[1].get("m1").get("name"), Some(&json!("P1")));

    // Each plan reads m1 still holding P1: the write was not made. It is
    // planned again, the same write with the same id; the person's edit in
    // crm stays. From the third such plan on, it is reported.
    for round in 1..=UNCONFIRMED_PLANS + 1 {
        let plan = sync(&engine, &mut baseline, &mut sys, Fate::Lied);
        assert_eq!(writes(&plan), writes(&first), "round {round}:\n{plan}");
        assert_eq!(sys[0].get("c1").get("name"), Some(&json!("Ada")));
        let expected = if round >= UNCONFIRMED_PLANS {
            vec![("mkt".to_owned(), OpKind::Update, round)]
        } else {
            Vec::new()
        };
        assert_eq!(unconfirmed(&plan), expected, "round {round}:\n{plan}");
    }

    // The system writes at last; the next read confirms it.
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_eq!(writes(&plan), writes(&first), "{plan}");
    assert_eq!(sys[1].get("m1").get("name"), Some(&json!("Ada")));
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    assert!(baseline
        .entity(&eid)
        .is_some_and(|e| e.unconfirmed("mkt").is_none()));
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn an_update_seen_made_is_confirmed_and_a_later_edit_of_the_target_is_an_edit() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].set("c1", "name", "Ada");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    let eid = plan.ops[0].entity.clone();
    // Before the next read, a person edits the field again in mkt: a third
    // value, neither what was written nor what was there before.
    sys[1].set("m1", "name", "Ada L.");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].system.as_str(), "crm");
    assert_eq!(sys[0].get("c1").get("name"), Some(&json!("Ada L.")));
    assert!(baseline
        .entity(&eid)
        .is_some_and(|e| e.unconfirmed("mkt").is_none()));
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn an_update_confirmed_by_the_version_it_reported() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[1].record_mut("m1").expect("m1").version = Some("7".into());
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    sys[0].set("c1", "name", "Ada");
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    let op = plan.ops.first().expect("an update").clone();
    assert_eq!(op.expected_version.as_deref(), Some("7"));
    // The system makes the write and says version 8.
    sys[1].apply(&op, write_time()).expect("applied");
    sys[1].record_mut("m1").expect("m1").version = Some("8".into());
    let mut outcomes = Outcomes::new();
    outcomes.record(op.id, OpOutcome::applied().with_version("8"));
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    assert!(baseline
        .entity(&op.entity)
        .is_some_and(|e| e.unconfirmed("mkt").is_none()));
}

#[test]
fn an_update_reported_with_the_version_the_record_already_had_is_not_believed() {
    // The unchanged-record shortcut would skip a record that reports the
    // version its link keeps: an entity with a write unconfirmed is always
    // looked at.
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[1].record_mut("m1").expect("m1").version = Some("7".into());
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    sys[0].set("c1", "name", "Ada");
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    let op = plan.ops.first().expect("an update").clone();
    let mut outcomes = Outcomes::new();
    outcomes.record(op.id, OpOutcome::applied().with_version("7"));
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("commit");
    let again = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert_eq!(writes(&again), writes(&plan), "planned again:\n{again}");
}

// ------------------------------------------------------------- creates

fn new_contact_in_crm(engine: &SyncEngine) -> (Baseline, Vec<MemorySystem>, EntityId) {
    let (mut baseline, mut sys) = linked(engine);
    sys[0].put(contact("c3", "ada@x.io", "Ada"));
    let plan = sync(engine, &mut baseline, &mut sys, Fate::Lied);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].kind, OpKind::Create);
    let eid = plan.ops[0].entity.clone();
    let e = baseline
        .entity(&eid)
        .expect("linked to the id the lie gave");
    assert_eq!(e.unconfirmed("mkt").map(|u| u.kind), Some(OpKind::Create));
    (baseline, sys, eid)
}

#[test]
fn a_create_never_seen_is_no_evidence_of_a_delete_and_is_made_again() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys, eid) = new_contact_in_crm(&engine);
    // mkt's complete snapshot lacks the record: not a delete. The create is
    // planned again, under the same correlation key; crm's record stays.
    for round in 1..=UNCONFIRMED_PLANS + 1 {
        let plan = sync(&engine, &mut baseline, &mut sys, Fate::Lied);
        assert!(!plan.ops.iter().any(|o| o.kind == OpKind::Delete), "{plan}");
        let creates: Vec<_> = plan
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::Create)
            .map(|o| (o.system.to_string(), o.correlation.clone()))
            .collect();
        assert_eq!(
            creates,
            vec![("mkt".to_owned(), Some(eid.as_str().to_owned()))],
            "round {round}:\n{plan}"
        );
        assert!(sys[0].contains("c3"));
        assert_eq!(
            unconfirmed(&plan).len(),
            usize::from(round >= UNCONFIRMED_PLANS),
            "round {round}:\n{plan}"
        );
    }
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    let made: Vec<&Record> = sys[1]
        .records()
        .filter(|r| r.get("email") == Some(&json!("ada@x.io")))
        .collect();
    assert_eq!(made.len(), 1, "made once");
    assert_eq!(
        baseline.entity(&eid).and_then(|e| e.link("mkt")),
        Some(made[0].id.as_str())
    );
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_create_that_shows_up_late_is_linked_not_made_twice() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys, eid) = new_contact_in_crm(&engine);
    // The record was made after all, under another id, and shows up now
    // with its correlation key.
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    let create = plan.ops.first().expect("the create again").clone();
    sys[1].apply(&create, write_time()).expect("applied");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(sys[1].len(), 3);
    assert!(baseline
        .entity(&eid)
        .is_some_and(|e| e.link("mkt").is_some() && e.unconfirmed("mkt").is_none()));
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_create_never_seen_in_partial_reads_is_reported() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, sys, eid) = new_contact_in_crm(&engine);
    // Changes read from both systems, never holding the record.
    let snaps = [
        Snapshot::partial("crm", vec![]),
        Snapshot::partial("mkt", vec![]),
    ];
    for round in 1..=UNCONFIRMED_PLANS {
        let plan = engine.plan(&baseline, &snaps).expect("plan");
        assert!(plan.ops.is_empty(), "{plan}");
        assert_eq!(
            unconfirmed(&plan),
            if round >= UNCONFIRMED_PLANS {
                vec![("mkt".to_owned(), OpKind::Create, round)]
            } else {
                Vec::new()
            },
            "round {round}:\n{plan}"
        );
        engine
            .commit(&mut baseline, &plan, &Outcomes::new())
            .expect("commit");
    }
    // A plan that does not read mkt learns nothing.
    let plan = engine
        .plan(&baseline, &[Snapshot::partial("crm", vec![])])
        .expect("plan");
    assert!(plan.issues.is_empty(), "{plan}");
    // A complete read plans the create again.
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].kind, OpKind::Create);
    assert_eq!(plan.ops[0].entity, eid);
}

#[test]
fn a_record_never_seen_does_not_trip_the_empty_snapshot_guard() {
    // mkt starts empty: the one record in it is the create that lied.
    let engine = engine(DeletePolicy::Propagate);
    let mut sys = vec![sim("crm", "c"), sim("mkt", "m")];
    sys[0].put(contact("c1", "ada@x.io", "Ada"));
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys, Fate::Lied);
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert!(plan.refusal.is_none(), "{plan}");
    assert_eq!(plan.ops.len(), 1, "created again:\n{plan}");
    assert_eq!(sys[1].len(), 1);
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_created_record_missing_fields_it_was_written_gets_them_written_again() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].put(contact("c3", "ada@x.io", "Ada"));
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    // The system made the record but dropped its phone.
    let id = sys[1]
        .records()
        .find(|r| r.get("email") == Some(&json!("ada@x.io")))
        .map(|r| r.id.clone())
        .expect("created");
    sys[1]
        .record_mut(&id)
        .expect("made")
        .fields
        .shift_remove("phone");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].kind, OpKind::Update);
    assert_eq!(plan.ops[0].fields.len(), 1);
    assert_eq!(plan.ops[0].fields[0].field, "phone");
    assert_eq!(sys[0].get("c3").get("phone"), Some(&json!("555")));
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_quiet(&engine, &baseline, &sys);
}

// ------------------------------------------------------------- deletes

#[test]
fn a_delete_reported_applied_but_not_made_is_planned_again_and_reported() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].remove("c1");
    let first = sync(&engine, &mut baseline, &mut sys, Fate::Lied);
    assert_eq!(first.ops.len(), 1);
    let eid = first.ops[0].entity.clone();
    let e = baseline.entity(&eid).expect("kept until a read confirms");
    assert_eq!(e.link_status("mkt"), Some(LinkStatus::Deleted));
    for round in 1..=UNCONFIRMED_PLANS {
        let plan = sync(&engine, &mut baseline, &mut sys, Fate::Lied);
        assert_eq!(writes(&plan), writes(&first), "round {round}:\n{plan}");
        assert_eq!(
            unconfirmed(&plan).len(),
            usize::from(round >= UNCONFIRMED_PLANS),
            "{plan}"
        );
        // Not linked anew as a record of its own: never created back in crm.
        assert_eq!(sys[0].len(), 1);
    }
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_eq!(writes(&plan), writes(&first));
    assert!(!sys[1].contains("m1"));
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    assert!(baseline.entity(&eid).is_none());
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_delete_awaiting_confirmation_outlives_plans_that_do_not_read_its_system() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].remove("c1");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Lied);
    let eid = plan.ops[0].entity.clone();
    // Only crm is read: nothing is learned of mkt's record.
    let plan = engine.plan(&baseline, &[sys[0].snapshot()]).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::new())
        .expect("commit");
    assert!(baseline.entity(&eid).is_some(), "still awaited");
    // mkt read: m1 is still there, and the delete is planned again.
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].kind, OpKind::Delete);
    sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert!(baseline.entity(&eid).is_none());
    assert_quiet(&engine, &baseline, &sys);
}

#[test]
fn a_delete_not_made_on_a_record_edited_since_is_decided_again() {
    // The default: a delete against an edit is held for review.
    let engine = SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "mkt"])
            .key("email")
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name"))
            .field(Field::new("phone"))
            .deletes(DeletePolicy::Propagate)
            .delete_vs_edit(DeleteEditPolicy::Hold)
            .guards(Guards::off())
            .build()
            .expect("valid map"),
    );
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].remove("c1");
    sync(&engine, &mut baseline, &mut sys, Fate::Lied);
    // m1 is still there, and a person edits it.
    sys[1].set("m1", "phone", "556");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    assert!(plan.ops.is_empty(), "not deleted over the edit:\n{plan}");
    assert!(
        plan.held
            .iter()
            .any(|h| matches!(h.kind, HoldKind::Deleted { .. })),
        "{plan}"
    );
    assert_eq!(sys[1].get("m1").get("phone"), Some(&json!("556")));
}

#[test]
fn a_delete_is_confirmed_by_a_tombstone_and_unseen_in_partial_reads_counts_nothing() {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].remove("c1");
    let plan = sync(&engine, &mut baseline, &mut sys, Fate::Applied);
    let eid = plan.ops[0].entity.clone();
    // Partial reads without m1: absence there says nothing, and is not
    // reported (change feeds without tombstones are common).
    let snaps = [
        Snapshot::partial("crm", vec![]),
        Snapshot::partial("mkt", vec![]),
    ];
    for _ in 0..UNCONFIRMED_PLANS + 1 {
        let plan = engine.plan(&baseline, &snaps).expect("plan");
        assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
        engine
            .commit(&mut baseline, &plan, &Outcomes::new())
            .expect("commit");
    }
    assert!(baseline.entity(&eid).is_some());
    let snaps = [
        Snapshot::partial("crm", vec![]),
        Snapshot::partial("mkt", vec![Record::new("m1").deleted()]),
    ];
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    engine
        .commit(&mut baseline, &plan, &Outcomes::new())
        .expect("commit");
    assert!(baseline.entity(&eid).is_none());
    assert_quiet(&engine, &baseline, &sys);
}

// -------------------------------------------------------------- state

/// A baseline waiting for an update, a create and a delete in mkt, all
/// reported applied by a system that lied.
fn waiting() -> (SyncEngine, Baseline, Vec<MemorySystem>) {
    let engine = engine(DeletePolicy::Propagate);
    let (mut baseline, mut sys) = linked(&engine);
    sys[0].set("c1", "name", "Ada");
    sys[0].put(contact("c3", "ada@x.io", "Ada"));
    sys[0].remove("c2");
    sync(&engine, &mut baseline, &mut sys, Fate::Lied);
    (engine, baseline, sys)
}

#[test]
fn what_awaits_confirmation_survives_every_store() {
    use recsync::store::JsonFileStore;
    use recsync::{CommitSummary, MemoryStore, StateStore};

    let (_, baseline, _) = waiting();
    let mut all = CommitSummary::default();
    all.touched = baseline.entities().map(|e| e.id().clone()).collect();
    let dir = std::env::temp_dir().join(format!(
        "recsync-confirmation-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    let stores: Vec<Box<dyn StateStore>> = vec![
        Box::new(MemoryStore::new()),
        Box::new(JsonFileStore::open(dir.join("json")).expect("json store")),
        #[cfg(feature = "sqlite")]
        Box::new(recsync::store::SqliteStore::open(dir.join("state.db")).expect("sqlite store")),
        #[cfg(feature = "sqlite")]
        Box::new(
            recsync::store::SqliteStore::from_connection(
                rusqlite::Connection::open_in_memory().expect("in memory"),
            )
            .expect("sqlite store in memory"),
        ),
    ];
    for store in &stores {
        store.save("records", &baseline, &all).expect("save");
        let back = store.load("records").expect("load");
        assert!(back == baseline, "{store:?} lost what awaits confirmation");
        assert_eq!(
            back.entities()
                .filter(|e| e.unconfirmed("mkt").is_some())
                .count(),
            3
        );
    }
    drop(stores);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_awaits_confirmation_survives_serde_and_export() {
    let (engine, baseline, sys) = waiting();
    let waiting: Vec<_> = baseline
        .entities()
        .filter_map(|e| Some((e.id().clone(), e.unconfirmed("mkt")?)))
        .collect();
    let mut kinds: Vec<OpKind> = waiting.iter().map(|(_, u)| u.kind).collect();
    kinds.sort_by_key(|k| format!("{k}"));
    assert_eq!(kinds, [OpKind::Create, OpKind::Delete, OpKind::Update]);
    let update = waiting
        .iter()
        .find(|(_, u)| u.kind == OpKind::Update)
        .map(|(_, u)| u)
        .expect("the update");
    assert_eq!(update.before.get("name"), Some(&Some(json!("P1"))));
    // Values held before a write are personal data: Debug names fields.
    assert!(!format!("{update:?}").contains("P1"), "{update:?}");

    let text = serde_json::to_string(&baseline).expect("json");
    let back: Baseline = serde_json::from_str(&text).expect("back");
    assert_eq!(back, baseline);
    for (id, u) in &waiting {
        let record = baseline.export(id).expect("exported");
        assert_eq!(record.unconfirmed.get("mkt"), Some(u));
        let again =
            Baseline::from_parts(baseline.header().clone(), [record.clone()]).expect("from parts");
        assert_eq!(again.export(id), Some(record));
    }
    // What serde wrote plans what the original plans.
    let a = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    let b = engine.plan(&back, &snapshots(&sys)).expect("plan");
    assert_eq!(a, b);
    // An older state, without the field, still loads.
    let mut old: serde_json::Value = serde_json::from_str(&text).expect("json");
    for e in old["entities"].as_array_mut().expect("entities") {
        e.as_object_mut().expect("entity").remove("unconfirmed");
    }
    let older: Baseline = serde_json::from_value(old).expect("older state loads");
    assert!(older.entities().all(|e| e.unconfirmed("mkt").is_none()));
}

// ------------------------------------------------------ through the runner

#[cfg(feature = "testkit")]
mod runner {
    use chrono::{DateTime, Utc};
    use recsync::engine::UNCONFIRMED_PLANS;
    use recsync::runner::{SyncReport, SyncRunner};
    use recsync::testkit::{ManualClock, MemoryConnector};
    use recsync::{DeletePolicy, Field, FieldMap, Guards, MemoryStore, StateStore, SyncEngine};
    use serde_json::{json, Value};

    const OBJ: &str = "contacts";

    fn start() -> DateTime<Utc> {
        "2026-03-01T09:00:00Z".parse().expect("a time")
    }

    struct World {
        crm: MemoryConnector,
        shop: MemoryConnector,
        store: MemoryStore,
        runner: SyncRunner,
    }

    /// crm and shop, deletes propagated, the default guards; the shop
    /// reads complete snapshots or changes.
    fn world(shop_incremental: bool) -> World {
        let clock = ManualClock::ticking(start(), chrono::TimeDelta::seconds(1));
        let conn = |name: &str, incremental: bool| {
            MemoryConnector::builder(name)
                .clock(clock.clone())
                .incremental_fetch(incremental)
                .build()
                .expect("connector")
        };
        let (crm, shop) = (conn("crm", true), conn("shop", shop_incremental));
        let map = FieldMap::builder()
            .object(OBJ)
            .systems(["crm", "shop"])
            .key("email")
            .deletes(DeletePolicy::Propagate)
            .guards(Guards::default())
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name"))
            .build()
            .expect("map");
        let store = MemoryStore::new();
        let runner = SyncRunner::builder(SyncEngine::new(map))
            .connector(crm.clone())
            .connector(shop.clone())
            .store(store.clone())
            .clock(clock.clone())
            .sleeper(clock)
            // The runner's own read-back would catch every lie at once
            // (tests/runner_faults.rs): here the engine's confirmation by
            // later reads is what is tried.
            .read_back(false)
            .build()
            .expect("runner");
        World {
            crm,
            shop,
            store,
            runner,
        }
    }

    fn people(c: &MemoryConnector, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                c.insert(
                    OBJ,
                    [
                        ("email", json!(format!("p{i}@x.io"))),
                        ("name", json!(format!("P{i}"))),
                    ],
                )
            })
            .collect()
    }

    fn names(c: &MemoryConnector) -> Vec<(String, Option<Value>)> {
        let mut out: Vec<_> = c
            .records(OBJ)
            .iter()
            .map(|r| {
                (
                    r.get("email")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    r.get("name").cloned(),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    async fn run(w: &World) -> SyncReport {
        w.runner.run().await.expect("run")
    }

    /// Runs while the shop lies about every op; each run after the first
    /// finds the writes not made (or not seen): from the third such run on,
    /// each is an issue.
    async fn lying_runs(w: &World, writes: usize) {
        w.shop.lie_next_ops(usize::MAX);
        let report = run(w).await;
        assert_eq!(report.applied(), writes, "{report}");
        for round in 1..=UNCONFIRMED_PLANS {
            let report = run(w).await;
            let expected = if round >= UNCONFIRMED_PLANS {
                writes
            } else {
                0
            };
            assert_eq!(report.issues, expected, "round {round}: {report}");
        }
        w.shop.clear_faults();
    }

    #[tokio::test]
    async fn a_memory_connector_told_to_lie_reports_ops_applied_and_makes_none() {
        use recsync::plan::{OpKind, WriteOp};
        use recsync::Connector;

        let shop = MemoryConnector::new("shop");
        let id = shop.insert(OBJ, [("name", json!("Bo"))]);
        let start = shop.fetch_changes(OBJ, None).await.expect("changes").cursor;
        let op = |n: u64, kind: OpKind, record_id: Option<&str>| {
            let mut op: WriteOp = serde_json::from_value(json!({
                "id": format!("{n:016x}"),
                "kind": kind,
                "object": OBJ,
                "system": "shop",
                "entity": "crm:1",
                "fields": [],
            }))
            .expect("an op");
            op.record_id = record_id.map(str::to_owned);
            op
        };
        let mut update = op(2, OpKind::Update, Some(&id));
        update.fields = serde_json::from_value(json!([
            {"field": "name", "native": "name", "value": "Ada", "reason": {"why": "behind"}}
        ]))
        .expect("fields");
        let ops = [
            op(1, OpKind::Create, None),
            update,
            op(3, OpKind::Delete, Some(&id)),
        ];
        shop.lie_next_ops(3);
        let results = shop.apply(OBJ, &ops).await.expect("apply");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let created = results[0].as_ref().expect("created");
        assert!(created.record_id.is_some());
        assert_eq!(
            results[1].as_ref().expect("updated").version.as_deref(),
            Some("2")
        );
        // Nothing happened.
        assert_eq!(shop.len(OBJ), 1);
        assert_eq!(
            shop.get(OBJ, &id).and_then(|r| r.get("name").cloned()),
            Some(json!("Bo"))
        );
        let changes = shop
            .fetch_changes(OBJ, Some(&start))
            .await
            .expect("changes");
        assert!(changes.snapshot.records.is_empty());
        // The fault is used up.
        let results = shop.apply(OBJ, &ops[1..2]).await.expect("apply");
        assert!(results[0].is_ok());
        assert_eq!(
            shop.get(OBJ, &id).and_then(|r| r.get("name").cloned()),
            Some(json!("Ada"))
        );
    }

    #[tokio::test]
    async fn creates_a_connector_lies_about_in_complete_reads_delete_nothing() {
        let w = world(false);
        people(&w.crm, 3);
        lying_runs(&w, 3).await;
        // Nothing read as deleted: crm keeps every record.
        assert_eq!(w.crm.len(OBJ), 3);
        assert_eq!(w.shop.len(OBJ), 0);
        // Honest again: made once, confirmed.
        let report = run(&w).await;
        assert_eq!(report.applied(), 3, "{report}");
        let report = run(&w).await;
        assert_eq!((report.planned(), report.issues), (0, 0), "{report}");
        assert_eq!(names(&w.shop), names(&w.crm));
    }

    #[tokio::test]
    async fn creates_a_connector_lies_about_delete_nothing_under_a_debounce() {
        let clock = ManualClock::new(start());
        let conn = |name: &str, incremental: bool| {
            MemoryConnector::builder(name)
                .clock(clock.clone())
                .incremental_fetch(incremental)
                .build()
                .expect("connector")
        };
        let (crm, shop) = (conn("crm", true), conn("shop", false));
        let map = FieldMap::builder()
            .object(OBJ)
            .systems(["crm", "shop"])
            .key("email")
            .deletes(DeletePolicy::Propagate)
            .guards(Guards::off())
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name"))
            .build()
            .expect("map");
        let runner = SyncRunner::builder(SyncEngine::new(map))
            .connector(crm.clone())
            .connector(shop.clone())
            .store(MemoryStore::new())
            .clock(clock.clone())
            .sleeper(clock.clone())
            .debounce(std::time::Duration::from_secs(30))
            .build()
            .expect("runner");
        let ids = people(&crm, 2);
        clock.advance(chrono::TimeDelta::seconds(31));
        shop.lie_next_ops(usize::MAX);
        runner.run().await.expect("run");
        // One person is being edited: the shop's complete snapshot turns
        // partial around that entity, the other's record still missing.
        crm.edit(OBJ, &ids[0], [("name", json!("Ada"))])
            .expect("edit");
        runner.run().await.expect("run");
        clock.advance(chrono::TimeDelta::seconds(31));
        runner.run().await.expect("run");
        assert_eq!(crm.len(OBJ), 2, "nothing deleted in crm");
    }

    #[tokio::test]
    async fn creates_a_connector_lies_about_in_incremental_reads_are_reported() {
        let w = world(true);
        people(&w.crm, 3);
        lying_runs(&w, 3).await;
        assert_eq!(w.crm.len(OBJ), 3);
        let baseline = w.store.load(OBJ).expect("load");
        assert_eq!(
            baseline
                .entities()
                .filter(|e| e.unconfirmed("shop").is_some())
                .count(),
            3
        );
    }

    async fn an_update_a_connector_lies_about_does_not_revert_the_edit(shop_incremental: bool) {
        let w = world(shop_incremental);
        let ids = people(&w.crm, 2);
        run(&w).await;
        run(&w).await;
        w.crm
            .edit(OBJ, &ids[0], [("name", json!("Ada"))])
            .expect("edit");
        lying_runs(&w, 1).await;
        assert_eq!(
            w.crm.get(OBJ, &ids[0]).and_then(|r| r.get("name").cloned()),
            Some(json!("Ada")),
            "the edit stays"
        );
        if shop_incremental {
            // The shop's changes never hold the record: nothing learned,
            // nothing planned, until a read shows it (someone saves it).
            let report = run(&w).await;
            assert_eq!((report.planned(), report.issues), (0, 1), "{report}");
            let shop_id = w
                .shop
                .records(OBJ)
                .into_iter()
                .find(|r| r.get("email") == Some(&json!("p0@x.io")))
                .map(|r| r.id)
                .expect("the shop's p0");
            w.shop.bump_version(OBJ, &shop_id).expect("saved");
        }
        let report = run(&w).await;
        assert_eq!(report.applied(), 1, "{report}");
        let report = run(&w).await;
        assert_eq!((report.planned(), report.issues), (0, 0), "{report}");
        assert_eq!(names(&w.shop), names(&w.crm));
    }

    #[tokio::test]
    async fn an_update_a_connector_lies_about_in_complete_reads_is_made_again() {
        an_update_a_connector_lies_about_does_not_revert_the_edit(false).await;
    }

    #[tokio::test]
    async fn an_update_a_connector_lies_about_in_incremental_reads_is_made_once_read() {
        an_update_a_connector_lies_about_does_not_revert_the_edit(true).await;
    }

    #[tokio::test]
    async fn a_delete_a_connector_lies_about_loses_nothing_and_is_reported() {
        let w = world(false);
        let ids = people(&w.crm, 3);
        run(&w).await;
        run(&w).await;
        w.crm.delete(OBJ, &ids[0]).expect("delete");
        lying_runs(&w, 1).await;
        // The shop's record is still there; nothing was made again in crm.
        assert_eq!(w.shop.len(OBJ), 3);
        assert_eq!(w.crm.len(OBJ), 2);
        let report = run(&w).await;
        assert_eq!(report.applied(), 1, "{report}");
        let report = run(&w).await;
        assert_eq!((report.planned(), report.issues), (0, 0), "{report}");
        assert_eq!(names(&w.shop), names(&w.crm));
        assert_eq!(w.store.load(OBJ).expect("load").len(), 2);
    }
}

/// A write through a one-way row of a value map (the crm's "Platinum",
/// written to the shop as "gold", which a two-way row reads as "Gold"),
/// made but its answer lost: the next read finds the shop holding what the
/// map writes for the entity's value, which is no change, not a change to
/// "Gold" that would overwrite the crm's "Platinum". Found by the map
/// checker (issue 22).
#[test]
fn a_lost_answer_to_a_write_through_a_one_way_row_is_no_change() {
    use chrono::TimeDelta;
    use recsync::mapping::ValueMap;
    use recsync::testkit;

    let at = |s: i64| {
        chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::seconds(s)
    };
    let tiers = ValueMap::new()
        .both([("crm", "Gold"), ("shop", "gold")])
        .both([("crm", "Silver"), ("shop", "silver")])
        .one_way("crm", [("crm", "Platinum"), ("shop", "gold")]);
    let engine = SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "shop"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("tier").value_map(tiers))
            .build()
            .unwrap(),
    );
    let mut systems = vec![MemorySystem::new("crm"), MemorySystem::new("shop")];
    let mut baseline = Baseline::new();
    let crm = systems[0].insert([("email", json!("a@x.io")), ("tier", json!(null))], at(0));
    let shop = systems[1].insert([("email", json!("a@x.io")), ("tier", json!(null))], at(0));
    let plan = engine
        .plan(&baseline, &testkit::snapshots(&systems))
        .unwrap();
    let outcomes = testkit::apply(&plan, &mut systems, at(1));
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();

    systems[0]
        .edit(&crm, [("tier", "Platinum")], at(2))
        .unwrap();
    let plan = engine
        .plan(&baseline, &testkit::snapshots(&systems))
        .unwrap();
    let outcomes = testkit::apply_with(&plan, &mut systems, at(3), |_, _| Fate::Lost);
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    assert_eq!(
        systems[1].record(&shop).unwrap().get("tier"),
        Some(&json!("gold"))
    );

    let plan = engine
        .plan(&baseline, &testkit::snapshots(&systems))
        .unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(
        systems[0].record(&crm).unwrap().get("tier"),
        Some(&json!("Platinum"))
    );
}

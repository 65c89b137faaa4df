//! Undo and field history: the write journal a runner keeps, a run taken
//! back three ways, and what happens after.
#![cfg(feature = "testkit")]

#[path = "common/undo.rs"]
mod undo_common;

use futures::executor::block_on;
use recsync::journal::{JournalQuery, Retention, RunId};
use recsync::plan::HoldKind;
use recsync::runner::{RunError, SyncRunner};
use recsync::testkit::MemoryConnector;
use recsync::{Field, FieldMap, Guards, MemoryStore, Reason, SyncEngine};
use serde_json::{json, Value};
use undo_common::{contact, journaled, map, unconfirmed, FailingSaves, OBJ};

struct World {
    crm: MemoryConnector,
    shop: MemoryConnector,
    store: MemoryStore,
    runner: SyncRunner,
}

fn world() -> World {
    let crm = MemoryConnector::builder("crm")
        .id_prefix("c")
        .fetch_by_ids(true)
        .build()
        .unwrap();
    let shop = MemoryConnector::builder("shop")
        .id_prefix("s")
        .fetch_by_ids(true)
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let runner = runner(&crm, &shop, &store, map());
    World {
        crm,
        shop,
        store,
        runner,
    }
}

fn runner(
    crm: &MemoryConnector,
    shop: &MemoryConnector,
    store: &MemoryStore,
    map: FieldMap,
) -> SyncRunner {
    SyncRunner::builder(SyncEngine::new(map))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store.clone())
        .journal(Retention::forever())
        .build()
        .unwrap()
}

fn by_email(c: &MemoryConnector, email: &str) -> recsync::Record {
    c.records(OBJ)
        .into_iter()
        .find(|r| r.get("email") == Some(&json!(email)))
        .unwrap()
}

fn run(w: &World) -> RunId {
    let report = block_on(w.runner.run()).unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    report.run.unwrap()
}

#[test]
fn an_update_is_taken_back_and_a_field_changed_since_is_held() {
    let w = world();
    w.crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    w.crm.insert(OBJ, contact("bob@example.com", "Bob", "lead"));
    run(&w);
    let ada = by_email(&w.crm, "ada@example.com").id;
    let bob = by_email(&w.crm, "bob@example.com").id;
    w.crm
        .edit(OBJ, &ada, [("status", json!("customer"))])
        .unwrap();
    w.crm
        .edit(OBJ, &bob, [("status", json!("customer"))])
        .unwrap();
    let second = run(&w);
    let shop_bob = by_email(&w.shop, "bob@example.com").id;
    assert_eq!(
        by_email(&w.shop, "ada@example.com").get("status"),
        Some(&json!("customer"))
    );
    // A person fixes Bob's status in the shop by hand.
    w.shop
        .edit(OBJ, &shop_bob, [("status", json!("vip"))])
        .unwrap();

    let undone = block_on(w.runner.undo(second)).unwrap();
    assert!(undone.report.errors.is_empty());
    assert_eq!(
        by_email(&w.shop, "ada@example.com").get("status"),
        Some(&json!("lead"))
    );
    assert_eq!(
        by_email(&w.shop, "bob@example.com").get("status"),
        Some(&json!("vip"))
    );
    assert_eq!(undone.plan.held.len(), 1);
    assert!(matches!(
        &undone.plan.held[0].kind,
        HoldKind::ChangedSince { record_id, .. } if *record_id == shop_bob
    ));
    assert_eq!(undone.plan.held[0].field.as_deref(), Some("status"));
    let write = &undone.plan.ops[0].fields[0];
    assert!(matches!(write.reason, Reason::Undo { run, .. } if run == second));
    // The crm edits are untouched.
    assert_eq!(
        by_email(&w.crm, "ada@example.com").get("status"),
        Some(&json!("customer"))
    );
    // Undone again: nothing left to do.
    let again = block_on(w.runner.plan_undo(second)).unwrap();
    assert!(again.ops.is_empty(), "{again:?}");

    // The history of the field tells the story.
    let shop_ada = by_email(&w.shop, "ada@example.com").id;
    let history = block_on(w.runner.history("shop", &shop_ada, "status")).unwrap();
    let told: Vec<(Option<Value>, Option<Value>)> = history
        .iter()
        .map(|c| (c.from.clone(), c.to.clone()))
        .collect();
    assert_eq!(
        told,
        vec![
            (None, Some(json!("lead"))),
            (Some(json!("lead")), Some(json!("customer"))),
            (Some(json!("customer")), Some(json!("lead"))),
        ]
    );
    assert!(matches!(&history[1].reason, Some(Reason::Changed { system }) if system == "crm"));

    // The next run writes the crm's edit again, through the map as it is:
    // no edit is lost, the person's "vip" goes to the crm.
    run(&w);
    assert_eq!(
        by_email(&w.shop, "ada@example.com").get("status"),
        Some(&json!("customer"))
    );
    assert_eq!(
        by_email(&w.crm, "bob@example.com").get("status"),
        Some(&json!("vip"))
    );
    assert!(block_on(w.runner.dry_run()).unwrap().is_empty());
}

#[test]
fn creates_are_deleted_and_deletes_created_again() {
    let w = world();
    w.crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    w.crm.insert(OBJ, contact("bob@example.com", "Bob", "lead"));
    let first = run(&w);
    assert_eq!(w.shop.len(OBJ), 2);
    // Undo the first sync: the records it created go.
    let undone = block_on(w.runner.undo(first)).unwrap();
    assert!(undone.report.errors.is_empty(), "{:?}", undone.report);
    assert_eq!(w.shop.len(OBJ), 0);
    assert_eq!(w.crm.len(OBJ), 2);
    // The next run creates them again.
    run(&w);
    assert_eq!(w.shop.len(OBJ), 2);

    // A delete propagated, then undone: the record is back.
    let bob = by_email(&w.crm, "bob@example.com").id;
    w.crm.delete(OBJ, &bob).unwrap();
    let deleting = run(&w);
    assert_eq!(w.shop.len(OBJ), 1);
    let undone = block_on(w.runner.undo(deleting)).unwrap();
    assert!(undone.report.errors.is_empty(), "{:?}", undone.report);
    assert_eq!(w.shop.len(OBJ), 2);
    let back = by_email(&w.shop, "bob@example.com");
    assert_eq!(back.get("name"), Some(&json!("Bob")));
    // Undone twice: not created twice.
    let again = block_on(w.runner.plan_undo(deleting)).unwrap();
    assert!(again.ops.is_empty(), "{again:?}");
    // The record created again is new to recsync: the next run links it
    // and, its match gone from the crm, creates it there.
    run(&w);
    assert_eq!(w.crm.len(OBJ), 2);
    assert_eq!(w.shop.len(OBJ), 2);
    assert!(block_on(w.runner.dry_run()).unwrap().is_empty());
}

#[test]
fn a_created_record_edited_since_is_not_deleted() {
    let w = world();
    w.crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&w);
    let shop_ada = by_email(&w.shop, "ada@example.com").id;
    w.shop
        .edit(OBJ, &shop_ada, [("name", json!("Ada L."))])
        .unwrap();
    let undone = block_on(w.runner.undo(first)).unwrap();
    assert!(undone.plan.ops.is_empty());
    assert!(matches!(
        &undone.plan.held[0].kind,
        HoldKind::ChangedSince { .. }
    ));
    assert_eq!(undone.plan.held[0].field, None);
    assert_eq!(w.shop.len(OBJ), 1);
}

#[test]
fn an_unknown_run_is_refused() {
    let w = world();
    w.crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&w);
    let err = block_on(w.runner.undo(RunId(99))).unwrap_err();
    assert!(matches!(err, RunError::NotJournaled { run } if run == RunId(99)));
    assert_eq!(
        block_on(w.runner.journal(&JournalQuery::all()))
            .unwrap()
            .len(),
        1
    );
    let _ = &w.store;
}

/// Found by the undo property: an entity whose records were all deleted,
/// its deletes awaiting a read, took a new record holding its key, and
/// deleted it with itself.
#[test]
fn a_record_made_while_its_match_is_being_deleted_is_kept() {
    let (crm, shop) = (unconfirmed("crm"), unconfirmed("shop"));
    let store = MemoryStore::new();
    let runner = runner(&crm, &shop, &store, map());
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    block_on(runner.run()).unwrap();
    crm.delete(OBJ, &c1).unwrap();
    block_on(runner.run()).unwrap();
    assert_eq!(shop.len(OBJ), 0);
    // A person creates the contact again in the shop.
    shop.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    block_on(runner.run()).unwrap();
    block_on(runner.run()).unwrap();
    assert_eq!(shop.len(OBJ), 1, "the person's new record was deleted");
    assert_eq!(crm.len(OBJ), 1);
}

#[test]
fn a_delete_undone_with_its_deletes_unconfirmed_stays_undone() {
    let (crm, shop) = (unconfirmed("crm"), unconfirmed("shop"));
    let store = MemoryStore::new();
    let runner = runner(&crm, &shop, &store, map());
    let c1 = crm.insert(OBJ, contact("ada@example.com", "", "lead"));
    block_on(runner.run()).unwrap();
    crm.delete(OBJ, &c1).unwrap();
    let deleting = block_on(runner.run()).unwrap().run.unwrap();
    assert_eq!(shop.len(OBJ), 0);
    let undone = block_on(runner.undo(deleting)).unwrap();
    assert_eq!(undone.plan.ops.len(), 1);
    assert_eq!(shop.len(OBJ), 1);
    block_on(runner.run()).unwrap();
    block_on(runner.run()).unwrap();
    assert_eq!(shop.len(OBJ), 1, "the record created again was deleted");
    assert_eq!(crm.len(OBJ), 1);
}

#[test]
fn an_undo_passes_the_delete_guard_and_goes_ahead_once_approved() {
    let crm = MemoryConnector::new("crm");
    let shop = MemoryConnector::new("shop");
    let store = MemoryStore::new();
    let guarded = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .guards(Guards::default().deletes(recsync::Budget::new(5, 0.0)))
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status"))
        .build()
        .unwrap();
    let runner = runner(&crm, &shop, &store, guarded);
    for i in 0..12 {
        crm.insert(OBJ, contact(&format!("p{i}@example.com"), "P", "lead"));
    }
    let first = block_on(runner.run()).unwrap().run.unwrap();
    assert_eq!(shop.len(OBJ), 12);

    let refused = block_on(runner.undo(first)).unwrap();
    let refusal = refused
        .report
        .refusal
        .clone()
        .expect("over the delete budget");
    assert_eq!(refusal.withheld.len(), 12);
    assert!(refused.plan.ops.is_empty());
    assert_eq!(shop.len(OBJ), 12, "nothing deleted unapproved");

    runner.approve(&refusal);
    let undone = block_on(runner.undo(first)).unwrap();
    assert!(undone.report.refusal.is_none());
    assert_eq!(undone.report.applied(), 12);
    assert_eq!(shop.len(OBJ), 0);
    assert_eq!(crm.len(OBJ), 12);
}

#[test]
fn sensitive_values_are_kept_but_never_printed_and_unjournaled_ones_not_kept() {
    let crm = MemoryConnector::new("crm");
    let shop = MemoryConnector::new("shop");
    let store = MemoryStore::new();
    let map = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status").sensitive())
        .field(Field::new("tax_id").not_journaled())
        .build()
        .unwrap();
    let runner = runner(&crm, &shop, &store, map);
    let c1 = crm.insert(
        OBJ,
        [
            ("email", json!("ada@example.com")),
            ("name", json!("Ada")),
            ("status", json!("secret-status")),
            ("tax_id", json!("DE-123")),
        ],
    );
    block_on(runner.run()).unwrap();
    crm.edit(
        OBJ,
        &c1,
        [
            ("status", json!("other-secret")),
            ("tax_id", json!("DE-456")),
        ],
    )
    .unwrap();
    let second = block_on(runner.run()).unwrap().run.unwrap();
    let entries = block_on(runner.journal(&JournalQuery::run(second))).unwrap();
    assert_eq!(entries.len(), 1);
    let printed = format!("{entries:?}");
    assert!(!printed.contains("secret"), "{printed}");
    assert!(!printed.contains("DE-"), "{printed}");
    // Kept for an undo, as data.
    let status = entries[0].field("status").unwrap();
    assert_eq!(status.before, Some(json!("secret-status")));
    // Not kept at all.
    assert!(entries[0].field("tax_id").is_none());
    assert_eq!(entries[0].omitted, vec!["tax_id".to_owned()]);
    let data = serde_json::to_string(&entries).unwrap();
    assert!(!data.contains("DE-"), "{data}");

    let shop_id = shop.records(OBJ)[0].id.clone();
    let history = block_on(runner.history("shop", &shop_id, "status")).unwrap();
    assert_eq!(history.len(), 2);
    let told = format!("{} / {:?}", history[1], history[1]);
    assert!(!told.contains("secret"), "{told}");
    assert!(told.contains("[redacted]"), "{told}");

    let undone = block_on(runner.undo(second)).unwrap();
    assert_eq!(
        shop.get(OBJ, &shop_id).unwrap().get("status"),
        Some(&json!("secret-status"))
    );
    assert_eq!(
        shop.get(OBJ, &shop_id).unwrap().get("tax_id"),
        Some(&json!("DE-456"))
    );
    assert!(undone
        .plan
        .held
        .iter()
        .any(|h| matches!(h.kind, HoldKind::NotJournaled { .. })
            && h.field.as_deref() == Some("tax_id")));
    assert!(!format!("{}", undone.plan).contains("secret"));
}

/// The sizes the journal's docs give: an entry, as stored (JSON), of a
/// one-field update and of a 20-field create of short values.
#[test]
fn an_entry_is_the_size_the_docs_say() {
    let mut builder = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .field(Field::new("email").case_insensitive());
    for i in 1..20 {
        builder = builder.field(Field::new(format!("field{i:02}")));
    }
    let (crm, shop, store) = (
        MemoryConnector::new("crm"),
        MemoryConnector::new("shop"),
        MemoryStore::new(),
    );
    let runner = runner(&crm, &shop, &store, builder.build().unwrap());
    let mut fields = vec![("email".to_owned(), json!("ada@example.com"))];
    for i in 1..20 {
        fields.push((format!("field{i:02}"), json!(format!("value {i}"))));
    }
    let c1 = crm.insert(OBJ, fields);
    block_on(runner.run()).unwrap();
    crm.edit(OBJ, &c1, [("field07", json!("changed"))]).unwrap();
    block_on(runner.run()).unwrap();
    let entries = block_on(runner.journal(&JournalQuery::all())).unwrap();
    let size = |i: usize| serde_json::to_vec(&entries[i]).unwrap().len();
    let (create, update) = (size(0), size(1));
    eprintln!("create of 20 fields: {create} bytes; update of 1 field: {update} bytes");
    assert_eq!(entries[0].fields.len(), 20);
    assert!((1_500..=2_500).contains(&create), "{create}");
    assert!((200..=360).contains(&update), "{update}");
}

#[test]
fn retention_bounds_the_journal_by_runs_and_by_age() {
    let clock = recsync::testkit::ManualClock::new("2026-03-01T09:00:00Z".parse().unwrap());
    let crm = MemoryConnector::builder("crm")
        .clock(clock.clone())
        .build()
        .unwrap();
    let shop = MemoryConnector::builder("shop")
        .clock(clock.clone())
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let keep = |retention| {
        SyncRunner::builder(SyncEngine::new(map()))
            .connector(crm.clone())
            .connector(shop.clone())
            .store(store.clone())
            .clock(clock.clone())
            .journal(retention)
            .build()
            .unwrap()
    };
    let by_runs = keep(Retention::runs(3));
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let mut runs = Vec::new();
    for i in 0..10 {
        crm.edit(OBJ, &c1, [("name", json!(format!("Ada {i}")))])
            .unwrap();
        runs.push(block_on(by_runs.run()).unwrap().run.unwrap());
        clock.advance(chrono::TimeDelta::days(1));
    }
    let kept: Vec<RunId> = block_on(by_runs.journal(&JournalQuery::all()))
        .unwrap()
        .iter()
        .map(|e| e.run)
        .collect();
    assert_eq!(kept, runs[7..].to_vec());
    assert!(matches!(
        block_on(by_runs.undo(runs[0])),
        Err(RunError::NotJournaled { .. })
    ));

    // By age: a week; the runs above were a day apart.
    let by_age = keep(Retention::age(chrono::TimeDelta::days(7)));
    for i in 0..10 {
        crm.edit(OBJ, &c1, [("name", json!(format!("Ada again {i}")))])
            .unwrap();
        block_on(by_age.run()).unwrap();
        clock.advance(chrono::TimeDelta::days(1));
    }
    let now = recsync::runner::Clock::now(&clock) - chrono::TimeDelta::days(1);
    let entries = block_on(by_age.journal(&JournalQuery::all())).unwrap();
    assert!(!entries.is_empty());
    for e in &entries {
        assert!(
            now - e.at <= chrono::TimeDelta::days(8),
            "{} kept at {now}",
            e.at
        );
    }
    assert_eq!(entries.len(), 8, "the runs of the last 7 days, and today's");
}

/// Found by review: an undo's values differ from the canonical ones on
/// purpose, so its writes made and not saved would read as a person's
/// edits and deletes. The baseline takes the undo as made before anything
/// is written.
#[test]
fn an_undo_whose_last_save_fails_loses_nothing() {
    for kind in ["update", "create"] {
        let (crm, shop) = (unconfirmed("crm"), unconfirmed("shop"));
        let store = FailingSaves::default();
        let runner = journaled(&crm, &shop, &store);
        let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
        let first = block_on(runner.run()).unwrap().run.unwrap();
        let mut undone = first;
        if kind == "update" {
            crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
            undone = block_on(runner.run()).unwrap().run.unwrap();
        }
        // The first save (the undo taken as made) goes through; the one
        // after the writes does not.
        store.fail_after(1);
        assert!(block_on(runner.undo(undone)).is_err(), "{kind}");
        if kind == "update" {
            assert_eq!(
                by_email(&shop, "ada@example.com").get("status"),
                Some(&json!("lead"))
            );
        } else {
            assert_eq!(shop.len(OBJ), 0);
        }
        for _ in 0..3 {
            block_on(runner.run()).unwrap();
        }
        let status = if kind == "update" { "customer" } else { "lead" };
        assert_eq!(
            crm.get(OBJ, &c1).map(|r| r.get("status").cloned()),
            Some(Some(json!(status))),
            "{kind}: the person's crm edit, or the record, was lost"
        );
        assert_eq!(shop.len(OBJ), 1, "{kind}");
        assert!(block_on(runner.dry_run()).unwrap().is_empty(), "{kind}");
    }
}

/// The connector dies after the undo's first write: what was written is
/// confirmed by the next read, what was not is found not made; no edit is
/// lost.
#[test]
fn an_undo_that_dies_mid_batch_loses_nothing() {
    let (crm, shop) = (unconfirmed("crm"), unconfirmed("shop"));
    let store = MemoryStore::new();
    // No retries: the call that dies is not made again in the undo.
    let runner = SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store.clone())
        .journal(Retention::forever())
        .retry(recsync::runner::RetryPolicy::new().max_attempts(1))
        .build()
        .unwrap();
    let ids: Vec<String> = (0..4)
        .map(|i| crm.insert(OBJ, contact(&format!("p{i}@example.com"), "P", "lead")))
        .collect();
    block_on(runner.run()).unwrap();
    for id in &ids {
        crm.edit(OBJ, id, [("status", json!("customer"))]).unwrap();
    }
    let second = block_on(runner.run()).unwrap().run.unwrap();
    shop.crash_after_ops(1);
    let undone = block_on(runner.undo(second)).unwrap();
    assert!(!undone.report.errors.is_empty());
    let put_back = shop
        .records(OBJ)
        .iter()
        .filter(|r| r.get("status") == Some(&json!("lead")))
        .count();
    assert_eq!(put_back, 1, "the write before the crash was made");
    shop.clear_faults();
    for _ in 0..3 {
        block_on(runner.run()).unwrap();
    }
    for id in &ids {
        assert_eq!(
            crm.get(OBJ, id).unwrap().get("status"),
            Some(&json!("customer"))
        );
    }
    for r in shop.records(OBJ) {
        assert_eq!(r.get("status"), Some(&json!("customer")));
    }
    assert!(block_on(runner.dry_run()).unwrap().is_empty());
}

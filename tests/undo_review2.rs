//! Probes from a second review of the undo, kept as tests: undo writes a
//! system refused are not awaited (q02a-c: a person's later delete of the
//! copy still propagates, and the copy keeps syncing); a write whose call
//! failed in a way that may have made it is read back (q01); a clock set
//! back does not make retention drop the newest run (q03a), and ids and
//! history keep their order under a clock that stands still (q03b); what an
//! entity remembers of records an undo deleted survives the JSON file and
//! SQLite stores (q04); a record made again while its match's delete is
//! held joins no dying entity (q05).
#![cfg(feature = "testkit")]

#[path = "common/undo.rs"]
mod undo_common;

use futures::executor::block_on;
use recsync::connector::ConnectorError;
use recsync::journal::{JournalQuery, Retention, RunId};
use recsync::runner::{RetryPolicy, SyncRunner};
use recsync::testkit::{ManualClock, MemoryConnector};
use recsync::{DeletePolicy, Field, FieldMap, Guards, MemoryStore, SyncEngine};
use serde_json::{json, Value};
use undo_common::{by_email, conn, contact, map, run, unconfirmed, OBJ};

fn runner(
    crm: &MemoryConnector,
    shop: &MemoryConnector,
    store: impl recsync::AsyncStateStore + 'static,
) -> SyncRunner {
    SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store)
        .journal(Retention::forever())
        .retry(RetryPolicy::new().max_attempts(1))
        .build()
        .unwrap()
}

fn status(c: &MemoryConnector, email: &str) -> Option<Value> {
    by_email(c, email).and_then(|r| r.get("status").cloned())
}

/// Run 1 syncs Ada (lead); a person sets her status to customer in the
/// crm; run 2 writes it to the shop. Returns (crm id, run 2).
fn two_runs(crm: &MemoryConnector, r: &SyncRunner) -> (String, RunId) {
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(r);
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let second = run(r);
    (c1, second)
}

// ---------------------------------------------------------------------
// 1. An undo update refused by the system (failed, not made).

/// Full reads: the failed write is found not made, nothing lost.
#[test]
fn q01a_failed_undo_update_full_read() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let r = runner(&crm, &shop, MemoryStore::new());
    let (c1, second) = two_runs(&crm, &r);
    shop.fail_ops_in_next_apply([0], ConnectorError::precondition_failed("edited"));
    let u = block_on(r.undo(second)).unwrap();
    eprintln!(
        "report: errors {:?} run {:?}",
        u.report.errors, u.report.run
    );
    assert!(
        !u.report.errors.is_empty(),
        "the failed write is not reported"
    );
    assert_eq!(status(&shop, "ada@example.com"), Some(json!("customer")));
    // The person now sets the crm back to the undo's value by hand.
    crm.edit(OBJ, &c1, [("status", json!("lead"))]).unwrap();
    run(&r);
    run(&r);
    assert_eq!(status(&crm, "ada@example.com"), Some(json!("lead")));
    assert_eq!(
        status(&shop, "ada@example.com"),
        Some(json!("lead")),
        "diverged"
    );
    assert!(block_on(r.dry_run()).unwrap().is_empty());
}

/// Incremental shop: the shop record the undo failed to write is not in
/// the next change feed; the baseline believes it holds the undo's value.
#[test]
fn q01b_failed_undo_update_incremental_then_crm_edit_to_that_value() {
    let (crm, shop) = (unconfirmed("crm"), unconfirmed("shop"));
    let r = runner(&crm, &shop, MemoryStore::new());
    let (c1, second) = two_runs(&crm, &r);
    shop.fail_ops_in_next_apply([0], ConnectorError::permanent("refused"));
    let u = block_on(r.undo(second)).unwrap();
    assert!(!u.report.errors.is_empty());
    assert_eq!(status(&shop, "ada@example.com"), Some(json!("customer")));
    run(&r);
    // A person sets the crm to the value the failed undo would have put in
    // the shop.
    crm.edit(OBJ, &c1, [("status", json!("lead"))]).unwrap();
    for _ in 0..3 {
        run(&r);
    }
    assert_eq!(status(&crm, "ada@example.com"), Some(json!("lead")));
    assert_eq!(
        status(&shop, "ada@example.com"),
        Some(json!("lead")),
        "the shop never gets the crm's edit: the baseline took the failed undo write as made"
    );
}

/// Same, but the next full sync never comes: does a second undo fix it?
#[test]
fn q01c_failed_undo_update_incremental_repeated_undo() {
    let (crm, shop) = (unconfirmed("crm"), unconfirmed("shop"));
    let r = runner(&crm, &shop, MemoryStore::new());
    let (_c1, second) = two_runs(&crm, &r);
    shop.fail_ops_in_next_apply([0], ConnectorError::permanent("refused"));
    let u = block_on(r.undo(second)).unwrap();
    assert!(!u.report.errors.is_empty());
    let again = block_on(r.undo(second)).unwrap();
    eprintln!("again: {}", again.plan);
    assert!(again.report.errors.is_empty());
    assert_eq!(status(&shop, "ada@example.com"), Some(json!("lead")));
    for _ in 0..3 {
        run(&r);
    }
    assert_eq!(status(&crm, "ada@example.com"), Some(json!("customer")));
    assert_eq!(status(&shop, "ada@example.com"), Some(json!("customer")));
}

/// Failed, retried at once, and the second fails too: then runs.
#[test]
fn q01d_undo_update_fails_twice_then_runs() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let r = runner(&crm, &shop, MemoryStore::new());
    let (c1, second) = two_runs(&crm, &r);
    for _ in 0..2 {
        shop.fail_ops_in_next_apply([0], ConnectorError::permanent("refused"));
        let u = block_on(r.undo(second)).unwrap();
        assert!(!u.report.errors.is_empty());
    }
    // A person edits the shop record meanwhile.
    let s1 = by_email(&shop, "ada@example.com").unwrap().id;
    shop.edit(OBJ, &s1, [("status", json!("vip"))]).unwrap();
    for _ in 0..3 {
        run(&r);
    }
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("vip"))
    );
    assert_eq!(status(&shop, "ada@example.com"), Some(json!("vip")));
}

// ---------------------------------------------------------------------
// 2. An undo delete (of a record the run created) that fails.

#[test]
fn q02a_failed_undo_delete_full_read_then_person_deletes_shop_copy() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let r = runner(&crm, &shop, MemoryStore::new());
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    shop.fail_ops_in_next_apply([0], ConnectorError::permanent("refused"));
    let u = block_on(r.undo(first)).unwrap();
    assert!(!u.report.errors.is_empty());
    assert_eq!(shop.len(OBJ), 1);
    run(&r);
    assert!(block_on(r.dry_run()).unwrap().is_empty());
    // The repeated undo deletes it.
    let again = block_on(r.undo(first)).unwrap();
    eprintln!("again: {}", again.plan);
    assert_eq!(shop.len(OBJ), 0, "repeated undo does not delete");
    run(&r);
    run(&r);
    assert!(crm.get(OBJ, &c1).is_some());
    assert_eq!(shop.len(OBJ), 1);
}

/// Failed undo delete, then a person deletes the shop copy: with deletes
/// propagated, the crm record goes (a person's delete, not the undo's).
#[test]
fn q02b_failed_undo_delete_then_person_deletes_shop_copy() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let r = runner(&crm, &shop, MemoryStore::new());
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    shop.fail_ops_in_next_apply([0], ConnectorError::permanent("refused"));
    let _ = block_on(r.undo(first)).unwrap();
    let s1 = shop.records(OBJ)[0].id.clone();
    shop.delete(OBJ, &s1).unwrap();
    for _ in 0..3 {
        run(&r);
    }
    eprintln!("crm {:?} shop {:?}", crm.records(OBJ), shop.records(OBJ));
    assert!(
        crm.get(OBJ, &c1).is_none(),
        "a person's delete of the shop copy is taken for the failed undo's delete"
    );
}

/// Incremental shop: the failed delete is never seen not made.
#[test]
fn q02c_failed_undo_delete_unconfirmed() {
    let (crm, shop) = (unconfirmed("crm"), unconfirmed("shop"));
    let r = runner(&crm, &shop, MemoryStore::new());
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    run(&r);
    shop.fail_ops_in_next_apply([0], ConnectorError::permanent("refused"));
    let u = block_on(r.undo(first)).unwrap();
    assert!(!u.report.errors.is_empty());
    for _ in 0..2 {
        run(&r);
    }
    // The crm is edited: does the shop copy (still there) get it?
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    for _ in 0..4 {
        let rep = block_on(r.run()).unwrap();
        eprintln!("issues {:?} errors {:?}", rep.issues, rep.errors);
    }
    assert_eq!(shop.len(OBJ), 1);
    assert_eq!(
        status(&shop, "ada@example.com"),
        Some(json!("customer")),
        "the live shop copy is taken for deleted and no longer synced"
    );
}

// ---------------------------------------------------------------------
// 3. Run ids from the clock.

/// The runner's clock steps back (NTP, another host): the newest run gets
/// the smaller id, and retention by runs drops it as it is saved.
#[test]
fn q03a_clock_stepping_back_loses_the_newest_run() {
    let clock = ManualClock::new("2026-03-01T09:00:00Z".parse().unwrap());
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store.clone())
        .clock(clock.clone())
        .journal(Retention::runs(1))
        .build()
        .unwrap();
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    clock.set("2026-03-01T08:59:00Z".parse().unwrap());
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let second = run(&r);
    let kept: Vec<RunId> = block_on(r.journal(&JournalQuery::all()))
        .unwrap()
        .iter()
        .map(|e| e.run)
        .collect();
    assert!(
        kept.contains(&second),
        "the newest run's journal was dropped: kept {kept:?}, newest {second:?}"
    );
    block_on(r.undo(second)).unwrap();
}

/// A clock that does not move: ids ordered by revision modulo 1,000.
#[test]
fn q03b_still_clock_ids_and_history_order() {
    let clock = ManualClock::new("2026-03-01T09:00:00Z".parse().unwrap());
    let (crm, shop) = (conn("crm"), conn("shop"));
    let r = SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(MemoryStore::new())
        .clock(clock.clone())
        .journal(Retention::runs(3))
        .build()
        .unwrap();
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let mut ids = Vec::new();
    for i in 0..6 {
        crm.edit(OBJ, &c1, [("name", json!(format!("Ada {i}")))])
            .unwrap();
        ids.push(run(&r));
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids not increasing with a still clock");
    let s1 = by_email(&shop, "ada@example.com").unwrap().id;
    let h = block_on(r.history("shop", &s1, "name")).unwrap();
    let to: Vec<_> = h.iter().map(|c| c.to.clone()).collect();
    eprintln!("{to:?}");
    assert_eq!(to.last().cloned().flatten(), Some(json!("Ada 5")));
}

// ---------------------------------------------------------------------
// 4. The memory of records an undo deleted, through each store.

fn undo_create_then_tombstone(store: impl recsync::AsyncStateStore + Clone + 'static) {
    let crm = MemoryConnector::builder("crm")
        .id_prefix("c")
        .incremental_fetch(true)
        .fetch_by_ids(false)
        .build()
        .unwrap();
    let shop = MemoryConnector::builder("shop")
        .id_prefix("s")
        .incremental_fetch(true)
        .fetch_by_ids(false)
        .build()
        .unwrap();
    let mk = || {
        SyncRunner::builder(SyncEngine::new(map()))
            .connector(crm.clone())
            .connector(shop.clone())
            .store(store.clone())
            .read_back(false)
            .journal(Retention::forever())
            .build()
            .unwrap()
    };
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&mk());
    run(&mk());
    let u = block_on(mk().undo(first)).unwrap();
    assert!(u.report.errors.is_empty());
    assert_eq!(shop.len(OBJ), 0);
    for _ in 0..3 {
        // A fresh runner each time: the baseline is loaded from the store.
        run(&mk());
    }
    assert!(crm.get(OBJ, &c1).is_some(), "crm record deleted");
    assert_eq!(shop.len(OBJ), 1);
    assert!(block_on(mk().dry_run()).unwrap().is_empty());
}

#[test]
fn q04a_undone_memory_json_file_store() {
    let dir = std::env::temp_dir().join(format!("review2-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = recsync::store::JsonFileStore::open(&dir).unwrap();
    undo_create_then_tombstone(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "sqlite")]
#[test]
fn q04b_undone_memory_sqlite_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("review2-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = recsync::store::SqliteStore::open(dir.join("state.db")).unwrap();
    undo_create_then_tombstone(store);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------
// 5. Identity: a record joining an entity whose crm record was deleted
// and whose shop delete is held (DeletePolicy::Hold).

#[test]
fn q05_recreated_crm_record_joins_entity_with_held_delete() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let map = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Hold)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status"))
        .build()
        .unwrap();
    let r = SyncRunner::builder(SyncEngine::new(map))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(MemoryStore::new())
        .build()
        .unwrap();
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.delete(OBJ, &c1).unwrap();
    let _ = block_on(r.run()).unwrap();
    crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let _ = block_on(r.run()).unwrap();
    let _ = block_on(r.run()).unwrap();
    eprintln!("crm {} shop {}", crm.len(OBJ), shop.len(OBJ));
    assert_eq!(shop.len(OBJ), 1, "duplicate in the shop");
    assert_eq!(crm.len(OBJ), 1, "duplicate in the crm");
}

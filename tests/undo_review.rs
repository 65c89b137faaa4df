//! Probes from a review of the write journal and undo, kept as tests: each
//! was a defect or a doubt, and each asserts what holds now. Among them:
//! a repeated undo does not bring back a record a person deleted (p04);
//! writes an undo cannot make (a system now read-only) are reported (p05);
//! run ids are not reused after a baseline is replaced or restored (p06,
//! p06b); a field marked sensitive after the run is not printed (p10);
//! contacts find their company again after an undo of the companies'
//! creates (p15); a created record a person edited in a field the map does
//! not sync is not deleted (p22); a delete is not undone without the
//! values the journal does not keep (p23); an undo of an undo after the
//! run was done again makes no duplicate (p25). A system that stores its
//! own form of a value, not yet read back, is held, never overwritten
//! (p02a, p02b, p02e).
#![cfg(feature = "testkit")]

#[path = "common/undo.rs"]
mod undo_common;

use futures::executor::block_on;
use recsync::connector::Connector;
use recsync::journal::{JournalQuery, Retention, RunId};
use recsync::runner::SyncRunner;
use recsync::testkit::{MemoryConnector, Rewrite};
use recsync::{DeletePolicy, Field, FieldMap, Guards, MemoryStore, SyncEngine};
use serde_json::{json, Value};
use undo_common::{by_email, conn, contact, journaled, map, map_of, run, FailingSaves, OBJ};

fn runner_with(
    systems: &[&MemoryConnector],
    store: &MemoryStore,
    map: FieldMap,
    read_back: bool,
) -> SyncRunner {
    let mut b = SyncRunner::builder(SyncEngine::new(map))
        .store(store.clone())
        .read_back(read_back)
        .journal(Retention::forever());
    for c in systems {
        b = b.connector((*c).clone());
    }
    b.build().unwrap()
}

fn held_changed(plan: &recsync::SyncPlan) -> bool {
    plan.held
        .iter()
        .any(|h| matches!(h.kind, recsync::plan::HoldKind::ChangedSince { .. }))
}

// ---------------------------------------------------------------------
// 1. Only the memory store keeps a journal.

#[test]
fn p01_json_file_store_keeps_the_journal() {
    let dir = std::env::temp_dir().join(format!("review20-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = recsync::store::JsonFileStore::open(&dir).unwrap();
    let (crm, shop) = (conn("crm"), conn("shop"));
    let runner = SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store)
        .journal(Retention::forever())
        .build()
        .unwrap();
    crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&runner);
    let listed = block_on(runner.journal(&JournalQuery::all()));
    let undo = block_on(runner.undo(first));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        listed.as_ref().is_ok_and(|l| l.len() == 1),
        "journal() on JsonFileStore: {listed:?}"
    );
    assert!(undo.is_ok(), "undo on JsonFileStore: {:?}", undo.err());
}

// ---------------------------------------------------------------------
// 2. A system that stores its own form of a value, without read-back:
// the run's own write reads as "changed since".

fn rewriting_shop(report_stored: bool) -> MemoryConnector {
    MemoryConnector::builder("shop")
        .id_prefix("s")
        .fetch_by_ids(true)
        .rewrite("name", Rewrite::Trim)
        .report_stored(report_stored)
        .build()
        .unwrap()
}

#[test]
fn p02a_update_to_rewriting_system_without_read_back_is_undone() {
    let (crm, shop) = (conn("crm"), rewriting_shop(false));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), false);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("name", json!("Ada L. "))]).unwrap();
    let second = run(&r);
    assert_eq!(
        by_email(&shop, "ada@example.com").unwrap().get("name"),
        Some(&json!("Ada L."))
    );
    // The form the shop stores is not known until a read shows it: the
    // field is held as changed since, and nothing is overwritten.
    let undone = block_on(r.undo(second)).unwrap();
    assert!(held_changed(&undone.plan), "{}", undone.plan);
    assert_eq!(
        by_email(&shop, "ada@example.com").unwrap().get("name"),
        Some(&json!("Ada L."))
    );
}

#[test]
fn p02b_create_in_rewriting_system_without_read_back_is_undone() {
    let (crm, shop) = (conn("crm"), rewriting_shop(false));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), false);
    crm.insert(OBJ, contact("ada@example.com", " Ada ", "lead"));
    let first = run(&r);
    // Not read back: the record's stored form is not known, so it is
    // held, not deleted on trust.
    let undone = block_on(r.undo(first)).unwrap();
    assert!(held_changed(&undone.plan), "{}", undone.plan);
    assert_eq!(shop.len(OBJ), 1);
}

#[test]
fn p02c_create_in_rewriting_system_with_read_back_is_undone() {
    let (crm, shop) = (conn("crm"), rewriting_shop(false));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    crm.insert(OBJ, contact("ada@example.com", " Ada ", "lead"));
    let first = run(&r);
    let undone = block_on(r.undo(first)).unwrap();
    assert!(undone.plan.held.is_empty(), "{}", undone.plan);
    assert_eq!(shop.len(OBJ), 0);
}

#[test]
fn p02d_update_to_rewriting_system_after_a_later_run_saw_the_form() {
    // Without read-back, the next run reads the system's form and learns
    // it; the journal keeps what was sent.
    let (crm, shop) = (conn("crm"), rewriting_shop(false));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), false);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("name", json!("Ada L. "))]).unwrap();
    let second = run(&r);
    run(&r);
    let undone = block_on(r.undo(second)).unwrap();
    assert!(undone.plan.held.is_empty(), "{}", undone.plan);
}

// ---------------------------------------------------------------------
// 3. A crash between an undo's writes and its save.

/// Plans the undo of `run` as the runner would, applies its ops to the
/// systems and saves nothing: a process that died after writing.

// ---------------------------------------------------------------------
// 4. A repeated undo brings back a record a person deleted since.

#[test]
fn p04_repeated_undo_does_not_recreate_a_record_deleted_since() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.delete(OBJ, &c1).unwrap();
    let deleting = run(&r);
    assert_eq!(shop.len(OBJ), 0);
    let undone = block_on(r.undo(deleting)).unwrap();
    assert_eq!(undone.plan.ops.len(), 1);
    assert_eq!(shop.len(OBJ), 1);
    // A person deletes the record the undo made, before any run.
    let back = shop.records(OBJ)[0].id.clone();
    shop.delete(OBJ, &back).unwrap();
    let again = block_on(r.undo(deleting)).unwrap();
    assert!(
        again.plan.ops.is_empty(),
        "the repeated undo creates the record again: {}",
        again.plan
    );
    assert_eq!(shop.len(OBJ), 0);
}

// ---------------------------------------------------------------------
// 5. Undo after the map made a system read-only: nothing said.

#[test]
fn p05_undo_into_a_system_now_read_only_is_reported() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let second = run(&r);
    let ro = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .read_only("shop")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status"))
        .build()
        .unwrap();
    let r2 = runner_with(&[&crm, &shop], &store, ro, true);
    let undone = block_on(r2.undo(second)).unwrap();
    assert!(
        !undone.plan.held.is_empty() || !undone.plan.read_only.is_empty(),
        "the shop write not undone is not reported: held {:?}, report held {}",
        undone.plan.held,
        undone.report.held
    );
}

// ---------------------------------------------------------------------
// 6. Run ids after the state is replaced (the documented start-over).

#[test]
fn p06_run_ids_are_not_reused_after_replace() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    // Start over, as the store docs describe.
    recsync::StateStore::replace(&store, OBJ, &recsync::Baseline::default()).unwrap();
    crm.insert(OBJ, contact("bob@example.com", "Bob", "lead"));
    let again = run(&r);
    assert_ne!(first, again, "run id reused");
}

// ---------------------------------------------------------------------
// 2e. Update into a rewriting system with read-back on but no versions.

#[test]
fn p02e_update_to_rewriting_system_without_versions_is_undone() {
    let shop = MemoryConnector::builder("shop")
        .id_prefix("s")
        .fetch_by_ids(true)
        .versions(false)
        .rewrite("name", Rewrite::Trim)
        .build()
        .unwrap();
    let crm = conn("crm");
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("name", json!("Ada L. "))]).unwrap();
    let second = run(&r);
    // Without versions the read-back cannot tell the shop's form from an
    // edit: held, nothing overwritten.
    let undone = block_on(r.undo(second)).unwrap();
    assert!(held_changed(&undone.plan), "{}", undone.plan);
    assert_eq!(
        by_email(&shop, "ada@example.com").unwrap().get("name"),
        Some(&json!("Ada L."))
    );
}

// ---------------------------------------------------------------------
// 7. Three systems: a create undone where one copy was edited since.

#[test]
fn p07_three_systems_create_undo_with_one_copy_edited() {
    let (crm, shop, erp) = (conn("crm"), conn("shop"), conn("erp"));
    let store = MemoryStore::new();
    let r = runner_with(
        &[&crm, &shop, &erp],
        &store,
        map_of(&["crm", "shop", "erp"]),
        true,
    );
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    assert_eq!((shop.len(OBJ), erp.len(OBJ)), (1, 1));
    let e1 = erp.records(OBJ)[0].id.clone();
    erp.edit(OBJ, &e1, [("name", json!("Ada (erp)"))]).unwrap();
    let undone = block_on(r.undo(first)).unwrap();
    assert!(undone.report.errors.is_empty(), "{:?}", undone.report);
    assert_eq!(shop.len(OBJ), 0);
    assert_eq!(erp.len(OBJ), 1);
    assert_eq!(undone.plan.held.len(), 1, "{}", undone.plan);
    for _ in 0..3 {
        run(&r);
    }
    assert!(crm.get(OBJ, &c1).is_some(), "crm record deleted");
    assert!(erp.get(OBJ, &e1).is_some(), "edited erp record deleted");
    assert_eq!(
        erp.get(OBJ, &e1).unwrap().get("name"),
        Some(&json!("Ada (erp)")),
        "the erp edit was lost"
    );
    assert_eq!(shop.len(OBJ), 1);
    assert!(block_on(r.dry_run()).unwrap().is_empty());
}

// ---------------------------------------------------------------------
// 8. Incremental reads: values before of an update whose target did not
// change (not in the read) come from the baseline.

fn incremental(system: &str) -> MemoryConnector {
    MemoryConnector::builder(system)
        .id_prefix(&system[..1])
        .incremental_fetch(true)
        .fetch_by_ids(true)
        .build()
        .unwrap()
}

#[test]
fn p08_incremental_before_values() {
    let (crm, shop) = (incremental("crm"), incremental("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    run(&r);
    let s1 = shop.records(OBJ)[0].id.clone();
    shop.edit(OBJ, &s1, [("status", json!("vip"))]).unwrap();
    let second = run(&r);
    let entries = block_on(r.journal(&JournalQuery::run(second))).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].record_id, c1);
    let f = entries[0].field("status").unwrap();
    assert_eq!(f.before, Some(json!("lead")));
    assert_eq!(f.after, Some(json!("vip")));
    let undone = block_on(r.undo(second)).unwrap();
    assert!(undone.plan.held.is_empty(), "{}", undone.plan);
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("lead"))
    );
    // The next run writes it again; the shop's value stays.
    run(&r);
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("vip"))
    );
    assert_eq!(
        shop.get(OBJ, &s1).unwrap().get("status"),
        Some(&json!("vip"))
    );
}

#[test]
fn p08b_incremental_delete_before_values() {
    let (crm, shop) = (incremental("crm"), incremental("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    run(&r);
    crm.delete(OBJ, &c1).unwrap();
    let deleting = run(&r);
    assert_eq!(shop.len(OBJ), 0);
    let entries = block_on(r.journal(&JournalQuery::run(deleting))).unwrap();
    assert_eq!(entries.len(), 1);
    let names: Vec<_> = entries[0].fields.iter().map(|f| f.field.clone()).collect();
    assert_eq!(names, ["email", "name", "status"]);
    let undone = block_on(r.undo(deleting)).unwrap();
    assert!(undone.report.errors.is_empty());
    assert_eq!(shop.len(OBJ), 1);
    let back = &shop.records(OBJ)[0];
    assert_eq!(back.get("name"), Some(&json!("Ada")));
    assert_eq!(back.get("status"), Some(&json!("lead")));
}

// ---------------------------------------------------------------------
// 12. Undo of an undo; undo of an old run after later runs.

#[test]
fn p12_undo_of_an_undo_restores_the_run() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let second = run(&r);
    let undone = block_on(r.undo(second)).unwrap();
    let u = undone.report.run.unwrap();
    let s1 = shop.records(OBJ)[0].id.clone();
    assert_eq!(
        shop.get(OBJ, &s1).unwrap().get("status"),
        Some(&json!("lead"))
    );
    let redone = block_on(r.undo(u)).unwrap();
    assert!(redone.plan.held.is_empty(), "{}", redone.plan);
    assert_eq!(
        shop.get(OBJ, &s1).unwrap().get("status"),
        Some(&json!("customer"))
    );
    assert!(block_on(r.dry_run()).unwrap().is_empty());
}

#[test]
fn p12b_undo_of_an_old_run_after_later_runs_holds() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let second = run(&r);
    crm.edit(OBJ, &c1, [("status", json!("vip"))]).unwrap();
    run(&r);
    let undone = block_on(r.undo(second)).unwrap();
    assert!(undone.plan.ops.is_empty());
    assert_eq!(undone.plan.held.len(), 1);
    let s1 = shop.records(OBJ)[0].id.clone();
    assert_eq!(
        shop.get(OBJ, &s1).unwrap().get("status"),
        Some(&json!("vip"))
    );
}

// ---------------------------------------------------------------------
// 10. A field marked sensitive after the run: the journal prints it.

#[test]
fn p10_field_marked_sensitive_later_is_not_printed() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "secret-1"));
    run(&r);
    crm.edit(OBJ, &c1, [("status", json!("secret-2"))]).unwrap();
    let second = run(&r);
    let marked = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status").sensitive())
        .build()
        .unwrap();
    let r2 = runner_with(&[&crm, &shop], &store, marked, true);
    let s1 = shop.records(OBJ)[0].id.clone();
    let history = block_on(r2.history("shop", &s1, "status")).unwrap();
    let plan = block_on(r2.plan_undo(second)).unwrap();
    let printed = format!(
        "{:?} {} {plan} {plan:?}",
        history,
        history
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(";")
    );
    assert!(!printed.contains("secret"), "{printed}");
}

// ---------------------------------------------------------------------
// 14. Approving an undo's refusal, previewing it, then undoing.

/// Doubtful: a plain `dry_run` uses up approvals the same way.
// ---------------------------------------------------------------------
// 6b. Run ids after a backup is restored: undo of the new run takes back
// an old run's writes too.

#[test]
fn p06b_undo_after_restoring_a_backup_undoes_only_that_run() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    let backup = recsync::StateStore::load(&store, OBJ).unwrap();
    crm.insert(OBJ, contact("bob@example.com", "Bob", "lead"));
    let old = run(&r);
    assert_eq!(shop.len(OBJ), 2);
    recsync::StateStore::replace(&store, OBJ, &backup).unwrap();
    // A later run (after the restore) changes Ada only.
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let new = run(&r);
    assert_ne!(old, new, "run id reused");
    let undone = block_on(r.undo(new)).unwrap();
    assert_eq!(
        shop.len(OBJ),
        2,
        "the undo of the new run deleted the shop Bob: {}",
        undone.plan
    );
}

// ---------------------------------------------------------------------
// 3c. An undo write that took effect but whose answer was lost (the call
// failed after making it): no process crash at all.

#[test]
fn p03c_lost_answer_to_an_undo_update_keeps_the_crm_edit() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let second = run(&r);
    shop.crash_after_ops(1);
    let undone = block_on(r.undo(second)).unwrap();
    shop.clear_faults();
    eprintln!("undo report: {:?}", undone.report.errors);
    assert_eq!(
        by_email(&shop, "ada@example.com").unwrap().get("status"),
        Some(&json!("lead"))
    );
    run(&r);
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("customer")),
        "the person's crm edit was overwritten by the undo's value"
    );
}

#[test]
fn p03d_lost_answer_to_an_undo_delete_keeps_the_counterpart() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    shop.crash_after_ops(1);
    let undone = block_on(r.undo(first)).unwrap();
    shop.clear_faults();
    eprintln!("undo report: {:?}", undone.report.errors);
    assert_eq!(shop.len(OBJ), 0);
    run(&r);
    run(&r);
    assert!(
        crm.get(OBJ, &c1).is_some(),
        "the crm record was deleted because an undo deleted its shop copy"
    );
}

// ---------------------------------------------------------------------
// 11. A store that refuses the next save (a PostgresStore conflict, a full
// disk): the writes were made, nothing saved.

#[test]
fn p11a_undo_whose_save_fails_then_next_run_keeps_the_crm_edit() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = FailingSaves::default();
    let r = journaled(&crm, &shop, &store);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.edit(OBJ, &c1, [("status", json!("customer"))]).unwrap();
    let second = run(&r);
    store.fail_after(0);
    let err = block_on(r.undo(second));
    assert!(err.is_err());
    // The host retries the undo, as an error invites.
    let again = block_on(r.undo(second)).unwrap();
    eprintln!("retried undo: {}", again.plan);
    run(&r);
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("customer")),
        "the person's crm edit was overwritten by the undo's value"
    );
}

// ---------------------------------------------------------------------
// 15. Rekey and reference fields: an undo of a first sync of companies
// and their contacts, then the runs again.

fn companies_map() -> FieldMap {
    FieldMap::builder()
        .object("companies")
        .systems(["crm", "shop"])
        .key("domain")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("domain").case_insensitive())
        .field(Field::new("name"))
        .build()
        .unwrap()
}

fn contacts_map() -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(Field::new("company").references("companies"))
        .build()
        .unwrap()
}

/// A company and a contact pointing at it, synced from the crm to the
/// shop; the contacts' first sync undone and, with `companies_too`, the
/// companies' after it; then three rounds of runs. The contact is created
/// again, pointing at the shop's company.
fn undo_first_syncs(companies_too: bool) {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let runner = |map: FieldMap, parent: Option<&str>| {
        let mut b = SyncRunner::builder(SyncEngine::new(map))
            .connector(crm.clone())
            .connector(shop.clone())
            .store(store.clone())
            .journal(Retention::forever());
        if let Some(p) = parent {
            b = b.parent(p);
        }
        b.build().unwrap()
    };
    let companies = runner(companies_map(), None);
    let contacts = runner(contacts_map(), Some("companies"));
    let acme = crm.insert(
        "companies",
        [("domain", json!("acme.com")), ("name", json!("Acme"))],
    );
    crm.insert(
        OBJ,
        [("email", json!("ada@acme.com")), ("company", json!(acme))],
    );
    let co1 = run(&companies);
    let ct1 = run(&contacts);
    assert_eq!((shop.len("companies"), shop.len(OBJ)), (1, 1));
    // Contacts first.
    let u = block_on(contacts.undo(ct1)).unwrap();
    assert!(u.report.errors.is_empty());
    if companies_too {
        let u = block_on(companies.undo(co1)).unwrap();
        assert!(u.report.errors.is_empty());
    }
    let companies_left = usize::from(!companies_too);
    assert_eq!((shop.len("companies"), shop.len(OBJ)), (companies_left, 0));
    for _ in 0..3 {
        run(&companies);
        let report = block_on(contacts.run()).unwrap();
        assert!(report.errors.is_empty());
    }
    let plan = block_on(contacts.dry_run()).unwrap();
    assert_eq!(shop.len("companies"), 1);
    assert_eq!(shop.len(OBJ), 1, "the contact is not created again: {plan}");
    let shop_acme = shop.records("companies")[0].id.clone();
    assert_eq!(shop.records(OBJ)[0].get("company"), Some(&json!(shop_acme)));
}

#[test]
fn p15_contacts_find_their_company_again_after_the_company_undo() {
    undo_first_syncs(true);
}

/// Control for p15: without the company undo.
#[test]
fn p15b_control_without_the_company_undo() {
    undo_first_syncs(false);
}

// ---------------------------------------------------------------------
// 16. The emptied-field guard withholds part of an undo's update.

#[test]
fn p16_emptied_field_withheld_then_runs_converge() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let guarded = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off().emptied_fields(recsync::Budget::new(0, 0.0)))
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status"))
        .build()
        .unwrap();
    let r = runner_with(&[&crm, &shop], &store, guarded, true);
    let c1 = crm.insert(
        OBJ,
        [("email", json!("ada@example.com")), ("name", json!("Ada"))],
    );
    run(&r);
    crm.edit(
        OBJ,
        &c1,
        [("status", json!("customer")), ("name", json!("Ada L."))],
    )
    .unwrap();
    let second = run(&r);
    let s1 = shop.records(OBJ)[0].id.clone();
    let undone = block_on(r.undo(second)).unwrap();
    assert!(undone.report.refusal.is_some());
    assert_eq!(undone.plan.ops.len(), 1, "{}", undone.plan);
    assert_eq!(shop.get(OBJ, &s1).unwrap().get("name"), Some(&json!("Ada")));
    assert_eq!(
        shop.get(OBJ, &s1).unwrap().get("status"),
        Some(&json!("customer"))
    );
    for _ in 0..3 {
        run(&r);
    }
    assert_eq!(
        shop.get(OBJ, &s1).unwrap().get("name"),
        Some(&json!("Ada L."))
    );
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("customer"))
    );
    assert!(block_on(r.dry_run()).unwrap().is_empty());
}

// ---------------------------------------------------------------------
// 17. A created record undone twice over the same entity (the next run
// recreates it, whose run is undone again): ids and links stay right.

#[test]
fn p17_create_undone_twice() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    block_on(r.undo(first)).unwrap();
    assert_eq!(shop.len(OBJ), 0);
    let again = run(&r);
    assert_eq!(shop.len(OBJ), 1);
    let u = block_on(r.undo(again)).unwrap();
    assert!(u.plan.held.is_empty(), "{}", u.plan);
    assert_eq!(shop.len(OBJ), 0);
    run(&r);
    run(&r);
    assert_eq!(shop.len(OBJ), 1);
    assert!(crm.get(OBJ, &c1).is_some());
    // Undo of the first run again: nothing.
    let u = block_on(r.plan_undo(first)).unwrap();
    assert!(u.ops.is_empty(), "{u}");
    assert!(block_on(r.dry_run()).unwrap().is_empty());
}

// ---------------------------------------------------------------------
// 18. Incremental connectors without read-back: undo of a create, then
// the tombstone of the deleted copy in the next incremental read.

#[test]
fn p18_incremental_create_undo_does_not_delete_the_source() {
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
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), false);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    run(&r);
    let u = block_on(r.undo(first)).unwrap();
    assert!(u.report.errors.is_empty());
    assert_eq!(shop.len(OBJ), 0);
    for _ in 0..3 {
        run(&r);
    }
    assert!(crm.get(OBJ, &c1).is_some(), "crm record deleted");
    assert_eq!(shop.len(OBJ), 1);
}

// ---------------------------------------------------------------------
// 19. A stale write replanned in the same run: the run's journal, then
// its undo.

/// What a `Hooked` connector does once, before its next apply.
type Hook = Box<dyn FnOnce(&MemoryConnector) + Send>;

#[derive(Clone)]
struct Hooked {
    inner: MemoryConnector,
    hook: std::sync::Arc<std::sync::Mutex<Option<Hook>>>,
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooked")
    }
}

#[async_trait::async_trait]
impl Connector for Hooked {
    fn system(&self) -> &recsync::SystemId {
        self.inner.system()
    }
    fn capabilities(&self) -> recsync::connector::Capabilities {
        self.inner.capabilities()
    }
    async fn fetch(&self, object: &str) -> Result<recsync::Snapshot, recsync::ConnectorError> {
        self.inner.fetch(object).await
    }
    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&recsync::connector::Cursor>,
    ) -> Result<recsync::connector::Changes, recsync::ConnectorError> {
        self.inner.fetch_changes(object, cursor).await
    }
    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<recsync::Snapshot, recsync::ConnectorError> {
        self.inner.fetch_records(object, ids).await
    }
    async fn apply(
        &self,
        object: &str,
        ops: &[recsync::WriteOp],
    ) -> Result<
        Vec<Result<recsync::connector::Applied, recsync::ConnectorError>>,
        recsync::ConnectorError,
    > {
        let hook = self.hook.lock().unwrap().take();
        if let Some(f) = hook {
            f(&self.inner);
        }
        self.inner.apply(object, ops).await
    }
}

#[test]
fn p19_replanned_stale_write_is_journaled_and_undone() {
    let (crm, shop_inner) = (conn("crm"), conn("shop"));
    let shop = Hooked {
        inner: shop_inner.clone(),
        hook: Default::default(),
    };
    let store = MemoryStore::new();
    let r = SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store.clone())
        .journal(Retention::forever())
        .build()
        .unwrap();
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    let s1 = shop_inner.records(OBJ)[0].id.clone();
    crm.edit(OBJ, &c1, [("name", json!("Ada Lovelace"))])
        .unwrap();
    let id = s1.clone();
    *shop.hook.lock().unwrap() = Some(Box::new(move |c: &MemoryConnector| {
        c.edit(OBJ, &id, [("status", json!("vip"))]).unwrap();
    }));
    let report = block_on(r.run()).unwrap();
    assert_eq!(report.replanned, 1, "{report}");
    let second = report.run.unwrap();
    let entries = block_on(r.journal(&JournalQuery::run(second))).unwrap();
    eprintln!("{entries:#?}");
    let shop_e = entries.iter().find(|e| e.system == "shop").unwrap();
    assert_eq!(shop_e.field("name").unwrap().before, Some(json!("Ada")));
    let crm_e = entries.iter().find(|e| e.system == "crm").unwrap();
    assert_eq!(crm_e.field("status").unwrap().before, Some(json!("lead")));
    let undone = block_on(r.undo(second)).unwrap();
    assert!(undone.plan.held.is_empty(), "{}", undone.plan);
    assert_eq!(
        shop_inner.get(OBJ, &s1).unwrap().get("name"),
        Some(&json!("Ada"))
    );
    assert_eq!(
        shop_inner.get(OBJ, &s1).unwrap().get("status"),
        Some(&json!("vip"))
    );
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("lead"))
    );
    run(&r);
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("status"),
        Some(&json!("vip"))
    );
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("name"),
        Some(&json!("Ada Lovelace"))
    );
    assert_eq!(
        shop_inner.get(OBJ, &s1).unwrap().get("name"),
        Some(&json!("Ada Lovelace"))
    );
}

// ---------------------------------------------------------------------
// 20. Sharded runners: each shard undoes its own run.

#[test]
fn p20_sharded_undo() {
    use recsync::shard::Shard;
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let runners: Vec<SyncRunner> = (0..2)
        .map(|i| {
            SyncRunner::builder(SyncEngine::new(map()))
                .connector(crm.clone())
                .connector(shop.clone())
                .store(store.clone())
                .shard(Shard::new(i, 2).unwrap())
                .journal(Retention::forever())
                .build()
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = (0..8)
        .map(|i| crm.insert(OBJ, contact(&format!("p{i}@example.com"), "P", "lead")))
        .collect();
    for r in &runners {
        run(r);
    }
    for r in &runners {
        run(r);
    }
    assert_eq!(shop.len(OBJ), 8);
    for id in &ids {
        crm.edit(OBJ, id, [("status", json!("customer"))]).unwrap();
    }
    let second: Vec<RunId> = runners.iter().map(run).collect();
    for (r, run) in runners.iter().zip(&second) {
        let u = block_on(r.undo(*run)).unwrap();
        assert!(u.report.errors.is_empty());
        assert!(u.plan.held.is_empty(), "{}", u.plan);
    }
    for rec in shop.records(OBJ) {
        assert_eq!(rec.get("status"), Some(&json!("lead")));
    }
    for r in &runners {
        run(r);
    }
    for rec in shop.records(OBJ) {
        assert_eq!(rec.get("status"), Some(&json!("customer")));
    }
}

// ---------------------------------------------------------------------
// 21. Create undone without read-back (delete unconfirmed), full reads,
// no versions: the source record stays.

#[test]
fn p21_unconfirmed_create_undo_keeps_the_source() {
    let mk = |s: &str| {
        MemoryConnector::builder(s)
            .id_prefix(&s[..1])
            .incremental_fetch(false)
            .fetch_by_ids(false)
            .versions(false)
            .external_ids(false)
            .build()
            .unwrap()
    };
    let (crm, shop, erp) = (mk("crm"), mk("shop"), mk("erp"));
    let store = MemoryStore::new();
    let r = runner_with(
        &[&crm, &shop, &erp],
        &store,
        map_of(&["crm", "shop", "erp"]),
        false,
    );
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    let u = block_on(r.undo(first)).unwrap();
    assert!(u.report.errors.is_empty());
    assert_eq!((shop.len(OBJ), erp.len(OBJ)), (0, 0));
    for _ in 0..3 {
        run(&r);
    }
    assert!(crm.get(OBJ, &c1).is_some(), "crm record deleted");
    assert_eq!((shop.len(OBJ), erp.len(OBJ)), (1, 1));
    assert!(block_on(r.dry_run()).unwrap().is_empty());
}

// ---------------------------------------------------------------------
// 22. A person types into a field of the created record that the map does
// not sync (notes): the undo deletes the record, and the notes with it.

#[test]
fn p22_created_record_with_a_persons_unmapped_edit_is_not_deleted() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    let s1 = shop.records(OBJ)[0].id.clone();
    let v0 = shop.get(OBJ, &s1).unwrap().version.clone();
    shop.edit(OBJ, &s1, [("notes", json!("called her, wants a quote"))])
        .unwrap();
    let v1 = shop.get(OBJ, &s1).unwrap().version.clone();
    assert_ne!(v0, v1, "the system knows the record changed");
    let undone = block_on(r.undo(first)).unwrap();
    assert_eq!(
        shop.len(OBJ),
        1,
        "the record a person edited was deleted: {}",
        undone.plan
    );
}

// ---------------------------------------------------------------------
// 23. The match key kept out of the journal: a delete undone creates a
// record without its key, and the next run copies it.

#[test]
fn p23_delete_undone_with_key_not_journaled() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let m = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive().not_journaled())
        .field(Field::new("name"))
        .field(Field::new("status"))
        .build()
        .unwrap();
    let r = runner_with(&[&crm, &shop], &store, m, true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&r);
    crm.delete(OBJ, &c1).unwrap();
    let deleting = run(&r);
    let undone = block_on(r.undo(deleting)).unwrap();
    eprintln!("{}", undone.plan);
    eprintln!("shop after undo: {:?}", shop.records(OBJ));
    run(&r);
    eprintln!("crm after next run: {:?}", crm.records(OBJ));
    assert!(
        undone.plan.ops.is_empty(),
        "a record without its key was created: {:?}",
        shop.records(OBJ)
    );
}

// ---------------------------------------------------------------------
// 24. The motivating story: a mapping mistake on the read side (a
// transform that mangles what it reads from the crm), noticed, the map
// fixed, the run undone. Does the next run write the mistake again?

#[derive(Debug)]
struct Upper;

impl recsync::mapping::Transform for Upper {
    fn name(&self) -> &str {
        "upper-on-read"
    }
    fn to_canonical(&self, native: &Value) -> Result<Value, recsync::mapping::TransformError> {
        Ok(match native {
            Value::String(s) => json!(s.to_uppercase()),
            v => v.clone(),
        })
    }
    fn from_canonical(&self, canonical: &Value) -> Result<Value, recsync::mapping::TransformError> {
        Ok(canonical.clone())
    }
}

fn name_map(bad: bool) -> FieldMap {
    let name = if bad {
        Field::new("name").transform("crm", Upper)
    } else {
        Field::new("name")
    };
    FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(name)
        .field(Field::new("status"))
        .build()
        .unwrap()
}

#[test]
fn p24b_control_fix_without_undo() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let good = runner_with(&[&crm, &shop], &store, name_map(false), true);
    let c1 = crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    run(&good);
    let s1 = shop.records(OBJ)[0].id.clone();
    // The bad map is deployed; a person renames Ada in the crm.
    let bad = runner_with(&[&crm, &shop], &store, name_map(true), true);
    crm.edit(OBJ, &c1, [("name", json!("Ada Lovelace"))])
        .unwrap();
    let mistake = run(&bad);
    eprintln!(
        "after the bad run: crm {:?} shop {:?}",
        crm.get(OBJ, &c1).unwrap().get("name"),
        shop.get(OBJ, &s1).unwrap().get("name")
    );
    // Noticed: the map is fixed first, then the run undone.
    let _ = mistake;
    eprintln!(
        "after the undo: crm {:?} shop {:?}",
        crm.get(OBJ, &c1).unwrap().get("name"),
        shop.get(OBJ, &s1).unwrap().get("name")
    );
    run(&good);
    run(&good);
    eprintln!(
        "after the next runs: crm {:?} shop {:?}",
        crm.get(OBJ, &c1).unwrap().get("name"),
        shop.get(OBJ, &s1).unwrap().get("name")
    );
    // Observed, and not the undo's doing: a map fix alone also writes the
    // canonical value the bad map read over the crm's own value.
    assert_eq!(
        crm.get(OBJ, &c1).unwrap().get("name"),
        Some(&json!("ADA LOVELACE")),
    );
}

// ---------------------------------------------------------------------
// 25. Undo of an undo after the next run redid the run: a duplicate.

#[test]
fn p25_undo_of_an_undo_after_the_redo_makes_no_duplicate() {
    let (crm, shop) = (conn("crm"), conn("shop"));
    let store = MemoryStore::new();
    let r = runner_with(&[&crm, &shop], &store, map(), true);
    crm.insert(OBJ, contact("ada@example.com", "Ada", "lead"));
    let first = run(&r);
    let u = block_on(r.undo(first)).unwrap();
    let undo_run = u.report.run.unwrap();
    assert_eq!(shop.len(OBJ), 0);
    run(&r); // the run done again (the map was fine after all)
    assert_eq!(shop.len(OBJ), 1);
    let uu = block_on(r.undo(undo_run)).unwrap();
    eprintln!("{}", uu.plan);
    run(&r);
    let plan = block_on(r.dry_run()).unwrap();
    assert_eq!(
        shop.len(OBJ),
        1,
        "duplicate in the shop: {:?}\n{plan}",
        shop.records(OBJ)
    );
}

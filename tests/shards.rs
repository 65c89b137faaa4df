//! Runners on shards end where one runner ends: the same contacts and the
//! same edits, synced by one runner and by four runners on four shards of
//! one store, leave the two systems holding the same records, with no
//! duplicate and no lost edit, also when one shard's runner dies in the
//! middle of a run and a new one takes its shard over; and contacts whose
//! email changed stay in the shard that linked them. The property: over
//! random contacts, shard counts and rounds of edits in both systems, with
//! a shard's runner dying mid-run, the sharded systems hold after every
//! round what one runner leaves.
#![cfg(feature = "testkit")]

mod common;
#[path = "common/shards.rs"]
mod shards;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use recsync::Record;

use proptest::prelude::*;
use recsync::shard::Shard;
use recsync::testkit::MemoryConnector;
use recsync::{AsyncStateStore, MemoryStore};
use serde_json::{json, Value};
use shards::*;

const CONTACTS: usize = 2_000;

async fn run_all(runners: &[recsync::SyncRunner]) {
    let reports = futures::future::join_all(runners.iter().map(|r| r.run())).await;
    for report in reports {
        let report = report.unwrap();
        assert!(report.errors.is_empty(), "{report}");
    }
}

/// Runs one runner twice (the second run plans nothing: it is quiescent).
async fn settle(runners: &[recsync::SyncRunner]) {
    run_all(runners).await;
    run_all(runners).await;
}

#[tokio::test]
async fn four_shards_end_where_one_runner_ends_and_a_dead_shard_is_taken_over() {
    // One runner.
    let one = universe(CONTACTS);
    let single_store = Arc::new(MemoryStore::new());
    let single = runner(
        Shard::whole(),
        one[0].clone(),
        one[1].clone(),
        single_store.clone(),
    );
    settle(std::slice::from_ref(&single)).await;

    // Four runners; shard 2's dies after its first write batch.
    let four = universe(CONTACTS);
    let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
    let dying = Dying {
        inner: four[1].clone(),
        batches: Arc::new(AtomicUsize::new(1)),
    };
    let doomed = runner(
        Shard::new(2, 4).unwrap(),
        Dying {
            inner: four[0].clone(),
            batches: dying.batches.clone(),
        },
        dying,
        store.clone(),
    );
    let runners: Vec<_> = [0, 1, 3]
        .into_iter()
        .map(|i| {
            runner(
                Shard::new(i, 4).unwrap(),
                four[0].clone(),
                four[1].clone(),
                store.clone(),
            )
        })
        .collect();
    let died = tokio::time::timeout(std::time::Duration::from_secs(2), doomed.run()).await;
    assert!(died.is_err(), "shard 2's runner was to die mid-run");
    assert_eq!(
        AsyncStateStore::load(&*store, "contacts/shard-2-of-4")
            .await
            .unwrap()
            .len(),
        0,
        "the dead runner saved nothing"
    );
    settle(&runners).await;
    // A new runner takes shard 2 over.
    let taken = runner(
        Shard::new(2, 4).unwrap(),
        four[0].clone(),
        four[1].clone(),
        store.clone(),
    );
    let mut all = runners;
    all.push(taken);
    settle(&all).await;
    assert_same_content("crm", &four[0], &one[0]);
    assert_same_content("mkt", &four[1], &one[1]);

    // The same edits in both: names, emails (routing the contact to
    // another shard), deletes, new contacts in both systems.
    edit(&one, CONTACTS);
    edit(&four, CONTACTS);
    settle(std::slice::from_ref(&single)).await;
    settle(&all).await;
    assert_same_content("crm", &four[0], &one[0]);
    assert_same_content("mkt", &four[1], &one[1]);
    // Every edit arrived: a renamed contact and a moved email in both.
    for c in &four {
        let c = content(c);
        assert!(c.contains_key(&("p7@example.com".to_owned(), "Renamed 7".to_owned())));
        assert!(c.keys().any(|(email, _)| email == "moved3@example.com"));
        assert!(
            !c.keys().any(|(email, _)| email == "p1@example.com"),
            "p1 was deleted"
        );
    }
    // Each shard's baseline holds its share, and together every entity.
    let mut total = 0;
    for shard in Shard::all(4) {
        let b = AsyncStateStore::load(&*store, &shard.state_key("contacts"))
            .await
            .unwrap();
        assert!(b.len() > CONTACTS / 8, "{shard} holds {}", b.len());
        total += b.len();
    }
    let whole = AsyncStateStore::load(&*single_store, "contacts")
        .await
        .unwrap();
    assert_eq!(total, whole.len());
}

/// A shard's runner creates a contact's copy and dies before its commit;
/// a person changes the copy's email, which routes it to another shard.
/// The copy still joins its contact, in the contact's shard: no second
/// copy, and the new email reaches the first system.
#[tokio::test]
async fn a_create_whose_commit_was_lost_joins_its_contact_though_its_email_moved() {
    let [crm, mkt] = universe(0);
    crm.insert(
        OBJ,
        [("email", json!("ada@example.com")), ("name", json!("Ada"))],
    );
    let m = map();
    let first = recsync::Record::new("c1").field("email", "ada@example.com");
    let home = Shard::route(&m, "crm", &first, 4).unwrap();
    let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
    let left = Arc::new(AtomicUsize::new(0));
    let doomed = runner(
        Shard::new(home, 4).unwrap(),
        Dying {
            inner: crm.clone(),
            batches: left.clone(),
        },
        Dying {
            inner: mkt.clone(),
            batches: left,
        },
        store.clone(),
    );
    let died = tokio::time::timeout(std::time::Duration::from_secs(2), doomed.run()).await;
    assert!(died.is_err());
    let copy = mkt.records(OBJ);
    assert_eq!(copy.len(), 1, "the create was made");
    // An email that routes the copy to another shard.
    let moved = (0..)
        .map(|n| format!("ada{n}@example.com"))
        .find(|e| {
            let r = recsync::Record::new("m1").field("email", e.as_str());
            Shard::route(&m, "mkt", &r, 4) != Some(home)
        })
        .unwrap();
    mkt.edit(OBJ, &copy[0].id, [("email", json!(moved))])
        .unwrap();
    let runners: Vec<_> = Shard::all(4)
        .map(|s| runner(s, crm.clone(), mkt.clone(), store.clone()))
        .collect();
    settle(&runners).await;
    assert_eq!(crm.len(OBJ), 1, "{:?}", crm.records(OBJ));
    assert_eq!(mkt.len(OBJ), 1, "{:?}", mkt.records(OBJ));
    assert_eq!(crm.records(OBJ)[0].get("email"), Some(&json!(moved)));
    let home_state = AsyncStateStore::load(&*store, &Shard::new(home, 4).unwrap().state_key(OBJ))
        .await
        .unwrap();
    assert_eq!(home_state.len(), 1, "the contact is in its shard");
}

/// A person's edit, applied by content to both universes: to the `pick`-th
/// record (by email) of system `system`.
#[derive(Debug, Clone)]
enum Edit {
    Rename {
        system: usize,
        pick: usize,
        name: u8,
    },
    Email {
        system: usize,
        pick: usize,
        email: u8,
    },
    Delete {
        system: usize,
        pick: usize,
    },
    Create {
        system: usize,
        email: u8,
    },
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..2usize, any::<usize>(), any::<u8>()).prop_map(|(system, pick, name)| Edit::Rename {
            system,
            pick,
            name
        }),
        (0..2usize, any::<usize>(), any::<u8>()).prop_map(|(system, pick, email)| Edit::Email {
            system,
            pick,
            email
        }),
        (0..2usize, any::<usize>()).prop_map(|(system, pick)| Edit::Delete { system, pick }),
        (0..2usize, any::<u8>()).prop_map(|(system, email)| Edit::Create { system, email }),
    ]
}

/// The id of the `pick`-th record of `c` by email (wrapping), if any.
fn picked(c: &MemoryConnector, pick: usize) -> Option<String> {
    let mut records: Vec<(String, String)> = c
        .records(OBJ)
        .into_iter()
        .map(|r| {
            (
                r.get("email")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_lowercase(),
                r.id,
            )
        })
        .collect();
    records.sort();
    let n = records.len();
    (n > 0).then(|| records.swap_remove(pick % n).1)
}

/// Applies `edit`; `nth` numbers the edits of a history, so that no two
/// email changes give one value.
fn apply(systems: &[MemoryConnector; 2], edit: &Edit, nth: usize) {
    match *edit {
        Edit::Rename { system, pick, name } => {
            if let Some(id) = picked(&systems[system], pick) {
                systems[system]
                    .edit(OBJ, &id, [("name", json!(format!("Name {name}")))])
                    .unwrap();
            }
        }
        Edit::Email {
            system,
            pick,
            email,
        } => {
            if let Some(id) = picked(&systems[system], pick) {
                // A value no other record has, nor will: a contact whose
                // email changed after it was linked stays in its shard,
                // and a new record with the same email routed elsewhere
                // would not be matched with it (see the shard module's
                // docs), where one runner matches it.
                let email = format!("e{email}-{nth}@example.com");
                systems[system]
                    .edit(OBJ, &id, [("email", json!(email))])
                    .unwrap();
            }
        }
        Edit::Delete { system, pick } => {
            if let Some(id) = picked(&systems[system], pick) {
                systems[system].delete(OBJ, &id).unwrap();
            }
        }
        Edit::Create { system, email } => {
            let email = format!("E{}@Example.com", email % 64);
            systems[system].insert(OBJ, [("email", json!(email)), ("name", json!("Someone"))]);
        }
    }
}

/// Both universes' systems by content, and whether any holds a record
/// twice.
fn same(four: &[MemoryConnector; 2], one: &[MemoryConnector; 2]) -> Result<(), TestCaseError> {
    for (s, (a, b)) in four.iter().zip(one).enumerate() {
        prop_assert_eq!(content(a), content(b), "system {}", s);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    #[test]
    fn sharded_runners_hold_what_one_runner_holds(
        contacts in 0usize..60,
        count in 1u32..6,
        rounds in proptest::collection::vec(proptest::collection::vec(edit_strategy(), 0..8), 1..4),
        dies in proptest::option::of((0u32..6, 0usize..3, 0usize..3)),
        // (shard, round, write batches made before dying)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let one = universe(contacts);
            let four = universe(contacts);
            let single = runner(Shard::whole(), one[0].clone(), one[1].clone(), Arc::new(MemoryStore::new()));
            let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
            let runners: Vec<_> = Shard::all(count)
                .map(|s| runner(s, four[0].clone(), four[1].clone(), store.clone()))
                .collect();
            for (round, edits) in rounds.iter().enumerate() {
                for (i, e) in edits.iter().enumerate() {
                    apply(&one, e, round * 100 + i);
                    apply(&four, e, round * 100 + i);
                }
                // A shard's runner dies in the middle of this round's run,
                // having written `batches` batches; the others run on.
                if let Some((shard, _, batches)) = dies.filter(|d| d.1 == round) {
                    let shard = Shard::new(shard % count, count).unwrap();
                    let left = Arc::new(AtomicUsize::new(batches));
                    let doomed = runner(
                        shard,
                        Dying { inner: four[0].clone(), batches: left.clone() },
                        Dying { inner: four[1].clone(), batches: left },
                        store.clone(),
                    );
                    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), doomed.run()).await;
                }
                settle(std::slice::from_ref(&single)).await;
                settle(&runners).await;
                same(&four, &one)?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

// ----- races and lost commits across shards

fn email_routed(prefix: &str, system: &str, to: u32, count: u32) -> String {
    let m = map();
    (0..)
        .map(|n| format!("{prefix}{n}@example.com"))
        .find(|e| {
            let r = Record::new("x").field("email", e.as_str());
            Shard::route(&m, system, &r, count) == Some(to)
        })
        .unwrap()
}

async fn links(store: &Arc<dyn AsyncStateStore>, shard: Shard, system: &str, id: &str) -> bool {
    let b = AsyncStateStore::load(&**store, &shard.state_key(OBJ))
        .await
        .unwrap();
    b.find_linked(system, id).is_some()
}

/// Two shards' runs overlap (as on two hosts); a new contact's email is
/// corrected between shard 0's read and shard 1's read, which routes it to
/// shard 1. Shard 0 reserved it first: shard 1 leaves it, and only shard 0
/// ever links it.
#[tokio::test]
async fn overlapping_runs_never_both_take_a_contact_whose_email_moved_between_reads() {
    let [crm, mkt] = universe(0);
    let e1 = email_routed("ada", "crm", 0, 2);
    let e2 = email_routed("bob", "crm", 1, 2);
    let r = crm.insert(OBJ, [("email", json!(e1)), ("name", json!("Ada"))]);
    let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let open = Arc::new(tokio::sync::Notify::new());
    let a = runner(
        Shard::new(0, 2).unwrap(),
        Gate {
            inner: crm.clone(),
            entered: entered.clone(),
            open: open.clone(),
        },
        Gate {
            inner: mkt.clone(),
            entered: entered.clone(),
            open: open.clone(),
        },
        store.clone(),
    );
    let b = runner(
        Shard::new(1, 2).unwrap(),
        crm.clone(),
        mkt.clone(),
        store.clone(),
    );
    let task = tokio::spawn(async move { a.run().await });
    entered.notified().await; // shard 0 has read e1, asked claims, and is writing
    crm.edit(OBJ, &r, [("email", json!(e2))]).unwrap();
    let rb = b.run().await.unwrap();
    assert!(rb.errors.is_empty(), "{rb}");
    open.notify_one();
    let ra = task.await.unwrap().unwrap();
    assert!(ra.errors.is_empty(), "{ra}");
    let a2 = runner(
        Shard::new(0, 2).unwrap(),
        crm.clone(),
        mkt.clone(),
        store.clone(),
    );
    for _ in 0..3 {
        for report in [a2.run().await.unwrap(), b.run().await.unwrap()] {
            assert!(report.errors.is_empty(), "{report}");
        }
    }
    let both = (
        links(&store, Shard::new(0, 2).unwrap(), "crm", &r).await,
        links(&store, Shard::new(1, 2).unwrap(), "crm", &r).await,
    );
    assert_eq!(mkt.len(OBJ), 1, "one runner leaves one copy in mkt");
    assert!(!(both.0 && both.1), "both shards link crm record {r}");
}

/// A shard's create loses its commit; the copy's email is then edited so
/// it routes to the other shard, which reads it without the original (its
/// cursor is past it) before the home shard recovers. The original was
/// reserved for the home shard, so the copy goes there: one record in each
/// system.
#[tokio::test]
async fn a_lost_commit_copy_moved_and_read_elsewhere_first_joins_its_contact() {
    let [crm, mkt] = universe(0);
    let e1 = email_routed("ada", "crm", 0, 2);
    let e2 = email_routed("bob", "mkt", 1, 2);
    crm.insert(OBJ, [("email", json!(e1)), ("name", json!("Ada"))]);
    let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
    let home = runner(
        Shard::new(0, 2).unwrap(),
        crm.clone(),
        mkt.clone(),
        store.clone(),
    );
    let other = runner(
        Shard::new(1, 2).unwrap(),
        crm.clone(),
        mkt.clone(),
        store.clone(),
    );
    other.run().await.unwrap(); // leaves R to shard 0, cursor past it
    let left = Arc::new(AtomicUsize::new(0));
    let doomed = runner(
        Shard::new(0, 2).unwrap(),
        Dying {
            inner: crm.clone(),
            batches: left.clone(),
        },
        Dying {
            inner: mkt.clone(),
            batches: left,
        },
        store.clone(),
    );
    assert!(tokio::time::timeout(Duration::from_secs(2), doomed.run())
        .await
        .is_err());
    assert_eq!(mkt.len(OBJ), 1);
    let copy = mkt.records(OBJ)[0].id.clone();
    mkt.edit(OBJ, &copy, [("email", json!(e2))]).unwrap();
    for _ in 0..3 {
        for report in [other.run().await.unwrap(), home.run().await.unwrap()] {
            assert!(report.errors.is_empty(), "{report}");
        }
    }
    assert_eq!(crm.len(OBJ), 1, "one runner leaves one record in crm");
    assert_eq!(mkt.len(OBJ), 1, "one runner leaves one record in mkt");
}

/// Two crm contacts share an email (held back as ambiguous, remembered).
/// One's email is then corrected so that it routes to the other shard: it
/// stays in the shard that holds it back, which sees the correction and
/// releases both, as one runner does.
#[tokio::test]
async fn a_contact_held_back_as_ambiguous_stays_in_its_shard_when_its_email_moves() {
    for shards in [1u32, 2] {
        let [crm, mkt] = universe(0);
        let e = email_routed("shared", "crm", 0, 2);
        let moved = email_routed("fixed", "crm", 1, 2);
        let x = crm.insert(OBJ, [("email", json!(e)), ("name", json!("X"))]);
        let y = crm.insert(OBJ, [("email", json!(e)), ("name", json!("Y"))]);
        let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
        let runners: Vec<_> = Shard::all(shards)
            .map(|s| runner(s, crm.clone(), mkt.clone(), store.clone()))
            .collect();
        let run_all = || async {
            for r in &runners {
                r.run().await.unwrap();
            }
        };
        run_all().await;
        assert_eq!(mkt.len(OBJ), 0, "both held back as ambiguous");
        crm.edit(OBJ, &y, [("email", json!(moved))]).unwrap();
        run_all().await;
        crm.edit(OBJ, &x, [("name", json!("X renamed"))]).unwrap();
        run_all().await;
        run_all().await;
        assert_eq!(mkt.len(OBJ), 2, "{shards} shard(s): X and Y both reach mkt");
    }
}

/// A shard's run reserves a new crm contact (routed to it) and dies
/// before writing anything. A person then corrects the contact's email,
/// and the matching mkt contact (same corrected email) exists, routed to
/// the other shard. One runner matches the two; the shards do too: the
/// dead run's shard drops its reservation on its next run, when the
/// contact's email routes it elsewhere. (Were the other shard to run
/// first, it would take the mkt contact alone and create it in crm: the
/// window this leaves is a run that died and a key that changed before
/// that shard ran again.)
#[tokio::test]
async fn a_reservation_of_a_run_that_died_does_not_keep_a_contact_from_its_match() {
    for shards in [1u32, 2] {
        let [crm, mkt] = universe(0);
        let e1 = email_routed("ada", "crm", 0, 2);
        let e2 = email_routed("bob", "crm", 1, 2);
        let r = crm.insert(OBJ, [("email", json!(e1)), ("name", json!("Ada"))]);
        let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
        let open = Arc::new(tokio::sync::Notify::new());
        let entered = Arc::new(tokio::sync::Notify::new());
        let doomed = runner(
            Shard::new(0, shards).unwrap(),
            Gate {
                inner: crm.clone(),
                entered: entered.clone(),
                open: open.clone(),
            },
            Gate {
                inner: mkt.clone(),
                entered: entered.clone(),
                open: open.clone(),
            },
            store.clone(),
        );
        // Dies in its first write, before it is applied: nothing written.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), doomed.run())
                .await
                .is_err()
        );
        assert_eq!(mkt.len(OBJ), 0);
        crm.edit(OBJ, &r, [("email", json!(e2))]).unwrap();
        mkt.insert(OBJ, [("email", json!(e2)), ("name", json!("Ada"))]);
        let runners: Vec<_> = Shard::all(shards)
            .map(|s| runner(s, crm.clone(), mkt.clone(), store.clone()))
            .collect();
        for _ in 0..3 {
            for r in &runners {
                let report = r.run().await.unwrap();
                assert!(report.errors.is_empty(), "{report}");
            }
        }
        assert_eq!(crm.len(OBJ), 1, "{shards} shard(s): {:?}", crm.records(OBJ));
        assert_eq!(mkt.len(OBJ), 1, "{shards} shard(s): {:?}", mkt.records(OBJ));
    }
}

/// The same after a dry run, which reserves nothing.
#[tokio::test]
async fn a_dry_run_reserves_nothing() {
    for shards in [1u32, 2] {
        let [crm, mkt] = universe(0);
        let e1 = email_routed("ada", "crm", 0, 2);
        let e2 = email_routed("bob", "crm", 1, 2);
        let r = crm.insert(OBJ, [("email", json!(e1)), ("name", json!("Ada"))]);
        let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
        let runners: Vec<_> = Shard::all(shards)
            .map(|s| runner(s, crm.clone(), mkt.clone(), store.clone()))
            .collect();
        runners[0].dry_run().await.unwrap();
        crm.edit(OBJ, &r, [("email", json!(e2))]).unwrap();
        mkt.insert(OBJ, [("email", json!(e2)), ("name", json!("Ada"))]);
        for _ in 0..3 {
            for r in &runners {
                let report = r.run().await.unwrap();
                assert!(report.errors.is_empty(), "{report}");
            }
        }
        assert_eq!(crm.len(OBJ), 1, "{shards} shard(s): {:?}", crm.records(OBJ));
        assert_eq!(mkt.len(OBJ), 1, "{shards} shard(s): {:?}", mkt.records(OBJ));
    }
}

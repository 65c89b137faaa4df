//! One suite for every store, through [`AsyncStateStore`]: the memory
//! store, the JSON file store, the SQLite store (feature `sqlite`) and the
//! PostgreSQL store (feature `postgres`, in postgres.rs). Each case is an
//! async function over `&dyn AsyncStateStore`; `store_suite!` makes a test
//! of each for a module that has `async fn fixture(test: &str) ->
//! Option<Fixture>` (`None`: the store is not available, and the test
//! passes without running).

use std::sync::Arc;

use recsync::baseline::EntityId;
use recsync::model::SystemId;
use recsync::store::{AsyncStateStore, Owner, RouteQuery, Routes};

use super::*;

/// A store for one test, and what to clean up after it: on drop
/// (`_guard`), or, when the test passes, by awaiting `done`.
pub struct Fixture {
    pub store: Box<dyn AsyncStateStore>,
    pub _guard: Option<Box<dyn std::any::Any + Send>>,
    pub done: Option<futures::future::BoxFuture<'static, ()>>,
}

/// Makes a test of every case in the suite, each on a store of its own
/// from the module's `fixture`.
macro_rules! store_suite {
    () => {
        store_suite!(
            round_trip_with_cursors_and_held_reviews,
            only_touched_save_then_load_equals_the_baseline,
            replace_writes_the_whole_baseline,
            objects_are_independent,
            routes_reserve_records_and_name_their_owners,
            an_empty_object_loads_empty,
            a_review_decision_reaches_the_store,
            journal_batches_are_listed_back_in_save_order,
            retention_bounds_the_journal_by_runs,
            retention_bounds_the_journal_by_age,
            replace_leaves_the_journal,
            journals_of_objects_are_independent,
        );
    };
    ($($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(f) = fixture(stringify!($case)).await else {
                    return;
                };
                crate::suite::$case(&*f.store).await;
                drop(f.store);
                if let Some(done) = f.done {
                    done.await;
                }
            }
        )*
    };
}

async fn save(store: &dyn AsyncStateStore, object: &str, b: &Baseline, summary: &CommitSummary) {
    store
        .save(object, Arc::new(b.clone()), Arc::new(summary.clone()))
        .await
        .unwrap_or_else(|e| panic!("save of {object}: {e}"));
}

async fn replace(store: &dyn AsyncStateStore, object: &str, b: &Baseline) {
    store
        .replace(object, Arc::new(b.clone()))
        .await
        .unwrap_or_else(|e| panic!("replace of {object}: {e}"));
}

async fn load(store: &dyn AsyncStateStore, object: &str) -> Baseline {
    store
        .load(object)
        .await
        .unwrap_or_else(|e| panic!("load of {object}: {e}"))
}

pub async fn round_trip_with_cursors_and_held_reviews(store: &dyn AsyncStateStore) {
    let s = synced(5);
    save(store, "contacts", &s.first, &s.first_summary).await;
    assert_same(&load(store, "contacts").await, &s.first);
    save(store, "contacts", &s.held, &s.held_summary).await;
    let back = load(store, "contacts").await;
    assert_same(&back, &s.held);
    assert_eq!(back.cursor("crm"), Some("crm-cursor-2"));
    assert_eq!(back.cursor("mkt"), Some("mkt-cursor-1"));
    assert_eq!(back.reviews().len(), 2);
}

/// A save after a commit that touched a few entities, on top of the
/// revision it started from: the load is the new baseline, entities left
/// alone included; so is the next, which changes the records held back as
/// ambiguous.
pub async fn only_touched_save_then_load_equals_the_baseline(store: &dyn AsyncStateStore) {
    let s = synced(20);
    replace(store, "contacts", &s.first).await;
    assert!(s.held_summary.touched.len() < 20, "{:?}", s.held_summary);
    save(store, "contacts", &s.held, &s.held_summary).await;
    assert_same(&load(store, "contacts").await, &s.held);
    let (b, summary) = with_placeholders(&s);
    save(store, "contacts", &b, &summary).await;
    let back = load(store, "contacts").await;
    assert_same(&back, &b);
    assert_eq!(
        back.header().ambiguous.get("crm", "c901"),
        Some(("email", "noemail@example.com"))
    );
}

pub async fn replace_writes_the_whole_baseline(store: &dyn AsyncStateStore) {
    let s = synced(6);
    replace(store, "contacts", &s.held).await;
    assert_same(&load(store, "contacts").await, &s.held);
    // Back to an older baseline, whatever the store holds.
    replace(store, "contacts", &s.first).await;
    assert_same(&load(store, "contacts").await, &s.first);
    // Starting over: an empty baseline.
    replace(store, "contacts", &Baseline::new()).await;
    let back = load(store, "contacts").await;
    assert_eq!(back.len(), 0);
    assert_eq!(back.revision(), 0);
}

pub async fn objects_are_independent(store: &dyn AsyncStateStore) {
    let s = synced(4);
    save(store, "contacts", &s.first, &s.first_summary).await;
    save(store, "contacts", &s.held, &s.held_summary).await;
    replace(store, "deals", &s.first).await;
    save(store, "contacts/shard-2-of-4", &s.first, &s.first_summary).await;
    assert_same(&load(store, "contacts").await, &s.held);
    assert_same(&load(store, "deals").await, &s.first);
    assert_same(&load(store, "contacts/shard-2-of-4").await, &s.first);
    replace(store, "deals", &Baseline::new()).await;
    assert_same(&load(store, "contacts").await, &s.held);
    assert_eq!(load(store, "deals").await.len(), 0);
}

fn rec(system: &str, id: &str) -> (SystemId, String) {
    (SystemId::from(system), id.to_owned())
}

/// `route` names the owner of each record asked about: the shard whose
/// baseline links it, else the shard it was reserved for; a record
/// proposed that has neither is reserved for the asking shard, for good.
/// A store that keeps no routes says so.
pub async fn routes_reserve_records_and_name_their_owners(store: &dyn AsyncStateStore) {
    let s = synced(5);
    save(store, "contacts/shard-1", &s.first, &s.first_summary).await;
    let (family, zero, one) = ("contacts/2 shards", "contacts/shard-0", "contacts/shard-1");
    let (to_zero, to_one) = (vec![one.to_owned()], vec![zero.to_owned()]);
    let linked: EntityId = s.first.entities().next().unwrap().id().clone();
    let query = RouteQuery {
        family,
        mine: zero,
        others: &to_zero,
        propose: &[rec("crm", "c1"), rec("crm", "c9")],
        ask: &[rec("mkt", "m5"), rec("mkt", "m9")],
        release: &[],
        reserve: true,
        entities: &[linked.clone(), EntityId::new("crm:nope")],
    };
    let routes = match store.route(&query).await {
        Err(StoreError::Unsupported { what }) => {
            assert!(what.contains("shards"), "{what}");
            return;
        }
        other => other.unwrap(),
    };
    let owner = |r: &Routes, system: &str, id: &str| r.owner(&SystemId::from(system), id);
    assert_eq!(
        owner(&routes, "crm", "c1"),
        Some(Owner::Other),
        "linked in shard 1"
    );
    assert_eq!(
        owner(&routes, "crm", "c9"),
        Some(Owner::Mine),
        "reserved now"
    );
    assert_eq!(
        owner(&routes, "mkt", "m5"),
        Some(Owner::Other),
        "linked in shard 1"
    );
    assert_eq!(owner(&routes, "mkt", "m9"), None, "asked, not proposed");
    assert!(routes.held_elsewhere(&linked));
    assert!(!routes.held_elsewhere(&EntityId::new("crm:nope")));
    assert_eq!(routes.owners().count(), 3);

    // Shard 1 proposes c9 too, late: it stays shard 0's. c10 is new.
    let late = RouteQuery {
        family,
        mine: one,
        others: &to_one,
        propose: &[rec("crm", "c9"), rec("crm", "c10")],
        ask: &[],
        release: &[],
        reserve: true,
        entities: &[],
    };
    let routes = store.route(&late).await.unwrap();
    assert_eq!(owner(&routes, "crm", "c9"), Some(Owner::Other));
    assert_eq!(owner(&routes, "crm", "c10"), Some(Owner::Mine));
    // Asked again by shard 0, without proposing: the reservations hold.
    let again = RouteQuery {
        family,
        mine: zero,
        others: &to_zero,
        propose: &[],
        ask: &[rec("crm", "c9"), rec("crm", "c10")],
        release: &[],
        reserve: true,
        entities: &[],
    };
    let routes = store.route(&again).await.unwrap();
    assert_eq!(owner(&routes, "crm", "c9"), Some(Owner::Mine));
    assert_eq!(owner(&routes, "crm", "c10"), Some(Owner::Other));
    // Another family (another shard count) reserves apart.
    let other_family = RouteQuery {
        family: "contacts/3 shards",
        ..late
    };
    let routes = store.route(&other_family).await.unwrap();
    assert_eq!(owner(&routes, "crm", "c9"), Some(Owner::Mine));
    // Nothing asked, nothing found.
    let nothing = RouteQuery {
        propose: &[],
        ask: &[],
        release: &[],
        reserve: true,
        entities: &[],
        ..again
    };
    assert_eq!(store.route(&nothing).await.unwrap(), Routes::new());

    // A dry run's proposal answers as a reservation would, and reserves
    // nothing: shard 1 takes c11 after it.
    let dry = RouteQuery {
        propose: &[rec("crm", "c11")],
        reserve: false,
        ..nothing
    };
    let routes = store.route(&dry).await.unwrap();
    assert_eq!(owner(&routes, "crm", "c11"), Some(Owner::Mine));
    let taken = RouteQuery {
        propose: &[rec("crm", "c11")],
        ..late
    };
    let routes = store.route(&taken).await.unwrap();
    assert_eq!(owner(&routes, "crm", "c11"), Some(Owner::Mine), "shard 1's");

    // A shard drops only its own reservations: shard 0 releasing c10
    // (shard 1's) and c9 (its own) frees c9 alone, which shard 1 then
    // takes.
    let release = RouteQuery {
        release: &[rec("crm", "c9"), rec("crm", "c10")],
        ..nothing
    };
    store.route(&release).await.unwrap();
    let routes = store.route(&late).await.unwrap();
    assert_eq!(
        owner(&routes, "crm", "c9"),
        Some(Owner::Mine),
        "freed, then shard 1's"
    );
    assert_eq!(
        owner(&routes, "crm", "c10"),
        Some(Owner::Mine),
        "still shard 1's"
    );
}

pub async fn an_empty_object_loads_empty(store: &dyn AsyncStateStore) {
    let b = load(store, "contacts").await;
    assert_eq!(b, Baseline::new());
    assert_eq!(b.revision(), 0);
    // Still empty after another object is saved.
    let s = synced(2);
    replace(store, "deals", &s.first).await;
    assert_eq!(load(store, "contacts").await.len(), 0);
}

/// A reviewer's decision through the async queue: kept in the store, it no
/// longer waits, and the next plan from the stored baseline applies it.
pub async fn a_review_decision_reaches_the_store(store: &dyn AsyncStateStore) {
    let s = synced(4);
    save(store, "contacts", &s.first, &s.first_summary).await;
    save(store, "contacts", &s.held, &s.held_summary).await;
    let queue = ReviewQueue::new(store, "contacts");
    let open = queue.open_async().await.unwrap();
    assert_eq!(open.len(), 2, "{open:?}");
    let conflict = open
        .iter()
        .find_map(|i| match i {
            ReviewItem::Field(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    // A choice that does not fit is refused and nothing is saved.
    let err = queue
        .resolve_async(conflict.id, ReviewChoice::Restore)
        .await
        .unwrap_err();
    assert!(
        matches!(err, recsync::store::ReviewError::Resolve(_)),
        "{err}"
    );
    assert_eq!(queue.open_async().await.unwrap().len(), 2);

    let entity = queue
        .resolve_async(conflict.id, ReviewChoice::System("mkt".into()))
        .await
        .unwrap();
    assert_eq!(entity, conflict.entity);
    let still = queue.open_async().await.unwrap();
    assert_eq!(still.len(), 1, "{still:?}");

    let b = load(store, "contacts").await;
    // Saved as the next revision: a store that compares revisions refuses
    // a run's save that loaded the baseline before the decision.
    assert_eq!(b.revision(), s.held.revision() + 1);
    let plan = s.engine.plan(&b, &edited(4)).unwrap();
    assert!(plan.conflicts.is_empty(), "{plan}");
    let writes: Vec<_> = plan
        .ops
        .iter()
        .flat_map(|op| {
            op.fields
                .iter()
                .map(move |f| (op.system.to_string(), f.field.to_string(), f.value.clone()))
        })
        .collect();
    assert_eq!(
        writes,
        [("crm".to_owned(), "amount".to_owned(), json!(130))]
    );
    // The run that applies it commits from the stored revision and saves.
    let mut next = b.clone();
    let summary = s
        .engine
        .commit(&mut next, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    save(store, "contacts", &next, &summary).await;
    assert_same(&load(store, "contacts").await, &next);
}

async fn journal(
    store: &dyn AsyncStateStore,
    object: &str,
    query: JournalQuery,
) -> Vec<JournalEntry> {
    store
        .journal(object, &query)
        .await
        .unwrap_or_else(|e| panic!("journal of {object}: {e}"))
}

/// Baselines of revisions 1 to `n`, each with the summary of the commit
/// that made it: `s.first`, then commits that change nothing but a cursor.
/// A run's id is the revision its first commit made.
fn revisions(s: &Synced, n: usize) -> Vec<(Baseline, CommitSummary)> {
    assert_eq!(s.first.revision(), 1);
    let mut out = vec![(s.first.clone(), s.first_summary.clone())];
    while out.len() < n {
        let mut b = out.last().unwrap().0.clone();
        let plan = s.engine.plan(&b, &[]).unwrap();
        let summary = s
            .engine
            .commit(&mut b, &plan, &Outcomes::all_applied(&plan))
            .unwrap();
        let cursor = format!("crm-cursor-{}", b.revision());
        b.set_cursor("crm", cursor);
        out.push((b, summary));
    }
    out
}

/// `k` entries of run `run` at `at`, on records `<prefix><i>` of crm and
/// mkt in turn.
fn entries(run: u64, at: DateTime<Utc>, k: usize) -> Vec<JournalEntry> {
    (0..k)
        .map(|i| {
            let (system, prefix) = if i % 2 == 0 {
                ("crm", "c")
            } else {
                ("mkt", "m")
            };
            entry(run, at, system, &format!("{prefix}{}", i / 2), 1 + i % 3)
        })
        .collect()
}

/// Batches saved with their baselines are listed back in the order they
/// were saved, by run and by record too; a save without a batch leaves the
/// journal as it was.
pub async fn journal_batches_are_listed_back_in_save_order(store: &dyn AsyncStateStore) {
    let s = synced(3);
    assert!(journal(store, "contacts", JournalQuery::all())
        .await
        .is_empty());
    let revs = revisions(&s, 4);
    let runs = [
        vec![
            entry(1, hour(1), "crm", "c1", 2),
            entry(1, hour(1), "mkt", "m1", 1),
            entry(1, hour(1), "crm", "c2", 20),
        ],
        vec![
            entry(2, hour(2), "crm", "c3", 1),
            entry(2, hour(2), "crm", "c1", 1),
        ],
        Vec::new(),
        vec![entry(4, hour(4), "crm", "c1", 3)],
    ];
    for (i, ((b, summary), run)) in revs.iter().zip(&runs).enumerate() {
        let n = i as u64 + 1;
        let summary = if n == 3 {
            summary.clone()
        } else {
            with_journal(summary, batch(n, hour(n as i64), run, Retention::default()))
        };
        save(store, "contacts", b, &summary).await;
    }
    assert_same(&load(store, "contacts").await, &revs[3].0);
    let all: Vec<JournalEntry> = runs.concat();
    assert_eq!(journal(store, "contacts", JournalQuery::all()).await, all);
    assert_eq!(
        journal(store, "contacts", JournalQuery::run(RunId(2))).await,
        runs[1]
    );
    assert!(journal(store, "contacts", JournalQuery::run(RunId(3)))
        .await
        .is_empty());
    assert!(
        journal(store, "contacts", JournalQuery::run(RunId(u64::MAX)))
            .await
            .is_empty()
    );
    let c1: Vec<JournalEntry> = all
        .iter()
        .filter(|e| e.system == "crm" && e.record_id == "c1")
        .cloned()
        .collect();
    assert_eq!(c1.len(), 3);
    assert_eq!(
        journal(store, "contacts", JournalQuery::record("crm", "c1")).await,
        c1
    );
    assert!(
        journal(store, "contacts", JournalQuery::record("mkt", "c1"))
            .await
            .is_empty()
    );
    let mut one = JournalQuery::record("crm", "c1");
    one.run = Some(RunId(2));
    assert_eq!(journal(store, "contacts", one).await, [runs[1][1].clone()]);
}

/// Twenty saves, each with a batch of `k` entries, under
/// `Retention::runs(3)`: after each, exactly the entries of the last three
/// runs saved, though the run ids go down halfway (a clock set back). A
/// retention of no runs keeps nothing.
pub async fn retention_bounds_the_journal_by_runs(store: &dyn AsyncStateStore) {
    let s = synced(3);
    let k = 5;
    let revs = revisions(&s, 21);
    let mut saved: Vec<Vec<JournalEntry>> = Vec::new();
    for (i, (b, summary)) in revs.iter().take(20).enumerate() {
        let i = i as u64;
        let run = if i < 10 { 101 + i } else { 50 - i };
        let run_entries = entries(run, hour(run as i64), k);
        saved.push(run_entries.clone());
        let summary = with_journal(
            summary,
            batch(run, hour(run as i64), &run_entries, Retention::runs(3)),
        );
        save(store, "contacts", b, &summary).await;
        let kept = saved[saved.len().saturating_sub(3)..].concat();
        assert_eq!(
            journal(store, "contacts", JournalQuery::all()).await,
            kept,
            "after run {run}"
        );
    }
    // Saved last: 33, 32, 31; 34 before them; 110 the largest id.
    for gone in [34, 110] {
        assert!(journal(store, "contacts", JournalQuery::run(RunId(gone)))
            .await
            .is_empty());
    }
    assert_eq!(
        journal(store, "contacts", JournalQuery::run(RunId(33)))
            .await
            .len(),
        k
    );
    let (b, summary) = &revs[20];
    let none = with_journal(
        summary,
        batch(21, hour(21), &entries(21, hour(21), k), Retention::runs(0)),
    );
    save(store, "contacts", b, &none).await;
    assert!(journal(store, "contacts", JournalQuery::all())
        .await
        .is_empty());
}

/// `Retention::age` drops the entries older than the batch's time less
/// the age, as of each save; one exactly at the cutoff stays. A batch
/// without entries still drops what fell out.
pub async fn retention_bounds_the_journal_by_age(store: &dyn AsyncStateStore) {
    let s = synced(3);
    let revs = revisions(&s, 12);
    let keep = Retention::age(TimeDelta::hours(5));
    let mut saved: Vec<JournalEntry> = Vec::new();
    for (i, (b, summary)) in revs.iter().take(10).enumerate() {
        // Run n commits at hour 2n; its entries carry times of their own,
        // an hour apart.
        let run = i as u64 + 1;
        let at = hour(2 * run as i64);
        let run_entries = vec![
            entry(run, at - TimeDelta::hours(1), "crm", "c1", 1),
            entry(run, at, "mkt", "m1", 2),
        ];
        saved.extend(run_entries.iter().cloned());
        save(
            store,
            "contacts",
            b,
            &with_journal(summary, batch(run, at, &run_entries, keep)),
        )
        .await;
        let cutoff = at - TimeDelta::hours(5);
        let kept: Vec<JournalEntry> = saved.iter().filter(|e| e.at >= cutoff).cloned().collect();
        assert_eq!(
            journal(store, "contacts", JournalQuery::all()).await,
            kept,
            "after run {run}"
        );
    }
    // At hour 20 the cutoff is hour 15: run 8's entries (hours 15, 16),
    // run 9's (17, 18), run 10's (19, 20).
    let listed = journal(store, "contacts", JournalQuery::all()).await;
    let times: Vec<DateTime<Utc>> = listed.iter().map(|e| e.at).collect();
    assert_eq!(times, [15, 16, 17, 18, 19, 20].map(hour));
    // Exactly at the cutoff: kept.
    let (b, summary) = &revs[10];
    let edge = batch(11, hour(21), &[], Retention::age(TimeDelta::hours(4)));
    save(store, "contacts", b, &with_journal(summary, edge)).await;
    let times: Vec<DateTime<Utc>> = journal(store, "contacts", JournalQuery::all())
        .await
        .iter()
        .map(|e| e.at)
        .collect();
    assert_eq!(times, [17, 18, 19, 20].map(hour));
    // Nothing new, much later: everything falls out.
    let (b, summary) = &revs[11];
    save(
        store,
        "contacts",
        b,
        &with_journal(summary, batch(12, hour(100), &[], keep)),
    )
    .await;
    assert!(journal(store, "contacts", JournalQuery::all())
        .await
        .is_empty());
}

/// `replace` starts the baseline over and leaves the journal as it is.
pub async fn replace_leaves_the_journal(store: &dyn AsyncStateStore) {
    let s = synced(3);
    let revs = revisions(&s, 3);
    let first = entries(1, hour(1), 4);
    let (b, summary) = &revs[0];
    save(
        store,
        "contacts",
        b,
        &with_journal(summary, batch(1, hour(1), &first, Retention::runs(1))),
    )
    .await;
    replace(store, "contacts", &revs[1].0).await;
    assert_same(&load(store, "contacts").await, &revs[1].0);
    assert_eq!(journal(store, "contacts", JournalQuery::all()).await, first);
    replace(store, "contacts", &Baseline::new()).await;
    assert_eq!(journal(store, "contacts", JournalQuery::all()).await, first);
    replace(store, "contacts", &revs[1].0).await;
    let third = entries(3, hour(3), 2);
    let (b, summary) = &revs[2];
    save(
        store,
        "contacts",
        b,
        &with_journal(summary, batch(3, hour(3), &third, Retention::runs(2))),
    )
    .await;
    assert_eq!(
        journal(store, "contacts", JournalQuery::all()).await,
        [first, third].concat()
    );
}

/// Each object has a journal of its own: saving, pruning or replacing one
/// leaves the others'.
pub async fn journals_of_objects_are_independent(store: &dyn AsyncStateStore) {
    let s = synced(3);
    let revs = revisions(&s, 2);
    let objects = ["contacts", "deals", "contacts/shard-2-of-4"];
    let mut kept = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let run_entries = entries(1, hour(1), i + 1);
        let (b, summary) = &revs[0];
        save(
            store,
            object,
            b,
            &with_journal(summary, batch(1, hour(1), &run_entries, Retention::runs(5))),
        )
        .await;
        kept.push(run_entries);
    }
    // The next run of deals keeps only itself.
    let (b, summary) = &revs[1];
    let deals = entries(2, hour(2), 3);
    save(
        store,
        "deals",
        b,
        &with_journal(summary, batch(2, hour(2), &deals, Retention::runs(1))),
    )
    .await;
    replace(store, "contacts", &Baseline::new()).await;
    assert_eq!(
        journal(store, "contacts", JournalQuery::all()).await,
        kept[0]
    );
    assert_eq!(journal(store, "deals", JournalQuery::all()).await, deals);
    assert_eq!(
        journal(store, "contacts/shard-2-of-4", JournalQuery::all()).await,
        kept[2]
    );
    assert!(journal(store, "contacts/shard", JournalQuery::all())
        .await
        .is_empty());
}

mod memory {
    use super::*;

    async fn fixture(_test: &str) -> Option<Fixture> {
        Some(Fixture {
            store: Box::new(MemoryStore::new()),
            _guard: None,
            done: None,
        })
    }

    store_suite!();
}

mod json_file {
    use super::*;

    async fn fixture(test: &str) -> Option<Fixture> {
        let dir = temp_dir(&format!("suite-json-{test}"));
        let store = JsonFileStore::open(&dir).unwrap();
        Some(Fixture {
            store: Box::new(store),
            _guard: Some(Box::new(Cleanup(dir))),
            done: None,
        })
    }

    store_suite!();
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    async fn fixture(test: &str) -> Option<Fixture> {
        let dir = temp_dir(&format!("suite-sqlite-{test}"));
        let store = recsync::store::SqliteStore::open(dir.join("state.db")).unwrap();
        Some(Fixture {
            store: Box::new(store),
            _guard: Some(Box::new(Cleanup(dir))),
            done: None,
        })
    }

    store_suite!();
}

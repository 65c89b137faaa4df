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
                .map(move |f| (op.system.to_string(), f.field.clone(), f.value.clone()))
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

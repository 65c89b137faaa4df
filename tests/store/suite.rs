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
use recsync::store::{AsyncStateStore, Claims};

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
            claimed_names_what_other_baselines_hold,
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

/// `claimed` names the records linked and the entities held in the
/// objects asked about, and nothing of the others; after a save that
/// touched entities it follows the save.
pub async fn claimed_names_what_other_baselines_hold(store: &dyn AsyncStateStore) {
    let s = synced(5);
    save(store, "contacts/shard-1", &s.first, &s.first_summary).await;
    let other = synced(7);
    replace(store, "elsewhere", &other.held).await;
    let records: Vec<(SystemId, String)> = [
        ("crm", "c1"),
        ("crm", "c2"),
        ("mkt", "m5"),
        ("crm", "c6"),
        ("mkt", "c1"),
        ("erp", "c1"),
    ]
    .into_iter()
    .map(|(s, id)| (SystemId::from(s), id.to_owned()))
    .collect();
    let mut entities: Vec<EntityId> = s.first.entities().map(|e| e.id().clone()).collect();
    entities.truncate(2);
    entities.push(EntityId::new("crm:nope"));
    let objects = vec!["contacts/shard-1".to_owned(), "missing".to_owned()];
    let claims = store.claimed(&objects, &records, &entities).await.unwrap();
    let mut expected = Claims::new();
    expected.add_from(&s.first, &records, &entities);
    assert_eq!(claims, expected);
    assert!(claims.has_record("crm", "c1") && claims.has_record("mkt", "m5"));
    assert!(!claims.has_record("crm", "c6"), "c6 is another object's");
    assert!(!claims.has_record("mkt", "c1"));
    assert!(claims.has_entity(&entities[0]));
    assert!(!claims.has_entity(&EntityId::new("crm:nope")));
    assert_eq!(claims.len(), 5, "{claims:?}");

    // The held delete's save: crm's c2 is gone from the links kept.
    save(store, "contacts/shard-1", &s.held, &s.held_summary).await;
    let claims = store.claimed(&objects, &records, &entities).await.unwrap();
    let mut expected = Claims::new();
    expected.add_from(&s.held, &records, &entities);
    assert_eq!(claims, expected);

    // Nothing asked, nothing found; no objects, nothing found.
    assert!(store.claimed(&objects, &[], &[]).await.unwrap().is_empty());
    assert!(store
        .claimed(&[], &records, &entities)
        .await
        .unwrap()
        .is_empty());
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

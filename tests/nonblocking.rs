//! Stores do not block the executor: on a current-thread runtime, where
//! one blocked poll stops every task, a timer keeps firing while a
//! 100,000-entity baseline is saved through [`AsyncStateStore`], and does
//! not while the same save is made inline through [`StateStore`].
//!
//! Building the baseline takes seconds in a debug build, so these run in
//! release (`.ci/run`: `cargo test --release --all-features --test
//! nonblocking`) and debug builds list them as ignored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use recsync::store::JsonFileStore;
use recsync::{
    AsyncStateStore, Baseline, CommitSummary, Field, FieldMap, Outcomes, Record, Snapshot,
    StateStore, SyncEngine,
};

const ENTITIES: u32 = 100_000;

/// A baseline of `ENTITIES` contacts linked in two systems, and the summary
/// of the commit that made it (every entity touched).
fn hundred_thousand() -> (Baseline, CommitSummary) {
    let engine = SyncEngine::new(
        FieldMap::builder()
            .object("contacts")
            .systems(["crm", "mkt"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("name"))
            .build()
            .unwrap(),
    );
    let records = |prefix: &str| -> Vec<Record> {
        (0..ENTITIES)
            .map(|n| {
                Record::new(format!("{prefix}{n}"))
                    .field("email", format!("p{n}@example.com"))
                    .field("name", format!("Person {n}"))
            })
            .collect()
    };
    let snapshots = [
        Snapshot::complete("crm", records("c")),
        Snapshot::complete("mkt", records("m")),
    ];
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots).unwrap();
    let summary = engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    assert_eq!(baseline.len(), ENTITIES as usize);
    (baseline, summary)
}

/// A task on the current thread that counts the ticks of a 1 ms timer.
fn ticker() -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicUsize::new(0));
    let counted = ticks.clone();
    let task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    (ticks, task)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("recsync-nonblocking-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Saves through `save` while the ticker runs; returns the ticks seen
/// during the save and how long it took.
async fn ticks_during<F: std::future::Future<Output = ()>>(save: F) -> (usize, Duration) {
    let (ticks, task) = ticker();
    // Let the ticker start and tick once.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = ticks.load(Ordering::Relaxed);
    let started = Instant::now();
    save.await;
    let took = started.elapsed();
    let during = ticks.load(Ordering::Relaxed) - before;
    task.abort();
    (during, took)
}

/// The timer fires at least once per 5 ms of an async save (1 ms ticks,
/// with room for a loaded machine), and at most once during an inline one
/// (a tick already due when the save began).
fn assert_ticks(
    store: &str,
    (async_ticks, async_took): (usize, Duration),
    (inline_ticks, inline_took): (usize, Duration),
) {
    assert!(
        async_took >= Duration::from_millis(20),
        "{store}: the save took {async_took:?}, too short to show anything"
    );
    eprintln!(
        "{store}: {async_ticks} ticks during a {async_took:?} async save, \
         {inline_ticks} during a {inline_took:?} inline one"
    );
    let expected = (async_took.as_millis() / 5) as usize;
    assert!(
        async_ticks >= expected,
        "{store}: {async_ticks} ticks during a {async_took:?} async save, expected at least {expected}"
    );
    assert!(
        inline_ticks <= 1,
        "{store}: {inline_ticks} ticks during a {inline_took:?} inline save: the test cannot tell blocking from not"
    );
}

#[tokio::test(flavor = "current_thread")]
#[cfg_attr(debug_assertions, ignore = "100,000 entities: run in release")]
async fn a_timer_fires_while_a_json_file_store_saves_100k_entities() {
    let (baseline, summary) = hundred_thousand();
    let (baseline, summary) = (Arc::new(baseline), Arc::new(summary));
    let dir = temp_dir("json");
    let store = JsonFileStore::open(&dir).unwrap();
    let inline = ticks_during(async {
        StateStore::save(&store, "inline", &baseline, &summary).unwrap();
    })
    .await;
    let off = ticks_during(async {
        AsyncStateStore::save(&store, "contacts", baseline.clone(), summary.clone())
            .await
            .unwrap();
    })
    .await;
    assert_ticks("JsonFileStore", off, inline);
    let loaded = AsyncStateStore::load(&store, "contacts").await.unwrap();
    assert_eq!(loaded.len(), ENTITIES as usize);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "current_thread")]
#[cfg_attr(debug_assertions, ignore = "100,000 entities: run in release")]
async fn a_timer_fires_while_a_sqlite_store_saves_100k_entities() {
    use recsync::store::SqliteStore;
    let (baseline, summary) = hundred_thousand();
    let (baseline, summary) = (Arc::new(baseline), Arc::new(summary));
    let dir = temp_dir("sqlite");
    let store = SqliteStore::open(dir.join("state.db")).unwrap();
    let inline = ticks_during(async {
        StateStore::save(&store, "inline", &baseline, &summary).unwrap();
    })
    .await;
    let off = ticks_during(async {
        AsyncStateStore::save(&store, "contacts", baseline.clone(), summary.clone())
            .await
            .unwrap();
    })
    .await;
    assert_ticks("SqliteStore", off, inline);
    let loaded = AsyncStateStore::load(&store, "contacts").await.unwrap();
    assert_eq!(loaded.len(), ENTITIES as usize);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
#[allow(dead_code)]
#[path = "common/postgres.rs"]
mod server;

/// PostgreSQL (`RECSYNC_POSTGRES_URL`): the store talks to the server
/// asynchronously, and decodes and encodes rows between its reads and
/// writes. No inline form to compare with: the timer must keep firing.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "current_thread")]
#[cfg_attr(debug_assertions, ignore = "100,000 entities: run in release")]
async fn a_timer_fires_while_a_postgres_store_saves_and_loads_100k_entities() {
    let Some(db) = server::Db::new("nonblocking").await else {
        return;
    };
    let store = db.store().await;
    let (baseline, summary) = hundred_thousand();
    let (baseline, summary) = (Arc::new(baseline), Arc::new(summary));
    let saved = ticks_during(async {
        AsyncStateStore::save(&store, "contacts", baseline.clone(), summary.clone())
            .await
            .unwrap();
    })
    .await;
    let loaded = ticks_during(async {
        let back = AsyncStateStore::load(&store, "contacts").await.unwrap();
        assert_eq!(back.len(), ENTITIES as usize);
    })
    .await;
    for (what, (ticks, took)) in [("save", saved), ("load", loaded)] {
        eprintln!("PostgresStore: {ticks} ticks during a {took:?} {what}");
        let expected = (took.as_millis() / 5) as usize;
        assert!(
            ticks >= expected,
            "PostgresStore: {ticks} ticks during a {took:?} {what}, expected at least {expected}"
        );
    }
    drop(store);
    db.finish().await;
}

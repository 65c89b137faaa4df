//! Runners on several hosts, on a real PostgreSQL (`RECSYNC_POSTGRES_URL`;
//! see tests/common/postgres.rs): four runners on four shards, each with a
//! connection and a lease of its own, one killed in the middle of a run and
//! its shard taken over once its lease expired, end where one runner ends;
//! a runner whose lease was taken over saves nothing; two runners
//! contending for one shard: exactly one writes.
#![cfg(all(feature = "postgres", feature = "testkit"))]

#[allow(dead_code)]
#[path = "common/postgres.rs"]
mod server;
#[path = "common/shards.rs"]
mod shards;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use recsync::runner::RunError;
use recsync::shard::Shard;
use recsync::store::{Lease, PostgresStore};
use recsync::{AsyncStateStore, MemoryStore, StoreError, SyncRunner};
use server::Db;
use shards::*;

const CONTACTS: usize = 2_000;

/// Runs each runner on a task of its own (the runtime's threads run them
/// at once); every run must succeed without errors.
async fn run_all(runners: &[Arc<SyncRunner>]) {
    let tasks: Vec<_> = runners
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.run().await })
        })
        .collect();
    for task in tasks {
        let report = task.await.unwrap().unwrap();
        assert!(report.errors.is_empty(), "{report}");
    }
}

async fn settle(runners: &[Arc<SyncRunner>]) {
    run_all(runners).await;
    run_all(runners).await;
}

/// Claims `shard`'s lease for `holder`, which must get it.
async fn claim(store: &PostgresStore, shard: Shard, holder: &str, ttl: Duration) -> Lease {
    store
        .claim(&shard.state_key(OBJ), holder, ttl)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{holder} could not claim {shard}"))
}

/// A connector pair that counts (and lets through) every write batch.
fn counted(systems: &[recsync::testkit::MemoryConnector; 2]) -> (Dying, Dying, Arc<AtomicUsize>) {
    let left = Arc::new(AtomicUsize::new(usize::MAX));
    let wrap = |c: &recsync::testkit::MemoryConnector| Dying {
        inner: c.clone(),
        batches: left.clone(),
    };
    (wrap(&systems[0]), wrap(&systems[1]), left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_runners_with_one_killed_and_taken_over_end_where_one_runner_ends() {
    let Some(db) = Db::new("four_runners").await else {
        return;
    };
    // One runner, its state in memory.
    let one = universe(CONTACTS);
    let single_store = Arc::new(MemoryStore::new());
    let single = Arc::new(runner(
        Shard::whole(),
        one[0].clone(),
        one[1].clone(),
        single_store.clone(),
    ));
    settle(std::slice::from_ref(&single)).await;

    // Four hosts, each with its connection and its shard's lease; host 2's
    // lease is short, and host 2 dies after its first write batch.
    let four = universe(CONTACTS);
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(db.store().await);
    }
    let shard = |i| Shard::new(i, 4).unwrap();
    // Host 2's lease is short; long enough to outlive the checks below on a
    // loaded machine.
    let ttl = |i| Duration::from_secs(if i == 2 { 4 } else { 300 });
    let mut leases = Vec::new();
    for i in 0..4u32 {
        leases.push(claim(&stores[i as usize], shard(i), &format!("host-{i}"), ttl(i)).await);
    }
    let claimed_at = Instant::now();
    let left = Arc::new(AtomicUsize::new(1));
    let doomed = runner(
        shard(2),
        Dying {
            inner: four[0].clone(),
            batches: left.clone(),
        },
        Dying {
            inner: four[1].clone(),
            batches: left,
        },
        Arc::new(stores[2].fenced(&leases[2])),
    );
    let in_mkt = four[1].len(OBJ);
    let died = tokio::time::timeout(Duration::from_millis(500), doomed.run()).await;
    assert!(died.is_err(), "host 2 was to die mid-run");
    assert!(four[1].len(OBJ) > in_mkt, "host 2 died after writing");
    assert!(
        stores[0]
            .claim(&shard(2).state_key(OBJ), "host-0", ttl(0))
            .await
            .unwrap()
            .is_none(),
        "the dead host's lease holds until it expires"
    );
    let mut runners: Vec<Arc<SyncRunner>> = Vec::new();
    for i in [0u32, 1, 3] {
        let store = Arc::new(stores[i as usize].fenced(&leases[i as usize]));
        runners.push(Arc::new(runner(
            shard(i),
            four[0].clone(),
            four[1].clone(),
            store,
        )));
    }
    settle(&runners).await;

    // Host 0 takes shard 2 over once the lease has expired.
    tokio::time::sleep(ttl(2).saturating_sub(claimed_at.elapsed())).await;
    let taken = loop {
        if let Some(lease) = stores[0]
            .claim(&shard(2).state_key(OBJ), "host-0", ttl(0))
            .await
            .unwrap()
        {
            break lease;
        }
        assert!(
            claimed_at.elapsed() < Duration::from_secs(30),
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        taken.token() > leases[2].token(),
        "a take-over gets a later token"
    );
    runners.push(Arc::new(runner(
        shard(2),
        four[0].clone(),
        four[1].clone(),
        Arc::new(stores[0].fenced(&taken)),
    )));
    settle(&runners).await;

    // The dead host, back, runs with its old lease: its save is refused.
    let stale = runner(
        shard(2),
        four[0].clone(),
        four[1].clone(),
        Arc::new(stores[2].fenced(&leases[2])),
    );
    match stale.run().await {
        Err(RunError::Store(StoreError::Fenced { token, current, .. })) => {
            assert_eq!((token, current), (leases[2].token(), Some(taken.token())));
        }
        other => panic!("expected the stale lease's save refused, got {other:?}"),
    }

    assert_same_content("crm", &four[0], &one[0]);
    assert_same_content("mkt", &four[1], &one[1]);
    edit(&one, CONTACTS);
    edit(&four, CONTACTS);
    settle(std::slice::from_ref(&single)).await;
    settle(&runners).await;
    assert_same_content("crm", &four[0], &one[0]);
    assert_same_content("mkt", &four[1], &one[1]);
    let mut total = 0;
    for s in Shard::all(4) {
        total += AsyncStateStore::load(&stores[1], &s.state_key(OBJ))
            .await
            .unwrap()
            .len();
    }
    let whole = AsyncStateStore::load(&*single_store, OBJ).await.unwrap();
    assert_eq!(total, whole.len(), "the shards hold one runner's entities");
    drop((runners, stale, doomed, single, stores));
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_contending_for_one_shard_exactly_one_writes() {
    let Some(db) = Db::new("contending").await else {
        return;
    };
    let systems = universe(200);
    let shard = Shard::new(1, 4).unwrap();
    let config = db.config();
    let host = |name: &'static str| {
        let (systems, config) = (systems.clone(), config.clone());
        async move {
            let store = PostgresStore::connect_config(&config).await.unwrap();
            let (crm, mkt, left) = counted(&systems);
            let lease = store
                .claim(&shard.state_key(OBJ), name, Duration::from_secs(60))
                .await
                .unwrap();
            if let Some(lease) = &lease {
                let runner = runner(shard, crm, mkt, Arc::new(store.fenced(lease)));
                let report = runner.run().await.unwrap();
                assert!(report.errors.is_empty(), "{report}");
            }
            (lease.is_some(), usize::MAX - left.load(Ordering::SeqCst))
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(host("host-a")), tokio::spawn(host("host-b")));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.0 ^ b.0, "exactly one holds the lease: {a:?} {b:?}");
    let (winner, loser) = if a.0 { (a, b) } else { (b, a) };
    assert!(winner.1 > 0, "the lease holder wrote");
    assert_eq!(loser.1, 0, "the other wrote nothing");
    db.finish().await;
}

//! Runners on shards against one runner, on a real PostgreSQL: the same
//! contacts in two in-memory systems synced by 1, 2 and 4 runners, each on
//! a shard of its own with its lease, every store a connection of its own.
//! Times the first sync, the second run (nothing new: it reads back and
//! confirms the first sync's writes, so it saves every entity they
//! touched), and a run after 1% of
//! the contacts were renamed; each as a ratio to one runner on PostgreSQL
//! in the same run, and one runner with its state in memory beside them
//! (what the store costs). Not a criterion bench: each figure is one sync
//! of every record.
//!
//! ```sh
//! eval "$(.ci/postgres start)"
//! cargo bench --bench shards --features postgres,testkit            # 100,000 contacts
//! RECSYNC_BENCH_CONTACTS=10000 cargo bench --bench shards --features postgres,testkit
//! .ci/postgres stop "$RECSYNC_POSTGRES_DIR"
//! ```

#[allow(dead_code)]
#[path = "../tests/common/shards.rs"]
mod shards;

use std::sync::Arc;
use std::time::{Duration, Instant};

use recsync::shard::Shard;
use recsync::store::PostgresStore;
use recsync::testkit::MemoryConnector;
use recsync::SyncRunner;
use serde_json::json;
use shards::{runner, universe, OBJ};

/// The runners of one configuration: `count` shards, a runner, a store
/// connection and a lease each.
async fn runners(
    config: &tokio_postgres::Config,
    count: u32,
    systems: &[MemoryConnector; 2],
) -> Vec<Arc<SyncRunner>> {
    let mut out = Vec::new();
    for shard in Shard::all(count) {
        let store = PostgresStore::connect_config(config).await.unwrap();
        let lease = store
            .claim(
                &shard.state_key(OBJ),
                &format!("bench-{}", shard.index()),
                Duration::from_secs(3600),
            )
            .await
            .unwrap()
            .expect("a free shard");
        let fenced = store.fenced(&lease);
        out.push(Arc::new(runner(
            shard,
            systems[0].clone(),
            systems[1].clone(),
            Arc::new(fenced),
        )));
    }
    out
}

/// Runs every runner at once, each on the runtime's threads; the time
/// until the last is done.
async fn run(runners: &[Arc<SyncRunner>]) -> Duration {
    let started = Instant::now();
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
    started.elapsed()
}

fn rename_one_percent(crm: &MemoryConnector) {
    for r in crm.records(OBJ).into_iter().step_by(100) {
        crm.edit(OBJ, &r.id, [("name", json!(format!("Renamed {}", r.id)))])
            .unwrap();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes
    // nothing: run the whole bench only for the first.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(url) = std::env::var("RECSYNC_POSTGRES_URL") else {
        eprintln!("shards bench not run: RECSYNC_POSTGRES_URL is unset (see benches/README.md)");
        return;
    };
    let contacts: usize = std::env::var("RECSYNC_BENCH_CONTACTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin: tokio_postgres::Config = url.parse().unwrap();
        let (client, connection) = admin.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        println!(
            "{contacts} contacts (crm {contacts}, mkt {} of them and {} of its own), {} threads",
            contacts / 2,
            contacts / 10,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("runners  first sync        second run        1% renamed");
        // One runner with its state in memory: what the store costs.
        let systems = universe(contacts);
        let alone = Arc::new(runner(
            Shard::whole(),
            systems[0].clone(),
            systems[1].clone(),
            Arc::new(recsync::MemoryStore::new()),
        ));
        let alone = std::slice::from_ref(&alone);
        let first = run(alone).await;
        let quiet = run(alone).await;
        rename_one_percent(&systems[0]);
        let edits = run(alone).await;
        println!(
            "memory   {:>7.2} s          {:>7.2} s          {:>7.2} s",
            first.as_secs_f64(),
            quiet.as_secs_f64(),
            edits.as_secs_f64()
        );
        let mut base: Option<[Duration; 3]> = None;
        for count in [1u32, 2, 4] {
            let schema = format!("bench_shards_{}_{count}", std::process::id());
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .unwrap();
            let mut config = admin.clone();
            config.options(format!("-c search_path={schema}"));
            let systems = universe(contacts);
            let runners = runners(&config, count, &systems).await;
            let first = run(&runners).await;
            let quiet = run(&runners).await;
            rename_one_percent(&systems[0]);
            let edits = run(&runners).await;
            let times = [first, quiet, edits];
            let base = *base.get_or_insert(times);
            let cell = |i: usize| {
                format!(
                    "{:>7.2} s ({:.2}x)",
                    times[i].as_secs_f64(),
                    times[i].as_secs_f64() / base[i].as_secs_f64()
                )
            };
            println!("{count:>7}  {}  {}  {}", cell(0), cell(1), cell(2));
            drop(runners);
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
    });
}

//! Runners on several hosts: three workers (tasks here; hosts and
//! processes in production) share four shards of contacts through leases
//! in PostgreSQL. Each worker loops: claim a shard's lease, run that
//! shard's runner with every save fenced by the lease, release it. One
//! worker stops dead in the middle of a run; its lease expires and the
//! others take its shard over; every contact ends in both systems once.
//!
//! Needs a PostgreSQL server:
//!
//! ```sh
//! eval "$(.ci/postgres start)"   # a throwaway one, or set RECSYNC_POSTGRES_URL
//! cargo run --example several_hosts --features postgres,testkit
//! .ci/postgres stop "$RECSYNC_POSTGRES_DIR"
//! ```

use std::time::Duration;

use recsync::runner::SyncRunner;
use recsync::shard::Shard;
use recsync::store::PostgresStore;
use recsync::testkit::MemoryConnector;
use recsync::{DeletePolicy, Field, FieldMap, SyncEngine};
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

const SHARDS: u32 = 4;

/// What every host knows: the map and the systems' connectors.
#[derive(Clone)]
struct Setup {
    engine: SyncEngine,
    crm: MemoryConnector,
    marketing: MemoryConnector,
    /// The server, with this example's schema as `search_path`.
    config: tokio_postgres::Config,
}

/// One host's loop: `rounds` passes over the shards, taking each whose
/// lease is free or expired, running it, giving it back. A host that
/// `dies` stops in the middle of its first run, holding the lease.
async fn host(name: String, setup: Setup, rounds: usize, dies: bool) -> Result<usize, Error> {
    // In production: `PostgresStore::connect("postgres://…")`.
    let store = PostgresStore::connect_config(&setup.config).await?;
    let ttl = Duration::from_secs(2);
    let mut runs = 0;
    for _ in 0..rounds {
        for shard in Shard::all(SHARDS) {
            // A shard is one runner's while it holds the lease: free,
            // expired, or its own already. Every save through `fenced`
            // carries the lease's fencing token.
            let Some(lease) = store
                .claim(&shard.state_key("contacts"), &name, ttl)
                .await?
            else {
                continue; // another host has it
            };
            let runner = SyncRunner::builder(setup.engine.clone())
                .connector(setup.crm.clone())
                .connector(setup.marketing.clone())
                .store(store.fenced(&lease))
                .shard(shard)
                .sleeper(tokio::time::sleep)
                .build()?;
            if dies {
                // The process stops with the run half done: no commit, no
                // save, no release. The lease runs out by itself.
                let _ = tokio::time::timeout(Duration::from_millis(1), runner.run()).await;
                println!("{name}: stopped dead while running {shard}");
                return Ok(runs);
            }
            let report = runner.run().await?;
            runs += 1;
            if report.planned() > 0 {
                println!("{name}: {shard}: {} writes", report.planned());
            }
            store.release(lease).await?;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    Ok(runs)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let Ok(url) = std::env::var("RECSYNC_POSTGRES_URL") else {
        eprintln!(
            "set RECSYNC_POSTGRES_URL (eval \"$(.ci/postgres start)\" starts a throwaway server)"
        );
        std::process::exit(2);
    };
    let map = FieldMap::builder()
        .object("contacts")
        .systems(["crm", "marketing"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .build()?;
    let crm = MemoryConnector::new("crm");
    let marketing = MemoryConnector::new("marketing");
    for n in 0..1_000 {
        crm.insert(
            "contacts",
            [
                ("email", json!(format!("p{n}@example.com"))),
                ("name", json!(format!("Person {n}"))),
            ],
        );
        if n % 3 == 0 {
            marketing.insert(
                "contacts",
                [
                    ("email", json!(format!("P{n}@EXAMPLE.COM"))),
                    ("name", json!(format!("Person {n}"))),
                ],
            );
        }
    }
    // A schema of this run's own, dropped at the end: the store's tables
    // live in the connection's `search_path`.
    let admin: tokio_postgres::Config = url.parse()?;
    let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let schema = format!("recsync_example_{}", std::process::id());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await?;
    let mut config = admin.clone();
    config.options(format!("-c search_path={schema}"));
    let setup = Setup {
        engine: SyncEngine::new(map),
        crm: crm.clone(),
        marketing: marketing.clone(),
        config,
    };

    // Host "c" starts first and dies holding a lease; "a" and "b" go on.
    host("host-c".into(), setup.clone(), 1, true).await?;
    let (a, b) = tokio::join!(
        tokio::spawn(host("host-a".into(), setup.clone(), 6, false)),
        tokio::spawn(host("host-b".into(), setup.clone(), 6, false)),
    );
    let (a, b) = (a??, b??);
    println!("host-a ran {a} shard runs, host-b {b}");

    assert_eq!(crm.len("contacts"), 1_000);
    assert_eq!(
        marketing.len("contacts"),
        1_000,
        "every contact in marketing once"
    );
    println!("crm and marketing hold the same 1,000 contacts, each once");
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    Ok(())
}

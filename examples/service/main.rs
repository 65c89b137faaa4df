//! recsync in a service, end to end: a connector of the service's own
//! (its `customers` table), a CRM, a `SyncRunner`, the baseline in a
//! `SqliteStore` in the service's own database, and a review queue for the
//! conflicts a person decides.
//!
//! - `customers.rs` is the connector a service writes for its own data:
//!   the `Connector` trait over a SQLite table, with versions for
//!   conditional writes and a unique column for correlation keys.
//! - The CRM is the testkit's `MemoryConnector`, standing in for the
//!   connector of a real CRM's API (see `examples/http_sync/` for two over
//!   HTTP). It runs on the real clock, as the table does, so last-write-wins
//!   compares their times on one scale.
//! - The plan (`"pro"` in the service, `"Professional"` in the CRM) is
//!   value-mapped and decided by a person when both sides change it.
//!
//! Run with `cargo run --example service --features sqlite,testkit`.

mod customers;

use std::error::Error;
use std::sync::Arc;

use customers::CustomersTable;
use recsync::mapping::ValueMap;
use recsync::runner::SystemClock;
use recsync::store::{ReviewItem, ReviewQueue, SqliteStore};
use recsync::testkit::{conformance, MemoryConnector};
use recsync::{ConflictPolicy, Field, FieldMap, ReviewChoice, SyncEngine, SyncRunner};
use rusqlite::Connection;
use serde_json::json;

const CUSTOMERS: &str = "customers";

/// How customers correspond between the service and the CRM.
fn map() -> Result<FieldMap, recsync::MapError> {
    FieldMap::builder()
        .object(CUSTOMERS)
        .systems(["service", "crm"])
        .key("email")
        .field(
            Field::new("email")
                .case_insensitive()
                .native("crm", "Email"),
        )
        .field(Field::new("name").native("crm", "FullName"))
        .field(
            Field::new("plan")
                .native("crm", "Tier")
                .value_map(
                    ValueMap::new()
                        .both([("service", "free"), ("crm", "Free")])
                        .both([("service", "pro"), ("crm", "Professional")])
                        .both([("service", "enterprise"), ("crm", "Enterprise")]),
                )
                .policy(ConflictPolicy::ManualReview),
        )
        .build()
}

/// Fails the example with a message when `ok` is false.
fn check(ok: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // First, the connector against the contract the runner relies on, on a
    // scratch table in memory (in a service: a test of its own).
    let scratch = Connection::open_in_memory()?;
    customers::create_table(&scratch)?;
    let options = conformance::Options::new()
        .field("email", json!("ada@example.com"), json!("ada@lovelace.org"))
        .field("name", json!("Ada"), json!("Ada Lovelace"))
        .field("plan", json!("free"), json!("pro"));
    let checked = conformance::run(&CustomersTable::new("service", scratch), CUSTOMERS, options)
        .await
        .map_err(|failure| failure.to_string())?;
    println!("== the customers table connector keeps the contract\n{checked}");

    // The service's database, with its own table and its own rows.
    let dir = std::env::temp_dir().join(format!("recsync-service-{}", std::process::id()));
    // Owner-only: the database will hold the baseline, people's data.
    let mut mkdir = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut mkdir, 0o700);
    mkdir.create(&dir)?;
    let db_path = dir.join("service.db");
    let db = Connection::open(&db_path)?;
    customers::create_table(&db)?;
    customers::upsert(&db, "ada@example.com", "Ada Lovelace", "pro")?;
    customers::upsert(&db, "alan@example.com", "Alan Turing", "free")?;

    // The CRM, on the real clock.
    let crm = MemoryConnector::builder("crm").clock(SystemClock).build()?;
    crm.insert(
        CUSTOMERS,
        [
            ("Email", json!("ADA@example.com")),
            ("FullName", json!("Ada Lovelace")),
            ("Tier", json!("Professional")),
        ],
    );
    crm.insert(
        CUSTOMERS,
        [
            ("Email", json!("grace@example.com")),
            ("FullName", json!("Grace Hopper")),
            ("Tier", json!("Free")),
        ],
    );

    // The baseline in the service's database, beside its tables (the store
    // keeps to tables named `recsync_*`), through a connection the service
    // opened; shared by the runner and the review queue through an `Arc`.
    let store = Arc::new(SqliteStore::from_connection(Connection::open(&db_path)?)?);
    let runner = SyncRunner::builder(SyncEngine::new(map()?))
        .connector(CustomersTable::new("service", Connection::open(&db_path)?))
        .connector(crm.clone())
        .store(Arc::clone(&store))
        .sleeper(tokio::time::sleep)
        .build()?;

    println!("== first sync: Ada linked by email, Alan and Grace created");
    let report = runner.run().await?;
    println!("{report}");
    check(report.applied() == 2, "two creates")?;
    check(crm.len(CUSTOMERS) == 3, "three customers in the CRM")?;

    println!("== Alan upgrades to pro in the service while sales signs him up for Enterprise");
    customers::upsert(&db, "alan@example.com", "Alan M. Turing", "pro")?;
    let alan = crm
        .records(CUSTOMERS)
        .into_iter()
        .find(|r| r.get("Email") == Some(&json!("alan@example.com")))
        .ok_or("Alan is in the CRM")?;
    crm.edit(CUSTOMERS, &alan.id, [("Tier", json!("Enterprise"))])?;
    let report = runner.run().await?;
    println!("{report}");

    // The reviewer's screen: what waits for a decision.
    let queue = ReviewQueue::new(&*store, CUSTOMERS);
    let open = queue.open()?;
    println!("== waiting for review: {}", open.len());
    for item in &open {
        // Each candidate as its system shows it: "pro" in the service,
        // "Enterprise" in the CRM, not the canonical values.
        println!("{}", item.display_with(runner.engine().map()));
    }
    let [ReviewItem::Field(conflict)] = open.as_slice() else {
        return Err("one field conflict held for review".into());
    };
    check(conflict.field == "plan", "the plan is held")?;
    // The same as data, for a review UI.
    let native = conflict.native(runner.engine().map());
    check(
        native.candidate("crm").map(|c| c.value.value()) == Some(&json!("Enterprise")),
        "the CRM's candidate in its own form",
    )?;
    // The name changed on one side only: it went through meanwhile.
    check(
        crm.get(CUSTOMERS, &alan.id)
            .and_then(|r| r.get("FullName").cloned())
            == Some(json!("Alan M. Turing")),
        "Alan's new name in the CRM",
    )?;

    println!("== the reviewer takes the CRM's plan; the next run writes it");
    queue.resolve(conflict.id, ReviewChoice::System("crm".into()))?;
    let report = runner.run().await?;
    println!("{report}");
    let plan: String = db.query_row(
        "SELECT plan FROM customers WHERE email = 'alan@example.com'",
        [],
        |row| row.get(0),
    )?;
    check(plan == "enterprise", "Alan on enterprise in the service")?;
    check(queue.open()?.is_empty(), "nothing left for review")?;
    check(runner.dry_run().await?.is_empty(), "nothing left to write")?;
    println!("in sync: {} customers in each system", crm.len(CUSTOMERS));

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

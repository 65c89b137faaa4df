//! A shop, a payment processor and an ERP kept in sync by a `SyncRunner` on
//! tokio. Each system is a `MemoryConnector` with its own field names; a
//! few rounds of edits happen between runs, and one run meets a rate limit.
//! Every run prints its `SyncReport`.
//!
//! Run with `cargo run --example three_systems --features testkit`.

use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use recsync::runner::{RetryPolicy, RunError, SyncEvent, SyncReport, SyncRunner};
use recsync::testkit::{ManualClock, MemoryConnector};
use recsync::{Connector, DeletePolicy, Field, FieldMap, MemoryStore, SyncEngine};
use serde_json::json;

const CUSTOMERS: &str = "customers";

/// Runs once, printing the retries the runner reported.
async fn run(
    runner: &SyncRunner,
    events: &mut UnboundedReceiver<SyncEvent>,
) -> Result<SyncReport, RunError> {
    let report = runner.run().await;
    while let Ok(event) = events.try_recv() {
        if let SyncEvent::Retrying {
            system,
            attempt,
            after,
            error,
            ..
        } = event
        {
            println!("  {system}: {error} on attempt {attempt}, retried after {after:?}");
        }
    }
    report
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One clock for the three systems, so last-write-wins compares times on
    // one scale; the runner waits on it too, so the demo never sleeps.
    let clock = ManualClock::default_ticking();
    let system = |name: &str| MemoryConnector::builder(name).clock(clock.clone()).build();
    let shop = system("shop")?;
    let payments = system("payments")?;
    let erp = system("erp")?;

    // The same customers, under each system's own field names.
    let map = FieldMap::builder()
        .object(CUSTOMERS)
        .systems(["shop", "payments", "erp"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .field(
            Field::new("email")
                .case_insensitive()
                .native("payments", "email_address")
                .native("erp", "EMAIL"),
        )
        .field(
            Field::new("name")
                .native("payments", "holder")
                .native("erp", "NAME"),
        )
        // The payment processor keeps no city.
        .field(Field::new("city").native("erp", "CITY").not_in("payments"))
        .build()?;

    shop.insert(
        CUSTOMERS,
        [
            ("email", json!("ada@example.com")),
            ("name", json!("Ada Lovelace")),
            ("city", json!("London")),
        ],
    );
    shop.insert(
        CUSTOMERS,
        [
            ("email", json!("alan@example.com")),
            ("name", json!("Alan Turing")),
            ("city", json!("Wilmslow")),
        ],
    );
    payments.insert(
        CUSTOMERS,
        [
            ("email_address", json!("GRACE@example.com")),
            ("holder", json!("Grace Hopper")),
        ],
    );
    erp.insert(
        CUSTOMERS,
        [
            ("EMAIL", json!("ada@example.com")),
            ("NAME", json!("A. Lovelace")),
            ("CITY", json!("London")),
        ],
    );

    let runner = SyncRunner::builder(SyncEngine::new(map))
        .connector(shop.clone())
        .connector(payments.clone())
        .connector(erp.clone())
        .store(MemoryStore::new())
        .clock(clock.clone())
        .sleeper(clock.clone())
        .retry(RetryPolicy::new().max_attempts(4))
        .build()?;

    // Retries, as the runner reports them.
    let mut events = runner.subscribe();

    println!("== run 1: first sync links Ada, creates the others everywhere");
    println!("{}\n", run(&runner, &mut events).await?);

    println!("== run 2: Grace's name changes (payments), Alan moves (erp)");
    let grace = payments
        .records(CUSTOMERS)
        .into_iter()
        .find(|r| r.get("holder") == Some(&json!("Grace Hopper")))
        .map(|r| r.id);
    if let Some(id) = grace {
        payments.edit(CUSTOMERS, &id, [("holder", json!("Grace B. Hopper"))])?;
    }
    let alan = erp
        .records(CUSTOMERS)
        .into_iter()
        .find(|r| r.get("NAME") == Some(&json!("Alan Turing")))
        .map(|r| r.id);
    if let Some(id) = alan {
        erp.edit(CUSTOMERS, &id, [("CITY", json!("Manchester"))])?;
    }
    println!("{}\n", run(&runner, &mut events).await?);

    println!("== run 3: a new customer in the shop while the ERP is rate limited");
    shop.insert(
        CUSTOMERS,
        [
            ("email", json!("katherine@example.com")),
            ("name", json!("Katherine Johnson")),
            ("city", json!("Hampton")),
        ],
    );
    erp.rate_limit_next(2, Some(Duration::from_secs(2)));
    println!("{}\n", run(&runner, &mut events).await?);

    println!("== run 4: nothing changed");
    println!("{}", run(&runner, &mut events).await?);

    for c in [&shop, &payments, &erp] {
        println!("{} holds {} customers", c.system(), c.len(CUSTOMERS));
    }
    Ok(())
}

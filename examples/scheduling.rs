//! One `SyncRunner` per object type, each on its own cadence (tokio
//! intervals): contacts often, companies less often, deals least. Contacts
//! are debounced: a contact someone is still editing waits until they have
//! stopped for a moment. The example stops by itself after a few ticks.
//!
//! Run with `cargo run --example scheduling --features testkit`.

use std::sync::Arc;
use std::time::Duration;

use recsync::runner::{SyncRunner, SystemClock};
use recsync::testkit::MemoryConnector;
use recsync::{Field, FieldMap, MemoryStore, SyncEngine};
use serde_json::json;

/// Builds the runner of one object type over the shared connectors.
fn runner(
    object: &str,
    fields: &[&str],
    crm: &MemoryConnector,
    marketing: &MemoryConnector,
    store: &MemoryStore,
    debounce: Option<Duration>,
) -> Result<Arc<SyncRunner>, Box<dyn std::error::Error>> {
    let mut map = FieldMap::builder()
        .object(object)
        .systems(["crm", "marketing"])
        .key(fields[0]);
    for f in fields {
        map = map.field(Field::new(*f));
    }
    let mut builder = SyncRunner::builder(SyncEngine::new(map.build()?))
        .connector(crm.clone())
        .connector(marketing.clone())
        .store(store.clone())
        .clock(SystemClock)
        // On tokio, waiting between retries is tokio's sleep.
        .sleeper(tokio::time::sleep);
    if let Some(quiet) = debounce {
        builder = builder.debounce(quiet);
    }
    Ok(Arc::new(builder.build()?))
}

/// Runs `runner` every `period`, `ticks` times, printing a line per run.
async fn every(runner: Arc<SyncRunner>, period: Duration, ticks: usize) {
    let mut interval = tokio::time::interval(period);
    for tick in 1..=ticks {
        interval.tick().await;
        match runner.run().await {
            Ok(report) => println!(
                "{:<9} tick {tick}: {} applied, {} failed, {} debounced",
                runner.object(),
                report.applied(),
                report.failed(),
                report.debounced
            ),
            Err(e) => println!("{:<9} tick {tick}: run failed: {e}", runner.object()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Both systems stamp records with the wall clock, as real ones do.
    let crm = MemoryConnector::builder("crm").clock(SystemClock).build()?;
    let marketing = MemoryConnector::builder("marketing")
        .clock(SystemClock)
        .build()?;
    let store = MemoryStore::new();

    crm.insert(
        "companies",
        [
            ("domain", json!("example.com")),
            ("name", json!("Example Ltd")),
        ],
    );
    crm.insert("deals", [("ref", json!("D-1")), ("amount", json!(1200))]);
    let ada = crm.insert(
        "contacts",
        [
            ("email", json!("ada@example.com")),
            ("phone", json!("555-0100")),
        ],
    );

    let contacts = runner(
        "contacts",
        &["email", "phone"],
        &crm,
        &marketing,
        &store,
        Some(Duration::from_millis(120)),
    )?;
    let companies = runner(
        "companies",
        &["domain", "name"],
        &crm,
        &marketing,
        &store,
        None,
    )?;
    let deals = runner("deals", &["ref", "amount"], &crm, &marketing, &store, None)?;

    // Someone keeps editing Ada's phone for a while, then stops.
    let person = {
        let crm = crm.clone();
        async move {
            for n in 1..=4 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = crm.edit("contacts", &ada, [("phone", json!(format!("555-010{n}")))]);
            }
        }
    };

    tokio::join!(
        every(contacts, Duration::from_millis(60), 8),
        every(companies, Duration::from_millis(150), 3),
        every(deals, Duration::from_millis(240), 2),
        person,
    );

    let phone = marketing
        .records("contacts")
        .first()
        .and_then(|r| r.get("phone").cloned());
    println!(
        "marketing has Ada's phone as {}",
        phone.unwrap_or(json!(null))
    );
    Ok(())
}

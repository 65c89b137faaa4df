//! A mapping mistake, taken back: a wrong value-map row writes "churned"
//! into 1,000 contacts of a marketing tool; the undo restores them, holds
//! the three a person fixed by hand meanwhile, and the fixed map syncs
//! them right.
//!
//! Run with `cargo run --example undo --features testkit`.

use futures::executor::block_on;
use recsync::journal::Retention;
use recsync::mapping::{ValueMap, ValueRow};
use recsync::plan::HoldKind;
use recsync::runner::SyncRunner;
use recsync::testkit::MemoryConnector;
use recsync::{Field, FieldMap, MemoryStore, SyncEngine};
use serde_json::json;

const CONTACTS: usize = 1_000;

/// The contact map, with the stage value map given.
fn map(stages: ValueMap) -> Result<FieldMap, recsync::MapError> {
    FieldMap::builder()
        .object("contacts")
        .systems(["crm", "marketing"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(
            Field::new("stage")
                .native("crm", "Stage")
                .native("marketing", "lifecycle")
                .value_map(stages),
        )
        .build()
}

/// The stages as both systems spell them: the marketing tool's spellings
/// of the CRM's "Customer" and "Churned" (swapped, in the mistake).
fn stages(customer: &str, churned: &str) -> ValueMap {
    ValueMap::new()
        .row(ValueRow::both([("crm", "Lead"), ("marketing", "lead")]))
        .row(ValueRow::both([
            ("crm", "Customer"),
            ("marketing", customer),
        ]))
        .row(ValueRow::both([("crm", "Churned"), ("marketing", churned)]))
}

fn runner(
    map: FieldMap,
    crm: &MemoryConnector,
    marketing: &MemoryConnector,
    store: &MemoryStore,
) -> Result<SyncRunner, recsync::runner::BuildError> {
    SyncRunner::builder(SyncEngine::new(map))
        .connector(crm.clone())
        .connector(marketing.clone())
        .store(store.clone())
        // The journal is off unless asked for: it keeps what every write
        // overwrote, people's data included. The last 30 runs, 90 days.
        .journal(Retention::default())
        .build()
}

fn stage_counts(marketing: &MemoryConnector) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in marketing.records("contacts") {
        let stage = r
            .get("lifecycle")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        match counts.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, n)) => *n += 1,
            None => counts.push((stage, 1)),
        }
    }
    counts.sort();
    counts
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crm = MemoryConnector::builder("crm").id_prefix("c").build()?;
    let marketing = MemoryConnector::builder("marketing")
        .id_prefix("m")
        .build()?;
    let store = MemoryStore::new();
    let crm_ids: Vec<String> = (0..CONTACTS)
        .map(|i| {
            crm.insert(
                "contacts",
                [
                    ("email", json!(format!("person{i}@example.com"))),
                    ("name", json!(format!("Person {i}"))),
                    ("Stage", json!("Lead")),
                ],
            )
        })
        .collect();

    // Monday: the stage map has two rows swapped ("churned" for the CRM's
    // "Customer"), and the first sync copies the leads.
    let wrong = runner(
        map(stages("churned", "customer"))?,
        &crm,
        &marketing,
        &store,
    )?;
    let first = block_on(wrong.run())?;
    println!(
        "first sync: {} contacts created in marketing",
        first.applied()
    );

    // Tuesday: sales converts every lead; the sync writes "churned".
    for id in &crm_ids {
        crm.edit("contacts", id, [("Stage", json!("Customer"))])?;
    }
    let bad = block_on(wrong.run())?;
    let bad_run = bad.run.ok_or("the run committed")?;
    println!(
        "{bad_run}: {} updates; marketing now holds {:?}",
        bad.applied(),
        stage_counts(&marketing)
    );
    assert_eq!(
        stage_counts(&marketing),
        vec![("churned".to_owned(), CONTACTS)]
    );

    // Before anyone notices, a marketer fixes three of them by hand.
    // (Under the swapped map a run would read their "customer" as the CRM's
    // "Churned": hold the scheduler until the map is fixed.)
    let by_hand: Vec<String> = marketing
        .records("contacts")
        .iter()
        .take(3)
        .map(|r| r.id.clone())
        .collect();
    for id in &by_hand {
        marketing.edit("contacts", id, [("lifecycle", json!("customer"))])?;
    }

    // Wednesday: the mistake is found. What did the sync do to a record?
    let history = block_on(wrong.history("marketing", &by_hand[0], "stage"))?;
    for change in &history {
        println!("  {} lifecycle: {change}", by_hand[0]);
    }

    // Look at the undo first: an ordinary plan.
    let plan = block_on(wrong.plan_undo(bad_run))?;
    println!(
        "undo of {bad_run}: {} writes, {} held for review",
        plan.ops.len(),
        plan.held.len()
    );

    let undone = block_on(wrong.undo(bad_run))?;
    println!(
        "undone: {} records restored; marketing holds {:?}",
        undone.report.applied(),
        stage_counts(&marketing)
    );
    for hold in &undone.plan.held {
        if let HoldKind::ChangedSince { record_id, .. } = &hold.kind {
            println!("  held for review: marketing {record_id} was changed since; kept as it is");
        }
    }
    assert_eq!(undone.report.applied(), CONTACTS - 3);
    assert_eq!(undone.plan.held.len(), 3);
    assert_eq!(
        stage_counts(&marketing),
        vec![
            ("customer".to_owned(), 3),
            ("lead".to_owned(), CONTACTS - 3)
        ]
    );

    // The map is fixed; the next run writes what the CRM holds, right.
    let fixed = runner(
        map(stages("customer", "churned"))?,
        &crm,
        &marketing,
        &store,
    )?;
    let again = block_on(fixed.run())?;
    println!(
        "with the map fixed: {} updates; marketing holds {:?}",
        again.applied(),
        stage_counts(&marketing)
    );
    assert_eq!(
        stage_counts(&marketing),
        vec![("customer".to_owned(), CONTACTS)]
    );
    assert!(block_on(fixed.dry_run())?.is_empty());
    Ok(())
}

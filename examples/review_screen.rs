//! A reviewer's screen: deals kept in sync between HubSpot and Salesforce
//! (two `MemoryConnector`s under a `SyncRunner`), where a person decides
//! the stage and the close date when both sides change them.
//!
//! The systems spell a stage their own way (HubSpot `"closedwon"`,
//! Salesforce `"Closed Won"`), so the map has a value map between them and
//! a canonical code (`"W"`); HubSpot keeps the close date in epoch
//! milliseconds (a transform), Salesforce as `YYYY-MM-DD`. A conflict holds
//! canonical values (`"W"`); a review item's `Display` (what a log shows)
//! prints none of them, since only the map can say which are sensitive. The
//! reviewer is shown each candidate as its system holds it, under the
//! system's field name (`ReviewItem::display_with(&map)`; as data,
//! `Conflict::native(&map)`), picks one system's value, and the next run
//! writes it to the other system in that system's own form.
//!
//! Run with `cargo run --example review_screen --features testkit`.
//! `tests/review_screen.rs` runs the same story and checks what it shows.

use std::io::Write;

use chrono::TimeDelta;
use futures::channel::mpsc::UnboundedReceiver;
use recsync::mapping::{Builtin, DateFormat, ValueMap, ValueRow};
use recsync::runner::{SyncEvent, SyncRunner};
use recsync::store::{ReviewItem, ReviewQueue};
use recsync::testkit::{ManualClock, MemoryConnector};
use recsync::{
    ConflictPolicy, Field, FieldMap, MapError, MemoryStore, ReviewChoice, SyncEngine, SyncReport,
};
use serde_json::json;

/// The object type.
pub const DEALS: &str = "deals";

/// The deals' map: a name to match them by, an amount the newest change
/// wins, and a stage and a close date held for a person to decide.
pub fn map() -> Result<FieldMap, MapError> {
    // Each row: HubSpot's internal value, Salesforce's picklist value, and
    // the canonical code the baseline and plans keep.
    let stage = ValueMap::new()
        .row(
            ValueRow::both([
                ("hubspot", "appointmentscheduled"),
                ("salesforce", "Prospecting"),
            ])
            .canonical("A"),
        )
        .row(
            ValueRow::both([
                ("hubspot", "qualifiedtobuy"),
                ("salesforce", "Qualification"),
            ])
            .canonical("Q"),
        )
        .row(
            ValueRow::both([("hubspot", "closedwon"), ("salesforce", "Closed Won")]).canonical("W"),
        )
        .row(
            ValueRow::both([("hubspot", "closedlost"), ("salesforce", "Closed Lost")])
                .canonical("L"),
        );
    FieldMap::builder()
        .object(DEALS)
        .systems(["hubspot", "salesforce"])
        .key("name")
        .field(
            Field::new("name")
                .native("hubspot", "dealname")
                .native("salesforce", "Name"),
        )
        .field(Field::new("amount").native("salesforce", "Amount"))
        .field(
            Field::new("stage")
                .native("hubspot", "dealstage")
                .native("salesforce", "StageName")
                .value_map(stage)
                .policy(ConflictPolicy::ManualReview),
        )
        .field(
            Field::new("close_date")
                .native("hubspot", "closedate")
                .native("salesforce", "CloseDate")
                .transform(
                    "hubspot",
                    Builtin::Date {
                        native: DateFormat::EpochMillis,
                    },
                )
                .policy(ConflictPolicy::ManualReview),
        )
        .build()
}

/// The reviewer's screen: every item waiting for a decision, each as the
/// systems hold it.
pub fn screen(items: &[ReviewItem], map: &FieldMap) -> String {
    let mut out = format!(
        "{} waiting for review",
        plural(items.len(), "item", "items")
    );
    for (i, item) in items.iter().enumerate() {
        out.push_str(&format!("\n[{}] {}", i + 1, item.display_with(map)));
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the story leaves, for tests/review_screen.rs to look at.
pub struct Story {
    /// HubSpot, as the story left it.
    pub hubspot: MemoryConnector,
    /// Salesforce, as the story left it.
    pub salesforce: MemoryConnector,
    /// The store the runner and the review queue share.
    pub store: MemoryStore,
    /// The map.
    pub map: FieldMap,
    /// What the queue listed after the second run, and after the third.
    pub open: [Vec<ReviewItem>; 2],
    /// The reports of the three runs.
    pub reports: Vec<SyncReport>,
}

/// Runs once and writes the run's events (one line each) to `out`.
async fn run(
    runner: &SyncRunner,
    events: &mut UnboundedReceiver<SyncEvent>,
    out: &mut impl Write,
) -> Result<SyncReport, Box<dyn std::error::Error>> {
    let report = runner.run().await?;
    while let Ok(event) = events.try_recv() {
        writeln!(out, "  event: {event}")?;
    }
    Ok(report)
}

/// The whole story, written to `out`.
pub async fn story(out: &mut impl Write) -> Result<Story, Box<dyn std::error::Error>> {
    // One clock for both systems, moved by hand: the times shown are exact.
    let clock = ManualClock::new("2026-03-02T09:00:00Z".parse()?);
    let hubspot = MemoryConnector::builder("hubspot")
        .id_prefix("")
        .clock(clock.clone())
        .build()?;
    let salesforce = MemoryConnector::builder("salesforce")
        .id_prefix("006Qy")
        .clock(clock.clone())
        .build()?;
    let store = MemoryStore::new();
    let map = map()?;
    let runner = SyncRunner::builder(SyncEngine::new(map.clone()))
        .connector(hubspot.clone())
        .connector(salesforce.clone())
        .store(store.clone())
        .clock(clock.clone())
        .sleeper(clock.clone())
        .build()?;
    let mut events = runner.subscribe();
    let queue = ReviewQueue::new(&store, DEALS);
    let mut reports = Vec::new();

    writeln!(out, "== run 1: HubSpot's deals are created in Salesforce")?;
    let acme = hubspot.insert(
        DEALS,
        [
            ("dealname", json!("Acme renewal")),
            ("amount", json!(12000)),
            ("dealstage", json!("qualifiedtobuy")),
            ("closedate", json!(1_774_915_200_000_i64)), // 2026-03-31
        ],
    );
    let globex = hubspot.insert(
        DEALS,
        [
            ("dealname", json!("Globex expansion")),
            ("amount", json!(40000)),
            ("dealstage", json!("appointmentscheduled")),
            ("closedate", json!(1_777_507_200_000_i64)), // 2026-04-30
        ],
    );
    reports.push(run(&runner, &mut events, out).await?);
    let in_salesforce = |name: &str| {
        salesforce
            .records(DEALS)
            .into_iter()
            .find(|r| r.get("Name") == Some(&json!(name)))
            .map(|r| r.id)
            .ok_or_else(|| format!("{name} was not created in Salesforce"))
    };
    let (sf_acme, sf_globex) = (
        in_salesforce("Acme renewal")?,
        in_salesforce("Globex expansion")?,
    );
    if let Some(r) = salesforce.get(DEALS, &sf_acme) {
        writeln!(
            out,
            "  salesforce {sf_acme}: {}",
            serde_json::to_string(&r.fields)?
        )?;
    }

    writeln!(out, "\n== run 2: both sides change the same deals")?;
    clock.advance(TimeDelta::hours(2));
    hubspot.edit(DEALS, &acme, [("dealstage", json!("closedwon"))])?;
    hubspot.edit(
        DEALS,
        &globex,
        [("closedate", json!(1_778_803_200_000_i64))],
    )?; // 2026-05-15
    clock.advance(TimeDelta::minutes(20));
    salesforce.edit(
        DEALS,
        &sf_acme,
        [("StageName", json!("Closed Lost")), ("Amount", json!(9500))],
    )?;
    salesforce.edit(DEALS, &sf_globex, [("CloseDate", json!("2026-06-30"))])?;
    reports.push(run(&runner, &mut events, out).await?);

    let first = queue.open()?;
    writeln!(out, "\n== the log's view: ids and fields, no values")?;
    for item in &first {
        writeln!(out, "{item}")?;
    }
    writeln!(out, "\n== the reviewer's screen: each system's own values")?;
    writeln!(out, "{}", screen(&first, &map))?;

    // The reviewer takes Salesforce's stage for Acme: the deal was lost.
    let stage = first
        .iter()
        .find_map(|item| match item {
            ReviewItem::Field(c) if c.field == "stage" => Some(c),
            _ => None,
        })
        .ok_or("no stage conflict to review")?;
    let native = stage.native(&map);
    let taken = native
        .candidate("salesforce")
        .ok_or("salesforce is no candidate")?;
    queue.resolve(stage.id, ReviewChoice::System(taken.system.clone()))?;
    writeln!(
        out,
        "\nresolved {}: take {}'s {} {}",
        stage.id,
        taken.system,
        taken.field,
        taken.value.value()
    )?;

    writeln!(
        out,
        "\n== run 3: the decision is written to HubSpot in HubSpot's form"
    )?;
    clock.advance(TimeDelta::minutes(5));
    reports.push(run(&runner, &mut events, out).await?);
    if let Some(r) = hubspot.get(DEALS, &acme) {
        writeln!(
            out,
            "  hubspot {acme} dealstage: {}",
            r.get("dealstage").unwrap_or(&json!(null))
        )?;
    }
    let second = queue.open()?;
    writeln!(out, "\n{}", screen(&second, &map))?;

    Ok(Story {
        hubspot,
        salesforce,
        store,
        map,
        open: [first, second],
        reports,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    story(&mut std::io::stdout()).await?;
    Ok(())
}

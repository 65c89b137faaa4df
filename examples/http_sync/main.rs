//! Contacts synced both ways between HubSpot and Salesforce over HTTP, with
//! the reqwest connectors of this directory ([`hubspot`], [`salesforce`]).
//!
//! ```sh
//! cargo run --example http_sync --features rate-limit
//! ```
//!
//! Two local servers from the dev-only `recsync-test-servers` crate stand
//! in for the real APIs: they answer on `127.0.0.1` in the shape of
//! HubSpot's CRM objects API and Salesforce's REST API (pages, batch
//! endpoints, rate limits with `Retry-After`, the phone HubSpot rewrites,
//! the `LastName` Salesforce requires, `If-Match` on Composite writes). The
//! example seeds a few contacts on each side, syncs them, makes an edit on
//! each side and syncs again, and prints each run's report. Each system is
//! paced by its own [`RateLimit`], one per account: the runner and the
//! connector hold clones of it, and so would the runners of other object
//! types (companies, deals) on the same account.
//!
//! # Against the real APIs
//!
//! - **Base URL.** `https://api.hubapi.com` for HubSpot; your org's
//!   `https://<instance>.my.salesforce.com` for Salesforce.
//! - **Tokens** from the environment (or your secret store), never from
//!   the source, wrapped in a [`Secret`] so that no `Debug` prints them: a
//!   HubSpot private app token, a Salesforce OAuth access token.
//! - **TLS.** The servers here speak plain HTTP, so the crate's
//!   dev-dependency leaves reqwest's TLS out; a real connector turns on
//!   reqwest's `rustls` feature
//!   (`reqwest = { version = "0.13", default-features = false, features = ["json", "query", "rustls"] }`).
//! - **The correlation key** lives in a custom unique field you create
//!   first: `recsync_key` (HubSpot, unique values) and `Recsync_Key__c`
//!   (Salesforce, unique external id).
//! - **Limits.** Set each [`RateLimit`] a little under the account's (100
//!   requests per 10 seconds for a HubSpot OAuth app, with a daily budget;
//!   Salesforce counts a daily budget per org), and the [`RetryPolicy`]'s
//!   longest wait at least the `Retry-After` the API sends.
//! - **Salesforce ETags.** See the notes in `salesforce.rs`: the local
//!   server takes `SystemModstamp` as the ETag; a real org does not.
//!
//! ```ignore
//! let hubspot = HubSpotConnector::new(
//!     "hubspot",
//!     "https://api.hubapi.com",
//!     Secret::new(std::env::var("HUBSPOT_TOKEN")?),
//! );
//! let salesforce = SalesforceConnector::new(
//!     "salesforce",
//!     std::env::var("SALESFORCE_INSTANCE_URL")?,
//!     Secret::new(std::env::var("SALESFORCE_TOKEN")?),
//! );
//! ```

// The connectors keep builder methods this example does not call.
#[allow(dead_code)]
mod hubspot;
#[allow(dead_code)]
mod salesforce;

use std::error::Error;
use std::time::Duration;

use hubspot::HubSpotConnector;
use recsync::connector::Secret;
use recsync::runner::{RateLimit, RetryPolicy, SyncRunner};
use recsync::{ConflictPolicy, Field, FieldMap, MemoryStore, SyncEngine};
use recsync_test_servers::hubspot::HubSpot;
use recsync_test_servers::salesforce::Salesforce;
use salesforce::SalesforceConnector;
use serde_json::{json, Map, Value};

const HUBSPOT_TOKEN: &str = "pat-na1-local-example";
const SALESFORCE_TOKEN: &str = "00Dxx0000001gPL!local-example";

fn fields(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

/// An account's pace: `requests` a second, one at a time, waiting on tokio.
fn pace(requests: u32) -> Result<RateLimit, recsync::runner::BuildError> {
    RateLimit::builder(requests, Duration::from_secs(1))
        .sleeper(tokio::time::sleep)
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The stand-ins, each letting 25 requests a second through.
    let hs = HubSpot::start(HUBSPOT_TOKEN).await?;
    let sf = Salesforce::start(SALESFORCE_TOKEN).await?;
    hs.faults().rate_limit(25, Duration::from_secs(1));
    sf.faults().rate_limit(25, Duration::from_secs(1));
    sf.query_page_size(3);

    for (email, first, last, phone) in [
        ("ada@example.com", "Ada", "Lovelace", "+1 555 010 0001"),
        ("alan@example.com", "Alan", "Turing", "+1 555 010 0002"),
        ("grace@example.com", "Grace", "Hopper", "+1 555 010 0003"),
    ] {
        hs.insert(
            "contacts",
            fields(&[
                ("email", email),
                ("firstname", first),
                ("lastname", last),
                ("phone", phone),
            ]),
        );
    }
    for (email, first, last, phone) in [
        ("edsger@example.com", "Edsger", "Dijkstra", "(555) 010-0004"),
        ("barbara@example.com", "Barbara", "Liskov", "(555) 010-0005"),
        ("Ada@Example.com", "Ada", "Lovelace", "+15550100001"),
    ] {
        sf.insert(
            "Contact",
            fields(&[
                ("Email", email),
                ("FirstName", first),
                ("LastName", last),
                ("Phone", phone),
            ]),
        );
    }

    // One limit per account, a little under what the server lets through:
    // the runner paces the first request of each call, the connector the
    // others (later pages, a delete's second request).
    let hubspot_limit = pace(20)?;
    let salesforce_limit = pace(20)?;
    let hubspot = HubSpotConnector::new("hubspot", hs.url(), Secret::new(HUBSPOT_TOKEN))
        .properties("contacts", ["email", "firstname", "lastname", "phone"])
        .page_size(2)
        .rate_limit(hubspot_limit.clone());
    let salesforce =
        SalesforceConnector::new("salesforce", sf.url(), Secret::new(SALESFORCE_TOKEN))
            .sobject("contacts", "Contact")
            .fields("contacts", ["Email", "FirstName", "LastName", "Phone"])
            .conditional(true)
            .rate_limit(salesforce_limit.clone());

    let map = FieldMap::builder()
        .object("contacts")
        .systems(["hubspot", "salesforce"])
        .key("email")
        .field(
            Field::new("email")
                .native("hubspot", "email")
                .native("salesforce", "Email")
                .case_insensitive(),
        )
        .field(
            Field::new("first_name")
                .native("hubspot", "firstname")
                .native("salesforce", "FirstName"),
        )
        .field(
            Field::new("last_name")
                .native("hubspot", "lastname")
                .native("salesforce", "LastName")
                .policy(ConflictPolicy::LastWriteWins),
        )
        .field(
            Field::new("phone")
                .native("hubspot", "phone")
                .native("salesforce", "Phone"),
        )
        .build()?;
    let runner = SyncRunner::builder(SyncEngine::new(map))
        .connector(hubspot)
        .connector(salesforce)
        .store(MemoryStore::new())
        .sleeper(tokio::time::sleep)
        .rate_limit("hubspot", hubspot_limit.clone())
        .rate_limit("salesforce", salesforce_limit.clone())
        .batches_in_flight(2)
        .retry(
            RetryPolicy::new()
                .max_attempts(5)
                .base_delay(Duration::from_millis(100))
                .max_delay(Duration::from_secs(5)),
        )
        .build()?;

    // HubSpot is briefly unavailable: the run's first request gets a 503,
    // and the report counts the retry.
    hs.faults().fail_next(1, 503);
    let report = runner.run().await?;
    println!("{report}\n");

    // A person edits a contact on each side.
    let ada = sf
        .records("Contact")
        .into_iter()
        .find(|r| r.fields["Email"] == json!("Ada@Example.com"))
        .ok_or("Ada is in Salesforce")?;
    sf.edit("Contact", &ada.id, fields(&[("Phone", "555-010-9999")]));
    let edsger = hs
        .records("contacts")
        .into_iter()
        .find(|r| r.fields.get("email") == Some(&json!("edsger@example.com")))
        .ok_or("Edsger was made in HubSpot")?;
    hs.edit(
        "contacts",
        &edsger.id,
        fields(&[("lastname", "Dijkstra-Wybe")]),
    );
    let report = runner.run().await?;
    println!("{report}\n");

    let report = runner.run().await?;
    println!("{report}\n");
    assert_eq!(report.planned(), 0, "settled");

    for row in hs.records("contacts") {
        let show = |name: &str| row.fields.get(name).and_then(Value::as_str).unwrap_or("");
        println!(
            "hubspot     {:<22} {:<8} {:<14} {}",
            show("email"),
            show("firstname"),
            show("lastname"),
            show("phone")
        );
    }
    for row in sf.records("Contact") {
        let show = |name: &str| row.fields.get(name).and_then(Value::as_str).unwrap_or("");
        println!(
            "salesforce  {:<22} {:<8} {:<14} {}",
            show("Email"),
            show("FirstName"),
            show("LastName"),
            show("Phone")
        );
    }
    println!(
        "\nrequests: hubspot {} (server answered {}), salesforce {} (server answered {})",
        hubspot_limit.stats().requests,
        hs.faults().stats().requests,
        salesforce_limit.stats().requests,
        sf.faults().stats().requests,
    );
    Ok(())
}

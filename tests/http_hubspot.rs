//! The HubSpot connector of the `http_sync` example against the local
//! HubSpot server (test-servers), over real HTTP on loopback: the
//! conformance suite, paging, batches, values HubSpot rewrites, and every
//! error the runner acts on, and the pacing of every request after a
//! call's first.
#![cfg(all(feature = "testkit", feature = "rate-limit"))]

#[allow(dead_code)]
#[path = "../examples/http_sync/hubspot.rs"]
mod hubspot;

use std::collections::HashSet;
use std::time::Duration;

use hubspot::HubSpotConnector;
use recsync::connector::{ErrorKind, Secret};
use recsync::testkit::conformance::{self, Options, Rule};
use recsync::testkit::OpBuilder;
use recsync::{Connector, ConnectorError};
use recsync_test_servers::hubspot::HubSpot;
use serde_json::{json, Map, Value};

const TOKEN: &str = "pat-na1-test-0123456789";

async fn server() -> HubSpot {
    HubSpot::start(TOKEN).await.expect("the server starts")
}

fn connector(server: &HubSpot) -> HubSpotConnector {
    HubSpotConnector::new("hubspot", server.url(), Secret::new(TOKEN))
        .properties("contacts", ["email", "firstname", "lastname", "phone"])
}

fn props(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn creates(n: usize, name: impl Fn(usize) -> String) -> Vec<recsync::WriteOp> {
    (0..n)
        .map(|i| {
            OpBuilder::create("hubspot", "contacts")
                .field("firstname", json!(name(i)))
                .correlation(format!("entity-{i}"))
                .build()
        })
        .collect()
}

/// Every text an error shows: Display, Debug, message and sources.
fn shown(error: &ConnectorError) -> String {
    let mut text = format!("{error} {error:?} {}", error.message());
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn the_connector_keeps_the_contract_but_what_hubspot_cannot_do() {
    let server = server().await;
    // Records that are not the suite's own do not disturb it.
    server.insert("contacts", props(&[("firstname", json!("Grace"))]));
    let connector = connector(&server);
    // Contacts' email is unique, and the suite creates many records with the
    // same values: it writes names.
    let options = Options::new()
        .field("firstname", json!("Ada"), json!("Augusta"))
        .field("lastname", json!("Lovelace"), json!("King"))
        .max_batch_check(100);
    let report = conformance::run(&connector, "contacts", options)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    let skipped: Vec<Rule> = report.skipped.iter().map(|(rule, _)| *rule).collect();
    assert_eq!(
        skipped,
        [
            Rule::StaleWriteRejected,
            Rule::ChangesOnce,
            Rule::DeletesAreTombstones,
            Rule::ChangesFromBeginning,
        ],
        "only the rules of conditional writes and incremental fetch are skipped:\n{report}"
    );
    for rule in [
        Rule::VersionsChange,
        Rule::CorrelationReturned,
        Rule::NoDuplicateCreate,
        Rule::FetchByIds,
        Rule::BatchAccepted,
        Rule::MissingRecordNotFound,
    ] {
        assert!(
            report.passed.contains(&rule),
            "{rule} not passed:\n{report}"
        );
    }
    // The suite cleaned up after itself: Grace is all that is left.
    assert_eq!(server.records("contacts").len(), 1);
}

#[tokio::test]
async fn fetch_pages_through_250_records_each_once() {
    let server = server().await;
    for i in 0..250 {
        server.insert(
            "contacts",
            props(&[
                ("email", json!(format!("p{i}@example.com"))),
                ("recsync_key", json!(format!("e{i}"))),
            ]),
        );
    }
    server.faults().reset_stats();
    let snapshot = connector(&server).fetch("contacts").await.unwrap();
    assert_eq!(snapshot.coverage, recsync::Coverage::Complete);
    assert_eq!(snapshot.records.len(), 250);
    let ids: HashSet<&str> = snapshot.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 250, "a record came twice");
    let held: HashSet<String> = server
        .records("contacts")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, held.iter().map(String::as_str).collect());
    assert_eq!(server.faults().stats().requests, 3, "pages of 100");

    let record = &snapshot.records[0];
    let row = server.get("contacts", &record.id).unwrap();
    assert_eq!(record.get("email"), row.fields.get("email"));
    assert_eq!(
        record.get("phone"),
        Some(&Value::Null),
        "asked for, not held"
    );
    assert!(record.get("hs_object_id").is_none() && record.get("recsync_key").is_none());
    assert_eq!(record.correlation.as_deref(), Some("e0"));
    assert_eq!(record.updated_at, Some(row.updated));
    assert!(record.version.is_some());
}

#[tokio::test]
async fn a_batch_of_100_is_one_request_and_results_find_their_ops() {
    let server = server().await;
    let connector = connector(&server);
    let ops = creates(100, |i| format!("n{i}"));
    server.faults().reset_stats();
    let results = connector.apply("contacts", &ops).await.unwrap();
    let stats = server.faults().stats();
    assert_eq!((stats.requests, stats.writes), (1, 1));
    // The server answers in reverse order: each id is matched to its op by
    // trace id, so op i's record holds name i.
    let mut ids = HashSet::new();
    for (i, result) in results.iter().enumerate() {
        let applied = result.as_ref().unwrap();
        let id = applied.record_id.clone().unwrap();
        let row = server.get("contacts", &id).unwrap();
        assert_eq!(row.fields["firstname"], json!(format!("n{i}")));
        assert_eq!(row.fields["recsync_key"], json!(format!("entity-{i}")));
        assert!(applied.stored.is_empty(), "names are stored as sent");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 100);

    let updates: Vec<_> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r.as_ref().unwrap().record_id.clone().unwrap();
            OpBuilder::update("hubspot", "contacts", id)
                .field("lastname", json!(format!("l{i}")))
                .build()
        })
        .collect();
    server.faults().reset_stats();
    let results = connector.apply("contacts", &updates).await.unwrap();
    assert_eq!(server.faults().stats().requests, 1);
    for (op, result) in updates.iter().zip(&results) {
        let id = op.record_id.as_deref().unwrap();
        let row = server.get("contacts", id).unwrap();
        assert_eq!(row.fields["lastname"], op.fields[0].value);
        let version = result.as_ref().unwrap().version.clone();
        assert!(version.is_some_and(|v| v.ends_with('Z')));
    }
}

#[tokio::test]
async fn a_rewritten_phone_comes_back_as_stored() {
    let server = server().await;
    let connector = connector(&server);
    let create = OpBuilder::create("hubspot", "contacts")
        .field("firstname", json!("Ada"))
        .field("phone", json!("(555) 010-1234"))
        .correlation("e1")
        .build();
    let applied = connector.apply("contacts", &[create]).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(applied.stored.len(), 1, "{applied:?}");
    assert_eq!(applied.stored["phone"], json!("+15550101234"));
    let id = applied.record_id.unwrap();

    // An update too; a number is stored as text; a cleared field is no
    // rewrite.
    let update = OpBuilder::update("hubspot", "contacts", &id)
        .field("phone", json!("555.010.9999"))
        .field("lastname", json!(1815))
        .field("firstname", Value::Null)
        .build();
    let applied = connector.apply("contacts", &[update]).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(applied.stored.len(), 2, "{applied:?}");
    assert_eq!(applied.stored["phone"], json!("+15550109999"));
    assert_eq!(applied.stored["lastname"], json!("1815"));

    let record = connector
        .fetch_records("contacts", std::slice::from_ref(&id))
        .await
        .unwrap()
        .records
        .remove(0);
    assert_eq!(record.get("phone"), Some(&json!("+15550109999")));
    assert_eq!(record.get("firstname"), Some(&Value::Null));
    assert_eq!(
        record.version, applied.version,
        "the version read is the one reported"
    );
}

#[tokio::test]
async fn a_rate_limit_is_rate_limited_with_its_retry_after() {
    let server = server().await;
    let connector = connector(&server);
    server.faults().rate_limit(1, Duration::from_secs(10));
    connector.fetch("contacts").await.unwrap();
    let error = connector.fetch("contacts").await.unwrap_err();
    let ErrorKind::RateLimited {
        retry_after: Some(after),
    } = error.kind()
    else {
        panic!("not rate limited with a retry-after: {error:?}");
    };
    assert!((Duration::from_secs(1)..=Duration::from_secs(10)).contains(after));
    assert!(error.is_retryable());
    // A write batch is refused as a whole.
    let error = connector
        .apply("contacts", &creates(2, |i| format!("n{i}")))
        .await
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::RateLimited { .. }));
    assert_eq!(server.faults().stats().rate_limited, 2);
    assert!(server.records("contacts").is_empty());
}

#[tokio::test]
async fn a_5xx_is_transient_and_a_silent_server_times_out() {
    let server = server().await;
    let connector = connector(&server);
    server.faults().fail_next(1, 503);
    let error = connector.fetch("contacts").await.unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::Transient, "{error:?}");
    connector.fetch("contacts").await.unwrap();

    server.faults().latency(Duration::from_millis(300));
    let hasty = connector.clone().timeout(Duration::from_millis(50));
    let error = hasty.fetch("contacts").await.unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::TimedOut, "{error:?}");

    // Nobody listening at all.
    let gone = HubSpotConnector::new("hubspot", "http://127.0.0.1:9", Secret::new(TOKEN));
    let error = gone.fetch("contacts").await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn a_wrong_token_is_authentication_and_no_token_is_ever_shown() {
    let server = server().await;
    let wrong = "pat-na1-wrong-9876543210";
    let connector = HubSpotConnector::new("hubspot", server.url(), Secret::new(wrong));
    let fetched = connector.fetch("contacts").await.unwrap_err();
    assert_eq!(*fetched.kind(), ErrorKind::Authentication, "{fetched:?}");
    let applied = connector
        .apply("contacts", &creates(1, |_| "Ada".into()))
        .await
        .unwrap_err();
    assert_eq!(*applied.kind(), ErrorKind::Authentication);
    for text in [shown(&fetched), shown(&applied), format!("{connector:?}")] {
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
    let right = self::connector(&server);
    assert!(!format!("{right:?}").contains(TOKEN));
    assert!(!format!("{right:#?}").contains(TOKEN));
}

#[tokio::test]
async fn per_op_failures_come_back_per_op() {
    let server = server().await;
    let connector = connector(&server);
    let ada = server.insert("contacts", props(&[("email", json!("ada@example.com"))]));

    // A taken email is a duplicate; the other create of the batch is made.
    let ops = vec![
        OpBuilder::create("hubspot", "contacts")
            .field("email", json!("bob@example.com"))
            .correlation("e1")
            .build(),
        OpBuilder::create("hubspot", "contacts")
            .field("email", json!("ADA@example.com"))
            .correlation("e2")
            .build(),
        OpBuilder::create("hubspot", "contacts")
            .field("tags", json!(["a", "b"]))
            .correlation("e3")
            .build(),
    ];
    let results = connector.apply("contacts", &ops).await.unwrap();
    assert!(results[0].is_ok());
    let duplicate = results[1].as_ref().unwrap_err();
    assert_eq!(*duplicate.kind(), ErrorKind::Duplicate);
    assert!(duplicate.message().contains(&ada), "{duplicate}");
    let invalid = results[2].as_ref().unwrap_err();
    assert_eq!(invalid.field(), Some("tags"), "{invalid:?}");
    assert_eq!(server.records("contacts").len(), 2);

    // Updates and deletes of records that are not there are not found.
    let bob = results[0].as_ref().unwrap().record_id.clone().unwrap();
    let ops = vec![
        OpBuilder::update("hubspot", "contacts", "999")
            .field("firstname", json!("x"))
            .build(),
        OpBuilder::update("hubspot", "contacts", &bob)
            .field("email", json!("ada@example.com"))
            .build(),
        OpBuilder::update("hubspot", "contacts", &ada)
            .field("firstname", json!("Ada"))
            .build(),
    ];
    let results = connector.apply("contacts", &ops).await.unwrap();
    let missing = results[0].as_ref().unwrap_err();
    assert_eq!(*missing.kind(), ErrorKind::NotFound);
    assert_eq!(missing.record(), Some("999"));
    let taken = results[1].as_ref().unwrap_err();
    assert_eq!(*taken.kind(), ErrorKind::Duplicate);
    assert_eq!(taken.record(), Some(bob.as_str()));
    assert!(results[2].is_ok());

    let ops = vec![
        OpBuilder::delete("hubspot", "contacts", &ada).build(),
        OpBuilder::delete("hubspot", "contacts", "999").build(),
    ];
    let results = connector.apply("contacts", &ops).await.unwrap();
    assert!(results[0].is_ok());
    assert_eq!(
        *results[1].as_ref().unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(server.get("contacts", &ada).is_none());
}

#[tokio::test]
async fn fetch_records_reads_100_ids_a_request() {
    let server = server().await;
    let connector = connector(&server);
    let mut ids: Vec<String> = (0..150)
        .map(|i| server.insert("contacts", props(&[("firstname", json!(format!("n{i}")))])))
        .collect();
    ids.push("404".to_owned());
    server.faults().reset_stats();
    let snapshot = connector.fetch_records("contacts", &ids).await.unwrap();
    assert_eq!(snapshot.coverage, recsync::Coverage::Partial);
    assert_eq!(snapshot.records.len(), 150);
    assert_eq!(server.faults().stats().requests, 2);
    assert!(snapshot.records.iter().all(|r| r.id != "404"));
}

/// A limit fast enough never to wait, counting the permits taken.
fn counting_limit() -> recsync::runner::RateLimit {
    recsync::runner::RateLimit::builder(10_000, Duration::from_secs(1))
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_request_after_a_calls_first_takes_a_permit() {
    let server = server().await;
    let limit = counting_limit();
    let connector = connector(&server).page_size(10).rate_limit(limit.clone());
    let ids: Vec<String> = (0..25)
        .map(|i| server.insert("contacts", props(&[("firstname", json!(format!("n{i}")))])))
        .collect();

    // Three pages: the runner paces the first, the connector the other two.
    let snapshot = connector.fetch("contacts").await.unwrap();
    assert_eq!(snapshot.records.len(), 25);
    assert_eq!(server.faults().stats().requests, 3);
    assert_eq!(limit.stats().requests, 2);

    // 150 ids are two batch reads: one permit.
    server.faults().reset_stats();
    let many: Vec<String> = ids.iter().cycle().take(150).cloned().collect();
    connector.fetch_records("contacts", &many).await.unwrap();
    assert_eq!(server.faults().stats().requests, 2);
    assert_eq!(limit.stats().requests, 3);

    // A call of every kind: a create, an update, and a delete's read and
    // archive are four requests, three after the first.
    server.faults().reset_stats();
    let ops = vec![
        creates(1, |_| "Ada".into()).remove(0),
        OpBuilder::update("hubspot", "contacts", &ids[0])
            .field("lastname", json!("King"))
            .build(),
        OpBuilder::delete("hubspot", "contacts", &ids[1]).build(),
    ];
    let results = connector.apply("contacts", &ops).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.faults().stats().requests, 4);
    assert_eq!(limit.stats().requests, 6);

    // One kind, one chunk, as the runner sends it: no permit of its own.
    server.faults().reset_stats();
    let ops = vec![OpBuilder::update("hubspot", "contacts", &ids[2])
        .field("lastname", json!("Byron"))
        .build()];
    connector.apply("contacts", &ops).await.unwrap();
    assert_eq!(server.faults().stats().requests, 1);
    assert_eq!(limit.stats().requests, 6);
}

#[tokio::test]
async fn a_spent_budget_stops_the_next_page_unsent() {
    let server = server().await;
    for i in 0..25 {
        server.insert("contacts", props(&[("firstname", json!(format!("n{i}")))]));
    }
    let limit = recsync::runner::RateLimit::builder(10_000, Duration::from_secs(1))
        .budget(1, Duration::from_secs(24 * 60 * 60))
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap();
    let connector = connector(&server).page_size(10).rate_limit(limit);
    let error = connector.fetch("contacts").await.unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::BudgetSpent, "{error}");
    assert_eq!(
        server.faults().stats().requests,
        2,
        "the third page is not sent"
    );
}

//! The Salesforce connector of the `http_sync` example against the local
//! Salesforce-shaped server, over real HTTP on loopback: the conformance
//! suite in both write modes, query paging, batch sizes per request, a
//! conditional write losing a race, Salesforce's own rules, and every
//! whole-request failure mapped to the error kind the runner acts on, and
//! the pacing of every request after a call's first.
#![cfg(all(feature = "testkit", feature = "rate-limit"))]

#[path = "../examples/http_sync/salesforce.rs"]
mod salesforce;

use std::time::Duration;

use recsync::connector::{ErrorKind, Secret};
use recsync::testkit::conformance::{self, Options, Rule};
use recsync::testkit::OpBuilder;
use recsync::{Connector, ConnectorError};
use recsync_test_servers::salesforce::Salesforce;
use salesforce::SalesforceConnector;
use serde_json::{json, Map, Value};

const TOKEN: &str = "00Dxx0000001gPL!AQ4AQFakeSessionToken";
const OBJ: &str = "contacts";

async fn server() -> Salesforce {
    Salesforce::start(TOKEN)
        .await
        .expect("a local server starts")
}

fn connector(server: &Salesforce, conditional: bool) -> SalesforceConnector {
    SalesforceConnector::new("salesforce", server.url(), Secret::new(TOKEN))
        .sobject(OBJ, "Contact")
        .fields(OBJ, ["FirstName", "LastName", "Email", "Phone"])
        .conditional(conditional)
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn create(n: usize) -> recsync::WriteOp {
    OpBuilder::create("salesforce", OBJ)
        .field("LastName", json!(format!("Contact {n}")))
        .field("Email", json!(format!("c{n}@example.com")))
        .correlation(format!("key-{n}"))
        .build()
}

fn options() -> Options {
    Options::new()
        .field("LastName", json!("Lovelace"), json!("Byron"))
        .field("Email", json!("Ada@Example.com"), json!("ada@example.org"))
        .field("Phone", json!("(555) 010-0199"), json!("+15550100"))
        .max_batch_check(200)
}

fn skipped(report: &conformance::Report) -> Vec<Rule> {
    report.skipped.iter().map(|(rule, _)| *rule).collect()
}

#[tokio::test]
async fn conformance_with_collections() {
    let server = server().await;
    // A record that is not the suite's own does not disturb it.
    server.insert("Contact", fields(&[("LastName", json!("Hopper"))]));
    let conn = connector(&server, false);
    let report = conformance::run(&conn, OBJ, options()).await.unwrap();
    assert_eq!(
        skipped(&report),
        [
            Rule::StaleWriteRejected,
            Rule::ChangesOnce,
            Rule::DeletesAreTombstones,
            Rule::ChangesFromBeginning,
        ],
        "{report}"
    );
    assert!(report.passed.contains(&Rule::VersionsChange), "{report}");
    assert!(report.passed.contains(&Rule::NoDuplicateCreate), "{report}");
    assert_eq!(server.records("Contact").len(), 1, "the suite cleans up");
}

#[tokio::test]
async fn conformance_with_conditional_composite_writes() {
    let server = server().await;
    let conn = connector(&server, true);
    let report = conformance::run(&conn, OBJ, options()).await.unwrap();
    assert_eq!(
        skipped(&report),
        [
            Rule::ChangesOnce,
            Rule::DeletesAreTombstones,
            Rule::ChangesFromBeginning,
        ],
        "{report}"
    );
    assert!(
        report.passed.contains(&Rule::StaleWriteRejected),
        "{report}"
    );
    assert!(server.records("Contact").is_empty());
}

#[tokio::test]
async fn fetch_reads_every_query_page_once() {
    let server = server().await;
    server.query_page_size(3);
    for n in 0..10 {
        server.insert(
            "Contact",
            fields(&[
                ("LastName", json!(format!("L{n}"))),
                ("Recsync_Key__c", json!(format!("k{n}"))),
            ]),
        );
    }
    server.faults().reset_stats();
    let snapshot = connector(&server, false).fetch(OBJ).await.unwrap();
    assert_eq!(server.faults().stats().requests, 4, "pages of 3, 3, 3, 1");
    let mut ids: Vec<&str> = snapshot.records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    assert_eq!(snapshot.records.len(), 10);
    let first = &snapshot.records[0];
    let row = server.get("Contact", &first.id).unwrap();
    assert_eq!(first.get("LastName"), row.fields.get("LastName"));
    assert_eq!(
        first.get("Email"),
        Some(&Value::Null),
        "a field not held reads as null"
    );
    assert_eq!(
        first.correlation.as_deref(),
        row.fields["Recsync_Key__c"].as_str()
    );
    assert_eq!(first.updated_at, Some(row.updated));
    assert!(first.get("Id").is_none() && first.get("Recsync_Key__c").is_none());
    // Ids are 18 characters with Contact's key prefix.
    assert!(ids.iter().all(|id| id.len() == 18 && id.starts_with("003")));
}

#[tokio::test]
async fn a_batch_of_200_is_one_request_through_collections() {
    let server = server().await;
    let conn = connector(&server, false);
    assert_eq!(conn.capabilities().max_batch_size, 200);
    let ops: Vec<_> = (0..200).map(create).collect();
    let results = conn.apply(OBJ, &ops).await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    let stats = server.faults().stats();
    assert_eq!((stats.requests, stats.writes), (1, 1));
    assert_eq!(server.records("Contact").len(), 200);

    let ids: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap().record_id.unwrap())
        .collect();
    let updates: Vec<_> = ids
        .iter()
        .map(|id| {
            OpBuilder::update("salesforce", OBJ, id)
                .field("Phone", json!("555-0100"))
                .build()
        })
        .collect();
    assert!(conn
        .apply(OBJ, &updates)
        .await
        .unwrap()
        .iter()
        .all(Result::is_ok));
    let deletes: Vec<_> = ids
        .iter()
        .map(|id| OpBuilder::delete("salesforce", OBJ, id).build())
        .collect();
    assert!(conn
        .apply(OBJ, &deletes)
        .await
        .unwrap()
        .iter()
        .all(Result::is_ok));
    let stats = server.faults().stats();
    assert_eq!((stats.requests, stats.writes), (3, 3));
    assert!(server.records("Contact").is_empty());

    // The runner reads back what it wrote: 200 ids are one request too.
    server.faults().reset_stats();
    let snapshot = conn.fetch_records(OBJ, &ids).await.unwrap();
    assert!(snapshot.records.is_empty(), "every record was deleted");
    assert_eq!(server.faults().stats().requests, 1);
}

#[tokio::test]
async fn mixed_kinds_are_one_collections_request_per_kind_with_results_in_order() {
    let server = server().await;
    let conn = connector(&server, false);
    let a = server.insert("Contact", fields(&[("LastName", json!("A"))]));
    let b = server.insert("Contact", fields(&[("LastName", json!("B"))]));
    server.faults().reset_stats();
    let ops = [
        OpBuilder::delete("salesforce", OBJ, &a).build(),
        create(7),
        OpBuilder::update("salesforce", OBJ, &b)
            .field("FirstName", json!("Bea"))
            .build(),
        OpBuilder::delete("salesforce", OBJ, &a).build(),
    ];
    let mut results = conn.apply(OBJ, &ops).await.unwrap().into_iter();
    assert_eq!(
        server.faults().stats().requests,
        3,
        "a create, an update and a delete request"
    );
    assert!(results.next().unwrap().is_ok());
    let created = results.next().unwrap().unwrap().record_id.unwrap();
    assert!(results.next().unwrap().is_ok());
    let e = results.next().unwrap().unwrap_err();
    assert_eq!(
        *e.kind(),
        ErrorKind::NotFound,
        "deleted earlier in the same request: {e}"
    );
    assert_eq!(e.record(), Some(a.as_str()));
    assert_eq!(
        server.get("Contact", &b).unwrap().fields["FirstName"],
        json!("Bea")
    );
    let made = server.get("Contact", &created).unwrap();
    assert_eq!(made.fields["Recsync_Key__c"], json!("key-7"));

    // Reads by id go 500 ids to a request, in the URL.
    server.faults().reset_stats();
    // Ids of no record, and ours each asked for twice.
    let mut ids: Vec<String> = (1000..1998).map(|n| format!("003{n:015}")).collect();
    ids.extend([b.clone(), created.clone(), b.clone(), created.clone()]);
    let snapshot = conn.fetch_records(OBJ, &ids).await.unwrap();
    assert_eq!(server.faults().stats().requests, 2, "1000 distinct ids");
    let found: Vec<&str> = snapshot.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(found, [b.as_str(), created.as_str()]);
}

#[tokio::test]
async fn a_batch_of_25_is_one_request_through_the_composite_api() {
    let server = server().await;
    let conn = connector(&server, true);
    assert_eq!(conn.capabilities().max_batch_size, 25);
    let ops: Vec<_> = (0..25).map(create).collect();
    let results = conn.apply(OBJ, &ops).await.unwrap();
    let applied: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(server.faults().stats().requests, 1);
    // Each create reports the version the next read shows.
    let snapshot = conn.fetch(OBJ).await.unwrap();
    for a in &applied {
        let id = a.record_id.as_deref().unwrap();
        let read = snapshot.records.iter().find(|r| r.id == id).unwrap();
        assert_eq!(a.version, read.version);
    }
    server.faults().reset_stats();
    let updates: Vec<_> = snapshot
        .records
        .iter()
        .map(|r| {
            OpBuilder::update("salesforce", OBJ, &r.id)
                .field("Email", Value::Null)
                .expected_version(r.version.clone().unwrap())
                .build()
        })
        .collect();
    let results = conn.apply(OBJ, &updates).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.faults().stats().requests, 1);
    assert!(server
        .records("Contact")
        .iter()
        .all(|row| !row.fields.contains_key("Email")));
}

#[tokio::test]
async fn a_conditional_update_loses_to_an_edit_made_since_the_read() {
    let server = server().await;
    let id = server.insert(
        "Contact",
        fields(&[
            ("LastName", json!("Turing")),
            ("Email", json!("alan@example.com")),
        ]),
    );
    let conn = connector(&server, true);
    let read = conn.fetch(OBJ).await.unwrap();
    let version = read.records[0].version.clone().unwrap();
    server.edit_before_next_write(
        "Contact",
        &id,
        fields(&[("Email", json!("alan@example.org"))]),
    );

    let op = OpBuilder::update("salesforce", OBJ, &id)
        .field("Email", json!("turing@example.com"))
        .expected_version(version.clone())
        .build();
    let result = conn.apply(OBJ, &[op]).await.unwrap().remove(0);
    let error = result.unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::PreconditionFailed, "{error}");
    assert_eq!(error.record(), Some(id.as_str()));
    let row = server.get("Contact", &id).unwrap();
    assert_eq!(
        row.fields["Email"],
        json!("alan@example.org"),
        "the edit stays"
    );

    // A delete expecting the old version fails the same way.
    let op = OpBuilder::delete("salesforce", OBJ, &id)
        .expected_version(version)
        .build();
    let error = conn.apply(OBJ, &[op]).await.unwrap().remove(0).unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::PreconditionFailed, "{error}");
    assert!(server.get("Contact", &id).is_some());
}

#[tokio::test]
async fn salesforce_rules_come_back_as_op_errors() {
    for conditional in [false, true] {
        let server = server().await;
        let taken = server.insert(
            "Contact",
            fields(&[
                ("LastName", json!("Taken")),
                ("Recsync_Key__c", json!("key-1")),
            ]),
        );
        let conn = connector(&server, conditional);
        let no_last_name = OpBuilder::create("salesforce", OBJ)
            .field("Email", json!("nobody@example.com"))
            .correlation("key-0")
            .build();
        let clear_last_name = OpBuilder::update("salesforce", OBJ, &taken)
            .field("LastName", Value::Null)
            .build();
        let missing = OpBuilder::update("salesforce", OBJ, "003000000000000999")
            .field("LastName", json!("Nobody"))
            .build();
        let ops = [no_last_name, create(1), clear_last_name, missing];
        let mut results = conn.apply(OBJ, &ops).await.unwrap().into_iter();

        let e = results.next().unwrap().unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::Validation {
                field: Some("LastName".into())
            },
            "{e}"
        );
        let e = results.next().unwrap().unwrap_err();
        assert_eq!(*e.kind(), ErrorKind::Duplicate, "{e}");
        assert!(
            e.message().contains(&taken),
            "names the record holding the key: {e}"
        );
        let e = results.next().unwrap().unwrap_err();
        assert_eq!(e.field(), Some("LastName"), "{e}");
        assert_eq!(e.record(), Some(taken.as_str()));
        let e = results.next().unwrap().unwrap_err();
        assert_eq!(*e.kind(), ErrorKind::NotFound, "{e}");
        assert_eq!(
            server.records("Contact").len(),
            1,
            "conditional {conditional}"
        );
        assert_eq!(
            server.get("Contact", &taken).unwrap().fields["LastName"],
            json!("Taken")
        );
    }
}

#[tokio::test]
async fn a_rate_limit_is_rate_limited_with_its_retry_after() {
    let server = server().await;
    server.faults().rate_limit(1, Duration::from_secs(30));
    let conn = connector(&server, false);
    conn.fetch(OBJ).await.unwrap();
    let e = conn.fetch(OBJ).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::RateLimited { .. }), "{e}");
    let after = e.retry_after().expect("Retry-After is passed on");
    assert!(
        after > Duration::from_secs(25) && after <= Duration::from_secs(30),
        "{after:?}"
    );
    assert!(e.is_retryable());
    let e = conn.apply(OBJ, &[create(1)]).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::RateLimited { .. }), "{e}");
    assert!(server.records("Contact").is_empty());
}

#[tokio::test]
async fn the_daily_request_limit_is_rate_limited_without_a_time() {
    let server = server().await;
    server.request_limit_exceeded_next(1);
    let conn = connector(&server, false);
    let e = conn.fetch(OBJ).await.unwrap_err();
    assert_eq!(
        *e.kind(),
        ErrorKind::RateLimited { retry_after: None },
        "{e}"
    );
    assert!(e.to_string().contains("REQUEST_LIMIT_EXCEEDED"), "{e}");
    conn.fetch(OBJ).await.unwrap();
}

#[tokio::test]
async fn server_errors_are_transient() {
    let server = server().await;
    server.faults().fail_next(2, 503);
    let conn = connector(&server, true);
    let e = conn.fetch(OBJ).await.unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::Transient, "{e}");
    let e = conn.apply(OBJ, &[create(1)]).await.unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::Transient, "{e}");
    assert!(conn.apply(OBJ, &[create(1)]).await.unwrap()[0].is_ok());
    assert_eq!(server.faults().stats().server_errors, 2);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_a_closed_port_is_transient() {
    let server = server().await;
    server.faults().latency(Duration::from_millis(500));
    let conn = connector(&server, false).timeout(Duration::from_millis(50));
    let e = conn.fetch(OBJ).await.unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::TimedOut, "{e}");

    let url = server.url().to_owned();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let conn = SalesforceConnector::new("salesforce", url, Secret::new(TOKEN));
    let e = conn.fetch(OBJ).await.unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::Transient, "{e}");
}

#[tokio::test]
async fn a_wrong_token_is_an_authentication_error_and_never_printed() {
    let server = server().await;
    let wrong = "00Dxx0000001gPL!WrongTokenValue";
    let conn = SalesforceConnector::new("salesforce", server.url(), Secret::new(wrong))
        .sobject(OBJ, "Contact")
        .fields(OBJ, ["LastName"]);
    let errors: Vec<ConnectorError> = vec![
        conn.fetch(OBJ).await.unwrap_err(),
        conn.fetch_records(OBJ, &["003000000000000001".to_owned()])
            .await
            .unwrap_err(),
        conn.apply(OBJ, &[create(1)]).await.unwrap_err(),
        conn.clone()
            .conditional(true)
            .apply(OBJ, &[create(1)])
            .await
            .unwrap_err(),
    ];
    let mut printed = vec![
        format!("{conn:?}"),
        format!("{:?}", connector(&server, true)),
    ];
    for e in &errors {
        assert_eq!(*e.kind(), ErrorKind::Authentication, "{e}");
        assert!(e.to_string().contains("INVALID_SESSION_ID"), "{e}");
        printed.push(e.to_string());
        printed.push(format!("{e:?}"));
    }
    for text in &printed {
        assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
        assert!(
            !text.contains("WrongTokenValue") && !text.contains("FakeSession"),
            "{text}"
        );
    }
    assert!(printed[0].contains("[redacted]"));
    assert_eq!(server.faults().stats().writes, 0);
}

/// crm (in memory, on the wall clock) and Salesforce over HTTP, through
/// the runner: creates, a stable second run, an edit in Salesforce
/// reaching crm, and in conditional mode a write that lost a race
/// planned again in the same run.
#[tokio::test]
async fn the_runner_syncs_with_salesforce_in_both_write_modes() {
    use recsync::runner::SyncRunner;
    use recsync::testkit::{MemoryConnector, SystemClock};
    use recsync::{Field, FieldMap, MemoryStore, SyncEngine};

    let map = || {
        FieldMap::builder()
            .object(OBJ)
            .systems(["crm", "salesforce"])
            .key("email")
            .field(
                Field::new("email")
                    .native("salesforce", "Email")
                    .case_insensitive(),
            )
            .field(Field::new("name").native("salesforce", "LastName"))
            .build()
            .unwrap()
    };
    for conditional in [false, true] {
        let server = server().await;
        let crm = MemoryConnector::builder("crm")
            .clock(SystemClock)
            .build()
            .unwrap();
        let ada = crm.insert(
            OBJ,
            [
                ("email", json!("ada@example.com")),
                ("name", json!("Lovelace")),
            ],
        );
        crm.insert(
            OBJ,
            [
                ("email", json!("alan@example.com")),
                ("name", json!("Turing")),
            ],
        );
        let runner = SyncRunner::builder(SyncEngine::new(map()))
            .connector(crm.clone())
            .connector(connector(&server, conditional))
            .store(MemoryStore::new())
            .sleeper(tokio::time::sleep)
            .build()
            .unwrap();
        let report = runner.run().await.unwrap();
        assert_eq!((report.applied(), report.failed()), (2, 0), "{report}");
        assert_eq!(runner.run().await.unwrap().planned(), 0, "stable");

        let sf_ada = server
            .records("Contact")
            .into_iter()
            .find(|r| r.fields["Email"] == json!("ada@example.com"))
            .unwrap()
            .id;
        server.edit("Contact", &sf_ada, fields(&[("LastName", json!("Byron"))]));
        let report = runner.run().await.unwrap();
        assert_eq!((report.applied(), report.failed()), (1, 0), "{report}");
        assert_eq!(
            crm.get(OBJ, &ada).unwrap().get("name"),
            Some(&json!("Byron"))
        );

        if conditional {
            crm.edit(OBJ, &ada, [("name", json!("King"))]).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            server.edit_before_next_write(
                "Contact",
                &sf_ada,
                fields(&[("LastName", json!("Lovelace-King"))]),
            );
            let report = runner.run().await.unwrap();
            assert_eq!((report.replanned, report.failed()), (1, 0), "{report}");
            let kept = server.get("Contact", &sf_ada).unwrap();
            assert_eq!(
                kept.fields["LastName"],
                json!("Lovelace-King"),
                "the later edit wins"
            );
            assert_eq!(
                crm.get(OBJ, &ada).unwrap().get("name"),
                Some(&json!("Lovelace-King"))
            );
        }
        assert_eq!(runner.run().await.unwrap().planned(), 0, "stable");
    }
}

#[tokio::test]
async fn every_request_after_a_calls_first_takes_a_permit() {
    let server = server().await;
    server.query_page_size(3);
    let ids: Vec<String> = (0..10)
        .map(|n| server.insert("Contact", fields(&[("LastName", json!(format!("L{n}")))])))
        .collect();
    let limit = recsync::runner::RateLimit::builder(10_000, Duration::from_secs(1))
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap();
    let collections = connector(&server, false).rate_limit(limit.clone());

    // Four query pages: the runner paces the first, the connector the rest.
    assert_eq!(collections.fetch(OBJ).await.unwrap().records.len(), 10);
    assert_eq!(server.faults().stats().requests, 4);
    assert_eq!(limit.stats().requests, 3);

    // 1000 distinct ids are two reads: one permit.
    server.faults().reset_stats();
    let mut many: Vec<String> = (1000..1990).map(|n| format!("003{n:015}")).collect();
    many.extend(ids.iter().cloned());
    collections.fetch_records(OBJ, &many).await.unwrap();
    assert_eq!(server.faults().stats().requests, 2);
    assert_eq!(limit.stats().requests, 4);

    // A create, an update and a delete: a Collections request each.
    server.faults().reset_stats();
    let ops = [
        create(1),
        OpBuilder::update("salesforce", OBJ, &ids[0])
            .field("FirstName", json!("Ada"))
            .build(),
        OpBuilder::delete("salesforce", OBJ, &ids[1]).build(),
    ];
    let results = collections.apply(OBJ, &ops).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.faults().stats().requests, 3);
    assert_eq!(limit.stats().requests, 6);

    // 30 ops through the Composite API are two requests: one permit; and
    // one kind within the batch size, as the runner sends it, none.
    let composite = connector(&server, true).rate_limit(limit.clone());
    server.faults().reset_stats();
    let ops: Vec<_> = (10..40).map(create).collect();
    let results = composite.apply(OBJ, &ops).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.faults().stats().requests, 2);
    assert_eq!(limit.stats().requests, 7);
    composite.apply(OBJ, &[create(40)]).await.unwrap();
    assert_eq!(server.faults().stats().requests, 3);
    assert_eq!(limit.stats().requests, 7);
}

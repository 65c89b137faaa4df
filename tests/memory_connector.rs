//! `MemoryConnector`: the system it simulates, and each injected fault doing
//! what it says.
#![cfg(feature = "testkit")]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use recsync::connector::{Cursor, ErrorKind};
use recsync::testkit::{ManualClock, MemoryConnector, OpBuilder};
use recsync::{Connector, ConnectorError, ConnectorExt, Coverage};
use serde_json::json;

const OBJ: &str = "contacts";

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn update(conn: &MemoryConnector, id: &str, field: &str, value: i64) -> recsync::plan::WriteOp {
    OpBuilder::update(conn.system().clone(), OBJ, id)
        .field(field, json!(value))
        .build()
}

#[tokio::test]
async fn records_get_ids_versions_and_timestamps_from_the_clock() {
    let clock = ManualClock::new(t("2026-03-01T09:00:00Z"));
    let crm = MemoryConnector::builder("crm")
        .clock(clock.clone())
        .build()
        .unwrap();
    let a = crm.insert(OBJ, [("email", json!("a@x")), ("phone", json!("1"))]);
    let b = crm.insert(OBJ, [("email", json!("b@x"))]);
    assert_eq!((a.as_str(), b.as_str()), ("crm-1", "crm-2"));

    clock.advance(TimeDelta::minutes(5));
    crm.edit(OBJ, &a, [("phone", json!("2")), ("email", json!("a@x"))])
        .unwrap();
    let rec = crm.get(OBJ, &a).unwrap();
    assert_eq!(rec.version.as_deref(), Some("2"));
    assert_eq!(rec.updated_at, Some(t("2026-03-01T09:05:00Z")));
    // Only the field whose value changed gets a new field timestamp.
    assert_eq!(rec.changed_at("phone"), Some(t("2026-03-01T09:05:00Z")));
    assert_eq!(
        rec.field_updated_at.get("email"),
        Some(&t("2026-03-01T09:00:00Z"))
    );

    let snap = crm.fetch(OBJ).await.unwrap();
    assert_eq!(snap.coverage, Coverage::Complete);
    assert_eq!(snap.system, "crm");
    let ids: Vec<&str> = snap.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);

    crm.delete(OBJ, &b).unwrap();
    assert_eq!(crm.len(OBJ), 1);
    assert!(crm.get(OBJ, &b).is_none());
    assert_eq!(crm.fetch(OBJ).await.unwrap().records.len(), 1);
    let err = crm.delete(OBJ, &b).unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::NotFound);
    assert!(crm.is_empty("deals"));
}

#[tokio::test]
async fn without_field_timestamps_records_report_only_updated_at() {
    let crm = MemoryConnector::builder("crm")
        .field_timestamps(false)
        .id_prefix("003A")
        .build()
        .unwrap();
    let id = crm.insert(OBJ, [("email", json!("a@x"))]);
    assert_eq!(id, "003A1");
    let rec = crm.get(OBJ, &id).unwrap();
    assert!(rec.field_updated_at.is_empty());
    assert!(rec.updated_at.is_some());
}

#[tokio::test]
async fn creates_keep_correlation_keys_unique_among_live_records() {
    let crm = MemoryConnector::new("crm");
    let create = OpBuilder::create("crm", OBJ)
        .field("email", "a@x")
        .correlation("entity-1")
        .build();
    let out = crm.apply(OBJ, std::slice::from_ref(&create)).await.unwrap();
    let applied = out[0].as_ref().unwrap();
    let id = applied.record_id.clone().unwrap();
    assert_eq!(applied.version.as_deref(), Some("1"));
    assert_eq!(
        crm.get(OBJ, &id).unwrap().correlation.as_deref(),
        Some("entity-1")
    );

    // The same create again (a retry after a lost commit) is a duplicate.
    let out = crm.apply(OBJ, std::slice::from_ref(&create)).await.unwrap();
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::Duplicate);
    assert!(err.to_string().contains(&id), "{err}");
    assert_eq!(crm.len(OBJ), 1);

    // Once that record is deleted, the key is free again.
    crm.delete(OBJ, &id).unwrap();
    let out = crm.apply(OBJ, &[create]).await.unwrap();
    assert!(out[0].is_ok());
}

#[tokio::test]
async fn without_external_ids_correlation_is_neither_kept_nor_reported() {
    let crm = MemoryConnector::builder("crm")
        .external_ids(false)
        .build()
        .unwrap();
    let create = OpBuilder::create("crm", OBJ)
        .field("email", "a@x")
        .correlation("entity-1")
        .build();
    crm.apply(OBJ, std::slice::from_ref(&create)).await.unwrap();
    let out = crm.apply(OBJ, &[create]).await.unwrap();
    assert!(out[0].is_ok(), "no unique external id to clash on");
    assert!(crm.records(OBJ).iter().all(|r| r.correlation.is_none()));
}

#[tokio::test]
async fn updates_write_only_the_fields_given_and_check_versions() {
    let crm = MemoryConnector::new("crm");
    let id = crm.insert(OBJ, [("a", json!(1)), ("b", json!(1))]);
    let op = OpBuilder::update("crm", OBJ, &id)
        .field("a", json!(2))
        .expected_version("1")
        .build();
    let out = crm.apply(OBJ, std::slice::from_ref(&op)).await.unwrap();
    assert_eq!(out[0].as_ref().unwrap().version.as_deref(), Some("2"));
    let rec = crm.get(OBJ, &id).unwrap();
    assert_eq!(
        (rec.get("a"), rec.get("b")),
        (Some(&json!(2)), Some(&json!(1)))
    );

    // The same op again: version 1 is stale now.
    let out = crm.apply(OBJ, &[op]).await.unwrap();
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::PreconditionFailed);
    assert_eq!(err.record(), Some(id.as_str()));
    assert_eq!(
        err.to_string(),
        format!("precondition failed for record {id}: version 1 expected, record is at 2")
    );
}

#[tokio::test]
async fn without_conditional_writes_stale_versions_overwrite() {
    let crm = MemoryConnector::builder("crm")
        .conditional_writes(false)
        .build()
        .unwrap();
    let id = crm.insert(OBJ, [("a", json!(1))]);
    crm.bump_version(OBJ, &id).unwrap();
    let op = OpBuilder::update("crm", OBJ, &id)
        .field("a", json!(5))
        .expected_version("1")
        .build();
    let out = crm.apply(OBJ, &[op]).await.unwrap();
    assert!(out[0].is_ok());
    assert_eq!(crm.get(OBJ, &id).unwrap().get("a"), Some(&json!(5)));
}

#[tokio::test]
async fn writes_to_missing_records_are_not_found_and_wrong_ops_are_refused() {
    let crm = MemoryConnector::new("crm");
    let ops = [
        OpBuilder::update("crm", OBJ, "nope").field("a", 1).build(),
        OpBuilder::delete("crm", OBJ, "nope").build(),
        OpBuilder::create("crm", "deals").field("a", 1).build(),
        OpBuilder::create("erp", OBJ).field("a", 1).build(),
    ];
    let out = crm.apply(OBJ, &ops).await.unwrap();
    let kinds: Vec<ErrorKind> = out
        .iter()
        .map(|r| r.as_ref().unwrap_err().kind().clone())
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::NotFound,
            ErrorKind::NotFound,
            ErrorKind::Permanent,
            ErrorKind::Permanent
        ]
    );
    assert!(crm.is_empty(OBJ) && crm.is_empty("deals"));
    let stats = crm.stats();
    assert_eq!((stats.ops_applied, stats.ops_failed), (0, 4));
}

#[tokio::test]
async fn change_log_pages_every_change_once_with_tombstones() {
    let crm = MemoryConnector::builder("crm")
        .page_size(2)
        .build()
        .unwrap();
    let a = crm.insert(OBJ, [("n", json!(1))]);
    let b = crm.insert(OBJ, [("n", json!(1))]);
    let first = crm.fetch_all_changes(OBJ, None).await.unwrap();
    assert_eq!(first.snapshot.coverage, Coverage::Complete);
    assert_eq!(first.snapshot.records.len(), 2);
    let cursor = first.cursor;

    crm.edit(OBJ, &a, [("n", json!(2))]).unwrap();
    crm.edit(OBJ, &a, [("n", json!(3))]).unwrap();
    crm.delete(OBJ, &b).unwrap();
    let c = crm.insert(OBJ, [("n", json!(1))]);
    crm.insert("deals", [("n", json!(1))]);

    // Pages of two: a (latest state only), b's tombstone, then c.
    let page = crm.fetch_changes(OBJ, Some(&cursor)).await.unwrap();
    assert!(page.has_more);
    assert_eq!(page.snapshot.coverage, Coverage::Partial);
    let got: Vec<(&str, bool)> = page
        .snapshot
        .records
        .iter()
        .map(|r| (r.id.as_str(), r.deleted))
        .collect();
    assert_eq!(got, [(a.as_str(), false), (b.as_str(), true)]);
    assert_eq!(page.snapshot.records[0].get("n"), Some(&json!(3)));
    let page = crm.fetch_changes(OBJ, Some(&page.cursor)).await.unwrap();
    assert!(!page.has_more);
    assert_eq!(page.snapshot.records.len(), 1);
    assert_eq!(page.snapshot.records[0].id, c);
    let caught_up = crm.fetch_changes(OBJ, Some(&page.cursor)).await.unwrap();
    assert!(caught_up.snapshot.records.is_empty());

    let all = crm.fetch_all_changes(OBJ, Some(&cursor)).await.unwrap();
    assert_eq!(all.snapshot.coverage, Coverage::Partial);
    assert_eq!(all.snapshot.records.len(), 3);
    assert_eq!(all.cursor, page.cursor);
    assert_eq!(crm.stats().change_fetches, 1 + 3 + 2);
}

#[tokio::test]
async fn unknown_cursors_are_invalid() {
    let crm = MemoryConnector::new("crm");
    for text in ["soon", "-1", "99"] {
        let err = crm
            .fetch_changes(OBJ, Some(&Cursor::new(text)))
            .await
            .unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::InvalidCursor, "{text}");
    }
}

#[tokio::test]
async fn fetch_by_ids_returns_known_records_and_tombstones() {
    let crm = MemoryConnector::new("crm");
    let a = crm.insert(OBJ, [("n", json!(1))]);
    let b = crm.insert(OBJ, [("n", json!(1))]);
    crm.delete(OBJ, &b).unwrap();
    let snap = crm
        .fetch_records(OBJ, &[b.clone(), "missing".to_owned(), a.clone()])
        .await
        .unwrap();
    assert_eq!(snap.coverage, Coverage::Partial);
    let got: Vec<(&str, bool)> = snap
        .records
        .iter()
        .map(|r| (r.id.as_str(), r.deleted))
        .collect();
    assert_eq!(got, [(b.as_str(), true), (a.as_str(), false)]);
}

#[tokio::test]
async fn capabilities_switched_off_are_not_supported() {
    let crm = MemoryConnector::builder("crm")
        .incremental_fetch(false)
        .fetch_by_ids(false)
        .build()
        .unwrap();
    let caps = crm.capabilities();
    assert!(!caps.incremental_fetch && !caps.fetch_by_ids);
    let err = crm.fetch_changes(OBJ, None).await.unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::NotSupported);
    let err = crm.fetch_records(OBJ, &[]).await.unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::NotSupported);
}

#[test]
fn builder_reports_every_bad_setting() {
    let err = MemoryConnector::builder("crm")
        .max_batch_size(0)
        .page_size(0)
        .build()
        .unwrap_err();
    assert_eq!(err.problems.len(), 2);
    assert_eq!(
        err.to_string(),
        "invalid memory connector: max batch size is 0, must be at least 1; page size is 0, must be at least 1"
    );
}

// ----- faults -----

#[tokio::test]
async fn rate_limit_fails_the_next_calls_with_retry_after() {
    let crm = MemoryConnector::new("crm");
    let id = crm.insert(OBJ, [("n", json!(1))]);
    crm.rate_limit_next(2, Some(Duration::from_secs(3)));
    let e1 = crm.fetch(OBJ).await.unwrap_err();
    let e2 = crm
        .apply(OBJ, &[update(&crm, &id, "n", 2)])
        .await
        .unwrap_err();
    for e in [&e1, &e2] {
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    }
    assert_eq!(crm.get(OBJ, &id).unwrap().get("n"), Some(&json!(1)));
    assert!(crm.fetch(OBJ).await.is_ok(), "only the next two calls fail");
    let stats = crm.stats();
    assert_eq!(
        (stats.fetches, stats.applies, stats.failed_calls),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn transient_errors_fail_the_next_calls_then_stop() {
    let crm = MemoryConnector::new("crm");
    crm.fail_next_transient(1);
    let err = crm.fetch_changes(OBJ, None).await.unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::Transient);
    assert!(err.is_retryable());
    assert!(crm.fetch_changes(OBJ, None).await.is_ok());
}

#[tokio::test]
async fn chosen_ops_fail_and_the_rest_of_the_batch_is_applied() {
    let crm = MemoryConnector::new("crm");
    let ids: Vec<String> = (0..4).map(|_| crm.insert(OBJ, [("n", json!(0))])).collect();
    crm.fail_ops_in_next_apply([1, 3], ConnectorError::validation("n", "too large"));
    let ops: Vec<_> = ids.iter().map(|id| update(&crm, id, "n", 9)).collect();
    let out = crm.apply(OBJ, &ops).await.unwrap();
    assert!(out[0].is_ok() && out[2].is_ok());
    for i in [1, 3] {
        let err = out[i].as_ref().unwrap_err();
        assert_eq!(err.field(), Some("n"));
        assert_eq!(err.record(), Some(ids[i].as_str()));
    }
    let values: Vec<_> = ids
        .iter()
        .map(|id| crm.get(OBJ, id).unwrap().get("n").cloned().unwrap())
        .collect();
    assert_eq!(values, [json!(9), json!(0), json!(9), json!(0)]);
    // One-shot: the next batch is applied whole.
    let out = crm.apply(OBJ, &ops).await.unwrap();
    assert!(out.iter().all(Result::is_ok));
}

#[tokio::test]
async fn crash_after_n_ops_applies_them_and_fails_the_call() {
    let crm = MemoryConnector::new("crm");
    let ids: Vec<String> = (0..5).map(|_| crm.insert(OBJ, [("n", json!(0))])).collect();
    crm.crash_after_ops(3);
    let ops: Vec<_> = ids[..2].iter().map(|id| update(&crm, id, "n", 1)).collect();
    assert!(crm.apply(OBJ, &ops).await.is_ok(), "two ops: no crash yet");
    let ops: Vec<_> = ids[2..].iter().map(|id| update(&crm, id, "n", 1)).collect();
    let err = crm.apply(OBJ, &ops).await.unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::Transient);
    assert!(err.message().contains("after 1 of 3 ops"), "{err}");
    let values: Vec<_> = ids
        .iter()
        .map(|id| crm.get(OBJ, id).unwrap().get("n").cloned().unwrap())
        .collect();
    assert_eq!(values, [json!(1), json!(1), json!(1), json!(0), json!(0)]);
    // The crash happens once.
    assert!(crm.apply(OBJ, &ops).await.is_ok());
}

#[tokio::test]
async fn a_bumped_version_makes_a_conditional_write_stale() {
    let crm = MemoryConnector::new("crm");
    let id = crm.insert(OBJ, [("n", json!(0))]);
    let read = crm.fetch(OBJ).await.unwrap().records[0].clone();
    let cursor = crm.fetch_all_changes(OBJ, None).await.unwrap().cursor;
    crm.bump_version(OBJ, &id).unwrap();
    let rec = crm.get(OBJ, &id).unwrap();
    assert_ne!(rec.version, read.version);
    assert_eq!(rec.fields, read.fields);
    let changed = crm.fetch_all_changes(OBJ, Some(&cursor)).await.unwrap();
    assert_eq!(changed.snapshot.records.len(), 1, "the save is in the log");

    let op = OpBuilder::update("crm", OBJ, &id)
        .field("n", 1)
        .expected_version(read.version.unwrap())
        .build();
    let out = crm.apply(OBJ, &[op]).await.unwrap();
    assert_eq!(
        *out[0].as_ref().unwrap_err().kind(),
        ErrorKind::PreconditionFailed
    );
    assert_eq!(crm.get(OBJ, &id).unwrap().get("n"), Some(&json!(0)));
}

#[tokio::test]
async fn clear_faults_drops_everything_pending() {
    let crm = MemoryConnector::new("crm");
    crm.rate_limit_next(5, None);
    crm.fail_next_transient(5);
    crm.crash_after_ops(0);
    crm.fail_ops_in_next_apply([0], ConnectorError::permanent("no"));
    assert!(format!("{crm:?}").contains("pending_faults: 12"));
    crm.clear_faults();
    let op = OpBuilder::create("crm", OBJ).field("n", 1).build();
    assert!(crm.apply(OBJ, &[op]).await.unwrap()[0].is_ok());
}

#[tokio::test]
async fn oversized_batches_fail_whole_and_apply_in_batches_splits() {
    let crm = MemoryConnector::builder("crm")
        .max_batch_size(3)
        .build()
        .unwrap();
    let ops: Vec<_> = (0..7)
        .map(|i| OpBuilder::create("crm", OBJ).field("n", i).build())
        .collect();
    let err = crm.apply(OBJ, &ops).await.unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::Permanent);
    assert!(crm.is_empty(OBJ));

    crm.reset_stats();
    let out = crm.apply_in_batches(OBJ, &ops).await;
    assert_eq!(out.len(), 7);
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(crm.stats().batch_sizes, [3, 3, 1]);
    assert_eq!(crm.len(OBJ), 7);
}

#[tokio::test]
async fn apply_in_batches_stops_at_a_failed_batch_and_marks_the_rest() {
    let crm = MemoryConnector::builder("crm")
        .max_batch_size(2)
        .build()
        .unwrap();
    let ops: Vec<_> = (0..6)
        .map(|i| OpBuilder::create("crm", OBJ).field("n", i).build())
        .collect();
    crm.crash_after_ops(3);
    let out = crm.apply_in_batches(OBJ, &ops).await;
    assert!(out[..2].iter().all(Result::is_ok));
    for r in &out[2..] {
        assert_eq!(*r.as_ref().unwrap_err().kind(), ErrorKind::Transient);
    }
    // The crashed batch applied its first op; the third batch was not sent.
    assert_eq!(crm.len(OBJ), 3);
    assert_eq!(crm.stats().batch_sizes, [2, 2]);
}

#[tokio::test]
async fn clones_share_one_system_and_work_behind_arc_dyn() {
    let crm = MemoryConnector::new("crm");
    let handle: Arc<dyn Connector> = Arc::new(crm.clone());
    crm.insert(OBJ, [("n", json!(1))]);
    assert_eq!(handle.fetch(OBJ).await.unwrap().records.len(), 1);
    let all = handle.fetch_all_changes(OBJ, None).await.unwrap();
    assert_eq!(all.snapshot.records.len(), 1);
}

#[test]
fn debug_shows_counts_not_data() {
    let crm = MemoryConnector::new("crm");
    crm.insert(OBJ, [("email", json!("secret@example.com"))]);
    let text = format!("{crm:?}");
    assert!(text.contains("\"contacts\": 1"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[test]
fn a_ticking_clock_moves_on_per_reading_and_is_shared() {
    use recsync::testkit::Clock;
    let clock = ManualClock::ticking(t("2026-01-01T00:00:00Z"), TimeDelta::seconds(10));
    let other = clock.clone();
    assert_eq!(clock.now(), t("2026-01-01T00:00:00Z"));
    assert_eq!(other.now(), t("2026-01-01T00:00:10Z"));
    assert_eq!(clock.peek(), t("2026-01-01T00:00:20Z"));
    clock.set(t("2027-01-01T00:00:00Z"));
    assert_eq!(other.peek(), t("2027-01-01T00:00:00Z"));
    let fixed = || t("2030-01-01T00:00:00Z");
    let crm = MemoryConnector::builder("crm")
        .clock(fixed)
        .build()
        .unwrap();
    let id = crm.insert(OBJ, [("n", json!(1))]);
    assert_eq!(crm.get(OBJ, &id).unwrap().updated_at, Some(fixed()));
}

/// A system that stores its own forms, without versions, with a schema:
/// every value it stores is rewritten, whoever writes it; its answer lists
/// what it stored where asked; its records list every declared field and
/// no version; a write to an undeclared field fails, and nothing of it is
/// made.
#[tokio::test]
async fn rewrites_versions_stored_values_and_a_schema() {
    use recsync::testkit::Rewrite;
    let sf = MemoryConnector::builder("sf")
        .rewrite("Phone", Rewrite::E164 { country_code: 1 })
        .rewrite("Name", Rewrite::Trim)
        .rewrite("Amount", Rewrite::Round(2))
        .rewrite("Country", Rewrite::Uppercase)
        .versions(false)
        .report_stored(true)
        .schema(["Name", "Phone", "Amount", "Country"])
        .build()
        .unwrap();
    assert!(!sf.capabilities().conditional_writes);
    let id = sf.insert(
        OBJ,
        [("Name", json!(" Ada ")), ("Phone", json!("555.123.4567"))],
    );
    let rec = sf.get(OBJ, &id).unwrap();
    assert_eq!(rec.version, None);
    assert_eq!(rec.get("Name"), Some(&json!("Ada")));
    assert_eq!(rec.get("Phone"), Some(&json!("+15551234567")));
    assert_eq!(rec.get("Amount"), Some(&json!(null)));

    let op = OpBuilder::update("sf", OBJ, &id)
        .field("Amount", json!(12.345))
        .field("Country", json!("no"))
        .field("Phone", json!("+44 20 7946 0958"))
        .build();
    let results = sf.apply(OBJ, std::slice::from_ref(&op)).await.unwrap();
    let applied = results[0].as_ref().unwrap();
    assert_eq!(applied.version, None);
    assert_eq!(applied.stored["Amount"], json!(12.35));
    assert_eq!(applied.stored["Country"], json!("NO"));
    assert_eq!(applied.stored["Phone"], json!("+442079460958"));
    let rec = sf.get(OBJ, &id).unwrap();
    assert_eq!(rec.get("Amount"), Some(&json!(12.35)));

    let typo = OpBuilder::update("sf", OBJ, &id)
        .field("Country", json!("se"))
        .field("Nmae", json!("Bo"))
        .build();
    let results = sf.apply(OBJ, &[typo]).await.unwrap();
    let err = results[0].as_ref().unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("Nmae"), "{err}");
    assert_eq!(sf.get(OBJ, &id).unwrap().get("Country"), Some(&json!("NO")));
}

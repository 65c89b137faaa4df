//! The `Connector` trait from a host's side: object safety, the defaults,
//! and the `ConnectorExt` conveniences against connectors that misbehave.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use recsync::connector::{Applied, Capabilities, Changes, Cursor, ErrorKind};
use recsync::plan::WriteOp;
use recsync::{Connector, ConnectorError, ConnectorExt, Coverage, OpOutcome, Record, Snapshot};

/// Compiles only while `Connector` is object-safe.
fn _obj_safe(_: Box<dyn Connector>) {}
fn _arc_dyn_is_a_connector<C: Connector>(_: &C) {}
fn _check(c: Arc<dyn Connector>) {
    _arc_dyn_is_a_connector(&c);
}

/// Serves pages of changes from a script, and answers `apply` with a
/// scripted number of results.
#[derive(Debug)]
struct Scripted {
    system: recsync::SystemId,
    pages: Mutex<Vec<Changes>>,
    results: usize,
    batches: Mutex<Vec<usize>>,
}

impl Scripted {
    fn new(pages: Vec<Changes>) -> Self {
        Scripted {
            system: "s".into(),
            pages: Mutex::new(pages.into_iter().rev().collect()),
            results: usize::MAX,
            batches: Mutex::default(),
        }
    }
}

#[async_trait]
impl Connector for Scripted {
    fn system(&self) -> &recsync::SystemId {
        &self.system
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .max_batch_size(2)
            .incremental_fetch(true)
    }

    async fn fetch(&self, _object: &str) -> Result<Snapshot, ConnectorError> {
        Ok(Snapshot::complete("s", Vec::new()))
    }

    async fn fetch_changes(
        &self,
        _object: &str,
        _cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        self.pages
            .lock()
            .unwrap()
            .pop()
            .ok_or_else(|| ConnectorError::transient("script ran out"))
    }

    async fn apply(
        &self,
        _object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.batches.lock().unwrap().push(ops.len());
        Ok(ops
            .iter()
            .take(self.results)
            .map(|_| Ok(Applied::new()))
            .collect())
    }
}

fn page(ids: &[(&str, i64)], cursor: &str, has_more: bool) -> Changes {
    let records = ids
        .iter()
        .map(|(id, n)| Record::new(*id).field("n", *n))
        .collect();
    Changes::new("s", records, Cursor::new(cursor), has_more)
}

#[tokio::test]
async fn defaults_are_not_supported() {
    #[derive(Debug)]
    struct Minimal(recsync::SystemId);
    #[async_trait]
    impl Connector for Minimal {
        fn system(&self) -> &recsync::SystemId {
            &self.0
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        async fn fetch(&self, _: &str) -> Result<Snapshot, ConnectorError> {
            Ok(Snapshot::complete(self.0.clone(), Vec::new()))
        }
        async fn apply(
            &self,
            _: &str,
            _: &[WriteOp],
        ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
            Ok(Vec::new())
        }
    }
    let c: Arc<dyn Connector> = Arc::new(Minimal("crm".into()));
    let err = c.fetch_changes("contacts", None).await.unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::NotSupported);
    assert_eq!(
        err.to_string(),
        "not supported: crm does not fetch changes of contacts incrementally"
    );
    let err = c
        .fetch_records("contacts", &["1".into()])
        .await
        .unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::NotSupported);
    assert!(!c.capabilities().incremental_fetch);
}

#[tokio::test]
async fn fetch_all_changes_merges_pages_keeping_each_record_latest() {
    let c = Scripted::new(vec![
        page(&[("a", 1), ("b", 1)], "2", true),
        page(&[("a", 2), ("c", 1)], "4", false),
    ]);
    let all = c
        .fetch_all_changes("x", Some(&Cursor::new("0")))
        .await
        .unwrap();
    assert_eq!(all.cursor, Cursor::new("4"));
    assert!(!all.has_more);
    assert_eq!(all.snapshot.coverage, Coverage::Partial);
    let got: Vec<(&str, i64)> = all
        .snapshot
        .records
        .iter()
        .map(|r| (r.id.as_str(), r.get("n").unwrap().as_i64().unwrap()))
        .collect();
    assert_eq!(got, [("b", 1), ("a", 2), ("c", 1)]);
}

#[tokio::test]
async fn fetch_all_changes_from_the_beginning_is_complete() {
    let c = Scripted::new(vec![page(&[("a", 1)], "1", false)]);
    let all = c.fetch_all_changes("x", None).await.unwrap();
    assert_eq!(all.snapshot.coverage, Coverage::Complete);
    assert_eq!(all.snapshot.system, "s");
}

#[tokio::test]
async fn fetch_all_changes_refuses_a_cursor_that_does_not_move() {
    let c = Scripted::new(vec![
        page(&[("a", 1)], "7", true),
        page(&[("a", 1)], "7", true),
        page(&[("a", 1)], "7", true),
    ]);
    let err = c.fetch_all_changes("x", None).await.unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::Permanent);
    assert_eq!(
        err.to_string(),
        "permanent failure: s reported more changes of x without moving its cursor 7"
    );
}

#[tokio::test]
async fn fetch_all_changes_passes_page_errors_on() {
    let c = Scripted::new(vec![page(&[("a", 1)], "1", true)]);
    let err = c.fetch_all_changes("x", None).await.unwrap_err();
    assert!(err.is_retryable());
}

fn ops(n: usize) -> Vec<WriteOp> {
    (0..n)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "id": format!("{i:016x}"),
                "kind": "update",
                "object": "records",
                "system": "s",
                "record_id": format!("r{i}"),
                "entity": format!("e{i}"),
                "fields": [],
            }))
            .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn apply_in_batches_splits_by_max_batch_size() {
    let c = Scripted::new(Vec::new());
    let ops = ops(5);
    let out = c.apply_in_batches("records", &ops).await;
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(*c.batches.lock().unwrap(), [2, 2, 1]);
    assert!(c.apply_in_batches("records", &[]).await.is_empty());
}

#[tokio::test]
async fn apply_in_batches_turns_a_short_answer_into_errors_for_that_batch() {
    let mut c = Scripted::new(Vec::new());
    c.results = 1;
    let ops = ops(3);
    let out = c.apply_in_batches("records", &ops).await;
    assert_eq!(out.len(), 3);
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(
        err.to_string(),
        "permanent failure: s returned 1 results for a batch of 2 ops"
    );
    assert!(out[1].is_err());
    assert!(out[2].is_ok(), "the last batch of one was answered in full");
    let outcome: OpOutcome = out[0].clone().into();
    assert!(matches!(outcome, OpOutcome::Failed { .. }));
}

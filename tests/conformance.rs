//! The conformance suite: `MemoryConnector` keeps the contract in every
//! configuration, and a connector broken in one way fails with the rule it
//! broke named.
#![cfg(feature = "testkit")]

use async_trait::async_trait;
use recsync::connector::{Applied, Capabilities, Changes, Cursor};
use recsync::plan::{OpKind, WriteOp};
use recsync::testkit::conformance::{self, Options, Rule};
use recsync::testkit::MemoryConnector;
use recsync::{Connector, ConnectorError, Snapshot, SystemId};
use serde_json::json;

const OBJ: &str = "contacts";

fn options() -> Options {
    Options::new()
        .field("email", json!("a@example.com"), json!("b@example.com"))
        .field("phone", json!("555-0100"), json!("555-0199"))
        .field("score", json!(1), json!(2))
}

#[tokio::test]
async fn memory_connector_passes_with_every_capability() {
    let conn = MemoryConnector::builder("crm")
        .max_batch_size(7)
        .page_size(3)
        .build()
        .unwrap();
    // Records that are not the suite's own do not disturb it.
    conn.insert(OBJ, [("email", json!("someone@example.com"))]);
    let report = conformance::run(&conn, OBJ, options()).await.unwrap();
    assert!(report.skipped.is_empty(), "{report}");
    for rule in [
        Rule::Options,
        Rule::CompleteSnapshot,
        Rule::ResultPerOp,
        Rule::CreateReportsId,
        Rule::WrittenValuesReadBack,
        Rule::UpdateWritesOnlyGivenFields,
        Rule::VersionsChange,
        Rule::StaleWriteRejected,
        Rule::CorrelationReturned,
        Rule::NoDuplicateCreate,
        Rule::FetchByIds,
        Rule::BatchAccepted,
        Rule::DeletesDisappear,
        Rule::MissingRecordNotFound,
        Rule::DeletesAreTombstones,
        Rule::ChangesOnce,
        Rule::ChangesFromBeginning,
    ] {
        assert!(
            report.passed.contains(&rule),
            "{rule} not checked: {report}"
        );
    }
    // A batch of the connector's maximum (7) was accepted.
    assert!(conn.stats().batch_sizes.contains(&7));
    // Cleanup removed the suite's records; the host's own record is still there.
    assert_eq!(conn.len(OBJ), 1);
    let text = report.to_string();
    assert!(text.starts_with("conformance of crm on contacts: 17 rule(s) kept, 0 skipped"));
}

#[tokio::test]
async fn memory_connector_passes_with_no_optional_capability_and_skips_those_rules() {
    let conn = MemoryConnector::builder("erp")
        .conditional_writes(false)
        .external_ids(false)
        .incremental_fetch(false)
        .fetch_by_ids(false)
        .max_batch_size(1)
        .build()
        .unwrap();
    let report = conformance::run(&conn, OBJ, options().cleanup(false))
        .await
        .unwrap();
    let skipped: Vec<Rule> = report.skipped.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        skipped,
        [
            Rule::CorrelationReturned,
            Rule::NoDuplicateCreate,
            Rule::StaleWriteRejected,
            Rule::FetchByIds,
            Rule::ChangesOnce,
            Rule::DeletesAreTombstones,
            Rule::ChangesFromBeginning,
        ]
    );
    // Versions are still reported, so they are still checked.
    assert!(report.passed.contains(&Rule::VersionsChange));
    // Without cleanup the batch record stays.
    assert_eq!(conn.len(OBJ), 1);
}

#[tokio::test]
async fn options_need_two_fields_with_different_samples() {
    let conn = MemoryConnector::new("crm");
    let one = Options::new().field("email", "a", "b");
    let failure = conformance::run(&conn, OBJ, one).await.unwrap_err();
    assert_eq!(failure.rule, Rule::Options);
    let same = Options::new().field("a", 1, 2).field("b", 3, 3);
    let failure = conformance::run(&conn, OBJ, same).await.unwrap_err();
    assert_eq!(failure.rule, Rule::Options);
    assert!(failure.seen.contains("field b"), "{failure}");
}

/// One way a connector can break the contract.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Break {
    IgnoresExpectedVersion,
    RepeatsChanges,
    UpdateClearsOtherFields,
    VersionNeverChanges,
    DropsCorrelation,
    KeepsDeletedInFetch,
    NoTombstones,
    RejectsFullBatches,
    DeleteOfMissingSucceeds,
    CreateWithoutId,
    DropsResults,
    ChangesSkipFirstRecord,
    FetchRecordsReturnsExtra,
    ReportsWrongVersion,
    RejectsCurrentVersion,
    PartialFetch,
    RetryCreatesDuplicate,
}

/// A `MemoryConnector` with one rule broken on purpose.
#[derive(Debug)]
struct Broken {
    inner: MemoryConnector,
    how: Break,
}

impl Broken {
    fn new(how: Break) -> Self {
        Broken {
            inner: MemoryConnector::builder("crm")
                .max_batch_size(5)
                .build()
                .unwrap(),
            how,
        }
    }
}

#[async_trait]
impl Connector for Broken {
    fn system(&self) -> &SystemId {
        self.inner.system()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        let mut snap = self.inner.fetch(object).await?;
        match self.how {
            Break::DropsCorrelation => {
                for r in &mut snap.records {
                    r.correlation = None;
                }
            }
            Break::VersionNeverChanges => {
                for r in &mut snap.records {
                    r.version = Some("1".into());
                }
            }
            Break::KeepsDeletedInFetch => {
                // Soft-deleted records still listed as if alive.
                let ids: Vec<String> = snap.records.iter().map(|r| r.id.clone()).collect();
                let all = self.inner.fetch_changes(object, None).await?;
                for r in all.snapshot.records {
                    if r.deleted && !ids.contains(&r.id) {
                        let mut r = r;
                        r.deleted = false;
                        snap.records.push(r);
                    }
                }
            }
            Break::PartialFetch => snap.coverage = recsync::Coverage::Partial,
            _ => {}
        }
        Ok(snap)
    }

    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        let mut page = self.inner.fetch_changes(object, cursor).await?;
        match self.how {
            Break::RepeatsChanges if cursor.is_some() => {
                let again = page.snapshot.records.clone();
                page.snapshot.records.extend(again);
            }
            Break::NoTombstones => page.snapshot.records.retain(|r| !r.deleted),
            Break::ChangesSkipFirstRecord
                if cursor.is_some() && !page.snapshot.records.is_empty() =>
            {
                page.snapshot.records.remove(0);
            }
            _ => {}
        }
        Ok(page)
    }

    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        let mut snap = self.inner.fetch_records(object, ids).await?;
        if self.how == Break::FetchRecordsReturnsExtra {
            snap.records.extend(self.inner.fetch(object).await?.records);
        }
        Ok(snap)
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut ops: Vec<WriteOp> = ops.to_vec();
        if self.how == Break::RetryCreatesDuplicate {
            // Ignores the external id's uniqueness: a retried create makes a
            // second record, without the key.
            let taken: Vec<String> = self
                .inner
                .records(object)
                .into_iter()
                .filter_map(|r| r.correlation)
                .collect();
            for op in &mut ops {
                if op.correlation.as_ref().is_some_and(|k| taken.contains(k)) {
                    op.correlation = None;
                }
            }
        }
        match self.how {
            Break::IgnoresExpectedVersion => {
                for op in &mut ops {
                    op.expected_version = None;
                }
            }
            Break::RejectsFullBatches if ops.len() > 1 => {
                return Err(ConnectorError::permanent("batch too large"));
            }
            Break::RejectsCurrentVersion
                if ops
                    .iter()
                    .any(|o| o.kind == OpKind::Update && o.expected_version.is_some()) =>
            {
                return Ok(ops
                    .iter()
                    .map(|_| Err(ConnectorError::precondition_failed("always")))
                    .collect());
            }
            _ => {}
        }
        if self.how == Break::UpdateClearsOtherFields {
            for op in ops.iter().filter(|o| o.kind == OpKind::Update) {
                if let Some(id) = &op.record_id {
                    if let Some(rec) = self.inner.get(object, id) {
                        let blank: Vec<(String, serde_json::Value)> = rec
                            .fields
                            .keys()
                            .map(|k| (k.to_owned(), json!(null)))
                            .collect();
                        self.inner.edit(object, id, blank)?;
                    }
                }
            }
            // The blanking edit moved the version on; skip the check.
            for op in &mut ops {
                op.expected_version = None;
            }
        }
        let mut out = self.inner.apply(object, &ops).await?;
        for (op, result) in ops.iter().zip(out.iter_mut()) {
            match (self.how, op.kind) {
                (Break::DeleteOfMissingSucceeds, OpKind::Delete) if result.is_err() => {
                    *result = Ok(Applied::new());
                }
                (Break::CreateWithoutId, OpKind::Create) => {
                    if let Ok(applied) = result {
                        applied.record_id = None;
                    }
                }
                (Break::ReportsWrongVersion, OpKind::Update) => {
                    if let Ok(applied) = result {
                        applied.version = Some("999".into());
                    }
                }
                _ => {}
            }
        }
        if self.how == Break::DropsResults && out.len() > 1 {
            out.pop();
        }
        Ok(out)
    }
}

async fn broken_rule(how: Break) -> (Rule, String) {
    let failure = conformance::run(&Broken::new(how), OBJ, options())
        .await
        .expect_err("a broken connector must fail");
    let text = failure.to_string();
    assert!(
        text.starts_with(&format!("connector broke rule {}", failure.rule)),
        "{text}"
    );
    (failure.rule, failure.seen)
}

#[tokio::test]
async fn a_connector_that_ignores_expected_version_fails_stale_write_rejected() {
    let (rule, seen) = broken_rule(Break::IgnoresExpectedVersion).await;
    assert_eq!(rule, Rule::StaleWriteRejected);
    assert!(
        seen.contains("expecting stale version 1 was applied"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_connector_that_returns_a_change_twice_fails_changes_once() {
    let (rule, seen) = broken_rule(Break::RepeatsChanges).await;
    assert_eq!(rule, Rule::ChangesOnce);
    assert!(seen.contains("appears 2 times"), "{seen}");
}

#[tokio::test]
async fn a_connector_that_skips_a_change_fails_changes_once() {
    let (rule, seen) = broken_rule(Break::ChangesSkipFirstRecord).await;
    assert_eq!(rule, Rule::ChangesOnce);
    assert!(seen.contains("missing from the changes"), "{seen}");
}

#[tokio::test]
async fn a_connector_whose_update_clears_other_fields_fails_update_only_given_fields() {
    let (rule, seen) = broken_rule(Break::UpdateClearsOtherFields).await;
    assert_eq!(rule, Rule::UpdateWritesOnlyGivenFields);
    assert!(seen.contains("field phone holds null"), "{seen}");
}

#[tokio::test]
async fn a_connector_whose_versions_never_change_fails_versions_change() {
    let (rule, seen) = broken_rule(Break::VersionNeverChanges).await;
    assert_eq!(rule, Rule::VersionsChange);
    assert!(
        seen.contains("reported version 1, fetch shows 1") || seen.contains("kept version 1"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_connector_that_reports_a_version_it_does_not_show_fails_versions_change() {
    let (rule, seen) = broken_rule(Break::ReportsWrongVersion).await;
    assert_eq!(rule, Rule::VersionsChange);
    assert!(
        seen.contains("reported version 999, fetch shows 2"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_connector_that_drops_correlation_keys_fails_correlation_returned() {
    let (rule, seen) = broken_rule(Break::DropsCorrelation).await;
    assert_eq!(rule, Rule::CorrelationReturned);
    assert!(seen.contains("recsync-conformance-1"), "{seen}");
}

#[tokio::test]
async fn a_connector_that_still_lists_deleted_records_fails_deletes_disappear() {
    let (rule, seen) = broken_rule(Break::KeepsDeletedInFetch).await;
    assert_eq!(rule, Rule::DeletesDisappear);
    assert!(seen.contains("still in fetch"), "{seen}");
}

#[tokio::test]
async fn a_connector_without_tombstones_fails_deletes_are_tombstones() {
    let (rule, seen) = broken_rule(Break::NoTombstones).await;
    assert_eq!(rule, Rule::DeletesAreTombstones);
    assert!(seen.contains("missing from the changes"), "{seen}");
}

#[tokio::test]
async fn a_connector_that_rejects_batches_it_claims_fails_batch_accepted() {
    let (rule, seen) = broken_rule(Break::RejectsFullBatches).await;
    assert_eq!(rule, Rule::BatchAccepted);
    assert!(seen.contains("a batch of 5 op(s) failed"), "{seen}");
}

#[tokio::test]
async fn a_connector_that_deletes_missing_records_fails_missing_record_not_found() {
    let (rule, seen) = broken_rule(Break::DeleteOfMissingSucceeds).await;
    assert_eq!(rule, Rule::MissingRecordNotFound);
    assert!(seen.contains("second delete"), "{seen}");
}

#[tokio::test]
async fn a_connector_whose_creates_report_no_id_fails_create_reports_id() {
    let (rule, _) = broken_rule(Break::CreateWithoutId).await;
    assert_eq!(rule, Rule::CreateReportsId);
}

#[tokio::test]
async fn a_connector_that_drops_results_fails_result_per_op() {
    let (rule, seen) = broken_rule(Break::DropsResults).await;
    assert_eq!(rule, Rule::ResultPerOp);
    assert_eq!(seen, "4 result(s) for 5 op(s)");
}

#[tokio::test]
async fn a_connector_that_returns_records_not_asked_for_fails_fetch_by_ids() {
    let (rule, _) = broken_rule(Break::FetchRecordsReturnsExtra).await;
    assert_eq!(rule, Rule::FetchByIds);
}

#[tokio::test]
async fn a_connector_that_rejects_current_versions_fails_stale_write_rejected() {
    let (rule, seen) = broken_rule(Break::RejectsCurrentVersion).await;
    assert_eq!(rule, Rule::StaleWriteRejected);
    assert!(seen.contains("current version"), "{seen}");
}

#[tokio::test]
async fn a_connector_whose_fetch_is_partial_fails_complete_snapshot() {
    let (rule, _) = broken_rule(Break::PartialFetch).await;
    assert_eq!(rule, Rule::CompleteSnapshot);
}

#[tokio::test]
async fn a_connector_whose_retried_create_makes_a_duplicate_fails_no_duplicate_create() {
    let (rule, seen) = broken_rule(Break::RetryCreatesDuplicate).await;
    assert_eq!(rule, Rule::NoDuplicateCreate);
    assert!(
        seen.contains("a second create with correlation key recsync-conformance-1 was applied as record crm-2"),
        "{seen}"
    );
}

/// An upsert by external id (the retried create lands on the same record)
/// keeps the rule too.
#[tokio::test]
async fn an_upserting_connector_keeps_no_duplicate_create() {
    #[derive(Debug)]
    struct Upsert(MemoryConnector);
    #[async_trait]
    impl Connector for Upsert {
        fn system(&self) -> &SystemId {
            self.0.system()
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
            self.0.fetch(object).await
        }
        async fn fetch_changes(
            &self,
            object: &str,
            cursor: Option<&Cursor>,
        ) -> Result<Changes, ConnectorError> {
            self.0.fetch_changes(object, cursor).await
        }
        async fn fetch_records(
            &self,
            object: &str,
            ids: &[String],
        ) -> Result<Snapshot, ConnectorError> {
            self.0.fetch_records(object, ids).await
        }
        async fn apply(
            &self,
            object: &str,
            ops: &[WriteOp],
        ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
            let mut out = Vec::new();
            for op in ops {
                let existing = self
                    .0
                    .records(object)
                    .into_iter()
                    .find(|r| op.correlation.is_some() && r.correlation == op.correlation);
                let op = match existing {
                    Some(r) if op.kind == OpKind::Create => {
                        let mut b = recsync::testkit::OpBuilder::update(
                            self.0.system().clone(),
                            object,
                            r.id,
                        );
                        for w in &op.fields {
                            b = b.field(w.native.as_str(), w.value.clone());
                        }
                        b.build()
                    }
                    _ => op.clone(),
                };
                out.extend(self.0.apply(object, &[op]).await?);
            }
            Ok(out)
        }
    }
    let conn = Upsert(MemoryConnector::new("crm"));
    let report = conformance::run(&conn, OBJ, options()).await.unwrap();
    assert!(report.passed.contains(&Rule::NoDuplicateCreate));
}

//! Checks a connector author runs against their own [`Connector`]: does it
//! keep the [contract](Connector#contract)?
//!
//! [`run`] creates, updates and deletes records of one object type through
//! the connector and reads them back, checking each rule in turn; it stops at
//! the first rule broken, with a [`Failure`] naming the [`Rule`] and what was
//! seen. Rules about capabilities the connector does not claim are skipped
//! and listed in the [`Report`].
//!
//! Run it against a sandbox: it writes real records (deleting them at the
//! end unless told not to, and leaving them behind when a rule is broken).
//! It assumes nobody else changes the object type while it runs, and that the
//! sample values given round-trip unchanged.
//!
//! ```
//! use recsync::testkit::{conformance, MemoryConnector};
//! use serde_json::json;
//!
//! # futures::executor::block_on(async {
//! let connector = MemoryConnector::new("crm");
//! let options = conformance::Options::new()
//!     .field("email", json!("a@example.com"), json!("b@example.com"))
//!     .field("phone", json!("555-0100"), json!("555-0199"));
//! let report = conformance::run(&connector, "contacts", options).await?;
//! assert!(report.skipped.is_empty());
//! println!("{report}");
//! # Ok::<(), conformance::Failure>(())
//! # }).unwrap();
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

use super::ops::OpBuilder;
use crate::connector::{
    Applied, Capabilities, Connector, ConnectorError, ConnectorExt, Cursor, ErrorKind,
};
use crate::model::{Coverage, Record, SystemId};
use crate::plan::WriteOp;

/// One rule of the [`Connector`] contract that [`run`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rule {
    /// The [`Options`] are usable (two fields or more).
    Options,
    /// `fetch` returns a complete snapshot of the connector's own system,
    /// each record once.
    CompleteSnapshot,
    /// `apply` returns one result per op.
    ResultPerOp,
    /// A create reports the new record's id.
    CreateReportsId,
    /// Values written read back as written.
    WrittenValuesReadBack,
    /// An update writes the fields given and only those.
    UpdateWritesOnlyGivenFields,
    /// Every write changes the record's version, and the version a write
    /// reports is the one read next.
    VersionsChange,
    /// A conditional write with the current version is applied; one with a
    /// stale version fails with precondition failed and changes nothing.
    StaleWriteRejected,
    /// A create's correlation key comes back as the record's correlation.
    CorrelationReturned,
    /// A create whose correlation key is taken makes no second record: it
    /// fails with duplicate, or applies to the record that has the key.
    NoDuplicateCreate,
    /// `fetch_records` returns the records asked for that exist, and only
    /// those.
    FetchByIds,
    /// A batch of up to `max_batch_size` ops is accepted.
    BatchAccepted,
    /// A deleted record is gone from `fetch`.
    DeletesDisappear,
    /// An update or delete of a missing record fails with not found.
    MissingRecordNotFound,
    /// A deleted record appears in `fetch_changes` as a tombstone.
    DeletesAreTombstones,
    /// `fetch_changes` returns every change after the cursor exactly once,
    /// and nothing again once caught up.
    ChangesOnce,
    /// `fetch_changes` from the beginning holds every live record.
    ChangesFromBeginning,
}

impl Rule {
    /// A short kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Options => "options",
            Rule::CompleteSnapshot => "complete-snapshot",
            Rule::ResultPerOp => "result-per-op",
            Rule::CreateReportsId => "create-reports-id",
            Rule::WrittenValuesReadBack => "written-values-read-back",
            Rule::UpdateWritesOnlyGivenFields => "update-writes-only-given-fields",
            Rule::VersionsChange => "versions-change",
            Rule::StaleWriteRejected => "stale-write-rejected",
            Rule::CorrelationReturned => "correlation-returned",
            Rule::NoDuplicateCreate => "no-duplicate-create",
            Rule::FetchByIds => "fetch-by-ids",
            Rule::BatchAccepted => "batch-accepted",
            Rule::DeletesDisappear => "deletes-disappear",
            Rule::MissingRecordNotFound => "missing-record-not-found",
            Rule::DeletesAreTombstones => "deletes-are-tombstones",
            Rule::ChangesOnce => "changes-once",
            Rule::ChangesFromBeginning => "changes-from-beginning",
        }
    }

    /// What the rule asks, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Rule::Options => "the options name two fields or more",
            Rule::CompleteSnapshot => {
                "fetch returns a complete snapshot of the connector's system, each record once"
            }
            Rule::ResultPerOp => "apply returns one result per op",
            Rule::CreateReportsId => "a create reports the new record's id",
            Rule::WrittenValuesReadBack => "values written read back as written",
            Rule::UpdateWritesOnlyGivenFields => "an update writes the fields given and only those",
            Rule::VersionsChange => {
                "every write changes the version, and the version reported is the one read"
            }
            Rule::StaleWriteRejected => {
                "a conditional write with a stale version fails with precondition failed"
            }
            Rule::CorrelationReturned => "a create's correlation key comes back with the record",
            Rule::NoDuplicateCreate => {
                "a create whose correlation key is taken makes no second record"
            }
            Rule::FetchByIds => "fetch_records returns the records asked for that exist",
            Rule::BatchAccepted => "a batch of up to max_batch_size ops is accepted",
            Rule::DeletesDisappear => "a deleted record is gone from fetch",
            Rule::MissingRecordNotFound => {
                "an update or delete of a missing record fails with not found"
            }
            Rule::DeletesAreTombstones => "a deleted record appears in changes as a tombstone",
            Rule::ChangesOnce => "fetch_changes returns every change after the cursor exactly once",
            Rule::ChangesFromBeginning => {
                "fetch_changes from the beginning holds every live record"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule the connector broke, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connector broke rule {rule} ({}): {seen}", rule.description())]
#[non_exhaustive]
pub struct Failure {
    /// The rule broken.
    pub rule: Rule,
    /// What the check saw.
    pub seen: String,
}

fn fail<T>(rule: Rule, seen: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        rule,
        seen: seen.into(),
    })
}

/// What [`run`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The connector's system.
    pub system: SystemId,
    /// The object type checked.
    pub object: String,
    /// Every rule checked and kept, in the order first checked.
    pub passed: Vec<Rule>,
    /// Rules not checked, with why (a capability the connector does not
    /// claim).
    pub skipped: Vec<(Rule, String)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "conformance of {} on {}: {} rule(s) kept, {} skipped",
            self.system,
            self.object,
            self.passed.len(),
            self.skipped.len()
        )?;
        for rule in &self.passed {
            writeln!(f, "  ok       {rule}")?;
        }
        for (rule, why) in &self.skipped {
            writeln!(f, "  skipped  {rule}: {why}")?;
        }
        Ok(())
    }
}

/// What [`run`] writes: the native fields and sample values, how large a
/// batch to try, and whether to clean up.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    fields: Vec<(String, Value, Value)>,
    run_id: String,
    max_batch: usize,
    cleanup: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// No fields yet (give two or more), a batch check of up to 20 ops,
    /// cleanup on, run id `"recsync-conformance"`.
    pub fn new() -> Self {
        Options {
            fields: Vec::new(),
            run_id: "recsync-conformance".to_owned(),
            max_batch: 20,
            cleanup: true,
        }
    }

    /// A native field the checks may write, with two different sample
    /// values the system stores as given: records are created with `first`,
    /// and updated to `second`.
    #[must_use]
    pub fn field(
        mut self,
        name: impl Into<String>,
        first: impl Into<Value>,
        second: impl Into<Value>,
    ) -> Self {
        self.fields.push((name.into(), first.into(), second.into()));
        self
    }

    /// The prefix of the correlation keys the checks' creates carry; change
    /// it when a sandbox still holds records from an earlier run.
    #[must_use]
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = id.into();
        self
    }

    /// The largest batch to try: the batch check sends
    /// `min(max_batch_size, this)` creates at once (default 20).
    #[must_use]
    pub fn max_batch_check(mut self, ops: usize) -> Self {
        self.max_batch = ops;
        self
    }

    /// Whether the records made are deleted at the end (default on).
    #[must_use]
    pub fn cleanup(mut self, on: bool) -> Self {
        self.cleanup = on;
        self
    }
}

/// Checks `connector` against the [`Connector`] contract on `object`,
/// skipping what its [`Capabilities`] say it does not support.
pub async fn run<C: Connector + ?Sized>(
    connector: &C,
    object: &str,
    options: Options,
) -> Result<Report, Failure> {
    let mut check = Check {
        connector,
        object,
        caps: connector.capabilities(),
        system: connector.system().clone(),
        options,
        serial: 0,
        report: Report {
            system: connector.system().clone(),
            object: object.to_owned(),
            passed: Vec::new(),
            skipped: Vec::new(),
        },
    };
    check.all().await?;
    Ok(check.report)
}

struct Check<'a, C: ?Sized> {
    connector: &'a C,
    object: &'a str,
    caps: Capabilities,
    system: SystemId,
    options: Options,
    serial: usize,
    report: Report,
}

const MISSING_ID: &str = "recsync-conformance-no-such-record";
const MAX_PAGES: usize = 100_000;

impl<C: Connector + ?Sized> Check<'_, C> {
    fn pass(&mut self, rule: Rule) {
        if !self.report.passed.contains(&rule) {
            self.report.passed.push(rule);
        }
    }

    fn skip(&mut self, rule: Rule, why: &str) {
        self.report.skipped.push((rule, why.to_owned()));
    }

    fn create_op(&mut self, values: impl Fn(&(String, Value, Value)) -> Value) -> WriteOp {
        self.serial += 1;
        let mut op = OpBuilder::create(self.system.clone(), self.object)
            .correlation(format!("{}-{}", self.options.run_id, self.serial));
        for f in &self.options.fields {
            op = op.field(f.0.clone(), values(f));
        }
        op.build()
    }

    async fn apply(
        &mut self,
        rule: Rule,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, Failure> {
        let results = match self.connector.apply(self.object, ops).await {
            Ok(results) => results,
            Err(e) => return fail(rule, format!("a batch of {} op(s) failed: {e}", ops.len())),
        };
        if results.len() != ops.len() {
            return fail(
                Rule::ResultPerOp,
                format!("{} result(s) for {} op(s)", results.len(), ops.len()),
            );
        }
        self.pass(Rule::ResultPerOp);
        Ok(results)
    }

    async fn apply_one(
        &mut self,
        rule: Rule,
        op: WriteOp,
    ) -> Result<Result<Applied, ConnectorError>, Failure> {
        let mut results = self.apply(rule, std::slice::from_ref(&op)).await?;
        match results.pop() {
            Some(result) => Ok(result),
            None => fail(Rule::ResultPerOp, "no result for one op"),
        }
    }

    async fn fetch(&mut self, rule: Rule) -> Result<HashMap<String, Record>, Failure> {
        let snapshot = match self.connector.fetch(self.object).await {
            Ok(s) => s,
            Err(e) => return fail(rule, format!("fetch failed: {e}")),
        };
        if snapshot.coverage != Coverage::Complete {
            return fail(Rule::CompleteSnapshot, "fetch returned a partial snapshot");
        }
        if snapshot.system != self.system {
            return fail(
                Rule::CompleteSnapshot,
                format!(
                    "fetch returned a snapshot of {}, the connector is {}",
                    snapshot.system, self.system
                ),
            );
        }
        let mut records = HashMap::with_capacity(snapshot.records.len());
        for r in snapshot.records {
            if r.deleted {
                return fail(
                    Rule::DeletesDisappear,
                    format!("fetch returned record {} as a tombstone", r.id),
                );
            }
            let id = r.id.clone();
            if records.insert(id.clone(), r).is_some() {
                return fail(
                    Rule::CompleteSnapshot,
                    format!("fetch returned record {id} twice"),
                );
            }
        }
        self.pass(Rule::CompleteSnapshot);
        Ok(records)
    }

    /// Every page of changes after `cursor`, unmerged, and the last cursor.
    async fn changes(
        &mut self,
        rule: Rule,
        cursor: Option<&Cursor>,
    ) -> Result<(Vec<Record>, Cursor), Failure> {
        let mut records = Vec::new();
        let mut at = cursor.cloned();
        for _ in 0..MAX_PAGES {
            let page = match self.connector.fetch_changes(self.object, at.as_ref()).await {
                Ok(page) => page,
                Err(e) => return fail(rule, format!("fetch_changes failed: {e}")),
            };
            records.extend(page.snapshot.records);
            if !page.has_more {
                return Ok((records, page.cursor));
            }
            if at.as_ref() == Some(&page.cursor) {
                return fail(
                    Rule::ChangesOnce,
                    format!(
                        "more changes reported without moving the cursor {}",
                        page.cursor
                    ),
                );
            }
            at = Some(page.cursor);
        }
        fail(
            Rule::ChangesOnce,
            format!("still more changes after {MAX_PAGES} pages"),
        )
    }

    fn expect_values(
        &self,
        rule: Rule,
        record: &Record,
        expected: impl Fn(usize, &(String, Value, Value)) -> Value,
        what: &str,
    ) -> Result<(), Failure> {
        for (i, f) in self.options.fields.iter().enumerate() {
            let want = expected(i, f);
            let got = record.get(&f.0);
            if got != Some(&want) {
                let got = got.map_or("nothing".to_owned(), Value::to_string);
                return fail(
                    rule,
                    format!(
                        "{what}: record {} field {} holds {got}, expected {want}",
                        record.id, f.0
                    ),
                );
            }
        }
        Ok(())
    }

    fn expect_missing(
        &self,
        rule: Rule,
        result: Result<Applied, ConnectorError>,
        what: &str,
    ) -> Result<(), Failure> {
        match result {
            Err(e) if *e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => fail(
                rule,
                format!("{what} failed with \"{e}\", not with not found"),
            ),
            Ok(_) => fail(rule, format!("{what} was reported applied")),
        }
    }

    #[allow(clippy::too_many_lines)]
    async fn all(&mut self) -> Result<(), Failure> {
        if self.options.fields.len() < 2 {
            return fail(
                Rule::Options,
                format!(
                    "{} field(s) given, two or more needed",
                    self.options.fields.len()
                ),
            );
        }
        if let Some((name, _, _)) = self.options.fields.iter().find(|f| f.1 == f.2) {
            return fail(
                Rule::Options,
                format!("field {name}: the two sample values are equal"),
            );
        }
        self.pass(Rule::Options);
        let caps = self.caps;
        if caps.max_batch_size == 0 {
            return fail(Rule::BatchAccepted, "max_batch_size is 0");
        }

        // Where the change log stands before any write.
        let start = if caps.incremental_fetch {
            Some(self.changes(Rule::ChangesOnce, None).await?.1)
        } else {
            None
        };

        // Create one record; read it back.
        let op = self.create_op(|f| f.1.clone());
        let create = op.clone();
        let key = op.correlation.clone().unwrap_or_default();
        let applied = match self.apply_one(Rule::WrittenValuesReadBack, op).await? {
            Ok(applied) => applied,
            Err(e) => return fail(Rule::WrittenValuesReadBack, format!("create failed: {e}")),
        };
        let Some(id) = applied.record_id.clone() else {
            return fail(Rule::CreateReportsId, "create applied without a record id");
        };
        self.pass(Rule::CreateReportsId);
        let records = self.fetch(Rule::WrittenValuesReadBack).await?;
        let Some(record) = records.get(&id) else {
            return fail(
                Rule::WrittenValuesReadBack,
                format!("created record {id} is missing from fetch"),
            );
        };
        self.expect_values(
            Rule::WrittenValuesReadBack,
            record,
            |_, f| f.1.clone(),
            "after create",
        )?;
        if caps.external_ids {
            if record.correlation.as_deref() != Some(key.as_str()) {
                return fail(
                    Rule::CorrelationReturned,
                    format!(
                        "record {id} was created with correlation key {key}, fetch shows {:?}",
                        record.correlation
                    ),
                );
            }
            self.pass(Rule::CorrelationReturned);
        } else {
            self.skip(Rule::CorrelationReturned, "external ids not supported");
        }
        if caps.conditional_writes && record.version.is_none() {
            return fail(
                Rule::VersionsChange,
                format!("conditional writes supported, but record {id} has no version"),
            );
        }
        check_reported_version(&applied, record, "create")?;
        let mut v1 = record.version.clone();

        // The same create again (a retry after a lost commit).
        if caps.external_ids {
            let live = records.len();
            match self.apply_one(Rule::NoDuplicateCreate, create).await? {
                Err(e) if *e.kind() == ErrorKind::Duplicate => {}
                Ok(Applied {
                    record_id: Some(same),
                    ..
                }) if same == id => {}
                Ok(again) => {
                    return fail(
                        Rule::NoDuplicateCreate,
                        format!(
                            "a second create with correlation key {key} was applied as record {}",
                            again.record_id.as_deref().unwrap_or("(no id)")
                        ),
                    )
                }
                Err(e) => {
                    return fail(
                        Rule::NoDuplicateCreate,
                        format!(
                            "a second create with correlation key {key} failed with \"{e}\", not with duplicate"
                        ),
                    )
                }
            }
            let records = self.fetch(Rule::NoDuplicateCreate).await?;
            if records.len() != live {
                return fail(
                    Rule::NoDuplicateCreate,
                    format!(
                        "fetch shows {} records after a second create with correlation key {key}, {live} before",
                        records.len()
                    ),
                );
            }
            v1 = records.get(&id).and_then(|r| r.version.clone());
            self.pass(Rule::NoDuplicateCreate);
        } else {
            self.skip(Rule::NoDuplicateCreate, "external ids not supported");
        }

        // Update the first field only.
        let (f1, _, b1) = self.options.fields[0].clone();
        let mut op = OpBuilder::update(self.system.clone(), self.object, &id).field(&f1, b1);
        if let (true, Some(v)) = (caps.conditional_writes, &v1) {
            op = op.expected_version(v);
        }
        let applied = match self
            .apply_one(Rule::UpdateWritesOnlyGivenFields, op.build())
            .await?
        {
            Ok(applied) => applied,
            Err(e) if *e.kind() == ErrorKind::PreconditionFailed => {
                return fail(
                    Rule::StaleWriteRejected,
                    format!(
                        "an update expecting the current version {} was rejected: {e}",
                        v1.as_deref().unwrap_or("(none)")
                    ),
                )
            }
            Err(e) => {
                return fail(
                    Rule::UpdateWritesOnlyGivenFields,
                    format!("update failed: {e}"),
                )
            }
        };
        let records = self.fetch(Rule::UpdateWritesOnlyGivenFields).await?;
        let Some(record) = records.get(&id) else {
            return fail(
                Rule::WrittenValuesReadBack,
                format!("updated record {id} is missing from fetch"),
            );
        };
        if record.get(&f1) != Some(&self.options.fields[0].2) {
            return fail(
                Rule::WrittenValuesReadBack,
                format!(
                    "after update: record {id} field {f1} holds {}, expected {}",
                    record
                        .get(&f1)
                        .map_or("nothing".to_owned(), Value::to_string),
                    self.options.fields[0].2
                ),
            );
        }
        self.pass(Rule::WrittenValuesReadBack);
        self.expect_values(
            Rule::UpdateWritesOnlyGivenFields,
            record,
            |i, f| if i == 0 { f.2.clone() } else { f.1.clone() },
            "after an update of one field",
        )?;
        self.pass(Rule::UpdateWritesOnlyGivenFields);
        let v2 = record.version.clone();
        match (&v1, &v2) {
            (Some(a), Some(b)) if a == b => {
                return fail(
                    Rule::VersionsChange,
                    format!("record {id} kept version {a} through an update"),
                )
            }
            (Some(a), None) => {
                return fail(
                    Rule::VersionsChange,
                    format!("record {id} had version {a}, and none after an update"),
                )
            }
            _ => {}
        }
        check_reported_version(&applied, record, "update")?;
        if v1.is_some() {
            self.pass(Rule::VersionsChange);
        } else {
            self.skip(Rule::VersionsChange, "records have no version");
        }

        // A stale conditional write.
        if let (true, Some(stale)) = (caps.conditional_writes, &v1) {
            let (f2, a2, b2) = self.options.fields[1].clone();
            let op = OpBuilder::update(self.system.clone(), self.object, &id)
                .field(&f2, b2)
                .expected_version(stale)
                .build();
            match self.apply_one(Rule::StaleWriteRejected, op).await? {
                Err(e) if *e.kind() == ErrorKind::PreconditionFailed => {}
                Err(e) => {
                    return fail(
                        Rule::StaleWriteRejected,
                        format!(
                            "an update expecting stale version {stale} failed with \"{e}\", not with precondition failed"
                        ),
                    )
                }
                Ok(_) => {
                    return fail(
                        Rule::StaleWriteRejected,
                        format!(
                            "an update expecting stale version {stale} was applied to record {id} at version {}",
                            v2.as_deref().unwrap_or("(none)")
                        ),
                    )
                }
            }
            let records = self.fetch(Rule::StaleWriteRejected).await?;
            if let Some(record) = records.get(&id) {
                if record.get(&f2) != Some(&a2) {
                    return fail(
                        Rule::StaleWriteRejected,
                        format!("a rejected stale write changed field {f2} of record {id}"),
                    );
                }
            }
            self.pass(Rule::StaleWriteRejected);
        } else {
            self.skip(Rule::StaleWriteRejected, "conditional writes not supported");
        }

        // Fetch by ids.
        if caps.fetch_by_ids {
            let ids = [id.clone(), MISSING_ID.to_owned()];
            let snapshot = match self.connector.fetch_records(self.object, &ids).await {
                Ok(s) => s,
                Err(e) => return fail(Rule::FetchByIds, format!("fetch_records failed: {e}")),
            };
            let mut seen = 0;
            for r in &snapshot.records {
                if r.id == MISSING_ID {
                    return fail(
                        Rule::FetchByIds,
                        format!("returned {MISSING_ID}, which does not exist"),
                    );
                }
                if r.id != id {
                    return fail(
                        Rule::FetchByIds,
                        format!("returned record {}, which was not asked for", r.id),
                    );
                }
                seen += 1;
                self.expect_values(
                    Rule::FetchByIds,
                    r,
                    |i, f| if i == 0 { f.2.clone() } else { f.1.clone() },
                    "fetch_records",
                )?;
            }
            if seen != 1 {
                return fail(
                    Rule::FetchByIds,
                    format!("record {id} returned {seen} time(s), expected once"),
                );
            }
            self.pass(Rule::FetchByIds);
        } else {
            self.skip(Rule::FetchByIds, "fetch by ids not supported");
        }

        // A full batch of creates.
        let size = caps.max_batch_size.min(self.options.max_batch).max(1);
        let ops: Vec<WriteOp> = (0..size).map(|_| self.create_op(|f| f.1.clone())).collect();
        let results = self.apply(Rule::BatchAccepted, &ops).await?;
        let mut batch: Vec<(String, String)> = Vec::with_capacity(size);
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(Applied {
                    record_id: Some(rid),
                    ..
                }) => batch.push((rid, ops[i].correlation.clone().unwrap_or_default())),
                Ok(_) => {
                    return fail(
                        Rule::CreateReportsId,
                        format!(
                            "create {} of a batch of {size} applied without a record id",
                            i + 1
                        ),
                    )
                }
                Err(e) => {
                    return fail(
                        Rule::BatchAccepted,
                        format!("create {} of a batch of {size} failed: {e}", i + 1),
                    )
                }
            }
        }
        let mut distinct: BTreeMap<&str, usize> = BTreeMap::new();
        for (rid, _) in &batch {
            *distinct.entry(rid.as_str()).or_default() += 1;
        }
        if let Some((rid, _)) = distinct.iter().find(|(_, n)| **n > 1) {
            return fail(
                Rule::BatchAccepted,
                format!("two creates of one batch reported the same id {rid}"),
            );
        }
        let records = self.fetch(Rule::BatchAccepted).await?;
        for (rid, key) in &batch {
            let Some(record) = records.get(rid) else {
                return fail(
                    Rule::WrittenValuesReadBack,
                    format!("record {rid} created in a batch is missing from fetch"),
                );
            };
            self.expect_values(
                Rule::WrittenValuesReadBack,
                record,
                |_, f| f.1.clone(),
                "after a batch create",
            )?;
            if caps.external_ids && record.correlation.as_deref() != Some(key.as_str()) {
                return fail(
                    Rule::CorrelationReturned,
                    format!(
                        "record {rid} was created with correlation key {key}, fetch shows {:?}",
                        record.correlation
                    ),
                );
            }
        }
        self.pass(Rule::BatchAccepted);

        // Delete the first record; it is gone, and missing from then on.
        let mut op = OpBuilder::delete(self.system.clone(), self.object, &id);
        if let (true, Some(v)) = (caps.conditional_writes, &v2) {
            op = op.expected_version(v);
        }
        if let Err(e) = self.apply_one(Rule::DeletesDisappear, op.build()).await? {
            return fail(
                Rule::DeletesDisappear,
                format!("delete of record {id} failed: {e}"),
            );
        }
        let records = self.fetch(Rule::DeletesDisappear).await?;
        if records.contains_key(&id) {
            return fail(
                Rule::DeletesDisappear,
                format!("deleted record {id} is still in fetch"),
            );
        }
        self.pass(Rule::DeletesDisappear);
        let (f1, a1, _) = self.options.fields[0].clone();
        let op = OpBuilder::update(self.system.clone(), self.object, &id)
            .field(&f1, a1)
            .build();
        let result = self.apply_one(Rule::MissingRecordNotFound, op).await?;
        self.expect_missing(
            Rule::MissingRecordNotFound,
            result,
            &format!("an update of deleted record {id}"),
        )?;
        let op = OpBuilder::delete(self.system.clone(), self.object, &id).build();
        let result = self.apply_one(Rule::MissingRecordNotFound, op).await?;
        self.expect_missing(
            Rule::MissingRecordNotFound,
            result,
            &format!("a second delete of record {id}"),
        )?;
        self.pass(Rule::MissingRecordNotFound);

        // The change log: every change once, deletes as tombstones.
        if let Some(start) = start {
            let (changes, end) = self.changes(Rule::ChangesOnce, Some(&start)).await?;
            let mut count: HashMap<&str, usize> = HashMap::new();
            for r in &changes {
                *count.entry(r.id.as_str()).or_default() += 1;
            }
            match (
                count.get(id.as_str()).copied().unwrap_or(0),
                changes.iter().find(|r| r.id == id),
            ) {
                (0, _) => {
                    return fail(
                        Rule::DeletesAreTombstones,
                        format!(
                            "deleted record {id} is missing from the changes after cursor {start}"
                        ),
                    )
                }
                (1, Some(r)) if r.deleted => self.pass(Rule::DeletesAreTombstones),
                (1, _) => {
                    return fail(
                        Rule::DeletesAreTombstones,
                        format!(
                            "deleted record {id} appears in the changes without the deleted flag"
                        ),
                    )
                }
                (n, _) => {
                    return fail(
                        Rule::ChangesOnce,
                        format!(
                            "record {id} appears {n} times in the changes after cursor {start}"
                        ),
                    )
                }
            }
            for (rid, _) in &batch {
                match count.get(rid.as_str()).copied().unwrap_or(0) {
                    1 => {}
                    0 => {
                        return fail(
                            Rule::ChangesOnce,
                            format!("record {rid} changed after cursor {start} but is missing from the changes"),
                        )
                    }
                    n => {
                        return fail(
                            Rule::ChangesOnce,
                            format!("record {rid} appears {n} times in the changes after cursor {start}"),
                        )
                    }
                }
            }
            for r in changes.iter().filter(|r| r.id != id) {
                if batch.iter().any(|(rid, _)| *rid == r.id) {
                    if r.deleted {
                        return fail(
                            Rule::ChangesOnce,
                            format!("live record {} appears in the changes as a tombstone", r.id),
                        );
                    }
                    self.expect_values(Rule::ChangesOnce, r, |_, f| f.1.clone(), "in the changes")?;
                }
            }
            let (again, _) = self.changes(Rule::ChangesOnce, Some(&end)).await?;
            let ours: Vec<&str> = again
                .iter()
                .filter(|r| r.id == id || batch.iter().any(|(rid, _)| *rid == r.id))
                .map(|r| r.id.as_str())
                .collect();
            if let Some(rid) = ours.first() {
                return fail(
                    Rule::ChangesOnce,
                    format!(
                        "record {rid} is reported again after cursor {end}, with no change since"
                    ),
                );
            }
            self.pass(Rule::ChangesOnce);

            let all = match self.connector.fetch_all_changes(self.object, None).await {
                Ok(c) => c,
                Err(e) => {
                    return fail(
                        Rule::ChangesFromBeginning,
                        format!("fetch_changes failed: {e}"),
                    )
                }
            };
            for (rid, _) in &batch {
                if !all
                    .snapshot
                    .records
                    .iter()
                    .any(|r| r.id == *rid && !r.deleted)
                {
                    return fail(
                        Rule::ChangesFromBeginning,
                        format!("live record {rid} is missing from the changes from the beginning"),
                    );
                }
            }
            self.pass(Rule::ChangesFromBeginning);
        } else {
            for rule in [
                Rule::ChangesOnce,
                Rule::DeletesAreTombstones,
                Rule::ChangesFromBeginning,
            ] {
                self.skip(rule, "incremental fetch not supported");
            }
        }

        if self.options.cleanup {
            let ops: Vec<WriteOp> = batch
                .iter()
                .map(|(rid, _)| OpBuilder::delete(self.system.clone(), self.object, rid).build())
                .collect();
            let results = self.connector.apply_in_batches(self.object, &ops).await;
            for (result, (rid, _)) in results.into_iter().zip(&batch) {
                if let Err(e) = result {
                    return fail(
                        Rule::DeletesDisappear,
                        format!("cleanup: delete of record {rid} failed: {e}"),
                    );
                }
            }
        }
        Ok(())
    }
}

fn check_reported_version(applied: &Applied, record: &Record, what: &str) -> Result<(), Failure> {
    match (&applied.version, &record.version) {
        (Some(reported), Some(read)) if reported != read => fail(
            Rule::VersionsChange,
            format!(
                "{what} of record {} reported version {reported}, fetch shows {read}",
                record.id
            ),
        ),
        (Some(reported), None) => fail(
            Rule::VersionsChange,
            format!(
                "{what} of record {} reported version {reported}, fetch shows none",
                record.id
            ),
        ),
        _ => Ok(()),
    }
}

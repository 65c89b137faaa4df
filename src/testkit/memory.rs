//! [`MemoryConnector`]: a faithful in-memory system, with fault injection.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use crate::model::Fields;

use super::clock::{Clock, ManualClock};
use super::write::{self, Marks};
use crate::connector::{Applied, Capabilities, Changes, Connector, ConnectorError, Cursor};
use crate::model::{Record, Snapshot, SystemId};
use crate::plan::{OpKind, WriteOp};

/// An in-memory system that keeps the [`Connector`] contract, for tests,
/// examples and demos.
///
/// It holds any number of object types (created on first use), each a table
/// of records with generated native ids (`"{prefix}{n}"`, the prefix being
/// `"{system}-"` unless [set](MemoryConnectorBuilder::id_prefix)). Every
/// write, by recsync or by a "human" through [`insert`](Self::insert),
/// [`edit`](Self::edit) and [`delete`](Self::delete), gives the record a new
/// version, stamps `updated_at` and the changed fields' timestamps from the
/// [clock](MemoryConnectorBuilder::clock), and appends to a change log that
/// [`fetch_changes`](Connector::fetch_changes) reads (the cursor is a
/// sequence number; deletes are tombstones). Creates keep their
/// [correlation key](WriteOp::correlation) as an external id, unique among
/// live records.
///
/// Faults are injected deterministically: [rate limits](Self::rate_limit_next)
/// and [transient failures](Self::fail_next_transient) of the next calls,
/// [failing chosen ops](Self::fail_ops_in_next_apply) of the next batch, a
/// [crash after N ops](Self::crash_after_ops),
/// [stale versions](Self::bump_version), and
/// [ops reported applied but not made](Self::lie_next_ops).
///
/// Clones share the same system: hand one to the runner and keep one to
/// edit records and inject faults. `Debug` shows counts, never record data.
///
/// ```
/// use recsync::testkit::MemoryConnector;
/// use recsync::Connector;
/// use serde_json::json;
///
/// # futures::executor::block_on(async {
/// let crm = MemoryConnector::new("crm");
/// let id = crm.insert("contacts", [("email", json!("ada@example.com"))]);
/// crm.edit("contacts", &id, [("phone", json!("555-0101"))])?;
///
/// let snapshot = crm.fetch("contacts").await?;
/// assert_eq!(snapshot.records.len(), 1);
/// assert_eq!(snapshot.records[0].get("phone"), Some(&json!("555-0101")));
/// assert_eq!(snapshot.records[0].version.as_deref(), Some("2"));
/// # Ok::<(), recsync::ConnectorError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryConnector {
    inner: Arc<Inner>,
}

struct Inner {
    system: SystemId,
    capabilities: Capabilities,
    page_size: usize,
    field_timestamps: bool,
    /// Whether records and writes report versions.
    versions: bool,
    /// Whether `apply` reports what it stored.
    report_stored: bool,
    /// How values are stored, by native field name.
    rewrites: Vec<(String, Rewrite)>,
    /// The fields every record has, where declared.
    schema: Option<Vec<String>>,
    id_prefix: String,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tables: BTreeMap<String, Table>,
    seq: u64,
    next_id: u64,
    faults: Faults,
    stats: Stats,
}

#[derive(Default)]
struct Table {
    /// Every record ever made, tombstones included, in creation order.
    records: IndexMap<String, Stored>,
    /// Change log: sequence number of each record's last change.
    log: BTreeMap<u64, String>,
    /// Correlation key to live record id.
    correlations: HashMap<String, String>,
}

struct Stored {
    /// The record as kept: every field's timestamp, a version and the
    /// correlation key whatever the connector reports; a tombstone keeps
    /// its fields.
    record: Record,
    seq: u64,
}

#[derive(Default)]
struct Faults {
    rate_limited: usize,
    retry_after: Option<Duration>,
    transient: usize,
    fail_ops: Vec<(usize, ConnectorError)>,
    crash_after: Option<usize>,
    /// Ops still to be reported applied without being made.
    lie: usize,
}

impl Faults {
    fn pending(&self) -> usize {
        self.rate_limited
            + self.transient
            + self.fail_ops.len()
            + usize::from(self.crash_after.is_some())
            + self.lie
    }
}

/// What a [`MemoryConnector`] was asked to do, for tests to assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls of [`fetch`](Connector::fetch).
    pub fetches: usize,
    /// Calls of [`fetch_changes`](Connector::fetch_changes).
    pub change_fetches: usize,
    /// Calls of [`fetch_records`](Connector::fetch_records).
    pub record_fetches: usize,
    /// Calls of [`apply`](Connector::apply).
    pub applies: usize,
    /// The number of ops in each `apply` call, in order.
    pub batch_sizes: Vec<usize>,
    /// Calls that failed as a whole (injected faults, oversized batches).
    pub failed_calls: usize,
    /// Ops that took effect.
    pub ops_applied: usize,
    /// Ops that failed on their own.
    pub ops_failed: usize,
}

/// Builds a [`MemoryConnector`]; see [`MemoryConnector::builder`].
pub struct MemoryConnectorBuilder {
    system: SystemId,
    capabilities: Capabilities,
    page_size: usize,
    field_timestamps: bool,
    versions: bool,
    report_stored: bool,
    rewrites: Vec<(String, Rewrite)>,
    schema: Option<Vec<String>>,
    id_prefix: Option<String>,
    clock: Option<Arc<dyn Clock>>,
}

/// A [`MemoryConnectorBuilder`] setting that
/// [`build`](MemoryConnectorBuilder::build) refused, with every problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid memory connector: {}", problems.join("; "))]
pub struct BuildError {
    /// Every problem found.
    pub problems: Vec<String>,
}

impl MemoryConnectorBuilder {
    /// Sets the largest batch `apply` accepts (default 100); a larger batch
    /// fails as a whole.
    #[must_use]
    pub fn max_batch_size(mut self, ops: usize) -> Self {
        self.capabilities.max_batch_size = ops;
        self
    }

    /// Whether `expected_version` is honoured (default on). Off, stale writes
    /// overwrite, as in a system without versions checks.
    #[must_use]
    pub fn conditional_writes(mut self, on: bool) -> Self {
        self.capabilities.conditional_writes = on;
        self
    }

    /// Whether correlation keys are kept and reported (default on).
    #[must_use]
    pub fn external_ids(mut self, on: bool) -> Self {
        self.capabilities.external_ids = on;
        self
    }

    /// Whether `fetch_changes` works (default on).
    #[must_use]
    pub fn incremental_fetch(mut self, on: bool) -> Self {
        self.capabilities.incremental_fetch = on;
        self
    }

    /// Whether `fetch_records` works (default on).
    #[must_use]
    pub fn fetch_by_ids(mut self, on: bool) -> Self {
        self.capabilities.fetch_by_ids = on;
        self
    }

    /// How many changes one `fetch_changes` page holds (default 100).
    #[must_use]
    pub fn page_size(mut self, records: usize) -> Self {
        self.page_size = records;
        self
    }

    /// Whether records report per-field timestamps (default on), as systems
    /// with field history do; off, only `updated_at`.
    #[must_use]
    pub fn field_timestamps(mut self, on: bool) -> Self {
        self.field_timestamps = on;
        self
    }

    /// Whether records report a version and writes the version they made
    /// (default on). Off, the system is one without versions: no record
    /// carries one, and `expected_version` cannot be honoured, so
    /// [`conditional_writes`](Self::conditional_writes) is off too.
    #[must_use]
    pub fn versions(mut self, on: bool) -> Self {
        self.versions = on;
        self
    }

    /// Stores every value of native field `field` (of any object) in the
    /// system's own form, whoever writes it (recsync through `apply`, or a
    /// person through [`insert`](MemoryConnector::insert) and
    /// [`edit`](MemoryConnector::edit)), as real systems do: a phone kept
    /// in E.164, a name trimmed, an amount rounded. Several rewrites of
    /// one field apply in the order given.
    ///
    /// ```
    /// use recsync::testkit::{MemoryConnector, Rewrite};
    /// use serde_json::json;
    ///
    /// let crm = MemoryConnector::builder("salesforce")
    ///     .rewrite("Phone", Rewrite::E164 { country_code: 1 })
    ///     .build()
    ///     .unwrap();
    /// let id = crm.insert("contacts", [("Phone", json!("(555) 123-4567"))]);
    /// assert_eq!(
    ///     crm.get("contacts", &id).unwrap().get("Phone"),
    ///     Some(&json!("+15551234567"))
    /// );
    /// ```
    #[must_use]
    pub fn rewrite(mut self, field: impl Into<String>, rewrite: Rewrite) -> Self {
        self.rewrites.push((field.into(), rewrite));
        self
    }

    /// Whether `apply` reports what it stored in each field an op wrote
    /// ([`Applied::stored`]), as HubSpot's batch update answers with the
    /// stored properties (default off).
    #[must_use]
    pub fn report_stored(mut self, on: bool) -> Self {
        self.report_stored = on;
        self
    }

    /// The fields the system's records have, as a real system's schema
    /// says: every record read lists each of them (`null` where it holds
    /// nothing), and a write to any other field fails, as Salesforce's
    /// `INVALID_FIELD` does. Without it (the default), a record holds the
    /// fields set on it, like an API that leaves empty fields out.
    ///
    /// ```
    /// use recsync::testkit::MemoryConnector;
    /// use serde_json::json;
    ///
    /// let crm = MemoryConnector::builder("crm")
    ///     .schema(["email", "full_name"])
    ///     .build()
    ///     .unwrap();
    /// let id = crm.insert("contacts", [("email", json!("ada@example.com"))]);
    /// assert_eq!(crm.get("contacts", &id).unwrap().get("full_name"), Some(&json!(null)));
    /// ```
    #[must_use]
    pub fn schema<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.schema = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// The prefix of generated record ids (default `"{system}-"`).
    #[must_use]
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = Some(prefix.into());
        self
    }

    /// The clock writes are stamped from (default: a
    /// [`ManualClock::default_ticking`] of its own, a fake clock starting at
    /// 2026-01-01: beside a real system, pass
    /// [`SystemClock`](crate::runner::SystemClock), or last-write-wins
    /// always picks the real system's newer stamps). Give several
    /// connectors one [`ManualClock`] for last-write-wins across them to
    /// mean something.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the settings and builds the connector.
    pub fn build(self) -> Result<MemoryConnector, BuildError> {
        let mut problems = Vec::new();
        if self.capabilities.max_batch_size == 0 {
            problems.push("max batch size is 0, must be at least 1".to_owned());
        }
        if self.page_size == 0 {
            problems.push("page size is 0, must be at least 1".to_owned());
        }
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        let id_prefix = self
            .id_prefix
            .unwrap_or_else(|| format!("{}-", self.system));
        let mut capabilities = self.capabilities;
        if !self.versions {
            capabilities.conditional_writes = false;
        }
        Ok(MemoryConnector {
            inner: Arc::new(Inner {
                system: self.system,
                capabilities,
                page_size: self.page_size,
                field_timestamps: self.field_timestamps,
                versions: self.versions,
                report_stored: self.report_stored,
                rewrites: self.rewrites,
                schema: self.schema,
                id_prefix,
                clock: self
                    .clock
                    .unwrap_or_else(|| Arc::new(ManualClock::default_ticking())),
                state: Mutex::new(State::default()),
            }),
        })
    }
}

impl fmt::Debug for MemoryConnectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConnectorBuilder")
            .field("system", &self.system)
            .field("capabilities", &self.capabilities)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl MemoryConnector {
    /// A connector for `system` with every capability and the defaults of
    /// [`builder`](Self::builder).
    ///
    /// **Its clock is fake**: it stamps writes from a clock of its own that
    /// starts at 2026-01-01T00:00:00Z and moves one second per reading.
    /// Beside a real system, whose timestamps are today's, last-write-wins
    /// then always picks the real system's value. To run one beside real
    /// systems, build it with the wall clock:
    /// `MemoryConnector::builder("crm").clock(SystemClock).build()`.
    pub fn new(system: impl Into<SystemId>) -> Self {
        let system = system.into();
        MemoryConnector {
            inner: Arc::new(Inner {
                id_prefix: format!("{system}-"),
                system,
                capabilities: Self::default_capabilities(),
                page_size: 100,
                field_timestamps: true,
                versions: true,
                report_stored: false,
                rewrites: Vec::new(),
                schema: None,
                clock: Arc::new(ManualClock::default_ticking()),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A builder for a connector for `system`.
    pub fn builder(system: impl Into<SystemId>) -> MemoryConnectorBuilder {
        MemoryConnectorBuilder {
            system: system.into(),
            capabilities: Self::default_capabilities(),
            page_size: 100,
            field_timestamps: true,
            versions: true,
            report_stored: false,
            rewrites: Vec::new(),
            schema: None,
            id_prefix: None,
            clock: None,
        }
    }

    fn default_capabilities() -> Capabilities {
        Capabilities::new()
            .max_batch_size(100)
            .conditional_writes(true)
            .external_ids(true)
            .incremental_fetch(true)
            .fetch_by_ids(true)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn record_of(&self, stored: &Stored) -> Record {
        let kept = &stored.record;
        let deleted = kept.deleted;
        Record {
            id: kept.id.clone(),
            fields: if deleted {
                Fields::new()
            } else {
                self.listed(&kept.fields)
            },
            updated_at: kept.updated_at,
            field_updated_at: if self.inner.field_timestamps && !deleted {
                kept.field_updated_at.clone()
            } else {
                IndexMap::new()
            },
            version: kept.version.clone().filter(|_| self.inner.versions),
            deleted,
            correlation: kept
                .correlation
                .clone()
                .filter(|_| self.inner.capabilities.external_ids),
            non_finite: Vec::new(),
        }
    }

    /// How this connector marks a write made at `now`: it always keeps a
    /// version and every timestamp, and reports them as it is configured.
    fn marks(now: DateTime<Utc>) -> Marks {
        Marks {
            at: Some(now),
            versions: true,
        }
    }

    /// A record's fields as a read lists them: with a schema, every
    /// declared field, in the schema's order (`null` where unset).
    fn listed(&self, fields: &Fields) -> Fields {
        let Some(schema) = &self.inner.schema else {
            return fields.clone();
        };
        let mut out: Fields = schema
            .iter()
            .map(|f| (f.clone(), fields.get(f).cloned().unwrap_or(Value::Null)))
            .collect();
        for (k, v) in fields {
            if !out.contains_key(k) {
                out.insert(k, v.clone());
            }
        }
        out
    }

    // ----- the user's side: edits as a person would make them -----

    /// A person creates a record in `object`; returns its new id.
    pub fn insert<K, V>(&self, object: &str, fields: impl IntoIterator<Item = (K, V)>) -> String
    where
        K: Into<String>,
        V: Into<Value>,
    {
        let now = self.inner.clock.now();
        let mut state = self.state();
        let id = next_id(&mut state, &self.inner.id_prefix);
        let fields = fields
            .into_iter()
            .map(|(k, v)| self.stored_form(k.into(), v.into()));
        create(&mut state, object, &id, fields, None, now);
        id
    }

    /// A person edits a live record: the fields given take their values
    /// (those whose value differs get a new field timestamp); the version
    /// changes.
    pub fn edit<K, V>(
        &self,
        object: &str,
        id: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), ConnectorError>
    where
        K: Into<String>,
        V: Into<Value>,
    {
        let now = self.inner.clock.now();
        let mut state = self.state();
        let changes = fields
            .into_iter()
            .map(|(k, v)| self.stored_form(k.into(), v.into()));
        update(&mut state, object, id, changes, now).map(|_| ())
    }

    /// A person deletes a live record.
    pub fn delete(&self, object: &str, id: &str) -> Result<(), ConnectorError> {
        let now = self.inner.clock.now();
        let mut state = self.state();
        delete(&mut state, object, id, now).map(|_| ())
    }

    /// A live record, as `fetch` would show it.
    pub fn get(&self, object: &str, id: &str) -> Option<Record> {
        let state = self.state();
        let stored = state.tables.get(object)?.records.get(id)?;
        (!stored.record.deleted).then(|| self.record_of(stored))
    }

    /// Every live record of `object`, in creation order.
    pub fn records(&self, object: &str) -> Vec<Record> {
        let state = self.state();
        state.tables.get(object).map_or_else(Vec::new, |t| {
            t.records
                .iter()
                .filter(|(_, s)| !s.record.deleted)
                .map(|(_, s)| self.record_of(s))
                .collect()
        })
    }

    /// How many live records `object` has.
    pub fn len(&self, object: &str) -> usize {
        let state = self.state();
        state.tables.get(object).map_or(0, |t| {
            t.records.values().filter(|s| !s.record.deleted).count()
        })
    }

    /// Whether `object` has no live record.
    pub fn is_empty(&self, object: &str) -> bool {
        self.len(object) == 0
    }

    // ----- faults -----

    /// The next `calls` calls (of any fetch or apply method) fail as rate
    /// limited, with `retry_after`.
    pub fn rate_limit_next(&self, calls: usize, retry_after: Option<Duration>) {
        let mut state = self.state();
        state.faults.rate_limited = calls;
        state.faults.retry_after = retry_after;
    }

    /// The next `calls` calls fail with a transient error (after any pending
    /// rate limits).
    pub fn fail_next_transient(&self, calls: usize) {
        self.state().faults.transient = calls;
    }

    /// In the next `apply` call that is not failed as a whole, the ops at
    /// these positions (0-based) fail with `error` and change nothing; the
    /// others are applied.
    pub fn fail_ops_in_next_apply(
        &self,
        positions: impl IntoIterator<Item = usize>,
        error: ConnectorError,
    ) {
        self.state().faults.fail_ops = positions.into_iter().map(|p| (p, error.clone())).collect();
    }

    /// After `ops` more ops have been processed (over one `apply` call or
    /// several), the call in progress fails as a whole with a transient
    /// error, as if the process had died mid batch: the ops before took
    /// effect, the rest did not, and the caller is not told which.
    pub fn crash_after_ops(&self, ops: usize) {
        self.state().faults.crash_after = Some(ops);
    }

    /// The next `ops` ops (over one `apply` call or several) are reported
    /// applied but not made, as a connector that lies does: a create
    /// reports a new id (used up, never a record), an update or a delete
    /// reports the version it would have given the record; nothing
    /// changes, and the change log has nothing.
    pub fn lie_next_ops(&self, ops: usize) {
        self.state().faults.lie = ops;
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        self.state().faults = Faults::default();
    }

    /// Someone saves the live record without changing a field: its version
    /// changes behind the caller's back (and the change log has it), so a
    /// conditional write from an earlier read is stale.
    pub fn bump_version(&self, object: &str, id: &str) -> Result<(), ConnectorError> {
        let now = self.inner.clock.now();
        let mut state = self.state();
        update(&mut state, object, id, std::iter::empty(), now).map(|_| ())
    }

    /// What the connector was asked to do so far.
    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    /// Starts counting [`stats`](Self::stats) from zero.
    pub fn reset_stats(&self) {
        self.state().stats = Stats::default();
    }

    fn call_fault(&self, state: &mut State) -> Result<(), ConnectorError> {
        let faults = &mut state.faults;
        let error = if faults.rate_limited > 0 {
            faults.rate_limited -= 1;
            ConnectorError::rate_limited(faults.retry_after, "too many requests (injected)")
        } else if faults.transient > 0 {
            faults.transient -= 1;
            ConnectorError::transient("service unavailable (injected)")
        } else {
            return Ok(());
        };
        state.stats.failed_calls += 1;
        Err(error)
    }

    fn apply_one(
        &self,
        state: &mut State,
        object: &str,
        op: &WriteOp,
        now: DateTime<Utc>,
    ) -> Result<Applied, ConnectorError> {
        let caps = &self.inner.capabilities;
        if op.object != object {
            return Err(ConnectorError::permanent(format!(
                "op is for object {}, the batch for {object}",
                op.object
            )));
        }
        write::check_system(op, &self.inner.system)?;
        if let Some(schema) = &self.inner.schema {
            if let Some(w) = op
                .fields
                .iter()
                .find(|w| !schema.iter().any(|s| w.native == *s))
            {
                return Err(ConnectorError::permanent(format!(
                    "no field {} in {}'s {object} (INVALID_FIELD)",
                    w.native, self.inner.system
                )));
            }
        }
        let fields = op
            .fields
            .iter()
            .map(|w| self.stored_form(w.native.as_str().to_owned(), w.value.clone()));
        if op.kind == OpKind::Create {
            let correlation = op.correlation.clone().filter(|_| caps.external_ids);
            if let Some(key) = &correlation {
                let taken = state
                    .tables
                    .get(object)
                    .and_then(|t| t.correlations.get(key));
                if let Some(existing) = taken {
                    return Err(write::taken(key, existing));
                }
            }
            let id = next_id(state, &self.inner.id_prefix);
            let version = create(state, object, &id, fields, correlation, now);
            return Ok(self.reported(&id, version, op));
        }
        let id = write::target(op)?;
        if caps.conditional_writes {
            let current = state
                .tables
                .get(object)
                .and_then(|t| t.records.get(id))
                .filter(|s| !s.record.deleted)
                .and_then(|s| s.record.version.as_deref());
            write::check_version(op, id, current)?;
        }
        let version = match op.kind {
            OpKind::Delete => delete(state, object, id, now)?,
            _ => update(state, object, id, fields, now)?,
        };
        Ok(self.reported(id, version, op))
    }

    /// `value` of native field `field` as this system stores it.
    fn stored_form(&self, field: String, value: Value) -> (String, Value) {
        let value = self
            .inner
            .rewrites
            .iter()
            .filter(|(f, _)| *f == field)
            .fold(value, |v, (_, r)| r.apply(&v));
        (field, value)
    }

    /// What `apply` reports of `op`, made on record `id` at `version`: the
    /// version (where the system has them) and what it stored (where it
    /// says).
    fn reported(&self, id: &str, version: Option<String>, op: &WriteOp) -> Applied {
        let version = version.filter(|_| self.inner.versions);
        let mut applied = write::applied(op, id, version);
        if self.inner.report_stored && op.kind != OpKind::Delete {
            for w in &op.fields {
                let (native, value) =
                    self.stored_form(w.native.as_str().to_owned(), w.value.clone());
                applied.stored.insert(native, value);
            }
        }
        applied
    }
}

impl MemoryConnector {
    /// What [`apply_one`](Self::apply_one) would report for `op`, without
    /// doing it.
    fn lie_one(&self, state: &mut State, object: &str, op: &WriteOp) -> Applied {
        if op.kind == OpKind::Create {
            let id = next_id(state, &self.inner.id_prefix);
            return self.reported(&id, Some(write::next_version(None)), op);
        }
        let id = op.record_id.as_deref().unwrap_or_default();
        let current = state
            .tables
            .get(object)
            .and_then(|t| t.records.get(id))
            .and_then(|s| s.record.version.as_deref());
        let version = write::next_version(current);
        let mut applied = self.reported(id, Some(version), op);
        applied.record_id = op.record_id.clone();
        applied
    }
}

/// How a [`MemoryConnector`] stores a field's values: the forms real
/// systems keep whatever they are sent
/// ([`MemoryConnectorBuilder::rewrite`]). Empty values are stored as sent.
#[derive(Clone)]
#[non_exhaustive]
pub enum Rewrite {
    /// Strings without surrounding whitespace.
    Trim,
    /// Strings in upper case (a country code, say).
    Uppercase,
    /// Strings in lower case (an email, say).
    Lowercase,
    /// Numbers, and strings that parse as numbers, as numbers rounded to
    /// this many decimals (currency to 2).
    Round(u32),
    /// Phone numbers in E.164: `+`, then the digits. A number written with
    /// `+` or an international prefix `00` keeps its country code; a
    /// national number (one leading trunk `0` dropped; for `1`, an
    /// 11-digit number starting with 1 counts as having it) gets
    /// `country_code`. A string without digits is stored as sent.
    E164 {
        /// The country calling code of national numbers (`1` for the US,
        /// `44` for the UK).
        country_code: u16,
    },
    /// A function of your own.
    Custom(Arc<dyn Fn(&Value) -> Value + Send + Sync>),
}

impl Rewrite {
    /// A rewrite by a function of your own.
    pub fn custom(f: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Self {
        Rewrite::Custom(Arc::new(f))
    }

    /// `value` as the system stores it.
    pub fn apply(&self, value: &Value) -> Value {
        if crate::model::is_empty_value(value) {
            return value.clone();
        }
        match (self, value) {
            (Rewrite::Custom(f), v) => f(v),
            (Rewrite::Trim, Value::String(s)) => Value::from(s.trim()),
            (Rewrite::Uppercase, Value::String(s)) => Value::from(s.to_uppercase()),
            (Rewrite::Lowercase, Value::String(s)) => Value::from(s.to_lowercase()),
            (Rewrite::Round(places), v) => round(v, *places),
            (Rewrite::E164 { country_code }, Value::String(s)) => e164(s, *country_code),
            (_, v) => v.clone(),
        }
    }
}

impl fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rewrite::Trim => f.write_str("Trim"),
            Rewrite::Uppercase => f.write_str("Uppercase"),
            Rewrite::Lowercase => f.write_str("Lowercase"),
            Rewrite::Round(p) => f.debug_tuple("Round").field(p).finish(),
            Rewrite::E164 { country_code } => f
                .debug_struct("E164")
                .field("country_code", country_code)
                .finish(),
            Rewrite::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

fn round(value: &Value, places: u32) -> Value {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(n) = n.filter(|n| n.is_finite()) else {
        return value.clone();
    };
    let scale = 10f64.powi(places.min(15) as i32);
    let rounded = (n * scale).round() / scale;
    serde_json::Number::from_f64(rounded).map_or_else(|| value.clone(), Value::Number)
}

fn e164(s: &str, country_code: u16) -> Value {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Value::from(s);
    }
    let cc = country_code.to_string();
    let full = if s.trim_start().starts_with('+') {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if country_code == 1 && digits.len() == 11 && digits.starts_with('1') {
        digits
    } else {
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        format!("{cc}{national}")
    };
    Value::from(format!("+{full}"))
}

fn next_id(state: &mut State, prefix: &str) -> String {
    state.next_id += 1;
    write::generated_id(prefix, state.next_id)
}

fn create(
    state: &mut State,
    object: &str,
    id: &str,
    fields: impl Iterator<Item = (String, Value)>,
    correlation: Option<String>,
    now: DateTime<Utc>,
) -> Option<String> {
    state.seq += 1;
    let seq = state.seq;
    let table = state.tables.entry(object.to_owned()).or_default();
    if let Some(key) = &correlation {
        table.correlations.insert(key.clone(), id.to_owned());
    }
    let record = write::created(
        id.to_owned(),
        fields,
        correlation,
        MemoryConnector::marks(now),
    );
    let version = record.version.clone();
    table.records.insert(id.to_owned(), Stored { record, seq });
    table.log.insert(seq, id.to_owned());
    version
}

fn live<'t>(table: Option<&'t mut Table>, id: &str) -> Result<&'t mut Table, ConnectorError> {
    match table {
        Some(t) if t.records.get(id).is_some_and(|s| !s.record.deleted) => Ok(t),
        _ => Err(write::not_found(id)),
    }
}

/// Moves the record `id` to the end of the change log, at `seq`.
fn relog(table: &mut Table, id: &str, seq: u64) {
    if let Some(stored) = table.records.get_mut(id) {
        table.log.remove(&stored.seq);
        table.log.insert(seq, id.to_owned());
        stored.seq = seq;
    }
}

fn update(
    state: &mut State,
    object: &str,
    id: &str,
    changes: impl Iterator<Item = (String, Value)>,
    now: DateTime<Utc>,
) -> Result<Option<String>, ConnectorError> {
    let table = live(state.tables.get_mut(object), id)?;
    let mut version = None;
    if let Some(stored) = table.records.get_mut(id) {
        write::updated(&mut stored.record, changes, MemoryConnector::marks(now));
        version = stored.record.version.clone();
    }
    state.seq += 1;
    relog(table, id, state.seq);
    Ok(version)
}

fn delete(
    state: &mut State,
    object: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, ConnectorError> {
    let table = live(state.tables.get_mut(object), id)?;
    let mut version = None;
    if let Some(stored) = table.records.get_mut(id) {
        stored.record.deleted = true;
        write::moved_on(&mut stored.record, MemoryConnector::marks(now));
        version = stored.record.version.clone();
        if let Some(key) = &stored.record.correlation {
            table.correlations.remove(key);
        }
    }
    state.seq += 1;
    relog(table, id, state.seq);
    Ok(version)
}

#[async_trait]
impl Connector for MemoryConnector {
    fn system(&self) -> &SystemId {
        &self.inner.system
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities
    }

    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        let mut state = self.state();
        state.stats.fetches += 1;
        self.call_fault(&mut state)?;
        let records = state.tables.get(object).map_or_else(Vec::new, |t| {
            t.records
                .iter()
                .filter(|(_, s)| !s.record.deleted)
                .map(|(_, s)| self.record_of(s))
                .collect()
        });
        Ok(Snapshot::complete(self.inner.system.clone(), records))
    }

    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        if !self.inner.capabilities.incremental_fetch {
            return Err(ConnectorError::not_supported(format!(
                "{} is configured without incremental fetch",
                self.inner.system
            )));
        }
        let mut state = self.state();
        state.stats.change_fetches += 1;
        self.call_fault(&mut state)?;
        let after = match cursor {
            None => 0,
            Some(c) => match c.as_str().parse::<u64>() {
                Ok(n) if n <= state.seq => n,
                _ => {
                    return Err(ConnectorError::invalid_cursor(format!(
                        "cursor {c} is not a position in the change log of {}",
                        self.inner.system
                    )))
                }
            },
        };
        let mut records = Vec::new();
        let mut last = after;
        let mut has_more = false;
        if let Some(table) = state.tables.get(object) {
            for (seq, id) in table.log.range(after + 1..) {
                if records.len() == self.inner.page_size {
                    has_more = true;
                    break;
                }
                if let Some(stored) = table.records.get(id) {
                    records.push(self.record_of(stored));
                }
                last = *seq;
            }
        }
        let next = if has_more { last } else { state.seq };
        Ok(Changes::new(
            self.inner.system.clone(),
            records,
            Cursor::new(next.to_string()),
            has_more,
        ))
    }

    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        if !self.inner.capabilities.fetch_by_ids {
            return Err(ConnectorError::not_supported(format!(
                "{} is configured without fetch by ids",
                self.inner.system
            )));
        }
        let mut state = self.state();
        state.stats.record_fetches += 1;
        self.call_fault(&mut state)?;
        let records = state.tables.get(object).map_or_else(Vec::new, |t| {
            ids.iter()
                .filter_map(|id| t.records.get(id).map(|s| self.record_of(s)))
                .collect()
        });
        Ok(Snapshot::partial(self.inner.system.clone(), records))
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut state = self.state();
        state.stats.applies += 1;
        state.stats.batch_sizes.push(ops.len());
        self.call_fault(&mut state)?;
        let max = self.inner.capabilities.max_batch_size;
        if ops.len() > max {
            state.stats.failed_calls += 1;
            return Err(ConnectorError::permanent(format!(
                "batch of {} ops is larger than the maximum of {max}",
                ops.len()
            )));
        }
        let fail_ops = std::mem::take(&mut state.faults.fail_ops);
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match state.faults.crash_after {
                Some(0) => {
                    state.faults.crash_after = None;
                    state.stats.failed_calls += 1;
                    return Err(ConnectorError::transient(format!(
                        "connection lost after {i} of {} ops (injected crash)",
                        ops.len()
                    )));
                }
                Some(n) => state.faults.crash_after = Some(n - 1),
                None => {}
            }
            let injected = fail_ops.iter().find(|(p, _)| *p == i).map(|(_, e)| e);
            if state.faults.lie > 0 && injected.is_none() {
                state.faults.lie -= 1;
                results.push(Ok(self.lie_one(&mut state, object, op)));
                state.stats.ops_applied += 1;
                continue;
            }
            let result = match injected {
                Some(error) => {
                    let error = error.clone();
                    Err(match &op.record_id {
                        Some(id) => error.with_record(id.clone()),
                        None => error,
                    })
                }
                None => {
                    let now = self.inner.clock.now();
                    self.apply_one(&mut state, object, op, now)
                }
            };
            match &result {
                Ok(_) => state.stats.ops_applied += 1,
                Err(_) => state.stats.ops_failed += 1,
            }
            results.push(result);
        }
        Ok(results)
    }
}

impl fmt::Debug for MemoryConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        let objects: BTreeMap<&str, usize> = state
            .tables
            .iter()
            .map(|(name, t)| {
                (
                    name.as_str(),
                    t.records.values().filter(|s| !s.record.deleted).count(),
                )
            })
            .collect();
        f.debug_struct("MemoryConnector")
            .field("system", &self.inner.system)
            .field("capabilities", &self.inner.capabilities)
            .field("live_records", &objects)
            .field("pending_faults", &state.faults.pending())
            .finish()
    }
}

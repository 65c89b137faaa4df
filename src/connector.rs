//! The [`Connector`] trait a host implements once per system, and the
//! [`ConnectorError`] it reports.
//!
//! A connector reads one system's records ([`fetch`](Connector::fetch), or the
//! [changes since a cursor](Connector::fetch_changes)) and applies
//! [`WriteOp`]s to it, reporting an outcome per op. It is the only part of
//! recsync that talks to a system; the engine plans from what connectors
//! fetched and the runner executes plans through them.
//!
//! The trait is small and object-safe, so hosts hold connectors as
//! `Arc<dyn Connector>`; conveniences built on it (fetching every page of
//! changes, splitting a long list of ops into batches) live in
//! [`ConnectorExt`], implemented for every connector.
//!
//! A connector keeps its credentials in a [`Secret`], whose `Debug` and
//! `Display` print `[redacted]`: a connector can then derive `Debug` and
//! never print them.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use recsync::connector::{Applied, Capabilities, Connector, ConnectorError, Secret};
//! use recsync::plan::WriteOp;
//! use recsync::{Snapshot, SystemId};
//!
//! /// A read-only connector: it fetches and refuses every write.
//! #[derive(Debug)]
//! struct ReadOnly {
//!     system: SystemId,
//!     /// Sent with each request as `Authorization: Bearer {api_key.expose()}`.
//!     api_key: Secret,
//! }
//!
//! #[async_trait]
//! impl Connector for ReadOnly {
//!     fn system(&self) -> &SystemId {
//!         &self.system
//!     }
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::new()
//!     }
//!     async fn fetch(&self, _object: &str) -> Result<Snapshot, ConnectorError> {
//!         Ok(Snapshot::complete(self.system.clone(), Vec::new()))
//!     }
//!     async fn apply(
//!         &self,
//!         _object: &str,
//!         ops: &[WriteOp],
//!     ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
//!         Ok(ops
//!             .iter()
//!             .map(|_| Err(ConnectorError::permission("this system is read-only")))
//!             .collect())
//!     }
//! }
//!
//! let connector = ReadOnly {
//!     system: "archive".into(),
//!     api_key: Secret::new("sk_live_0123"),
//! };
//! assert!(!format!("{connector:?}").contains("sk_live"));
//! let connector: Arc<dyn Connector> = Arc::new(connector);
//! assert_eq!(connector.system(), "archive");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::OpOutcome;
use crate::model::{Coverage, Record, Snapshot, SystemId};
use crate::plan::WriteOp;

/// A position in a system's change log, as its connector gives it: opaque to
/// recsync, which only stores it and hands it back to
/// [`Connector::fetch_changes`].
///
/// Connectors put whatever they need in it (a sequence number, a timestamp,
/// a vendor's page token). It is kept in the state store next to the
/// baseline, so it must not hold credentials.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// A cursor with this text.
    pub fn new(text: impl Into<String>) -> Self {
        Cursor(text.into())
    }

    /// The cursor's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({:?})", self.0)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Cursor {
    fn from(text: &str) -> Self {
        Cursor::new(text)
    }
}

impl From<String> for Cursor {
    fn from(text: String) -> Self {
        Cursor(text)
    }
}

/// What a connector can do, so that callers (the runner, the conformance
/// suite) use only what it supports.
///
/// Built by chained setters from [`Capabilities::new`], which supports
/// nothing optional and sends batches of up to 100 ops.
///
/// ```
/// use recsync::connector::Capabilities;
///
/// let caps = Capabilities::new()
///     .max_batch_size(200)
///     .conditional_writes(true)
///     .external_ids(true);
/// assert_eq!(caps.max_batch_size, 200);
/// assert!(!caps.incremental_fetch);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The most ops one [`apply`](Connector::apply) call accepts; at least 1.
    pub max_batch_size: usize,
    /// The connector honours [`WriteOp::expected_version`]: a write whose
    /// expected version differs from the record's fails with
    /// [`ErrorKind::PreconditionFailed`].
    pub conditional_writes: bool,
    /// The connector stores a create's [`WriteOp::correlation`] with the
    /// record (an external-id field) and reports it as
    /// [`Record::correlation`].
    pub external_ids: bool,
    /// [`fetch_changes`](Connector::fetch_changes) is implemented.
    pub incremental_fetch: bool,
    /// [`fetch_records`](Connector::fetch_records) is implemented.
    pub fetch_by_ids: bool,
}

impl Capabilities {
    /// Batches of up to 100 ops, and no optional capability.
    pub fn new() -> Self {
        Capabilities {
            max_batch_size: 100,
            conditional_writes: false,
            external_ids: false,
            incremental_fetch: false,
            fetch_by_ids: false,
        }
    }

    /// Sets the largest batch [`apply`](Connector::apply) accepts; 0 counts
    /// as 1.
    #[must_use]
    pub fn max_batch_size(mut self, ops: usize) -> Self {
        self.max_batch_size = ops.max(1);
        self
    }

    /// Sets whether conditional writes are honoured.
    #[must_use]
    pub fn conditional_writes(mut self, on: bool) -> Self {
        self.conditional_writes = on;
        self
    }

    /// Sets whether correlation keys are stored and reported back.
    #[must_use]
    pub fn external_ids(mut self, on: bool) -> Self {
        self.external_ids = on;
        self
    }

    /// Sets whether [`fetch_changes`](Connector::fetch_changes) works.
    #[must_use]
    pub fn incremental_fetch(mut self, on: bool) -> Self {
        self.incremental_fetch = on;
        self
    }

    /// Sets whether [`fetch_records`](Connector::fetch_records) works.
    #[must_use]
    pub fn fetch_by_ids(mut self, on: bool) -> Self {
        self.fetch_by_ids = on;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::new()
    }
}

/// One page of changes from [`Connector::fetch_changes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Changes {
    /// The records that changed, each in its latest state; deleted records
    /// as tombstones ([`Record::deleted`]). Its coverage is
    /// [`Partial`](Coverage::Partial), except where
    /// [`ConnectorExt::fetch_all_changes`] merged every page from the
    /// beginning into a complete snapshot.
    pub snapshot: Snapshot,
    /// Where the next fetch starts: after the last change in this page.
    pub cursor: Cursor,
    /// More changes follow this page: fetch again from `cursor` now.
    pub has_more: bool,
}

impl Changes {
    /// A page of changes: `records` (a partial snapshot of `system`), the
    /// cursor after them, and whether more follow.
    pub fn new(
        system: impl Into<SystemId>,
        records: Vec<Record>,
        cursor: Cursor,
        has_more: bool,
    ) -> Self {
        Changes {
            snapshot: Snapshot::partial(system, records),
            cursor,
            has_more,
        }
    }
}

/// A write op the system applied.
///
/// Its `Debug` shows the names of the stored fields, never their values.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Applied {
    /// The record's native id: required for a create (the new record's id),
    /// optional otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The record's version after the write, where the system reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What the system stored, by native field name, where it reports it
    /// (HubSpot's batch update answers with the stored properties,
    /// Salesforce can be asked for them): a system that rewrites what it is
    /// sent (a phone kept as `+15551234567`, a trimmed name, an amount
    /// rounded) is then known to hold that form, and the next read of it is
    /// not taken for a person's edit. Fields not listed are taken to hold
    /// what was written. See [`with_stored`](Applied::with_stored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stored: BTreeMap<String, Value>,
}

impl Applied {
    /// Applied, with nothing reported.
    pub fn new() -> Self {
        Applied::default()
    }

    /// A create applied, making the record `record_id`.
    pub fn created(record_id: impl Into<String>) -> Self {
        Applied {
            record_id: Some(record_id.into()),
            ..Applied::default()
        }
    }

    /// The same, with the record's new version.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The same, with what the system stored in native field `field` (see
    /// [`stored`](Applied::stored)).
    ///
    /// ```
    /// use recsync::connector::Applied;
    /// use serde_json::json;
    ///
    /// // Sent "(555) 123-4567"; the system keeps phones in E.164.
    /// let applied = Applied::new()
    ///     .with_version("7")
    ///     .with_stored("Phone", json!("+15551234567"));
    /// assert_eq!(applied.stored["Phone"], json!("+15551234567"));
    /// ```
    #[must_use]
    pub fn with_stored(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.stored.insert(field.into(), value.into());
        self
    }
}

impl fmt::Debug for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Applied")
            .field("record_id", &self.record_id)
            .field("version", &self.version)
            .field("stored", &self.stored.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl From<Applied> for OpOutcome {
    fn from(applied: Applied) -> Self {
        OpOutcome::Applied {
            record_id: applied.record_id,
            version: applied.version,
            stored: applied.stored,
            confirmed: false,
        }
    }
}

impl From<ConnectorError> for OpOutcome {
    fn from(error: ConnectorError) -> Self {
        OpOutcome::failed(error.to_string())
    }
}

impl From<Result<Applied, ConnectorError>> for OpOutcome {
    fn from(result: Result<Applied, ConnectorError>) -> Self {
        match result {
            Ok(applied) => applied.into(),
            Err(error) => error.into(),
        }
    }
}

impl TryFrom<OpOutcome> for Applied {
    /// The failure's message.
    type Error = String;

    fn try_from(outcome: OpOutcome) -> Result<Self, String> {
        match outcome {
            OpOutcome::Applied {
                record_id,
                version,
                stored,
                ..
            } => Ok(Applied {
                record_id,
                version,
                stored,
            }),
            OpOutcome::Failed { message } => Err(message),
        }
    }
}

/// A credential (an API key, a token, a password): its `Debug` and
/// `Display` print `[redacted]`, and [`expose`](Secret::expose) gives it to
/// the code that sends it.
///
/// It has no `Serialize`, so a struct holding one cannot be written out by
/// accident; it deserializes from a string, so a host can read it from its
/// configuration. Its memory is not wiped when it is dropped.
///
/// ```
/// use recsync::connector::Secret;
///
/// #[derive(Debug)]
/// struct Config {
///     endpoint: String,
///     token: Secret,
/// }
///
/// let config = Config {
///     endpoint: "https://crm.example.com".into(),
///     token: Secret::from(String::from("tk_live_0123")),
/// };
/// assert_eq!(
///     format!("{config:?}"),
///     r#"Config { endpoint: "https://crm.example.com", token: [redacted] }"#
/// );
/// assert_eq!(config.token.to_string(), "[redacted]");
/// assert_eq!(config.token.expose(), "tk_live_0123");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, to send to the system it is for. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::redact::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::redact::REDACTED)
    }
}

/// What kind of failure a [`ConnectorError`] is: what the caller can do
/// about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The system refused the call for now; try again later, after
    /// `retry_after` where it said. Retryable.
    RateLimited {
        /// How long the system asked the caller to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// A failure that may not happen again (a timeout, a dropped
    /// connection, a 5xx). Retryable.
    Transient,
    /// The credentials were refused or have expired: fix the configuration.
    Authentication,
    /// The credentials are valid but may not do this.
    Permission,
    /// The system refused a value.
    Validation {
        /// The native field, where the system said which.
        field: Option<String>,
    },
    /// The write would make a second record where the system allows one
    /// (a unique field, an external id already taken).
    Duplicate,
    /// The record does not exist (or no longer).
    NotFound,
    /// The record changed since it was read: its version is not the op's
    /// [`expected_version`](WriteOp::expected_version). Read it again and
    /// re-plan; never overwrite a change that was not seen.
    PreconditionFailed,
    /// The connector does not do this (see [`Capabilities`]).
    NotSupported,
    /// The cursor is no longer valid (too old, or malformed): fetch from the
    /// beginning again.
    InvalidCursor,
    /// The call did not answer within the runner's
    /// [timeout](crate::runner::SyncRunnerBuilder::timeout) (or before the
    /// run's deadline). Whether a write took effect is unknown: it is tried
    /// again as a conditional write, or a create under the same idempotency
    /// key and correlation key, so that it never takes effect twice.
    /// Retryable.
    TimedOut,
    /// The write was reported applied, but reading the record back showed
    /// it did not take effect: a created record that is not there, a deleted
    /// one still there, an updated one that still holds what it held before
    /// (and whose version did not move). Nothing is advanced for it; the
    /// next plan writes it again.
    Unconfirmed,
    /// The request budget of the system's account is spent (the daily
    /// budget of a `RateLimit`, feature `rate-limit`, or the system's own
    /// daily cap): nothing was sent. Not retried in the run, and the runner
    /// sends that system nothing more in the run; the next run plans it
    /// again, once the budget renews.
    BudgetSpent,
    /// Any other failure that trying again will not fix.
    Permanent,
}

impl ErrorKind {
    fn describe(&self) -> &'static str {
        match self {
            ErrorKind::RateLimited { .. } => "rate limited",
            ErrorKind::Transient => "transient failure",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::Permission => "permission denied",
            ErrorKind::Validation { .. } => "invalid value",
            ErrorKind::Duplicate => "duplicate record",
            ErrorKind::NotFound => "record not found",
            ErrorKind::PreconditionFailed => "precondition failed",
            ErrorKind::NotSupported => "not supported",
            ErrorKind::InvalidCursor => "invalid cursor",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Unconfirmed => "write not confirmed by a read",
            ErrorKind::BudgetSpent => "request budget spent",
            ErrorKind::Permanent => "permanent failure",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A connector's failure: a whole call's, or one op's.
///
/// It has an [`ErrorKind`] the caller acts on ([`is_retryable`], the
/// [`retry_after`] a rate limit asked for), a message, and optionally the
/// record it is about and the underlying error. It displays in lowercase,
/// naming the record and field where known:
///
/// ```
/// use recsync::connector::{ConnectorError, ErrorKind};
///
/// let e = ConnectorError::validation("Email", "not an email address").with_record("003A1");
/// assert_eq!(e.to_string(), "invalid value for record 003A1 field Email: not an email address");
/// assert!(!e.is_retryable());
/// assert_eq!(e.field(), Some("Email"));
/// ```
///
/// Connectors must keep credentials out of messages and sources: errors are
/// shown in reports and logs.
///
/// [`is_retryable`]: ConnectorError::is_retryable
/// [`retry_after`]: ConnectorError::retry_after
#[derive(Clone)]
pub struct ConnectorError {
    kind: ErrorKind,
    message: String,
    record: Option<String>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl ConnectorError {
    /// An error of `kind` with a message (lowercase, no trailing period).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError {
            kind,
            message: message.into(),
            record: None,
            source: None,
        }
    }

    /// Rate limited, retry after the given time where the system said.
    pub fn rate_limited(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::RateLimited { retry_after }, message)
    }

    /// A transient failure.
    pub fn transient(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::Transient, message)
    }

    /// Credentials refused.
    pub fn authentication(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::Authentication, message)
    }

    /// Not allowed.
    pub fn permission(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::Permission, message)
    }

    /// A value of the native `field` refused.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError::new(
            ErrorKind::Validation {
                field: Some(field.into()),
            },
            message,
        )
    }

    /// A duplicate record.
    pub fn duplicate(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::Duplicate, message)
    }

    /// The record does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::NotFound, message)
    }

    /// The record changed since it was read.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::PreconditionFailed, message)
    }

    /// The connector does not do this.
    pub fn not_supported(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::NotSupported, message)
    }

    /// The cursor is no longer valid.
    pub fn invalid_cursor(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::InvalidCursor, message)
    }

    /// A call that did not answer in time.
    pub fn timed_out(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::TimedOut, message)
    }

    /// A write reported applied that a read showed did not take effect.
    pub fn unconfirmed(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::Unconfirmed, message)
    }

    /// A [`BudgetSpent`](ErrorKind::BudgetSpent) error: the account's
    /// request budget is spent, nothing was sent.
    pub fn budget_spent(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::BudgetSpent, message)
    }

    /// A failure that trying again will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorKind::Permanent, message)
    }

    /// The same error, about the record `id` (its native id).
    #[must_use]
    pub fn with_record(mut self, id: impl Into<String>) -> Self {
        self.record = Some(id.into());
        self
    }

    /// The same error, caused by `source`.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The record it is about, where known.
    pub fn record(&self) -> Option<&str> {
        self.record.as_deref()
    }

    /// The native field it is about, where known (validation errors).
    pub fn field(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Validation { field } => field.as_deref(),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: rate limits, transient
    /// failures and timeouts.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited { .. } | ErrorKind::Transient | ErrorKind::TimedOut
        )
    }

    /// How long a rate limit asked the caller to wait, where it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        if let Some(after) = self.retry_after() {
            write!(f, " (retry after {:.3}s)", after.as_secs_f64())?;
        }
        if let Some(record) = &self.record {
            write!(f, " for record {record}")?;
        }
        if let Some(field) = self.field() {
            write!(f, " field {field}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ConnectorError");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(record) = &self.record {
            d.field("record", record);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl StdError for ConnectorError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// One system, as recsync reads and writes it.
///
/// A host implements it once per system (a CRM, a shop, an ERP) and hands
/// connectors to the runner as `Arc<dyn Connector>`. One connector may serve
/// several object types (`"contacts"`, `"deals"`): every method names the
/// object type it is about, as the [`FieldMap`](crate::FieldMap) names it.
///
/// # Contract
///
/// recsync relies on every implementation keeping these rules; the
/// conformance suite, `recsync::testkit::conformance` (feature `testkit`),
/// checks them against your connector.
///
/// **Reading**
///
/// - [`fetch`](Connector::fetch) returns every live record of the object
///   type as a [complete](Coverage::Complete) snapshot: a linked record that
///   is missing counts as deleted. Each record carries its native id, its
///   fields in native names and values, `updated_at` (and per-field
///   timestamps where the system keeps them), its version where the system
///   has one, and its correlation key where it keeps one. Deleted records are
///   absent, not tombstones.
/// - [`fetch_changes`](Connector::fetch_changes) returns, from a cursor, every
///   record that changed after it, **exactly once** per page and in its
///   latest state, deleted records as tombstones; and the cursor after them.
///   A change is never skipped: a record that changes while pages are read
///   appears again on a later page. Without a cursor it starts at the
///   beginning: its pages together hold every live record (tombstones
///   allowed), so that merged they are a complete snapshot, taken
///   consistently with the cursor returned. A cursor the connector can no
///   longer serve gives [`ErrorKind::InvalidCursor`].
/// - [`fetch_records`](Connector::fetch_records) returns the named records
///   that exist (tombstones for those it knows were deleted), as a partial
///   snapshot; ids it does not know are left out.
///
/// **Writing** ([`apply`](Connector::apply))
///
/// - It returns one result per op, in the order given. The outer error is for
///   a call that failed as a whole (rate limited, connection lost): the
///   caller may then not know which ops took effect, and reads again.
/// - A create makes a new record with the op's fields and reports its native
///   id. Where [`external_ids`](Capabilities::external_ids) is supported it
///   stores the op's [`correlation`](WriteOp::correlation) key with the
///   record and reports it back as [`Record::correlation`]; a create whose
///   key a live record already has makes no second record: it fails with
///   [`ErrorKind::Duplicate`], or (an upsert by external id) applies to that
///   record and reports its id.
/// - An update writes the op's fields and only those; every other field
///   keeps its value.
/// - A delete removes the record; after it `fetch` leaves the record out and
///   `fetch_changes` reports a tombstone.
/// - An update or delete of a record that does not exist (or was deleted)
///   fails with [`ErrorKind::NotFound`].
/// - Where [`conditional_writes`](Capabilities::conditional_writes) is
///   supported, an update or delete whose
///   [`expected_version`](WriteOp::expected_version) is `Some` and differs
///   from the record's version fails with [`ErrorKind::PreconditionFailed`]
///   and changes nothing.
/// - Every write changes the record's version (where it has one), and the
///   version an op reports is the one the next read shows.
/// - A batch of up to [`max_batch_size`](Capabilities::max_batch_size) ops is
///   accepted.
///
/// **Errors** have the [`ErrorKind`] the caller can act on: retryable
/// failures (rate limits with their retry-after, transient failures) are
/// told apart from those that need a person.
///
/// **Credentials and values.** A connector's `Debug` never prints
/// credentials: keep them in a [`Secret`] (then `#[derive(Debug)]` is safe)
/// or write `Debug` by hand. Error messages and sources, which end up in
/// logs, never hold credentials, and should not quote field values (name
/// the [field](ConnectorError::validation) a value was refused for): a
/// connector cannot tell which fields the map marks sensitive.
///
/// An implementation may assume that every op it is given is for its own
/// system and the object type named, and that a batch holds at most
/// `max_batch_size` ops. Methods may be called concurrently.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The system this connector reads and writes.
    fn system(&self) -> &SystemId;

    /// What it supports.
    fn capabilities(&self) -> Capabilities;

    /// Every live record of the object type: a complete snapshot.
    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError>;

    /// The records of the object type that changed after `cursor` (from the
    /// beginning without one), deletes as tombstones, and the cursor to
    /// start from next time. See the [contract](Connector#contract).
    ///
    /// The default returns [`ErrorKind::NotSupported`].
    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        let _ = cursor;
        Err(ConnectorError::not_supported(format!(
            "{} does not fetch changes of {object} incrementally",
            self.system()
        )))
    }

    /// The named records of the object type, as a partial snapshot: the
    /// runner reads back what it wrote, to confirm it, and reads again the
    /// records of an entity whose conditional write was rejected. It must
    /// show the connector's own writes once they are reported applied
    /// (read-your-writes); for a system whose reads lag behind its writes,
    /// turn the runner's
    /// [read-back](crate::runner::SyncRunnerBuilder::read_back) off.
    ///
    /// The default returns [`ErrorKind::NotSupported`].
    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        let _ = ids;
        Err(ConnectorError::not_supported(format!(
            "{} does not fetch {object} by id",
            self.system()
        )))
    }

    /// Applies `ops` (all for the object type) and reports one result per
    /// op, in order; the outer error is a failure of the whole call.
    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError>;
}

macro_rules! forward_connector {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<C: Connector + ?Sized> Connector for $ptr<C> {
            fn system(&self) -> &SystemId {
                (**self).system()
            }

            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }

            async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
                (**self).fetch(object).await
            }

            async fn fetch_changes(
                &self,
                object: &str,
                cursor: Option<&Cursor>,
            ) -> Result<Changes, ConnectorError> {
                (**self).fetch_changes(object, cursor).await
            }

            async fn fetch_records(
                &self,
                object: &str,
                ids: &[String],
            ) -> Result<Snapshot, ConnectorError> {
                (**self).fetch_records(object, ids).await
            }

            async fn apply(
                &self,
                object: &str,
                ops: &[WriteOp],
            ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
                (**self).apply(object, ops).await
            }
        }
    )*};
}

forward_connector!(Arc, Box);

/// Conveniences for every [`Connector`].
#[async_trait]
pub trait ConnectorExt: Connector {
    /// Every change after `cursor`, fetching page after page until caught
    /// up, merged into one snapshot (a record on several pages is kept in its
    /// latest state) with the last cursor.
    ///
    /// From the beginning (`cursor` is `None`) the merged snapshot is
    /// [complete](Coverage::Complete), by the contract of
    /// [`fetch_changes`](Connector::fetch_changes); from a cursor it is
    /// partial. A connector that reports more pages without moving its
    /// cursor gets a [`Permanent`](ErrorKind::Permanent) error instead of a
    /// loop.
    async fn fetch_all_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        let mut page = self.fetch_changes(object, cursor).await?;
        let mut records = std::mem::take(&mut page.snapshot.records);
        while page.has_more {
            let next = self.fetch_changes(object, Some(&page.cursor)).await?;
            if next.has_more && next.cursor == page.cursor {
                return Err(ConnectorError::permanent(format!(
                    "{} reported more changes of {object} without moving its cursor {}",
                    self.system(),
                    page.cursor
                )));
            }
            page = next;
            records.append(&mut page.snapshot.records);
        }
        // Keep each record once, in its latest state, where it last appeared.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            last.insert(r.id.as_str(), i);
        }
        let keep: Vec<bool> = records
            .iter()
            .enumerate()
            .map(|(i, r)| last.get(r.id.as_str()) == Some(&i))
            .collect();
        let mut keep = keep.into_iter();
        records.retain(|_| keep.next().unwrap_or(false));
        let coverage = if cursor.is_none() {
            Coverage::Complete
        } else {
            Coverage::Partial
        };
        Ok(Changes {
            snapshot: Snapshot {
                system: self.system().clone(),
                coverage,
                records,
            },
            cursor: page.cursor,
            has_more: false,
        })
    }

    /// Applies `ops` in batches of at most
    /// [`max_batch_size`](Capabilities::max_batch_size), one after another,
    /// and returns one result per op, in order.
    ///
    /// A batch that fails as a whole stops the run: each of its ops, and each
    /// op not sent yet, gets that batch's error (so a rate limit marks the
    /// rest for retry). A batch answered with the wrong number of results
    /// gets a [`Permanent`](ErrorKind::Permanent) error for each of its ops.
    async fn apply_in_batches(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Vec<Result<Applied, ConnectorError>> {
        let size = self.capabilities().max_batch_size.max(1);
        let mut results = Vec::with_capacity(ops.len());
        for batch in ops.chunks(size) {
            match self.apply(object, batch).await {
                Ok(out) if out.len() == batch.len() => results.extend(out),
                Ok(out) => {
                    let error = ConnectorError::permanent(format!(
                        "{} returned {} results for a batch of {} ops",
                        self.system(),
                        out.len(),
                        batch.len()
                    ));
                    results.extend(batch.iter().map(|_| Err(error.clone())));
                }
                Err(error) => {
                    let rest = ops.len() - results.len();
                    results.extend(std::iter::repeat_n(Err(error), rest));
                    break;
                }
            }
        }
        results
    }
}

impl<C: Connector + ?Sized> ConnectorExt for C {}

#[cfg(test)]
mod tests {
    use super::*;

    fn _obj_safe(_: Box<dyn Connector>) {}
    fn _ext_on_dyn(c: &dyn Connector) -> impl std::future::Future + '_ {
        c.fetch_all_changes("x", None)
    }

    #[test]
    fn errors_display_kind_record_field_and_message() {
        let e = ConnectorError::rate_limited(Some(Duration::from_millis(1500)), "slow down");
        assert_eq!(
            e.to_string(),
            "rate limited (retry after 1.500s): slow down"
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));

        let e = ConnectorError::not_found("").with_record("c7");
        assert_eq!(e.to_string(), "record not found for record c7");
        assert!(!e.is_retryable());
        assert_eq!(e.retry_after(), None);

        assert!(ConnectorError::transient("timeout").is_retryable());
        for e in [
            ConnectorError::authentication("a"),
            ConnectorError::permission("a"),
            ConnectorError::duplicate("a"),
            ConnectorError::precondition_failed("a"),
            ConnectorError::not_supported("a"),
            ConnectorError::invalid_cursor("a"),
            ConnectorError::permanent("a"),
        ] {
            assert!(!e.is_retryable(), "{e}");
            let text = e.to_string();
            assert_eq!(text, text.to_lowercase());
            assert!(!text.ends_with('.'));
        }
    }

    #[test]
    fn a_secret_prints_redacted_and_exposes_on_request() {
        let s = Secret::from("tk_live_0123");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s:#?}"), "[redacted]");
        assert_eq!(s.to_string(), "[redacted]");
        assert_eq!(s.expose(), "tk_live_0123");
        assert_eq!(Secret::new(String::from("x")), Secret::from("x"));
        let read: Secret = serde_json::from_str(r#""tk_live_0123""#).unwrap();
        assert_eq!(read, s);
    }

    #[test]
    fn error_keeps_its_source() {
        let io = std::io::Error::other("connection reset");
        let e = ConnectorError::transient("request failed").with_source(io);
        let source = StdError::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("connection reset"));
        assert!(format!("{e:?}").contains("connection reset"));
    }

    #[test]
    fn applied_converts_to_and_from_outcomes() {
        let outcome: OpOutcome = Applied::created("n1").with_version("3").into();
        assert_eq!(outcome, OpOutcome::created("n1").with_version("3"));
        assert_eq!(
            Applied::try_from(outcome),
            Ok(Applied::created("n1").with_version("3"))
        );

        let failed: OpOutcome = Err::<Applied, _>(ConnectorError::precondition_failed(
            "version 2 expected, record is at 3",
        ))
        .into();
        assert_eq!(
            failed,
            OpOutcome::failed("precondition failed: version 2 expected, record is at 3")
        );
        assert_eq!(
            Applied::try_from(failed),
            Err("precondition failed: version 2 expected, record is at 3".to_owned())
        );
    }

    #[test]
    fn capabilities_never_allow_empty_batches() {
        assert_eq!(Capabilities::new().max_batch_size(0).max_batch_size, 1);
        assert_eq!(Capabilities::default(), Capabilities::new());
    }
}

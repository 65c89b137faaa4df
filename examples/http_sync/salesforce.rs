//! A [`Connector`] for Salesforce's REST API, over HTTP with `reqwest`.
//!
//! # How recsync maps onto the API
//!
//! | recsync | Salesforce |
//! | --- | --- |
//! | an object type (`"contacts"`) | an sObject (`Contact`), set with [`SalesforceConnector::sobject`] |
//! | a record's native id | its 18-character `Id` |
//! | a record's version | its `SystemModstamp`, which changes with every write |
//! | a record's `updated_at` | its `LastModifiedDate` (else `SystemModstamp`) |
//! | a create's correlation key | the external-id field `Recsync_Key__c` (unique) |
//! | [`fetch`](Connector::fetch) | `GET /query?q=SELECT ... FROM Contact`, then every `nextRecordsUrl` |
//! | [`fetch_records`](Connector::fetch_records) | `GET /composite/sobjects/Contact?ids=..&fields=..` |
//! | [`apply`](Connector::apply) | sObject Collections (`POST`, `PATCH`, `DELETE /composite/sobjects`, 200 records a request), or in [conditional](SalesforceConnector::conditional) mode the Composite API (`POST /composite`, 25 subrequests a request, each update and delete with `If-Match`) |
//!
//! sObject Collections cannot make a write conditional, so a connector that
//! must never overwrite a change it did not see writes through the
//! Composite API, at an eighth of the batch size.
//!
//! **The ETag.** In conditional mode a write expecting version `v` sends
//! `If-Match: "v"`. The local test server (`recsync-test-servers`) takes a
//! record's ETag to be its `SystemModstamp` in quotes. Real Salesforce's
//! ETag is an opaque value that queries do not return (a `GET` of one
//! record does); against a real org, read the ETags with the records, or
//! send `If-Unmodified-Since` with `LastModifiedDate` (which Salesforce
//! compares to the second only).
//!
//! **Versions after a write.** A Composite answer carries the record's new
//! `ETag`, which is reported as the op's version. sObject Collections
//! answer with ids only; this connector then reports no version rather
//! than spend a request per batch reading `SystemModstamp` back: the
//! runner reads back what it wrote anyway (with `fetch_records`) and takes
//! the version from there.
//!
//! **Pacing.** Give the connector the [`RateLimit`] of the org
//! ([`rate_limit`](SalesforceConnector::rate_limit)), a clone of the one
//! the runner paces this system with: the runner takes a permit for the
//! first request of each call (`fetch`, `fetch_records`, `apply`), and the
//! connector one for every request after the first (a query's later pages,
//! a second chunk of ids, a second Composite request or another kind's
//! Collections request in one `apply`).
//!
//! **Errors.** A whole request that fails maps to the [`ErrorKind`] the
//! runner acts on: 429 is rate limited (with `Retry-After`), 403
//! `REQUEST_LIMIT_EXCEEDED` (the org's daily API limit) rate limited with
//! no time given, other 403s a permission error, 401 an authentication
//! error, 5xx and dropped connections transient, a request over the
//! [timeout](SalesforceConnector::timeout) timed out. A record's failure
//! maps by its Salesforce status code (`REQUIRED_FIELD_MISSING` is a
//! validation error naming the field, `DUPLICATE_VALUE` a duplicate,
//! `ENTITY_IS_DELETED` not found, `PRECONDITION_FAILED` a stale write).
//! Some Salesforce messages quote the value refused (`INVALID_EMAIL_ADDRESS`
//! does), so an error message keeps Salesforce's text only for codes known
//! not to (`QUOTABLE`), and otherwise the code alone; a validation error
//! names the field in its kind. The token is only ever sent, never put in a
//! message, and the connector's `Debug` prints `[redacted]` for it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use recsync::connector::{Applied, Capabilities, ConnectorError, ErrorKind, Secret};
use recsync::plan::{OpKind, WriteOp};
use recsync::runner::RateLimit;
use recsync::{Connector, Record, Snapshot, SystemId};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The REST API version the connector speaks.
pub const API_VERSION: &str = "v60.0";

/// The external-id field a create's correlation key is kept in: a custom
/// text field marked *Unique* and *External ID* on every synced object.
pub const CORRELATION_FIELD: &str = "Recsync_Key__c";

/// The most records one sObject Collections write takes.
pub const COLLECTION_LIMIT: usize = 200;

/// The most subrequests one Composite request takes.
pub const COMPOSITE_LIMIT: usize = 25;

/// How many ids one `fetch_records` request asks for: Salesforce takes
/// 2000, but all of them are in the URL, and a URL has a length limit.
pub const IDS_PER_READ: usize = 500;

/// The fields every query asks for besides the configured ones.
const SYSTEM_FIELDS: [&str; 4] = [
    "Id",
    "SystemModstamp",
    "LastModifiedDate",
    CORRELATION_FIELD,
];

/// Salesforce error codes whose messages never quote a value sent, so
/// they can go into an error message (and a log). Other codes' messages
/// may (`INVALID_EMAIL_ADDRESS`, `STRING_TOO_LONG`, `JSON_PARSER_ERROR`
/// do): only the code is kept.
const QUOTABLE: [&str; 17] = [
    "DUPLICATE_VALUE",
    "ENTITY_IS_DELETED",
    "EXCEEDED_ID_LIMIT",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    "INSUFFICIENT_ACCESS_OR_READONLY",
    "INVALID_CROSS_REFERENCE_KEY",
    "INVALID_FIELD",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
    "INVALID_QUERY_LOCATOR",
    "INVALID_SESSION_ID",
    "INVALID_TYPE",
    "MALFORMED_QUERY",
    "NOT_FOUND",
    "PRECONDITION_FAILED",
    "REQUEST_LIMIT_EXCEEDED",
    "REQUIRED_FIELD_MISSING",
    "UNABLE_TO_LOCK_ROW",
];

/// What an error says in a message: its code, and its text where the code
/// is one whose text quotes no value.
fn described(error: &ApiError) -> String {
    if QUOTABLE.contains(&error.code.as_str()) {
        format!("{}: {}", error.code, error.message)
    } else {
        error.code.clone()
    }
}

/// A Salesforce org, read with SOQL queries and written with sObject
/// Collections or, in [conditional](Self::conditional) mode, the Composite
/// API. See the [module docs](self) for the mapping.
///
/// ```ignore
/// let salesforce = SalesforceConnector::new(
///     "salesforce",
///     "https://example.my.salesforce.com",
///     Secret::new(token),
/// )
/// .sobject("contacts", "Contact")
/// .fields("contacts", ["FirstName", "LastName", "Email", "Phone"])
/// .conditional(true);
/// ```
#[derive(Debug, Clone)]
pub struct SalesforceConnector {
    system: SystemId,
    /// `https://<instance>.my.salesforce.com`, without a trailing `/`.
    instance_url: String,
    /// Sent as `Authorization: Bearer <token>`.
    token: Secret,
    /// recsync's object type to the sObject and the fields read.
    objects: BTreeMap<String, SObject>,
    conditional: bool,
    timeout: Duration,
    /// The org's rate limit, for the requests after a call's first.
    limit: Option<RateLimit>,
    client: reqwest::Client,
}

#[derive(Debug, Clone, Default)]
struct SObject {
    /// The sObject's API name; recsync's object name where not set.
    name: Option<String>,
    /// The fields synced, by their API names.
    fields: Vec<String>,
}

impl SalesforceConnector {
    /// A connector for the org at `instance_url` (`https://<instance>.my.salesforce.com`),
    /// authenticating with an OAuth access token. Writes go through sObject
    /// Collections, requests time out after 30 seconds.
    pub fn new(
        system: impl Into<SystemId>,
        instance_url: impl Into<String>,
        token: Secret,
    ) -> Self {
        let instance_url: String = instance_url.into();
        SalesforceConnector {
            system: system.into(),
            instance_url: instance_url.trim_end_matches('/').to_owned(),
            token,
            objects: BTreeMap::new(),
            conditional: false,
            timeout: Duration::from_secs(30),
            limit: None,
            client: reqwest::Client::new(),
        }
    }

    /// recsync's object type `object` is the sObject `sobject` (`"contacts"`
    /// is `"Contact"`). Without it the names are the same.
    #[must_use]
    pub fn sobject(mut self, object: &str, sobject: &str) -> Self {
        self.objects.entry(object.to_owned()).or_default().name = Some(sobject.to_owned());
        self
    }

    /// The fields of `object` that are synced (API names): what `fetch`
    /// reads and a record carries. `Id`, the timestamps and
    /// `Recsync_Key__c` are read anyway, and are not fields of the record.
    #[must_use]
    pub fn fields<I, S>(mut self, object: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.objects.entry(object.to_owned()).or_default().fields =
            fields.into_iter().map(Into::into).collect();
        self
    }

    /// Whether writes are conditional (default off): through the Composite
    /// API, 25 ops a request, each update and delete sending `If-Match`
    /// with the op's expected version, so a record changed since it was
    /// read is not overwritten (the op fails precondition failed).
    #[must_use]
    pub fn conditional(mut self, on: bool) -> Self {
        self.conditional = on;
        self
    }

    /// How long one HTTP request may take before it is abandoned as timed
    /// out (default 30 seconds).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The org's rate limit: a clone of the [`RateLimit`] the runner is
    /// given for this system
    /// ([`SyncRunnerBuilder::rate_limit`](recsync::runner::SyncRunnerBuilder::rate_limit)).
    /// The runner takes a permit for the first request of each call; the
    /// connector takes one for each request after it. Without one, only
    /// the runner paces.
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Waits for a permit of the rate limit, if there is one, before a
    /// request that is not the first of its call (the runner paced that
    /// one). Fails, and the request must not be sent, when the limit's
    /// budget is spent.
    async fn pace(&self) -> Result<(), ConnectorError> {
        match &self.limit {
            Some(limit) => limit.until_ready().await,
            None => Ok(()),
        }
    }

    /// The sObject name of `object`, and its synced fields.
    fn sobject_of<'a>(&'a self, object: &'a str) -> (&'a str, &'a [String]) {
        match self.objects.get(object) {
            Some(o) => (o.name.as_deref().unwrap_or(object), &o.fields),
            None => (object, &[]),
        }
    }

    /// Every field a read asks for: the system fields, then the synced
    /// ones (each once: Salesforce refuses a field selected twice).
    fn read_fields(&self, object: &str) -> Vec<String> {
        let (_, fields) = self.sobject_of(object);
        let mut all: Vec<String> = SYSTEM_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        for f in fields {
            if !all.contains(f) {
                all.push(f.clone());
            }
        }
        all
    }

    fn url(&self, path: &str) -> String {
        format!("{}/services/data/{API_VERSION}{path}", self.instance_url)
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(self.token.expose())
            .timeout(self.timeout)
    }

    /// Sends a request and reads its JSON answer, mapping a failed request
    /// to the error kind the runner acts on.
    async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ConnectorError> {
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return response.json::<T>().await.map_err(|e| {
                if e.is_timeout() {
                    transport(e)
                } else {
                    ConnectorError::permanent(format!(
                        "salesforce answered {status} with a body this connector cannot read"
                    ))
                    .with_source(e.without_url())
                }
            });
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Salesforce's error body: [{"message": .., "errorCode": ..}].
        let errors: Vec<ApiError> = response.json().await.unwrap_or_default();
        let code = errors.first().map_or("", |e| e.code.as_str());
        let said = match errors.first() {
            Some(e) => format!("salesforce answered {status} {}", described(e)),
            None => format!("salesforce answered {status}"),
        };
        Err(match status {
            StatusCode::UNAUTHORIZED => ConnectorError::authentication(said),
            StatusCode::FORBIDDEN if code == "REQUEST_LIMIT_EXCEEDED" => {
                ConnectorError::rate_limited(None, said)
            }
            StatusCode::FORBIDDEN => ConnectorError::permission(said),
            StatusCode::TOO_MANY_REQUESTS => ConnectorError::rate_limited(retry_after, said),
            s if s.is_server_error() => ConnectorError::transient(said),
            _ => ConnectorError::permanent(said),
        })
    }

    /// A query result's records (one page's) as recsync records.
    fn records(
        &self,
        object: &str,
        rows: Vec<Map<String, Value>>,
    ) -> Result<Vec<Record>, ConnectorError> {
        let (_, fields) = self.sobject_of(object);
        rows.into_iter().map(|row| record(row, fields)).collect()
    }

    /// Creates, updates or deletes through sObject Collections: one request
    /// per kind of op present (per 200 ops), results back in the ops' order.
    async fn apply_collections(
        &self,
        sobject: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut results: Vec<Option<Result<Applied, ConnectorError>>> = vec![None; ops.len()];
        let mut first = true;
        for kind in [OpKind::Create, OpKind::Update, OpKind::Delete] {
            // Ops without the record id they need fail alone, unsent.
            let mut sendable = Vec::new();
            for (i, op) in ops.iter().enumerate().filter(|(_, op)| op.kind == kind) {
                match (&op.kind, &op.record_id) {
                    (OpKind::Create, _) | (_, Some(_)) => sendable.push(i),
                    (_, None) => results[i] = Some(Err(without_id(op))),
                }
            }
            for chunk in sendable.chunks(COLLECTION_LIMIT) {
                if !first {
                    // Pacing: every request after a call's first takes a
                    // permit (see RateLimit). Every chunk sends one request.
                    self.pace().await?;
                }
                first = false;
                let url = self.url("/composite/sobjects");
                let saves: Vec<SaveResult> = match kind {
                    OpKind::Delete => {
                        let ids: Vec<&str> = chunk
                            .iter()
                            .filter_map(|&i| ops[i].record_id.as_deref())
                            .collect();
                        let request = self
                            .request(Method::DELETE, &url)
                            .query(&[("ids", ids.join(",").as_str()), ("allOrNone", "false")]);
                        self.send(request).await?
                    }
                    _ => {
                        let records: Vec<Value> = chunk
                            .iter()
                            .map(|&i| body(sobject, &ops[i], true))
                            .collect();
                        let method = if kind == OpKind::Create {
                            Method::POST
                        } else {
                            Method::PATCH
                        };
                        let request = self
                            .request(method, &url)
                            .json(&json!({"allOrNone": false, "records": records}));
                        self.send(request).await?
                    }
                };
                if saves.len() != chunk.len() {
                    return Err(ConnectorError::permanent(format!(
                        "salesforce answered {} save results for {} records",
                        saves.len(),
                        chunk.len()
                    )));
                }
                for (&i, save) in chunk.iter().zip(saves) {
                    results[i] = Some(saved(&ops[i], save));
                }
            }
        }
        // Only an op of a kind this connector does not know is left.
        Ok(results
            .into_iter()
            .zip(ops)
            .map(|(r, op)| r.unwrap_or_else(|| Err(unknown_kind(op))))
            .collect())
    }

    /// Every op through the Composite API, 25 subrequests a request,
    /// updates and deletes conditional on their expected version.
    async fn apply_composite(
        &self,
        sobject: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut results = Vec::with_capacity(ops.len());
        let mut first = true;
        for chunk in ops.chunks(COMPOSITE_LIMIT) {
            let mut subrequests = Vec::with_capacity(chunk.len());
            let mut unsent: HashMap<usize, ConnectorError> = HashMap::new();
            for (i, op) in chunk.iter().enumerate() {
                let path = format!("/services/data/{API_VERSION}/sobjects/{sobject}");
                let (method, url) = match (&op.kind, &op.record_id) {
                    (OpKind::Create, _) => ("POST", path),
                    (OpKind::Update, Some(id)) => ("PATCH", format!("{path}/{id}")),
                    (OpKind::Delete, Some(id)) => ("DELETE", format!("{path}/{id}")),
                    (OpKind::Update | OpKind::Delete, None) => {
                        unsent.insert(i, without_id(op));
                        continue;
                    }
                    _ => {
                        unsent.insert(i, unknown_kind(op));
                        continue;
                    }
                };
                let mut sub = json!({"method": method, "url": url, "referenceId": format!("r{i}")});
                if op.kind != OpKind::Delete {
                    sub["body"] = body(sobject, op, false);
                }
                if let (false, Some(version)) = (op.kind == OpKind::Create, &op.expected_version) {
                    sub["httpHeaders"] = json!({"If-Match": format!("\"{version}\"")});
                }
                subrequests.push(sub);
            }
            let mut answers: HashMap<String, SubResponse> = HashMap::new();
            if !subrequests.is_empty() {
                if !first {
                    // Pacing: every request after a call's first takes a
                    // permit (see RateLimit). A chunk of ops that all fail
                    // unsent sends nothing, so this counts requests sent.
                    self.pace().await?;
                }
                first = false;
                let request = self
                    .request(Method::POST, &self.url("/composite"))
                    .json(&json!({"allOrNone": false, "compositeRequest": subrequests}));
                let composite: CompositeResponse = self.send(request).await?;
                for answer in composite.composite_response {
                    answers.insert(answer.reference_id.clone(), answer);
                }
            }
            for (i, op) in chunk.iter().enumerate() {
                results.push(
                    match (unsent.remove(&i), answers.remove(&format!("r{i}"))) {
                        (Some(error), _) => Err(error),
                        (None, Some(answer)) => answered(op, answer),
                        (None, None) => Err(ConnectorError::permanent(format!(
                            "salesforce's composite answer has no subrequest r{i}"
                        ))),
                    },
                );
            }
        }
        Ok(results)
    }
}

#[async_trait]
impl Connector for SalesforceConnector {
    fn system(&self) -> &SystemId {
        &self.system
    }

    fn capabilities(&self) -> Capabilities {
        let batch = if self.conditional {
            COMPOSITE_LIMIT
        } else {
            COLLECTION_LIMIT
        };
        Capabilities::new()
            .max_batch_size(batch)
            .conditional_writes(self.conditional)
            .fetch_by_ids(true)
            .external_ids(true)
    }

    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        let (sobject, _) = self.sobject_of(object);
        let soql = format!(
            "SELECT {} FROM {sobject}",
            self.read_fields(object).join(", ")
        );
        let request = self
            .request(Method::GET, &self.url("/query"))
            .query(&[("q", soql.as_str())]);
        let mut page: QueryPage = self.send(request).await?;
        let mut records = Vec::with_capacity(page.total_size);
        loop {
            records.extend(self.records(object, std::mem::take(&mut page.records))?);
            let next = match (page.done, page.next_records_url.take()) {
                (true, _) => break,
                (false, Some(next)) => next,
                (false, None) => {
                    return Err(ConnectorError::permanent(
                        "salesforce said a query was not done without a next page",
                    ))
                }
            };
            // Pacing: every request after a call's first takes a permit (see
            // RateLimit). This is a later page: the first was sent above.
            self.pace().await?;
            let url = format!("{}{next}", self.instance_url);
            page = self.send(self.request(Method::GET, &url)).await?;
        }
        Ok(Snapshot::complete(self.system.clone(), records))
    }

    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        let (sobject, _) = self.sobject_of(object);
        let fields = self.read_fields(object).join(",");
        let url = self.url(&format!("/composite/sobjects/{sobject}"));
        // Each id once: Salesforce answers an id asked twice twice, and a
        // snapshot must hold a record once.
        let mut seen = HashSet::with_capacity(ids.len());
        let ids: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        let mut records = Vec::with_capacity(ids.len());
        for (n, chunk) in ids.chunks(IDS_PER_READ).enumerate() {
            if n > 0 {
                // Pacing: every request after a call's first takes a permit
                // (see RateLimit). The first chunk is the call's first request.
                self.pace().await?;
            }
            let request = self.request(Method::GET, &url).query(&[
                ("ids", chunk.join(",").as_str()),
                ("fields", fields.as_str()),
            ]);
            // One entry per id asked for; null where there is no such record.
            let rows: Vec<Option<Map<String, Value>>> = self.send(request).await?;
            records.extend(self.records(object, rows.into_iter().flatten().collect())?);
        }
        Ok(Snapshot::partial(self.system.clone(), records))
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let (sobject, _) = self.sobject_of(object);
        if self.conditional {
            self.apply_composite(sobject, ops).await
        } else {
            self.apply_collections(sobject, ops).await
        }
    }
}

/// A transport failure: timed out, or transient (a refused or dropped
/// connection). The URL holds no credential, but is left out all the same.
fn transport(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timed_out("salesforce did not answer in time")
            .with_source(error.without_url())
    } else {
        ConnectorError::transient("the request to salesforce failed")
            .with_source(error.without_url())
    }
}

fn unknown_kind(op: &WriteOp) -> ConnectorError {
    ConnectorError::not_supported(format!("this connector does not write {} ops", op.kind))
}

fn without_id(op: &WriteOp) -> ConnectorError {
    ConnectorError::permanent(format!("{} op without a record id", op.kind))
}

/// A record as Salesforce takes it in a write: the op's fields (`null`
/// clears one), the correlation key of a create, and for sObject
/// Collections the type and, for an update, the `Id`.
fn body(sobject: &str, op: &WriteOp, collection: bool) -> Value {
    let mut record = Map::new();
    if collection {
        record.insert("attributes".to_owned(), json!({"type": sobject}));
        if let (OpKind::Update, Some(id)) = (&op.kind, &op.record_id) {
            record.insert("Id".to_owned(), Value::from(id.clone()));
        }
    }
    for write in &op.fields {
        record.insert(write.native.to_string(), write.value.clone());
    }
    if let (OpKind::Create, Some(key)) = (&op.kind, &op.correlation) {
        record.insert(CORRELATION_FIELD.to_owned(), Value::from(key.clone()));
    }
    Value::Object(record)
}

/// A queried record as a recsync record: the synced `fields` (`null` where
/// Salesforce holds nothing), version, timestamp and correlation key.
fn record(mut row: Map<String, Value>, fields: &[String]) -> Result<Record, ConnectorError> {
    let Some(Value::String(id)) = row.remove("Id") else {
        return Err(ConnectorError::permanent(
            "salesforce returned a record without an Id",
        ));
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let modstamp = text(row.get("SystemModstamp"));
    let updated = text(row.get("LastModifiedDate"))
        .or_else(|| modstamp.clone())
        .and_then(|t| parse_time(&t));
    let mut out = Record::new(id);
    for field in fields {
        let value = row.get(field).cloned().unwrap_or(Value::Null);
        out = out.field(field.clone(), value);
    }
    if let Some(modstamp) = modstamp {
        out = out.version(modstamp);
    }
    if let Some(at) = updated {
        out = out.updated_at(at);
    }
    if let Some(key) = text(row.get(CORRELATION_FIELD)) {
        out = out.correlation(key);
    }
    Ok(out)
}

/// `2026-12-06T10:00:00.123+0000`, as Salesforce writes a datetime.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One op's sObject Collections save result.
fn saved(op: &WriteOp, save: SaveResult) -> Result<Applied, ConnectorError> {
    if !save.success {
        return Err(refused(op, &save.errors, None));
    }
    match (op.kind, save.id) {
        (OpKind::Create, Some(id)) => Ok(Applied::created(id)),
        (OpKind::Create, None) => Err(ConnectorError::permanent(
            "salesforce reported a create saved without its id",
        )),
        _ => Ok(Applied::new()),
    }
}

/// One op's Composite subrequest answer.
fn answered(op: &WriteOp, answer: SubResponse) -> Result<Applied, ConnectorError> {
    let status = answer.http_status_code;
    let version = answer
        .http_headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("ETag"))
        .map(|(_, v)| v.trim_matches('"').to_owned());
    if (200..300).contains(&status) {
        let applied = match op.kind {
            OpKind::Create => match answer.body.get("id").and_then(Value::as_str) {
                Some(id) => Applied::created(id),
                None => {
                    return Err(ConnectorError::permanent(
                        "salesforce reported a create saved without its id",
                    ))
                }
            },
            _ => Applied::new(),
        };
        return Ok(match version {
            Some(v) if op.kind != OpKind::Delete => applied.with_version(v),
            _ => applied,
        });
    }
    let errors: Vec<ApiError> = serde_json::from_value(answer.body).unwrap_or_default();
    Err(refused(op, &errors, Some(status)))
}

/// The error for a record Salesforce refused, by its first status code
/// (and the HTTP status of a composite subrequest).
fn refused(op: &WriteOp, errors: &[ApiError], status: Option<u16>) -> ConnectorError {
    let first = errors.first();
    let code = first.map_or("", |e| e.code.as_str());
    let field = first.and_then(|e| e.fields.first()).cloned();
    let message = match (first, status) {
        (Some(e), _) => described(e),
        (None, Some(status)) => format!("salesforce refused the record (HTTP {status})"),
        (None, None) => "salesforce refused the record".to_owned(),
    };
    let error = match code {
        "DUPLICATE_VALUE" | "DUPLICATES_DETECTED" => ConnectorError::duplicate(message),
        "ENTITY_IS_DELETED" | "NOT_FOUND" => ConnectorError::not_found(message),
        // The record itself is missing; with a field named, a lookup in it
        // points at a record that is.
        "INVALID_CROSS_REFERENCE_KEY" => match field {
            Some(field) => ConnectorError::validation(field, message),
            None => ConnectorError::not_found(message),
        },
        "PRECONDITION_FAILED" => ConnectorError::precondition_failed(message),
        "UNABLE_TO_LOCK_ROW" => ConnectorError::transient(message),
        "REQUEST_LIMIT_EXCEEDED" => ConnectorError::rate_limited(None, message),
        "INSUFFICIENT_ACCESS_OR_READONLY" | "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY" => {
            ConnectorError::permission(message)
        }
        "REQUIRED_FIELD_MISSING"
        | "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        | "FIELD_INTEGRITY_EXCEPTION"
        | "INVALID_EMAIL_ADDRESS"
        | "INVALID_FIELD"
        | "INVALID_FIELD_FOR_INSERT_UPDATE"
        | "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        | "INVALID_TYPE_ON_FIELD_IN_RECORD"
        | "NUMBER_OUTSIDE_VALID_RANGE"
        | "STRING_TOO_LONG" => ConnectorError::new(ErrorKind::Validation { field }, message),
        _ => match status {
            Some(404) => ConnectorError::not_found(message),
            Some(412) => ConnectorError::precondition_failed(message),
            Some(s) if s >= 500 => ConnectorError::transient(message),
            _ => ConnectorError::permanent(message),
        },
    };
    match &op.record_id {
        Some(id) => error.with_record(id.clone()),
        None => error,
    }
}

/// A page of a SOQL query's result.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    total_size: usize,
    done: bool,
    next_records_url: Option<String>,
    records: Vec<Map<String, Value>>,
}

/// An error as Salesforce reports it: `errorCode` for a request,
/// `statusCode` in a save result.
#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "errorCode", alias = "statusCode", default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// One record's result in an sObject Collections answer.
#[derive(Deserialize)]
struct SaveResult {
    id: Option<String>,
    success: bool,
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompositeResponse {
    composite_response: Vec<SubResponse>,
}

/// One subrequest's answer in a Composite response.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubResponse {
    #[serde(default)]
    body: Value,
    #[serde(default)]
    http_headers: HashMap<String, String>,
    http_status_code: u16,
    reference_id: String,
}

//! A recsync [`Connector`] for HubSpot's CRM objects API (v3), over HTTP with
//! reqwest.
//!
//! How the connector meets the API:
//!
//! | recsync | HubSpot |
//! | --- | --- |
//! | [`fetch`](Connector::fetch) | `GET /crm/v3/objects/{object}?limit=100&properties=..` (the limit set with [`page_size`](HubSpotConnector::page_size)), page after page by `paging.next.after`, into a complete snapshot |
//! | [`fetch_records`](Connector::fetch_records) | `POST /crm/v3/objects/{object}/batch/read`, 100 ids a request; ids not found (a 207) are left out |
//! | creates | `POST .../batch/create`, each input with an `objectWriteTraceId` so that failures come back per input (a 207) |
//! | updates | `POST .../batch/update` |
//! | deletes | `POST .../batch/read` of the ids, then `POST .../batch/archive` of those found |
//! | record id | `id` |
//! | version, `updated_at` | `updatedAt` (it moves on every write) |
//! | correlation key | the custom unique property `recsync_key` |
//! | fields | the properties named with [`properties`](HubSpotConnector::properties), without HubSpot's own (`hs_object_id`, `createdate`, `lastmodifieddate`) and `recsync_key` |
//!
//! Things HubSpot does that a sync engine must know about:
//!
//! - **Every property value is a string**, and some are rewritten (a phone is
//!   kept as `+15550101234`). A write's result lists what was stored; where
//!   that differs from what was sent, the connector reports it with
//!   [`Applied::with_stored`], so recsync takes the system's form as what it
//!   wrote, not as a person's edit. A field written `null` is sent as `""`,
//!   which clears a HubSpot property.
//! - **Results of a batch come in no promised order**: they are matched to
//!   ops by `objectWriteTraceId` (the op's position in the call), never by
//!   position.
//! - **Archive answers 204 for ids it does not know**, while recsync's
//!   contract wants a delete of a missing record to fail with not found; so a
//!   delete batch costs two requests, a read of the ids and the archive.
//! - **No conditional writes, no change feed.** The connector claims neither;
//!   every sync reads whole object types.
//! - **A unique value taken** (a contact's `email`, a `recsync_key`) is a
//!   `CONFLICT`: [`ErrorKind::Duplicate`](recsync::connector::ErrorKind::Duplicate).
//!
//! **Pacing.** Give the connector the [`RateLimit`] of the account
//! ([`rate_limit`](HubSpotConnector::rate_limit)), a clone of the one the
//! runner paces this system with: the runner takes a permit for the first
//! request of each call (`fetch`, `fetch_records`, `apply`), and the
//! connector one for every request after the first (the list's later
//! pages, a second chunk of ids, a delete's archive after its read).
//!
//! Errors map from HTTP as the runner needs them: 429 is rate limited (with
//! `Retry-After`), 5xx and connection failures are transient, a request
//! without an answer in time has timed out, 401 is authentication, 403
//! permission, 404 and `OBJECT_NOT_FOUND` not found, `CONFLICT` duplicate,
//! `VALIDATION_ERROR` an invalid value (naming the property where HubSpot
//! does). Messages never hold the token, and name a refused property rather
//! than quote HubSpot's message about its value.
//!
//! ```no_run
//! # async fn demo() -> Result<(), recsync::ConnectorError> {
//! use recsync::connector::Secret;
//! use recsync::Connector;
//!
//! let hubspot = HubSpotConnector::new(
//!     "hubspot",
//!     "https://api.hubapi.com",
//!     Secret::new(std::env::var("HUBSPOT_TOKEN").unwrap_or_default()),
//! )
//! .properties("contacts", ["email", "firstname", "lastname", "phone"]);
//! let snapshot = hubspot.fetch("contacts").await?;
//! println!("{} contacts", snapshot.records.len());
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use recsync::connector::{Applied, Capabilities, Connector, ConnectorError, ErrorKind, Secret};
use recsync::plan::WriteOp;
use recsync::runner::RateLimit;
use recsync::{OpKind, Record, Snapshot, SystemId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The most inputs HubSpot takes in one batch request.
pub const BATCH_LIMIT: usize = 100;

/// The custom unique property the connector keeps correlation keys in.
/// Create it in HubSpot (a single-line text property with "unique values"
/// on) for every object type you sync.
pub const CORRELATION_PROPERTY: &str = "recsync_key";

/// Properties HubSpot keeps itself, never fields of a record.
const BOOKKEEPING: [&str; 3] = ["hs_object_id", "createdate", "lastmodifieddate"];

/// The largest list page HubSpot gives, and the connector's default.
const PAGE_LIMIT: usize = 100;

/// How much of a body that is not HubSpot's JSON an error message quotes.
const QUOTED_BODY: usize = 200;

/// A connector for one HubSpot account (see the [module docs](self)).
///
/// Cheap to clone (the HTTP client is shared). Its `Debug` shows the system,
/// the base URL and the properties read, never the token.
#[derive(Clone)]
pub struct HubSpotConnector {
    system: SystemId,
    base_url: String,
    token: Secret,
    /// Per object type, the properties read as fields.
    properties: BTreeMap<String, Vec<String>>,
    page_size: usize,
    timeout: Duration,
    /// The account's rate limit, for the requests after a call's first.
    limit: Option<RateLimit>,
    http: reqwest::Client,
}

impl fmt::Debug for HubSpotConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotConnector")
            .field("system", &self.system)
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .field("properties", &self.properties)
            .field("page_size", &self.page_size)
            .field("timeout", &self.timeout)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl HubSpotConnector {
    /// A connector for `system` talking to the API at `base_url`
    /// (`https://api.hubapi.com`, or a local server) with a private app
    /// token, sent as `Authorization: Bearer`. Requests time out after 30
    /// seconds.
    pub fn new(system: impl Into<SystemId>, base_url: impl Into<String>, token: Secret) -> Self {
        let base_url: String = base_url.into();
        HubSpotConnector {
            system: system.into(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            properties: BTreeMap::new(),
            page_size: PAGE_LIMIT,
            timeout: Duration::from_secs(30),
            limit: None,
            http: reqwest::Client::new(),
        }
    }

    /// The properties of `object` to read as fields. Name them for every
    /// object type you sync: without, HubSpot answers with its default
    /// properties only, and the correlation key is not read.
    #[must_use]
    pub fn properties<I, S>(mut self, object: impl Into<String>, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.properties
            .insert(object.into(), names.into_iter().map(Into::into).collect());
        self
    }

    /// How many records a list page asks for (default and at most 100, at
    /// least 1): fewer costs more requests, as a test of paging may want.
    #[must_use]
    pub fn page_size(mut self, records: usize) -> Self {
        self.page_size = records.clamp(1, PAGE_LIMIT);
        self
    }

    /// The account's rate limit: a clone of the [`RateLimit`] the runner
    /// is given for this system
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

    /// How long one request may take before it fails as timed out (default
    /// 30 seconds).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The HTTP client to send requests with (to share its connection pool
    /// with other code, or set a proxy); by default one of its own.
    #[must_use]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    fn objects_url(&self, object: &str) -> String {
        format!("{}/crm/v3/objects/{object}", self.base_url)
    }

    /// The properties to ask for: the fields and the correlation key; `None`
    /// where none are named (HubSpot's defaults).
    fn requested(&self, object: &str) -> Option<Vec<String>> {
        let names = self.properties.get(object)?;
        let mut asked = names.clone();
        if !asked.iter().any(|n| n == CORRELATION_PROPERTY) {
            asked.push(CORRELATION_PROPERTY.to_owned());
        }
        Some(asked)
    }

    /// `text` with the token taken out, should a server ever echo it.
    fn scrub(&self, text: &str) -> String {
        let token = self.token.expose();
        if token.is_empty() {
            text.to_owned()
        } else {
            text.replace(token, "[redacted]")
        }
    }

    /// Sends a request with the token and the timeout; a 2xx answer's
    /// status and body, or the error the answer (or its absence) maps to.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(u16, Vec<u8>), ConnectorError> {
        let response = request
            .bearer_auth(self.token.expose())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, what))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, what))?;
        if (200..300).contains(&status) {
            Ok((status, body.to_vec()))
        } else {
            let error = status_error(status, retry_after, &body, what);
            Err(ConnectorError::new(
                error.kind().clone(),
                self.scrub(error.message()),
            ))
        }
    }

    fn transport_error(&self, error: reqwest::Error, what: &str) -> ConnectorError {
        let failure = if error.is_timeout() {
            ConnectorError::timed_out(format!(
                "HubSpot did not answer {what} within {:.3}s",
                self.timeout.as_secs_f64()
            ))
        } else {
            ConnectorError::transient(format!("HubSpot request for {what} failed"))
        };
        // reqwest's errors name the URL, never headers: no token in them.
        failure.with_source(error)
    }

    /// Sends a request and reads its answer as `T`.
    async fn send_json<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, ConnectorError> {
        let (_, body) = self.send(request, what).await?;
        parse(&body, what)
    }

    /// A record as recsync reads it.
    fn record(&self, object: &str, mut hs: HsObject) -> Record {
        let correlation = match hs.properties.remove(CORRELATION_PROPERTY) {
            Some(Value::String(key)) if !key.is_empty() => Some(key),
            _ => None,
        };
        let mut record = Record::new(hs.id);
        match self.properties.get(object) {
            Some(names) => {
                for name in names.iter().filter(|n| is_field(n)) {
                    let value = hs.properties.remove(name).unwrap_or(Value::Null);
                    record = record.field(name.clone(), value);
                }
            }
            None => {
                for (name, value) in hs.properties {
                    if is_field(&name) {
                        record = record.field(name, value);
                    }
                }
            }
        }
        if let Some(updated) = hs.updated_at {
            if let Ok(at) = DateTime::parse_from_rfc3339(&updated) {
                record = record.updated_at(at.with_timezone(&Utc));
            }
            record = record.version(updated);
        }
        if let Some(key) = correlation {
            record = record.correlation(key);
        }
        record
    }

    /// `batch/read` of up to 100 ids: the records found.
    async fn read_batch(
        &self,
        object: &str,
        ids: &[String],
        properties: Option<&[String]>,
    ) -> Result<Vec<HsObject>, ConnectorError> {
        let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let mut body = json!({ "inputs": inputs });
        if let (Some(names), Some(obj)) = (properties, body.as_object_mut()) {
            obj.insert("properties".into(), json!(names));
        }
        let url = format!("{}/batch/read", self.objects_url(object));
        let what = format!("a batch read of {object}");
        let answer: BatchAnswer = self
            .send_json(self.http.post(url).json(&body), &what)
            .await?;
        Ok(answer.results)
    }

    /// Creates: one `batch/create` with a trace id per op (its index in
    /// `ops`).
    async fn create(
        &self,
        object: &str,
        ops: &[WriteOp],
        indices: &[usize],
        results: &mut [Option<Result<Applied, ConnectorError>>],
    ) -> Result<(), ConnectorError> {
        let inputs: Vec<Value> = indices
            .iter()
            .map(|&i| {
                let op = &ops[i];
                let mut properties = written_properties(op);
                if let Some(key) = &op.correlation {
                    properties.insert(CORRELATION_PROPERTY.into(), json!(key));
                }
                json!({ "properties": properties, "objectWriteTraceId": i.to_string() })
            })
            .collect();
        let url = format!("{}/batch/create", self.objects_url(object));
        let what = format!("a batch create of {object}");
        let answer: BatchAnswer = self
            .send_json(
                self.http.post(url).json(&json!({ "inputs": inputs })),
                &what,
            )
            .await?;
        for hs in answer.results {
            let Some(i) = trace_index(hs.trace.as_deref(), indices) else {
                continue;
            };
            let applied = applied(Applied::created(hs.id.clone()), &ops[i], &hs);
            results[i] = Some(Ok(applied));
        }
        for error in answer.errors {
            let failure = self.entry_error(&error);
            for i in error.strings("objectWriteTraceId") {
                if let Some(i) = trace_index(Some(i), indices) {
                    results[i] = Some(Err(failure.clone()));
                }
            }
        }
        Ok(())
    }

    /// Updates: one `batch/update`.
    async fn update(
        &self,
        object: &str,
        ops: &[WriteOp],
        indices: &[usize],
        results: &mut [Option<Result<Applied, ConnectorError>>],
    ) -> Result<(), ConnectorError> {
        let mut sent: Vec<usize> = Vec::with_capacity(indices.len());
        let mut inputs = Vec::with_capacity(indices.len());
        for &i in indices {
            match &ops[i].record_id {
                Some(id) => {
                    sent.push(i);
                    inputs.push(json!({
                        "id": id,
                        "properties": written_properties(&ops[i]),
                        "objectWriteTraceId": i.to_string(),
                    }));
                }
                None => results[i] = Some(Err(no_record_id(&ops[i]))),
            }
        }
        if inputs.is_empty() {
            return Ok(());
        }
        let url = format!("{}/batch/update", self.objects_url(object));
        let what = format!("a batch update of {object}");
        let answer: BatchAnswer = self
            .send_json(
                self.http.post(url).json(&json!({ "inputs": inputs })),
                &what,
            )
            .await?;
        let by_id = |id: &str| -> Vec<usize> {
            sent.iter()
                .copied()
                .filter(|&i| ops[i].record_id.as_deref() == Some(id))
                .collect()
        };
        for hs in answer.results {
            let i =
                trace_index(hs.trace.as_deref(), &sent).or_else(|| by_id(&hs.id).first().copied());
            if let Some(i) = i {
                results[i] = Some(Ok(applied(Applied::new(), &ops[i], &hs)));
            }
        }
        for error in answer.errors {
            let failure = self.entry_error(&error);
            let mut hit: Vec<usize> = error
                .strings("objectWriteTraceId")
                .filter_map(|t| trace_index(Some(t), &sent))
                .collect();
            if hit.is_empty() {
                hit = error.strings("ids").flat_map(by_id).collect();
            }
            for i in hit {
                let failure = match &ops[i].record_id {
                    Some(id) => failure.clone().with_record(id.clone()),
                    None => failure.clone(),
                };
                results[i] = Some(Err(failure));
            }
        }
        Ok(())
    }

    /// Deletes: a `batch/read` of the ids (archive does not say which it
    /// knew), then one `batch/archive` of those found.
    async fn delete(
        &self,
        object: &str,
        ops: &[WriteOp],
        indices: &[usize],
        results: &mut [Option<Result<Applied, ConnectorError>>],
    ) -> Result<(), ConnectorError> {
        let mut ids: Vec<String> = Vec::with_capacity(indices.len());
        for &i in indices {
            match &ops[i].record_id {
                Some(id) => ids.push(id.clone()),
                None => results[i] = Some(Err(no_record_id(&ops[i]))),
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let found: Vec<String> = self
            .read_batch(object, &ids, Some(&[]))
            .await?
            .into_iter()
            .map(|hs| hs.id)
            .collect();
        let mut archive = Vec::with_capacity(found.len());
        for &i in indices {
            let Some(id) = &ops[i].record_id else {
                continue;
            };
            if found.contains(id) {
                archive.push(json!({ "id": id }));
                results[i] = Some(Ok(Applied::new()));
            } else {
                results[i] = Some(Err(ConnectorError::not_found(format!(
                    "no {object} record to archive"
                ))
                .with_record(id.clone())));
            }
        }
        if !archive.is_empty() {
            let url = format!("{}/batch/archive", self.objects_url(object));
            let what = format!("a batch archive of {object}");
            // Pacing: every request after a call's first takes a permit (see
            // RateLimit). The read above came first; the archive is the extra.
            self.pace().await?;
            self.send(
                self.http.post(url).json(&json!({ "inputs": archive })),
                &what,
            )
            .await?;
        }
        Ok(())
    }

    /// The error a 207's entry reports for the inputs it names.
    fn entry_error(&self, error: &HsError) -> ConnectorError {
        let property = error.strings("propertyName").next();
        let failure = category_error(&error.category, &error.message, property);
        ConnectorError::new(failure.kind().clone(), self.scrub(failure.message()))
    }
}

/// Whether a HubSpot property is a record's field (not HubSpot's own, not
/// the correlation key).
fn is_field(name: &str) -> bool {
    name != CORRELATION_PROPERTY && !BOOKKEEPING.contains(&name)
}

/// The properties an op writes, as HubSpot takes them: `null` as `""`.
fn written_properties(op: &WriteOp) -> Map<String, Value> {
    op.fields
        .iter()
        .map(|w| {
            let value = if w.value.is_null() {
                json!("")
            } else {
                w.value.clone()
            };
            (w.native.to_string(), value)
        })
        .collect()
}

/// `applied` with the version a write's result reports, and what HubSpot
/// stored where it is not what was sent.
fn applied(mut applied: Applied, op: &WriteOp, hs: &HsObject) -> Applied {
    if let Some(updated) = &hs.updated_at {
        applied = applied.with_version(updated.clone());
    }
    for write in &op.fields {
        if let Some(stored) = hs.properties.get(write.native.as_str()) {
            if !same_value(&write.value, stored) {
                applied = applied.with_stored(write.native.as_str(), stored.clone());
            }
        }
    }
    applied
}

/// Equal, or both empty (`null` and `""` both mean "holds nothing").
fn same_value(sent: &Value, stored: &Value) -> bool {
    let empty = |v: &Value| v.is_null() || v.as_str() == Some("");
    sent == stored || (empty(sent) && empty(stored))
}

/// The op index a trace id stands for, if it is one of `indices`.
fn trace_index(trace: Option<&str>, indices: &[usize]) -> Option<usize> {
    let i = trace?.parse::<usize>().ok()?;
    indices.contains(&i).then_some(i)
}

fn no_record_id(op: &WriteOp) -> ConnectorError {
    ConnectorError::permanent(format!("{} op without a record id", op.kind))
}

/// `Retry-After` in seconds (HubSpot sends whole seconds); an HTTP date is
/// not read.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// A 2xx body as `T`; a body that is not is a permanent failure (the
/// message names where it broke, never what it held).
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|e| {
        ConnectorError::permanent(format!(
            "HubSpot answered {what} with a body not in the expected shape (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// The error an HTTP answer other than 2xx maps to.
fn status_error(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    what: &str,
) -> ConnectorError {
    let parsed: Option<HsError> = serde_json::from_slice(body).ok();
    let (category, message) = match &parsed {
        Some(e) => (e.category.as_str(), e.message.clone()),
        None => {
            let text = String::from_utf8_lossy(body);
            ("", text.chars().take(QUOTED_BODY).collect())
        }
    };
    let said = |m: &str| format!("HubSpot answered {what} with {status}: {m}");
    match status {
        429 => ConnectorError::rate_limited(retry_after, said(&message)),
        500..=599 => ConnectorError::transient(said(&message)),
        401 => ConnectorError::authentication(said(&message)),
        403 => ConnectorError::permission(said(&message)),
        404 => ConnectorError::not_found(said(&message)),
        _ => {
            let property = parsed
                .as_ref()
                .and_then(|e| e.strings("propertyName").next());
            let error = category_error(category, &message, property);
            ConnectorError::new(error.kind().clone(), said(error.message()))
        }
    }
}

/// The error of a HubSpot error category. A refused value names its
/// property and leaves out HubSpot's message, which may quote the value.
fn category_error(category: &str, message: &str, property: Option<&str>) -> ConnectorError {
    match (category, property) {
        ("CONFLICT", _) => ConnectorError::duplicate(format!("CONFLICT: {message}")),
        ("OBJECT_NOT_FOUND", _) => {
            ConnectorError::not_found(format!("OBJECT_NOT_FOUND: {message}"))
        }
        ("VALIDATION_ERROR", Some(property)) => ConnectorError::validation(
            property,
            format!("VALIDATION_ERROR: HubSpot refused the value of {property}"),
        ),
        ("VALIDATION_ERROR", None) => ConnectorError::new(
            ErrorKind::Validation { field: None },
            format!("VALIDATION_ERROR: {message}"),
        ),
        _ if category.is_empty() => ConnectorError::permanent(message.to_owned()),
        _ => ConnectorError::permanent(format!("{category}: {message}")),
    }
}

/// A HubSpot object as the API answers it.
#[derive(Debug, Deserialize)]
struct HsObject {
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(rename = "updatedAt", default)]
    updated_at: Option<String>,
    #[serde(rename = "objectWriteTraceId", default)]
    trace: Option<String>,
}

/// A page of the list endpoint.
#[derive(Debug, Deserialize)]
struct ListPage {
    #[serde(default)]
    results: Vec<HsObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
struct NextPage {
    after: String,
}

/// A batch endpoint's answer (200, 201 or 207).
#[derive(Debug, Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<HsObject>,
    #[serde(default)]
    errors: Vec<HsError>,
}

/// HubSpot's error body, whole or as an entry of a 207's `errors`.
#[derive(Debug, Default, Deserialize)]
struct HsError {
    #[serde(default)]
    category: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    context: Map<String, Value>,
}

impl HsError {
    /// The strings of a context entry (`ids`, `objectWriteTraceId`,
    /// `propertyName`).
    fn strings<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.context
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }
}

#[async_trait]
impl Connector for HubSpotConnector {
    fn system(&self) -> &SystemId {
        &self.system
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .max_batch_size(BATCH_LIMIT)
            .fetch_by_ids(true)
            .external_ids(true)
    }

    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        let url = self.objects_url(object);
        let mut query = vec![("limit", self.page_size.to_string())];
        if let Some(names) = self.requested(object) {
            query.push(("properties", names.join(",")));
        }
        let what = format!("a list of {object}");
        let mut page: ListPage = self
            .send_json(self.http.get(&url).query(&query), &what)
            .await?;
        let mut records = Vec::new();
        let mut previous: Option<String> = None;
        loop {
            let next = page.paging.take().and_then(|p| p.next).map(|n| n.after);
            records.extend(page.results.drain(..).map(|hs| self.record(object, hs)));
            let Some(after) = next else {
                break;
            };
            if previous.as_deref() == Some(after.as_str()) {
                return Err(ConnectorError::permanent(format!(
                    "HubSpot gave the same page cursor twice while listing {object}"
                )));
            }
            previous = Some(after.clone());
            let mut query = query.clone();
            query.push(("after", after));
            // Pacing: every request after a call's first takes a permit (see
            // RateLimit). This is a later page: the first was sent above.
            self.pace().await?;
            page = self
                .send_json(self.http.get(&url).query(&query), &what)
                .await?;
        }
        Ok(Snapshot::complete(self.system.clone(), records))
    }

    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        let asked = self.requested(object);
        let mut records = Vec::with_capacity(ids.len());
        for (n, chunk) in ids.chunks(BATCH_LIMIT).enumerate() {
            if n > 0 {
                // Pacing: every request after a call's first takes a permit
                // (see RateLimit). The first chunk is the call's first request.
                self.pace().await?;
            }
            let found = self.read_batch(object, chunk, asked.as_deref()).await?;
            records.extend(found.into_iter().map(|hs| self.record(object, hs)));
        }
        Ok(Snapshot::partial(self.system.clone(), records))
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut results: Vec<Option<Result<Applied, ConnectorError>>> = vec![None; ops.len()];
        // Chunks of one kind, at most 100 ops each. An update or delete
        // without the record id it needs fails alone, unsent, so that every
        // chunk sends a request.
        let mut chunks: Vec<(OpKind, Vec<usize>)> = Vec::new();
        for kind in [OpKind::Create, OpKind::Update, OpKind::Delete] {
            let mut sendable = Vec::new();
            for (i, op) in ops.iter().enumerate().filter(|(_, op)| op.kind == kind) {
                if kind != OpKind::Create && op.record_id.is_none() {
                    results[i] = Some(Err(no_record_id(op)));
                } else {
                    sendable.push(i);
                }
            }
            chunks.extend(sendable.chunks(BATCH_LIMIT).map(|c| (kind, c.to_vec())));
        }
        // One request per chunk (a delete chunk takes two, see `delete`);
        // the runner sends one kind a call, within the batch limit, so a
        // call from the runner is one chunk.
        for (n, (kind, chunk)) in chunks.iter().enumerate() {
            if n > 0 {
                // Pacing: every request after a call's first takes a permit
                // (see RateLimit). The first chunk's request is the call's
                // first.
                self.pace().await?;
            }
            match kind {
                OpKind::Create => self.create(object, ops, chunk, &mut results).await?,
                OpKind::Update => self.update(object, ops, chunk, &mut results).await?,
                _ => self.delete(object, ops, chunk, &mut results).await?,
            }
        }
        Ok(results
            .into_iter()
            .zip(ops)
            .map(|(result, op)| {
                result.unwrap_or_else(|| {
                    let error = ConnectorError::permanent(
                        "HubSpot's answer to the batch did not mention this op",
                    );
                    Err(match &op.record_id {
                        Some(id) => error.with_record(id.clone()),
                        None => error,
                    })
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Value) -> ConnectorError {
        status_error(status, None, body.to_string().as_bytes(), "a test")
    }

    #[test]
    fn http_statuses_map_to_what_the_caller_can_do() {
        let error =
            |category: &str| json!({"status": "error", "category": category, "message": "m"});
        assert_eq!(
            *answer(403, error("MISSING_SCOPES")).kind(),
            ErrorKind::Permission
        );
        assert_eq!(*answer(404, json!({})).kind(), ErrorKind::NotFound);
        assert_eq!(*answer(409, error("CONFLICT")).kind(), ErrorKind::Duplicate);
        assert_eq!(*answer(502, json!({})).kind(), ErrorKind::Transient);
        assert_eq!(
            *answer(400, error("VALIDATION_ERROR")).kind(),
            ErrorKind::Validation { field: None }
        );
        let named = json!({
            "category": "VALIDATION_ERROR",
            "message": "'not-a-number' is not a valid number",
            "context": {"propertyName": ["numemployees"]},
        });
        let refused = answer(400, named);
        assert_eq!(refused.field(), Some("numemployees"));
        assert!(!refused.to_string().contains("not-a-number"), "{refused}");
        // A body that is not HubSpot's JSON (a proxy's page) is quoted short.
        let page = format!("<html>{}</html>", "x".repeat(5000));
        let error = status_error(418, None, page.as_bytes(), "a test");
        assert_eq!(*error.kind(), ErrorKind::Permanent);
        assert!(error.message().len() < 300);
        let limited = status_error(429, parse_retry_after("3"), b"{}", "a test");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    }
}

//! A server shaped like Salesforce's REST API (version `v60.0`): SOQL query
//! pages, sObject Collections, the Composite API with conditional
//! subrequests, and the rules of a Contact a sync engine runs into.
//!
//! # What it answers
//!
//! Every route is under `/services/data/v60.0` and needs
//! `Authorization: Bearer <token>` (else 401 `INVALID_SESSION_ID`).
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /query?q=SELECT Id, F1 FROM Contact` | `{"totalSize","done","nextRecordsUrl"?,"records":[..]}`, [`query_page_size`](Salesforce::query_page_size) records a page |
//! | `GET /query/<locator>` | the next page of a query |
//! | `GET /composite/sobjects/Contact?ids=a,b&fields=F1,F2` | the records in the order asked, `null` for ids not found (2000 ids at most) |
//! | `POST /composite/sobjects` `{"allOrNone":false,"records":[..]}` | creates, one save result per record (200 records at most) |
//! | `PATCH /composite/sobjects` (each record with `Id`) | updates, one save result per record |
//! | `DELETE /composite/sobjects?ids=a,b&allOrNone=false` | deletes, one save result per id |
//! | `POST /composite` `{"allOrNone":false,"compositeRequest":[..]}` | up to 25 subrequests on `/services/data/v60.0/sobjects/<Object>[/<id>]`: `POST`, `PATCH`, `DELETE` (and `GET`), with `If-Match` |
//!
//! SOQL is only `SELECT <fields> FROM <Object>`: no `WHERE`, `ORDER BY` or
//! `LIMIT` (`MALFORMED_QUERY`). Records come in id order. A query's records
//! are fixed when it runs; its later pages are served from that result.
//! Any object name is an object, and any field name a field (there is no
//! schema): a field a record does not hold reads as `null`.
//!
//! # Rules
//!
//! - Ids are 18 characters: the object's key prefix (`003` Contact, `001`
//!   Account, `a00` anything else) and a zero-padded counter.
//! - `CreatedDate`, `LastModifiedDate` and `SystemModstamp` are written as
//!   Salesforce writes them, `2026-12-06T10:00:00.123+0000`;
//!   `SystemModstamp` and `LastModifiedDate` change with every write. They
//!   and `Id` cannot be written (`INVALID_FIELD_FOR_INSERT_UPDATE`).
//! - A record's **ETag** is its `SystemModstamp` in double quotes. Real
//!   Salesforce's ETag is an opaque hash that queries do not return; here
//!   the version a query reads is the one `If-Match` takes, which is the
//!   simplification a conditional-write test needs. A PATCH or DELETE
//!   subrequest whose `If-Match` is not the record's ETag answers 412
//!   `PRECONDITION_FAILED` and changes nothing. Successful `POST` and
//!   `PATCH` subrequests answer with the record's new `ETag` header.
//! - `LastName` is required on Contact: a create without it, or an update
//!   setting it to `null` or `""`, fails `REQUIRED_FIELD_MISSING` naming it.
//! - `Recsync_Key__c` is a unique external-id field per object: a write
//!   giving a record a key another record has fails `DUPLICATE_VALUE`
//!   naming that record.
//! - Text is stored as sent (an `Email` is not lower-cased), except that an
//!   empty string is stored as `null`, as Salesforce does.
//! - A write to a record that was deleted fails `ENTITY_IS_DELETED`, to one
//!   that never was `INVALID_CROSS_REFERENCE_KEY` (404 in a composite
//!   subrequest).
//! - Every request passes the [`Faults`] layer first (rate limit, 5xx
//!   bursts, latency); each successful write request counts in
//!   [`Stats::writes`](crate::Stats::writes).
//!
//! Left out: `allOrNone: true` (answered 400: this server cannot roll
//! back), references between composite subrequests (`@{r0.id}`),
//! `If-Unmodified-Since`, upserts by external id, query cursor expiry.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::faults::{self, Faults};
use crate::table::{Row, Table};

/// The API version every path carries.
pub const API: &str = "/services/data/v60.0";

/// The unique external-id field of every object.
pub const EXTERNAL_ID: &str = "Recsync_Key__c";

/// The most records one sObject Collections write takes.
pub const MAX_COLLECTION: usize = 200;

/// The most ids one sObject Collections read takes.
pub const MAX_RETRIEVE: usize = 2000;

/// The most subrequests one Composite request takes.
pub const MAX_COMPOSITE: usize = 25;

/// Fields the server sets: never written by a client.
const SYSTEM_FIELDS: [&str; 4] = ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"];

/// A running server shaped like Salesforce's REST API (see the
/// [module](self)), with a person's side ([`insert`](Self::insert),
/// [`edit`](Self::edit)) and faults.
///
/// Clones share the server; it stops when the last clone is dropped (or
/// when its tokio runtime ends).
#[derive(Clone)]
pub struct Salesforce {
    shared: Arc<Shared>,
    _task: Arc<Task>,
}

/// Aborts the server's task when the last handle goes.
struct Task(tokio::task::AbortHandle);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What every request handler sees.
struct Shared {
    token: String,
    url: String,
    faults: Faults,
    table: Table,
    page_size: AtomicUsize,
    state: Mutex<ServerState>,
}

#[derive(Default)]
struct ServerState {
    /// Open query results by locator, with the records still to serve.
    cursors: HashMap<String, Vec<Value>>,
    cursor_serial: u64,
    /// Ids of records deleted, for `ENTITY_IS_DELETED`.
    deleted: HashSet<String>,
    /// `(object, key)` to the id of the record holding the external id.
    keys: HashMap<(String, String), String>,
    /// Edits a person makes just before the next write to a record.
    edit_before_write: HashMap<(String, String), Map<String, Value>>,
    /// The next this-many requests are refused `REQUEST_LIMIT_EXCEEDED`.
    over_limit: u32,
    /// Every object type a record was made in.
    objects: BTreeSet<String>,
}

/// Why one record's write failed: a Salesforce error and the status a
/// composite subrequest answers with.
#[derive(Debug, Clone, PartialEq)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<String>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    fn on(mut self, field: &str) -> Self {
        self.fields.push(field.to_owned());
        self
    }

    /// As an entry of a save result's `errors`.
    fn save_error(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }

    /// As a composite subrequest's body.
    fn body(&self) -> Value {
        json!([{"errorCode": self.code, "message": self.message, "fields": self.fields}])
    }
}

/// A whole request refused, in Salesforce's shape.
fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!([{"message": message.into(), "errorCode": code}]);
    (status, Json(body)).into_response()
}

/// A timestamp as Salesforce writes it: `2026-12-06T10:00:00.123+0000`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// The ETag of a row: its `SystemModstamp` in double quotes.
pub fn etag(row: &Row) -> String {
    format!("\"{}\"", timestamp(row.updated))
}

/// The key prefix of an object's ids.
fn key_prefix(object: &str) -> &'static str {
    match object {
        "Contact" => "003",
        "Account" => "001",
        _ => "a00",
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value as stored: an empty string is `null`.
fn stored(value: Value) -> Value {
    match value {
        Value::String(s) if s.is_empty() => Value::Null,
        v => v,
    }
}

fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    }
}

/// A record as the API shows it, with the fields asked for.
fn project(object: &str, row: &Row, fields: &[String]) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".to_owned(),
        json!({"type": object, "url": format!("{API}/sobjects/{object}/{}", row.id)}),
    );
    for field in fields {
        let value = match field.as_str() {
            "Id" => Value::from(row.id.clone()),
            "CreatedDate" => Value::from(timestamp(row.created)),
            "LastModifiedDate" | "SystemModstamp" => Value::from(timestamp(row.updated)),
            name => row.fields.get(name).cloned().unwrap_or(Value::Null),
        };
        out.insert(field.clone(), value);
    }
    Value::Object(out)
}

/// Every field of a record, as a `GET` of it shows.
fn project_all(object: &str, row: &Row) -> Value {
    let mut fields: Vec<String> = SYSTEM_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    fields.extend(row.fields.keys().cloned());
    project(object, row, &fields)
}

/// `SELECT <fields> FROM <Object>`: the fields and the object, or why not.
fn parse_soql(soql: &str) -> Result<(Vec<String>, String), String> {
    let text = soql.trim();
    let lower = text.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("select ") else {
        return Err("the query must start with SELECT".to_owned());
    };
    let Some(from) = rest.rfind(" from ") else {
        return Err("unexpected end of query, expected FROM".to_owned());
    };
    let start = "select ".len();
    let fields_text = &text[start..start + from];
    let object = text[start + from + " from ".len()..].trim();
    if !is_name(object) {
        return Err(format!(
            "this server reads only SELECT <fields> FROM <Object>, not \"{object}\""
        ));
    }
    let mut fields = Vec::new();
    for field in fields_text.split(',').map(str::trim) {
        if !is_name(field) {
            return Err(format!("unexpected token: \"{field}\""));
        }
        fields.push(field.to_owned());
    }
    Ok((fields, object.to_owned()))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A person's edit waiting for the next write to this record, made now.
    fn edit_waiting(&self, state: &mut ServerState, object: &str, id: &str) {
        let Some(fields) = state
            .edit_before_write
            .remove(&(object.to_owned(), id.to_owned()))
        else {
            return;
        };
        self.store_update(state, object, id, fields);
    }

    /// Writes `fields` to a record, keeping the key index; no rules.
    fn store_update(
        &self,
        state: &mut ServerState,
        object: &str,
        id: &str,
        fields: Map<String, Value>,
    ) -> Option<Row> {
        let fields: Map<String, Value> = fields.into_iter().map(|(k, v)| (k, stored(v))).collect();
        let before = self.table.get(object, id)?;
        // `Table` stamps every write at least a millisecond after the last,
        // so the SystemModstamp, the ETag, moves.
        let row = self.table.update(object, id, &fields)?;
        if fields.contains_key(EXTERNAL_ID) {
            if let Some(Value::String(old)) = before.fields.get(EXTERNAL_ID) {
                state.keys.remove(&(object.to_owned(), old.clone()));
            }
            if let Some(Value::String(new)) = row.fields.get(EXTERNAL_ID) {
                state
                    .keys
                    .insert((object.to_owned(), new.clone()), id.to_owned());
            }
        }
        Some(row)
    }

    /// Creates a record, keeping the key index; no rules.
    fn store_insert(
        &self,
        state: &mut ServerState,
        object: &str,
        fields: Map<String, Value>,
    ) -> Row {
        let fields: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k, stored(v)))
            .filter(|(_, v)| !v.is_null())
            .collect();
        state.objects.insert(object.to_owned());
        let prefix = key_prefix(object);
        let row = self
            .table
            .insert(object, fields, |n| format!("{prefix}{n:015}"));
        if let Some(Value::String(key)) = row.fields.get(EXTERNAL_ID) {
            state
                .keys
                .insert((object.to_owned(), key.clone()), row.id.clone());
        }
        row
    }

    /// The id of another live record of `object` holding external id `key`.
    fn key_holder(
        &self,
        state: &ServerState,
        object: &str,
        key: &Value,
        except: Option<&str>,
    ) -> Option<String> {
        let Value::String(key) = key else {
            return None;
        };
        let holder = state.keys.get(&(object.to_owned(), key.clone()))?;
        let row = self.table.get(object, holder)?;
        (row.fields.get(EXTERNAL_ID) == Some(&Value::String(key.clone()))
            && Some(holder.as_str()) != except)
            .then(|| holder.clone())
    }

    /// The rules every write of `fields` keeps.
    fn check_fields(
        &self,
        state: &ServerState,
        object: &str,
        fields: &Map<String, Value>,
        id: Option<&str>,
    ) -> Result<(), Refusal> {
        for name in fields.keys() {
            if SYSTEM_FIELDS.contains(&name.as_str()) {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    format!("Unable to create/update fields: {name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."),
                )
                .on(name));
            }
            if !is_name(name) {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    format!("No such column '{name}' on sobject of type {object}"),
                )
                .on(name));
            }
        }
        let last_name_missing = match id {
            None => is_blank(fields.get("LastName")),
            Some(_) => fields.contains_key("LastName") && is_blank(fields.get("LastName")),
        };
        if object == "Contact" && last_name_missing {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [LastName]",
            )
            .on("LastName"));
        }
        if let Some(key) = fields.get(EXTERNAL_ID) {
            if let Some(holder) = self.key_holder(state, object, key, id) {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "DUPLICATE_VALUE",
                    format!("duplicate value found: {EXTERNAL_ID} duplicates value on record with id: {holder}"),
                )
                .on(EXTERNAL_ID));
            }
        }
        Ok(())
    }

    /// The live record a write names, after any edit waiting for it, and
    /// its `If-Match` checked.
    fn target(
        &self,
        state: &mut ServerState,
        object: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Row, Refusal> {
        self.edit_waiting(state, object, id);
        let Some(row) = self.table.get(object, id) else {
            return Err(if state.deleted.contains(id) {
                Refusal::new(
                    StatusCode::NOT_FOUND,
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                )
            } else {
                Refusal::new(
                    StatusCode::NOT_FOUND,
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                )
            });
        };
        match if_match {
            Some(tag) if tag.trim() != "*" && tag.trim() != etag(&row) => Err(Refusal::new(
                StatusCode::PRECONDITION_FAILED,
                "PRECONDITION_FAILED",
                "The requested entity has been modified.",
            )),
            _ => Ok(row),
        }
    }

    fn create(
        &self,
        state: &mut ServerState,
        object: &str,
        fields: Map<String, Value>,
    ) -> Result<Row, Refusal> {
        self.check_fields(state, object, &fields, None)?;
        Ok(self.store_insert(state, object, fields))
    }

    fn update(
        &self,
        state: &mut ServerState,
        object: &str,
        id: &str,
        fields: Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<Row, Refusal> {
        self.target(state, object, id, if_match)?;
        self.check_fields(state, object, &fields, Some(id))?;
        self.store_update(state, object, id, fields).ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "ENTITY_IS_DELETED",
                "entity is deleted",
            )
        })
    }

    fn delete(
        &self,
        state: &mut ServerState,
        object: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), Refusal> {
        let row = self.target(state, object, id, if_match)?;
        self.table.remove(object, id);
        state.deleted.insert(id.to_owned());
        if let Some(Value::String(key)) = row.fields.get(EXTERNAL_ID) {
            state.keys.remove(&(object.to_owned(), key.clone()));
        }
        Ok(())
    }

    /// Which object the live record `id` belongs to (a delete by ids does
    /// not say).
    fn object_of(&self, state: &ServerState, id: &str) -> Option<String> {
        state
            .objects
            .iter()
            .find(|o| self.table.get(o, id).is_some())
            .cloned()
    }

    /// One page of a query result, from `offset`, keeping the rest under a
    /// locator.
    fn page(&self, mut records: Vec<Value>, total: usize, serial: Option<String>) -> Value {
        let size = self.page_size.load(Ordering::Relaxed).max(1);
        let served = total - records.len();
        let rest = if records.len() > size {
            records.split_off(size)
        } else {
            Vec::new()
        };
        let mut out = json!({"totalSize": total, "done": rest.is_empty(), "records": records});
        if !rest.is_empty() {
            let mut state = self.lock();
            let base = serial.unwrap_or_else(|| {
                state.cursor_serial += 1;
                format!("01g{:015}", state.cursor_serial)
            });
            let locator = format!("{base}-{}", served + size);
            out["nextRecordsUrl"] = Value::from(format!("{API}/query/{locator}"));
            state.cursors.insert(locator, rest);
        }
        out
    }
}

impl Salesforce {
    /// Starts a server on `127.0.0.1` on a free port, on the caller's tokio
    /// runtime, accepting `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> std::io::Result<Salesforce> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let faults = Faults::default();
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            url,
            faults: faults.clone(),
            table: Table::default(),
            page_size: AtomicUsize::new(2000),
            state: Mutex::new(ServerState::default()),
        });
        let router = Router::new()
            .route(&format!("{API}/query"), get(query))
            .route(&format!("{API}/query/{{locator}}"), get(query_more))
            .route(
                &format!("{API}/composite/sobjects/{{object}}"),
                get(retrieve),
            )
            .route(
                &format!("{API}/composite/sobjects"),
                post(collection_create)
                    .patch(collection_update)
                    .delete(collection_delete),
            )
            .route(&format!("{API}/composite"), post(composite))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(shared.clone(), auth))
            .layer(middleware::from_fn_with_state(faults, faults::layer))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // An accept error ends the server; the tests then see refused
            // connections.
            let _ = axum::serve(listener, router).await;
        });
        Ok(Salesforce {
            shared,
            _task: Arc::new(Task(task.abort_handle())),
        })
    }

    /// The instance URL, `http://127.0.0.1:<port>`, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The faults it injects and the requests it counted.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Its records. Writes made here bypass the server's rules and its
    /// external-id index; use [`insert`](Self::insert) and
    /// [`edit`](Self::edit).
    pub fn table(&self) -> &Table {
        &self.shared.table
    }

    /// How many records a query page holds (default 2000, as Salesforce's
    /// default; any number from 1 here, so tests page through few records).
    pub fn query_page_size(&self, records: usize) {
        self.shared
            .page_size
            .store(records.max(1), Ordering::Relaxed);
    }

    /// A person creates a record of `object` in Salesforce's own screens:
    /// no rule is checked (a test may make a Contact without `LastName`),
    /// values are stored as a write stores them. Returns its id.
    pub fn insert(&self, object: &str, fields: Map<String, Value>) -> String {
        let mut state = self.shared.lock();
        self.shared.store_insert(&mut state, object, fields).id
    }

    /// A person edits a record: `fields` take their values (`null` clears),
    /// and its `SystemModstamp` changes. The record as it is now, `None` if
    /// there is no such record.
    pub fn edit(&self, object: &str, id: &str, fields: Map<String, Value>) -> Option<Row> {
        let mut state = self.shared.lock();
        self.shared.store_update(&mut state, object, id, fields)
    }

    /// A person deletes a record in Salesforce's own screens: a later write
    /// to it fails `ENTITY_IS_DELETED`, and its external id is free again.
    /// Whether it was there.
    pub fn delete(&self, object: &str, id: &str) -> bool {
        let mut state = self.shared.lock();
        self.shared.delete(&mut state, object, id, None).is_ok()
    }

    /// Every record of `object`, in id order.
    pub fn records(&self, object: &str) -> Vec<Row> {
        self.shared.table.all(object)
    }

    /// One record.
    pub fn get(&self, object: &str, id: &str) -> Option<Row> {
        self.shared.table.get(object, id)
    }

    /// A race: the next write (through the API) to record `id` of `object`
    /// is preceded by a person's [`edit`](Self::edit) of `fields`, so a
    /// conditional write expecting the version read before fails
    /// `PRECONDITION_FAILED`, and an unconditional one overwrites the edit.
    pub fn edit_before_next_write(&self, object: &str, id: &str, fields: Map<String, Value>) {
        self.shared
            .lock()
            .edit_before_write
            .insert((object.to_owned(), id.to_owned()), fields);
    }

    /// The next `requests` authenticated requests are refused with 403
    /// `REQUEST_LIMIT_EXCEEDED`, as Salesforce refuses calls over the org's
    /// daily API request limit.
    pub fn request_limit_exceeded_next(&self, requests: u32) {
        self.shared.lock().over_limit = requests;
    }
}

impl fmt::Debug for Salesforce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Salesforce")
            .field("url", &self.shared.url)
            .field(
                "query_page_size",
                &self.shared.page_size.load(Ordering::Relaxed),
            )
            .field("stats", &self.shared.faults.stats())
            .finish_non_exhaustive()
    }
}

/// The state every handler extracts.
type SharedState = State<Arc<Shared>>;

/// `Authorization: Bearer <token>`, then the daily limit.
async fn auth(State(shared): SharedState, request: Request, next: Next) -> Response {
    let expected = format!("Bearer {}", shared.token);
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
    }
    {
        let mut state = shared.lock();
        if state.over_limit > 0 {
            state.over_limit -= 1;
            return refuse(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            );
        }
    }
    next.run(request).await
}

async fn not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

async fn query(
    State(shared): SharedState,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(soql) = params.get("q") else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "no query given (q)",
        );
    };
    let (fields, object) = match parse_soql(soql) {
        Ok(parsed) => parsed,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", why),
    };
    let records: Vec<Value> = shared
        .table
        .all(&object)
        .iter()
        .map(|row| project(&object, row, &fields))
        .collect();
    let total = records.len();
    Json(shared.page(records, total, None)).into_response()
}

async fn query_more(State(shared): SharedState, Path(locator): Path<String>) -> Response {
    let records = shared.lock().cursors.remove(&locator);
    let Some(records) = records else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
    };
    let (base, served) = match locator.split_once('-') {
        Some((base, served)) => (base.to_owned(), served.parse::<usize>().unwrap_or(0)),
        None => (locator.clone(), 0),
    };
    let total = served + records.len();
    Json(shared.page(records, total, Some(base))).into_response()
}

/// Splits a comma-separated list, leaving out empty items.
fn list(text: Option<&String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

fn all_or_none(value: Option<&Value>) -> bool {
    value.and_then(Value::as_bool).unwrap_or(false)
}

fn all_or_none_refused() -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        "NOT_SUPPORTED_BY_TEST_SERVER",
        "allOrNone true is not supported by this test server (it cannot roll back)",
    )
}

async fn retrieve(
    State(shared): SharedState,
    Path(object): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ids = list(params.get("ids"));
    let fields = list(params.get("fields"));
    if ids.is_empty() || fields.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids and fields are required",
        );
    }
    if ids.len() > MAX_RETRIEVE {
        return refuse(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            format!("record limit reached. cannot submit more than {MAX_RETRIEVE} records into this call"),
        );
    }
    if let Some(bad) = fields.iter().find(|f| !is_name(f)) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            format!("No such column '{bad}' on entity '{object}'"),
        );
    }
    let records: Vec<Value> = ids
        .iter()
        .map(|id| {
            shared
                .table
                .get(&object, id)
                .map_or(Value::Null, |row| project(&object, &row, &fields))
        })
        .collect();
    Json(Value::Array(records)).into_response()
}

/// The `records` of a collection write, or the answer refusing it.
fn collection_records(body: &Bytes) -> Result<Vec<Value>, Response> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("the request body is not JSON: {e}"),
        )
    })?;
    if all_or_none(parsed.get("allOrNone")) {
        return Err(all_or_none_refused());
    }
    let Some(Value::Array(records)) = parsed.get("records") else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "records (an array) is required",
        ));
    };
    if records.len() > MAX_COLLECTION {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            format!("record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"),
        ));
    }
    Ok(records.clone())
}

/// A record of a collection write: its type and its fields (without
/// `attributes`).
fn typed(record: Value) -> Result<(String, Map<String, Value>), Refusal> {
    let Value::Object(mut fields) = record else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "a record must be a JSON object",
        ));
    };
    let object = fields
        .remove("attributes")
        .and_then(|a| a.get("type").and_then(Value::as_str).map(str::to_owned))
        .filter(|t| is_name(t));
    match object {
        Some(object) => Ok((object, fields)),
        None => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            "Must send a concrete entity type.",
        )),
    }
}

fn saved(id: &str) -> Value {
    json!({"id": id, "success": true, "errors": []})
}

fn not_saved(id: Option<&str>, refusal: &Refusal) -> Value {
    let mut out = json!({"success": false, "errors": [refusal.save_error()]});
    if let Some(id) = id {
        out["id"] = Value::from(id);
    }
    out
}

async fn collection_create(State(shared): SharedState, body: Bytes) -> Response {
    let records = match collection_records(&body) {
        Ok(records) => records,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let results: Vec<Value> = records
        .into_iter()
        .map(|record| {
            let created = typed(record)
                .and_then(|(object, fields)| shared.create(&mut state, &object, fields));
            match created {
                Ok(row) => saved(&row.id),
                Err(refusal) => not_saved(None, &refusal),
            }
        })
        .collect();
    drop(state);
    shared.faults.count_write();
    Json(Value::Array(results)).into_response()
}

async fn collection_update(State(shared): SharedState, body: Bytes) -> Response {
    let records = match collection_records(&body) {
        Ok(records) => records,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let results: Vec<Value> = records
        .into_iter()
        .map(|record| {
            let (object, mut fields) = match typed(record) {
                Ok(typed) => typed,
                Err(refusal) => return not_saved(None, &refusal),
            };
            let Some(Value::String(id)) = fields.remove("Id") else {
                let refusal = Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                );
                return not_saved(None, &refusal);
            };
            match shared.update(&mut state, &object, &id, fields, None) {
                Ok(_) => saved(&id),
                Err(refusal) => not_saved(Some(&id), &refusal),
            }
        })
        .collect();
    drop(state);
    shared.faults.count_write();
    Json(Value::Array(results)).into_response()
}

async fn collection_delete(
    State(shared): SharedState,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ids = list(params.get("ids"));
    if params.get("allOrNone").is_some_and(|v| v == "true") {
        return all_or_none_refused();
    }
    if ids.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids is required",
        );
    }
    if ids.len() > MAX_COLLECTION {
        return refuse(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            format!("record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"),
        );
    }
    let mut state = shared.lock();
    let results: Vec<Value> = ids
        .iter()
        .map(|id| {
            let result = match shared.object_of(&state, id) {
                Some(object) => shared.delete(&mut state, &object, id, None),
                None => shared.target(&mut state, "", id, None).map(|_| ()),
            };
            match result {
                Ok(()) => saved(id),
                Err(refusal) => not_saved(Some(id), &refusal),
            }
        })
        .collect();
    drop(state);
    shared.faults.count_write();
    Json(Value::Array(results)).into_response()
}

/// One composite subrequest's answer.
fn sub_answer(
    reference: &str,
    status: StatusCode,
    body: Value,
    headers: Map<String, Value>,
) -> Value {
    json!({
        "body": body,
        "httpHeaders": headers,
        "httpStatusCode": status.as_u16(),
        "referenceId": reference,
    })
}

fn etag_header(row: &Row) -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert("ETag".to_owned(), Value::from(etag(row)));
    headers
}

/// Runs one composite subrequest.
fn subrequest(
    shared: &Shared,
    state: &mut ServerState,
    sub: &Value,
) -> (StatusCode, Value, Map<String, Value>) {
    let method = sub.get("method").and_then(Value::as_str).unwrap_or("");
    let url = sub.get("url").and_then(Value::as_str).unwrap_or("");
    let if_match = sub
        .get("httpHeaders")
        .and_then(Value::as_object)
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("If-Match"))
                .and_then(|(_, v)| v.as_str())
        });
    let path = url.strip_prefix(&format!("{API}/sobjects/")).unwrap_or("");
    let parts: Vec<&str> = path.split('/').collect();
    let refused = |r: Refusal| (r.status, r.body(), Map::new());
    match (method, parts.as_slice()) {
        ("POST", [object]) if is_name(object) => {
            let fields = match sub.get("body") {
                Some(Value::Object(fields)) => fields.clone(),
                _ => Map::new(),
            };
            match shared.create(state, object, fields) {
                Ok(row) => {
                    let mut headers = etag_header(&row);
                    headers.insert(
                        "Location".to_owned(),
                        Value::from(format!("{API}/sobjects/{object}/{}", row.id)),
                    );
                    (
                        StatusCode::CREATED,
                        saved(&row.id),
                        headers,
                    )
                }
                Err(r) => refused(r),
            }
        }
        ("PATCH", [object, id]) if is_name(object) => {
            let fields = match sub.get("body") {
                Some(Value::Object(fields)) => fields.clone(),
                _ => Map::new(),
            };
            match shared.update(state, object, id, fields, if_match) {
                Ok(row) => (StatusCode::NO_CONTENT, Value::Null, etag_header(&row)),
                Err(r) => refused(r),
            }
        }
        ("DELETE", [object, id]) if is_name(object) => {
            match shared.delete(state, object, id, if_match) {
                Ok(()) => (StatusCode::NO_CONTENT, Value::Null, Map::new()),
                Err(r) => refused(r),
            }
        }
        ("GET", [object, id]) if is_name(object) => match shared.table.get(object, id) {
            Some(row) => (StatusCode::OK, project_all(object, &row), etag_header(&row)),
            None => refused(Refusal::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            )),
        },
        _ => refused(Refusal::new(
            StatusCode::BAD_REQUEST,
            "INVALID_URL",
            format!("this server answers POST, PATCH, DELETE and GET on {API}/sobjects/<Object>[/<id>], not {method} {url}"),
        )),
    }
}

async fn composite(State(shared): SharedState, body: Bytes) -> Response {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                format!("the request body is not JSON: {e}"),
            )
        }
    };
    if all_or_none(parsed.get("allOrNone")) {
        return all_or_none_refused();
    }
    let Some(Value::Array(subs)) = parsed.get("compositeRequest") else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "compositeRequest (an array) is required",
        );
    };
    if subs.len() > MAX_COMPOSITE {
        return refuse(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            format!("Composite requests are limited to {MAX_COMPOSITE} subrequests"),
        );
    }
    let mut state = shared.lock();
    let mut wrote = false;
    let answers: Vec<Value> = subs
        .iter()
        .map(|sub| {
            let reference = sub.get("referenceId").and_then(Value::as_str).unwrap_or("");
            wrote |= sub.get("method").and_then(Value::as_str) != Some("GET");
            let (status, body, headers) = subrequest(&shared, &mut state, sub);
            sub_answer(reference, status, body, headers)
        })
        .collect();
    drop(state);
    if wrote {
        shared.faults.count_write();
    }
    Json(json!({"compositeResponse": answers})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    async fn body(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn ids_and_timestamps_are_written_as_salesforce_writes_them() {
        let sf = Salesforce::start("t").await.unwrap();
        let contact = sf.insert("Contact", fields(&[("LastName", json!("A"))]));
        let account = sf.insert("Account", fields(&[("Name", json!("B"))]));
        let custom = sf.insert("Invoice__c", Map::new());
        for (id, prefix) in [(&contact, "003"), (&account, "001"), (&custom, "a00")] {
            assert_eq!(id.len(), 18, "{id}");
            assert!(id.starts_with(prefix), "{id}");
        }
        let row = sf.get("Contact", &contact).unwrap();
        let stamp = timestamp(row.updated);
        assert_eq!(stamp.len(), "2026-12-06T10:00:00.123+0000".len(), "{stamp}");
        assert!(
            stamp.ends_with("+0000") && stamp.as_bytes()[19] == b'.',
            "{stamp}"
        );
        assert_eq!(etag(&row), format!("\"{stamp}\""));
    }

    #[tokio::test]
    async fn every_write_moves_the_system_modstamp_even_within_a_millisecond() {
        let sf = Salesforce::start("t").await.unwrap();
        let id = sf.insert("Contact", fields(&[("LastName", json!("A"))]));
        let mut last = sf.get("Contact", &id).unwrap().updated;
        for n in 0..100 {
            let row = sf
                .edit("Contact", &id, fields(&[("Phone", json!(n))]))
                .unwrap();
            assert!(
                row.updated > last,
                "edit {n}: {} after {}",
                row.updated,
                last
            );
            last = row.updated;
        }
    }

    #[test]
    fn soql_is_select_fields_from_an_object_and_nothing_more() {
        let parsed = parse_soql("SELECT Id, LastName ,Recsync_Key__c FROM Contact").unwrap();
        assert_eq!(parsed.0, ["Id", "LastName", "Recsync_Key__c"]);
        assert_eq!(parsed.1, "Contact");
        assert!(parse_soql("select Id from Invoice__c").is_ok());
        for bad in [
            "SELECT Id FROM Contact WHERE LastName = 'A'",
            "SELECT Id FROM Contact LIMIT 5",
            "SELECT FROM Contact",
            "SELECT Id, FROM Contact",
            "SELECT COUNT() FROM Contact",
            "DELETE FROM Contact",
            "SELECT Id FROM",
        ] {
            assert!(parse_soql(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn contact_rules_last_name_unique_key_and_empty_strings() {
        let sf = Salesforce::start("t").await.unwrap();
        let s = &sf.shared;
        let mut state = s.lock();
        let refused = s
            .create(&mut state, "Contact", fields(&[("Email", json!("a@x.io"))]))
            .unwrap_err();
        assert_eq!(
            (refused.code, refused.fields.clone()),
            ("REQUIRED_FIELD_MISSING", vec!["LastName".to_owned()])
        );
        assert!(s
            .create(&mut state, "Contact", fields(&[("LastName", json!("  "))]))
            .is_err());
        // Other objects have no such rule.
        assert!(s.create(&mut state, "Account", Map::new()).is_ok());

        let a = s
            .create(
                &mut state,
                "Contact",
                fields(&[
                    ("LastName", json!("A")),
                    ("Email", json!("Ada@Example.COM")),
                    ("Phone", json!("")),
                ]),
            )
            .unwrap();
        assert_eq!(
            a.fields["Email"],
            json!("Ada@Example.COM"),
            "stored as sent"
        );
        assert!(!a.fields.contains_key("Phone"), "an empty string is null");
        let with_key = |k: &str| fields(&[("LastName", json!("K")), (EXTERNAL_ID, json!(k))]);
        let k1 = s.create(&mut state, "Contact", with_key("k1")).unwrap();
        let dup = s.create(&mut state, "Contact", with_key("k1")).unwrap_err();
        assert_eq!(dup.code, "DUPLICATE_VALUE");
        assert!(dup.message.contains(&k1.id), "{}", dup.message);
        // The same key on another object is no duplicate.
        assert!(s.create(&mut state, "Account", with_key("k1")).is_ok());
        // An update may not take a key either, nor clear LastName.
        let dup = s
            .update(
                &mut state,
                "Contact",
                &a.id,
                fields(&[(EXTERNAL_ID, json!("k1"))]),
                None,
            )
            .unwrap_err();
        assert_eq!(dup.code, "DUPLICATE_VALUE");
        let missing = s
            .update(
                &mut state,
                "Contact",
                &a.id,
                fields(&[("LastName", Value::Null)]),
                None,
            )
            .unwrap_err();
        assert_eq!(missing.code, "REQUIRED_FIELD_MISSING");
        // Rewriting a record's own key is fine; a freed key is free.
        assert!(s
            .update(&mut state, "Contact", &k1.id, with_key("k1"), None)
            .is_ok());
        s.delete(&mut state, "Contact", &k1.id, None).unwrap();
        assert!(s.create(&mut state, "Contact", with_key("k1")).is_ok());
        let system = s
            .update(
                &mut state,
                "Contact",
                &a.id,
                fields(&[("SystemModstamp", json!("x"))]),
                None,
            )
            .unwrap_err();
        assert_eq!(system.code, "INVALID_FIELD_FOR_INSERT_UPDATE");
    }

    #[tokio::test]
    async fn if_match_deleted_records_and_an_edit_before_the_next_write() {
        let sf = Salesforce::start("t").await.unwrap();
        let id = sf.insert("Contact", fields(&[("LastName", json!("A"))]));
        let s = &sf.shared;
        let tag = etag(&sf.get("Contact", &id).unwrap());
        sf.edit_before_next_write("Contact", &id, fields(&[("Email", json!("person@x.io"))]));
        let mut state = s.lock();
        let stale = s
            .update(
                &mut state,
                "Contact",
                &id,
                fields(&[("Email", json!("sync@x.io"))]),
                Some(&tag),
            )
            .unwrap_err();
        assert_eq!(
            (stale.status, stale.code),
            (StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED")
        );
        let row = sf.get("Contact", &id).unwrap();
        assert_eq!(
            row.fields["Email"],
            json!("person@x.io"),
            "the edit is made, the write is not"
        );
        // With the current ETag the write goes through, and moves the ETag.
        let fresh = etag(&row);
        let written = s
            .update(
                &mut state,
                "Contact",
                &id,
                fields(&[("Email", json!("sync@x.io"))]),
                Some(&fresh),
            )
            .unwrap();
        assert_ne!(etag(&written), fresh);
        assert!(s.delete(&mut state, "Contact", &id, Some(&fresh)).is_err());
        s.delete(&mut state, "Contact", &id, Some(&etag(&written)))
            .unwrap();
        let gone = s.delete(&mut state, "Contact", &id, None).unwrap_err();
        assert_eq!(
            (gone.status, gone.code),
            (StatusCode::NOT_FOUND, "ENTITY_IS_DELETED")
        );
        let never = s
            .update(
                &mut state,
                "Contact",
                "003000000000000999",
                Map::new(),
                None,
            )
            .unwrap_err();
        assert_eq!(never.code, "INVALID_CROSS_REFERENCE_KEY");
    }

    #[tokio::test]
    async fn a_query_pages_through_locators_and_each_is_served_once() {
        let sf = Salesforce::start("t").await.unwrap();
        sf.query_page_size(2);
        for n in 0..5 {
            sf.insert("Contact", fields(&[("LastName", json!(format!("L{n}")))]));
        }
        let q = |soql: &str| Query(HashMap::from([("q".to_owned(), soql.to_owned())]));
        let (status, page) = body(
            query(
                State(sf.shared.clone()),
                q("SELECT Id, LastName, Email FROM Contact"),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (page["totalSize"].clone(), page["done"].clone()),
            (json!(5), json!(false))
        );
        let first = &page["records"][0];
        assert_eq!(first["attributes"]["type"], json!("Contact"));
        assert_eq!(first["LastName"], json!("L0"));
        assert_eq!(first["Email"], Value::Null);
        let mut ids: Vec<Value> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].clone())
            .collect();
        let mut next = page["nextRecordsUrl"].as_str().map(str::to_owned);
        while let Some(url) = next {
            let locator = url.rsplit('/').next().unwrap().to_owned();
            let (_, page) =
                body(query_more(State(sf.shared.clone()), Path(locator.clone())).await).await;
            assert_eq!(page["totalSize"], json!(5));
            ids.extend(
                page["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["Id"].clone()),
            );
            next = page["nextRecordsUrl"].as_str().map(str::to_owned);
            // A locator is served once.
            let (status, again) =
                body(query_more(State(sf.shared.clone()), Path(locator)).await).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(again[0]["errorCode"], json!("INVALID_QUERY_LOCATOR"));
        }
        let expected: Vec<Value> = sf.records("Contact").iter().map(|r| json!(r.id)).collect();
        assert_eq!(ids, expected);
        let (status, refused) = body(
            query(
                State(sf.shared.clone()),
                q("SELECT Id FROM Contact ORDER BY Id"),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(refused[0]["errorCode"], json!("MALFORMED_QUERY"));
    }

    #[tokio::test]
    async fn batches_over_the_limits_are_refused_whole() {
        let sf = Salesforce::start("t").await.unwrap();
        let record = json!({"attributes": {"type": "Contact"}, "LastName": "A"});
        let records = |n: usize| {
            Bytes::from(json!({"allOrNone": false, "records": vec![record.clone(); n]}).to_string())
        };
        let (status, refused) =
            body(collection_create(State(sf.shared.clone()), records(201)).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(refused[0]["errorCode"], json!("EXCEEDED_ID_LIMIT"));
        assert!(sf.records("Contact").is_empty());
        let (status, saved) =
            body(collection_create(State(sf.shared.clone()), records(200)).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(saved.as_array().unwrap().len(), 200);
        assert_eq!(sf.records("Contact").len(), 200);
        assert_eq!(sf.faults().stats().writes, 1);

        let sub = json!({"method": "POST", "url": format!("{API}/sobjects/Contact"), "referenceId": "r", "body": {"LastName": "B"}});
        let composite_of = |n: usize| {
            Bytes::from(
                json!({"allOrNone": false, "compositeRequest": vec![sub.clone(); n]}).to_string(),
            )
        };
        let (status, _) = body(composite(State(sf.shared.clone()), composite_of(26)).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, answer) =
            body(composite(State(sf.shared.clone()), composite_of(25)).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["compositeResponse"].as_array().unwrap().len(), 25);
        assert_eq!(answer["compositeResponse"][0]["httpStatusCode"], json!(201));
        assert_eq!(sf.records("Contact").len(), 225);
        let all_or_none = Bytes::from(json!({"allOrNone": true, "records": [record]}).to_string());
        let (status, _) =
            body(collection_create(State(sf.shared.clone()), all_or_none).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    /// One raw HTTP/1.1 request to the running server: its status line and
    /// body.
    async fn raw(sf: &Salesforce, auth: Option<&str>) -> String {
        use std::io::{Read, Write};
        let host = sf.url().trim_start_matches("http://").to_owned();
        let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        // A blocking socket on a blocking thread: the server answers on the
        // test's runtime meanwhile.
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(&host).unwrap();
            let request = format!(
                "GET {API}/query?q=SELECT+Id+FROM+Contact HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn every_request_needs_the_token_and_passes_the_fault_layer() {
        let sf = Salesforce::start("secret-token").await.unwrap();
        let refused = raw(&sf, None).await;
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
        assert!(refused.contains("INVALID_SESSION_ID"), "{refused}");
        assert!(raw(&sf, Some("other")).await.starts_with("HTTP/1.1 401"));
        let answered = raw(&sf, Some("secret-token")).await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(answered.contains("\"totalSize\":0"), "{answered}");
        sf.request_limit_exceeded_next(1);
        let limited = raw(&sf, Some("secret-token")).await;
        assert!(
            limited.starts_with("HTTP/1.1 403") && limited.contains("REQUEST_LIMIT_EXCEEDED"),
            "{limited}"
        );
        assert_eq!(sf.faults().stats().requests, 4);
        assert!(!format!("{sf:?}").contains("secret-token"));
    }
}

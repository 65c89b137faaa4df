//! A server shaped like HubSpot's CRM objects API (v3): [`HubSpot`].
//!
//! Routes, for any object type name (`contacts`, `companies`, a custom
//! object), each behind a bearer token and the [`Faults`] layer:
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /crm/v3/objects/{object}?limit=&after=&properties=a,b` | a page of records in id order, `paging.next.after` while more follow |
//! | `POST /crm/v3/objects/{object}/batch/read` | the records asked for; 207 naming the ids not found |
//! | `POST /crm/v3/objects/{object}/batch/create` | 201; 207 with the inputs that failed, by `objectWriteTraceId` |
//! | `POST /crm/v3/objects/{object}/batch/update` | 200; 207 with the ids not found and the inputs that failed |
//! | `POST /crm/v3/objects/{object}/batch/archive` | 204, whether the ids existed or not |
//!
//! A record reads as `{"id", "properties", "createdAt", "updatedAt",
//! "archived": false}` with RFC 3339 timestamps in milliseconds. The rules a
//! sync engine meets, as HubSpot has them:
//!
//! - **Every property value is a string.** Numbers and booleans are stored
//!   as their text (`17` reads back as `"17"`); `null` or `""` clears a
//!   property. A property asked for that a record does not hold reads as
//!   `null`. An array or object value is refused (`VALIDATION_ERROR`, with
//!   `context.propertyName`), and so is a write to `hs_object_id`,
//!   `createdate` or `lastmodifieddate`, which the server keeps.
//! - **`phone` is rewritten on write**: its digits, with `+` in front of a
//!   number written with `+`, `+1` in front of 10 digits, `+` in front of 11
//!   digits starting with 1 (`"(555) 010-1234"` is stored as
//!   `"+15550101234"`); a value without digits is stored as sent.
//! - **Unique properties**: `email` of `contacts` (compared trimmed and
//!   case-insensitively) and `recsync_key` of every object type, the
//!   correlation key a sync engine stores. A create or update that would
//!   give a second record the value fails with `CONFLICT` and a message
//!   naming the record that holds it (`Contact already exists. Existing ID:
//!   1000001`).
//! - **Batches hold at most 100 inputs**; more is a 400 `VALIDATION_ERROR`
//!   for the whole request, as are malformed bodies and an id given twice in
//!   one update.
//! - **Batch create is all-or-nothing unless every input carries an
//!   `objectWriteTraceId`**: then the inputs that fail are reported in a 207
//!   (`errors[].context.objectWriteTraceId`) and the others are created;
//!   without trace ids the first failure answers the whole request (409 for
//!   a conflict, 400 for a refused value) and nothing is created.
//! - **Results come in no promised order** (HubSpot does not promise input
//!   order): this server answers batches in reverse input order, so a client
//!   that maps results by position breaks here first.
//! - **Archive ignores ids it does not know** (204 either way).
//! - **`updatedAt` moves on every write**, at least a millisecond each time;
//!   there are no conditional writes.
//!
//! Ids are numbers counted from 1000001, so that their text order (the
//! [`Table`]'s order) is their numeric order, as HubSpot lists them. A list
//! without `properties` shows HubSpot's default properties (`email`,
//! `firstname`, `lastname` for contacts; `name`, `domain` for companies;
//! none otherwise) besides `hs_object_id`, `createdate` and
//! `lastmodifieddate`, which every record shows.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use recsync_test_servers::hubspot::HubSpot;
//! use serde_json::{json, Map};
//!
//! let hubspot = HubSpot::start("pat-test-token").await?;
//! let mut properties = Map::new();
//! properties.insert("email".into(), json!("ada@example.com"));
//! properties.insert("phone".into(), json!("(555) 010-1234"));
//! let id = hubspot.insert("contacts", properties);
//! let row = hubspot.get("contacts", &id).unwrap();
//! assert_eq!(row.fields["phone"], json!("+15550101234"));
//! println!("GET {}/crm/v3/objects/contacts", hubspot.url());
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::faults::{self, Faults};
use crate::table::{Row, Table};

/// The most inputs one batch request takes, and the largest list page.
pub const MAX_BATCH: usize = 100;

/// The page size of a list request without `limit`.
pub const DEFAULT_LIMIT: usize = 10;

/// The custom unique property a sync engine keeps its correlation key in.
pub const CORRELATION_PROPERTY: &str = "recsync_key";

/// Properties the server keeps itself: every record shows them, no write
/// may set them.
const READ_ONLY: [&str; 3] = ["hs_object_id", "createdate", "lastmodifieddate"];

/// The first id given is `ID_BASE + 1`.
const ID_BASE: u64 = 1_000_000;

/// A running server shaped like HubSpot's CRM objects API (see the
/// [module docs](self) for its rules).
///
/// Cheap to clone: clones share the server, its records and its faults.
/// `Debug` shows the address and the request counts, never the token.
#[derive(Clone)]
pub struct HubSpot {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    token: String,
    faults: Faults,
    table: Table,
    /// Held through every write, so the uniqueness checks and the writes
    /// they guard are one step.
    unique: Mutex<Unique>,
}

/// The values of unique properties, and the record holding each.
#[derive(Default)]
struct Unique {
    /// `(object, property, normalized value)` to record id.
    taken: HashMap<(String, String, String), String>,
}

impl fmt::Debug for HubSpot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpot")
            .field("url", &self.inner.url)
            .field("stats", &self.inner.faults.stats())
            .finish_non_exhaustive()
    }
}

/// A write HubSpot refuses for one input: its category (`CONFLICT`,
/// `VALIDATION_ERROR`), message, and the property it is about.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    category: &'static str,
    message: String,
    property: Option<String>,
}

impl Problem {
    fn conflict(message: String) -> Self {
        Problem {
            category: "CONFLICT",
            message,
            property: None,
        }
    }

    fn invalid(property: &str, message: String) -> Self {
        Problem {
            category: "VALIDATION_ERROR",
            message,
            property: Some(property.to_owned()),
        }
    }

    fn status(&self) -> StatusCode {
        if self.category == "CONFLICT" {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        }
    }

    /// The problem as an entry of a 207's `errors`, with `context` added.
    fn entry(&self, mut context: Map<String, Value>) -> Value {
        if let Some(property) = &self.property {
            context.insert("propertyName".into(), json!([property]));
        }
        json!({
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": context,
        })
    }
}

/// What a handler answers: a status and a JSON body (none for 204).
type Answer = (StatusCode, Option<Value>);

fn error_body(category: &str, message: impl Into<String>) -> Value {
    json!({"status": "error", "category": category, "message": message.into()})
}

fn bad_request(message: impl Into<String>) -> Answer {
    (
        StatusCode::BAD_REQUEST,
        Some(error_body("VALIDATION_ERROR", message)),
    )
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `phone` as HubSpot stores it (see the module docs).
fn canonical_phone(sent: &str) -> String {
    let digits: String = sent.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        sent.to_owned()
    } else if sent.trim_start().starts_with('+') {
        format!("+{digits}")
    } else if digits.len() == 10 {
        format!("+1{digits}")
    } else if digits.len() == 11 && digits.starts_with('1') {
        format!("+{digits}")
    } else {
        digits
    }
}

/// A property value as stored: `None` clears the property.
fn stored_value(name: &str, value: &Value) -> Result<Option<String>, Problem> {
    if READ_ONLY.contains(&name) {
        return Err(Problem::invalid(
            name,
            format!("{name} is a read only property; its value cannot be set."),
        ));
    }
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => {
            return Err(Problem::invalid(
                name,
                format!("Property values were not valid: {name} takes a single value"),
            ))
        }
    };
    Ok(Some(if name == "phone" {
        canonical_phone(&text)
    } else {
        text
    }))
}

/// Every property of a write in stored form, or the first refused.
fn stored_values(
    properties: &Map<String, Value>,
) -> Result<Vec<(String, Option<String>)>, Problem> {
    properties
        .iter()
        .map(|(name, value)| Ok((name.clone(), stored_value(name, value)?)))
        .collect()
}

fn is_unique(object: &str, property: &str) -> bool {
    property == CORRELATION_PROPERTY || (object == "contacts" && property == "email")
}

fn unique_form(property: &str, value: &str) -> String {
    if property == "email" {
        value.trim().to_lowercase()
    } else {
        value.to_owned()
    }
}

impl Unique {
    /// The first unique value of `values` another record than `id` holds.
    fn clash(
        &self,
        object: &str,
        id: Option<&str>,
        values: &[(String, Option<String>)],
    ) -> Option<Problem> {
        values.iter().find_map(|(property, value)| {
            let value = value.as_deref()?;
            if !is_unique(object, property) {
                return None;
            }
            let key = (
                object.to_owned(),
                property.clone(),
                unique_form(property, value),
            );
            let holder = self.taken.get(&key)?;
            if Some(holder.as_str()) == id {
                return None;
            }
            Some(Problem::conflict(if property == "email" {
                format!("Contact already exists. Existing ID: {holder}")
            } else {
                format!(
                    "A {object} record already has this value of unique property {property}. Existing ID: {holder}"
                )
            }))
        })
    }

    /// Records `fields` (a record's properties) as held by `id`.
    fn hold(&mut self, object: &str, id: &str, fields: &Map<String, Value>) {
        for (property, value) in fields {
            if let (true, Some(value)) = (is_unique(object, property), value.as_str()) {
                let key = (
                    object.to_owned(),
                    property.clone(),
                    unique_form(property, value),
                );
                self.taken.insert(key, id.to_owned());
            }
        }
    }

    /// Lets go of the unique values of `fields`, where `id` holds them.
    fn release(&mut self, object: &str, id: &str, fields: &Map<String, Value>) {
        for (property, value) in fields {
            if let (true, Some(value)) = (is_unique(object, property), value.as_str()) {
                let key = (
                    object.to_owned(),
                    property.clone(),
                    unique_form(property, value),
                );
                if self.taken.get(&key).is_some_and(|holder| holder == id) {
                    self.taken.remove(&key);
                }
            }
        }
    }
}

/// The properties a record shows: those asked for (`null` where it holds
/// none), or the object's defaults; and the server's own.
fn shown_properties(object: &str, row: &Row, asked: Option<&[String]>) -> Map<String, Value> {
    let defaults: &[&str] = match object {
        "contacts" => &["email", "firstname", "lastname"],
        "companies" => &["name", "domain"],
        _ => &[],
    };
    let mut properties = Map::new();
    let mut show = |name: &str| {
        let value = row.fields.get(name).cloned().unwrap_or(Value::Null);
        properties.insert(name.to_owned(), value);
    };
    match asked {
        Some(names) => names.iter().for_each(|n| show(n)),
        None => defaults.iter().for_each(|n| show(n)),
    }
    properties.insert("hs_object_id".into(), json!(row.id));
    properties.insert("createdate".into(), json!(timestamp(row.created)));
    properties.insert("lastmodifieddate".into(), json!(timestamp(row.updated)));
    properties
}

fn object_json(row: &Row, properties: Map<String, Value>) -> Value {
    json!({
        "id": row.id,
        "properties": properties,
        "createdAt": timestamp(row.created),
        "updatedAt": timestamp(row.updated),
        "archived": false,
    })
}

/// A record as a write answers it: the properties written (in stored form,
/// `null` where cleared) and the server's own.
fn written_json(
    object: &str,
    row: &Row,
    written: &[(String, Option<String>)],
    trace: Option<&str>,
) -> Value {
    let names: Vec<String> = written.iter().map(|(name, _)| name.clone()).collect();
    let mut value = object_json(row, shown_properties(object, row, Some(&names)));
    if let (Some(trace), Some(obj)) = (trace, value.as_object_mut()) {
        obj.insert("objectWriteTraceId".into(), json!(trace));
    }
    value
}

fn batch_body(results: Vec<Value>, errors: Vec<Value>) -> Value {
    let now = timestamp(Utc::now());
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": now,
        "completedAt": now,
    });
    if let (false, Some(obj)) = (errors.is_empty(), body.as_object_mut()) {
        obj.insert("numErrors".into(), json!(errors.len()));
        obj.insert("errors".into(), Value::Array(errors));
    }
    body
}

#[derive(Deserialize)]
struct Inputs<T> {
    inputs: Vec<T>,
    #[serde(default)]
    properties: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct IdInput {
    id: String,
}

#[derive(Deserialize)]
struct CreateInput {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(rename = "objectWriteTraceId")]
    trace: Option<String>,
}

#[derive(Deserialize)]
struct UpdateInput {
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(rename = "objectWriteTraceId")]
    trace: Option<String>,
}

/// A batch body, or the 400 HubSpot answers a malformed or oversized one
/// with.
fn parse_batch<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<Inputs<T>, Answer> {
    let batch: Inputs<T> = serde_json::from_slice(body).map_err(|e| {
        bad_request(format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    if batch.inputs.len() > MAX_BATCH {
        return Err(bad_request(format!(
            "Batch input of {} inputs exceeds the limit of {MAX_BATCH} inputs",
            batch.inputs.len()
        )));
    }
    Ok(batch)
}

impl HubSpot {
    /// Starts a server on `127.0.0.1`, on a port of its own, on the calling
    /// tokio runtime; requests must carry `Authorization: Bearer {token}`.
    /// It serves until that runtime shuts down (the end of a
    /// `#[tokio::test]`).
    pub async fn start(token: &str) -> std::io::Result<HubSpot> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let faults = Faults::default();
        let hubspot = HubSpot {
            inner: Arc::new(Inner {
                url: format!("http://{addr}"),
                token: token.to_owned(),
                faults: faults.clone(),
                table: Table::default(),
                unique: Mutex::new(Unique::default()),
            }),
        };
        let app = Router::new()
            .route("/crm/v3/objects/{object}", get(list_route))
            .route("/crm/v3/objects/{object}/batch/read", post(read_route))
            .route("/crm/v3/objects/{object}/batch/create", post(create_route))
            .route("/crm/v3/objects/{object}/batch/update", post(update_route))
            .route(
                "/crm/v3/objects/{object}/batch/archive",
                post(archive_route),
            )
            .layer(middleware::from_fn_with_state(hubspot.clone(), auth))
            .layer(middleware::from_fn_with_state(faults, faults::layer))
            .with_state(hubspot.clone());
        tokio::spawn(async move {
            // Serves until the runtime shuts down; an accept error ends it.
            let _ = axum::serve(listener, app).await;
        });
        Ok(hubspot)
    }

    /// The base URL, `http://127.0.0.1:{port}`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The faults the server injects, and its request counts.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The records. Writes made straight to the table bypass the server's
    /// rules (stored forms, unique properties); use [`insert`](Self::insert)
    /// and [`edit`](Self::edit) to write as a person in HubSpot would.
    pub fn table(&self) -> &Table {
        &self.inner.table
    }

    fn unique(&self) -> MutexGuard<'_, Unique> {
        self.inner
            .unique
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // ----- a person in HubSpot's UI -----

    /// A person creates a record of `object` with `properties`, under the
    /// server's rules (string values, the phone's stored form); returns its
    /// id.
    ///
    /// # Panics
    ///
    /// Where HubSpot would refuse it: a unique value taken (an `email` of
    /// contacts, a `recsync_key`), an array or object value, a read-only
    /// property.
    pub fn insert(&self, object: &str, properties: Map<String, Value>) -> String {
        let mut unique = self.unique();
        match self.create_one(&mut unique, object, &properties) {
            Ok(row) => row.id,
            Err(problem) => panic!("HubSpot refuses this {object} record: {}", problem.message),
        }
    }

    /// A person edits record `id` of `object`: the properties given take
    /// their values (`null` or `""` clears one), under the server's rules;
    /// `updatedAt` moves.
    ///
    /// # Panics
    ///
    /// Where there is no such record, or HubSpot would refuse the edit (see
    /// [`insert`](Self::insert)).
    pub fn edit(&self, object: &str, id: &str, properties: Map<String, Value>) -> Row {
        let mut unique = self.unique();
        match self.update_one(&mut unique, object, id, &properties) {
            Ok(Some(row)) => row,
            Ok(None) => panic!("no {object} record {id} to edit"),
            Err(problem) => panic!(
                "HubSpot refuses this edit of {object} {id}: {}",
                problem.message
            ),
        }
    }

    /// A person deletes (archives) record `id` of `object`; whether it was
    /// there.
    pub fn delete(&self, object: &str, id: &str) -> bool {
        let mut unique = self.unique();
        self.archive_one(&mut unique, object, id)
    }

    /// Every record of `object`, in id order, properties in stored form.
    pub fn records(&self, object: &str) -> Vec<Row> {
        self.inner.table.all(object)
    }

    /// Record `id` of `object`, if there is one.
    pub fn get(&self, object: &str, id: &str) -> Option<Row> {
        self.inner.table.get(object, id)
    }

    // ----- the rules, one record at a time -----

    fn create_one(
        &self,
        unique: &mut Unique,
        object: &str,
        properties: &Map<String, Value>,
    ) -> Result<Row, Problem> {
        let values = stored_values(properties)?;
        if let Some(problem) = unique.clash(object, None, &values) {
            return Err(problem);
        }
        let fields: Map<String, Value> = values
            .into_iter()
            .filter_map(|(name, value)| Some((name, Value::String(value?))))
            .collect();
        let row = self
            .inner
            .table
            .insert(object, fields, |n| (ID_BASE + n).to_string());
        unique.hold(object, &row.id, &row.fields);
        Ok(row)
    }

    /// The record after the update; `None` if there is no such record.
    fn update_one(
        &self,
        unique: &mut Unique,
        object: &str,
        id: &str,
        properties: &Map<String, Value>,
    ) -> Result<Option<Row>, Problem> {
        let Some(before) = self.inner.table.get(object, id) else {
            return Ok(None);
        };
        let values = stored_values(properties)?;
        if let Some(problem) = unique.clash(object, Some(id), &values) {
            return Err(problem);
        }
        let changes: Map<String, Value> = values
            .into_iter()
            .map(|(name, value)| (name, value.map_or(Value::Null, Value::String)))
            .collect();
        // `Table` stamps every write at least a millisecond after the last,
        // so `updatedAt`, the record's version, moves.
        let Some(after) = self.inner.table.update(object, id, &changes) else {
            return Ok(None);
        };
        unique.release(object, id, &before.fields);
        unique.hold(object, id, &after.fields);
        Ok(Some(after))
    }

    fn archive_one(&self, unique: &mut Unique, object: &str, id: &str) -> bool {
        let Some(row) = self.inner.table.get(object, id) else {
            return false;
        };
        unique.release(object, id, &row.fields);
        self.inner.table.remove(object, id)
    }

    // ----- the endpoints, apart from HTTP -----

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| token == self.inner.token)
    }

    fn list(&self, object: &str, query: &[(String, String)]) -> Answer {
        let mut limit = DEFAULT_LIMIT;
        let mut after = None;
        let mut asked: Option<Vec<String>> = None;
        let mut archived = false;
        for (key, value) in query {
            match key.as_str() {
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_BATCH).contains(&n) => limit = n,
                    _ => {
                        return bad_request(format!(
                            "limit must be a number from 1 to {MAX_BATCH}, not {value}"
                        ))
                    }
                },
                "after" => after = Some(value.clone()),
                "properties" => asked.get_or_insert_with(Vec::new).extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned),
                ),
                "archived" => archived = value == "true",
                _ => {}
            }
        }
        if archived {
            // Archived records are not kept.
            return (StatusCode::OK, Some(json!({"results": []})));
        }
        let mut rows = self.inner.table.page(object, after.as_deref(), limit + 1);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let results: Vec<Value> = rows
            .iter()
            .map(|row| object_json(row, shown_properties(object, row, asked.as_deref())))
            .collect();
        let mut body = json!({ "results": results });
        if let (true, Some(last), Some(obj)) = (more, rows.last(), body.as_object_mut()) {
            let link = format!(
                "{}/crm/v3/objects/{object}?limit={limit}&after={}",
                self.inner.url, last.id
            );
            obj.insert(
                "paging".into(),
                json!({"next": {"after": last.id, "link": link}}),
            );
        }
        (StatusCode::OK, Some(body))
    }

    fn batch_read(&self, object: &str, body: &[u8]) -> Answer {
        let batch = match parse_batch::<IdInput>(body) {
            Ok(batch) => batch,
            Err(answer) => return answer,
        };
        let mut seen = HashSet::new();
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for input in &batch.inputs {
            if !seen.insert(input.id.as_str()) {
                continue;
            }
            match self.inner.table.get(object, &input.id) {
                Some(row) => results.push(object_json(
                    &row,
                    shown_properties(object, &row, batch.properties.as_deref()),
                )),
                None => missing.push(input.id.clone()),
            }
        }
        results.reverse();
        let mut errors = Vec::new();
        if !missing.is_empty() {
            errors.push(not_found(object, &missing));
        }
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::MULTI_STATUS
        };
        (status, Some(batch_body(results, errors)))
    }

    fn batch_create(&self, object: &str, body: &[u8]) -> Answer {
        let batch = match parse_batch::<CreateInput>(body) {
            Ok(batch) => batch,
            Err(answer) => return answer,
        };
        let multi_status = batch.inputs.iter().all(|input| input.trace.is_some());
        let mut unique = self.unique();
        let mut results = Vec::new();
        let mut made: Vec<Row> = Vec::new();
        let mut errors = Vec::new();
        for input in &batch.inputs {
            match self.create_one(&mut unique, object, &input.properties) {
                Ok(row) => {
                    let written = stored_values(&input.properties).unwrap_or_default();
                    results.push(written_json(object, &row, &written, input.trace.as_deref()));
                    made.push(row);
                }
                Err(problem) if multi_status => {
                    let mut context = Map::new();
                    context.insert("objectWriteTraceId".into(), json!([input.trace]));
                    errors.push(problem.entry(context));
                }
                Err(problem) => {
                    // All or nothing: undo what this request made.
                    for row in &made {
                        self.archive_one(&mut unique, object, &row.id);
                    }
                    return (
                        problem.status(),
                        Some(error_body(problem.category, problem.message)),
                    );
                }
            }
        }
        drop(unique);
        results.reverse();
        let status = if errors.is_empty() {
            StatusCode::CREATED
        } else {
            StatusCode::MULTI_STATUS
        };
        self.inner.faults.count_write();
        (status, Some(batch_body(results, errors)))
    }

    fn batch_update(&self, object: &str, body: &[u8]) -> Answer {
        let batch = match parse_batch::<UpdateInput>(body) {
            Ok(batch) => batch,
            Err(answer) => return answer,
        };
        let mut ids = HashSet::new();
        if let Some(twice) = batch
            .inputs
            .iter()
            .find(|input| !ids.insert(input.id.as_str()))
        {
            return bad_request(format!(
                "Duplicate IDs found in batch input: [{}]",
                twice.id
            ));
        }
        let mut unique = self.unique();
        let mut results = Vec::new();
        let mut missing = Vec::new();
        let mut errors = Vec::new();
        for input in &batch.inputs {
            match self.update_one(&mut unique, object, &input.id, &input.properties) {
                Ok(Some(row)) => {
                    let written = stored_values(&input.properties).unwrap_or_default();
                    results.push(written_json(object, &row, &written, input.trace.as_deref()));
                }
                Ok(None) => missing.push(input.id.clone()),
                Err(problem) => {
                    let mut context = Map::new();
                    context.insert("ids".into(), json!([input.id]));
                    if let Some(trace) = &input.trace {
                        context.insert("objectWriteTraceId".into(), json!([trace]));
                    }
                    errors.push(problem.entry(context));
                }
            }
        }
        drop(unique);
        if !missing.is_empty() {
            errors.push(not_found(object, &missing));
        }
        results.reverse();
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::MULTI_STATUS
        };
        self.inner.faults.count_write();
        (status, Some(batch_body(results, errors)))
    }

    fn batch_archive(&self, object: &str, body: &[u8]) -> Answer {
        let batch = match parse_batch::<IdInput>(body) {
            Ok(batch) => batch,
            Err(answer) => return answer,
        };
        let mut unique = self.unique();
        for input in &batch.inputs {
            self.archive_one(&mut unique, object, &input.id);
        }
        drop(unique);
        self.inner.faults.count_write();
        (StatusCode::NO_CONTENT, None)
    }
}

fn not_found(object: &str, ids: &[String]) -> Value {
    let mut context = Map::new();
    context.insert("ids".into(), json!(ids));
    json!({
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": format!("Could not get some {object} objects, they may be deleted or not exist. Check that ids are valid."),
        "context": context,
    })
}

fn respond((status, body): Answer) -> Response {
    match body {
        Some(body) => (status, Json(body)).into_response(),
        None => status.into_response(),
    }
}

async fn auth(State(hubspot): State<HubSpot>, request: Request, next: Next) -> Response {
    if hubspot.authorized(request.headers()) {
        return next.run(request).await;
    }
    let body = error_body(
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and private app access tokens.",
    );
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn list_route(
    State(hubspot): State<HubSpot>,
    Path(object): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    respond(hubspot.list(&object, &query))
}

async fn read_route(
    State(hubspot): State<HubSpot>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    respond(hubspot.batch_read(&object, &body))
}

async fn create_route(
    State(hubspot): State<HubSpot>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    respond(hubspot.batch_create(&object, &body))
}

async fn update_route(
    State(hubspot): State<HubSpot>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    respond(hubspot.batch_update(&object, &body))
}

async fn archive_route(
    State(hubspot): State<HubSpot>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    respond(hubspot.batch_archive(&object, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn body(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn list_ids(hubspot: &HubSpot, query: &[(&str, &str)]) -> (Vec<String>, Option<String>) {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (status, body) = hubspot.list("contacts", &query);
        assert_eq!(status, StatusCode::OK);
        let body = body.unwrap();
        let ids = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let after = body["paging"]["next"]["after"].as_str().map(str::to_owned);
        (ids, after)
    }

    #[test]
    fn phones_are_stored_in_one_form() {
        assert_eq!(canonical_phone("(555) 010-1234"), "+15550101234");
        assert_eq!(canonical_phone("1 555 010 1234"), "+15550101234");
        assert_eq!(canonical_phone("+44 20 7946 0958"), "+442079460958");
        assert_eq!(canonical_phone("010-1234"), "0101234");
        assert_eq!(canonical_phone("n/a"), "n/a");
        assert_eq!(
            stored_value("phone", &json!(5550101234_u64)),
            Ok(Some("+15550101234".to_owned()))
        );
        assert_eq!(stored_value("age", &json!(17)), Ok(Some("17".to_owned())));
        assert_eq!(
            stored_value("vip", &json!(true)),
            Ok(Some("true".to_owned()))
        );
        assert_eq!(stored_value("name", &json!("")), Ok(None));
        let refused = stored_value("tags", &json!(["a"])).unwrap_err();
        assert_eq!(refused.property.as_deref(), Some("tags"));
        assert!(stored_value("createdate", &json!("x")).is_err());
    }

    #[tokio::test]
    async fn lists_page_through_every_record_once() {
        let hubspot = HubSpot::start("t").await.unwrap();
        for i in 0..25 {
            hubspot.insert("contacts", props(&[("firstname", json!(format!("n{i}")))]));
        }
        let (first, after) = list_ids(&hubspot, &[]);
        assert_eq!(first.len(), DEFAULT_LIMIT);
        let mut all = first;
        let mut after = after;
        while let Some(cursor) = after {
            let (ids, next) = list_ids(&hubspot, &[("limit", "7"), ("after", &cursor)]);
            all.extend(ids);
            after = next;
        }
        let expected: Vec<String> = hubspot
            .records("contacts")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(all, expected);
        assert_eq!(all.len(), 25);
        let mut sorted = all.clone();
        sorted.sort_by_key(|id| id.parse::<u64>().unwrap());
        assert_eq!(all, sorted, "text order is numeric order");

        let (status, _) = hubspot.list("contacts", &[("limit".into(), "101".into())]);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (ids, after) = list_ids(&hubspot, &[("limit", "100")]);
        assert_eq!((ids.len(), after), (25, None));
    }

    #[tokio::test]
    async fn records_show_what_is_asked_and_the_servers_own() {
        let hubspot = HubSpot::start("t").await.unwrap();
        let id = hubspot.insert(
            "contacts",
            props(&[("email", json!("a@x.io")), ("age", json!(3))]),
        );
        let query = [("properties".to_owned(), "age,phone".to_owned())];
        let (_, body) = hubspot.list("contacts", &query);
        let record = &body.unwrap()["results"][0];
        assert_eq!(record["id"], json!(id));
        assert_eq!(record["properties"]["age"], json!("3"));
        assert_eq!(record["properties"]["phone"], Value::Null);
        assert_eq!(record["properties"]["hs_object_id"], json!(id));
        assert!(record["properties"].get("email").is_none());
        let updated = record["updatedAt"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(updated).is_ok());
        assert_eq!(updated.len(), "2026-12-06T10:00:00.123Z".len());
        assert_eq!(record["properties"]["lastmodifieddate"], json!(updated));
    }

    #[tokio::test]
    async fn batches_over_100_inputs_are_refused_whole() {
        let hubspot = HubSpot::start("t").await.unwrap();
        let inputs: Vec<Value> = (0..101)
            .map(|i| json!({"properties": {"firstname": format!("n{i}")}, "objectWriteTraceId": i.to_string()}))
            .collect();
        let (status, answer) = hubspot.batch_create("contacts", &body(json!({ "inputs": inputs })));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.unwrap()["category"], json!("VALIDATION_ERROR"));
        assert!(hubspot.records("contacts").is_empty());

        let (status, answer) =
            hubspot.batch_create("contacts", &body(json!({ "inputs": inputs[..100] })));
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(answer.unwrap()["results"].as_array().unwrap().len(), 100);
        assert_eq!(hubspot.faults().stats().writes, 1);

        let ids: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
        for answer in [
            hubspot.batch_read("contacts", &body(json!({ "inputs": ids }))),
            hubspot.batch_update("contacts", &body(json!({ "inputs": ids }))),
            hubspot.batch_archive("contacts", &body(json!({ "inputs": ids }))),
        ] {
            assert_eq!(answer.0, StatusCode::BAD_REQUEST);
        }
        assert_eq!(hubspot.records("contacts").len(), 100);
        let (status, _) = hubspot.batch_create("contacts", b"{\"inputs\": [");
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_create_conflict_is_a_207_with_trace_ids_and_all_or_nothing_without() {
        let hubspot = HubSpot::start("t").await.unwrap();
        let taken = hubspot.insert("contacts", props(&[("email", json!("ada@example.com"))]));
        let inputs = json!([
            {"properties": {"email": "bob@example.com", "phone": "(555) 010-1234"}, "objectWriteTraceId": "a"},
            {"properties": {"email": " ADA@example.com"}, "objectWriteTraceId": "b"},
        ]);
        let (status, answer) = hubspot.batch_create("contacts", &body(json!({ "inputs": inputs })));
        assert_eq!(status, StatusCode::MULTI_STATUS);
        let answer = answer.unwrap();
        assert_eq!(answer["results"][0]["objectWriteTraceId"], json!("a"));
        assert_eq!(
            answer["results"][0]["properties"]["phone"],
            json!("+15550101234")
        );
        let error = &answer["errors"][0];
        assert_eq!(error["category"], json!("CONFLICT"));
        assert_eq!(error["context"]["objectWriteTraceId"], json!(["b"]));
        assert_eq!(
            error["message"],
            json!(format!("Contact already exists. Existing ID: {taken}"))
        );
        assert_eq!(hubspot.records("contacts").len(), 2);

        // Without trace ids, one conflict fails the whole request.
        let inputs = json!([
            {"properties": {"email": "cy@example.com"}},
            {"properties": {"email": "bob@example.com"}},
        ]);
        let (status, answer) = hubspot.batch_create("contacts", &body(json!({ "inputs": inputs })));
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(answer.unwrap()["category"], json!("CONFLICT"));
        assert_eq!(hubspot.records("contacts").len(), 2);

        // The correlation key is unique in every object type; email only in
        // contacts.
        let inputs = json!([
            {"properties": {"email": "ada@example.com", "recsync_key": "k1"}, "objectWriteTraceId": "c"},
            {"properties": {"email": "ada@example.com", "recsync_key": "k1"}, "objectWriteTraceId": "d"},
        ]);
        let (status, answer) =
            hubspot.batch_create("companies", &body(json!({ "inputs": inputs })));
        assert_eq!(status, StatusCode::MULTI_STATUS);
        let answer = answer.unwrap();
        assert_eq!(
            answer["errors"][0]["context"]["objectWriteTraceId"],
            json!(["d"])
        );
        let holder = answer["results"][0]["id"].as_str().unwrap();
        assert!(answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("Existing ID: {holder}")));
    }

    #[tokio::test]
    async fn updates_report_missing_ids_and_conflicts_in_a_207() {
        let hubspot = HubSpot::start("t").await.unwrap();
        let ada = hubspot.insert("contacts", props(&[("email", json!("ada@example.com"))]));
        let bob = hubspot.insert("contacts", props(&[("email", json!("bob@example.com"))]));
        hubspot.insert("contacts", props(&[("email", json!("cy@example.com"))]));
        let before = hubspot.get("contacts", &ada).unwrap().updated;
        let inputs = json!([
            {"id": ada, "properties": {"phone": "555 010 1234", "email": null}, "objectWriteTraceId": "0"},
            {"id": bob, "properties": {"email": "CY@example.com"}, "objectWriteTraceId": "1"},
            {"id": "404", "properties": {"firstname": "x"}},
        ]);
        let (status, answer) = hubspot.batch_update("contacts", &body(json!({ "inputs": inputs })));
        assert_eq!(status, StatusCode::MULTI_STATUS);
        let answer = answer.unwrap();
        let result = &answer["results"][0];
        assert_eq!(result["objectWriteTraceId"], json!("0"));
        assert_eq!(result["properties"]["phone"], json!("+15550101234"));
        assert_eq!(result["properties"]["email"], Value::Null);
        let errors = answer["errors"].as_array().unwrap();
        assert_eq!(errors[0]["category"], json!("CONFLICT"));
        assert_eq!(errors[0]["context"]["ids"], json!([bob]));
        assert_eq!(errors[1]["category"], json!("OBJECT_NOT_FOUND"));
        assert_eq!(errors[1]["context"]["ids"], json!(["404"]));
        let after = hubspot.get("contacts", &ada).unwrap();
        assert!(after.updated > before);
        assert!(!after.fields.contains_key("email"));
        // Ada's old email is free now.
        hubspot.edit(
            "contacts",
            &bob,
            props(&[("email", json!("ada@example.com"))]),
        );

        let twice = json!([{"id": ada, "properties": {}}, {"id": ada, "properties": {}}]);
        let (status, _) = hubspot.batch_update("contacts", &body(json!({ "inputs": twice })));
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn every_update_moves_updated_at_even_within_a_millisecond() {
        let hubspot = HubSpot::start("t").await.unwrap();
        let id = hubspot.insert("contacts", props(&[("firstname", json!("A"))]));
        let mut last = hubspot.get("contacts", &id).unwrap().updated;
        for n in 0..100 {
            let row = hubspot.edit("contacts", &id, props(&[("age", json!(n))]));
            assert!(row.updated > last, "edit {n}: {} after {last}", row.updated);
            last = row.updated;
        }
    }

    #[tokio::test]
    async fn reads_name_missing_ids_and_archives_ignore_them() {
        let hubspot = HubSpot::start("t").await.unwrap();
        let ada = hubspot.insert("contacts", props(&[("email", json!("ada@example.com"))]));
        let read = json!({"inputs": [{"id": ada}, {"id": "nope"}], "properties": ["email"]});
        let (status, answer) = hubspot.batch_read("contacts", &body(read.clone()));
        assert_eq!(status, StatusCode::MULTI_STATUS);
        let answer = answer.unwrap();
        assert_eq!(
            answer["results"][0]["properties"]["email"],
            json!("ada@example.com")
        );
        assert_eq!(answer["errors"][0]["category"], json!("OBJECT_NOT_FOUND"));
        assert_eq!(answer["errors"][0]["context"]["ids"], json!(["nope"]));

        let archive = json!({"inputs": [{"id": ada}, {"id": "nope"}]});
        let (status, answer) = hubspot.batch_archive("contacts", &body(archive));
        assert_eq!((status, answer), (StatusCode::NO_CONTENT, None));
        assert!(hubspot.records("contacts").is_empty());
        // The email is free again.
        hubspot.insert("contacts", props(&[("email", json!("ada@example.com"))]));
    }

    #[tokio::test]
    async fn requests_need_the_token() {
        let hubspot = HubSpot::start("pat-1").await.unwrap();
        let mut headers = HeaderMap::new();
        assert!(!hubspot.authorized(&headers));
        headers.insert("authorization", "Bearer pat-2".parse().unwrap());
        assert!(!hubspot.authorized(&headers));
        headers.insert("authorization", "Bearer pat-1".parse().unwrap());
        assert!(hubspot.authorized(&headers));
        assert!(!format!("{hubspot:?}").contains("pat-1"));
    }
}

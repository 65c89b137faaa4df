//! A connector written from scratch against the `Connector` trait, run
//! through the conformance suite.
//!
//! `TinyCrm` stands in for a vendor's REST API: it answers requests with
//! status codes, names contacts `C-0001`, `C-0002`, ..., gives each an etag
//! that `If-Match` checks, keeps an `external_id` column, and lists changes
//! after a `seq:N` token. `TinyCrmConnector` translates between that API and
//! recsync: write ops become requests, status codes become `ConnectorError`
//! kinds, and it keeps its API token in a `Secret`, so its derived `Debug`
//! never prints the token.
//!
//! Run with `cargo run --example custom_connector --features testkit`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use recsync::connector::{Applied, Capabilities, Changes, Cursor, Secret};
use recsync::plan::{OpKind, WriteOp};
use recsync::testkit::conformance;
use recsync::{Connector, ConnectorError, Record, Snapshot, SystemId};
use serde_json::{json, Map, Value};

// ----- the "vendor API" -----

#[derive(Clone)]
struct Contact {
    properties: Map<String, Value>,
    external_id: Option<String>,
    revision: u64,
    archived: bool,
    /// Position in the change feed.
    seq: u64,
}

/// What the API answers: a status code and a JSON body.
struct Response {
    status: u16,
    body: Value,
}

impl Response {
    fn new(status: u16, body: Value) -> Self {
        Response { status, body }
    }
}

/// An in-process stand-in for a CRM's HTTP API.
struct TinyCrm {
    token: Secret,
    contacts: Mutex<(BTreeMap<String, Contact>, u64, u64)>,
}

impl fmt::Debug for TinyCrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Its contacts are people's data: a count only.
        let guard = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("TinyCrm")
            .field("contacts", &guard.0.len())
            .finish_non_exhaustive()
    }
}

fn etag(id: &str, revision: u64) -> String {
    // Opaque to clients, as etags are.
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in id.bytes().chain(revision.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("W/\"{h:012x}\"")
}

fn view(id: &str, c: &Contact) -> Value {
    json!({
        "id": id,
        "properties": c.properties,
        "external_id": c.external_id,
        "etag": etag(id, c.revision),
        "archived": c.archived,
        "seq": c.seq,
    })
}

impl TinyCrm {
    fn new(token: Secret) -> Self {
        TinyCrm {
            token,
            contacts: Mutex::default(),
        }
    }

    /// Every request carries `Authorization: Bearer {token}`.
    fn authorize(&self, token: &str) -> Response {
        if token == self.token.expose() {
            Response::new(200, json!({}))
        } else {
            Response::new(401, json!({"error": "invalid token"}))
        }
    }

    /// `POST /contacts`
    fn post(&self, properties: Map<String, Value>, external_id: Option<String>) -> Response {
        let mut guard = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        let (contacts, next_id, seq) = &mut *guard;
        if let Some(ext) = &external_id {
            if contacts
                .values()
                .any(|c| !c.archived && c.external_id.as_ref() == Some(ext))
            {
                return Response::new(409, json!({"error": "external_id already used"}));
            }
        }
        *next_id += 1;
        *seq += 1;
        let id = format!("C-{:04}", *next_id);
        let contact = Contact {
            properties,
            external_id,
            revision: 1,
            archived: false,
            seq: *seq,
        };
        let body = view(&id, &contact);
        contacts.insert(id, contact);
        Response::new(201, body)
    }

    /// `PATCH /contacts/{id}` (with `If-Match` when given) or, with
    /// `archive`, `DELETE /contacts/{id}`.
    fn change(
        &self,
        id: &str,
        if_match: Option<&str>,
        properties: Map<String, Value>,
        archive: bool,
    ) -> Response {
        let mut guard = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        let (contacts, _, seq) = &mut *guard;
        let Some(contact) = contacts.get_mut(id).filter(|c| !c.archived) else {
            return Response::new(404, json!({"error": "no such contact"}));
        };
        if let Some(tag) = if_match {
            if tag != etag(id, contact.revision) {
                return Response::new(412, json!({"error": "etag mismatch"}));
            }
        }
        for (k, v) in properties {
            contact.properties.insert(k, v);
        }
        contact.archived = archive;
        contact.revision += 1;
        *seq += 1;
        contact.seq = *seq;
        Response::new(200, view(id, contact))
    }

    /// `GET /contacts` (live only) or `GET /contacts/changes?after=N`
    /// (archived included, in feed order, at most `limit`).
    fn list(&self, after: Option<u64>, limit: usize) -> Response {
        let guard = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        let (contacts, _, seq) = &*guard;
        let mut items: Vec<(&String, &Contact)> = contacts
            .iter()
            .filter(|(_, c)| match after {
                None => !c.archived,
                Some(n) => c.seq > n,
            })
            .collect();
        items.sort_by_key(|(_, c)| c.seq);
        let more = after.is_some() && items.len() > limit;
        if after.is_some() {
            items.truncate(limit);
        }
        let next = match (more, items.last()) {
            (true, Some((_, c))) => c.seq,
            _ => *seq,
        };
        let results: Vec<Value> = items.iter().map(|(id, c)| view(id, c)).collect();
        Response::new(200, json!({"results": results, "next": next, "more": more}))
    }
}

// ----- the connector -----

/// recsync's view of `TinyCrm`. The token is a `Secret`: the derived
/// `Debug` prints `[redacted]` for it.
#[derive(Debug)]
struct TinyCrmConnector {
    system: SystemId,
    api: TinyCrm,
    api_token: Secret,
}

const PAGE: usize = 10;

/// Status codes to error kinds a caller can act on.
fn error_for(response: &Response) -> ConnectorError {
    let message = response.body["error"]
        .as_str()
        .unwrap_or("no message")
        .to_owned();
    match response.status {
        401 => ConnectorError::authentication(message),
        403 => ConnectorError::permission(message),
        404 => ConnectorError::not_found(message),
        409 => ConnectorError::duplicate(message),
        412 => ConnectorError::precondition_failed(message),
        422 => ConnectorError::validation(
            response.body["field"].as_str().unwrap_or("unknown"),
            message,
        ),
        429 => ConnectorError::rate_limited(None, message),
        500..=599 => ConnectorError::transient(message),
        status => ConnectorError::permanent(format!("status {status}: {message}")),
    }
}

fn record_of(item: &Value) -> Record {
    let mut record = Record::new(item["id"].as_str().unwrap_or_default());
    if let Some(props) = item["properties"].as_object() {
        for (k, v) in props {
            record = record.field(k.clone(), v.clone());
        }
    }
    if let Some(tag) = item["etag"].as_str() {
        record = record.version(tag);
    }
    if let Some(ext) = item["external_id"].as_str() {
        record = record.correlation(ext);
    }
    if item["archived"].as_bool() == Some(true) {
        record.fields.clear();
        record = record.deleted();
    }
    record
}

impl TinyCrmConnector {
    /// Checks the object type and the credentials before a request.
    fn check(&self, object: &str) -> Result<(), ConnectorError> {
        if object != "contacts" {
            return Err(ConnectorError::not_supported(format!(
                "tinycrm has no object {object}"
            )));
        }
        let response = self.api.authorize(self.api_token.expose());
        if response.status == 200 {
            Ok(())
        } else {
            Err(error_for(&response))
        }
    }

    fn apply_one(&self, op: &WriteOp) -> Result<Applied, ConnectorError> {
        let properties: Map<String, Value> = op
            .fields
            .iter()
            .map(|w| (w.native.to_string(), w.value.clone()))
            .collect();
        let response = match (op.kind, op.record_id.as_deref()) {
            (OpKind::Create, _) => self.api.post(properties, op.correlation.clone()),
            (OpKind::Update, Some(id)) => {
                self.api
                    .change(id, op.expected_version.as_deref(), properties, false)
            }
            (OpKind::Delete, Some(id)) => {
                self.api
                    .change(id, op.expected_version.as_deref(), Map::new(), true)
            }
            (kind, _) => {
                return Err(ConnectorError::permanent(format!(
                    "{kind} op without a record id"
                )))
            }
        };
        if !(200..300).contains(&response.status) {
            let error = error_for(&response);
            return Err(match op.record_id.as_deref() {
                Some(id) => error.with_record(id),
                None => error,
            });
        }
        let id = response.body["id"].as_str().unwrap_or_default();
        let mut applied = Applied::created(id);
        if let Some(tag) = response.body["etag"].as_str() {
            applied = applied.with_version(tag);
        }
        Ok(applied)
    }
}

#[async_trait]
impl Connector for TinyCrmConnector {
    fn system(&self) -> &SystemId {
        &self.system
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .max_batch_size(25)
            .conditional_writes(true)
            .external_ids(true)
            .incremental_fetch(true)
    }

    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        self.check(object)?;
        let response = self.api.list(None, usize::MAX);
        let records = response.body["results"]
            .as_array()
            .map(|items| items.iter().map(record_of).collect())
            .unwrap_or_default();
        Ok(Snapshot::complete(self.system.clone(), records))
    }

    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        self.check(object)?;
        let after = match cursor {
            None => 0,
            Some(c) => c
                .as_str()
                .strip_prefix("seq:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    ConnectorError::invalid_cursor(format!("{c} is not a tinycrm cursor"))
                })?,
        };
        let response = self.api.list(Some(after), PAGE);
        let records = response.body["results"]
            .as_array()
            .map(|items| items.iter().map(record_of).collect())
            .unwrap_or_default();
        let next = response.body["next"].as_u64().unwrap_or(after);
        Ok(Changes::new(
            self.system.clone(),
            records,
            Cursor::new(format!("seq:{next}")),
            response.body["more"].as_bool().unwrap_or(false),
        ))
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.check(object)?;
        // TinyCrm has no batch endpoint: one request per op.
        Ok(ops.iter().map(|op| self.apply_one(op)).collect())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // A host reads the token from its configuration or environment.
    let token = Secret::from("tk_test_not_a_real_token");
    let connector = TinyCrmConnector {
        system: "tinycrm".into(),
        api: TinyCrm::new(token.clone()),
        api_token: token,
    };
    let shown = format!("{connector:?}");
    assert!(!shown.contains("tk_test"), "{shown}");
    println!("{shown}");

    let options = conformance::Options::new()
        .field("email", json!("ada@example.com"), json!("ada@lovelace.org"))
        .field("phone", json!("555-0100"), json!("555-0199"))
        .field("lifecycle", json!("lead"), json!("customer"));
    match conformance::run(&connector, "contacts", options).await {
        Ok(report) => print!("{report}"),
        Err(failure) => {
            eprintln!("{failure}");
            std::process::exit(1);
        }
    }
}

//! End to end over HTTP: the runner syncs contacts between the local
//! HubSpot and Salesforce servers (test-servers) through the reqwest
//! connectors of the `http_sync` example, each system paced by its own
//! `RateLimit` shared by the runner and the connector, Salesforce writing
//! conditionally through the Composite API.
//!
//! One story, step by step, each checked on both servers' records and on
//! the run's report:
//!
//! 1. a first sync of records on each side only, over several pages, with
//!    a HubSpot contact without a last name that Salesforce refuses;
//! 2. edits on both sides: to different records, to different fields of
//!    one record, to the same field (a conflict held for review, then
//!    resolved), a phone HubSpot rewrites, the missing last name added;
//! 3. a conditional write refused because a person edited the record
//!    just before it: replanned in the same run, the later edit kept;
//! 4. a 429 storm on Salesforce while a run writes dozens of records;
//! 5. a 5xx burst on HubSpot while a run writes updates and a delete;
//! 6. a last run that plans nothing, both sides holding the same contacts,
//!    each once, with every edit made along the way.
//!
//! Every request either server answers took a permit of its system's
//! limit (the runner's for a call's first request, the connector's for
//! the others): checked after every run.
//!
//! Faults that must hit a run's writes, not its reads, are set by a
//! wrapper connector right before its next `apply`: no timing involved.
//! Real time only orders two edits a last-write-wins decision compares
//! (one waits for the clock to pass the other's millisecond).
#![cfg(all(feature = "testkit", feature = "rate-limit"))]

// The connectors as the example has them (`client` is not called here).
#[allow(dead_code)]
#[path = "../examples/http_sync/hubspot.rs"]
mod hubspot;
#[path = "../examples/http_sync/salesforce.rs"]
mod salesforce;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hubspot::HubSpotConnector;
use recsync::connector::{Applied, Capabilities, Changes, Cursor, ErrorKind, Secret};
use recsync::runner::{RateLimit, RetryPolicy, SyncRunner};
use recsync::store::{ReviewItem, ReviewQueue};
use recsync::{
    ConflictPolicy, Connector, ConnectorError, DeletePolicy, Field, FieldMap, MemoryStore, OpKind,
    ReviewChoice, Snapshot, SyncEngine, SyncReport, SystemId, WriteOp,
};
use recsync_test_servers::hubspot::HubSpot;
use recsync_test_servers::salesforce::Salesforce;
use recsync_test_servers::Row;
use salesforce::SalesforceConnector;
use serde_json::{json, Map, Value};

const HS_TOKEN: &str = "pat-na1-e2e-0123456789";
const SF_TOKEN: &str = "00Dxx0000001gPL!AQ4AQE2eSessionToken";
const OBJ: &str = "contacts";

/// The pace each runner and connector keeps per system: 50 requests a
/// second, one at a time.
const PACE: u32 = 50;
/// What each server lets through per rolling second outside the storm: a
/// little over the pace, as a real API's limit would be set against it.
const SERVER_LIMIT: u32 = 60;

// ----- a fault timed to a run's writes -----

type Fault = Box<dyn FnOnce() + Send>;

/// A connector that makes a fault happen right before its next `apply`,
/// so that the fault hits a run's writes (and what follows them), never
/// its reads.
struct BeforeWrite<C> {
    inner: C,
    next: Arc<Mutex<Option<Fault>>>,
}

impl<C: Connector> std::fmt::Debug for BeforeWrite<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeforeWrite")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Sets the fault a [`BeforeWrite`] makes happen before its next write.
#[derive(Clone)]
struct Trigger(Arc<Mutex<Option<Fault>>>);

impl Trigger {
    fn before_next_write(&self, fault: impl FnOnce() + Send + 'static) {
        *self.0.lock().unwrap() = Some(Box::new(fault));
    }

    fn pending(&self) -> bool {
        self.0.lock().unwrap().is_some()
    }
}

fn before_write<C>(inner: C) -> (BeforeWrite<C>, Trigger) {
    let next = Arc::new(Mutex::new(None));
    (
        BeforeWrite {
            inner,
            next: next.clone(),
        },
        Trigger(next),
    )
}

#[async_trait]
impl<C: Connector> Connector for BeforeWrite<C> {
    fn system(&self) -> &SystemId {
        self.inner.system()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        self.inner.fetch(object).await
    }

    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        self.inner.fetch_changes(object, cursor).await
    }

    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        self.inner.fetch_records(object, ids).await
    }

    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let fault = self.next.lock().unwrap().take();
        if let Some(fault) = fault {
            fault();
        }
        self.inner.apply(object, ops).await
    }
}

// ----- what each contact should hold -----

/// A contact as both systems should hold it, phones by their digits.
#[derive(Debug, Clone, PartialEq)]
struct Person {
    first: Option<String>,
    last: Option<String>,
    phone: Option<String>,
}

/// Every contact that should exist, by lower-cased email.
type Model = BTreeMap<String, Person>;

fn person(first: &str, last: Option<&str>, phone: Option<&str>) -> Person {
    Person {
        first: Some(first.to_owned()),
        last: last.map(str::to_owned),
        phone: phone.map(digits),
    }
}

/// The last ten digits of a phone: the number, whatever form it is in.
fn digits(phone: &str) -> String {
    let all: String = phone.chars().filter(char::is_ascii_digit).collect();
    all[all.len().saturating_sub(10)..].to_owned()
}

fn text(row: &Row, field: &str) -> Option<String> {
    row.fields
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn held(row: &Row, [email, first, last, phone]: [&str; 4]) -> (String, Person) {
    let email = text(row, email).expect("every contact has an email");
    let person = Person {
        first: text(row, first),
        last: text(row, last),
        phone: text(row, phone).map(|p| digits(&p)),
    };
    (email.to_lowercase(), person)
}

const HS_FIELDS: [&str; 4] = ["email", "firstname", "lastname", "phone"];
const SF_FIELDS: [&str; 4] = ["Email", "FirstName", "LastName", "Phone"];

/// Each system's contacts by lower-cased email; panics on an email held
/// twice in one system.
fn contacts(hs: &HubSpot, sf: &Salesforce) -> (Model, Model) {
    let mut hubspot = Model::new();
    for row in hs.records(OBJ) {
        let (email, p) = held(&row, HS_FIELDS);
        assert!(
            hubspot.insert(email.clone(), p).is_none(),
            "{email} twice in HubSpot"
        );
    }
    let mut salesforce = Model::new();
    for row in sf.records("Contact") {
        let (email, p) = held(&row, SF_FIELDS);
        assert!(
            salesforce.insert(email.clone(), p).is_none(),
            "{email} twice in Salesforce"
        );
    }
    (hubspot, salesforce)
}

/// Both systems hold exactly the model: every contact once, every value
/// as the model says.
fn assert_both_hold(hs: &HubSpot, sf: &Salesforce, model: &Model) {
    let (hubspot, salesforce) = contacts(hs, sf);
    for (system, held) in [("HubSpot", &hubspot), ("Salesforce", &salesforce)] {
        let emails: BTreeSet<&String> = held.keys().collect();
        let expected: BTreeSet<&String> = model.keys().collect();
        assert_eq!(emails, expected, "the contacts {system} holds");
        for (email, p) in model {
            assert_eq!(&held[email], p, "{email} in {system}");
        }
    }
}

fn hs_row(hs: &HubSpot, email: &str) -> Row {
    let rows: Vec<Row> = hs
        .records(OBJ)
        .into_iter()
        .filter(|r| text(r, "email").is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .collect();
    assert_eq!(rows.len(), 1, "{email} in HubSpot");
    rows.into_iter().next().unwrap()
}

fn sf_row(sf: &Salesforce, email: &str) -> Row {
    let rows: Vec<Row> = sf
        .records("Contact")
        .into_iter()
        .filter(|r| text(r, "Email").is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .collect();
    assert_eq!(rows.len(), 1, "{email} in Salesforce");
    rows.into_iter().next().unwrap()
}

fn props(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Waits until the wall clock is in a later millisecond than `t`, so that
/// an edit made after it is the newer by both servers' clocks.
async fn after_millisecond(t: DateTime<Utc>) {
    while Utc::now().timestamp_millis() <= t.timestamp_millis() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// ----- the setup -----

fn map() -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(["hubspot", "salesforce"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .field(
            Field::new("email")
                .native("hubspot", "email")
                .native("salesforce", "Email")
                .case_insensitive(),
        )
        // A first name both sides changed differently waits for a person.
        .field(
            Field::new("first_name")
                .native("hubspot", "firstname")
                .native("salesforce", "FirstName")
                .policy(ConflictPolicy::ManualReview),
        )
        // A last name: the later change wins.
        .field(
            Field::new("last_name")
                .native("hubspot", "lastname")
                .native("salesforce", "LastName")
                .policy(ConflictPolicy::LastWriteWins),
        )
        .field(
            Field::new("phone")
                .native("hubspot", "phone")
                .native("salesforce", "Phone"),
        )
        .build()
        .unwrap()
}

fn limit() -> RateLimit {
    RateLimit::builder(PACE, Duration::from_secs(1))
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap()
}

/// What a system's server answered and its limit permitted so far.
#[derive(Debug, Clone, Copy)]
struct Seen {
    requests: u64,
    permits: u64,
    rate_limited: u64,
    server_errors: u64,
}

struct World {
    hs: HubSpot,
    sf: Salesforce,
    hs_limit: RateLimit,
    sf_limit: RateLimit,
    hs_faults: Trigger,
    sf_faults: Trigger,
    store: MemoryStore,
    runner: SyncRunner,
}

impl World {
    async fn start() -> World {
        let hs = HubSpot::start(HS_TOKEN).await.unwrap();
        let sf = Salesforce::start(SF_TOKEN).await.unwrap();
        hs.faults().rate_limit(SERVER_LIMIT, Duration::from_secs(1));
        sf.faults().rate_limit(SERVER_LIMIT, Duration::from_secs(1));
        // Small pages, so that every read is several requests.
        sf.query_page_size(10);
        let (hs_limit, sf_limit) = (limit(), limit());
        let hubspot = HubSpotConnector::new("hubspot", hs.url(), Secret::new(HS_TOKEN))
            .properties(OBJ, HS_FIELDS)
            .page_size(10)
            .timeout(Duration::from_secs(10))
            .rate_limit(hs_limit.clone());
        let salesforce = SalesforceConnector::new("salesforce", sf.url(), Secret::new(SF_TOKEN))
            .sobject(OBJ, "Contact")
            .fields(OBJ, SF_FIELDS)
            .conditional(true)
            .timeout(Duration::from_secs(10))
            .rate_limit(sf_limit.clone());
        let (hubspot, hs_faults) = before_write(hubspot);
        let (salesforce, sf_faults) = before_write(salesforce);
        let store = MemoryStore::new();
        let runner = SyncRunner::builder(SyncEngine::new(map()))
            .connector(hubspot)
            .connector(salesforce)
            .store(store.clone())
            .sleeper(tokio::time::sleep)
            .rate_limit("hubspot", hs_limit.clone())
            .rate_limit("salesforce", sf_limit.clone())
            .batches_in_flight(4)
            .retry(
                RetryPolicy::new()
                    .max_attempts(8)
                    .base_delay(Duration::from_millis(20))
                    .max_delay(Duration::from_secs(2))
                    .jitter_seed(17),
            )
            .build()
            .unwrap();
        World {
            hs,
            sf,
            hs_limit,
            sf_limit,
            hs_faults,
            sf_faults,
            store,
            runner,
        }
    }

    fn seen(&self) -> [Seen; 2] {
        let of = |stats: recsync_test_servers::Stats, limit: &RateLimit| Seen {
            requests: stats.requests,
            permits: limit.stats().requests,
            rate_limited: stats.rate_limited,
            server_errors: stats.server_errors,
        };
        [
            of(self.hs.faults().stats(), &self.hs_limit),
            of(self.sf.faults().stats(), &self.sf_limit),
        ]
    }

    /// One run, checked for what every run must keep: every request a
    /// server answered took a permit of its limit, and the runner's own
    /// count of requests (one per call) is what the server answered less
    /// the connector's extra requests. Returns the report and, per system,
    /// the server's answers in the run.
    async fn run(&self) -> (SyncReport, [Seen; 2]) {
        let before = self.seen();
        let report = self.runner.run().await.unwrap();
        let after = self.seen();
        let mut delta = after;
        for (s, name) in ["hubspot", "salesforce"].iter().enumerate() {
            let d = Seen {
                requests: after[s].requests - before[s].requests,
                permits: after[s].permits - before[s].permits,
                rate_limited: after[s].rate_limited - before[s].rate_limited,
                server_errors: after[s].server_errors - before[s].server_errors,
            };
            assert_eq!(
                d.permits, d.requests,
                "{name}: every request took a permit: {d:?}\n{report}"
            );
            let counted = report.system(name).unwrap().requests as u64;
            assert!(
                counted >= 1 && counted <= d.requests,
                "{name}: the runner counted {counted} of {} requests\n{report}",
                d.requests
            );
            delta[s] = d;
        }
        (report, delta)
    }

    /// A dry run's ops, as (system, kind) pairs.
    async fn planned(&self) -> Vec<(String, OpKind)> {
        let plan = self.runner.dry_run().await.unwrap();
        plan.ops
            .iter()
            .map(|op| (op.system.to_string(), op.kind))
            .collect()
    }
}

fn counts(report: &SyncReport, system: &str) -> (usize, usize, usize, usize) {
    let s = report.system(system).unwrap();
    (
        s.applied.create,
        s.applied.update,
        s.applied.delete,
        s.failed.total(),
    )
}

/// Pages of `size` for `records`: the requests of one complete read.
fn pages(records: usize, size: usize) -> u64 {
    records.div_ceil(size).max(1) as u64
}

// ----- the story -----

#[tokio::test]
async fn contacts_converge_between_hubspot_and_salesforce_through_faults() {
    let w = World::start().await;
    let (hs, sf) = (&w.hs, &w.sf);
    let mut model = Model::new();

    // ---- 1. First sync ----
    // 20 contacts only in HubSpot, 20 only in Salesforce, 3 in both (the
    // email cased differently), and one HubSpot contact without the last
    // name Salesforce requires.
    for i in 0..20 {
        let (email, first, last) = (
            format!("hs{i}@example.com"),
            format!("Hub{i}"),
            format!("Spot{i}"),
        );
        let phone = format!("+1555011{i:04}");
        hs.insert(
            OBJ,
            props(&[
                ("email", json!(email)),
                ("firstname", json!(first)),
                ("lastname", json!(last)),
                ("phone", json!(phone)),
            ]),
        );
        model.insert(email, person(&first, Some(&last), Some(&phone)));
    }
    for j in 0..20 {
        let (email, first, last) = (
            format!("sf{j}@example.com"),
            format!("Sales{j}"),
            format!("Force{j}"),
        );
        // Salesforce keeps a phone as typed; HubSpot will store its own form.
        let phone = format!("(555) 012-{j:04}");
        sf.insert(
            "Contact",
            props(&[
                ("Email", json!(email)),
                ("FirstName", json!(first)),
                ("LastName", json!(last)),
                ("Phone", json!(phone)),
            ]),
        );
        model.insert(email, person(&first, Some(&last), Some(&phone)));
    }
    for k in 0..3 {
        let phone = format!("+1555013{k:04}");
        hs.insert(
            OBJ,
            props(&[
                ("email", json!(format!("Both{k}@Example.com"))),
                ("firstname", json!(format!("Both{k}"))),
                ("lastname", json!("Sides")),
                ("phone", json!(phone)),
            ]),
        );
        sf.insert(
            "Contact",
            props(&[
                ("Email", json!(format!("both{k}@example.com"))),
                ("FirstName", json!(format!("Both{k}"))),
                ("LastName", json!("Sides")),
                ("Phone", json!(phone)),
            ]),
        );
        model.insert(
            format!("both{k}@example.com"),
            person(&format!("Both{k}"), Some("Sides"), Some(&phone)),
        );
    }
    let nolast = hs.insert(
        OBJ,
        props(&[
            ("email", json!("nolast@example.com")),
            ("firstname", json!("Nola")),
        ]),
    );

    let (report, seen) = w.run().await;
    // 20 made in Salesforce, 20 in HubSpot; the 3 in both matched, not
    // made again; the contact without a last name refused by Salesforce
    // (REQUIRED_FIELD_MISSING), reported by field, and nothing else held up.
    assert_eq!(counts(&report, "hubspot"), (20, 0, 0, 0), "{report}");
    assert_eq!(counts(&report, "salesforce"), (20, 0, 0, 1), "{report}");
    assert_eq!(report.errors.len(), 1, "{report}");
    let refused = &report.errors[0];
    assert_eq!(
        refused.kind,
        ErrorKind::Validation {
            field: Some("LastName".into())
        },
        "{report}"
    );
    assert_eq!(refused.ops.len(), 1);
    assert_eq!(refused.ops[0].kind, OpKind::Create);
    assert_eq!(refused.ops[0].system, "salesforce");
    assert_eq!(report.retries(), 0, "{report}");
    // Both sides read over several pages (24 HubSpot contacts, 23 in
    // Salesforce before the sync), written in one batch each and read back.
    assert_eq!(report.system("hubspot").unwrap().fetched, 24);
    assert_eq!(report.system("salesforce").unwrap().fetched, 23);
    assert_eq!(seen[0].requests, pages(24, 10) + 2, "{seen:?}");
    assert_eq!(seen[1].requests, pages(23, 10) + 2, "{seen:?}");
    let mut expected = model.clone();
    let (hubspot, salesforce) = contacts(hs, sf);
    assert_eq!(hubspot.len(), 44);
    assert!(!salesforce.contains_key("nolast@example.com"));
    expected.insert("nolast@example.com".into(), person("Nola", None, None));
    assert_eq!(hubspot, expected, "HubSpot holds every contact once");
    expected.remove("nolast@example.com");
    assert_eq!(
        salesforce, expected,
        "Salesforce holds every contact it can once"
    );
    // HubSpot stored Salesforce's phones in its own form; Salesforce keeps
    // them as typed.
    assert_eq!(
        hs_row(hs, "sf7@example.com").fields["phone"],
        json!("+15550120007")
    );
    assert_eq!(
        sf_row(sf, "sf7@example.com").fields["Phone"],
        json!("(555) 012-0007")
    );
    // The rewrite settles: what is left to plan is the refused create.
    assert_eq!(
        w.planned().await,
        [("salesforce".to_owned(), OpKind::Create)]
    );

    // ---- 2. Edits on both sides ----
    // Different records: a last name in HubSpot, a first name in Salesforce.
    hs.edit(
        OBJ,
        &hs_row(hs, "hs1@example.com").id,
        props(&[("lastname", json!("Spot-One"))]),
    );
    model.get_mut("hs1@example.com").unwrap().last = Some("Spot-One".into());
    sf.edit(
        "Contact",
        &sf_row(sf, "sf1@example.com").id,
        props(&[("FirstName", json!("Sal"))]),
    );
    model.get_mut("sf1@example.com").unwrap().first = Some("Sal".into());
    // One record, different fields: its phone in HubSpot, its last name in
    // Salesforce.
    hs.edit(
        OBJ,
        &hs_row(hs, "hs2@example.com").id,
        props(&[("phone", json!("(555) 010-7777"))]),
    );
    model.get_mut("hs2@example.com").unwrap().phone = Some(digits("5550107777"));
    sf.edit(
        "Contact",
        &sf_row(sf, "hs2@example.com").id,
        props(&[("LastName", json!("Two-Spot"))]),
    );
    model.get_mut("hs2@example.com").unwrap().last = Some("Two-Spot".into());
    // One field on both sides: a first name, under manual review.
    hs.edit(
        OBJ,
        &hs_row(hs, "sf3@example.com").id,
        props(&[("firstname", json!("Salvatore"))]),
    );
    sf.edit(
        "Contact",
        &sf_row(sf, "sf3@example.com").id,
        props(&[("FirstName", json!("Salvo"))]),
    );
    // A phone typed in Salesforce, which HubSpot will store in its form.
    sf.edit(
        "Contact",
        &sf_row(sf, "sf4@example.com").id,
        props(&[("Phone", json!("555.010.8888"))]),
    );
    model.get_mut("sf4@example.com").unwrap().phone = Some(digits("5550108888"));
    // The missing last name, added in HubSpot.
    hs.edit(OBJ, &nolast, props(&[("lastname", json!("Lastly"))]));
    model.insert(
        "nolast@example.com".into(),
        person("Nola", Some("Lastly"), None),
    );

    let (report, _) = w.run().await;
    // Salesforce: hs1's last name, hs2's phone, the contact made at last;
    // HubSpot: sf1's first name, hs2's last name, sf4's phone.
    assert_eq!(counts(&report, "salesforce"), (1, 2, 0, 0), "{report}");
    assert_eq!(counts(&report, "hubspot"), (0, 3, 0, 0), "{report}");
    assert_eq!(report.conflicts, 1, "{report}");
    assert!(report.errors.is_empty(), "{report}");
    // The conflict is held: nothing written for it, both values kept, and
    // both listed for the reviewer.
    assert_eq!(
        hs_row(hs, "sf3@example.com").fields["firstname"],
        json!("Salvatore")
    );
    assert_eq!(
        sf_row(sf, "sf3@example.com").fields["FirstName"],
        json!("Salvo")
    );
    let queue = ReviewQueue::new(&w.store, OBJ);
    let open = queue.open().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let ReviewItem::Field(conflict) = &open[0] else {
        panic!("not a field conflict: {open:?}");
    };
    assert_eq!(conflict.field, "first_name");
    assert_eq!(conflict.baseline, Some(json!("Sales3")));
    let candidates: Vec<(String, Value)> = conflict
        .candidates
        .iter()
        .map(|c| (c.system.to_string(), c.value.clone()))
        .collect();
    assert_eq!(
        candidates,
        [
            ("hubspot".to_owned(), json!("Salvatore")),
            ("salesforce".to_owned(), json!("Salvo")),
        ]
    );
    // The rewritten phone: HubSpot holds its form, Salesforce what was typed.
    assert_eq!(
        hs_row(hs, "sf4@example.com").fields["phone"],
        json!("+15550108888")
    );
    assert_eq!(
        sf_row(sf, "sf4@example.com").fields["Phone"],
        json!("555.010.8888")
    );
    // A reviewer takes Salesforce's; the next run writes it to HubSpot.
    queue
        .resolve(conflict.id, ReviewChoice::System("salesforce".into()))
        .unwrap();
    model.get_mut("sf3@example.com").unwrap().first = Some("Salvo".into());
    let (report, _) = w.run().await;
    assert_eq!(counts(&report, "hubspot"), (0, 1, 0, 0), "{report}");
    assert_eq!(report.planned(), 1, "{report}");
    assert_eq!((report.conflicts, report.failed()), (0, 0), "{report}");
    assert!(queue.open().unwrap().is_empty());
    assert_both_hold(hs, sf, &model);
    assert!(
        w.planned().await.is_empty(),
        "settled: the rewritten phones stay put"
    );

    // ---- 3. A conditional write refused ----
    // hs5's last name changes in HubSpot; the run will write it to
    // Salesforce, where a person changes it too, just before the write.
    let edited = hs.edit(
        OBJ,
        &hs_row(hs, "hs5@example.com").id,
        props(&[("lastname", json!("Spot-Hub"))]),
    );
    after_millisecond(edited.updated).await;
    let sf5 = sf_row(sf, "hs5@example.com");
    sf.edit_before_next_write(
        "Contact",
        &sf5.id,
        props(&[("LastName", json!("Spot-Person"))]),
    );
    let (report, _) = w.run().await;
    // Salesforce refused the write (If-Match: the record moved on), the
    // runner read the entity again in the same run and decided again: the
    // later change, the person's, wins and reaches HubSpot.
    let kept = sf.get("Contact", &sf5.id).unwrap();
    assert_eq!(
        kept.fields["LastName"],
        json!("Spot-Person"),
        "the person's edit is kept\n{report}"
    );
    assert!(kept.updated > edited.updated);
    assert_eq!(report.replanned, 1, "{report}");
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!(counts(&report, "hubspot"), (0, 1, 0, 0), "{report}");
    assert_eq!(counts(&report, "salesforce"), (0, 0, 0, 0), "{report}");
    model.get_mut("hs5@example.com").unwrap().last = Some("Spot-Person".into());
    assert_both_hold(hs, sf, &model);
    assert!(w.planned().await.is_empty());

    // ---- 4. A 429 storm ----
    // An import of 30 contacts into HubSpot and 10 phones changed there:
    // 40 writes to Salesforce in three requests, and their read-back in
    // two. As the first write goes out, Salesforce starts letting through
    // only 2 requests a second (another client on the org, say).
    for i in 0..30 {
        let (email, first, last) = (
            format!("import{i}@example.com"),
            format!("Imp{i}"),
            format!("Ort{i}"),
        );
        hs.insert(
            OBJ,
            props(&[
                ("email", json!(email)),
                ("firstname", json!(first)),
                ("lastname", json!(last)),
            ]),
        );
        model.insert(email, person(&first, Some(&last), None));
    }
    for i in 10..20 {
        let email = format!("hs{i}@example.com");
        let phone = format!("+1555014{i:04}");
        hs.edit(
            OBJ,
            &hs_row(hs, &email).id,
            props(&[("phone", json!(phone))]),
        );
        model.get_mut(&email).unwrap().phone = Some(digits(&phone));
    }
    let storm = sf.faults().clone();
    w.sf_faults
        .before_next_write(move || storm.rate_limit(2, Duration::from_secs(1)));
    let (report, seen) = w.run().await;
    assert!(!w.sf_faults.pending(), "the storm started");
    sf.faults().rate_limit(SERVER_LIMIT, Duration::from_secs(1));
    // Refused with 429 and Retry-After, each time retried after it (every
    // holder of the limit paused), and the run still wrote everything.
    let sf_report = report.system("salesforce").unwrap();
    assert!(seen[1].rate_limited >= 1, "{seen:?}\n{report}");
    assert_eq!(
        sf_report.retries as u64, seen[1].rate_limited,
        "one retry per 429\n{report}"
    );
    assert_eq!(counts(&report, "salesforce"), (30, 10, 0, 0), "{report}");
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(
        report.retries(),
        sf_report.retries,
        "HubSpot was not refused\n{report}"
    );
    // The runner's requests: the read, three write batches and two
    // read-backs, each once plus its retries.
    assert_eq!(sf_report.requests, 6 + sf_report.retries, "{report}");
    assert_both_hold(hs, sf, &model);
    assert!(w.planned().await.is_empty());

    // ---- 5. A 5xx burst ----
    // Five last names changed in Salesforce and a contact deleted there:
    // five updates and a delete (a read, then an archive) for HubSpot, and
    // its next three requests answered 503.
    for j in 10..15 {
        let email = format!("sf{j}@example.com");
        let last = format!("Force-{j}");
        sf.edit(
            "Contact",
            &sf_row(sf, &email).id,
            props(&[("LastName", json!(last))]),
        );
        model.get_mut(&email).unwrap().last = Some(last);
    }
    let gone = sf_row(sf, "sf19@example.com");
    assert!(sf.delete("Contact", &gone.id));
    model.remove("sf19@example.com");
    let burst = hs.faults().clone();
    w.hs_faults
        .before_next_write(move || burst.fail_next(3, 503));
    let (report, seen) = w.run().await;
    assert!(!w.hs_faults.pending(), "the burst started");
    assert_eq!(seen[0].server_errors, 3, "{seen:?}");
    // Each 503 failed a call, and each call was tried again.
    assert_eq!(report.system("hubspot").unwrap().retries, 3, "{report}");
    assert_eq!(counts(&report, "hubspot"), (0, 5, 1, 0), "{report}");
    assert_eq!(counts(&report, "salesforce"), (0, 0, 0, 0), "{report}");
    assert!(report.errors.is_empty(), "{report}");
    assert_both_hold(hs, sf, &model);

    // ---- 6. Settled ----
    assert!(w.planned().await.is_empty(), "nothing left to write");
    let (report, seen) = w.run().await;
    assert_eq!(report.planned(), 0, "{report}");
    assert_eq!(
        (report.conflicts, report.issues, report.held),
        (0, 0, 0),
        "{report}"
    );
    // A quiet run is one complete read per system: a call the runner
    // paced, the later pages the connector did.
    let contacts = model.len();
    assert_eq!(contacts, 20 + 20 + 3 + 1 + 30 - 1);
    for (s, name) in ["hubspot", "salesforce"].iter().enumerate() {
        let system = report.system(name).unwrap();
        assert_eq!(system.fetched, contacts, "{report}");
        assert_eq!(system.requests, 1, "{report}");
        assert_eq!(seen[s].requests, pages(contacts, 10), "{name}: {seen:?}");
        assert!(system.unmapped.is_empty(), "{report}");
    }
    assert_both_hold(hs, sf, &model);
    // Over the whole story, not one request went out unpaced.
    let [hs_seen, sf_seen] = w.seen();
    assert_eq!(hs_seen.permits, hs_seen.requests);
    assert_eq!(sf_seen.permits, sf_seen.requests);
}

//! Redaction by construction: one secret, held in fields the map marks
//! `sensitive()`, is pushed through every public output recsync makes, and
//! shows in none of them. The same outputs do show the value of a field that
//! is not sensitive (a canary), so a check that finds nothing is known to
//! have looked where values are printed; and serde keeps the real values
//! (plans and baselines are data, not logs).
//!
//! The secret (`s3cr3t-VALUE-4242`, with a suffix where two systems must
//! disagree) is looked for case-insensitively, since a case-insensitive key
//! is printed normalized. The outputs, each as `Debug` (`{:?}` and
//! `{:#?}`) and, where the type has one, `Display`:
//!
//! - **Plans**: `SyncPlan` (and `display_unredacted`, asked for by name,
//!   is checked to show the values), every `WriteOp` and `FieldWrite`
//!   (creates, updates, writes of a reviewer's decision), every `Conflict`
//!   and `ConflictCandidate` (manual review, a custom resolver's hold),
//!   each conflict as the systems hold it (`Conflict::native`: the
//!   `NativeConflict`, each `NativeCandidate`, `NativeValue` and
//!   `NotNative`), through the engine's map and through a map that does
//!   not mark the fields sensitive and fails to convert every value (its
//!   errors quote them: the conflict's flag must redact them),
//!   every `Hold`, every `Issue` (an ambiguous match on a sensitive key, a
//!   transform failure, an unmapped value, an invalid value) and its
//!   `IssueKind` where the kind carries an error (an ambiguous match's
//!   kind alone does not know the key is sensitive; its `Issue` does).
//! - **Errors**: `MappingError` (a transform's, an unmapped value's) and the
//!   `TransformError` inside it, `ValueProblem` (from a plan's issue and
//!   from `FieldSpec::check`), `PlanError`, `CommitError`, `ResolveError`
//!   (a value given to a held delete), `ReviewError`, `RunError` (a fetch
//!   that failed, with its `ConnectorError`), `StoreError` for a damaged
//!   state file.
//! - **Baseline and review**: `Baseline`, `EntityRef`, `EntityRecord`,
//!   `Held`, `Observed` (a held conflict, and after a reviewer's decision),
//!   `ReviewChoice::Value`, `Review` (`Baseline::reviews`), a held
//!   `DeleteReview`, `ReviewItem` (`ReviewQueue::open`; also its
//!   `display_with` both maps), `ReviewQueue`.
//! - **A custom resolver's input**: `ConflictInput` and each `Candidate`.
//! - **Runner** (feature `testkit`): every `SyncEvent` of three runs, each
//!   `SyncReport`, the review queue of the runner's store (through the
//!   map), the plan of a dry run, `SyncRunner` and
//!   `SyncRunnerBuilder` (one of whose connectors derives `Debug` over a
//!   plain-string API key: the runner names systems, not connectors), a
//!   connector that holds its key in a `Secret`, the `Secret` itself, a
//!   `MemoryConnector`.
//! - **Stores**: `MemoryStore`, `JsonFileStore`, `SqliteStore` (feature
//!   `sqlite`), each holding a baseline with the secret.
//!
//! Records and snapshots are not outputs: they are what the systems hold,
//! before any map says which of their fields are sensitive.
#![cfg(feature = "testkit")]

use std::fmt::{Debug, Display};
use std::sync::{Arc, Mutex};

use recsync::baseline::ReviewChoice;
use recsync::mapping::{Builtin, Unmapped, Validation, ValueMap};
use recsync::plan::IssueKind;
use recsync::policy::{ConflictInput, ConflictResolver, Resolution};
use recsync::store::{JsonFileStore, ReviewItem, ReviewQueue};
use recsync::{
    Baseline, ConflictPolicy, Field, FieldMap, MemoryStore, Outcomes, Record, Snapshot, StateStore,
    SyncEngine, SyncPlan,
};
use serde_json::{json, Value};

mod common;
use common::{execute, sim, snapshots, Person};

const SECRET: &str = "s3cr3t-VALUE-4242";
/// What a leak looks like, in any case.
const NEEDLE: &str = "s3cr3t";
/// A value of a field that is not sensitive.
const CANARY: &str = "Visible-Canary";
const OBJ: &str = "contacts";

fn secret(tag: &str) -> String {
    format!("{SECRET}-{tag}")
}

/// Every output seen, by name.
#[derive(Default)]
struct Outputs {
    seen: Vec<(String, String)>,
}

impl Outputs {
    fn debug(&mut self, what: impl Into<String>, x: &dyn Debug) {
        let what = what.into();
        self.seen.push((format!("{what} Debug"), format!("{x:?}")));
        self.seen
            .push((format!("{what} Debug {{:#?}}"), format!("{x:#?}")));
    }

    fn display(&mut self, what: impl Into<String>, x: &dyn Display) {
        self.seen
            .push((format!("{} Display", what.into()), x.to_string()));
    }

    fn both<T: Debug + Display>(&mut self, what: impl Into<String>, x: &T) {
        let what = what.into();
        self.debug(what.clone(), x);
        self.display(what, x);
    }

    /// A plan and everything in it; its conflicts also as the systems of
    /// `map` hold them.
    fn plan(&mut self, what: &str, plan: &SyncPlan, map: &FieldMap) {
        self.both(format!("{what}: SyncPlan"), plan);
        for op in &plan.ops {
            self.debug(format!("{what}: WriteOp {} {}", op.kind, op.system), op);
            for w in &op.fields {
                self.debug(format!("{what}: FieldWrite {}", w.field), w);
            }
        }
        for c in &plan.conflicts {
            self.both(format!("{what}: Conflict {}", c.field), c);
            for cand in &c.candidates {
                self.debug(format!("{what}: ConflictCandidate {}", c.field), cand);
            }
            self.native(&format!("{what}: {}", c.field), c, map);
            self.native(
                &format!("{what}: {} (unflagged map)", c.field),
                c,
                &unflagged(),
            );
        }
        for h in &plan.held {
            self.debug(format!("{what}: Hold"), h);
        }
        for i in &plan.issues {
            let name = format!("{what}: Issue {} {:?}", i.system, i.field);
            self.debug(name.clone(), i);
            match &i.kind {
                IssueKind::Mapping { error } => {
                    self.debug(format!("{name} IssueKind"), &i.kind);
                    self.both(format!("{name} MappingError"), error);
                }
                IssueKind::InvalidValue { problem } => {
                    self.debug(format!("{name} IssueKind"), &i.kind);
                    self.both(format!("{name} ValueProblem"), problem);
                }
                _ => {}
            }
        }
    }

    /// A conflict as the systems of `map` hold it, and each part of it.
    fn native(&mut self, what: &str, conflict: &recsync::Conflict, map: &FieldMap) {
        let native = conflict.native(map);
        assert!(
            native.display_unredacted().to_string().contains(NEEDLE),
            "{what}: the unredacted screen shows no secret: the check looks in the wrong place"
        );
        self.both(format!("{what}: NativeConflict"), &native);
        for cand in &native.candidates {
            let what = format!("{what}: NativeCandidate {}", cand.system);
            self.debug(what.clone(), cand);
            for (part, value) in [
                ("value", Some(&cand.value)),
                ("baseline", cand.baseline.as_ref()),
            ] {
                let Some(value) = value else { continue };
                self.debug(format!("{what} {part} NativeValue"), value);
                if let Some(why) = value.not_native() {
                    self.both(format!("{what} {part} NotNative"), why);
                }
            }
        }
    }

    /// A baseline, each entity in it, and what it holds for review.
    fn baseline(&mut self, what: &str, baseline: &Baseline) {
        self.debug(format!("{what}: Baseline"), baseline);
        for e in baseline.entities() {
            self.debug(format!("{what}: EntityRef {}", e.id()), &e);
            self.debug(format!("{what}: EntityRecord {}", e.id()), &e.to_record());
            for (field, held) in e.held() {
                self.debug(format!("{what}: Held {field}"), held);
                for (system, observed) in &held.observed {
                    self.debug(format!("{what}: Observed {field} {system}"), observed);
                }
            }
        }
        for review in baseline.reviews() {
            self.debug(format!("{what}: Review {}", review.id()), &review);
            if let recsync::baseline::Review::Delete(d) = review {
                self.both(format!("{what}: DeleteReview {}", d.id), d);
            }
        }
    }

    /// A review queue's items, plain and through each map.
    fn items(&mut self, what: &str, items: &[ReviewItem], map: &FieldMap) {
        for item in items {
            let what = format!("{what}: ReviewItem {}", item.id());
            self.both(what.clone(), item);
            self.display(format!("{what} display_with"), &item.display_with(map));
            self.display(
                format!("{what} display_with (unflagged map)"),
                &item.display_with(&unflagged()),
            );
        }
    }

    /// The names of the outputs that show the secret.
    fn leaks(&self) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|(_, text)| text.to_lowercase().contains(NEEDLE))
            .map(|(what, _)| what.as_str())
            .collect()
    }

    fn assert_clean(&self) {
        if std::env::var_os("REDACTION_DUMP").is_some() {
            for (what, text) in &self.seen {
                eprintln!("== {what}\n{text}");
            }
        }
        let leaks = self.leaks();
        assert!(
            leaks.is_empty(),
            "the secret shows in {} of {} outputs: {leaks:#?}",
            leaks.len(),
            self.seen.len()
        );
    }

    /// Some output named `what` (a prefix) shows the canary.
    fn assert_canary_in(&self, what: &str) {
        assert!(
            self.seen
                .iter()
                .any(|(name, text)| name.contains(what) && text.contains(CANARY)),
            "no {what} output shows the canary: the check looks in the wrong place"
        );
    }
}

/// A custom resolver that keeps what its input looks like, and holds.
#[derive(Debug, Clone, Default)]
struct Spy {
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl ConflictResolver for Spy {
    fn name(&self) -> &str {
        "spy"
    }

    fn resolve(&self, input: &ConflictInput<'_>) -> Resolution {
        let mut seen = self.seen.lock().unwrap();
        seen.push(("ConflictInput Debug".into(), format!("{input:?}")));
        for c in input.candidates {
            seen.push(("Candidate Debug".into(), format!("{c:?}")));
        }
        Resolution::Hold("held by the spy".into())
    }
}

/// Every kind of field a secret can sit in, between `crm` and `erp`.
fn map(spy: &Spy) -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "erp"])
        .key("email")
        .field(Field::new("email").case_insensitive().sensitive())
        .field(Field::new("name"))
        .field(
            Field::new("api_key")
                .sensitive()
                .policy(ConflictPolicy::ManualReview),
        )
        .field(
            Field::new("pin")
                .sensitive()
                .policy(ConflictPolicy::custom(spy.clone())),
        )
        .field(
            Field::new("tax_id")
                .sensitive()
                .transform("crm", Builtin::StringToNumber),
        )
        .field(
            Field::new("tier")
                .sensitive()
                .value_map(ValueMap::new().both([("crm", "gold"), ("erp", "G")])),
        )
        .field(
            Field::new("iban")
                .sensitive()
                .validate("erp", Validation::new().max_length(8)),
        )
        .build()
        .unwrap()
}

/// The same fields, none marked sensitive, each converted in a way that
/// fails on the secrets and quotes them in its error: only the conflict's
/// own flag keeps them out of a reviewer's screen through this map.
fn unflagged() -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "erp"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(
            Field::new("api_key").value_map(
                ValueMap::new()
                    .both([("crm", "gold"), ("erp", "G")])
                    .unmapped(Unmapped::Error),
            ),
        )
        .field(
            Field::new("pin")
                .transform("crm", Builtin::StringToNumber)
                .transform("erp", Builtin::StringToNumber),
        )
        .build()
        .unwrap()
}

fn record(id: &str, fields: &[(&str, Value)]) -> Record {
    fields
        .iter()
        .fold(Record::new(id), |r, (k, v)| r.field(*k, v.clone()))
}

/// The engine, its baseline and reviews, and every error with a value.
#[test]
fn the_engine_prints_no_sensitive_value() {
    let mut out = Outputs::default();
    let spy = Spy::default();
    let engine = SyncEngine::new(map(&spy));
    let mut systems = [sim("crm", "c"), sim("erp", "e")];
    let mut baseline = Baseline::new();

    // 1. Creates carrying secrets, and every kind of issue about one.
    systems[0].put(record(
        "c1",
        &[
            ("email", json!("ada@x.io")),
            ("name", json!(CANARY)),
            ("api_key", json!(secret("a"))),
            ("pin", json!(secret("p"))),
        ],
    ));
    systems[0].put(record(
        "c2",
        &[("email", json!("bob@x.io")), ("tax_id", json!(SECRET))],
    ));
    systems[0].put(record(
        "c3",
        &[("email", json!("cy@x.io")), ("tier", json!(SECRET))],
    ));
    systems[0].put(record(
        "c4",
        &[("email", json!("di@x.io")), ("iban", json!(SECRET))],
    ));
    let shared = format!("{SECRET}@x.io");
    systems[0].put(record("c5", &[("email", json!(shared))]));
    systems[0].put(record("c6", &[("email", json!(shared))]));
    let plan = engine.plan(&baseline, &snapshots(&systems)).unwrap();
    let kinds: Vec<&IssueKind> = plan.issues.iter().map(|i| &i.kind).collect();
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, IssueKind::AmbiguousMatch { .. })),
        "{plan}"
    );
    assert!(
        kinds
            .iter()
            .filter(|k| matches!(k, IssueKind::Mapping { .. }))
            .count()
            == 2,
        "{plan}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, IssueKind::InvalidValue { .. })),
        "{plan}"
    );
    // Serde keeps the values: a serialized plan is data, not a log.
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains(&secret("a")) && json.contains(SECRET));
    // So does the unredacted display, asked for by name.
    assert!(plan.display_unredacted().to_string().contains(&secret("a")));
    out.plan("first plan", &plan, engine.map());
    let outcomes = execute(&mut systems, &plan);
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    let e1 = baseline.find_linked("crm", "c1").unwrap().id().clone();
    let erp_of_c1 = baseline
        .entity(&e1)
        .unwrap()
        .link("erp")
        .unwrap()
        .to_owned();
    let erp_of_c4 = baseline
        .find_linked("crm", "c4")
        .unwrap()
        .link("erp")
        .unwrap()
        .to_owned();

    // 2. Both systems change both secrets: a conflict held for review, and
    // one a custom resolver holds.
    systems[0].set("c1", "api_key", secret("crm"));
    systems[0].set("c1", "pin", secret("crm-pin"));
    systems[1].set(&erp_of_c1, "api_key", secret("erp"));
    systems[1].set(&erp_of_c1, "pin", secret("erp-pin"));
    let plan = engine.plan(&baseline, &snapshots(&systems)).unwrap();
    assert_eq!(plan.conflicts.len(), 2, "{plan}");
    out.plan("conflict plan", &plan, engine.map());
    let outcomes = execute(&mut systems, &plan);
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    assert_eq!(baseline.reviews().len(), 2);
    out.baseline("held baseline", &baseline);
    for (what, text) in spy.seen.lock().unwrap().iter() {
        out.seen.push((format!("resolver: {what}"), text.clone()));
    }
    assert!(!spy.seen.lock().unwrap().is_empty());

    // The review queue of a store holding that baseline.
    let store = MemoryStore::new();
    store.replace(OBJ, &baseline).unwrap();
    out.debug("MemoryStore", &store);
    let queue = ReviewQueue::new(&store, OBJ);
    out.debug("ReviewQueue", &queue);
    let items = queue.open().unwrap();
    assert_eq!(items.len(), 2);
    for item in &items {
        out.debug(format!("ReviewItem {}", item.id()), item);
    }
    out.items("queue", &items, engine.map());

    // 3. A reviewer decides on a value: kept in the baseline, then written.
    let api_conflict = plan
        .conflicts
        .iter()
        .find(|c| c.field == "api_key")
        .unwrap()
        .id;
    let choice = ReviewChoice::Value(json!(secret("reviewed")));
    out.debug("ReviewChoice", &choice);
    baseline.resolve(api_conflict, choice).unwrap();
    out.baseline("resolved baseline", &baseline);
    let plan = engine.plan(&baseline, &snapshots(&systems)).unwrap();
    assert!(
        plan.ops
            .iter()
            .flat_map(|op| &op.fields)
            .any(|w| w.value == json!(secret("reviewed"))),
        "{plan}"
    );
    out.plan("reviewed plan", &plan, engine.map());
    let outcomes = execute(&mut systems, &plan);
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();

    // 4. A held delete given a value: refused, naming the choice.
    systems[1].remove(&erp_of_c4);
    let plan = engine.plan(&baseline, &snapshots(&systems)).unwrap();
    out.plan("delete plan", &plan, engine.map());
    let outcomes = execute(&mut systems, &plan);
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    let delete = baseline
        .reviews()
        .iter()
        .find_map(|r| match r {
            recsync::baseline::Review::Delete(d) => Some(d.id),
            _ => None,
        })
        .unwrap();
    let err = baseline
        .resolve(delete, ReviewChoice::Value(json!(SECRET)))
        .unwrap_err();
    out.both("ResolveError", &err);
    store.replace(OBJ, &baseline).unwrap();
    let err = ReviewQueue::new(&store, OBJ)
        .resolve(delete, ReviewChoice::Value(json!(SECRET)))
        .unwrap_err();
    out.both("ReviewError", &err);
    out.baseline("final baseline", &baseline);

    // 5. Errors the map and the engine give directly.
    let map = engine.map();
    let tax = map.field("tax_id").unwrap();
    let err = tax.to_canonical("crm", &json!(SECRET)).unwrap_err();
    out.both("MappingError (transform)", &err);
    if let recsync::mapping::MappingError::Transform { error, .. } = &err {
        out.both("TransformError", error);
    }
    let err = map
        .field("tier")
        .unwrap()
        .to_canonical("crm", &json!(SECRET))
        .unwrap_err();
    out.both("MappingError (unmapped)", &err);
    let err = map
        .field("iban")
        .unwrap()
        .check(1, &json!(SECRET))
        .unwrap_err();
    out.both("ValueProblem (check)", &err);
    let err = engine
        .plan(
            &baseline,
            &[Snapshot::complete(
                "nowhere",
                vec![record("x", &[("api_key", json!(SECRET))])],
            )],
        )
        .unwrap_err();
    out.both("PlanError", &err);
    let stale = engine.plan(&Baseline::new(), &snapshots(&systems)).unwrap();
    let err = engine
        .commit(&mut baseline, &stale, &Outcomes::all_applied(&stale))
        .unwrap_err();
    out.both("CommitError", &err);

    // 6. A JSON file store holding the baseline, and a damaged one.
    let dir = temp_dir("redaction");
    let _cleanup = Cleanup(dir.clone());
    let files = JsonFileStore::open(&dir).unwrap();
    files.replace(OBJ, &baseline).unwrap();
    out.debug("JsonFileStore", &files);
    assert!(std::fs::read_to_string(files.path_of(OBJ))
        .unwrap()
        .contains(SECRET));

    out.assert_canary_in("first plan: SyncPlan Debug");
    out.assert_canary_in("first plan: FieldWrite name");
    out.assert_clean();
}

/// A state file whose bytes were damaged so that the parser meets the
/// secret where it expects a number: the error does not quote it.
#[test]
fn a_corrupt_state_file_is_reported_without_its_values() {
    let dir = temp_dir("redaction-corrupt");
    let _cleanup = Cleanup(dir.clone());
    let files = JsonFileStore::open(&dir).unwrap();
    let mut baseline = Baseline::new();
    let engine = SyncEngine::new(map(&Spy::default()));
    let mut systems = [sim("crm", "c"), sim("erp", "e")];
    systems[0].put(record(
        "c1",
        &[("email", json!("ada@x.io")), ("api_key", json!(SECRET))],
    ));
    let plan = engine.plan(&baseline, &snapshots(&systems)).unwrap();
    let outcomes = execute(&mut systems, &plan);
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    files.replace(OBJ, &baseline).unwrap();
    let path = files.path_of(OBJ);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(SECRET));
    // The secret where the revision's number was.
    let damaged = text.replacen("\"revision\":1", &format!("\"revision\":\"{SECRET}\""), 1);
    assert_ne!(damaged, text, "the file has no revision to damage: {text}");
    std::fs::write(&path, damaged).unwrap();
    let err = files.load(OBJ).unwrap_err();
    let mut out = Outputs::default();
    out.both("StoreError (corrupt file)", &err);
    out.assert_clean();
}

#[cfg(feature = "sqlite")]
#[test]
fn the_sqlite_store_prints_no_value() {
    let dir = temp_dir("redaction-sqlite");
    let _cleanup = Cleanup(dir.clone());
    let store = recsync::store::SqliteStore::open(dir.join("state.db")).unwrap();
    let mut baseline = Baseline::new();
    let engine = SyncEngine::new(map(&Spy::default()));
    let mut systems = [sim("crm", "c"), sim("erp", "e")];
    systems[0].put(record(
        "c1",
        &[("email", json!("ada@x.io")), ("api_key", json!(SECRET))],
    ));
    let plan = engine.plan(&baseline, &snapshots(&systems)).unwrap();
    let outcomes = execute(&mut systems, &plan);
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    store.replace(OBJ, &baseline).unwrap();
    let mut out = Outputs::default();
    out.debug("SqliteStore", &store);
    out.assert_clean();
}

#[cfg(feature = "testkit")]
mod runner {
    use super::*;

    use async_trait::async_trait;
    use futures::executor::block_on;
    use recsync::connector::{Applied, Capabilities, Changes, Cursor};
    use recsync::plan::WriteOp;
    use recsync::runner::{RetryPolicy, RunError, SyncEvent};
    use recsync::testkit::{ManualClock, MemoryConnector};
    use recsync::{Connector, ConnectorError, Secret, SyncRunner, SystemId};

    /// A connector that keeps its API key in a [`Secret`]; it derives
    /// `Debug`.
    #[derive(Debug)]
    struct Keyed {
        inner: MemoryConnector,
        #[allow(dead_code)] // only printed
        api_key: Secret,
    }

    /// A careless connector: it derives `Debug` over its key as a string.
    #[derive(Debug)]
    struct Careless {
        inner: MemoryConnector,
        #[allow(dead_code)] // only printed
        api_key: String,
    }

    macro_rules! delegate {
        ($t:ty) => {
            #[async_trait]
            impl Connector for $t {
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
                    self.inner.apply(object, ops).await
                }
            }
        };
    }
    delegate!(Keyed);
    delegate!(Careless);

    fn drain(out: &mut Outputs, events: &mut futures::channel::mpsc::UnboundedReceiver<SyncEvent>) {
        while let Ok(event) = events.try_recv() {
            if let SyncEvent::RunDone { report } = &event {
                out.both("SyncReport", report);
            }
            out.both("SyncEvent", &event);
        }
    }

    #[test]
    fn the_runner_prints_no_sensitive_value_and_no_credential() {
        let mut out = Outputs::default();
        let clock = ManualClock::new("2026-03-01T09:00:00Z".parse().unwrap());
        let connector = |name: &str| {
            MemoryConnector::builder(name)
                .clock(clock.clone())
                .build()
                .unwrap()
        };
        let crm = connector("crm");
        let erp = connector("erp");
        let key = Secret::from(secret("api-key"));
        out.both("Secret", &key);
        assert_eq!(key.expose(), secret("api-key"));
        let keyed = Keyed {
            inner: crm.clone(),
            api_key: key,
        };
        out.debug("connector holding a Secret", &keyed);
        let careless = Careless {
            inner: erp.clone(),
            api_key: secret("careless-key"),
        };
        assert!(format!("{careless:?}").contains(&secret("careless-key")));
        let store = MemoryStore::new();
        let builder = SyncRunner::builder(SyncEngine::new(map(&Spy::default())))
            .connector(keyed)
            .connector(careless)
            .store(store.clone())
            .clock(clock.clone())
            .sleeper(clock.clone())
            .retry(RetryPolicy::new().max_attempts(1).no_jitter());
        out.debug("SyncRunnerBuilder", &builder);
        let runner = builder.build().unwrap();
        out.debug("SyncRunner", &runner);
        let mut events = runner.subscribe();

        let c1 = crm.insert(
            OBJ,
            [
                ("email", json!("ada@x.io")),
                ("name", json!(CANARY)),
                ("api_key", json!(secret("a"))),
            ],
        );
        crm.insert(
            OBJ,
            [("email", json!("bob@x.io")), ("tax_id", json!(SECRET))],
        );
        let plan = block_on(runner.dry_run()).unwrap();
        out.plan("dry run", &plan, &map(&Spy::default()));
        block_on(runner.run()).unwrap();
        drain(&mut out, &mut events);

        // A conflict on the key, held for review.
        clock.advance(chrono::TimeDelta::seconds(60));
        let e1 = erp.records(OBJ)[0].id.clone();
        crm.edit(OBJ, &c1, [("api_key", json!(secret("crm")))])
            .unwrap();
        erp.edit(OBJ, &e1, [("api_key", json!(secret("erp")))])
            .unwrap();
        let report = block_on(runner.run()).unwrap();
        assert_eq!(report.conflicts, 1, "{report}");
        drain(&mut out, &mut events);
        let items = ReviewQueue::new(&store, OBJ).open().unwrap();
        assert_eq!(items.len(), 1);
        out.items("runner queue", &items, &map(&Spy::default()));
        out.debug("MemoryStore after runs", &store);
        out.debug("MemoryConnector", &crm);
        out.baseline("runner baseline", &store.load(OBJ).unwrap());

        // A fetch that fails.
        crm.rate_limit_next(1, None);
        let err = block_on(runner.run()).unwrap_err();
        out.both("RunError", &err);
        if let RunError::Fetch { source, .. } = &err {
            out.both("ConnectorError", source);
        }
        drain(&mut out, &mut events);
        out.debug("SyncRunner after runs", &runner);

        out.assert_canary_in("dry run: FieldWrite name");
        out.assert_clean();
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "recsync-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

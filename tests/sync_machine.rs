//! A stateful property test in the style of vdirsyncer's `SyncMachine`:
//! three `MemoryConnector`s, random interleavings of user creates, edits,
//! deletes and sync runs under injected rate limits, transient failures,
//! failing ops and crashes. After fault-free runs every system holds the
//! same records with the same synced fields, each field holds the last
//! change a person made to it (last-write-wins), every record a person
//! deleted is gone everywhere, no record exists twice, and one more run
//! plans nothing.
#![cfg(feature = "testkit")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use recsync::connector::{Applied, Capabilities, Changes, Cursor};
use recsync::plan::WriteOp;
use recsync::runner::{RetryPolicy, RunError, SyncRunner};
use recsync::testkit::{ManualClock, MemoryConnector};
use recsync::{
    Connector, ConnectorError, DeleteEditPolicy, DeletePolicy, Field, FieldMap, Guards,
    MemoryStore, Snapshot, StateStore, SyncEngine, SystemId,
};
use serde_json::{json, Value};

const OBJ: &str = "contacts";
const SYSTEMS: [&str; 3] = ["a", "b", "c"];
const FIELDS: [&str; 2] = ["name", "phone"];

/// A fault armed on a system for one sync run.
#[derive(Debug, Clone)]
enum Fault {
    /// The next calls (fetch first) are rate limited.
    RateLimit { calls: usize, after: u64 },
    /// Transient failures, starting at the first apply.
    ApplyTransient(usize),
    /// Rate limits starting at the first apply.
    ApplyRateLimit(usize),
    /// The first apply dies after this many ops.
    Crash(usize),
    /// These positions of the first batch fail (transient: retried;
    /// permanent: given up).
    FailOps {
        positions: Vec<usize>,
        retryable: bool,
    },
}

#[derive(Debug, Clone)]
enum Act {
    Create {
        sys: usize,
    },
    Edit {
        sys: usize,
        pick: usize,
        field: usize,
    },
    Delete {
        sys: usize,
        pick: usize,
    },
    Sync {
        faults: Vec<(usize, Fault)>,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1usize..4, 0u64..5).prop_map(|(calls, after)| Fault::RateLimit { calls, after }),
        (1usize..4).prop_map(Fault::ApplyTransient),
        (1usize..4).prop_map(Fault::ApplyRateLimit),
        (0usize..4).prop_map(Fault::Crash),
        (prop::collection::vec(0usize..4, 1..3), any::<bool>()).prop_map(
            |(positions, retryable)| Fault::FailOps {
                positions,
                retryable
            }
        ),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        2 => (0usize..3).prop_map(|sys| Act::Create { sys }),
        4 => (0usize..3, 0usize..8, 0usize..2)
            .prop_map(|(sys, pick, field)| Act::Edit { sys, pick, field }),
        1 => (0usize..3, 0usize..8).prop_map(|(sys, pick)| Act::Delete { sys, pick }),
        3 => prop::collection::vec((0usize..3, fault()), 0..3)
            .prop_map(|faults| Act::Sync { faults }),
    ]
}

/// A `MemoryConnector` that arms a fault at its first `apply`.
#[derive(Debug, Clone)]
struct Armed {
    inner: MemoryConnector,
    on_apply: Arc<Mutex<Option<Fault>>>,
}

fn arm(c: &MemoryConnector, fault: &Fault) {
    match fault {
        Fault::RateLimit { calls, after } => {
            c.rate_limit_next(*calls, Some(Duration::from_secs(*after)));
        }
        Fault::ApplyRateLimit(calls) => c.rate_limit_next(*calls, Some(Duration::from_secs(1))),
        Fault::ApplyTransient(n) => c.fail_next_transient(*n),
        Fault::Crash(n) => c.crash_after_ops(*n),
        Fault::FailOps {
            positions,
            retryable,
        } => {
            let error = if *retryable {
                ConnectorError::transient("injected")
            } else {
                ConnectorError::permanent("injected")
            };
            c.fail_ops_in_next_apply(positions.iter().copied(), error);
        }
    }
}

#[async_trait]
impl Connector for Armed {
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
        let armed = self.on_apply.lock().unwrap().take();
        if let Some(fault) = armed {
            arm(&self.inner, &fault);
        }
        self.inner.apply(object, ops).await
    }
}

/// What a person last did to one entity (by its email).
#[derive(Debug, Default, Clone)]
struct Expect {
    deleted: bool,
    /// The last delete was of a record recsync had made but did not know
    /// of (the create's outcome was lost in a crash), or had made and never
    /// read back, in the system that reports complete snapshots: nothing
    /// says the record ever existed, so the next run may make it again
    /// (README, "Creates").
    may_return: bool,
    fields: BTreeMap<&'static str, Value>,
    /// Edits of a record in the third system that recsync has not seen
    /// yet (made by a lost create, or created and never read back), with
    /// the record's id: a run that reads the record sees them; a delete
    /// before that takes them along, unseen.
    unseen: Option<(String, BTreeMap<&'static str, Value>)>,
}

impl Expect {
    /// The edits a run has seen, or will: all but those of a record
    /// deleted before any run read it.
    fn seen(&mut self) {
        if let Some((_, edits)) = self.unseen.take() {
            self.fields.extend(edits);
        }
    }
}

struct Machine {
    clock: ManualClock,
    conns: Vec<MemoryConnector>,
    store: MemoryStore,
    armed: Vec<Armed>,
    runner: SyncRunner,
    model: BTreeMap<String, Expect>,
    created: usize,
    edits: usize,
}

fn start() -> DateTime<Utc> {
    "2026-05-01T00:00:00Z".parse().unwrap()
}

impl Machine {
    fn new() -> Self {
        Machine::with(None)
    }

    /// A machine whose runner leaves records edited less than `debounce`
    /// ago for a later run.
    fn with(debounce: Option<Duration>) -> Self {
        let clock = ManualClock::ticking(start(), TimeDelta::seconds(1));
        let conns: Vec<MemoryConnector> = SYSTEMS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                MemoryConnector::builder(*s)
                    .clock(clock.clone())
                    // One system reads complete snapshots, one takes small
                    // batches.
                    .incremental_fetch(i != 2)
                    .max_batch_size(if i == 1 { 2 } else { 100 })
                    .build()
                    .unwrap()
            })
            .collect();
        let map = FieldMap::builder()
            .object(OBJ)
            .systems(SYSTEMS)
            .key("email")
            .deletes(DeletePolicy::Propagate)
            .delete_vs_edit(DeleteEditPolicy::DeleteWins)
            .guards(Guards::off())
            .field(Field::new("email"))
            .field(Field::new("name"))
            .field(Field::new("phone"))
            .build()
            .unwrap();
        let armed: Vec<Armed> = conns
            .iter()
            .map(|c| Armed {
                inner: c.clone(),
                on_apply: Arc::default(),
            })
            .collect();
        let store = MemoryStore::new();
        let mut b = SyncRunner::builder(SyncEngine::new(map))
            .store(store.clone())
            .clock(clock.clone())
            .sleeper(clock.clone())
            .retry(RetryPolicy::new().max_attempts(3).jitter_seed(9));
        if let Some(quiet) = debounce {
            b = b.debounce(quiet);
        }
        for a in &armed {
            b = b.connector(a.clone());
        }
        Machine {
            clock,
            conns,
            store,
            armed,
            runner: b.build().unwrap(),

            model: BTreeMap::new(),
            created: 0,
            edits: 0,
        }
    }

    fn email_of(&self, sys: usize, id: &str) -> Option<String> {
        self.conns[sys]
            .get(OBJ, id)
            .and_then(|r| r.get("email").and_then(Value::as_str).map(str::to_owned))
    }

    /// Whether the stored baseline links record `id` of `sys`, and has seen
    /// it since recsync created it.
    fn linked(&self, sys: usize, id: &str) -> bool {
        let baseline = self.store.load(OBJ).unwrap();
        baseline.find_linked(SYSTEMS[sys], id).is_some_and(|e| {
            e.unconfirmed(SYSTEMS[sys])
                .is_none_or(|u| u.kind != recsync::OpKind::Create)
        })
    }

    /// Whether `sys` holds a record with this email.
    fn holds(&self, sys: usize, email: &str) -> bool {
        self.conns[sys]
            .records(OBJ)
            .iter()
            .any(|r| r.get("email").and_then(Value::as_str) == Some(email))
    }

    fn pick(&self, sys: usize, pick: usize) -> Option<String> {
        let records = self.conns[sys].records(OBJ);
        (!records.is_empty()).then(|| records[pick % records.len()].id.clone())
    }

    async fn step(&mut self, act: &Act) {
        match act {
            Act::Create { sys } => {
                self.created += 1;
                let email = format!("p{}@x.io", self.created);
                let name = json!(format!("n{}", self.created));
                self.conns[*sys].insert(
                    OBJ,
                    [("email", json!(email.clone())), ("name", name.clone())],
                );
                let mut e = Expect::default();
                e.fields.insert("name", name);
                self.model.insert(email, e);
            }
            Act::Edit { sys, pick, field } => {
                let Some(id) = self.pick(*sys, *pick) else {
                    return;
                };
                let Some(email) = self.email_of(*sys, &id) else {
                    return;
                };
                // Every edit writes a value never written before: a value
                // changed back to what was last synced is no change to a sync
                // that compares states (ABA), and the model could not tell.
                let name = FIELDS[*field];
                self.edits += 1;
                let value = json!(format!("{name}-{}", self.edits));
                self.conns[*sys]
                    .edit(OBJ, &id, [(name, value.clone())])
                    .unwrap();
                let unknown = *sys == 2 && !self.linked(*sys, &id);
                if let Some(e) = self.model.get_mut(&email) {
                    if unknown {
                        let (_, edits) = e.unseen.get_or_insert_with(|| (id, BTreeMap::new()));
                        edits.insert(name, value);
                    } else {
                        // Later than any unseen edit of the field: it wins.
                        if let Some((_, edits)) = e.unseen.as_mut() {
                            edits.remove(name);
                        }
                        e.fields.insert(name, value);
                    }
                }
            }
            Act::Delete { sys, pick } => {
                let Some(id) = self.pick(*sys, *pick) else {
                    return;
                };
                let Some(email) = self.email_of(*sys, &id) else {
                    return;
                };
                // Complete snapshots (the third system) show a delete only
                // as a linked record gone missing.
                let unknown = *sys == 2
                    && !self.linked(*sys, &id)
                    && (0..3).any(|o| o != *sys && self.holds(o, &email));
                self.conns[*sys].delete(OBJ, &id).unwrap();
                if let Some(e) = self.model.get_mut(&email) {
                    e.deleted = true;
                    e.may_return = unknown;
                    if e.unseen.as_ref().is_some_and(|(of, _)| *of == id) {
                        e.unseen = None;
                    }
                }
            }
            Act::Sync { faults } => {
                for (sys, fault) in faults {
                    match fault {
                        Fault::RateLimit { .. } => arm(&self.conns[*sys], fault),
                        other => *self.armed[*sys].on_apply.lock().unwrap() = Some(other.clone()),
                    }
                }
                match self.runner.run().await {
                    Ok(_) => {}
                    // Reading a system failed for good: the run stops,
                    // nothing is written or saved.
                    Err(RunError::Fetch { .. }) => {}
                    Err(other) => panic!("run failed: {other}"),
                }
                for (c, a) in self.conns.iter().zip(&self.armed) {
                    c.clear_faults();
                    *a.on_apply.lock().unwrap() = None;
                }
                let known: Vec<String> = self
                    .model
                    .iter()
                    .filter_map(|(email, e)| {
                        let (id, _) = e.unseen.as_ref()?;
                        self.linked(2, id).then(|| email.clone())
                    })
                    .collect();
                for email in known {
                    if let Some(e) = self.model.get_mut(&email) {
                        e.seen();
                    }
                }
            }
        }
        self.clock.advance(TimeDelta::seconds(1));
    }

    /// (email, name, phone) per record.
    fn rows(&self, sys: usize) -> Vec<(String, Option<Value>, Option<Value>)> {
        let mut rows: Vec<_> = self.conns[sys]
            .records(OBJ)
            .into_iter()
            .map(|r| {
                let get = |f: &str| r.get(f).filter(|v| !v.is_null()).cloned();
                (
                    r.get("email")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    get("name"),
                    get("phone"),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}

fn check(acts: &[Act]) -> Result<(), TestCaseError> {
    check_with(acts, None)
}

/// Plays `acts`, then runs without faults (each run once every record is
/// older than the debounce) until a run plans nothing, and checks that
/// every system holds what the people last wrote.
fn check_with(acts: &[Act], debounce: Option<Duration>) -> Result<(), TestCaseError> {
    futures::executor::block_on(async {
        let mut m = Machine::with(debounce);
        for act in acts {
            m.step(act).await;
        }
        let settle = |m: &Machine| {
            if let Some(quiet) = debounce {
                m.clock
                    .advance(TimeDelta::from_std(quiet).unwrap() + TimeDelta::seconds(1));
            }
        };
        // Fault-free runs until one plans nothing.
        let mut quiet = false;
        for _ in 0..4 {
            settle(&m);
            let report = m
                .runner
                .run()
                .await
                .map_err(|e| TestCaseError::fail(format!("final run failed: {e}")))?;
            prop_assert_eq!(report.failed(), 0, "{}", report);
            prop_assert_eq!(report.debounced, 0, "{}", report);
            if report.planned() == 0 {
                quiet = true;
                break;
            }
        }
        prop_assert!(quiet, "still planning after four fault-free runs");
        settle(&m);
        let last = m.runner.run().await.unwrap();
        prop_assert_eq!(last.planned(), 0, "{}", last);

        // The final runs read every record left.
        for e in m.model.values_mut() {
            e.seen();
        }
        // Every system agrees on every synced field.
        let rows = m.rows(0);
        prop_assert_eq!(&rows, &m.rows(1));
        prop_assert_eq!(&rows, &m.rows(2));

        // No duplicates.
        let emails: BTreeSet<&String> = rows.iter().map(|r| &r.0).collect();
        prop_assert_eq!(emails.len(), rows.len(), "duplicate records: {:?}", rows);

        // Each entity is as its last change left it: deleted everywhere, or
        // present with the last value a person wrote to each field.
        for (email, expect) in &m.model {
            let row = rows.iter().find(|r| &r.0 == email);
            if expect.deleted && !(expect.may_return && row.is_some()) {
                prop_assert!(row.is_none(), "{} was deleted but is {:?}", email, row);
                continue;
            }
            let Some((_, name, phone)) = row else {
                return Err(TestCaseError::fail(format!("{email} was lost")));
            };
            prop_assert_eq!(
                name.as_ref(),
                expect.fields.get("name"),
                "name of {}",
                email
            );
            prop_assert_eq!(
                phone.as_ref(),
                expect.fields.get("phone"),
                "phone of {}",
                email
            );
        }
        for (email, ..) in &rows {
            let expect = m.model.get(email);
            prop_assert!(
                expect.is_some_and(|e| !e.deleted || e.may_return),
                "{} is there but {:?}",
                email,
                expect
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(96)))]

    #[test]
    fn sync_machine(acts in prop::collection::vec(act(), 1..24)) {
        check(&acts)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    /// The same, with a debounce of several steps: runs in the middle
    /// leave fresh edits for later (about half of them leave something),
    /// and let the read-back of their own writes through; nothing is lost
    /// or left behind.
    #[test]
    fn sync_machine_with_debounce(acts in prop::collection::vec(act(), 1..24)) {
        check_with(&acts, Some(Duration::from_secs(10)))?;
    }
}

/// A create in the third system dies after its one op (the create made
/// the record; its outcome was lost), then a person deletes that record
/// before the next run, in system `via`. Returns the machine after one
/// more run; the property holds for the case too.
fn lost_create_then_deleted(via: usize) -> Machine {
    let acts = [
        Act::Create { sys: 2 },
        Act::Sync { faults: vec![] },
        Act::Delete { sys: 0, pick: 0 },
        Act::Create { sys: 0 },
        Act::Sync {
            faults: vec![(via, Fault::Crash(1))],
        },
        Act::Delete { sys: via, pick: 0 },
    ];
    check(&acts).unwrap();
    futures::executor::block_on(async {
        let mut m = Machine::new();
        for act in &acts {
            m.step(act).await;
        }
        assert!(!m.holds(via, "p2@x.io"), "the person deleted it");
        m.runner.run().await.unwrap();
        m
    })
}

#[test]
fn a_record_made_by_a_lost_create_and_deleted_where_tombstones_are_read_stays_deleted() {
    // The second system reads changes, tombstones included: the tombstone
    // carries the correlation key, so the delete is known and wins.
    let m = lost_create_then_deleted(1);
    assert!(m.model["p2@x.io"].deleted && !m.model["p2@x.io"].may_return);
    assert!((0..3).all(|s| !m.holds(s, "p2@x.io")));
}

#[test]
fn a_record_made_by_a_lost_create_and_deleted_in_a_complete_snapshot_comes_back() {
    // The third system reports complete snapshots: the record is simply
    // absent, and nothing says it was ever made. It is made again; nothing
    // is deleted elsewhere.
    let m = lost_create_then_deleted(2);
    assert!(m.model["p2@x.io"].deleted && m.model["p2@x.io"].may_return);
    assert!((0..3).all(|s| m.holds(s, "p2@x.io")));
}

#[test]
fn an_older_edit_the_debounce_held_back_does_not_overwrite_a_newer_one() {
    // The first system's phone is edited, then the third's (later), then
    // the first's name: the first system's record is still too fresh at
    // the next run. Its entity waits whole; once quiet, both phone edits
    // are decided together and the later one wins. (Planned alone, the
    // third system's phone was written, the first's write refused as
    // stale, and the record read again showed its older phone as a change
    // against the new value: the older edit won.)
    let acts = [
        Act::Create { sys: 0 },
        Act::Sync { faults: vec![] },
        Act::Sync {
            faults: vec![(0, Fault::RateLimit { calls: 1, after: 1 })],
        },
        Act::Edit {
            sys: 0,
            pick: 0,
            field: 1,
        },
        Act::Edit {
            sys: 2,
            pick: 0,
            field: 1,
        },
        Act::Create { sys: 1 },
        Act::Edit {
            sys: 0,
            pick: 0,
            field: 0,
        },
        Act::Create { sys: 0 },
        Act::Sync { faults: vec![] },
    ];
    check_with(&acts, Some(Duration::from_secs(10))).unwrap();
}

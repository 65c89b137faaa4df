//! The runner against connectors that misbehave: one that reports writes
//! applied without making them, one whose calls never answer, and runs
//! held to a deadline. Nothing a person typed is lost, no record is deleted
//! without evidence, and every case is in the report.
#![cfg(feature = "testkit")]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use recsync::connector::{Applied, Capabilities, Changes, Cursor, ErrorKind};
use recsync::plan::{OpKind, WriteOp};
use recsync::runner::{RetryPolicy, RunError, SyncRunner, SyncRunnerBuilder};
use recsync::testkit::{ManualClock, MemoryConnector};
use recsync::{
    Connector, ConnectorError, DeletePolicy, Field, FieldMap, Guards, MemoryStore, Snapshot,
    SyncEngine, SystemId,
};
use serde_json::{json, Value};

const OBJ: &str = "contacts";

fn start() -> DateTime<Utc> {
    "2026-03-01T09:00:00Z".parse().unwrap()
}

fn map() -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email"))
        .field(Field::new("name"))
        .build()
        .unwrap()
}

fn conn(name: &str, clock: &ManualClock, incremental: bool) -> MemoryConnector {
    MemoryConnector::builder(name)
        .clock(clock.clone())
        .incremental_fetch(incremental)
        .build()
        .unwrap()
}

fn person(c: &MemoryConnector, email: &str, name: &str) -> String {
    c.insert(OBJ, [("email", json!(email)), ("name", json!(name))])
}

/// (email, name) of every record, order ignored.
fn rows(c: &MemoryConnector) -> BTreeSet<(String, String)> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    c.records(OBJ)
        .iter()
        .map(|r| (text(r.get("email")), text(r.get("name"))))
        .collect()
}

/// A `MemoryConnector` that can lie (report the next applies' ops applied
/// and do nothing), hang (the next calls never answer, before doing
/// anything or after making some ops), or take time (each apply moves the
/// clock on).
#[derive(Debug, Clone)]
struct Faulty {
    inner: MemoryConnector,
    clock: ManualClock,
    lies: Arc<AtomicUsize>,
    hung_reads: Arc<AtomicUsize>,
    hung_applies: Arc<AtomicUsize>,
    /// With a hung apply: how many of its ops take effect first.
    made_before_hang: Arc<AtomicUsize>,
    /// Seconds each apply takes.
    apply_takes: Arc<AtomicUsize>,
    fetch_by_ids: bool,
}

impl Faulty {
    fn new(inner: &MemoryConnector, clock: &ManualClock) -> Self {
        Faulty {
            inner: inner.clone(),
            clock: clock.clone(),
            lies: Arc::default(),
            hung_reads: Arc::default(),
            hung_applies: Arc::default(),
            made_before_hang: Arc::default(),
            apply_takes: Arc::default(),
            fetch_by_ids: true,
        }
    }

    fn lie_next(&self, applies: usize) {
        self.lies.store(applies, Ordering::SeqCst);
    }

    fn hang_next_reads(&self, calls: usize) {
        self.hung_reads.store(calls, Ordering::SeqCst);
    }

    fn hang_next_applies(&self, calls: usize, made_first: usize) {
        self.hung_applies.store(calls, Ordering::SeqCst);
        self.made_before_hang.store(made_first, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.lies.store(0, Ordering::SeqCst);
        self.hung_reads.store(0, Ordering::SeqCst);
        self.hung_applies.store(0, Ordering::SeqCst);
    }
}

/// Takes one from `n`; whether there was one.
fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| x.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl Connector for Faulty {
    fn system(&self) -> &SystemId {
        self.inner.system()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities().fetch_by_ids(self.fetch_by_ids)
    }
    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        if take(&self.hung_reads) {
            return futures::future::pending().await;
        }
        self.inner.fetch(object).await
    }
    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        if take(&self.hung_reads) {
            return futures::future::pending().await;
        }
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
        let takes = self.apply_takes.load(Ordering::SeqCst);
        self.clock.advance(TimeDelta::seconds(takes as i64));
        if take(&self.lies) {
            return Ok(ops
                .iter()
                .enumerate()
                .map(|(i, op)| {
                    Ok(match op.kind {
                        OpKind::Create => Applied::created(format!("made-up-{i}")),
                        _ => Applied::new(),
                    })
                })
                .collect());
        }
        if take(&self.hung_applies) {
            let first = self.made_before_hang.load(Ordering::SeqCst).min(ops.len());
            if first > 0 {
                let _ = self.inner.apply(object, &ops[..first]).await;
            }
            return futures::future::pending().await;
        }
        self.inner.apply(object, ops).await
    }
}

fn builder(
    crm: &Faulty,
    shop: &Faulty,
    store: &MemoryStore,
    clock: &ManualClock,
) -> SyncRunnerBuilder {
    SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store.clone())
        .clock(clock.clone())
        .sleeper(clock.clone())
        .retry(RetryPolicy::new().max_attempts(3).no_jitter())
}

struct World {
    clock: ManualClock,
    crm: Faulty,
    shop: Faulty,
    store: MemoryStore,
}

fn world(incremental: bool) -> World {
    let clock = ManualClock::ticking(start(), TimeDelta::seconds(1));
    let crm = Faulty::new(&conn("crm", &clock, incremental), &clock);
    let shop = Faulty::new(&conn("shop", &clock, incremental), &clock);
    World {
        clock,
        crm,
        shop,
        store: MemoryStore::new(),
    }
}

impl World {
    fn runner(&self) -> SyncRunner {
        builder(&self.crm, &self.shop, &self.store, &self.clock)
            .build()
            .unwrap()
    }
}

/// Three people in the crm; the shop lies about creating them.
async fn creates_lied_about(incremental: bool) {
    let w = world(incremental);
    for (email, name) in [("ada@x.io", "Ada"), ("bo@x.io", "Bo"), ("cy@x.io", "Cy")] {
        person(&w.crm.inner, email, name);
    }
    let r = w.runner();
    w.shop.lie_next(1);
    let report = r.run().await.unwrap();
    assert_eq!(report.applied(), 0, "{report}");
    assert_eq!(report.failed(), 3, "{report}");
    assert_eq!(
        report.errors_of(&ErrorKind::Unconfirmed).len(),
        3,
        "{report}"
    );
    assert!(w.shop.inner.is_empty(OBJ));

    // Nothing was linked to what does not exist: the next run makes the
    // records, and deletes nothing anywhere.
    let report = r.run().await.unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!(rows(&w.crm.inner), rows(&w.shop.inner));
    assert_eq!(rows(&w.crm.inner).len(), 3);
    assert!(r.dry_run().await.unwrap().is_empty());
}

#[tokio::test]
async fn creates_reported_but_never_made_are_reported_and_made_by_the_next_run() {
    creates_lied_about(true).await;
}

#[tokio::test]
async fn creates_never_made_are_no_evidence_of_a_delete_in_a_complete_snapshot() {
    // Complete snapshots and deletes propagated: believed, the creates were
    // links to records a complete read then lacks, read as deleted, and the
    // crm's three records were deleted.
    creates_lied_about(false).await;
}

#[tokio::test]
async fn an_update_reported_but_never_made_does_not_revert_the_edit() {
    let w = world(true);
    let ada = person(&w.crm.inner, "ada@x.io", "Ada");
    let r = w.runner();
    r.run().await.unwrap();
    w.crm
        .inner
        .edit(OBJ, &ada, [("name", json!("Ada L."))])
        .unwrap();
    w.shop.lie_next(1);
    let report = r.run().await.unwrap();
    assert_eq!(
        report.errors_of(&ErrorKind::Unconfirmed).len(),
        1,
        "{report}"
    );
    assert!(
        report.to_string().contains("write not confirmed by a read"),
        "{report}"
    );

    // Believed, the shop's "Ada" read as an edit there at the next run and
    // overwrote "Ada L." in the crm.
    let report = r.run().await.unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    let names = |c: &MemoryConnector| c.records(OBJ)[0].get("name").cloned();
    assert_eq!(names(&w.crm.inner), Some(json!("Ada L.")));
    assert_eq!(names(&w.shop.inner), Some(json!("Ada L.")));
}

#[tokio::test]
async fn a_delete_reported_but_never_made_is_made_by_the_next_run() {
    let w = world(true);
    let ada = person(&w.crm.inner, "ada@x.io", "Ada");
    let r = w.runner();
    r.run().await.unwrap();
    w.crm.inner.delete(OBJ, &ada).unwrap();
    w.shop.lie_next(1);
    let report = r.run().await.unwrap();
    assert_eq!(
        report.errors_of(&ErrorKind::Unconfirmed).len(),
        1,
        "{report}"
    );
    assert_eq!(w.shop.inner.len(OBJ), 1);
    let report = r.run().await.unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    assert!(w.shop.inner.is_empty(OBJ));
}

#[tokio::test]
async fn a_read_that_hangs_times_out_and_is_tried_again() {
    let w = world(true);
    person(&w.crm.inner, "ada@x.io", "Ada");
    let r = builder(&w.crm, &w.shop, &w.store, &w.clock)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    w.crm.hang_next_reads(1);
    let report = r.run().await.unwrap();
    assert_eq!(report.system("crm").unwrap().retries, 1, "{report}");
    assert_eq!(rows(&w.crm.inner), rows(&w.shop.inner));
}

#[tokio::test]
async fn a_read_that_never_answers_stops_the_run_with_a_timeout() {
    let w = world(true);
    person(&w.crm.inner, "ada@x.io", "Ada");
    let r = builder(&w.crm, &w.shop, &w.store, &w.clock)
        .timeout(Duration::from_secs(60))
        .fetch_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    w.crm.hang_next_reads(usize::MAX);
    let error = r.run().await.unwrap_err();
    match &error {
        RunError::Fetch { system, source, .. } => {
            assert_eq!(system, "crm");
            assert_eq!(*source.kind(), ErrorKind::TimedOut);
            assert!(source.to_string().contains("within 30.000s"), "{source}");
        }
        other => panic!("{other}"),
    }
    assert!(w.shop.inner.is_empty(OBJ), "nothing is written");
    w.crm.heal();
    r.run().await.unwrap();
    assert_eq!(rows(&w.crm.inner), rows(&w.shop.inner));
}

#[tokio::test]
async fn a_write_that_hangs_after_taking_effect_is_not_made_twice() {
    // The shop makes the first two creates, then never answers: the runner
    // cannot know which took effect. The batch is tried again under the
    // same correlation keys; the shop refuses the two it has as duplicates
    // and the next run links them by their keys.
    let w = world(true);
    for (email, name) in [("ada@x.io", "Ada"), ("bo@x.io", "Bo"), ("cy@x.io", "Cy")] {
        person(&w.crm.inner, email, name);
    }
    let r = builder(&w.crm, &w.shop, &w.store, &w.clock)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    w.shop.hang_next_applies(1, 2);
    let report = r.run().await.unwrap();
    assert!(report.system("shop").unwrap().retries >= 1, "{report}");
    r.run().await.unwrap();
    assert_eq!(rows(&w.crm.inner), rows(&w.shop.inner));
    assert_eq!(w.shop.inner.len(OBJ), 3, "no record made twice");
    assert!(r.dry_run().await.unwrap().is_empty());
}

#[tokio::test]
async fn writes_that_never_answer_fail_as_timed_out_and_are_written_later() {
    let w = world(true);
    person(&w.crm.inner, "ada@x.io", "Ada");
    let r = builder(&w.crm, &w.shop, &w.store, &w.clock)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    w.shop.hang_next_applies(usize::MAX, 0);
    let report = r.run().await.unwrap();
    assert_eq!(report.errors_of(&ErrorKind::TimedOut).len(), 1, "{report}");
    assert!(w.shop.inner.is_empty(OBJ));
    w.shop.heal();
    let report = r.run().await.unwrap();
    assert_eq!(report.applied(), 1, "{report}");
    assert_eq!(rows(&w.crm.inner), rows(&w.shop.inner));
}

#[tokio::test]
async fn a_run_stops_sending_at_its_deadline_and_the_next_run_finishes() {
    // One op per batch, each taking 20 seconds: a deadline of a minute
    // leaves time for a few of the ten.
    let clock = ManualClock::new(start());
    let crm = Faulty::new(&conn("crm", &clock, true), &clock);
    let shop_inner = MemoryConnector::builder("shop")
        .clock(clock.clone())
        .max_batch_size(1)
        .build()
        .unwrap();
    let shop = Faulty::new(&shop_inner, &clock);
    shop.apply_takes.store(20, Ordering::SeqCst);
    for i in 0..10 {
        person(&crm.inner, &format!("p{i}@x.io"), &format!("P{i}"));
    }
    let store = MemoryStore::new();
    let r = builder(&crm, &shop, &store, &clock)
        .deadline(Duration::from_secs(60))
        .build()
        .unwrap();
    let report = r.run().await.unwrap();
    let sent = shop.inner.len(OBJ);
    assert!((1..10).contains(&sent), "{sent} sent\n{report}");
    assert_eq!(report.applied(), sent, "{report}");
    assert_eq!(
        report.errors_of(&ErrorKind::TimedOut).len(),
        10 - sent,
        "{report}"
    );
    // What was done is committed: the next run (without a deadline) makes
    // only the rest.
    let r = builder(&crm, &shop, &store, &clock).build().unwrap();
    let report = r.run().await.unwrap();
    assert_eq!(report.applied(), 10 - sent, "{report}");
    assert_eq!(rows(&crm.inner), rows(&shop.inner));
}

#[tokio::test]
async fn without_read_back_nothing_is_read_after_a_write() {
    let w = world(true);
    person(&w.crm.inner, "ada@x.io", "Ada");
    let r = builder(&w.crm, &w.shop, &w.store, &w.clock)
        .read_back(false)
        .build()
        .unwrap();
    w.shop.inner.reset_stats();
    let report = r.run().await.unwrap();
    assert_eq!(report.applied(), 1, "{report}");
    let stats = w.shop.inner.stats();
    assert_eq!(stats.record_fetches, 0, "{stats:?}");
}

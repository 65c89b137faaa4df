//! Sharded runners against one runner: two universes of the same contacts
//! in two `MemoryConnector` systems, one synced by a single runner, one by
//! a runner per shard; the same edits in both; the end states compared by
//! content (ids differ: each system numbers the records it creates in the
//! order it is asked to).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use recsync::connector::{Applied, Capabilities, Changes, Cursor};
use recsync::plan::WriteOp;
use recsync::shard::Shard;
use recsync::testkit::MemoryConnector;
use recsync::{
    AsyncStateStore, Connector, ConnectorError, DeletePolicy, Field, FieldMap, Guards, Snapshot,
    SyncEngine, SystemId,
};
use serde_json::{json, Value};

pub const OBJ: &str = "contacts";

pub fn map() -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "mkt"])
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .build()
        .unwrap()
}

/// Two systems of `count` contacts: crm holds all, mkt the even ones
/// (their emails in capitals) and a tenth of its own.
pub fn universe(count: usize) -> [MemoryConnector; 2] {
    let crm = MemoryConnector::builder("crm")
        .id_prefix("c")
        .build()
        .unwrap();
    let mkt = MemoryConnector::builder("mkt")
        .id_prefix("m")
        .build()
        .unwrap();
    for n in 0..count {
        crm.insert(
            OBJ,
            [
                ("email", json!(format!("p{n}@example.com"))),
                ("name", json!(format!("Person {n}"))),
            ],
        );
        if n % 2 == 0 {
            mkt.insert(
                OBJ,
                [
                    ("email", json!(format!("P{n}@EXAMPLE.COM"))),
                    ("name", json!(format!("Person {n}"))),
                ],
            );
        }
        if n % 10 == 5 {
            mkt.insert(
                OBJ,
                [
                    ("email", json!(format!("m{n}@example.com"))),
                    ("name", json!(format!("Lead {n}"))),
                ],
            );
        }
    }
    [crm, mkt]
}

/// The same edits, by content, in one universe: names changed in either
/// system, emails changed (which routes the contact elsewhere, though it
/// stays in its shard), deletes, and new contacts in both.
pub fn edit(systems: &[MemoryConnector; 2], count: usize) {
    let [crm, mkt] = systems;
    let by_email = |c: &MemoryConnector| -> BTreeMap<String, String> {
        c.records(OBJ)
            .into_iter()
            .map(|r| {
                (
                    r.get("email")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_lowercase(),
                    r.id,
                )
            })
            .collect()
    };
    let (in_crm, in_mkt) = (by_email(crm), by_email(mkt));
    for n in (0..count).step_by(7) {
        let email = format!("p{n}@example.com");
        if let Some(id) = in_crm.get(&email) {
            crm.edit(OBJ, id, [("name", json!(format!("Renamed {n}")))])
                .unwrap();
        }
    }
    for n in (3..count).step_by(11) {
        let email = format!("p{n}@example.com");
        if let Some(id) = in_mkt.get(&email) {
            mkt.edit(OBJ, id, [("email", json!(format!("moved{n}@example.com")))])
                .unwrap();
        }
    }
    for n in (1..count).step_by(13) {
        let email = format!("p{n}@example.com");
        if let Some(id) = in_crm.get(&email) {
            crm.delete(OBJ, id).unwrap();
        }
    }
    for n in 0..count / 20 {
        crm.insert(
            OBJ,
            [
                ("email", json!(format!("new{n}@example.com"))),
                ("name", json!(format!("New {n}"))),
            ],
        );
        mkt.insert(
            OBJ,
            [
                ("email", json!(format!("NEW{n}@example.com"))),
                ("name", json!(format!("New {n}"))),
            ],
        );
    }
}

/// A system's records by content: (email lower-cased, name), each with how
/// many records hold it (a duplicate counts 2).
pub fn content(c: &MemoryConnector) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for r in c.records(OBJ) {
        let email = r
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase();
        let name = r
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        *out.entry((email, name)).or_insert(0) += 1;
    }
    out
}

/// A runner of `shard` over the two systems and `store`.
pub fn runner<C: Connector + 'static>(
    shard: Shard,
    crm: C,
    mkt: C,
    store: Arc<dyn AsyncStateStore>,
) -> recsync::SyncRunner {
    recsync::SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm)
        .connector(mkt)
        .store(store)
        .shard(shard)
        .build()
        .unwrap()
}

/// A connector that passes everything to `inner` until it has applied
/// `batches` write batches; the next batch it applies and then never
/// answers: a process that stopped in the middle of a run, after a write
/// and before its commit (the test drops the run's future).
#[derive(Debug, Clone)]
pub struct Dying {
    pub inner: MemoryConnector,
    pub batches: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl Connector for Dying {
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
        let left = self.batches.load(std::sync::atomic::Ordering::SeqCst);
        if left == 0 {
            let _ = self.inner.apply(object, ops).await;
            return futures::future::pending().await;
        }
        self.batches
            .store(left - 1, std::sync::atomic::Ordering::SeqCst);
        self.inner.apply(object, ops).await
    }
}

/// Asserts that two systems hold the same records by content, each once;
/// names at most ten that differ.
pub fn assert_same_content(system: &str, sharded: &MemoryConnector, whole: &MemoryConnector) {
    let (a, b) = (content(sharded), content(whole));
    let differ: Vec<_> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .take(10)
        .map(|k| format!("{k:?}: sharded {:?}, one runner {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(differ.is_empty(), "{system}: {}", differ.join("; "));
    assert!(a.values().all(|n| *n == 1), "{system}: a duplicate");
}

/// A connector whose `apply` says it was entered, then waits until the
/// test opens the gate: a run held in the middle of its writes.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Gate {
    pub inner: MemoryConnector,
    pub entered: Arc<tokio::sync::Notify>,
    pub open: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Connector for Gate {
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
        self.entered.notify_one();
        self.open.notified().await;
        self.inner.apply(object, ops).await
    }
}

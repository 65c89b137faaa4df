//! Shared by the undo tests (`undo.rs`, `undo_review.rs`,
//! `undo_review2.rs`): contacts in a crm and a shop, connectors of the
//! kinds they need, and a store whose saves fail on cue.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::executor::block_on;
use recsync::engine::CommitSummary;
use recsync::journal::{JournalEntry, JournalQuery, Retention, RunId};
use recsync::runner::SyncRunner;
use recsync::testkit::MemoryConnector;
use recsync::{
    AsyncStateStore, Baseline, DeletePolicy, Field, FieldMap, Guards, MemoryStore, Record,
    StoreError, SyncEngine,
};
use serde_json::{json, Value};

pub const OBJ: &str = "contacts";

/// Contacts (email, name, status) between `systems`: deletes propagate,
/// no guards.
pub fn map_of(systems: &[&str]) -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(systems.iter().copied())
        .key("email")
        .deletes(DeletePolicy::Propagate)
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("status"))
        .build()
        .expect("the map builds")
}

/// [`map_of`] the crm and the shop.
pub fn map() -> FieldMap {
    map_of(&["crm", "shop"])
}

pub fn contact(email: &str, name: &str, status: &str) -> [(&'static str, Value); 3] {
    [
        ("email", json!(email)),
        ("name", json!(name)),
        ("status", json!(status)),
    ]
}

/// The live record of `c` with this email, if any.
pub fn by_email(c: &MemoryConnector, email: &str) -> Option<Record> {
    c.records(OBJ)
        .into_iter()
        .find(|r| r.get("email") == Some(&json!(email)))
}

/// Runs once; no errors; the run's id.
pub fn run(r: &SyncRunner) -> RunId {
    let report = block_on(r.run()).expect("the run goes through");
    assert!(report.errors.is_empty(), "{report:?}");
    report.run.expect("the run committed")
}

/// A connector that fetches by ids (so the runner reads back), ids
/// prefixed by the system's first letter.
pub fn conn(system: &str) -> MemoryConnector {
    MemoryConnector::builder(system)
        .id_prefix(&system[..1])
        .fetch_by_ids(true)
        .build()
        .expect("the connector builds")
}

/// A connector that reads changes since its cursor and keeps correlation
/// keys, and cannot fetch by ids (no read-back: a write stays unconfirmed
/// until the next read), without versions.
pub fn unconfirmed(system: &str) -> MemoryConnector {
    MemoryConnector::builder(system)
        .id_prefix(&system[..1])
        .incremental_fetch(true)
        .external_ids(true)
        .fetch_by_ids(false)
        .versions(false)
        .conditional_writes(false)
        .build()
        .expect("the connector builds")
}

/// A runner of [`map`] between `crm` and `shop`, keeping its baseline and
/// every journal entry in `store`.
pub fn journaled(
    crm: &MemoryConnector,
    shop: &MemoryConnector,
    store: &(impl AsyncStateStore + Clone + 'static),
) -> SyncRunner {
    SyncRunner::builder(SyncEngine::new(map()))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(store.clone())
        .journal(Retention::forever())
        .build()
        .expect("the runner builds")
}

/// A `MemoryStore` whose next save after a count fails, once
/// ([`fail_after`](Self::fail_after)).
#[derive(Debug, Clone, Default)]
pub struct FailingSaves {
    inner: MemoryStore,
    /// Saves to let through before the one that fails, plus one; 0: none
    /// fails.
    countdown: Arc<AtomicUsize>,
}

impl FailingSaves {
    /// Lets `saves` saves through, then fails the next one (only).
    pub fn fail_after(&self, saves: usize) {
        self.countdown.store(saves + 1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl AsyncStateStore for FailingSaves {
    async fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        AsyncStateStore::load(&self.inner, object).await
    }

    async fn save(
        &self,
        object: &str,
        baseline: Arc<Baseline>,
        changed: Arc<CommitSummary>,
    ) -> Result<(), StoreError> {
        let left = self.countdown.load(Ordering::SeqCst);
        if left > 0 {
            self.countdown.store(left - 1, Ordering::SeqCst);
            if left == 1 {
                return Err(StoreError::Backend {
                    message: "the disk is full".to_owned(),
                    source: None,
                });
            }
        }
        AsyncStateStore::save(&self.inner, object, baseline, changed).await
    }

    async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError> {
        AsyncStateStore::replace(&self.inner, object, baseline).await
    }

    async fn journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        AsyncStateStore::journal(&self.inner, object, query).await
    }
}

//! [`MemoryStore`]: baselines in memory, for tests and for hosts that keep
//! state elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{AsyncStateStore, Owner, RouteQuery, Routes, StateStore, StoreError};
use crate::baseline::Baseline;
use crate::engine::CommitSummary;
use crate::journal::{JournalEntry, JournalQuery};
use crate::model::SystemId;

/// Keeps baselines in memory. Clones share the same state, so a test can
/// hand one to a runner and inspect it through another.
///
/// As an [`AsyncStateStore`] it runs inline: a save keeps the pointer it
/// is given, a load clones the baseline.
///
/// It keeps the routes of [shards](crate::shard) too
/// ([`AsyncStateStore::route`]), so runners on the shards of one object
/// type in one process can share it, and the [journal](crate::journal):
/// a save appends the batch its summary carries
/// ([`CommitSummary::journal`]) and drops what the batch's retention does
/// not keep, under the lock it saves the baseline under, so a load or a
/// listing sees both or neither; `replace` leaves the journal alone.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<HashMap<String, Arc<Baseline>>>>,
    routes: Arc<Mutex<Reservations>>,
    journals: Arc<Mutex<HashMap<String, Vec<JournalEntry>>>>,
}

/// Shard reservations: (family, system, record id) to the state key of the
/// shard that took the record.
type Reservations = HashMap<(String, SystemId, String), String>;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Baseline>>> {
        // A panic elsewhere while holding the lock cannot leave a half
        // written baseline: every write replaces a whole one.
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Saves `baseline` (shared) and the journal batch `changed` carries,
    /// both under the baselines' lock: a load or a journal listing sees
    /// both or neither.
    fn keep(&self, object: &str, baseline: Arc<Baseline>, changed: &CommitSummary) {
        let mut objects = self.lock();
        if let Some(batch) = &changed.journal {
            let mut journals = self.journals.lock().unwrap_or_else(PoisonError::into_inner);
            let journal = journals.entry(object.to_owned()).or_default();
            journal.extend(batch.entries.iter().cloned());
            batch.retention.prune(journal, batch.at);
        }
        objects.insert(object.to_owned(), baseline);
    }

    /// The objects with a saved baseline, sorted.
    pub fn objects(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }
}

impl StateStore for MemoryStore {
    fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        let stored = self.lock().get(object).cloned();
        Ok(stored.map(|b| (*b).clone()).unwrap_or_default())
    }

    fn save(
        &self,
        object: &str,
        baseline: &Baseline,
        changed: &CommitSummary,
    ) -> Result<(), StoreError> {
        self.keep(object, Arc::new(baseline.clone()), changed);
        Ok(())
    }

    fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
        self.lock()
            .insert(object.to_owned(), Arc::new(baseline.clone()));
        Ok(())
    }

    fn journal(&self, object: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        let _objects = self.lock();
        let journals = self.journals.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(journals
            .get(object)
            .map(|j| j.iter().filter(|e| query.matches(e)).cloned().collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl AsyncStateStore for MemoryStore {
    async fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        StateStore::load(self, object)
    }

    async fn save(
        &self,
        object: &str,
        baseline: Arc<Baseline>,
        changed: Arc<CommitSummary>,
    ) -> Result<(), StoreError> {
        self.keep(object, baseline, &changed);
        Ok(())
    }

    async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError> {
        self.lock().insert(object.to_owned(), baseline);
        Ok(())
    }

    async fn journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        StateStore::journal(self, object, query)
    }

    async fn route(&self, query: &RouteQuery<'_>) -> Result<Routes, StoreError> {
        // Both locks for the whole answer, objects first (the only place
        // that takes both): it is atomic.
        let objects = self.lock();
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let others: Vec<&Baseline> = query
            .others
            .iter()
            .filter_map(|o| objects.get(o).map(|b| &**b))
            .collect();
        for (system, id) in query.release {
            let key = (query.family.to_owned(), system.clone(), id.clone());
            if routes.get(&key).is_some_and(|holder| holder == query.mine) {
                routes.remove(&key);
            }
        }
        let mut out = Routes::new();
        let asked = query.propose.iter().map(|r| (r, true));
        for ((system, id), proposed) in asked.chain(query.ask.iter().map(|r| (r, false))) {
            if others
                .iter()
                .any(|b| b.find_linked(system.as_str(), id).is_some())
            {
                out.set_owner(system.clone(), id.clone(), Owner::Other);
                continue;
            }
            let key = (query.family.to_owned(), system.clone(), id.clone());
            let owner = match routes.get(&key) {
                Some(holder) => holder.as_str(),
                None if proposed => {
                    if query.reserve {
                        routes.insert(key, query.mine.to_owned());
                    }
                    query.mine
                }
                None => continue,
            };
            let owner = if owner == query.mine {
                Owner::Mine
            } else {
                Owner::Other
            };
            out.set_owner(system.clone(), id.clone(), owner);
        }
        for id in query.entities {
            if others.iter().any(|b| b.entity(id).is_some()) {
                out.insert_entity(id.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{Baseline, CommitSummary, MemoryStore, StateStore};
    use crate::baseline::BaselineHeader;

    #[test]
    fn saves_per_object_and_loads_empty_for_unknown() {
        let store = MemoryStore::new();
        assert_eq!(store.load("contacts").unwrap().len(), 0);
        let mut b = Baseline::new();
        b.set_cursor("crm", "c7");
        store
            .save("contacts", &b, &CommitSummary::default())
            .unwrap();
        let other = store.clone();
        assert_eq!(
            other.load("contacts").unwrap().cursor("crm"),
            Some("c7"),
            "clones share state"
        );
        assert_eq!(
            other.load("deals").unwrap().header(),
            &BaselineHeader::default()
        );
        assert_eq!(store.objects(), ["contacts"]);
    }
}

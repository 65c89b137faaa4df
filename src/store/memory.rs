//! [`MemoryStore`]: baselines in memory, for tests and for hosts that keep
//! state elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{AsyncStateStore, StateStore, StoreError};
use crate::baseline::Baseline;
use crate::engine::CommitSummary;

/// Keeps baselines in memory. Clones share the same state, so a test can
/// hand one to a runner and inspect it through another.
///
/// As an [`AsyncStateStore`] it runs inline: a save keeps the pointer it
/// is given, a load clones the baseline.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<HashMap<String, Arc<Baseline>>>>,
}

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
        _changed: &CommitSummary,
    ) -> Result<(), StoreError> {
        StateStore::replace(self, object, baseline)
    }

    fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
        self.lock()
            .insert(object.to_owned(), Arc::new(baseline.clone()));
        Ok(())
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
        _changed: Arc<CommitSummary>,
    ) -> Result<(), StoreError> {
        self.lock().insert(object.to_owned(), baseline);
        Ok(())
    }

    async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError> {
        self.lock().insert(object.to_owned(), baseline);
        Ok(())
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

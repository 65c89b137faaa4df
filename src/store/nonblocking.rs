//! [`AsyncStateStore`]: loads and saves that do not block an executor, the
//! trait the [runner](crate::runner) keeps its baselines through.
//!
//! Every store that ships with the crate implements it: [`MemoryStore`]
//! inline (a save keeps a pointer to the baseline), [`JsonFileStore`] and
//! `SqliteStore` on the [blocking pool](Blocking) (threads of recsync's own,
//! started on demand: no async runtime needed, none assumed), and
//! `PostgresStore` (feature `postgres`) over its asynchronous connection.
//! A store of your own that implements only [`StateStore`] runs on the same
//! pool through [`Blocking`].
//!
//! [`MemoryStore`]: super::MemoryStore
//! [`JsonFileStore`]: super::JsonFileStore
//! [`StateStore`]: super::StateStore

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::StoreError;
use crate::baseline::{Baseline, EntityId};
use crate::engine::CommitSummary;
use crate::model::SystemId;

/// Keeps the baseline of each object type between runs, without blocking
/// the caller's executor: the asynchronous form of
/// [`StateStore`](super::StateStore), with the same contract.
///
/// `save` and `replace` take the baseline behind an [`Arc`] so that a store
/// can hand it to another thread or task without copying it; the
/// [runner](crate::runner) gets it back once the save is done.
///
/// A save future that is dropped before it completes may still complete
/// (its work was handed to a thread or a server), or not: never half. A
/// later call on the same store runs after it.
#[async_trait]
pub trait AsyncStateStore: Send + Sync + fmt::Debug {
    /// The object's baseline as last saved, or an empty one.
    async fn load(&self, object: &str) -> Result<Baseline, StoreError>;

    /// Saves `baseline` after a commit that changed the entities in
    /// `changed`.
    async fn save(
        &self,
        object: &str,
        baseline: Arc<Baseline>,
        changed: Arc<CommitSummary>,
    ) -> Result<(), StoreError>;

    /// Replaces the object's whole baseline.
    async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError>;

    /// Which of `records` (by system and record id) are linked in the
    /// baselines of `objects`, and which of `entities` those baselines
    /// hold: what a [shard](crate::shard)'s runner asks about the records
    /// it reads that its own baseline does not link, so that a record
    /// another shard has linked is left to that shard.
    ///
    /// The default loads each object's baseline; a store that can answer
    /// from an index (`PostgresStore`) does so.
    async fn claimed(
        &self,
        objects: &[String],
        records: &[(SystemId, String)],
        entities: &[EntityId],
    ) -> Result<Claims, StoreError> {
        let mut claims = Claims::new();
        for object in objects {
            let baseline = self.load(object).await?;
            claims.add_from(&baseline, records, entities);
        }
        Ok(claims)
    }
}

/// What [`AsyncStateStore::claimed`] found: the records and entities that
/// other baselines hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    records: HashSet<(SystemId, String)>,
    entities: HashSet<EntityId>,
}

impl Claims {
    /// Nothing claimed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that another baseline links `record_id` of `system`.
    pub fn insert_record(&mut self, system: SystemId, record_id: String) {
        self.records.insert((system, record_id));
    }

    /// Notes that another baseline holds the entity `id`.
    pub fn insert_entity(&mut self, id: EntityId) {
        self.entities.insert(id);
    }

    /// Whether another baseline links `record_id` of `system`.
    pub fn has_record(&self, system: &str, record_id: &str) -> bool {
        self.records
            .contains(&(SystemId::from(system), record_id.to_owned()))
    }

    /// Whether another baseline holds the entity `id`.
    pub fn has_entity(&self, id: &EntityId) -> bool {
        self.entities.contains(id)
    }

    /// How many records and entities were found.
    pub fn len(&self) -> usize {
        self.records.len() + self.entities.len()
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds what `baseline` holds of `records` and `entities`.
    pub fn add_from(
        &mut self,
        baseline: &Baseline,
        records: &[(SystemId, String)],
        entities: &[EntityId],
    ) {
        for (system, id) in records {
            if baseline.find_linked(system.as_str(), id).is_some() {
                self.records.insert((system.clone(), id.clone()));
            }
        }
        for id in entities {
            if baseline.entity(id).is_some() {
                self.entities.insert(id.clone());
            }
        }
    }
}

/// Implements [`AsyncStateStore`] for a pointer to a store by forwarding.
macro_rules! forward_async_store {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        #[async_trait]
        impl<S: AsyncStateStore + ?Sized> AsyncStateStore for $pointer {
            async fn load(&self, object: &str) -> Result<Baseline, StoreError> {
                (**self).load(object).await
            }

            async fn save(
                &self,
                object: &str,
                baseline: Arc<Baseline>,
                changed: Arc<CommitSummary>,
            ) -> Result<(), StoreError> {
                (**self).save(object, baseline, changed).await
            }

            async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError> {
                (**self).replace(object, baseline).await
            }

            async fn claimed(
                &self,
                objects: &[String],
                records: &[(SystemId, String)],
                entities: &[EntityId],
            ) -> Result<Claims, StoreError> {
                (**self).claimed(objects, records, entities).await
            }
        }
    };
}

forward_async_store!(
    /// One store shared: runners and review queues hold clones of one
    /// `Arc`.
    Arc<S>
);
forward_async_store!(
    /// A store borrowed.
    &S
);
forward_async_store!(
    /// A store boxed, as a `Box<dyn AsyncStateStore>`.
    Box<S>
);

/// A [`StateStore`](super::StateStore) of your own, run on a blocking
/// pool: each call runs on a thread of the store's own, in the order the
/// calls were made, so an executor is never blocked by its I/O. No async
/// runtime is needed.
///
/// ```
/// # use recsync::store::{AsyncStateStore, Blocking, MemoryStore};
/// # futures::executor::block_on(async {
/// // Any `StateStore`; the shipped stores need no wrapper.
/// let store = Blocking::new(MemoryStore::new());
/// assert_eq!(store.load("contacts").await?.len(), 0);
/// # Ok::<_, recsync::StoreError>(()) }).unwrap();
/// ```
pub struct Blocking<S: ?Sized> {
    lane: super::lane::Lane,
    store: Arc<S>,
}

impl<S> Blocking<S> {
    /// Runs `store` on a blocking pool.
    pub fn new(store: S) -> Self {
        Self::from_arc(Arc::new(store))
    }
}

impl<S: ?Sized> Blocking<S> {
    /// Runs a shared store on a blocking pool.
    pub fn from_arc(store: Arc<S>) -> Self {
        Blocking {
            lane: super::lane::Lane::default(),
            store,
        }
    }

    /// The store.
    pub fn get_ref(&self) -> &S {
        &self.store
    }
}

impl<S: fmt::Debug + ?Sized> fmt::Debug for Blocking<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Blocking").field(&&*self.store).finish()
    }
}

#[async_trait]
impl<S: super::StateStore + ?Sized + 'static> AsyncStateStore for Blocking<S> {
    async fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        let (store, object) = (self.store.clone(), object.to_owned());
        self.lane.run(move || store.load(&object)).await?
    }

    async fn save(
        &self,
        object: &str,
        baseline: Arc<Baseline>,
        changed: Arc<CommitSummary>,
    ) -> Result<(), StoreError> {
        let (store, object) = (self.store.clone(), object.to_owned());
        self.lane
            .run(move || store.save(&object, &baseline, &changed))
            .await?
    }

    async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError> {
        let (store, object) = (self.store.clone(), object.to_owned());
        self.lane
            .run(move || store.replace(&object, &baseline))
            .await?
    }
}

/// Implements [`AsyncStateStore`] for a shipped store that is cheap to
/// clone and has a lane: each call runs on the lane.
macro_rules! on_lane {
    ($store:ty) => {
        #[async_trait]
        impl AsyncStateStore for $store {
            async fn load(&self, object: &str) -> Result<Baseline, StoreError> {
                let (store, object) = (self.clone(), object.to_owned());
                self.lane
                    .run(move || super::StateStore::load(&store, &object))
                    .await?
            }

            async fn save(
                &self,
                object: &str,
                baseline: Arc<Baseline>,
                changed: Arc<CommitSummary>,
            ) -> Result<(), StoreError> {
                let (store, object) = (self.clone(), object.to_owned());
                self.lane
                    .run(move || super::StateStore::save(&store, &object, &baseline, &changed))
                    .await?
            }

            async fn replace(
                &self,
                object: &str,
                baseline: Arc<Baseline>,
            ) -> Result<(), StoreError> {
                let (store, object) = (self.clone(), object.to_owned());
                self.lane
                    .run(move || super::StateStore::replace(&store, &object, &baseline))
                    .await?
            }
        }
    };
}

on_lane!(super::JsonFileStore);
#[cfg(feature = "sqlite")]
on_lane!(super::SqliteStore);

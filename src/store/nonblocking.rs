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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::StoreError;
use crate::baseline::{Baseline, EntityId};
use crate::engine::CommitSummary;
use crate::journal::{JournalEntry, JournalQuery};
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

    /// Settles, for a [shard](crate::shard)'s runner, which shard owns
    /// each record it asks about, reserving for it the records it
    /// proposes: see [`RouteQuery`]. The answer must be atomic: two runners
    /// proposing one record at once never both get it.
    ///
    /// [`MemoryStore`](super::MemoryStore) (runners in one process) and
    /// `PostgresStore` (runners on several hosts) keep routes; the default,
    /// and the file stores, refuse with [`StoreError::Unsupported`].
    async fn route(&self, query: &RouteQuery<'_>) -> Result<Routes, StoreError> {
        let _ = query;
        Err(StoreError::Unsupported {
            what: "shards (routes of records to shards)".to_owned(),
        })
    }

    /// The [journal](crate::journal) entries kept for the object that
    /// `query` asks for, in the order they were saved. Every shipped store
    /// keeps a journal (written by `save` from
    /// [`CommitSummary::journal`]); the default refuses with
    /// [`StoreError::Unsupported`].
    async fn journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let _ = (object, query);
        Err(super::no_journal())
    }
}

/// What a shard's runner asks its store before it plans: about the records
/// it read that its own baseline does not settle.
///
/// A record's owner is, in order: the shard whose baseline links it; the
/// shard it is reserved for (by a proposal of that shard's); for a record
/// in [`propose`](RouteQuery::propose) that has neither, this runner's
/// shard, which it is now reserved for (if [`reserve`](RouteQuery::reserve)).
/// A reservation holds while the shard that took the record plans it: its
/// runner drops the reservations its commit did not turn into links or
/// records held back ([`release`](RouteQuery::release), after its save),
/// and those of a run that died, when the record's values route it
/// elsewhere (on its next run).
#[derive(Debug, Clone, Copy)]
pub struct RouteQuery<'a> {
    /// The shard family (every shard of one object type and count, see
    /// [`Shard::family`](crate::shard::Shard::family)): reservations are
    /// kept per family.
    pub family: &'a str,
    /// This runner's state key.
    pub mine: &'a str,
    /// The other shards' state keys.
    pub others: &'a [String],
    /// Records routed to this shard: reserved for it unless another shard
    /// owns them.
    pub propose: &'a [(SystemId, String)],
    /// Records whose owner the runner needs to know, without reserving
    /// them.
    pub ask: &'a [(SystemId, String)],
    /// Records whose reservation for this shard, if any, is dropped first
    /// (they are not asked about).
    pub release: &'a [(SystemId, String)],
    /// Whether proposals are reserved: not for a dry run, which answers as
    /// if they were.
    pub reserve: bool,
    /// Entities whose holder among the other shards the runner needs to
    /// know.
    pub entities: &'a [EntityId],
}

/// Who owns a record, as [`AsyncStateStore::route`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The asking runner's shard.
    Mine,
    /// Another shard.
    Other,
}

/// What [`AsyncStateStore::route`] found: the owner of each record that has
/// one, and the entities other shards hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// By system, then record id: a lookup borrows both, as a sharded
    /// run looks up every record it read.
    owners: HashMap<SystemId, HashMap<String, Owner>>,
    entities: HashSet<EntityId>,
}

impl Routes {
    /// Nothing owned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes the owner of `record_id` of `system`.
    pub fn set_owner(&mut self, system: SystemId, record_id: String, owner: Owner) {
        self.owners
            .entry(system)
            .or_default()
            .insert(record_id, owner);
    }

    /// Notes that another shard holds the entity `id`.
    pub fn insert_entity(&mut self, id: EntityId) {
        self.entities.insert(id);
    }

    /// The owner of `record_id` of `system`, if it has one.
    pub fn owner(&self, system: &SystemId, record_id: &str) -> Option<Owner> {
        self.owners.get(system)?.get(record_id).copied()
    }

    /// Whether another shard holds the entity `id`.
    pub fn held_elsewhere(&self, id: &EntityId) -> bool {
        self.entities.contains(id)
    }

    /// Every record with an owner.
    pub fn owners(&self) -> impl Iterator<Item = (&SystemId, &str, Owner)> {
        self.owners
            .iter()
            .flat_map(|(s, ids)| ids.iter().map(move |(id, o)| (s, id.as_str(), *o)))
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

            async fn route(&self, query: &RouteQuery<'_>) -> Result<Routes, StoreError> {
                (**self).route(query).await
            }

            async fn journal(
                &self,
                object: &str,
                query: &JournalQuery,
            ) -> Result<Vec<JournalEntry>, StoreError> {
                (**self).journal(object, query).await
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

    async fn journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let (store, object, query) = (self.store.clone(), object.to_owned(), query.clone());
        self.lane
            .run(move || store.journal(&object, &query))
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

            async fn journal(
                &self,
                object: &str,
                query: &JournalQuery,
            ) -> Result<Vec<JournalEntry>, StoreError> {
                let (store, object, query) = (self.clone(), object.to_owned(), query.clone());
                self.lane
                    .run(move || super::StateStore::journal(&store, &object, &query))
                    .await?
            }
        }
    };
}

on_lane!(super::JsonFileStore);
#[cfg(feature = "sqlite")]
on_lane!(super::SqliteStore);

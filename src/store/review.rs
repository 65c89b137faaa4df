//! [`ReviewQueue`]: what is held for review in a store, and the decisions
//! on it.

use super::{StateStore, StoreError};
use crate::baseline::{DeleteReview, EntityId, ResolveError, Review, ReviewChoice};
use crate::engine::CommitSummary;
use crate::plan::{Conflict, ConflictId};

/// The conflicts and held deletes of one object type in a [`StateStore`],
/// for a reviewer.
///
/// Each call loads the stored baseline, so the queue always shows what the
/// last save left. [`resolve`](ReviewQueue::resolve) keeps the decision in
/// the stored baseline (saving only the entity it is about); the next plan
/// from that baseline applies it. Resolve only between runs of the same
/// object type: a run that loaded the baseline before the decision and
/// saves after it would not carry the decision, and a decision saved after
/// a run saved (when the run's save came between its load and save) makes
/// a `SqliteStore` save the whole baseline it loaded, undoing that run's
/// save.
///
/// ```
/// use recsync::store::{MemoryStore, ReviewQueue};
///
/// let store = MemoryStore::new();
/// let queue = ReviewQueue::new(&store, "contacts");
/// assert!(queue.open()?.is_empty());
/// # Ok::<(), recsync::StoreError>(())
/// ```
#[derive(Debug)]
pub struct ReviewQueue<'a, S: StateStore + ?Sized> {
    store: &'a S,
    object: String,
}

/// Something held for review, with its details: what
/// [`ReviewQueue::open`] lists.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReviewItem {
    /// A field conflict: the field, the baseline value and each candidate
    /// system's value.
    Field(Conflict),
    /// A held delete: which systems deleted the record and which edited it.
    Delete(DeleteReview),
}

impl ReviewItem {
    /// The id to resolve it by.
    pub fn id(&self) -> ConflictId {
        match self {
            ReviewItem::Field(c) => c.id,
            ReviewItem::Delete(d) => d.id,
        }
    }

    /// The entity it is about.
    pub fn entity(&self) -> &EntityId {
        match self {
            ReviewItem::Field(c) => &c.entity,
            ReviewItem::Delete(d) => &d.entity,
        }
    }
}

impl From<Review<'_>> for ReviewItem {
    fn from(review: Review<'_>) -> Self {
        match review {
            Review::Field(c) => ReviewItem::Field(c.clone()),
            Review::Delete(d) => ReviewItem::Delete(d.clone()),
        }
    }
}

/// Why [`ReviewQueue::resolve`] did not keep a decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// The store could not load or save.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decision does not fit what is held (or nothing is held under
    /// the id).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl<'a, S: StateStore + ?Sized> ReviewQueue<'a, S> {
    /// The queue of `object` in `store`.
    pub fn new(store: &'a S, object: impl Into<String>) -> Self {
        ReviewQueue {
            store,
            object: object.into(),
        }
    }

    /// The object type.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Every conflict and held delete that waits for a decision, in entity
    /// order. A conflict already resolved (its decision waits for the next
    /// plan) is not listed.
    pub fn open(&self) -> Result<Vec<ReviewItem>, StoreError> {
        let baseline = self.store.load(&self.object)?;
        let items = baseline
            .reviews()
            .into_iter()
            .filter(|review| match review {
                // A held delete with a decision is not listed by `reviews`.
                Review::Delete(_) => true,
                Review::Field(c) => baseline.entity(&c.entity).is_some_and(|e| {
                    e.held().any(|(_, held)| {
                        held.conflict_id() == Some(c.id) && held.resolution.is_none()
                    })
                }),
            })
            .map(ReviewItem::from)
            .collect();
        Ok(items)
    }

    /// Keeps a reviewer's decision on the conflict or held delete `id`:
    /// loads the baseline, records the decision on it and saves the one
    /// entity it changed. Returns that entity.
    ///
    /// A decision may be changed by resolving again before the next run.
    pub fn resolve(
        &self,
        id: impl Into<ConflictId>,
        choice: ReviewChoice,
    ) -> Result<EntityId, ReviewError> {
        let mut baseline = self.store.load(&self.object)?;
        let entity = baseline.resolve(id, choice)?;
        let changed = CommitSummary {
            touched: vec![entity.clone()],
            ..CommitSummary::default()
        };
        self.store.save(&self.object, &baseline, &changed)?;
        Ok(entity)
    }
}

//! [`ReviewQueue`]: what is held for review in a store, and the decisions
//! on it.

use std::fmt;
use std::sync::Arc;

use super::{AsyncStateStore, StateStore, StoreError};
use crate::baseline::{Baseline, DeleteReview, EntityId, ResolveError, Review, ReviewChoice};
use crate::engine::CommitSummary;
use crate::mapping::FieldMap;
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
/// A store that is only an [`AsyncStateStore`] (`PostgresStore`) is
/// reviewed through [`open_async`](ReviewQueue::open_async) and
/// [`resolve_async`](ReviewQueue::resolve_async), which every shipped
/// store has too. `resolve_async` saves the decision as the baseline's next
/// revision, so on a store that compares revisions a run that loaded the
/// baseline before the decision fails its save with
/// [`StoreError::Conflict`] instead of dropping the decision, and a
/// decision on a baseline a run saved since is refused the same way.
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
pub struct ReviewQueue<'a, S: ?Sized> {
    store: &'a S,
    object: String,
}

/// Something held for review, with its details: what
/// [`ReviewQueue::open`] lists.
///
/// Its `Display` is one line, a conflict's id, field and candidates with
/// every value `[redacted]` ([`Conflict`]'s `Display` otherwise), or a held
/// delete's records ([`DeleteReview`]'s); its `Debug` hides the values
/// too. An item comes from stored state, which keeps whether the field was
/// sensitive when the conflict was held, not whether the map marks it so
/// now: only the map can say, so only
/// [`display_with(&map)`](ReviewItem::display_with) shows values, each
/// candidate as its system holds it (what a reviewer knows it as), and
/// `[redacted]` where the map, or the conflict, marks the field sensitive.
#[derive(Clone, PartialEq)]
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

impl ReviewItem {
    /// The item as a reviewer is shown it: a conflict's candidates under
    /// each system's field name and in its native form, converted through
    /// `map` ([`Conflict::native`]), a line each; a held delete as its
    /// `Display`. A value the map cannot convert is shown in canonical
    /// form with the reason; values of a sensitive field print as
    /// `[redacted]`. For the values as data, call
    /// [`Conflict::native`] on the item's conflict.
    ///
    /// ```
    /// use recsync::store::{MemoryStore, ReviewQueue};
    /// use recsync::{Field, FieldMap};
    ///
    /// let map = FieldMap::builder().systems(["crm", "erp"]).field(Field::new("stage")).build()?;
    /// let store = MemoryStore::new();
    /// for item in ReviewQueue::new(&store, "contacts").open()? {
    ///     println!("{}", item.display_with(&map));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn display_with<'a>(&'a self, map: &'a FieldMap) -> impl fmt::Display + 'a {
        WithMap { item: self, map }
    }
}

/// A [`ReviewItem`] shown through a field map.
struct WithMap<'a> {
    item: &'a ReviewItem,
    map: &'a FieldMap,
}

impl fmt::Display for WithMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            ReviewItem::Field(c) => c.native(self.map).fmt(f),
            ReviewItem::Delete(d) => d.fmt(f),
        }
    }
}

/// The conflict with every value hidden: what a map may mark sensitive
/// after the conflict was held is not known here.
fn values_hidden(c: &Conflict) -> Conflict {
    let mut c = c.clone();
    c.sensitive = true;
    c
}

impl fmt::Display for ReviewItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewItem::Field(c) => values_hidden(c).fmt(f),
            ReviewItem::Delete(d) => d.fmt(f),
        }
    }
}

impl fmt::Debug for ReviewItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewItem::Field(c) => f.debug_tuple("Field").field(&values_hidden(c)).finish(),
            ReviewItem::Delete(d) => f.debug_tuple("Delete").field(d).finish(),
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

impl<'a, S: ?Sized> ReviewQueue<'a, S> {
    /// The queue of `object` in `store`: a [`StateStore`] or an
    /// [`AsyncStateStore`].
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
}

impl<S: StateStore + ?Sized> ReviewQueue<'_, S> {
    /// Every conflict and held delete that waits for a decision, in entity
    /// order. A conflict already resolved (its decision waits for the next
    /// plan) is not listed.
    pub fn open(&self) -> Result<Vec<ReviewItem>, StoreError> {
        Ok(open_items(&self.store.load(&self.object)?))
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

impl<S: AsyncStateStore + ?Sized> ReviewQueue<'_, S> {
    /// [`open`](ReviewQueue::open) on an [`AsyncStateStore`].
    pub async fn open_async(&self) -> Result<Vec<ReviewItem>, StoreError> {
        Ok(open_items(&self.store.load(&self.object).await?))
    }

    /// [`resolve`](ReviewQueue::resolve) on an [`AsyncStateStore`]: loads
    /// the baseline, records the decision and saves the one entity it
    /// changed, as the baseline's next revision (see the type's docs: a
    /// store that compares revisions then refuses a run's save that loaded
    /// the baseline before the decision, rather than let it drop the
    /// decision). On such a store a run that saves between this load and
    /// this save makes it [`StoreError::Conflict`]: resolve again.
    pub async fn resolve_async(
        &self,
        id: impl Into<ConflictId>,
        choice: ReviewChoice,
    ) -> Result<EntityId, ReviewError> {
        let id = id.into();
        let mut baseline = self.store.load(&self.object).await?;
        let entity = baseline.resolve(id, choice)?;
        baseline.bump_revision();
        let changed = CommitSummary {
            touched: vec![entity.clone()],
            ..CommitSummary::default()
        };
        self.store
            .save(&self.object, Arc::new(baseline), Arc::new(changed))
            .await?;
        Ok(entity)
    }
}

/// What `baseline` holds for review and waits for a decision.
fn open_items(baseline: &Baseline) -> Vec<ReviewItem> {
    let mut items = Vec::new();
    for review in baseline.reviews() {
        match review {
            // A held delete with a decision is not listed by `reviews`.
            Review::Delete(d) => items.push(ReviewItem::Delete(d.clone())),
            Review::Field(c) => {
                let open = baseline.entity(&c.entity).and_then(|e| {
                    e.held()
                        .map(|(_, held)| held)
                        .find(|held| held.conflict_id() == Some(c.id) && held.resolution.is_none())
                });
                let Some(held) = open else { continue };
                // Each candidate as its system held it, for a reviewer.
                let mut c = c.clone();
                for cand in &mut c.candidates {
                    cand.held_as = held.observed.get(&cand.system).map(|o| o.value.clone());
                }
                items.push(ReviewItem::Field(c));
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mapping::{Field, ValueMap, ValueRow};
    use crate::model::SystemId;
    use crate::policy::{ConflictCandidate, DeleteHeldBy, HeldBy};

    fn delete(edited_in: &[&str], resolution: Option<ReviewChoice>) -> ReviewItem {
        ReviewItem::Delete(DeleteReview {
            id: ConflictId(0x3f0c_9a1d_5e7b_2c48),
            entity: EntityId::new("hubspot:1"),
            deleted_in: vec![(SystemId::from("salesforce"), "0061".into())],
            edited_in: edited_in.iter().map(|s| SystemId::from(*s)).collect(),
            resolution,
            held_by: DeleteHeldBy::DeleteAgainstEdit,
        })
    }

    #[test]
    fn a_held_delete_is_one_line_the_same_through_a_map() {
        let item = delete(&["hubspot"], None);
        let line = "delete 3f0c9a1d5e7b2c48 on hubspot:1 (held for review: edited elsewhere since the last sync): record 0061 deleted in salesforce; edited in hubspot";
        assert_eq!(item.to_string(), line);
        let map = FieldMap::builder()
            .systems(["hubspot", "salesforce"])
            .field(Field::new("stage"))
            .build()
            .unwrap();
        assert_eq!(item.display_with(&map).to_string(), line);
        assert!(delete(&[], Some(ReviewChoice::Restore))
            .to_string()
            .ends_with("record 0061 deleted in salesforce; decided: restore"));
    }

    #[test]
    fn a_conflict_is_shown_canonical_or_as_each_system_holds_it() {
        let item = ReviewItem::Field(Conflict {
            id: ConflictId(0x3f0c_9a1d_5e7b_2c48),
            entity: EntityId::new("hubspot:1"),
            field: "stage".into(),
            baseline: None,
            candidates: ["hubspot", "salesforce"]
                .into_iter()
                .zip(["O", "W"])
                .map(|(s, v)| ConflictCandidate {
                    system: s.into(),
                    value: json!(v),
                    changed_at: None,
                    sensitive: false,
                    held_as: None,
                })
                .collect(),
            held_by: HeldBy::ManualReview,
            sensitive: false,
        });
        // Stored state cannot tell what the map marks sensitive now: no
        // values, in `Display` or `Debug`.
        assert_eq!(
            item.to_string(),
            r#"conflict 3f0c9a1d5e7b2c48 on hubspot:1 field stage (manual review): baseline none, hubspot [redacted], salesforce [redacted]"#
        );
        assert!(!format!("{item:?}").contains("\"O\""), "{item:?}");
        let map = FieldMap::builder()
            .systems(["hubspot", "salesforce"])
            .field(
                Field::new("stage")
                    .native("salesforce", "StageName")
                    .value_map(
                        ValueMap::new()
                            .row(
                                ValueRow::both([
                                    ("hubspot", "opportunity"),
                                    ("salesforce", "Qualification"),
                                ])
                                .canonical("O"),
                            )
                            .row(
                                ValueRow::both([
                                    ("hubspot", "closedwon"),
                                    ("salesforce", "Closed Won"),
                                ])
                                .canonical("W"),
                            ),
                    ),
            )
            .build()
            .unwrap();
        assert_eq!(
            item.display_with(&map).to_string(),
            "conflict 3f0c9a1d5e7b2c48 on hubspot:1 field stage (manual review):\n    \
             hubspot stage = \"opportunity\" (was none)\n    \
             salesforce StageName = \"Closed Won\" (was none)"
        );
        // The map marks the field sensitive since the conflict was held:
        // the map decides.
        let now_sensitive = FieldMap::builder()
            .systems(["hubspot", "salesforce"])
            .field(Field::new("stage").sensitive())
            .build()
            .unwrap();
        let shown = item.display_with(&now_sensitive).to_string();
        assert!(
            !shown.contains("\"O\"") && !shown.contains("\"W\""),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}

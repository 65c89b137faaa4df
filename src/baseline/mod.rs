//! The last-synced state: [`Baseline`] and its entities, their links and
//! shadows.
//!
//! For each entity (one real-world thing linked across systems) the baseline
//! keeps:
//!
//! - the **links**: the entity's native record id in each system, with the
//!   version and a content hash of the record as last seen, and the link's
//!   [status](LinkStatus) (active, deleted and held, frozen out of scope,
//!   detached);
//! - the **canonical** value of each field, as last decided;
//! - per system, the **shadow**: the native value of each field that the
//!   system last held as far as recsync knows (last seen, or last written
//!   successfully). A system *changed* a field when its current value
//!   differs from its shadow; a target *needs* a write when its shadow
//!   differs from the canonical value;
//! - what is **held** (fields by manual review or the empty-value guard,
//!   deletes held for review) with what each system was last seen holding
//!   and a reviewer's resolution, if one was given;
//! - the writes reported applied that no read has **confirmed** yet
//!   ([`Unconfirmed`]), with what each record held before them.
//!
//! Beside the entities, in its [header](BaselineHeader), the baseline keeps
//! the revision, the map's fingerprint, each system's cursor, and the
//! records not linked to any entity that plans held back as
//! [ambiguous](AmbiguousRecords).
//!
//! The engine reads a baseline and [`SyncEngine::commit`](crate::SyncEngine::commit)
//! advances it. In memory an entity's values are kept in a compact byte
//! encoding, shadows only where they differ from the canonical value, and
//! the indexes (by entity id, by native id, by match key) hold no copies of
//! the strings they index, so a baseline of a million contacts fits in well
//! under a kilobyte each. Serde round-trips it losslessly through
//! [`EntityRecord`]s; stores that keep entities one by one use
//! [`Baseline::export`] and [`Baseline::from_parts`].
//!
//! A baseline does not know which fields the map marks sensitive, so the
//! `Debug` of its state never prints a field value: [`Baseline`] shows
//! counts, [`EntityRecord`] the names of the fields that hold values,
//! [`Observed`] and [`ReviewChoice::Value`] `[redacted]`; a [`Held`] field
//! shows the values of its conflict where the conflict says the field is
//! not sensitive. Serde writes every value: a stored baseline is data.

mod ambiguous;
mod entity;
mod index;
mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hash::{hash_bytes, FoldHasher};
pub use crate::ids::EntityId;
use crate::ids::{ConflictId, OpKind};
use crate::model::SystemId;
use crate::policy::{Conflict, DeleteHeldBy};
use crate::redact::{debug_with, hidden, shown, shown_opt, Keys};

pub use ambiguous::AmbiguousRecords;
pub(crate) use ambiguous::{AmbiguityChange, HeldGroup};
pub(crate) use entity::{Awaiting, Entity, Extra, LinkState, ValuesView};
pub(crate) use index::RawIndex;
pub(crate) use text::Text;

/// The state of an entity's link to one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LinkStatus {
    /// The record is in sync.
    #[default]
    Active,
    /// The record was deleted in its system and the delete is held (for
    /// review, or until it is propagated).
    Deleted,
    /// The record left its system's scope and the map freezes such records:
    /// nothing is read from or written to it until it returns.
    Frozen,
    /// The record was unlinked (it left scope, or was deleted, under an
    /// unlink policy). The entity is never re-created in that system; a
    /// record there can be linked to it again by matching.
    Detached,
}

/// An entity's link to one system, as kept in an [`EntityRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The record's native id.
    pub id: String,
    /// The record's version when last seen or written, if its system has
    /// versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A content hash of the record as last seen (0: not known). It lets a
    /// plan skip a record that has not changed without reading its fields.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hash: u64,
    /// The link's status.
    #[serde(default, skip_serializing_if = "is_active")]
    pub status: LinkStatus,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

fn is_active(s: &LinkStatus) -> bool {
    *s == LinkStatus::Active
}

/// What a system was seen holding for a field that is held. Its `Debug`
/// prints `[redacted]` for the value, which may be sensitive.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The native value.
    pub value: Value,
    /// When it changed, if the system said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
}

impl Observed {
    fn fmt_as(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        f.debug_struct("Observed")
            .field("value", &shown(&self.value, redact))
            .field("changed_at", &self.changed_at)
            .finish()
    }
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_as(f, true)
    }
}

/// A field that is held: nothing is written and nothing advances for it until
/// it is resolved or a new value arrives.
///
/// Its `Debug` shows the values held where its conflict says the field is
/// not sensitive, and `[redacted]` otherwise (a field held by the
/// empty-value guard has no conflict to say).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The conflict held for review, if it is a conflict (a field held by the
    /// empty-value guard has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
    /// What each system that changed the field was last seen holding, so a
    /// later partial snapshot that lacks that system does not forget it.
    pub observed: BTreeMap<SystemId, Observed>,
    /// A reviewer's decision, in canonical form, applied by the next plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Value>,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = self.conflict.as_ref().is_none_or(|c| c.sensitive);
        let observed = debug_with(|f| {
            f.debug_map()
                .entries(
                    self.observed
                        .iter()
                        .map(|(s, o)| (s, debug_with(move |f| o.fmt_as(f, redact)))),
                )
                .finish()
        });
        f.debug_struct("Held")
            .field("conflict", &self.conflict)
            .field("observed", &observed)
            .field("resolution", &shown_opt(self.resolution.as_ref(), redact))
            .finish()
    }
}

impl Held {
    /// The id of the conflict held, if any.
    pub fn conflict_id(&self) -> Option<ConflictId> {
        self.conflict.as_ref().map(|c| c.id)
    }
}

/// A delete held for review: one or more systems deleted the entity's
/// record, and the map says to ask (or another system edited the record
/// since the last sync and the delete-against-edit policy says to ask).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeleteReview {
    /// Stable id, resolved like a conflict's.
    pub id: ConflictId,
    /// The entity.
    pub entity: EntityId,
    /// The systems that deleted the record, with the deleted record's id.
    pub deleted_in: Vec<(SystemId, String)>,
    /// The systems that changed the record since the last sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edited_in: Vec<SystemId>,
    /// A reviewer's decision, applied by the next plan (or the decision the
    /// engine took and is carrying out: propagating, or restoring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ReviewChoice>,
    /// Why it was held.
    pub held_by: DeleteHeldBy,
}

/// One line: the id, the entity and why the delete is held, the records
/// deleted and where, the systems that edited the record since the last
/// sync, and a decision already taken. Record ids are the systems' own;
/// no field value is printed.
///
/// ```text
/// delete 3f0c9a1d5e7b2c48 on hubspot:1 (held for review by the delete policy): record 0061 deleted in salesforce; edited in hubspot
/// ```
impl fmt::Display for DeleteReview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delete {} on {} ({}):",
            self.id, self.entity, self.held_by
        )?;
        for (i, (system, record)) in self.deleted_in.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}record {record} deleted in {system}")?;
        }
        for (i, system) in self.edited_in.iter().enumerate() {
            let sep = if i == 0 { "; edited in " } else { ", " };
            write!(f, "{sep}{system}")?;
        }
        match &self.resolution {
            None => Ok(()),
            Some(ReviewChoice::Delete) => f.write_str("; decided: delete everywhere"),
            Some(ReviewChoice::Restore) => f.write_str("; decided: restore"),
            Some(ReviewChoice::Unlink) => f.write_str("; decided: unlink"),
            Some(ReviewChoice::System(s)) => write!(f, "; decided: take {s}"),
            Some(ReviewChoice::Value(_)) => f.write_str("; decided: a value"),
        }
    }
}

/// A write recsync made to one system that no read has confirmed yet.
///
/// The system reported the write applied, but no snapshot since has shown
/// the record holding what was written (or carrying the version the write
/// reported), or, for a delete, the record gone. Until one does, every plan
/// looks at the entity (the unchanged-record shortcut does not skip it), and
/// each read decides:
///
/// - the record holds what was written, or reports the version the write
///   reported (a version that moved): **confirmed**;
/// - it holds, for a written field, what it held before the write: the
///   write was **not made**. It is not an edit; the write is planned again;
/// - it holds a third value: an edit made after the write, synced as one;
/// - a created record absent from a complete snapshot is no evidence of a
///   delete: the create is planned again (with the same correlation key,
///   so a record that appears late is linked, not made twice);
/// - a deleted record seen again: the delete was not made, and is decided
///   again.
///
/// A write found not made, or not seen by a read of its system, again and
/// again is reported as an
/// [`UnconfirmedWrite`](crate::plan::IssueKind::UnconfirmedWrite) issue from
/// the [third](crate::engine::UNCONFIRMED_PLANS) such plan on.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Unconfirmed {
    /// What the write was.
    pub kind: OpKind,
    /// The version the system reported for the record after the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version the record had when it was read before the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_before: Option<String>,
    /// Each field written (by canonical name), with the native value the
    /// record held before the write (`None`: no value; every field of a
    /// create).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub before: IndexMap<String, Option<Value>>,
    /// How many plans in a row found the write not made, or did not see it
    /// in a read of its system.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub attempts: u32,
    /// The write was planned again because a plan found it not made (the
    /// record held what it held before). Found so once more, at the
    /// version the write reported, what the record holds is the system's
    /// own form of the value written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redone: bool,
}

fn is_zero_u32(x: &u32) -> bool {
    *x == 0
}

impl fmt::Debug for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values held before a write are personal data: names only.
        f.debug_struct("Unconfirmed")
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("version_before", &self.version_before)
            .field("fields", &self.before.keys().collect::<Vec<_>>())
            .field("attempts", &self.attempts)
            .field("redone", &self.redone)
            .finish()
    }
}

/// One entity of the baseline, in plain form: what serde writes and what
/// stores that keep entities one by one hold per row.
///
/// Its `Debug` names the fields that hold values, never the values (it
/// does not know which are sensitive); serde writes them.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EntityRecord {
    /// The entity's id.
    pub id: EntityId,
    /// The entity's record in each system it is or was linked in.
    pub links: BTreeMap<SystemId, LinkRecord>,
    /// Canonical values by canonical field name.
    #[serde(default)]
    pub canonical: IndexMap<String, Value>,
    /// Per system, the native value of each field (by canonical field name)
    /// that the system last held as far as recsync knows.
    #[serde(default)]
    pub shadows: BTreeMap<SystemId, IndexMap<String, Value>>,
    /// Held fields by canonical field name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub held: IndexMap<String, Held>,
    /// Values seen in records whose plan was skipped (a mapping failed), per
    /// system and field, so that a partial snapshot without them does not
    /// forget them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<SystemId, IndexMap<String, Observed>>,
    /// A delete held for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_review: Option<DeleteReview>,
    /// Something planned for this entity did not happen (a write failed, a
    /// create waits), so the next plan looks at it even if no snapshot
    /// mentions it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsettled: bool,
    /// Writes reported applied that no read has confirmed yet, by system.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unconfirmed: BTreeMap<SystemId, Unconfirmed>,
    /// Fields a system stores in its own form of what recsync wrote (a
    /// phone kept in E.164, a name trimmed): per system and field, the
    /// native value written. The system's shadow holds the stored form;
    /// while the system still holds it and the value to write is still
    /// this one, the field is up to date there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rewritten: BTreeMap<SystemId, IndexMap<String, Value>>,
    /// Records an undo deleted that were created for the entity, by system:
    /// their tombstones, which carry the entity's id as correlation key, are
    /// not the entity's record deleted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub undone: BTreeMap<SystemId, Vec<String>>,
}

impl fmt::Debug for EntityRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shadows = debug_with(|f| {
            f.debug_map()
                .entries(self.shadows.iter().map(|(s, m)| (s, Keys(m.keys()))))
                .finish()
        });
        f.debug_struct("EntityRecord")
            .field("id", &self.id)
            .field("links", &self.links)
            .field("canonical", &Keys(self.canonical.keys()))
            .field("shadows", &shadows)
            .field("held", &self.held)
            .field("pending", &self.pending)
            .field("delete_review", &self.delete_review)
            .field("unsettled", &self.unsettled)
            .field(
                "rewritten",
                &debug_with(|f| {
                    f.debug_map()
                        .entries(self.rewritten.iter().map(|(s, m)| (s, Keys(m.keys()))))
                        .finish()
                }),
            )
            .field("undone", &self.undone)
            .finish()
    }
}

/// The baseline-wide state: what [`Baseline::header`] gives and
/// [`Baseline::from_parts`] takes beside the entities.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BaselineHeader {
    /// How many commits made the baseline.
    pub revision: u64,
    /// The fingerprint of the field map of the last commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<u64>,
    /// Per system, the cursor its changes were last fetched up to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cursors: BTreeMap<SystemId, String>,
    /// The records plans held back as ambiguous matches, so that a later
    /// partial read showing only some of them still holds them back (see
    /// [`identity`](crate::identity)).
    #[serde(default, skip_serializing_if = "AmbiguousRecords::is_empty")]
    pub ambiguous: AmbiguousRecords,
}

/// A reviewer's decision on something held for review. Its `Debug` prints
/// `[redacted]` for a value, which may be of a sensitive field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReviewChoice {
    /// A field conflict: take this system's value.
    System(SystemId),
    /// A field conflict: take this value (canonical form).
    Value(Value),
    /// A held delete: propagate it to the other systems.
    Delete,
    /// A held delete: keep the record; re-create it where it was deleted.
    Restore,
    /// A held delete: unlink the deleted record and keep the others.
    Unlink,
}

impl fmt::Debug for ReviewChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewChoice::System(s) => f.debug_tuple("System").field(s).finish(),
            ReviewChoice::Value(v) => f.debug_tuple("Value").field(&hidden(v)).finish(),
            ReviewChoice::Delete => f.write_str("Delete"),
            ReviewChoice::Restore => f.write_str("Restore"),
            ReviewChoice::Unlink => f.write_str("Unlink"),
        }
    }
}

/// Why [`Baseline::resolve`] refused a decision.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// Nothing in the baseline is held under this id: it was never committed
    /// as held (commit the plan that reported it first), or a newer value or
    /// delete has replaced it since.
    #[error("nothing is held for review under id {0}; commit the plan that reported it, or it was replaced since")]
    NotHeld(ConflictId),
    /// The chosen system is not one of the conflict's candidates.
    #[error("system {system} is not a candidate in conflict {conflict}")]
    NotACandidate {
        /// The system.
        system: SystemId,
        /// The conflict.
        conflict: ConflictId,
    },
    /// The choice does not fit what is held: a value choice for a held
    /// delete, or a delete choice for a field conflict.
    #[error("choice {choice} does not apply to {what} {conflict}")]
    WrongChoice {
        /// The choice given, as its `Debug` prints it (a value as
        /// `[redacted]`).
        choice: String,
        /// What is held: "field conflict" or "held delete".
        what: &'static str,
        /// The id.
        conflict: ConflictId,
    },
}

/// Why [`Baseline::from_parts`] (or deserializing a baseline) refused its
/// input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// Two entities have the same id.
    #[error("entity {0} appears twice")]
    DuplicateEntity(EntityId),
    /// Two entities are linked to the same record of a system.
    #[error("record {record_id} of {system} is linked to both {first} and {second}")]
    DuplicateLink {
        /// The system.
        system: SystemId,
        /// The record.
        record_id: String,
        /// One entity.
        first: EntityId,
        /// The other.
        second: EntityId,
    },
    /// More entities, systems or fields than the baseline can index.
    #[error("too many {0} for one baseline")]
    TooMany(&'static str),
}

/// One entity of a [`Baseline`], read in place.
#[derive(Clone, Copy)]
pub struct EntityRef<'a> {
    baseline: &'a Baseline,
    entity: &'a Entity,
}

impl fmt::Debug for EntityRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntityRef")
            .field("id", &self.entity.id)
            .finish_non_exhaustive()
    }
}

impl<'a> EntityRef<'a> {
    /// The entity's id.
    pub fn id(&self) -> &'a EntityId {
        &self.entity.id
    }

    fn link_state(&self, system: &str) -> Option<&'a LinkState> {
        let s = self.baseline.system_slot(system)?;
        self.entity.link(s)
    }

    /// The entity's native record id in `system`, where it is linked (a
    /// detached link does not count).
    pub fn link(&self, system: &str) -> Option<&'a str> {
        self.link_state(system)
            .filter(|l| l.status != LinkStatus::Detached)
            .map(|l| &*l.id)
    }

    /// The link's status in `system`, where there is one.
    pub fn link_status(&self, system: &str) -> Option<LinkStatus> {
        self.link_state(system).map(|l| l.status)
    }

    /// The record's version in `system` when last seen or written.
    pub fn version(&self, system: &str) -> Option<&'a str> {
        self.link_state(system).and_then(|l| l.version.as_deref())
    }

    /// Every system the entity is linked in, with the native record id.
    pub fn links(&self) -> impl Iterator<Item = (&'a SystemId, &'a str)> + 'a {
        let systems = &self.baseline.systems;
        self.entity
            .links
            .iter()
            .enumerate()
            .filter_map(move |(s, l)| {
                let l = l.as_ref().filter(|l| l.status != LinkStatus::Detached)?;
                Some((systems.get(s)?, &*l.id))
            })
    }

    /// The canonical value of a field.
    pub fn canonical(&self, field: &str) -> Option<Value> {
        let f = self.baseline.field_slot(field)?;
        self.entity.view().canonical(f).map(|v| v.to_value())
    }

    /// The shadow of a field in `system`: its native value as last seen or
    /// written.
    pub fn shadow(&self, system: &str, field: &str) -> Option<Value> {
        let s = self.baseline.system_slot(system)?;
        let f = self.baseline.field_slot(field)?;
        self.entity.view().shadow(s, f).map(|v| v.to_value())
    }

    /// What recsync wrote to `field` in `system`, where the system stores
    /// it in another form (the shadow holds that form).
    pub(crate) fn rewritten(&self, system: &str, field: &str) -> Option<Value> {
        let s = self.baseline.system_slot(system)? as u32;
        let f = self.baseline.field_slot(field)? as u32;
        self.entity.extra.as_ref()?.rewritten(s, f).cloned()
    }

    /// The fields held, by canonical name.
    pub fn held(&self) -> impl Iterator<Item = (&'a str, &'a Held)> + 'a {
        let fields = &self.baseline.fields;
        self.entity.extra.iter().flat_map(move |x| {
            x.held
                .iter()
                .filter_map(move |(f, h)| Some((fields.get(*f as usize)?.as_str(), h)))
        })
    }

    /// The delete held for review, if there is one.
    pub fn delete_review(&self) -> Option<&'a DeleteReview> {
        self.entity.extra.as_ref().and_then(|x| x.delete.as_ref())
    }

    /// Whether something planned for the entity has not happened yet.
    pub fn is_unsettled(&self) -> bool {
        self.entity.unsettled
    }

    /// The write to `system` that no read has confirmed yet, if any.
    pub fn unconfirmed(&self, system: &str) -> Option<Unconfirmed> {
        let s = self.baseline.system_slot(system)? as u32;
        let x = self.entity.extra.as_ref()?;
        let (_, a) = x.unconfirmed.iter().find(|(b, _)| *b == s)?;
        Some(a.to_plain(&self.baseline.fields))
    }

    /// The entity in plain form.
    pub fn to_record(&self) -> EntityRecord {
        self.baseline.record_of(self.entity)
    }
}

/// Something held for review, as [`Baseline::reviews`] lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Review<'a> {
    /// A field conflict.
    Field(&'a Conflict),
    /// A delete.
    Delete(&'a DeleteReview),
}

impl Review<'_> {
    /// The id to resolve it by.
    pub fn id(&self) -> ConflictId {
        match self {
            Review::Field(c) => c.id,
            Review::Delete(d) => d.id,
        }
    }

    /// The entity it is about.
    pub fn entity(&self) -> &EntityId {
        match self {
            Review::Field(c) => &c.entity,
            Review::Delete(d) => &d.entity,
        }
    }
}

/// The index of one match key: which canonical field, normalized how, and
/// the hash of each entity's normalized key value.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyIndex {
    /// Fingerprint of the key spec the index was built for.
    pub(crate) spec: u64,
    pub(crate) tables: Vec<RawIndex>,
}

/// The last-synced state of every entity of one object type.
#[derive(Clone, Default)]
pub struct Baseline {
    header: BaselineHeader,
    systems: Vec<SystemId>,
    fields: Vec<String>,
    slots: Vec<Option<Entity>>,
    free: Vec<u32>,
    count: usize,
    seed: u64,
    by_id: RawIndex,
    by_link: Vec<RawIndex>,
    attention: BTreeSet<u32>,
    pub(crate) keys: KeyIndex,
}

impl fmt::Debug for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Entities hold personal data: show counts only.
        f.debug_struct("Baseline")
            .field("revision", &self.header.revision)
            .field("entities", &self.count)
            .field("systems", &self.systems)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Baseline {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header
            && self.count == other.count
            && self.records_sorted() == other.records_sorted()
    }
}

fn index_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    // Unpredictable per process, so crafted ids cannot degrade the indexes.
    RandomState::new().hash_one(0x5eed_u64)
}

impl Baseline {
    /// An empty baseline: nothing synced yet.
    pub fn new() -> Self {
        Baseline {
            seed: index_seed(),
            ..Baseline::default()
        }
    }

    /// How many commits made this baseline. A plan is only committed against
    /// the revision it was planned from.
    pub fn revision(&self) -> u64 {
        self.header.revision
    }

    /// How many entities there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entities.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// One entity.
    pub fn entity(&self, id: &EntityId) -> Option<EntityRef<'_>> {
        self.find_entity(id).and_then(|slot| self.entity_ref(slot))
    }

    /// Every entity, in id order.
    pub fn entities(&self) -> impl Iterator<Item = EntityRef<'_>> {
        let mut all: Vec<&Entity> = self.slots.iter().flatten().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.into_iter().map(move |entity| EntityRef {
            baseline: self,
            entity,
        })
    }

    /// The entity linked to a system's record, if any.
    pub fn find_linked(&self, system: &str, record_id: &str) -> Option<EntityRef<'_>> {
        let s = self.system_slot(system)?;
        self.find_link(s, record_id)
            .and_then(|slot| self.entity_ref(slot))
    }

    /// The header: revision, map fingerprint and cursors.
    pub fn header(&self) -> &BaselineHeader {
        &self.header
    }

    /// The cursor `system`'s changes were last fetched up to.
    pub fn cursor(&self, system: &str) -> Option<&str> {
        self.header.cursors.get(system).map(String::as_str)
    }

    /// Sets the cursor `system`'s changes were fetched up to. Set it before
    /// saving the baseline that commits those changes, so both are kept
    /// together.
    pub fn set_cursor(&mut self, system: impl Into<SystemId>, cursor: impl Into<String>) {
        self.header.cursors.insert(system.into(), cursor.into());
    }

    /// Every conflict and delete held for review, in entity order.
    pub fn reviews(&self) -> Vec<Review<'_>> {
        let mut out: Vec<Review<'_>> = Vec::new();
        for slot in &self.attention {
            let Some(extra) = self.entity_at(*slot).and_then(|e| e.extra.as_deref()) else {
                continue;
            };
            if let Some(d) = extra.delete.as_ref().filter(|d| d.resolution.is_none()) {
                out.push(Review::Delete(d));
            }
            for (_, h) in &extra.held {
                if let Some(c) = &h.conflict {
                    out.push(Review::Field(c));
                }
            }
        }
        out.sort_by(|a, b| (a.entity(), a.id()).cmp(&(b.entity(), b.id())));
        out
    }

    /// Records a reviewer's decision on a conflict or a held delete. The
    /// next plan applies it, as long as what is held is still the same (no
    /// system has changed the field again since); otherwise the plan reports
    /// the decision as stale and the new conflict instead.
    ///
    /// Resolve what a committed plan reported: the baseline learns what is
    /// held at commit. Returns the entity the decision is kept on, for
    /// stores that save only what changed.
    pub fn resolve(
        &mut self,
        id: impl Into<ConflictId>,
        choice: ReviewChoice,
    ) -> Result<EntityId, ResolveError> {
        let id = id.into();
        let slots: Vec<u32> = self.attention.iter().copied().collect();
        for slot in slots {
            let Some(entity) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            let entity_id = &entity.id;
            let Some(extra) = entity.extra.as_deref_mut() else {
                continue;
            };
            if let Some(d) = extra.delete.as_mut().filter(|d| d.id == id) {
                return match choice {
                    ReviewChoice::Delete | ReviewChoice::Restore | ReviewChoice::Unlink => {
                        d.resolution = Some(choice);
                        Ok(entity_id.clone())
                    }
                    other => Err(ResolveError::WrongChoice {
                        choice: format!("{other:?}"),
                        what: "held delete",
                        conflict: id,
                    }),
                };
            }
            for (_, held) in &mut extra.held {
                let Some(conflict) = held.conflict.as_ref().filter(|c| c.id == id) else {
                    continue;
                };
                let value = match choice {
                    ReviewChoice::Value(v) => v,
                    ReviewChoice::System(system) => {
                        match conflict.candidates.iter().find(|c| c.system == system) {
                            Some(c) => c.value.clone(),
                            None => {
                                return Err(ResolveError::NotACandidate {
                                    system,
                                    conflict: id,
                                })
                            }
                        }
                    }
                    other => {
                        return Err(ResolveError::WrongChoice {
                            choice: format!("{other:?}"),
                            what: "field conflict",
                            conflict: id,
                        })
                    }
                };
                held.resolution = Some(value);
                return Ok(entity_id.clone());
            }
        }
        Err(ResolveError::NotHeld(id))
    }

    /// One entity in plain form, for stores that keep entities one by one.
    pub fn export(&self, id: &EntityId) -> Option<EntityRecord> {
        self.entity(id).map(|e| e.to_record())
    }

    /// A baseline from its header and its entities in plain form (in any
    /// order), as a store that keeps them one by one loads it.
    pub fn from_parts(
        header: BaselineHeader,
        entities: impl IntoIterator<Item = EntityRecord>,
    ) -> Result<Baseline, BaselineError> {
        let mut b = Baseline::new();
        b.header = header;
        for record in entities {
            b.import(record)?;
        }
        Ok(b)
    }

    /// Bytes of memory the baseline holds (entities, values and indexes),
    /// counted from the sizes and capacities of what it owns: an estimate
    /// that leaves out the allocator's own overhead.
    pub fn heap_bytes(&self) -> usize {
        let entities: usize = self.slots.iter().flatten().map(Entity::heap_bytes).sum();
        entities
            + self.slots.capacity() * std::mem::size_of::<Option<Entity>>()
            + self.by_id.heap_bytes()
            + self.by_link.iter().map(RawIndex::heap_bytes).sum::<usize>()
            + self
                .keys
                .tables
                .iter()
                .map(RawIndex::heap_bytes)
                .sum::<usize>()
            + self.attention.len() * 16
            + self.header.ambiguous.heap_bytes()
    }

    // ----- crate-internal access, for the engine -----

    pub(crate) fn systems(&self) -> &[SystemId] {
        &self.systems
    }

    pub(crate) fn fields(&self) -> &[String] {
        &self.fields
    }

    pub(crate) fn system_slot(&self, name: &str) -> Option<usize> {
        self.systems.iter().position(|s| s == name)
    }

    pub(crate) fn field_slot(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == name)
    }

    /// [`field_slot`](Self::field_slot), looking at `guess` first: a
    /// baseline committed with a map mostly holds its fields in the map's
    /// order.
    pub(crate) fn field_slot_near(&self, guess: usize, name: &str) -> Option<usize> {
        match self.fields.get(guess) {
            Some(f) if f == name => Some(guess),
            _ => self.field_slot(name),
        }
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn entity_at(&self, slot: u32) -> Option<&Entity> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    pub(crate) fn entity_ref(&self, slot: u32) -> Option<EntityRef<'_>> {
        self.entity_at(slot).map(|entity| EntityRef {
            baseline: self,
            entity,
        })
    }

    pub(crate) fn occupied(&self) -> impl Iterator<Item = (u32, &Entity)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i as u32, e.as_ref()?)))
    }

    pub(crate) fn attention(&self) -> &BTreeSet<u32> {
        &self.attention
    }

    pub(crate) fn find_entity(&self, id: &EntityId) -> Option<u32> {
        let h = hash_bytes(self.seed, id.as_str().as_bytes());
        self.by_id
            .candidates(h)
            .find(|slot| self.entity_at(*slot).is_some_and(|e| &e.id == id))
    }

    /// Whether the entity at `slot` is linked (in any status but detached)
    /// to `record_id` of system slot `s`: [`find_link`](Self::find_link)'s
    /// answer where it is, without the index.
    pub(crate) fn linked_at(&self, slot: u32, s: usize, record_id: &str) -> bool {
        self.entity_at(slot)
            .and_then(|e| e.link(s))
            .is_some_and(|l| l.status != LinkStatus::Detached && l.id.is(record_id))
    }

    /// The entity linked (in any status but detached) to `record_id` of
    /// system slot `s`.
    pub(crate) fn find_link(&self, s: usize, record_id: &str) -> Option<u32> {
        let index = self.by_link.get(s)?;
        let h = hash_bytes(self.seed, record_id.as_bytes());
        index.candidates(h).find(|slot| {
            self.entity_at(*slot)
                .and_then(|e| e.link(s))
                .is_some_and(|l| l.id.is(record_id))
        })
    }

    pub(crate) fn ensure_system(&mut self, name: &SystemId) -> Result<usize, BaselineError> {
        if let Some(s) = self.system_slot(name.as_str()) {
            return Ok(s);
        }
        if self.systems.len() >= usize::from(u16::MAX) {
            return Err(BaselineError::TooMany("systems"));
        }
        self.systems.push(name.clone());
        self.by_link.push(RawIndex::default());
        Ok(self.systems.len() - 1)
    }

    pub(crate) fn ensure_field(&mut self, name: &str) -> Result<usize, BaselineError> {
        if let Some(f) = self.field_slot(name) {
            return Ok(f);
        }
        if self.fields.len() >= u32::MAX as usize {
            return Err(BaselineError::TooMany("fields"));
        }
        self.fields.push(name.to_owned());
        Ok(self.fields.len() - 1)
    }

    /// Records linked (in any status but detached) in system slot `s`.
    pub(crate) fn linked_count(&self, s: usize) -> usize {
        self.by_link.get(s).map_or(0, RawIndex::len)
    }

    /// Links in system slot `s` to records no read has to show: records
    /// deleted (held, or deleted by recsync and not seen gone yet), and
    /// records created and never seen.
    pub(crate) fn unseen_links(&self, s: usize) -> usize {
        let Ok(b) = u32::try_from(s) else { return 0 };
        // Such links are on entities that hold something: a delete review,
        // a write not confirmed.
        self.attention
            .iter()
            .filter_map(|slot| self.entity_at(*slot))
            .filter(|e| {
                e.link(s).is_some_and(|l| l.status == LinkStatus::Deleted)
                    || e.extra.as_ref().is_some_and(|x| {
                        x.unconfirmed
                            .iter()
                            .any(|(x, a)| *x == b && a.kind == OpKind::Create)
                    })
            })
            .count()
    }

    /// The records held back as ambiguous matches, for commit to update.
    pub(crate) fn ambiguous_mut(&mut self) -> &mut AmbiguousRecords {
        &mut self.header.ambiguous
    }

    pub(crate) fn set_fingerprint(&mut self, fingerprint: u64) {
        self.header.fingerprint = Some(fingerprint);
    }

    /// One commit more. Saturates rather than wraps: commit refuses a
    /// baseline at the last revision before it changes anything.
    pub(crate) fn bump_revision(&mut self) {
        self.header.revision = self.header.revision.saturating_add(1);
    }

    /// Adds an entity (its links get indexed); returns its slot.
    pub(crate) fn insert_entity(&mut self, entity: Entity) -> Result<u32, BaselineError> {
        if self.find_entity(&entity.id).is_some() {
            return Err(BaselineError::DuplicateEntity(entity.id));
        }
        for (s, l) in entity.links.iter().enumerate() {
            if let Some(l) = l.as_ref().filter(|l| l.status != LinkStatus::Detached) {
                if let Some(other) = self.find_link(s, &l.id).and_then(|o| self.entity_at(o)) {
                    return Err(BaselineError::DuplicateLink {
                        system: self.systems.get(s).cloned().unwrap_or_default(),
                        record_id: l.id.to_string(),
                        first: other.id.clone(),
                        second: entity.id,
                    });
                }
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.slots.len() >= (u32::MAX - 1) as usize {
                    return Err(BaselineError::TooMany("entities"));
                }
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id
            .insert(hash_bytes(self.seed, entity.id.as_str().as_bytes()), slot);
        for (s, l) in entity.links.iter().enumerate() {
            if let Some(l) = l.as_ref().filter(|l| l.status != LinkStatus::Detached) {
                let h = hash_bytes(self.seed, l.id.as_bytes());
                if let Some(index) = self.by_link.get_mut(s) {
                    index.insert(h, slot);
                }
            }
        }
        self.slots[slot as usize] = Some(entity);
        self.count += 1;
        self.refresh_attention(slot);
        Ok(slot)
    }

    /// Removes an entity and its index entries.
    pub(crate) fn remove_entity(&mut self, slot: u32) -> Option<Entity> {
        let entity = self.slots.get_mut(slot as usize)?.take()?;
        self.by_id
            .remove(hash_bytes(self.seed, entity.id.as_str().as_bytes()), slot);
        for (s, l) in entity.links.iter().enumerate() {
            if let Some(l) = l.as_ref().filter(|l| l.status != LinkStatus::Detached) {
                if let Some(index) = self.by_link.get_mut(s) {
                    index.remove(hash_bytes(self.seed, l.id.as_bytes()), slot);
                }
            }
        }
        self.free.push(slot);
        self.count -= 1;
        self.attention.remove(&slot);
        Some(entity)
    }

    /// Sets (or clears) an entity's link in system slot `s`, keeping the
    /// link index right. Fails when another entity is linked to that record.
    pub(crate) fn set_link(
        &mut self,
        slot: u32,
        s: usize,
        link: Option<LinkState>,
    ) -> Result<(), BaselineError> {
        let seed = self.seed;
        if let Some(new) = link.as_ref().filter(|l| l.status != LinkStatus::Detached) {
            if let Some(other) = self.find_link(s, &new.id).filter(|o| *o != slot) {
                return Err(BaselineError::DuplicateLink {
                    system: self.systems.get(s).cloned().unwrap_or_default(),
                    record_id: new.id.to_string(),
                    first: self
                        .entity_at(other)
                        .map(|e| e.id.clone())
                        .unwrap_or_default(),
                    second: self
                        .entity_at(slot)
                        .map(|e| e.id.clone())
                        .unwrap_or_default(),
                });
            }
        }
        let Some(entity) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return Ok(());
        };
        let old = entity.set_link(s, link);
        let new = entity.link(s);
        let indexed = |l: Option<&LinkState>| {
            l.filter(|l| l.status != LinkStatus::Detached)
                .map(|l| l.id.clone())
        };
        let (old_id, new_id) = (indexed(old.as_ref()), indexed(new));
        if old_id != new_id {
            if let Some(index) = self.by_link.get_mut(s) {
                if let Some(o) = old_id {
                    index.remove(hash_bytes(seed, o.as_bytes()), slot);
                }
                if let Some(n) = new_id {
                    index.insert(hash_bytes(seed, n.as_bytes()), slot);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn entity_mut(&mut self, slot: u32) -> Option<&mut Entity> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Puts the entity in or out of the attention set (entities every plan
    /// looks at: unsettled, or holding something).
    pub(crate) fn refresh_attention(&mut self, slot: u32) {
        match self.entity_at(slot) {
            Some(e) if e.needs_attention() => {
                self.attention.insert(slot);
            }
            _ => {
                self.attention.remove(&slot);
            }
        }
    }

    fn record_of(&self, e: &Entity) -> EntityRecord {
        e.to_record(&self.systems, &self.fields)
    }

    fn records_sorted(&self) -> Vec<EntityRecord> {
        self.entities().map(|e| e.to_record()).collect()
    }

    fn import(&mut self, record: EntityRecord) -> Result<(), BaselineError> {
        for s in record
            .links
            .keys()
            .chain(record.shadows.keys())
            .chain(record.pending.keys())
            .chain(record.unconfirmed.keys())
            .chain(record.rewritten.keys())
            .chain(record.undone.keys())
        {
            self.ensure_system(s)?;
        }
        for f in record
            .canonical
            .keys()
            .chain(record.shadows.values().flat_map(IndexMap::keys))
            .chain(record.held.keys())
            .chain(record.pending.values().flat_map(IndexMap::keys))
            .chain(record.unconfirmed.values().flat_map(|u| u.before.keys()))
            .chain(record.rewritten.values().flat_map(IndexMap::keys))
        {
            self.ensure_field(f)?;
        }
        let entity = Entity::from_record(record, &self.systems, &self.fields);
        self.insert_entity(entity).map(|_| ())
    }

    /// The fast hash of `bytes` under this baseline's index seed.
    pub(crate) fn key_hash(&self, bytes: &[u8]) -> u64 {
        let mut h = FoldHasher::new(self.seed ^ 0x006b_6579);
        h.bytes(bytes);
        h.finish()
    }
}

impl Serialize for Baseline {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Entities<'a>(&'a Baseline);
        impl Serialize for Entities<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.entities().map(|e| e.to_record()))
            }
        }
        let mut st = serializer.serialize_struct("Baseline", 2)?;
        st.serialize_field("header", &self.header)?;
        st.serialize_field("entities", &Entities(self))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Baseline {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Plain {
            #[serde(default)]
            header: BaselineHeader,
            #[serde(default)]
            entities: Vec<EntityRecord>,
        }
        let plain = Plain::deserialize(deserializer)?;
        Baseline::from_parts(plain.header, plain.entities).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, crm: &str, mkt: &str) -> EntityRecord {
        let mut r = EntityRecord {
            id: EntityId::new(id),
            ..EntityRecord::default()
        };
        for (s, rid) in [("crm", crm), ("mkt", mkt)] {
            r.links.insert(
                SystemId::new(s),
                LinkRecord {
                    id: rid.into(),
                    version: Some("v1".into()),
                    hash: 42,
                    status: LinkStatus::Active,
                },
            );
        }
        r.canonical.insert("email".into(), json!("a@x"));
        r.canonical.insert("phone".into(), json!("555"));
        r.shadows
            .entry(SystemId::new("crm"))
            .or_default()
            .insert("email".into(), json!("a@x"));
        r.shadows
            .entry(SystemId::new("mkt"))
            .or_default()
            .insert("email".into(), json!("A@X"));
        r
    }

    #[test]
    fn debug_names_fields_and_shows_held_values_only_where_a_conflict_allows() {
        let shown = format!("{:?}", record("e1", "c1", "m1"));
        assert!(
            shown.contains(r#"canonical: ["email", "phone"]"#),
            "{shown}"
        );
        assert!(!shown.contains("a@x") && !shown.contains("555"), "{shown}");

        let observed = |v: &str| Observed {
            value: json!(v),
            changed_at: None,
        };
        let conflict = |sensitive: bool| Conflict {
            id: ConflictId(1),
            entity: EntityId::new("e1"),
            field: "phone".into(),
            baseline: Some(json!("555-0")),
            candidates: Vec::new(),
            held_by: crate::policy::HeldBy::ManualReview,
            sensitive,
        };
        let held = |conflict: Option<Conflict>| Held {
            conflict,
            observed: [(SystemId::new("crm"), observed("555-1"))].into(),
            resolution: Some(json!("555-2")),
        };
        let plain = format!("{:?}", held(Some(conflict(false))));
        for v in ["555-0", "555-1", "555-2"] {
            assert!(plain.contains(v), "{v} missing from {plain}");
        }
        for h in [held(Some(conflict(true))), held(None)] {
            let shown = format!("{h:?}");
            assert!(!shown.contains("555"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        assert!(!format!("{:?}", observed("555-1")).contains("555"));
        let choice = ReviewChoice::Value(json!("555-3"));
        assert_eq!(format!("{choice:?}"), "Value([redacted])");
    }

    #[test]
    fn round_trips_through_serde_and_parts() {
        let b = Baseline::from_parts(
            BaselineHeader::default(),
            [record("crm:1", "1", "m1"), record("crm:2", "2", "m2")],
        )
        .unwrap();
        assert_eq!(b.len(), 2);
        let e = b.find_linked("mkt", "m2").unwrap();
        assert_eq!(e.id().as_str(), "crm:2");
        assert_eq!(e.shadow("mkt", "email"), Some(json!("A@X")));
        assert_eq!(e.shadow("crm", "email"), Some(json!("a@x")));
        assert_eq!(e.shadow("crm", "phone"), None);
        assert_eq!(e.canonical("phone"), Some(json!("555")));
        let text = serde_json::to_string(&b).unwrap();
        let back: Baseline = serde_json::from_str(&text).unwrap();
        assert_eq!(back, b);
        assert_eq!(
            back.export(&EntityId::new("crm:1")),
            Some(record("crm:1", "1", "m1"))
        );
    }

    #[test]
    fn duplicate_links_are_refused() {
        let err = Baseline::from_parts(
            BaselineHeader::default(),
            [record("crm:1", "1", "m1"), record("crm:2", "2", "m1")],
        )
        .unwrap_err();
        assert!(matches!(err, BaselineError::DuplicateLink { .. }), "{err}");
        let err = Baseline::from_parts(
            BaselineHeader::default(),
            [record("crm:1", "1", "m1"), record("crm:1", "2", "m2")],
        )
        .unwrap_err();
        assert_eq!(err, BaselineError::DuplicateEntity(EntityId::new("crm:1")));
    }

    #[test]
    fn removing_and_relinking_keep_the_indexes_right() {
        let mut b = Baseline::from_parts(
            BaselineHeader::default(),
            (0..100).map(|i| record(&format!("crm:{i}"), &i.to_string(), &format!("m{i}"))),
        )
        .unwrap();
        for i in (0..100).step_by(3) {
            let slot = b.find_entity(&EntityId::new(format!("crm:{i}"))).unwrap();
            b.remove_entity(slot);
        }
        assert_eq!(b.len(), 66);
        assert!(b.find_linked("crm", "3").is_none());
        assert_eq!(b.find_linked("mkt", "m4").unwrap().id().as_str(), "crm:4");
        let slot = b.find_entity(&EntityId::new("crm:4")).unwrap();
        let mkt = b.system_slot("mkt").unwrap();
        b.set_link(slot, mkt, Some(LinkState::active("m400".into(), None, 0)))
            .unwrap();
        assert!(b.find_linked("mkt", "m4").is_none());
        assert_eq!(b.find_linked("mkt", "m400").unwrap().id().as_str(), "crm:4");
        let other = b.find_entity(&EntityId::new("crm:5")).unwrap();
        assert!(b
            .set_link(other, mkt, Some(LinkState::active("m400".into(), None, 0)))
            .is_err());
        b.insert_entity(Entity::from_record(
            record("crm:3", "3", "m3"),
            &b.systems.clone(),
            &b.fields.clone(),
        ))
        .unwrap();
        assert_eq!(b.find_linked("crm", "3").unwrap().id().as_str(), "crm:3");
    }
}

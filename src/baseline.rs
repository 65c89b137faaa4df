//! The last-synced state: [`Baseline`], its [`Entity`]s, their links and
//! shadows.
//!
//! For each entity (one real-world thing linked across systems) the baseline
//! keeps:
//!
//! - the **links**: the entity's native record id in each system, with the
//!   version last seen;
//! - the **canonical** value of each field, as last decided;
//! - per system, the **shadow**: the native value of each field that the
//!   system last held as far as recsync knows (last seen, or last written
//!   successfully). A system *changed* a field when its current value
//!   differs from its shadow; a target *needs* a write when its shadow
//!   differs from the canonical value;
//! - the fields **held** (by manual review or by the empty-value guard), with
//!   what each system was last seen holding and a reviewer's resolution, if
//!   one was given.
//!
//! The engine reads a baseline and [`SyncEngine::commit`](crate::SyncEngine::commit)
//! advances it. Serde round-trips it losslessly; keep it wherever you keep
//! state.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::SystemId;
use crate::plan::{Conflict, ConflictId};

/// A stable name for one entity.
///
/// An entity's id is its record id in the first system, in the map's
/// priority order, that it was linked in when it was first synced
/// (`"crm:003A1"`). It never changes afterwards.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityId(String);

impl EntityId {
    /// An entity id from its text.
    pub fn new(id: impl Into<String>) -> Self {
        EntityId(id.into())
    }

    pub(crate) fn from_link(system: &SystemId, record_id: &str) -> Self {
        EntityId(format!("{system}:{record_id}"))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entity's record in one system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The record's native id.
    pub id: String,
    /// The record's version when last seen or written, if its system has
    /// versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What a system was seen holding for a held field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The native value.
    pub value: Value,
    /// When it changed, if the system said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
}

/// A field that is held: nothing is written and nothing advances for it until
/// it is resolved or a new value arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The conflict held for review, if it is a conflict (a field held by the
    /// empty-value guard has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictId>,
    /// What each system that changed the field was last seen holding, so a
    /// later partial snapshot that lacks that system does not forget it.
    pub observed: BTreeMap<SystemId, Observed>,
    /// A reviewer's decision, in canonical form, applied by the next plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Value>,
}

/// One entity of the baseline.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Entity {
    /// The entity's record in each system it is linked in.
    pub links: BTreeMap<SystemId, Link>,
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
    /// A write planned for this entity was not reported applied, so the next
    /// plan looks at it even if no snapshot mentions it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsettled: bool,
}

impl Entity {
    /// The entity's native record id in `system`.
    pub fn link(&self, system: &str) -> Option<&str> {
        self.links.get(system).map(|l| l.id.as_str())
    }

    /// The canonical value of a field.
    pub fn canonical(&self, field: &str) -> Option<&Value> {
        self.canonical.get(field)
    }

    /// The shadow of a field in `system`: its native value as last seen or
    /// written.
    pub fn shadow(&self, system: &str, field: &str) -> Option<&Value> {
        self.shadows.get(system).and_then(|s| s.get(field))
    }
}

/// The last-synced state of every entity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Baseline {
    revision: u64,
    entities: BTreeMap<EntityId, Entity>,
}

/// A reviewer's decision on a conflict held for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReviewChoice {
    /// Take this system's value.
    System(SystemId),
    /// Take this value (canonical form).
    Value(Value),
}

/// Why [`Baseline::resolve`] refused a decision.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The baseline has no such entity. Commit the plan that reported the
    /// conflict before resolving it.
    #[error("entity {entity} is not in the baseline; commit the plan that reported conflict {conflict} first")]
    UnknownEntity {
        /// The entity.
        entity: EntityId,
        /// The conflict.
        conflict: ConflictId,
    },
    /// The field is not held for this conflict: it was never committed as
    /// held, or a newer value has replaced the conflict since.
    #[error("field {field} of {entity} is not held for conflict {conflict}")]
    NotHeld {
        /// The entity.
        entity: EntityId,
        /// The field.
        field: String,
        /// The conflict.
        conflict: ConflictId,
    },
    /// The chosen system is not one of the conflict's candidates.
    #[error("system {system} is not a candidate in conflict {conflict}")]
    NotACandidate {
        /// The system.
        system: SystemId,
        /// The conflict.
        conflict: ConflictId,
    },
}

impl Baseline {
    /// An empty baseline: nothing synced yet.
    pub fn new() -> Self {
        Baseline::default()
    }

    /// How many commits made this baseline. A plan is only committed against
    /// the revision it was planned from.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// How many entities there are.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Whether there are no entities.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// One entity.
    pub fn entity(&self, id: &EntityId) -> Option<&Entity> {
        self.entities.get(id)
    }

    /// Every entity, in id order.
    pub fn entities(&self) -> impl Iterator<Item = (&EntityId, &Entity)> {
        self.entities.iter()
    }

    /// The entity linked to a system's record, if any. This scans the
    /// baseline.
    pub fn find_linked(&self, system: &str, record_id: &str) -> Option<&EntityId> {
        self.entities
            .iter()
            .find(|(_, e)| e.link(system) == Some(record_id))
            .map(|(id, _)| id)
    }

    /// Records a reviewer's decision on a conflict held for review. The next
    /// plan applies it, as long as the conflict is still the same (no system
    /// has changed the field again since); otherwise the plan reports the
    /// decision as stale and the new conflict instead.
    ///
    /// Resolve conflicts from a plan that has been committed: the baseline
    /// learns what is held at commit.
    pub fn resolve(
        &mut self,
        conflict: &Conflict,
        choice: ReviewChoice,
    ) -> Result<(), ResolveError> {
        let value = match choice {
            ReviewChoice::Value(v) => v,
            ReviewChoice::System(system) => {
                match conflict.candidates.iter().find(|c| c.system == system) {
                    Some(c) => c.value.clone(),
                    None => {
                        return Err(ResolveError::NotACandidate {
                            system,
                            conflict: conflict.id,
                        })
                    }
                }
            }
        };
        let Some(entity) = self.entities.get_mut(&conflict.entity) else {
            return Err(ResolveError::UnknownEntity {
                entity: conflict.entity.clone(),
                conflict: conflict.id,
            });
        };
        match entity.held.get_mut(&conflict.field) {
            Some(held) if held.conflict == Some(conflict.id) => {
                held.resolution = Some(value);
                Ok(())
            }
            _ => Err(ResolveError::NotHeld {
                entity: conflict.entity.clone(),
                field: conflict.field.clone(),
                conflict: conflict.id,
            }),
        }
    }

    pub(crate) fn entities_map(&self) -> &BTreeMap<EntityId, Entity> {
        &self.entities
    }

    pub(crate) fn entities_mut(&mut self) -> &mut BTreeMap<EntityId, Entity> {
        &mut self.entities
    }

    pub(crate) fn bump_revision(&mut self) {
        self.revision += 1;
    }
}

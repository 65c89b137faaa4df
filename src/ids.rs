//! The names plans and baselines share: entity, op and conflict ids, and
//! what a write op does. Their public paths are [`plan`](crate::plan)'s
//! (`OpId`, `ConflictId`, `OpKind`) and [`baseline`](crate::baseline)'s
//! (`EntityId`); this module imports neither, so that the baseline needs
//! nothing from the plan.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::SystemId;

/// A stable name for one entity.
///
/// An entity's id is its record id in the first system, in the map's
/// priority order, that it was linked in when it was first synced
/// (`"crm:003A1"`). It never changes afterwards, and it is the correlation
/// key of every record created for the entity.
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

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:016x})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                u64::from_str_radix(&text, 16)
                    .map($name)
                    .map_err(|_| serde::de::Error::custom(format!("invalid id {text:?}: expected 16 hex digits")))
            }
        }
    };
}

hex_id!(
    /// A write op's stable id: the same write from the same state has the
    /// same id, so a connector can use it as an idempotency key.
    OpId
);
hex_id!(
    /// A conflict's stable id: the same conflict (entity, field, baseline
    /// value, candidates' values) has the same id in every plan.
    ConflictId
);

/// A run, as the journal names it: when it started, in microseconds since
/// 1970 (UTC), times 1,000, plus the revision of the baseline its first
/// commit made, modulo 1,000 ([`RunId::of`]). Ids are not reused when
/// revisions start again (a baseline replaced, or restored from a backup,
/// keeps the journal it had). They follow the runner's clock, which can be
/// set back: the journal orders runs by when they were saved, never by
/// their ids. A run that commits twice, replanning stale writes, keeps the
/// id of its first commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl RunId {
    /// The id of a run started at `started` whose first commit makes
    /// revision `revision`. Two runs of one object share an id only if they
    /// start in the same microsecond (by the runner's clock) with revisions
    /// a multiple of 1,000 apart.
    pub fn of(started: chrono::DateTime<chrono::Utc>, revision: u64) -> Self {
        let micros = u64::try_from(started.timestamp_micros()).unwrap_or(0);
        RunId(
            micros
                .saturating_mul(1_000)
                .saturating_add(revision % 1_000),
        )
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run {}", self.0)
    }
}

/// What a write op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpKind {
    /// Create a record with the given fields. The op carries a
    /// [correlation key](crate::plan::WriteOp::correlation); the outcome reports the new
    /// record's native id.
    Create,
    /// Update the named fields of an existing record, and only those.
    Update,
    /// Delete an existing record.
    Delete,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
        })
    }
}

//! The names plans and baselines share: entity, op and conflict ids, and
//! what a write op does. Their public paths are [`plan`](crate::plan)'s
//! (`OpId`, `ConflictId`, `OpKind`) and [`baseline`](crate::baseline)'s
//! (`EntityId`); this module imports neither, so that the baseline needs
//! nothing from the plan.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{shared_str, SystemId};

/// A stable name for one entity.
///
/// An entity's id is its record id in the first system, in the map's
/// priority order, that it was linked in when it was first synced
/// (`"crm:003A1"`). It never changes afterwards, and it is the correlation
/// key of every record created for the entity.
///
/// Cloning one is cheap (a shared string): a plan names its entity in every
/// op, conflict and issue. It serializes as a plain string, and orders and
/// hashes as its text.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId(Arc<str>);

impl EntityId {
    /// An entity id from its text.
    pub fn new(id: impl Into<String>) -> Self {
        EntityId(Arc::from(id.into()))
    }

    pub(crate) fn from_link(system: &SystemId, record_id: &str) -> Self {
        EntityId(Arc::from(format!("{system}:{record_id}")))
    }
}

shared_str!(EntityId {
    /// The id's text.
    as_str
});

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_id_serializes_as_a_plain_string_and_orders_as_its_text() {
        let id = EntityId::new("crm:003A1");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""crm:003A1""#);
        assert_eq!(serde_json::from_str::<EntityId>(&json).unwrap(), id);
        assert_eq!(id.to_string(), "crm:003A1");
        assert_eq!(format!("{id:?}"), r#""crm:003A1""#);
        assert_eq!(EntityId::from_link(&SystemId::new("crm"), "003A1"), id);

        let texts = ["crm:b", "crm:a", "shop:1", "crm:ab", "Crm:z", ""];
        let mut ids: Vec<EntityId> = texts.iter().map(|t| EntityId::new(*t)).collect();
        ids.sort();
        let mut sorted = texts.map(str::to_owned);
        sorted.sort();
        assert_eq!(ids.iter().map(EntityId::as_str).collect::<Vec<_>>(), sorted);

        let clone = id.clone();
        assert_eq!(clone.as_str().as_ptr(), id.as_str().as_ptr());
    }
}

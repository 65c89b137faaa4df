//! The write plan: [`SyncPlan`], its [`WriteOp`]s, held [`Conflict`]s,
//! [`Hold`]s and per-record [`Issue`]s, each with its reason; and a held
//! conflict as each system holds its values ([`NativeConflict`], from
//! [`Conflict::native`]), for a reviewer.
//!
//! Values of fields marked [sensitive](crate::mapping::Field::sensitive)
//! travel with their flag, so that every `Debug` and `Display` here prints
//! `[redacted]` for them; serde keeps them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::baseline::{AmbiguityChange, DeleteReview, EntityId, Held, LinkRecord, Observed};
use crate::guard::Refusal;
use crate::ids::RunId;
pub use crate::ids::{ConflictId, OpId, OpKind};
use crate::mapping::{Conversion, MappingError, ValueProblem};
pub use crate::model::Name;
use crate::model::SystemId;
pub use crate::native::{NativeCandidate, NativeConflict, NativeValue, NotNative};
use crate::policy::WinRule;
pub use crate::policy::{Conflict, ConflictCandidate, DeleteHeldBy};
use crate::redact::{debug_with, shown, view, REDACTED};

/// Why a field gets the value it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// One system changed the field.
    Changed {
        /// The system.
        system: SystemId,
    },
    /// Several systems changed the field to the same value.
    Agreed {
        /// The systems.
        systems: Vec<SystemId>,
    },
    /// Several systems disagreed; the winner's value is written.
    ConflictWon {
        /// The winning system.
        winner: SystemId,
        /// The rule it won by.
        rule: WinRule,
        /// Every candidate with its timestamp.
        candidates: Vec<(SystemId, Option<DateTime<Utc>>)>,
    },
    /// A custom resolver produced the value.
    Resolver {
        /// The resolver's name.
        resolver: String,
    },
    /// A reviewer resolved the conflict.
    Reviewed {
        /// The conflict resolved.
        conflict: ConflictId,
    },
    /// The target does not hold the canonical value: a write failed before,
    /// or the record is newly linked.
    Behind,
    /// The entity's value, copied into a record created for it.
    NewRecord,
    /// An undo puts back what the field held before a run wrote it
    /// ([`SyncEngine::plan_undo`](crate::SyncEngine::plan_undo)).
    Undo {
        /// The run undone.
        run: RunId,
        /// The op of that run that wrote the value undone.
        op: OpId,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Changed { system } => write!(f, "changed in {system}"),
            Reason::Agreed { systems } => {
                f.write_str("changed alike in ")?;
                join(f, systems)
            }
            Reason::ConflictWon {
                winner,
                rule,
                candidates,
            } => {
                write!(f, "conflict won by {winner} under {rule} (")?;
                for (i, (s, t)) in candidates.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match t {
                        Some(t) => write!(f, "{s} at {}", t.format("%Y-%m-%d %H:%M:%S"))?,
                        None => write!(f, "{s} at unknown time")?,
                    }
                }
                f.write_str(")")
            }
            Reason::Resolver { resolver } => write!(f, "decided by resolver {resolver}"),
            Reason::Reviewed { conflict } => write!(f, "resolved by review of conflict {conflict}"),
            Reason::Behind => f.write_str("target behind the canonical value (retry or new link)"),
            Reason::NewRecord => f.write_str("the entity's value, for the record created"),
            Reason::Undo { run, op } => write!(f, "undoing op {op} of {run}"),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, systems: &[SystemId]) -> fmt::Result {
    for (i, s) in systems.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{s}")?;
    }
    Ok(())
}

/// One field an update writes.
///
/// Its `Debug` prints `[redacted]` for the value of a field marked
/// [sensitive](crate::mapping::Field::sensitive); serde writes the value.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FieldWrite {
    /// The canonical field (the map's own name, shared: cloning it is
    /// cheap).
    pub field: Name,
    /// The target's native field name (the map's own, shared).
    pub native: Name,
    /// The value to write, in the target's native form.
    pub value: Value,
    /// Why.
    pub reason: Reason,
    /// The field is marked sensitive: `Debug` and the plan's `Display`
    /// print `[redacted]` for the value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl fmt::Debug for FieldWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("FieldWrite");
        d.field("field", &self.field)
            .field("native", &self.native)
            .field("value", &shown(&self.value, self.sensitive))
            .field("reason", &self.reason);
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

/// One write to one record of one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WriteOp {
    /// Stable id, usable as an idempotency key.
    pub id: OpId,
    /// What it does.
    pub kind: OpKind,
    /// The object type, as the map names it (`"contacts"`; the map's own
    /// name, shared).
    pub object: Name,
    /// The target system.
    pub system: SystemId,
    /// The target record's native id; `None` for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The entity.
    pub entity: EntityId,
    /// The version the target had when read, for conditional writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<String>,
    /// For a create: the key that identifies the record being created (the
    /// entity's id). A connector that can should store it with the record
    /// (an external-id field) and report it back as
    /// [`Record::correlation`](crate::Record::correlation), so that a create
    /// executed but never committed is found, not made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// The fields written, and only those (every mapped field, for a
    /// create; none, for a delete).
    pub fields: Vec<FieldWrite>,
}

impl WriteOp {
    /// The op as an RFC 6902 JSON Patch, for a host that keeps each record
    /// as a JSON document of its native fields: a create adds the whole
    /// document (apply it to any document, `null` or `{}`); an update
    /// sets each field written (`add`, which replaces a member that is
    /// there), a cleared one to `null`, as a connector stores it. A delete
    /// is `None`: it removes the
    /// document, which a patch cannot say. Field names are escaped as JSON
    /// Pointer tokens (`~` as `~0`, `/` as `~1`). The patch holds the
    /// values written, sensitive ones too: treat it as the op.
    ///
    /// ```
    /// use recsync::{Baseline, Field, FieldMap, Record, Snapshot, SyncEngine};
    /// use serde_json::json;
    ///
    /// let map = FieldMap::builder()
    ///     .systems(["crm", "shop"])
    ///     .key("email")
    ///     .field(Field::new("email"))
    ///     .field(Field::new("name").native("shop", "full/name"))
    ///     .build()?;
    /// let crm = Snapshot::complete(
    ///     "crm",
    ///     vec![Record::new("1").field("email", "ada@example.com").field("name", "Ada")],
    /// );
    /// let plan = SyncEngine::new(map).plan(&Baseline::new(), &[crm, Snapshot::complete("shop", vec![])])?;
    /// let create = plan.writes_to("shop").next().unwrap();
    /// assert_eq!(
    ///     create.json_patch(),
    ///     Some(json!([{"op": "add", "path": "", "value": {"email": "ada@example.com", "full/name": "Ada"}}]))
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn json_patch(&self) -> Option<Value> {
        let op = |op: &str, path: String, value: &Value| {
            let mut o = serde_json::Map::new();
            o.insert("op".to_owned(), Value::from(op));
            o.insert("path".to_owned(), Value::from(path));
            o.insert("value".to_owned(), value.clone());
            Value::Object(o)
        };
        match self.kind {
            OpKind::Create => {
                let document: serde_json::Map<String, Value> = self
                    .fields
                    .iter()
                    .map(|w| (w.native.as_str().to_owned(), w.value.clone()))
                    .collect();
                Some(Value::Array(vec![op(
                    "add",
                    String::new(),
                    &Value::Object(document),
                )]))
            }
            OpKind::Update => {
                let mut ops = Vec::with_capacity(self.fields.len());
                for w in &self.fields {
                    let path = format!("/{}", w.native.replace('~', "~0").replace('/', "~1"));
                    ops.push(op("add", path, &w.value));
                }
                Some(Value::Array(ops))
            }
            _ => None,
        }
    }
}

/// A write a read-only system would need and was not planned
/// ([`FieldMapBuilder::read_only`](crate::mapping::FieldMapBuilder::read_only)):
/// a create of the entity's record there, an update of its fields, or a
/// delete. Nothing of it is committed as written, so every later plan lists
/// it again while the system still needs it.
///
/// Its `Debug` prints `[redacted]` for the values of sensitive fields, as
/// [`FieldWrite`]'s does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReadOnlyWrite {
    /// The read-only system.
    pub system: SystemId,
    /// The entity.
    pub entity: EntityId,
    /// What the write would do.
    pub kind: OpKind,
    /// The record it would write; `None` for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The fields it would write, with their values and reasons (every
    /// mapped field, for a create; none, for a delete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldWrite>,
}

/// Why a value or a record was not propagated, though no field conflict is
/// open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HoldKind {
    /// An empty value was not propagated over a non-empty canonical value
    /// (`no_overwrite_on_empty`), or, for an enforced one-way field, over
    /// a target's own non-empty value.
    EmptyValue {
        /// The system that emptied the field.
        system: SystemId,
    },
    /// A linked record was deleted (a tombstone, or absent from a complete
    /// snapshot) and the delete is not propagated: it waits for review
    /// ([`Baseline::resolve`](crate::Baseline::resolve) with the review id),
    /// or for a guard's approval.
    Deleted {
        /// The system.
        system: SystemId,
        /// The record.
        record_id: String,
        /// The id to resolve the delete by.
        review: ConflictId,
        /// Why it is held.
        by: DeleteHeldBy,
        /// Systems that changed the record since the last sync, where that
        /// is why it is held.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        edited_in: Vec<SystemId>,
    },
    /// A record is out of its system's scope and the map freezes such
    /// records: nothing is read from or written to it until it returns.
    Frozen {
        /// The system.
        system: SystemId,
        /// The record.
        record_id: String,
    },
    /// The entity is not created in a system whose scope would not include
    /// the record created.
    OutOfTargetScope {
        /// The system.
        system: SystemId,
    },
    /// An undo does not take back a value the run wrote, because the field
    /// (with no field: the record the run created) changed since: a person
    /// or a system wrote it after the run. Its
    /// [history](crate::journal::history) and the record say what it held.
    ChangedSince {
        /// The system.
        system: SystemId,
        /// The record.
        record_id: String,
        /// The run undone.
        run: RunId,
    },
    /// An undo cannot take back what the run wrote to a record that is gone
    /// since.
    Gone {
        /// The system.
        system: SystemId,
        /// The record.
        record_id: String,
        /// The run undone.
        run: RunId,
    },
    /// An undo does not write to a system the map now reads only, or no
    /// longer has: what the run wrote there stays.
    NotWritable {
        /// The system.
        system: SystemId,
        /// The record.
        record_id: String,
        /// The run undone.
        run: RunId,
    },
    /// An undo cannot take back a field the map keeps out of the journal
    /// ([`Field::not_journaled`](crate::Field::not_journaled)): no value of
    /// it was kept. A record the run created and wrote such a field of is
    /// not deleted (nothing says it was not edited since), and one it
    /// deleted holding such a field is not created again (it would lack
    /// the value).
    NotJournaled {
        /// The system.
        system: SystemId,
        /// The record.
        record_id: String,
        /// The run undone.
        run: RunId,
    },
}

/// A value or record held back, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Hold {
    /// The entity.
    pub entity: EntityId,
    /// The canonical field, where the hold is about one field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is held and why.
    pub kind: HoldKind,
}

/// The most candidates of one system an
/// [`AmbiguousMatch`](IssueKind::AmbiguousMatch) issue lists (its
/// `candidate_count` counts them all).
pub const CANDIDATES_SHOWN: usize = 5;

/// A problem with one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssueKind {
    /// The snapshot holds the record id more than once (a paging bug, say).
    /// Copies that are all the same count as one. Copies that differ are all
    /// ignored: which is current cannot be told, so for a linked record
    /// nothing about its entity is decided or written until a read lists it
    /// once (what the other systems showed is kept for that plan).
    DuplicateRecordId,
    /// A key value does not say which entity its records are: several
    /// records of one system share it, or it matches several entities, or
    /// an entity already linked in the record's system. None of the records
    /// held back by it is linked or created. There is one issue per system
    /// and key value, naming the system's first such record by id, however
    /// many records share the value: a placeholder such as
    /// `noemail@example.com` on 50,000 records is one issue per system,
    /// each listing a few candidates, not 50,000 issues of 50,000. `field`
    /// names the match key (none for a shared correlation key).
    ///
    /// The baseline remembers the records a match key value held back
    /// ([`AmbiguousRecords`](crate::baseline::AmbiguousRecords)): a later
    /// read that shows only some of them (a partial snapshot) still holds
    /// them back, and counts and lists the ones it does not show, until a
    /// read shows otherwise (see [`identity`](crate::identity)).
    AmbiguousMatch {
        /// The normalized key value (or the correlation key).
        key: String,
        /// How many records of the issue's system the value holds back,
        /// the one named included (and those remembered from earlier reads
        /// that this one does not show).
        records: usize,
        /// How many candidates there are in all: the records held back in
        /// every system, and the records the value already stands for
        /// (linked to an existing entity, or joined to one by this plan).
        candidate_count: usize,
        /// The first candidates of each system, sorted by system and id:
        /// at most [`CANDIDATES_SHOWN`] of each.
        candidates: Vec<(SystemId, String)>,
    },
    /// The record's value for a match key cannot be compared: it is a bool,
    /// an array or object that is not empty, or a number that is not finite
    /// ([`Record::non_finite`](crate::Record::non_finite)). `field` names
    /// the key. The record is neither matched, by that key or a later one,
    /// nor created (a copy made elsewhere would be a duplicate once the
    /// value is corrected): it stays unlinked, and reported, until the value
    /// is a string or a number, or the record is linked by its correlation
    /// key or an earlier match key.
    InvalidKey {
        /// What the value is: `bool`, `array`, `object` or
        /// `non-finite number`.
        found: String,
    },
    /// The record was built with a number that is not finite (NaN or an
    /// infinity) for the field ([`Record::non_finite`](crate::Record::non_finite)),
    /// which JSON cannot hold. The field reads as not reported: nothing is
    /// taken from it, so no other system is written, or cleared, because
    /// of it. Every plan that sees the record so reports it.
    NonFiniteNumber,
    /// No other system has a record with this key (creating it is not
    /// planned): the record stays unlinked.
    Unmatched,
    /// The record has no value for the map's key (or the map has no key):
    /// it cannot be linked.
    NoKey,
    /// The field's mapping failed to convert a value (a transform error,
    /// or a value no value map row covers in that direction while the
    /// field's unmapped policy is `error`). Reading a record's value: the
    /// record is skipped in this plan and what was seen is kept for the
    /// next. Writing to a record: that record is not written; the other
    /// systems are.
    Mapping {
        /// What failed, with the value.
        error: MappingError,
    },
    /// A value about to be written breaks the target system's validation
    /// rules for the field (type, length, allowed values): the record is
    /// written without that field and stays flagged until the value is
    /// corrected.
    InvalidValue {
        /// The rule broken, with the value.
        problem: ValueProblem,
    },
    /// The target system requires the field and the write would leave it
    /// empty: the record's write to that system is blocked until corrected.
    MissingRequired,
    /// A reviewer's decision no longer applies: the conflict changed.
    StaleResolution,
    /// A reference field names a parent record that is not linked yet (in
    /// the source, or in the target the value would be written to): the
    /// write waits, and is planned once the parent is linked.
    WaitingForParent {
        /// The parent object type.
        object: String,
        /// The parent's native id in the record's system, or the parent
        /// entity's id when the wait is for the target.
        parent: String,
    },
    /// A write the system reported applied has not been seen made, plan
    /// after plan: the record still holds what it held before (the write
    /// is planned again), a created record is missing from complete
    /// snapshots (the create is planned again), a deleted one is still
    /// there, or reads of the system never show the record. A connector
    /// that reports success without writing looks like this. Nothing is
    /// taken for an edit meanwhile. See
    /// [`Unconfirmed`](crate::baseline::Unconfirmed).
    UnconfirmedWrite {
        /// What the write was.
        op: OpKind,
        /// How many plans in a row found it not made or did not see it.
        attempts: u32,
    },
    /// The system took a write twice (the record moved to the version each
    /// write reported) and kept, both times, the value the field held
    /// before: its own form of the value written (a system that stores
    /// `"X"` for `"x"` where it held `"X"`), or a field this integration
    /// may not change there (field-level security). What it holds is taken
    /// as its form of the value, and the field is not written there again
    /// until the value to write changes; this issue is the record of it.
    KeptOwnValue {
        /// The field's native name in the system.
        native: String,
    },
    /// Schema drift: no record of the system's complete snapshot holds
    /// the field's native name (a key present with `null` counts as held),
    /// though the snapshot has records. The likeliest causes are a native
    /// name that is not the system's (a typo: `closest` names the native
    /// field its records hold that is nearest), a field the system does
    /// not have (the map lacks [`not_in`](crate::Field::not_in)), or a
    /// field deleted in the system. Reported once per system and field per
    /// plan, not per record: `record_id` is empty, `entity` none, `field`
    /// the canonical field.
    ///
    /// Nothing is written to the field in that system meanwhile (creates
    /// and updates go without it), and nothing is recorded as written, so
    /// once the native name is fixed, the field appears in the system's
    /// records, or the map says they may leave it out
    /// ([`may_be_absent_in`](crate::Field::may_be_absent_in)), the next
    /// plan writes it. Partial snapshots and empty ones are not checked.
    FieldNotFound {
        /// The native name the map gives the field in the system.
        native: String,
        /// The native field held by the system's records whose name is
        /// closest to `native`, if any is close.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closest: Option<String>,
    },
}

/// A problem with one record, in the plan.
///
/// Its `Debug` prints `[redacted]` for the values in its kind where the
/// issue is about a sensitive field or match key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Issue {
    /// The system.
    pub system: SystemId,
    /// The record.
    pub record_id: String,
    /// The entity, where linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<EntityId>,
    /// The canonical field, where the problem is one field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub kind: IssueKind,
    /// The values in `kind` come from a field marked sensitive (or a match
    /// key that is): `Debug` and the plan's `Display` print `[redacted]`
    /// for them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl fmt::Debug for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Issue");
        d.field("system", &self.system)
            .field("record_id", &self.record_id)
            .field("entity", &self.entity)
            .field("field", &self.field)
            .field("kind", &debug_with(|f| self.kind.fmt_as(f, self.sensitive)));
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

impl IssueKind {
    /// `Debug`, with every value redacted where `redact`.
    fn fmt_as(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        match self {
            IssueKind::AmbiguousMatch { candidates, .. } if redact => f
                .debug_struct("AmbiguousMatch")
                .field("key", &format_args!("{REDACTED}"))
                .field("candidates", candidates)
                .finish_non_exhaustive(),
            IssueKind::Mapping { error } if redact => f
                .debug_struct("Mapping")
                .field("error", &view(error, true))
                .finish(),
            IssueKind::InvalidValue { problem } if redact => f
                .debug_struct("InvalidValue")
                .field("problem", &view(problem, true))
                .finish(),
            other => fmt::Debug::fmt(other, f),
        }
    }
}

/// What commit records in the baseline for one entity. Hosts need not read
/// it; it is part of the plan so that a serialized plan can be committed.
/// Systems and fields are named by their index in the map the plan was made
/// with (the plan's [fingerprint](SyncPlan::fingerprint) says which).
///
/// Its `Debug` names the fields (by index) it sets, never their values:
/// it does not know which are sensitive.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EntityChange {
    /// The entity.
    pub entity: EntityId,
    /// The entity is new.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) new: bool,
    /// Links to set (or, with `None`, to drop), by system index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) links: Vec<(u32, Option<LinkRecord>)>,
    /// Canonical values to set, by field index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) canonical: Vec<(u32, Option<Value>)>,
    /// Shadows to set from what systems were seen holding: system index,
    /// field index, value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) shadows: Vec<(u32, u32, Option<Value>)>,
    /// Fields now held (`Some`) or no longer held (`None`), by field index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) held: Vec<(u32, Option<Held>)>,
    /// The values kept from skipped records, replacing what was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pending: Option<Vec<(u32, u32, Observed)>>,
    /// The delete review to keep, or to clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) delete_review: Option<Update<DeleteReview>>,
    /// Something planned will not happen in this plan (a write waits or was
    /// refused): the next plan looks at the entity again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) unsettled: bool,
    /// Unconfirmed writes to keep, not seen in one more plan (`Set`, with
    /// the number of plans in a row), or to forget (`Clear`: confirmed, or
    /// found not made), by system index; applied before the outcomes of
    /// this plan's ops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) unconfirmed: Vec<(u32, Update<u32>)>,
    /// Writes found not made that this plan writes again: system index and
    /// how many plans in a row found them not made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) retried: Vec<(u32, u32)>,
    /// What each target of an update held before the write, for commit to
    /// confirm the write by later: system index, field index, native value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) before: Vec<(u32, u32, Option<Value>)>,
    /// The entity leaves the baseline (every record of it is gone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) remove: bool,
    /// Fields a target was found holding in its own form of what recsync
    /// wrote (its shadow takes that form, in `shadows`): system index,
    /// field index, and the value written (`None`: forget it). A shadow set
    /// without an entry here forgets what was written there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) rewritten: Vec<(u32, u32, Option<Value>)>,
    /// An undo deletes records that were created for the entity: each such
    /// delete applied is remembered with the entity, so that the record's
    /// tombstone (which carries the entity's id as its correlation key) is
    /// not read as the entity's record deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) undone: bool,
}

impl fmt::Debug for EntityChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Field indexes, with whether each is set or cleared: no values.
        let set = |v: bool| if v { "set" } else { "cleared" };
        let canonical = debug_with(|f| {
            f.debug_map()
                .entries(self.canonical.iter().map(|(i, v)| (i, set(v.is_some()))))
                .finish()
        });
        let shadows = debug_with(|f| {
            f.debug_map()
                .entries(
                    self.shadows
                        .iter()
                        .map(|(s, i, v)| ((s, i), set(v.is_some()))),
                )
                .finish()
        });
        let held = debug_with(|f| {
            f.debug_map()
                .entries(self.held.iter().map(|(i, h)| (i, set(h.is_some()))))
                .finish()
        });
        let pending = debug_with(|f| match &self.pending {
            Some(p) => f
                .debug_list()
                .entries(p.iter().map(|(s, i, _)| (s, i)))
                .finish(),
            None => f.write_str("None"),
        });
        f.debug_struct("EntityChange")
            .field("entity", &self.entity)
            .field("new", &self.new)
            .field("links", &self.links)
            .field("canonical", &canonical)
            .field("shadows", &shadows)
            .field("held", &held)
            .field("pending", &pending)
            .field("delete_review", &self.delete_review)
            .field("unsettled", &self.unsettled)
            .field("remove", &self.remove)
            .field("undone", &self.undone)
            .field(
                "rewritten",
                &self
                    .rewritten
                    .iter()
                    .map(|(s, i, v)| ((s, i), set(v.is_some())))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A change to something kept: set it, or clear it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Update<T> {
    Set(T),
    Clear,
}

impl EntityChange {
    pub(crate) fn new(entity: EntityId) -> Self {
        EntityChange {
            entity,
            ..EntityChange::default()
        }
    }

    /// Whether commit has anything to do for the entity beyond its ops.
    pub(crate) fn is_empty(&self) -> bool {
        !self.new
            && self.links.is_empty()
            && self.canonical.is_empty()
            && self.shadows.is_empty()
            && self.held.is_empty()
            && self.pending.is_none()
            && self.delete_review.is_none()
            && !self.unsettled
            && !self.remove
            && self.unconfirmed.is_empty()
            && self.rewritten.is_empty()
            && !self.undone
    }
}

/// The write plan.
///
/// Its `Display` explains each write, conflict, hold and issue; its `Debug`
/// shows every part. Both print `[redacted]` for values of fields marked
/// [sensitive](crate::mapping::Field::sensitive) (each op's field, conflict
/// and issue carries the flag); [`display_unredacted`](SyncPlan::display_unredacted)
/// shows them. Serde writes every value: a serialized plan is data to be
/// committed, not a log.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncPlan {
    /// The object type planned.
    pub object: String,
    /// The baseline revision planned from.
    pub baseline_revision: u64,
    /// The fingerprint of the field map planned with; a plan is committed
    /// only with the same map.
    pub fingerprint: u64,
    /// Writes, in entity order, then system priority order.
    pub ops: Vec<WriteOp>,
    /// Conflicts held for review.
    pub conflicts: Vec<Conflict>,
    /// Values and records held back.
    pub held: Vec<Hold>,
    /// Per-record problems, sorted by system (in the map's order), record
    /// id, entity, then field (in the map's order; none first).
    pub issues: Vec<Issue>,
    /// Set when a safety guard refused part of the plan: what would have
    /// happened, and the approval that lets the next plan do it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// Writes that read-only systems would need, not planned, in entity
    /// order, then system priority order (a map's
    /// [`read_only`](crate::mapping::FieldMapBuilder::read_only) systems
    /// in [`ReadOnlyMode::Report`](crate::policy::ReadOnlyMode::Report)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only: Vec<ReadOnlyWrite>,
    /// Baseline changes that commit applies.
    pub changes: Vec<EntityChange>,
    /// Set on an undo plan: the run it takes back
    /// ([`SyncEngine::plan_undo`](crate::SyncEngine::plan_undo)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<RunId>,
    /// What commit changes in the records the baseline holds back as
    /// ambiguous matches.
    #[serde(default, skip_serializing_if = "AmbiguityChange::is_empty")]
    pub(crate) ambiguous: AmbiguityChange,
}

impl SyncPlan {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The ops that write to `system`, in the plan's order: what its
    /// connector is given.
    ///
    /// ```
    /// use recsync::{Baseline, Field, FieldMap, Record, Snapshot, SyncEngine};
    ///
    /// let map = FieldMap::builder()
    ///     .systems(["crm", "shop"])
    ///     .key("email")
    ///     .field(Field::new("email"))
    ///     .build()?;
    /// let crm = Snapshot::complete("crm", vec![Record::new("1").field("email", "ada@example.com")]);
    /// let shop = Snapshot::complete("shop", vec![]);
    /// let plan = SyncEngine::new(map).plan(&Baseline::new(), &[crm, shop])?;
    /// assert_eq!(plan.writes_to("shop").count(), 1);
    /// assert_eq!(plan.writes_to("crm").count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn writes_to<'a>(&'a self, system: &'a str) -> impl Iterator<Item = &'a WriteOp> + 'a {
        self.ops.iter().filter(move |op| op.system == system)
    }

    /// A display of the plan that shows sensitive values; the plain
    /// `Display` redacts them. Ask for it by name, never for logs.
    pub fn display_unredacted(&self) -> impl fmt::Display + '_ {
        Explain {
            plan: self,
            redact: false,
        }
    }
}

struct Explain<'a> {
    plan: &'a SyncPlan,
    redact: bool,
}

impl fmt::Display for SyncPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Explain {
            plan: self,
            redact: true,
        }
        .fmt(f)
    }
}

impl fmt::Display for Explain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.plan;
        let show = |v, sensitive: bool| shown(v, sensitive && self.redact);
        writeln!(
            f,
            "{} write(s), {} conflict(s) for review, {} held, {} issue(s)",
            p.ops.len(),
            p.conflicts.len(),
            p.held.len(),
            p.issues.len()
        )?;
        if let Some(r) = &p.refusal {
            writeln!(f, "{r}")?;
        }
        for op in &p.ops {
            writeln!(
                f,
                "{} {} {} (entity {}, op {})",
                op.kind,
                op.system,
                op.record_id.as_deref().unwrap_or("(new)"),
                op.entity,
                op.id
            )?;
            for w in &op.fields {
                writeln!(
                    f,
                    "    {} := {}  -- {}",
                    w.native,
                    show(&w.value, w.sensitive),
                    w.reason
                )?;
            }
        }
        for w in &p.read_only {
            writeln!(
                f,
                "read-only {}: {} {} not planned (entity {})",
                w.system,
                w.kind,
                w.record_id.as_deref().unwrap_or("(new)"),
                w.entity
            )?;
            for fw in &w.fields {
                writeln!(
                    f,
                    "    {} := {}  -- {}",
                    fw.native,
                    show(&fw.value, fw.sensitive),
                    fw.reason
                )?;
            }
        }
        for c in &p.conflicts {
            write!(
                f,
                "review {} field {} (conflict {}, {}): baseline ",
                c.entity, c.field, c.id, c.held_by,
            )?;
            match &c.baseline {
                Some(v) => write!(f, "{}", show(v, c.sensitive))?,
                None => f.write_str("none")?,
            }
            for cand in &c.candidates {
                write!(
                    f,
                    ", {} {}",
                    cand.system,
                    show(&cand.value, c.sensitive || cand.sensitive)
                )?;
            }
            writeln!(f)?;
        }
        for h in &p.held {
            match &h.kind {
                HoldKind::EmptyValue { system } => writeln!(
                    f,
                    "held {} field {}: empty value from {system} not propagated",
                    h.entity,
                    h.field.as_deref().unwrap_or("?")
                )?,
                HoldKind::Deleted {
                    system,
                    record_id,
                    review,
                    by,
                    edited_in,
                } => {
                    write!(
                        f,
                        "held {}: record {record_id} deleted in {system}, not propagated ({by}; review {review})",
                        h.entity
                    )?;
                    if !edited_in.is_empty() {
                        f.write_str("; edited in ")?;
                        join(f, edited_in)?;
                    }
                    writeln!(f)?
                }
                HoldKind::Frozen { system, record_id } => writeln!(
                    f,
                    "held {}: record {record_id} out of {system}'s scope, frozen",
                    h.entity
                )?,
                HoldKind::OutOfTargetScope { system } => writeln!(
                    f,
                    "held {}: not created in {system}, whose scope would exclude it",
                    h.entity
                )?,
                HoldKind::ChangedSince {
                    system,
                    record_id,
                    run,
                } => match &h.field {
                    Some(field) => writeln!(
                        f,
                        "held {}: field {field} of {system} record {record_id} changed since {run} wrote it; not undone",
                        h.entity
                    )?,
                    None => writeln!(
                        f,
                        "held {}: {system} record {record_id}, created by {run}, changed since; not deleted",
                        h.entity
                    )?,
                },
                HoldKind::Gone {
                    system,
                    record_id,
                    run,
                } => writeln!(
                    f,
                    "held {}: {system} record {record_id}, written by {run}, is gone; not undone",
                    h.entity
                )?,
                HoldKind::NotWritable {
                    system,
                    record_id,
                    run,
                } => writeln!(
                    f,
                    "held {}: {system} record {record_id} is not written to by this map; {run}'s writes there not undone",
                    h.entity
                )?,
                HoldKind::NotJournaled {
                    system,
                    record_id,
                    run,
                } => writeln!(
                    f,
                    "held {}: field {} of {system} record {record_id} is kept out of the journal; {run}'s write of it not undone",
                    h.entity,
                    h.field.as_deref().unwrap_or("?")
                )?,
            }
        }
        for i in &p.issues {
            write!(f, "issue {}", i.system)?;
            // A schema-drift issue is about no one record.
            if !matches!(i.kind, IssueKind::FieldNotFound { .. }) {
                write!(f, " {}", i.record_id)?;
            }
            if let Some(field) = &i.field {
                write!(f, " field {field}")?;
            }
            match &i.kind {
                IssueKind::DuplicateRecordId => writeln!(f, ": record id appears more than once")?,
                IssueKind::AmbiguousMatch {
                    key,
                    records,
                    candidate_count,
                    candidates,
                } => {
                    let key = if i.sensitive && self.redact {
                        REDACTED.to_owned()
                    } else {
                        format!("{key:?}")
                    };
                    write!(
                        f,
                        ": key {key} is ambiguous, {records} record(s) of {} not linked; {candidate_count} candidate(s):",
                        i.system
                    )?;
                    for (s, r) in candidates {
                        write!(f, " {s}/{r}")?;
                    }
                    if let Some(more) = candidate_count.checked_sub(candidates.len()) {
                        if more > 0 {
                            write!(f, " and {more} more")?;
                        }
                    }
                    writeln!(f)?;
                }
                IssueKind::InvalidKey { found } => writeln!(
                    f,
                    ": key value cannot be compared ({found}), not matched or created"
                )?,
                IssueKind::NonFiniteNumber => writeln!(
                    f,
                    ": number not finite (NaN or infinite), read as not reported"
                )?,
                IssueKind::Unmatched => {
                    writeln!(f, ": no record with its key in any other system")?
                }
                IssueKind::NoKey => writeln!(f, ": no key value, cannot be linked")?,
                IssueKind::Mapping { error } => {
                    let what = match error.direction() {
                        Conversion::ToCanonical => "record skipped",
                        Conversion::ToNative => "not written to this system",
                    };
                    let redact = self.redact && (i.sensitive || error.is_sensitive());
                    writeln!(
                        f,
                        ": mapping {} failed, {what}: {}",
                        error.direction(),
                        view(error, redact)
                    )?
                }
                IssueKind::InvalidValue { problem } => {
                    let redact = self.redact && (i.sensitive || problem.is_sensitive());
                    writeln!(f, ": {}, written without the field", view(problem, redact))?
                }
                IssueKind::MissingRequired => {
                    writeln!(f, ": required field missing, write blocked")?
                }
                IssueKind::StaleResolution => writeln!(f, ": review decision no longer applies")?,
                IssueKind::WaitingForParent { object, parent } => {
                    writeln!(f, ": waiting for parent {parent} of {object} to be linked")?
                }
                IssueKind::UnconfirmedWrite { op, attempts } => writeln!(
                    f,
                    ": {op} reported applied but not seen made in {attempts} plan(s) in a row"
                )?,
                IssueKind::KeptOwnValue { native } => writeln!(
                    f,
                    ": {native} kept its value though written twice; taken as the system's own form, not written again until the value changes"
                )?,
                IssueKind::FieldNotFound { native, closest } => {
                    write!(
                        f,
                        ": native field {native:?} is held by no record of {}'s complete snapshot",
                        i.system
                    )?;
                    if let Some(c) = closest {
                        write!(f, " (closest held: {c:?})")?;
                    }
                    writeln!(
                        f,
                        "; not written to {s} until it is. Fix the native name, mark the field \
                         .not_in({s:?}) if {s} lacks it, or .may_be_absent_in({s:?}) if {s}'s \
                         records leave it out when empty",
                        s = i.system.as_str()
                    )?
                }
            }
        }
        Ok(())
    }
}

//! Conflict rules: what happens when two or more systems changed the same
//! field since the baseline and disagree.
//!
//! A conflict exists only when several systems that are sources for a field
//! changed it to values that differ (after the field's normalization). One
//! system changing a field, or several changing it to the same value, is not
//! a conflict and needs no policy.
//!
//! | policy | who wins |
//! | --- | --- |
//! | [`LastWriteWins`](ConflictPolicy::LastWriteWins) | the newest change; timestamps within the map's skew tolerance, or missing, tie and go to the priority order |
//! | [`Authority`](ConflictPolicy::Authority) | the authority's change; when the authority did not change, the [`Fallback`] decides among the others |
//! | [`ManualReview`](ConflictPolicy::ManualReview) | nobody: the field is held for review and nothing is written |
//! | [`Custom`](ConflictPolicy::Custom) | whatever your [`ConflictResolver`] says |
//!
//! The `no_overwrite_on_empty` guard is layered on top of any of them (see
//! [`Field::no_overwrite_on_empty`](crate::mapping::Field::no_overwrite_on_empty)).
//!
//! Whole records have their own rules: what a delete in one system does to
//! the others ([`DeletePolicy`]), and what wins when one system deleted a
//! record that another changed since the last sync ([`DeleteEditPolicy`]).
//! A system the map declares read-only is never written; [`ReadOnlyMode`]
//! says whether what it would need is reported or refuses the plan.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConflictId, EntityId};
use crate::model::SystemId;
use crate::redact::{debug_with, shown, shown_opt};

/// How a conflict on a field is resolved.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// The newest change wins. Timestamps are the record's per-field
    /// timestamp where it has one, else its `updated_at`. Changes closer than
    /// the map's [skew tolerance](crate::mapping::FieldMapBuilder::skew_tolerance),
    /// or where any timestamp is missing, tie; ties go to the map's priority
    /// order, never to input order.
    LastWriteWins,
    /// One system's change wins. When that system did not change the field,
    /// `fallback` decides among the systems that did.
    Authority {
        /// The system whose change wins.
        system: SystemId,
        /// What decides when the authority did not change the field.
        fallback: Fallback,
    },
    /// The field is held for review: nothing is written and nothing advances
    /// until the host resolves the conflict
    /// ([`Baseline::resolve`](crate::Baseline::resolve)).
    ManualReview,
    /// A resolver you write.
    Custom(Arc<dyn ConflictResolver>),
}

impl ConflictPolicy {
    /// `Authority` of `system`, falling back to last-write-wins among the
    /// other systems when the authority did not change the field.
    pub fn authority(system: impl Into<SystemId>) -> Self {
        ConflictPolicy::Authority {
            system: system.into(),
            fallback: Fallback::LastWriteWins,
        }
    }

    /// A custom resolver.
    pub fn custom(resolver: impl ConflictResolver + 'static) -> Self {
        ConflictPolicy::Custom(Arc::new(resolver))
    }

    /// A short name for the policy, as plans print it.
    pub fn name(&self) -> String {
        match self {
            ConflictPolicy::LastWriteWins => "last-write-wins".to_owned(),
            ConflictPolicy::Authority { system, .. } => format!("authority of {system}"),
            ConflictPolicy::ManualReview => "manual review".to_owned(),
            ConflictPolicy::Custom(r) => format!("resolver {}", r.name()),
        }
    }
}

/// What a record deleted in one system does to the entity's records in the
/// others. Set per map and per deleting system
/// ([`FieldMapBuilder::deletes`](crate::mapping::FieldMapBuilder::deletes),
/// [`deletes_from`](crate::mapping::FieldMapBuilder::deletes_from)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeletePolicy {
    /// Delete the records in the other systems (within the
    /// [delete guard](crate::guard::Guards::deletes)).
    Propagate,
    /// Unlink the deleted record and keep the others.
    Unlink,
    /// Hold the delete for review. The default: nothing is deleted that a
    /// person did not confirm.
    #[default]
    Hold,
}

/// What wins when one system deleted a record and another changed it since
/// the last sync. It applies where the delete would propagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeleteEditPolicy {
    /// The edit wins: the record is re-created where it was deleted, with
    /// the edit in it.
    EditWins,
    /// The delete wins: it propagates, and the edit goes with the record.
    DeleteWins,
    /// Hold for review. The default: the edit is never lost silently.
    #[default]
    Hold,
}

/// What a plan does with a write a read-only system would need
/// ([`FieldMapBuilder::read_only`](crate::mapping::FieldMapBuilder::read_only)):
/// no write is ever planned to such a system, whichever mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReadOnlyMode {
    /// The plan goes ahead without the write and lists it in
    /// [`SyncPlan::read_only`](crate::SyncPlan::read_only); every later plan
    /// lists it again while it is needed. The default.
    #[default]
    Report,
    /// The plan is refused:
    /// [`plan_with`](crate::SyncEngine::plan_with) returns
    /// [`PlanError::ReadOnly`](crate::PlanError::ReadOnly), naming the
    /// system, record and field of the first such write.
    Error,
}

/// What decides an [`Authority`](ConflictPolicy::Authority) field's conflict
/// when the authority itself did not change the field (only possible with
/// three or more systems).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fallback {
    /// The newest change wins, as [`ConflictPolicy::LastWriteWins`].
    LastWriteWins,
    /// The system that comes first in the map's priority order wins.
    Priority,
    /// The field is held for review.
    ManualReview,
}

/// One system's changed value, as a [`ConflictResolver`] sees it. Its
/// `Debug` prints `[redacted]` for the value of a sensitive field.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Candidate<'a> {
    /// The system that changed the field.
    pub system: &'a SystemId,
    /// Its new value, in canonical form.
    pub value: &'a Value,
    /// When it changed, where the system says.
    pub changed_at: Option<DateTime<Utc>>,
    /// The field is marked sensitive: `Debug` prints `[redacted]` for the
    /// value.
    pub sensitive: bool,
}

impl fmt::Debug for Candidate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Candidate");
        d.field("system", self.system)
            .field("value", &shown(self.value, self.sensitive))
            .field("changed_at", &self.changed_at);
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

/// A conflict handed to a [`ConflictResolver`]. Its `Debug` prints
/// `[redacted]` for the values of a sensitive field.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct ConflictInput<'a> {
    /// The entity whose field is in conflict.
    pub entity: &'a EntityId,
    /// The canonical field name.
    pub field: &'a str,
    /// The canonical value at the last sync, if there was one.
    pub baseline: Option<&'a Value>,
    /// Every system that changed the field, in the map's priority order.
    /// There are always at least two, and they disagree.
    pub candidates: &'a [Candidate<'a>],
    /// The field is marked sensitive: `Debug` prints `[redacted]` for its
    /// values, and a resolver must not quote them in a
    /// [hold note](Resolution::Hold), which plans print.
    pub sensitive: bool,
}

impl fmt::Debug for ConflictInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ConflictInput");
        d.field("entity", self.entity)
            .field("field", &self.field)
            .field("baseline", &shown_opt(self.baseline, self.sensitive))
            .field("candidates", &self.candidates);
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

/// A [`ConflictResolver`]'s decision.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Resolution {
    /// This system's value wins. It must be one of the candidates; naming
    /// another system holds the field with an issue in the plan.
    Take(SystemId),
    /// This value, in canonical form, wins (for example a merge of the
    /// candidates).
    Value(Value),
    /// Hold the field for review, with a note that the plan shows.
    Hold(String),
}

/// A conflict rule you write, for [`ConflictPolicy::Custom`].
///
/// # Contract
///
/// `resolve` must be a pure function of its input: no clock, no randomness,
/// no I/O. The engine promises the same plan for the same input, and that
/// promise is only as good as your resolver's. It must not depend on the
/// order of candidates beyond the priority order they come in. A hold's
/// note is printed with the plan: where the field is sensitive
/// ([`ConflictInput::sensitive`]) it must not quote a value.
///
/// ```
/// use recsync::policy::{ConflictInput, ConflictResolver, Resolution};
/// use serde_json::Value;
///
/// /// The largest number wins (a deal amount only grows).
/// #[derive(Debug)]
/// struct Largest;
///
/// impl ConflictResolver for Largest {
///     fn name(&self) -> &str {
///         "largest"
///     }
///     fn resolve(&self, input: &ConflictInput<'_>) -> Resolution {
///         let best = input
///             .candidates
///             .iter()
///             .filter_map(|c| c.value.as_f64().map(|n| (n, c.system)))
///             .fold(None, |best: Option<(f64, _)>, (n, s)| match best {
///                 Some((b, _)) if b >= n => best,
///                 _ => Some((n, s)),
///             });
///         match best {
///             Some((_, system)) => Resolution::Take(system.clone()),
///             None => Resolution::Hold("no numeric candidate".into()),
///         }
///     }
/// }
/// ```
pub trait ConflictResolver: Send + Sync + fmt::Debug {
    /// A short name, shown in plans as the reason a value won.
    fn name(&self) -> &str;

    /// Decides the conflict.
    fn resolve(&self, input: &ConflictInput<'_>) -> Resolution;
}

/// Why a candidate won a conflict, as recorded in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WinRule {
    /// Its change was the newest, beyond the skew tolerance.
    LastWriteWins,
    /// Timestamps tied (within the skew tolerance) or were missing, and it
    /// comes first in the priority order among the tied.
    Tie,
    /// It is the field's authority.
    Authority,
    /// It comes first in the priority order (an authority's fallback).
    Priority,
    /// A custom resolver chose it.
    Custom {
        /// The resolver's name.
        resolver: String,
    },
}

impl fmt::Display for WinRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WinRule::LastWriteWins => f.write_str("last-write-wins"),
            WinRule::Tie => f.write_str("tie on time, priority order"),
            WinRule::Authority => f.write_str("authority"),
            WinRule::Priority => f.write_str("priority order"),
            WinRule::Custom { resolver } => write!(f, "resolver {resolver}"),
        }
    }
}

/// What a policy decided for one conflict.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// The candidate at this index (in the slice given) wins.
    Take(usize, WinRule),
    /// A value a resolver produced wins.
    Value(Value, String),
    /// Held for review, with why.
    Hold(HeldBy),
}

/// Why a conflict is held rather than decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HeldBy {
    /// The field's policy is manual review.
    ManualReview,
    /// The field's authority did not change it and the fallback is manual
    /// review.
    AuthorityFallback {
        /// The field's authority.
        authority: SystemId,
    },
    /// A custom resolver asked for review.
    Resolver {
        /// The resolver's name.
        resolver: String,
        /// Its note.
        note: String,
    },
    /// A custom resolver named a system that is not a candidate.
    ResolverError {
        /// The resolver's name.
        resolver: String,
        /// The system it named.
        chose: SystemId,
    },
}

impl fmt::Display for HeldBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeldBy::ManualReview => f.write_str("manual review"),
            HeldBy::AuthorityFallback { authority } => write!(
                f,
                "authority {authority} did not change it; fallback is manual review"
            ),
            HeldBy::Resolver { resolver, note } => write!(f, "resolver {resolver}: {note}"),
            HeldBy::ResolverError { resolver, chose } => write!(
                f,
                "resolver {resolver} chose {chose}, which did not change the field"
            ),
        }
    }
}

/// One system's side of a conflict. Its `Debug` prints `[redacted]` for
/// the value of a sensitive field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConflictCandidate {
    /// The system.
    pub system: SystemId,
    /// Its value, in canonical form.
    pub value: Value,
    /// When it changed, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// The field is marked sensitive: `Debug` prints `[redacted]` for the
    /// value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// The value as the system held it, in its native form, when the
    /// conflict was held: filled in by
    /// [`ReviewQueue::open`](crate::store::ReviewQueue::open) from the
    /// stored baseline, so a reviewer sees what the system holds even
    /// where the map reads several native values as one; `None` in a
    /// plan's conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_as: Option<Value>,
}

impl ConflictCandidate {
    fn fmt_as(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        let mut d = f.debug_struct("ConflictCandidate");
        d.field("system", &self.system)
            .field("value", &shown(&self.value, redact))
            .field("changed_at", &self.changed_at);
        if let Some(v) = &self.held_as {
            d.field("held_as", &shown(v, redact));
        }
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

impl fmt::Debug for ConflictCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_as(f, self.sensitive)
    }
}

/// A conflict held for review: nothing is written for the field until it is
/// resolved ([`Baseline::resolve`](crate::Baseline::resolve)).
///
/// Its values are in canonical form; [`native`](Conflict::native) renders
/// them as each candidate system holds them, for a reviewer. Its `Debug`
/// and `Display` print `[redacted]` for the values of a sensitive field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conflict {
    /// Stable id.
    pub id: ConflictId,
    /// The entity.
    pub entity: EntityId,
    /// The canonical field.
    pub field: String,
    /// The canonical value at the last sync.
    pub baseline: Option<Value>,
    /// Every system that changed the field, in priority order.
    pub candidates: Vec<ConflictCandidate>,
    /// Why it is held.
    pub held_by: HeldBy,
    /// The field is marked sensitive: `Debug`, `Display` and the plan's
    /// `Display` print `[redacted]` for its values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl fmt::Debug for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Candidates<'a>(&'a [ConflictCandidate], bool);
        impl fmt::Debug for Candidates<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(
                        self.0
                            .iter()
                            .map(|c| debug_with(move |f| c.fmt_as(f, self.1 || c.sensitive))),
                    )
                    .finish()
            }
        }
        let mut d = f.debug_struct("Conflict");
        d.field("id", &self.id)
            .field("entity", &self.entity)
            .field("field", &self.field)
            .field(
                "baseline",
                &shown_opt(self.baseline.as_ref(), self.sensitive),
            )
            .field("candidates", &Candidates(&self.candidates, self.sensitive))
            .field("held_by", &self.held_by);
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

impl Conflict {
    /// A display of the conflict that shows the values of a sensitive
    /// field; the plain `Display` redacts them. Ask for it by name, never
    /// for logs.
    pub fn display_unredacted(&self) -> impl fmt::Display + '_ {
        ConflictLine {
            conflict: self,
            redact: false,
        }
    }
}

/// A conflict's `Display`, with values redacted where sensitive or not.
struct ConflictLine<'a> {
    conflict: &'a Conflict,
    redact: bool,
}

impl fmt::Display for ConflictLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.conflict;
        write!(
            f,
            "conflict {} on {} field {} ({}): baseline ",
            c.id, c.entity, c.field, c.held_by
        )?;
        match &c.baseline {
            Some(v) => write!(f, "{}", shown(v, self.redact && c.sensitive))?,
            None => f.write_str("none")?,
        }
        for cand in &c.candidates {
            let redact = self.redact && (c.sensitive || cand.sensitive);
            write!(f, ", {} {}", cand.system, shown(&cand.value, redact))?;
            if let Some(t) = cand.changed_at {
                write!(f, " at {}", t.format(TIME_SHOWN))?;
            }
        }
        Ok(())
    }
}

/// One line: the id, entity, field and why it is held, the baseline value,
/// then each candidate system's value (in canonical form) and when it
/// changed, where known. Values of a field marked sensitive print as
/// `[redacted]`
/// ([`display_unredacted`](Conflict::display_unredacted) shows them);
/// [`native`](Conflict::native) shows the candidates as each system holds
/// them.
///
/// ```text
/// conflict 3f0c9a1d5e7b2c48 on crm:1 field stage (manual review): baseline "L", crm "O" at 2026-03-01 09:00:00, erp "Q" at 2026-03-01 09:05:00
/// ```
impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ConflictLine {
            conflict: self,
            redact: true,
        }
        .fmt(f)
    }
}

/// How a `Display` shows a time: UTC, to the second.
pub(crate) const TIME_SHOWN: &str = "%Y-%m-%d %H:%M:%S";

impl From<&Conflict> for ConflictId {
    fn from(c: &Conflict) -> Self {
        c.id
    }
}

/// Why a delete is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeleteHeldBy {
    /// The map's delete policy for that system is to hold for review.
    Policy,
    /// Another system changed the record since the last sync and the
    /// delete-against-edit policy is to hold for review.
    DeleteAgainstEdit,
    /// A safety guard refused the plan and the delete waits for approval.
    Guard,
}

impl fmt::Display for DeleteHeldBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeleteHeldBy::Policy => "held for review by the delete policy",
            DeleteHeldBy::DeleteAgainstEdit => {
                "held for review: edited elsewhere since the last sync"
            }
            DeleteHeldBy::Guard => "withheld by a safety guard until approved",
        })
    }
}

/// Decides a conflict among `candidates` (at least two, disagreeing, in
/// priority order: a lower index wins ties).
pub(crate) fn decide(
    policy: &ConflictPolicy,
    input: &ConflictInput<'_>,
    skew_tolerance: TimeDelta,
) -> Decision {
    let candidates = input.candidates;
    match policy {
        ConflictPolicy::LastWriteWins => last_write_wins(candidates, skew_tolerance),
        ConflictPolicy::Authority { system, fallback } => {
            if let Some(i) = candidates.iter().position(|c| c.system == system) {
                return Decision::Take(i, WinRule::Authority);
            }
            match fallback {
                Fallback::LastWriteWins => last_write_wins(candidates, skew_tolerance),
                Fallback::Priority => Decision::Take(0, WinRule::Priority),
                Fallback::ManualReview => Decision::Hold(HeldBy::AuthorityFallback {
                    authority: system.clone(),
                }),
            }
        }
        ConflictPolicy::ManualReview => Decision::Hold(HeldBy::ManualReview),
        ConflictPolicy::Custom(resolver) => match resolver.resolve(input) {
            Resolution::Take(system) => match candidates.iter().position(|c| *c.system == system) {
                Some(i) => Decision::Take(
                    i,
                    WinRule::Custom {
                        resolver: resolver.name().to_owned(),
                    },
                ),
                None => Decision::Hold(HeldBy::ResolverError {
                    resolver: resolver.name().to_owned(),
                    chose: system,
                }),
            },
            Resolution::Value(value) => Decision::Value(value, resolver.name().to_owned()),
            Resolution::Hold(note) => Decision::Hold(HeldBy::Resolver {
                resolver: resolver.name().to_owned(),
                note,
            }),
        },
    }
}

/// The newest candidate wins; a tie within `skew` or a missing timestamp
/// goes to the first in priority order among the tied.
fn last_write_wins(candidates: &[Candidate<'_>], skew: TimeDelta) -> Decision {
    let mut stamps = Vec::with_capacity(candidates.len());
    for c in candidates {
        match c.changed_at {
            Some(t) => stamps.push(t),
            // Without every timestamp the clocks cannot be compared.
            None => return Decision::Take(0, WinRule::Tie),
        }
    }
    let Some(newest) = stamps.iter().max().copied() else {
        return Decision::Take(0, WinRule::Tie);
    };
    let tied: Vec<usize> = stamps
        .iter()
        .enumerate()
        .filter(|(_, t)| newest - **t <= skew)
        .map(|(i, _)| i)
        .collect();
    match tied.as_slice() {
        [only] => Decision::Take(*only, WinRule::LastWriteWins),
        [first, ..] => Decision::Take(*first, WinRule::Tie),
        [] => Decision::Take(0, WinRule::Tie),
    }
}

/// What the empty-value rule of a field marked
/// [`no_overwrite_on_empty`](crate::mapping::Field::no_overwrite_on_empty)
/// is told, where the canonical value is not empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EmptiedFacts {
    /// How many sources emptied the field (they are set aside).
    pub(crate) emptied: usize,
    /// How many sources changed it to a value, left to decide among.
    pub(crate) left: usize,
    /// The field's authority is among those that emptied it.
    pub(crate) authority_emptied: bool,
}

/// Whether the empty-value rule holds the field: a source emptied it, and
/// no other source has a value, or the authority itself emptied it (its
/// choice is neither taken nor overruled). Otherwise the sources with a
/// value are decided among as usual.
pub(crate) fn empties_hold(facts: &EmptiedFacts) -> bool {
    facts.emptied > 0 && (facts.left == 0 || facts.authority_emptied)
}

/// What a delete found in one or more systems leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteAction {
    /// The deleted records are unlinked; the others stay.
    Unlink,
    /// The delete waits for review (or a guard's approval).
    Hold(DeleteHeldBy),
    /// The delete is made in the other systems.
    Propagate,
    /// The deleted records are created again from the others.
    Restore,
    /// The deleted records stay deleted, still linked as deleted, until the
    /// source changes the record (a one-way record direction that is not
    /// enforced): then they are restored.
    Wait,
}

/// What [`delete_action`] is told about a delete.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeleteFacts<'a> {
    /// Per system whose record was deleted: its delete policy where the
    /// map's record direction makes it a source of records; `None` for a
    /// target only.
    pub(crate) deleted: &'a [Option<DeletePolicy>],
    /// A target's deleted record can be restored: the record direction is
    /// an enforced one-way flow, and a source still holds the record.
    pub(crate) restorable: bool,
    /// The record direction is a one-way flow that is not enforced, and a
    /// source still holds the record: `Some(edited)`, whether such a source
    /// changed a field it is a source for since the last sync. `None`
    /// otherwise.
    pub(crate) source_changed: Option<bool>,
    /// A system not deleting the record changed it since the last sync.
    pub(crate) edited: bool,
    /// The map's delete-against-edit policy.
    pub(crate) delete_vs_edit: DeleteEditPolicy,
    /// A reviewer's decision on this delete, where there is one.
    pub(crate) reviewed: Option<DeleteAction>,
    /// A safety guard withholds deletes from this plan.
    pub(crate) guard: bool,
}

/// The delete rules, in order: a reviewer's decision stands; otherwise a
/// source whose policy holds deletes holds it; a delete to propagate
/// against an edit elsewhere follows the delete-against-edit policy; a
/// target's deleted record is restored where it can be (an enforced
/// one-way flow, or one not enforced whose source changed the record),
/// waits for the source to change where the flow is not enforced, and is
/// unlinked where there is no source record. A delete to propagate while a
/// guard withholds deletes waits for the guard's approval.
pub(crate) fn delete_action(facts: &DeleteFacts<'_>) -> DeleteAction {
    let action = facts.reviewed.unwrap_or_else(|| delete_by_policy(facts));
    if action == DeleteAction::Propagate && facts.guard {
        DeleteAction::Hold(DeleteHeldBy::Guard)
    } else {
        action
    }
}

/// The delete rules without a reviewer's decision or a guard.
fn delete_by_policy(facts: &DeleteFacts<'_>) -> DeleteAction {
    let (mut hold, mut propagate, mut restore, mut wait) = (false, false, false, false);
    for policy in facts.deleted {
        match (policy, facts.source_changed) {
            (Some(DeletePolicy::Hold), _) => hold = true,
            (Some(DeletePolicy::Propagate), _) => propagate = true,
            (Some(DeletePolicy::Unlink), _) => {}
            (None, _) if facts.restorable => restore = true,
            (None, Some(true)) => restore = true,
            (None, Some(false)) => wait = true,
            (None, None) => {}
        }
    }
    if hold {
        DeleteAction::Hold(DeleteHeldBy::Policy)
    } else if propagate && facts.edited {
        match facts.delete_vs_edit {
            DeleteEditPolicy::EditWins => DeleteAction::Restore,
            DeleteEditPolicy::DeleteWins => DeleteAction::Propagate,
            DeleteEditPolicy::Hold => DeleteAction::Hold(DeleteHeldBy::DeleteAgainstEdit),
        }
    } else if propagate {
        DeleteAction::Propagate
    } else if restore {
        DeleteAction::Restore
    } else if wait {
        DeleteAction::Wait
    } else {
        DeleteAction::Unlink
    }
}

/// What [`mirror_action`] is told about an entity of a map whose one-way
/// record direction mirrors
/// ([`FieldMapBuilder::mirror`](crate::mapping::FieldMapBuilder::mirror)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MirrorFacts {
    /// The map mirrors.
    pub(crate) mirror: bool,
    /// A source of records holds the entity's record: linked and live, or
    /// deleted with its delete still decided by the delete rules.
    pub(crate) source_record: bool,
    /// The entity was linked to a source record once (the link is
    /// detached now: the record was unlinked, or left scope).
    pub(crate) source_unlinked: bool,
    /// Every source of records was read completely by this plan, so
    /// matching saw every source record.
    pub(crate) sources_read: bool,
    /// A target holds a live record of the entity.
    pub(crate) target_records: bool,
    /// A safety guard withholds deletes from this plan.
    pub(crate) guard: bool,
}

/// Whether a mirror deletes the entity's target records: where no source
/// holds its record, and either it had one (the source record is gone) or
/// every source was read completely (the target record matched none).
/// `None`: nothing to do; `Propagate`: delete them; `Hold(Guard)`: the
/// delete guard withholds that until approved; `Wait`: a target record
/// that matched no source record read, while some source was not read
/// completely, waits for a plan that reads them all.
pub(crate) fn mirror_action(facts: &MirrorFacts) -> Option<DeleteAction> {
    if !(facts.mirror && !facts.source_record && facts.target_records) {
        return None;
    }
    if !(facts.source_unlinked || facts.sources_read) {
        return Some(DeleteAction::Wait);
    }
    Some(if facts.guard {
        DeleteAction::Hold(DeleteHeldBy::Guard)
    } else {
        DeleteAction::Propagate
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(s, 0)
    }

    #[test]
    fn newest_wins_and_skew_ties_go_to_priority() {
        let (a, b) = (SystemId::new("a"), SystemId::new("b"));
        let (va, vb) = (json!(1), json!(2));
        let c = [
            Candidate {
                system: &a,
                value: &va,
                changed_at: at(100),
                sensitive: false,
            },
            Candidate {
                system: &b,
                value: &vb,
                changed_at: at(103),
                sensitive: false,
            },
        ];
        assert_eq!(
            last_write_wins(&c, TimeDelta::seconds(2)),
            Decision::Take(1, WinRule::LastWriteWins)
        );
        assert_eq!(
            last_write_wins(&c, TimeDelta::seconds(3)),
            Decision::Take(0, WinRule::Tie)
        );
        let missing = [
            c[0],
            Candidate {
                changed_at: None,
                ..c[1]
            },
        ];
        assert_eq!(
            last_write_wins(&missing, TimeDelta::zero()),
            Decision::Take(0, WinRule::Tie)
        );
    }

    #[test]
    fn the_empty_value_rule_holds_when_nothing_else_has_a_value_or_the_authority_emptied() {
        // (emptied, left, authority emptied) -> held
        let table = [
            ((0, 1, false), false),
            ((0, 0, false), false),
            ((1, 0, false), true),
            ((2, 0, false), true),
            ((1, 1, false), false),
            ((1, 2, false), false),
            ((1, 1, true), true),
        ];
        for ((emptied, left, authority_emptied), held) in table {
            let facts = EmptiedFacts {
                emptied,
                left,
                authority_emptied,
            };
            assert_eq!(empties_hold(&facts), held, "{facts:?}");
        }
    }

    #[test]
    fn the_delete_rules_in_order() {
        use DeleteAction::{Hold as H, Propagate as P, Restore as R, Unlink as U};
        use DeleteEditPolicy::{DeleteWins, EditWins, Hold as EditHold};
        use DeletePolicy::{Hold as DH, Propagate as DP, Unlink as DU};
        let (policy, against, guard) = (
            H(DeleteHeldBy::Policy),
            H(DeleteHeldBy::DeleteAgainstEdit),
            H(DeleteHeldBy::Guard),
        );
        // (deleted in, restorable, edited, delete vs edit, reviewed, guard) -> action
        #[allow(clippy::type_complexity)]
        let table: &[(
            &[Option<DeletePolicy>],
            bool,
            bool,
            DeleteEditPolicy,
            Option<DeleteAction>,
            bool,
            DeleteAction,
        )] = &[
            (&[Some(DP)], false, false, EditHold, None, false, P),
            (&[Some(DU)], false, false, EditHold, None, false, U),
            (&[Some(DH)], false, false, EditHold, None, false, policy),
            // A source that holds deletes holds them all.
            (
                &[Some(DP), Some(DH)],
                false,
                false,
                EditHold,
                None,
                false,
                policy,
            ),
            (
                &[Some(DP), Some(DU)],
                false,
                false,
                EditHold,
                None,
                false,
                P,
            ),
            // Against an edit elsewhere.
            (&[Some(DP)], false, true, EditHold, None, false, against),
            (&[Some(DP)], false, true, EditWins, None, false, R),
            (&[Some(DP)], false, true, DeleteWins, None, false, P),
            (&[Some(DU)], false, true, EditHold, None, false, U),
            // A target's deleted record: restored where it can be.
            (&[None], true, false, EditHold, None, false, R),
            (&[None], false, false, EditHold, None, false, U),
            (&[None, Some(DP)], true, false, EditHold, None, false, P),
            // A reviewer's decision stands.
            (&[Some(DH)], false, false, EditHold, Some(P), false, P),
            (&[Some(DP)], false, true, EditHold, Some(U), false, U),
            (&[Some(DP)], false, false, EditHold, Some(R), false, R),
            // A guard withholds deletes to propagate, reviewed or not.
            (&[Some(DP)], false, false, EditHold, None, true, guard),
            (&[Some(DH)], false, false, EditHold, Some(P), true, guard),
            (&[Some(DH)], false, false, EditHold, None, true, policy),
            (&[Some(DU)], false, false, EditHold, None, true, U),
        ];
        for (deleted, restorable, edited, delete_vs_edit, reviewed, g, want) in table {
            let facts = DeleteFacts {
                deleted,
                restorable: *restorable,
                source_changed: None,
                edited: *edited,
                delete_vs_edit: *delete_vs_edit,
                reviewed: *reviewed,
                guard: *g,
            };
            assert_eq!(delete_action(&facts), *want, "{facts:?}");
        }
    }

    #[test]
    fn a_target_record_deleted_under_a_one_way_flow_not_enforced_waits_for_the_source() {
        let facts = |deleted: &'static [Option<DeletePolicy>], changed, reviewed| DeleteFacts {
            deleted,
            restorable: false,
            source_changed: changed,
            edited: false,
            delete_vs_edit: DeleteEditPolicy::Hold,
            reviewed,
            guard: false,
        };
        let action = |f: DeleteFacts<'_>| delete_action(&f);
        assert_eq!(
            action(facts(&[None], Some(false), None)),
            DeleteAction::Wait
        );
        assert_eq!(
            action(facts(&[None], Some(true), None)),
            DeleteAction::Restore
        );
        // No source record to restore from: unlinked, as before.
        assert_eq!(action(facts(&[None], None, None)), DeleteAction::Unlink);
        // The source's own delete decides where it deletes too.
        let both: &[Option<DeletePolicy>] = &[None, Some(DeletePolicy::Propagate)];
        assert_eq!(
            action(facts(both, Some(false), None)),
            DeleteAction::Propagate
        );
        // A reviewer's decision stands.
        assert_eq!(
            action(facts(&[None], Some(false), Some(DeleteAction::Unlink))),
            DeleteAction::Unlink
        );
    }

    #[test]
    fn a_mirror_deletes_target_records_with_no_source_record() {
        let base = MirrorFacts {
            mirror: true,
            source_record: false,
            source_unlinked: true,
            sources_read: false,
            target_records: true,
            guard: false,
        };
        assert_eq!(mirror_action(&base), Some(DeleteAction::Propagate));
        // Never linked to a source: only once every source was read whole.
        let never = MirrorFacts {
            source_unlinked: false,
            ..base
        };
        assert_eq!(mirror_action(&never), Some(DeleteAction::Wait));
        let read = MirrorFacts {
            sources_read: true,
            ..never
        };
        assert_eq!(mirror_action(&read), Some(DeleteAction::Propagate));
        let guarded = MirrorFacts {
            guard: true,
            ..base
        };
        assert_eq!(
            mirror_action(&guarded),
            Some(DeleteAction::Hold(DeleteHeldBy::Guard))
        );
        for off in [
            MirrorFacts {
                mirror: false,
                ..base
            },
            MirrorFacts {
                source_record: true,
                ..base
            },
            MirrorFacts {
                target_records: false,
                ..base
            },
        ] {
            assert_eq!(mirror_action(&off), None, "{off:?}");
        }
    }
}

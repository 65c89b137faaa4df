//! Commit: what a plan and its outcomes make of the baseline.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use serde_json::Value;

use crate::baseline::{
    Awaiting, Baseline, BaselineError, Entity, EntityId, KeyIndex, LinkState, LinkStatus, RawIndex,
    ReviewChoice, Text,
};
use crate::identity::{entity_key, key_spec};
use crate::mapping::FieldMap;
use crate::model::is_empty_value;
use crate::plan::{EntityChange, OpKind, SyncPlan, Update, WriteOp};

use super::{CommitError, OpOutcome, Outcomes};

/// Which entities a commit changed: for stores that write only those.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommitSummary {
    /// Entities added or changed.
    pub touched: Vec<EntityId>,
    /// Entities that left the baseline.
    pub removed: Vec<EntityId>,
    /// The records the baseline holds back as ambiguous matches
    /// ([`BaselineHeader::ambiguous`](crate::baseline::BaselineHeader::ambiguous))
    /// changed: a store that keeps them apart from the rest of the header
    /// writes them again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ambiguous: bool,
    /// The writes this commit records, for a store that keeps a
    /// [journal](crate::journal) to save with the baseline. The engine
    /// leaves it empty; the runner (or a host) sets it
    /// ([`JournalBatch::of_commit`](crate::journal::JournalBatch::of_commit)).
    #[serde(skip)]
    pub journal: Option<std::sync::Arc<crate::journal::JournalBatch>>,
}

/// Commits `plan` and its ops' `outcomes` into `baseline`, in steps:
/// [`check`] refuses a commit that does not fit, before anything changes;
/// [`commit_change`] commits each entity's change; then the match key
/// index is rebuilt where it is not for the map's keys
/// ([`rebuild_keys`]), the memory of ambiguous records is brought up to
/// date ([`commit_ambiguous`]), and the baseline takes the map's
/// fingerprint and its next revision.
pub(crate) fn commit(
    map: &FieldMap,
    baseline: &mut Baseline,
    plan: &SyncPlan,
    outcomes: &Outcomes,
) -> Result<CommitSummary, CommitError> {
    check(map, baseline, plan, outcomes)?;
    let inputs = Inputs::new(map, baseline, outcomes)?;
    let mut ops_of: HashMap<&EntityId, Vec<&WriteOp>> = HashMap::new();
    for op in &plan.ops {
        ops_of.entry(&op.entity).or_default().push(op);
    }

    let spec = key_spec(map);
    let keyed = !map.match_keys().is_empty();
    let maintain = keyed && baseline.keys.spec == spec;
    let mut summary = CommitSummary::default();
    for change in &plan.changes {
        let ops = ops_of.get(&change.entity).map(Vec::as_slice).unwrap_or(&[]);
        commit_change(map, baseline, &inputs, change, ops, maintain, &mut summary)?;
    }
    if keyed && !maintain {
        rebuild_keys(map, baseline, spec);
    }
    commit_ambiguous(baseline, plan, outcomes, &mut summary);
    // An undo is planned from the journal, not from the whole baseline
    // under this map: the baseline stays the map's it was.
    if plan.undo.is_none() {
        baseline.set_fingerprint(map.fingerprint());
    }
    baseline.bump_revision();
    Ok(summary)
}

/// Refuses a commit before anything changes: a plan made from another
/// revision of the baseline or for another map, a baseline whose revision
/// cannot count one more, an outcome of an op the plan does not have, a
/// create reported applied without the new record's id, or links that
/// would link one record to two entities ([`check_links`]).
fn check(
    map: &FieldMap,
    baseline: &Baseline,
    plan: &SyncPlan,
    outcomes: &Outcomes,
) -> Result<(), CommitError> {
    if plan.baseline_revision != baseline.revision() {
        return Err(CommitError::StalePlan {
            plan: plan.baseline_revision,
            baseline: baseline.revision(),
        });
    }
    // Checked before anything changes: a commit that cannot count itself
    // leaves the baseline as it was.
    if baseline.revision().checked_add(1).is_none() {
        return Err(CommitError::RevisionExhausted {
            revision: baseline.revision(),
        });
    }
    if plan.fingerprint != map.fingerprint() {
        return Err(CommitError::OtherMap {
            plan: plan.fingerprint,
            map: map.fingerprint(),
        });
    }
    let ids: HashSet<_> = plan.ops.iter().map(|o| o.id).collect();
    if let Some((unknown, _)) = outcomes.iter().find(|(id, _)| !ids.contains(id)) {
        return Err(CommitError::UnknownOp(*unknown));
    }
    for op in &plan.ops {
        if op.kind == OpKind::Create {
            if let Some(OpOutcome::Applied {
                record_id: None, ..
            }) = outcomes.get(op.id)
            {
                return Err(CommitError::MissingRecordId(op.id));
            }
        }
    }
    check_links(map, baseline, plan, outcomes)
}

/// What committing each entity's change reads: the baseline's slots for
/// the map's systems and fields, and the ops' outcomes.
struct Inputs<'p> {
    /// Per map system: its slot in the baseline.
    sys: Vec<usize>,
    /// Per map field: its slot in the baseline.
    fields: Vec<usize>,
    /// Map field index by field name.
    field_index: HashMap<&'p str, usize>,
    /// What became of each op.
    outcomes: &'p Outcomes,
}

impl<'p> Inputs<'p> {
    /// Adds the map's systems and fields to the baseline where it does not
    /// have them yet, and finds their slots.
    fn new(
        map: &'p FieldMap,
        baseline: &mut Baseline,
        outcomes: &'p Outcomes,
    ) -> Result<Self, CommitError> {
        let mut sys = Vec::with_capacity(map.systems().len());
        for s in map.systems() {
            sys.push(baseline.ensure_system(s)?);
        }
        let mut fields = Vec::with_capacity(map.fields().len());
        for f in map.fields() {
            fields.push(baseline.ensure_field(f.name())?);
        }
        let field_index: HashMap<&str, usize> = map
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name(), i))
            .collect();
        Ok(Inputs {
            sys,
            fields,
            field_index,
            outcomes,
        })
    }

    /// The baseline slot of the field an op writes, by its name.
    fn field_slot(&self, name: &str) -> Option<usize> {
        self.field_index
            .get(name)
            .and_then(|f| self.fields.get(*f))
            .copied()
    }
}

/// Commits one entity's change and its `ops`' outcomes ([`apply`]): to a
/// new entity, inserted first, or to an existing one (a change to an
/// entity the baseline no longer has is skipped). Keeps the match key index
/// right where it is `maintain`ed, and counts the entity in `summary` as
/// touched or removed.
fn commit_change(
    map: &FieldMap,
    baseline: &mut Baseline,
    inputs: &Inputs<'_>,
    change: &EntityChange,
    ops: &[&WriteOp],
    maintain: bool,
    summary: &mut CommitSummary,
) -> Result<(), CommitError> {
    let slot = if change.new {
        baseline.insert_entity(Entity::new(change.entity.clone()))?
    } else {
        match baseline.find_entity(&change.entity) {
            Some(slot) => slot,
            None => return Ok(()),
        }
    };
    let old_keys = if maintain {
        keys_of(map, baseline, slot)
    } else {
        Vec::new()
    };
    let removed = apply(baseline, slot, change, ops, inputs)?;
    if maintain {
        let new_keys = if removed {
            Vec::new()
        } else {
            keys_of(map, baseline, slot)
        };
        if old_keys != new_keys {
            reindex_keys(baseline, slot, &old_keys, &new_keys);
        }
    }
    if removed {
        summary.removed.push(change.entity.clone());
        return Ok(());
    }
    summary.touched.push(change.entity.clone());
    Ok(())
}

/// Moves entity `slot` in the match key index from its `old` key values to
/// its `new` ones (by match key).
fn reindex_keys(
    baseline: &mut Baseline,
    slot: u32,
    old: &[Option<String>],
    new: &[Option<String>],
) {
    for (k, t) in old.iter().enumerate() {
        if let Some(t) = t {
            let h = baseline.key_hash(t.as_bytes());
            if let Some(table) = baseline.keys.tables.get_mut(k) {
                table.remove(h, slot);
            }
        }
    }
    for (k, t) in new.iter().enumerate() {
        if let Some(t) = t {
            let h = baseline.key_hash(t.as_bytes());
            if let Some(table) = baseline.keys.tables.get_mut(k) {
                table.insert(h, slot);
            }
        }
    }
}

/// Brings the memory of records held back as ambiguous up to date: what
/// the plan changes in it, then the records creates made, which are linked
/// and so not held back (a system that hands out a deleted record's id
/// again could make one so).
fn commit_ambiguous(
    baseline: &mut Baseline,
    plan: &SyncPlan,
    outcomes: &Outcomes,
    summary: &mut CommitSummary,
) {
    if !plan.ambiguous.is_empty() {
        baseline.ambiguous_mut().apply(&plan.ambiguous);
        summary.ambiguous = true;
    }
    if !baseline.header().ambiguous.is_empty() {
        for op in plan.ops.iter().filter(|op| op.kind == OpKind::Create) {
            if let Some(OpOutcome::Applied {
                record_id: Some(id),
                ..
            }) = outcomes.get(op.id)
            {
                summary.ambiguous |= baseline.ambiguous_mut().forget(op.system.as_str(), id);
            }
        }
    }
}

/// Entity `slot`'s key text for each of the map's match keys (none if the
/// baseline has no such entity).
fn keys_of(map: &FieldMap, baseline: &Baseline, slot: u32) -> Vec<Option<String>> {
    let Some(e) = baseline.entity_at(slot) else {
        return Vec::new();
    };
    (0..map.match_keys().len())
        .map(|k| entity_key(map, baseline.fields(), k, e))
        .collect()
}

/// Builds the match key index anew for the map's keys (`spec` names them):
/// the baseline's index was for other keys, or there was none.
fn rebuild_keys(map: &FieldMap, baseline: &mut Baseline, spec: u64) {
    let mut tables = vec![RawIndex::default(); map.match_keys().len()];
    for (slot, e) in baseline.occupied() {
        for (k, table) in tables.iter_mut().enumerate() {
            if let Some(t) = entity_key(map, baseline.fields(), k, e) {
                table.insert(baseline.key_hash(t.as_bytes()), slot);
            }
        }
    }
    baseline.keys = KeyIndex { spec, tables };
}

/// Refuses a commit that would link one record to two entities, before
/// anything changes: two claims of one record ([`link_claims`]), or a
/// claim of a record another entity is linked to and keeps.
fn check_links(
    map: &FieldMap,
    baseline: &Baseline,
    plan: &SyncPlan,
    outcomes: &Outcomes,
) -> Result<(), CommitError> {
    let LinkClaims { released, claims } = link_claims(map, baseline, plan, outcomes);
    let mut taken: HashMap<(usize, &str), &EntityId> = HashMap::new();
    for (s, id, entity) in &claims {
        let dup = |first: &EntityId| BaselineError::DuplicateLink {
            system: map.systems().get(*s).cloned().unwrap_or_default(),
            record_id: id.clone(),
            first: first.clone(),
            second: (*entity).clone(),
        };
        if let Some(first) = taken.insert((*s, id.as_str()), entity) {
            if first != *entity {
                return Err(dup(first).into());
            }
        }
        if released.contains(&(*s, id.clone())) {
            continue;
        }
        let existing = map
            .systems()
            .get(*s)
            .and_then(|name| baseline.system_slot(name.as_str()))
            .and_then(|b| baseline.find_link(b, id))
            .and_then(|slot| baseline.entity_at(slot));
        if let Some(other) = existing.filter(|o| o.id != **entity) {
            return Err(dup(&other.id).into());
        }
    }
    Ok(())
}

/// The records (map system index, id) a plan's links change.
struct LinkClaims<'p> {
    /// Taken away from their entities.
    released: HashSet<(usize, String)>,
    /// Linked anew (a record a create made included), with the entity
    /// claiming each.
    claims: Vec<(usize, String, &'p EntityId)>,
}

/// The records the plan's links take away from their entities, and those
/// it links anew.
fn link_claims<'p>(
    map: &FieldMap,
    baseline: &Baseline,
    plan: &'p SyncPlan,
    outcomes: &Outcomes,
) -> LinkClaims<'p> {
    let mut released: HashSet<(usize, String)> = HashSet::new();
    let mut claims: Vec<(usize, String, &EntityId)> = Vec::new();
    for c in &plan.changes {
        let Some(slot) = baseline.find_entity(&c.entity) else {
            for (s, l) in &c.links {
                if let Some(l) = l.as_ref().filter(|l| l.status != LinkStatus::Detached) {
                    claims.push((*s as usize, l.id.clone(), &c.entity));
                }
            }
            continue;
        };
        let e = baseline.entity_at(slot);
        for (s, l) in &c.links {
            let s = *s as usize;
            let old = map.systems().get(s).and_then(|name| {
                let b = baseline.system_slot(name.as_str())?;
                e?.link(b).filter(|l| l.status != LinkStatus::Detached)
            });
            let new = l.as_ref().filter(|l| l.status != LinkStatus::Detached);
            if let Some(old) = old {
                if new.is_none_or(|n| n.id != *old.id) {
                    released.insert((s, old.id.to_string()));
                }
            }
            if let Some(n) = new {
                if old.is_none_or(|o| *o.id != n.id) {
                    claims.push((s, n.id.clone(), &c.entity));
                }
            }
        }
    }
    // (A record deleted stays linked, as deleted, until a read confirms it
    // gone: a delete releases no id.)
    for op in &plan.ops {
        let s = map.system_index(op.system.as_str()).unwrap_or(usize::MAX);
        if let (
            OpKind::Create,
            Some(OpOutcome::Applied {
                record_id: Some(id),
                ..
            }),
        ) = (op.kind, outcomes.get(op.id))
        {
            claims.push((s, id.clone(), &op.entity));
        }
    }
    LinkClaims { released, claims }
}

/// Applies one entity's change and its ops' outcomes; returns whether the
/// entity left the baseline. The steps: the links ([`set_links`]), the
/// canonical values and shadows ([`set_values`]), the writes still awaiting
/// confirmation ([`kept_unconfirmed`]), each op's outcome
/// ([`apply_outcome`]), what else the entity keeps ([`store`]); then the
/// entity leaves ([`leaves`]), or its delete review may end
/// ([`end_delete_review`]).
fn apply(
    baseline: &mut Baseline,
    slot: u32,
    change: &EntityChange,
    ops: &[&WriteOp],
    inputs: &Inputs<'_>,
) -> Result<bool, CommitError> {
    let mut owned = match baseline.entity_at(slot) {
        Some(e) if !only_links(change, ops) => Some(e.owned_values()),
        _ => None,
    };
    // The steps say how the values change; the change is made here, on
    // the values taken out (when they were).
    let mut edit = |step: Edit<'_>| {
        let Some(owned) = owned.as_mut() else {
            return;
        };
        match step {
            Edit::Unlink(b) => owned.drop_system(b),
            Edit::Relink(b) => {
                owned.drop_system(b);
                owned.ensure_system(b);
            }
            Edit::Canonical(f, v) => owned.set_canonical(f, v.clone()),
            Edit::Shadow(b, f, v) => owned.set_shadow(b, f, v.cloned()),
        }
    };
    let fresh = set_links(baseline, slot, change, &inputs.sys, &mut edit)?;
    set_values(change, inputs, &mut edit);
    let mut work = Work {
        awaiting: kept_unconfirmed(baseline, slot, change, &inputs.sys),
        rewritten: kept_rewritten(baseline, slot, change, inputs, &fresh),
        unsettled: change.unsettled,
    };
    for op in ops {
        apply_outcome(baseline, slot, change, op, inputs, &mut work, &mut edit)?;
    }
    let undone = undone_deletes(baseline, change, ops, inputs);
    let Some(e) = baseline.entity_mut(slot) else {
        return Ok(false);
    };
    if let Some(owned) = &owned {
        e.set_values(owned);
    }
    store(e, change, inputs, work);
    remember_undone(e, undone);
    if leaves(e, change) {
        baseline.remove_entity(slot);
        return Ok(true);
    }
    end_delete_review(baseline, slot);
    baseline.refresh_attention(slot);
    Ok(false)
}

/// A change to an entity's values, as a step of [`apply`] asks it. Made
/// only where the values were taken out (see [`only_links`]).
enum Edit<'c> {
    /// The link in this system slot is gone: its shadows go.
    Unlink(usize),
    /// The system slot is newly linked: its shadows start empty.
    Relink(usize),
    /// A canonical value: field slot, value.
    Canonical(usize, &'c Option<Value>),
    /// A shadow, what a system holds in a field: system slot, field slot,
    /// value.
    Shadow(usize, usize, Option<&'c Value>),
}

/// One entity's commit under way, between its steps.
struct Work {
    /// Writes awaiting a read to confirm them, by system slot.
    awaiting: Vec<(u32, Awaiting)>,
    /// What was written where a system stores another form: system slot,
    /// field slot, value written.
    rewritten: Vec<(u32, u32, Value)>,
    /// Something planned did not happen: the next plan looks again.
    unsettled: bool,
}

/// Whether the change only sets active links (no values, no shadows, no
/// ops): it leaves the entity's values as they are, so [`apply`] does not
/// take them out to change.
fn only_links(change: &EntityChange, ops: &[&WriteOp]) -> bool {
    change.canonical.is_empty()
        && change.shadows.is_empty()
        && ops.is_empty()
        && change
            .links
            .iter()
            .all(|(_, l)| l.as_ref().is_some_and(|l| l.status == LinkStatus::Active))
}

/// Sets (or drops) the links the change names, by map system (`sys` gives
/// their baseline slots). A system whose link is dropped or detached loses
/// its shadows; one newly linked starts with none. Returns those systems'
/// slots.
fn set_links(
    baseline: &mut Baseline,
    slot: u32,
    change: &EntityChange,
    sys: &[usize],
    edit: &mut impl FnMut(Edit<'_>),
) -> Result<Vec<usize>, CommitError> {
    let mut fresh = Vec::new();
    for (s, l) in &change.links {
        let Some(b) = sys.get(*s as usize).copied() else {
            continue;
        };
        // Linked before, to the same record: its shadows stay. (Another
        // record linked in its place starts afresh, as the plan saw it.)
        let had = baseline
            .entity_at(slot)
            .and_then(|e| e.link(b))
            .is_some_and(|old| {
                old.status != LinkStatus::Detached
                    && l.as_ref().is_none_or(|new| old.id.is(&new.id))
            });
        let state = l.as_ref().map(|l| LinkState {
            id: Text::new(&l.id),
            version: l.version.as_deref().map(Text::new),
            hash: l.hash,
            status: l.status,
        });
        let live = state
            .as_ref()
            .is_some_and(|l| l.status != LinkStatus::Detached);
        baseline.set_link(slot, b, state)?;
        if !live {
            edit(Edit::Unlink(b));
            fresh.push(b);
        } else if !had {
            edit(Edit::Relink(b));
            fresh.push(b);
        }
    }
    Ok(fresh)
}

/// Sets the canonical values and the shadows (what systems were seen
/// holding) the change names.
fn set_values<'c>(change: &'c EntityChange, inputs: &Inputs<'_>, edit: &mut impl FnMut(Edit<'c>)) {
    for (f, v) in &change.canonical {
        if let Some(bf) = inputs.fields.get(*f as usize) {
            edit(Edit::Canonical(*bf, v));
        }
    }
    for (s, f, v) in &change.shadows {
        if let (Some(b), Some(bf)) = (inputs.sys.get(*s as usize), inputs.fields.get(*f as usize)) {
            edit(Edit::Shadow(*b, *bf, v.as_ref()));
        }
    }
}

/// The writes awaiting a read to confirm them, as this plan's reads left
/// them: those the change forgets (confirmed, or found not made) dropped,
/// those not seen in one more plan counted. This plan's own writes are
/// added after ([`apply_outcome`]).
fn kept_unconfirmed(
    baseline: &Baseline,
    slot: u32,
    change: &EntityChange,
    sys: &[usize],
) -> Vec<(u32, Awaiting)> {
    let mut awaiting: Vec<(u32, Awaiting)> = baseline
        .entity_at(slot)
        .and_then(|e| e.extra.as_ref())
        .map(|x| x.unconfirmed.clone())
        .unwrap_or_default();
    for (s, u) in &change.unconfirmed {
        let Some(b) = sys.get(*s as usize).map(|b| *b as u32) else {
            continue;
        };
        match u {
            Update::Clear => awaiting.retain(|(x, _)| *x != b),
            Update::Set(n) => {
                if let Some((_, a)) = awaiting.iter_mut().find(|(x, _)| *x == b) {
                    a.attempts = *n;
                }
            }
        }
    }
    awaiting
}

/// What was written where a system stores another form of it, as this
/// plan's reads left it: gone where the system's link went, went to
/// another record (`fresh`), or its shadow was set anew; set or forgotten
/// where the change says. This plan's own writes are added after
/// ([`shadow_written`]).
fn kept_rewritten(
    baseline: &Baseline,
    slot: u32,
    change: &EntityChange,
    inputs: &Inputs<'_>,
    fresh: &[usize],
) -> Vec<(u32, u32, Value)> {
    let Some(e) = baseline.entity_at(slot) else {
        return Vec::new();
    };
    let mut kept: Vec<(u32, u32, Value)> = e
        .extra
        .as_ref()
        .map(|x| x.rewritten.clone())
        .unwrap_or_default();
    let slots = |s: u32, f: u32| {
        Some((
            *inputs.sys.get(s as usize)? as u32,
            *inputs.fields.get(f as usize)? as u32,
        ))
    };
    kept.retain(|(b, bf, _)| {
        let live = e
            .link(*b as usize)
            .is_some_and(|l| l.status != LinkStatus::Detached);
        live && !fresh.contains(&(*b as usize))
            && !change
                .shadows
                .iter()
                .any(|(s, f, _)| slots(*s, *f) == Some((*b, *bf)))
    });
    for (s, f, v) in &change.rewritten {
        let Some((b, bf)) = slots(*s, *f) else {
            continue;
        };
        kept.retain(|(x, xf, _)| (*x, *xf) != (b, bf));
        if let Some(v) = v {
            kept.push((b, bf, v.clone()));
        }
    }
    kept
}

/// An op reported applied, as its entity's commit reads it.
struct Applied<'o> {
    /// The op.
    op: &'o WriteOp,
    /// The op's system: its baseline slot.
    t: usize,
    /// The op's system as the plan names it (by map index).
    m: Option<usize>,
    /// How many plans in a row found this write not made before.
    attempts: u32,
    /// For a create: the new record's id.
    record_id: &'o Option<String>,
    /// The record's new version, if reported.
    version: Option<&'o str>,
    /// What the system reports it stored, by native field.
    stored: &'o BTreeMap<String, Value>,
    /// A read right after the write showed it made.
    confirmed: bool,
}

/// Applies what `op`'s outcome says: an op reported applied is an update
/// ([`applied_update`]), a create ([`applied_create`]) or a delete
/// ([`applied_delete`]); any other leaves the entity unsettled, so the op
/// is planned again.
fn apply_outcome(
    baseline: &mut Baseline,
    slot: u32,
    change: &EntityChange,
    op: &WriteOp,
    inputs: &Inputs<'_>,
    work: &mut Work,
    edit: &mut impl FnMut(Edit<'_>),
) -> Result<(), CommitError> {
    let Some(t) = baseline.systems().iter().position(|s| *s == op.system) else {
        return Ok(());
    };
    // The op's system as the plan names it (by map index).
    let m = inputs.sys.iter().position(|b| *b == t);
    let attempts = change
        .retried
        .iter()
        .find(|(s, _)| Some(*s as usize) == m)
        .map_or(0, |(_, n)| *n);
    let Some(OpOutcome::Applied {
        record_id,
        version,
        stored,
        confirmed,
    }) = inputs.outcomes.get(op.id)
    else {
        work.unsettled = true;
        return Ok(());
    };
    let done = Applied {
        op,
        t,
        m,
        attempts,
        record_id,
        version: version.as_deref(),
        stored,
        confirmed: *confirmed,
    };
    match op.kind {
        OpKind::Update => applied_update(baseline, slot, change, inputs, work, &done, edit),
        OpKind::Create => applied_create(baseline, slot, inputs, work, &done, edit)?,
        OpKind::Delete => applied_delete(baseline, slot, work, &done, edit)?,
    }
    Ok(())
}

/// An update applied: awaited until a read confirms it (merged into a
/// write awaited there already), unless confirmed, which ends the waits
/// for what it wrote and for the create of its record. The shadows take
/// what it wrote; the link, the new version.
fn applied_update(
    baseline: &mut Baseline,
    slot: u32,
    change: &EntityChange,
    inputs: &Inputs<'_>,
    work: &mut Work,
    done: &Applied<'_>,
    edit: &mut impl FnMut(Edit<'_>),
) {
    let (op, t) = (done.op, done.t);
    let before: Vec<(u32, Option<&Value>)> = change
        .before
        .iter()
        .filter(|(s, _, _)| Some(*s as usize) == done.m)
        .filter_map(|(_, f, v)| Some((*inputs.fields.get(*f as usize)? as u32, v.as_ref())))
        .collect();
    let written = Awaiting::new(
        OpKind::Update,
        done.version,
        op.expected_version.as_deref(),
        &before,
        done.attempts,
    );
    if done.confirmed {
        // Seen made: what it wrote is awaited no more, nor the create of
        // the record it was seen in.
        let covered: Vec<u32> = op
            .fields
            .iter()
            .filter_map(|w| Some(inputs.field_slot(w.field.as_str())? as u32))
            .collect();
        work.awaiting.retain_mut(|(x, a)| {
            *x != t as u32
                || (a.kind == OpKind::Update && a.forget(&covered))
                || a.kind == OpKind::Delete
        });
    } else {
        await_write(&mut work.awaiting, t, written);
    }
    shadow_written(done, inputs, work, edit);
    if let Some(e) = baseline.entity_mut(slot) {
        if let Some(Some(l)) = e.links.get_mut(t) {
            l.version = done.version.map(Text::new);
            l.hash = 0;
        }
    }
}

/// A create applied: the new record is linked, active, and awaited until a
/// read confirms it (unless confirmed), in place of any write awaited in
/// its system. Its shadows start afresh with what it wrote.
fn applied_create(
    baseline: &mut Baseline,
    slot: u32,
    inputs: &Inputs<'_>,
    work: &mut Work,
    done: &Applied<'_>,
    edit: &mut impl FnMut(Edit<'_>),
) -> Result<(), CommitError> {
    let (op, t) = (done.op, done.t);
    let before: Vec<(u32, Option<&Value>)> = op
        .fields
        .iter()
        .filter_map(|w| Some((inputs.field_slot(w.field.as_str())? as u32, None)))
        .collect();
    work.awaiting.retain(|(x, _)| *x != t as u32);
    if !done.confirmed {
        work.awaiting.push((
            t as u32,
            Awaiting::new(OpKind::Create, done.version, None, &before, done.attempts),
        ));
    }
    let id = done.record_id.clone().unwrap_or_default();
    baseline.set_link(
        slot,
        t,
        Some(LinkState::active(id.into(), done.version.map(Text::new), 0)),
    )?;
    edit(Edit::Relink(t));
    shadow_written(done, inputs, work, edit);
    Ok(())
}

/// A delete applied. Confirmed, the record is unlinked, and its waits and
/// shadows end. Otherwise it is kept, as deleted, until a read shows the
/// record gone (a delete reported applied but not made is found, not
/// believed), and awaited.
fn applied_delete(
    baseline: &mut Baseline,
    slot: u32,
    work: &mut Work,
    done: &Applied<'_>,
    edit: &mut impl FnMut(Edit<'_>),
) -> Result<(), CommitError> {
    let t = done.t;
    if done.confirmed {
        work.awaiting.retain(|(x, _)| *x != t as u32);
        baseline.set_link(slot, t, None)?;
        edit(Edit::Unlink(t));
        return Ok(());
    }
    if let Some(Some(l)) = baseline.entity_mut(slot).and_then(|e| e.links.get_mut(t)) {
        l.status = LinkStatus::Deleted;
    }
    let deleted = Awaiting::new(
        OpKind::Delete,
        done.version,
        done.op.expected_version.as_deref(),
        &[],
        done.attempts,
    );
    await_write(&mut work.awaiting, t, deleted);
    Ok(())
}

/// Awaits `write` in system slot `t`: merged into the write awaited there
/// already, if any.
fn await_write(awaiting: &mut Vec<(u32, Awaiting)>, t: usize, write: Awaiting) {
    match awaiting.iter_mut().find(|(x, _)| *x == t as u32) {
        Some((_, a)) => a.merge(write),
        None => awaiting.push((t as u32, write)),
    }
}

/// The written system's shadows take the values its op wrote, or, where
/// the system reports storing another form, that form (and what was
/// written is kept beside it: the field is up to date there while it holds
/// that form).
fn shadow_written<'o>(
    done: &Applied<'o>,
    inputs: &Inputs<'_>,
    work: &mut Work,
    edit: &mut impl FnMut(Edit<'o>),
) {
    let t = done.t;
    for w in &done.op.fields {
        let Some(bf) = inputs.field_slot(w.field.as_str()) else {
            continue;
        };
        let key = (t as u32, bf as u32);
        work.rewritten.retain(|(x, xf, _)| (*x, *xf) != key);
        match done.stored.get(w.native.as_str()) {
            Some(v) if !(v == &w.value || (is_empty_value(v) && is_empty_value(&w.value))) => {
                edit(Edit::Shadow(t, bf, Some(v)));
                work.rewritten.push((key.0, key.1, w.value.clone()));
            }
            _ => edit(Edit::Shadow(t, bf, Some(&w.value))),
        }
    }
}

/// Stores what else the entity keeps, past its links and values: the
/// fields held (or no longer held), the values kept from skipped records,
/// its delete review, whether it is unsettled, and the writes awaiting
/// confirmation.
fn store(e: &mut Entity, change: &EntityChange, inputs: &Inputs<'_>, work: Work) {
    let Work {
        awaiting,
        rewritten,
        unsettled,
    } = work;
    for (f, h) in &change.held {
        let Some(bf) = inputs.fields.get(*f as usize).map(|x| *x as u32) else {
            continue;
        };
        let extra = e.extra_mut();
        extra.held.retain(|(x, _)| *x != bf);
        if let Some(h) = h {
            extra.held.push((bf, h.clone()));
        }
    }
    if let Some(pending) = &change.pending {
        let mut kept = Vec::with_capacity(pending.len());
        for (s, f, o) in pending {
            if let (Some(b), Some(bf)) =
                (inputs.sys.get(*s as usize), inputs.fields.get(*f as usize))
            {
                kept.push((*b as u32, *bf as u32, o.clone()));
            }
        }
        e.extra_mut().pending = kept;
    }
    match &change.delete_review {
        Some(Update::Set(r)) => e.extra_mut().delete = Some(r.clone()),
        Some(Update::Clear) => e.extra_mut().delete = None,
        None => {}
    }
    e.unsettled = unsettled;
    if !awaiting.is_empty() || e.extra.is_some() {
        e.extra_mut().unconfirmed = awaiting;
    }
    if !rewritten.is_empty() || e.extra.is_some() {
        e.extra_mut().rewritten = rewritten;
    }
}

/// The records an undo's applied deletes took from the entity (records
/// created for it): system slot, record id.
fn undone_deletes(
    baseline: &Baseline,
    change: &EntityChange,
    ops: &[&WriteOp],
    inputs: &Inputs<'_>,
) -> Vec<(u32, String)> {
    if !change.undone {
        return Vec::new();
    }
    ops.iter()
        .filter(|op| op.kind == OpKind::Delete)
        .filter(|op| matches!(inputs.outcomes.get(op.id), Some(OpOutcome::Applied { .. })))
        .filter_map(|op| {
            let b = baseline.systems().iter().position(|s| *s == op.system)?;
            Some((b as u32, op.record_id.clone()?))
        })
        .collect()
}

/// Remembers the records an undo deleted (their tombstones carry the
/// entity's id), and forgets them in each system where the entity has a
/// live record again.
fn remember_undone(e: &mut Entity, undone: Vec<(u32, String)>) {
    for (b, id) in undone {
        let x = e.extra_mut();
        if !x.undone(b, &id) {
            x.undone.push((b, id));
        }
    }
    let live: Vec<u32> = e
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.as_ref().is_some_and(|l| l.is_active()))
        .map(|(b, _)| b as u32)
        .collect();
    if let Some(x) = e.extra.as_mut() {
        x.undone.retain(|(b, _)| !live.contains(b));
    }
}

/// Whether the entity leaves the baseline: the change removes it, or no
/// record of it is live (active or frozen) and none is deleted but not yet
/// seen gone (such a record keeps the entity).
fn leaves(e: &Entity, change: &EntityChange) -> bool {
    let live = e
        .links
        .iter()
        .flatten()
        .any(|l| matches!(l.status, LinkStatus::Active | LinkStatus::Frozen));
    // A record deleted but not seen gone keeps the entity.
    let deleting = e
        .extra
        .as_ref()
        .is_some_and(|x| x.unconfirmed.iter().any(|(_, a)| a.kind == OpKind::Delete));
    (!live && !deleting) || change.remove
}

/// Ends the entity's delete review when no record of it is deleted any
/// more (and every record being restored has been created). While a
/// restore is not done, the entity stays unsettled.
fn end_delete_review(baseline: &mut Baseline, slot: u32) {
    let Some(e) = baseline.entity_at(slot) else {
        return;
    };
    let deleted = e
        .links
        .iter()
        .flatten()
        .any(|l| l.status == LinkStatus::Deleted);
    let systems = baseline.systems();
    let restoring = e
        .extra
        .as_ref()
        .and_then(|x| x.delete.as_ref())
        .is_some_and(|r| {
            r.resolution == Some(ReviewChoice::Restore)
                && r.deleted_in.iter().any(|(name, _)| {
                    systems
                        .iter()
                        .position(|s| s == name)
                        .is_none_or(|b| e.link(b).is_none_or(|l| !l.is_active()))
                })
        });
    if let Some(e) = baseline.entity_mut(slot) {
        if !deleted && !restoring {
            if let Some(x) = e.extra.as_mut() {
                x.delete = None;
            }
        }
        if restoring {
            e.unsettled = true;
        }
        e.tidy();
    }
}

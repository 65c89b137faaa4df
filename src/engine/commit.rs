//! Commit: what a plan and its outcomes make of the baseline.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use serde_json::Value;

use crate::baseline::{
    Awaiting, Baseline, BaselineError, Entity, EntityId, KeyIndex, LinkState, LinkStatus, RawIndex,
    ReviewChoice, Text,
};
use crate::identity::{entity_key, key_spec};
use crate::mapping::FieldMap;
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
}

pub(crate) fn commit(
    map: &FieldMap,
    baseline: &mut Baseline,
    plan: &SyncPlan,
    outcomes: &Outcomes,
) -> Result<CommitSummary, CommitError> {
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
    check_links(map, baseline, plan, outcomes)?;

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
    let mut ops_of: HashMap<&EntityId, Vec<&WriteOp>> = HashMap::new();
    for op in &plan.ops {
        ops_of.entry(&op.entity).or_default().push(op);
    }

    let spec = key_spec(map);
    let keyed = !map.match_keys().is_empty();
    let maintain = keyed && baseline.keys.spec == spec;
    let mut summary = CommitSummary::default();
    for change in &plan.changes {
        let slot = if change.new {
            baseline.insert_entity(Entity::new(change.entity.clone()))?
        } else {
            match baseline.find_entity(&change.entity) {
                Some(slot) => slot,
                None => continue,
            }
        };
        let old_keys = if maintain {
            keys_of(map, baseline, slot)
        } else {
            Vec::new()
        };
        let ops = ops_of.get(&change.entity).map(Vec::as_slice).unwrap_or(&[]);
        let removed = apply(
            baseline,
            slot,
            change,
            ops,
            outcomes,
            &sys,
            &fields,
            &field_index,
        )?;
        if maintain {
            let new_keys = if removed {
                Vec::new()
            } else {
                keys_of(map, baseline, slot)
            };
            if old_keys != new_keys {
                for (k, t) in old_keys.iter().enumerate() {
                    if let Some(t) = t {
                        let h = baseline.key_hash(t.as_bytes());
                        if let Some(table) = baseline.keys.tables.get_mut(k) {
                            table.remove(h, slot);
                        }
                    }
                }
                for (k, t) in new_keys.iter().enumerate() {
                    if let Some(t) = t {
                        let h = baseline.key_hash(t.as_bytes());
                        if let Some(table) = baseline.keys.tables.get_mut(k) {
                            table.insert(h, slot);
                        }
                    }
                }
            }
        }
        if removed {
            summary.removed.push(change.entity.clone());
        } else {
            summary.touched.push(change.entity.clone());
        }
    }
    if keyed && !maintain {
        rebuild_keys(map, baseline, spec);
    }
    if !plan.ambiguous.is_empty() {
        baseline.ambiguous_mut().apply(&plan.ambiguous);
        summary.ambiguous = true;
    }
    // A record a create made is linked: it is not held back (a system that
    // hands out a deleted record's id again could make one so).
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
    baseline.set_fingerprint(map.fingerprint());
    baseline.bump_revision();
    Ok(summary)
}

fn keys_of(map: &FieldMap, baseline: &Baseline, slot: u32) -> Vec<Option<String>> {
    let Some(e) = baseline.entity_at(slot) else {
        return Vec::new();
    };
    (0..map.match_keys().len())
        .map(|k| entity_key(map, baseline.fields(), k, e))
        .collect()
}

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
/// anything changes.
fn check_links(
    map: &FieldMap,
    baseline: &Baseline,
    plan: &SyncPlan,
    outcomes: &Outcomes,
) -> Result<(), CommitError> {
    // Links this plan takes away from their entities.
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

/// Applies one entity's change and its ops' outcomes; returns whether the
/// entity left the baseline.
#[allow(clippy::too_many_arguments)]
fn apply(
    baseline: &mut Baseline,
    slot: u32,
    change: &EntityChange,
    ops: &[&WriteOp],
    outcomes: &Outcomes,
    sys: &[usize],
    fields: &[usize],
    field_index: &HashMap<&str, usize>,
) -> Result<bool, CommitError> {
    let only_links = change.canonical.is_empty()
        && change.shadows.is_empty()
        && ops.is_empty()
        && change
            .links
            .iter()
            .all(|(_, l)| l.as_ref().is_some_and(|l| l.status == LinkStatus::Active));
    let mut owned = match baseline.entity_at(slot) {
        Some(e) if !only_links => Some(e.owned_values()),
        _ => None,
    };
    for (s, l) in &change.links {
        let Some(b) = sys.get(*s as usize).copied() else {
            continue;
        };
        let had = baseline
            .entity_at(slot)
            .and_then(|e| e.link(b))
            .is_some_and(|l| l.status != LinkStatus::Detached);
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
        if let Some(owned) = owned.as_mut() {
            if !live {
                owned.drop_system(b);
            } else if !had {
                owned.drop_system(b);
                owned.ensure_system(b);
            }
        }
    }
    if let Some(owned) = owned.as_mut() {
        for (f, v) in &change.canonical {
            if let Some(bf) = fields.get(*f as usize) {
                owned.set_canonical(*bf, v.clone());
            }
        }
        for (s, f, v) in &change.shadows {
            if let (Some(b), Some(bf)) = (sys.get(*s as usize), fields.get(*f as usize)) {
                owned.set_shadow(*b, *bf, v.clone());
            }
        }
    }
    // Writes awaiting a read to confirm them: what this plan's reads
    // learned, then this plan's writes reported applied.
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
    let mut unsettled = change.unsettled;
    for op in ops {
        let Some(t) = baseline.systems().iter().position(|s| *s == op.system) else {
            continue;
        };
        // The op's system as the plan names it (by map index).
        let m = sys.iter().position(|b| *b == t);
        let attempts = change
            .retried
            .iter()
            .find(|(s, _)| Some(*s as usize) == m)
            .map_or(0, |(_, n)| *n);
        match outcomes.get(op.id) {
            Some(OpOutcome::Applied {
                record_id,
                version,
                confirmed,
            }) => match op.kind {
                OpKind::Update => {
                    let before: Vec<(u32, Option<&Value>)> = change
                        .before
                        .iter()
                        .filter(|(s, _, _)| Some(*s as usize) == m)
                        .filter_map(|(_, f, v)| {
                            Some((*fields.get(*f as usize)? as u32, v.as_ref()))
                        })
                        .collect();
                    let written = Awaiting::new(
                        OpKind::Update,
                        version.as_deref(),
                        op.expected_version.as_deref(),
                        &before,
                        attempts,
                    );
                    if *confirmed {
                        // Seen made: what it wrote is awaited no more, nor
                        // the create of the record it was seen in.
                        let covered: Vec<u32> = op
                            .fields
                            .iter()
                            .filter_map(|w| {
                                let f = field_index.get(w.field.as_str())?;
                                Some(*fields.get(*f)? as u32)
                            })
                            .collect();
                        awaiting.retain_mut(|(x, a)| {
                            *x != t as u32
                                || (a.kind == OpKind::Update && a.forget(&covered))
                                || a.kind == OpKind::Delete
                        });
                    } else {
                        match awaiting.iter_mut().find(|(x, _)| *x == t as u32) {
                            Some((_, a)) => a.merge(written),
                            None => awaiting.push((t as u32, written)),
                        }
                    }
                    if let Some(owned) = owned.as_mut() {
                        for w in &op.fields {
                            if let Some(bf) = field_index
                                .get(w.field.as_str())
                                .and_then(|f| fields.get(*f))
                            {
                                owned.set_shadow(t, *bf, Some(w.value.clone()));
                            }
                        }
                    }
                    if let Some(e) = baseline.entity_mut(slot) {
                        if let Some(Some(l)) = e.links.get_mut(t) {
                            l.version = version.as_deref().map(Text::new);
                            l.hash = 0;
                        }
                    }
                }
                OpKind::Create => {
                    let before: Vec<(u32, Option<&Value>)> = op
                        .fields
                        .iter()
                        .filter_map(|w| {
                            let f = field_index.get(w.field.as_str())?;
                            Some((*fields.get(*f)? as u32, None))
                        })
                        .collect();
                    awaiting.retain(|(x, _)| *x != t as u32);
                    if !*confirmed {
                        awaiting.push((
                            t as u32,
                            Awaiting::new(
                                OpKind::Create,
                                version.as_deref(),
                                None,
                                &before,
                                attempts,
                            ),
                        ));
                    }
                    let id = record_id.clone().unwrap_or_default();
                    baseline.set_link(
                        slot,
                        t,
                        Some(LinkState::active(
                            id.into(),
                            version.as_deref().map(Text::new),
                            0,
                        )),
                    )?;
                    if let Some(owned) = owned.as_mut() {
                        owned.drop_system(t);
                        owned.ensure_system(t);
                        for w in &op.fields {
                            if let Some(bf) = field_index
                                .get(w.field.as_str())
                                .and_then(|f| fields.get(*f))
                            {
                                owned.set_shadow(t, *bf, Some(w.value.clone()));
                            }
                        }
                    }
                }
                OpKind::Delete if *confirmed => {
                    awaiting.retain(|(x, _)| *x != t as u32);
                    baseline.set_link(slot, t, None)?;
                    if let Some(owned) = owned.as_mut() {
                        owned.drop_system(t);
                    }
                }
                OpKind::Delete => {
                    // Kept, as deleted, until a read shows the record gone:
                    // a delete reported applied but not made is found, not
                    // believed.
                    if let Some(Some(l)) =
                        baseline.entity_mut(slot).and_then(|e| e.links.get_mut(t))
                    {
                        l.status = LinkStatus::Deleted;
                    }
                    let deleted = Awaiting::new(
                        OpKind::Delete,
                        version.as_deref(),
                        op.expected_version.as_deref(),
                        &[],
                        attempts,
                    );
                    match awaiting.iter_mut().find(|(x, _)| *x == t as u32) {
                        Some((_, a)) => a.merge(deleted),
                        None => awaiting.push((t as u32, deleted)),
                    }
                }
            },
            _ => unsettled = true,
        }
    }
    let Some(e) = baseline.entity_mut(slot) else {
        return Ok(false);
    };
    if let Some(owned) = &owned {
        e.set_values(owned);
    }
    for (f, h) in &change.held {
        let Some(bf) = fields.get(*f as usize).map(|x| *x as u32) else {
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
            if let (Some(b), Some(bf)) = (sys.get(*s as usize), fields.get(*f as usize)) {
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
    if (!live && !deleting) || change.remove {
        baseline.remove_entity(slot);
        return Ok(true);
    }
    // A delete review ends when no record is deleted any more (and every
    // record being restored has been created).
    let systems = baseline.systems().to_vec();
    if let Some(e) = baseline.entity_mut(slot) {
        let deleted = e
            .links
            .iter()
            .flatten()
            .any(|l| l.status == LinkStatus::Deleted);
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
    baseline.refresh_attention(slot);
    Ok(false)
}

//! Gathering: which records belong to which entity, what was deleted, which
//! entities need planning at all.
//!
//! Each snapshot record is looked up in the baseline's link index. Linked
//! records fill their entity's row; records not linked yet go to
//! [`identity`](crate::identity) to be correlated, matched or created; a
//! complete snapshot's missing records and every tombstone are deletion
//! evidence. An entity whose records all report the version or content hash
//! they had at the last commit, with nothing pending, is skipped here
//! without reading a field.

use std::collections::HashSet;

use crate::baseline::{AmbiguityChange, Baseline, EntityId, LinkStatus};
use crate::identity;
use crate::model::{Coverage, Record};
use crate::plan::{EntityChange, Issue, IssueKind};

use super::entity::{plan_entity, EntityResult, Withhold};
use super::fast_path::{fast_path, record_hash};
use super::input::{Cx, EntityInput};
use super::par;
use super::rows::{Cell, Rows};

pub(crate) struct Gathered<'a> {
    /// The plans of the baseline's entities that need one, made while
    /// their records were fresh in the cache.
    pub(crate) results: Vec<EntityResult>,
    /// The inputs of those results that plan a guarded change (by index in
    /// `results`), to plan again if a guard withholds it.
    pub(crate) kept: Vec<(usize, EntityInput<'a>)>,
    /// Entities new in this plan, for the caller to plan.
    pub(crate) new: Vec<EntityInput<'a>>,
    /// Link updates of skipped entities (a version changed, content did not).
    pub(crate) touches: Vec<EntityChange>,
    /// What the baseline is to remember of records held back as ambiguous.
    pub(crate) ambiguous: AmbiguityChange,
}

pub(crate) fn gather<'a>(cx: &Cx<'a>, issues: &mut Vec<Issue>) -> Gathered<'a> {
    let map = cx.map;
    let baseline = cx.baseline;
    let n = map.systems().len();
    let most = cx
        .snaps
        .iter()
        .flatten()
        .map(|s| s.records.len())
        .max()
        .unwrap_or(0);
    let mut rows = Rows::new(n, baseline.slot_count(), most);
    // Records not linked yet, tombstones included, for every system.
    let mut loose: Vec<(usize, &'a Record)> = Vec::new();

    for s in 0..n {
        let Some(snap) = cx.snaps[s] else { continue };
        let bs = cx.sys_slot[s];
        // Links of this system the snapshot names: when it names them all,
        // a complete snapshot has nothing missing.
        let mut named = 0usize;
        // The lookups read the baseline only: they may run on every thread.
        let found = match bs {
            Some(b) => flat(par::chunked(&snap.records, cx.threads, |records| {
                records
                    .iter()
                    .map(|r| baseline.find_link(b, &r.id))
                    .collect::<Vec<_>>()
            })),
            None => vec![None; snap.records.len()],
        };
        for (r, found) in snap.records.iter().zip(found) {
            if !r.non_finite.is_empty() && !r.deleted {
                non_finite(cx, s, r, found, issues);
            }
            match found {
                Some(slot) => {
                    let row = rows.row(slot);
                    let cell = rows.cell(row, s);
                    *cell = match *cell {
                        Cell::Empty if r.deleted => Cell::Gone,
                        Cell::Empty => Cell::Seen(r),
                        Cell::Gone if r.deleted => Cell::Twice(r),
                        Cell::Seen(first) | Cell::Twice(first) if first == r => Cell::Twice(first),
                        _ => Cell::Dup,
                    };
                    if matches!(cell, Cell::Gone | Cell::Seen(_)) {
                        named += 1;
                    }
                }
                None => loose.push((s, r)),
            }
        }
        if snap.coverage == Coverage::Complete {
            if let Some(b) = bs.filter(|b| named < baseline.linked_count(*b)) {
                for (slot, e) in baseline.occupied() {
                    let live = e.link(b).is_some_and(|l| {
                        matches!(l.status, LinkStatus::Active | LinkStatus::Frozen)
                    });
                    if live
                        && rows
                            .find(slot)
                            .is_none_or(|row| matches!(rows.at(row, s), Cell::Empty))
                    {
                        let row = rows.row(slot);
                        *rows.cell(row, s) = Cell::Absent;
                    }
                }
            }
        }
    }

    // Duplicated ids, reported once: copies all the same count as one;
    // copies that differ are all ignored, and nothing about their entity is
    // decided (`EntityInput::listed_twice`).
    for row in 0..rows.count() {
        for s in 0..n {
            if matches!(rows.at(row, s), Cell::Dup | Cell::Twice(_)) {
                let id = cx.sys_slot[s]
                    .and_then(|b| baseline.entity_at(rows.slot(row))?.link(b))
                    .map(|l| l.id.to_string())
                    .unwrap_or_default();
                issues.push(Issue {
                    system: map.systems()[s].clone(),
                    record_id: id,
                    entity: baseline.entity_at(rows.slot(row)).map(|e| e.id.clone()),
                    field: None,
                    kind: IssueKind::DuplicateRecordId,
                    sensitive: false,
                });
            }
        }
    }
    // Records not linked yet, in (system, id) order, whatever order the
    // snapshots listed them in: an id listed twice (a connector's paging
    // bug) is reported once and every copy ignored; of two tombstones
    // carrying one correlation key, the lower id is taken.
    loose.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    let mut unlinked: Vec<(usize, &'a Record)> = Vec::with_capacity(loose.len());
    for run in identity::same_record_runs(&loose) {
        let Some(&(s, r)) = run.first() else {
            continue;
        };
        if run.len() > 1 {
            // A record made by a create whose outcome was lost (its
            // correlation key names the entity) belongs to that entity: the
            // entity waits with it, so that what it holds is decided
            // together with the entity's other changes.
            let made_for = run
                .iter()
                .find_map(|(_, o)| o.correlation.as_deref())
                .and_then(|key| baseline.find_entity(&EntityId::new(key)));
            if let Some(slot) = made_for {
                let row = rows.row(slot);
                let cell = rows.cell(row, s);
                if matches!(cell, Cell::Empty) {
                    *cell = Cell::Dup;
                }
            }
            issues.push(Issue {
                system: map.systems()[s].clone(),
                record_id: r.id.clone(),
                entity: None,
                field: None,
                kind: IssueKind::DuplicateRecordId,
                sensitive: false,
            });
        } else if r.deleted {
            if let Some(slot) = lost_create(cx, s, r) {
                let row = rows.row(slot);
                let cell = rows.cell(row, s);
                if matches!(cell, Cell::Empty) {
                    *cell = Cell::NewGone(r);
                }
            }
        } else if cx.in_scope(s, r) {
            unlinked.push((s, r));
        }
    }

    let gone = |slot: u32, s: usize| {
        rows.find(slot)
            .is_some_and(|row| matches!(rows.at(row, s), Cell::Gone | Cell::Absent))
    };
    let complete: Vec<bool> = (0..n)
        .map(|s| cx.coverage(s) == Some(Coverage::Complete))
        .collect();
    let mut recall = identity::Recall::new(map, &baseline.header().ambiguous, &loose, complete);
    drop(loose);
    let (groups, held) = identity::group_unlinked(
        map,
        baseline,
        &cx.sys_slot,
        unlinked,
        &gone,
        &recall,
        issues,
    );
    let ambiguous = recall.change(map.systems(), &held);
    drop(held);
    drop(recall);
    let mut new_entities = Vec::new();
    for g in groups {
        match g.entity {
            Some(slot) => {
                let row = rows.row(slot);
                for (s, r) in g.records {
                    *rows.cell(row, s) = Cell::New(r);
                }
            }
            None => new_entities.push(g.records),
        }
    }
    for slot in baseline.attention() {
        rows.row(*slot);
    }

    let order: Vec<u32> = (0..rows.count() as u32).collect();
    let parts = par::chunked(&order, cx.threads, |chunk| {
        let mut kept = Vec::new();
        let mut results = Vec::new();
        let mut touches = Vec::new();
        // Content hashes the fast path computed, so the slow path does not
        // compute them again.
        let mut known = vec![0u64; n];
        for row in chunk {
            let row = *row as usize;
            let slot = rows.slot(row);
            let cells = rows.cells(row);
            known.fill(0);
            if cx.waits(slot) {
                if let Some(mut input) = entity_input(baseline, slot, cells, &known) {
                    input.listed_twice = true;
                    results.push(plan_entity(cx, &input, Withhold::default()));
                }
                continue;
            }
            if let Some(touch) = fast_path(cx, slot, cells, &mut known) {
                if let Some(change) = touch {
                    touches.push(change);
                }
                continue;
            }
            if let Some(input) = entity_input(baseline, slot, cells, &known) {
                let result = plan_entity(cx, &input, Withhold::default());
                if result.guarded() {
                    kept.push((results.len(), input));
                }
                results.push(result);
            }
        }
        (results, kept, touches)
    });
    let mut results = Vec::new();
    let mut kept = Vec::new();
    let mut touches = Vec::new();
    for (r, k, t) in parts {
        let base = results.len();
        results.extend(r);
        kept.extend(k.into_iter().map(|(i, input)| (base + i, input)));
        touches.extend(t);
    }

    let mut new = Vec::new();
    let mut taken: HashSet<EntityId> = HashSet::new();
    for records in new_entities {
        let Some((s0, r0)) = records.first() else {
            continue;
        };
        // A group holding the record a lost create made keeps the id the
        // create was planned under (its correlation key names another
        // record of the group), so a crashed run ends with the same
        // entities as an uninterrupted one.
        let planned = records.iter().find_map(|(_, r)| {
            let c = r.correlation.as_deref()?;
            records
                .iter()
                .any(|(s, o)| EntityId::from_link(&map.systems()[*s], &o.id).as_str() == c)
                .then(|| EntityId::new(c))
        });
        let base = planned.unwrap_or_else(|| EntityId::from_link(&map.systems()[*s0], &r0.id));
        let mut id = base.clone();
        let mut k = 2;
        while baseline.find_entity(&id).is_some() || taken.contains(&id) {
            id = EntityId::new(format!("{base}~{k}"));
            k += 1;
        }
        taken.insert(id.clone());
        let mut input = EntityInput {
            slot: None,
            id,
            seen: vec![None; n],
            hashes: vec![0; n],
            deleted: vec![false; n],
            absent: Vec::new(),
            new_links: vec![false; n],
            listed_twice: false,
        };
        for (s, r) in records {
            input.seen[s] = Some(r);
            input.hashes[s] = record_hash(r);
            input.new_links[s] = true;
        }
        new.push(input);
    }
    Gathered {
        results,
        kept,
        new,
        touches,
        ambiguous,
    }
}

/// The parts of a chunked result, as one vector.
fn flat<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    let mut parts = parts.into_iter();
    let mut all = parts.next().unwrap_or_default();
    for part in parts {
        all.extend(part);
    }
    all
}

/// What the slow path needs of a baseline entity and its row of cells.
fn entity_input<'a>(
    baseline: &Baseline,
    slot: u32,
    cells: &[Cell<'a>],
    known: &[u64],
) -> Option<EntityInput<'a>> {
    let e = baseline.entity_at(slot)?;
    let n = cells.len();
    let mut input = EntityInput {
        slot: Some(slot),
        id: e.id.clone(),
        seen: vec![None; n],
        hashes: vec![0; n],
        deleted: vec![false; n],
        absent: Vec::new(),
        new_links: vec![false; n],
        listed_twice: false,
    };
    for ((s, cell), known) in cells.iter().enumerate().zip(known) {
        let hash = |r: &Record| if *known != 0 { *known } else { record_hash(r) };
        match cell {
            Cell::Seen(r) => {
                input.seen[s] = Some(*r);
                input.hashes[s] = hash(r);
            }
            Cell::New(r) => {
                input.seen[s] = Some(*r);
                input.hashes[s] = hash(r);
                input.new_links[s] = true;
            }
            Cell::Gone => input.deleted[s] = true,
            Cell::Absent => {
                input.deleted[s] = true;
                input.absent.push(s);
            }
            Cell::NewGone(r) => {
                input.seen[s] = Some(*r);
                input.new_links[s] = true;
                input.deleted[s] = true;
            }
            Cell::Twice(r) if r.deleted => input.deleted[s] = true,
            Cell::Twice(r) => {
                input.seen[s] = Some(*r);
                input.hashes[s] = hash(r);
            }
            Cell::Dup => input.listed_twice = true,
            Cell::Empty => {}
        }
    }
    Some(input)
}

/// Reports each field of the map that record `r` of system `s` (linked to
/// entity `slot`, if found) was given a number that is not finite for. An
/// out-of-scope record not linked yet is not synced, and not reported.
fn non_finite(cx: &Cx<'_>, s: usize, r: &Record, slot: Option<u32>, issues: &mut Vec<Issue>) {
    if slot.is_none() && !cx.in_scope(s, r) {
        return;
    }
    let entity = slot
        .and_then(|slot| cx.baseline.entity_at(slot))
        .map(|e| e.id.clone());
    for field in cx.map.fields() {
        let Some(name) = field.native_at(s) else {
            continue;
        };
        if r.non_finite.iter().any(|n| n == name) {
            issues.push(Issue {
                system: cx.map.systems()[s].clone(),
                record_id: r.id.clone(),
                entity: entity.clone(),
                field: Some(field.name().to_owned()),
                kind: IssueKind::NonFiniteNumber,
                sensitive: field.is_sensitive(),
            });
        }
    }
}

/// The entity a tombstone in system `s` is the lost create of: its
/// correlation key names an existing entity with no live link in `s`.
fn lost_create(cx: &Cx<'_>, s: usize, r: &Record) -> Option<u32> {
    let slot = cx
        .baseline
        .find_entity(&EntityId::new(r.correlation.as_deref()?))?;
    let e = cx.baseline.entity_at(slot)?;
    let live = cx.sys_slot[s]
        .and_then(|b| e.link(b))
        .is_some_and(|l| matches!(l.status, LinkStatus::Active | LinkStatus::Frozen));
    (!live).then_some(slot)
}

//! Gathering: which records belong to which entity, what was deleted, which
//! entities need planning at all.
//!
//! Each snapshot record is looked up in the baseline's link index. Linked
//! records fill their entity's row ([`Rows`]); records not linked yet go to
//! [`identity`] to be correlated, matched or created; a
//! complete snapshot's missing records and every tombstone are deletion
//! evidence. An entity whose records all report the version or content hash
//! they had at the last commit, with nothing pending, is skipped here
//! without reading a field ([`fast_path`](super::fast_path)); the others
//! are planned as they are gathered, while their records are fresh in the
//! cache.
//!
//! [`gather`] takes these steps in turn: [`read_snapshot`] for each system,
//! [`report_duplicates`], [`sift_loose`] and [`match_unlinked`] for the
//! records not linked yet, [`plan_rows`] for the baseline's entities, and
//! [`new_inputs`] for the entities new in this plan.

use std::collections::HashSet;

use crate::baseline::{AmbiguityChange, Baseline, EntityId, LinkStatus};
use crate::identity;
use crate::model::{Coverage, Record};
use crate::plan::{EntityChange, Issue, IssueKind};

use super::entity::{plan_entity_with, EntityResult, Scratch, Withhold};
use super::fast_path::{fast_path, record_hash, record_hashes};
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

/// Records by map system index: those not linked yet, or the records of
/// one new entity.
type Records<'a> = Vec<(usize, &'a Record)>;

/// What the snapshots hold of each entity, and the plans of those that need
/// one: the baseline's entities planned, the new ones gathered for the
/// caller to plan. Problems found in the records go to `issues`.
pub(crate) fn gather<'a>(cx: &Cx<'a>, issues: &mut Vec<Issue>) -> Gathered<'a> {
    let most = cx
        .snaps
        .iter()
        .flatten()
        .map(|s| s.records.len())
        .max()
        .unwrap_or(0);
    let mut rows = Rows::new(cx.map.systems().len(), cx.baseline.slot_count(), most);
    // Records not linked yet, tombstones included, for every system.
    let mut loose: Records<'a> = Vec::new();
    for s in 0..cx.map.systems().len() {
        read_snapshot(cx, s, &mut rows, &mut loose, issues);
    }
    report_duplicates(cx, &rows, issues);
    let unlinked = sift_loose(cx, &mut rows, &mut loose, issues);
    let (groups, ambiguous) = match_unlinked(cx, &mut rows, loose, unlinked, issues);
    // Entities that hold something are planned whatever was seen of them.
    for slot in cx.baseline.attention() {
        rows.row(*slot);
    }
    let planned = plan_rows(cx, &rows);
    Gathered {
        results: planned.results,
        kept: planned.kept,
        new: new_inputs(cx, groups),
        touches: planned.touches,
        ambiguous,
    }
}

/// Reads system `s`'s snapshot (if there is one) into `rows`: a record
/// linked to an entity fills the entity's cell, a record not linked yet
/// goes to `loose`; in a complete snapshot, each live link it does not name
/// is absent. Non-finite numbers are reported as they are met.
fn read_snapshot<'a>(
    cx: &Cx<'a>,
    s: usize,
    rows: &mut Rows<'a>,
    loose: &mut Records<'a>,
    issues: &mut Vec<Issue>,
) {
    let Some(snap) = cx.snaps[s] else { return };
    // Links of this system the snapshot names: when it names them all, a
    // complete snapshot has nothing missing.
    let mut named = 0usize;
    let found = find_links(cx, s, &snap.records);
    for (r, found) in snap.records.iter().zip(found) {
        if !r.non_finite.is_empty() && !r.deleted {
            non_finite(cx, s, r, found, issues);
        }
        match found {
            Some(slot) => {
                if place_linked(rows, slot, s, r) {
                    named += 1;
                }
            }
            None => loose.push((s, r)),
        }
    }
    if snap.coverage == Coverage::Complete {
        mark_absent(cx, s, named, rows);
    }
}

/// For each of `records`, of system `s`: the baseline slot of the entity it
/// is linked to, if any. The lookups read the baseline only: they may run
/// on every thread.
///
/// A system mostly lists its records in the order it listed them at the
/// last sync, and entities are mostly in the baseline in that order: each
/// record is first looked for in the slot after the last one found, and
/// only where that entity is not linked to it, in the index.
fn find_links(cx: &Cx<'_>, s: usize, records: &[Record]) -> Vec<Option<u32>> {
    let baseline = cx.baseline;
    match cx.sys_slot[s] {
        Some(b) => flat(par::chunked(records, cx.threads, |records| {
            let mut next = None;
            records
                .iter()
                .map(|r| {
                    let found = next
                        .filter(|slot| baseline.linked_at(*slot, b, &r.id))
                        .or_else(|| baseline.find_link(b, &r.id));
                    next = found.map(|slot| slot + 1);
                    found
                })
                .collect::<Vec<_>>()
        })),
        None => vec![None; records.len()],
    }
}

/// Puts record `r` of system `s` in the cell of the entity at `slot`. A
/// record met there before makes it listed twice: every copy the same
/// ([`Cell::Twice`]), or not ([`Cell::Dup`]). Whether the cell now names
/// the link once (a record or a tombstone).
#[inline]
fn place_linked<'a>(rows: &mut Rows<'a>, slot: u32, s: usize, r: &'a Record) -> bool {
    let row = rows.row(slot);
    let cell = rows.cell(row, s);
    *cell = match *cell {
        Cell::Empty if r.deleted => Cell::Gone,
        Cell::Empty => Cell::Seen(r),
        Cell::Gone if r.deleted => Cell::Twice(r),
        Cell::Seen(first) | Cell::Twice(first) if first == r => Cell::Twice(first),
        _ => Cell::Dup,
    };
    matches!(cell, Cell::Gone | Cell::Seen(_))
}

/// In system `s`'s complete snapshot, which named `named` of its links:
/// marks absent each entity with a live link in `s` whose cell is empty.
/// Nothing to do where the snapshot named every link.
fn mark_absent(cx: &Cx<'_>, s: usize, named: usize, rows: &mut Rows<'_>) {
    let baseline = cx.baseline;
    let Some(b) = cx.sys_slot[s].filter(|b| named < baseline.linked_count(*b)) else {
        return;
    };
    for (slot, e) in baseline.occupied() {
        let live = e
            .link(b)
            .is_some_and(|l| matches!(l.status, LinkStatus::Active | LinkStatus::Frozen));
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

/// Reports linked records listed more than once, once each: copies all the
/// same count as one; copies that differ are all ignored, and nothing about
/// their entity is decided (`EntityInput::listed_twice`).
fn report_duplicates(cx: &Cx<'_>, rows: &Rows<'_>, issues: &mut Vec<Issue>) {
    let baseline = cx.baseline;
    for row in 0..rows.count() {
        for s in 0..cx.map.systems().len() {
            if matches!(rows.at(row, s), Cell::Dup | Cell::Twice(_)) {
                let id = cx.sys_slot[s]
                    .and_then(|b| baseline.entity_at(rows.slot(row))?.link(b))
                    .map(|l| l.id.to_string())
                    .unwrap_or_default();
                issues.push(Issue {
                    system: cx.map.systems()[s].clone(),
                    record_id: id,
                    entity: baseline.entity_at(rows.slot(row)).map(|e| e.id.clone()),
                    field: None,
                    kind: IssueKind::DuplicateRecordId,
                    sensitive: false,
                });
            }
        }
    }
}

/// Sorts the records not linked yet in (system, id) order, whatever order
/// the snapshots listed them in, and returns those in scope to match: an id
/// listed twice (a connector's paging bug) is reported once and every copy
/// ignored; a tombstone of a lost create is its entity's; of two tombstones
/// carrying one correlation key, the lower id is taken.
fn sift_loose<'a>(
    cx: &Cx<'a>,
    rows: &mut Rows<'a>,
    loose: &mut Records<'a>,
    issues: &mut Vec<Issue>,
) -> Records<'a> {
    loose.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    let mut unlinked: Records<'a> = Vec::with_capacity(loose.len());
    for run in identity::same_record_runs(loose) {
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
                .and_then(|key| cx.baseline.find_entity(&EntityId::new(key)));
            if let Some(slot) = made_for {
                let row = rows.row(slot);
                let cell = rows.cell(row, s);
                if matches!(cell, Cell::Empty) {
                    *cell = Cell::Dup;
                }
            }
            issues.push(Issue {
                system: cx.map.systems()[s].clone(),
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
    unlinked
}

/// Matches the `unlinked` records ([`identity::group_unlinked`]): a group
/// joining an entity of the baseline fills its row; the groups returned
/// make new entities. `loose` (every record not linked yet, sorted) says
/// what is shown of the records remembered as ambiguous; the change to that
/// memory is returned too.
fn match_unlinked<'a>(
    cx: &Cx<'a>,
    rows: &mut Rows<'a>,
    loose: Records<'a>,
    unlinked: Records<'a>,
    issues: &mut Vec<Issue>,
) -> (Vec<Records<'a>>, AmbiguityChange) {
    let map = cx.map;
    let n = map.systems().len();
    let gone = |slot: u32, s: usize| {
        rows.find(slot)
            .is_some_and(|row| matches!(rows.at(row, s), Cell::Gone | Cell::Absent))
    };
    let complete: Vec<bool> = (0..n)
        .map(|s| cx.coverage(s) == Some(Coverage::Complete))
        .collect();
    let mut recall = identity::Recall::new(map, &cx.baseline.header().ambiguous, &loose, complete);
    drop(loose);
    let (groups, held) = identity::group_unlinked(
        map,
        cx.baseline,
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
    (new_entities, ambiguous)
}

/// What planning rows made.
#[derive(Default)]
struct Planned<'a> {
    results: Vec<EntityResult>,
    /// The inputs of results that plan a guarded change, by index in
    /// `results`.
    kept: Vec<(usize, EntityInput<'a>)>,
    /// Link updates of skipped entities.
    touches: Vec<EntityChange>,
}

/// Plans the entities of `rows`, in chunks on the plan's threads: each one
/// skipped on the fast path, or planned.
fn plan_rows<'a>(cx: &Cx<'a>, rows: &Rows<'a>) -> Planned<'a> {
    let order: Vec<u32> = (0..rows.count() as u32).collect();
    let parts = par::chunked(&order, cx.threads, |chunk| {
        let mut planned = Planned::default();
        // Content hashes taken ahead or by the fast path, so the slow path
        // does not compute them again.
        let n = cx.map.systems().len();
        let mut known = vec![0u64; n];
        let mut ahead = Ahead::default();
        let mut scratch = Scratch::default();
        for block in chunk.chunks(AHEAD_ROWS) {
            ahead.hash(cx, rows, block);
            for (i, row) in block.iter().enumerate() {
                known.copy_from_slice(&ahead.hashes[i * n..(i + 1) * n]);
                plan_row(
                    cx,
                    rows,
                    *row as usize,
                    &mut known,
                    &mut scratch,
                    &mut planned,
                );
            }
        }
        planned
    });
    let mut all = Planned::default();
    for part in parts {
        let base = all.results.len();
        all.results.extend(part.results);
        all.kept
            .extend(part.kept.into_iter().map(|(i, input)| (base + i, input)));
        all.touches.extend(part.touches);
    }
    all
}

/// Rows whose records [`Ahead`] hashes together.
const AHEAD_ROWS: usize = 8;

/// The content hashes of the records of a few rows, taken before the rows
/// are planned: four records at a time ([`record_hashes`]), so that their
/// values are read from memory together, where one record after another
/// would wait for each read in turn. Only records without a version are
/// hashed ahead, and only where the fast path is on: the fast path, or
/// else the slow path, hashes each of them (a record with a version is
/// usually skipped on it, unhashed).
#[derive(Default)]
struct Ahead<'a> {
    /// By row of the block, then system; 0 where none was taken.
    hashes: Vec<u64>,
    /// The records to hash, with their places in `hashes`.
    todo: Vec<(usize, &'a Record)>,
}

impl<'a> Ahead<'a> {
    fn hash(&mut self, cx: &Cx<'a>, rows: &Rows<'a>, block: &[u32]) {
        let n = cx.map.systems().len();
        self.hashes.clear();
        self.hashes.resize(block.len() * n, 0);
        if !cx.fast {
            return;
        }
        for (i, row) in block.iter().enumerate() {
            for (s, cell) in rows.cells(*row as usize).iter().enumerate() {
                match cell {
                    Cell::Seen(r) | Cell::Twice(r) if !r.deleted && r.version.is_none() => {
                        self.todo.push((i * n + s, r));
                    }
                    _ => {}
                }
            }
        }
        let mut four = self.todo.chunks_exact(4);
        for c in four.by_ref() {
            let hashes = record_hashes([c[0].1, c[1].1, c[2].1, c[3].1]);
            for ((at, _), h) in c.iter().zip(hashes) {
                self.hashes[*at] = h;
            }
        }
        for (at, r) in four.remainder() {
            self.hashes[*at] = record_hash(r);
        }
        self.todo.clear();
    }
}

/// Plans the entity of row `row` into `planned`: an entity that waits is
/// planned as one listed twice; one the fast path skips leaves at most a
/// link update; any other is planned, and its input kept if a guard may
/// have it planned again. `known` holds the row's content hashes taken
/// ahead (one per system, 0 where none was), and takes those the fast
/// path computes; `scratch` is a buffer handed from row to row.
#[inline]
fn plan_row<'a>(
    cx: &Cx<'a>,
    rows: &Rows<'a>,
    row: usize,
    known: &mut [u64],
    scratch: &mut Scratch<'a>,
    planned: &mut Planned<'a>,
) {
    let slot = rows.slot(row);
    let cells = rows.cells(row);
    if cx.waits(slot) {
        if let Some(mut input) = entity_input(cx.baseline, slot, cells, known) {
            input.listed_twice = true;
            let result = plan_entity_with(cx, &input, Withhold::default(), scratch);
            planned.results.push(result);
        }
        return;
    }
    if let Some(touch) = fast_path(cx, slot, cells, known) {
        planned.touches.extend(touch);
        return;
    }
    if let Some(input) = entity_input(cx.baseline, slot, cells, known) {
        let result = plan_entity_with(cx, &input, Withhold::default(), scratch);
        if result.guarded() {
            planned.kept.push((planned.results.len(), input));
        }
        planned.results.push(result);
    }
}

/// The inputs of the entities new in this plan, one for each group of
/// records matched together.
fn new_inputs<'a>(cx: &Cx<'a>, groups: Vec<Records<'a>>) -> Vec<EntityInput<'a>> {
    let n = cx.map.systems().len();
    let mut new = Vec::new();
    let mut taken: HashSet<EntityId> = HashSet::new();
    for records in groups {
        let Some(id) = new_id(cx, &records, &mut taken) else {
            continue;
        };
        let mut input = EntityInput::empty(None, id, n);
        for (s, r) in records {
            input.sides[s].seen = Some(r);
            input.sides[s].hash = record_hash(r);
            input.sides[s].new_link = true;
        }
        new.push(input);
    }
    new
}

/// The id of a new entity of `records` (none for no records), unlike any
/// of the baseline's and those `taken` (to which it is added): from its
/// first record's link, or kept from a lost create.
fn new_id(
    cx: &Cx<'_>,
    records: &[(usize, &Record)],
    taken: &mut HashSet<EntityId>,
) -> Option<EntityId> {
    let systems = cx.map.systems();
    let &(s0, r0) = records.first()?;
    // A group holding the record a lost create made keeps the id the
    // create was planned under (its correlation key names another record
    // of the group), so a crashed run ends with the same entities as an
    // uninterrupted one.
    let planned = records.iter().find_map(|(_, r)| {
        let c = r.correlation.as_deref()?;
        records
            .iter()
            .any(|(s, o)| EntityId::from_link(&systems[*s], &o.id).as_str() == c)
            .then(|| EntityId::new(c))
    });
    let base = planned.unwrap_or_else(|| EntityId::from_link(&systems[s0], &r0.id));
    let mut id = base.clone();
    let mut k = 2;
    while cx.baseline.find_entity(&id).is_some() || taken.contains(&id) {
        id = EntityId::new(format!("{base}~{k}"));
        k += 1;
    }
    taken.insert(id.clone());
    Some(id)
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
    let mut input = EntityInput::empty(Some(slot), e.id.clone(), n);
    for ((s, cell), known) in cells.iter().enumerate().zip(known) {
        let hash = |r: &Record| if *known != 0 { *known } else { record_hash(r) };
        match cell {
            Cell::Seen(r) => {
                input.sides[s].seen = Some(*r);
                input.sides[s].hash = hash(r);
            }
            Cell::New(r) => {
                input.sides[s].seen = Some(*r);
                input.sides[s].hash = hash(r);
                input.sides[s].new_link = true;
            }
            Cell::Gone => input.sides[s].deleted = true,
            Cell::Absent => {
                input.sides[s].deleted = true;
                input.absent.push(s);
            }
            Cell::NewGone(r) => {
                input.sides[s].seen = Some(*r);
                input.sides[s].new_link = true;
                input.sides[s].deleted = true;
            }
            Cell::Twice(r) if r.deleted => input.sides[s].deleted = true,
            Cell::Twice(r) => {
                input.sides[s].seen = Some(*r);
                input.sides[s].hash = hash(r);
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
/// correlation key names an existing entity with no live link in `s`, and
/// an undo did not delete it.
fn lost_create(cx: &Cx<'_>, s: usize, r: &Record) -> Option<u32> {
    let slot = cx
        .baseline
        .find_entity(&EntityId::new(r.correlation.as_deref()?))?;
    let e = cx.baseline.entity_at(slot)?;
    // (A system the baseline has no slot for has no link in it.)
    let b = cx.sys_slot[s];
    let live = b
        .and_then(|b| e.link(b))
        .is_some_and(|l| matches!(l.status, LinkStatus::Active | LinkStatus::Frozen));
    // A record an undo deleted, made for the entity: not its record gone.
    let undone = b.is_some_and(|b| e.extra.as_ref().is_some_and(|x| x.undone(b as u32, &r.id)));
    (!live && !undone).then_some(slot)
}

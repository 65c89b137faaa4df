//! Planning one entity: its links (new, leaving scope, deleted), then each
//! field (detect, decide, propagate), then the writes (creates, updates,
//! deletes) and what commit records.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::baseline::{
    Awaiting, DeleteReview, Entity, EntityId, Extra, Held, LinkRecord, LinkStatus, Observed,
    ReviewChoice, ValuesView,
};
use crate::codec::{self, ValueRef};
use crate::guard::{Withheld, WithheldKind};
use crate::hash::StableHasher;
use crate::mapping::{
    Conversion, Direction, FieldSpec, Mapped, MappingError, Normalization, ValueProblem,
};
use crate::model::{is_empty_value, Coverage, Record, SystemId};
use crate::plan::*;
use crate::policy::{
    self, Candidate, ConflictInput, ConflictPolicy, Decision, DeleteEditPolicy, DeletePolicy,
};
use crate::scope::ScopeExit;

use super::input::{Cx, EntityInput};

/// Which guarded changes to withhold (a budget refused them).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Withhold {
    pub(crate) deletes: bool,
    pub(crate) emptied: bool,
    pub(crate) scope_exits: bool,
}

/// What planning one entity gives.
#[derive(Debug)]
pub(crate) struct EntityResult {
    pub(crate) ops: Vec<WriteOp>,
    pub(crate) conflicts: Vec<Conflict>,
    pub(crate) held: Vec<Hold>,
    pub(crate) issues: Vec<Issue>,
    pub(crate) change: EntityChange,
    /// Commit must see the entity even if the change is empty.
    pub(crate) has_ops: bool,
    /// Guarded changes planned (or, when withheld, that would have been).
    pub(crate) deletes: Vec<Withheld>,
    pub(crate) emptied: Vec<Withheld>,
    pub(crate) exits: Vec<Withheld>,
}

impl EntityResult {
    /// Whether the entity plans a guarded change (a delete, an emptied
    /// field, a scope exit): only such an entity is planned again when a
    /// guard withholds its kind.
    pub(crate) fn guarded(&self) -> bool {
        !(self.deletes.is_empty() && self.emptied.is_empty() && self.exits.is_empty())
    }

    pub(crate) fn affected_by(&self, w: Withhold) -> bool {
        (w.deletes && !self.deletes.is_empty())
            || (w.emptied && !self.emptied.is_empty())
            || (w.scope_exits && !self.exits.is_empty())
    }
}

/// A value known for a target: what it holds now, or its shadow.
#[derive(Debug, Clone, Copy)]
enum Known<'v> {
    Val(&'v Value),
    Ref(ValueRef<'v>),
}

impl Known<'_> {
    fn same(&self, norm: &Normalization, v: &Value) -> bool {
        match self {
            Known::Val(x) => norm.equal(Some(x), Some(v)),
            Known::Ref(r) => codec::same(norm, Some(v), Some(*r)),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Known::Val(x) => is_empty_value(x),
            Known::Ref(r) => r.is_empty(),
        }
    }

    fn to_value(self) -> Value {
        match self {
            Known::Val(x) => x.clone(),
            Known::Ref(r) => r.to_value(),
        }
    }
}

fn known_same(norm: &Normalization, k: Option<Known<'_>>, v: &Value) -> bool {
    match k {
        Some(k) => k.same(norm, v),
        None => is_empty_value(v),
    }
}

/// An entity's link to one system during planning.
#[derive(Debug, Clone)]
struct LinkNow<'a> {
    status: Option<LinkStatus>,
    id: Option<&'a str>,
    version: Option<&'a str>,
    hash: u64,
    /// Linked by this plan.
    new: bool,
    /// The baseline holds shadows for it.
    has_shadow: bool,
    /// Changed by this plan: commit writes it.
    dirty: bool,
}

/// When a current value changed, looked up only when a decision needs it.
#[derive(Clone, Copy)]
enum Stamp<'a> {
    /// A seen record's native field.
    Field(&'a Record, &'a str),
    /// Remembered with the value.
    Known(Option<DateTime<Utc>>),
}

impl Stamp<'_> {
    fn get(self) -> Option<DateTime<Utc>> {
        match self {
            Stamp::Field(r, nat) => r.changed_at(nat),
            Stamp::Known(at) => at,
        }
    }
}

/// Why a value could not be converted.
enum Fail {
    Mapping(MappingError),
    /// A reference's parent is not linked (the parent's id).
    Waiting(String),
    /// The field's unmapped-value policy says: leave the field alone for
    /// this record and system.
    Skip,
}

fn mapped(m: Mapped<'_>) -> Result<Cow<'_, Value>, Fail> {
    match m {
        Mapped::Value(v) => Ok(v),
        Mapped::Skip => Err(Fail::Skip),
        Mapped::Failed(e) => Err(Fail::Mapping(e)),
    }
}

/// One system's changed value of a field.
struct Cand<'a> {
    s: usize,
    native: &'a Value,
    /// Borrowed from the record where the field passes through.
    canonical: Cow<'a, Value>,
    at: Option<DateTime<Utc>>,
}

/// What a delete in some system leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DeleteAction {
    Unlink,
    Hold(DeleteHeldBy),
    Propagate,
    Restore,
}

struct Planner<'c, 'a> {
    cx: &'c Cx<'a>,
    input: &'c EntityInput<'a>,
    withhold: Withhold,
    entity: Option<&'a Entity>,
    view: ValuesView<'a>,
    extra: Option<&'a Extra>,
    systems: &'a [SystemId],
    links: Vec<LinkNow<'a>>,
    seen: Vec<Option<&'a Record>>,
    /// Per system and field (`s * fields + f`): the seen record's native
    /// name and value of the field, looked up once per entity.
    values: Vec<Option<(&'a str, &'a Value)>>,
    /// Systems that take part in field sync (active links).
    part: Vec<bool>,
    /// Systems a record is created in (restores included).
    create: Vec<bool>,
    res: EntityResult,
    unsettled: bool,
    skipped: bool,
    /// Values kept for the next plan: (system, field, observed).
    pending: Vec<(usize, usize, Observed)>,
    /// Per target: field writes, with the field's index and the value they
    /// replace (for the op id).
    writes: Vec<Vec<(usize, FieldWrite, Option<Value>)>>,
    /// Per field: the value decided this plan and why.
    decided: Vec<Option<(Value, Reason)>>,
    /// Fields held (not to be written anywhere, created included).
    held_fields: Vec<bool>,
    /// Fields whose source value names a parent not linked yet: a create
    /// the field targets waits for the parent (parents are created first).
    waiting: Vec<bool>,
    /// Systems whose record left scope while a guard withholds scope exits:
    /// the link stays as it was, and the record takes no part.
    exit_withheld: Vec<bool>,
    /// Systems whose record was linked by this plan through its correlation
    /// key: the record a create of this entity made, whose commit was lost.
    /// Its values are recsync's own write, not a change, unless they differ
    /// from every other source's and the canonical value.
    echo: Vec<bool>,
    /// Targets whose write is blocked (a required field would be empty).
    blocked: Vec<bool>,
    /// Shadows read otherwise than the baseline keeps them: a write found
    /// not made is read as what the record held before it (system, field,
    /// value).
    overrides: Vec<(usize, usize, Option<ValueRef<'a>>)>,
    /// Systems whose deletion evidence this plan does not act on: a
    /// created record never seen, absent (mostly none: no allocation).
    not_gone: Vec<usize>,
    /// Systems with a delete reported applied that no read has confirmed
    /// yet: the record is neither deleting nor taking part.
    awaiting_delete: Vec<usize>,
    /// A delete found not made, on a record edited since: the delete is
    /// decided again, not carried out as decided before.
    redecide: bool,
}

#[cfg(test)]
thread_local! {
    /// Tests turn the shortcut of [`Planner::unchanged`] off, to compare.
    static FULL_WALK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn full_walk() -> bool {
    FULL_WALK.with(std::cell::Cell::get)
}

#[cfg(not(test))]
#[inline]
fn full_walk() -> bool {
    false
}

pub(crate) fn plan_entity(
    cx: &Cx<'_>,
    input: &EntityInput<'_>,
    withhold: Withhold,
) -> EntityResult {
    let mut p = Planner::new(cx, input, withhold);
    p.run();
    p.finish()
}

impl<'c, 'a> Planner<'c, 'a> {
    fn new(cx: &'c Cx<'a>, input: &'c EntityInput<'a>, withhold: Withhold) -> Self {
        let map = cx.map;
        let n = map.systems().len();
        let entity = input.slot.and_then(|s| cx.baseline.entity_at(s));
        let view = entity.map(Entity::view).unwrap_or_default();
        let extra = entity.and_then(|e| e.extra.as_deref());
        let mut links = Vec::with_capacity(n);
        for s in 0..n {
            let l = entity.and_then(|e| cx.sys_slot[s].and_then(|b| e.link(b)));
            links.push(match (input.new_links[s], l) {
                (true, _) => {
                    let r = input.seen[s];
                    LinkNow {
                        status: Some(LinkStatus::Active),
                        id: r.map(|r| r.id.as_str()),
                        version: r.and_then(|r| r.version.as_deref()),
                        hash: input.hashes[s],
                        new: true,
                        has_shadow: false,
                        dirty: true,
                    }
                }
                (false, Some(l)) => LinkNow {
                    status: Some(l.status),
                    id: Some(&l.id),
                    version: l.version.as_deref(),
                    hash: l.hash,
                    new: false,
                    has_shadow: l.status != LinkStatus::Detached,
                    dirty: false,
                },
                (false, None) => LinkNow {
                    status: None,
                    id: None,
                    version: None,
                    hash: 0,
                    new: false,
                    has_shadow: false,
                    dirty: false,
                },
            });
        }
        let mut change = EntityChange::new(input.id.clone());
        change.new = input.slot.is_none();
        let fields = map.fields().len();
        let mut values = vec![None; n * fields];
        for (((s, r), deleted), row) in input
            .seen
            .iter()
            .enumerate()
            .zip(&input.deleted)
            .zip(values.chunks_mut(fields.max(1)))
        {
            // A deleted record is linked, not read.
            let (Some(r), false) = (r, deleted) else {
                continue;
            };
            for (f, slot) in row.iter_mut().enumerate() {
                *slot = cx.field_value(s, f, r);
            }
        }
        Planner {
            cx,
            input,
            withhold,
            entity,
            view,
            extra,
            systems: map.systems(),
            links,
            // A deleted record (a lost create's tombstone) is linked, not
            // read.
            seen: input
                .seen
                .iter()
                .zip(&input.deleted)
                .map(|(r, d)| if *d { None } else { *r })
                .collect(),
            values,
            part: vec![false; n],
            create: vec![false; n],
            res: EntityResult {
                ops: Vec::new(),
                conflicts: Vec::new(),
                held: Vec::new(),
                issues: Vec::new(),
                change,
                has_ops: false,
                deletes: Vec::new(),
                emptied: Vec::new(),
                exits: Vec::new(),
            },
            unsettled: false,
            skipped: false,
            pending: Vec::new(),
            writes: vec![Vec::new(); n],
            decided: vec![None; map.fields().len()],
            held_fields: vec![false; map.fields().len()],
            waiting: vec![false; map.fields().len()],
            exit_withheld: vec![false; n],
            echo: vec![false; n],
            blocked: vec![false; n],
            overrides: Vec::new(),
            not_gone: Vec::new(),
            awaiting_delete: Vec::new(),
            redecide: false,
        }
    }

    fn n(&self) -> usize {
        self.systems.len()
    }

    fn record_id(&self, s: usize) -> Option<String> {
        self.seen[s]
            .map(|r| r.id.clone())
            .or_else(|| self.links[s].id.map(str::to_owned))
    }

    fn issue(&mut self, s: usize, f: Option<usize>, kind: IssueKind) {
        let field = f.and_then(|f| self.cx.map.fields().get(f));
        self.res.issues.push(Issue {
            system: self.systems[s].clone(),
            record_id: self.record_id(s).unwrap_or_default(),
            entity: Some(self.input.id.clone()),
            field: field.map(|x| x.name().to_owned()),
            kind,
            sensitive: field.is_some_and(FieldSpec::is_sensitive),
        });
    }

    fn set_status(&mut self, s: usize, status: Option<LinkStatus>) {
        let l = &mut self.links[s];
        if l.status != status {
            l.status = status;
            l.dirty = true;
        }
    }

    fn shadow(&self, s: usize, f: usize) -> Option<ValueRef<'a>> {
        if !self.links[s].has_shadow {
            return None;
        }
        if let Some((_, _, v)) = self
            .overrides
            .iter()
            .find(|(os, of, _)| *os == s && *of == f)
        {
            return *v;
        }
        let (b, bf) = (self.cx.sys_slot[s]?, self.cx.field_slot[f]?);
        self.view.shadow(b, bf)
    }

    /// What target `t` holds for field `f` before this plan writes it: what
    /// its record was seen holding, else its shadow.
    fn held_now(&self, t: usize, f: usize) -> Option<Value> {
        if self.seen[t].is_some() {
            let fields = self.cx.map.fields().len();
            return self
                .values
                .get(t * fields + f)
                .copied()
                .flatten()
                .map(|(_, v)| v.clone());
        }
        self.shadow(t, f).map(ValueRef::to_value)
    }

    /// Whether this plan acts on deletion evidence for system `s`.
    fn gone(&self, s: usize) -> bool {
        self.input.deleted[s] && !self.not_gone.contains(&s)
    }

    fn canonical(&self, f: usize) -> Option<ValueRef<'a>> {
        self.view.canonical(self.cx.field_slot[f]?)
    }

    fn held_before(&self, f: usize) -> Option<&'a Held> {
        let bf = self.cx.field_slot[f]? as u32;
        self.extra?.held(bf)
    }

    fn pending_before(&self, s: usize, f: usize) -> Option<&'a Observed> {
        let (b, bf) = (self.cx.sys_slot[s]? as u32, self.cx.field_slot[f]? as u32);
        self.extra?.pending(b, bf)
    }

    /// What system `s` holds for field `f` now: seen, else remembered from
    /// a hold or a skipped plan.
    fn current(&self, s: usize, f: usize) -> Option<(&'a Value, Stamp<'a>)> {
        if let Some(r) = self.seen[s] {
            let fields = self.cx.map.fields().len();
            let found = if f < fields {
                self.values.get(s * fields + f)
            } else {
                None
            };
            if let Some(Some((nat, v))) = found {
                return Some((v, Stamp::Field(r, nat)));
            }
        }
        if let Some(o) = self
            .held_before(f)
            .and_then(|h| h.observed.get(&self.systems[s]))
        {
            return Some((&o.value, Stamp::Known(o.changed_at)));
        }
        self.pending_before(s, f)
            .map(|o| (&o.value, Stamp::Known(o.changed_at)))
    }

    /// Native to canonical, references translated through the parent.
    fn read(&self, f: usize, s: usize, native: &'a Value) -> Result<Cow<'a, Value>, Fail> {
        let field = &self.cx.map.fields()[f];
        if let Some((parent, slots)) = &self.cx.parents[f] {
            let Some(id) = id_text(native) else {
                return Ok(Cow::Borrowed(native));
            };
            let entity = slots[s]
                .and_then(|b| parent.find_link(b, &id))
                .and_then(|slot| parent.entity_at(slot));
            return match entity {
                Some(e) => Ok(Cow::Owned(Value::String(e.id.as_str().to_owned()))),
                None => Err(Fail::Waiting(id)),
            };
        }
        mapped(field.read(s, native))
    }

    /// Canonical to native, references translated through the parent.
    fn write(&self, f: usize, t: usize, canonical: &Value) -> Result<Value, Fail> {
        let field = &self.cx.map.fields()[f];
        if let Some((parent, slots)) = &self.cx.parents[f] {
            let Some(id) = id_text(canonical) else {
                return Ok(canonical.clone());
            };
            let link = parent
                .find_entity(&EntityId::new(id.clone()))
                .and_then(|slot| parent.entity_at(slot))
                .and_then(|e| slots[t].and_then(|b| e.link(b)))
                .filter(|l| matches!(l.status, LinkStatus::Active | LinkStatus::Frozen));
            return match link {
                Some(l) => Ok(Value::String(l.id.to_string())),
                None => Err(Fail::Waiting(id)),
            };
        }
        mapped(field.write(t, canonical)).map(Cow::into_owned)
    }

    /// Reports a value that could not be converted: a mapping failure
    /// skips the record, a missing parent makes the field wait.
    fn fail(&mut self, s: usize, f: usize, fail: Fail) {
        let field = &self.cx.map.fields()[f];
        match fail {
            // A value that cannot be written blocks the write to that
            // system's record; the others go on.
            Fail::Mapping(error) if error.direction() == Conversion::ToNative => {
                self.issue(s, Some(f), IssueKind::Mapping { error });
                self.blocked[s] = true;
                self.unsettled = true;
            }
            // A value that cannot be read skips the record: nothing about
            // the entity is decided without it.
            Fail::Mapping(error) => {
                self.issue(s, Some(f), IssueKind::Mapping { error });
                self.skipped = true;
            }
            Fail::Waiting(parent) => {
                let object = field.reference().unwrap_or_default().to_owned();
                self.issue(s, Some(f), IssueKind::WaitingForParent { object, parent });
                self.unsettled = true;
            }
            Fail::Skip => {}
        }
    }

    /// Checks a native value about to be written to `t` against the
    /// target's validation rules. An invalid value is reported and left
    /// out (`false`); a missing required value blocks the whole write to
    /// `t`.
    fn valid(&mut self, f: usize, t: usize, native: &Value) -> bool {
        match self.cx.map.fields()[f].check(t, native) {
            Ok(()) => true,
            Err(ValueProblem::Missing { .. }) => {
                self.issue(t, Some(f), IssueKind::MissingRequired);
                self.blocked[t] = true;
                self.unsettled = true;
                false
            }
            Err(problem) => {
                self.issue(t, Some(f), IssueKind::InvalidValue { problem });
                self.unsettled = true;
                false
            }
        }
    }

    fn run(&mut self) {
        if self.input.listed_twice {
            // Reported by the gathering; what else was seen is kept for a
            // plan that reads the record once.
            self.skipped = true;
            return;
        }
        self.confirm();
        self.scope();
        if !self.deletes() {
            return;
        }
        let n = self.n();
        for s in 0..n {
            self.part[s] =
                self.links[s].status == Some(LinkStatus::Active) && !self.exit_withheld[s];
        }
        self.echo = (0..n).map(|s| self.is_echo(s)).collect();
        self.plan_creates_targets();
        for f in 0..self.cx.map.fields().len() {
            self.field(f);
            if self.skipped {
                return;
            }
        }
        self.build_creates();
        if self.skipped {
            return;
        }
        self.build_updates();
    }

    /// Writes the systems reported applied that no read has confirmed:
    /// each is confirmed by this plan's read of its system, found not made
    /// (and planned again), or still unseen. See
    /// [`Unconfirmed`](crate::baseline::Unconfirmed).
    fn confirm(&mut self) {
        let Some(extra) = self.extra else { return };
        for (b, a) in &extra.unconfirmed {
            let Some(t) = (0..self.n()).find(|t| self.cx.sys_slot[*t] == Some(*b as usize)) else {
                continue;
            };
            // A system not read tells nothing (a record deleted there is
            // still awaited, not deleting).
            let Some(read) = self.cx.coverage(t) else {
                if a.kind == OpKind::Delete && self.links[t].status == Some(LinkStatus::Deleted) {
                    self.awaiting_delete.push(t);
                }
                continue;
            };
            let l = &self.links[t];
            if l.new || !matches!(l.status, Some(LinkStatus::Active | LinkStatus::Deleted)) {
                // Relinked, unlinked or frozen since: nothing to confirm.
                self.forget(t);
                continue;
            }
            match a.kind {
                OpKind::Delete => self.confirm_delete(t, a, read),
                _ => self.confirm_write(t, a),
            }
        }
    }

    fn confirm_delete(&mut self, t: usize, a: &Awaiting, read: Coverage) {
        if self.links[t].status != Some(LinkStatus::Deleted) {
            self.forget(t);
        } else if let Some(r) = self.seen[t] {
            // Still there: the delete was not made. The record takes part
            // again, and the delete is decided again (an edit made since
            // is not lost to the delete decided before it).
            self.set_status(t, Some(LinkStatus::Active));
            self.redecide = self.cx.map.fields().iter().enumerate().any(|(f, field)| {
                field.source_at(t)
                    && self.cx.field_value(t, f, r).is_some_and(|(_, cur)| {
                        !codec::same(field.normalization(), Some(cur), self.shadow(t, f))
                    })
            });
            self.not_made(t, a);
        } else if self.gone(t) || read == Coverage::Complete {
            // Gone: confirmed. The link goes.
            self.set_status(t, None);
            self.links[t].has_shadow = false;
            self.forget(t);
        } else {
            // Not in a partial read: absence there says nothing (and many
            // change feeds carry no tombstones), so it is not counted.
            self.awaiting_delete.push(t);
        }
    }

    fn confirm_write(&mut self, t: usize, a: &'a Awaiting) {
        if self.links[t].status != Some(LinkStatus::Active) {
            // Deleted since (a delete held or propagated): nothing to
            // confirm.
            self.forget(t);
            return;
        }
        let Some(r) = self.seen[t] else {
            if a.kind == OpKind::Create && self.input.absent.contains(&t) {
                // Created, never seen, and absent from a complete snapshot:
                // no evidence of a delete. The create is planned again
                // (same correlation key: a record that shows up late links).
                self.not_made(t, a);
                self.not_gone.push(t);
                self.set_status(t, None);
                self.links[t].id = None;
                self.links[t].has_shadow = false;
                self.create[t] = true;
            } else if self.gone(t) {
                // A tombstone, or an updated record gone: a delete.
                self.forget(t);
            } else {
                // Read, but not this record: unseen one more time.
                let attempts = a.attempts.saturating_add(1);
                self.res
                    .change
                    .unconfirmed
                    .push((t as u32, Update::Set(attempts)));
                self.report_unconfirmed(t, a.kind, attempts);
            }
            return;
        };
        // The version the write reported, where it moved: confirmed.
        let reported = a.version.as_deref();
        if reported.is_some()
            && r.version.as_deref() == reported
            && reported != a.version_before.as_deref()
        {
            self.forget(t);
            return;
        }
        let fields = self.cx.map.fields();
        let mut not_made: Vec<(usize, Option<ValueRef<'a>>)> = Vec::new();
        for (bf, before) in a.before() {
            let Some(f) = (0..fields.len()).find(|f| self.cx.field_slot[*f] == Some(bf as usize))
            else {
                continue;
            };
            let norm = fields[f].normalization();
            let cur = self.cx.field_value(t, f, r).map(|(_, v)| v);
            // Holding what was written: made. Holding what it held before:
            // not made. Anything else: an edit made since.
            if !codec::same(norm, cur, self.shadow(t, f)) && codec::same(norm, cur, before) {
                not_made.push((f, before));
            }
        }
        if not_made.is_empty() {
            self.forget(t);
            return;
        }
        self.not_made(t, a);
        for (f, before) in not_made {
            self.overrides.push((t, f, before));
            self.res
                .change
                .shadows
                .push((t as u32, f as u32, before.map(ValueRef::to_value)));
        }
    }

    fn forget(&mut self, t: usize) {
        self.res.change.unconfirmed.push((t as u32, Update::Clear));
    }

    /// A write found not made: forgotten, planned again, and counted.
    fn not_made(&mut self, t: usize, a: &Awaiting) {
        let attempts = a.attempts.saturating_add(1);
        self.forget(t);
        self.res.change.retried.push((t as u32, attempts));
        self.report_unconfirmed(t, a.kind, attempts);
    }

    fn report_unconfirmed(&mut self, t: usize, op: OpKind, attempts: u32) {
        if attempts >= super::UNCONFIRMED_PLANS {
            self.issue(t, None, IssueKind::UnconfirmedWrite { op, attempts });
        }
    }

    /// Records that left (or came back into) scope.
    fn scope(&mut self) {
        let exit = self.cx.map.records().scope_exit;
        for s in 0..self.n() {
            let Some(r) = self.seen[s] else { continue };
            if self.links[s].new {
                continue;
            }
            let in_scope = self.cx.in_scope(s, r);
            match self.links[s].status {
                Some(LinkStatus::Active) if !in_scope => {
                    self.res.exits.push(Withheld {
                        kind: WithheldKind::ScopeExit,
                        entity: self.input.id.clone(),
                        system: self.systems[s].clone(),
                        record_id: Some(r.id.clone()),
                        field: None,
                    });
                    self.seen[s] = None;
                    if self.withhold.scope_exits {
                        // Withheld: the link is left as it was (committed
                        // unchanged, so the next plan sees the exit again),
                        // and the record takes no part in this plan.
                        self.exit_withheld[s] = true;
                        continue;
                    }
                    match exit {
                        ScopeExit::Unlink => self.set_status(s, Some(LinkStatus::Detached)),
                        ScopeExit::Freeze => {
                            self.set_status(s, Some(LinkStatus::Frozen));
                            self.hold_frozen(s, &r.id);
                        }
                    }
                }
                Some(LinkStatus::Frozen) if in_scope => {
                    self.set_status(s, Some(LinkStatus::Active))
                }
                Some(LinkStatus::Frozen) => {
                    self.seen[s] = None;
                    self.hold_frozen(s, &r.id);
                }
                _ => {}
            }
        }
    }

    fn hold_frozen(&mut self, s: usize, record_id: &str) {
        self.res.held.push(Hold {
            entity: self.input.id.clone(),
            field: None,
            kind: HoldKind::Frozen {
                system: self.systems[s].clone(),
                record_id: record_id.to_owned(),
            },
        });
    }

    /// Deletes: detects them, decides what they lead to, plans delete ops.
    /// Returns whether field work goes on.
    fn deletes(&mut self) -> bool {
        let n = self.n();
        let rules = self.cx.map.records();
        let review = self.extra.and_then(|x| x.delete.as_ref());
        let mut deleting: Vec<usize> = Vec::new();
        for s in 0..n {
            if self.awaiting_delete.contains(&s) {
                continue;
            }
            match self.links[s].status {
                Some(LinkStatus::Active) if self.gone(s) => deleting.push(s),
                Some(LinkStatus::Frozen) if self.gone(s) => {
                    // A frozen record's delete is not propagated.
                    self.set_status(s, Some(LinkStatus::Detached));
                }
                Some(LinkStatus::Deleted) if self.seen[s].is_some() => {
                    // The record is back (restored from a trash bin).
                    self.set_status(s, Some(LinkStatus::Active));
                }
                Some(LinkStatus::Deleted) => deleting.push(s),
                _ => {}
            }
        }
        if deleting.is_empty() {
            if review.is_some() && !self.restoring(review) {
                self.res.change.delete_review = Some(Update::Clear);
            }
            return self.live_links() > 0 || self.res.change.new;
        }
        let mut edited = self.edited_systems(&deleting);
        // A delete held against an edit stays held until reviewed: the
        // commit that held it advanced the edit's shadow, so the edit no
        // longer reads as one, but it is still what the delete would lose.
        if let Some(r) = review
            .filter(|r| r.resolution.is_none() && r.held_by == DeleteHeldBy::DeleteAgainstEdit)
        {
            for name in &r.edited_in {
                if let Some(s) = self.cx.map.system_index(name.as_str()) {
                    if !edited.contains(&s) && !deleting.contains(&s) {
                        edited.push(s);
                    }
                }
            }
            edited.sort_unstable();
        }
        let decided = review
            .and_then(|r| r.resolution.as_ref())
            .filter(|_| !self.redecide);
        let action = match decided {
            Some(ReviewChoice::Delete) => DeleteAction::Propagate,
            Some(ReviewChoice::Restore) => DeleteAction::Restore,
            Some(ReviewChoice::Unlink) => DeleteAction::Unlink,
            _ => {
                let mut any_hold = false;
                let mut any_propagate = false;
                let mut any_restore = false;
                // A target's record is restored from the source's: where the
                // entity has no record in a source system (it was only ever
                // in targets), there is nothing to restore it from, and a
                // record made of nothing would be blank.
                let restorable = matches!(rules.flow, Direction::OneWay { enforce: true, .. })
                    && (0..n).any(|s| {
                        rules.source[s]
                            && !deleting.contains(&s)
                            && matches!(
                                self.links[s].status,
                                Some(LinkStatus::Active | LinkStatus::Frozen)
                            )
                    });
                for d in &deleting {
                    let policy = if rules.source[*d] {
                        rules.delete_policy[*d]
                    } else if restorable {
                        any_restore = true;
                        continue;
                    } else {
                        DeletePolicy::Unlink
                    };
                    match policy {
                        DeletePolicy::Hold => any_hold = true,
                        DeletePolicy::Propagate => any_propagate = true,
                        _ => {}
                    }
                }
                if any_hold {
                    DeleteAction::Hold(DeleteHeldBy::Policy)
                } else if any_propagate && !edited.is_empty() {
                    match rules.delete_vs_edit {
                        DeleteEditPolicy::EditWins => DeleteAction::Restore,
                        DeleteEditPolicy::DeleteWins => DeleteAction::Propagate,
                        _ => DeleteAction::Hold(DeleteHeldBy::DeleteAgainstEdit),
                    }
                } else if any_propagate {
                    DeleteAction::Propagate
                } else if any_restore {
                    DeleteAction::Restore
                } else {
                    DeleteAction::Unlink
                }
            }
        };
        let action = if action == DeleteAction::Propagate && self.withhold.deletes {
            self.count_deletes(&deleting);
            DeleteAction::Hold(DeleteHeldBy::Guard)
        } else {
            action
        };
        match action {
            DeleteAction::Unlink => {
                for d in &deleting {
                    self.set_status(*d, Some(LinkStatus::Detached));
                }
                if review.is_some() {
                    self.res.change.delete_review = Some(Update::Clear);
                }
                if self.live_links() == 0 {
                    self.res.change.remove = true;
                    return false;
                }
                true
            }
            DeleteAction::Hold(by) => {
                self.hold_delete(&deleting, &edited, by, None);
                true
            }
            DeleteAction::Restore => {
                for d in &deleting {
                    self.set_status(*d, None);
                    self.links[*d].has_shadow = false;
                    self.create[*d] = true;
                }
                self.hold_delete(
                    &deleting,
                    &edited,
                    DeleteHeldBy::Policy,
                    Some(ReviewChoice::Restore),
                );
                self.res
                    .held
                    .retain(|h| !matches!(h.kind, HoldKind::Deleted { .. }));
                true
            }
            DeleteAction::Propagate => {
                self.count_deletes(&deleting);
                for d in &deleting {
                    self.set_status(*d, Some(LinkStatus::Deleted));
                }
                let mut targets = Vec::new();
                for t in 0..n {
                    match self.links[t].status {
                        Some(LinkStatus::Active) if rules.target[t] && !self.exit_withheld[t] => {
                            targets.push(t)
                        }
                        Some(LinkStatus::Active | LinkStatus::Frozen) => {
                            self.set_status(t, Some(LinkStatus::Detached))
                        }
                        _ => {}
                    }
                }
                for t in targets {
                    let record_id = self.record_id(t);
                    let mut h = StableHasher::new("delete");
                    h.str(self.systems[t].as_str());
                    h.str(record_id.as_deref().unwrap_or(""));
                    let expected_version = self.expected_version(t);
                    self.res.ops.push(WriteOp {
                        id: OpId(h.finish()),
                        kind: OpKind::Delete,
                        object: self.cx.map.object().to_owned(),
                        system: self.systems[t].clone(),
                        record_id,
                        entity: self.input.id.clone(),
                        expected_version,
                        correlation: None,
                        fields: Vec::new(),
                    });
                }
                if self.res.ops.is_empty() && self.awaiting_delete.is_empty() {
                    self.res.change.remove = true;
                } else {
                    self.keep_review(
                        &deleting,
                        &edited,
                        DeleteHeldBy::Policy,
                        Some(ReviewChoice::Delete),
                    );
                }
                false
            }
        }
    }

    /// Whether a kept review is restoring records whose creates are not
    /// done yet (its systems still lack a link).
    fn restoring(&self, review: Option<&DeleteReview>) -> bool {
        let Some(r) = review else { return false };
        r.resolution == Some(ReviewChoice::Restore)
            && r.deleted_in.iter().any(|(sys, _)| {
                self.cx
                    .map
                    .system_index(sys.as_str())
                    .is_some_and(|s| self.links[s].status.is_none())
            })
    }

    fn count_deletes(&mut self, deleting: &[usize]) {
        let rules = self.cx.map.records();
        for t in 0..self.n() {
            if deleting.contains(&t)
                || self.links[t].status != Some(LinkStatus::Active)
                || self.exit_withheld[t]
                || !rules.target[t]
            {
                continue;
            }
            self.res.deletes.push(Withheld {
                kind: WithheldKind::Delete,
                entity: self.input.id.clone(),
                system: self.systems[t].clone(),
                record_id: self.record_id(t),
                field: None,
            });
        }
    }

    fn live_links(&self) -> usize {
        self.links
            .iter()
            .filter(|l| matches!(l.status, Some(LinkStatus::Active | LinkStatus::Frozen)))
            .count()
    }

    fn review_for(
        &self,
        deleting: &[usize],
        edited: &[usize],
        by: DeleteHeldBy,
        resolution: Option<ReviewChoice>,
    ) -> DeleteReview {
        let mut h = StableHasher::new("delete review");
        h.str(self.input.id.as_str());
        let deleted_in: Vec<(SystemId, String)> = deleting
            .iter()
            .map(|d| {
                (
                    self.systems[*d].clone(),
                    self.links[*d].id.unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for (s, r) in &deleted_in {
            h.str(s.as_str());
            h.str(r);
        }
        DeleteReview {
            id: ConflictId(h.finish()),
            entity: self.input.id.clone(),
            deleted_in,
            edited_in: edited.iter().map(|s| self.systems[*s].clone()).collect(),
            resolution,
            held_by: by,
        }
    }

    fn keep_review(
        &mut self,
        deleting: &[usize],
        edited: &[usize],
        by: DeleteHeldBy,
        resolution: Option<ReviewChoice>,
    ) {
        let old = self.extra.and_then(|x| x.delete.as_ref());
        let mut review = self.review_for(deleting, edited, by, resolution);
        if let Some(old) = old.filter(|o| o.id == review.id) {
            // Keep what a reviewer decided and why it was held first.
            if review.resolution.is_none() {
                review.resolution = old.resolution.clone();
            }
            review.edited_in = old.edited_in.clone();
            if old.held_by != DeleteHeldBy::Guard || by == DeleteHeldBy::Guard {
                review.held_by = old.held_by;
            }
        }
        if old != Some(&review) {
            self.res.change.delete_review = Some(Update::Set(review));
        }
    }

    fn hold_delete(
        &mut self,
        deleting: &[usize],
        edited: &[usize],
        by: DeleteHeldBy,
        resolution: Option<ReviewChoice>,
    ) {
        for d in deleting {
            if self.links[*d].status != Some(LinkStatus::Deleted) && resolution.is_none() {
                self.set_status(*d, Some(LinkStatus::Deleted));
            }
        }
        self.keep_review(deleting, edited, by, resolution);
        let review = self.review_for(deleting, edited, by, None);
        let edited_in: Vec<SystemId> = edited.iter().map(|s| self.systems[*s].clone()).collect();
        for d in deleting {
            self.res.held.push(Hold {
                entity: self.input.id.clone(),
                field: None,
                kind: HoldKind::Deleted {
                    system: self.systems[*d].clone(),
                    record_id: self.links[*d].id.unwrap_or_default().to_owned(),
                    review: review.id,
                    by,
                    edited_in: edited_in.clone(),
                },
            });
        }
    }

    /// Active, not deleting systems whose record changed a field they are a
    /// source for since the last sync.
    fn edited_systems(&self, deleting: &[usize]) -> Vec<usize> {
        let fields = self.cx.map.fields();
        (0..self.n())
            .filter(|s| {
                !deleting.contains(s)
                    && self.links[*s].status == Some(LinkStatus::Active)
                    && self.seen[*s].is_some()
                    && (0..fields.len()).any(|f| {
                        fields[f].source_at(*s)
                            && self.current(*s, f).is_some_and(|(cur, _)| {
                                !codec::same(
                                    fields[f].normalization(),
                                    Some(cur),
                                    self.shadow(*s, f),
                                )
                            })
                    })
            })
            .collect()
    }

    /// Whether system `s`'s record was linked by this plan through its
    /// correlation key (naming this entity, or another record of it), with
    /// another system taking part.
    fn is_echo(&self, s: usize) -> bool {
        let Some(c) = self.seen[s].and_then(|r| r.correlation.as_deref()) else {
            return false;
        };
        if !self.input.new_links[s] || !self.part[s] {
            return false;
        }
        let others = (0..self.n()).filter(|o| *o != s && self.part[*o]);
        let mut others = others.peekable();
        if others.peek().is_none() {
            return false;
        }
        c == self.input.id.as_str()
            || (0..self.n()).any(|o| {
                o != s
                    && self.seen[o]
                        .is_some_and(|r| EntityId::from_link(&self.systems[o], &r.id).as_str() == c)
            })
    }

    /// Which systems the entity is created in.
    fn plan_creates_targets(&mut self) {
        let rules = self.cx.map.records();
        let mode_creates = self.cx.map.match_mode() != crate::identity::MatchMode::MatchOnly;
        let is_new = self.res.change.new;
        let unsettled = self.entity.is_some_and(|e| e.unsettled);
        for t in 0..self.n() {
            if self.links[t].status.is_some() || self.create[t] {
                continue;
            }
            if !(mode_creates && rules.target[t]) {
                continue;
            }
            // From a record that is new, to systems whose records were read;
            // else where the whole system was read (so matching saw every
            // record), or read at all where a create is pending.
            let sources_new =
                is_new && (0..self.n()).any(|s| self.input.new_links[s] && rules.source[s]);
            if is_new && !sources_new {
                continue;
            }
            let read = self.cx.coverage(t);
            let allowed = if is_new {
                read.is_some()
            } else {
                read == Some(crate::model::Coverage::Complete) || (unsettled && read.is_some())
            };
            if allowed {
                self.create[t] = true;
            } else if read.is_none() {
                // The target was not read (no snapshot, or one a guard
                // ignored): the create waits for a read, and the entity
                // stays in every plan until then (the fast path would
                // otherwise skip it for good).
                self.unsettled = true;
            }
        }
    }

    fn expected_version(&self, t: usize) -> Option<String> {
        self.seen[t]
            .and_then(|r| r.version.clone())
            .or_else(|| self.links[t].version.map(str::to_owned))
    }

    #[allow(clippy::too_many_lines)]
    fn field(&mut self, f: usize) {
        let map = self.cx.map;
        let field: &'a FieldSpec = &map.fields()[f];
        let name = field.name();
        let norm = field.normalization();
        let n = self.n();
        let held_before = self.held_before(f);
        if held_before.is_none() && !full_walk() && self.unchanged(f, field) {
            return;
        }

        // Detect.
        let mut cands: Vec<Cand<'a>> = Vec::new();
        let mut waiting = false;
        let mut unmapped: Vec<(usize, &'a Value, MappingError)> = Vec::new();
        for s in 0..n {
            if !self.part[s] || !field.source_at(s) {
                continue;
            }
            let Some((cur, at)) = self.current(s, f) else {
                continue;
            };
            if codec::same(norm, Some(cur), self.shadow(s, f)) {
                continue;
            }
            match self.read(f, s, cur) {
                Ok(canonical) => cands.push(Cand {
                    s,
                    native: cur,
                    canonical,
                    at: at.get(),
                }),
                // The unmapped policy says: this system's value is not read.
                Err(Fail::Skip) => {}
                Err(Fail::Mapping(e @ MappingError::Unmapped { .. })) => unmapped.push((s, cur, e)),
                Err(fail) => {
                    let is_wait = matches!(fail, Fail::Waiting(_));
                    self.fail(s, f, fail);
                    if self.skipped {
                        return;
                    }
                    if is_wait {
                        waiting = true;
                        self.pending.push((
                            s,
                            f,
                            Observed {
                                value: cur.clone(),
                                changed_at: at.get(),
                            },
                        ));
                    }
                }
            }
        }
        // The record a lost create made holds what recsync wrote: an echo,
        // where another source or the canonical value has it too.
        if cands.iter().any(|c| self.echo[c.s]) {
            let canon = self.canonical(f).map(ValueRef::to_value);
            let keep: Vec<bool> = cands
                .iter()
                .map(|c| {
                    let echoed = cands.iter().any(|o| {
                        !self.echo[o.s] && norm.equal(Some(&o.canonical), Some(&c.canonical))
                    }) || canon
                        .as_ref()
                        .is_some_and(|v| norm.equal(Some(v), Some(&c.canonical)));
                    !(self.echo[c.s] && echoed)
                })
                .collect();
            let mut i = 0;
            cands.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        // A value no value map row reads (a one-way row's target value) is
        // no change when it is what the map writes to that system for the
        // value the others hold: on first sight, or an echo.
        if !unmapped.is_empty() {
            let agreed: Option<Value> = match cands.split_first() {
                None => self.canonical(f).map(ValueRef::to_value),
                Some((first, rest)) => rest
                    .iter()
                    .all(|c| norm.equal(Some(&c.canonical), Some(&first.canonical)))
                    .then(|| first.canonical.clone().into_owned()),
            };
            for (s, cur, e) in unmapped {
                let echo = agreed.as_ref().is_some_and(|v| {
                    matches!(field.write(s, v), Mapped::Value(n) if norm.equal(Some(cur), Some(&n)))
                });
                if !echo {
                    self.fail(s, f, Fail::Mapping(e));
                    return;
                }
            }
        }
        if waiting {
            // Never decide without a source whose value could not be read.
            self.held_fields[f] = true;
            self.waiting[f] = true;
            return;
        }
        let canonical = self.canonical(f);
        let canonical_value = || canonical.map(ValueRef::to_value);

        // Decide.
        let mut held = false;
        let mut conflict: Option<Conflict> = None;
        let mut decided: Option<(Value, Reason)> = None;
        let mut live: Vec<usize> = (0..cands.len()).collect();
        if field.no_overwrite_on_empty() && canonical.is_some_and(|c| !c.is_empty()) {
            let authority = match field.policy() {
                ConflictPolicy::Authority { system, .. } => map.system_index(system.as_str()),
                _ => None,
            };
            let mut authority_emptied = false;
            let before = live.len();
            let mut emptied_by = Vec::new();
            live.retain(|i| {
                let c = &cands[*i];
                if is_empty_value(&c.canonical) {
                    emptied_by.push(c.s);
                    authority_emptied |= Some(c.s) == authority;
                    false
                } else {
                    true
                }
            });
            for s in emptied_by {
                self.res.held.push(Hold {
                    entity: self.input.id.clone(),
                    field: Some(name.to_owned()),
                    kind: HoldKind::EmptyValue {
                        system: self.systems[s].clone(),
                    },
                });
            }
            if live.len() < before && (live.is_empty() || authority_emptied) {
                held = true;
            }
        }
        if !held && !live.is_empty() {
            let mut distinct: Vec<&Value> = Vec::new();
            for i in &live {
                let c = &cands[*i].canonical;
                if !distinct.iter().any(|d| norm.equal(Some(d), Some(c))) {
                    distinct.push(c);
                }
            }
            if distinct.len() == 1 {
                let reason = if live.len() == 1 {
                    Reason::Changed {
                        system: self.systems[cands[live[0]].s].clone(),
                    }
                } else {
                    Reason::Agreed {
                        systems: live
                            .iter()
                            .map(|i| self.systems[cands[*i].s].clone())
                            .collect(),
                    }
                };
                decided = Some((cands[live[0]].canonical.clone().into_owned(), reason));
            } else {
                let baseline_value = canonical_value();
                let mut h = StableHasher::new("conflict");
                h.str(self.input.id.as_str());
                h.str(name);
                h.opt_value(baseline_value.as_ref());
                for i in &live {
                    h.str(self.systems[cands[*i].s].as_str());
                    h.value(&cands[*i].canonical);
                }
                let id = ConflictId(h.finish());
                let resolution = held_before
                    .filter(|hb| hb.conflict_id() == Some(id))
                    .and_then(|hb| hb.resolution.clone());
                if let Some(v) = resolution {
                    decided = Some((v, Reason::Reviewed { conflict: id }));
                } else {
                    let input_c: Vec<Candidate<'_>> = live
                        .iter()
                        .map(|i| Candidate {
                            system: &self.systems[cands[*i].s],
                            value: &cands[*i].canonical,
                            changed_at: cands[*i].at,
                            sensitive: field.is_sensitive(),
                        })
                        .collect();
                    let input = ConflictInput {
                        entity: &self.input.id,
                        field: name,
                        baseline: baseline_value.as_ref(),
                        candidates: &input_c,
                        sensitive: field.is_sensitive(),
                    };
                    let stamps: Vec<_> = live
                        .iter()
                        .map(|i| (self.systems[cands[*i].s].clone(), cands[*i].at))
                        .collect();
                    match policy::decide(field.policy(), &input, map.skew_tolerance()) {
                        Decision::Take(i, rule) => {
                            let c = &cands[live[i]];
                            decided = Some((
                                c.canonical.clone().into_owned(),
                                Reason::ConflictWon {
                                    winner: self.systems[c.s].clone(),
                                    rule,
                                    candidates: stamps,
                                },
                            ));
                        }
                        Decision::Value(v, resolver) => {
                            decided = Some((v, Reason::Resolver { resolver }))
                        }
                        Decision::Hold(by) => {
                            held = true;
                            let c = Conflict {
                                id,
                                entity: self.input.id.clone(),
                                field: name.to_owned(),
                                baseline: baseline_value.clone(),
                                candidates: live
                                    .iter()
                                    .map(|i| ConflictCandidate {
                                        system: self.systems[cands[*i].s].clone(),
                                        value: cands[*i].canonical.clone().into_owned(),
                                        changed_at: cands[*i].at,
                                        sensitive: field.is_sensitive(),
                                    })
                                    .collect(),
                                held_by: by,
                                sensitive: field.is_sensitive(),
                            };
                            self.res.conflicts.push(c.clone());
                            conflict = Some(c);
                        }
                    }
                }
                if let Some(hb) = held_before {
                    if hb.resolution.is_some() && hb.conflict_id() != Some(id) {
                        let s = cands[live[0]].s;
                        self.issue(s, Some(f), IssueKind::StaleResolution);
                    }
                }
            }
        }
        let bf = f as u32;
        if held {
            self.held_fields[f] = true;
            let observed = cands
                .iter()
                .map(|c| {
                    (
                        self.systems[c.s].clone(),
                        Observed {
                            value: c.native.clone(),
                            changed_at: c.at,
                        },
                    )
                })
                .collect();
            let cid = conflict.as_ref().map(|c| c.id);
            let resolution = held_before
                .filter(|hb| hb.conflict_id() == cid)
                .and_then(|hb| hb.resolution.clone());
            let new_held = Held {
                conflict,
                observed,
                resolution,
            };
            if held_before != Some(&new_held) {
                self.res.change.held.push((bf, Some(new_held)));
            }
            return;
        }
        if held_before.is_some() {
            self.res.change.held.push((bf, None));
        }
        if let Some((v, _)) = &decided {
            if !canonical.is_some_and(|c| c.eq_value(v)) {
                self.res.change.canonical.push((bf, Some(v.clone())));
            }
        }

        // Sources' shadows adopt what they were seen holding; a target seen
        // for the first time starts its shadow at what it holds.
        for s in 0..n {
            if !self.part[s] {
                continue;
            }
            let shadow = self.shadow(s, f);
            let first_sight = field.target_at(s) && shadow.is_none();
            if !(field.source_at(s) || first_sight) {
                continue;
            }
            if let Some((cur, _)) = self.current(s, f) {
                if !shadow.is_some_and(|sh| sh.eq_value(cur)) {
                    self.res
                        .change
                        .shadows
                        .push((s as u32, bf, Some(cur.clone())));
                }
            }
        }

        // Propagate to linked targets.
        let reason = decided.as_ref().map(|(_, r)| r.clone());
        // An enforced field's source that holds nothing (no canonical value)
        // is enforced too: a target's own value is cleared, as a value from
        // the source would overwrite it.
        let source = (0..n).find(|s| self.part[*s] && field.source_at(*s));
        let enforce_empty =
            field.enforced() && decided.is_none() && canonical.is_none() && source.is_some();
        if decided.is_none() && canonical.is_none() && !enforce_empty {
            return;
        }
        let nothing = Value::Null;
        // Nothing decided: the canonical value is decoded only for a target
        // that may be behind it.
        let mut decoded: Option<Value> = None;
        for t in 0..n {
            if !self.part[t] || !field.target_at(t) {
                continue;
            }
            let Some(nat) = field.native_at(t) else {
                continue;
            };
            let observed_now = self.current(t, f).map(|(v, _)| Known::Val(v));
            let shadow = self.shadow(t, f).map(Known::Ref);
            // What the target will hold if not written: a source (or an
            // enforced target) keeps what it holds now; a one-way target is
            // judged by what it was last written.
            let expected = if field.source_at(t) || field.enforced() {
                observed_now.or(shadow)
            } else {
                shadow.or(observed_now)
            };
            // Written as it is: neither a reference, nor a value map or
            // transform for this target.
            let through = self.cx.parents[f].is_none() && field.passes_through(t);
            let value: &Value = match (&decided, canonical) {
                (Some((v, _)), _) => v,
                (None, Some(c)) => {
                    // The common case: the target holds the canonical value
                    // and the field passes through unchanged.
                    let same = through
                        && match expected {
                            Some(Known::Val(v)) => codec::same(norm, Some(v), Some(c)),
                            Some(Known::Ref(r)) => r == c,
                            None => false,
                        };
                    if same {
                        continue;
                    }
                    decoded.get_or_insert_with(|| c.to_value())
                }
                (None, None) if enforce_empty && !field.source_at(t) => &nothing,
                (None, None) => continue,
            };
            let native: Cow<'_, Value> = if through {
                Cow::Borrowed(value)
            } else {
                match self.write(f, t, value) {
                    Ok(v) => Cow::Owned(v),
                    Err(fail) => {
                        self.fail(t, f, fail);
                        if self.skipped {
                            return;
                        }
                        continue;
                    }
                }
            };
            if known_same(norm, expected, &native) {
                continue;
            }
            // A value map's skip, or another rendering through a
            // transform: only where the value is converted.
            if let Some(e) = expected.filter(|_| !through).map(Known::to_value) {
                match field.read(t, &e) {
                    // A value the unmapped policy skips is left alone.
                    Mapped::Skip => continue,
                    // A target holding another rendering of the value
                    // through its transform (a system that re-renders the
                    // dates it is written, "1/1/2026" for "01/01/2026") is
                    // up to date: writing it again would loop.
                    Mapped::Value(c)
                        if field.has_transform(t) && norm.equal(Some(&c), Some(value)) =>
                    {
                        continue
                    }
                    _ => {}
                }
            }
            let empties = is_empty_value(&native) && expected.is_some_and(|e| !e.is_empty());
            // Enforcing an empty value over what a target holds is emptying
            // it: the empty-value guard, where on, keeps the target's value
            // and says so.
            if empties && field.enforced() && !field.source_at(t) && field.no_overwrite_on_empty() {
                if let Some(s) = source {
                    self.res.held.push(Hold {
                        entity: self.input.id.clone(),
                        field: Some(name.to_owned()),
                        kind: HoldKind::EmptyValue {
                            system: self.systems[s].clone(),
                        },
                    });
                }
                continue;
            }
            if !self.valid(f, t, &native) {
                continue;
            }
            if empties {
                self.res.emptied.push(Withheld {
                    kind: WithheldKind::EmptiedField,
                    entity: self.input.id.clone(),
                    system: self.systems[t].clone(),
                    record_id: self.record_id(t),
                    field: Some(name.to_owned()),
                });
                if self.withhold.emptied {
                    self.unsettled = true;
                    continue;
                }
            }
            self.writes[t].push((
                f,
                FieldWrite {
                    field: name.to_owned(),
                    native: nat.to_owned(),
                    value: native.into_owned(),
                    reason: reason.clone().unwrap_or(Reason::Behind),
                    sensitive: field.is_sensitive(),
                },
                expected.map(Known::to_value),
            ));
        }
        // For the creates (a skipped entity returned above: it writes
        // nothing).
        self.decided[f] = decided;
    }

    /// The common case, told without the full walk below: every system
    /// taking part holds exactly its shadow (or was not seen and keeps
    /// nothing), and every target's shadow is the canonical value, passed
    /// through unchanged. [`field`](Self::field) would then find no
    /// candidate, adopt no shadow and write nothing. Anything else (a
    /// held field, a reference, a transform, a target seen for the first
    /// time) takes the full walk.
    fn unchanged(&self, f: usize, field: &FieldSpec) -> bool {
        if self.cx.parents[f].is_some() {
            return false;
        }
        let Some(canonical) = self.canonical(f) else {
            return false;
        };
        for s in 0..self.n() {
            let (source, target) = (field.source_at(s), field.target_at(s));
            if !self.part[s] || !(source || target) {
                continue;
            }
            let Some(shadow) = self.shadow(s, f) else {
                return false;
            };
            if target && !(field.passes_through(s) && shadow == canonical) {
                return false;
            }
            if let Some((cur, _)) = self.current(s, f) {
                if !shadow.eq_value(cur) {
                    return false;
                }
            }
        }
        true
    }

    fn build_creates(&mut self) {
        let map = self.cx.map;
        for t in 0..self.n() {
            if !self.create[t] {
                continue;
            }
            let mut fields: Vec<FieldWrite> = Vec::new();
            let mut waits = false;
            for (f, field) in map.fields().iter().enumerate() {
                if !field.target_at(t) {
                    continue;
                }
                if self.waiting[f] {
                    // Created without its parent, the record would be written
                    // twice (and briefly wrong): it waits, parents first.
                    waits = true;
                    continue;
                }
                if self.held_fields[f] {
                    continue;
                }
                let Some(nat) = field.native_at(t) else {
                    continue;
                };
                let (value, reason) = match &self.decided[f] {
                    Some((v, r)) => (Cow::Borrowed(v), r.clone()),
                    None => match self.canonical(f) {
                        Some(c) => (Cow::Owned(c.to_value()), Reason::NewRecord),
                        None => continue,
                    },
                };
                if is_empty_value(&value) {
                    continue;
                }
                match self.write(f, t, &value) {
                    Ok(native) if !self.valid(f, t, &native) => {}
                    Ok(native) => fields.push(FieldWrite {
                        field: field.name().to_owned(),
                        native: nat.to_owned(),
                        value: native,
                        reason,
                        sensitive: field.is_sensitive(),
                    }),
                    Err(fail) => {
                        let is_wait = matches!(fail, Fail::Waiting(_));
                        self.fail(t, f, fail);
                        if self.skipped {
                            return;
                        }
                        waits |= is_wait;
                    }
                }
            }
            for (f, field) in map.fields().iter().enumerate() {
                if field.is_required(t) && !fields.iter().any(|w| w.field == field.name()) {
                    self.issue(t, Some(f), IssueKind::MissingRequired);
                    self.blocked[t] = true;
                    self.unsettled = true;
                }
            }
            if waits || self.blocked[t] {
                continue;
            }
            if let Some(filter) = &map.records().scope[t] {
                if !filter.matches_fields(fields.iter().map(|w| (w.native.as_str(), &w.value))) {
                    self.res.held.push(Hold {
                        entity: self.input.id.clone(),
                        field: None,
                        kind: HoldKind::OutOfTargetScope {
                            system: self.systems[t].clone(),
                        },
                    });
                    continue;
                }
            }
            let mut h = StableHasher::new("create");
            h.str(self.systems[t].as_str());
            h.str(self.input.id.as_str());
            for w in &fields {
                h.str(&w.native);
                h.value(&w.value);
            }
            self.res.ops.push(WriteOp {
                id: OpId(h.finish()),
                kind: OpKind::Create,
                object: map.object().to_owned(),
                system: self.systems[t].clone(),
                record_id: None,
                entity: self.input.id.clone(),
                expected_version: None,
                correlation: Some(self.input.id.as_str().to_owned()),
                fields,
            });
        }
    }

    fn build_updates(&mut self) {
        for t in 0..self.n() {
            let fields = std::mem::take(&mut self.writes[t]);
            if fields.is_empty() || self.blocked[t] {
                continue;
            }
            let record_id = self.record_id(t).unwrap_or_default();
            let mut h = StableHasher::new("update");
            h.str(self.systems[t].as_str());
            h.str(&record_id);
            for (f, w, before) in &fields {
                h.str(&w.native);
                h.opt_value(before.as_ref());
                h.value(&w.value);
                // What the record holds now, for a later read to confirm
                // the write by.
                let now = self.held_now(t, *f);
                self.res.change.before.push((t as u32, *f as u32, now));
            }
            let expected_version = self.expected_version(t);
            self.res.ops.push(WriteOp {
                id: OpId(h.finish()),
                kind: OpKind::Update,
                object: self.cx.map.object().to_owned(),
                system: self.systems[t].clone(),
                record_id: Some(record_id),
                entity: self.input.id.clone(),
                expected_version,
                correlation: None,
                fields: fields.into_iter().map(|(_, w, _)| w).collect(),
            });
        }
    }

    fn finish(mut self) -> EntityResult {
        let was_unsettled = self.entity.is_some_and(|e| e.unsettled);
        let had_pending = self.extra.is_some_and(|x| !x.pending.is_empty());
        if self.skipped {
            // The record is skipped: nothing is written or advanced, but
            // what was seen is kept for the next plan.
            let mut res = EntityResult {
                ops: Vec::new(),
                conflicts: Vec::new(),
                held: Vec::new(),
                issues: std::mem::take(&mut self.res.issues),
                change: EntityChange::new(self.input.id.clone()),
                has_ops: false,
                deletes: Vec::new(),
                emptied: Vec::new(),
                exits: Vec::new(),
            };
            if self.entity.is_some() {
                res.change.pending = Some(self.observations());
                res.change.unsettled = true;
            }
            return res;
        }
        // Links: new, changed status, or a new version or hash seen.
        for s in 0..self.n() {
            let l = &self.links[s];
            if self.exit_withheld[s] && !l.dirty {
                continue;
            }
            let seen = self.seen[s].or(self.input.seen[s]);
            let (hash, version) = match seen {
                Some(r) if l.status.is_some() => (self.input.hashes[s], r.version.as_deref()),
                _ => (l.hash, l.version),
            };
            let moved = hash != l.hash || version != l.version;
            if !(l.dirty || moved) {
                continue;
            }
            let record = match (l.status, l.id) {
                (Some(status), Some(id)) => Some(LinkRecord {
                    id: id.to_owned(),
                    version: version.map(str::to_owned),
                    hash,
                    status,
                }),
                _ => None,
            };
            self.res.change.links.push((s as u32, record));
        }
        if !self.pending.is_empty() || had_pending {
            let kept = std::mem::take(&mut self.pending);
            self.res.change.pending = Some(
                kept.into_iter()
                    .filter_map(|(s, f, o)| Some((self.cx_sys(s)?, f as u32, o)))
                    .collect(),
            );
        }
        self.res.change.unsettled = self.unsettled;
        self.res.has_ops = !self.res.ops.is_empty() || was_unsettled;
        self.res
    }

    fn cx_sys(&self, s: usize) -> Option<u32> {
        Some(s as u32)
    }

    /// What the seen records hold that differs from the shadows, to keep
    /// while the entity is skipped.
    fn observations(&self) -> Vec<(u32, u32, Observed)> {
        let mut out: Vec<(u32, u32, Observed)> = Vec::new();
        for s in 0..self.n() {
            if self.links[s].status != Some(LinkStatus::Active) {
                continue;
            }
            for (f, field) in self.cx.map.fields().iter().enumerate() {
                if !field.source_at(s) {
                    continue;
                }
                if let Some((cur, at)) = self.current(s, f) {
                    if !codec::same(field.normalization(), Some(cur), self.shadow(s, f)) {
                        out.push((
                            s as u32,
                            f as u32,
                            Observed {
                                value: cur.clone(),
                                changed_at: at.get(),
                            },
                        ));
                    }
                }
            }
        }
        out
    }
}

/// A native id as text: a string, or a number's digits.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(all(test, feature = "proptest"))]
mod tests {
    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::FULL_WALK;
    use crate::connector::Connector;
    use crate::testkit::strategies::{edit_history, field_map, Edit};
    use crate::testkit::MemoryConnector;
    use crate::{Baseline, OpOutcome, Outcomes, Snapshot, SyncEngine, SyncPlan, WriteOp};

    const SYSTEMS: [&str; 3] = ["crm", "shop", "erp"];
    const OBJECT: &str = "contacts";

    fn plan(engine: &SyncEngine, baseline: &Baseline, snaps: &[Snapshot], full: bool) -> SyncPlan {
        FULL_WALK.with(|w| w.set(full));
        let plan = engine.plan(baseline, snaps);
        FULL_WALK.with(|w| w.set(false));
        plan.expect("plan")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Every sync of a random edit history (conflicts held for review,
        /// one-way and enforced fields, the empty-value guard, case
        /// folding) plans the same with the unchanged-field shortcut as
        /// with the full walk of every field.
        #[test]
        fn the_unchanged_field_shortcut_plans_what_the_full_walk_plans(
            map in field_map(&SYSTEMS, &["email", "phone", "city"]),
            history in edit_history(3, "email", &["phone", "city"], 0..40),
        ) {
            let engine = SyncEngine::new(map);
            let systems: Vec<MemoryConnector> =
                SYSTEMS.iter().map(|s| MemoryConnector::new(*s)).collect();
            let mut baseline = Baseline::new();
            for edit in history.iter().chain([&Edit::Sync, &Edit::Sync]) {
                edit.apply(&systems, OBJECT);
                if *edit != Edit::Sync {
                    continue;
                }
                let snaps = systems
                    .iter()
                    .map(|c| block_on(c.fetch(OBJECT)))
                    .collect::<Result<Vec<_>, _>>()
                    .expect("fetch");
                let planned = plan(&engine, &baseline, &snaps, false);
                prop_assert_eq!(&planned, &plan(&engine, &baseline, &snaps, true));
                let mut outcomes = Outcomes::new();
                for c in &systems {
                    let ops: Vec<WriteOp> = planned
                        .ops
                        .iter()
                        .filter(|op| op.system == *c.system())
                        .cloned()
                        .collect();
                    if ops.is_empty() {
                        continue;
                    }
                    let results = block_on(c.apply(OBJECT, &ops)).expect("apply");
                    for (op, r) in ops.iter().zip(results) {
                        outcomes.record(op.id, OpOutcome::from(r));
                    }
                }
                engine.commit(&mut baseline, &planned, &outcomes).expect("commit");
            }
        }
    }
}

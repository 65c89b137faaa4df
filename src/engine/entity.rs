//! Planning one entity, step by step ([`Planner::run`]):
//!
//! 1. **Confirm** ([`confirm`](Planner::confirm), `entity/confirm.rs`):
//!    writes reported applied but not yet seen are confirmed by this read,
//!    found not made (planned again), or still awaited.
//! 2. **Scope** ([`scope`](Planner::scope)): records that left their
//!    system's scope are unlinked or frozen.
//! 3. **Deletes** ([`deletes`](Planner::deletes), `entity/deletes.rs`):
//!    records deleted in some systems; what that leads to is
//!    [`policy::delete_action`]'s to say. Then, under a mirroring one-way
//!    record direction, **mirror** ([`mirror`](Planner::mirror),
//!    `entity/mirror.rs`): target records no source holds a record of are
//!    deleted ([`policy::mirror_action`]).
//! 4. **Each field** ([`field`](Planner::field), `entity/field.rs`):
//!    - the shortcut for a field nothing touched
//!      ([`unchanged`](Planner::unchanged), `entity/unchanged.rs`): the
//!      one place the decision is skipped;
//!    - **detect** ([`detect`](Planner::detect), `entity/detect.rs`): which
//!      sources changed it since the last sync, as candidates;
//!    - **decide** ([`decide`](Planner::decide), `entity/decide.rs`): the
//!      winner and its reason, through [`policy::empties_hold`] and
//!      [`policy::decide`]; or **hold** ([`hold`](Planner::hold)) for
//!      review;
//!    - **propagate** ([`propagate`](Planner::propagate),
//!      `entity/propagate.rs`): shadows adopt what sources hold; targets
//!      behind the value get a write.
//! 5. **Writes** (`entity/writes.rs`): the creates
//!    ([`build_creates`](Planner::build_creates)) and updates
//!    ([`build_updates`](Planner::build_updates)) from the writes planned
//!    per field; [`finish`](Planner::finish) says what commit records.
//!    Every op goes through [`push_op`](Planner::push_op)
//!    (`entity/read_only.rs`): one to a read-only system is not planned but
//!    listed, and the entity is looked at again by the next plan.
//!
//! A step that cannot go on (a value that cannot be read) marks the entity
//! skipped: nothing is written or advanced for it, and what was seen is
//! kept for the next plan.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::baseline::{
    Awaiting, DeleteReview, Entity, EntityId, Extra, Held, LinkRecord, LinkState, LinkStatus,
    Observed, ReviewChoice, ValuesView,
};
use crate::codec::{self, ValueRef};
use crate::guard::{Withheld, WithheldKind};
use crate::hash::StableHasher;
use crate::mapping::{
    Conversion, Direction, FieldSpec, Mapped, MappingError, Normalization, ValueProblem,
};
use crate::model::{is_empty_value, Coverage, Record, SystemId};
use crate::plan::*;
use crate::policy::{self, Candidate, ConflictInput, ConflictPolicy, Decision, DeletePolicy};
use crate::scope::ScopeExit;

use super::input::{Cx, EntityInput};

mod confirm;
mod decide;
mod deletes;
mod detect;
mod field;
mod mirror;
mod propagate;
mod read_only;
mod unchanged;
mod writes;

use decide::Verdict;

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
    /// Writes read-only systems would need, not planned.
    pub(crate) read_only: Vec<ReadOnlyWrite>,
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
    /// Nothing planned yet; commit records `change`.
    fn new(change: EntityChange) -> Self {
        EntityResult {
            ops: Vec::new(),
            read_only: Vec::new(),
            conflicts: Vec::new(),
            held: Vec::new(),
            issues: Vec::new(),
            change,
            has_ops: false,
            deletes: Vec::new(),
            emptied: Vec::new(),
            exits: Vec::new(),
        }
    }

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

impl<'a> LinkNow<'a> {
    /// System `s`'s link as planning starts: linked by this plan (the
    /// record seen), as the baseline has it (`l`), or none.
    fn new(input: &EntityInput<'a>, s: usize, l: Option<&'a LinkState>) -> Self {
        match (input.sides[s].new_link, l) {
            (true, _) => {
                let r = input.sides[s].seen;
                LinkNow {
                    status: Some(LinkStatus::Active),
                    id: r.map(|r| r.id.as_str()),
                    version: r.and_then(|r| r.version.as_deref()),
                    hash: input.sides[s].hash,
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
        }
    }
}

/// Per system and field (`s * fields + f`): the seen record's native name
/// and value of the field, looked up once per entity, into `values`. A
/// deleted record is linked, not read.
fn read_values<'a>(
    cx: &Cx<'a>,
    input: &EntityInput<'a>,
    values: &mut Vec<Option<(&'a str, &'a Value)>>,
) {
    let fields = cx.map.fields().len();
    refill(values, cx.map.systems().len() * fields, None);
    for ((s, side), row) in input
        .sides
        .iter()
        .enumerate()
        .zip(values.chunks_mut(fields.max(1)))
    {
        let (Some(r), false) = (side.seen, side.deleted) else {
            continue;
        };
        for (f, slot) in row.iter_mut().enumerate() {
            *slot = cx.field_value(s, f, r);
        }
    }
}

/// `v` emptied, then `len` copies of `x`, in the buffer it had.
fn refill<T: Clone>(v: &mut Vec<T>, len: usize, x: T) {
    v.clear();
    v.resize(len, x);
}

/// The buffers planning an entity needs by system and by field, handed
/// from one entity to the next so that an entity planned does not
/// allocate them again ([`plan_entity_with`]).
#[derive(Default)]
pub(crate) struct Scratch<'a> {
    links: Vec<LinkNow<'a>>,
    seen: Vec<Option<&'a Record>>,
    values: Vec<Option<(&'a str, &'a Value)>>,
    part: Vec<bool>,
    create: Vec<bool>,
    writes: Vec<Vec<(usize, FieldWrite, Option<Known<'a>>)>>,
    decided: Vec<Option<(Cow<'a, Value>, Reason)>>,
    held_fields: Vec<bool>,
    waiting: Vec<bool>,
    exit_withheld: Vec<bool>,
    echo: Vec<bool>,
    blocked: Vec<bool>,
    cands: Vec<Cand<'a>>,
    live: Vec<usize>,
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
    writes: Vec<Vec<(usize, FieldWrite, Option<Known<'a>>)>>,
    /// Per field: the value decided this plan and why.
    decided: Vec<Option<(Cow<'a, Value>, Reason)>>,
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
    /// The candidates of the field being planned (empty between fields).
    cands: Vec<Cand<'a>>,
    /// The candidates the empty-value rule left, by index in `cands`
    /// ([`decide`](Planner::decide)).
    live: Vec<usize>,
    /// Shadows read otherwise than the baseline keeps them: a write found
    /// not made is read as what the record held before it (system, field,
    /// value).
    overrides: Vec<(usize, usize, Option<ValueRef<'a>>)>,
    /// Fields a target was found holding in its own form of what this
    /// engine wrote (system, field): what it holds is its shadow, not an
    /// edit ([`confirm`](Planner::confirm)).
    adopted: Vec<(usize, usize)>,
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

/// Plans one entity.
pub(crate) fn plan_entity(
    cx: &Cx<'_>,
    input: &EntityInput<'_>,
    withhold: Withhold,
) -> EntityResult {
    plan_entity_with(cx, input, withhold, &mut Scratch::default())
}

/// Plans one entity in the buffers of `scratch`, which it leaves for the
/// next.
pub(crate) fn plan_entity_with<'a>(
    cx: &Cx<'a>,
    input: &EntityInput<'a>,
    withhold: Withhold,
    scratch: &mut Scratch<'a>,
) -> EntityResult {
    let mut p = Planner::new(cx, input, withhold, std::mem::take(scratch));
    p.run();
    let (res, used) = p.finish();
    *scratch = used;
    res
}

impl<'c, 'a> Planner<'c, 'a> {
    fn new(
        cx: &'c Cx<'a>,
        input: &'c EntityInput<'a>,
        withhold: Withhold,
        mut scratch: Scratch<'a>,
    ) -> Self {
        let map = cx.map;
        let n = map.systems().len();
        let fields = map.fields().len();
        let entity = input.slot.and_then(|s| cx.baseline.entity_at(s));
        let view = entity.map(Entity::view).unwrap_or_default();
        let extra = entity.and_then(|e| e.extra.as_deref());
        scratch.links.clear();
        scratch.links.extend((0..n).map(|s| {
            let l = entity.and_then(|e| cx.sys_slot[s].and_then(|b| e.link(b)));
            LinkNow::new(input, s, l)
        }));
        // A deleted record (a lost create's tombstone) is linked, not read.
        scratch.seen.clear();
        scratch.seen.extend(
            input
                .sides
                .iter()
                .map(|x| if x.deleted { None } else { x.seen }),
        );
        let mut change = EntityChange::new(input.id.clone());
        change.new = input.slot.is_none();
        read_values(cx, input, &mut scratch.values);
        for flags in [
            &mut scratch.part,
            &mut scratch.create,
            &mut scratch.exit_withheld,
            &mut scratch.echo,
            &mut scratch.blocked,
        ] {
            refill(flags, n, false);
        }
        for flags in [&mut scratch.held_fields, &mut scratch.waiting] {
            refill(flags, fields, false);
        }
        refill(&mut scratch.decided, fields, None);
        // Each target's list of writes is emptied into its op, and kept.
        scratch.writes.truncate(n);
        for w in &mut scratch.writes {
            w.clear();
        }
        scratch.writes.resize_with(n, Vec::new);
        let Scratch {
            links,
            seen,
            values,
            part,
            create,
            writes,
            decided,
            held_fields,
            waiting,
            exit_withheld,
            echo,
            blocked,
            cands,
            live,
        } = scratch;
        Planner {
            cx,
            input,
            withhold,
            entity,
            view,
            extra,
            systems: map.systems(),
            links,
            seen,
            values,
            part,
            create,
            res: EntityResult::new(change),
            unsettled: false,
            skipped: false,
            pending: Vec::new(),
            writes,
            decided,
            held_fields,
            waiting,
            exit_withheld,
            echo,
            blocked,
            cands,
            live,
            overrides: Vec::new(),
            adopted: Vec::new(),
            not_gone: Vec::new(),
            awaiting_delete: Vec::new(),
            redecide: false,
        }
    }

    /// The buffers, for the next entity ([`Scratch`]).
    fn scratch(&mut self) -> Scratch<'a> {
        Scratch {
            links: std::mem::take(&mut self.links),
            seen: std::mem::take(&mut self.seen),
            values: std::mem::take(&mut self.values),
            part: std::mem::take(&mut self.part),
            create: std::mem::take(&mut self.create),
            writes: std::mem::take(&mut self.writes),
            decided: std::mem::take(&mut self.decided),
            held_fields: std::mem::take(&mut self.held_fields),
            waiting: std::mem::take(&mut self.waiting),
            exit_withheld: std::mem::take(&mut self.exit_withheld),
            echo: std::mem::take(&mut self.echo),
            blocked: std::mem::take(&mut self.blocked),
            cands: std::mem::take(&mut self.cands),
            live: std::mem::take(&mut self.live),
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

    /// Whether target `t` was found holding its own form of what was written
    /// to field `f` (see [`adopted`](Planner::adopted)).
    fn adopted(&self, t: usize, f: usize) -> bool {
        self.adopted.contains(&(t, f))
    }

    /// What was last written to field `f` of target `t`, where the system
    /// stores another form of it: this plan's finding, else the baseline's.
    fn rewritten(&self, t: usize, f: usize) -> Option<&Value> {
        if !self.links[t].has_shadow {
            return None;
        }
        let mut found = self.res.change.rewritten.iter().rev();
        if let Some((_, _, v)) = found.find(|(s, x, _)| (*s as usize, *x as usize) == (t, f)) {
            return v.as_ref();
        }
        let (b, bf) = (self.cx.sys_slot[t]? as u32, self.cx.field_slot[f]? as u32);
        self.extra?.rewritten(b, bf)
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
        self.input.sides[s].deleted && !self.not_gone.contains(&s)
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

    /// The steps, in order (the module docs tell each).
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
        for s in 0..n {
            self.echo[s] = self.is_echo(s);
        }
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

    /// Whether system `s`'s record was linked by this plan through its
    /// correlation key (naming this entity, or another record of it), with
    /// another system taking part.
    fn is_echo(&self, s: usize) -> bool {
        let Some(c) = self.seen[s].and_then(|r| r.correlation.as_deref()) else {
            return false;
        };
        if !self.input.sides[s].new_link || !self.part[s] {
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

    /// What the plan returns for the entity and what commit records.
    /// What planning the entity gives, and the buffers for the next.
    fn finish(mut self) -> (EntityResult, Scratch<'a>) {
        let res = self.result();
        (res, self.scratch())
    }

    fn result(&mut self) -> EntityResult {
        let was_unsettled = self.entity.is_some_and(|e| e.unsettled);
        let had_pending = self.extra.is_some_and(|x| !x.pending.is_empty());
        if self.skipped {
            // The record is skipped: nothing is written or advanced, but
            // what was seen is kept for the next plan.
            let mut res = EntityResult::new(EntityChange::new(self.input.id.clone()));
            res.issues = std::mem::take(&mut self.res.issues);
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
            let seen = self.seen[s].or(self.input.sides[s].seen);
            let (hash, version) = match seen {
                Some(r) if l.status.is_some() => (self.input.sides[s].hash, r.version.as_deref()),
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
                    .map(|(s, f, o)| (s as u32, f as u32, o))
                    .collect(),
            );
        }
        self.res.change.unsettled = self.unsettled;
        self.res.has_ops = !self.res.ops.is_empty() || was_unsettled;
        std::mem::replace(&mut self.res, EntityResult::new(EntityChange::default()))
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

//! Check your own map against recsync's promises (feature `proptest`).
//!
//! recsync's own tests run a sync machine over random histories: people
//! create, edit and delete records in each system, the sync runs, writes
//! fail, answers get lost, hosts die between their writes and their
//! commit, systems keep what they are sent in their own form. After every
//! run and once the runs settle, the machine checks that the engine kept
//! its promises. [`MapCheck`] points that machine at **your** map: your
//! value tables, your transforms, normalizers and resolvers, as they are.
//!
//! Your code is what `build` cannot see: a transform that loses part of a
//! value, a normalizer that calls two values equal that a person would not,
//! a resolver whose answer depends on the order of its candidates. Each
//! keeps the engine from keeping its promises, and the check finds it.
//!
//! ```
//! use recsync::testkit::check::MapCheck;
//! use recsync::{Field, FieldMap};
//!
//! let map = FieldMap::builder()
//!     .systems(["crm", "shop"])
//!     .key("email")
//!     .field(Field::new("email").case_insensitive())
//!     .field(Field::new("name"))
//!     .build()?;
//!
//! let checked = MapCheck::new(&map).cases(32).run()?;
//! assert!(checked.objects[0].stats.writes > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it draws
//!
//! Histories of up to [`steps`](MapCheck::steps) steps over every system of
//! the map: a person creates a record (with values for some fields), edits
//! one field, or deletes a record; or the sync runs. Each step waits a few
//! seconds first, so edits are close in time, some within the map's skew
//! tolerance. With [faults](MapCheck::faults) on (the default), a run's
//! writes may fail, be made with their answer lost, or not be made because
//! the host died, and a run may end before its commit; and some systems
//! keep a value in a form of their own (upper case, other punctuation)
//! where the field's normalization (one of recsync's own) calls the forms
//! the same.
//!
//! The host in the machine plans, commits the plan with every write
//! awaiting a read, writes, and commits again with what happened; a host
//! that dies keeps the first commit. (A host that commits only after its
//! writes, and dies before, leaves a baseline that knows nothing of them:
//! a person who then puts a value back to what the baseline holds loses the
//! edit to the write the next run takes for a change. `SyncRunner::run`
//! is such a host today, when its future is dropped between its writes
//! and its save; `SyncRunner::undo` is not.)
//!
//! The values a person types are drawn from what the map implies: a value
//! map's rows, each system's native form of names, emails, phones,
//! numbers, dates and datetimes that the field's transforms and
//! validation accept, those in other case and spacing (near duplicates
//! under most normalizations), and empty values; or from a
//! [generator of your own](MapCheck::values), per field.
//!
//! # What it checks
//!
//! First, without running anything:
//!
//! - **Round trip** ([`Promise::RoundTrip`]): a value written to a system
//!   the field is synced both ways in reads back as itself.
//! - **Your resolvers** ([`ResolverCheck`]): the same answer for the same
//!   candidates in any order, an answer among the candidates, no panic.
//!
//! Then, for every history:
//!
//! - every run plans and commits ([`Promise::Runs`]), and plans the same
//!   when the systems list their records in another order
//!   ([`Promise::Determinism`]);
//! - no run writes a field to a system the map does not write it to
//!   ([`Promise::Directions`]), empties a field the map guards with
//!   no-overwrite-on-empty ([`Promise::NoOverwriteOnEmpty`]), decides a
//!   conflict against the field's authority ([`Promise::Authority`]), or
//!   decides one the map holds for review ([`Promise::ReviewHolds`]);
//! - after the last step, fault-free runs settle: one plans nothing
//!   ([`Promise::Quiescence`]);
//! - then the last value a person typed into each field of each record
//!   still there is in that record and in every record linked to it that
//!   the field is written to, unless a run said why not: a conflict held,
//!   a hold, an issue, a guard's refusal, or a conflict decided with its
//!   system among the candidates ([`Promise::NoLostUpdate`]). A value is
//!   "last" when no other edit of the same field of the same entity came
//!   after it or within the skew tolerance before it; values that empty a
//!   field are left to the guard and convergence checks;
//! - and every two records linked to one entity hold the same value of
//!   every field the map syncs from one to the other, unless the last run
//!   held or reported it ([`Promise::Convergence`]).
//!
//! Values compare as a person would: empty values (absent, `null`, `""`)
//! alike, numbers by value (`42` and `42.0`), and others under the field's
//! normalization when it is one of
//! recsync's own, whose meaning is documented. A [normalizer of your
//! own](crate::mapping::Normalizer) is what is being checked, so its
//! fields compare exactly, unless you tell the check its equalities are
//! ones your users accept: [`trust_normalizer`](MapCheck::trust_normalizer).
//!
//! # A failure
//!
//! A [`CheckFailure`] names the promise and tells the history that broke
//! it, shrunk by proptest to the fewest steps that still break it: who
//! typed what and when, what each run planned and why (each plan's
//! `Display`, with the reason for every value), the faults of each run,
//! and the promise, with a hint where the cause is visible (a normalizer
//! that calls the two values equal, a transform that does not give back
//! what it was given). Values of fields the map marks sensitive print as
//! `[redacted]`.
//!
//! # What it does not do
//!
//! - Objects are checked one at a time: reference fields are not typed
//!   into, and a map whose records must reference a parent is checked
//!   without them.
//! - The records are in memory ([`MemorySystem`](super::MemorySystem)),
//!   with versions, timestamps and external ids. A connector of your own
//!   is checked with the [conformance suite](super::conformance).
//! - A value a person types, before the next read, over a write of the
//!   sync's that no read has confirmed yet, is not counted as lost when it
//!   is what the field held before that write (the engine takes the write
//!   for not made, and makes it again) or what the sync had decided for
//!   the field (taken for the sync's own write): a read cannot tell either
//!   from a person's edit (see
//!   [`Unconfirmed`](crate::baseline::Unconfirmed)). Nor is a value typed
//!   into a one-way field's target, which the map leaves alone; nor a value
//!   that is the form the map writes the entity's value in, in that system
//!   (a value map that maps several values to one: `"Platinum"` and
//!   `"Gold"` both to `"gold"`): it is no change to the engine.
//! - A record linked to an entity the baseline already holds (its key
//!   edited to the entity's, or a record put back) brings its values as its
//!   system's changes: where they differ from the entity's, they win, and
//!   the values they replace are not counted as lost; one that brings the
//!   entity's own value is no change, and a one-way target's own value
//!   stays. (recsync does not know when the entity's values were last
//!   changed, so it cannot weigh them against the record's by time.)
//! - Conflicts held for review are never resolved by the check, and
//!   deletes held for review never approved; what a guard refuses is
//!   approved at the next run, as an operator would.

mod case;
mod domain;
mod machine;
mod resolver;
mod round_trip;

use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::Value;

pub use resolver::ResolverCheck;

use crate::mapping::{FieldMap, MapSet, Normalization};
use crate::policy::ConflictPolicy;
use crate::SyncEngine;
use machine::{Broken, Object, World};

/// What a check found broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Promise {
    /// A value written to a system the field is synced both ways in reads
    /// back as itself.
    RoundTrip,
    /// A resolver gives the same answer for the same candidates in any
    /// order.
    ResolverOrder,
    /// A resolver's answer is one of the candidates, unless it merges.
    ResolverAnswer,
    /// The user's code does not panic.
    NoPanic,
    /// Every run plans and commits.
    Runs,
    /// A run plans the same for the same records in any order.
    Determinism,
    /// No field is written to a system the map does not write it to.
    Directions,
    /// No field the map guards with no-overwrite-on-empty is emptied.
    NoOverwriteOnEmpty,
    /// No conflict is decided against the field's authority.
    Authority,
    /// No conflict on a field the map holds for review is decided.
    ReviewHolds,
    /// With no one editing and no fault, the runs settle.
    Quiescence,
    /// The last value a person typed is kept and synced, or a run says why
    /// not.
    NoLostUpdate,
    /// Linked records hold the same value of every field synced between
    /// them.
    Convergence,
}

impl fmt::Display for Promise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Promise::RoundTrip => "round trip",
            Promise::ResolverOrder => {
                "a resolver's answer does not depend on the order of candidates"
            }
            Promise::ResolverAnswer => "a resolver answers with a candidate",
            Promise::NoPanic => "no panic",
            Promise::Runs => "every run plans and commits",
            Promise::Determinism => "determinism",
            Promise::Directions => "directions",
            Promise::NoOverwriteOnEmpty => "no overwrite on empty",
            Promise::Authority => "authority",
            Promise::ReviewHolds => "review holds",
            Promise::Quiescence => "quiescence",
            Promise::NoLostUpdate => "no lost update",
            Promise::Convergence => "convergence",
        })
    }
}

/// A promise a map, a resolver or the engine broke, with the story of how.
///
/// `Display` (and `Debug`, so that `unwrap` prints it) is the story: the
/// promise, what broke it, and the shrunk history that did, step by step.
/// It prints `[redacted]` for the values of sensitive fields.
#[derive(Clone)]
pub struct CheckFailure {
    object: Option<String>,
    promise: Promise,
    story: String,
}

impl CheckFailure {
    fn new(object: Option<String>, promise: Promise, story: String) -> Self {
        CheckFailure {
            object,
            promise,
            story,
        }
    }

    /// The promise broken.
    pub fn promise(&self) -> Promise {
        self.promise
    }

    /// The object whose map broke it (none for a resolver checked alone).
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The story, as `Display` prints it.
    pub fn story(&self) -> &str {
        &self.story
    }
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.story)
    }
}

impl fmt::Debug for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.story)
    }
}

impl std::error::Error for CheckFailure {}

/// What the runs of one object's checked histories did, summed: for a
/// check that passed, proof that it exercised something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sync runs.
    pub runs: usize,
    /// Writes planned.
    pub writes: usize,
    /// Conflicts held for review, counted in every plan that held them.
    pub conflicts: usize,
    /// Values and records held back, counted likewise.
    pub held: usize,
    /// Per-record issues, counted likewise.
    pub issues: usize,
}

/// One object checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectChecked {
    /// The object.
    pub object: String,
    /// The histories run.
    pub cases: u32,
    /// What their runs did.
    pub stats: Stats,
}

/// A check that passed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Checked {
    /// Every object, in the map's order.
    pub objects: Vec<ObjectChecked>,
}

/// Runs recsync's sync machine over your map: see the [module
/// documentation](self) for what it draws, what it checks and what a
/// failure tells.
///
/// ```
/// use recsync::mapping::{MapSet, Registry};
/// use recsync::testkit::check::MapCheck;
///
/// let set = MapSet::from_json(
///     r#"{
///         "systems": ["crm", "shop"],
///         "objects": [{
///             "name": "contacts",
///             "key": "email",
///             "fields": [
///                 { "name": "email", "normalize": "case_insensitive" },
///                 { "name": "tier", "value_map": { "rows": [
///                     { "values": { "crm": "Gold", "shop": "gold" } },
///                     { "values": { "crm": "Silver", "shop": "silver" } }
///                 ] } }
///             ]
///         }]
///     }"#,
///     &Registry::new(),
/// )?;
/// MapCheck::of_set(&set).cases(16).run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MapCheck {
    maps: Vec<FieldMap>,
    cases: Option<u32>,
    steps: usize,
    faults: bool,
    values: Vec<(String, String, BoxedStrategy<Value>)>,
    trusted: Vec<(String, String)>,
}

impl MapCheck {
    /// A check of one object's map.
    pub fn new(map: &FieldMap) -> Self {
        Self::of_maps(vec![map.clone()])
    }

    /// A check of every object of a set, one at a time.
    pub fn of_set(set: &MapSet) -> Self {
        Self::of_maps(set.iter().cloned().collect())
    }

    fn of_maps(maps: Vec<FieldMap>) -> Self {
        MapCheck {
            maps,
            cases: None,
            steps: 24,
            faults: true,
            values: Vec::new(),
            trusted: Vec::new(),
        }
    }

    /// How many histories to run per object (default: proptest's, which
    /// `PROPTEST_CASES` sets).
    #[must_use]
    pub fn cases(mut self, cases: u32) -> Self {
        self.cases = Some(cases);
        self
    }

    /// The most steps in a history (default 24).
    #[must_use]
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps.max(1);
        self
    }

    /// Whether runs meet faults: failed writes, lost answers, hosts dying
    /// before they write or commit, systems keeping values in their own
    /// form (default on).
    #[must_use]
    pub fn faults(mut self, on: bool) -> Self {
        self.faults = on;
        self
    }

    /// Canonical values of `field` of `object` a person may type, besides
    /// those the map implies: for a field whose values the check cannot
    /// guess (a transform of your own with a domain of its own, codes,
    /// ids). Each is written in each system's native form through the map;
    /// one a system's transform or validation refuses is not typed there.
    #[must_use]
    pub fn values(
        mut self,
        object: &str,
        field: &str,
        values: impl Strategy<Value = Value> + 'static,
    ) -> Self {
        self.values
            .push((object.to_owned(), field.to_owned(), values.boxed()));
        self
    }

    /// Compares values of `field` of `object` under its normalizer, which
    /// is your own: you accept that two values it calls equal are the same
    /// to your users, so that a change from one to the other is not synced.
    #[must_use]
    pub fn trust_normalizer(mut self, object: &str, field: &str) -> Self {
        self.trusted.push((object.to_owned(), field.to_owned()));
        self
    }

    /// Runs the check, object by object: `Ok` with what the runs did, or
    /// the first promise broken, with its story.
    pub fn run(&self) -> Result<Checked, CheckFailure> {
        let mut objects = Vec::new();
        for map in &self.maps {
            let object = self.object(map);
            round_trip::check(&object, self)?;
            resolvers(&object, self)?;
            let (cases, stats) = self.machine(&object)?;
            objects.push(ObjectChecked {
                object: map.object().to_owned(),
                cases,
                stats,
            });
        }
        Ok(Checked { objects })
    }

    /// Runs the check and panics with the story of the first promise
    /// broken: for a `#[test]`.
    #[track_caller]
    pub fn assert(&self) -> Checked {
        match self.run() {
            Ok(checked) => checked,
            Err(failure) => panic!("{failure}"),
        }
    }

    fn object(&self, map: &FieldMap) -> Object {
        let fields = map.fields();
        Object {
            engine: SyncEngine::new(map.clone()),
            pools: domain::canonical_pools(map),
            editable: (0..fields.len())
                .filter(|&i| fields[i].reference().is_none())
                .collect(),
            trusted: fields
                .iter()
                .map(|f| {
                    !matches!(f.normalization(), Normalization::Custom(_))
                        || self
                            .trusted
                            .iter()
                            .any(|(o, n)| o == map.object() && n == f.name())
                })
                .collect(),
            map: map.clone(),
        }
    }

    /// The user's generator for each field of `map`.
    fn generators(&self, map: &FieldMap) -> Vec<Option<BoxedStrategy<Value>>> {
        map.fields()
            .iter()
            .map(|f| {
                self.values
                    .iter()
                    .find(|(o, n, _)| o == map.object() && n == f.name())
                    .map(|(_, _, s)| s.clone())
            })
            .collect()
    }

    fn machine(&self, obj: &Object) -> Result<(u32, Stats), CheckFailure> {
        let map = &obj.map;
        let strategy = case::cases(
            map.systems().len(),
            map.fields().len(),
            self.steps,
            self.faults,
            self.generators(map),
        );
        let mut runner = runner(self.cases);
        let cases = runner.config().cases;
        let stats = RefCell::new(Stats::default());
        let result = runner.run(&strategy, |case| {
            let mut world = World::new(obj, &case, false);
            match catch_unwind(AssertUnwindSafe(|| world.run())) {
                Ok(Ok(())) => {
                    add(&mut stats.borrow_mut(), &world.stats);
                    Ok(())
                }
                Ok(Err(broken)) => Err(TestCaseError::fail(broken.promise.to_string())),
                Err(_) => Err(TestCaseError::fail("panic")),
            }
        });
        let minimal = match result {
            Ok(()) => return Ok((cases, stats.into_inner())),
            Err(TestError::Fail(_, minimal)) => minimal,
            Err(TestError::Abort(why)) => {
                return Err(CheckFailure::new(
                    Some(map.object().to_owned()),
                    Promise::Runs,
                    format!("the check of {} stopped: {why}", map.object()),
                ))
            }
        };
        let minimal = fewer_steps(obj, minimal);
        let mut world = World::new(obj, &minimal, true);
        let broken = match catch_unwind(AssertUnwindSafe(|| world.run())) {
            Ok(Err(broken)) => broken,
            Ok(Ok(())) => Broken {
                promise: Promise::Determinism,
                what: "the history broke a promise once and not when run again: some code of the map's is not a function of its input".to_owned(),
            },
            Err(panic) => Broken {
                promise: Promise::NoPanic,
                what: format!("a run panics: {}", panic_message(&*panic)),
            },
        };
        Err(CheckFailure::new(
            Some(map.object().to_owned()),
            broken.promise,
            tell(map.object(), &broken, minimal.steps.len(), &world.story()),
        ))
    }
}

/// The promise `case` breaks, if any (a panic counts as breaking one).
fn breaks(obj: &Object, case: &case::Case) -> Option<Promise> {
    let mut world = World::new(obj, case, false);
    match catch_unwind(AssertUnwindSafe(|| world.run())) {
        Ok(Ok(())) => None,
        Ok(Err(broken)) => Some(broken.promise),
        Err(_) => Some(Promise::NoPanic),
    }
}

/// Shrinks a failing history further than proptest does: proptest
/// shrinks each value, but a step refers to records by their place, so
/// removing one step can move what the next refers to and stop it short.
/// Here each step is tried without, each run without its faults, and then
/// each two steps together without (a record made and deleted again moves
/// the place of every record after it: neither step can go alone), until
/// none of these can go and the same promise still breaks.
fn fewer_steps(obj: &Object, mut case: case::Case) -> case::Case {
    let Some(promise) = breaks(obj, &case) else {
        return case;
    };
    let mut tries = 0;
    'again: while tries < 2_000 {
        for i in 0..case.steps.len() {
            let mut fewer = case.clone();
            fewer.steps.remove(i);
            tries += 1;
            if !fewer.steps.is_empty() && breaks(obj, &fewer) == Some(promise) {
                case = fewer;
                continue 'again;
            }
        }
        for i in 0..case.steps.len() {
            let case::Step::Sync { faults, dies } = &case.steps[i] else {
                continue;
            };
            if faults.is_empty() && !dies {
                continue;
            }
            let mut calmer = case.clone();
            calmer.steps[i] = case::Step::Sync {
                faults: Vec::new(),
                dies: false,
            };
            tries += 1;
            if breaks(obj, &calmer) == Some(promise) {
                case = calmer;
                continue 'again;
            }
        }
        if case.rewrites.iter().any(|r| *r) {
            let mut plain = case.clone();
            plain.rewrites.iter_mut().for_each(|r| *r = false);
            tries += 1;
            if breaks(obj, &plain) == Some(promise) {
                case = plain;
                continue 'again;
            }
        }
        for j in 1..case.steps.len() {
            for i in 0..j {
                let mut fewer = case.clone();
                fewer.steps.remove(j);
                fewer.steps.remove(i);
                tries += 1;
                if !fewer.steps.is_empty() && breaks(obj, &fewer) == Some(promise) {
                    case = fewer;
                    continue 'again;
                }
            }
        }
        break;
    }
    case
}

/// The check of every custom resolver of the map.
fn resolvers(obj: &Object, check: &MapCheck) -> Result<(), CheckFailure> {
    let generators = check.generators(&obj.map);
    for (i, spec) in obj.map.fields().iter().enumerate() {
        let ConflictPolicy::Custom(resolver) = spec.policy() else {
            continue;
        };
        let mut values = obj.pools[i].clone();
        values.push(Value::Null);
        let pool = prop::sample::select(values).boxed();
        let values = match &generators[i] {
            Some(user) => prop_oneof![pool, user.clone()].boxed(),
            None => pool,
        };
        let mut rc = ResolverCheck::shared(resolver.clone())
            .systems(obj.map.systems().iter().cloned())
            .values(values)
            .field(spec.name(), spec.is_sensitive());
        if let Some(cases) = check.cases {
            rc = rc.cases(cases);
        }
        rc.run().map_err(|f| {
            CheckFailure::new(
                Some(obj.map.object().to_owned()),
                f.promise,
                format!(
                    "recsync's promise \"{}\" broke for {}.{}:\n\n{}",
                    f.promise,
                    obj.map.object(),
                    spec.name(),
                    f.story
                ),
            )
        })?;
    }
    Ok(())
}

fn add(total: &mut Stats, one: &Stats) {
    total.runs += one.runs;
    total.writes += one.writes;
    total.conflicts += one.conflicts;
    total.held += one.held;
    total.issues += one.issues;
}

/// The story of a broken promise.
fn tell(object: &str, broken: &Broken, steps: usize, story: &[String]) -> String {
    let mut out = format!(
        "recsync's promise \"{}\" broke for {object}.\n\n{}\n\nWhat happened (shrunk to {steps} step{}, then runs until they settle):\n",
        broken.promise,
        broken.what,
        if steps == 1 { "" } else { "s" }
    );
    for line in story {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// A proptest runner for `cases` cases (proptest's default, which
/// `PROPTEST_CASES` sets, without), keeping no failure files: a check's
/// story is its record.
fn runner(cases: Option<u32>) -> TestRunner {
    let defaults = Config::default();
    TestRunner::new(Config {
        cases: cases.unwrap_or(defaults.cases),
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..defaults
    })
}

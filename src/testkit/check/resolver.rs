//! [`ResolverCheck`]: a [`ConflictResolver`] of your own, tried on its own.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError};
use serde_json::Value;

use super::{panic_message, runner, CheckFailure, Promise};
use crate::ids::EntityId;
use crate::model::SystemId;
use crate::policy::{Candidate, ConflictInput, ConflictResolver, Resolution};

/// Checks a [`ConflictResolver`] on its own, over conflicts drawn at
/// random: two or more systems changed a field to different values.
///
/// - **The same answer in any order**: the same candidates, handed over in
///   another order, get the same answer. The engine hands them over in the
///   map's priority order, which changes when a system is added or the
///   map is reordered; a resolver that breaks ties by position breaks them
///   differently then. Break ties by a candidate's system or time instead.
/// - **An answer among the candidates**: [`Resolution::Take`] names one of
///   the systems that changed the field, and [`Resolution::Value`] is one
///   of their values, unless the resolver [merges](Self::merges).
/// - **No panic.**
///
/// [`MapCheck`](super::MapCheck) runs it for every custom resolver in a
/// map, with the field's values. A failure comes back as a
/// [`CheckFailure`] naming the candidates, shrunk.
///
/// ```
/// use recsync::policy::{ConflictInput, ConflictResolver, Resolution};
/// use recsync::testkit::check::{Promise, ResolverCheck};
///
/// /// Takes whichever candidate comes first: depends on their order.
/// #[derive(Debug)]
/// struct First;
///
/// impl ConflictResolver for First {
///     fn name(&self) -> &str {
///         "first"
///     }
///     fn resolve(&self, input: &ConflictInput<'_>) -> Resolution {
///         Resolution::Take(input.candidates[0].system.clone())
///     }
/// }
///
/// let failure = ResolverCheck::new(First).cases(64).run().unwrap_err();
/// assert_eq!(failure.promise(), Promise::ResolverOrder);
/// println!("{failure}");
/// ```
#[derive(Debug)]
pub struct ResolverCheck {
    resolver: Arc<dyn ConflictResolver>,
    systems: Vec<SystemId>,
    values: Option<BoxedStrategy<Value>>,
    merges: bool,
    sensitive: bool,
    cases: Option<u32>,
    field: String,
}

impl ResolverCheck {
    /// A check of `resolver`, with three systems (`a`, `b`, `c`) and values
    /// from [`strategies::values`](crate::testkit::strategies::values).
    pub fn new(resolver: impl ConflictResolver + 'static) -> Self {
        Self::shared(Arc::new(resolver))
    }

    /// A check of a resolver already shared (as a map holds it).
    pub fn shared(resolver: Arc<dyn ConflictResolver>) -> Self {
        ResolverCheck {
            resolver,
            systems: ["a", "b", "c"].into_iter().map(SystemId::from).collect(),
            values: None,
            merges: false,
            sensitive: false,
            cases: None,
            field: "field".to_owned(),
        }
    }

    /// The systems whose values conflict, in priority order (at least two).
    #[must_use]
    pub fn systems<S: Into<SystemId>>(mut self, systems: impl IntoIterator<Item = S>) -> Self {
        self.systems = systems.into_iter().map(Into::into).collect();
        self
    }

    /// The canonical values candidates hold.
    #[must_use]
    pub fn values(mut self, values: impl Strategy<Value = Value> + 'static) -> Self {
        self.values = Some(values.boxed());
        self
    }

    /// The field the conflicts are on, as the resolver is told; marked
    /// sensitive, failures print `[redacted]` for its values.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, sensitive: bool) -> Self {
        self.field = name.into();
        self.sensitive = sensitive;
        self
    }

    /// The resolver merges: a [`Resolution::Value`] need not be one of the
    /// candidates' values.
    #[must_use]
    pub fn merges(mut self, on: bool) -> Self {
        self.merges = on;
        self
    }

    /// How many conflicts to try (default: proptest's, which
    /// `PROPTEST_CASES` sets).
    #[must_use]
    pub fn cases(mut self, cases: u32) -> Self {
        self.cases = Some(cases);
        self
    }

    /// Runs the check: `Ok` when every conflict tried kept the promises,
    /// else the first that broke one, shrunk.
    pub fn run(&self) -> Result<(), CheckFailure> {
        let n = self.systems.len();
        if n < 2 {
            return Err(CheckFailure::new(
                None,
                Promise::Runs,
                format!(
                    "resolver `{}`: a conflict needs two systems or more; the check was given {n}",
                    self.resolver.name()
                ),
            ));
        }
        let values = self
            .values
            .clone()
            .unwrap_or_else(|| crate::testkit::strategies::values().boxed());
        let strategy = (
            prop::collection::vec((values.clone(), prop::option::of(0i64..10)), 2..=n),
            prop::option::of(values),
            any::<u64>(),
        );
        let mut runner = runner(self.cases);
        let result = runner.run(&strategy, |(candidates, baseline, seed)| {
            match self.try_one(&candidates, baseline.as_ref(), seed) {
                Ok(()) => Ok(()),
                Err((promise, _)) => Err(TestCaseError::fail(promise.to_string())),
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(TestError::Fail(_, (candidates, baseline, seed))) => {
                let (promise, story) = match self.try_one(&candidates, baseline.as_ref(), seed) {
                    Err(found) => found,
                    Ok(()) => (
                        Promise::ResolverOrder,
                        "the failure did not repeat: the resolver is not a function of its input"
                            .to_owned(),
                    ),
                };
                Err(CheckFailure::new(
                    None,
                    promise,
                    format!(
                        "resolver `{}` on {}: {story}",
                        self.resolver.name(),
                        self.field
                    ),
                ))
            }
            Err(TestError::Abort(why)) => Err(CheckFailure::new(
                None,
                Promise::Runs,
                format!("the check stopped: {why}"),
            )),
        }
    }

    /// One conflict: the candidates in priority order, then in others.
    fn try_one(
        &self,
        drawn: &[(Value, Option<i64>)],
        baseline: Option<&Value>,
        seed: u64,
    ) -> Result<(), (Promise, String)> {
        let mut values: Vec<Value> = Vec::new();
        let mut times = Vec::new();
        for (v, t) in drawn {
            if !values.contains(v) {
                values.push(v.clone());
                times.push(*t);
            }
        }
        if values.len() < 2 {
            return Ok(());
        }
        let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let at = |t: Option<i64>| t.map(|s| start + TimeDelta::seconds(s));
        let entity = EntityId::new("entity-1");
        let resolve = |order: &[usize]| -> Result<Resolution, String> {
            let candidates: Vec<Candidate<'_>> = order
                .iter()
                .map(|&i| Candidate {
                    system: &self.systems[i],
                    value: &values[i],
                    changed_at: at(times[i]),
                    sensitive: self.sensitive,
                })
                .collect();
            let input = ConflictInput {
                entity: &entity,
                field: &self.field,
                baseline,
                candidates: &candidates,
                sensitive: self.sensitive,
            };
            catch_unwind(AssertUnwindSafe(|| self.resolver.resolve(&input)))
                .map_err(|p| panic_message(&*p))
        };
        let priority: Vec<usize> = (0..values.len()).collect();
        let shown = |order: &[usize]| -> String {
            order
                .iter()
                .map(|&i| {
                    let v = if self.sensitive {
                        "[redacted]".to_owned()
                    } else {
                        values[i].to_string()
                    };
                    match at(times[i]) {
                        Some(t) => {
                            format!("{} {v} (changed {})", self.systems[i], t.format("%H:%M:%S"))
                        }
                        None => format!("{} {v} (no time)", self.systems[i]),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let panicked = |order: &[usize], why: String| {
            (
                Promise::NoPanic,
                format!("it panics ({why}) on [{}]", shown(order)),
            )
        };
        let first = resolve(&priority).map_err(|why| panicked(&priority, why))?;
        match &first {
            Resolution::Take(s) if !priority.iter().any(|&i| self.systems[i] == *s) => {
                return Err((
                    Promise::ResolverAnswer,
                    format!("it takes {s}, which is not among [{}]", shown(&priority)),
                ));
            }
            Resolution::Value(v) if !self.merges && !values.contains(v) => {
                let v = if self.sensitive {
                    "[redacted]".to_owned()
                } else {
                    v.to_string()
                };
                return Err((
                    Promise::ResolverAnswer,
                    format!("it answers {v}, which is none of [{}] (a resolver that merges says so: `merges(true)`)", shown(&priority)),
                ));
            }
            _ => {}
        }
        let mut orders = vec![priority.iter().rev().copied().collect::<Vec<_>>()];
        let mut rotated = priority.clone();
        rotated.rotate_left(1);
        orders.push(rotated);
        let mut shuffled = priority.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, ((s >> 33) as usize) % (i + 1));
        }
        orders.push(shuffled);
        for order in orders {
            let other = resolve(&order).map_err(|why| panicked(&order, why))?;
            let same = match (&first, &other) {
                (Resolution::Hold(_), Resolution::Hold(_)) => true,
                (a, b) => a == b,
            };
            if !same {
                return Err((
                    Promise::ResolverOrder,
                    format!(
                        "the same candidates in another order get another answer:\n  [{}]\n    -> {}\n  [{}]\n    -> {}",
                        shown(&priority),
                        self.answer(&first),
                        shown(&order),
                        self.answer(&other)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn answer(&self, r: &Resolution) -> String {
        match r {
            Resolution::Take(s) => format!("takes {s}"),
            Resolution::Value(_) if self.sensitive => "the value [redacted]".to_owned(),
            Resolution::Value(v) => format!("the value {v}"),
            Resolution::Hold(note) => format!("holds for review ({note})"),
        }
    }
}

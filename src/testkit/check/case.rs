//! What the checker draws: a history of what people do in each system and
//! when the sync runs, with the faults of each run.

use std::fmt;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

/// Which value a person types: one of the field's values, or nothing (the
/// field cleared).
#[derive(Debug, Clone, Copy)]
pub(super) enum Pick {
    Value(Index),
    Empty,
}

/// What goes wrong with one write of a run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fault {
    /// The system refuses it.
    Fail,
    /// It is made, but the host never hears back.
    Lost,
    /// The host dies before making it: it and every write after it are
    /// not made, and the run is not committed.
    Crash,
}

/// One step of a history.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// A person creates a record, with values for some fields.
    Create {
        sys: usize,
        fields: Vec<Option<Pick>>,
        after: u8,
    },
    /// A person changes one field of a record.
    Edit {
        sys: usize,
        record: Index,
        field: Index,
        pick: Pick,
        after: u8,
    },
    /// A person deletes a record.
    Delete {
        sys: usize,
        record: Index,
        after: u8,
    },
    /// The sync runs: plan, write (with faults), commit unless the host
    /// dies (`dies`) between its writes and its commit.
    Sync {
        faults: Vec<(Index, Fault)>,
        dies: bool,
    },
}

/// One drawn history, with the values of the user's own generators and
/// which systems store values in their own form.
#[derive(Clone)]
pub(super) struct Case {
    pub(super) steps: Vec<Step>,
    /// Per field: values drawn from the user's generator for it.
    pub(super) extra: Vec<Vec<Value>>,
    /// Per system: it stores what it is sent in its own form (upper case,
    /// other punctuation), where the field's normalization allows.
    pub(super) rewrites: Vec<bool>,
}

/// Counts only: a case holds values of the user's fields, sensitive ones
/// among them.
impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("steps", &self.steps.len())
            .field(
                "extra",
                &self.extra.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .field("rewrites", &self.rewrites)
            .finish()
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<Index>().prop_map(Pick::Value),
        1 => Just(Pick::Empty),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![Just(Fault::Fail), Just(Fault::Lost), Just(Fault::Crash)]
}

fn step(systems: usize, fields: usize, faults: bool) -> impl Strategy<Value = Step> {
    let run_faults = if faults {
        prop::collection::vec((any::<Index>(), fault()), 0..3).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    // Shrinks towards a host that lives: `false` is the simpler value.
    let dies = if faults {
        prop::bool::weighted(0.15).boxed()
    } else {
        Just(false).boxed()
    };
    prop_oneof![
        3 => (
            0..systems,
            prop::collection::vec(prop::option::weighted(0.75, pick()), fields),
            0u8..5,
        )
            .prop_map(|(sys, fields, after)| Step::Create { sys, fields, after }),
        6 => (0..systems, any::<Index>(), any::<Index>(), pick(), 0u8..5).prop_map(
            |(sys, record, field, pick, after)| Step::Edit {
                sys,
                record,
                field,
                pick,
                after
            }
        ),
        1 => (0..systems, any::<Index>(), 0u8..5)
            .prop_map(|(sys, record, after)| Step::Delete { sys, record, after }),
        4 => (run_faults, dies).prop_map(|(faults, dies)| Step::Sync { faults, dies }),
    ]
}

/// Histories of up to `steps` steps over `systems` systems and `fields`
/// fields; `user` holds, per field, the user's generator if one was given.
pub(super) fn cases(
    systems: usize,
    fields: usize,
    steps: usize,
    faults: bool,
    user: Vec<Option<BoxedStrategy<Value>>>,
) -> BoxedStrategy<Case> {
    let extra: Vec<BoxedStrategy<Vec<Value>>> = user
        .into_iter()
        .map(|g| match g {
            Some(g) => prop::collection::vec(g, 1..4).boxed(),
            None => Just(Vec::new()).boxed(),
        })
        .collect();
    let rewrites = if faults {
        prop::collection::vec(prop::bool::weighted(0.3), systems).boxed()
    } else {
        Just(vec![false; systems]).boxed()
    };
    (
        prop::collection::vec(step(systems, fields, faults), 1..=steps.max(1)),
        extra,
        rewrites,
    )
        .prop_map(|(steps, extra, rewrites)| Case {
            steps,
            extra,
            rewrites,
        })
        .boxed()
}

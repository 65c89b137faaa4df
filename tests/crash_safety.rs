//! Crash safety (a promise; see tests/README.md): executing any prefix of
//! a plan, then planning and executing again, ends in the same state as an uninterrupted
//! run, with no duplicate records in any system. So does a run whose ops
//! partly fail, or whose outcomes are partly lost, committed as reported.
//!
//! The systems are simulated (`common::sim`, a `testkit::MemorySystem`
//! that `testkit::apply` executes the plans on): a create gets the next native
//! id and keeps the op's correlation key, reported back as
//! `Record::correlation`, as a connector with an external-id field does.
//! Some records are created without a key (no email): after a crash only
//! the correlation key can find the record a create made. Some ops are
//! reported applied but not made (a connector that lies): the next read
//! finds them not made, and they are made again. Switching off
//! correlation-key linking, or committing a failed update as applied, fails
//! this test.
#![cfg(feature = "testkit")]

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{execute, execute_fates, sim, snapshots};
use proptest::prelude::*;
use recsync::testkit::{Fate, MemorySystem};
use recsync::{
    is_empty_value, Baseline, DeleteEditPolicy, DeletePolicy, Field, FieldMap, Guards, Outcomes,
    Record, SyncEngine, SyncPlan,
};
use serde_json::{json, Value};

const FIELDS: [&str; 2] = ["f1", "f2"];
const NAMES: [&str; 3] = ["a", "b", "c"];

fn ts(off: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + off, 0).expect("valid timestamp")
}

#[derive(Debug, Clone)]
enum Edit {
    /// A user changes a field of an initial record.
    Update {
        sys: usize,
        entity: usize,
        field: usize,
        value: Value,
        at: i64,
    },
    /// A user creates a record with email `n{key}@x`, or with no email
    /// (`None`: it can only be linked by correlation key); its tag is
    /// unique.
    Create {
        sys: usize,
        key: Option<usize>,
        value: Value,
    },
    /// A user deletes an initial record.
    Delete { sys: usize, entity: usize },
}

#[derive(Debug, Clone)]
struct Case {
    n: usize,
    entities: usize,
    edits: Vec<Edit>,
    delete_policy: DeletePolicy,
    delete_vs_edit: DeleteEditPolicy,
    /// Where the first run stops: ops executed before the crash.
    prefix: usize,
    /// When set, the first run does not crash: every op runs, its fate
    /// taken from this list by position (cycling), and the outcomes are
    /// committed.
    fates: Option<Vec<Fate>>,
}

fn val() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("x")),
        Just(json!("y")),
        Just(json!("z")),
        Just(json!(""))
    ]
}

fn edit(n: usize, e: usize) -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..n, 0..e, 0..FIELDS.len(), val(), 1i64..6).prop_map(
            |(sys, entity, field, value, at)| Edit::Update { sys, entity, field, value, at }
        ),
        3 => (0..n, prop::option::weighted(0.6, 0usize..3), val())
            .prop_map(|(sys, key, value)| Edit::Create { sys, key, value }),
        2 => (0..n, 0..e).prop_map(|(sys, entity)| Edit::Delete { sys, entity }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..=3, 1usize..=4).prop_flat_map(|(n, e)| {
        (
            prop::collection::vec(edit(n, e), 0..8),
            prop_oneof![
                Just(DeletePolicy::Propagate),
                Just(DeletePolicy::Unlink),
                Just(DeletePolicy::Hold)
            ],
            prop_oneof![
                Just(DeleteEditPolicy::EditWins),
                Just(DeleteEditPolicy::DeleteWins),
                Just(DeleteEditPolicy::Hold)
            ],
            0usize..64,
            prop::option::weighted(
                0.5,
                prop::collection::vec(
                    prop_oneof![
                        3 => Just(Fate::Applied),
                        2 => Just(Fate::Failed),
                        1 => Just(Fate::Lost),
                        1 => Just(Fate::Lied),
                    ],
                    1..6,
                ),
            ),
        )
            .prop_map(
                move |(edits, delete_policy, delete_vs_edit, prefix, fates)| Case {
                    n,
                    entities: e,
                    edits,
                    delete_policy,
                    delete_vs_edit,
                    prefix,
                    fates,
                },
            )
    })
}

fn engine(case: &Case) -> SyncEngine {
    // The test systems hold only the fields written to them (as an API that
    // leaves empty fields out): records without an email have none, and
    // only they have a tag.
    let sparse = |f: Field| {
        NAMES[..case.n]
            .iter()
            .fold(f, |f, s| f.may_be_absent_in(*s))
    };
    let mut b = FieldMap::builder()
        .systems(NAMES[..case.n].iter().copied())
        .key("email")
        .field(sparse(Field::new("email").case_insensitive()))
        .deletes(case.delete_policy)
        .delete_vs_edit(case.delete_vs_edit)
        // Budgets are proven in tests/lifecycle.rs; here every delete goes.
        .guards(Guards::off())
        .field(sparse(Field::new("tag")));
    for f in FIELDS {
        b = b.field(sparse(Field::new(f)));
    }
    SyncEngine::new(b.build().expect("valid map"))
}

/// The systems after the first sync (every initial record linked), with
/// the case's edits made.
fn start(case: &Case, engine: &SyncEngine) -> (Baseline, Vec<MemorySystem>) {
    let mut systems: Vec<MemorySystem> = NAMES[..case.n].iter().map(|n| sim(n, n)).collect();
    for sys in &mut systems {
        for e in 0..case.entities {
            let mut r =
                Record::new(format!("{}{}", sys.system(), e + 1)).field("email", format!("p{e}@x"));
            for f in FIELDS {
                r = r.field_at(f, "init", ts(0));
            }
            sys.put(r);
        }
    }
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots(&systems)).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .expect("commit");
    for (i, ed) in case.edits.iter().enumerate() {
        match ed {
            Edit::Update {
                sys,
                entity,
                field,
                value,
                at,
            } => {
                let id = format!("{}{}", NAMES[*sys], entity + 1);
                if let Some(r) = systems[*sys].record_mut(&id) {
                    r.fields.insert(FIELDS[*field], value.clone());
                    r.field_updated_at.insert(FIELDS[*field].into(), ts(*at));
                }
            }
            Edit::Create { sys, key, value } => {
                let s = &mut systems[*sys];
                let email = key.map(|k| format!("n{k}@x"));
                if email
                    .as_ref()
                    .is_none_or(|email| !s.records().any(|r| r.get("email") == Some(&json!(email))))
                {
                    let id = s.new_id();
                    let mut r = Record::new(id).field("tag", format!("t{i}")).field_at(
                        "f1",
                        value.clone(),
                        ts(3),
                    );
                    if let Some(email) = email {
                        r = r.field("email", email);
                    }
                    s.put(r);
                }
            }
            Edit::Delete { sys, entity } => {
                let id = format!("{}{}", NAMES[*sys], entity + 1);
                systems[*sys].remove(&id);
            }
        }
    }
    (baseline, systems)
}

/// Plans, executes and commits until a plan has nothing to write (that one
/// is committed too: it may link records); returns the plans made.
fn settle(
    engine: &SyncEngine,
    baseline: &mut Baseline,
    systems: &mut [MemorySystem],
) -> Vec<SyncPlan> {
    let mut plans = Vec::new();
    for _ in 0..6 {
        let plan = engine.plan(baseline, &snapshots(systems)).expect("plan");
        let outcomes = execute(systems, &plan);
        engine.commit(baseline, &plan, &outcomes).expect("commit");
        let quiet = plan.ops.is_empty();
        plans.push(plan);
        if quiet {
            return plans;
        }
    }
    panic!("no quiet plan after 6 rounds: {:#?}", plans.last());
}

/// What the systems hold, ignoring native ids (a run that crashed may hand
/// out ids in another order) and correlation keys. Empty values equal
/// absent ones (a create leaves empty fields out).
fn state(systems: &[MemorySystem]) -> Vec<Vec<BTreeMap<String, String>>> {
    systems
        .iter()
        .map(|s| {
            let mut rs: Vec<BTreeMap<String, String>> = s
                .records()
                .map(|r| {
                    r.fields
                        .iter()
                        .filter(|(_, v)| !is_empty_value(v))
                        .map(|(k, v)| (k.to_owned(), v.to_string()))
                        .collect()
                })
                .collect();
            rs.sort();
            rs
        })
        .collect()
}

/// Records that share an email (or, without one, a tag) within one system.
fn duplicates(systems: &[MemorySystem]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in systems {
        let mut seen = BTreeMap::new();
        for r in s.records() {
            let text = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
            let id = match text("email") {
                "" => format!("tag {}", text("tag")),
                email => email.to_lowercase(),
            };
            if let Some(first) = seen.insert(id.clone(), r.id.clone()) {
                out.push((
                    s.system().to_string(),
                    format!("{first} and {} share {id}", r.id),
                ));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(256)))]

    #[test]
    fn any_prefix_then_replanning_converges_to_the_uninterrupted_state(case in case()) {
        let engine = engine(&case);
        let (baseline, systems) = start(&case, &engine);
        let plan = engine.plan(&baseline, &snapshots(&systems)).expect("plan");
        let k = case.prefix % (plan.ops.len() + 1);

        // Uninterrupted: execute everything, commit, settle.
        let (mut b1, mut s1) = (baseline.clone(), systems.clone());
        let outcomes = execute(&mut s1, &plan);
        engine.commit(&mut b1, &plan, &outcomes).expect("commit");
        settle(&engine, &mut b1, &mut s1);

        // Interrupted: crashed after k ops (nothing committed), or run with
        // faults and committed as reported; then plan again and settle.
        let (mut b2, mut s2) = (baseline.clone(), systems.clone());
        let fate = |i: usize| match &case.fates {
            Some(fates) => fates[i % fates.len()],
            None if i < k => Fate::Lost,
            None => Fate::Skipped,
        };
        let outcomes = execute_fates(&mut s2, &plan, fate);
        let how = match &case.fates {
            Some(_) => {
                engine.commit(&mut b2, &plan, &outcomes).expect("commit");
                let fates: Vec<Fate> = (0..plan.ops.len()).map(fate).collect();
                format!("ops run as {fates:?}")
            }
            None => format!("a crash at op {k}"),
        };
        let plans = settle(&engine, &mut b2, &mut s2);

        prop_assert!(duplicates(&s2).is_empty(), "duplicates after {}: {:?}\nplan:\n{}\nthen:\n{}",
            how, duplicates(&s2), plan, plans[0]);
        prop_assert!(duplicates(&s1).is_empty(), "duplicates: {:?}\n{}", duplicates(&s1), plan);
        prop_assert_eq!(state(&s2), state(&s1), "after {} of\n{}\nthen:\n{}", how, plan, plans[0]);
        prop_assert_eq!(b2.len(), b1.len());
        let ids = |b: &Baseline| {
            let mut v: Vec<_> = b.entities().map(|e| e.id().clone()).collect();
            v.sort();
            v
        };
        prop_assert_eq!(ids(&b2), ids(&b1), "entities differ after {}", how);
        // A create executed before the crash (or whose outcome was lost) is
        // linked, never made again.
        for (i, op) in plan.ops.iter().enumerate() {
            if op.kind == recsync::OpKind::Create && fate(i) == Fate::Lost {
                for p in &plans {
                    prop_assert!(
                        !p.ops.iter().any(|o| o.kind == recsync::OpKind::Create
                            && o.system == op.system && o.entity == op.entity),
                        "create {} made twice:\n{}", i, p
                    );
                }
            }
        }
    }
}

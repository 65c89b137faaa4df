//! Property tests over a tiny in-memory simulator of 2 or 3 systems.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use recsync::{
    is_empty_value, Baseline, ConflictPolicy, EntityId, Field, FieldMap, OpOutcome, Outcomes,
    Record, ReviewChoice, Snapshot, SyncEngine, SyncPlan,
};
use serde_json::{json, Value};

const FIELDS: [&str; 3] = ["f1", "f2", "f3"];
const BASE: i64 = 1_700_000_000;

fn ts(off: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(BASE + off, 0).expect("valid timestamp")
}

/// Equal, treating every empty value (absent, null, "") as the same.
fn eqv(a: Option<&Value>, b: Option<&Value>) -> bool {
    let ea = a.is_none_or(is_empty_value);
    let eb = b.is_none_or(is_empty_value);
    if ea || eb {
        return ea && eb;
    }
    a == b
}

fn empty(v: &Value) -> bool {
    is_empty_value(v)
}

#[derive(Clone, Debug)]
struct Pol {
    /// 0: last-write-wins, 1: authority of the first system, 2: manual review.
    kind: u8,
    guard: bool,
}

#[derive(Clone, Debug)]
struct Edit {
    entity: usize,
    sys: usize,
    field: usize,
    value: Value,
    at: i64,
}

#[derive(Clone, Debug)]
struct Case {
    n: usize,
    pols: Vec<Pol>,
    /// init[entity][field]
    init: Vec<Vec<Value>>,
    edits: Vec<Edit>,
    seed: u64,
}

fn val() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        Just(json!("x")),
        Just(json!("y")),
        Just(json!("z")),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..=3, 1usize..=3).prop_flat_map(|(n, e)| {
        (
            prop::collection::vec((0u8..3, any::<bool>()), FIELDS.len()),
            prop::collection::vec(prop::collection::vec(val(), FIELDS.len()), e),
            prop::collection::vec((0..e, 0..n, 0..FIELDS.len(), val(), 1i64..6), 0..8),
            any::<u64>(),
        )
            .prop_map(move |(pols, init, edits, seed)| Case {
                n,
                pols: pols
                    .into_iter()
                    .map(|(kind, guard)| Pol { kind, guard })
                    .collect(),
                init,
                edits: edits
                    .into_iter()
                    .map(|(entity, sys, field, value, at)| Edit {
                        entity,
                        sys,
                        field,
                        value,
                        at,
                    })
                    .collect(),
                seed,
            })
    })
}

fn build_map(names: &[String], pols: &[Pol]) -> FieldMap {
    let mut b = FieldMap::builder()
        .systems(names.iter().cloned())
        .key("email")
        .field(Field::new("email"));
    for (f, p) in FIELDS.iter().zip(pols) {
        let policy = match p.kind {
            0 => ConflictPolicy::LastWriteWins,
            1 => ConflictPolicy::authority(names[0].clone()),
            _ => ConflictPolicy::ManualReview,
        };
        b = b.field(Field::new(*f).policy(policy).no_overwrite_on_empty(p.guard));
    }
    b.build().expect("valid map")
}

type Data = Vec<Vec<Record>>; // data[system][entity]

fn initial(case: &Case, id_prefix: &[String]) -> Data {
    id_prefix
        .iter()
        .map(|p| {
            case.init
                .iter()
                .enumerate()
                .map(|(e, vals)| {
                    let mut r = Record::new(format!("{p}{}", e + 1))
                        .field("email", format!("p{e}@example.com"));
                    for (f, v) in FIELDS.iter().zip(vals) {
                        r = r.field_at(*f, v.clone(), ts(0));
                    }
                    r
                })
                .collect()
        })
        .collect()
}

fn snapshots(names: &[String], data: &Data) -> Vec<Snapshot> {
    names
        .iter()
        .zip(data)
        .map(|(n, recs)| Snapshot::complete(n.as_str(), recs.clone()))
        .collect()
}

fn apply(names: &[String], data: &mut Data, plan: &SyncPlan) {
    for op in &plan.ops {
        let s = names
            .iter()
            .position(|n| op.system == n.as_str())
            .expect("known system");
        let r = data[s]
            .iter_mut()
            .find(|r| Some(&r.id) == op.record_id.as_ref())
            .expect("known record");
        for w in &op.fields {
            r.fields.insert(w.native.clone(), w.value.clone());
        }
    }
}

fn apply_edits(data: &mut Data, edits: &[Edit]) {
    for e in edits {
        let r = &mut data[e.sys][e.entity];
        let f = FIELDS[e.field];
        r.fields.insert(f.into(), e.value.clone());
        r.field_updated_at.insert(f.into(), ts(e.at));
    }
}

struct Run {
    names: Vec<String>,
    engine: SyncEngine,
    /// First plan, made from the empty baseline.
    plan0: SyncPlan,
    /// Baseline the second plan was made from.
    mid: Baseline,
    /// Baseline after committing the second plan.
    baseline: Baseline,
    /// Data after the edits, before the second plan was applied.
    before: Data,
    /// Data after the second plan was applied.
    after: Data,
    plan: SyncPlan,
    eids: Vec<EntityId>,
}

fn run_with(case: &Case, names: Vec<String>, id_prefix: &[String]) -> Run {
    let engine = SyncEngine::new(build_map(&names, &case.pols));
    let mut baseline = Baseline::new();
    let mut data = initial(case, id_prefix);
    let plan0 = engine
        .plan(&baseline, &snapshots(&names, &data))
        .expect("plan");
    apply(&names, &mut data, &plan0);
    engine
        .commit(&mut baseline, &plan0, &Outcomes::all_applied(&plan0))
        .expect("commit");
    assert_eq!(baseline.len(), case.init.len(), "every entity linked");
    let eids = (0..case.init.len())
        .map(|e| {
            baseline
                .find_linked(names[0].as_str(), &format!("{}{}", id_prefix[0], e + 1))
                .expect("linked")
                .id()
                .clone()
        })
        .collect();
    apply_edits(&mut data, &case.edits);
    let before = data.clone();
    let mid = baseline.clone();
    let plan = engine
        .plan(&baseline, &snapshots(&names, &data))
        .expect("plan");
    apply(&names, &mut data, &plan);
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .expect("commit");
    Run {
        names,
        engine,
        plan0,
        mid,
        baseline,
        before,
        after: data,
        plan,
        eids,
    }
}

fn std_names(n: usize) -> Vec<String> {
    ["a", "b", "c"][..n].iter().map(|s| s.to_string()).collect()
}

fn run(case: &Case) -> Run {
    let names = std_names(case.n);
    run_with(case, names.clone(), &names)
}

fn excluded(plan: &SyncPlan, eid: &EntityId, field: &str) -> bool {
    plan.conflicts
        .iter()
        .any(|c| &c.entity == eid && c.field == field)
        || plan
            .held
            .iter()
            .any(|h| &h.entity == eid && h.field.as_deref().is_none_or(|f| f == field))
}

/// Last edited value per (entity, field), per system.
fn final_edits(case: &Case) -> BTreeMap<(usize, usize), BTreeMap<usize, Value>> {
    let mut out: BTreeMap<(usize, usize), BTreeMap<usize, Value>> = BTreeMap::new();
    for e in &case.edits {
        out.entry((e.entity, e.field))
            .or_default()
            .insert(e.sys, e.value.clone());
    }
    out
}

/// Tiny deterministic shuffle.
fn shuffle<T>(v: &mut [T], seed: &mut u64) {
    for i in (1..v.len()).rev() {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((*seed >> 33) as usize) % (i + 1);
        v.swap(i, j);
    }
}

fn shuffled(snaps: &[Snapshot], seed: u64) -> Vec<Snapshot> {
    let mut seed = seed;
    let mut out = snaps.to_vec();
    for s in &mut out {
        shuffle(&mut s.records, &mut seed);
    }
    shuffle(&mut out, &mut seed);
    out
}

fn writes(
    plan: &SyncPlan,
    rename: impl Fn(&str) -> String,
) -> BTreeSet<(String, String, String, String)> {
    plan.ops
        .iter()
        .flat_map(|op| {
            let sys = rename(op.system.as_str());
            op.fields.iter().map(move |w| {
                (
                    sys.clone(),
                    op.record_id.clone().unwrap_or_default(),
                    w.native.clone(),
                    w.value.to_string(),
                )
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn convergence(case in case()) {
        let r = run(&case);
        for (e, eid) in r.eids.iter().enumerate() {
            for f in FIELDS {
                if excluded(&r.plan, eid, f) {
                    continue;
                }
                let v0 = r.after[0][e].get(f);
                for s in 1..case.n {
                    prop_assert!(eqv(v0, r.after[s][e].get(f)),
                        "entity {} field {} differs: {:?} vs {:?}\n{}", e, f, v0, r.after[s][e].get(f), r.plan);
                }
            }
        }
    }

    #[test]
    fn quiescence(case in case()) {
        let r = run(&case);
        let again = r.engine.plan(&r.baseline, &snapshots(&r.names, &r.after)).expect("plan");
        prop_assert!(again.ops.is_empty(), "after:\n{}\nagain:\n{}", r.plan, again);
    }

    #[test]
    fn no_lost_update(case in case()) {
        let r = run(&case);
        for ((e, f), per_sys) in final_edits(&case) {
            if per_sys.len() != 1 {
                continue;
            }
            let (_, v) = per_sys.iter().next().expect("one");
            let field = FIELDS[f];
            if empty(v) || excluded(&r.plan, &r.eids[e], field) {
                continue;
            }
            for s in 0..case.n {
                prop_assert!(eqv(r.after[s][e].get(field), Some(v)),
                    "entity {} field {} system {} lost {:?}\n{}", e, field, s, v, r.plan);
            }
        }
    }

    #[test]
    fn policies(case in case()) {
        let r = run(&case);
        for (e, eid) in r.eids.iter().enumerate() {
            for (fi, f) in FIELDS.iter().enumerate() {
                let pol = &case.pols[fi];
                let init = &case.init[e][fi];
                let now: Vec<Option<&Value>> = (0..case.n).map(|s| r.before[s][e].get(f)).collect();
                let changed: Vec<usize> = (0..case.n).filter(|s| !eqv(now[*s], Some(init))).collect();
                let guard_active = pol.guard && !empty(init);
                match pol.kind {
                    2 => {
                        let mut distinct: Vec<Option<&Value>> = Vec::new();
                        for s in &changed {
                            let v = now[*s];
                            if guard_active && v.is_none_or(empty) {
                                continue;
                            }
                            if !distinct.iter().any(|d| eqv(*d, v)) {
                                distinct.push(v);
                            }
                        }
                        if distinct.len() >= 2 {
                            let written = r.plan.ops.iter().any(|op| &op.entity == eid
                                && op.fields.iter().any(|w| w.field == *f));
                            prop_assert!(!written, "manual-review field {} of entity {} written\n{}", f, e, r.plan);
                        }
                    }
                    1 if changed.contains(&0) => {
                        let av = now[0];
                        if guard_active && av.is_none_or(empty) {
                            prop_assert!(excluded(&r.plan, eid, f), "authority emptied {} but not held\n{}", f, r.plan);
                        } else {
                            for s in 0..case.n {
                                prop_assert!(eqv(r.after[s][e].get(f), av),
                                    "authority value of {} not in system {}\n{}", f, s, r.plan);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for op in &r.plan.ops {
            let s = r.names.iter().position(|n| op.system == n.as_str()).expect("system");
            let rec = r.before[s].iter().find(|x| Some(&x.id) == op.record_id.as_ref()).expect("record");
            for w in &op.fields {
                let fi = FIELDS.iter().position(|f| *f == w.field).expect("field");
                if case.pols[fi].guard && empty(&w.value) {
                    prop_assert!(rec.get(&w.native).is_none_or(empty),
                        "empty written over non-empty {} in {:?}\n{}", w.native, op.record_id, r.plan);
                }
            }
        }
    }

    #[test]
    fn determinism(case in case()) {
        let r = run(&case);
        let names = &r.names;
        // First plan, from the empty baseline.
        let snaps0 = snapshots(names, &initial(&case, names));
        let p0 = r.engine.plan(&Baseline::new(), &shuffled(&snaps0, case.seed)).expect("plan");
        prop_assert_eq!(serde_json::to_value(&p0).expect("json"), serde_json::to_value(&r.plan0).expect("json"));
        // Second plan, from the mid baseline.
        let snaps = snapshots(names, &r.before);
        let p = r.engine.plan(&r.mid, &shuffled(&snaps, case.seed ^ 0x9e37)).expect("plan");
        prop_assert_eq!(serde_json::to_value(&p).expect("json"), serde_json::to_value(&r.plan).expect("json"));
    }

    #[test]
    fn symmetry(case in case()) {
        let names = std_names(case.n);
        let orig = run_with(&case, names.clone(), &names);
        let mut mirrored = names.clone();
        mirrored.swap(0, 1);
        // System "b" now holds what "a" held (same record ids), and comes first.
        let mirror = run_with(&case, mirrored, &names);
        let swap = |s: &str| match s {
            "a" => "b".to_owned(),
            "b" => "a".to_owned(),
            other => other.to_owned(),
        };
        prop_assert_eq!(writes(&orig.plan0, swap), writes(&mirror.plan0, |s| s.to_owned()));
        prop_assert_eq!(writes(&orig.plan, swap), writes(&mirror.plan, |s| s.to_owned()));
        prop_assert_eq!(orig.plan.conflicts.len(), mirror.plan.conflicts.len());
        prop_assert_eq!(orig.plan.held.len(), mirror.plan.held.len());
    }
}

fn two_system_case(kind: u8) -> Case {
    Case {
        n: 2,
        pols: vec![Pol { kind, guard: false }; 3],
        init: vec![vec![json!("x"), json!("x"), json!("x")]],
        edits: Vec::new(),
        seed: 0,
    }
}

#[test]
fn failed_op_is_planned_again() {
    let case = two_system_case(0);
    let names = std_names(2);
    let engine = SyncEngine::new(build_map(&names, &case.pols));
    let mut baseline = Baseline::new();
    let mut data = initial(&case, &names);
    let p0 = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    apply(&names, &mut data, &p0);
    engine
        .commit(&mut baseline, &p0, &Outcomes::all_applied(&p0))
        .unwrap();

    apply_edits(
        &mut data,
        &[Edit {
            entity: 0,
            sys: 0,
            field: 0,
            value: json!("y"),
            at: 3,
        }],
    );
    let plan = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    assert_eq!(plan.ops.len(), 1, "{plan}");
    let mut outcomes = Outcomes::new();
    outcomes.record(
        plan.ops[0].id,
        OpOutcome::Failed {
            message: "timeout".into(),
        },
    );
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();

    let again = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    assert_eq!(again.ops.len(), 1, "{again}");
    let key = |p: &SyncPlan| writes(p, |s| s.to_owned());
    assert_eq!(key(&plan), key(&again));
    assert_eq!(plan.ops[0].record_id, again.ops[0].record_id);

    // Once applied, nothing is left to do.
    apply(&names, &mut data, &again);
    engine
        .commit(&mut baseline, &again, &Outcomes::all_applied(&again))
        .unwrap();
    let last = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    assert!(last.ops.is_empty(), "{last}");
}

#[test]
fn manual_review_resolution_is_written() {
    let case = two_system_case(2);
    let names = std_names(2);
    let engine = SyncEngine::new(build_map(&names, &case.pols));
    let mut baseline = Baseline::new();
    let mut data = initial(&case, &names);
    let p0 = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    apply(&names, &mut data, &p0);
    engine
        .commit(&mut baseline, &p0, &Outcomes::all_applied(&p0))
        .unwrap();

    apply_edits(
        &mut data,
        &[
            Edit {
                entity: 0,
                sys: 0,
                field: 0,
                value: json!("y"),
                at: 2,
            },
            Edit {
                entity: 0,
                sys: 1,
                field: 0,
                value: json!("z"),
                at: 3,
            },
        ],
    );
    let plan = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.conflicts.len(), 1, "{plan}");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    baseline
        .resolve(&plan.conflicts[0], ReviewChoice::System("a".into()))
        .unwrap();

    let next = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    assert!(next.conflicts.is_empty(), "{next}");
    let w = writes(&next, |s| s.to_owned());
    let expected: BTreeSet<_> = [(
        "b".to_owned(),
        "b1".to_owned(),
        "f1".to_owned(),
        json!("y").to_string(),
    )]
    .into_iter()
    .collect();
    assert_eq!(w, expected, "{next}");

    apply(&names, &mut data, &next);
    engine
        .commit(&mut baseline, &next, &Outcomes::all_applied(&next))
        .unwrap();
    let last = engine.plan(&baseline, &snapshots(&names, &data)).unwrap();
    assert!(last.ops.is_empty() && last.conflicts.is_empty(), "{last}");
}

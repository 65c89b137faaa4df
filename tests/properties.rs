//! Property tests over a tiny in-memory simulator of 2 or 3 systems.
#![cfg(feature = "testkit")]

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
        r.fields.insert(f, e.value.clone());
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

/// Hostile additions to a run's snapshots.
#[derive(Clone, Debug)]
struct Hostile {
    /// (system, entity, differs): the system's record of the entity listed
    /// twice, the second copy with another `f1` where `differs`.
    dups: Vec<(usize, usize, bool)>,
    /// (system, kind): a new record: 0 a placeholder email shared with the
    /// other kind-0 records, 1 the email of entity 0, 2 an email of its own.
    new: Vec<(usize, u8)>,
    /// The first new record is listed twice.
    new_twice: bool,
}

impl Hostile {
    fn is_empty(&self) -> bool {
        self.dups.is_empty() && self.new.is_empty()
    }
}

fn hostile() -> impl Strategy<Value = Hostile> {
    (
        prop::collection::vec((0usize..3, 0usize..3, any::<bool>()), 0..5),
        prop::collection::vec((0usize..3, 0u8..3), 0..7),
        any::<bool>(),
    )
        .prop_map(|(dups, new, new_twice)| Hostile {
            dups,
            new,
            new_twice,
        })
}

/// `snaps` with `h`'s additions (systems and entities out of range wrap).
fn with_hostile(snaps: &[Snapshot], h: &Hostile) -> Vec<Snapshot> {
    let mut out = snaps.to_vec();
    let n = out.len();
    for (s, e, differs) in &h.dups {
        let snap = &mut out[s % n];
        if snap.records.is_empty() {
            continue;
        }
        let mut copy = snap.records[e % snap.records.len()].clone();
        if *differs {
            copy = copy.field("f1", "paged");
        }
        snap.records.push(copy);
    }
    for (i, (s, kind)) in h.new.iter().enumerate() {
        let email = match kind {
            0 => "NoEmail@example.com ".to_owned(),
            1 => "p0@example.com".to_owned(),
            _ => format!("new{i}@example.com"),
        };
        let r = Record::new(format!("new{i}"))
            .field("email", email)
            .field_at("f1", "x", ts(9));
        let snap = &mut out[s % n];
        if i == 0 && h.new_twice {
            snap.records.push(r.clone());
        }
        snap.records.push(r);
    }
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
                    w.native.to_string(),
                    w.value.to_string(),
                )
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(256)))]

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
        // Once the baseline has seen what the systems hold after its own
        // writes, a quiet plan changes nothing: a store saves nothing.
        let mut b = r.baseline.clone();
        r.engine.commit(&mut b, &again, &Outcomes::all_applied(&again)).expect("commit");
        let third = r.engine.plan(&b, &snapshots(&r.names, &r.after)).expect("plan");
        prop_assert!(third.ops.is_empty(), "{}", third);
        let summary = r.engine.commit(&mut b, &third, &Outcomes::all_applied(&third)).expect("commit");
        prop_assert!(
            summary.touched.is_empty() && summary.removed.is_empty(),
            "a quiet plan touched {:?}", summary
        );
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
                let fi = FIELDS.iter().position(|f| w.field == *f).expect("field");
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

    /// The same, with what a careless connector or its users hand over:
    /// records listed twice (linked ones and new ones, a copy sometimes
    /// differing), new records sharing a placeholder key, and new records
    /// carrying a linked entity's key (ambiguous matches).
    #[test]
    fn determinism_with_duplicates_and_shared_keys(case in case(), hostile in hostile()) {
        let r = run(&case);
        let names = &r.names;
        for (baseline, data, plan) in [
            (Baseline::new(), initial(&case, names), &r.plan0),
            (r.mid.clone(), r.before.clone(), &r.plan),
        ] {
            let snaps = with_hostile(&snapshots(names, &data), &hostile);
            let p = r.engine.plan(&baseline, &snaps).expect("plan");
            if hostile.is_empty() {
                prop_assert_eq!(&p, plan);
            }
            let json = serde_json::to_value(&p).expect("json");
            for salt in [0x9e37, 0x51ed, 0xc0ff] {
                let shuffled = r.engine.plan(&baseline, &shuffled(&snaps, case.seed ^ salt)).expect("plan");
                prop_assert_eq!(serde_json::to_value(&shuffled).expect("json"), json.clone());
            }
        }
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

// ------------------------------------------------------------------------
// The same promises with the whole record lifecycle: records created and
// deleted, records leaving scope, and references to another object type
// (contacts pointing at companies) whose parents may be created later.

mod common;

mod lifecycle {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use recsync::{
        Baseline, DeleteEditPolicy, DeletePolicy, EntityId, Field, FieldMap, Filter, Guards,
        PlanOptions, Record, SyncEngine, SyncPlan,
    };
    use serde_json::{json, Value};

    use super::common::{execute, sim, snapshots};
    use super::{eqv, ts};
    use recsync::testkit::MemorySystem;

    const NAMES: [&str; 3] = ["a", "b", "c"];
    const VALUES: [&str; 2] = ["f1", "f2"];

    /// The id of contact `n` made in system `s` (its ids are its name, then
    /// a number).
    fn ct_id(s: usize, n: usize) -> String {
        format!("{}{n}", NAMES[s])
    }

    /// The id of company `n` made in system `s`.
    fn co_id(s: usize, n: usize) -> String {
        format!("{}k{n}", NAMES[s])
    }

    #[derive(Debug, Clone)]
    pub(super) enum Edit {
        Update {
            sys: usize,
            entity: usize,
            field: usize,
            value: Value,
            at: i64,
        },
        /// Points a contact at company `company` (2: the company `NewCompany`
        /// made in that system, when there is one).
        SetCompany {
            sys: usize,
            entity: usize,
            company: usize,
        },
        /// A new company in `sys`.
        NewCompany {
            sys: usize,
        },
        /// A new contact with email `n{key}@x`.
        Create {
            sys: usize,
            key: usize,
            value: Value,
        },
        Delete {
            sys: usize,
            entity: usize,
        },
        /// System `a` moves a contact out of (or back into) its scope.
        Scope {
            entity: usize,
            out: bool,
        },
    }

    #[derive(Debug, Clone)]
    pub(super) struct Case {
        n: usize,
        entities: usize,
        edits: Vec<Edit>,
        delete_vs_edit: DeleteEditPolicy,
    }

    fn val() -> impl Strategy<Value = Value> {
        prop_oneof![Just(json!("x")), Just(json!("y")), Just(json!(""))]
    }

    fn edit(n: usize, e: usize) -> impl Strategy<Value = Edit> {
        prop_oneof![
            4 => (0..n, 0..e, 0..VALUES.len(), val(), 1i64..6).prop_map(
                |(sys, entity, field, value, at)| Edit::Update { sys, entity, field, value, at }
            ),
            2 => (0..n, 0..e, 0usize..3)
                .prop_map(|(sys, entity, company)| Edit::SetCompany { sys, entity, company }),
            1 => (0..n).prop_map(|sys| Edit::NewCompany { sys }),
            2 => (0..n, 0usize..3, val()).prop_map(|(sys, key, value)| Edit::Create { sys, key, value }),
            2 => (0..n, 0..e).prop_map(|(sys, entity)| Edit::Delete { sys, entity }),
            2 => (0..e, any::<bool>()).prop_map(|(entity, out)| Edit::Scope { entity, out }),
        ]
    }

    pub(super) fn case() -> impl Strategy<Value = Case> {
        (2usize..=3, 1usize..=4).prop_flat_map(|(n, e)| {
            (
                prop::collection::vec(edit(n, e), 0..8),
                prop_oneof![
                    Just(DeleteEditPolicy::EditWins),
                    Just(DeleteEditPolicy::DeleteWins),
                    Just(DeleteEditPolicy::Hold)
                ],
            )
                .prop_map(move |(edits, delete_vs_edit)| Case {
                    n,
                    entities: e,
                    edits,
                    delete_vs_edit,
                })
        })
    }

    pub(super) struct World {
        n: usize,
        companies: SyncEngine,
        contacts: SyncEngine,
        pub(super) co_base: Baseline,
        pub(super) base: Baseline,
        pub(super) co: Vec<MemorySystem>,
        pub(super) ct: Vec<MemorySystem>,
        /// Every contacts plan made after the edits.
        pub(super) plans: Vec<SyncPlan>,
        /// What the edits did: which entities changed how.
        pub(super) effects: Effects,
    }

    #[derive(Debug, Default)]
    pub(super) struct Effects {
        /// (entity, field) -> (system, value) of updates applied to records.
        pub(super) updates: BTreeMap<(usize, usize), Vec<(usize, Value)>>,
        /// Entities whose company was set, deleted somewhere, scoped.
        pub(super) company_set: BTreeSet<usize>,
        pub(super) deleted: BTreeMap<usize, BTreeSet<usize>>,
        pub(super) scoped: BTreeMap<usize, bool>,
        /// Emails created, with the system and f1 value.
        pub(super) created: BTreeMap<String, Vec<(usize, Value)>>,
    }

    fn engines(n: usize, delete_vs_edit: DeleteEditPolicy) -> (SyncEngine, SyncEngine) {
        let names = NAMES[..n].iter().copied();
        let companies = FieldMap::builder()
            .object("companies")
            .systems(names.clone())
            .key("domain")
            .field(Field::new("domain").case_insensitive())
            .guards(Guards::off())
            .build()
            .expect("map");
        // The test systems hold only the fields written to them (as an
        // API that leaves empty fields out): any field may be absent.
        let sparse = |f: Field| NAMES[..n].iter().fold(f, |f, s| f.may_be_absent_in(*s));
        let mut b = FieldMap::builder()
            .object("contacts")
            .systems(names)
            .key("email")
            .field(sparse(Field::new("email").case_insensitive()))
            .field(sparse(Field::new("company").references("companies")))
            .deletes(DeletePolicy::Propagate)
            .delete_vs_edit(delete_vs_edit)
            .scope("a", Filter::field("status").not_equals("out"))
            .guards(Guards::off());
        for f in VALUES {
            b = b.field(sparse(Field::new(f)));
        }
        (
            SyncEngine::new(companies),
            SyncEngine::new(b.build().expect("map")),
        )
    }

    impl World {
        pub(super) fn new(case: &Case) -> World {
            let n = case.n;
            let (companies, contacts) = engines(n, case.delete_vs_edit);
            let mut co: Vec<MemorySystem> = NAMES[..n]
                .iter()
                .map(|s| sim(s, &format!("{s}k")))
                .collect();
            let mut ct: Vec<MemorySystem> = NAMES[..n].iter().map(|s| sim(s, s)).collect();
            for s in 0..n {
                for k in 0..2 {
                    let id = co_id(s, k + 1);
                    co[s].put(Record::new(id).field("domain", format!("d{k}.com")));
                }
                for e in 0..case.entities {
                    let mut r = Record::new(ct_id(s, e + 1))
                        .field("email", format!("p{e}@x"))
                        .field("company", co_id(s, 1));
                    for f in VALUES {
                        r = r.field_at(f, "init", ts(0));
                    }
                    ct[s].put(r);
                }
            }
            let mut w = World {
                n,
                companies,
                contacts,
                co_base: Baseline::new(),
                base: Baseline::new(),
                co,
                ct,
                plans: Vec::new(),
                effects: Effects::default(),
            };
            w.round();
            let first = w.round();
            assert!(first, "the initial systems settle at once");
            w.plans.clear();
            assert_eq!(w.base.len(), case.entities);
            w.edit(&case.edits);
            w
        }

        fn edit(&mut self, edits: &[Edit]) {
            for ed in edits {
                match ed {
                    Edit::Update {
                        sys,
                        entity,
                        field,
                        value,
                        at,
                    } => {
                        let id = ct_id(*sys, entity + 1);
                        if let Some(r) = self.ct[*sys].record_mut(&id) {
                            r.fields.insert(VALUES[*field], value.clone());
                            r.field_updated_at.insert(VALUES[*field].into(), ts(*at));
                            self.effects
                                .updates
                                .entry((*entity, *field))
                                .or_default()
                                .push((*sys, value.clone()));
                        }
                    }
                    Edit::SetCompany {
                        sys,
                        entity,
                        company,
                    } => {
                        let co = &self.co[*sys];
                        let target = co_id(*sys, company + 1);
                        let id = ct_id(*sys, entity + 1);
                        if co.contains(&target) {
                            if let Some(r) = self.ct[*sys].record_mut(&id) {
                                r.fields.insert("company", json!(target));
                                self.effects.company_set.insert(*entity);
                            }
                        }
                    }
                    Edit::NewCompany { sys } => {
                        let co = &mut self.co[*sys];
                        let id = co_id(*sys, 3);
                        if !co.contains(&id) {
                            co.put(Record::new(id).field("domain", format!("new-{sys}.com")));
                        }
                    }
                    Edit::Create { sys, key, value } => {
                        let s = &mut self.ct[*sys];
                        let email = format!("n{key}@x");
                        if !s.records().any(|r| r.get("email") == Some(&json!(email))) {
                            let id = s.new_id();
                            let company = co_id(*sys, 2);
                            s.put(
                                Record::new(id)
                                    .field("email", email.clone())
                                    .field("company", company)
                                    .field_at("f1", value.clone(), ts(3)),
                            );
                            self.effects
                                .created
                                .entry(email)
                                .or_default()
                                .push((*sys, value.clone()));
                        }
                    }
                    Edit::Delete { sys, entity } => {
                        let id = ct_id(*sys, entity + 1);
                        if self.ct[*sys].remove(&id).is_some() {
                            self.effects
                                .deleted
                                .entry(*entity)
                                .or_default()
                                .insert(*sys);
                        }
                    }
                    Edit::Scope { entity, out } => {
                        let id = format!("a{}", entity + 1);
                        if let Some(r) = self.ct[0].record_mut(&id) {
                            r.fields
                                .insert("status", json!(if *out { "out" } else { "in" }));
                            self.effects.scoped.insert(*entity, *out);
                        }
                    }
                }
            }
        }

        /// One round: contacts (with the companies baseline), then
        /// companies; true when neither had anything to write.
        fn round(&mut self) -> bool {
            let options = PlanOptions::new().parent("companies", &self.co_base);
            let plan = self
                .contacts
                .plan_with(&self.base, &snapshots(&self.ct), &options)
                .expect("plan");
            let outcomes = execute(&mut self.ct, &plan);
            self.contacts
                .commit(&mut self.base, &plan, &outcomes)
                .expect("commit");
            let quiet = plan.ops.is_empty();
            self.plans.push(plan);
            let plan = self
                .companies
                .plan(&self.co_base, &snapshots(&self.co))
                .expect("plan");
            let outcomes = execute(&mut self.co, &plan);
            self.companies
                .commit(&mut self.co_base, &plan, &outcomes)
                .expect("commit");
            quiet && plan.ops.is_empty()
        }

        /// Rounds until quiet.
        pub(super) fn settle(&mut self) {
            for _ in 0..8 {
                if self.round() {
                    return;
                }
            }
            panic!(
                "not quiet after 8 rounds:\n{}",
                self.plans[self.plans.len() - 1]
            );
        }

        pub(super) fn entity(&self, e: usize) -> Option<EntityId> {
            (0..self.n).find_map(|s| {
                self.base
                    .find_linked(NAMES[s], &format!("{}{}", NAMES[s], e + 1))
                    .map(|x| x.id().clone())
            })
        }

        /// Whether any plan held something of the entity (a field, a delete,
        /// a conflict) or reported an issue about it.
        pub(super) fn held(&self, eid: &EntityId) -> bool {
            self.plans.iter().any(|p| {
                p.held.iter().any(|h| &h.entity == eid)
                    || p.conflicts.iter().any(|c| &c.entity == eid)
                    || p.issues.iter().any(|i| i.entity.as_ref() == Some(eid))
            })
        }

        /// Each linked system's record of the entity.
        pub(super) fn records(&self, eid: &EntityId) -> Vec<(usize, &Record)> {
            let Some(e) = self.base.entity(eid) else {
                return Vec::new();
            };
            (0..self.n)
                .filter_map(|s| {
                    let id = e.link(NAMES[s])?;
                    Some((s, self.ct[s].record(id)?))
                })
                .collect()
        }

        /// A record's company, as the company entity it names.
        pub(super) fn company(&self, s: usize, r: &Record) -> Option<EntityId> {
            let id = r.get("company")?.as_str()?;
            self.co_base
                .find_linked(NAMES[s], id)
                .map(|e| e.id().clone())
        }

        /// Records sharing an email in one system.
        pub(super) fn duplicates(&self) -> Vec<String> {
            let mut out = Vec::new();
            for s in &self.ct {
                let mut seen = BTreeSet::new();
                for r in s.records() {
                    let email = r.get("email").map(Value::to_string).unwrap_or_default();
                    if !seen.insert(email.to_lowercase()) {
                        out.push(format!("{} {}", s.system(), email));
                    }
                }
            }
            out
        }

        pub(super) fn linked_records(&self, eid: &EntityId) -> usize {
            self.records(eid).len()
        }

        pub(super) fn has_email(&self, s: usize, email: &str) -> Option<&Record> {
            self.ct[s]
                .records()
                .find(|r| r.get("email").and_then(Value::as_str) == Some(email))
        }

        pub(super) fn n(&self) -> usize {
            self.n
        }

        pub(super) fn last(&self) -> String {
            self.plans
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n--\n")
        }
    }

    pub(super) fn converged(w: &World) -> Result<(), String> {
        if !w.duplicates().is_empty() {
            return Err(format!("duplicates {:?}", w.duplicates()));
        }
        for e in w.base.entities() {
            let eid = e.id().clone();
            if w.held(&eid) {
                continue;
            }
            let recs = w.records(&eid);
            if recs.len() != e.links().count() {
                return Err(format!("entity {eid} links a record that is gone"));
            }
            let Some((s0, r0)) = recs.first() else {
                continue;
            };
            for (s, r) in &recs[1..] {
                for f in VALUES.iter().chain(["email"].iter()) {
                    let (a, b) = (r0.get(f), r.get(f));
                    let same = if *f == "email" {
                        a.map(|v| v.to_string().to_lowercase())
                            == b.map(|v| v.to_string().to_lowercase())
                    } else {
                        eqv(a, b)
                    };
                    if !same {
                        return Err(format!(
                            "entity {eid} field {f}: {a:?} in {s0}, {b:?} in {s}"
                        ));
                    }
                }
                if w.company(*s0, r0) != w.company(*s, r) {
                    return Err(format!(
                        "entity {eid} company: {:?} in {s0}, {:?} in {s}",
                        r0.get("company"),
                        r.get("company")
                    ));
                }
            }
            if recs.len() < w.n()
                && w.base
                    .entity(&eid)
                    .is_some_and(|e| (0..w.n()).all(|s| e.link_status(NAMES[s]).is_none()))
            {
                return Err(format!("entity {eid} is missing in some system"));
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(256)))]

    #[test]
    fn convergence_with_creates_deletes_scope_and_references(case in lifecycle::case()) {
        let mut w = lifecycle::World::new(&case);
        w.settle();
        if let Err(e) = lifecycle::converged(&w) {
            prop_assert!(false, "{}\nplans:\n{}", e, w.last());
        }
    }

    #[test]
    fn no_lost_update_with_creates_deletes_scope_and_references(case in lifecycle::case()) {
        let mut w = lifecycle::World::new(&case);
        w.settle();
        let fx = &w.effects;
        // An update made in one system only, to a contact not deleted and
        // not moved in or out of scope, reaches every system.
        for ((e, f), by) in &fx.updates {
            let systems: BTreeSet<usize> = by.iter().map(|(s, _)| *s).collect();
            let (_, v) = by.last().expect("one update");
            if systems.len() != 1 || is_empty_value(v) || fx.deleted.contains_key(e) || fx.scoped.contains_key(e) {
                continue;
            }
            let eid = w.entity(*e).expect("still linked");
            if w.held(&eid) {
                continue;
            }
            prop_assert_eq!(w.linked_records(&eid), w.n(), "entity {} not in every system\n{}", e, w.last());
            for (s, r) in w.records(&eid) {
                prop_assert!(eqv(r.get(["f1", "f2"][*f]), Some(v)),
                    "entity {} lost {:?} in system {}\n{}", e, v, s, w.last());
            }
        }
        // A contact created in one system (or matched between systems) is in
        // every system, with its value where only one system set it.
        for (email, by) in &fx.created {
            for s in 0..w.n() {
                let Some(r) = w.has_email(s, email) else {
                    prop_assert!(false, "{} not created in system {}\n{}", email, s, w.last());
                    unreachable!()
                };
                if let [(_, v)] = by.as_slice() {
                    if !is_empty_value(v) {
                        prop_assert!(eqv(r.get("f1"), Some(v)), "{} lost {:?} in {}\n{}", email, v, s, w.last());
                    }
                }
            }
        }
        // A delete with no edit against it reaches every system (the map
        // propagates deletes); a record leaving scope is never deleted.
        for (e, from) in &fx.deleted {
            let edited = fx.updates.keys().any(|(x, _)| x == e) || fx.company_set.contains(e);
            let email = format!("p{e}@x");
            if fx.scoped.contains_key(e) {
                continue;
            }
            if !edited {
                for s in 0..w.n() {
                    prop_assert!(w.has_email(s, &email).is_none(),
                        "delete of entity {} from {:?} not propagated to {}\n{}", e, from, s, w.last());
                }
            }
        }
        for (e, out) in &fx.scoped {
            if !*out || fx.deleted.contains_key(e) {
                continue;
            }
            let email = format!("p{e}@x");
            for s in 0..w.n() {
                prop_assert!(w.has_email(s, &email).is_some(),
                    "entity {} left scope and was deleted in {}\n{}", e, s, w.last());
            }
            prop_assert!(w.base.find_linked("a", &format!("a{}", e + 1)).is_none(),
                "entity {} left scope but is still linked in a\n{}", e, w.last());
        }
    }
}

// ------------------------------------------------------------------------
// Two systems over a random history of creates, edits, deletes and syncs,
// with the safety guards on (an empty complete snapshot is refused until a
// host approves it): once the host approves what was refused, the systems
// end holding the same records with the same values. Nothing diverges for
// good.

mod history {
    use proptest::prelude::*;
    use recsync::{
        Baseline, DeleteEditPolicy, DeletePolicy, Field, FieldMap, PlanOptions, Record, SyncEngine,
        SyncPlan,
    };
    use serde_json::{json, Value};

    use super::common::{execute, sim, snapshots, Person};
    use super::eqv;
    use recsync::testkit::MemorySystem;

    #[derive(Debug, Clone)]
    pub(super) enum Act {
        /// A user creates a record with email `k{key}@x` (if the system has
        /// none with it).
        Create { sys: usize, key: usize, name: Value },
        /// A user edits the name of a record (the `pick`th, wrapping).
        Edit {
            sys: usize,
            pick: usize,
            name: Value,
        },
        /// A user deletes a record (the `pick`th, wrapping).
        Delete { sys: usize, pick: usize },
        /// A sync, approving nothing.
        Sync,
    }

    #[derive(Debug, Clone)]
    pub(super) struct Case {
        initial: usize,
        pub(super) acts: Vec<Act>,
        delete_vs_edit: DeleteEditPolicy,
    }

    fn name() -> impl Strategy<Value = Value> {
        prop_oneof![Just(json!("x")), Just(json!("y")), Just(json!(""))]
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            3 => (0..2usize, 0..4usize, name()).prop_map(|(sys, key, name)| Act::Create { sys, key, name }),
            2 => (0..2usize, 0..4usize, name()).prop_map(|(sys, pick, name)| Act::Edit { sys, pick, name }),
            3 => (0..2usize, 0..4usize).prop_map(|(sys, pick)| Act::Delete { sys, pick }),
            3 => Just(Act::Sync),
        ]
    }

    pub(super) fn case() -> impl Strategy<Value = Case> {
        (
            0..=2usize,
            prop::collection::vec(act(), 0..14),
            prop_oneof![
                Just(DeleteEditPolicy::EditWins),
                Just(DeleteEditPolicy::DeleteWins)
            ],
        )
            .prop_map(|(initial, acts, delete_vs_edit)| Case {
                initial,
                acts,
                delete_vs_edit,
            })
    }

    pub(super) struct World {
        engine: SyncEngine,
        baseline: Baseline,
        pub(super) sys: Vec<MemorySystem>,
        pub(super) plans: Vec<SyncPlan>,
    }

    impl World {
        pub(super) fn new(case: &Case) -> World {
            // The guards are the defaults: an empty complete snapshot is
            // refused.
            let map = FieldMap::builder()
                .systems(["a", "b"])
                .key("email")
                .field(Field::new("email").case_insensitive())
                // The test systems hold only the fields written to them: a
                // record made with no name has none, as an API that leaves
                // empty fields out.
                .field(
                    Field::new("name")
                        .may_be_absent_in("a")
                        .may_be_absent_in("b"),
                )
                .deletes(DeletePolicy::Propagate)
                .delete_vs_edit(case.delete_vs_edit)
                .build()
                .expect("valid map");
            let mut w = World {
                engine: SyncEngine::new(map),
                baseline: Baseline::new(),
                sys: vec![sim("a", "a"), sim("b", "b")],
                plans: Vec::new(),
            };
            for i in 0..case.initial {
                w.sys[0].put(
                    Record::new(format!("a{}", i + 1))
                        .field("email", format!("p{i}@x"))
                        .field("name", "init"),
                );
            }
            w.sync(false);
            w.sync(false);
            w
        }

        /// One sync; approving what a guard refuses when `approve` is set
        /// (as a host that checked it would). Returns whether it wrote.
        fn sync(&mut self, approve: bool) -> bool {
            let snaps = snapshots(&self.sys);
            let mut plan = self.engine.plan(&self.baseline, &snaps).expect("plan");
            if approve {
                if let Some(refusal) = &plan.refusal {
                    let options = PlanOptions::new().approve(refusal);
                    plan = self
                        .engine
                        .plan_with(&self.baseline, &snaps, &options)
                        .expect("plan");
                }
            }
            let outcomes = execute(&mut self.sys, &plan);
            self.engine
                .commit(&mut self.baseline, &plan, &outcomes)
                .expect("commit");
            let wrote = !plan.ops.is_empty();
            self.plans.push(plan);
            wrote
        }

        pub(super) fn play(&mut self, acts: &[Act]) {
            for act in acts {
                match act {
                    Act::Create { sys, key, name } => {
                        let s = &mut self.sys[*sys];
                        let email = format!("k{key}@x");
                        if !s.records().any(|r| r.get("email") == Some(&json!(email))) {
                            let id = s.new_id();
                            s.put(
                                Record::new(id)
                                    .field("email", email)
                                    .field("name", name.clone()),
                            );
                        }
                    }
                    Act::Edit { sys, pick, name } => {
                        let s = &mut self.sys[*sys];
                        let ids: Vec<String> = s.records().map(|r| r.id.clone()).collect();
                        if !ids.is_empty() {
                            let id = &ids[pick % ids.len()];
                            s.set(id, "name", name.clone());
                        }
                    }
                    Act::Delete { sys, pick } => {
                        let s = &mut self.sys[*sys];
                        let ids: Vec<String> = s.records().map(|r| r.id.clone()).collect();
                        if !ids.is_empty() {
                            let id = ids[pick % ids.len()].clone();
                            s.remove(&id);
                        }
                    }
                    Act::Sync => {
                        self.sync(false);
                    }
                }
            }
        }

        /// Syncs, approving refusals, until a sync writes nothing.
        pub(super) fn settle(&mut self) -> Result<(), String> {
            for _ in 0..8 {
                if !self.sync(true) {
                    return Ok(());
                }
            }
            Err(format!("not quiet after 8 syncs\n{}", self.history()))
        }

        pub(super) fn history(&self) -> String {
            self.plans
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("--\n")
        }

        /// Each system's records as (email, name), sorted.
        fn held(&self, s: usize) -> Vec<(String, Option<Value>)> {
            let mut out: Vec<(String, Option<Value>)> = self.sys[s]
                .records()
                .map(|r| {
                    (
                        r.get("email")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_lowercase(),
                        r.get("name").cloned(),
                    )
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }

        pub(super) fn diverged(&self) -> Option<String> {
            let (a, b) = (self.held(0), self.held(1));
            let same = a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|((ea, na), (eb, nb))| ea == eb && eqv(na.as_ref(), nb.as_ref()));
            (!same).then(|| format!("a holds {a:?}\nb holds {b:?}"))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(256)))]

    #[test]
    fn two_systems_never_diverge_for_good(case in history::case()) {
        let mut w = history::World::new(&case);
        w.play(&case.acts);
        if let Err(e) = w.settle() {
            prop_assert!(false, "{}", e);
        }
        if let Some(d) = w.diverged() {
            prop_assert!(false, "{}\nplans:\n{}", d, w.history());
        }
    }
}

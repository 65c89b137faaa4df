//! Data an adversary, or a careless system, hands recsync: one placeholder
//! key on tens of thousands of records, keys that are not strings or
//! numbers, numbers JSON cannot hold, and records listed twice.
#![cfg(feature = "testkit")]

mod common;

use common::{execute, sim, snapshots, write_time, Person};
use recsync::plan::{Issue, IssueKind, CANDIDATES_SHOWN};
use recsync::testkit::MemorySystem;
use recsync::{
    Baseline, Field, FieldMap, FieldValue, MatchKey, MatchMode, Normalization, OpKind, Record,
    Snapshot, SyncEngine, SyncPlan, SystemId,
};
use serde_json::{json, Value};

const PLACEHOLDER: &str = "noemail@example.com";

/// `crm` and `mkt`, matched by email; a score and a name.
fn engine_with(mode: MatchMode) -> SyncEngine {
    let map = FieldMap::builder()
        .systems(["crm", "mkt"])
        .key("email")
        .matching(mode)
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("score"))
        .build()
        .expect("valid map");
    SyncEngine::new(map)
}

fn engine() -> SyncEngine {
    engine_with(MatchMode::MatchThenCreate)
}

fn contact(id: &str, email: impl FieldValue, name: &str) -> Record {
    Record::new(id)
        .field("email", email)
        .field("name", name)
        .field("score", 1)
}

fn systems() -> Vec<MemorySystem> {
    vec![sim("crm", "c"), sim("mkt", "m")]
}

fn sync(engine: &SyncEngine, baseline: &mut Baseline, sys: &mut [MemorySystem]) -> SyncPlan {
    let plan = engine.plan(baseline, &snapshots(sys)).expect("plan");
    let outcomes = execute(sys, &plan);
    engine.commit(baseline, &plan, &outcomes).expect("commit");
    plan
}

fn kinds(plan: &SyncPlan) -> Vec<(String, String, Option<String>, IssueKind)> {
    plan.issues
        .iter()
        .map(|i| {
            (
                i.system.to_string(),
                i.record_id.clone(),
                i.field.clone(),
                i.kind.clone(),
            )
        })
        .collect()
}

fn ambiguous(issue: &Issue) -> (&str, usize, usize, &[(SystemId, String)]) {
    match &issue.kind {
        IssueKind::AmbiguousMatch {
            key,
            records,
            candidate_count,
            candidates,
        } => (key, *records, *candidate_count, candidates),
        other => panic!("not an ambiguous match: {other:?}"),
    }
}

// ------------------------------------------------------- shared key values

/// 50,000 crm records and 3 mkt records share a placeholder email, beside
/// 100 ordinary contacts in each system. Before, each of the 50,003 records
/// was an issue listing all 50,003 candidates (2.5 billion entries); now the
/// placeholder is one issue per system with a few candidates, and the
/// ordinary contacts link as if it were not there.
#[test]
fn a_placeholder_email_on_50000_records_is_one_bounded_issue_per_system() {
    const SHARED: usize = 50_000;
    let mut crm: Vec<Record> = (0..SHARED)
        .map(|i| {
            // Case and spaces differ; the key's normalization folds them.
            let email = if i % 2 == 0 {
                PLACEHOLDER.to_owned()
            } else {
                " NoEmail@Example.com ".to_owned()
            };
            contact(&format!("c{i:05}"), email, "Someone")
        })
        .collect();
    let mut mkt: Vec<Record> = (0..3)
        .map(|i| contact(&format!("m{i}"), PLACEHOLDER, "Someone"))
        .collect();
    for i in 0..100 {
        let email = format!("p{i}@example.com");
        crm.push(contact(&format!("real{i:03}"), email.as_str(), "P"));
        mkt.push(contact(&format!("mreal{i:03}"), email.as_str(), "P"));
    }
    let engine = engine();
    let snaps = [
        Snapshot::complete("crm", crm),
        Snapshot::complete("mkt", mkt),
    ];
    let plan = engine.plan(&Baseline::new(), &snaps).expect("plan");

    assert_eq!(plan.issues.len(), 2, "one issue per system");
    let (key, records, count, candidates) = ambiguous(&plan.issues[0]);
    assert_eq!(
        (
            plan.issues[0].system.as_str(),
            plan.issues[0].record_id.as_str()
        ),
        ("crm", "c00000")
    );
    assert_eq!(plan.issues[0].field.as_deref(), Some("email"));
    assert_eq!(key, PLACEHOLDER);
    assert_eq!(records, SHARED);
    assert_eq!(count, SHARED + 3);
    let shown: Vec<(&str, &str)> = candidates
        .iter()
        .map(|(s, r)| (s.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("crm", "c00000"),
            ("crm", "c00001"),
            ("crm", "c00002"),
            ("crm", "c00003"),
            ("crm", "c00004"),
            ("mkt", "m0"),
            ("mkt", "m1"),
            ("mkt", "m2"),
        ]
    );
    let (_, records, count, mkt_candidates) = ambiguous(&plan.issues[1]);
    assert_eq!(
        (
            plan.issues[1].system.as_str(),
            plan.issues[1].record_id.as_str()
        ),
        ("mkt", "m0")
    );
    assert_eq!((records, count), (3, SHARED + 3));
    assert_eq!(mkt_candidates, candidates);
    // Bounded: however many records share the value, the issues are a few
    // hundred bytes.
    let size = serde_json::to_string(&plan.issues).expect("json").len();
    assert!(size < 2_000, "issues take {size} bytes");
    assert!(candidates.len() <= 2 * CANDIDATES_SHOWN);
    // Nothing created for the placeholder records; the ordinary contacts
    // matched (nothing to write) and are linked by the commit.
    assert!(plan.ops.is_empty(), "{} ops", plan.ops.len());
    let shown = plan.to_string();
    assert!(
        shown.contains("50000 record(s) of crm not linked; 50003 candidate(s):")
            && shown.contains("and 49995 more"),
        "{shown}"
    );
    let mut baseline = Baseline::new();
    engine
        .commit(&mut baseline, &plan, &recsync::Outcomes::all_applied(&plan))
        .expect("commit");
    assert_eq!(baseline.len(), 100);
}

/// New records that all carry the email of an entity linked in their
/// system: one issue, whose candidates include the entity's records.
#[test]
fn records_sharing_a_linked_entitys_key_are_one_issue_naming_the_entity() {
    let engine = engine();
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    sys[1].put(contact("m1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    assert_eq!(baseline.len(), 1);
    for i in 2..1_002 {
        sys[1].put(contact(&format!("m{i:04}"), "ADA@example.com", "Copy"));
    }
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.issues.len(), 1, "{plan}");
    let (_, records, count, candidates) = ambiguous(&plan.issues[0]);
    assert_eq!(plan.issues[0].record_id, "m0002");
    assert_eq!((records, count), (1_000, 1_002));
    assert_eq!(candidates[0], (SystemId::new("crm"), "c1".to_owned()));
    assert_eq!(candidates[1], (SystemId::new("mkt"), "m0002".to_owned()));
    assert_eq!(candidates.len(), 1 + CANDIDATES_SHOWN);
}

/// A sensitive key's value is redacted where the plan is displayed, as
/// every other sensitive value is.
#[test]
fn a_sensitive_keys_shared_value_is_redacted_in_the_display() {
    let map = FieldMap::builder()
        .systems(["crm", "mkt"])
        .key("ssn")
        .field(Field::new("ssn").sensitive())
        .build()
        .expect("valid map");
    let engine = SyncEngine::new(map);
    let crm = (0..3)
        .map(|i| Record::new(format!("c{i}")).field("ssn", "000-00-0000"))
        .collect();
    let plan = engine
        .plan(
            &Baseline::new(),
            &[
                Snapshot::complete("crm", crm),
                Snapshot::complete("mkt", vec![]),
            ],
        )
        .expect("plan");
    assert_eq!(plan.issues.len(), 1);
    assert!(plan.issues[0].sensitive);
    let shown = plan.to_string();
    assert!(!shown.contains("000-00-0000"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

// ------------------------------------- shared key values across partial reads

/// Plans `snaps`, applies every op to `sys`, commits; the plan.
fn sync_with(
    engine: &SyncEngine,
    baseline: &mut Baseline,
    sys: &mut [MemorySystem],
    snaps: &[Snapshot],
) -> SyncPlan {
    let plan = engine.plan(baseline, snaps).expect("plan");
    let outcomes = execute(sys, &plan);
    engine.commit(baseline, &plan, &outcomes).expect("commit");
    plan
}

/// A baseline that went to a JSON state file and came back, as after a
/// restart.
fn reloaded(baseline: &Baseline) -> Baseline {
    let back: Baseline =
        serde_json::from_str(&serde_json::to_string(baseline).expect("json")).expect("load");
    assert_eq!(&back, baseline);
    back
}

/// Two records of mkt share the placeholder; a first sync reads both
/// (complete snapshots) and holds them back. Returns the engine, the
/// systems and the baseline after it.
fn placeholders_held_in_mkt() -> (SyncEngine, Vec<MemorySystem>, Baseline) {
    let engine = engine();
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    sys[1].put(contact("m1", PLACEHOLDER, "First"));
    sys[1].put(contact("m2", PLACEHOLDER, "Second"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(plan.issues.len(), 1, "{plan}");
    assert_eq!(ambiguous(&plan.issues[0]).1, 2);
    assert_eq!(plan.ops.len(), 1, "only ada is created: {plan}");
    assert_eq!(baseline.header().ambiguous.len(), 2);
    assert_eq!(
        baseline.header().ambiguous.get("mkt", "m1"),
        Some(("email", PLACEHOLDER))
    );
    (engine, sys, baseline)
}

/// The records of `sys` whose email is the placeholder.
fn placeholders_in(sys: &MemorySystem) -> Vec<&str> {
    sys.records()
        .filter(|r| r.get("email") == Some(&json!(PLACEHOLDER)))
        .map(|r| r.id.as_str())
        .collect()
}

/// A person edits one placeholder record; the next read is incremental and
/// shows only that record. It looked unique, and was created in crm: a
/// placeholder copied into every other system (and the other, once read,
/// ambiguous against that copy). The baseline remembers the pair, through
/// a state file too: the record is still held back, and reported with its
/// twin.
#[test]
fn a_placeholder_a_partial_read_shows_alone_is_still_held_back() {
    let (engine, mut sys, baseline) = placeholders_held_in_mkt();
    let mut baseline = reloaded(&baseline);
    sys[1].set("m1", "name", "Edited");
    let snaps = [Snapshot::partial("mkt", vec![sys[1].get("m1").clone()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.issues.len(), 1, "{plan}");
    assert_eq!(plan.issues[0].record_id, "m1");
    let (key, records, count, candidates) = ambiguous(&plan.issues[0]);
    assert_eq!((key, records, count), (PLACEHOLDER, 2, 2));
    let named: Vec<&str> = candidates.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(named, ["m1", "m2"]);
    assert_eq!(placeholders_in(&sys[0]), Vec::<&str>::new());
    assert_eq!(baseline.header().ambiguous.len(), 2);

    // And again after a restart, with the other one edited.
    let mut baseline = reloaded(&baseline);
    sys[1].set("m2", "name", "Edited too");
    let snaps = [Snapshot::partial("mkt", vec![sys[1].get("m2").clone()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(ambiguous(&plan.issues[0]).1, 2);

    // A complete read of both decides as the first one did.
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(baseline.header().ambiguous.len(), 2);
    assert_eq!(placeholders_in(&sys[0]), Vec::<&str>::new());
    assert_eq!(placeholders_in(&sys[1]), ["m1", "m2"]);
}

/// After the pair in mkt is held back, a partial read shows one of them
/// edited and two new placeholder records in crm: all held back. Then crm
/// is read again partially, showing one of its pair edited: still held
/// back, by its twin in crm and by the pair in mkt.
#[test]
fn placeholders_shown_one_at_a_time_in_two_systems_stay_held_back() {
    let (engine, mut sys, mut baseline) = placeholders_held_in_mkt();
    sys[1].set("m1", "name", "Edited");
    sys[0].put(contact("c2", PLACEHOLDER, "Third"));
    sys[0].put(contact("c3", PLACEHOLDER, "Fourth"));
    let snaps = [
        Snapshot::partial(
            "crm",
            vec![sys[0].get("c2").clone(), sys[0].get("c3").clone()],
        ),
        Snapshot::partial("mkt", vec![sys[1].get("m1").clone()]),
    ];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.issues.len(), 2, "{plan}");
    let (_, records, count, _) = ambiguous(&plan.issues[0]);
    assert_eq!((records, count), (2, 4));
    assert_eq!(baseline.header().ambiguous.len(), 4);

    sys[0].set("c2", "name", "Edited");
    let snaps = [Snapshot::partial("crm", vec![sys[0].get("c2").clone()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.issues.len(), 1, "{plan}");
    let (_, records, count, candidates) = ambiguous(&plan.issues[0]);
    assert_eq!((records, count), (2, 4));
    let named: Vec<&str> = candidates.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(named, ["c2", "c3", "m1", "m2"]);
    assert_eq!(placeholders_in(&sys[0]), ["c2", "c3"]);
    assert_eq!(placeholders_in(&sys[1]), ["m1", "m2"]);
}

/// A record shown alone but sharing its value with a remembered record of
/// another system is held back too: read together, the two would have been
/// decided together.
#[test]
fn a_new_record_sharing_a_remembered_value_is_held_back() {
    let (engine, mut sys, mut baseline) = placeholders_held_in_mkt();
    sys[0].put(contact("c2", PLACEHOLDER, "Third"));
    let snaps = [Snapshot::partial("crm", vec![sys[0].get("c2").clone()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.ops.is_empty(), "{plan}");
    let (_, records, count, _) = ambiguous(&plan.issues[0]);
    assert_eq!((records, count), (1, 3));
    assert_eq!(baseline.header().ambiguous.len(), 3);
}

/// What a read shows of a remembered record decides it: a tombstone of its
/// twin, or the twin with another value, leaves it alone with the value,
/// and it is created; a complete snapshot without the twin says it is gone.
#[test]
fn a_read_that_shows_the_twin_gone_or_changed_lets_a_placeholder_sync() {
    // The twin deleted (a tombstone in a partial read).
    let (engine, mut sys, mut baseline) = placeholders_held_in_mkt();
    sys[1].remove("m2");
    let snaps = [Snapshot::partial("mkt", vec![Record::new("m2").deleted()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    assert_eq!(baseline.header().ambiguous.len(), 1);
    sys[1].set("m1", "name", "Edited");
    let snaps = [Snapshot::partial("mkt", vec![sys[1].get("m1").clone()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.issues.is_empty(), "{plan}");
    assert!(baseline.find_linked("mkt", "m1").is_some());
    assert!(baseline.header().ambiguous.is_empty());
    // Created in crm once crm is read.
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].kind, OpKind::Create);
    assert_eq!(placeholders_in(&sys[0]).len(), 1);

    // The twin given a real email: both sync.
    let (engine, mut sys, mut baseline) = placeholders_held_in_mkt();
    sys[1].set("m2", "email", "real@example.com");
    let snaps = [Snapshot::partial("mkt", vec![sys[1].get("m2").clone()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.issues.is_empty(), "{plan}");
    assert!(baseline.find_linked("mkt", "m2").is_some());
    assert_eq!(baseline.header().ambiguous.len(), 1);
    sys[1].set("m1", "name", "Edited");
    let snaps = [Snapshot::partial("mkt", vec![sys[1].get("m1").clone()])];
    let plan = sync_with(&engine, &mut baseline, &mut sys, &snaps);
    assert!(plan.issues.is_empty(), "{plan}");
    assert!(baseline.find_linked("mkt", "m1").is_some());
    assert!(baseline.header().ambiguous.is_empty());
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(plan.ops.len(), 2, "both are created: {plan}");

    // A complete snapshot without the twin: gone.
    let (engine, mut sys, mut baseline) = placeholders_held_in_mkt();
    sys[1].remove("m2");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(plan.ops.len(), 1, "m1 is created: {plan}");
    assert!(baseline.header().ambiguous.is_empty());
}

/// A remembered record listed twice (a paging bug) says nothing of what it
/// holds now: it stays remembered, and holds its twin back, in a partial
/// read and in a complete one (where it is listed, so not gone).
#[test]
fn a_remembered_record_listed_twice_stays_remembered() {
    let (engine, mut sys, mut baseline) = placeholders_held_in_mkt();
    sys[1].set("m1", "name", "Edited");
    let m1 = sys[1].get("m1").clone();
    let m2 = sys[1].get("m2").clone();
    let mut all: Vec<Record> = sys[1].records().cloned().collect();
    all.push(m2.clone());
    for snap in [
        Snapshot::partial("mkt", vec![m2.clone(), m1, m2]),
        Snapshot::complete("mkt", all),
    ] {
        let plan = sync_with(&engine, &mut baseline, &mut sys, &[snap]);
        assert!(plan.ops.is_empty(), "{plan}");
        let ambiguous: Vec<_> = plan
            .issues
            .iter()
            .filter(|i| matches!(i.kind, IssueKind::AmbiguousMatch { .. }))
            .collect();
        assert_eq!(ambiguous.len(), 1, "{plan}");
        assert_eq!(ambiguous[0].record_id, "m1");
        assert_eq!(baseline.header().ambiguous.len(), 2);
    }
}

/// Remembering is linear: 50,000 records of each system held back, then a
/// partial read of one of them: still held, reported with a bounded list.
#[test]
fn fifty_thousand_remembered_records_cost_a_bounded_issue() {
    const SHARED: usize = 50_000;
    let engine = engine();
    let crm: Vec<Record> = (0..SHARED)
        .map(|i| contact(&format!("c{i:05}"), PLACEHOLDER, "Someone"))
        .collect();
    let mkt: Vec<Record> = (0..SHARED)
        .map(|i| contact(&format!("m{i:05}"), PLACEHOLDER, "Someone"))
        .collect();
    let edited = contact("m00042", PLACEHOLDER, "Edited");
    let snaps = [
        Snapshot::complete("crm", crm),
        Snapshot::complete("mkt", mkt),
    ];
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    engine
        .commit(&mut baseline, &plan, &recsync::Outcomes::all_applied(&plan))
        .expect("commit");
    assert_eq!(baseline.header().ambiguous.len(), 2 * SHARED);
    // The same read again changes nothing in what is remembered.
    let again = engine.plan(&baseline, &snaps).expect("plan");
    assert_eq!(again.issues, plan.issues);
    let before = serde_json::to_value(&baseline).expect("json");
    engine
        .commit(
            &mut baseline,
            &again,
            &recsync::Outcomes::all_applied(&again),
        )
        .expect("commit");
    let mut after = serde_json::to_value(&baseline).expect("json");
    after["header"]["revision"] = before["header"]["revision"].clone();
    assert!(
        after == before,
        "a second read of the same records changed the baseline"
    );

    let plan = engine
        .plan(&baseline, &[Snapshot::partial("mkt", vec![edited])])
        .expect("plan");
    assert!(plan.ops.is_empty());
    assert_eq!(plan.issues.len(), 1);
    let (_, records, count, candidates) = ambiguous(&plan.issues[0]);
    assert_eq!((records, count), (SHARED, 2 * SHARED));
    assert_eq!(candidates.len(), 2 * CANDIDATES_SHOWN);
    let size = serde_json::to_string(&plan).expect("json").len();
    assert!(size < 4_000, "the plan takes {size} bytes");
}

/// Records of two systems with emails from a pool of three, so values are
/// shared; a complete read holds some back. Then partial reads, each
/// showing some records (a few edited): whatever they show, no record the
/// complete read held back is linked or created, the baseline remembers
/// exactly those, and a complete read again decides as the first did.
mod partial_reads {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Case {
        /// Per system, each record's email (an index into the pool).
        emails: [Vec<usize>; 2],
        /// Per partial read: which records it shows (by system and index,
        /// modulo the count), and whether it edits them.
        reads: Vec<Vec<(usize, usize, bool)>>,
    }

    fn case() -> impl Strategy<Value = Case> {
        let emails = prop::collection::vec(0usize..3, 0..6);
        let shown = prop::collection::vec((0usize..2, 0usize..6, any::<bool>()), 0..4);
        (emails.clone(), emails, prop::collection::vec(shown, 1..5)).prop_map(|(a, b, reads)| {
            Case {
                emails: [a, b],
                reads,
            }
        })
    }

    const POOL: [&str; 3] = ["a@x.io", "b@x.io", PLACEHOLDER];

    fn held(baseline: &Baseline) -> Vec<(String, String)> {
        serde_json::from_value::<Vec<Value>>(
            serde_json::to_value(&baseline.header().ambiguous).unwrap(),
        )
        .unwrap()
        .iter()
        .flat_map(|g| {
            let system = g["system"].as_str().unwrap().to_owned();
            g["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |r| (system.clone(), r.as_str().unwrap().to_owned()))
        })
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(common::cases(256)))]

        #[test]
        fn what_a_complete_read_held_back_stays_held_back(case in case()) {
            let engine = engine();
            let mut sys = systems();
            for (s, emails) in case.emails.iter().enumerate() {
                let prefix = ["c", "m"][s];
                for (i, e) in emails.iter().enumerate() {
                    sys[s].put(contact(&format!("{prefix}{i}"), POOL[*e], "N"));
                }
            }
            let mut baseline = Baseline::new();
            let first = sync(&engine, &mut baseline, &mut sys);
            let before = held(&baseline);
            let count = first
                .issues
                .iter()
                .filter_map(|i| match i.kind {
                    IssueKind::AmbiguousMatch { records, .. } => Some(records),
                    _ => None,
                })
                .sum::<usize>();
            prop_assert_eq!(before.len(), count, "{}", first);
            let is_held = |system: &str, id: &str| {
                before.iter().any(|(s, r)| s == system && r == id)
            };
            let copies = |sys: &[MemorySystem]| -> Vec<(String, Value)> {
                sys.iter()
                    .flat_map(|s| s.records())
                    .filter_map(|r| Some((r.id.clone(), r.get("email")?.clone())))
                    .collect()
            };
            let made = copies(&sys).len();
            for (n, read) in case.reads.iter().enumerate() {
                let mut shown: [Vec<Record>; 2] = [Vec::new(), Vec::new()];
                for (s, i, edit) in read {
                    let ids: Vec<String> = sys[*s].records().map(|r| r.id.clone()).collect();
                    let Some(id) = ids.get(i % ids.len().max(1)).cloned() else {
                        continue;
                    };
                    if *edit {
                        sys[*s].set(&id, "name", format!("edit {n}"));
                    }
                    if !shown[*s].iter().any(|r| r.id == id) {
                        shown[*s].push(sys[*s].get(&id).clone());
                    }
                }
                let snaps = [
                    Snapshot::partial("crm", shown[0].clone()),
                    Snapshot::partial("mkt", shown[1].clone()),
                ];
                let plan = engine.plan(&baseline, &snaps).expect("plan");
                for op in &plan.ops {
                    let source = op.entity.as_str().split_once(':').unwrap();
                    prop_assert!(!is_held(source.0, source.1), "{} wrote for {}", plan, op.entity);
                }
                let outcomes = execute(&mut sys, &plan);
                engine.commit(&mut baseline, &plan, &outcomes).expect("commit");
                for (system, id) in &before {
                    prop_assert!(baseline.find_linked(system, id).is_none(), "{} linked", id);
                }
                prop_assert_eq!(held(&baseline), before.clone());
            }
            // Copies were made only of records not held back: as many as
            // the first plan's creates, however the reads went.
            let created = first.ops.len();
            let again = sync(&engine, &mut baseline, &mut sys);
            prop_assert_eq!(held(&baseline), before);
            prop_assert!(copies(&sys).len() <= made + created + again.ops.len());
            prop_assert!(again.ops.iter().all(|op| op.kind != OpKind::Create), "{}", again);
        }
    }
}

// ------------------------------------------------------- non-scalar keys

/// An email that is an array, an object or a bool cannot be compared.
/// Before, such a record counted as having no key and was created in the
/// other system; its counterpart there was created back, so each system got
/// a duplicate. Now neither is matched or created, and each is reported.
#[test]
fn a_key_that_is_not_a_string_or_number_is_an_issue_not_a_duplicate() {
    let engine = engine();
    let mut sys = systems();
    sys[0].put(contact("c1", json!(["ada@example.com"]), "Ada"));
    sys[0].put(contact("c2", json!({"work": "bo@example.com"}), "Bo"));
    sys[0].put(contact("c3", json!(true), "Cy"));
    sys[1].put(contact("m1", "ada@example.com", "Ada"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    let invalid = |id: &str, found: &str| {
        (
            "crm".to_owned(),
            id.to_owned(),
            Some("email".to_owned()),
            IssueKind::InvalidKey {
                found: found.to_owned(),
            },
        )
    };
    assert_eq!(
        kinds(&plan),
        [
            invalid("c1", "array"),
            invalid("c2", "object"),
            invalid("c3", "bool"),
        ],
        "{plan}"
    );
    // m1 is still created in crm: its key is a good one, and no crm record
    // has it in a form that can be compared.
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].system, "crm");
    assert_eq!(sys[1].len(), 1, "nothing created in mkt");
    assert!(baseline.find_linked("crm", "c1").is_none());
    assert!(plan
        .to_string()
        .contains("key value cannot be compared (array)"));

    // Corrected, c1 has the email of m1's copy in crm: ambiguous, reported,
    // and still not copied into mkt.
    sys[0].set("c1", "email", "ada@example.com");
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.ops.iter().all(|o| o.kind != OpKind::Create), "{plan}");
    assert!(
        matches!(plan.issues[0].kind, IssueKind::AmbiguousMatch { .. }),
        "{plan}"
    );
    assert_eq!(sys[1].len(), 1);
}

/// Empty arrays and objects are empty values: no key, as null is.
#[test]
fn an_empty_array_or_object_key_is_no_key() {
    let engine = engine();
    let mut sys = systems();
    sys[0].put(contact("c1", json!([]), "Ada"));
    sys[0].put(contact("c2", json!({}), "Bo"));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(sys[1].len(), 2, "created, as records with no key are");
}

/// Under `MatchOnly` the record is reported as an invalid key, not as
/// unmatched.
#[test]
fn match_only_reports_an_invalid_key_as_such() {
    let engine = engine_with(MatchMode::MatchOnly);
    let mut sys = systems();
    sys[0].put(contact("c1", json!(false), "Ada"));
    let plan = engine
        .plan(&Baseline::new(), &snapshots(&sys))
        .expect("plan");
    assert_eq!(plan.issues.len(), 1, "{plan}");
    assert_eq!(
        plan.issues[0].kind,
        IssueKind::InvalidKey {
            found: "bool".to_owned()
        }
    );
}

/// Keys are tried in order: a record matched by its email is linked
/// whatever its phone holds; one left to its phone, and whose phone cannot
/// be compared, is reported and not created.
#[test]
fn an_invalid_later_key_blocks_only_records_left_to_it() {
    let map = FieldMap::builder()
        .systems(["crm", "mkt"])
        .key("email")
        .match_key(MatchKey::new("phone").normalize(Normalization::DigitsOnly))
        .field(Field::new("email").case_insensitive())
        .field(Field::new("phone"))
        .build()
        .expect("valid map");
    let engine = SyncEngine::new(map);
    let mut sys = systems();
    sys[0].put(
        Record::new("c1")
            .field("email", "ada@example.com")
            .field("phone", json!(["555-0101", "555-0102"])),
    );
    // mkt has a phone field, empty here (a system's read lists its fields).
    sys[1].put(
        Record::new("m1")
            .field("email", "ADA@example.com")
            .field("phone", ()),
    );
    sys[0].put(Record::new("c2").field("phone", json!({"home": "555-0199"})));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(
        kinds(&plan),
        [(
            "crm".to_owned(),
            "c2".to_owned(),
            Some("phone".to_owned()),
            IssueKind::InvalidKey {
                found: "object".to_owned()
            }
        )],
        "{plan}"
    );
    assert!(plan.ops.iter().all(|o| o.kind != OpKind::Create), "{plan}");
    assert_eq!(
        baseline
            .find_linked("crm", "c1")
            .and_then(|e| e.link("mkt")),
        Some("m1")
    );
}

/// A record recsync created is linked by its correlation key whatever its
/// match key holds.
#[test]
fn a_correlation_key_links_a_record_whose_match_key_is_invalid() {
    let engine = engine();
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada"));
    let plan = engine
        .plan(&Baseline::new(), &snapshots(&sys))
        .expect("plan");
    assert_eq!(plan.ops.len(), 1);
    let create = &plan.ops[0];
    // The create ran, its commit was lost, and a person set the new
    // record's email to a list meanwhile.
    sys[1].apply(create, write_time()).expect("applied");
    let made = sys[1]
        .records()
        .next()
        .map(|r| r.id.clone())
        .expect("created");
    sys[1].set(&made, "email", json!(["ada@example.com", "ada@work.com"]));
    let plan = engine
        .plan(&Baseline::new(), &snapshots(&sys))
        .expect("plan");
    assert!(plan.ops.iter().all(|o| o.kind != OpKind::Create), "{plan}");
    assert!(
        plan.issues
            .iter()
            .all(|i| !matches!(i.kind, IssueKind::InvalidKey { .. })),
        "{plan}"
    );
}

// ------------------------------------------------------- non-finite numbers

#[test]
fn the_record_builder_refuses_numbers_that_are_not_finite() {
    let r = Record::new("1")
        .field("a", f64::NAN)
        .field("b", f64::INFINITY)
        .field("c", f32::NEG_INFINITY)
        .field("d", vec![1.0, f64::NAN])
        .field("e", Some(f64::NAN))
        .field("f", 2.5)
        .field("g", None::<f64>)
        .field_at("h", f64::NAN, chrono::DateTime::UNIX_EPOCH);
    assert_eq!(r.non_finite, ["a", "b", "c", "d", "e", "h"]);
    let fields: Vec<(&str, &Value)> = r.fields.iter().collect();
    assert_eq!(fields, [("f", &json!(2.5)), ("g", &Value::Null)]);
    // A value set again replaces the refusal; a refusal replaces a value.
    let r = r.field("a", 1).field("f", f64::NAN);
    assert_eq!(r.get("a"), Some(&json!(1)));
    assert_eq!(r.get("f"), None);
    assert_eq!(r.non_finite, ["b", "c", "d", "e", "h", "f"]);
    // It survives a round trip through JSON.
    let back: Record =
        serde_json::from_str(&serde_json::to_string(&r).expect("json")).expect("json");
    assert_eq!(back, r);
}

/// Before, `field("score", f64::NAN)` was `null`: the score read as
/// emptied, and the plan cleared it in the other system. Now it reads as not
/// reported, nothing is written for it, and the plan says why.
#[test]
fn a_non_finite_number_clears_nothing_and_is_reported() {
    let engine = engine();
    let mut sys = systems();
    sys[0].put(contact("c1", "ada@example.com", "Ada").field("score", 7));
    sys[1].put(contact("m1", "ada@example.com", "Ada").field("score", 7));
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    let entity = baseline
        .find_linked("crm", "c1")
        .expect("linked")
        .id()
        .clone();

    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let r = sys[0]
            .get("c1")
            .clone()
            .field("score", bad)
            .field("name", "Ada L.");
        sys[0].put(r);
        let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
        assert_eq!(
            kinds(&plan),
            [(
                "crm".to_owned(),
                "c1".to_owned(),
                Some("score".to_owned()),
                IssueKind::NonFiniteNumber
            )],
            "{plan}"
        );
        assert_eq!(plan.issues[0].entity.as_ref(), Some(&entity));
        // The name goes through; the score is written nowhere.
        assert_eq!(plan.ops.len(), 1, "{plan}");
        let fields: Vec<&str> = plan.ops[0]
            .fields
            .iter()
            .map(|w| w.field.as_str())
            .collect();
        assert_eq!(fields, ["name"], "{plan}");
        assert!(plan.to_string().contains("field score: number not finite"));
    }
    sync(&engine, &mut baseline, &mut sys);
    assert_eq!(sys[1].get("m1").get("score"), Some(&json!(7)));
    // Reported by every plan while the record holds it, even with nothing
    // else to do.
    let plan = engine.plan(&baseline, &snapshots(&sys)).expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(plan.issues.len(), 1, "{plan}");
    // Corrected, it syncs as usual and the issue is gone.
    let r = sys[0].get("c1").clone().field("score", 8);
    sys[0].put(r);
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert!(plan.issues.is_empty(), "{plan}");
    assert_eq!(sys[1].get("m1").get("score"), Some(&json!(8)));
}

/// A new record is created without the field; one whose key is not finite
/// is not created at all.
#[test]
fn a_new_record_with_a_non_finite_number_is_created_without_it() {
    let map = FieldMap::builder()
        .systems(["crm", "mkt"])
        .key("account")
        .field(Field::new("account"))
        .field(Field::new("score"))
        .build()
        .expect("valid map");
    let engine = SyncEngine::new(map);
    let mut sys = systems();
    sys[0].put(
        Record::new("c1")
            .field("account", 1001)
            .field("score", f64::NAN),
    );
    sys[0].put(Record::new("c2").field("account", f64::INFINITY));
    let mut baseline = Baseline::new();
    let plan = sync(&engine, &mut baseline, &mut sys);
    assert_eq!(
        kinds(&plan),
        [
            (
                "crm".to_owned(),
                "c1".to_owned(),
                Some("score".to_owned()),
                IssueKind::NonFiniteNumber
            ),
            (
                "crm".to_owned(),
                "c2".to_owned(),
                Some("account".to_owned()),
                IssueKind::NonFiniteNumber
            ),
            (
                "crm".to_owned(),
                "c2".to_owned(),
                Some("account".to_owned()),
                IssueKind::InvalidKey {
                    found: "non-finite number".to_owned()
                }
            ),
        ],
        "{plan}"
    );
    assert_eq!(plan.ops.len(), 1, "{plan}");
    let created = sys[1].records().next().expect("created");
    assert_eq!(created.get("account"), Some(&json!(1001)));
    assert_eq!(created.get("score"), None, "no null written");
    assert_eq!(sys[1].len(), 1);
}

// ------------------------------------------------------- records listed twice

/// A connector's paging bug lists records twice. Each id is reported once,
/// every copy is ignored, and the plan is the same however the snapshot is
/// ordered: before, the issues of linked records came in input order.
#[test]
fn records_listed_twice_give_the_same_plan_in_any_order() {
    let engine = engine();
    let mut sys = systems();
    for i in 0..6 {
        let email = format!("p{i}@example.com");
        sys[0].put(contact(&format!("c{i}"), email.as_str(), "P"));
        sys[1].put(contact(&format!("m{i}"), email.as_str(), "P"));
    }
    let mut baseline = Baseline::new();
    sync(&engine, &mut baseline, &mut sys);
    assert_eq!(baseline.len(), 6);
    // New records too, one of them listed twice, and a placeholder pair.
    sys[0].put(contact("c9", "new@example.com", "New"));
    sys[0].put(contact("c7", PLACEHOLDER, "X"));
    sys[0].put(contact("c8", PLACEHOLDER, "Y"));
    let base = snapshots(&sys);
    let mut crm = base[0].records.clone();
    // Linked c1, c4 and c5 and new c9 twice; c4's second copy differs.
    for id in ["c5", "c1", "c9", "c4"] {
        let mut copy = sys[0].get(id).clone();
        if id == "c4" {
            copy = copy.field("name", "Paged twice");
        }
        crm.push(copy);
    }
    let listed = |order: &[usize]| {
        let crm: Vec<Record> = order.iter().map(|i| crm[*i].clone()).collect();
        vec![Snapshot::complete("crm", crm), base[1].clone()]
    };
    let forward: Vec<usize> = (0..crm.len()).collect();
    let plan = engine.plan(&baseline, &listed(&forward)).expect("plan");
    let dups: Vec<&str> = plan
        .issues
        .iter()
        .filter(|i| i.kind == IssueKind::DuplicateRecordId)
        .map(|i| i.record_id.as_str())
        .collect();
    assert_eq!(dups, ["c1", "c4", "c5", "c9"], "{plan}");
    assert!(plan
        .issues
        .iter()
        .any(|i| matches!(i.kind, IssueKind::AmbiguousMatch { .. })));
    // Nothing is created for c9, nor deleted for the linked duplicates.
    assert!(plan.ops.is_empty(), "{plan}");
    let json = serde_json::to_value(&plan).expect("json");
    let mut seed = 0x5eed_u64;
    for _ in 0..20 {
        let mut order = forward.clone();
        for i in (1..order.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let shuffled = engine.plan(&baseline, &listed(&order)).expect("plan");
        assert_eq!(
            serde_json::to_value(&shuffled).expect("json"),
            json,
            "order {order:?}"
        );
    }
    let reversed: Vec<usize> = forward.iter().rev().copied().collect();
    let plan = engine.plan(&baseline, &listed(&reversed)).expect("plan");
    assert_eq!(serde_json::to_value(&plan).expect("json"), json);
}

/// A tombstone and a live copy of one unlinked id: a duplicate too, not a
/// create.
#[test]
fn an_unlinked_id_listed_as_a_record_and_a_tombstone_is_a_duplicate() {
    let engine = engine();
    let crm = vec![
        contact("c1", "ada@example.com", "Ada"),
        contact("c1", "ada@example.com", "Ada").deleted(),
    ];
    let plan = engine
        .plan(
            &Baseline::new(),
            &[
                Snapshot::complete("crm", crm),
                Snapshot::complete("mkt", vec![]),
            ],
        )
        .expect("plan");
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(
        kinds(&plan),
        [(
            "crm".to_owned(),
            "c1".to_owned(),
            None,
            IssueKind::DuplicateRecordId
        )]
    );
}

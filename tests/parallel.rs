//! Feature `parallel`: a plan split over threads is the same plan, and
//! commits to the same baseline, as on one thread. The plans here are large
//! enough to be split (a few thousand entities per thread), too large for a
//! debug build to plan quickly: they run in release builds only (`.ci/run`
//! runs `cargo test --release --all-features --test parallel`) and are
//! listed as ignored in debug ones.

#![cfg(feature = "parallel")]

mod common;

use common::{execute, sim, snapshots, Person};
use proptest::prelude::*;
use recsync::testkit::MemorySystem;
use recsync::{
    Baseline, ConflictPolicy, DeletePolicy, Field, FieldMap, Normalization, PlanOptions, Record,
    SyncEngine,
};

/// Entities in each case: enough for several threads' chunks.
const ENTITIES: u32 = 9_000;

fn engine() -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .systems(["crm", "mkt", "erp"])
            .key("email")
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name"))
            .field(Field::new("phone").normalize(Normalization::DigitsOnly))
            .field(Field::new("score").policy(ConflictPolicy::authority("crm")))
            .field(Field::new("notes").policy(ConflictPolicy::ManualReview))
            .deletes(DeletePolicy::Propagate)
            .build()
            .expect("valid map"),
    )
}

fn contact(id: String, i: u32) -> Record {
    Record::new(id)
        .field("email", format!("p{i}@example.com"))
        .field("name", format!("Person {i}"))
        .field("phone", format!("555-{i:04}"))
        .field("score", i % 100)
        .field("notes", "")
}

/// The prefix of the ids of each system's records: `c1`, `m1`, `e1`.
const PREFIXES: [&str; 3] = ["c", "m", "e"];

/// Three systems holding the same `ENTITIES` contacts, synced once.
fn synced(engine: &SyncEngine) -> (Baseline, Vec<MemorySystem>) {
    let mut systems = vec![sim("crm", "c"), sim("mkt", "m"), sim("erp", "e")];
    for (k, sys) in systems.iter_mut().enumerate() {
        for i in 0..ENTITIES {
            let id = format!("{}{i}", PREFIXES[k]);
            sys.put(contact(id, i));
        }
    }
    let mut baseline = Baseline::new();
    let plan = engine
        .plan(&baseline, &snapshots(&systems))
        .expect("initial plan");
    let outcomes = execute(&mut systems, &plan);
    engine
        .commit(&mut baseline, &plan, &outcomes)
        .expect("initial commit");
    (baseline, systems)
}

/// One edit to apply before the compared plan.
#[derive(Debug, Clone)]
enum Edit {
    Field {
        sys: usize,
        entity: u32,
        field: usize,
        value: u32,
    },
    Delete {
        sys: usize,
        entity: u32,
    },
    Create {
        sys: usize,
        entity: u32,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        8 => (0..3usize, 0..ENTITIES, 0..5usize, 0..4u32).prop_map(|(sys, entity, field, value)| {
            Edit::Field { sys, entity, field, value }
        }),
        1 => (0..3usize, 0..ENTITIES).prop_map(|(sys, entity)| Edit::Delete { sys, entity }),
        1 => (0..3usize, 0..500u32).prop_map(|(sys, entity)| Edit::Create { sys, entity }),
    ]
}

fn apply(systems: &mut [MemorySystem], edit: &Edit) {
    const FIELDS: [&str; 5] = ["email", "name", "phone", "score", "notes"];
    match *edit {
        Edit::Field {
            sys,
            entity,
            field,
            value,
        } => {
            let id = format!("{}{entity}", PREFIXES[sys]);
            if systems[sys].contains(&id) {
                let v = if field == 3 {
                    serde_json::json!(value)
                } else {
                    serde_json::json!(format!("v{value}"))
                };
                systems[sys].set(&id, FIELDS[field], v);
            }
        }
        Edit::Delete { sys, entity } => {
            let id = format!("{}{entity}", PREFIXES[sys]);
            systems[sys].remove(&id);
        }
        Edit::Create { sys, entity } => {
            let id = format!("{}new{entity}", PREFIXES[sys]);
            let i = ENTITIES + entity;
            systems[sys].put(contact(id, i));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(6)))]

    #[test]
    #[cfg_attr(debug_assertions, ignore = "large plans: run in release (.ci/run)")]
    fn a_plan_is_the_same_on_any_number_of_threads(
        edits in prop::collection::vec(edit(), 1..600),
    ) {
        let engine = engine();
        let (baseline, mut systems) = synced(&engine);
        for e in &edits {
            apply(&mut systems, e);
        }
        let snaps = snapshots(&systems);
        let one = engine
            .plan_with(&baseline, &snaps, &PlanOptions::new().threads(1))
            .expect("plan on one thread");
        for threads in [2, 3, 7] {
            let many = engine
                .plan_with(&baseline, &snaps, &PlanOptions::new().threads(threads))
                .expect("plan on threads");
            prop_assert_eq!(&one, &many, "{} threads", threads);
        }
        let outcomes = execute(&mut systems, &one);
        let mut a = baseline.clone();
        engine.commit(&mut a, &one, &outcomes).expect("commit");
        let again = engine
            .plan_with(&a, &snapshots(&systems), &PlanOptions::new().threads(4))
            .expect("plan after commit");
        let again_one = engine
            .plan_with(&a, &snapshots(&systems), &PlanOptions::new().threads(1))
            .expect("plan after commit, one thread");
        prop_assert_eq!(again, again_one);
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "large plans: run in release (.ci/run)")]
fn a_first_sync_and_a_mass_edit_are_planned_the_same_on_any_number_of_threads() {
    let engine = engine();
    // The first sync: every record unlinked, matched by email into 9,000
    // new entities, each planned on its own.
    let mut systems = vec![sim("crm", "c"), sim("mkt", "m")];
    for (k, sys) in systems.iter_mut().enumerate() {
        for i in 0..ENTITIES {
            let id = format!("{}{i}", PREFIXES[k]);
            // Every third contact is only in the CRM: a create.
            if k == 0 || i % 3 != 0 {
                sys.put(contact(id, i));
            }
        }
    }
    let baseline = Baseline::new();
    let snaps = snapshots(&systems);
    let one = engine
        .plan_with(&baseline, &snaps, &PlanOptions::new().threads(1))
        .expect("plan on one thread");
    assert_eq!(one.changes.len(), ENTITIES as usize);
    let two = engine
        .plan_with(&baseline, &snaps, &PlanOptions::new().threads(2))
        .expect("plan on two threads");
    assert_eq!(one, two);

    // Then a mass edit: every name changed in the CRM, every phone in the
    // marketing tool; the entities all take the slow path. Some notes are
    // changed on both sides (held for review), some scores too (the CRM's
    // authority decides), and some marketing records are deleted.
    let mut baseline = baseline;
    let outcomes = execute(&mut systems, &one);
    engine
        .commit(&mut baseline, &one, &outcomes)
        .expect("commit");
    for i in 0..ENTITIES {
        systems[0].set(&format!("c{i}"), "name", format!("Renamed {i}"));
        let id = systems[1]
            .records()
            .find(|r| r.get("email") == Some(&serde_json::json!(format!("p{i}@example.com"))))
            .map(|r| r.id.clone());
        if let Some(id) = id {
            systems[1].set(&id, "phone", format!("(555) 9{i:04}"));
            if i % 7 == 0 {
                systems[0].set(&format!("c{i}"), "notes", "crm says");
                systems[1].set(&id, "notes", "mkt says");
            }
            if i % 5 == 0 {
                systems[0].set(&format!("c{i}"), "score", 1000 + i);
                systems[1].set(&id, "score", 2000 + i);
            }
            if i % 97 == 0 {
                systems[1].remove(&id);
            }
        }
    }
    let snaps = snapshots(&systems);
    let one = engine
        .plan_with(&baseline, &snaps, &PlanOptions::new().threads(1))
        .expect("plan on one thread");
    let three = engine
        .plan_with(&baseline, &snaps, &PlanOptions::new().threads(3))
        .expect("plan on three threads");
    assert!(one.ops.len() > ENTITIES as usize, "{} ops", one.ops.len());
    assert!(!one.conflicts.is_empty());
    assert!(one.changes.len() >= ENTITIES as usize);
    assert_eq!(one, three);
}

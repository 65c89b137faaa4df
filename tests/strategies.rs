//! The exported proptest strategies, used the way a user's own property
//! tests would use them, with what each promises checked.
#![cfg(feature = "proptest")]

use std::collections::BTreeSet;

mod common;

use proptest::prelude::*;
use recsync::mapping::Direction;
use recsync::testkit::strategies::{
    conflict_policy, edit_history, field_map, record, snapshot, values, Edit,
};
use recsync::testkit::MemoryConnector;
use recsync::{Baseline, ConflictPolicy, Coverage, Snapshot, SyncEngine};

const SYSTEMS: [&str; 3] = ["crm", "shop", "erp"];
const FIELDS: [&str; 3] = ["email", "phone", "city"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    /// Records hold only the fields asked for, and `updated_at` is no older
    /// than any field's own timestamp.
    #[test]
    fn records_hold_the_fields_asked_for(r in record(&FIELDS)) {
        prop_assert!(r.fields.keys().all(|k| FIELDS.contains(&k)));
        prop_assert!(!r.deleted);
        let at = r.updated_at.expect("records have updated_at");
        prop_assert!(r.field_updated_at.values().all(|t| *t <= at));
        prop_assert!(r.field_updated_at.keys().all(|k| r.fields.contains_key(k)));
    }

    /// Snapshot ids are unique; only partial snapshots hold tombstones, and
    /// a tombstone has no fields.
    #[test]
    fn snapshots_have_unique_ids_and_tombstones_only_when_partial(
        s in snapshot("crm", &FIELDS, 8)
    ) {
        let ids: BTreeSet<&str> = s.records.iter().map(|r| r.id.as_str()).collect();
        prop_assert_eq!(ids.len(), s.records.len());
        for r in &s.records {
            if r.deleted {
                prop_assert_eq!(s.coverage, Coverage::Partial);
                prop_assert!(r.fields.is_empty());
            }
        }
    }

    /// An authority is always one of the systems.
    #[test]
    fn policies_name_known_systems(p in conflict_policy(&SYSTEMS)) {
        if let ConflictPolicy::Authority { system, .. } = p {
            prop_assert!(SYSTEMS.contains(&system.as_str()));
        }
    }

    /// Values are small JSON scalars.
    #[test]
    fn values_are_scalars(v in values()) {
        prop_assert!(!v.is_array() && !v.is_object());
    }

    /// Maps build, keep the key first and bidirectional, give one-way fields
    /// exactly one source, and give authority only to a source.
    #[test]
    fn field_maps_are_valid_and_policies_fit_directions(
        map in field_map(&SYSTEMS, &FIELDS)
    ) {
        prop_assert_eq!(map.key_field().map(|k| k.name()), Some("email"));
        prop_assert_eq!(map.fields().len(), 3);
        for f in map.fields() {
            let sources = SYSTEMS.iter().filter(|s| f.is_source(s)).count();
            match f.direction() {
                Direction::Bidirectional => prop_assert_eq!(sources, 3),
                Direction::OneWay { .. } => prop_assert_eq!(sources, 1),
                _ => prop_assert_eq!(sources, 0),
            }
            if let (ConflictPolicy::Authority { system, .. }, false) =
                (f.policy(), matches!(f.direction(), Direction::NotSynced))
            {
                prop_assert!(f.is_source(system.as_str()));
            }
        }
    }

    /// What the strategies make together is something the engine plans
    /// from, and the plan does not depend on input order.
    #[test]
    fn generated_maps_and_snapshots_plan_deterministically(
        map in field_map(&SYSTEMS, &FIELDS),
        crm in snapshot("crm", &FIELDS, 5),
        shop in snapshot("shop", &FIELDS, 5),
        erp in snapshot("erp", &FIELDS, 5),
    ) {
        let engine = SyncEngine::new(map);
        let baseline = Baseline::new();
        let plan = engine.plan(&baseline, &[crm.clone(), shop.clone(), erp.clone()]).unwrap();
        let reversed = |s: &Snapshot| {
            let mut s = s.clone();
            s.records.reverse();
            s
        };
        let again = engine
            .plan(&baseline, &[reversed(&erp), reversed(&shop), reversed(&crm)])
            .unwrap();
        prop_assert_eq!(plan, again);
    }

    /// Playing a history against memory connectors: every create makes a
    /// record, every delete that found a record removes one, updates never
    /// touch the key, and sync points change nothing.
    #[test]
    fn edit_histories_play_against_memory_connectors(
        history in edit_history(3, "email", &["phone", "city"], 0..40)
    ) {
        let systems: Vec<MemoryConnector> =
            SYSTEMS.iter().map(|s| MemoryConnector::new(*s)).collect();
        let mut expected = [0usize; 3];
        for edit in &history {
            let touched = edit.apply(&systems, "contacts");
            match edit {
                Edit::Create { system, fields } => {
                    prop_assert!(touched.is_some());
                    prop_assert_eq!(&fields[0].0, "email");
                    expected[*system] += 1;
                }
                Edit::Update { fields, .. } => {
                    prop_assert!(!fields.is_empty());
                    prop_assert!(fields.iter().all(|(name, _)| name != "email"));
                }
                Edit::Delete { system, .. } if touched.is_some() => expected[*system] -= 1,
                Edit::Delete { .. } => {}
                Edit::Sync => prop_assert!(touched.is_none()),
                _ => {}
            }
        }
        for (conn, n) in systems.iter().zip(expected) {
            prop_assert_eq!(conn.len("contacts"), n);
            for r in conn.records("contacts") {
                let key = r.get("email").and_then(|v| v.as_str()).unwrap_or("");
                prop_assert!(key.len() == 2 && key.starts_with('k'), "{}", key);
            }
        }
    }
}

//! One-way fields, case by case: a target's own edit is left alone until
//! the source changes the field, and then the source's value is written,
//! and written again while the write fails.
#![cfg(feature = "testkit")]

use chrono::{DateTime, TimeDelta, Utc};
use recsync::testkit::{self, Fate, MemorySystem};
use recsync::{Baseline, Field, FieldMap, Reason, SyncEngine, SyncPlan};
use serde_json::{json, Value};

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::seconds(s)
}

struct World {
    engine: SyncEngine,
    systems: Vec<MemorySystem>,
    baseline: Baseline,
}

impl World {
    /// `stage` flows from the erp to the crm, not enforced.
    fn new() -> Self {
        let map = FieldMap::builder()
            .systems(["erp", "crm"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("stage").one_way_from("erp"))
            .build()
            .unwrap();
        World {
            engine: SyncEngine::new(map),
            systems: vec![MemorySystem::new("erp"), MemorySystem::new("crm")],
            baseline: Baseline::new(),
        }
    }

    fn sync(&mut self, t: i64, fail: bool) -> SyncPlan {
        let plan = self
            .engine
            .plan(&self.baseline, &testkit::snapshots(&self.systems))
            .unwrap();
        let fate = |_: usize, _: &_| if fail { Fate::Failed } else { Fate::Applied };
        let outcomes = testkit::apply_with(&plan, &mut self.systems, at(t), fate);
        self.engine
            .commit(&mut self.baseline, &plan, &outcomes)
            .unwrap();
        plan
    }

    fn stage(&self, s: usize, id: &str) -> Option<Value> {
        self.systems[s]
            .record(id)
            .and_then(|r| r.get("stage"))
            .cloned()
    }
}

/// The crm's own stage, typed after the record was linked, then the erp
/// changes the stage to the value the crm held when it was linked: the
/// erp's change is written, though the crm's last-known value equals it.
#[test]
fn a_source_change_reaches_a_target_that_edited_the_field_itself() {
    let mut w = World::new();
    let erp = w.systems[0].insert([("email", json!("a@x.io")), ("stage", Value::Null)], at(0));
    let crm = w.systems[1].insert(
        [("email", json!("a@x.io")), ("stage", json!("open"))],
        at(0),
    );
    w.sync(1, false);
    // Linked; the crm keeps its own stage (the erp holds none).
    assert_eq!(w.stage(1, &crm), Some(json!("open")));

    w.systems[1].edit(&crm, [("stage", "lost")], at(2)).unwrap();
    w.systems[0].edit(&erp, [("stage", "open")], at(3)).unwrap();
    let plan = w.sync(4, false);
    assert_eq!(w.stage(1, &crm), Some(json!("open")), "{plan}");
    let write = &plan.ops[0].fields[0];
    assert_eq!(
        write.reason,
        Reason::Changed {
            system: "erp".into()
        }
    );

    // Settled: the crm's own edits are left alone again.
    w.systems[1].edit(&crm, [("stage", "won")], at(5)).unwrap();
    assert!(w.sync(6, false).ops.is_empty());
    assert_eq!(w.stage(1, &crm), Some(json!("won")));
}

/// The same, with the write failing: it is planned again until made.
#[test]
fn a_failed_write_of_a_source_change_is_planned_again() {
    let mut w = World::new();
    let erp = w.systems[0].insert([("email", json!("a@x.io")), ("stage", Value::Null)], at(0));
    let crm = w.systems[1].insert(
        [("email", json!("a@x.io")), ("stage", json!("open"))],
        at(0),
    );
    w.sync(1, false);
    w.systems[1].edit(&crm, [("stage", "lost")], at(2)).unwrap();
    w.systems[0].edit(&erp, [("stage", "open")], at(3)).unwrap();

    let failed = w.sync(4, true);
    assert_eq!(failed.ops.len(), 1, "{failed}");
    assert_eq!(w.stage(1, &crm), Some(json!("lost")));
    let again = w.sync(5, false);
    assert_eq!(again.ops.len(), 1, "{again}");
    assert_eq!(w.stage(1, &crm), Some(json!("open")));
    assert!(w.sync(6, false).ops.is_empty());
}

/// The source moves between two spellings its value map reads as one
/// value: the field did not change, so the target's own value stays.
#[test]
fn another_spelling_of_the_same_value_is_no_change_for_a_target() {
    use recsync::mapping::{ValueMap, ValueRow};

    let tiers = ValueMap::new()
        .both([("erp", "Gold"), ("crm", "gold")])
        .both([("erp", "Silver"), ("crm", "silver")])
        .row(
            ValueRow::from_system("erp", [("erp", "Gold (legacy)"), ("crm", "gold")])
                .canonical("Gold"),
        );
    let map = FieldMap::builder()
        .systems(["erp", "crm"])
        .key("email")
        .field(Field::new("email"))
        .field(Field::new("stage").value_map(tiers).one_way_from("erp"))
        .build()
        .unwrap();
    let mut w = World {
        engine: SyncEngine::new(map),
        systems: vec![MemorySystem::new("erp"), MemorySystem::new("crm")],
        baseline: Baseline::new(),
    };
    let erp = w.systems[0].insert(
        [("email", json!("a@x.io")), ("stage", json!("Gold"))],
        at(0),
    );
    w.sync(1, false);
    let crm = w.systems[1].records().next().unwrap().id.clone();
    assert_eq!(w.stage(1, &crm), Some(json!("gold")));
    w.systems[1]
        .edit(&crm, [("stage", "silver")], at(2))
        .unwrap();
    assert!(w.sync(3, false).ops.is_empty());
    w.systems[0]
        .edit(&erp, [("stage", "Gold (legacy)")], at(4))
        .unwrap();
    let plan = w.sync(5, false);
    assert!(plan.ops.is_empty(), "{plan}");
    assert_eq!(w.stage(1, &crm), Some(json!("silver")));
}

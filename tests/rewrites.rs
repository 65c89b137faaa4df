//! Systems that do not store what they are sent: Salesforce keeps a phone
//! as `+15551234567` whatever format arrives, CRMs trim and upper-case and
//! round. What a system holds after recsync wrote to it is its own form of
//! the write, not a person's edit: it is not written back to the source,
//! and the target is not written again, with versions and without, whether
//! the system reports what it stored or a read shows it.
#![cfg(feature = "testkit")]

mod common;

use chrono::TimeDelta;
use recsync::connector::Applied;
use recsync::runner::SyncRunner;
use recsync::testkit::{ManualClock, MemoryConnector, Rewrite};
use recsync::{
    Field, FieldMap, Guards, MemoryStore, Normalization, OpOutcome, Outcomes, Record, Snapshot,
    SyncEngine, SyncPlan,
};
use serde_json::json;

const OBJ: &str = "contacts";

/// How the Salesforce-like system tells what it stored.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// Records and writes carry versions.
    versions: bool,
    /// Its answer to a write lists the stored values.
    report_stored: bool,
    /// The runner reads back what it wrote.
    read_back: bool,
}

fn setups() -> Vec<Setup> {
    let mut all = Vec::new();
    for versions in [true, false] {
        for report_stored in [true, false] {
            for read_back in [true, false] {
                all.push(Setup {
                    versions,
                    report_stored,
                    read_back,
                });
            }
        }
    }
    all
}

fn map(phone: Normalization) -> FieldMap {
    FieldMap::builder()
        .object(OBJ)
        .systems(["hubspot", "salesforce"])
        .key("email")
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(
            Field::new("phone")
                .native("salesforce", "Phone")
                .normalize(phone),
        )
        .build()
        .unwrap()
}

struct World {
    hubspot: MemoryConnector,
    salesforce: MemoryConnector,
    runner: SyncRunner,
    clock: ManualClock,
}

fn world(setup: Setup, phone: Normalization) -> World {
    let clock = ManualClock::ticking(
        "2026-06-01T09:00:00Z".parse().unwrap(),
        TimeDelta::seconds(1),
    );
    let hubspot = MemoryConnector::builder("hubspot")
        .clock(clock.clone())
        .versions(setup.versions)
        .build()
        .unwrap();
    let salesforce = MemoryConnector::builder("salesforce")
        .clock(clock.clone())
        .versions(setup.versions)
        .report_stored(setup.report_stored)
        .rewrite("Phone", Rewrite::E164 { country_code: 1 })
        .build()
        .unwrap();
    let runner = SyncRunner::builder(SyncEngine::new(map(phone)))
        .store(MemoryStore::new())
        .clock(clock.clone())
        .sleeper(clock.clone())
        .read_back(setup.read_back)
        .connector(hubspot.clone())
        .connector(salesforce.clone())
        .build()
        .unwrap();
    World {
        hubspot,
        salesforce,
        runner,
        clock,
    }
}

impl World {
    /// Plans (dry), checks the plan, runs, and returns the plan.
    async fn run(&self) -> SyncPlan {
        let plan = self.runner.dry_run().await.unwrap();
        let report = self.runner.run().await.unwrap();
        assert_eq!(report.failed(), 0, "{report}");
        assert_eq!(report.planned(), plan.ops.len(), "{report}");
        self.clock.advance(TimeDelta::seconds(5));
        plan
    }
}

fn writes_field(plan: &SyncPlan, field: &str) -> bool {
    plan.ops
        .iter()
        .any(|op| op.fields.iter().any(|w| w.field == field))
}

/// The issue's story: HubSpot sends `(555) 123-4567`, Salesforce stores
/// `+15551234567`. After the first run, five runs plan nothing; a later
/// edit of the contact's name writes the name and no phone; then quiet.
async fn phone_story(setup: Setup, phone: Normalization) {
    let w = world(setup, phone);
    w.hubspot.insert(
        OBJ,
        [
            ("email", json!("ada@example.com")),
            ("name", json!("Ada")),
            ("phone", json!("(555) 123-4567")),
        ],
    );
    let first = w.run().await;
    assert_eq!(first.ops.len(), 1, "{setup:?}: {first}");
    let sf = w.salesforce.records(OBJ);
    assert_eq!(sf[0].get("Phone"), Some(&json!("+15551234567")));

    for i in 0..5 {
        let plan = w.run().await;
        assert!(plan.ops.is_empty(), "{setup:?}, run {}: {plan}", i + 2);
    }

    let id = w.hubspot.records(OBJ)[0].id.clone();
    w.hubspot
        .edit(OBJ, &id, [("name", json!("Ada Lovelace"))])
        .unwrap();
    let edit = w.run().await;
    assert_eq!(edit.ops.len(), 1, "{setup:?}: {edit}");
    assert!(writes_field(&edit, "name"), "{setup:?}: {edit}");
    assert!(!writes_field(&edit, "phone"), "{setup:?}: {edit}");
    assert_eq!(
        w.salesforce.records(OBJ)[0].get("name"),
        Some(&json!("Ada Lovelace"))
    );
    // HubSpot keeps what the person typed.
    assert_eq!(
        w.hubspot.records(OBJ)[0].get("phone"),
        Some(&json!("(555) 123-4567"))
    );
    for i in 0..3 {
        let plan = w.run().await;
        assert!(plan.ops.is_empty(), "{setup:?}, after the edit {i}: {plan}");
    }

    // A real change in Salesforce (in its own form) still reaches HubSpot.
    let sf_id = w.salesforce.records(OBJ)[0].id.clone();
    w.salesforce
        .edit(OBJ, &sf_id, [("Phone", json!("555 987 6543"))])
        .unwrap();
    let change = w.run().await;
    assert!(writes_field(&change, "phone"), "{setup:?}: {change}");
    assert_eq!(
        w.hubspot.records(OBJ)[0].get("phone"),
        Some(&json!("+15559876543"))
    );
    let after = w.run().await;
    assert!(after.ops.is_empty(), "{setup:?}: {after}");
}

/// Where the system tells what it stored (its answer, or a version a read
/// can be matched with), digits-only compares are enough.
#[test]
fn a_phone_salesforce_reformats_is_not_written_back_where_the_system_says_what_it_stored() {
    futures::executor::block_on(async {
        for setup in setups() {
            let told = setup.report_stored || setup.versions;
            if told {
                phone_story(setup, Normalization::DigitsOnly).await;
            }
        }
    });
}

/// With phones compared by their E.164 form (feature `phone`), the story
/// holds in every setup, without versions and stored values too: the
/// read-back equals what was written under the normalization.
#[cfg(feature = "phone")]
#[test]
fn a_phone_salesforce_reformats_is_quiet_in_every_setup_under_the_phone_normalization() {
    futures::executor::block_on(async {
        for setup in setups() {
            phone_story(setup, Normalization::phone("US")).await;
        }
    });
}

/// A rewrite the field's normalization sees through needs neither: the
/// read-back equals what was written under the normalization.
#[test]
fn a_rewrite_the_normalization_sees_through_is_quiet_without_versions_or_stored_values() {
    futures::executor::block_on(async {
        let setup = Setup {
            versions: false,
            report_stored: false,
            read_back: false,
        };
        let clock = ManualClock::ticking(
            "2026-06-01T09:00:00Z".parse().unwrap(),
            TimeDelta::seconds(1),
        );
        let a = MemoryConnector::builder("a")
            .clock(clock.clone())
            .versions(false)
            .build()
            .unwrap();
        let b = MemoryConnector::builder("b")
            .clock(clock.clone())
            .versions(false)
            .rewrite("name", Rewrite::Trim)
            .rewrite("name", Rewrite::Uppercase)
            .build()
            .unwrap();
        let map = FieldMap::builder()
            .object(OBJ)
            .systems(["a", "b"])
            .key("email")
            .guards(Guards::off())
            .field(Field::new("email"))
            .field(Field::new("name").case_insensitive())
            .build()
            .unwrap();
        let runner = SyncRunner::builder(SyncEngine::new(map))
            .store(MemoryStore::new())
            .clock(clock.clone())
            .sleeper(clock.clone())
            .read_back(setup.read_back)
            .connector(a.clone())
            .connector(b.clone())
            .build()
            .unwrap();
        a.insert(OBJ, [("email", json!("x@y.z")), ("name", json!(" Ada "))]);
        let first = runner.run().await.unwrap();
        assert_eq!(first.planned(), 1);
        assert_eq!(b.records(OBJ)[0].get("name"), Some(&json!("ADA")));
        for _ in 0..5 {
            let plan = runner.dry_run().await.unwrap();
            assert!(plan.ops.is_empty(), "{plan}");
            runner.run().await.unwrap();
        }
        assert_eq!(a.records(OBJ)[0].get("name"), Some(&json!(" Ada ")));
    });
}

/// Without versions, stored values or a normalization that sees through
/// the rewrite, nothing tells the system's form of an update from a
/// person's edit: it is read as one, once (written to the source), and
/// then all is quiet. (A create's read-back is trusted: no one else knows
/// the new record yet.)
#[test]
fn a_rewrite_nothing_can_tell_from_an_edit_is_synced_once_and_settles() {
    futures::executor::block_on(async {
        let setup = Setup {
            versions: false,
            report_stored: false,
            read_back: true,
        };
        let w = world(setup, Normalization::DigitsOnly);
        w.hubspot.insert(
            OBJ,
            [
                ("email", json!("ada@example.com")),
                ("phone", json!("(555) 123-4567")),
            ],
        );
        // A read lists every field, empty ones as null.
        w.salesforce.insert(
            OBJ,
            [
                ("email", json!("ada@example.com")),
                ("name", json!(null)),
                ("Phone", json!(null)),
            ],
        );
        let first = w.run().await;
        assert_eq!(first.ops[0].system.as_str(), "salesforce", "{first}");
        let echo = w.run().await;
        assert!(writes_field(&echo, "phone"), "{echo}");
        assert_eq!(
            w.hubspot.records(OBJ)[0].get("phone"),
            Some(&json!("+15551234567"))
        );
        for _ in 0..3 {
            let plan = w.run().await;
            assert!(plan.ops.is_empty(), "{plan}");
        }
    });
}

/// The engine alone, with a host that executes the plan itself and
/// reports what the system stored in `Applied::stored`: the shadow takes
/// the stored form, and the baseline keeps what was written beside it.
#[test]
fn a_host_reports_what_the_system_stored_and_the_next_plan_is_empty() {
    let engine = SyncEngine::new(map(Normalization::DigitsOnly));
    let hub = Record::new("h1")
        .field("email", "ada@example.com")
        .field("phone", "(555) 123-4567");
    let plan = engine
        .plan(
            &recsync::Baseline::new(),
            &[
                Snapshot::complete("hubspot", vec![hub.clone()]),
                Snapshot::complete("salesforce", vec![]),
            ],
        )
        .unwrap();
    assert_eq!(plan.ops.len(), 1);
    let op = &plan.ops[0];
    let phone = op.fields.iter().find(|w| w.native == "Phone").unwrap();
    assert_eq!(phone.value, json!("(555) 123-4567"));
    let applied = Applied::created("s1")
        .with_version("1")
        .with_stored("Phone", "+15551234567");
    let mut outcomes = Outcomes::new();
    outcomes.record(op.id, OpOutcome::from(applied));
    let mut baseline = recsync::Baseline::new();
    engine.commit(&mut baseline, &plan, &outcomes).unwrap();
    let e = baseline.find_linked("salesforce", "s1").unwrap();
    assert_eq!(e.shadow("salesforce", "phone"), Some(json!("+15551234567")));
    let record = e.to_record();
    assert_eq!(
        record.rewritten["salesforce"]["phone"],
        json!("(555) 123-4567")
    );

    let sf = Record::new("s1")
        .version("1")
        .field("email", "ada@example.com")
        .field("Phone", "+15551234567");
    let snapshots = [
        Snapshot::complete("hubspot", vec![hub.clone()]),
        Snapshot::complete("salesforce", vec![sf.clone()]),
    ];
    let next = engine.plan(&baseline, &snapshots).unwrap();
    assert!(next.ops.is_empty(), "{next}");

    // HubSpot's phone changes: Salesforce is written, and what it held in
    // its own form is no reason to hold the change back.
    let hub2 = hub.field("phone", "(555) 000-1111");
    let changed = engine
        .plan(
            &baseline,
            &[
                Snapshot::complete("hubspot", vec![hub2]),
                Snapshot::complete("salesforce", vec![sf]),
            ],
        )
        .unwrap();
    assert_eq!(changed.ops.len(), 1, "{changed}");
    assert_eq!(changed.ops[0].fields[0].value, json!("(555) 000-1111"));
}

/// Random maps and edit histories (the testkit's strategies) over three
/// systems that each store values in forms of their own.
#[cfg(feature = "proptest")]
mod walks {
    use futures::executor::block_on;
    use proptest::prelude::*;
    use recsync::guard::Refusal;
    use recsync::testkit::strategies::{edit_history, field_map, Edit};
    use recsync::testkit::{MemoryConnector, Rewrite};
    use recsync::{
        Baseline, Connector, OpOutcome, Outcomes, PlanOptions, Snapshot, SyncEngine, SyncPlan,
        WriteOp,
    };
    use serde_json::Value;

    use super::common;

    const SYSTEMS: [&str; 3] = ["crm", "shop", "erp"];
    /// The object type of the testkit's random maps.
    const OBJECT: &str = "records";

    /// Plain systems, or (`rewrite`) systems where crm upper-cases and answers writes with what it stored; shop
    /// lower-cases and rounds numbers (to floats); erp pads strings with a
    /// space. Forms no normalization sees through: what tells them from an
    /// edit is the answer (crm) and the version a read shows (all three).
    /// Systems without versions are in `sync_machine.rs`, with forms the
    /// fields' normalizations see through.
    fn systems(rewrite: bool) -> Vec<MemoryConnector> {
        let pad = || {
            Rewrite::custom(|v: &Value| match v.as_str() {
                Some(s) => Value::from(format!("{s} ")),
                None => v.clone(),
            })
        };
        let mut out = Vec::new();
        for (i, s) in SYSTEMS.iter().enumerate() {
            let mut b = MemoryConnector::builder(*s);
            for field in ["phone", "city"].into_iter().filter(|_| rewrite) {
                b = match i {
                    0 => b.rewrite(field, Rewrite::Uppercase).report_stored(true),
                    1 => b
                        .rewrite(field, Rewrite::Lowercase)
                        .rewrite(field, Rewrite::Round(0)),
                    _ => b.rewrite(field, pad()),
                };
            }
            out.push(b.build().unwrap());
        }
        out
    }

    fn read(systems: &[MemoryConnector]) -> Vec<Snapshot> {
        systems
            .iter()
            .map(|c| block_on(c.fetch(OBJECT)))
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    fn execute(systems: &[MemoryConnector], plan: &SyncPlan) -> Outcomes {
        let mut outcomes = Outcomes::new();
        for c in systems {
            let ops: Vec<WriteOp> = plan
                .ops
                .iter()
                .filter(|op| op.system == *c.system())
                .cloned()
                .collect();
            if ops.is_empty() {
                continue;
            }
            let results = block_on(c.apply(OBJECT, &ops)).unwrap();
            for (op, r) in ops.iter().zip(results) {
                outcomes.record(op.id, OpOutcome::from(r));
            }
        }
        outcomes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

        /// Every plan of a random history is the same, byte for byte, made
        /// with the fast path and by reading every field; and once people
        /// stop, the runs settle: a few runs with no edits, then one that
        /// plans nothing (a system's own form of a write is never taken
        /// for an edit twice; what a safety guard refused is approved).
        #[test]
        fn fast_path_and_full_walk_agree_and_runs_settle_over_systems_that_rewrite(
            map in field_map(&SYSTEMS, &["email", "phone", "city"]),
            history in edit_history(3, "email", &["phone", "city"], 0..40),
            rewrite in any::<bool>(),
        ) {
            let engine = SyncEngine::new(map);
            let systems = systems(rewrite);
            let mut baseline = Baseline::new();
            let mut last = usize::MAX;
            let quiet = vec![Edit::Sync; 6];
            let mut refused: Option<Refusal> = None;
            for (i, edit) in history.iter().chain(&quiet).enumerate() {
                edit.apply(&systems, OBJECT);
                if *edit != Edit::Sync {
                    continue;
                }
                // Once people stop, a person approves what a guard refused.
                let mut options = PlanOptions::new();
                if let Some(r) = refused.as_ref().filter(|_| i >= history.len()) {
                    options = options.approve(r);
                }
                let snaps = read(&systems);
                let fast = engine.plan_with(&baseline, &snaps, &options).unwrap();
                let full = engine
                    .plan_with(&baseline, &snaps, &options.clone().full_walk())
                    .unwrap();
                prop_assert_eq!(
                    serde_json::to_string(&fast).unwrap(),
                    serde_json::to_string(&full).unwrap()
                );
                last = fast.ops.len();
                refused = fast.refusal.clone();
                let outcomes = execute(&systems, &fast);
                engine.commit(&mut baseline, &fast, &outcomes).unwrap();
            }
            prop_assert_eq!(last, 0, "still writing after six runs with no edits");
        }
    }
}

/// A system that takes a write (its version moves) and keeps the value it
/// held, every time (a field this integration may not change there): after
/// one write again, what it holds is taken as its form of the value, and
/// the plan that takes it says so with a `KeptOwnValue` issue; then all is
/// quiet, until the value to write changes.
#[test]
fn a_write_the_system_keeps_its_own_value_for_is_reported_once_taken() {
    use recsync::plan::IssueKind;
    use recsync::{Baseline, Connector, Direction, SystemId};
    let map = FieldMap::builder()
        .object(OBJ)
        .systems(["hubspot", "salesforce"])
        .key("email")
        .guards(Guards::off())
        .field(Field::new("email").case_insensitive())
        .field(
            Field::new("phone")
                .native("salesforce", "Phone")
                .direction(Direction::OneWay {
                    from: SystemId::new("hubspot"),
                    enforce: false,
                }),
        )
        .build()
        .unwrap();
    let engine = SyncEngine::new(map);
    let hs = MemoryConnector::new("hubspot");
    let sf = MemoryConnector::builder("salesforce")
        .rewrite("Phone", Rewrite::custom(|_| json!("+15550000000")))
        .build()
        .unwrap();
    let systems = [&hs, &sf];
    let ada = hs.insert(
        OBJ,
        [
            ("email", json!("ada@x.io")),
            ("phone", json!("+15551234567")),
        ],
    );
    sf.insert(OBJ, [("email", json!("ada@x.io")), ("Phone", json!("x"))]);
    let mut baseline = Baseline::new();
    let mut sync = || {
        let snaps: Vec<Snapshot> = systems
            .iter()
            .map(|c| futures::executor::block_on(c.fetch(OBJ)).unwrap())
            .collect();
        let plan = engine.plan(&baseline, &snaps).unwrap();
        let mut outcomes = Outcomes::new();
        for op in &plan.ops {
            let c = systems.iter().find(|c| *c.system() == op.system).unwrap();
            let r = futures::executor::block_on(c.apply(OBJ, std::slice::from_ref(op))).unwrap();
            outcomes.record(op.id, OpOutcome::from(r.into_iter().next().unwrap()));
        }
        engine.commit(&mut baseline, &plan, &outcomes).unwrap();
        plan
    };
    let kept = |plan: &SyncPlan| {
        plan.issues
            .iter()
            .filter(|i| matches!(&i.kind, IssueKind::KeptOwnValue { native } if native == "Phone"))
            .count()
    };
    let plans: Vec<SyncPlan> = (0..6).map(|_| sync()).collect();
    let told: usize = plans.iter().map(kept).sum();
    assert_eq!(
        told,
        1,
        "{}",
        plans
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("---\n")
    );
    assert!(plans[3..].iter().all(|p| p.ops.is_empty()), "{}", plans[5]);
    assert_eq!(
        sf.records(OBJ)[0].get("Phone"),
        Some(&json!("+15550000000"))
    );

    // A new value to write is written (and kept again, so reported again
    // after its write again).
    hs.edit(OBJ, &ada, [("phone", json!("+15559876543"))])
        .unwrap();
    let next = sync();
    assert_eq!(next.ops.len(), 1, "{next}");
}

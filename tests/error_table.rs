//! The README's error table, row by row, through `SyncEngine::plan` and
//! `commit` against systems that keep what they are written:
//!
//! | problem | what the plan does |
//! | --- | --- |
//! | field mapping fails (transform error, unmapped value) | issue logged; the record is skipped; the rest of the plan goes on |
//! | invalid data format | the record is flagged: written without the bad field, issue logged |
//! | missing required field | the record's write is blocked until corrected; issue logged |
//!
//! Each test also corrects the value and checks that the next plan syncs
//! what was held back, so nothing is lost. Sensitive fields are redacted in
//! the plan's display.
#![cfg(feature = "testkit")]

use chrono::DateTime;
use recsync::mapping::{
    Builtin, Conversion, DateFormat, MappingError, Unmapped, Validation, ValueMap, ValueProblem,
    ValueType,
};
use recsync::plan::{Issue, IssueKind};
use recsync::testkit::{self, MemorySystem};
use recsync::{Baseline, Field, FieldMap, OpKind, OpOutcome, Record, SyncEngine, SyncPlan};
use serde_json::{json, Value};

/// Systems that hold records and apply the ops they are given
/// (`testkit::apply`): a create gets the id `{system}-new-{n}`; no versions
/// or timestamps of their own.
struct World {
    engine: SyncEngine,
    baseline: Baseline,
    systems: Vec<MemorySystem>,
}

impl World {
    fn new(map: FieldMap) -> Self {
        let systems = map
            .systems()
            .iter()
            .map(|s| {
                MemorySystem::new(s)
                    .id_prefix(format!("{s}-new-"))
                    .versions(false)
                    .timestamps(false)
            })
            .collect();
        World {
            engine: SyncEngine::new(map),
            baseline: Baseline::new(),
            systems,
        }
    }

    fn system(&mut self, system: &str) -> &mut MemorySystem {
        self.systems
            .iter_mut()
            .find(|s| *s.system() == system)
            .expect("a system of the map")
    }

    fn put(&mut self, system: &str, record: Record) {
        self.system(system).put(record);
    }

    /// Sets one native field of a record.
    fn set(&mut self, system: &str, id: &str, field: &str, value: impl Into<Value>) {
        let record = self
            .system(system)
            .record_mut(id)
            .expect("a record of the system");
        record.fields.insert(field, value.into());
    }

    fn get(&self, system: &str, id: &str, field: &str) -> Option<Value> {
        self.systems
            .iter()
            .find(|s| *s.system() == system)
            .and_then(|s| s.record(id))
            .and_then(|r| r.get(field).cloned())
    }

    fn plan(&self) -> SyncPlan {
        self.engine
            .plan(&self.baseline, &testkit::snapshots(&self.systems))
            .expect("a plan")
    }

    /// Applies every op of `plan` to the systems and commits.
    fn apply(&mut self, plan: &SyncPlan) {
        assert!(
            plan.ops.iter().all(|op| op.kind != OpKind::Delete),
            "no deletes expected here: {plan}"
        );
        let outcomes = testkit::apply(plan, &mut self.systems, DateTime::UNIX_EPOCH);
        for (_, outcome) in outcomes.iter() {
            assert!(
                matches!(outcome, OpOutcome::Applied { .. }),
                "{outcome:?}\n{plan}"
            );
        }
        self.engine
            .commit(&mut self.baseline, plan, &outcomes)
            .expect("commit");
    }

    /// Plans, applies and commits; returns the plan.
    fn sync(&mut self) -> SyncPlan {
        let plan = self.plan();
        self.apply(&plan);
        plan
    }
}

/// The native fields written to `record` of `system` (the created record's
/// fields when `record` is `None`).
fn writes(plan: &SyncPlan, system: &str, record: Option<&str>) -> Vec<(String, Value)> {
    plan.ops
        .iter()
        .filter(|op| op.system == system && op.record_id.as_deref() == record)
        .flat_map(|op| {
            op.fields
                .iter()
                .map(|w| (w.native.to_string(), w.value.clone()))
        })
        .collect()
}

fn ops_to(plan: &SyncPlan, system: &str) -> usize {
    plan.ops.iter().filter(|op| op.system == system).count()
}

fn only_issue<'p>(plan: &'p SyncPlan, system: &str, field: &str) -> &'p Issue {
    assert_eq!(plan.issues.len(), 1, "{}", plan.display_unredacted());
    let issue = &plan.issues[0];
    assert_eq!(issue.system, system, "{}", plan.display_unredacted());
    assert_eq!(issue.field.as_deref(), Some(field));
    issue
}

fn contact(id: &str, email: &str, name: &str) -> Record {
    Record::new(id).field("email", email).field("name", name)
}

// ------------------------------------------------- mapping fails (reading)

/// crm writes birthdays as MM/DD/YYYY, erp as ISO; a value map between
/// their status spellings whose unmapped values are errors.
fn reading_map() -> FieldMap {
    FieldMap::builder()
        .systems(["crm", "erp"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("birthday").transform(
            "crm",
            Builtin::Date {
                native: DateFormat::MonthDayYear,
            },
        ))
        .field(
            Field::new("status").value_map(
                ValueMap::new()
                    .both([("crm", "Active"), ("erp", "A")])
                    .both([("crm", "Inactive"), ("erp", "I")])
                    .unmapped(Unmapped::Error),
            ),
        )
        .build()
        .unwrap()
}

fn two_linked_contacts(map: FieldMap) -> World {
    let mut w = World::new(map);
    for (c, e, email, name) in [
        ("c1", "e1", "ada@example.com", "Ada"),
        ("c2", "e2", "bo@example.com", "Bo"),
    ] {
        w.put(
            "crm",
            contact(c, email, name)
                .field("birthday", "12/10/1815")
                .field("status", "Active"),
        );
        w.put(
            "erp",
            contact(e, email, name)
                .field("birthday", "1815-12-10")
                .field("status", "A"),
        );
    }
    let plan = w.sync();
    assert!(plan.ops.is_empty() && plan.issues.is_empty(), "{plan}");
    assert_eq!(w.baseline.len(), 2);
    w
}

#[test]
fn a_transform_error_when_reading_skips_the_record_and_the_rest_goes_on() {
    let mut w = two_linked_contacts(reading_map());
    // c1 gets a birthday crm's format cannot read, and a new name; c2 only
    // a new name.
    w.set("crm", "c1", "birthday", "31/12/1815");
    w.set("crm", "c1", "name", "Ada Lovelace");
    w.set("crm", "c2", "name", "Bo Diddley");

    let plan = w.sync();
    let issue = only_issue(&plan, "crm", "birthday");
    assert_eq!(issue.record_id, "c1");
    assert!(issue.entity.is_some());
    match &issue.kind {
        IssueKind::Mapping { error } => {
            assert_eq!(error.direction(), Conversion::ToCanonical);
            assert_eq!(error.value(), &json!("31/12/1815"));
            assert!(matches!(error, MappingError::Transform { .. }));
        }
        other => panic!("expected a mapping issue, got {other:?}"),
    }
    // The skipped record gets no ops at all, not even its readable name.
    assert!(writes(&plan, "erp", Some("e1")).is_empty(), "{plan}");
    // The other record syncs.
    assert_eq!(
        writes(&plan, "erp", Some("e2")),
        [("name".to_owned(), json!("Bo Diddley"))]
    );
    assert_eq!(w.get("erp", "e1", "name"), Some(json!("Ada")));

    // Still wrong: flagged again, still nothing written.
    let again = w.sync();
    assert_eq!(again.issues.len(), 1, "{again}");
    assert!(again.ops.is_empty(), "{again}");

    // Corrected: everything held back arrives, the name included.
    w.set("crm", "c1", "birthday", "12/31/1815");
    let fixed = w.sync();
    assert!(fixed.issues.is_empty(), "{fixed}");
    let mut got = writes(&fixed, "erp", Some("e1"));
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("birthday".to_owned(), json!("1815-12-31")),
            ("name".to_owned(), json!("Ada Lovelace")),
        ]
    );
    assert_eq!(w.get("erp", "e1", "birthday"), Some(json!("1815-12-31")));
    assert!(w.plan().is_empty(), "quiet once synced");
}

#[test]
fn an_unmapped_value_when_reading_skips_the_record_and_the_rest_goes_on() {
    let mut w = two_linked_contacts(reading_map());
    w.set("crm", "c1", "status", "Paused");
    w.set("crm", "c1", "name", "Ada Lovelace");
    w.set("crm", "c2", "status", "Inactive");

    let plan = w.sync();
    let issue = only_issue(&plan, "crm", "status");
    assert_eq!(issue.record_id, "c1");
    match &issue.kind {
        IssueKind::Mapping {
            error: MappingError::Unmapped {
                value, direction, ..
            },
        } => {
            assert_eq!(value, &json!("Paused"));
            assert_eq!(*direction, Conversion::ToCanonical);
        }
        other => panic!("expected an unmapped value, got {other:?}"),
    }
    assert!(writes(&plan, "erp", Some("e1")).is_empty(), "{plan}");
    assert_eq!(
        writes(&plan, "erp", Some("e2")),
        [("status".to_owned(), json!("I"))]
    );
    // The display names system, record, field and value.
    let text = plan.to_string();
    for part in ["crm", "c1", "status", "Paused"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }

    w.set("crm", "c1", "status", "Inactive");
    let fixed = w.sync();
    assert!(fixed.issues.is_empty(), "{fixed}");
    let mut got = writes(&fixed, "erp", Some("e1"));
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("name".to_owned(), json!("Ada Lovelace")),
            ("status".to_owned(), json!("I")),
        ]
    );
    assert!(w.plan().is_empty());
}

#[test]
fn a_new_record_that_cannot_be_read_is_not_created_until_corrected() {
    let mut w = two_linked_contacts(reading_map());
    w.put(
        "crm",
        contact("c3", "cy@example.com", "Cy").field("birthday", "not a date"),
    );
    w.set("crm", "c2", "name", "Bo D.");
    let plan = w.sync();
    let issue = only_issue(&plan, "crm", "birthday");
    assert_eq!(issue.record_id, "c3");
    assert_eq!(ops_to(&plan, "erp"), 1, "only c2's update: {plan}");
    assert!(writes(&plan, "erp", None).is_empty(), "no create: {plan}");

    w.set("crm", "c3", "birthday", "01/02/1990");
    let fixed = w.sync();
    assert!(fixed.issues.is_empty(), "{fixed}");
    let created = writes(&fixed, "erp", None);
    assert!(
        created.contains(&("birthday".to_owned(), json!("1990-01-02"))),
        "{fixed}"
    );
    assert!(created.contains(&("name".to_owned(), json!("Cy"))));
    assert!(w.plan().is_empty());
}

// ------------------------------------------------- mapping fails (writing)

/// Three systems: erp keeps prices as numbers, crm and shop as strings.
fn writing_map() -> FieldMap {
    FieldMap::builder()
        .systems(["crm", "erp", "shop"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("price").transform("erp", Builtin::NumberToString))
        .build()
        .unwrap()
}

#[test]
fn a_value_that_cannot_be_written_blocks_that_target_only() {
    let mut w = World::new(writing_map());
    w.put(
        "crm",
        contact("c1", "ada@example.com", "Ada").field("price", "10"),
    );
    w.put(
        "erp",
        contact("e1", "ada@example.com", "Ada").field("price", 10),
    );
    w.put(
        "shop",
        contact("s1", "ada@example.com", "Ada").field("price", "10"),
    );
    assert!(w.sync().is_empty());

    // crm writes a price erp cannot hold as a number, and a new name.
    w.set("crm", "c1", "price", "ten");
    w.set("crm", "c1", "name", "Ada L.");
    let plan = w.sync();
    let issue = only_issue(&plan, "erp", "price");
    assert_eq!(issue.record_id, "e1");
    match &issue.kind {
        IssueKind::Mapping { error } => {
            assert_eq!(error.direction(), Conversion::ToNative);
            assert_eq!(error.value(), &json!("ten"));
        }
        other => panic!("expected a mapping issue, got {other:?}"),
    }
    // erp's whole write is blocked; shop gets both fields.
    assert_eq!(ops_to(&plan, "erp"), 0, "{plan}");
    let mut shop = writes(&plan, "shop", Some("s1"));
    shop.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        shop,
        [
            ("name".to_owned(), json!("Ada L.")),
            ("price".to_owned(), json!("ten")),
        ]
    );

    // Flagged again while it stays wrong.
    let again = w.sync();
    assert_eq!(again.issues.len(), 1, "{again}");
    assert_eq!(ops_to(&again, "erp"), 0, "{again}");

    // Corrected: erp gets the name it missed and the price.
    w.set("crm", "c1", "price", "12.5");
    let fixed = w.sync();
    assert!(fixed.issues.is_empty(), "{fixed}");
    let mut erp = writes(&fixed, "erp", Some("e1"));
    erp.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        erp,
        [
            ("name".to_owned(), json!("Ada L.")),
            ("price".to_owned(), json!(12.5)),
        ]
    );
    assert_eq!(w.get("shop", "s1", "price"), Some(json!("12.5")));
    assert!(w.plan().is_empty());
}

// ------------------------------------------------- invalid data format

fn validating_map() -> FieldMap {
    FieldMap::builder()
        .systems(["crm", "erp"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(Field::new("title").validate("erp", Validation::new().max_length(10)))
        .field(Field::new("age").validate("erp", Validation::new().kind(ValueType::Integer)))
        .field(Field::new("tier").validate("erp", Validation::new().allowed(["gold", "silver"])))
        .build()
        .unwrap()
}

fn one_linked_contact(map: FieldMap) -> World {
    // A system's read lists every field it has, the empty ones as null.
    let listed = |r: Record, system: &str| {
        map.fields()
            .iter()
            .filter_map(|f| f.native_name(system))
            .fold(r, |r, n| {
                if r.get(n).is_some() {
                    r
                } else {
                    r.field(n, ())
                }
            })
    };
    let crm = listed(contact("c1", "ada@example.com", "Ada"), "crm");
    let erp = listed(contact("e1", "ada@example.com", "Ada"), "erp");
    let mut w = World::new(map);
    w.put("crm", crm);
    w.put("erp", erp);
    let plan = w.sync();
    assert!(plan.is_empty() && plan.issues.is_empty(), "{plan}");
    w
}

#[test]
fn an_invalid_value_is_left_out_and_flagged_until_corrected() {
    type Case = (&'static str, Value, Value, fn(&ValueProblem) -> bool);
    let cases: [Case; 3] = [
        (
            "title",
            json!("Chief Everything Officer"),
            json!("CEO"),
            |p| {
                matches!(
                    p,
                    ValueProblem::TooLong {
                        max: 10,
                        length: 24,
                        ..
                    }
                )
            },
        ),
        ("age", json!("thirty"), json!(30), |p| {
            matches!(
                p,
                ValueProblem::WrongType {
                    expected: ValueType::Integer,
                    ..
                }
            )
        }),
        (
            "tier",
            json!("platinum"),
            json!("gold"),
            |p| matches!(p, ValueProblem::NotAllowed { allowed, .. } if allowed.len() == 2),
        ),
    ];
    for (field, bad, good, expected) in cases {
        let mut w = one_linked_contact(validating_map());
        w.set("crm", "c1", field, bad.clone());
        w.set("crm", "c1", "name", "Ada L.");

        let plan = w.sync();
        let issue = only_issue(&plan, "erp", field);
        assert_eq!(issue.record_id, "e1");
        match &issue.kind {
            IssueKind::InvalidValue { problem } => {
                assert!(expected(problem), "{field}: {problem:?}");
                assert_eq!(problem.value(), &bad);
            }
            other => panic!("{field}: expected an invalid value, got {other:?}"),
        }
        // Written without the bad field.
        assert_eq!(
            writes(&plan, "erp", Some("e1")),
            [("name".to_owned(), json!("Ada L."))],
            "{field}"
        );
        // Still empty, as it was listed.
        assert_eq!(w.get("erp", "e1", field), Some(Value::Null), "{field}");

        // Flagged again on the next plan, with nothing else to write.
        let again = w.sync();
        assert!(again.ops.is_empty(), "{field}: {again}");
        let issue = only_issue(&again, "erp", field);
        assert!(matches!(issue.kind, IssueKind::InvalidValue { .. }));

        // Corrected: written, and quiet after.
        w.set("crm", "c1", field, good.clone());
        let fixed = w.sync();
        assert!(fixed.issues.is_empty(), "{field}: {fixed}");
        assert_eq!(
            writes(&fixed, "erp", Some("e1")),
            [(field.to_owned(), good.clone())],
            "{field}"
        );
        assert_eq!(w.get("erp", "e1", field), Some(good));
        assert!(w.plan().is_empty(), "{field}");
    }
}

// ------------------------------------------------- missing required field

fn required_map() -> FieldMap {
    FieldMap::builder()
        .systems(["crm", "erp"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name").validate("erp", Validation::new().required()))
        .field(Field::new("phone"))
        .build()
        .unwrap()
}

#[test]
fn a_create_lacking_a_required_field_is_blocked_until_corrected() {
    let mut w = one_linked_contact(required_map());
    w.put(
        "crm",
        Record::new("c2")
            .field("email", "bo@example.com")
            .field("phone", "555-2"),
    );
    w.set("crm", "c1", "phone", "555-1");
    let plan = w.sync();
    let issue = only_issue(&plan, "erp", "name");
    assert!(matches!(issue.kind, IssueKind::MissingRequired));
    assert!(issue.entity.is_some());
    // c2 is not created; c1's update goes on.
    assert!(writes(&plan, "erp", None).is_empty(), "{plan}");
    assert_eq!(
        writes(&plan, "erp", Some("e1")),
        [("phone".to_owned(), json!("555-1"))]
    );

    let again = w.sync();
    assert!(again.ops.is_empty(), "{again}");
    assert!(matches!(
        only_issue(&again, "erp", "name").kind,
        IssueKind::MissingRequired
    ));

    w.set("crm", "c2", "name", "Bo");
    let fixed = w.sync();
    assert!(fixed.issues.is_empty(), "{fixed}");
    let created = writes(&fixed, "erp", None);
    assert!(
        created.contains(&("name".to_owned(), json!("Bo"))),
        "{fixed}"
    );
    assert!(created.contains(&("phone".to_owned(), json!("555-2"))));
    assert!(w.plan().is_empty());
}

#[test]
fn an_update_emptying_a_required_field_is_blocked_until_corrected() {
    let mut w = one_linked_contact(required_map());
    w.set("crm", "c1", "name", "");
    w.set("crm", "c1", "phone", "555-1");
    let plan = w.sync();
    let issue = only_issue(&plan, "erp", "name");
    assert_eq!(issue.record_id, "e1");
    assert!(matches!(issue.kind, IssueKind::MissingRequired));
    // The whole write to erp is blocked, the phone with it.
    assert_eq!(ops_to(&plan, "erp"), 0, "{plan}");
    assert_eq!(w.get("erp", "e1", "name"), Some(json!("Ada")));

    let again = w.sync();
    assert!(again.ops.is_empty(), "{again}");
    assert_eq!(again.issues.len(), 1, "{again}");

    w.set("crm", "c1", "name", "Ada L.");
    let fixed = w.sync();
    assert!(fixed.issues.is_empty(), "{fixed}");
    let mut erp = writes(&fixed, "erp", Some("e1"));
    erp.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        erp,
        [
            ("name".to_owned(), json!("Ada L.")),
            ("phone".to_owned(), json!("555-1")),
        ]
    );
    assert!(w.plan().is_empty());
}

// ------------------------------------------------- sensitive fields

#[test]
fn sensitive_values_are_redacted_in_mapping_and_invalid_value_issues() {
    let map = FieldMap::builder()
        .systems(["crm", "erp"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name"))
        .field(
            Field::new("tax_id")
                .sensitive()
                .transform("crm", Builtin::StringToNumber),
        )
        .field(
            Field::new("iban")
                .sensitive()
                .validate("erp", Validation::new().max_length(8)),
        )
        .build()
        .unwrap();
    let mut w = one_linked_contact(map);
    w.set("crm", "c1", "tax_id", "SECRET-4711");
    let plan = w.sync();
    let issue = only_issue(&plan, "crm", "tax_id");
    assert!(issue.sensitive);
    assert!(matches!(issue.kind, IssueKind::Mapping { .. }));
    assert!(!plan.to_string().contains("SECRET-4711"), "{plan}");
    assert!(plan.to_string().contains("[redacted]"), "{plan}");
    assert!(plan
        .display_unredacted()
        .to_string()
        .contains("SECRET-4711"));

    w.set("crm", "c1", "tax_id", "4711");
    w.set("crm", "c1", "iban", "NO93 8601 1117 947");
    let plan = w.sync();
    let issue = only_issue(&plan, "erp", "iban");
    assert!(issue.sensitive);
    assert!(matches!(issue.kind, IssueKind::InvalidValue { .. }));
    let shown = plan.to_string();
    assert!(!shown.contains("8601"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(plan.display_unredacted().to_string().contains("8601"));
    // The readable tax id went through.
    assert_eq!(w.get("erp", "e1", "tax_id"), Some(json!(4711)));
}

//! Runs `examples/review_screen.rs` and checks what its reviewer is shown
//! and what the decision does, so the example cannot rot: the screen lists
//! each conflict's candidates as each system holds them (a value map's
//! values, a transform's epoch milliseconds), never the canonical codes;
//! the log's view (`Display`) keeps the canonical values; the value chosen
//! reaches HubSpot in HubSpot's form and the queue no longer lists it.

#![cfg(feature = "testkit")]

#[allow(dead_code)]
#[path = "../examples/review_screen.rs"]
mod example;

use recsync::mapping::{Builtin, DateFormat, ValueMap, ValueRow};
use recsync::plan::{NativeValue, NotNative};
use recsync::store::ReviewItem;
use recsync::{Conflict, ConflictPolicy, Field, FieldMap, StateStore};
use serde_json::json;

fn conflict<'a>(items: &'a [ReviewItem], field: &str) -> &'a Conflict {
    items
        .iter()
        .find_map(|item| match item {
            ReviewItem::Field(c) if c.field == field => Some(c),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no conflict on {field} in {items:?}"))
}

#[tokio::test]
async fn the_reviewer_sees_each_system_s_values_and_the_decision_reaches_hubspot() {
    let mut out = Vec::new();
    let story = example::story(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let [first, second] = &story.open;

    // Two conflicts held: the stage and the close date.
    assert_eq!(first.len(), 2, "{text}");
    let stage = conflict(first, "stage");
    let close = conflict(first, "close_date");

    // The log's view: no values (only the map knows which are sensitive);
    // the conflict itself holds them in canonical form.
    assert_eq!(
        first[0].to_string(),
        format!(
            r#"conflict {} on hubspot:1 field stage (manual review): baseline [redacted], hubspot [redacted] at 2026-03-02 11:00:00, salesforce [redacted] at 2026-03-02 11:20:00"#,
            stage.id
        )
    );
    assert_eq!(
        stage.to_string(),
        format!(
            r#"conflict {} on hubspot:1 field stage (manual review): baseline "Q", hubspot "W" at 2026-03-02 11:00:00, salesforce "L" at 2026-03-02 11:20:00"#,
            stage.id
        )
    );
    assert!(text.contains(&first[1].to_string()), "{text}");

    // The reviewer's screen: each system's own field names and values.
    let screen = example::screen(first, &story.map);
    assert_eq!(
        screen,
        format!(
            "2 items waiting for review\n\
             [1] conflict {} on hubspot:1 field stage (manual review):\n    \
             hubspot dealstage = \"closedwon\" (was \"qualifiedtobuy\"; changed 2026-03-02 11:00:00)\n    \
             salesforce StageName = \"Closed Lost\" (was \"Qualification\"; changed 2026-03-02 11:20:00)\n\
             [2] conflict {} on hubspot:2 field close_date (manual review):\n    \
             hubspot closedate = 1778803200000 (was 1777507200000; changed 2026-03-02 11:00:00)\n    \
             salesforce CloseDate = \"2026-06-30\" (was \"2026-04-30\"; changed 2026-03-02 11:20:00)",
            stage.id, close.id
        )
    );
    assert!(text.contains(&screen), "{text}");
    assert!(
        !screen.contains("\"W\"") && !screen.contains("\"L\""),
        "{screen}"
    );

    // The same as data, for a UI.
    let native = close.native(&story.map);
    let hubspot = native.candidate("hubspot").unwrap();
    assert_eq!(hubspot.field, "closedate");
    assert_eq!(hubspot.value.value(), &json!(1_778_803_200_000_i64));
    assert_eq!(
        hubspot.baseline.as_ref().map(NativeValue::value),
        Some(&json!(1_777_507_200_000_i64))
    );
    assert_eq!(
        native.candidate("salesforce").unwrap().value.value(),
        &json!("2026-06-30")
    );

    // Resolved by taking Salesforce's stage: HubSpot holds it in its own
    // form, the baseline in canonical form, and the queue lists only the
    // close date, still held (nothing written for it).
    assert!(
        text.contains(&format!(
            "resolved {}: take salesforce's StageName \"Closed Lost\"",
            stage.id
        )),
        "{text}"
    );
    let acme = story
        .hubspot
        .records(example::DEALS)
        .into_iter()
        .find(|r| r.get("dealname") == Some(&json!("Acme renewal")))
        .unwrap();
    assert_eq!(acme.get("dealstage"), Some(&json!("closedlost")));
    // The amount, changed in Salesforce only, was synced without review.
    assert_eq!(acme.get("amount"), Some(&json!(9500)));
    assert!(
        text.contains("hubspot 1 dealstage: \"closedlost\""),
        "{text}"
    );
    let sf = story.salesforce.records(example::DEALS);
    let sf_acme = sf
        .iter()
        .find(|r| r.get("Name") == Some(&json!("Acme renewal")))
        .unwrap();
    assert_eq!(sf_acme.get("StageName"), Some(&json!("Closed Lost")));
    let baseline = story.store.load(example::DEALS).unwrap();
    let entity = baseline.entity(&stage.entity).unwrap();
    assert_eq!(entity.canonical("stage"), Some(json!("L")));
    assert_eq!(entity.held().count(), 0);

    assert_eq!(second.len(), 1, "{text}");
    assert_eq!(second[0].id(), close.id);
    let globex = story
        .hubspot
        .records(example::DEALS)
        .into_iter()
        .find(|r| r.get("dealname") == Some(&json!("Globex expansion")))
        .unwrap();
    assert_eq!(globex.get("closedate"), Some(&json!(1_778_803_200_000_i64)));
    assert!(text.ends_with(&format!("{}\n", example::screen(second, &story.map))));
    let runs: Vec<(usize, usize)> = story
        .reports
        .iter()
        .map(|r| (r.applied(), r.conflicts))
        .collect();
    assert_eq!(runs, [(2, 0), (1, 2), (1, 1)]);
}

/// The deals' map with the stage's "Closed Lost" row gone (a map edited
/// since the conflict was held).
fn map_without_lost() -> FieldMap {
    let stage = ValueMap::new()
        .row(
            ValueRow::both([
                ("hubspot", "qualifiedtobuy"),
                ("salesforce", "Qualification"),
            ])
            .canonical("Q"),
        )
        .row(
            ValueRow::both([("hubspot", "closedwon"), ("salesforce", "Closed Won")]).canonical("W"),
        );
    FieldMap::builder()
        .object(example::DEALS)
        .systems(["hubspot", "salesforce"])
        .key("name")
        .field(
            Field::new("name")
                .native("hubspot", "dealname")
                .native("salesforce", "Name"),
        )
        .field(
            Field::new("stage")
                .native("hubspot", "dealstage")
                .native("salesforce", "StageName")
                .value_map(stage)
                .policy(ConflictPolicy::ManualReview),
        )
        .field(
            Field::new("close_date")
                .native("hubspot", "closedate")
                .native("salesforce", "CloseDate")
                .transform(
                    "hubspot",
                    Builtin::Date {
                        native: DateFormat::EpochMillis,
                    },
                )
                .policy(ConflictPolicy::ManualReview),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_value_the_map_cannot_show_natively_is_listed_canonical_and_the_rest_still_shows() {
    let story = example::story(&mut Vec::new()).await.unwrap();
    let [first, _] = &story.open;
    let map = map_without_lost();
    // The queue knows what each system held: Salesforce's "Closed Lost"
    // shows as it is, though the map lost its row; the baseline, which
    // only the map can show, is converted as before.
    let screen = example::screen(first, &map);
    assert!(
        screen.contains("\n    salesforce StageName = \"Closed Lost\" (was \"Qualification\";"),
        "{screen}"
    );
    // A conflict without what the systems held (as a plan has it):
    // Salesforce's "L" has no row any more, so it is canonical, with why;
    // every other value is still in its system's form.
    let mut stage = conflict(first, "stage").clone();
    for c in &mut stage.candidates {
        c.held_as = None;
    }
    let shown = stage.native(&map).to_string();
    assert!(
        shown.contains(
            "\n    salesforce StageName = \"L\" (canonical form: value \"L\" has no row in the value map to native; was \"Qualification\"; changed 2026-03-02 11:20:00)"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("hubspot dealstage = \"closedwon\""),
        "{shown}"
    );
    assert!(
        screen.contains("hubspot closedate = 1778803200000"),
        "{screen}"
    );
    let native = stage.native(&map);
    let sf = native.candidate("salesforce").unwrap();
    assert!(matches!(
        sf.value.not_native(),
        Some(NotNative::Failed { .. })
    ));
    assert_eq!(sf.value.value(), &json!("L"));
    let held = conflict(first, "stage").native(&map);
    assert_eq!(
        held.candidate("salesforce").unwrap().value,
        NativeValue::Native(json!("Closed Lost"))
    );

    // A map of another object type knows none of the fields: each value
    // as its system held it (the queue knows it), under the canonical
    // field name; the baseline canonical; nothing fails.
    let other = FieldMap::builder()
        .object("contacts")
        .systems(["hubspot", "salesforce"])
        .field(Field::new("email"))
        .build()
        .unwrap();
    let screen = example::screen(first, &other);
    assert!(
        screen.contains("hubspot stage = \"closedwon\" (was \"Q\" in canonical form;"),
        "{screen}"
    );
    assert_eq!(screen.lines().count(), 1 + 2 * 3, "{screen}");
}

/// A value map that reads every value no row covers as `"other"`: the
/// canonical candidate is `"other"`, but the reviewer sees what the system
/// holds (`"platinum"`), which the queue kept from the read.
#[test]
fn the_queue_shows_what_a_system_held_where_the_map_reads_many_values_as_one() {
    use recsync::mapping::Unmapped;
    use recsync::{Baseline, MemoryStore, Outcomes, Record, Snapshot, SyncEngine};

    let map = FieldMap::builder()
        .object("deals")
        .systems(["a", "b"])
        .key("name")
        .field(Field::new("name"))
        .field(
            Field::new("tier")
                .value_map(
                    ValueMap::new()
                        .both([("a", "gold"), ("b", "gold")])
                        .both([("a", "bronze"), ("b", "bronze")])
                        .both([("a", "other"), ("b", "other")])
                        .unmapped(Unmapped::Default(json!("other"))),
                )
                .policy(ConflictPolicy::ManualReview),
        )
        .build()
        .unwrap();
    let engine = SyncEngine::new(map);
    let read = |a: &str, b: &str| {
        [
            Snapshot::complete(
                "a",
                vec![Record::new("1").field("name", "Acme").field("tier", a)],
            ),
            Snapshot::complete(
                "b",
                vec![Record::new("2").field("name", "Acme").field("tier", b)],
            ),
        ]
    };
    let store = MemoryStore::new();
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &read("gold", "gold")).unwrap();
    let summary = engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    store.save("deals", &baseline, &summary).unwrap();
    // Both change the tier: a to a value no row covers, b to "bronze".
    let plan = engine.plan(&baseline, &read("platinum", "bronze")).unwrap();
    assert_eq!(plan.conflicts.len(), 1, "{plan}");
    assert_eq!(plan.conflicts[0].candidates[0].value, json!("other"));
    let summary = engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    store.save("deals", &baseline, &summary).unwrap();

    let queue = recsync::store::ReviewQueue::new(&store, "deals");
    let open = queue.open().unwrap();
    let [ReviewItem::Field(c)] = open.as_slice() else {
        panic!("one conflict: {open:?}");
    };
    let native = c.native(engine.map());
    let value = |s: &str| native.candidate(s).unwrap().value.clone();
    assert_eq!(value("a"), NativeValue::Native(json!("platinum")));
    assert_eq!(value("b"), NativeValue::Native(json!("bronze")));
    let shown = open[0].display_with(engine.map()).to_string();
    assert!(shown.contains("a tier = \"platinum\""), "{shown}");
}

//! A real sync of two in-memory systems, a CRM and a marketing tool: plan,
//! print the plan with its reasons, apply it, commit, and plan again.

use recsync::{Baseline, ConflictPolicy, Field, FieldMap, Outcomes, Record, Snapshot, SyncEngine};
use serde_json::{json, Value};

fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("valid timestamp in example data")
}

fn contact(
    id: &str,
    email: &str,
    name: &str,
    phone: &str,
    title: &str,
    city: &str,
    amount: i64,
) -> Record {
    Record::new(id)
        .field("email", email)
        .field("name", name)
        .field("phone", phone)
        .field("title", title)
        .field("city", city)
        .field("amount", amount)
        .updated_at(t("2026-01-01T00:00:00Z"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let map = FieldMap::builder()
        .systems(["crm", "marketing"])
        .key("email")
        .no_overwrite_on_empty(true)
        .field(Field::new("email").case_insensitive())
        .field(Field::new("name").policy(ConflictPolicy::authority("crm")))
        .field(Field::new("phone"))
        .field(Field::new("title").policy(ConflictPolicy::authority("crm")))
        .field(Field::new("city"))
        .field(Field::new("amount").policy(ConflictPolicy::ManualReview))
        .build()?;
    let engine = SyncEngine::new(map);

    // A dozen contacts, the same in both systems: the first sync links them.
    let people: Vec<(String, String)> = (1..=12)
        .map(|i| (format!("{i:02}"), format!("person{i}@example.com")))
        .collect();
    let base = |prefix: &str| -> Vec<Record> {
        people
            .iter()
            .map(|(i, email)| {
                contact(
                    &format!("{prefix}{i}"),
                    email,
                    &format!("Person {i}"),
                    "555-1",
                    "CTO",
                    "Oslo",
                    100,
                )
            })
            .collect()
    };
    let mut crm = base("c");
    let mut marketing = base("m");
    let mut baseline = Baseline::new();
    let first = engine.plan(
        &baseline,
        &[
            Snapshot::complete("crm", crm.clone()),
            Snapshot::complete("marketing", marketing.clone()),
        ],
    )?;
    engine.commit(&mut baseline, &first, &Outcomes::all_applied(&first))?;
    println!("first sync linked {} contacts\n", baseline.len());

    // Edits in both systems since then.
    let edit = |r: &mut Record, field: &str, value: Value, at: &str| {
        r.fields.insert(field, value);
        r.field_updated_at.insert(field.into(), t(at));
    };
    edit(&mut crm[0], "phone", json!("555-2"), "2026-02-01T09:00:00Z"); // propagated to marketing
    edit(
        &mut marketing[1],
        "city",
        json!("Bergen"),
        "2026-02-01T09:00:00Z",
    ); // propagated to crm
    edit(&mut crm[2], "phone", json!("555-3"), "2026-02-01T09:00:00Z"); // last-write-wins: crm newer
    edit(
        &mut marketing[2],
        "phone",
        json!("555-4"),
        "2026-02-01T07:00:00Z",
    );
    edit(&mut crm[3], "name", json!("Bob"), "2026-02-01T03:00:00Z"); // authority: crm wins
    edit(
        &mut marketing[3],
        "name",
        json!("Robert"),
        "2026-02-01T09:00:00Z",
    );
    edit(&mut crm[4], "city", json!(""), "2026-02-01T09:00:00Z"); // held: no overwrite on empty
    edit(&mut crm[5], "amount", json!(120), "2026-02-01T05:00:00Z"); // manual review
    edit(
        &mut marketing[5],
        "amount",
        json!(130),
        "2026-02-01T06:00:00Z",
    );

    let snapshots = [
        Snapshot::complete("crm", crm.clone()),
        Snapshot::complete("marketing", marketing.clone()),
    ];
    let plan = engine.plan(&baseline, &snapshots)?;
    println!("{plan}");

    // Execute the plan against the in-memory systems, then commit.
    for op in &plan.ops {
        let records = if op.system == "crm" {
            &mut crm
        } else {
            &mut marketing
        };
        if let Some(r) = records
            .iter_mut()
            .find(|r| Some(&r.id) == op.record_id.as_ref())
        {
            for w in &op.fields {
                r.fields.insert(w.native.clone(), w.value.clone());
            }
        }
    }
    engine.commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))?;

    let again = engine.plan(
        &baseline,
        &[
            Snapshot::complete("crm", crm),
            Snapshot::complete("marketing", marketing),
        ],
    )?;
    println!(
        "planning again after commit: {} write(s); still held: {} conflict(s), {} value(s)",
        again.ops.len(),
        again.conflicts.len(),
        again.held.len()
    );
    Ok(())
}

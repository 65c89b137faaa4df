//! Runs `examples/hubspot_salesforce.rs` on its config file, so the example
//! and `examples/hubspot_salesforce.toml` cannot rot.

#![cfg(feature = "toml")]

#[allow(dead_code)]
#[path = "../examples/hubspot_salesforce.rs"]
mod example;

use recsync::mapping::{MapSet, Registry};
use recsync::SyncPlan;
use serde_json::{json, Value};

fn writes(plan: &SyncPlan, system: &str) -> Vec<(String, Value)> {
    plan.ops
        .iter()
        .filter(|op| op.system == system)
        .flat_map(|op| {
            op.fields
                .iter()
                .map(|w| (w.native.to_string(), w.value.clone()))
        })
        .collect()
}

fn native(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect()
}

#[test]
fn the_config_loads_three_objects_in_file_order() {
    let set = MapSet::from_toml(example::CONFIG, &Registry::new()).unwrap();
    let names: Vec<&str> = set.iter().map(|m| m.object()).collect();
    assert_eq!(names, ["contacts", "companies", "deals"]);
    assert_eq!(set.systems(), ["hubspot", "salesforce"]);
    let contacts = set.get("contacts").unwrap();
    assert_eq!(contacts.key_field().unwrap().name(), "email");
    assert!(contacts.field("lead_score").unwrap().is_source("hubspot"));
    assert!(!contacts
        .field("lead_score")
        .unwrap()
        .is_source("salesforce"));
    // The record rules come through: two match keys, per-system deletes.
    let c = set.to_config();
    assert_eq!(c.objects[0].match_keys.len(), 2);
    assert_eq!(
        c.objects[0].deletes_from.get("salesforce"),
        Some(&recsync::DeletePolicy::Unlink)
    );
    // The file round-trips through the types.
    let again = MapSet::from_toml(&set.to_toml().unwrap(), &Registry::new()).unwrap();
    assert_eq!(again.to_config(), set.to_config());
}

#[test]
fn every_object_links_quietly_then_syncs_the_edits() {
    let plans = example::run().unwrap();
    assert_eq!(plans.len(), 3);
    for p in &plans {
        assert!(
            p.first.ops.is_empty() && p.first.issues.is_empty(),
            "{}: {}",
            p.object,
            p.first
        );
    }
    let contacts = &plans[0].edits;
    assert!(contacts.issues.is_empty(), "{contacts}");
    assert_eq!(
        writes(contacts, "salesforce"),
        native(&[
            ("Lead_Score__c", json!(5)),
            ("Status", json!("SQL - Working")),
            ("Last_Activity__c", json!("2026-03-03")),
        ])
    );
    // The reformatted phone is not a change; the title is.
    assert_eq!(
        writes(contacts, "hubspot"),
        native(&[("jobtitle", json!("VP Engineering"))])
    );

    let companies = &plans[1].edits;
    assert_eq!(
        writes(companies, "hubspot"),
        native(&[
            ("numberofemployees", json!("135")),
            ("annualrevenue", json!("1250000")),
        ])
    );
    assert_eq!(
        writes(companies, "salesforce"),
        native(&[("Industry", json!("Computer Software"))])
    );

    let deals = &plans[2].edits;
    assert_eq!(
        writes(deals, "hubspot"),
        native(&[
            ("amount", json!("6500.5")),
            ("closedate", json!(1_776_211_200_000_i64)),
            ("dealstage", json!("closedwon")),
        ])
    );
    assert!(writes(deals, "salesforce").is_empty(), "{deals}");
}

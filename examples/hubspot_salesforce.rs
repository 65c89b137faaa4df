//! A HubSpot / Salesforce sync of contacts, companies and deals, mapped by
//! `examples/hubspot_salesforce.toml`: renamed fields, a lifecycle stage
//! value table, a 10-point score as 5 stars, dates as epoch milliseconds on
//! one side and `MM/DD/YYYY` or ISO 8601 on the other.
//!
//! For each object it links the records (first sync), then plans the sync of
//! a round of edits made in both systems, and prints the plan.
//!
//! Run with `cargo run --example hubspot_salesforce --features toml`.

use recsync::mapping::{MapSet, Registry};
use recsync::{Baseline, Outcomes, Record, Snapshot, SyncEngine, SyncPlan};
use serde_json::json;

/// The config file the example (and its test) load.
pub const CONFIG: &str = include_str!("hubspot_salesforce.toml");

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap_or_default()
}

/// Each object's records before and after the round of edits:
/// (object, HubSpot before, Salesforce before, HubSpot after, Salesforce after).
fn sample_data() -> Vec<(&'static str, Record, Record, Record, Record)> {
    let monday = at("2026-03-02T08:00:00Z");
    let tuesday = at("2026-03-03T15:00:00Z");

    let hs_contact = Record::new("hs-101")
        .field("email", "ada@example.com")
        .field("name", "Ada Lovelace")
        .field("phone", "+1 (555) 010-0001")
        .field("jobtitle", "CTO")
        .field("hubspotscore", 8)
        .field("lifecyclestage", "Marketing Qualified Lead")
        .field("notes_last_updated", 1_772_357_400_000_i64) // 2026-03-01T09:30:00Z
        .updated_at(monday);
    let sf_contact = Record::new("003A000001")
        .field("Email", "ADA@example.com")
        .field("Name", "Ada Lovelace")
        .field("Phone", "1-555-010-0001")
        .field("Title", "CTO")
        .field("Lead_Score__c", 4)
        .field("Status", "MQL - Reviewing")
        .field("Last_Activity__c", "2026-03-01")
        .updated_at(monday);
    // HubSpot: the lead qualifies, scores 10, and was active on the evening
    // of 3 March in New York (early on 4 March in UTC).
    let hs_contact_after = hs_contact
        .clone()
        .field("lifecyclestage", "Sales Qualified Lead")
        .field("hubspotscore", 10)
        .field("notes_last_updated", 1_772_586_000_000_i64) // 2026-03-04T01:00:00Z
        .updated_at(tuesday);
    // Salesforce: a new title, and the phone number reformatted (the same
    // digits: not a change, so nothing is written for it).
    let sf_contact_after = sf_contact
        .clone()
        .field("Title", "VP Engineering")
        .field("Phone", "+1 555 010 0001")
        .updated_at(tuesday);

    let hs_company = Record::new("hs-9001")
        .field("domain", "acme.example")
        .field("name", "Acme")
        .field("industry", "Software")
        .field("numberofemployees", "120")
        .field("annualrevenue", "1000000")
        .updated_at(monday);
    let sf_company = Record::new("001A000001")
        .field("Website", "ACME.example")
        .field("Name", "Acme")
        .field("Industry", "Software")
        .field("NumberOfEmployees", 120)
        .field("ARR__c", 1_000_000)
        .updated_at(monday);
    let hs_company_after = hs_company
        .clone()
        .field("industry", "Computer Software")
        .updated_at(tuesday);
    let sf_company_after = sf_company
        .clone()
        .field("NumberOfEmployees", 135)
        .field("ARR__c", 1_250_000)
        .updated_at(tuesday);

    let hs_deal = Record::new("hs-deal-7")
        .field("dealname", "Acme renewal")
        .field("amount", "5000")
        .field("closedate", 1_774_915_200_000_i64) // 2026-03-31
        .field("dealstage", "contractsent")
        .updated_at(monday);
    let sf_deal = Record::new("006A000001")
        .field("Name", "Acme renewal")
        .field("Amount", 5000)
        .field("CloseDate", "03/31/2026")
        .field("StageName", "Proposal")
        .updated_at(monday);
    let hs_deal_after = hs_deal.clone();
    let sf_deal_after = sf_deal
        .clone()
        .field("Amount", json!(6500.5))
        .field("CloseDate", "04/15/2026")
        .field("StageName", "Closed Won")
        .updated_at(tuesday);

    vec![
        (
            "contacts",
            hs_contact,
            sf_contact,
            hs_contact_after,
            sf_contact_after,
        ),
        (
            "companies",
            hs_company,
            sf_company,
            hs_company_after,
            sf_company_after,
        ),
        ("deals", hs_deal, sf_deal, hs_deal_after, sf_deal_after),
    ]
}

fn snapshots(hs: Record, sf: Record) -> [Snapshot; 2] {
    [
        Snapshot::complete("hubspot", vec![hs]),
        Snapshot::complete("salesforce", vec![sf]),
    ]
}

/// One object's two plans.
pub struct ObjectPlans {
    /// The object type.
    pub object: String,
    /// The first sync: it links the records.
    pub first: SyncPlan,
    /// The sync of a round of edits.
    pub edits: SyncPlan,
}

/// Loads the config and, per object, links the records and plans the sync
/// of the edits.
pub fn run() -> Result<Vec<ObjectPlans>, Box<dyn std::error::Error>> {
    let maps = MapSet::from_toml(CONFIG, &Registry::new())?;
    let mut out = Vec::new();
    for (object, hs, sf, hs_after, sf_after) in sample_data() {
        let map = maps
            .get(object)
            .ok_or_else(|| format!("the config has no {object}"))?;
        let engine = SyncEngine::new(map.clone());
        let mut baseline = Baseline::new();
        let first = engine.plan(&baseline, &snapshots(hs, sf))?;
        engine.commit(&mut baseline, &first, &Outcomes::all_applied(&first))?;
        let plan = engine.plan(&baseline, &snapshots(hs_after, sf_after))?;
        out.push(ObjectPlans {
            object: object.to_owned(),
            first,
            edits: plan,
        });
    }
    Ok(out)
}

#[allow(dead_code)] // the example's test includes this file for `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    for ObjectPlans {
        object,
        first,
        edits,
    } in run()?
    {
        println!("== {object}: first sync links the records");
        println!("{first}");
        println!("== {object}: after a round of edits");
        println!("{edits}");
    }
    Ok(())
}

#![cfg(feature = "proptest")]
// tests/sync_rules.rs: recsync's promises, checked against our own map.
//
// [dev-dependencies]
// recsync = { version = "0.1", features = ["proptest"] }
// proptest = "1"
// serde_json = "1"

use proptest::prelude::*;
use recsync::mapping::{MapSet, Registry, Transform, TransformError};
use recsync::policy::{ConflictInput, ConflictResolver, Resolution};
use recsync::testkit::check::{MapCheck, ResolverCheck};
use serde_json::{json, Value};

/// The shop keeps order totals in cents; the CRM in dollars.
#[derive(Debug)]
struct Cents;

impl Transform for Cents {
    fn name(&self) -> &str {
        "cents"
    }
    fn to_canonical(&self, native: &Value) -> Result<Value, TransformError> {
        let cents = native
            .as_i64()
            .ok_or_else(|| TransformError::wrong_type("integer", native))?;
        Ok(json!(cents as f64 / 100.0))
    }
    fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError> {
        let dollars = canonical
            .as_f64()
            .ok_or_else(|| TransformError::wrong_type("number", canonical))?;
        Ok(json!((dollars * 100.0).round() as i64))
    }
}

/// Two systems changed a total: the larger wins; equal ones, the system
/// named first in the alphabet (never the order they come in).
#[derive(Debug)]
struct Largest;

impl ConflictResolver for Largest {
    fn name(&self) -> &str {
        "largest"
    }
    fn resolve(&self, input: &ConflictInput<'_>) -> Resolution {
        let largest = input
            .candidates
            .iter()
            .filter_map(|c| Some((c.value.as_f64()?, c.system)))
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)));
        match largest {
            Some((_, system)) => Resolution::Take(system.clone()),
            None => Resolution::Hold("no total is a number".into()),
        }
    }
}

const MAP: &str = r#"{
  "systems": ["crm", "shop"],
  "objects": [{
    "name": "orders",
    "key": "number",
    "fields": [
      { "name": "number" },
      { "name": "total", "policy": { "resolver": "largest" },
        "systems": { "shop": { "native": "total_cents", "custom_transform": "cents" } } },
      { "name": "status", "value_map": { "unmapped": "error", "rows": [
        { "values": { "crm": "Open", "shop": "pending" } },
        { "values": { "crm": "Won", "shop": "paid" } },
        { "from": "shop", "values": { "crm": "Shipped", "shop": "shipped" } }
      ] } }
    ]
  }]
}"#;

fn maps() -> MapSet {
    let registry = Registry::new().transform(Cents).resolver(Largest);
    MapSet::from_json(MAP, &registry).expect("the map builds")
}

/// The CRM takes totals in dollars and cents: what people type there.
fn totals() -> impl Strategy<Value = Value> {
    (0i64..10_000_000).prop_map(|cents| json!(cents as f64 / 100.0))
}

#[test]
fn our_map_keeps_recsyncs_promises() {
    let checked = MapCheck::of_set(&maps())
        .values("orders", "total", totals())
        .cases(500)
        .assert();
    // The histories did sync something.
    assert!(checked.objects.iter().all(|o| o.stats.writes > 0));
}

#[test]
fn our_resolver_ignores_the_order_of_candidates() {
    ResolverCheck::new(Largest)
        .systems(["crm", "shop", "erp"])
        .values(totals())
        .cases(500)
        .run()
        .unwrap();
}

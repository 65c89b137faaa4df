//! `WriteOp::json_patch`: each op as an RFC 6902 JSON Patch, applied with
//! the `json-patch` crate to the target record's document, leaves exactly
//! what the connector leaves when it applies the op.
#![cfg(feature = "testkit")]

use recsync::runner::SyncRunner;
use recsync::testkit::MemoryConnector;
use recsync::{Connector, Field, FieldMap, MemoryStore, OpKind, Record, SyncEngine};
use serde_json::{json, Map, Value};

const OBJ: &str = "contacts";

fn document(r: &Record) -> Value {
    Value::Object(
        r.fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect::<Map<_, _>>(),
    )
}

#[tokio::test]
async fn patches_leave_what_the_connector_leaves() {
    let map = FieldMap::builder()
        .object(OBJ)
        .systems(["crm", "shop"])
        .key("email")
        .field(Field::new("email"))
        .field(Field::new("name").native("shop", "full/name"))
        .field(Field::new("phone").native("shop", "tel~home"))
        .build()
        .unwrap();
    let crm = MemoryConnector::new("crm");
    let shop = MemoryConnector::new("shop");
    let ada = crm.insert(
        OBJ,
        [
            ("email", json!("ada@x.io")),
            ("name", json!("Ada")),
            ("phone", json!("555-0101")),
        ],
    );
    let runner = SyncRunner::builder(SyncEngine::new(map))
        .connector(crm.clone())
        .connector(shop.clone())
        .store(MemoryStore::new())
        .build()
        .unwrap();
    runner.run().await.unwrap();
    // A name changed, a phone cleared, a new contact.
    crm.edit(
        OBJ,
        &ada,
        [("name", json!("Ada Lovelace")), ("phone", Value::Null)],
    )
    .unwrap();
    crm.insert(
        OBJ,
        [("email", json!("grace@x.io")), ("name", json!("Grace"))],
    );
    let plan = runner.dry_run().await.unwrap();
    let ops: Vec<_> = plan.writes_to("shop").cloned().collect();
    assert_eq!(ops.len(), 2, "{plan}");
    for op in &ops {
        let before = match &op.record_id {
            Some(id) => document(shop.records(OBJ).iter().find(|r| &r.id == id).unwrap()),
            None => Value::Null,
        };
        let patch: json_patch::Patch = serde_json::from_value(op.json_patch().unwrap()).unwrap();
        let mut patched = before.clone();
        json_patch::patch(&mut patched, &patch).unwrap();
        let applied = shop.apply(OBJ, std::slice::from_ref(op)).await.unwrap();
        let id = match op.kind {
            OpKind::Create => applied[0].as_ref().unwrap().record_id.clone().unwrap(),
            _ => op.record_id.clone().unwrap(),
        };
        let after = shop.records(OBJ).into_iter().find(|r| r.id == id).unwrap();
        assert_eq!(patched, document(&after), "{op:?}");
    }
    // The update replaced the name and cleared the phone to null.
    let update = ops.iter().find(|op| op.kind == OpKind::Update).unwrap();
    assert_eq!(
        update.json_patch(),
        Some(json!([
            {"op": "add", "path": "/full~1name", "value": "Ada Lovelace"},
            {"op": "add", "path": "/tel~0home", "value": null},
        ]))
    );
    // A delete removes the document: no patch says that.
    let delete = recsync::testkit::OpBuilder::delete("shop", OBJ, "r1").build();
    assert_eq!(delete.json_patch(), None);
}

//! What the engine's unit tests share.

use crate::mapping::{Field, FieldMap};

/// Three systems matched by email; `phone` is not in `shop`.
pub(super) fn map() -> FieldMap {
    FieldMap::builder()
        .object("contacts")
        .systems(["crm", "shop", "erp"])
        .key("email")
        .field(Field::new("email"))
        .field(Field::new("phone").not_in("shop"))
        .field(Field::new("name"))
        .build()
        .expect("a valid map")
}

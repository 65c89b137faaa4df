//! [`OpBuilder`]: write ops made by hand, to test a connector without
//! planning a sync.

use serde_json::Value;

use crate::baseline::EntityId;
use crate::hash::StableHasher;
use crate::model::{Name, SystemId};
use crate::plan::{FieldWrite, OpId, OpKind, Reason, WriteOp};

/// Builds a [`WriteOp`] as the engine would plan it, for tests of a
/// connector.
///
/// Fields are written under their native names (the canonical name is the
/// same). The op's [id](WriteOp::id) is a stable hash of what it does; its
/// entity is the correlation key where there is one, else `"test:{id}"`.
///
/// ```
/// use recsync::testkit::OpBuilder;
/// use serde_json::json;
///
/// let create = OpBuilder::create("crm", "contacts")
///     .field("email", json!("ada@example.com"))
///     .correlation("e1")
///     .build();
/// assert_eq!(create.record_id, None);
/// assert_eq!(create.correlation.as_deref(), Some("e1"));
///
/// let update = OpBuilder::update("crm", "contacts", "crm-1")
///     .field("phone", json!("555-0101"))
///     .expected_version("3")
///     .build();
/// assert_eq!(update.fields.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct OpBuilder {
    kind: OpKind,
    system: SystemId,
    object: String,
    record_id: Option<String>,
    expected_version: Option<String>,
    correlation: Option<String>,
    entity: Option<EntityId>,
    fields: Vec<(String, Value)>,
}

impl OpBuilder {
    fn new(kind: OpKind, system: SystemId, object: String, record_id: Option<String>) -> Self {
        OpBuilder {
            kind,
            system,
            object,
            record_id,
            expected_version: None,
            correlation: None,
            entity: None,
            fields: Vec::new(),
        }
    }

    /// A create of a record of `object` in `system`.
    pub fn create(system: impl Into<SystemId>, object: impl Into<String>) -> Self {
        OpBuilder::new(OpKind::Create, system.into(), object.into(), None)
    }

    /// An update of the record `record_id`.
    pub fn update(
        system: impl Into<SystemId>,
        object: impl Into<String>,
        record_id: impl Into<String>,
    ) -> Self {
        OpBuilder::new(
            OpKind::Update,
            system.into(),
            object.into(),
            Some(record_id.into()),
        )
    }

    /// A delete of the record `record_id`.
    pub fn delete(
        system: impl Into<SystemId>,
        object: impl Into<String>,
        record_id: impl Into<String>,
    ) -> Self {
        OpBuilder::new(
            OpKind::Delete,
            system.into(),
            object.into(),
            Some(record_id.into()),
        )
    }

    /// Writes `value` to the native field `name`.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The version the record must still have (a conditional write).
    #[must_use]
    pub fn expected_version(mut self, version: impl Into<String>) -> Self {
        self.expected_version = Some(version.into());
        self
    }

    /// The correlation key a create carries.
    #[must_use]
    pub fn correlation(mut self, key: impl Into<String>) -> Self {
        self.correlation = Some(key.into());
        self
    }

    /// The entity the op is for.
    #[must_use]
    pub fn entity(mut self, entity: impl Into<String>) -> Self {
        self.entity = Some(EntityId::new(entity));
        self
    }

    /// The op.
    pub fn build(self) -> WriteOp {
        let entity = self.entity.unwrap_or_else(|| {
            EntityId::new(match (&self.correlation, &self.record_id) {
                (Some(key), _) => key.clone(),
                (None, Some(id)) => format!("test:{id}"),
                (None, None) => "test:new".to_owned(),
            })
        });
        let mut h = StableHasher::new("testkit-op");
        h.str(&self.kind.to_string());
        h.str(self.system.as_str());
        h.str(&self.object);
        h.str(entity.as_str());
        for text in [&self.record_id, &self.expected_version, &self.correlation] {
            h.str(text.as_deref().unwrap_or("\u{0}"));
        }
        for (name, value) in &self.fields {
            h.str(name);
            h.value(value);
        }
        let reason = Reason::Changed {
            system: self.system.clone(),
        };
        WriteOp {
            id: OpId(h.finish()),
            kind: self.kind,
            object: self.object.into(),
            system: self.system,
            record_id: self.record_id,
            entity,
            expected_version: self.expected_version,
            correlation: self.correlation,
            fields: self
                .fields
                .into_iter()
                .map(|(name, value)| {
                    let name = Name::from(name);
                    FieldWrite {
                        field: name.clone(),
                        native: name,
                        value,
                        reason: reason.clone(),
                        sensitive: false,
                    }
                })
                .collect(),
        }
    }
}

//! Read-back: whether a write a connector reported applied shows in a read
//! of the record right after it.
//!
//! A connector can say "applied" and be wrong: a bug, a proxy that answers
//! for the system, a write the system accepted and then dropped. Believed,
//! such a write does harm at the next plan: the target's shadow says it
//! holds what was written, so the value it still holds reads as a person's
//! edit and is written everywhere (the edit that was being propagated is
//! lost), and a created record that never appears in a complete snapshot
//! reads as deleted. So where a connector can fetch records by id, the
//! runner reads back what it wrote and lets only what shows count as
//! applied; the rest fails with [`ErrorKind::Unconfirmed`] and is written
//! again by the next plan.
//!
//! [`ErrorKind::Unconfirmed`]: crate::connector::ErrorKind::Unconfirmed

use serde_json::Value;

use crate::baseline::Baseline;
use crate::connector::Applied;
use crate::model::{is_empty_value, Record};
use crate::plan::{FieldWrite, OpKind, WriteOp};

/// Why a write that was reported applied does not show in the read-back.
pub(super) fn unconfirmed(
    op: &WriteOp,
    applied: &Applied,
    read: Option<&Record>,
    before: impl Fn(&FieldWrite) -> Option<Value>,
) -> Option<&'static str> {
    let live = read.filter(|r| !r.deleted);
    match op.kind {
        OpKind::Create => live
            .is_none()
            .then_some("the record it reported making is not there"),
        OpKind::Delete => live.is_some().then_some("the record is still there"),
        // A record gone since holds nothing that was written: the next read
        // shows the delete.
        _ => live.and_then(|r| update_unconfirmed(op, applied, r, before)),
    }
}

/// An update shows when the record reports the version the write reported,
/// holds a value it wrote, or holds, in a field it wrote, neither that nor
/// what the field held before (the system reformatted the value, or someone
/// edited it since). It did not take effect when every field it wrote
/// still holds what it held before.
fn update_unconfirmed(
    op: &WriteOp,
    applied: &Applied,
    r: &Record,
    before: impl Fn(&FieldWrite) -> Option<Value>,
) -> Option<&'static str> {
    if applied.version.is_some() && applied.version == r.version {
        return None;
    }
    let untouched = |w: &FieldWrite| {
        let now = r.get(&w.native).unwrap_or(&Value::Null);
        !same(now, &w.value) && before(w).is_some_and(|b| same(now, &b))
    };
    (!op.fields.is_empty() && op.fields.iter().all(untouched))
        .then_some("every field it wrote still holds what it held before")
}

/// The value a written field held before the write: as this run read the
/// record, else the target's shadow in the baseline (what recsync last knew
/// it to hold). `None` when neither knows.
pub(super) fn before(
    prior: Option<&Record>,
    baseline: &Baseline,
    op: &WriteOp,
    w: &FieldWrite,
) -> Option<Value> {
    match prior {
        Some(r) => Some(r.get(&w.native).cloned().unwrap_or(Value::Null)),
        // A linked record's shadow lacks a field it held empty.
        None => baseline
            .entity(&op.entity)
            .filter(|e| e.link(op.system.as_str()).is_some())
            .map(|e| {
                e.shadow(op.system.as_str(), &w.field)
                    .unwrap_or(Value::Null)
            }),
    }
}

/// Equal as the engine compares native values at the least: the same JSON,
/// or both empty.
fn same(a: &Value, b: &Value) -> bool {
    a == b || (is_empty_value(a) && is_empty_value(b))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::baseline::EntityId;
    use crate::plan::{OpId, Reason};

    fn op(kind: OpKind, fields: &[(&str, Value)]) -> WriteOp {
        WriteOp {
            id: OpId(1),
            kind,
            object: "contacts".into(),
            system: "crm".into(),
            record_id: (kind != OpKind::Create).then(|| "r1".to_owned()),
            entity: EntityId::new("crm:r1"),
            expected_version: Some("3".into()),
            correlation: None,
            fields: fields
                .iter()
                .map(|(name, value)| FieldWrite {
                    field: (*name).to_owned(),
                    native: (*name).to_owned(),
                    value: value.clone(),
                    reason: Reason::Behind,
                    sensitive: false,
                })
                .collect(),
        }
    }

    fn record(fields: &[(&str, Value)], version: &str) -> Record {
        let mut r = Record::new("r1").version(version);
        for (k, v) in fields {
            r = r.field(*k, v.clone());
        }
        r
    }

    #[test]
    fn creates_and_deletes_show_by_presence() {
        let create = op(OpKind::Create, &[("name", json!("Ada"))]);
        let delete = op(OpKind::Delete, &[]);
        let applied = Applied::created("r1");
        let there = record(&[("name", json!("Ada"))], "1");
        let gone = Record::new("r1").deleted();
        let nothing_before = |_: &FieldWrite| None;
        assert_eq!(
            unconfirmed(&create, &applied, Some(&there), nothing_before),
            None
        );
        assert!(unconfirmed(&create, &applied, None, nothing_before).is_some());
        assert!(unconfirmed(&create, &applied, Some(&gone), nothing_before).is_some());
        assert_eq!(unconfirmed(&delete, &applied, None, nothing_before), None);
        assert_eq!(
            unconfirmed(&delete, &applied, Some(&gone), nothing_before),
            None
        );
        assert!(unconfirmed(&delete, &applied, Some(&there), nothing_before).is_some());
    }

    #[test]
    fn an_update_shows_by_value_or_reported_version() {
        let update = op(
            OpKind::Update,
            &[("name", json!("Ada")), ("city", json!("Oslo"))],
        );
        let was = |w: &FieldWrite| {
            Some(match w.field.as_str() {
                "name" => json!("Ad"),
                _ => json!("Bergen"),
            })
        };
        let applied = Applied::new();
        // Both fields as before: not applied.
        let untouched = record(&[("name", json!("Ad")), ("city", json!("Bergen"))], "3");
        assert!(unconfirmed(&update, &applied, Some(&untouched), was).is_some());
        // Its version moved (someone else saved it) but it still holds what
        // it held: not applied either.
        let bumped = record(&[("name", json!("Ad")), ("city", json!("Bergen"))], "4");
        assert!(unconfirmed(&update, &applied, Some(&bumped), was).is_some());
        // The version the write reported: applied, whatever it holds.
        let reported = Applied::new().with_version("4");
        assert_eq!(unconfirmed(&update, &reported, Some(&bumped), was), None);
        // One value written shows.
        let half = record(&[("name", json!("Ada")), ("city", json!("Bergen"))], "4");
        assert_eq!(unconfirmed(&update, &applied, Some(&half), was), None);
        // A value that is neither (the system reformatted it): applied.
        let reformatted = record(&[("name", json!("ADA")), ("city", json!("Bergen"))], "4");
        assert_eq!(
            unconfirmed(&update, &applied, Some(&reformatted), was),
            None
        );
        // What the field held before is not known: nothing to hold against it.
        let unknown = |_: &FieldWrite| None;
        assert_eq!(
            unconfirmed(&update, &applied, Some(&untouched), unknown),
            None
        );
        // Deleted since: nothing written is at stake.
        assert_eq!(unconfirmed(&update, &applied, None, was), None);
    }

    #[test]
    fn empty_values_are_the_same() {
        let update = op(OpKind::Update, &[("name", json!("Ada"))]);
        let was = |_: &FieldWrite| Some(Value::Null);
        let blank = record(&[("name", json!(""))], "3");
        assert!(unconfirmed(&update, &Applied::new(), Some(&blank), was).is_some());
    }
}

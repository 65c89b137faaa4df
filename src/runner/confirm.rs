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

/// What a read-back says of a write reported applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The write shows: nothing is left to confirm.
    Shown,
    /// The write did not take effect, and why.
    NotMade(&'static str),
    /// The read cannot tell (an updated record gone since, or holding
    /// values that are neither what was written nor what was there): the
    /// next plan's read decides, as for a write never read back.
    Unknown,
}

/// What the read-back `read` (`None`: not returned) says of `op`.
pub(super) fn verdict(
    op: &WriteOp,
    applied: &Applied,
    read: Option<&Record>,
    before: impl Fn(&FieldWrite) -> Option<Value>,
) -> Verdict {
    let live = read.filter(|r| !r.deleted);
    match (op.kind, live) {
        (OpKind::Create, Some(_)) | (OpKind::Delete, None) => Verdict::Shown,
        (OpKind::Create, None) => Verdict::NotMade("the record it reported making is not there"),
        (OpKind::Delete, Some(_)) => Verdict::NotMade("the record is still there"),
        (_, Some(r)) => update_verdict(op, applied, r, before),
        // A record gone since holds nothing that was written: the next read
        // shows the delete.
        (_, None) => Verdict::Unknown,
    }
}

/// An update shows when the record holds every value it wrote, or, at the
/// version the write reported, no written field holds what it held before
/// (the system stored forms of its own, kept by [`adopt_stored`]). It did
/// not take effect when every field it wrote still holds what it held
/// before, at another version. Anything else the next plan decides, field
/// by field: someone edited it since, a form of its own without a
/// version, or a field still holding what it held before at the reported
/// version (a system's form that is what it held, a field it ignores, or
/// a connector that lies and named the version of a later save).
fn update_verdict(
    op: &WriteOp,
    applied: &Applied,
    r: &Record,
    before: impl Fn(&FieldWrite) -> Option<Value>,
) -> Verdict {
    let now = |w: &FieldWrite| r.get(&w.native).unwrap_or(&Value::Null);
    if op.fields.iter().all(|w| same(now(w), &w.value)) {
        return Verdict::Shown;
    }
    let untouched =
        |w: &FieldWrite| !same(now(w), &w.value) && before(w).is_some_and(|b| same(now(w), &b));
    let at_reported = applied.version.is_some() && applied.version == r.version;
    if op.fields.iter().all(untouched) && !at_reported {
        Verdict::NotMade("every field it wrote still holds what it held before")
    } else if at_reported && !op.fields.iter().any(untouched) {
        Verdict::Shown
    } else {
        Verdict::Unknown
    }
}

/// Where the read-back `r` shows the record as the write left it (the
/// version the write reported, or, for a create, whatever the write did
/// not report one), what it holds in each written field is what the system
/// stored: a form of its own (a phone in E.164, a trimmed name) is kept in
/// [`Applied::stored`], so the next plan does not read it as an edit. A
/// value the connector reported stored is kept as reported; a field still
/// holding what it held before the write is not taken for a form of it
/// (the system may have ignored that field): the next plans decide it.
pub(super) fn adopt_stored(
    op: &WriteOp,
    applied: &mut Applied,
    r: &Record,
    before: impl Fn(&FieldWrite) -> Option<Value>,
) {
    let as_left = match (&applied.version, op.kind) {
        (Some(v), _) => r.version.as_ref() == Some(v),
        (None, OpKind::Create) => true,
        (None, _) => false,
    };
    if !as_left || r.deleted {
        return;
    }
    for w in &op.fields {
        if applied.stored.contains_key(w.native.as_str()) {
            continue;
        }
        let now = r.get(&w.native).unwrap_or(&Value::Null);
        let kept = before(w).is_some_and(|b| same(now, &b));
        if !same(now, &w.value) && !kept {
            applied
                .stored
                .insert(w.native.as_str().to_owned(), now.clone());
        }
    }
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
                    field: (*name).into(),
                    native: (*name).into(),
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
        let not_made = |v: Verdict| matches!(v, Verdict::NotMade(_));
        let shown = Verdict::Shown;
        assert_eq!(
            verdict(&create, &applied, Some(&there), nothing_before),
            shown
        );
        assert!(not_made(verdict(&create, &applied, None, nothing_before)));
        assert!(not_made(verdict(
            &create,
            &applied,
            Some(&gone),
            nothing_before
        )));
        assert_eq!(verdict(&delete, &applied, None, nothing_before), shown);
        assert_eq!(
            verdict(&delete, &applied, Some(&gone), nothing_before),
            shown
        );
        assert!(not_made(verdict(
            &delete,
            &applied,
            Some(&there),
            nothing_before
        )));
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
        let not_made = |v: Verdict| matches!(v, Verdict::NotMade(_));
        // Both fields as before: not made.
        let untouched = record(&[("name", json!("Ad")), ("city", json!("Bergen"))], "3");
        assert!(not_made(verdict(&update, &applied, Some(&untouched), was)));
        // Its version moved (someone else saved it) but it still holds what
        // it held: not made either.
        let bumped = record(&[("name", json!("Ad")), ("city", json!("Bergen"))], "4");
        assert!(not_made(verdict(&update, &applied, Some(&bumped), was)));
        // The version the write reported, holding another form of what
        // was written: shown.
        let reported = Applied::new().with_version("4");
        let reformatted = record(&[("name", json!("ADA")), ("city", json!("OSLO"))], "4");
        assert_eq!(
            verdict(&update, &reported, Some(&reformatted), was),
            Verdict::Shown
        );
        // The same version holding what it held before: the system's own
        // form of the value, or a lying connector that named the version
        // of a later save: the next plans decide.
        assert_eq!(
            verdict(&update, &reported, Some(&bumped), was),
            Verdict::Unknown
        );
        // At that version, one field in a form of its own and one holding
        // what it held (ignored?): the next plans decide, field by field.
        let partly = record(&[("name", json!("ADA")), ("city", json!("Bergen"))], "4");
        assert_eq!(
            verdict(&update, &reported, Some(&partly), was),
            Verdict::Unknown
        );
        // Every value written shows.
        let both = record(&[("name", json!("Ada")), ("city", json!("Oslo"))], "4");
        assert_eq!(verdict(&update, &applied, Some(&both), was), Verdict::Shown);
        // One of them: the next plan decides.
        let half = record(&[("name", json!("Ada")), ("city", json!("Bergen"))], "4");
        assert_eq!(
            verdict(&update, &applied, Some(&half), was),
            Verdict::Unknown
        );
        // A value that is neither (the system reformatted it): likewise.
        let reformatted = record(&[("name", json!("ADA")), ("city", json!("Bergen"))], "4");
        assert_eq!(
            verdict(&update, &applied, Some(&reformatted), was),
            Verdict::Unknown
        );
        // What the fields held before is not known: nothing to hold against
        // the write.
        let unknown = |_: &FieldWrite| None;
        assert_eq!(
            verdict(&update, &applied, Some(&untouched), unknown),
            Verdict::Unknown
        );
        // Deleted since: the next read shows the delete.
        assert_eq!(verdict(&update, &applied, None, was), Verdict::Unknown);
    }

    #[test]
    fn empty_values_are_the_same() {
        let update = op(OpKind::Update, &[("name", json!("Ada"))]);
        let was = |_: &FieldWrite| Some(Value::Null);
        let blank = record(&[("name", json!(""))], "3");
        let verdict = verdict(&update, &Applied::new(), Some(&blank), was);
        assert!(matches!(verdict, Verdict::NotMade(_)));
    }
}

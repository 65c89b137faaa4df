//! How an in-memory system makes a write, shared by [`MemoryConnector`]
//! and [`MemorySystem`] so the two keep one contract: generated ids, the
//! checks an op must pass, what a create, an update and a delete leave in
//! the record, and the version and timestamps a write gives it.
//!
//! [`MemoryConnector`]: super::MemoryConnector
//! [`MemorySystem`]: super::MemorySystem

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::connector::{Applied, ConnectorError};
use crate::model::{Record, SystemId};
use crate::plan::{OpKind, WriteOp};

/// How a system marks the records it writes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    /// The time of the write, stamped as `updated_at` and as the changed
    /// fields' timestamps; `None` for a system that stamps nothing.
    pub(super) at: Option<DateTime<Utc>>,
    /// Whether the system keeps versions: a create gives `"1"`, every
    /// later write the next number.
    pub(super) versions: bool,
}

/// The id of the `n`th record a system with ids `prefix` makes.
pub(super) fn generated_id(prefix: &str, n: u64) -> String {
    format!("{prefix}{n}")
}

/// The `n` of an id [`generated_id`] made with `prefix`.
pub(super) fn generated_number(prefix: &str, id: &str) -> Option<u64> {
    id.strip_prefix(prefix)?.parse().ok()
}

/// Refuses an op for another system than `system`.
pub(super) fn check_system(op: &WriteOp, system: &SystemId) -> Result<(), ConnectorError> {
    if op.system == *system {
        return Ok(());
    }
    Err(ConnectorError::permanent(format!(
        "op is for system {}, this is {system}",
        op.system
    )))
}

/// The record an update or a delete is for.
pub(super) fn target(op: &WriteOp) -> Result<&str, ConnectorError> {
    op.record_id
        .as_deref()
        .ok_or_else(|| ConnectorError::permanent(format!("{} op without a record id", op.kind)))
}

/// Refuses a conditional write to a record that has moved on from the
/// version the op expects (where the op expects one and the record has
/// one).
pub(super) fn check_version(
    op: &WriteOp,
    id: &str,
    current: Option<&str>,
) -> Result<(), ConnectorError> {
    match (&op.expected_version, current) {
        (Some(expected), Some(current)) if expected != current => {
            Err(ConnectorError::precondition_failed(format!(
                "version {expected} expected, record is at {current}"
            ))
            .with_record(id))
        }
        _ => Ok(()),
    }
}

/// The error for a write to a record that is not there (or deleted).
pub(super) fn not_found(id: &str) -> ConnectorError {
    ConnectorError::not_found("no such record").with_record(id)
}

/// The error for a create whose correlation key a live record has.
pub(super) fn taken(key: &str, existing: &str) -> ConnectorError {
    ConnectorError::duplicate(format!("external id {key} is taken by record {existing}"))
}

/// The version after `current`: the next number, `"1"` where there was
/// none (or it was not a number).
pub(super) fn next_version(current: Option<&str>) -> String {
    current
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(1, |n| n.saturating_add(1))
        .to_string()
}

/// The record a create makes: `fields` as written, the correlation key
/// where the system keeps it, version `"1"` and every field stamped.
pub(super) fn created(
    id: String,
    fields: impl IntoIterator<Item = (String, Value)>,
    correlation: Option<String>,
    marks: Marks,
) -> Record {
    let mut record = Record::new(id);
    record.correlation = correlation;
    set_fields(&mut record, fields, marks.at);
    record.updated_at = marks.at;
    record.version = marks.versions.then(|| next_version(None));
    record
}

/// A write to a live record: each field given takes its value (an empty
/// one, `null` or `""`, is stored as sent: the field holds nothing), those
/// whose value changed get the write's time as their timestamp; the record
/// gets the next version and the write's time as `updated_at`.
pub(super) fn updated(
    record: &mut Record,
    fields: impl IntoIterator<Item = (String, Value)>,
    marks: Marks,
) {
    set_fields(record, fields, marks.at);
    moved_on(record, marks);
}

/// The record's version and `updated_at` after a write that changed no
/// field (a delete, a save without changes).
pub(super) fn moved_on(record: &mut Record, marks: Marks) {
    if marks.versions {
        record.version = Some(next_version(record.version.as_deref()));
    }
    if marks.at.is_some() {
        record.updated_at = marks.at;
    }
}

fn set_fields(
    record: &mut Record,
    fields: impl IntoIterator<Item = (String, Value)>,
    at: Option<DateTime<Utc>>,
) {
    for (name, value) in fields {
        if record.fields.get(&name) == Some(&value) {
            continue;
        }
        record.non_finite.retain(|n| *n != name);
        if let Some(at) = at {
            record.field_updated_at.insert(name.clone(), at);
        }
        record.fields.insert(name, value);
    }
}

/// What a system reports of `op`, made on the record `id` that is now at
/// `version` (a create's new id, an update's or a delete's record).
pub(super) fn applied(op: &WriteOp, id: &str, version: Option<String>) -> Applied {
    let mut applied = match op.kind {
        OpKind::Create => Applied::created(id),
        _ => {
            let mut applied = Applied::new();
            applied.record_id = Some(id.to_owned());
            applied
        }
    };
    applied.version = version;
    applied
}

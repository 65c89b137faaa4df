//! `CustomersTable`: a connector over the service's own `customers` table,
//! in the service's own SQLite database.
//!
//! Written from scratch against the `Connector` trait, as a service writes
//! one for each system it keeps in sync. The table has what a connector
//! needs: an id, a version that every write bumps (for conditional
//! writes), an `updated_at` (for last-write-wins), and a unique
//! `recsync_key` column that keeps the correlation key of a row recsync
//! created, so a create lost before its commit is found, never made twice.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use recsync::connector::{Applied, Capabilities};
use recsync::plan::{OpKind, WriteOp};
use recsync::{Connector, ConnectorError, Record, Snapshot, SystemId};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde_json::Value;

/// The columns recsync syncs, as the map names them for this system.
pub const COLUMNS: [&str; 3] = ["email", "name", "plan"];

/// Creates the service's table (the service's own migration, in real life).
pub fn create_table(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS customers (
             id INTEGER PRIMARY KEY,
             email TEXT, name TEXT, plan TEXT,
             updated_at TEXT NOT NULL,
             version INTEGER NOT NULL DEFAULT 1,
             recsync_key TEXT UNIQUE
         )",
    )
}

/// The service's own code writing a customer, as it would between syncs.
pub fn upsert(db: &Connection, email: &str, name: &str, plan: &str) -> rusqlite::Result<()> {
    let now = Utc::now().to_rfc3339();
    let updated = db.execute(
        "UPDATE customers SET name = ?2, plan = ?3, updated_at = ?4, version = version + 1
         WHERE email = ?1",
        params![email, name, plan, now],
    )?;
    if updated == 0 {
        db.execute(
            "INSERT INTO customers (email, name, plan, updated_at) VALUES (?1, ?2, ?3, ?4)",
            params![email, name, plan, now],
        )?;
    }
    Ok(())
}

/// The service's `customers` table as a system recsync syncs.
#[derive(Clone)]
pub struct CustomersTable {
    system: SystemId,
    db: Arc<Mutex<Connection>>,
}

impl fmt::Debug for CustomersTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The rows are people's data: the system's name only.
        f.debug_struct("CustomersTable")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl CustomersTable {
    /// A connector named `system` over the table in `db`.
    pub fn new(system: &str, db: Connection) -> Self {
        CustomersTable {
            system: SystemId::new(system),
            db: Arc::new(Mutex::new(db)),
        }
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock leaves SQLite consistent
        // (every write is one statement or one transaction).
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every live row, or the rows with the given ids.
    fn read(&self, ids: Option<&[String]>) -> Result<Vec<Record>, ConnectorError> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT id, email, name, plan, updated_at, version, recsync_key
                 FROM customers ORDER BY id",
            )
            .map_err(backend)?;
        let rows = stmt.query_map([], row_to_record).map_err(backend)?;
        let mut records = Vec::new();
        for row in rows {
            let record = row.map_err(backend)??;
            if ids.is_none_or(|ids| ids.contains(&record.id)) {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn apply_one(&self, db: &Connection, op: &WriteOp) -> Result<Applied, ConnectorError> {
        let now = Utc::now().to_rfc3339();
        match op.kind {
            OpKind::Create => {
                let taken: Option<i64> = db
                    .query_row(
                        "SELECT id FROM customers WHERE recsync_key = ?1",
                        [&op.correlation],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(backend)?;
                if taken.is_some() {
                    return Err(ConnectorError::duplicate("recsync_key already taken"));
                }
                db.execute(
                    "INSERT INTO customers (updated_at, recsync_key) VALUES (?1, ?2)",
                    params![now, op.correlation],
                )
                .map_err(backend)?;
                let id = db.last_insert_rowid();
                set_fields(db, id, op)?;
                Ok(Applied::created(id.to_string()).with_version("1"))
            }
            OpKind::Update | OpKind::Delete => {
                let id = parse_id(op.record_id.as_deref())?;
                let version: Option<i64> = db
                    .query_row("SELECT version FROM customers WHERE id = ?1", [id], |row| {
                        row.get(0)
                    })
                    .optional()
                    .map_err(backend)?;
                let Some(version) = version else {
                    return Err(ConnectorError::not_found("no such customer"));
                };
                if let Some(expected) = &op.expected_version {
                    if *expected != version.to_string() {
                        return Err(ConnectorError::precondition_failed(
                            "the row changed since it was read",
                        ));
                    }
                }
                if op.kind == OpKind::Delete {
                    db.execute("DELETE FROM customers WHERE id = ?1", [id])
                        .map_err(backend)?;
                    return Ok(Applied::new());
                }
                set_fields(db, id, op)?;
                db.execute(
                    "UPDATE customers SET updated_at = ?2, version = version + 1 WHERE id = ?1",
                    params![id, now],
                )
                .map_err(backend)?;
                Ok(Applied::new().with_version((version + 1).to_string()))
            }
            _ => Err(ConnectorError::not_supported(
                "an op kind this table does not know",
            )),
        }
    }
}

/// Writes the op's fields, and only those, each to its own column.
fn set_fields(db: &Connection, id: i64, op: &WriteOp) -> Result<(), ConnectorError> {
    for write in &op.fields {
        // Column names come from a fixed list, never from input.
        let Some(column) = COLUMNS.iter().find(|c| write.native == **c) else {
            return Err(ConnectorError::validation(
                write.native.as_str(),
                "not a column of customers",
            ));
        };
        let value = match &write.value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => {
                return Err(ConnectorError::validation(
                    write.native.as_str(),
                    "customers holds text only",
                ))
            }
        };
        db.execute(
            &format!("UPDATE customers SET {column} = ?2 WHERE id = ?1"),
            params![id, value],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Record, ConnectorError>> {
    let id: i64 = row.get(0)?;
    let updated_at: String = row.get(4)?;
    let version: i64 = row.get(5)?;
    let key: Option<String> = row.get(6)?;
    let mut record = Record::new(id.to_string()).version(version.to_string());
    for (i, column) in COLUMNS.iter().enumerate() {
        let value: Option<String> = row.get(i + 1)?;
        record = record.field(*column, value);
    }
    match DateTime::parse_from_rfc3339(&updated_at) {
        Ok(at) => record = record.updated_at(at.with_timezone(&Utc)),
        Err(_) => {
            return Ok(Err(ConnectorError::permanent(
                "a row's updated_at is not RFC 3339",
            )
            .with_record(id.to_string())))
        }
    }
    if let Some(key) = key {
        record = record.correlation(key);
    }
    Ok(Ok(record))
}

fn parse_id(id: Option<&str>) -> Result<i64, ConnectorError> {
    id.and_then(|id| id.parse().ok())
        .ok_or_else(|| ConnectorError::not_found("not a customer id"))
}

/// A SQLite error as the runner acts on it: busy or locked (another
/// writer) is worth retrying; anything else (a row the service stored in a
/// shape this connector cannot read, a full disk) needs a person.
fn backend(error: rusqlite::Error) -> ConnectorError {
    let busy = matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    );
    // SQLite's messages name tables and columns, never values.
    let message = "the customers table could not be read or written";
    if busy {
        ConnectorError::transient(message).with_source(error)
    } else {
        ConnectorError::permanent(message).with_source(error)
    }
}

#[async_trait]
impl Connector for CustomersTable {
    fn system(&self) -> &SystemId {
        &self.system
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .max_batch_size(100)
            .conditional_writes(true)
            .external_ids(true)
            .fetch_by_ids(true)
    }

    // SQLite answers in microseconds here; a service with a slower database
    // runs these calls on its runtime's blocking pool.
    async fn fetch(&self, _object: &str) -> Result<Snapshot, ConnectorError> {
        Ok(Snapshot::complete(self.system.clone(), self.read(None)?))
    }

    async fn fetch_records(
        &self,
        _object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        Ok(Snapshot::partial(
            self.system.clone(),
            self.read(Some(ids))?,
        ))
    }

    async fn apply(
        &self,
        _object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut db = self.db();
        // Each op in its own transaction: one refused op leaves the others.
        // The transaction rolls back when dropped unless committed, so no
        // error (not even a failed COMMIT) leaves one open.
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let tx = db
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let result = self.apply_one(&tx, op);
            if result.is_ok() {
                tx.commit().map_err(backend)?;
            }
            results.push(result);
        }
        Ok(results)
    }
}

//! [`SqliteStore`] (feature `sqlite`): baselines in a SQLite database, one
//! row per entity, saving only what a commit touched.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::row::{self, EntityJson};
use super::{StateStore, StoreError};
use crate::baseline::{Baseline, BaselineHeader, EntityId, EntityRecord};
use crate::engine::CommitSummary;

/// The schema's version, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recsync_objects (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    revision    INTEGER NOT NULL,
    fingerprint INTEGER,
    cursors     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recsync_entities (
    object  INTEGER NOT NULL,
    id      TEXT NOT NULL,
    record  BLOB NOT NULL,
    PRIMARY KEY (object, id)
);
";

/// Per-connection settings (see the type's docs).
const SETTINGS: &str = "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;";

const UPSERT_OBJECT: &str = "
INSERT INTO recsync_objects (name, revision, fingerprint, cursors) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (name) DO UPDATE SET
    revision = excluded.revision,
    fingerprint = excluded.fingerprint,
    cursors = excluded.cursors
RETURNING id";

const UPSERT_ENTITY: &str = "
INSERT INTO recsync_entities (object, id, record) VALUES (?1, ?2, ?3)
ON CONFLICT (object, id) DO UPDATE SET record = excluded.record";

const DELETE_ENTITY: &str = "DELETE FROM recsync_entities WHERE object = ?1 AND id = ?2";

/// Keeps baselines in a SQLite database file: one header row per object
/// type (revision, map fingerprint and cursors) and one row per entity: its
/// [`EntityRecord`] as compact JSON, with each system's shadow kept only
/// where it differs from the canonical value (as in memory), written
/// straight from the baseline without building the record.
///
/// [`save`](StateStore::save) upserts the entities the commit touched,
/// deletes those it removed and updates the header, all in one transaction:
/// a crash mid-save (even a killed process or a power cut) leaves the
/// database as the last committed save left it, cursors included. Saving a
/// commit that touched ten entities writes ten rows, whatever the size of
/// the baseline.
///
/// The rows a summary names are enough only on top of the revision the
/// commit started from (or the same revision, saved again, as
/// [`ReviewQueue::resolve`](crate::store::ReviewQueue::resolve) does). When
/// the database holds no revision of the object, an older one (commits
/// whose saves were skipped or failed) or a later one (another process
/// saved since this baseline was loaded), the save writes the whole
/// baseline instead, like [`replace`](StateStore::replace); over a later
/// revision, that undoes the other save.
///
/// Revisions are numbers: they tell a missed save apart, not two processes
/// that loaded the same revision and each committed. The second of their
/// saves writes its rows over the first's, and the rows it does not name
/// stay the first's. Give each object type one writer at a time (one
/// runner per object type, reviews between its runs).
///
/// # Settings
///
/// - **Journal**: write-ahead log (`journal_mode=WAL`): readers do not block
///   the writer, and a commit appends to the log instead of rewriting pages
///   twice.
/// - **`synchronous=NORMAL`**: with a write-ahead log, SQLite syncs the log at
///   checkpoints rather than at every commit. A process crash loses nothing
///   committed and never corrupts; a power cut may lose the last commits,
///   leaving an earlier complete state. That is safe for a baseline: the
///   next run plans from the earlier state, sees its own writes as changes
///   that agree, and correlation keys keep creates from being repeated
///   (DESIGN.md, crash safety). Call [`SqliteStore::set_durable`] for
///   `synchronous=FULL` (every commit synced) when losing one is not
///   acceptable.
/// - **`cache_size`** 64 MiB (SQLite's default is 2 MiB): a save looks up
///   each row it writes, and the interior pages of a million-entity table
///   stay in memory between saves instead of being read again.
/// - **Rows**: an ordinary table keyed by `(object, id)`, not `WITHOUT
///   ROWID`: an entity of twenty fields with its shadows is about a
///   kilobyte, and SQLite advises `WITHOUT ROWID` only for small rows.
/// - **Threads**: a save of thousands of entities turns them into rows on a
///   second, scoped thread while the calling thread writes the rows before
///   them; both finish before `save` returns.
/// - **Permissions**: a new database file is created owner-only (0600 on
///   unix) before SQLite opens it; SQLite gives its `-wal` and `-shm` files
///   the same permissions.
///
/// The connection is behind a mutex: one store serves several threads, one
/// save at a time. Several processes may open the same file; SQLite
/// serializes their writes.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, creating its directory if
    /// missing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::file::create_dir(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        create_owner_only(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let conn = Connection::open(&path).map_err(backend("cannot open the database"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(backend("cannot switch to the write-ahead log"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend {
                message: format!("cannot switch to the write-ahead log: journal mode is {mode}"),
                source: None,
            });
        }
        conn.execute_batch(SETTINGS)
            .map_err(backend("cannot set the database's pragmas"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(backend("cannot read the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend {
                message: format!(
                    "database schema version {version} is newer than this recsync's ({SCHEMA_VERSION})"
                ),
                source: None,
            });
        }
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(backend("cannot create the schema"))?;
        }
        // Room for every statement a save uses, and then some.
        conn.set_prepared_statement_cache_capacity(16);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether every commit is synced to disk before a save returns
    /// (`synchronous=FULL`) or only at checkpoints (`synchronous=NORMAL`,
    /// the default; see the type's docs).
    pub fn set_durable(&self, durable: bool) -> Result<(), StoreError> {
        let pragma = if durable {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        self.lock()
            .execute_batch(pragma)
            .map_err(backend("cannot set synchronous"))
    }

    /// The object types with a saved baseline, sorted.
    pub fn objects(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT name FROM recsync_objects ORDER BY name")
            .map_err(backend("cannot list objects"))?;
        let names = stmt
            .query_map([], |row| row.get(0))
            .map_err(backend("cannot list objects"))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(backend("cannot list objects"));
        names
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock drops any open transaction, which
        // rolls it back: the connection is fine to use again.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(
        &self,
        object: &str,
        baseline: &Baseline,
        changes: Changes<'_>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend("cannot begin a transaction"))?;
        // The summary names what one commit changed: it is enough only on
        // top of the revision that commit started from (or the same one,
        // saved again). Anything else (no save yet, saves skipped or
        // failed, another writer's later save) is written whole. Two
        // writers of the same revision still look alike (see the type's
        // docs).
        let changes = match changes {
            Changes::Some(summary)
                if stored_revision(&tx, object)?
                    .is_some_and(|r| r == baseline.revision() || r + 1 == baseline.revision()) =>
            {
                Changes::Some(summary)
            }
            _ => Changes::All,
        };
        let object_id = write_header(&tx, object, baseline.header())?;
        {
            let mut rows = Rows {
                object,
                object_id,
                upsert: tx
                    .prepare_cached(UPSERT_ENTITY)
                    .map_err(backend("cannot prepare the entity upsert"))?,
                delete: tx
                    .prepare_cached(DELETE_ENTITY)
                    .map_err(backend("cannot prepare the entity delete"))?,
            };
            match changes {
                Changes::Some(summary) => {
                    rows.put_all(baseline, &summary.touched)?;
                    for id in &summary.removed {
                        if baseline.entity(id).is_none() {
                            rows.delete(id)?;
                        }
                    }
                }
                Changes::All => {
                    tx.execute(
                        "DELETE FROM recsync_entities WHERE object = ?1",
                        params![object_id],
                    )
                    .map_err(backend("cannot clear the old entities"))?;
                    let ids: Vec<EntityId> = baseline.entities().map(|e| e.id().clone()).collect();
                    rows.put_all(baseline, &ids)?;
                }
            }
        }
        tx.commit().map_err(backend("cannot commit the save"))
    }
}

/// The entity rows of one object, inside a save's transaction.
struct Rows<'c, 'o> {
    object: &'o str,
    object_id: i64,
    upsert: rusqlite::CachedStatement<'c>,
    delete: rusqlite::CachedStatement<'c>,
}

/// Below this many entities a save serializes and writes on one thread.
const PIPELINE_MIN: usize = 2048;
/// Entities per batch handed from the serializing thread to the writer.
const BATCH: usize = 256;

/// Serialized rows of a batch of entities, back to back.
struct Batch<'i> {
    ids: &'i [EntityId],
    bytes: Vec<u8>,
    /// Per entity, where its row ends in `bytes`; `None`: not in the
    /// baseline.
    ends: Vec<Option<usize>>,
}

fn serialize_batch<'i>(
    baseline: &Baseline,
    object: &str,
    ids: &'i [EntityId],
) -> Result<Batch<'i>, StoreError> {
    let mut batch = Batch {
        ids,
        bytes: Vec::with_capacity(ids.len() * 512),
        ends: Vec::with_capacity(ids.len()),
    };
    for id in ids {
        match EntityJson::new(baseline, id) {
            Some(json) => {
                serde_json::to_writer(&mut batch.bytes, &json).map_err(|e| {
                    StoreError::Backend {
                        message: format!("cannot serialize entity {id} of {object}"),
                        source: Some(Box::new(e)),
                    }
                })?;
                batch.ends.push(Some(batch.bytes.len()));
            }
            None => batch.ends.push(None),
        }
    }
    Ok(batch)
}

impl Rows<'_, '_> {
    /// Writes the rows of `ids`; an id the baseline does not have (named
    /// as touched, yet gone) has its row deleted: the store mirrors the
    /// baseline.
    ///
    /// Turning entities into rows costs about what SQLite's writing them
    /// does, so for large saves a second thread serializes batches while
    /// this one writes the previous ones. If no thread can be started, it
    /// all happens here.
    fn put_all(&mut self, baseline: &Baseline, ids: &[EntityId]) -> Result<(), StoreError> {
        let object = self.object;
        if ids.len() < PIPELINE_MIN {
            return self.write_batch(&serialize_batch(baseline, object, ids)?);
        }
        std::thread::scope(|scope| {
            let (send, receive) = std::sync::mpsc::sync_channel(4);
            let serializer = std::thread::Builder::new()
                .name("recsync-store-rows".into())
                .spawn_scoped(scope, move || {
                    for part in ids.chunks(BATCH) {
                        let batch = serialize_batch(baseline, object, part);
                        let failed = batch.is_err();
                        // The writer hung up: it failed and returns its error.
                        if send.send(batch).is_err() || failed {
                            break;
                        }
                    }
                });
            if serializer.is_err() {
                return self.write_batch(&serialize_batch(baseline, object, ids)?);
            }
            for batch in receive {
                self.write_batch(&batch?)?;
            }
            Ok(())
        })
    }

    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let mut start = 0;
        for (id, end) in batch.ids.iter().zip(&batch.ends) {
            match end {
                Some(end) => {
                    let row = batch.bytes.get(start..*end).unwrap_or_default();
                    start = *end;
                    self.upsert
                        .execute(params![self.object_id, id.as_str(), row])
                        .map_err(backend_for("cannot write entity", self.object, id))?;
                }
                None => self.delete(id)?,
            }
        }
        Ok(())
    }

    fn delete(&mut self, id: &EntityId) -> Result<(), StoreError> {
        self.delete
            .execute(params![self.object_id, id.as_str()])
            .map_err(backend_for("cannot delete entity", self.object, id))?;
        Ok(())
    }
}

enum Changes<'a> {
    Some(&'a CommitSummary),
    All,
}

/// The revision the store holds for `object`, if it holds one it can read.
fn stored_revision(
    tx: &rusqlite::Transaction<'_>,
    object: &str,
) -> Result<Option<u64>, StoreError> {
    let revision: Option<i64> = tx
        .prepare_cached("SELECT revision FROM recsync_objects WHERE name = ?1")
        .map_err(backend("cannot prepare the revision query"))?
        .query_row(params![object], |row| row.get(0))
        .optional()
        .map_err(backend("cannot read the stored revision"))?;
    Ok(revision.and_then(|r| u64::try_from(r).ok()))
}

fn write_header(
    tx: &rusqlite::Transaction<'_>,
    object: &str,
    header: &BaselineHeader,
) -> Result<i64, StoreError> {
    let revision = i64::try_from(header.revision).map_err(|_| StoreError::Backend {
        message: format!(
            "revision {} of {object} does not fit the database",
            header.revision
        ),
        source: None,
    })?;
    // SQLite integers are signed: keep the fingerprint's 64 bits as they are.
    let fingerprint = header
        .fingerprint
        .map(|f| i64::from_ne_bytes(f.to_ne_bytes()));
    let cursors = serde_json::to_string(&header.cursors).map_err(|e| StoreError::Backend {
        message: format!("cannot serialize the cursors of {object}"),
        source: Some(Box::new(e)),
    })?;
    let mut stmt = tx
        .prepare_cached(UPSERT_OBJECT)
        .map_err(backend("cannot prepare the header upsert"))?;
    stmt.query_row(params![object, revision, fingerprint, cursors], |row| {
        row.get(0)
    })
    .map_err(backend("cannot write the header"))
}

impl StateStore for SqliteStore {
    fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        let mut conn = self.lock();
        // One read transaction: the header and the entities of one save.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(backend("cannot begin a read"))?;
        let header_row = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, revision, fingerprint, cursors FROM recsync_objects WHERE name = ?1",
                )
                .map_err(backend("cannot prepare the header query"))?;
            stmt.query_row(params![object], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()
            .map_err(backend("cannot read the header"))?
        };
        let Some((object_id, revision, fingerprint, cursors)) = header_row else {
            return Ok(Baseline::new());
        };
        let corrupt = |message: String| StoreError::Corrupt {
            object: object.to_owned(),
            message,
        };
        let header = BaselineHeader {
            revision: u64::try_from(revision)
                .map_err(|_| corrupt(format!("negative revision {revision}")))?,
            fingerprint: fingerprint.map(|f| u64::from_ne_bytes(f.to_ne_bytes())),
            cursors: serde_json::from_str(&cursors)
                .map_err(|e| corrupt(format!("cursors: {e}")))?,
        };

        let mut stmt = tx
            .prepare_cached("SELECT id, record FROM recsync_entities WHERE object = ?1")
            .map_err(backend("cannot prepare the entity query"))?;
        let mut rows = stmt
            .query(params![object_id])
            .map_err(backend("cannot read the entities"))?;
        // Stream the rows into the baseline; the first bad row stops it.
        let mut failure: Option<StoreError> = None;
        let records = std::iter::from_fn(|| {
            if failure.is_some() {
                return None;
            }
            let next = match rows.next() {
                Ok(Some(row)) => decode_row(row, object),
                Ok(None) => return None,
                Err(e) => Err(backend("cannot read the entities")(e)),
            };
            match next {
                Ok(record) => Some(record),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        let baseline = Baseline::from_parts(header, records);
        if let Some(e) = failure {
            return Err(e);
        }
        baseline.map_err(|source| StoreError::Baseline {
            object: object.to_owned(),
            source,
        })
    }

    fn save(
        &self,
        object: &str,
        baseline: &Baseline,
        changed: &CommitSummary,
    ) -> Result<(), StoreError> {
        self.write(object, baseline, Changes::Some(changed))
    }

    fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
        self.write(object, baseline, Changes::All)
    }
}

fn decode_row(row: &rusqlite::Row<'_>, object: &str) -> Result<EntityRecord, StoreError> {
    let id: String = row.get(0).map_err(backend("cannot read an entity id"))?;
    let bytes = match row.get_ref(1).map_err(backend("cannot read an entity"))? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes,
        other => {
            return Err(StoreError::Corrupt {
                object: object.to_owned(),
                message: format!(
                    "entity {id}: a {:?} value instead of a record",
                    other.data_type()
                ),
            })
        }
    };
    let record = row::decode(bytes).map_err(|e| StoreError::Corrupt {
        object: object.to_owned(),
        message: format!("entity {id}: {e}"),
    })?;
    if record.id.as_str() != id {
        return Err(StoreError::Corrupt {
            object: object.to_owned(),
            message: format!("the row of entity {id} holds entity {}", record.id),
        });
    }
    Ok(record)
}

fn backend(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend {
        message: context.to_owned(),
        source: Some(Box::new(e)),
    }
}

fn backend_for<'a>(
    context: &'static str,
    object: &'a str,
    id: &'a EntityId,
) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |e| StoreError::Backend {
        message: format!("{context} {id} of {object}"),
        source: Some(Box::new(e)),
    }
}

/// Creates the database file owner-only if it does not exist yet, so SQLite
/// never creates it with the process's default permissions.
fn create_owner_only(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

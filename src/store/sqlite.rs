//! [`SqliteStore`] (feature `sqlite`): baselines in a SQLite database, one
//! row per entity, saving only what a commit touched, verified on load.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::check::Crc64;
use super::journal_rows::{self, Bound};
use super::lane::Lane;
use super::owner::{self, Broader};
use super::row::{self, EntityJson};
use super::{Check, Place, StateStore, StoreError};
use crate::baseline::{AmbiguousRecords, Baseline, BaselineHeader, EntityId, EntityRecord};
use crate::engine::CommitSummary;
use crate::journal::{JournalBatch, JournalEntry, JournalQuery};

/// The schema's version, kept in the `recsync_schema` table. Version 1 had
/// no counts and no checksums; version 2 no column for the records held
/// back as ambiguous; version 3 no journal.
const SCHEMA_VERSION: i64 = 4;

/// The oldest SQLite the store's statements run on (`RETURNING` came in
/// 3.35.0), as `sqlite3_libversion_number` counts.
const MIN_SQLITE: i32 = 3_035_000;

/// What errors name for a database with no file (in memory, or temporary).
const NO_FILE: &str = ":memory:";

/// The schema version, in a table of the store's own: `PRAGMA
/// user_version` belongs to whoever owns the database, and a host that
/// hands the store a connection may keep its own schema's version there.
/// Databases made before this table kept the version in `user_version`;
/// in a file the store opens by path it is still written there too (see
/// [`UserVersion`]).
const SCHEMA_TABLE: &str = "
CREATE TABLE IF NOT EXISTS recsync_schema (
    only    INTEGER PRIMARY KEY CHECK (only = 1),
    version INTEGER NOT NULL
);";

const SET_SCHEMA_VERSION: &str = "
INSERT INTO recsync_schema (only, version) VALUES (1, ?1)
ON CONFLICT (only) DO UPDATE SET version = excluded.version";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recsync_objects (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    revision    INTEGER NOT NULL,
    fingerprint INTEGER,
    cursors     TEXT NOT NULL,
    count       INTEGER,
    rows        INTEGER,
    checksum    INTEGER,
    ambiguous     TEXT,
    ambiguous_sum INTEGER
);
CREATE TABLE IF NOT EXISTS recsync_entities (
    object   INTEGER NOT NULL,
    id       TEXT NOT NULL,
    record   BLOB NOT NULL,
    checksum INTEGER,
    PRIMARY KEY (object, id)
);
";

/// The journal (schema version 4): a row per entry, numbered in the order
/// saved (`seq`, the rowid), under its object's header id; `at` in
/// microseconds since 1970, `entry` the entry's JSON. The indexes serve a
/// listing by run or by record, and retention's deletes by run and by age.
const JOURNAL: &str = "
CREATE TABLE IF NOT EXISTS recsync_journal (
    seq       INTEGER PRIMARY KEY,
    object    INTEGER NOT NULL,
    run       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    system    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    entry     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recsync_journal_run ON recsync_journal (object, run);
CREATE INDEX IF NOT EXISTS recsync_journal_record ON recsync_journal (object, system, record_id);
CREATE INDEX IF NOT EXISTS recsync_journal_at ON recsync_journal (object, at);
";

const INSERT_JOURNAL: &str = "
INSERT INTO recsync_journal (object, run, at, system, record_id, entry)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Drops an object's entries older than a time (in microseconds).
const PRUNE_JOURNAL_AGE: &str = "DELETE FROM recsync_journal WHERE object = ?1 AND at < ?2";

/// Drops an object's entries of runs other than the `?2` saved last (by
/// their last entry's `seq`: the order saved, whatever the run ids say, as
/// a clock set back gives a later run a smaller id).
const PRUNE_JOURNAL_RUNS: &str = "
DELETE FROM recsync_journal
WHERE object = ?1 AND run NOT IN (
    SELECT run FROM recsync_journal WHERE object = ?1
    GROUP BY run ORDER BY MAX(seq) DESC LIMIT ?2
)";

const CLEAR_JOURNAL: &str = "DELETE FROM recsync_journal WHERE object = ?1";

/// An object's entries, in the order saved; a listing adds its conditions
/// before the order.
const LIST_JOURNAL: &str = "
SELECT j.seq, j.entry FROM recsync_journal j JOIN recsync_objects o ON o.id = j.object
WHERE o.name = ?1";

/// From version 1: the columns version 2 added. Objects saved before stay
/// without checksums (`NULL`) until saved whole.
const MIGRATE_FROM_1: &str = "
ALTER TABLE recsync_objects ADD COLUMN count INTEGER;
ALTER TABLE recsync_objects ADD COLUMN rows INTEGER;
ALTER TABLE recsync_objects ADD COLUMN checksum INTEGER;
ALTER TABLE recsync_entities ADD COLUMN checksum INTEGER;
";

/// From version 2: the records held back as ambiguous (JSON, `NULL` when
/// none) and their checksum, which the header's checksum covers. A header
/// saved before holds none, and its checksum stays valid.
const MIGRATE_FROM_2: &str = "
ALTER TABLE recsync_objects ADD COLUMN ambiguous TEXT;
ALTER TABLE recsync_objects ADD COLUMN ambiguous_sum INTEGER;
";

/// From version 3: the journal ([`JOURNAL`]), empty.
const MIGRATE_FROM_3: &str = JOURNAL;

/// Writes the records held back as ambiguous and their checksum.
const SET_AMBIGUOUS: &str =
    "UPDATE recsync_objects SET ambiguous = ?2, ambiguous_sum = ?3 WHERE id = ?1";

const READ_AMBIGUOUS: &str = "SELECT ambiguous FROM recsync_objects WHERE id = ?1";

/// Per-connection settings (see the type's docs).
const SETTINGS: &str = "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;";

const UPSERT_OBJECT: &str = "
INSERT INTO recsync_objects (name, revision, fingerprint, cursors) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (name) DO UPDATE SET
    revision = excluded.revision,
    fingerprint = excluded.fingerprint,
    cursors = excluded.cursors
RETURNING id";

const SEAL_OBJECT: &str =
    "UPDATE recsync_objects SET count = ?2, rows = ?3, checksum = ?4 WHERE id = ?1";

const READ_HEADER: &str = "
SELECT id, revision, fingerprint, cursors, count, rows, checksum, ambiguous_sum
FROM recsync_objects WHERE name = ?1";

/// The rowid and checksum of an entity's row, if it has one. A save reads
/// them before writing the row: the checksum leaves the header's sum, and
/// the rowid lets the write go straight to the row without the index.
/// Counted in SQLite's instructions, the read and the write cost about a
/// sixth more than the plain upsert they replace; an upsert returning the
/// old checksum, or this read before an upsert, cost about half as much
/// again.
const FIND_ENTITY: &str =
    "SELECT rowid, checksum FROM recsync_entities WHERE object = ?1 AND id = ?2";

/// Rewrites a row found by [`FIND_ENTITY`]; its key, and so the index,
/// stays as it is.
const UPDATE_ENTITY: &str =
    "UPDATE recsync_entities SET record = ?2, checksum = ?3 WHERE rowid = ?1";

const INSERT_ENTITY: &str =
    "INSERT INTO recsync_entities (object, id, record, checksum) VALUES (?1, ?2, ?3, ?4)";

const DELETE_ENTITY: &str =
    "DELETE FROM recsync_entities WHERE object = ?1 AND id = ?2 RETURNING checksum";

/// Keeps baselines in a SQLite database: one header row per object
/// type (revision, map fingerprint, cursors, the records held back as
/// [ambiguous](crate::baseline::AmbiguousRecords), entity count and
/// checksums) and one row per entity: its [`EntityRecord`] as compact
/// JSON, with each system's shadow kept only where it differs from the
/// canonical value (as in memory), written straight from the baseline
/// without building the record, and its checksum; and a row per
/// [journal](crate::journal) entry (see [Journal](SqliteStore#journal)).
///
/// The database is a file of the store's own ([`open`](SqliteStore::open)),
/// or the database of a connection the host opened
/// ([`from_connection`](SqliteStore::from_connection)): the host's own
/// database file, where the store's tables (all named `recsync_`) live
/// beside the host's, or a database in memory. The store keeps its schema
/// version in a table of its own (`recsync_schema`). In a file of its own
/// it writes the version to `PRAGMA user_version` too, where a recsync from
/// before that table reads it (and so refuses a later schema instead of
/// taking the file for an empty one); in a host's database `user_version`
/// is the host's, and left alone.
///
/// # SQLite
///
/// Feature `sqlite` links the SQLite library that the build's
/// `libsqlite3-sys` is set up for: the system's by default, or SQLite
/// compiled from source when anything in the build turns on rusqlite's
/// `bundled` feature (a host's own rusqlite, or recsync's feature
/// `sqlite-bundled`). The store needs SQLite 3.35.0 or newer; an older
/// system library is refused when the store opens.
///
/// [`save`](StateStore::save) upserts the entities the commit touched,
/// deletes those it removed and updates the header, all in one transaction:
/// a crash mid-save (even a killed process or a power cut) leaves the
/// database as the last committed save left it, cursors included. Saving a
/// commit that touched ten entities writes ten rows, whatever the size of
/// the baseline; the records held back as ambiguous are written again only
/// when the commit changed them
/// ([`CommitSummary::ambiguous`](crate::CommitSummary::ambiguous)).
/// The journal batch the summary carries is written in the same
/// transaction (see [Journal](SqliteStore#journal)).
///
/// The rows a summary names are enough only on top of the revision the
/// commit started from (or the same revision, saved again, as
/// [`ReviewQueue::resolve`](crate::store::ReviewQueue::resolve) does). When
/// the database holds no revision of the object, an older one (commits
/// whose saves were skipped or failed), a later one (another process
/// saved since this baseline was loaded), or a header that fails its
/// checksum, the save writes the whole baseline instead, like
/// [`replace`](StateStore::replace); over a later revision, that undoes the
/// other save.
///
/// Revisions are numbers: they tell a missed save apart, not two processes
/// that loaded the same revision and each committed. The second of their
/// saves writes its rows over the first's, and the rows it does not name
/// stay the first's. Give each object type one writer at a time (one
/// runner per object type, reviews between its runs).
///
/// # Checks
///
/// Each entity row carries the CRC-64 of the object type's name, the
/// entity id and the row's bytes; the header carries the entity count, the
/// wrapping sum of the row checksums, the CRC-64 of the records held back
/// as ambiguous, and a CRC-64 of all of its own fields. A save keeps the
/// count and the sum up to date from the rows it writes and the checksums
/// of the rows they replace (each write reads the old row's checksum and
/// rowid, then rewrites it by rowid). A load
/// verifies the header, every row, the count and the sum, so a row deleted
/// or added, a row replaced by another valid one (an older copy), a row
/// moved to another object and every single-bit flip in what recsync wrote
/// are [`StoreError::Damaged`], naming the database, the row (by the entity
/// id stored beside it) or the header, and the check.
/// Pages the database engine itself finds malformed are `Damaged` too
/// ([`Check::Database`]), and so, when the store opens, is a schema it
/// cannot read: a recorded schema version below 1, which no recsync
/// records ([`Place::SchemaVersion`]), or its tables missing
/// ([`Place::Tables`]), both [`Check::Layout`]. To start over in a host's
/// database, drop the store's four `recsync_` tables. The sums are kept
/// by recsync, not by triggers, so a row deleted by hand (`DELETE FROM
/// recsync_entities ...`) is seen.
///
/// A save does not read the rows it leaves alone: damage there stays, and
/// the next load reports it.
///
/// A load of an object the database has no header for verifies that no
/// header failed its checksum (it may be this object's, under a damaged
/// name) and that no entity rows are stored without a header; only then is
/// it the empty baseline of an object never saved.
///
/// # Databases written before schema version 2
///
/// [`open`](SqliteStore::open) and
/// [`from_connection`](SqliteStore::from_connection) add the columns
/// version 2 needs. Objects
/// saved before carry no checksums and no count, so nothing can verify
/// them: [`load`](StateStore::load) refuses them with
/// [`StoreError::Format`] (`found: 1`). A host that has checked one (or has
/// no better copy) takes it over once with
/// [`upgrade_legacy`](SqliteStore::upgrade_legacy); a save of such an
/// object writes it whole, with checksums.
///
/// Schema version 3 adds the columns for the records held back as
/// ambiguous; they are added too. Objects saved with version 2 hold none,
/// and load and verify as before.
///
/// Schema version 4 adds the journal's table (`recsync_journal`, with its
/// indexes); a database of an earlier version gets it, empty, when the
/// store opens, in the same transaction as the other changes. A recsync
/// from before version 4 refuses the database after that
/// ([`StoreError::Format`]).
///
/// # Journal
///
/// The [journal](crate::journal) is a table, `recsync_journal`: a row per
/// [`JournalEntry`], its JSON (`entry`), numbered in the order saved
/// (`seq`, the rowid), under its object's header id, with the columns a
/// listing filters on and retention drops by (`run`; `at`, in
/// microseconds since 1970; `system`, `record_id`), indexed by object and
/// run, by object, system and record id, and by object and time.
///
/// A [`save`](StateStore::save) whose summary carries a batch
/// ([`CommitSummary::journal`]) inserts its entries and then deletes what
/// the batch's [`Retention`](crate::journal::Retention) does not keep as of
/// its time (entries older than its cutoff, then those of runs older than
/// the newest it keeps), in the save's transaction: the baseline and its
/// entries are committed together or not at all. Ages are compared to the
/// microsecond. [`replace`](StateStore::replace) leaves the journal as it
/// is. [`journal`](StateStore::journal) lists the rows a
/// [`JournalQuery`] asks for, filtered in SQL. A row that is not an entry
/// is [`StoreError::Damaged`] naming the row
/// ([`Place::JournalRow`], [`Check::JournalEntry`]); entries carry no
/// checksums, so damage that leaves one readable, or a row deleted, goes
/// unseen. Run ids are kept as SQLite's signed integers, as revisions are:
/// one past `i64::MAX` is refused, and the save with it.
///
/// # Settings
///
/// - **Journal**: write-ahead log (`journal_mode=WAL`): readers do not block
///   the writer, and a commit appends to the log instead of rewriting pages
///   twice. A database in memory keeps its own journal.
/// - **`synchronous=NORMAL`**: with a write-ahead log, SQLite syncs the log at
///   checkpoints rather than at every commit. A process crash loses nothing
///   committed and never corrupts; a power cut may lose the last commits,
///   leaving an earlier complete state. That is safe for a baseline: the
///   next run plans from the earlier state, sees its own writes as changes
///   that agree, and correlation keys keep creates from being repeated.
///   Call [`SqliteStore::set_durable`] for `synchronous=FULL` (every commit
///   synced) when losing one is not acceptable.
/// - **`cache_size`** 64 MiB (SQLite's default is 2 MiB): a save looks up
///   each row it writes, and the interior pages of a million-entity table
///   stay in memory between saves instead of being read again.
/// - **Rows**: an ordinary table keyed by `(object, id)`, not `WITHOUT
///   ROWID`: an entity of twenty fields with its shadows is about a
///   kilobyte, and SQLite advises `WITHOUT ROWID` only for small rows.
/// - **Threads**: a save of thousands of entities turns them into rows
///   (and their checksums) on a second, scoped thread while the calling
///   thread writes the rows before them; both finish before `save` returns.
/// - **Permissions**: a new database file is created owner-only (0600 on
///   unix) before SQLite opens it; SQLite gives its `-wal` and `-shm` files
///   the same permissions. An existing database file, `-wal`, `-shm` or
///   `-journal` file with group or other bits set has them dropped on
///   [`open`](SqliteStore::open). The database's directory is created
///   owner-only (0700) if missing; an existing one with group or other bits
///   set is refused ([`StoreError::Permissions`]) rather than changed, as it
///   may hold more than the database: make it owner-only, or keep the
///   database in a directory of its own. A connection's database file is
///   made owner-only the same way by
///   [`from_connection`](SqliteStore::from_connection), which creates
///   nothing and leaves the host's directory alone.
///
/// The connection is behind a mutex: one store serves several threads, one
/// save at a time. Clones share it, and the order of calls: an
/// [`AsyncStateStore`](super::AsyncStateStore) call runs on the store's
/// blocking thread after every call made before it through any clone.
/// Several processes may open the same file; SQLite serializes their
/// writes.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    pub(super) lane: Lane,
    /// What errors name: the database file, or [`NO_FILE`].
    path: PathBuf,
    /// Whether the database is a file (not in memory, not temporary).
    file: bool,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, creating its directory if
    /// missing (see the type's docs on permissions).
    ///
    /// The file is the store's: besides its `recsync_schema` table, the
    /// store keeps `PRAGMA user_version` at least at its schema version
    /// (it raises a lower one), so that a recsync from before that table,
    /// which reads the version only there, refuses a database of a later
    /// schema rather than taking it for an empty one.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        supported_sqlite(rusqlite::version_number(), rusqlite::version())?;
        let path = path.into();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        owner::create_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        owner::ensure(&dir, Broader::Refuse)?;
        owner::create_if_missing(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        owner_only(&path)?;
        let conn = Connection::open(&path).map_err(sqlite_error(
            &path,
            None,
            "cannot open the database",
        ))?;
        Self::set_up(conn, path, true, UserVersion::Store)
    }

    /// A store in the database of a connection the host opened: the host's
    /// own database file, beside the host's tables, or a database in
    /// memory.
    ///
    /// `conn` is a connection of the rusqlite that recsync is built with,
    /// which is any rusqlite from 0.25 to 0.43 (`>=0.25, <0.44`): cargo
    /// picks one version that fits both recsync's range and the host's own
    /// requirement, so the host's `rusqlite::Connection` is this one. A
    /// host on a rusqlite outside the range cannot build recsync's `sqlite`
    /// feature beside it (cargo links one `libsqlite3-sys` per build).
    ///
    /// The connection becomes the store's; what the store does with it:
    ///
    /// - **Tables**: creates `recsync_objects`, `recsync_entities`,
    ///   `recsync_journal` (with its indexes, all named `recsync_journal_`)
    ///   and `recsync_schema` (the store's schema version) in the connection's
    ///   main database if they are missing, and brings tables of an older
    ///   schema version up to date, in one transaction. It reads and writes
    ///   no other table, and leaves `PRAGMA user_version` to the host
    ///   (but for a database that [`open`](SqliteStore::open) made before
    ///   the version had a table, where `user_version` is the store's).
    ///   So a recsync from before `recsync_schema`, which reads the
    ///   version only in `user_version`, must not be pointed at the host's
    ///   database (by path): it could take a later schema for none.
    /// - **Journal**: switches a database file to the write-ahead log
    ///   (`PRAGMA journal_mode = WAL`), as `open` does, and fails if it
    ///   cannot. That is a property of the file, not of the connection: the
    ///   host's other connections to it use the log too (readers and one
    ///   writer at a time no longer block each other; the file needs
    ///   shared memory, so no network file system). A database in memory
    ///   keeps its journal mode.
    /// - **Connection settings**: `PRAGMA synchronous = NORMAL` (see
    ///   [`set_durable`](SqliteStore::set_durable)), `PRAGMA cache_size =
    ///   -65536` (64 MiB), and rusqlite's prepared-statement cache set to 32
    ///   statements. The busy timeout stays what the host set (rusqlite's
    ///   `Connection::open` sets 5 seconds): a save that waits longer than
    ///   that for the host's write transaction on another connection fails
    ///   with [`StoreError::Backend`] and saves nothing.
    /// - **Permissions**: once the tables are set up, and before the store
    ///   is returned (so before any save writes personal data), a database
    ///   file and its `-wal`, `-shm` and `-journal` files are made
    ///   owner-only as `open` makes them; a database file that cannot be is
    ///   [`StoreError::Permissions`] (the store's tables stay, empty if
    ///   new). A database the store refuses keeps its permissions. Its
    ///   directory is the host's and is not checked.
    ///
    /// What it expects: no transaction open on `conn` (refused with
    /// [`StoreError::Backend`]); SQLite 3.35.0 or newer (for `RETURNING`;
    /// refused otherwise, which only a system SQLite can be); a connection
    /// that may write (a read-only one loads from a database the store has
    /// set up before, and its saves fail; on one the store has not, it is
    /// refused); and that nothing but a `SqliteStore` writes the `recsync_`
    /// tables. The host keeps using its own tables through connections of
    /// its own.
    ///
    /// [`path`](SqliteStore::path) is the file SQLite reports for the
    /// connection's main database (made absolute), or `None` for a database
    /// in memory or a temporary one; errors name such a database
    /// `:memory:`.
    pub fn from_connection(conn: Connection) -> Result<Self, StoreError> {
        supported_sqlite(rusqlite::version_number(), rusqlite::version())?;
        if !conn.is_autocommit() {
            return Err(StoreError::Backend {
                message: "the connection handed to the store has a transaction open".to_owned(),
                source: None,
            });
        }
        let file = database_file(&conn).map_err(backend(
            "cannot read which database file the connection has open",
        ))?;
        match file {
            Some(path) => {
                let store = Self::set_up(conn, path, true, UserVersion::Host)?;
                // Owner-only once set-up has succeeded, so a database the
                // store refuses (a newer schema, damage, a read-only
                // connection to a database not set up) is left as the
                // host had it. Set-up writes no personal data: the store's
                // tables, empty when new, columns added to older ones.
                // Personal data comes with the first save, which needs the
                // store returned here, after the file (and the `-wal` and
                // `-shm` files set-up may have made with its permissions)
                // are owner-only.
                owner_only(&store.path)?;
                Ok(store)
            }
            None => Self::set_up(conn, PathBuf::from(NO_FILE), false, UserVersion::Host),
        }
    }

    /// The journal, the connection's settings and the schema (see the
    /// type's docs), on a connection to `path` (a file if `file`), whose
    /// `user_version` is `owner`'s.
    fn set_up(
        mut conn: Connection,
        path: PathBuf,
        file: bool,
        owner: UserVersion,
    ) -> Result<Self, StoreError> {
        let fail = |context: &'static str| sqlite_error(&path, None, context);
        if file {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(fail("cannot switch to the write-ahead log"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend {
                    message: format!(
                        "cannot switch to the write-ahead log: journal mode is {mode}"
                    ),
                    source: None,
                });
            }
        }
        conn.execute_batch(SETTINGS)
            .map_err(fail("cannot set the database's pragmas"))?;
        bring_schema_up_to_date(&mut conn, &path, owner)?;
        // Room for every statement a save and a load use, and the journal
        // listings' (one per combination of conditions).
        conn.set_prepared_statement_cache_capacity(32);
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            lane: Lane::default(),
            path,
            file,
        })
    }

    /// The database file: the path given to [`open`](SqliteStore::open),
    /// or the file SQLite reports for a connection handed to
    /// [`from_connection`](SqliteStore::from_connection); `None` for a
    /// database in memory or a temporary one.
    pub fn path(&self) -> Option<&Path> {
        self.file.then_some(self.path.as_path())
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

    /// Takes over an object saved before schema version 2: loads it without
    /// verification (it carries no checksums) and saves it whole, with
    /// checksums, so later loads verify it. Call it once, after checking
    /// the state or restoring the copy to trust; a load of such an object
    /// is refused with [`StoreError::Format`] until then.
    ///
    /// An object saved with checksums is loaded, and verified, as by
    /// [`load`](StateStore::load): this never skips a check it has. An
    /// object with no header is an empty baseline, and nothing is written.
    pub fn upgrade_legacy(&self, object: &str) -> Result<Baseline, StoreError> {
        let baseline = self.read(object, Legacy::Accept)?;
        if let Read::Legacy(baseline) = baseline {
            self.replace(object, &baseline)?;
            return Ok(baseline);
        }
        baseline.into_baseline()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock drops any open transaction, which
        // rolls it back: the connection is fine to use again.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn damaged(&self, object: &str, place: Place, check: Check) -> StoreError {
        StoreError::Damaged {
            object: Some(object.to_owned()),
            path: self.path.clone(),
            place,
            check,
        }
    }

    fn write(
        &self,
        object: &str,
        baseline: &Baseline,
        changes: Changes<'_>,
    ) -> Result<(), StoreError> {
        let journal = match changes {
            Changes::Some(summary) => summary.journal.as_deref(),
            Changes::All => None,
        };
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend("cannot begin a transaction"))?;
        // The summary names what one commit changed: it is enough only on
        // top of the revision that commit started from (or the same one,
        // saved again), and only where the header's count and sum can be
        // trusted to carry on from. Anything else (no save yet, saves
        // skipped or failed, another writer's later save, a damaged or old
        // header) is written whole. Two writers of the same revision still
        // look alike (see the type's docs).
        let revision = baseline.revision();
        let start = match changes {
            Changes::Some(summary) => stored_sums(&tx, object)?
                .filter(|s| s.revision == revision || s.revision.checked_add(1) == Some(revision))
                .map(|s| (summary, s)),
            Changes::All => None,
        };
        let header = HeaderRow::of(object, baseline.header())?;
        let object_id = header.upsert(&tx)?;
        // The records held back as ambiguous are written when the commit
        // changed them, or the baseline is written whole; otherwise the
        // stored ones (and their checksum) are this baseline's.
        let ambiguous_sum = match &start {
            Some((summary, stored)) if !summary.ambiguous => stored.ambiguous_sum,
            _ => write_ambiguous(&tx, object, object_id, baseline)?,
        };
        let sums = {
            let mut rows = Rows {
                object,
                object_id,
                prefix: row_prefix(object),
                count: 0,
                sum: 0,
                insert: tx
                    .prepare_cached(INSERT_ENTITY)
                    .map_err(backend("cannot prepare the entity insert"))?,
                replace: None,
                delete: tx
                    .prepare_cached(DELETE_ENTITY)
                    .map_err(backend("cannot prepare the entity delete"))?,
            };
            match start {
                Some((summary, stored)) => {
                    rows.count = stored.count;
                    rows.sum = stored.rows;
                    rows.replace = Some((
                        tx.prepare_cached(FIND_ENTITY)
                            .map_err(backend("cannot prepare the entity query"))?,
                        tx.prepare_cached(UPDATE_ENTITY)
                            .map_err(backend("cannot prepare the entity update"))?,
                    ));
                    rows.put_all(baseline, &summary.touched)?;
                    for id in &summary.removed {
                        if baseline.entity(id).is_none() {
                            rows.delete(id)?;
                        }
                    }
                }
                None => {
                    tx.execute(
                        "DELETE FROM recsync_entities WHERE object = ?1",
                        params![object_id],
                    )
                    .map_err(backend("cannot clear the old entities"))?;
                    let ids: Vec<EntityId> = baseline.entities().map(|e| e.id().clone()).collect();
                    rows.put_all(baseline, &ids)?;
                }
            }
            (rows.count, rows.sum)
        };
        header.seal(&tx, object_id, sums.0, sums.1, ambiguous_sum)?;
        if let Some(batch) = journal {
            keep_journal(&tx, object, object_id, batch)?;
        }
        tx.commit().map_err(backend("cannot commit the save"))
    }

    /// The object's journal entries `query` asks for, in the order saved.
    fn list_journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let Some((conditions, values)) = journal_rows::conditions(query, '?', 2) else {
            return Ok(Vec::new());
        };
        let fail = |context| self.error(object, context);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!("{LIST_JOURNAL}{conditions} ORDER BY j.seq"))
            .map_err(fail("cannot prepare the journal query"))?;
        let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&object];
        for value in &values {
            bound.push(match value {
                Bound::Int(x) => x,
                Bound::Text(t) => t,
            });
        }
        let mut rows = stmt
            .query(bound.as_slice())
            .map_err(fail("cannot read the journal"))?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().map_err(fail("cannot read the journal"))? {
            let seq = match row.get_ref(0).map_err(fail("cannot read the journal"))? {
                ValueRef::Integer(seq) => seq,
                _ => 0,
            };
            let damaged =
                || self.damaged(object, Place::JournalRow { row: seq }, Check::JournalEntry);
            let entry = match row.get_ref(1).map_err(fail("cannot read the journal"))? {
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    serde_json::from_slice(bytes).map_err(|_| damaged())?
                }
                _ => return Err(damaged()),
            };
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Reads `object`'s state, verified; `legacy` says what to do with an
    /// object saved without checksums.
    fn read(&self, object: &str, legacy: Legacy) -> Result<Read, StoreError> {
        let mut conn = self.lock();
        // One read transaction: the header and the entities of one save.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(self.error(object, "cannot begin a read"))?;
        let found = tx
            .prepare_cached(READ_HEADER)
            .map_err(self.error(object, "cannot prepare the header query"))?
            .query_row(params![object], StoredHeader::from_row)
            .optional()
            .map_err(self.error(object, "cannot read the header"))?;
        let Some(stored) = found else {
            self.verify_absent(&tx, object)?;
            return Ok(Read::Verified(Baseline::new()));
        };
        let (header, verify) = match stored.header(object) {
            Ok(mut header) => {
                header.ambiguous = self.read_ambiguous(&tx, object, &stored)?;
                (header, true)
            }
            Err(Check::Layout) => match legacy {
                Legacy::Refuse => {
                    return Err(StoreError::Format {
                        object: Some(object.to_owned()),
                        path: self.path.clone(),
                        found: 1,
                        supported: SCHEMA_VERSION as u64,
                    })
                }
                Legacy::Accept => (
                    stored
                        .unverified_header()
                        .map_err(|check| self.damaged(object, Place::Header, check))?,
                    false,
                ),
            },
            Err(check) => return Err(self.damaged(object, Place::Header, check)),
        };

        let mut stmt = tx
            .prepare_cached("SELECT id, record, checksum FROM recsync_entities WHERE object = ?1")
            .map_err(self.error(object, "cannot prepare the entity query"))?;
        let mut rows = stmt
            .query(params![stored.id])
            .map_err(self.error(object, "cannot read the entities"))?;
        // Stream the rows into the baseline; the first bad row stops it.
        let prefix = row_prefix(object);
        let (mut count, mut sum) = (0u64, 0u64);
        let mut failure: Option<StoreError> = None;
        let records = std::iter::from_fn(|| {
            if failure.is_some() {
                return None;
            }
            let next = match rows.next() {
                Ok(Some(row)) => self.decode_row(row, object, prefix, verify),
                Ok(None) => return None,
                Err(e) => Err(self.error(object, "cannot read the entities")(e)),
            };
            match next {
                Ok((record, crc)) => {
                    count = count.saturating_add(1);
                    sum = sum.wrapping_add(crc);
                    Some(record)
                }
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
        let baseline = baseline.map_err(|source| StoreError::Baseline {
            object: object.to_owned(),
            source,
        })?;
        if !verify {
            return Ok(Read::Legacy(baseline));
        }
        let expected = stored
            .count
            .and_then(|c| u64::try_from(c).ok())
            .unwrap_or(0);
        let rows_sum = stored.rows.map_or(0, from_sql);
        if count != expected {
            return Err(self.damaged(
                object,
                Place::Header,
                Check::Count {
                    expected,
                    found: count,
                },
            ));
        }
        if sum != rows_sum {
            return Err(self.damaged(object, Place::Whole, Check::RowSet));
        }
        Ok(Read::Verified(baseline))
    }

    /// The records held back as ambiguous of a verified header: their text
    /// must match the checksum the header's checksum covers.
    fn read_ambiguous(
        &self,
        tx: &rusqlite::Transaction<'_>,
        object: &str,
        stored: &StoredHeader,
    ) -> Result<AmbiguousRecords, StoreError> {
        let text: Option<Vec<u8>> = tx
            .prepare_cached(READ_AMBIGUOUS)
            .map_err(self.error(object, "cannot prepare the header query"))?
            .query_row(params![stored.id], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Text(t) => Some(t.to_vec()),
                    ValueRef::Null => None,
                    // Damage: a checksum never matches it.
                    _ => Some(Vec::new()),
                })
            })
            .map_err(self.error(object, "cannot read the header"))?;
        let damaged = |check| self.damaged(object, Place::Header, check);
        match (text, stored.ambiguous_sum) {
            (None, None) => Ok(AmbiguousRecords::default()),
            (Some(text), Some(sum)) if to_sql(ambiguous_check(&text)) == sum => {
                serde_json::from_slice(&text).map_err(|_| damaged(Check::Unreadable))
            }
            _ => Err(damaged(Check::HeaderChecksum)),
        }
    }

    /// No header is stored under `object`'s name. That is an object never
    /// saved only if no header fails its checksum (one may be this object's,
    /// its name damaged), none has this name (the name index and the table
    /// would disagree), and no entity rows are stored without a header.
    fn verify_absent(
        &self,
        tx: &rusqlite::Transaction<'_>,
        object: &str,
    ) -> Result<(), StoreError> {
        let fail = |context| self.error(object, context);
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, revision, fingerprint, cursors, count, rows, checksum,
                        ambiguous_sum, name
                 FROM recsync_objects ORDER BY id",
            )
            .map_err(fail("cannot prepare the header list"))?;
        let headers = stmt
            .query_map([], |row| {
                Ok((StoredHeader::from_row(row)?, row.get::<_, String>(8)?))
            })
            .map_err(fail("cannot list the headers"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail("cannot list the headers"))?;
        let mut ids = Vec::with_capacity(headers.len());
        for (stored, name) in &headers {
            if name == object {
                return Err(self.damaged(object, Place::Header, Check::Database));
            }
            if let Err(check) = stored.header(name) {
                if check != Check::Layout {
                    return Err(self.damaged(object, Place::Header, check));
                }
            }
            ids.push(stored.id);
        }
        // Rows whose object is none of the headers', looked for in the gaps
        // between the header ids (each an indexed range query).
        let mut gaps = Vec::with_capacity(ids.len() + 1);
        let mut low = Some(i64::MIN);
        for id in &ids {
            if let Some(l) = low {
                if let Some(high) = id.checked_sub(1).filter(|h| *h >= l) {
                    gaps.push((l, high));
                }
            }
            low = id.checked_add(1);
        }
        if let Some(l) = low {
            gaps.push((l, i64::MAX));
        }
        let mut orphans = tx
            .prepare_cached(
                "SELECT 1 FROM recsync_entities WHERE object >= ?1 AND object <= ?2 LIMIT 1",
            )
            .map_err(fail("cannot prepare the orphan query"))?;
        for (low, high) in gaps {
            let found = orphans
                .exists(params![low, high])
                .map_err(fail("cannot look for rows without a header"))?;
            if found {
                return Err(self.damaged(object, Place::Whole, Check::MissingHeader));
            }
        }
        Ok(())
    }

    /// One entity row, verified unless `verify` is false, with its checksum.
    fn decode_row(
        &self,
        row: &rusqlite::Row<'_>,
        object: &str,
        prefix: Crc64,
        verify: bool,
    ) -> Result<(EntityRecord, u64), StoreError> {
        let fail = |context| self.error(object, context);
        let id = match row.get_ref(0).map_err(fail("cannot read an entity id"))? {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
            _ => &[],
        };
        let at = || Place::Row {
            entity: EntityId::new(String::from_utf8_lossy(id)),
        };
        let bytes = match row.get_ref(1).map_err(fail("cannot read an entity"))? {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes,
            _ => return Err(self.damaged(object, at(), Check::Layout)),
        };
        let crc = row_check(prefix, id, bytes);
        if verify {
            let stored = match row.get_ref(2).map_err(fail("cannot read a checksum"))? {
                ValueRef::Integer(sum) => Some(sum),
                _ => None,
            };
            if stored != Some(to_sql(crc)) {
                return Err(self.damaged(object, at(), Check::RowChecksum));
            }
        }
        let record =
            row::decode(bytes).map_err(|_| self.damaged(object, at(), Check::Unreadable))?;
        if record.id.as_str().as_bytes() != id {
            return Err(self.damaged(object, at(), Check::RowId));
        }
        Ok((record, crc))
    }

    fn error<'a>(
        &'a self,
        object: &'a str,
        context: &'static str,
    ) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
        sqlite_error(&self.path, Some(object), context)
    }
}

/// What [`SqliteStore::read`] does with an object saved without checksums.
#[derive(Clone, Copy)]
enum Legacy {
    Refuse,
    Accept,
}

enum Read {
    Verified(Baseline),
    /// Saved without checksums, read unverified.
    Legacy(Baseline),
}

impl Read {
    fn into_baseline(self) -> Result<Baseline, StoreError> {
        match self {
            Read::Verified(b) | Read::Legacy(b) => Ok(b),
        }
    }
}

/// Refuses a SQLite library older than [`MIN_SQLITE`] (only a system
/// library can be: every bundled one in rusqlite's range is newer).
fn supported_sqlite(number: i32, version: &str) -> Result<(), StoreError> {
    if number >= MIN_SQLITE {
        return Ok(());
    }
    Err(StoreError::Backend {
        message: format!(
            "SQLite {version} is older than 3.35.0, which the store needs: \
             link a newer system SQLite, or turn on feature sqlite-bundled"
        ),
        source: None,
    })
}

/// Makes a database file and its `-wal`, `-shm` and `-journal` files
/// owner-only, those that exist.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    owner::ensure(path, Broader::Tighten)?;
    for end in ["-wal", "-shm", "-journal"] {
        let mut side = path.to_path_buf().into_os_string();
        side.push(end);
        owner::ensure(Path::new(&side), Broader::Tighten)?;
    }
    Ok(())
}

/// The file of `conn`'s main database as SQLite names it (`PRAGMA
/// database_list`, which every rusqlite in the range reads alike;
/// `Connection::path` changed its type); `None` for a database in memory
/// or a temporary one, which SQLite names with an empty string.
fn database_file(conn: &Connection) -> rusqlite::Result<Option<PathBuf>> {
    let mut stmt = conn.prepare("PRAGMA database_list")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        if !matches!(row.get_ref(1)?, ValueRef::Text(b"main")) {
            continue;
        }
        return Ok(match row.get_ref(2)? {
            ValueRef::Text(bytes) if !bytes.is_empty() => Some(path_from_bytes(bytes)),
            _ => None,
        });
    }
    Ok(None)
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// SQLite names files in UTF-8 where paths are not bytes.
#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Whose `PRAGMA user_version` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserVersion {
    /// The store's: a file it opened by path. Kept at least at the schema
    /// version, so a recsync from before `recsync_schema` (which reads the
    /// version only there) refuses a later schema instead of taking the
    /// file for an empty database.
    Store,
    /// The host's: a database the host handed over. Left alone, but in a
    /// database the store made before `recsync_schema`, where it was the
    /// store's.
    Host,
}

/// The store's tables besides `recsync_schema`, each with the schema
/// version that added it.
const DATA_TABLES: [(&str, i64); 3] = [
    ("recsync_objects", 1),
    ("recsync_entities", 1),
    ("recsync_journal", 4),
];

/// The store's schema in a database, as found. A version is one
/// `bring_schema_up_to_date` knows (`1..=SCHEMA_VERSION`):
/// [`stored_schema`] refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// None of the store's tables: a database the store has not set up.
    Empty,
    /// `recsync_schema` holds this version.
    Table(i64),
    /// No `recsync_schema`, but the store's tables: a database the store
    /// made before that table, which kept the version in `user_version`.
    Legacy(i64),
}

/// The error for a schema version outside `1..=SCHEMA_VERSION`: a newer
/// recsync's is [`StoreError::Format`]; one below 1, which no recsync
/// records, is damage.
fn unknown_version(path: &Path, found: i64) -> StoreError {
    if found > SCHEMA_VERSION {
        StoreError::Format {
            object: None,
            path: path.to_path_buf(),
            found: found.unsigned_abs(),
            supported: SCHEMA_VERSION.unsigned_abs(),
        }
    } else {
        StoreError::Damaged {
            object: None,
            path: path.to_path_buf(),
            place: Place::SchemaVersion { found },
            check: Check::Layout,
        }
    }
}

/// The store's schema in the database: refuses a version the store does
/// not know (newer, or below 1) and, under a version it knows, the
/// store's tables missing (dropped: every load would fail), before
/// anything is created or changed.
fn stored_schema(conn: &Connection, path: &Path) -> Result<Stored, StoreError> {
    let fail = |context: &'static str| sqlite_error(path, None, context);
    let layout = |place| StoreError::Damaged {
        object: None,
        path: path.to_path_buf(),
        place,
        check: Check::Layout,
    };
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name IN ('recsync_schema', 'recsync_objects', 'recsync_entities',
                          'recsync_journal')",
        )
        .map_err(fail("cannot list the store's tables"))?;
    let tables = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(fail("cannot list the store's tables"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail("cannot list the store's tables"))?;
    let has = |name: &str| tables.iter().any(|t| t == name);
    let found = if has("recsync_schema") {
        let version = conn
            .query_row(
                "SELECT version FROM recsync_schema WHERE only = 1",
                [],
                |row| {
                    Ok(match row.get_ref(0)? {
                        ValueRef::Integer(v) => Some(v),
                        _ => None,
                    })
                },
            )
            .optional()
            .map_err(fail("cannot read the schema version"))?
            .flatten();
        let Some(version) = version else {
            return Err(layout(Place::Whole));
        };
        Stored::Table(version)
    } else if has("recsync_objects") {
        let version = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(fail("cannot read the schema version"))?;
        Stored::Legacy(version)
    } else if tables.is_empty() {
        return Ok(Stored::Empty);
    } else {
        // Entity rows alone: no version says what they are.
        return Err(layout(Place::Tables {
            missing: vec!["recsync_objects".to_owned()],
        }));
    };
    let (Stored::Table(version) | Stored::Legacy(version)) = found else {
        return Ok(found);
    };
    // The version first: a newer schema may keep other tables.
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(unknown_version(path, version));
    }
    let missing: Vec<String> = DATA_TABLES
        .iter()
        .filter(|(t, since)| *since <= version && !has(t))
        .map(|(t, _)| (*t).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(layout(Place::Tables { missing }));
    }
    Ok(found)
}

/// Whether `user_version` is the store's ([`UserVersion::Store`]) and
/// below the schema version.
fn user_version_behind(
    conn: &Connection,
    path: &Path,
    owner: UserVersion,
) -> Result<bool, StoreError> {
    if owner == UserVersion::Host {
        return Ok(false);
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sqlite_error(path, None, "cannot read user_version"))?;
    Ok(version < SCHEMA_VERSION)
}

/// Creates the store's tables, or brings those of an older schema version
/// up to date, and records the version (in `user_version` too where that
/// is the store's: see [`UserVersion`]); refuses a newer one, or damage.
fn bring_schema_up_to_date(
    conn: &mut Connection,
    path: &Path,
    owner: UserVersion,
) -> Result<(), StoreError> {
    let fail = |context: &'static str| sqlite_error(path, None, context);
    let found = stored_schema(conn, path)?;
    // Nothing to write (a read-only connection gets this far).
    if found == Stored::Table(SCHEMA_VERSION) && !user_version_behind(conn, path, owner)? {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("cannot begin creating the schema"))?;
    // Again under the write lock: another connection may have done it.
    let found = stored_schema(&tx, path)?;
    let from_1 = format!("{MIGRATE_FROM_1}{MIGRATE_FROM_2}{MIGRATE_FROM_3}");
    let from_2 = format!("{MIGRATE_FROM_2}{MIGRATE_FROM_3}");
    let new = format!("{SCHEMA}{JOURNAL}");
    let upgrade = match found {
        Stored::Empty => new.as_str(),
        Stored::Table(1) | Stored::Legacy(1) => from_1.as_str(),
        Stored::Table(2) | Stored::Legacy(2) => from_2.as_str(),
        Stored::Table(3) | Stored::Legacy(3) => MIGRATE_FROM_3,
        Stored::Table(SCHEMA_VERSION) | Stored::Legacy(SCHEMA_VERSION) => "",
        // `stored_schema` refused any other.
        Stored::Table(other) | Stored::Legacy(other) => return Err(unknown_version(path, other)),
    };
    tx.execute_batch(upgrade)
        .map_err(fail("cannot create the schema"))?;
    tx.execute_batch(SCHEMA_TABLE)
        .map_err(fail("cannot create the schema"))?;
    tx.execute(SET_SCHEMA_VERSION, params![SCHEMA_VERSION])
        .map_err(fail("cannot record the schema version"))?;
    // `user_version` where it is the store's: a database made before the
    // table, and a file opened by path. Kept in step for a recsync that
    // still reads the version there.
    if matches!(found, Stored::Legacy(_)) || user_version_behind(&tx, path, owner)? {
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(fail("cannot record the schema version"))?;
    }
    tx.commit().map_err(fail("cannot create the schema"))
}

/// A SQLite error as a store error: a database the engine finds malformed
/// is damaged state, anything else a backend failure.
fn sqlite_error<'a>(
    path: &'a Path,
    object: Option<&'a str>,
    context: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |e| {
        use rusqlite::ErrorCode;
        // Not `Error::sqlite_error_code`: rusqlite before 0.28 lacks it.
        let code = match &e {
            rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
            _ => None,
        };
        match code {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Damaged {
                object: object.map(str::to_owned),
                path: path.to_path_buf(),
                place: Place::Whole,
                check: Check::Database,
            },
            _ => StoreError::Backend {
                message: context.to_owned(),
                source: Some(Box::new(e)),
            },
        }
    }
}

/// A checksum as SQLite keeps it: the same 64 bits, signed.
fn to_sql(x: u64) -> i64 {
    i64::from_ne_bytes(x.to_ne_bytes())
}

fn from_sql(x: i64) -> u64 {
    u64::from_ne_bytes(x.to_ne_bytes())
}

/// The checksum of every row of `object` starts from this.
fn row_prefix(object: &str) -> Crc64 {
    let mut c = Crc64::new();
    c.field(b"recsync row 2");
    c.field(object.as_bytes());
    c
}

fn row_check(prefix: Crc64, id: &[u8], record: &[u8]) -> u64 {
    let mut c = prefix;
    c.field(id);
    c.field(record);
    c.finish()
}

/// An object's header row as written.
struct HeaderRow<'o> {
    object: &'o str,
    revision: i64,
    fingerprint: Option<i64>,
    cursors: String,
}

impl<'o> HeaderRow<'o> {
    fn of(object: &'o str, header: &BaselineHeader) -> Result<Self, StoreError> {
        let revision = i64::try_from(header.revision).map_err(|_| StoreError::Backend {
            message: format!(
                "revision {} of {object} does not fit the database",
                header.revision
            ),
            source: None,
        })?;
        let cursors = serde_json::to_string(&header.cursors).map_err(|e| StoreError::Backend {
            message: format!("cannot serialize the cursors of {object}"),
            source: Some(Box::new(e)),
        })?;
        Ok(HeaderRow {
            object,
            revision,
            // SQLite integers are signed: keep the fingerprint's 64 bits as
            // they are.
            fingerprint: header.fingerprint.map(to_sql),
            cursors,
        })
    }

    /// Writes the header's fields (not yet its count and sums); returns the
    /// object's id.
    fn upsert(&self, tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
        tx.prepare_cached(UPSERT_OBJECT)
            .map_err(backend("cannot prepare the header upsert"))?
            .query_row(
                params![self.object, self.revision, self.fingerprint, self.cursors],
                |row| row.get(0),
            )
            .map_err(backend("cannot write the header"))
    }

    /// Writes the count, the sum of row checksums and the header checksum.
    fn seal(
        &self,
        tx: &rusqlite::Transaction<'_>,
        object_id: i64,
        count: u64,
        rows: u64,
        ambiguous_sum: Option<i64>,
    ) -> Result<(), StoreError> {
        let count = i64::try_from(count).map_err(|_| StoreError::Backend {
            message: format!(
                "{count} entities of {} do not fit the database",
                self.object
            ),
            source: None,
        })?;
        let rows = to_sql(rows);
        let check = header_check(
            self.object,
            self.revision,
            self.fingerprint,
            &self.cursors,
            count,
            rows,
            ambiguous_sum,
        );
        tx.prepare_cached(SEAL_OBJECT)
            .map_err(backend("cannot prepare the header seal"))?
            .execute(params![object_id, count, rows, to_sql(check)])
            .map_err(backend("cannot write the header"))?;
        Ok(())
    }
}

/// The header checksum: over every field of the header row but its id
/// and the text of the records held back as ambiguous, which their own
/// checksum covers (this one covers that). A header with none is checked
/// as schema version 2 checked it.
fn header_check(
    object: &str,
    revision: i64,
    fingerprint: Option<i64>,
    cursors: &str,
    count: i64,
    rows: i64,
    ambiguous_sum: Option<i64>,
) -> u64 {
    let mut c = Crc64::new();
    c.field(b"recsync header 2");
    c.field(object.as_bytes());
    c.update(&revision.to_le_bytes());
    match fingerprint {
        Some(f) => {
            c.update(&[1]);
            c.update(&f.to_le_bytes());
        }
        None => c.update(&[0]),
    }
    c.field(cursors.as_bytes());
    c.update(&count.to_le_bytes());
    c.update(&rows.to_le_bytes());
    if let Some(sum) = ambiguous_sum {
        c.field(b"ambiguous");
        c.update(&sum.to_le_bytes());
    }
    c.finish()
}

/// The checksum of the records held back as ambiguous, as stored.
fn ambiguous_check(text: &[u8]) -> u64 {
    let mut c = Crc64::new();
    c.field(b"recsync ambiguous 3");
    c.field(text);
    c.finish()
}

/// Writes the baseline's records held back as ambiguous (`NULL` when
/// none); returns their checksum.
fn write_ambiguous(
    tx: &rusqlite::Transaction<'_>,
    object: &str,
    object_id: i64,
    baseline: &Baseline,
) -> Result<Option<i64>, StoreError> {
    let held = &baseline.header().ambiguous;
    let text = if held.is_empty() {
        None
    } else {
        Some(
            serde_json::to_string(held).map_err(|e| StoreError::Backend {
                message: format!("cannot serialize the records held back of {object}"),
                source: Some(Box::new(e)),
            })?,
        )
    };
    let sum = text.as_ref().map(|t| to_sql(ambiguous_check(t.as_bytes())));
    tx.prepare_cached(SET_AMBIGUOUS)
        .map_err(backend("cannot prepare the header update"))?
        .execute(params![object_id, text, sum])
        .map_err(backend("cannot write the header"))?;
    Ok(sum)
}

/// An object's header row as read.
struct StoredHeader {
    id: i64,
    revision: i64,
    fingerprint: Option<i64>,
    cursors: String,
    count: Option<i64>,
    rows: Option<i64>,
    checksum: Option<i64>,
    ambiguous_sum: Option<i64>,
    /// A column held a value of the wrong type.
    mistyped: bool,
}

impl StoredHeader {
    /// Reads `id, revision, fingerprint, cursors, count, rows, checksum,
    /// ambiguous_sum`.
    /// A value of the wrong type (damage) is noted, not an error, so the
    /// checks name it.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredHeader> {
        let mut mistyped = false;
        let mut int = |i: usize| -> rusqlite::Result<Option<i64>> {
            Ok(match row.get_ref(i)? {
                ValueRef::Integer(x) => Some(x),
                ValueRef::Null => None,
                _ => {
                    mistyped = true;
                    None
                }
            })
        };
        let id = int(0)?.unwrap_or(0);
        let revision = int(1)?;
        let fingerprint = int(2)?;
        let count = int(4)?;
        let rows = int(5)?;
        let checksum = int(6)?;
        let ambiguous_sum = int(7)?;
        let cursors = match row.get_ref(3)? {
            ValueRef::Text(t) => String::from_utf8(t.to_vec()).ok(),
            _ => None,
        };
        Ok(StoredHeader {
            id,
            revision: revision.unwrap_or(-1),
            fingerprint,
            mistyped: mistyped || revision.is_none() || cursors.is_none(),
            cursors: cursors.unwrap_or_default(),
            count,
            rows,
            checksum,
            ambiguous_sum,
        })
    }

    /// The baseline header, verified. `Check::Layout`: a header saved
    /// before checksums (no checksum, count or sum: a single damaged value
    /// is never taken for one).
    fn header(&self, object: &str) -> Result<BaselineHeader, Check> {
        let (Some(checksum), Some(count), Some(rows)) = (self.checksum, self.count, self.rows)
        else {
            let legacy = self.checksum.is_none()
                && self.count.is_none()
                && self.rows.is_none()
                && !self.mistyped;
            return Err(if legacy {
                Check::Layout
            } else {
                Check::HeaderChecksum
            });
        };
        let expected = header_check(
            object,
            self.revision,
            self.fingerprint,
            &self.cursors,
            count,
            rows,
            self.ambiguous_sum,
        );
        if self.mistyped || count < 0 || to_sql(expected) != checksum {
            return Err(Check::HeaderChecksum);
        }
        self.unverified_header()
    }

    /// The baseline header, unverified (for a header saved before
    /// checksums).
    fn unverified_header(&self) -> Result<BaselineHeader, Check> {
        Ok(BaselineHeader {
            revision: u64::try_from(self.revision).map_err(|_| Check::Unreadable)?,
            fingerprint: self.fingerprint.map(from_sql),
            cursors: serde_json::from_str(&self.cursors).map_err(|_| Check::Unreadable)?,
            ambiguous: AmbiguousRecords::default(),
        })
    }
}

/// What a save carries on from: the stored revision, count and sum, if the
/// stored header verifies.
struct StoredSums {
    revision: u64,
    count: u64,
    rows: u64,
    ambiguous_sum: Option<i64>,
}

fn stored_sums(
    tx: &rusqlite::Transaction<'_>,
    object: &str,
) -> Result<Option<StoredSums>, StoreError> {
    let stored = tx
        .prepare_cached(READ_HEADER)
        .map_err(backend("cannot prepare the header query"))?
        .query_row(params![object], StoredHeader::from_row)
        .optional()
        .map_err(backend("cannot read the stored header"))?;
    Ok(stored.and_then(|s| {
        let header = s.header(object).ok()?;
        Some(StoredSums {
            revision: header.revision,
            count: u64::try_from(s.count?).ok()?,
            rows: from_sql(s.rows?),
            ambiguous_sum: s.ambiguous_sum,
        })
    }))
}

/// The entity rows of one object, inside a save's transaction, and the
/// count and sum of checksums of the rows it holds.
struct Rows<'c, 'o> {
    object: &'o str,
    object_id: i64,
    prefix: Crc64,
    count: u64,
    sum: u64,
    insert: rusqlite::CachedStatement<'c>,
    /// Finds the row a write replaces, and rewrites it; `None` when the
    /// rows were cleared first (every write is an insert).
    replace: Option<(rusqlite::CachedStatement<'c>, rusqlite::CachedStatement<'c>)>,
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
    /// Per entity, where its row ends in `bytes` and its checksum; `None`:
    /// not in the baseline.
    ends: Vec<Option<(usize, u64)>>,
}

fn serialize_batch<'i>(
    baseline: &Baseline,
    object: &str,
    prefix: Crc64,
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
                let start = batch.bytes.len();
                serde_json::to_writer(&mut batch.bytes, &json).map_err(|e| {
                    StoreError::Backend {
                        message: format!("cannot serialize entity {id} of {object}"),
                        source: Some(Box::new(e)),
                    }
                })?;
                let row = batch.bytes.get(start..).unwrap_or_default();
                let crc = row_check(prefix, id.as_str().as_bytes(), row);
                batch.ends.push(Some((batch.bytes.len(), crc)));
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
        let (object, prefix) = (self.object, self.prefix);
        if ids.len() < PIPELINE_MIN {
            return self.write_batch(&serialize_batch(baseline, object, prefix, ids)?);
        }
        std::thread::scope(|scope| {
            let (send, receive) = std::sync::mpsc::sync_channel(4);
            let serializer = std::thread::Builder::new()
                .name("recsync-store-rows".into())
                .spawn_scoped(scope, move || {
                    for part in ids.chunks(BATCH) {
                        let batch = serialize_batch(baseline, object, prefix, part);
                        let failed = batch.is_err();
                        // The writer hung up: it failed and returns its error.
                        if send.send(batch).is_err() || failed {
                            break;
                        }
                    }
                });
            if serializer.is_err() {
                return self.write_batch(&serialize_batch(baseline, object, prefix, ids)?);
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
                Some((end, crc)) => {
                    let row = batch.bytes.get(start..*end).unwrap_or_default();
                    start = *end;
                    self.put(id, row, *crc)?;
                }
                None => self.delete(id)?,
            }
        }
        Ok(())
    }

    fn put(&mut self, id: &EntityId, row: &[u8], crc: u64) -> Result<(), StoreError> {
        let (object, object_id) = (self.object, self.object_id);
        let fail = |context| backend_for(context, object, id);
        let found = match &mut self.replace {
            Some((find, _)) => find
                .query_row(params![object_id, id.as_str()], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
                })
                .optional()
                .map_err(fail("cannot read the row of entity"))?,
            None => None,
        };
        // The row this one replaces leaves the count and the sum; one
        // without a checksum was never counted.
        match found.and_then(|(_, old)| old) {
            Some(old) => self.sum = self.sum.wrapping_sub(from_sql(old)),
            None => self.count = self.count.saturating_add(1),
        }
        self.sum = self.sum.wrapping_add(crc);
        let written = match (found, &mut self.replace) {
            (Some((rowid, _)), Some((_, update))) => {
                update.execute(params![rowid, row, to_sql(crc)])
            }
            _ => self
                .insert
                .execute(params![object_id, id.as_str(), row, to_sql(crc)]),
        };
        written.map_err(fail("cannot write entity"))?;
        Ok(())
    }

    fn delete(&mut self, id: &EntityId) -> Result<(), StoreError> {
        let old = self
            .delete
            .query_row(params![self.object_id, id.as_str()], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map_err(backend_for("cannot delete entity", self.object, id))?
            .flatten();
        if let Some(old) = old {
            self.count = self.count.saturating_sub(1);
            self.sum = self.sum.wrapping_sub(from_sql(old));
        }
        Ok(())
    }
}

enum Changes<'a> {
    Some(&'a CommitSummary),
    All,
}

impl StateStore for SqliteStore {
    /// Loads and verifies the object's header and rows (see the type's
    /// docs): damaged state is [`StoreError::Damaged`], an object saved
    /// before schema version 2 is [`StoreError::Format`].
    fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        self.read(object, Legacy::Refuse)?.into_baseline()
    }

    fn save(
        &self,
        object: &str,
        baseline: &Baseline,
        changed: &CommitSummary,
    ) -> Result<(), StoreError> {
        self.write(object, baseline, Changes::Some(changed))
    }

    /// Writes the whole baseline; the journal stays as it is.
    fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
        self.write(object, baseline, Changes::All)
    }

    /// Lists the object's journal rows (see the type's docs): a row that
    /// is not an entry is [`StoreError::Damaged`], naming the row.
    fn journal(&self, object: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        self.list_journal(object, query)
    }
}

/// Appends `batch`'s entries to the object's journal and drops what its
/// retention does not keep as of its time, inside the save's transaction.
/// Ages are compared to the microsecond: an entry less than a
/// microsecond older than the cutoff may stay.
fn keep_journal(
    tx: &rusqlite::Transaction<'_>,
    object: &str,
    object_id: i64,
    batch: &JournalBatch,
) -> Result<(), StoreError> {
    if !batch.entries.is_empty() {
        let mut insert = tx
            .prepare_cached(INSERT_JOURNAL)
            .map_err(backend("cannot prepare the journal insert"))?;
        for entry in &batch.entries {
            let run = journal_rows::run_sql(object, entry.run)?;
            let json = journal_rows::encode(object, entry)?;
            insert
                .execute(params![
                    object_id,
                    run,
                    entry.at.timestamp_micros(),
                    entry.system.as_str(),
                    entry.record_id,
                    json
                ])
                .map_err(backend("cannot write the journal"))?;
        }
    }
    let retention = &batch.retention;
    if let Some(cutoff) = retention.cutoff(batch.at) {
        tx.prepare_cached(PRUNE_JOURNAL_AGE)
            .map_err(backend("cannot prepare the journal's retention"))?
            .execute(params![object_id, cutoff.timestamp_micros()])
            .map_err(backend("cannot drop old journal entries"))?;
    }
    match retention.runs {
        None => {}
        Some(0) => {
            tx.prepare_cached(CLEAR_JOURNAL)
                .map_err(backend("cannot prepare the journal's retention"))?
                .execute(params![object_id])
                .map_err(backend("cannot drop old journal entries"))?;
        }
        Some(runs) => {
            tx.prepare_cached(PRUNE_JOURNAL_RUNS)
                .map_err(backend("cannot prepare the journal's retention"))?
                .execute(params![object_id, journal_rows::runs_sql(runs)])
                .map_err(backend("cannot drop old journal entries"))?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `RETURNING` came in SQLite 3.35.0: an older system library is
    /// refused when the store opens, not at its first save.
    #[test]
    fn sqlite_older_than_3_35_is_refused() {
        assert!(supported_sqlite(3_035_000, "3.35.0").is_ok());
        assert!(supported_sqlite(3_046_001, "3.46.1").is_ok());
        let err = supported_sqlite(3_034_001, "3.34.1").map(|()| "accepted");
        let Err(err) = err else {
            panic!("SQLite 3.34.1 was accepted");
        };
        assert!(
            err.to_string()
                .contains("SQLite 3.34.1 is older than 3.35.0, which the store needs"),
            "{err}"
        );
        // The library this build links passes.
        assert!(supported_sqlite(rusqlite::version_number(), rusqlite::version()).is_ok());
    }

    /// A schema version outside the known ones: a newer recsync's is an
    /// unknown format, the exact version named; one below 1, which no
    /// recsync records, is damage naming the value, never clamped into a
    /// format version (0 would read as "carries no checksums").
    #[test]
    fn a_version_below_1_is_damage_and_a_newer_one_a_format() {
        let path = Path::new("/state.db");
        for found in [0, -1, i64::from(i32::MIN), i64::MIN] {
            let err = unknown_version(path, found);
            assert!(
                matches!(
                    &err,
                    StoreError::Damaged {
                        object: None,
                        place: Place::SchemaVersion { found: f },
                        check: Check::Layout,
                        ..
                    } if *f == found
                ),
                "{err:?}"
            );
            assert!(!err.to_string().contains("upgrade_legacy"), "{err}");
        }
        for found in [SCHEMA_VERSION + 1, i64::MAX] {
            let err = unknown_version(path, found);
            assert!(
                matches!(
                    &err,
                    StoreError::Format { found: f, supported: 4, .. }
                        if i64::try_from(*f) == Ok(found)
                ),
                "{err:?}"
            );
        }
    }
}

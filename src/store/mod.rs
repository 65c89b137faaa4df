//! Where baselines live between runs: the [`StateStore`] trait and the
//! stores that ship with the crate.
//!
//! A store keeps one [`Baseline`] per object type (`"contacts"`,
//! `"deals"`), cursors and review decisions included (they are part of the
//! baseline). After a commit the host (or the
//! runner) saves the baseline with the
//! [`CommitSummary`] the commit returned, so a store that keeps entities one
//! by one writes only those.
//!
//! | store | keeps | a save writes | a crash mid-save leaves | the [journal](crate::journal) |
//! | --- | --- | --- | --- | --- |
//! | [`MemoryStore`] | nothing past the process | the whole baseline (a clone) | nothing (the process is gone) | in memory, saved with the baseline under one lock |
//! | [`JsonFileStore`] | one JSON file per object type, owner-only, with checksums | the whole baseline, to a temp file renamed over the old one | the last complete save; perhaps a stray `.tmp` file, ignored | a file beside the state file, `<object>.journal.jsonl`, owner-only, an entry to a line: rewritten whole and renamed into place just before the state file, so a crash between the two leaves at worst the commit's entries beside the baseline before it |
//! | `SqliteStore` (feature `sqlite`) | one SQLite database, a row per entity, owner-only, with checksums | only the entities the commit touched or removed, and the header, in one transaction (the whole baseline when the database holds neither the revision the commit started from nor the baseline's own) | the last committed save (after a power cut, perhaps an earlier one: see its docs) | a `recsync_journal` table, an entry to a row, written in the save's transaction |
//! | `PostgresStore` (feature `postgres`) | PostgreSQL tables: a header row per object type, a row per entity with checksums, an index of links, leases | only the entities the commit touched or removed, their links and the header, in one transaction, if the database holds the revision the commit started from (else `StoreError::Conflict`, nothing written; the whole baseline for an object's first save) | the last committed save | a `recsync_journal` table, an entry to a row, written in the save's transaction (none from a save refused as a conflict or fenced) |
//!
//! Every store keeps the journal batch a save's summary carries
//! ([`CommitSummary::journal`]) with the baseline, drops what the batch's
//! [`Retention`](crate::journal::Retention) does not keep as of its time,
//! leaves the journal alone on [`replace`](StateStore::replace), and lists
//! it through [`StateStore::journal`] (or [`AsyncStateStore::journal`]) in
//! the order saved. Entries are kept as the JSON of their
//! [`JournalEntry`], without checksums: a damaged entry that no longer
//! reads is refused with [`StoreError::Damaged`] ([`Check::JournalEntry`]),
//! one that still reads, or one lost whole, is not seen.
//!
//! In every store the cursors are part of the baseline's header and are
//! saved with the entities, never apart from them.
//!
//! [`ReviewQueue`] lists what a stored baseline holds for review and keeps a
//! reviewer's decisions in the store, for the next run to apply.
//!
//! Every store implements [`AsyncStateStore`], which never blocks an
//! executor: the file stores run each call on a thread of their own (a
//! [blocking pool](Blocking) that needs no async runtime), the memory
//! store keeps a pointer to the baseline, `PostgresStore` awaits its
//! server. The [runner](crate::runner) uses it. All but `PostgresStore`
//! implement [`StateStore`] too, called inline.
//!
//! # Damaged state
//!
//! A baseline is recsync's memory of what every system held: the evidence
//! for deletes, and what tells an edit from an echo. Loaded short, it would
//! make records a person deleted look new (and create them again) and
//! older values look like edits. So the file stores verify what they load
//! (format version, entity count, a checksum per entity and one over the
//! header; see [`JsonFileStore`] and `SqliteStore`) and refuse damaged
//! state with [`StoreError::Damaged`], naming the file or database, the
//! place (line, header, or an entity's row) and the check that failed,
//! never with what the state holds. State written before checksums existed
//! is refused with [`StoreError::Format`] until taken over on purpose
//! (`upgrade_legacy` on either store). The [runner](crate::runner) loads
//! before it reads or writes any system, so a refused load fails the run
//! with [`RunError::Store`](crate::runner::RunError::Store) and nothing is
//! written anywhere.
//!
//! A store never repairs damaged state by itself. To go on, a host:
//!
//! - **Restores a backup** of the state, taken after a completed save: a
//!   copy of `<object>.json` (each save replaces it whole, so any copy is
//!   complete), or of the database made with SQLite's own backup
//!   (`VACUUM INTO`, the `.backup` command) or while no store has it open.
//!   The next run plans from the older baseline: records recsync created
//!   since are found by their correlation keys (or match keys) and linked,
//!   not created again; its own later writes read as changes that agree in
//!   every system; a person's changes since read as changes, deletes
//!   included.
//! - **Or starts over** without a backup: moves the damaged file aside
//!   (keep it to look at) or, for one object of a database,
//!   [`replace`](StateStore::replace)s its state with an empty
//!   [`Baseline`]. The next run is a first sync: records are linked by
//!   correlation and match keys, differing values are settled by each
//!   field's policy, and (under the default `MatchMode::MatchThenCreate`)
//!   every record that matches nothing is created in the other systems.
//!   That includes records a person deleted in one system since the last
//!   good run, which an empty baseline cannot know about, and records whose
//!   keys differ. The guards do not help here: they budget deletes, emptied
//!   fields and scope exits, not creates. Running that first sync with
//!   [`MatchMode::MatchOnly`](crate::MatchMode::MatchOnly) links what
//!   matches and reports the rest as unmatched issues for a person to
//!   settle, before switching back.
//!
//! A damaged [journal](crate::journal) entry does not stop loads or runs
//! that keep no journal: a listing refuses it, and so does a
//! [`JsonFileStore`] save with a batch (it reads the journal to drop what
//! retention does not keep). The baseline does not depend on the journal:
//! to go on, move the object's journal file aside, or delete the object's
//! rows from the database's `recsync_journal`, and the next save starts a
//! new one (with it, what an undo or a field's history could be drawn
//! from).
//!
//! Permissions: state files and directories hold personal data. Stores
//! create them owner-only and make existing ones owner-only where that is
//! theirs to do, or refuse them with [`StoreError::Permissions`] naming the
//! path and its mode (see each store's docs).

mod check;
mod file;
mod journal_rows;
mod lane;
mod memory;
mod nonblocking;
mod owner;
#[cfg(feature = "postgres")]
mod postgres;
mod review;
mod row;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

use crate::baseline::{Baseline, BaselineError, EntityId};
use crate::engine::CommitSummary;
use crate::journal::{JournalEntry, JournalQuery};

pub use file::JsonFileStore;
pub use memory::MemoryStore;
pub use nonblocking::{AsyncStateStore, Blocking, Owner, RouteQuery, Routes};
#[cfg(feature = "postgres")]
pub use postgres::{FencedStore, Lease, PostgresStore};
pub use review::{ReviewError, ReviewItem, ReviewQueue};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Keeps the baseline of each object type between runs.
///
/// # Contract
///
/// - [`load`](StateStore::load) returns what the last completed
///   [`save`](StateStore::save) or [`replace`](StateStore::replace) for the
///   object left, or an empty baseline if there was none. A save that did
///   not complete (the process died, the disk filled) leaves the state before
///   it: never a mix. State the store finds damaged is an error
///   ([`StoreError::Damaged`]), never a smaller or different baseline.
/// - `save` may write only the entities `changed` names (touched and
///   removed) and the baseline's header (revision, fingerprint, cursors;
///   the records held back as ambiguous where `changed.ambiguous` says
///   they changed), leaving every other entity as the last save left it,
///   when the store holds the revision the commit started from
///   (`baseline.revision() - 1`) or `baseline`'s own revision; otherwise it
///   writes the whole baseline.
///   Either way `load` then returns `baseline`, given the summary of the
///   commit that made it and no other writer of the object in between.
///   `replace` writes the whole baseline.
/// - Objects are independent: saving one never changes another.
/// - Files and databases holding baselines hold personal data: a store that
///   creates them makes them readable by their owner only.
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The object's baseline as last saved, or an empty one.
    fn load(&self, object: &str) -> Result<Baseline, StoreError>;

    /// Saves `baseline` after a commit that changed the entities in
    /// `changed`.
    fn save(
        &self,
        object: &str,
        baseline: &Baseline,
        changed: &CommitSummary,
    ) -> Result<(), StoreError>;

    /// Replaces the object's whole baseline.
    fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError>;

    /// The [journal](crate::journal) entries kept for the object that
    /// `query` asks for, in the order they were saved.
    ///
    /// A store that keeps a journal writes
    /// [`changed.journal`](CommitSummary::journal) in `save`, with the
    /// baseline (never one without the other, where it can), and drops
    /// what the batch's [`Retention`](crate::journal::Retention) does not
    /// keep. `replace` leaves the journal as it is. Every shipped store
    /// keeps one; the default refuses with [`StoreError::Unsupported`] (and
    /// ignores the batches `save` is given).
    fn journal(&self, object: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        let _ = (object, query);
        Err(no_journal())
    }
}

/// The error of a store that keeps no journal.
pub(crate) fn no_journal() -> StoreError {
    StoreError::Unsupported {
        what: "a write journal".to_owned(),
    }
}

/// Implements [`StateStore`] for a pointer to a store by forwarding.
macro_rules! forward_store {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        impl<S: StateStore + ?Sized> StateStore for $pointer {
            fn load(&self, object: &str) -> Result<Baseline, StoreError> {
                (**self).load(object)
            }

            fn save(
                &self,
                object: &str,
                baseline: &Baseline,
                changed: &CommitSummary,
            ) -> Result<(), StoreError> {
                (**self).save(object, baseline, changed)
            }

            fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
                (**self).replace(object, baseline)
            }

            fn journal(
                &self,
                object: &str,
                query: &JournalQuery,
            ) -> Result<Vec<JournalEntry>, StoreError> {
                (**self).journal(object, query)
            }
        }
    };
}

forward_store!(
    /// One store shared: a runner and a review queue (or the runners of
    /// several object types) hold clones of one `Arc`.
    std::sync::Arc<S>
);
forward_store!(
    /// A store borrowed, for code that holds the store itself.
    &S
);
forward_store!(
    /// A store boxed, as a `Box<dyn StateStore>`.
    Box<S>
);

/// A store could not load or save.
///
/// No variant's message or `Debug` holds a field value: a damaged or
/// unreadable state is described by where it is (file, line, column, entity
/// id) and which check failed, never by what it holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("store file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The stored state failed a check when loaded, so it is refused rather
    /// than loaded as a smaller or different baseline. See "Damaged state"
    /// in the [module docs](self) for how to recover.
    #[error("stored state{} in {} is damaged ({place}): {check}", of(object.as_deref()), path.display())]
    Damaged {
        /// The object type, when the damage is in one object's state (a
        /// database that cannot be opened names none).
        object: Option<String>,
        /// The state file or database.
        path: PathBuf,
        /// Where in it.
        place: Place,
        /// Which check failed.
        check: Check,
    },
    /// The state was written in a format this version of recsync does not
    /// load: an older one that carries no checksums (version 1), or a newer
    /// one.
    #[error(
        "stored state{} in {} has format version {found}, but this recsync loads version {supported}{}",
        of(object.as_deref()),
        path.display(),
        format_hint(*found, *supported)
    )]
    Format {
        /// The object type, when the format is one object's.
        object: Option<String>,
        /// The state file or database.
        path: PathBuf,
        /// The version found: 1 for state written before versions were
        /// recorded.
        found: u64,
        /// The version this recsync reads and writes.
        supported: u64,
    },
    /// A store file or directory lets in users other than its owner (unix
    /// mode bits for group or others) and could not be made owner-only,
    /// or (a database's directory) is not the store's to change.
    #[error("{} has mode {mode:04o}, open to users other than its owner; {}", path.display(), if *directory { "make it owner-only (chmod 700) or give the store a directory of its own" } else { "make it owner-only (chmod 600)" })]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Whether it is a directory.
        directory: bool,
        /// Why it could not be changed, if a change was tried.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The stored entities do not make a valid baseline.
    #[error("stored state of {object}: {source}")]
    Baseline {
        /// The object type.
        object: String,
        /// What is wrong.
        #[source]
        source: BaselineError,
    },
    /// Another writer saved the object since the baseline being saved was
    /// loaded: the store holds revision `found`, and the save started from
    /// revision `expected`. Nothing was saved. Load the baseline again and
    /// plan again: the systems hold whatever this run wrote, and the next
    /// plan reads it back as it reads a crashed run's writes.
    #[error(
        "stored state of {object} is at revision {found}, but this save started from revision {expected}: another writer saved it since; nothing was saved (load and plan again)"
    )]
    Conflict {
        /// The object type (a shard's state key for a shard).
        object: String,
        /// The revision the save started from.
        expected: u64,
        /// The revision the store holds.
        found: u64,
    },
    /// A save carried a lease's fencing token that is no longer the
    /// lease's: the lease expired or another runner took it over. Nothing
    /// was saved; the runner that holds the lease now plans that state.
    #[error(
        "a save of {object} carried fencing token {token}, but the lease {}; nothing was saved",
        match current { Some(t) => format!("is now held with token {t}"), None => "has expired or was released".to_owned() }
    )]
    Fenced {
        /// The object type (a shard's state key for a shard).
        object: String,
        /// The token the save carried.
        token: u64,
        /// The lease's token now, if anyone holds it.
        current: Option<u64>,
    },
    /// The store does not do what was asked of it (keep the routes of
    /// [shards](crate::shard), say): choose a store that does.
    #[error("this store does not support {what}")]
    Unsupported {
        /// What it does not support.
        what: String,
    },
    /// The store's backend (a database) failed.
    #[error("store backend: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
}

fn of(object: Option<&str>) -> String {
    object.map_or_else(String::new, |o| format!(" of {o}"))
}

fn format_hint(found: u64, supported: u64) -> &'static str {
    if found < supported {
        "; it carries no checksums, so nothing can verify it: check it, then take it \
         over with the store's upgrade_legacy, or restore a backup"
    } else {
        "; a newer recsync wrote it, or it is damaged"
    }
}

/// Where in a store's state a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// The file or database as a whole.
    Whole,
    /// The header: the last line of a JSON state file (object type,
    /// entity count, revision, cursors), a database's header row of the
    /// object.
    Header,
    /// A line of a JSON state file or journal file (counted from 1), and
    /// the column (from 1) where the parser stopped, if it did.
    Line {
        /// The line.
        line: u64,
        /// The column, if known.
        column: Option<u64>,
    },
    /// An entity's row in a database, by the id stored beside it.
    Row {
        /// The entity id the row is stored under.
        entity: EntityId,
    },
    /// The store's schema version as a database records it, when it is
    /// one no recsync records (below 1).
    SchemaVersion {
        /// The version recorded.
        found: i64,
    },
    /// The store's tables in a database, when some are missing.
    Tables {
        /// The tables missing.
        missing: Vec<String>,
    },
    /// A [journal](crate::journal) entry's row in a database, by the
    /// number it is stored under (its place in the order of saves). An
    /// entry of a journal file is a [`Line`](Place::Line) of that file.
    JournalRow {
        /// The row's number.
        row: i64,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Whole => f.write_str("as a whole"),
            Place::Header => f.write_str("header"),
            Place::Line {
                line,
                column: Some(column),
            } => write!(f, "line {line} column {column}"),
            Place::Line { line, column: None } => write!(f, "line {line}"),
            Place::Row { entity } => write!(f, "row of entity {entity}"),
            Place::SchemaVersion { found } => write!(f, "schema version {found}"),
            Place::Tables { missing } => {
                let s = if missing.len() == 1 { "" } else { "s" };
                write!(f, "missing table{s} {}", missing.join(", "))
            }
            Place::JournalRow { row } => write!(f, "journal row {row}"),
        }
    }
}

/// Which check a damaged state failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The file is not laid out as a state file (a JSON state file has its
    /// format line, one line per entity, then the header line).
    Layout,
    /// The file ends before its header line: it was cut short.
    Truncated,
    /// The header does not match its checksum.
    HeaderChecksum,
    /// An entity's row does not match its checksum.
    RowChecksum,
    /// A part that matches its checksum cannot be read: it was not written
    /// by this recsync.
    Unreadable,
    /// The header counts one number of entities, the store holds another.
    Count {
        /// Entities the header counts.
        expected: u64,
        /// Entity rows found.
        found: u64,
    },
    /// Every row matches its checksum and the count is right, but the rows
    /// are not the ones the header's sum of row checksums was taken over:
    /// a row was replaced by another (an older copy, another object's).
    RowSet,
    /// The header names another object type: the file or row holds the
    /// state of that one.
    Object {
        /// The object type the header names.
        found: String,
    },
    /// A row holds an entity other than the one it is stored under.
    RowId,
    /// Entity rows are stored without a header: the header was lost.
    MissingHeader,
    /// The database engine reports the file as malformed.
    Database,
    /// A [journal](crate::journal) entry cannot be read: a line of a
    /// journal file or a database's journal row is not the JSON of a
    /// [`JournalEntry`] (cut short, or not written by this recsync).
    /// Journal entries carry no checksums: damage that leaves an entry
    /// readable, or a line lost whole, is not seen.
    JournalEntry,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Layout => f.write_str("not laid out as a state file"),
            Check::Truncated => f.write_str("the file ends before its header line (cut short)"),
            Check::HeaderChecksum => f.write_str("the header does not match its checksum"),
            Check::RowChecksum => f.write_str("the row does not match its checksum"),
            Check::Unreadable => f.write_str(
                "it matches its checksum but cannot be read (not written by this recsync)",
            ),
            Check::Count { expected, found } => write!(
                f,
                "the header counts {expected} entities but {found} are stored"
            ),
            Check::RowSet => f.write_str(
                "the rows are not the ones the header's checksum sum was taken over (a row was replaced)",
            ),
            Check::Object { found } => write!(f, "it holds the state of object type {found}"),
            Check::RowId => f.write_str("the row holds another entity than the one it is stored under"),
            Check::MissingHeader => f.write_str("entity rows are stored without their header"),
            Check::Database => f.write_str("the database engine reports the file malformed"),
            Check::JournalEntry => f.write_str(
                "it is not a journal entry this recsync can read (cut short, or not written by it)",
            ),
        }
    }
}

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
//! | store | keeps | a save writes | a crash mid-save leaves |
//! | --- | --- | --- | --- |
//! | [`MemoryStore`] | nothing past the process | the whole baseline (a clone) | nothing (the process is gone) |
//! | [`JsonFileStore`] | one JSON file per object type, owner-only | the whole baseline, to a temp file renamed over the old one | the last complete save; perhaps a stray `.tmp` file, ignored |
//! | `SqliteStore` (feature `sqlite`) | one SQLite database, a row per entity, owner-only | only the entities the commit touched or removed, and the header, in one transaction (the whole baseline when the database holds neither the revision the commit started from nor the baseline's own) | the last committed save (after a power cut, perhaps an earlier one: see its docs) |
//!
//! In every store the cursors are part of the baseline's header and are
//! saved with the entities, never apart from them.
//!
//! [`ReviewQueue`] lists what a stored baseline holds for review and keeps a
//! reviewer's decisions in the store, for the next run to apply.
//!
//! Stores are synchronous: a save is one short write per run, and a
//! runtime-agnostic library has no executor to move it to. Hosts on an
//! async runtime that need to may call them from a blocking task.

mod file;
mod memory;
mod review;
#[cfg(feature = "sqlite")]
mod row;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

use crate::baseline::{Baseline, BaselineError};
use crate::engine::CommitSummary;

pub use file::JsonFileStore;
pub use memory::MemoryStore;
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
///   it: never a mix.
/// - `save` may write only the entities `changed` names (touched and
///   removed) and the baseline's header (revision, fingerprint, cursors),
///   leaving every other entity as the last save left it, when the store
///   holds the revision the commit started from (`baseline.revision() - 1`)
///   or `baseline`'s own revision; otherwise it writes the whole baseline.
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
}

/// A store could not load or save.
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
    /// What the store holds for an object cannot be read back.
    #[error("stored state of {object} is unreadable: {message}")]
    Corrupt {
        /// The object type.
        object: String,
        /// What is wrong, and where.
        message: String,
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

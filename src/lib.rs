//! recsync keeps records in two or more business systems in sync, both ways.
//!
//! Hand it what each system holds now ([`Snapshot`]s) and the last-synced
//! [`Baseline`]; the [`SyncEngine`] diffs each system against the baseline,
//! maps fields through the [`FieldMap`], resolves conflicts per field by the
//! [`ConflictPolicy`] you chose, and returns a [`SyncPlan`]: creates, updates
//! of only the changed fields and deletes, each with an idempotency key and
//! the reason for every value, plus conflicts held for review and per-record
//! issues. Execute the
//! plan, report [`Outcomes`], and [`commit`](SyncEngine::commit) the new
//! baseline. The engine is pure: no I/O, no clock, same input, same plan.
//!
//! ```
//! use recsync::{Baseline, ConflictPolicy, Field, FieldMap, Outcomes, Record, Snapshot, SyncEngine};
//! use serde_json::json;
//!
//! let map = FieldMap::builder()
//!     .systems(["crm", "marketing"])
//!     .key("email")
//!     .field(Field::new("email").case_insensitive())
//!     .field(Field::new("phone"))
//!     .field(Field::new("name").policy(ConflictPolicy::authority("crm")))
//!     .build()?;
//! let engine = SyncEngine::new(map);
//! let mut baseline = Baseline::new();
//!
//! let crm = Snapshot::complete("crm", vec![
//!     Record::new("c1").field("email", "ada@example.com").field("name", "Ada").field("phone", "555-1"),
//! ]);
//! let marketing = Snapshot::complete("marketing", vec![
//!     Record::new("m1").field("email", "ADA@example.com ").field("name", "Ada L.").field("phone", ()),
//! ]);
//! let plan = engine.plan(&baseline, &[crm, marketing])?;
//! // marketing gets crm's phone, and crm's name (crm has authority).
//! assert_eq!(plan.ops.len(), 1);
//! assert_eq!(plan.ops[0].system, "marketing");
//! assert!(plan.issues.is_empty());
//! println!("{plan}");
//!
//! engine.commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))?;
//! assert_eq!(baseline.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The modules follow the algorithm: [`model`] (what systems hold),
//! [`mapping`] (how fields correspond: value maps, transforms,
//! normalization, validation, and JSON/TOML config files; a value that
//! cannot be mapped or written is a per-record issue in the plan, never a
//! failed plan), [`policy`] (conflict rules),
//! [`baseline`] (the last-synced state), [`engine`] (plan and commit) and
//! [`plan`] (the write plan and its reasons). The design, the promises and
//! the tests that prove each are in [`_documentation`]: [the
//! design](_documentation::design) and [the
//! promises](_documentation::promises).
//!
//! # Record lifecycle
//!
//! - **Matching** ([`identity`]): a record not linked yet is linked by its
//!   [correlation key](Record::correlation) (recsync created it), else by
//!   the map's match keys in order, each compared after its normalization
//!   ([`Normalization::CaseInsensitive`], trimmed, unless set). An ambiguous
//!   match is an [`AmbiguousMatch`](plan::IssueKind::AmbiguousMatch) issue,
//!   one per system and key value with the count and the first few
//!   candidates; nothing is linked or created for it. A key value that
//!   cannot be compared is an [`InvalidKey`](plan::IssueKind::InvalidKey)
//!   issue, and the record is neither matched nor created. Records
//!   left over are created elsewhere under [`MatchMode::MatchThenCreate`]
//!   (the default), reported under [`MatchMode::MatchOnly`];
//!   [`MatchMode::CreateOnly`] matches nothing.
//! - **Creates** carry a correlation key; the outcome reports the new id
//!   ([`OpOutcome::created`]) and commit links it. A create executed but
//!   never committed is found by the next plan (correlation or match key)
//!   and linked, never made twice. Deleted before that plan, it is deleted
//!   where a tombstone carries its key, and made again where a complete
//!   snapshot only lacks it.
//! - **Deletes** need positive evidence: a tombstone, or a linked record
//!   absent from a [complete](Coverage::Complete) snapshot (absence from a
//!   partial one means nothing). [`DeletePolicy::Hold`] (the default) holds
//!   them for review ([`Baseline::resolve`]); `Propagate` and `Unlink` are
//!   the others. A delete against an edit made elsewhere follows
//!   [`DeleteEditPolicy`]: `Hold` (the default), `EditWins` (re-created) or
//!   `DeleteWins`.
//! - **Scope** ([`scope`]): a record leaving its system's [`Filter`] is
//!   unlinked ([`ScopeExit::Unlink`], the default) or frozen, never deleted
//!   elsewhere; a filter change is not a wave of deletes.
//! - **References**: a field marked
//!   [`references`](Field::references) is translated through the parent
//!   object's baseline ([`PlanOptions::parent`]); a record whose parent is
//!   not linked yet waits, so parents are created first.
//! - **Guards** ([`guard`]): deletes (10 records or 10% of entities),
//!   emptied fields (100 or 10%) and scope exits (10 or 10%) over budget,
//!   and an empty complete snapshot from a system with linked records, are
//!   refused: withheld, listed in [`SyncPlan::refusal`], and made only when
//!   approved ([`PlanOptions::approve`]).
//! - **Read-only systems** ([`FieldMapBuilder::read_only`](mapping::FieldMapBuilder::read_only)):
//!   read, never written; what one would need is listed in
//!   [`SyncPlan::read_only`] plan after plan, or, in
//!   [`ReadOnlyMode::Error`], refuses the plan ([`PlanError::ReadOnly`]).
//!
//! - **Undo** ([`journal`]): a runner given a
//!   [`journal`](runner::SyncRunnerBuilder::journal) keeps every write it
//!   applies, with each field's value before and after and the reason;
//!   [`SyncRunner::undo`] takes a run back three ways (a value changed
//!   since is held, never overwritten), and
//!   [`history`](SyncRunner::history) tells who changed a field, when,
//!   from what, and why.
//!
//! `tests/lifecycle.rs` shows each case; `tests/crash_safety.rs` proves that
//! executing any prefix of a plan and planning again ends where an
//! uninterrupted run does, with no duplicates.
//!
//! Around the pure core, [`connector`] holds the async [`Connector`] trait a
//! host implements per system (fetch a snapshot or the changes since a
//! cursor, apply a batch of write ops), its contract, and the
//! [`ConnectorError`] kinds a caller acts on (retry, re-read, fix the
//! configuration). It depends on the core, never the reverse, and on no
//! async runtime.
//!
//! [`runner`] holds the loop around the engine: a [`SyncRunner`] per object
//! type reads every system at once (incrementally where the connector can),
//! plans, executes in batches with per-op retries of rate limits and
//! transient failures, re-plans writes refused as stale, commits and saves
//! the baseline in an [`AsyncStateStore`]. It reports progress as a stream of
//! [`SyncEvent`](runner::SyncEvent)s and each run as a [`SyncReport`]. Time
//! and waiting are injected ([`Clock`](runner::Clock),
//! [`Sleeper`](runner::Sleeper)), so it runs on any executor.
//!
//! The same sync as above, run by a [`SyncRunner`]: here the systems are
//! `MemoryConnector`s of the testkit (feature `testkit`); in a service they
//! are your own [`Connector`]s, and the store a
//! [`JsonFileStore`](store::JsonFileStore) or `SqliteStore`.
//!
//! ```
//! # #[cfg(feature = "testkit")]
//! # futures::executor::block_on(async {
//! use recsync::testkit::MemoryConnector;
//! use recsync::{ConflictPolicy, Field, FieldMap, MemoryStore, SyncEngine, SyncRunner};
//! use serde_json::json;
//!
//! let map = FieldMap::builder()
//!     .object("contacts")
//!     .systems(["crm", "marketing"])
//!     .key("email")
//!     .field(Field::new("email").case_insensitive())
//!     .field(Field::new("phone"))
//!     .field(Field::new("name").policy(ConflictPolicy::authority("crm")))
//!     .build()?;
//! let crm = MemoryConnector::new("crm");
//! let marketing = MemoryConnector::new("marketing");
//! crm.insert("contacts", [("email", json!("ada@example.com")), ("name", json!("Ada")), ("phone", json!("555-1"))]);
//! marketing.insert("contacts", [("email", json!("ADA@example.com ")), ("name", json!("Ada L.")), ("phone", json!(null))]);
//!
//! let runner = SyncRunner::builder(SyncEngine::new(map))
//!     .connector(crm.clone())
//!     .connector(marketing.clone())
//!     .store(MemoryStore::new())
//!     .build()?;
//! let report = runner.run().await?; // read, plan, write, confirm, commit, save
//! assert_eq!(report.applied(), 1);
//! let ada = &marketing.records("contacts")[0];
//! assert_eq!(ada.get("phone"), Some(&json!("555-1")));
//! assert_eq!(ada.get("name"), Some(&json!("Ada")));
//! println!("{report}");
//! assert!(runner.dry_run().await?.is_empty()); // nothing left to do
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! [`store`] keeps baselines between runs: the [`StateStore`] trait and
//! its non-blocking form [`AsyncStateStore`], a
//! [`MemoryStore`], a [`JsonFileStore`](store::JsonFileStore) (one file per
//! object type, replaced atomically) and, with feature `sqlite`, a
//! `SqliteStore` that saves only the entities a commit touched, in one
//! transaction; [`ReviewQueue`](store::ReviewQueue) lists what a stored
//! baseline holds for review and keeps the decisions. Stores depend on the
//! core, never the reverse.
//!
//! # People's data
//!
//! Plans and baselines hold personal data; recsync logs nothing. A field
//! marked [`sensitive`](Field::sensitive) in the map has its values printed
//! as `[redacted]` by every `Debug` and `Display` recsync gives: plans, write
//! ops, conflicts, issues, [`MappingError`](mapping::MappingError)s and
//! [`ValueProblem`](mapping::ValueProblem)s carry the field's sensitivity;
//! baseline state, which does not know the map, prints no values (a held
//! conflict's only where the field is not sensitive); [`SyncReport`]s and
//! events hold counts and ids. Serde keeps every value (a serialized plan or baseline is
//! data, not a log); [`SyncPlan::display_unredacted`] and the errors'
//! `unredacted()` show them when asked for by name. Connectors keep
//! credentials in a [`Secret`], and a runner's `Debug` names systems, never
//! connectors. [`Record`]s and [`Snapshot`]s are the systems' data before
//! any map applies and print as they are.
//!
//! # Crate features
//!
//! No feature is on by default.
//!
//! - **`testkit`**: `recsync::testkit`, what connector authors and hosts
//!   test with: `MemoryConnector` (an in-memory system with versions,
//!   timestamps from an injectable clock, external ids, a change log, and
//!   deterministic fault injection), `testkit::conformance` (checks of the
//!   `Connector` contract you run against your own connector),
//!   `MemorySystem` and `testkit::apply` (a plan executed on records in
//!   memory, returning the `Outcomes` to commit: engine-level tests with no
//!   connector or runtime) and `OpBuilder`. Adds no dependency.
//! - **`proptest`**: `recsync::testkit::strategies`, proptest strategies for
//!   records, snapshots, field maps, conflict policies and edit histories,
//!   for your own property tests; and `recsync::testkit::check`, which runs
//!   recsync's promises against your own map, its transforms, normalizers
//!   and resolvers, and tells a shrunk story when one breaks. Turns on
//!   `testkit`; adds `proptest`.
//! - **`toml`**: field maps from and to TOML config files
//!   ([`MapSet::from_toml`](mapping::MapSet::from_toml)); JSON needs no
//!   feature. Adds `toml`.
//! - **`sqlite`**: `recsync::store::SqliteStore`, baselines in a SQLite
//!   database (write-ahead log, one row per entity, owner-only file) that
//!   saves only the entities a commit touched, in one transaction: a file
//!   of its own, or the host's database through a `rusqlite::Connection`
//!   the host opened (`SqliteStore::from_connection`). Adds `rusqlite`,
//!   any version from 0.25 to 0.43, so it shares the host's own rusqlite
//!   (or the `libsqlite3-sys` of its sqlx or diesel) instead of a second
//!   one cargo would refuse. SQLite is linked as the build's
//!   `libsqlite3-sys` is set up: the system library (3.35 or newer, e.g.
//!   Debian's `libsqlite3-dev` to build) unless something in the build
//!   turns on rusqlite's `bundled`.
//! - **`sqlite-bundled`**: `sqlite` with SQLite compiled from its C source
//!   and linked in (rusqlite's `bundled`): a C compiler (`cc`) must be
//!   installed; no system SQLite is needed.
//! - **`postgres`**: `recsync::store::PostgresStore`, baselines in
//!   PostgreSQL for runners on several hosts: a row per entity with
//!   checksums, saves that compare the stored revision (compare-and-set),
//!   leases with fencing tokens for the [shards](shard) of an object type,
//!   and an index of links that answers which shard holds a record. Adds
//!   `tokio-postgres` and tokio's `rt` (its connection task runs on tokio).
//! - **`parallel`**: large plans split their work over threads: looking up
//!   records in the baseline, the fast path, and planning the entities
//!   that changed, in contiguous chunks (scoped `std` threads, one per core
//!   unless [`PlanOptions::threads`](engine::PlanOptions::threads) says otherwise; a
//!   few thousand entities per thread at least, so a small or incremental
//!   plan stays on the calling thread). The plan is the same on any number
//!   of threads. Adds no dependency.
//! - **`phone`**: [`Normalization::phone`](mapping::Normalization::phone),
//!   phone numbers compared by their E.164 form with a default region
//!   (`"phone:US"` in config files). Adds `phonenumber`.
//! - **`rate-limit`**: `recsync::runner::RateLimit`, a system's request
//!   rate, burst and daily budget, shared by the runners and connectors of
//!   one account: the runner paces every request under it and stops at a
//!   spent budget. Adds `governor` (a GCRA limiter, driven by the clock you
//!   give it).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// On docs.rs (nightly, `--cfg docsrs`): each item behind a feature is
// labelled with it.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod _documentation;
pub mod baseline;
mod codec;
pub mod connector;
pub mod engine;
mod fields;
pub mod guard;
mod hash;
pub mod identity;
mod ids;
pub mod journal;
pub mod mapping;
pub mod model;
mod native;
pub mod plan;
pub mod policy;
mod redact;
pub mod runner;
pub mod scope;
pub mod shard;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use baseline::{Baseline, EntityId, ReviewChoice};
pub use connector::{Connector, ConnectorError, ConnectorExt, Secret};
pub use engine::{
    CommitError, CommitSummary, OpOutcome, Outcomes, PlanError, PlanOptions, SyncEngine,
};
pub use guard::{Budget, Guards};
pub use identity::{MatchKey, MatchMode};
pub use mapping::{Direction, Field, FieldMap, MapError, Normalization};
pub use model::{is_empty_value, Coverage, FieldValue, Fields, Name, Record, Snapshot, SystemId};
pub use plan::{Conflict, OpId, OpKind, Reason, SyncPlan, WriteOp};
pub use policy::{ConflictPolicy, DeleteEditPolicy, DeletePolicy, Fallback, ReadOnlyMode};
pub use runner::{SyncReport, SyncRunner};
pub use scope::{Filter, ScopeExit};
pub use store::{AsyncStateStore, MemoryStore, StateStore, StoreError};

//! recsync keeps records in two or more business systems in sync, both ways.
//!
//! Hand it what each system holds now ([`Snapshot`]s) and the last-synced
//! [`Baseline`]; the [`SyncEngine`] diffs each system against the baseline,
//! maps fields through the [`FieldMap`], resolves conflicts per field by the
//! [`ConflictPolicy`] you chose, and returns a [`SyncPlan`]: updates of only
//! the changed fields, each with an idempotency key and the reason for every
//! value, plus conflicts held for review and per-record issues. Execute the
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
//!     Record::new("m1").field("email", "ADA@example.com ").field("name", "Ada L."),
//! ]);
//! let plan = engine.plan(&baseline, &[crm, marketing])?;
//! // marketing gets crm's phone, and crm's name (crm has authority).
//! assert_eq!(plan.ops.len(), 1);
//! assert_eq!(plan.ops[0].system, "marketing");
//! println!("{plan}");
//!
//! engine.commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))?;
//! assert_eq!(baseline.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The modules follow the algorithm: [`model`] (what systems hold),
//! [`mapping`] (how fields correspond), [`policy`] (conflict rules),
//! [`baseline`] (the last-synced state), [`engine`] (plan and commit) and
//! [`plan`] (the write plan and its reasons). `tests/properties.rs` states the
//! crate's promises as property tests.
//!
//! Around the pure core, [`connector`] holds the async [`Connector`] trait a
//! host implements per system (fetch a snapshot or the changes since a
//! cursor, apply a batch of write ops), its contract, and the
//! [`ConnectorError`] kinds a caller acts on (retry, re-read, fix the
//! configuration). It depends on the core, never the reverse, and on no
//! async runtime.
//!
//! # Crate features
//!
//! No feature is on by default.
//!
//! - **`testkit`**: `recsync::testkit`, what connector authors and hosts
//!   test with: `MemoryConnector` (an in-memory system with versions,
//!   timestamps from an injectable clock, external ids, a change log, and
//!   deterministic fault injection), `testkit::conformance` (checks of the
//!   `Connector` contract you run against your own connector) and
//!   `OpBuilder`. Adds no dependency.
//! - **`proptest`**: `recsync::testkit::strategies`, proptest strategies for
//!   records, snapshots, field maps, conflict policies and edit histories,
//!   for your own property tests. Turns on `testkit`; adds `proptest`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod baseline;
mod codec;
pub mod connector;
pub mod engine;
pub mod guard;
mod hash;
pub mod identity;
pub mod mapping;
pub mod model;
pub mod plan;
pub mod policy;
pub mod scope;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use baseline::{Baseline, EntityId, ReviewChoice};
pub use connector::{Connector, ConnectorError, ConnectorExt};
pub use engine::{
    CommitError, CommitSummary, OpOutcome, Outcomes, PlanError, PlanOptions, SyncEngine,
};
pub use guard::{Budget, Guards};
pub use identity::{MatchKey, MatchMode};
pub use mapping::{Direction, Field, FieldMap, MapError, Normalization};
pub use model::{is_empty_value, Coverage, Record, Snapshot, SystemId};
pub use plan::{Conflict, OpId, OpKind, Reason, SyncPlan, WriteOp};
pub use policy::{ConflictPolicy, DeleteEditPolicy, DeletePolicy, Fallback};
pub use scope::{Filter, ScopeExit};
pub use store::{MemoryStore, StateStore, StoreError};

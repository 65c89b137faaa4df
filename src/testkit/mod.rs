//! What connector authors and hosts need to test with (feature `testkit`).
//!
//! - [`MemoryConnector`]: an in-memory system that keeps the
//!   [`Connector`](crate::Connector) contract (versions, timestamps from an
//!   injectable [`Clock`], external ids, complete and incremental fetch),
//!   with a user-side edit API and deterministic fault injection.
//! - [`MemorySystem`] and [`apply`]: records in memory that a plan is
//!   executed on, op by op as a connector would (with chosen ops failed,
//!   lost or lied about: [`apply_with`]), giving the [`Outcomes`] to
//!   commit; for tests of the engine with no connector or runtime.
//! - [`conformance`]: checks you run against your own connector.
//! - [`OpBuilder`]: write ops by hand, to drive a connector directly.
//! - `strategies` (feature `proptest`): proptest strategies for records,
//!   snapshots, field maps, conflict policies and edit histories.
//! - `check` (feature `proptest`): recsync's promises as a check you run
//!   against your own field map, its transforms, normalizers and
//!   resolvers: a sync machine over random histories with faults, and a
//!   shrunk story when a promise breaks.
//!
//! [`Outcomes`]: crate::Outcomes
//!
//! ```
//! use recsync::testkit::{MemoryConnector, OpBuilder};
//! use recsync::{Connector, ConnectorError};
//! use serde_json::json;
//!
//! # futures::executor::block_on(async {
//! let shop = MemoryConnector::new("shop");
//! let id = shop.insert("orders", [("total", json!(120))]);
//! shop.rate_limit_next(1, Some(std::time::Duration::from_secs(2)));
//!
//! let op = OpBuilder::update("shop", "orders", &id).field("total", json!(130)).build();
//! let err = shop.apply("orders", &[op.clone()]).await.unwrap_err();
//! assert!(err.is_retryable());
//! let results = shop.apply("orders", &[op]).await?;
//! assert!(results[0].is_ok());
//! assert_eq!(shop.get("orders", &id).unwrap().get("total"), Some(&json!(130)));
//! # Ok::<(), ConnectorError>(())
//! # }).unwrap();
//! ```

#[cfg(feature = "proptest")]
pub mod check;
mod clock;
pub mod conformance;
mod memory;
mod ops;
#[cfg(feature = "proptest")]
pub mod strategies;
mod system;
mod write;

pub use clock::{Clock, ManualClock, SystemClock};
pub use memory::{BuildError, MemoryConnector, MemoryConnectorBuilder, Rewrite, Stats};
pub use ops::OpBuilder;
pub use system::{apply, apply_with, snapshots, Fate, MemorySystem};

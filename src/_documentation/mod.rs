//! recsync's design, for the people who use it: what it models, how it
//! decides, what it promises and how the tests prove each promise.
//!
//! These pages hold no code; they are documentation that ships with the
//! crate (`cargo doc --open`, then `_documentation`), in the same
//! commits as the code they describe. Their source is Markdown beside this
//! module (`src/_documentation/*.md`), readable in the repository too.
//!
//! - [`design`]: the model (systems, records, snapshots, the field map,
//!   the baseline, the plan), the algorithm for one entity and one field,
//!   a worked example, what happens to whole records, the runner around the
//!   engine, and how the source is laid out.
//! - [`promises`]: the eight promises recsync makes (convergence, no lost
//!   update, quiescence, policy, determinism, symmetry, crash safety,
//!   faithfulness under faults), each with the tests that prove it and the
//!   command that runs them harder.

#[doc = include_str!("design.md")]
pub mod design {}

#[doc = include_str!("promises.md")]
pub mod promises {}

//! Shared by the integration tests: the case count of property tests, and
//! (feature `testkit`) the simulated systems of the lifecycle,
//! crash-safety and property tests.

#![allow(dead_code)]

#[cfg(feature = "testkit")]
mod systems;
#[cfg(feature = "testkit")]
#[allow(unused_imports)]
pub use systems::*;

/// Cases for a property test: `PROPTEST_CASES` when it is set (so a run by
/// hand can go to 100,000), else the file's own default.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

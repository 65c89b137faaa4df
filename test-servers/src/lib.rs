//! Local HTTP servers shaped like two real CRM APIs, for recsync's tests,
//! examples and throughput benchmark: [`hubspot::HubSpot`] (the CRM objects
//! API: list pages with an `after` cursor, batch endpoints of 100 records)
//! and [`salesforce::Salesforce`] (the REST API: SOQL query pages, sObject
//! Collections of 200 records, the Composite API with conditional
//! subrequests).
//!
//! Each server runs on `127.0.0.1` on a port of its own, on the caller's
//! tokio runtime, and keeps its records in memory. What real APIs do to a
//! client, a test turns on through [`Faults`]: a rate limit over a rolling
//! window (429 with `Retry-After`), bursts of 5xx answers, latency; and it
//! counts every request, so a test or benchmark can tell how many were
//! made and how many were refused.
//!
//! These are stand-ins for the real APIs where a sync engine meets them
//! (paging, batches, limits, conditional writes, values the system
//! rewrites, required fields), not copies of them.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod faults;
pub mod hubspot;
pub mod salesforce;
pub mod table;

pub use faults::{Faults, Stats};
pub use table::{Row, Table};

//! Throughput against a rate-limited API: 10,000 changed records written
//! to a HubSpot-shaped server over loopback HTTP, by four runners (four
//! object types) that share the account's limit, scaled down in time: the
//! server allows 100 requests per rolling second and answers each after
//! 20 ms.
//!
//! `cargo bench --bench throughput --features rate-limit` (see
//! `benches/README.md`; `RECSYNC_THROUGHPUT_CHANGES=2000` for a shorter
//! run). Two runs of the same scenario, in the same process:
//!
//! - **paced**: one `RateLimit` for the account (95 requests per second
//!   with a burst of 4: at most 98 in any second, a little under the
//!   server's 100, since requests reach it a little apart from when they
//!   left) shared by the four runners and their connectors, and 4
//!   batches in flight per runner;
//! - **one at a time**: no pacing and one batch at a time, as the runner
//!   was before: it only reacts to 429s.
//!
//! Each prints the achieved request rate over the server's limit (over the
//! whole runs, and while requests were being sent), the share of 429
//! answers, and write requests per change over the minimum (changes
//! divided by the batch size of 100, rounded up); then the paced run's
//! speedup. The servers answer on a runtime of their own, as a remote API
//! would; both runtimes share the machine's cores.

#[path = "../examples/http_sync/hubspot.rs"]
#[allow(dead_code)]
mod hubspot;
#[path = "../examples/http_sync/salesforce.rs"]
#[allow(dead_code)]
mod salesforce;

use std::time::{Duration, Instant};

use recsync::connector::Secret;
use recsync::runner::{RateLimit, RetryPolicy, SyncEvent, SyncReport, SyncRunner};
use recsync::{Field, FieldMap, Guards, MemoryStore, SyncEngine};
use recsync_test_servers::hubspot::HubSpot;
use recsync_test_servers::salesforce::Salesforce;
use serde_json::{json, Map, Value};

use hubspot::HubSpotConnector;
use salesforce::SalesforceConnector;

const TOKEN: &str = "bench-token";
const OBJECTS: [&str; 4] = ["contacts", "companies", "deals", "tickets"];
/// The server's limit: requests per rolling second.
const LIMIT: u32 = 100;
/// The pace the runners keep: a little under the limit, since the server's
/// window rolls and requests arrive a little apart from when they left.
const PACE: u32 = 95;
/// A small burst keeps the pace when a wait ends late; a window then sees
/// at most `PACE + BURST - 1` = 98 requests.
const BURST: u32 = 4;
const LATENCY: Duration = Duration::from_millis(20);
const BATCH: usize = 100;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Paced,
    OneAtATime,
}

struct Figures {
    /// The four runs, from their start to the last one's end.
    seconds: f64,
    /// From the first request to the last, as the server saw them.
    sending: f64,
    requests: u64,
    rate_limited: u64,
    write_requests: usize,
    changes: usize,
    applied: usize,
    failed: usize,
}

impl Figures {
    /// Requests per second over the whole runs, over the server's limit.
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds / f64::from(LIMIT)
    }
    /// The same while requests were being sent.
    fn rate_sending(&self) -> f64 {
        self.requests as f64 / self.sending / f64::from(LIMIT)
    }
    fn share_429(&self) -> f64 {
        self.rate_limited as f64 / self.requests.max(1) as f64
    }
    fn per_change(&self) -> f64 {
        let minimum = self.changes.div_ceil(BATCH);
        self.write_requests as f64 / minimum.max(1) as f64
    }
}

fn fields(pairs: &[(&str, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

fn map(object: &str) -> FieldMap {
    FieldMap::builder()
        .object(object)
        .systems(["hubspot", "salesforce"])
        .key("email")
        .guards(Guards::off())
        .field(
            Field::new("email")
                .native("hubspot", "email")
                .native("salesforce", "Email"),
        )
        .field(
            Field::new("name")
                .native("hubspot", "lastname")
                .native("salesforce", "LastName"),
        )
        .build()
        .expect("a valid map")
}

/// Both servers holding `per_object` records of each object type, linked
/// by a first sync (no server limit, no latency), then every record's name
/// changed in Salesforce; and a runner per object type, paced or not.
async fn world(
    servers: &tokio::runtime::Handle,
    per_object: usize,
    mode: Mode,
) -> (HubSpot, Salesforce, Vec<SyncRunner>) {
    // The servers answer on a runtime of their own, as a remote API would.
    let (hs, sf) = servers
        .spawn(async {
            let hs = HubSpot::start(TOKEN).await.expect("hubspot server");
            let sf = Salesforce::start(TOKEN).await.expect("salesforce server");
            (hs, sf)
        })
        .await
        .expect("the servers start");
    for object in OBJECTS {
        for i in 0..per_object {
            let email = format!("{object}{i}@example.com");
            let name = format!("Name {i}");
            hs.insert(
                object,
                fields(&[("email", email.clone()), ("lastname", name.clone())]),
            );
            sf.insert(object, fields(&[("Email", email), ("LastName", name)]));
        }
    }
    let limit = RateLimit::builder(PACE, Duration::from_secs(1))
        .burst(BURST)
        .sleeper(tokio::time::sleep)
        .build()
        .expect("a valid limit");
    let runners = OBJECTS
        .iter()
        .map(|object| {
            let mut hubspot = HubSpotConnector::new("hubspot", hs.url(), Secret::new(TOKEN))
                .properties(*object, ["email", "lastname"]);
            let salesforce = SalesforceConnector::new("salesforce", sf.url(), Secret::new(TOKEN))
                .sobject(object, object)
                .fields(object, ["Email", "LastName"]);
            let mut builder = SyncRunner::builder(SyncEngine::new(map(object)))
                .store(MemoryStore::new())
                .sleeper(tokio::time::sleep)
                .retry(RetryPolicy::new().max_attempts(10).jitter_seed(7));
            if mode == Mode::Paced {
                hubspot = hubspot.rate_limit(limit.clone());
                builder = builder
                    .rate_limit("hubspot", limit.clone())
                    .batches_in_flight(4);
            }
            builder
                .connector(hubspot)
                .connector(salesforce)
                .build()
                .expect("a valid runner")
        })
        .collect::<Vec<_>>();
    for runner in &runners {
        let report = runner.run().await.expect("the first sync");
        assert_eq!(report.applied(), 0, "the systems start equal: {report}");
    }
    for object in OBJECTS {
        for row in sf.records(object) {
            let name = row
                .fields
                .get("LastName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let changed = format!("{name} (changed)");
            sf.edit(object, &row.id, fields(&[("LastName", changed)]));
        }
    }
    (hs, sf, runners)
}

/// The scenario's one measured run: the four runners at once.
async fn measure(servers: &tokio::runtime::Handle, per_object: usize, mode: Mode) -> Figures {
    // The servers stop when their handles are dropped: keep both.
    let (hs, _sf, runners) = world(servers, per_object, mode).await;
    hs.faults().rate_limit(LIMIT, Duration::from_secs(1));
    hs.faults().latency(LATENCY);
    hs.faults().reset_stats();
    let mut events: Vec<_> = runners.iter().map(SyncRunner::subscribe).collect();
    let started = Instant::now();
    let reports: Vec<SyncReport> = futures::future::join_all(runners.iter().map(SyncRunner::run))
        .await
        .into_iter()
        .map(|r| r.expect("a run"))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let stats = hs.faults().stats();
    // From the first request the server saw to the last.
    let sending = match (stats.first, stats.last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => seconds,
    };
    let mut write_requests = 0;
    for stream in &mut events {
        while let Ok(event) = stream.try_recv() {
            match event {
                SyncEvent::BatchDone { system, .. } if system == "hubspot" => write_requests += 1,
                SyncEvent::Retrying { system, ops, .. } if system == "hubspot" && ops > 0 => {
                    write_requests += 1
                }
                _ => {}
            }
        }
    }
    Figures {
        seconds,
        sending,
        requests: stats.requests,
        rate_limited: stats.rate_limited,
        write_requests,
        changes: per_object * OBJECTS.len(),
        applied: reports.iter().map(SyncReport::applied).sum(),
        failed: reports.iter().map(SyncReport::failed).sum(),
    }
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<14} {:>5.2}s  {:>4} requests  rate/limit {:>5.3} (sending {:>5.3})  \
         429s {:>5.2}%  write requests/minimum {:>5.3}  applied {} failed {}",
        f.seconds,
        f.requests,
        f.rate(),
        f.rate_sending(),
        f.share_429() * 100.0,
        f.per_change(),
        f.applied,
        f.failed
    );
}

fn main() {
    // `cargo test --benches` runs benches with `--test`: a small run.
    let quick = std::env::args().any(|a| a == "--test");
    let changes: usize = std::env::var("RECSYNC_THROUGHPUT_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 400 } else { 10_000 });
    let per_object = changes.div_ceil(OBJECTS.len());
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime for the servers");
    let servers = servers.handle().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        println!(
            "{} changes over {} runners; server: {LIMIT} requests per rolling second, \
             {} ms latency; paced at {PACE}/s",
            per_object * OBJECTS.len(),
            OBJECTS.len(),
            LATENCY.as_millis()
        );
        let paced = measure(&servers, per_object, Mode::Paced).await;
        print("paced", &paced);
        let today = measure(&servers, per_object, Mode::OneAtATime).await;
        print("one at a time", &today);
        println!(
            "speedup of paced over one at a time: {:.2}x",
            today.seconds / paced.seconds
        );
    });
}

//! A placeholder key on 5% of the records: plan time
//! and peak memory beside the same data without it.
//!
//! `cargo bench --bench shared_key` (10k and 100k entities;
//! `RECSYNC_BENCH_1M=1` adds 1M, where 50,000 records of each system share
//! the placeholder; `-- --test` runs 10k once). A positional filter
//! (`-- initial`, `-- 'full/shared'`) selects benches by id
//! (`group/variant/N`); data is only built for the selected ones. See
//! `benches/README.md`.
//!
//! The data is the plan bench's (`support/data.rs`, two systems). In the
//! `shared` variant, every 20th entity's email is `noemail@example.com` in
//! both systems; `unique` is the same data with the real emails.
//!
//! - `initial/VARIANT/N`: the first plan, from an empty baseline, of the
//!   initial snapshots. With the placeholder, its records (5% of each
//!   system) are one ambiguous match: one issue per system, nothing linked
//!   or created for them.
//! - `full/VARIANT/N`: the full plan of the changed snapshots against the
//!   baseline the initial plan committed. With the placeholder, those
//!   records are still not linked, so every run matches them again (the
//!   unique variant's are linked, and skipped on their versions).
//!
//! Each plan's peak heap above its inputs (baseline and snapshots) is
//! counted once, by this binary's global allocator, before it is timed.
//! The counter adds a few atomic operations to every allocation; both
//! variants pay them.

#[allow(dead_code)]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use recsync::plan::IssueKind;
use recsync::{Baseline, Outcomes, Snapshot, SyncEngine, SyncPlan};
use serde_json::Value;

use support::{Spec, State, SYSTEMS};

const PLACEHOLDER: &str = "noemail@example.com";
/// Every `EVERY`th entity carries the placeholder (5%).
const EVERY: usize = 20;
const SIZES: [usize; 2] = [10_000, 100_000];
const MILLION: usize = 1_000_000;

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(size: usize) {
    let now = BYTES.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        BYTES.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            BYTES.fetch_sub(layout.size(), Relaxed);
            grow(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Whether entity `number` carries the placeholder (created records, numbered
/// after every entity, never do).
fn placeholder(spec: &Spec, number: usize) -> bool {
    number < spec.n && number % EVERY == 7
}

fn snapshots(spec: &Spec, state: State, shared: bool) -> Vec<Snapshot> {
    support::per_system(spec, state, |mut g| {
        if shared && placeholder(spec, g.number) {
            g.values[0] = Value::from(PLACEHOLDER);
        }
        support::to_record(g, true)
    })
    .into_iter()
    .enumerate()
    .map(|(s, records)| Snapshot::complete(SYSTEMS[s], records))
    .collect()
}

/// What one timed plan left behind.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    median: Option<Duration>,
    /// Peak heap above the inputs, while planning.
    peak: usize,
    issues: usize,
    /// The largest `records` of an ambiguous-match issue.
    held_back: usize,
    /// The issues, serialized.
    issue_bytes: usize,
}

struct Bench {
    criterion: Criterion,
    filters: Vec<String>,
    /// (group, N) -> [unique, shared]
    rows: BTreeMap<(String, usize), [Figures; 2]>,
}

impl Bench {
    fn selected(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
    }

    fn wants(&self, group: &str, n: usize) -> bool {
        ["unique", "shared"]
            .iter()
            .any(|v| self.selected(&format!("{group}/{v}/{n}")))
    }

    /// Counts the peak of one plan, then times it under criterion.
    fn run(&mut self, group: &str, shared: bool, n: usize, plan: impl Fn() -> SyncPlan) {
        let variant = if shared { "shared" } else { "unique" };
        if !self.selected(&format!("{group}/{variant}/{n}")) {
            return;
        }
        let before = BYTES.load(Relaxed);
        PEAK.store(before, Relaxed);
        let p = plan();
        let mut figures = Figures {
            peak: PEAK.load(Relaxed).saturating_sub(before),
            issues: p.issues.len(),
            held_back: p
                .issues
                .iter()
                .filter_map(|i| match &i.kind {
                    IssueKind::AmbiguousMatch { records, .. } => Some(*records),
                    _ => None,
                })
                .max()
                .unwrap_or(0),
            issue_bytes: serde_json::to_vec(&p.issues).map_or(0, |v| v.len()),
            median: None,
        };
        drop(p);
        let mut times: Vec<Duration> = Vec::new();
        let mut g = self.criterion.benchmark_group(group);
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(if n >= MILLION { 60 } else { 10 }));
        g.bench_function(BenchmarkId::new(variant, n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let out = black_box(plan());
                    let took = start.elapsed();
                    drop(out);
                    times.push(took);
                    total += took;
                }
                total
            });
        });
        g.finish();
        times.sort_unstable();
        figures.median = times.get(times.len() / 2).copied();
        self.rows.entry((group.to_owned(), n)).or_default()[usize::from(shared)] = figures;
    }

    fn size(&mut self, n: usize) {
        let spec = Spec::new(n, 2);
        let engine = support::engine(2);
        for shared in [false, true] {
            let wants_initial = self.wants("initial", n);
            let wants_full = self.wants("full", n);
            if !wants_initial && !wants_full {
                continue;
            }
            let initial = snapshots(&spec, State::Initial, shared);
            if wants_initial {
                self.run("initial", shared, n, || {
                    engine.plan(&Baseline::new(), &initial).expect("plan")
                });
            }
            if !wants_full {
                continue;
            }
            let baseline = synced(&engine, &initial, n, shared);
            drop(initial);
            let changed = snapshots(&spec, State::Changed, shared);
            self.run("full", shared, n, || {
                engine.plan(&baseline, &changed).expect("plan")
            });
        }
    }

    fn print(&self) {
        println!();
        println!("a placeholder key on 5% of the records: median of every timed iteration, peak heap above the inputs");
        println!(
            "{:<8} {:>9} {:>11} {:>11} {:>7} {:>11} {:>11} {:>7} {:>7} {:>10} {:>12}",
            "bench",
            "N",
            "unique",
            "shared",
            "ratio",
            "peak uniq",
            "peak shrd",
            "ratio",
            "issues",
            "held back",
            "issue bytes"
        );
        for ((group, n), [u, s]) in &self.rows {
            println!(
                "{:<8} {:>9} {:>11} {:>11} {:>7} {:>11} {:>11} {:>7} {:>7} {:>10} {:>12}",
                group,
                n,
                secs(u.median),
                secs(s.median),
                ratio(
                    s.median.map(|d| d.as_secs_f64()),
                    u.median.map(|d| d.as_secs_f64())
                ),
                mib(u.peak),
                mib(s.peak),
                ratio(Some(s.peak as f64), Some(u.peak as f64)),
                s.issues,
                s.held_back,
                s.issue_bytes,
            );
        }
    }
}

/// The baseline the initial plan commits, every op applied.
fn synced(engine: &SyncEngine, initial: &[Snapshot], n: usize, shared: bool) -> Baseline {
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, initial).expect("initial plan");
    assert!(plan.ops.is_empty(), "the initial systems agree");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .expect("initial commit");
    let expected = if shared { n - n.div_ceil(EVERY) } else { n };
    assert!(
        baseline.len().abs_diff(expected) <= 1,
        "{} entities",
        baseline.len()
    );
    baseline
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".to_owned(), |d| {
        let s = d.as_secs_f64();
        if s >= 1.0 {
            format!("{s:.3} s")
        } else {
            format!("{:.2} ms", s * 1e3)
        }
    })
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let million = std::env::var("RECSYNC_BENCH_1M").is_ok_and(|v| !v.is_empty() && v != "0");
    let filters = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|f| f.split('|').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut bench = Bench {
        criterion: Criterion::default().configure_from_args(),
        filters,
        rows: BTreeMap::new(),
    };
    let mut sizes = vec![SIZES[0]];
    if !quick {
        sizes.extend(&SIZES[1..]);
        if million {
            sizes.push(MILLION);
        }
    }
    for n in sizes {
        bench.size(n);
    }
    bench.print();
    bench.criterion.final_summary();
}

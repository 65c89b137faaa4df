//! Memory, counted by a global allocator: bytes per snapshot record in each
//! form (the floor's is the target for the baseline), recsync's
//! baseline bytes per entity, and the peak during a full plan.
//!
//! `cargo bench --bench memory` (10k and 100k entities; `RECSYNC_BENCH_1M=1`
//! adds 1M; `-- --test` runs 10k only). See `benches/README.md`.
//!
//! Three figures per line, all per record or per entity:
//!
//! - **bytes**: bytes requested from the allocator and still live (heap
//!   only; a `Vec` of records counts each record's inline size through its
//!   buffer);
//! - **blocks**: live allocations;
//! - **malloc est.**: the same blocks as glibc's malloc lays them out (a
//!   16-byte-aligned chunk with an 8-byte header, 32 bytes at least; large
//!   blocks mmapped by page), an estimate of what is resident.

#[allow(dead_code)]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use support::{floor, typical, Spec, State};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);
static FOOTPRINT: AtomicUsize = AtomicUsize::new(0);

/// glibc malloc's chunk size for a request of `size` bytes.
fn footprint(size: usize) -> usize {
    if size >= 128 * 1024 {
        (size + 16 + 4095) & !4095
    } else {
        ((size + 8 + 15) & !15).max(32)
    }
}

fn grow(size: usize) {
    BLOCKS.fetch_add(1, Relaxed);
    FOOTPRINT.fetch_add(footprint(size), Relaxed);
    let now = BYTES.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(now, Relaxed);
}

fn shrink(size: usize) {
    BLOCKS.fetch_sub(1, Relaxed);
    FOOTPRINT.fetch_sub(footprint(size), Relaxed);
    BYTES.fetch_sub(size, Relaxed);
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
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live heap at one moment.
#[derive(Debug, Clone, Copy)]
struct Mark {
    bytes: usize,
    blocks: usize,
    footprint: usize,
}

fn mark() -> Mark {
    Mark {
        bytes: BYTES.load(Relaxed),
        blocks: BLOCKS.load(Relaxed),
        footprint: FOOTPRINT.load(Relaxed),
    }
}

/// Starts a new peak from the live heap now.
fn reset_peak() {
    PEAK.store(BYTES.load(Relaxed), Relaxed);
}

fn peak() -> usize {
    PEAK.load(Relaxed)
}

fn gib(bytes: usize) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Prints what was allocated since `before` and is still live, per `per`.
fn line(what: &str, unit: &str, before: Mark, per: usize) {
    let now = mark();
    let per_f = per.max(1) as f64;
    println!(
        "{:<52} {:>10.0} {:>8.1} {:>12.0}   per {unit}",
        what,
        now.bytes.saturating_sub(before.bytes) as f64 / per_f,
        now.blocks.saturating_sub(before.blocks) as f64 / per_f,
        now.footprint.saturating_sub(before.footprint) as f64 / per_f,
    );
}

/// Prints the peak since the last [`reset_peak`] above `before`, per `per`.
fn peak_line(what: &str, unit: &str, before: Mark, per: usize) {
    let above = peak().saturating_sub(before.bytes);
    println!(
        "{:<52} {:>10.0} {:>8} {:>12}   per {unit} ({} above inputs, process peak {})",
        what,
        above as f64 / per.max(1) as f64,
        "",
        "",
        gib(above),
        gib(peak())
    );
}

fn report(n: usize) {
    println!();
    println!("n = {n} entities, 20 fields");
    println!(
        "{:<52} {:>10} {:>8} {:>12}",
        "", "bytes", "blocks", "malloc est."
    );

    // One snapshot record in each form (initial state, two systems).
    let spec = Spec::new(n, 2);
    let records = 2 * n;
    let m = mark();
    let f = floor::snapshots(&spec, State::Initial);
    line(
        "floor snapshot record (Vec<Value> by index)",
        "record",
        m,
        records,
    );
    drop(f);
    let m = mark();
    let r = support::snapshots(&spec, State::Initial, true);
    line(
        "recsync snapshot Record (with version)",
        "record",
        m,
        records,
    );
    drop(r);
    let m = mark();
    let t = typical::snapshots(&spec, State::Initial);
    line(
        "typical snapshot record (HashMap of IndexMap)",
        "record",
        m,
        records,
    );
    drop(t);

    // Baselines after the initial sync.
    for (systems, versions) in [(2, true), (2, false), (3, true)] {
        let spec = Spec::new(n, systems);
        let engine = support::engine(systems);
        let m = mark();
        reset_peak();
        let baseline = support::synced(&engine, &spec, versions);
        line(
            &format!(
                "recsync baseline, {systems} systems{}",
                if versions { "" } else { ", no versions" }
            ),
            "entity",
            m,
            n,
        );
        println!(
            "{:<52} {:>10.0} {:>8} {:>12}   per entity",
            "  as Baseline::heap_bytes() counts it",
            baseline.heap_bytes() as f64 / n.max(1) as f64,
            "",
            ""
        );
        if systems == 2 && versions {
            peak_line(
                "  peak during the initial sync (its snapshots included)",
                "entity",
                m,
                n,
            );
            // The full plan: baseline and changed snapshots in memory.
            let snaps = support::snapshots(&spec, State::Changed, versions);
            let m = mark();
            reset_peak();
            let plan = black_box(engine.plan(&baseline, &snaps).expect("plan"));
            peak_line("recsync full plan, 2 systems: peak", "entity", m, n);
            line("  the plan it returns", "entity", m, n);
            drop((plan, snaps));
        }
        drop(baseline);
    }
    let m = mark();
    let fb = floor::baseline(&spec);
    line("floor baseline, 2 systems", "entity", m, n);
    let snaps = floor::snapshots(&spec, State::Changed);
    let m = mark();
    reset_peak();
    let plan = black_box(floor::plan(&fb, &snaps));
    peak_line("floor full plan, 2 systems: peak", "entity", m, n);
    drop((plan, snaps, fb));
    let m = mark();
    let tb = typical::baseline(&spec);
    line("typical baseline, 2 systems", "entity", m, n);
    let snaps = typical::snapshots(&spec, State::Changed);
    let m = mark();
    reset_peak();
    let plan = black_box(typical::plan(&tb, &snaps));
    peak_line("typical full plan, 2 systems: peak", "entity", m, n);
    drop((plan, snaps, tb));
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let million = std::env::var("RECSYNC_BENCH_1M").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut sizes = vec![10_000];
    if !quick {
        sizes.push(100_000);
        if million {
            sizes.push(1_000_000);
        }
    }
    println!("memory: live heap counted by the bench's global allocator");
    for n in sizes {
        report(n);
    }
}

//! recsync against the floor and the typical user, on seeded CRM contacts.
//!
//! `cargo bench --bench plan` (10k and 100k entities; `RECSYNC_BENCH_1M=1`
//! adds 1M). `cargo bench --bench plan -- --test` runs every routine once at
//! 10k. A filter (`-- full_2sys`, `-- 'commit|incremental'`) selects benches
//! by id; data is only built for the selected ones. See `benches/README.md`.
//!
//! Benches, each timed for recsync, the floor and the typical user:
//!
//! - `full_{2,3}sys[_noversions]/FORM/N`: a full plan of complete snapshots
//!   (about 5% changed per system, 1% in two systems, 0.5% created, 0.2%
//!   deleted) against the baseline of the initial sync of N entities, with
//!   record versions or without;
//! - `commit_2sys/FORM/N`: committing the full two-system plan, every write
//!   applied (the baseline clone each iteration starts from is not timed);
//! - `incremental/FORM/K_of_N`: a partial snapshot of K edited records
//!   against the largest baseline of the run;
//! - `unchanged_2sys/recsync/N`: at the largest size, the full two-system
//!   plan of the initial snapshots (nothing changed: every entity skipped
//!   on its versions), recsync only. With it, the full plan is split into
//!   what its unchanged and its edited entities cost.
//!
//! Criterion keeps its usual statistics; besides, every iteration is timed
//! here with `Instant`, and the medians are printed at the end as one table
//! with recsync's ratio to the floor and to the typical user.
//!
//! The two medians are taken minutes apart, and on a shared machine the
//! speed of the whole machine drifts that much. So where a full plan is
//! timed for recsync and the floor, the two are then also timed in turns
//! (recsync, floor, floor, recsync, ...), and the table's `paired` column
//! is the median of the ratios of each turn's two times: a slow minute
//! slows both sides of its ratio.

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use recsync::{OpKind, Outcomes, SyncPlan};

use support::{floor, typical, Spec, State};

/// Sizes run by default.
const SIZES: [usize; 2] = [10_000, 100_000];
/// Added when `RECSYNC_BENCH_1M` is set.
const MILLION: usize = 1_000_000;
/// Records in the incremental plans.
const INCREMENTS: [usize; 3] = [1, 100, 10_000];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Form {
    Recsync,
    Floor,
    Typical,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Form::Recsync => "recsync",
            Form::Floor => "floor",
            Form::Typical => "typical",
        }
    }
}

/// Medians of one bench (group and parameter) for each form.
#[derive(Debug, Default)]
struct Row {
    /// Entities (full plan, commit) or records (incremental) per iteration.
    items: usize,
    median: [Option<Duration>; 3],
    /// recsync's time over the floor's, timed in turns (see the module
    /// docs), sorted.
    paired: Vec<f64>,
}

struct Bench {
    criterion: Criterion,
    /// Alternatives of the positional filter (split on `|`), matched as
    /// substrings of `group/form/param`.
    filters: Vec<String>,
    rows: BTreeMap<(String, usize, String), Row>,
    /// Per size: the entities recsync's full two-system plan writes to or
    /// holds a conflict of (the entities its edits touch).
    written: BTreeMap<usize, usize>,
    /// `--test` or `--list`: every routine once, and 3 turns of the
    /// paired timing.
    quick: bool,
}

impl Bench {
    fn new() -> Bench {
        let filters = std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .map(|f| f.split('|').map(str::to_owned).collect())
            .unwrap_or_default();
        Bench {
            criterion: Criterion::default().configure_from_args(),
            filters,
            rows: BTreeMap::new(),
            written: BTreeMap::new(),
            quick: std::env::args().any(|a| a == "--test" || a == "--list"),
        }
    }

    fn selected(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
    }

    /// Whether any of `ids` (`group/param`) is selected for `form`.
    fn wants(&self, form: Form, ids: &[(String, String)]) -> bool {
        ids.iter()
            .any(|(g, p)| self.selected(&format!("{g}/{}/{p}", form.name())))
    }

    /// Times `routine` on a fresh `setup()` each iteration (setup and the
    /// output's drop are not timed), under criterion and for the table.
    #[allow(clippy::too_many_arguments)]
    fn run<I, O>(
        &mut self,
        group: &str,
        form: Form,
        param: &str,
        items: usize,
        order: usize,
        measure: Duration,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> O,
    ) {
        if !self.selected(&format!("{group}/{}/{param}", form.name())) {
            return;
        }
        let mut times: Vec<Duration> = Vec::new();
        let mut g = self.criterion.benchmark_group(group);
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(measure);
        g.bench_function(BenchmarkId::new(form.name(), param), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let input = setup();
                    let start = Instant::now();
                    let out = black_box(routine(black_box(input)));
                    let took = start.elapsed();
                    drop(out);
                    times.push(took);
                    total += took;
                }
                total
            });
        });
        g.finish();
        if times.is_empty() {
            return;
        }
        times.sort_unstable();
        let row = self
            .rows
            .entry((group.to_owned(), order, param.to_owned()))
            .or_default();
        row.items = items;
        row.median[form as usize] = Some(times[times.len() / 2]);
    }

    /// Times `recsync` and `floor` in turns, `turns` times each (recsync
    /// first in even turns, the floor first in odd ones), and keeps the
    /// ratios of each turn's two times for the `paired` column.
    fn paired<A, B>(
        &mut self,
        group: &str,
        param: &str,
        order: usize,
        turns: usize,
        mut recsync: impl FnMut() -> A,
        mut floor: impl FnMut() -> B,
    ) {
        fn time<O>(f: &mut impl FnMut() -> O) -> f64 {
            let start = Instant::now();
            let out = black_box(f());
            let took = start.elapsed().as_secs_f64();
            drop(out);
            took
        }
        let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut ratios: Vec<f64> = (0..turns)
            .map(|turn| {
                let (rs, fl) = if turn % 2 == 0 {
                    let rs = time(&mut recsync);
                    (rs, time(&mut floor))
                } else {
                    let fl = time(&mut floor);
                    (time(&mut recsync), fl)
                };
                times[0].push(rs);
                times[1].push(fl);
                rs / fl
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        for t in &mut times {
            t.sort_by(f64::total_cmp);
        }
        println!(
            "{group}/{param}: in turns, medians recsync {}, floor {}; ratio {}",
            Time(Some(Duration::from_secs_f64(times[0][turns / 2]))),
            Time(Some(Duration::from_secs_f64(times[1][turns / 2]))),
            Paired(&ratios)
        );
        self.rows
            .entry((group.to_owned(), order, param.to_owned()))
            .or_default()
            .paired = ratios;
    }

    fn print(&self) {
        println!();
        println!("recsync against the floor and the typical user: median of every timed iteration");
        println!(
            "{:<24} {:>16} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>20}",
            "bench",
            "size",
            "recsync",
            "per item",
            "floor",
            "typical",
            "rs/floor",
            "rs/typ",
            "typ/floor",
            "paired (min-max)"
        );
        for ((group, _, param), row) in &self.rows {
            let [rs, fl, ty] = row.median;
            let per = rs.map(|d| d / u32::try_from(row.items.max(1)).unwrap_or(u32::MAX));
            println!(
                "{:<24} {:>16} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>20}",
                group,
                param,
                Time(rs),
                Time(per),
                Time(fl),
                Time(ty),
                Ratio(rs, fl),
                Ratio(rs, ty),
                Ratio(ty, fl),
                Paired(&row.paired),
            );
        }
        self.print_derived();
    }

    fn median(&self, group: &str, param: &str, form: Form) -> Option<Duration> {
        self.rows
            .iter()
            .find(|((g, _, p), _)| g == group && p == param)
            .and_then(|(_, r)| r.median[form as usize])
    }

    fn print_derived(&self) {
        println!();
        // Scaling of the full plan: the two largest sizes that ran, 10x apart
        // (the target: time(1M) / time(100k) <= 11).
        let pairs = [
            (MILLION, 100_000, "1M", "100k"),
            (100_000, 10_000, "100k", "10k"),
        ];
        for group in [
            "full_2sys",
            "full_2sys_noversions",
            "full_3sys",
            "full_3sys_noversions",
        ] {
            for (big_n, small_n, big_name, small_name) in pairs {
                let at = |n: usize, form| self.median(group, &n.to_string(), form);
                let (Some(big), Some(small)) =
                    (at(big_n, Form::Recsync), at(small_n, Form::Recsync))
                else {
                    continue;
                };
                let ratio = |form| match (at(big_n, form), at(small_n, form)) {
                    (Some(b), Some(s)) => format!("{:.2}", b.as_secs_f64() / s.as_secs_f64()),
                    _ => "-".to_owned(),
                };
                println!(
                    "{group}: time({big_name}) / time({small_name}): recsync {:.2}, floor {}, typical {}",
                    big.as_secs_f64() / small.as_secs_f64(),
                    ratio(Form::Floor),
                    ratio(Form::Typical),
                );
                break;
            }
        }
        let incremental: Vec<(usize, usize, Duration)> = self
            .rows
            .iter()
            .filter(|((g, _, _), _)| g == "incremental")
            .filter_map(|((_, _, p), r)| {
                let (k, n) = p.split_once("_of_")?;
                Some((k.parse().ok()?, n.parse().ok()?, r.median[0]?))
            })
            .collect();
        if let (Some(one), Some(most)) = (incremental.first(), incremental.last()) {
            let (k1, n, t1) = *one;
            let (kk, _, tk) = *most;
            println!(
                "incremental against {n} entities: {k1} record {}, {kk} records {} ({:.1}x the {k1}-record time)",
                Time(Some(t1)),
                Time(Some(tk)),
                tk.as_secs_f64() / t1.as_secs_f64()
            );
            if let Some(full) = self.median("full_2sys", &n.to_string(), Form::Recsync) {
                println!(
                    "full 2-system plan of {n}: {} = {:.1}x the {kk}-record incremental plan, {:.0}x the {k1}-record one",
                    Time(Some(full)),
                    full.as_secs_f64() / tk.as_secs_f64(),
                    full.as_secs_f64() / t1.as_secs_f64()
                );
                self.print_split(n, full, kk, tk);
            }
        }
    }

    /// The full plan of `n` split into what its unchanged entities cost
    /// (the plan of the initial, unchanged snapshots) and what its edited ones cost,
    /// beside the `k`-record incremental plan's cost per record, and the
    /// cost per record at which that plan would take a hundredth of the
    /// full one.
    fn print_split(&self, n: usize, full: Duration, k: usize, tk: Duration) {
        let (Some(still), Some(&written)) = (
            self.median("unchanged_2sys", &n.to_string(), Form::Recsync),
            self.written.get(&n),
        ) else {
            return;
        };
        let each = |d: Duration, items: usize| {
            Time(Some(d / u32::try_from(items.max(1)).unwrap_or(u32::MAX)))
        };
        println!(
            "  with nothing changed: {} ({} per entity); the {written} entities this plan writes: {} each beyond that",
            Time(Some(still)),
            each(still, n),
            each(full.saturating_sub(still), written),
        );
        println!(
            "  the {k}-record incremental plan: {} per record; a hundredth of the full plan would allow {} per record",
            each(tk, k),
            each(full / 100, k),
        );
    }
}

struct Time(Option<Duration>);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(d) = self.0 else {
            return f.pad("-");
        };
        let ns = d.as_nanos() as f64;
        let text = if ns >= 1e9 {
            format!("{:.3} s", ns / 1e9)
        } else if ns >= 1e6 {
            format!("{:.2} ms", ns / 1e6)
        } else if ns >= 1e3 {
            format!("{:.2} µs", ns / 1e3)
        } else {
            format!("{ns:.0} ns")
        };
        f.pad(&text)
    }
}

/// The median of sorted ratios, with their range.
struct Paired<'r>(&'r [f64]);

impl fmt::Display for Paired<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.pad("-"),
            r => f.pad(&format!(
                "{:.2}x ({:.2}-{:.2})",
                r[r.len() / 2],
                r[0],
                r[r.len() - 1]
            )),
        }
    }
}

struct Ratio(Option<Duration>, Option<Duration>);

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(a), Some(b)) if !b.is_zero() => {
                f.pad(&format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64()))
            }
            _ => f.pad("-"),
        }
    }
}

/// Counts of `items` by the variant name of their `Debug` form.
fn kinds<T: fmt::Debug>(items: impl Iterator<Item = T>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for item in items {
        let text = format!("{item:?}");
        let name = text
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or_default();
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    parts.join(", ")
}

/// The entities `plan` writes to or holds a conflict of.
fn written_entities(plan: &SyncPlan) -> usize {
    let ids: std::collections::BTreeSet<&str> = plan
        .ops
        .iter()
        .map(|o| o.entity.as_str())
        .chain(plan.conflicts.iter().map(|c| c.entity.as_str()))
        .collect();
    ids.len()
}

fn recsync_summary(plan: &SyncPlan) -> String {
    let fields: usize = plan.ops.iter().map(|o| o.fields.len()).sum();
    format!(
        "{} ops [{}] ({fields} field writes), {} conflicts held, {} holds [{}], {} issues, {} entity changes",
        plan.ops.len(),
        kinds(plan.ops.iter().map(|o| o.kind)),
        plan.conflicts.len(),
        plan.held.len(),
        kinds(plan.held.iter().map(|h| &h.kind)),
        plan.issues.len(),
        plan.changes.len()
    )
}

/// One field written to one record: system, record id, field index, value.
type FieldUpdate = (usize, String, usize, serde_json::Value);

/// Every field update of recsync's plan, sorted.
fn recsync_updates(plan: &SyncPlan) -> Vec<FieldUpdate> {
    let mut out: Vec<FieldUpdate> = Vec::new();
    for op in plan.ops.iter().filter(|o| o.kind == OpKind::Update) {
        let s = support::SYSTEMS
            .iter()
            .position(|name| *name == op.system.as_str())
            .unwrap_or(usize::MAX);
        for w in &op.fields {
            let f = support::FIELDS
                .iter()
                .position(|name| w.field == *name)
                .unwrap_or(usize::MAX);
            let id = op.record_id.clone().unwrap_or_default();
            out.push((s, id, f, w.value.clone()));
        }
    }
    out.sort_unstable_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    out
}

/// Every field update of the floor's plan, sorted.
fn floor_updates(plan: &floor::FloorPlan) -> Vec<FieldUpdate> {
    let mut out: Vec<FieldUpdate> = Vec::new();
    for (s, writes) in plan.updates.iter().enumerate() {
        for w in writes {
            for (f, v) in &w.fields {
                out.push((s, w.record.clone(), usize::from(*f), v.clone()));
            }
        }
    }
    out.sort_unstable_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    out
}

/// Prints where recsync's field updates differ from the floor's (the same
/// data; only conflicts may be decided differently: recsync's map is
/// last-write-wins, the floor's rule is "the first system wins").
fn compare_updates(what: &str, rs: &[FieldUpdate], fl: &[FieldUpdate]) {
    let (mut only_rs, mut only_fl, mut other_value, mut same) =
        (Vec::new(), Vec::new(), Vec::new(), 0);
    let (mut i, mut j) = (0, 0);
    while i < rs.len() || j < fl.len() {
        let order = match (rs.get(i), fl.get(j)) {
            (Some(a), Some(b)) => (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                only_rs.push(&rs[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_fl.push(&fl[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if rs[i].3 == fl[j].3 {
                    same += 1;
                } else {
                    other_value.push((&rs[i], &fl[j].3));
                }
                i += 1;
                j += 1;
            }
        }
    }
    println!(
        "{what}: field updates: {same} alike, {} with another value (conflicts decided otherwise), {} only recsync's, {} only the floor's",
        other_value.len(),
        only_rs.len(),
        only_fl.len()
    );
    let show = |u: &FieldUpdate| {
        format!(
            "{} {} {} := {}",
            support::SYSTEMS.get(u.0).unwrap_or(&"?"),
            u.1,
            support::FIELDS.get(u.2).unwrap_or(&"?"),
            u.3
        )
    };
    for u in only_rs.iter().take(3) {
        println!("  only recsync: {}", show(u));
    }
    for u in only_fl.iter().take(3) {
        println!("  only floor:   {}", show(u));
    }
}

/// One data shape at one size: the full plan for each form, and for two
/// systems with versions also the commit and (at the largest size) the
/// incremental plans.
fn scenario(b: &mut Bench, n: usize, systems: usize, versions: bool, largest: bool) {
    let spec = Spec::new(n, systems);
    let full = format!(
        "full_{systems}sys{}",
        if versions { "" } else { "_noversions" }
    );
    let extras = systems == 2 && versions;
    let param = n.to_string();
    let mut ks: Vec<usize> = Vec::new();
    if extras && largest {
        for k in INCREMENTS {
            let k = k.min(n);
            if !ks.contains(&k) {
                ks.push(k);
            }
        }
    }
    let mut ids = vec![(full.clone(), param.clone())];
    if extras {
        ids.push(("commit_2sys".to_owned(), param.clone()));
    }
    if !ks.is_empty() {
        ids.push(("unchanged_2sys".to_owned(), param.clone()));
    }
    ids.extend(
        ks.iter()
            .map(|k| ("incremental".to_owned(), format!("{k}_of_{n}"))),
    );
    let measure = Duration::from_secs(3);
    let measure_commit = Duration::from_secs(1);

    let mut rs_updates: Vec<FieldUpdate> = Vec::new();
    // Kept for the turns with the floor when both full plans are timed.
    let pair = b.selected(&format!("{full}/recsync/{param}"))
        && b.selected(&format!("{full}/floor/{param}"));
    let mut rs_side = None;
    if b.wants(Form::Recsync, &ids) {
        let engine = support::engine(systems);
        let baseline = support::synced(&engine, &spec, versions);
        let snaps = support::snapshots(&spec, State::Changed, versions);
        let plan = engine.plan(&baseline, &snaps).expect("plan");
        println!("{full}/{n}: recsync plans {}", recsync_summary(&plan));
        rs_updates = recsync_updates(&plan);
        if extras {
            b.written.insert(n, written_entities(&plan));
        }
        b.run(
            &full,
            Form::Recsync,
            &param,
            n,
            n,
            measure,
            || (),
            |()| engine.plan(&baseline, &snaps).expect("plan"),
        );
        if extras {
            let outcomes = Outcomes::all_applied(&plan);
            b.run(
                "commit_2sys",
                Form::Recsync,
                &param,
                n,
                n,
                measure_commit,
                || baseline.clone(),
                |mut base| {
                    engine.commit(&mut base, &plan, &outcomes).expect("commit");
                    base
                },
            );
        }
        drop(plan);
        let snaps = pair.then_some(snaps);
        if !ks.is_empty() && b.selected(&format!("unchanged_2sys/recsync/{param}")) {
            // What a full plan costs when nothing changed: every entity is
            // skipped on its versions. Read with the full plan and the
            // incremental ones (see `print_derived`).
            let snaps = support::snapshots(&spec, State::Initial, versions);
            b.run(
                "unchanged_2sys",
                Form::Recsync,
                &param,
                n,
                n,
                measure,
                || (),
                |()| engine.plan(&baseline, &snaps).expect("plan"),
            );
        }
        for &k in &ks {
            let snap = [support::increment(&spec, k, versions)];
            b.run(
                "incremental",
                Form::Recsync,
                &format!("{k}_of_{n}"),
                k,
                k,
                measure,
                || (),
                |()| engine.plan(&baseline, &snap).expect("plan"),
            );
        }
        rs_side = snaps.map(|snaps| (engine, baseline, snaps));
    }

    if b.wants(Form::Floor, &ids) {
        let base = floor::baseline(&spec);
        let snaps = floor::snapshots(&spec, State::Changed);
        let plan = floor::plan(&base, &snaps);
        println!("{full}/{n}: floor plans {}", plan.writes());
        // Taken, so the recsync side is freed before the floor's timing.
        let recsync_side = std::mem::take(&mut rs_updates);
        if !recsync_side.is_empty() {
            compare_updates(&format!("{full}/{n}"), &recsync_side, &floor_updates(&plan));
        }
        b.run(
            &full,
            Form::Floor,
            &param,
            n,
            n,
            measure,
            || (),
            |()| floor::plan(&base, &snaps),
        );
        if let Some((engine, baseline, rs_snaps)) = rs_side.take() {
            let turns = if b.quick {
                3
            } else if n >= MILLION {
                11
            } else {
                21
            };
            b.paired(
                &full,
                &param,
                n,
                turns,
                || engine.plan(&baseline, &rs_snaps).expect("plan"),
                || floor::plan(&base, &snaps),
            );
        }
        if extras {
            b.run(
                "commit_2sys",
                Form::Floor,
                &param,
                n,
                n,
                measure_commit,
                || base.clone(),
                |mut base| {
                    floor::commit(&mut base, &plan);
                    base
                },
            );
        }
        drop((plan, snaps));
        for &k in &ks {
            let recs = floor::increment(&spec, k);
            b.run(
                "incremental",
                Form::Floor,
                &format!("{k}_of_{n}"),
                k,
                k,
                measure,
                || (),
                |()| floor::plan_partial(&base, 0, &recs),
            );
        }
    }

    if b.wants(Form::Typical, &ids) {
        let base = typical::baseline(&spec);
        let snaps = typical::snapshots(&spec, State::Changed);
        let plan = typical::plan(&base, &snaps);
        println!("{full}/{n}: typical user plans {}", plan.writes());
        b.run(
            &full,
            Form::Typical,
            &param,
            n,
            n,
            measure,
            || (),
            |()| typical::plan(&base, &snaps),
        );
        if extras {
            b.run(
                "commit_2sys",
                Form::Typical,
                &param,
                n,
                n,
                measure_commit,
                || base.clone(),
                |mut base| {
                    typical::commit(&mut base, &plan);
                    base
                },
            );
        }
        drop((plan, snaps));
        for &k in &ks {
            let snap = typical::increment(&spec, k);
            b.run(
                "incremental",
                Form::Typical,
                &format!("{k}_of_{n}"),
                k,
                k,
                measure,
                || (),
                |()| typical::plan_partial(&base, 0, &snap),
            );
        }
    }

    // The SQLite commit (10k changed entities into a 1M-entity
    // store, against a bare rusqlite upsert loop of the same rows in one
    // transaction) is its own bench, `benches/sqlite.rs`, behind the
    // `sqlite` feature; it can share this data through `mod support;`.
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let million = std::env::var("RECSYNC_BENCH_1M").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut sizes: Vec<usize> = if quick {
        vec![SIZES[0]]
    } else {
        SIZES.to_vec()
    };
    if million && !quick {
        sizes.push(MILLION);
    }
    let largest = sizes.last().copied().unwrap_or(SIZES[0]);
    let mut b = Bench::new();
    for &n in &sizes {
        for (systems, versions) in [(2, true), (2, false), (3, true), (3, false)] {
            scenario(&mut b, n, systems, versions, n == largest);
        }
    }
    b.criterion.final_summary();
    b.print();
}

//! Planning and committing over synthetic contacts in two systems.
//!
//! `cargo bench --bench plan`. Data is generated from a fixed seed: 10 fields
//! per contact, about 5% of contacts changed in one system. The
//! performance issue adds the 1M sizes and the floor to compare against.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use recsync::{Baseline, Field, FieldMap, Outcomes, Record, Snapshot, SyncEngine};
use serde_json::json;

const FIELDS: [&str; 9] = [
    "name", "phone", "title", "company", "city", "country", "score", "stage", "opt_in",
];

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn engine() -> SyncEngine {
    let mut map = FieldMap::builder()
        .systems(["crm", "marketing"])
        .key("email")
        .field(Field::new("email").case_insensitive());
    for f in FIELDS {
        map = map.field(Field::new(f));
    }
    SyncEngine::new(map.build().expect("bench map is valid"))
}

fn contacts(n: usize, prefix: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = Record::new(format!("{prefix}{i}"))
                .field("email", format!("person{i}@example.com"));
            for (k, f) in FIELDS.iter().enumerate() {
                r = r.field(*f, json!(format!("{f}-{}", (i * 7 + k) % 1000)));
            }
            r
        })
        .collect()
}

fn synced(engine: &SyncEngine, n: usize) -> (Baseline, Vec<Record>, Vec<Record>) {
    let (crm, mkt) = (contacts(n, "c"), contacts(n, "m"));
    let mut baseline = Baseline::new();
    let snaps = [
        Snapshot::complete("crm", crm.clone()),
        Snapshot::complete("marketing", mkt.clone()),
    ];
    let plan = engine.plan(&baseline, &snaps).expect("plan");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .expect("commit");
    (baseline, crm, mkt)
}

fn bench(c: &mut Criterion) {
    let engine = engine();
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    for n in [10_000usize] {
        let (baseline, mut crm, mkt) = synced(&engine, n);
        let unchanged = [
            Snapshot::complete("crm", crm.clone()),
            Snapshot::complete("marketing", mkt.clone()),
        ];
        group.bench_with_input(BenchmarkId::new("unchanged", n), &unchanged, |b, s| {
            b.iter(|| engine.plan(black_box(&baseline), black_box(s)))
        });
        let mut rng = Rng(0x5eed);
        for r in crm.iter_mut() {
            if rng.next().is_multiple_of(20) {
                let f = FIELDS[(rng.next() % FIELDS.len() as u64) as usize];
                r.fields
                    .insert(f.into(), json!(format!("edited-{}", rng.next() % 100)));
            }
        }
        let changed = [
            Snapshot::complete("crm", crm),
            Snapshot::complete("marketing", mkt),
        ];
        group.bench_with_input(BenchmarkId::new("5pct_changed", n), &changed, |b, s| {
            b.iter(|| engine.plan(black_box(&baseline), black_box(s)))
        });
        let plan = engine.plan(&baseline, &changed).expect("plan");
        let outcomes = Outcomes::all_applied(&plan);
        group.bench_function(BenchmarkId::new("commit_5pct", n), |b| {
            b.iter_batched(
                || baseline.clone(),
                |mut base| engine.commit(&mut base, &plan, &outcomes),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! SQLite commit: saving 10k changed entities into a large store, against a
//! bare rusqlite upsert loop of the same rows.
//!
//! ```text
//! cargo bench --bench sqlite --features sqlite-bundled                       # 100k-entity store
//! RECSYNC_BENCH_1M=1 cargo bench --bench sqlite --features sqlite-bundled    # 1M-entity store
//! cargo bench --bench sqlite --features sqlite-bundled -- --test             # quick check (2k)
//! ```
//!
//! With SQLite bundled, as the runs in benches/README.md had it (before
//! feature `sqlite-bundled`, `sqlite` bundled it); `--features sqlite`
//! measures the system library instead.
//!
//! Setup (not measured): the database is filled with N entities x 20 fields
//! in two systems (seeded synthetic contacts, built with
//! `Baseline::from_parts`); then this run's baseline, the same with 10k of
//! them (spread evenly) changed, is built. Then, on the same database file,
//! each iteration either
//!
//! - **recsync**: `SqliteStore::save` with a `CommitSummary` naming the 10k
//!   changed entities (find, serialize, checksum and upsert each, reading
//!   the checksum of the row it replaces to keep the header's count and sum,
//!   plus the header, in one transaction), or
//! - **bare**: a plain rusqlite loop upserting the same 10k rows (the very
//!   bytes and checksums recsync writes, read back beforehand) with the
//!   same statement in one transaction, on a connection with the same
//!   settings.
//!
//! Both write the same bytes to the same rows, so every iteration does the
//! same database work. Criterion measures each; a median-of-runs table,
//! taken with the two interleaved, gives the ratio (target: at most 2x).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use recsync::baseline::{BaselineHeader, EntityRecord, LinkRecord};
use recsync::store::SqliteStore;
use recsync::{Baseline, CommitSummary, EntityId, StateStore, SystemId};
use rusqlite::{params, Connection};
use serde_json::{json, Value};

const OBJECT: &str = "contacts";
const SYSTEMS: [&str; 2] = ["crm", "marketing"];
const STAGES: [&str; 6] = [
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];
const INDUSTRIES: [&str; 8] = [
    "software",
    "retail",
    "logistics",
    "banking",
    "healthcare",
    "energy",
    "media",
    "education",
];
const CITIES: [(&str, &str); 8] = [
    ("Oslo", "NO"),
    ("Berlin", "DE"),
    ("Lyon", "FR"),
    ("Austin", "US"),
    ("Osaka", "JP"),
    ("Porto", "PT"),
    ("Leeds", "GB"),
    ("Graz", "AT"),
];
const NAMES: [&str; 8] = ["Ada", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana"];
const SURNAMES: [&str; 8] = [
    "Lovelace", "Berg", "Wu", "Okafor", "Novak", "Haddad", "Silva", "Sato",
];
const TAGS: [&str; 5] = ["vip", "newsletter", "partner", "churn-risk", "event"];

/// splitmix64: a value per (entity, salt), the same on every run.
fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(salt.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick<T: Copy>(items: &[T], i: u64, salt: u64) -> T {
    items[(mix(i, salt) % items.len() as u64) as usize]
}

/// Twenty fields of the kinds a CRM contact has. `changed` bumps the score
/// and moves the stage, as a synced edit would.
fn fields(i: u64, changed: bool) -> Vec<(&'static str, Value)> {
    let (city, country) = pick(&CITIES, i, 1);
    let first = pick(&NAMES, i, 2);
    let last = pick(&SURNAMES, i, 3);
    let notes_len = (mix(i, 4) % 200) as usize;
    let notes: String = "Met at the spring fair; wants a demo of the reporting module. "
        .chars()
        .cycle()
        .take(notes_len)
        .collect();
    let tags: Vec<&str> = TAGS
        .iter()
        .copied()
        .filter(|_| mix(i, 5).is_multiple_of(3))
        .take(1 + (mix(i, 6) % 3) as usize)
        .collect();
    let score = (mix(i, 7) % 100) as i64 + if changed { 1 } else { 0 };
    let stage = pick(&STAGES, i + u64::from(changed), 8);
    vec![
        ("email", json!(format!("{first}.{last}{i}@example.com"))),
        ("first_name", json!(first)),
        ("last_name", json!(last)),
        (
            "phone",
            json!(format!("+47 {:08}", mix(i, 9) % 100_000_000)),
        ),
        (
            "title",
            json!(pick(&["CTO", "Buyer", "CFO", "Engineer"], i, 10)),
        ),
        ("score", json!(score)),
        ("stage", json!(stage)),
        (
            "created",
            json!(format!(
                "20{:02}-{:02}-{:02}",
                15 + i % 10,
                1 + i % 12,
                1 + i % 28
            )),
        ),
        (
            "company",
            json!(format!("{last} {} AS", pick(&INDUSTRIES, i, 11))),
        ),
        ("industry", json!(pick(&INDUSTRIES, i, 12))),
        ("employees", json!(mix(i, 13) % 50_000)),
        ("revenue", json!((mix(i, 14) % 10_000_000) as f64 / 100.0)),
        ("city", json!(city)),
        ("country", json!(country)),
        ("opt_in", json!(mix(i, 15).is_multiple_of(2))),
        ("tags", json!(tags)),
        ("notes", json!(notes)),
        ("owner", json!(pick(&NAMES, i, 16))),
        (
            "source",
            json!(pick(&["web", "fair", "referral", "ads"], i, 17)),
        ),
        ("language", json!(pick(&["en", "no", "de", "fr"], i, 18))),
    ]
}

// EntityRecord is #[non_exhaustive]: outside the crate it is built from its
// default.
#[allow(clippy::field_reassign_with_default)]
fn entity(i: u64, changed: bool) -> EntityRecord {
    let mut r = EntityRecord::default();
    r.id = EntityId::new(format!("crm:c{i}"));
    let values = fields(i, changed);
    for (s, system) in SYSTEMS.iter().enumerate() {
        r.links.insert(
            SystemId::new(*system),
            LinkRecord {
                id: format!("{}{i}", &system[..1]),
                version: Some(format!("v{}", mix(i, 20 + s as u64) % 1000)),
                hash: mix(i, 30 + s as u64) | 1,
                status: Default::default(),
            },
        );
        r.shadows.insert(
            SystemId::new(*system),
            values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
    }
    r.canonical = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    r
}

struct Setup {
    store: SqliteStore,
    bare: Connection,
    baseline: Baseline,
    summary: CommitSummary,
    /// The changed rows as recsync writes them: id, serialized bytes and
    /// checksum.
    rows: Vec<(String, Vec<u8>, i64)>,
    object_id: i64,
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const UPSERT: &str = "INSERT INTO recsync_entities (object, id, record, checksum) \
                      VALUES (?1, ?2, ?3, ?4) ON CONFLICT (object, id) \
                      DO UPDATE SET record = excluded.record, checksum = excluded.checksum";

fn setup(n: u64, changes: u64) -> Setup {
    let t = Instant::now();
    let step = (n / changes).max(1);
    let is_changed = |i: u64| i.is_multiple_of(step) && i / step < changes;
    let dir = std::env::temp_dir().join(format!("recsync-bench-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(dir.join("state.db")).unwrap();
    // The store as the last run left it: every entity before the change.
    {
        let before =
            Baseline::from_parts(BaselineHeader::default(), (0..n).map(|i| entity(i, false)))
                .unwrap();
        store.replace(OBJECT, &before).unwrap();
    }
    // This run's baseline: the same, with the changed entities changed.
    let baseline = Baseline::from_parts(
        BaselineHeader::default(),
        (0..n).map(|i| entity(i, is_changed(i))),
    )
    .unwrap();
    let mut summary = CommitSummary::default();
    summary.touched.extend(
        (0..n)
            .filter(|i| is_changed(*i))
            .map(|i| EntityId::new(format!("crm:c{i}"))),
    );
    // One save (not measured) writes the changed rows; the bare loop writes
    // the very bytes it left.
    store.save(OBJECT, &baseline, &summary).unwrap();
    let bare = open_bare(store.path().expect("a database file"));
    let object_id: i64 = bare
        .query_row(
            "SELECT id FROM recsync_objects WHERE name = ?1",
            [OBJECT],
            |r| r.get(0),
        )
        .unwrap();
    let rows: Vec<(String, Vec<u8>, i64)> = {
        let mut stmt = bare
            .prepare("SELECT record, checksum FROM recsync_entities WHERE object = ?1 AND id = ?2")
            .unwrap();
        summary
            .touched
            .iter()
            .map(|id| {
                let (bytes, sum) = stmt
                    .query_row(params![object_id, id.as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .unwrap();
                (id.to_string(), bytes, sum)
            })
            .collect()
    };
    bare.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let avg_row = rows.iter().map(|r| r.1.len()).sum::<usize>() / rows.len().max(1);
    let full = serde_json::to_vec(&baseline.export(&summary.touched[0]).unwrap())
        .unwrap()
        .len();
    println!(
        "setup: {n} entities x 20 fields in 2 systems, {} changed; rows of {avg_row} bytes \
         ({full} as a spelled-out EntityRecord); {:.1?}",
        rows.len(),
        t.elapsed()
    );
    Setup {
        store,
        bare,
        baseline,
        summary,
        rows,
        object_id,
        dir,
    }
}

fn open_bare(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    // The store's settings: write-ahead log, synchronous=NORMAL, 64 MiB cache.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536",
    )
    .unwrap();
    conn
}

fn recsync_save(s: &Setup) {
    s.store
        .save(OBJECT, black_box(&s.baseline), black_box(&s.summary))
        .unwrap();
}

fn bare_upsert(s: &mut Setup) {
    let tx = s.bare.transaction().unwrap();
    {
        let mut stmt = tx.prepare_cached(UPSERT).unwrap();
        for (id, bytes, sum) in &s.rows {
            stmt.execute(params![s.object_id, id, bytes, sum]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let big = std::env::var("RECSYNC_BENCH_1M").is_ok_and(|v| v == "1");
    let (n, changes) = match (test_mode, big) {
        (true, _) => (2_000, 200),
        (false, true) => (1_000_000, 10_000),
        (false, false) => (100_000, 10_000),
    };
    let mut s = setup(n, changes);

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let label = format!("sqlite_commit/{changes}_into_{n}");
    c.bench_function(&format!("{label}/recsync"), |b| b.iter(|| recsync_save(&s)));
    c.bench_function(&format!("{label}/bare_rusqlite"), |b| {
        b.iter(|| bare_upsert(&mut s))
    });

    // Median of interleaved runs, so both see the same disk and cache.
    let runs = if test_mode { 1 } else { 15 };
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        recsync_save(&s);
        ours.push(t.elapsed());
        let t = Instant::now();
        bare_upsert(&mut s);
        bare.push(t.elapsed());
    }
    let (ours, bare) = (median(ours), median(bare));
    let ratio = ours.as_secs_f64() / bare.as_secs_f64().max(1e-9);
    println!();
    println!(
        "SQLite commit of {changes} changed entities into a {n}-entity store, median of {runs}"
    );
    if test_mode {
        println!("(--test: one run on a small store, a smoke check and not a measurement)");
    }
    println!("| what | time | ratio to bare |");
    println!("| --- | --- | --- |");
    println!("| recsync SqliteStore::save | {ours:.1?} | {ratio:.2}x |");
    println!("| bare rusqlite upsert loop | {bare:.1?} | 1.00x |");
    println!("target: at most 2x bare");
    c.final_summary();
}

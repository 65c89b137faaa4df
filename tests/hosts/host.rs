//! What each test host does with its own rusqlite: opens its database, keeps
//! a table of its own there, hands recsync's store a second connection to
//! the same file, syncs two systems once with the pure engine, saves the
//! baseline, and loads it back through a new connection; then the same in
//! a database in memory. Included by each host's `main.rs`.

use std::error::Error;
use std::path::PathBuf;

use recsync::store::SqliteStore;
use recsync::{
    Baseline, ConflictPolicy, Field, FieldMap, Outcomes, Record, Snapshot, StateStore, SyncEngine,
};
use rusqlite::Connection;

/// Runs the host; `name` names its temporary directory.
pub fn run(name: &str) -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("recsync-host-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&dir.join("app.db"));
    std::fs::remove_dir_all(&dir)?;
    result
}

fn run_in(db: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let host = Connection::open(db)?;
    host.execute_batch(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
         INSERT INTO invoices (total) VALUES (12), (30);",
    )?;

    let (engine, baseline, summary) = synced()?;
    let store = SqliteStore::from_connection(Connection::open(db)?)?;
    let path = store.path().map(PathBuf::from);
    if path != Some(std::fs::canonicalize(db)?) {
        return Err(format!("the store names {path:?}, not {}", db.display()).into());
    }
    store.save("contacts", &baseline, &summary)?;
    host.execute("INSERT INTO invoices (total) VALUES (58)", [])?;
    drop(store);

    let again = SqliteStore::from_connection(Connection::open(db)?)?;
    let loaded = again.load("contacts")?;
    if loaded != baseline {
        return Err("the baseline loaded is not the one saved".into());
    }
    // What was loaded plans what was saved plans.
    if engine.plan(&loaded, &snapshots())? != engine.plan(&baseline, &snapshots())? {
        return Err("the baseline loaded plans otherwise than the one saved".into());
    }
    let total: i64 = host.query_row("SELECT sum(total) FROM invoices", [], |r| r.get(0))?;
    if total != 100 {
        return Err(format!("the host's invoices add up to {total}, not 100").into());
    }

    let memory = SqliteStore::from_connection(Connection::open_in_memory()?)?;
    memory.save("contacts", &baseline, &summary)?;
    if memory.path().is_some() || memory.load("contacts")? != baseline {
        return Err("the store in memory lost the baseline".into());
    }
    println!(
        "SQLite {}: a baseline saved and loaded, beside the host's table and in memory",
        rusqlite::version()
    );
    Ok(())
}

fn snapshots() -> Vec<Snapshot> {
    let crm = Snapshot::complete(
        "crm",
        vec![Record::new("c1")
            .field("email", "ada@example.com")
            .field("name", "Ada")
            .field("phone", "555-1")],
    );
    let marketing = Snapshot::complete(
        "marketing",
        vec![Record::new("m1")
            .field("email", "ADA@example.com ")
            .field("name", "Ada L.")
            .field("phone", ())],
    );
    vec![crm, marketing]
}

/// The crate docs' first example: one sync, committed as if every op was
/// applied.
fn synced() -> Result<(SyncEngine, Baseline, recsync::CommitSummary), Box<dyn Error>> {
    let map = FieldMap::builder()
        .systems(["crm", "marketing"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("phone"))
        .field(Field::new("name").policy(ConflictPolicy::authority("crm")))
        .build()?;
    let engine = SyncEngine::new(map);
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &snapshots())?;
    if plan.ops.len() != 1 {
        return Err(format!("expected one write, got:\n{plan}").into());
    }
    let summary = engine.commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))?;
    Ok((engine, baseline, summary))
}

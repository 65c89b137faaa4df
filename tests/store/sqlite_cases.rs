//! The SQLite store's cases on real database files: a module of
//! `tests/store/sqlite.rs` once for each way of making the store, which
//! the module's name tells `open`.

use std::collections::BTreeMap;
use std::path::Path;

use recsync::store::SqliteStore;
use rusqlite::{params, Connection};

use super::*;

/// The store of the database file `db` (created, and its directory, if
/// missing), made the way this module's name says.
fn open(db: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
    super::open_for(module_path!(), db.as_ref())
}

/// Every entity row of the database: id to stored bytes.
/// Runs `batch` on the database file, as another program would.
fn sql(db: &Path, batch: &str) {
    Connection::open(db).unwrap().execute_batch(batch).unwrap();
}

fn rows(db: &Path) -> BTreeMap<String, Vec<u8>> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, record FROM recsync_entities")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

/// The store's schema version as its table holds it, if it has one.
fn schema_version(db: &Path) -> Option<i64> {
    let conn = Connection::open(db).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'recsync_schema'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (tables > 0).then(|| {
        conn.query_row("SELECT version FROM recsync_schema", [], |r| r.get(0))
            .unwrap()
    })
}

fn user_version(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// Whether this module's store was opened by path: a file of the store's
/// own, whose `user_version` the store keeps; a host's connection leaves
/// it to the host.
fn by_path() -> bool {
    super::made_by_path(module_path!())
}

/// The names of the tables in the database, sorted.
fn tables(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let names = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
}

/// The name the test harness knows `test` of this module by.
fn child_test(test: &str) -> String {
    let module = module_path!();
    let inner = module.split_once("::").map_or(module, |(_, m)| m);
    format!("{inner}::{test}")
}

fn ids(summary: &CommitSummary) -> Vec<String> {
    summary
        .touched
        .iter()
        .chain(&summary.removed)
        .map(|id| id.to_string())
        .collect()
}

#[test]
fn round_trip_with_cursors_and_held_reviews() {
    let dir = temp_dir("sqlite-round-trip");
    let _c = Cleanup(dir.clone());
    let db = dir.join("nested").join("state.db");
    let s = synced(6);
    {
        let store = open(&db).unwrap();
        assert_eq!(store.load("contacts").unwrap(), Baseline::new());
        store.save("contacts", &s.first, &s.first_summary).unwrap();
        store.save("contacts", &s.held, &s.held_summary).unwrap();
        store.replace("deals", &s.first).unwrap();
        assert_eq!(store.objects().unwrap(), ["contacts", "deals"]);
    }
    // A new connection reads what the saves committed.
    let store = open(&db).unwrap();
    let back = store.load("contacts").unwrap();
    assert_same(&back, &s.held);
    assert_eq!(back.cursor("crm"), Some("crm-cursor-2"));
    assert_eq!(back.cursor("mkt"), Some("mkt-cursor-1"));
    assert_eq!(back.reviews().len(), 2);
    assert_same(&store.load("deals").unwrap(), &s.first);
    // Replace drops entities the new baseline no longer has.
    let small = synced(2);
    store.replace("deals", &small.first).unwrap();
    assert_same(&store.load("deals").unwrap(), &small.first);
    assert_same(&store.load("contacts").unwrap(), &s.held);
}

#[test]
fn a_save_writes_only_the_entities_the_commit_named() {
    let dir = temp_dir("sqlite-incremental");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(20);
    let store = open(&db).unwrap();
    store.save("contacts", &s.first, &s.first_summary).unwrap();
    let before = rows(&db);
    assert_eq!(before.len(), 20);

    store.save("contacts", &s.held, &s.held_summary).unwrap();
    let after = rows(&db);
    let named = ids(&s.held_summary);
    assert!(!named.is_empty());
    let changed: Vec<&String> = before
        .keys()
        .filter(|id| before.get(*id) != after.get(*id))
        .collect();
    assert!(!changed.is_empty());
    for id in before.keys() {
        if !named.contains(id) {
            assert_eq!(before[id], after[id], "untouched row {id} was rewritten");
        }
    }
    for id in &changed {
        assert!(
            named.contains(id),
            "{id} changed but the commit did not name it"
        );
    }

    assert_same(&store.load("contacts").unwrap(), &s.held);

    // The store trusts the summary, which is what makes a save cost what
    // the commit changed: naming one entity writes that row and no other,
    // though others (crm:c2) differ too.
    store.replace("contacts", &s.first).unwrap();
    assert_eq!(rows(&db), before);
    let mut one = CommitSummary::default();
    one.touched.push(recsync::EntityId::new("crm:c1"));
    store.save("contacts", &s.held, &one).unwrap();
    let after_one = rows(&db);
    for (id, bytes) in &before {
        if id == "crm:c1" {
            assert_ne!(&after_one[id], bytes);
        } else {
            assert_eq!(&after_one[id], bytes, "row {id} was written");
        }
    }
    let loaded = store.load("contacts").unwrap();
    let (c1, c2) = (
        recsync::EntityId::new("crm:c1"),
        recsync::EntityId::new("crm:c2"),
    );
    assert_eq!(loaded.export(&c1), s.held.export(&c1));
    assert_eq!(loaded.export(&c2), s.first.export(&c2));
    assert_ne!(s.held.export(&c2), s.first.export(&c2));

    // A save naming nothing writes no entity, only the header.
    store.replace("contacts", &s.first).unwrap();
    store
        .save("contacts", &s.held, &CommitSummary::default())
        .unwrap();
    assert_eq!(rows(&db), before);
    let mixed = store.load("contacts").unwrap();
    assert_eq!(mixed.header(), s.held.header());
}

/// The text of the records held back as ambiguous, as the header row
/// keeps it.
fn ambiguous_text(db: &Path) -> Option<String> {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT ambiguous FROM recsync_objects WHERE name = 'contacts'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The records held back as ambiguous live in the header row. A save
/// writes them when the commit changed them, or when it writes the whole
/// baseline; a commit that left them alone leaves them as stored.
#[test]
fn records_held_back_as_ambiguous_are_saved_when_a_commit_changed_them() {
    let dir = temp_dir("sqlite-ambiguous");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(6);
    let store = open(&db).unwrap();
    store.save("contacts", &s.first, &s.first_summary).unwrap();
    store.save("contacts", &s.held, &s.held_summary).unwrap();
    assert_eq!(ambiguous_text(&db), None);

    let (b, summary) = with_placeholders(&s);
    store.save("contacts", &b, &summary).unwrap();
    let text = ambiguous_text(&db).expect("saved with the commit that held them");
    assert!(text.contains("c900") && text.contains("c901"), "{text}");
    let back = open(&db).unwrap().load("contacts").unwrap();
    assert_same(&back, &b);
    assert_eq!(
        back.header().ambiguous.get("crm", "c900"),
        Some(("email", "noemail@example.com"))
    );

    // A commit that did not change them: not written, still loaded.
    let mut next = b.clone();
    let plan = s.engine.plan(&next, &[]).unwrap();
    let quiet = s
        .engine
        .commit(&mut next, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    assert!(!quiet.ambiguous);
    store.save("contacts", &next, &quiet).unwrap();
    assert_eq!(ambiguous_text(&db).as_deref(), Some(text.as_str()));
    assert_same(&store.load("contacts").unwrap(), &next);
    // Seen by damaging what is stored first: the save leaves it as it is
    // (and the next load refuses it).
    let damaged = text.replace("c900", "c999");
    let set = |t: &str| {
        Connection::open(&db)
            .unwrap()
            .execute(
                "UPDATE recsync_objects SET ambiguous = ?1 WHERE name = 'contacts'",
                [t],
            )
            .unwrap()
    };
    set(&damaged);
    store.save("contacts", &next, &quiet).unwrap();
    assert_eq!(ambiguous_text(&db).as_deref(), Some(damaged.as_str()));
    assert!(matches!(
        store.load("contacts"),
        Err(StoreError::Damaged {
            place: Place::Header,
            check: Check::HeaderChecksum,
            ..
        })
    ));
    set(&text);
    assert_same(&store.load("contacts").unwrap(), &next);

    // A commit that forgot them (a complete read of crm without them).
    let mut last = next.clone();
    let plan = s.engine.plan(&last, &edited(6)[..1]).unwrap();
    let forgot = s
        .engine
        .commit(&mut last, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    assert!(forgot.ambiguous);
    assert!(last.header().ambiguous.is_empty());
    store.save("contacts", &last, &forgot).unwrap();
    assert_eq!(ambiguous_text(&db), None);
    assert_same(&store.load("contacts").unwrap(), &last);
}

/// A database of schema version 2 (before the records held back as
/// ambiguous were kept) is brought to the current version on open; its
/// objects load and verify as before.
#[test]
fn a_database_of_schema_version_2_loads_after_open() {
    let dir = temp_dir("sqlite-v2");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(5);
    drop(open(&db).unwrap().replace("contacts", &s.held));
    let old = dir.join("v2.db");
    Connection::open(&old)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE recsync_objects (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                revision INTEGER NOT NULL, fingerprint INTEGER, cursors TEXT NOT NULL,
                count INTEGER, rows INTEGER, checksum INTEGER);
             CREATE TABLE recsync_entities (
                object INTEGER NOT NULL, id TEXT NOT NULL, record BLOB NOT NULL,
                checksum INTEGER, PRIMARY KEY (object, id));
             ATTACH '{}' AS new;
             INSERT INTO recsync_objects SELECT id, name, revision, fingerprint, cursors,
                count, rows, checksum FROM new.recsync_objects;
             INSERT INTO recsync_entities SELECT object, id, record, checksum
                FROM new.recsync_entities;
             DETACH new;
             PRAGMA user_version = 2;",
            db.display()
        ))
        .unwrap();
    let store = open(&old).unwrap();
    assert_same(&store.load("contacts").unwrap(), &s.held);
    assert_eq!(schema_version(&old), Some(4));
    // Kept in step where it was the store's.
    assert_eq!(user_version(&old), 4);
    // And it keeps what version 3 keeps.
    let (b, summary) = with_placeholders(&s);
    store.save("contacts", &b, &summary).unwrap();
    assert_same(&store.load("contacts").unwrap(), &b);
}

/// A summary names what one commit changed. Saved on top of any other
/// revision than the one that commit started from, it would leave rows of
/// two baselines; the store writes the whole baseline instead.
#[test]
fn a_save_on_top_of_another_revision_writes_the_whole_baseline() {
    let dir = temp_dir("sqlite-revisions");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(6);
    // A third commit that changes nothing: its summary names no entity.
    let mut third = s.held.clone();
    let plan = s.engine.plan(&third, &[]).unwrap();
    let third_summary = s
        .engine
        .commit(&mut third, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    assert_eq!(third.revision(), s.held.revision() + 1);
    assert!(third_summary.touched.is_empty() && third_summary.removed.is_empty());
    let c2 = recsync::EntityId::new("crm:c2");
    assert_ne!(s.first.export(&c2), s.held.export(&c2));

    // The second commit's save was skipped: the database is two behind.
    let store = open(&db).unwrap();
    store.save("contacts", &s.first, &s.first_summary).unwrap();
    store.save("contacts", &third, &third_summary).unwrap();
    assert_same(&store.load("contacts").unwrap(), &third);

    // Another writer saved a later revision, with entities this baseline
    // does not have: this save wins whole.
    let other = synced(8);
    assert_eq!(other.held.revision(), s.first.revision() + 1);
    store.replace("contacts", &other.held).unwrap();
    store.save("contacts", &s.first, &s.first_summary).unwrap();
    assert_same(&store.load("contacts").unwrap(), &s.first);
    assert_eq!(rows(&db).len(), s.first.len());

    // No revision stored yet: the whole baseline, whatever the summary.
    let fresh = open(dir.join("fresh.db")).unwrap();
    fresh
        .save("contacts", &s.held, &CommitSummary::default())
        .unwrap();
    assert_same(&fresh.load("contacts").unwrap(), &s.held);

    // The same revision again (a review decision, a retried save): only
    // the named rows are written. A row taken away behind the store's back
    // stays away, which a whole write would have put back.
    store.replace("contacts", &third).unwrap();
    Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM recsync_entities WHERE id = 'crm:c3'", [])
        .unwrap();
    store.save("contacts", &third, &third_summary).unwrap();
    assert!(!rows(&db).contains_key("crm:c3"));
    assert_eq!(rows(&db).len(), third.len() - 1);
}

#[test]
fn an_aborted_transaction_leaves_the_last_complete_state() {
    let dir = temp_dir("sqlite-aborted");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(5);
    open(&db)
        .unwrap()
        .save("contacts", &s.first, &s.first_summary)
        .unwrap();
    {
        // A commit killed half way: the header and some rows written, the
        // transaction never committed.
        let mut conn = Connection::open(&db).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute(
            "UPDATE recsync_objects SET revision = 99, cursors = '{\"crm\":\"lost\"}'",
            [],
        )
        .unwrap();
        tx.execute("UPDATE recsync_entities SET record = x'00'", [])
            .unwrap();
        tx.execute(
            "INSERT INTO recsync_entities (object, id, record) VALUES (1, 'crm:c99', x'00')",
            [],
        )
        .unwrap();
        drop(tx);
    }
    let store = open(&db).unwrap();
    let back = store.load("contacts").unwrap();
    assert_same(&back, &s.first);
    assert_eq!(back.cursor("crm"), Some("crm-cursor-1"));
}

/// A save that fails half way (here: a trigger refuses the second entity)
/// keeps nothing of it: neither the entity written before the failure nor
/// the new cursors.
#[test]
fn cursors_are_saved_atomically_with_the_entities() {
    let dir = temp_dir("sqlite-atomic");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(5);
    let store = open(&db).unwrap();
    store.save("contacts", &s.first, &s.first_summary).unwrap();
    let mut touched = s.held_summary.touched.clone();
    touched.sort();
    assert!(touched.len() >= 2, "{touched:?}");
    let last = touched.last().unwrap().to_string();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE UPDATE ON recsync_entities WHEN NEW.id = '{last}'
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;"
        ))
        .unwrap();
    }
    let mut summary = CommitSummary::default();
    summary.touched.extend(touched);
    let err = store.save("contacts", &s.held, &summary).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend { message, .. } if message.contains(&last)),
        "{err}"
    );
    let back = store.load("contacts").unwrap();
    assert_same(&back, &s.first);
    assert_eq!(back.cursor("crm"), Some("crm-cursor-1"));

    sql(&db, "DROP TRIGGER refuse");
    store.save("contacts", &s.held, &summary).unwrap();
    let back = store.load("contacts").unwrap();
    assert_same(&back, &s.held);
    assert_eq!(back.cursor("crm"), Some("crm-cursor-2"));
}

const CRASH_DB: &str = "RECSYNC_TEST_CRASH_DB";

/// Run by [`a_process_killed_mid_commit_leaves_the_last_complete_state`]
/// in a child process: writes half a commit, large enough that SQLite
/// spills it into the write-ahead log, then dies without committing.
#[test]
#[ignore = "run as a child process by a_process_killed_mid_commit_leaves_the_last_complete_state"]
fn crash_child() {
    let Some(db) = std::env::var_os(CRASH_DB) else {
        return;
    };
    let mut conn = Connection::open(db).unwrap();
    // A tiny page cache: dirty pages go to the log before the commit.
    conn.execute_batch("PRAGMA cache_size = 8").unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute(
        "UPDATE recsync_objects SET revision = 99, cursors = '{\"crm\":\"lost\"}'",
        [],
    )
    .unwrap();
    let junk = vec![b'x'; 2000];
    for i in 0..2000 {
        tx.execute(
            "INSERT INTO recsync_entities (object, id, record) VALUES (1, ?1, ?2)
             ON CONFLICT (object, id) DO UPDATE SET record = excluded.record",
            params![format!("crm:c{}", i % 50), &junk],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO recsync_entities (object, id, record) VALUES (1, ?1, ?2)",
            params![format!("junk:{i}"), &junk],
        )
        .unwrap();
    }
    std::process::abort();
}

#[test]
fn a_process_killed_mid_commit_leaves_the_last_complete_state() {
    let dir = temp_dir("sqlite-killed");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(50);
    open(&db)
        .unwrap()
        .save("contacts", &s.first, &s.first_summary)
        .unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            &child_test("crash_child"),
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CRASH_DB, &db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have died");
    // The half commit reached the disk: the log holds its pages.
    let wal = dir.join("state.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(wal_len > 100_000, "log is {wal_len} bytes");

    let store = open(&db).unwrap();
    let back = store.load("contacts").unwrap();
    assert_same(&back, &s.first);
    assert_eq!(back.cursor("crm"), Some("crm-cursor-1"));
    // And the store goes on from there.
    store.save("contacts", &s.held, &s.held_summary).unwrap();
    assert_same(&store.load("contacts").unwrap(), &s.held);
}

#[cfg(unix)]
#[test]
fn the_database_is_owner_only() {
    let dir = temp_dir("sqlite-mode");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state").join("state.db");
    let store = open(&db).unwrap();
    let s = synced(3);
    store.replace("contacts", &s.held).unwrap();
    assert_eq!(mode(&dir.join("state")), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&dir.join("state").join("state.db-wal")), 0o600);
}

#[test]
fn a_corrupt_row_names_the_object_the_entity_and_where() {
    let dir = temp_dir("sqlite-corrupt");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(3);
    let store = open(&db).unwrap();
    store.replace("contacts", &s.held).unwrap();
    let id = s.held.entities().next().unwrap().id().to_string();
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE recsync_entities SET record = CAST('{\"id\": \"x\",' AS BLOB) WHERE id = ?1",
            params![id],
        )
        .unwrap();
    let err = store.load("contacts").unwrap_err();
    let StoreError::Damaged {
        object,
        path,
        place,
        check,
    } = &err
    else {
        panic!("expected a damaged state error, got {err:?}");
    };
    assert_eq!(object.as_deref(), Some("contacts"));
    assert_eq!(path, &db);
    assert_eq!(
        place,
        &Place::Row {
            entity: recsync::EntityId::new(id.clone())
        }
    );
    assert_eq!(check, &Check::RowChecksum);
    assert!(
        err.to_string().ends_with(&format!(
            "is damaged (row of entity {id}): the row does not match its checksum"
        )),
        "{err}"
    );
}

/// The journal of `object`: every entry, in the order saved.
fn listed(store: &SqliteStore, object: &str) -> Vec<JournalEntry> {
    store.journal(object, &JournalQuery::all()).unwrap()
}

/// A database of schema version 3 (before the journal) gets the journal's
/// table on open, empty; its objects load as before and their next saves
/// keep journals.
#[test]
fn a_database_of_schema_version_3_gets_the_journal() {
    let dir = temp_dir("sqlite-v3");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(4);
    open(&db).unwrap().replace("contacts", &s.first).unwrap();
    // What version 3 left: no journal table, version 3 recorded.
    let v3 = if by_path() {
        "DROP TABLE recsync_journal; UPDATE recsync_schema SET version = 3;
         PRAGMA user_version = 3;"
    } else {
        "DROP TABLE recsync_journal; UPDATE recsync_schema SET version = 3;"
    };
    sql(&db, v3);
    assert!(!tables(&db).iter().any(|t| t == "recsync_journal"));
    let store = open(&db).unwrap();
    assert_eq!(schema_version(&db), Some(4));
    assert!(tables(&db).iter().any(|t| t == "recsync_journal"));
    assert_same(&store.load("contacts").unwrap(), &s.first);
    assert!(listed(&store, "contacts").is_empty());
    let run = vec![
        entry(2, hour(2), "crm", "c1", 2),
        entry(2, hour(2), "mkt", "m1", 1),
    ];
    let summary = with_journal(&s.held_summary, batch(2, hour(2), &run, Retention::runs(3)));
    store.save("contacts", &s.held, &summary).unwrap();
    assert_same(&store.load("contacts").unwrap(), &s.held);
    assert_eq!(listed(&store, "contacts"), run);
}

/// The journal is written in the save's transaction: a save that fails,
/// at its journal or at its entities, leaves neither the baseline nor the
/// journal entries.
#[test]
fn a_failed_save_writes_no_journal_entries() {
    let dir = temp_dir("sqlite-journal-tx");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(4);
    let store = open(&db).unwrap();
    let first = vec![entry(1, hour(1), "crm", "c1", 1)];
    let summary = with_journal(
        &s.first_summary,
        batch(1, hour(1), &first, Retention::runs(3)),
    );
    store.save("contacts", &s.first, &summary).unwrap();
    let run = vec![
        entry(2, hour(2), "crm", "c1", 2),
        entry(2, hour(2), "crm", "c2", 1),
    ];
    let held = with_journal(&s.held_summary, batch(2, hour(2), &run, Retention::runs(1)));
    // The second entry's row is refused.
    sql(
        &db,
        "CREATE TRIGGER refuse BEFORE INSERT ON recsync_journal WHEN NEW.record_id = 'c2'
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
    );
    let err = store.save("contacts", &s.held, &held).unwrap_err();
    assert!(
        err.to_string().contains("cannot write the journal"),
        "{err}"
    );
    assert_same(&store.load("contacts").unwrap(), &s.first);
    assert_eq!(listed(&store, "contacts"), first);
    // An entity's row is refused (the journal would come after).
    sql(
        &db,
        "DROP TRIGGER refuse;
         CREATE TRIGGER refuse BEFORE UPDATE ON recsync_entities
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
    );
    let err = store.save("contacts", &s.held, &held).unwrap_err();
    assert!(err.to_string().contains("cannot write entity"), "{err}");
    assert_same(&store.load("contacts").unwrap(), &s.first);
    assert_eq!(listed(&store, "contacts"), first);
    sql(&db, "DROP TRIGGER refuse");
    // A run id past what SQLite's integers hold: refused, not wrapped.
    let huge = vec![entry(u64::MAX, hour(2), "crm", "c1", 1)];
    let too_big = with_journal(
        &s.held_summary,
        batch(2, hour(2), &huge, Retention::runs(3)),
    );
    let err = store.save("contacts", &s.held, &too_big).unwrap_err();
    assert!(
        err.to_string()
            .contains("run 18446744073709551615 of contacts does not fit the database"),
        "{err}"
    );
    assert_same(&store.load("contacts").unwrap(), &s.first);
    assert_eq!(listed(&store, "contacts"), first);
    store.save("contacts", &s.held, &held).unwrap();
    assert_same(&store.load("contacts").unwrap(), &s.held);
    assert_eq!(
        listed(&store, "contacts"),
        run,
        "run 1 dropped: one run kept"
    );
}

/// A journal row that is not an entry is refused, naming the row, never
/// what it holds.
#[test]
fn a_damaged_journal_row_is_refused_naming_the_row() {
    let dir = temp_dir("sqlite-journal-damage");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(3);
    let store = open(&db).unwrap();
    let run = vec![
        entry(1, hour(1), "crm", "c1", 1),
        entry(1, hour(1), "crm", "c2", 1),
    ];
    let summary = with_journal(
        &s.first_summary,
        batch(1, hour(1), &run, Retention::runs(3)),
    );
    store.save("contacts", &s.first, &summary).unwrap();
    let seq: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT seq FROM recsync_journal WHERE record_id = 'c2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    sql(
        &db,
        "UPDATE recsync_journal SET entry = replace(entry, '\"new 0\"', 'new 0\"')
         WHERE record_id = 'c2'",
    );
    let err = store.journal("contacts", &JournalQuery::all()).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Damaged {
                object: Some(o),
                path,
                place: Place::JournalRow { row },
                check: Check::JournalEntry,
            } if o == "contacts" && path.ends_with("state.db") && *row == seq
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("(journal row {seq}): it is not a journal entry")),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("new 0"), "{err:?}");
    // The record's other entries, and other records', still list.
    assert_eq!(
        store
            .journal("contacts", &JournalQuery::record("crm", "c1"))
            .unwrap(),
        run[..1]
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = temp_dir("sqlite-schema");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    drop(open(&db).unwrap());
    assert_eq!(schema_version(&db), Some(4));
    let refused = |found: u64| {
        let err = open(&db).unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Format {
                    object: None,
                    found: f,
                    supported: 4,
                    ..
                } if *f == found
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&format!("format version {found}")),
            "{err}"
        );
    };
    // The version, in the store's own table.
    sql(&db, "UPDATE recsync_schema SET version = 7");
    refused(7);
    // A database made before that table kept it in `user_version`.
    sql(&db, "DROP TABLE recsync_schema; PRAGMA user_version = 8");
    refused(8);
}

/// A schema version below 1 is one no recsync records: a damaged version
/// (in the store's table, or in `user_version` of a database made before
/// the table), refused as damaged, naming the file and the value, not as
/// an older format to take over, and not taken for an empty database whose
/// schema is created (which would record the current version over tables
/// of any layout). The database is left as it was.
#[test]
fn a_schema_version_below_1_is_damaged() {
    let dir = temp_dir("sqlite-version-below-1");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(3);
    open(&db).unwrap().replace("contacts", &s.held).unwrap();
    let damaged = |found: i64| {
        let before = tables(&db);
        let err = open(&db).unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Damaged {
                    object: None,
                    path,
                    place: Place::SchemaVersion { found: f },
                    check: Check::Layout,
                } if path == &db && *f == found
            ),
            "{err:?}"
        );
        let shown = err.to_string();
        assert_eq!(
            shown,
            format!(
                "stored state in {} is damaged (schema version {found}): \
                 not laid out as a state file",
                db.display()
            )
        );
        assert!(!shown.contains("upgrade_legacy"), "{shown}");
        assert_eq!(tables(&db), before);
    };
    for found in [-1, 0, i64::MIN] {
        Connection::open(&db)
            .unwrap()
            .execute("UPDATE recsync_schema SET version = ?1", params![found])
            .unwrap();
        damaged(found);
        assert_eq!(schema_version(&db), Some(found));
    }
    // In `user_version`, where a database made before the table kept it.
    sql(&db, "DROP TABLE recsync_schema");
    for found in [-1, 0] {
        sql(&db, &format!("PRAGMA user_version = {found}"));
        damaged(found);
        assert_eq!(user_version(&db), found);
    }
}

/// The store's tables dropped under a schema version that says they are
/// there: refused as damaged when the store opens, naming the tables
/// missing, not a backend error at every load. Nothing is created.
#[test]
fn the_stores_tables_missing_are_damaged() {
    let dir = temp_dir("sqlite-tables-missing");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(3);
    open(&db).unwrap().replace("contacts", &s.held).unwrap();
    let missing = |gone: &[&str]| {
        let err = open(&db).unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Damaged {
                    object: None,
                    path,
                    place: Place::Tables { missing },
                    check: Check::Layout,
                } if path == &db && missing == gone
            ),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(shown.contains(&db.display().to_string()), "{shown}");
        for table in gone {
            assert!(shown.contains(table), "{shown}");
            assert!(!tables(&db).iter().any(|t| t == table));
        }
    };
    sql(&db, "DROP TABLE recsync_journal");
    missing(&["recsync_journal"]);
    sql(&db, "DROP TABLE recsync_entities");
    missing(&["recsync_entities", "recsync_journal"]);
    sql(&db, "DROP TABLE recsync_objects");
    missing(&["recsync_objects", "recsync_entities", "recsync_journal"]);
    // At an older version (before the journal), before its migration
    // could fail on them.
    sql(&db, "UPDATE recsync_schema SET version = 2");
    missing(&["recsync_objects", "recsync_entities"]);
    // Without the version table, entity rows alone.
    sql(
        &db,
        "DROP TABLE recsync_schema;
             CREATE TABLE recsync_entities (object INTEGER NOT NULL, id TEXT NOT NULL,
                record BLOB NOT NULL, checksum INTEGER, PRIMARY KEY (object, id));",
    );
    missing(&["recsync_objects"]);
    // All of them gone: an empty database again, set up afresh.
    sql(&db, "DROP TABLE recsync_entities");
    let store = open(&db).unwrap();
    assert_eq!(store.load("contacts").unwrap(), Baseline::new());
    assert_eq!(schema_version(&db), Some(4));
}

/// A file the store opened by path is the store's: its `user_version`
/// holds the schema version too, so a recsync from before the version
/// table (which reads only `user_version`) refuses a database of a later
/// schema instead of taking it for an empty one. A database handed over
/// by the host keeps the host's `user_version`.
#[test]
fn user_version_is_kept_in_step_in_the_stores_own_file() {
    let dir = temp_dir("sqlite-user-version");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(3);
    let store = open(&db).unwrap();
    let expected = if by_path() { 4 } else { 0 };
    assert_eq!(user_version(&db), expected);
    store.replace("contacts", &s.held).unwrap();
    drop(store);
    assert_eq!(user_version(&db), expected);
    // A database made by a store that left it at 0 has it set on open.
    sql(&db, "PRAGMA user_version = 0");
    assert_same(&open(&db).unwrap().load("contacts").unwrap(), &s.held);
    assert_eq!(user_version(&db), expected);
    assert_eq!(schema_version(&db), Some(4));
}

/// A database the store made before its schema version had a table kept
/// it in `user_version`: the store takes it from there, records it in its
/// table and keeps `user_version` in step (an older recsync reads it
/// there). Once the table holds it, `user_version` is not read; it is the
/// host's in a database the host handed over, and in a file opened by path
/// a value above the schema version (not one the store wrote) is left too.
#[test]
fn a_database_made_before_the_version_table_opens_and_user_version_is_left_alone_after() {
    let dir = temp_dir("sqlite-version-table");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(4);
    open(&db).unwrap().replace("contacts", &s.held).unwrap();
    // Made at version 3, before the journal too.
    sql(
        &db,
        "DROP TABLE recsync_schema; DROP TABLE recsync_journal; PRAGMA user_version = 3",
    );
    assert_eq!(schema_version(&db), None);
    assert_same(&open(&db).unwrap().load("contacts").unwrap(), &s.held);
    assert_eq!(schema_version(&db), Some(4));
    assert_eq!(user_version(&db), 4);
    assert!(tables(&db).iter().any(|t| t == "recsync_journal"));
    // Not the store's version (above it): neither read nor written.
    sql(&db, "PRAGMA user_version = 42");
    let store = open(&db).unwrap();
    store.save("contacts", &s.held, &s.held_summary).unwrap();
    assert_same(&store.load("contacts").unwrap(), &s.held);
    assert_eq!(user_version(&db), 42);
    assert_eq!(schema_version(&db), Some(4));
}

/// Saves of thousands of entities serialize on a second thread while the
/// first writes: still one transaction, rows for ids the baseline lacks
/// still deleted, a failure late in the save still keeps nothing.
#[test]
fn large_saves_are_one_transaction_too() {
    let dir = temp_dir("sqlite-large");
    let _c = Cleanup(dir.clone());
    let db = dir.join("state.db");
    let s = synced(3000);
    assert!(s.first_summary.touched.len() >= 3000);
    let store = open(&db).unwrap();
    store.save("contacts", &s.first, &s.first_summary).unwrap();
    assert_same(&store.load("contacts").unwrap(), &s.first);

    // A row the baseline no longer has, named among thousands.
    Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO recsync_entities (object, id, record) VALUES (1, 'crm:ghost', x'00')",
            [],
        )
        .unwrap();
    let mut summary = CommitSummary::default();
    summary
        .touched
        .extend(s.held.entities().map(|e| e.id().clone()));
    summary
        .touched
        .insert(1500, recsync::EntityId::new("crm:ghost"));
    let last = summary.touched.last().unwrap().to_string();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE UPDATE ON recsync_entities WHEN NEW.id = '{last}'
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;"
        ))
        .unwrap();
    }
    let err = store.save("contacts", &s.held, &summary).unwrap_err();
    assert!(err.to_string().contains("cannot write entity"), "{err}");
    assert!(rows(&db).contains_key("crm:ghost"));
    let back = store.load("contacts");
    assert!(back.is_err(), "the ghost row is still there, unreadable");

    sql(&db, "DROP TRIGGER refuse");
    store.save("contacts", &s.held, &summary).unwrap();
    assert!(!rows(&db).contains_key("crm:ghost"));
    let back = store.load("contacts").unwrap();
    assert_same(&back, &s.held);
    assert_eq!(back.cursor("crm"), Some("crm-cursor-2"));
}

//! The SQLite store on real database files: every case of
//! `sqlite_cases.rs` on a store opened by path and on one made from a
//! connection the host opened, then what only a host's connection has (the
//! host's own tables beside the store's, a database in memory).

use std::path::Path;

use recsync::store::SqliteStore;
use rusqlite::Connection;

use super::*;

/// The cases on a store opened by path, which creates the file and its
/// directory. (One file, two modules, on purpose.)
#[allow(clippy::duplicate_mod)]
#[path = "sqlite_cases.rs"]
mod by_path;

/// The cases on a store made from a connection the host opened on the
/// file, after making the directory owner-only (rusqlite creates the file).
#[allow(clippy::duplicate_mod)]
#[path = "sqlite_cases.rs"]
mod host_file;

/// The store of the database file `db` for the cases in `module`, made as
/// the module's name says.
fn open_for(module: &str, db: &Path) -> Result<SqliteStore, StoreError> {
    match module.rsplit("::").next() {
        Some("by_path") => SqliteStore::open(db),
        Some("host_file") => {
            if let Some(dir) = db.parent() {
                owner_only_dir(dir);
            }
            SqliteStore::from_connection(Connection::open(db).unwrap())
        }
        _ => panic!("no way to make a store for {module}"),
    }
}

/// Whether the cases in `module` open their store by path.
fn made_by_path(module: &str) -> bool {
    module.rsplit("::").next() == Some("by_path")
}

/// Creates `dir` and its parents, owner-only on unix.
fn owner_only_dir(dir: &Path) {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).unwrap();
}

/// What only a connection the host opened has.
mod host {
    use super::*;

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn text(conn: &Connection, sql: &str) -> String {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The host keeps its tables, its rows and its `user_version` in the
    /// file it shares with the store, and goes on using them through a
    /// connection of its own while the store saves through another.
    #[test]
    fn the_hosts_tables_live_beside_the_stores_in_one_file() {
        let dir = temp_dir("sqlite-host-tables");
        let _c = Cleanup(dir.clone());
        owner_only_dir(&dir);
        let db = dir.join("app.db");
        let host = Connection::open(&db).unwrap();
        // A host schema at its own version 42: the store must neither take
        // it for a newer schema of its own nor write over it.
        host.execute_batch(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
             INSERT INTO invoices (total) VALUES (10), (20);
             PRAGMA user_version = 42;",
        )
        .unwrap();

        let theirs = Connection::open(&db).unwrap();
        // As `Connection::busy_timeout` sets it, which rusqlite 0.41 and
        // newer make call `sqlite3_set_clientdata` (SQLite 3.44): the
        // pragma links with every rusqlite and SQLite the store accepts.
        let ms: i64 = theirs
            .query_row("PRAGMA busy_timeout = 100", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ms, 100);
        let store = SqliteStore::from_connection(theirs).unwrap();
        assert_eq!(
            store.path().map(Path::to_path_buf),
            Some(std::fs::canonicalize(&db).unwrap())
        );
        let s = synced(5);
        store.save("contacts", &s.first, &s.first_summary).unwrap();
        host.execute("INSERT INTO invoices (total) VALUES (30)", [])
            .unwrap();
        store.save("contacts", &s.held, &s.held_summary).unwrap();

        // A read of the host's, open across a save: the write-ahead log
        // lets both go on, and the host's read sees one state throughout.
        host.execute_batch("BEGIN").unwrap();
        assert_eq!(count(&host, "SELECT count(*) FROM invoices"), 3);
        store.replace("deals", &s.first).unwrap();
        assert_eq!(count(&host, "SELECT count(*) FROM recsync_objects"), 1);
        host.execute_batch("COMMIT").unwrap();
        assert_eq!(count(&host, "SELECT count(*) FROM recsync_objects"), 2);

        // A write of the host's, open across a save: the save waits for
        // the busy timeout, then fails and saves nothing; loads go on.
        host.execute_batch("BEGIN IMMEDIATE; INSERT INTO invoices (total) VALUES (40);")
            .unwrap();
        let err = store.replace("deals", &s.held).unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend { message, .. } if message.contains("transaction")),
            "{err:?}"
        );
        assert_same(&store.load("deals").unwrap(), &s.first);
        host.execute_batch("COMMIT").unwrap();
        store.replace("deals", &s.held).unwrap();
        assert_same(&store.load("deals").unwrap(), &s.held);

        // Each side's data, as the other left it.
        assert_eq!(count(&host, "SELECT sum(total) FROM invoices"), 100);
        assert_eq!(count(&host, "PRAGMA user_version"), 42);
        assert_eq!(text(&host, "PRAGMA journal_mode"), "wal");
        let mut tables: Vec<String> = host
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        tables.retain(|t| !t.starts_with("sqlite_"));
        assert_eq!(
            tables,
            [
                "invoices",
                "recsync_entities",
                "recsync_journal",
                "recsync_objects",
                "recsync_schema"
            ]
        );
        drop(store);
        // The same state through a new connection of the host's, and
        // through `open` by path.
        let again = SqliteStore::from_connection(Connection::open(&db).unwrap()).unwrap();
        assert_same(&again.load("contacts").unwrap(), &s.held);
        drop(again);
        let by_path = SqliteStore::open(&db).unwrap();
        assert_same(&by_path.load("contacts").unwrap(), &s.held);
        assert_same(&by_path.load("deals").unwrap(), &s.held);
        assert_eq!(count(&host, "PRAGMA user_version"), 42);
        assert_eq!(count(&host, "SELECT count(*) FROM invoices"), 4);
    }

    /// A database in memory (or a temporary one) has no file: the store
    /// keeps baselines there for the connection's life.
    #[test]
    fn a_database_in_memory_or_temporary_holds_baselines() {
        let s = synced(6);
        for conn in [
            Connection::open_in_memory().unwrap(),
            Connection::open("").unwrap(),
        ] {
            let store = SqliteStore::from_connection(conn).unwrap();
            assert_eq!(store.path(), None);
            assert_eq!(store.load("contacts").unwrap(), Baseline::new());
            store.save("contacts", &s.first, &s.first_summary).unwrap();
            store.save("contacts", &s.held, &s.held_summary).unwrap();
            store.set_durable(true).unwrap();
            store.replace("deals", &s.first).unwrap();
            assert_eq!(store.objects().unwrap(), ["contacts", "deals"]);
            let back = store.load("contacts").unwrap();
            assert_same(&back, &s.held);
            assert_eq!(back.cursor("crm"), Some("crm-cursor-2"));
            assert_same(&store.load("deals").unwrap(), &s.first);
            let (b, summary) = with_placeholders(&s);
            store.save("contacts", &b, &summary).unwrap();
            assert_same(&store.load("contacts").unwrap(), &b);
        }
    }

    /// Errors name a database without a file `:memory:`.
    #[test]
    fn errors_name_a_database_in_memory() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE recsync_schema (only INTEGER PRIMARY KEY, version INTEGER NOT NULL);
             INSERT INTO recsync_schema VALUES (1, 9);",
        )
        .unwrap();
        let err = SqliteStore::from_connection(conn).unwrap_err();
        assert!(
            matches!(&err, StoreError::Format { path, found: 9, .. } if path == Path::new(":memory:")),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("stored state in :memory: has format version 9"),
            "{err}"
        );
    }

    #[test]
    fn a_connection_with_a_transaction_open_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("BEGIN; CREATE TABLE t (x);").unwrap();
        let err = SqliteStore::from_connection(conn).unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend { message, .. } if message.contains("has a transaction open")),
            "{err:?}"
        );
    }

    /// A read-only connection to a database the store has set up loads;
    /// its saves fail and change nothing.
    #[test]
    fn a_read_only_connection_loads_and_its_saves_fail() {
        let dir = temp_dir("sqlite-host-read-only");
        let _c = Cleanup(dir.clone());
        owner_only_dir(&dir);
        let db = dir.join("app.db");
        let s = synced(4);
        let writer = SqliteStore::from_connection(Connection::open(&db).unwrap()).unwrap();
        writer.replace("contacts", &s.first).unwrap();
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let reader =
            SqliteStore::from_connection(Connection::open_with_flags(&db, flags).unwrap()).unwrap();
        assert_same(&reader.load("contacts").unwrap(), &s.first);
        let err = reader.replace("contacts", &s.held).unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        assert_same(&writer.load("contacts").unwrap(), &s.first);
        // Read-only before the store set the database up: refused.
        let fresh = dir.join("fresh.db");
        drop(Connection::open(&fresh).unwrap());
        let err = SqliteStore::from_connection(Connection::open_with_flags(&fresh, flags).unwrap())
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    }

    /// The host's database file (and its log) hold personal data once the
    /// store writes there: made owner-only. Its directory is the host's:
    /// neither refused nor changed, as `open` would refuse it.
    #[cfg(unix)]
    #[test]
    fn the_hosts_database_file_is_made_owner_only_and_its_directory_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let dir = temp_dir("sqlite-host-mode");
        let _c = Cleanup(dir.clone());
        std::fs::create_dir(&dir).unwrap();
        set(&dir, 0o755);
        let db = dir.join("app.db");
        let host = Connection::open(&db).unwrap();
        host.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE notes (x); INSERT INTO notes VALUES (1);",
        )
        .unwrap();
        let wal = dir.join("app.db-wal");
        let shm = dir.join("app.db-shm");
        for file in [&db, &wal, &shm] {
            set(file, 0o644);
        }
        let store = SqliteStore::from_connection(Connection::open(&db).unwrap()).unwrap();
        // Before the first save writes personal data.
        for file in [&db, &wal, &shm] {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        store.replace("contacts", &synced(3).held).unwrap();
        for file in [&db, &wal, &shm] {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(&dir), 0o755);
        assert_eq!(count(&host, "SELECT count(*) FROM notes"), 1);
        assert_eq!(count(&host, "PRAGMA user_version"), 0);
        drop(store);
        assert!(matches!(
            SqliteStore::open(&db),
            Err(StoreError::Permissions {
                directory: true,
                ..
            })
        ));
    }

    /// A database the store refuses is left as the host had it,
    /// permissions included: they are the store's to change only once it
    /// keeps data there.
    #[cfg(unix)]
    #[test]
    fn a_refused_database_keeps_the_hosts_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let dir = temp_dir("sqlite-host-refused-mode");
        let _c = Cleanup(dir.clone());
        owner_only_dir(&dir);
        for (name, version) in [("newer.db", 9), ("damaged.db", -1)] {
            let db = dir.join(name);
            let host = Connection::open(&db).unwrap();
            host.execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE recsync_schema (only INTEGER PRIMARY KEY, version INTEGER NOT NULL);
                 INSERT INTO recsync_schema VALUES (1, {version});"
            ))
            .unwrap();
            let files = [
                db.clone(),
                dir.join(format!("{name}-wal")),
                dir.join(format!("{name}-shm")),
            ];
            for file in &files {
                set(file, 0o644);
            }
            let err = SqliteStore::from_connection(Connection::open(&db).unwrap()).unwrap_err();
            assert!(
                matches!(
                    (&err, version),
                    (StoreError::Format { found: 9, .. }, 9)
                        | (
                            StoreError::Damaged {
                                place: Place::SchemaVersion { found: -1 },
                                ..
                            },
                            -1
                        )
                ),
                "{err:?}"
            );
            for file in &files {
                assert_eq!(mode(file), 0o644, "{}", file.display());
            }
        }
    }
}

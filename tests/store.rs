//! State stores on real files: the JSON file store, the SQLite store
//! (feature `sqlite`; by path, and from a connection the host opened, on
//! a file or in memory) and the review queue over each; one suite for
//! every store (store/suite.rs), and the PostgreSQL store on a real
//! server (feature `postgres`, store/postgres.rs: `RECSYNC_POSTGRES_URL`).

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use recsync::baseline::Review;
use recsync::journal::{JournalBatch, JournalEntry, JournalQuery, Retention, RunId};
use recsync::store::{Check, JsonFileStore, Place, ReviewItem, ReviewQueue};
use recsync::{
    Baseline, CommitSummary, ConflictPolicy, Field, FieldMap, MemoryStore, Outcomes, Record,
    ReviewChoice, Snapshot, StateStore, StoreError, SyncEngine,
};
use serde_json::json;

// ----- fixture: a baseline with cursors, a held conflict and a held delete

fn engine() -> SyncEngine {
    SyncEngine::new(
        FieldMap::builder()
            .object("contacts")
            .systems(["crm", "mkt"])
            .key("email")
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name"))
            .field(Field::new("amount").policy(ConflictPolicy::ManualReview))
            .build()
            .unwrap(),
    )
}

fn contact(id: &str, n: u32, amount: i64) -> Record {
    Record::new(id)
        .field("email", format!("p{n}@example.com"))
        .field("name", format!("Person {n}"))
        .field("amount", amount)
}

fn crm(n: u32) -> Record {
    contact(&format!("c{n}"), n, 100)
}

fn mkt(n: u32) -> Record {
    contact(&format!("m{n}"), n, 100)
}

/// Snapshots after the edits: contact 1's amount changed in both systems
/// (a conflict for review), contact 2 deleted in crm (a held delete).
fn edited(count: u32) -> Vec<Snapshot> {
    let crm_records = (1..=count)
        .filter(|n| *n != 2)
        .map(|n| {
            if n == 1 {
                contact("c1", 1, 120)
            } else {
                crm(n)
            }
        })
        .collect();
    let mkt_records = (1..=count)
        .map(|n| {
            if n == 1 {
                contact("m1", 1, 130)
            } else {
                mkt(n)
            }
        })
        .collect();
    vec![
        Snapshot::complete("crm", crm_records),
        Snapshot::complete("mkt", mkt_records),
    ]
}

struct Synced {
    engine: SyncEngine,
    /// After the first sync.
    first: Baseline,
    first_summary: CommitSummary,
    /// After the edits: a conflict and a delete held.
    held: Baseline,
    held_summary: CommitSummary,
}

fn synced(count: u32) -> Synced {
    let engine = engine();
    let mut b = Baseline::new();
    let snaps = [
        Snapshot::complete("crm", (1..=count).map(crm).collect()),
        Snapshot::complete("mkt", (1..=count).map(mkt).collect()),
    ];
    let plan = engine.plan(&b, &snaps).unwrap();
    let first_summary = engine
        .commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    b.set_cursor("crm", "crm-cursor-1");
    b.set_cursor("mkt", "mkt-cursor-1");
    assert_eq!(b.len(), count as usize);
    let first = b.clone();

    let plan = engine.plan(&b, &edited(count)).unwrap();
    assert_eq!(plan.conflicts.len(), 1, "{plan}");
    let held_summary = engine
        .commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    b.set_cursor("crm", "crm-cursor-2");
    let reviews = b.reviews();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    assert!(reviews.iter().any(|r| matches!(r, Review::Field(_))));
    assert!(reviews.iter().any(|r| matches!(r, Review::Delete(_))));
    Synced {
        engine,
        first,
        first_summary,
        held: b,
        held_summary,
    }
}

/// `s.held` after one more commit: a partial read of crm shows two new
/// records sharing a placeholder email, held back as ambiguous, which the
/// baseline remembers in its header.
fn with_placeholders(s: &Synced) -> (Baseline, CommitSummary) {
    let mut b = s.held.clone();
    let placeholder = |id: &str| {
        Record::new(id)
            .field("email", "noemail@example.com")
            .field("name", "Someone")
            .field("amount", 1)
    };
    let plan = s
        .engine
        .plan(
            &b,
            &[Snapshot::partial(
                "crm",
                vec![placeholder("c900"), placeholder("c901")],
            )],
        )
        .unwrap();
    assert!(plan.ops.is_empty(), "{plan}");
    let summary = s
        .engine
        .commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    assert!(summary.ambiguous);
    assert_eq!(b.header().ambiguous.len(), 2);
    (b, summary)
}

// ----- journal entries and batches, built from their JSON (serde is their
// public form outside the crate)

/// A time `hours` after a fixed start.
fn hour(hours: i64) -> DateTime<Utc> {
    "2031-03-04T05:06:07Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::hours(hours)
}

/// A journal entry of `run` at `at`: an update of `fields` fields of
/// `record` in `system` (values `"old <n>"` to `"new <n>"`).
fn entry(run: u64, at: DateTime<Utc>, system: &str, record: &str, fields: usize) -> JournalEntry {
    use std::hash::{Hash, Hasher};
    // The op's id from what the entry writes: the same entry twice is equal.
    let mut op = std::collections::hash_map::DefaultHasher::new();
    (run, system, record, fields).hash(&mut op);
    let fields: Vec<_> = (0..fields)
        .map(|f| {
            json!({
                "field": format!("f{f}"),
                "native": format!("F{f}"),
                "before": format!("old {f}"),
                "after": format!("new {f}"),
                "reason": {"why": "changed", "system": "mkt"},
            })
        })
        .collect();
    serde_json::from_value(json!({
        "run": run,
        "at": at,
        "op": format!("{:016x}", op.finish()),
        "kind": "update",
        "object": "contacts",
        "system": system,
        "record_id": record,
        "entity": format!("{system}:{record}"),
        "fields": fields,
    }))
    .unwrap_or_else(|e| panic!("not an entry: {e}"))
}

/// The journal batch of run `run`, committed at `at`.
fn batch(
    run: u64,
    at: DateTime<Utc>,
    entries: &[JournalEntry],
    retention: Retention,
) -> JournalBatch {
    serde_json::from_value(json!({
        "run": run,
        "at": at,
        "entries": entries,
        "retention": retention,
    }))
    .unwrap_or_else(|e| panic!("not a batch: {e}"))
}

/// `summary` carrying `batch`, as the runner hands it to a store.
fn with_journal(summary: &CommitSummary, batch: JournalBatch) -> CommitSummary {
    let mut summary = summary.clone();
    summary.journal = Some(batch.shared());
    summary
}

/// A fresh directory under the system's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "recsync-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    assert!(!dir.exists());
    dir
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_same(a: &Baseline, b: &Baseline) {
    assert_eq!(a.header(), b.header());
    assert_eq!(a.len(), b.len());
    assert!(a == b, "baselines differ");
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ----- JSON file store

mod json_file {
    use super::*;

    #[test]
    fn round_trip_with_cursors_and_held_reviews() {
        let dir = temp_dir("json-round-trip");
        let _c = Cleanup(dir.clone());
        let s = synced(5);
        let store = JsonFileStore::open(dir.join("state")).unwrap();
        assert_eq!(store.load("contacts").unwrap(), Baseline::new());
        store.save("contacts", &s.first, &s.first_summary).unwrap();
        store.save("contacts", &s.held, &s.held_summary).unwrap();
        let back = store.load("contacts").unwrap();
        assert_same(&back, &s.held);
        assert_eq!(back.cursor("crm"), Some("crm-cursor-2"));
        assert_eq!(back.cursor("mkt"), Some("mkt-cursor-1"));
        assert_eq!(back.reviews().len(), 2);
        // Objects are independent.
        assert_eq!(store.load("deals").unwrap().len(), 0);
        store.replace("deals", &s.first).unwrap();
        assert_same(&store.load("contacts").unwrap(), &s.held);
        assert_same(&store.load("deals").unwrap(), &s.first);
    }

    #[test]
    fn records_held_back_as_ambiguous_round_trip() {
        let dir = temp_dir("json-ambiguous");
        let _c = Cleanup(dir.clone());
        let s = synced(5);
        let (b, summary) = with_placeholders(&s);
        let store = JsonFileStore::open(&dir).unwrap();
        store.save("contacts", &b, &summary).unwrap();
        let back = store.load("contacts").unwrap();
        assert_same(&back, &b);
        assert_eq!(
            back.header().ambiguous.get("crm", "c901"),
            Some(("email", "noemail@example.com"))
        );
        // In the header line, which the header checksum covers.
        let text = std::fs::read_to_string(store.path_of("contacts")).unwrap();
        let last = text.lines().last().unwrap();
        assert!(last.contains(r#""ambiguous":[{"system":"crm""#), "{last}");
    }

    #[test]
    fn a_leftover_temp_file_is_ignored_and_the_last_complete_state_loads() {
        let dir = temp_dir("json-crash");
        let _c = Cleanup(dir.clone());
        let s = synced(5);
        let store = JsonFileStore::open(&dir).unwrap();
        store.replace("contacts", &s.first).unwrap();
        // A save that died half way: its temp file holds the start of the
        // next baseline, and was never renamed.
        let next = serde_json::to_vec(&s.held).unwrap();
        let temp = dir.join(format!(".contacts.json.{}.0.tmp", u32::MAX));
        std::fs::write(&temp, &next[..next.len() / 2]).unwrap();
        let back = store.load("contacts").unwrap();
        assert_same(&back, &s.first);
        assert_eq!(back.cursor("crm"), Some("crm-cursor-1"));
        // A new store on the same directory saves and loads past it.
        let again = JsonFileStore::open(&dir).unwrap();
        again.save("contacts", &s.held, &s.held_summary).unwrap();
        assert_same(&again.load("contacts").unwrap(), &s.held);
        // Every save went through a temp file that is gone now.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"contacts.json".to_owned()));
    }

    #[cfg(unix)]
    #[test]
    fn files_are_owner_only() {
        let dir = temp_dir("json-mode");
        let _c = Cleanup(dir.clone());
        let store = JsonFileStore::open(dir.join("nested").join("state")).unwrap();
        assert_eq!(mode(&dir.join("nested").join("state")), 0o700);
        let s = synced(3);
        store.replace("contacts", &s.held).unwrap();
        assert_eq!(mode(&store.path_of("contacts")), 0o600);
        // Still owner-only after a second save renamed a new file over it.
        store.save("contacts", &s.held, &s.held_summary).unwrap();
        assert_eq!(mode(&store.path_of("contacts")), 0o600);
    }

    #[test]
    fn a_corrupt_file_names_the_object_the_place_and_the_check() {
        let dir = temp_dir("json-corrupt");
        let _c = Cleanup(dir.clone());
        let store = JsonFileStore::open(&dir).unwrap();
        let path = store.path_of("contacts");
        std::fs::write(
            &path,
            "{\n  \"header\": {\"revision\": 3},\n  \"entities\": [ {\"id\": 7 ]\n}\n",
        )
        .unwrap();
        let err = store.load("contacts").unwrap_err();
        let StoreError::Damaged {
            object,
            path: at,
            place,
            check,
        } = &err
        else {
            panic!("expected a damaged state error, got {err:?}");
        };
        assert_eq!(object.as_deref(), Some("contacts"));
        assert_eq!(at, &path);
        assert_eq!(
            place,
            &Place::Line {
                line: 1,
                column: None
            }
        );
        assert_eq!(check, &Check::Layout);
        assert!(
            err.to_string().starts_with(&format!(
                "stored state of contacts in {} is damaged (line 1): ",
                path.display()
            )),
            "{err}"
        );

        // One byte changed in the third line: the second entity's row.
        let s = synced(3);
        store.replace("contacts", &s.held).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0;
        bytes[third + 30] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = store.load("contacts").unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Damaged {
                    place: Place::Line {
                        line: 3,
                        column: None
                    },
                    check: Check::RowChecksum,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .ends_with("is damaged (line 3): the row does not match its checksum"),
            "{err}"
        );

        // A file cut short.
        store.replace("deals", &s.held).unwrap();
        let text = std::fs::read(store.path_of("deals")).unwrap();
        std::fs::write(store.path_of("deals"), &text[..text.len() - 10]).unwrap();
        let err = store.load("deals").unwrap_err();
        assert!(
            matches!(&err, StoreError::Damaged { object: Some(o), place: Place::Whole, check: Check::Truncated, .. } if o == "deals"),
            "{err:?}"
        );
    }

    #[test]
    fn object_names_stay_inside_the_directory() {
        let dir = temp_dir("json-names");
        let _c = Cleanup(dir.clone());
        let store = JsonFileStore::open(dir.join("state")).unwrap();
        let s = synced(2);
        store.replace("../escape", &s.first).unwrap();
        assert!(store.path_of("../escape").starts_with(dir.join("state")));
        assert!(!dir.join("escape.json").exists());
        assert_same(&store.load("../escape").unwrap(), &s.first);
    }

    /// Three entries of run `run` at hour `run`.
    fn three(run: u64) -> Vec<JournalEntry> {
        let at = hour(run as i64);
        vec![
            entry(run, at, "crm", "c1", 2),
            entry(run, at, "mkt", "m1", 1),
            entry(run, at, "crm", "c2", 3),
        ]
    }

    /// The journal is a file of its own beside the state file, owner-only
    /// like it, and made owner-only when the store opens if it is not.
    #[cfg(unix)]
    #[test]
    fn the_journal_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("json-journal-mode");
        let _c = Cleanup(dir.clone());
        let store = JsonFileStore::open(&dir).unwrap();
        let s = synced(3);
        let journal = store.journal_path_of("contacts");
        assert_eq!(journal, dir.join("contacts.journal.jsonl"));
        store.save("contacts", &s.first, &s.first_summary).unwrap();
        assert!(!journal.exists(), "no batch, no journal file");
        let summary = with_journal(
            &s.held_summary,
            batch(2, hour(2), &three(2), Retention::runs(3)),
        );
        store.save("contacts", &s.held, &summary).unwrap();
        assert_eq!(mode(&journal), 0o600);
        std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = JsonFileStore::open(&dir).unwrap();
        assert_eq!(mode(&journal), 0o600);
        assert_eq!(
            store
                .journal("contacts", &JournalQuery::all())
                .unwrap()
                .len(),
            3
        );
        // Still owner-only after a save renamed a new one over it.
        let next = with_journal(
            &s.held_summary,
            batch(3, hour(3), &three(3), Retention::runs(3)),
        );
        store.save("contacts", &s.held, &next).unwrap();
        assert_eq!(mode(&journal), 0o600);
        assert_eq!(
            store
                .journal("contacts", &JournalQuery::all())
                .unwrap()
                .len(),
            6
        );
    }

    /// A line of the journal that is not an entry is refused, naming the
    /// journal file and the line (and the column where the parser
    /// stopped), never what it holds: by a listing, and by a save with a
    /// batch, which then writes nothing, baseline included.
    #[test]
    fn a_damaged_journal_line_is_refused_naming_the_line() {
        let dir = temp_dir("json-journal-damage");
        let _c = Cleanup(dir.clone());
        let store = JsonFileStore::open(&dir).unwrap();
        let s = synced(3);
        let first = with_journal(
            &s.first_summary,
            batch(1, hour(1), &three(1), Retention::runs(3)),
        );
        store.save("contacts", &s.first, &first).unwrap();
        let path = store.journal_path_of("contacts");
        let good = std::fs::read_to_string(&path).unwrap();
        assert_eq!(good.lines().count(), 3);
        assert!(good.ends_with('\n'));
        let expect = |err: StoreError, line: u64, column: Option<u64>| {
            match &err {
                StoreError::Damaged {
                    object: Some(o),
                    path: p,
                    place: Place::Line { line: l, column: c },
                    check: Check::JournalEntry,
                } => {
                    assert_eq!((o.as_str(), p, *l), ("contacts", &path, line), "{err}");
                    if column.is_some() {
                        assert!(c.is_some(), "{err:?}");
                    }
                }
                other => panic!("expected a damaged journal line, got {other:?}"),
            }
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("new 0") && !shown.contains("old 1"),
                "{shown}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("{} is damaged (line {line}", path.display())),
                "{err}"
            );
        };
        // The second line's value changed into something that is not JSON.
        let lines: Vec<&str> = good.lines().collect();
        let broken = lines[1].replacen("\"new 0\"", "new 0\"", 1);
        assert_ne!(broken, lines[1]);
        std::fs::write(&path, format!("{}\n{broken}\n{}\n", lines[0], lines[2])).unwrap();
        let err = store.journal("contacts", &JournalQuery::all()).unwrap_err();
        expect(err, 2, Some(1));
        // JSON, but not an entry.
        std::fs::write(
            &path,
            format!("{}\n{}\n{{\"run\":1}}\n", lines[0], lines[1]),
        )
        .unwrap();
        let err = store.journal("contacts", &JournalQuery::all()).unwrap_err();
        expect(err, 3, None);
        // Cut short in its last line.
        std::fs::write(&path, &good[..good.len() - 20]).unwrap();
        let err = store.journal("contacts", &JournalQuery::all()).unwrap_err();
        expect(err, 3, None);
        // A save with a batch reads the journal first: refused, nothing
        // written, the baseline before it still loads.
        let next = with_journal(
            &s.held_summary,
            batch(2, hour(2), &three(2), Retention::runs(3)),
        );
        let err = store.save("contacts", &s.held, &next).unwrap_err();
        expect(err, 3, None);
        assert_same(&store.load("contacts").unwrap(), &s.first);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            &good.as_bytes()[..good.len() - 20]
        );
        // Moved aside, the journal starts over with the next save.
        std::fs::rename(&path, dir.join("contacts.journal.jsonl.damaged")).unwrap();
        store.save("contacts", &s.held, &next).unwrap();
        assert_eq!(
            store.journal("contacts", &JournalQuery::all()).unwrap(),
            three(2)
        );
        assert_same(&store.load("contacts").unwrap(), &s.held);
    }

    /// The journal is renamed into place before the state file: a save
    /// that fails between the two leaves the commit's entries beside the
    /// baseline from before it (the writes they record did happen), never
    /// a baseline without its entries. Temporary files left are ignored.
    #[test]
    fn the_journal_is_written_before_the_state_file() {
        let dir = temp_dir("json-journal-order");
        let _c = Cleanup(dir.clone());
        let store = JsonFileStore::open(&dir).unwrap();
        let s = synced(3);
        store.replace("contacts", &s.first).unwrap();
        // The state file cannot be replaced: a directory stands in its way.
        let state = store.path_of("contacts");
        std::fs::remove_file(&state).unwrap();
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("keep"), "x").unwrap();
        let summary = with_journal(
            &s.held_summary,
            batch(2, hour(2), &three(2), Retention::runs(3)),
        );
        let err = store.save("contacts", &s.held, &summary).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { path, .. } if path == &state),
            "{err:?}"
        );
        assert_eq!(
            store.journal("contacts", &JournalQuery::all()).unwrap(),
            three(2)
        );
        // Out of the way, the save goes through; no temporary file is left.
        std::fs::remove_dir_all(&state).unwrap();
        store.save("contacts", &s.held, &summary).unwrap();
        assert_same(&store.load("contacts").unwrap(), &s.held);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["contacts.journal.jsonl", "contacts.json"]);
        // The failed save's entries, then the same commit's again.
        let listed = store.journal("contacts", &JournalQuery::all()).unwrap();
        assert_eq!(listed, [three(2), three(2)].concat());
    }
}

// ----- review queue (any store)

fn review_then_next_plan_applies_the_decision(store: &dyn StateStore) {
    let s = synced(4);
    store.save("contacts", &s.first, &s.first_summary).unwrap();
    store.save("contacts", &s.held, &s.held_summary).unwrap();

    let queue = ReviewQueue::new(store, "contacts");
    let open = queue.open().unwrap();
    assert_eq!(open.len(), 2, "{open:?}");
    let conflict = open
        .iter()
        .find_map(|i| match i {
            ReviewItem::Field(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(conflict.field, "amount");
    assert_eq!(conflict.baseline, Some(json!(100)));
    let mut candidates: Vec<_> = conflict
        .candidates
        .iter()
        .map(|c| (c.system.to_string(), c.value.clone()))
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        candidates,
        [
            ("crm".to_owned(), json!(120)),
            ("mkt".to_owned(), json!(130))
        ]
    );
    let delete = open
        .iter()
        .find_map(|i| match i {
            ReviewItem::Delete(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(delete.deleted_in.len(), 1);
    assert_eq!(delete.deleted_in[0].0, "crm");

    // A choice that does not fit is refused and nothing is saved.
    let err = queue
        .resolve(conflict.id, ReviewChoice::Restore)
        .unwrap_err();
    assert!(
        matches!(err, recsync::store::ReviewError::Resolve(_)),
        "{err}"
    );
    assert_eq!(queue.open().unwrap().len(), 2);

    let entity = queue
        .resolve(conflict.id, ReviewChoice::System("mkt".into()))
        .unwrap();
    assert_eq!(entity, conflict.entity);
    // Decided: no longer open; the delete still is.
    let still = queue.open().unwrap();
    assert_eq!(still.len(), 1);
    assert_eq!(still[0].id(), delete.id);

    // The next run, from the store, applies the decision: crm gets 130.
    let b = store.load("contacts").unwrap();
    let plan = s.engine.plan(&b, &edited(4)).unwrap();
    assert!(plan.conflicts.is_empty(), "{plan}");
    let writes: Vec<_> = plan
        .ops
        .iter()
        .flat_map(|op| {
            op.fields
                .iter()
                .map(move |f| (op.system.to_string(), f.field.to_string(), f.value.clone()))
        })
        .collect();
    assert_eq!(
        writes,
        [("crm".to_owned(), "amount".to_owned(), json!(130))]
    );
    assert!(matches!(
        plan.ops[0].fields[0].reason,
        recsync::Reason::Reviewed { .. }
    ));

    // The held delete, resolved to restore, re-creates the record in crm.
    queue.resolve(delete.id, ReviewChoice::Restore).unwrap();
    assert!(queue.open().unwrap().is_empty());
    let b = store.load("contacts").unwrap();
    let plan = s.engine.plan(&b, &edited(4)).unwrap();
    assert!(
        plan.ops
            .iter()
            .any(|op| op.kind == recsync::OpKind::Create && op.system == "crm"),
        "{plan}"
    );
}

mod review {
    use super::*;

    #[test]
    fn memory_store() {
        review_then_next_plan_applies_the_decision(&MemoryStore::new());
    }

    #[test]
    fn json_file_store() {
        let dir = temp_dir("review-json");
        let _c = Cleanup(dir.clone());
        review_then_next_plan_applies_the_decision(&JsonFileStore::open(&dir).unwrap());
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_store() {
        let dir = temp_dir("review-sqlite");
        let _c = Cleanup(dir.clone());
        let store = recsync::store::SqliteStore::open(dir.join("state.db")).unwrap();
        review_then_next_plan_applies_the_decision(&store);
    }

    /// The store in the database file of a connection the host opened.
    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_store_from_a_hosts_connection_to_a_file() {
        let dir = temp_dir("review-sqlite-host");
        let _c = Cleanup(dir.clone());
        std::fs::create_dir(&dir).unwrap();
        let conn = rusqlite::Connection::open(dir.join("app.db")).unwrap();
        let store = recsync::store::SqliteStore::from_connection(conn).unwrap();
        review_then_next_plan_applies_the_decision(&store);
    }

    /// The store in a database in memory, on a connection the host opened.
    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_store_from_a_hosts_connection_in_memory() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let store = recsync::store::SqliteStore::from_connection(conn).unwrap();
        review_then_next_plan_applies_the_decision(&store);
    }

    #[test]
    fn an_unknown_id_is_refused() {
        let store = MemoryStore::new();
        let s = synced(3);
        store.replace("contacts", &s.held).unwrap();
        let queue = ReviewQueue::new(&store, "contacts");
        assert_eq!(queue.open().unwrap().len(), 2);
        let bogus: recsync::plan::ConflictId =
            serde_json::from_value(json!("00000000000000ff")).unwrap();
        let err = queue
            .resolve(bogus, ReviewChoice::Value(json!(1)))
            .unwrap_err();
        assert!(err.to_string().contains("nothing is held"), "{err}");
    }
}

#[cfg(feature = "sqlite")]
#[path = "store/sqlite.rs"]
mod sqlite;

#[path = "store/integrity.rs"]
mod integrity;

/// The store suite, on every store (`store_suite!`).
#[macro_use]
#[path = "store/suite.rs"]
mod suite;

#[cfg(feature = "postgres")]
#[path = "store/postgres.rs"]
mod postgres;

/// A store behind an `Arc`, a reference or a `Box` is a store: a runner's
/// store and a review queue share one through clones of an `Arc`.
#[test]
fn stores_work_behind_arc_references_and_boxes() {
    use std::sync::Arc;
    let s = synced(3);
    let shared: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    // What one holder saves, the others load.
    let writer: Box<dyn StateStore> = Box::new(Arc::clone(&shared));
    writer.replace("contacts", &s.first).unwrap();
    writer.save("contacts", &s.held, &s.held_summary).unwrap();
    let borrowed: &MemoryStore = &shared;
    assert_same(&StateStore::load(&borrowed, "contacts").unwrap(), &s.held);
    assert_same(&shared.load("contacts").unwrap(), &s.held);
    // A review queue over the same `Arc` the writer holds a clone of.
    let queue = ReviewQueue::new(&shared, "contacts");
    assert_eq!(queue.open().unwrap().len(), 2);
}

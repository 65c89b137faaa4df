//! The PostgreSQL store on a real server: the store suite, then what only
//! it has (revision compare-and-set, leases and fencing, the schema, damage
//! in rows, a large baseline).
//!
//! The server is the one `RECSYNC_POSTGRES_URL` names (a role that may
//! create schemas). Unset, these tests pass without running and say so
//! once; set, a server that cannot be reached fails them. To run them:
//!
//! ```text
//! eval "$(.ci/postgres start)"
//! cargo test --features postgres,sqlite-bundled --test store postgres
//! .ci/postgres stop "$RECSYNC_POSTGRES_DIR"
//! ```
//!
//! Each test works in a schema of its own (the store's tables live in the
//! connection's `search_path`), dropped when it passes, so the tests run
//! in parallel.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recsync::baseline::{BaselineHeader, EntityId, EntityRecord, LinkRecord};
use recsync::model::SystemId;
use recsync::store::{AsyncStateStore, Owner, PostgresStore, RouteQuery};

use super::suite::Fixture;
use super::*;

#[path = "../common/postgres.rs"]
mod server;
use server::Db;

async fn fixture(test: &str) -> Option<Fixture> {
    let db = Db::new(&format!("suite_{test}")).await?;
    Some(Fixture {
        store: Box::new(db.store().await),
        _guard: None,
        done: Some(Box::pin(db.finish())),
    })
}

store_suite!();

async fn save(
    store: &dyn AsyncStateStore,
    object: &str,
    b: &Baseline,
    summary: &CommitSummary,
) -> Result<(), StoreError> {
    store
        .save(object, Arc::new(b.clone()), Arc::new(summary.clone()))
        .await
}

/// `b` after a commit that changed nothing but crm's cursor: the next
/// revision, as another runner would have made it.
fn next_revision(s: &Synced, b: &Baseline, cursor: &str) -> (Baseline, CommitSummary) {
    let mut b = b.clone();
    let plan = s.engine.plan(&b, &[]).unwrap();
    let summary = s
        .engine
        .commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    b.set_cursor("crm", cursor);
    (b, summary)
}

/// Exactly one of two results is `Ok`; returns the error of the other and
/// which one won (0 or 1).
fn one_wins(a: Result<(), StoreError>, b: Result<(), StoreError>) -> (StoreError, usize) {
    match (a, b) {
        (Ok(()), Err(e)) => (e, 0),
        (Err(e), Ok(())) => (e, 1),
        (a, b) => panic!("expected exactly one to win: {a:?}, {b:?}"),
    }
}

fn assert_conflict(err: &StoreError, object: &str, expected: u64, found: u64) {
    match err {
        StoreError::Conflict {
            object: o,
            expected: e,
            found: f,
        } => assert_eq!((o.as_str(), *e, *f), (object, expected, found), "{err}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Two stores (two connections) save from the same revision at once:
/// exactly one wins, the other gets a conflict and writes nothing; so for
/// the first save of an object, and for a save of a revision already
/// replaced.
#[tokio::test]
async fn of_two_saves_from_one_revision_exactly_one_wins() {
    let Some(db) = Db::new("cas").await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let s = synced(6);

    // The first header: both start from none (revision 0).
    let (ra, rb) = tokio::join!(
        save(&a, "contacts", &s.first, &s.first_summary),
        save(&b, "contacts", &s.first, &s.first_summary),
    );
    let (err, _) = one_wins(ra, rb);
    assert_conflict(&err, "contacts", 0, 1);
    assert!(
        err.to_string()
            .contains("at revision 1, but this save started from revision 0"),
        "{err}"
    );

    // Both loaded revision 1, each committed.
    let (mine, mine_summary) = (s.held.clone(), s.held_summary.clone());
    let (theirs, theirs_summary) = next_revision(&s, &s.first, "crm-cursor-theirs");
    assert_eq!((mine.revision(), theirs.revision()), (2, 2));
    for round in 0..5 {
        let object = format!("contacts-{round}");
        a.replace(&object, Arc::new(s.first.clone())).await.unwrap();
        let (ra, rb) = tokio::join!(
            save(&a, &object, &mine, &mine_summary),
            save(&b, &object, &theirs, &theirs_summary),
        );
        let (err, winner) = one_wins(ra, rb);
        assert_conflict(&err, &object, 1, 2);
        let stored = a.load(&object).await.unwrap();
        assert_same(&stored, if winner == 0 { &mine } else { &theirs });
    }

    // A save of a revision from before the last save: refused, nothing
    // written.
    a.replace("deals", Arc::new(s.first.clone())).await.unwrap();
    save(&a, "deals", &mine, &mine_summary).await.unwrap();
    let err = save(&b, "deals", &theirs, &theirs_summary)
        .await
        .unwrap_err();
    assert_conflict(&err, "deals", 1, 2);
    assert_same(&b.load("deals").await.unwrap(), &mine);
    // `replace` writes whatever the store holds.
    b.replace("deals", Arc::new(theirs.clone())).await.unwrap();
    assert_same(&a.load("deals").await.unwrap(), &theirs);
    db.finish().await;
}

fn assert_fenced(err: &StoreError, object: &str, token: u64, current: Option<u64>) {
    match err {
        StoreError::Fenced {
            object: o,
            token: t,
            current: c,
        } => assert_eq!((o.as_str(), *t, *c), (object, token, current), "{err}"),
        other => panic!("expected a fenced save, got {other:?}"),
    }
}

/// A runner's lease expires while it is paused; another takes the object
/// over with the next token. The first runner's save, fenced by its old
/// token, is refused and the state stays the new holder's to write.
#[tokio::test]
async fn a_save_with_a_stale_fencing_token_is_refused() {
    let Some(db) = Db::new("fencing").await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let s = synced(5);
    let object = "contacts/shard-2-of-4";
    a.replace(object, Arc::new(s.first.clone())).await.unwrap();

    let la = a
        .claim(object, "runner-a", Duration::from_millis(300))
        .await
        .unwrap()
        .expect("a free lease");
    assert_eq!((la.object(), la.holder()), (object, "runner-a"));
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    assert!(la.expires_at() > now - chrono::Duration::seconds(60));
    // While it holds, its fenced saves go through and others cannot claim.
    let fa = a.fenced(&la);
    save(&fa, object, &s.held, &s.held_summary).await.unwrap();
    assert!(b
        .claim(object, "runner-b", Duration::from_secs(30))
        .await
        .unwrap()
        .is_none());

    // Runner a pauses past its lease; b takes over.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let lb = b
        .claim(object, "runner-b", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("an expired lease is free");
    assert!(lb.token() > la.token(), "{lb:?} after {la:?}");

    // Runner a wakes up and saves its next commit: fenced, nothing written.
    let (next, next_summary) = next_revision(&s, &s.held, "crm-cursor-stale");
    let err = save(&fa, object, &next, &next_summary).await.unwrap_err();
    assert_fenced(&err, object, la.token(), Some(lb.token()));
    assert!(err.to_string().contains(&format!(
        "carried fencing token {}, but the lease is now held with token {}",
        la.token(),
        lb.token()
    )));
    let err = fa
        .replace(object, Arc::new(next.clone()))
        .await
        .unwrap_err();
    assert_fenced(&err, object, la.token(), Some(lb.token()));
    assert_same(&b.load(object).await.unwrap(), &s.held);
    // Nor can it renew, and its release leaves b's lease alone.
    let err = a.renew(&la).await.unwrap_err();
    assert_fenced(&err, object, la.token(), Some(lb.token()));
    a.release(la.clone()).await.unwrap();

    // The holder's fenced save goes through; a renewal keeps the token.
    let fb = b.fenced(&lb);
    save(&fb, object, &next, &next_summary).await.unwrap();
    assert_same(&a.load(object).await.unwrap(), &next);
    let renewed = b.renew(&lb).await.unwrap();
    assert_eq!(renewed.token(), lb.token());
    assert!(renewed.expires_at() >= lb.expires_at());

    // Released, then claimed again: a new token, never one used before,
    // and the old holder's fenced store stays refused.
    b.release(renewed).await.unwrap();
    let err = save(&fb, object, &next, &next_summary).await.unwrap_err();
    assert_fenced(&err, object, lb.token(), None);
    let again = a
        .claim(object, "runner-a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(again.token() > lb.token());
    // The holder claiming what it holds keeps its token.
    let same = a
        .claim(object, "runner-a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.token(), again.token());
    db.finish().await;
}

/// Two claimants of a free lease at once: one gets it.
#[tokio::test]
async fn two_claimants_at_once_get_one_lease() {
    let Some(db) = Db::new("claimants").await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    for round in 0..10 {
        let object = format!("contacts/shard-{round}-of-10");
        let ttl = Duration::from_secs(30);
        let (la, lb) = tokio::join!(a.claim(&object, "a", ttl), b.claim(&object, "b", ttl));
        let (la, lb) = (la.unwrap(), lb.unwrap());
        match (&la, &lb) {
            (Some(l), None) | (None, Some(l)) => assert_eq!(l.token(), 1, "{l:?}"),
            _ => panic!("round {round}: {la:?} and {lb:?}"),
        }
    }
    db.finish().await;
}

/// Damage another program did to the tables is refused on load, naming
/// the row or the header, and a save does not write over a damaged header.
#[tokio::test]
async fn damaged_rows_are_refused() {
    let Some(db) = Db::new("damage").await else {
        return;
    };
    let store = db.store().await;
    let sql = db.client().await;
    let s = synced(5);
    let fresh = |object: &'static str| {
        let store = store.clone();
        let first = s.first.clone();
        async move {
            store.replace(object, Arc::new(first)).await.unwrap();
        }
    };
    let refused = |object: &'static str| {
        let store = store.clone();
        async move {
            match store.load(object).await {
                Ok(b) => panic!("loaded {} entities of damaged {object}", b.len()),
                Err(e) => e,
            }
        }
    };
    let victim = middle(&s.first);

    // A bit flipped in a row.
    fresh("flipped").await;
    sql.execute(
        "UPDATE recsync_entities SET record = set_byte(record, 12, get_byte(record, 12) # 1)
         WHERE object = 'flipped' AND id = $1",
        &[&victim],
    )
    .await
    .unwrap();
    let err = refused("flipped").await;
    assert_damaged(
        &err,
        "flipped",
        Place::Row {
            entity: EntityId::new(victim.clone()),
        },
        Check::RowChecksum,
    );
    assert!(err.to_string().contains("postgres://"), "{err}");

    // A row deleted.
    fresh("short").await;
    sql.execute(
        "DELETE FROM recsync_entities WHERE object = 'short' AND id = $1",
        &[&victim],
    )
    .await
    .unwrap();
    assert_damaged(
        &refused("short").await,
        "short",
        Place::Header,
        Check::Count {
            expected: 5,
            found: 4,
        },
    );

    // A row replaced by its older copy, checksum and all.
    fresh("older").await;
    let touched = s.held_summary.touched[0].as_str().to_owned();
    let old = sql
        .query_one(
            "SELECT record, checksum FROM recsync_entities WHERE object = 'older' AND id = $1",
            &[&touched],
        )
        .await
        .unwrap();
    let (record, checksum): (Vec<u8>, i64) = (old.get(0), old.get(1));
    save(&store, "older", &s.held, &s.held_summary)
        .await
        .unwrap();
    sql.execute(
        "UPDATE recsync_entities SET record = $2, checksum = $3
         WHERE object = 'older' AND id = $1",
        &[&touched, &record, &checksum],
    )
    .await
    .unwrap();
    assert_damaged(
        &refused("older").await,
        "older",
        Place::Whole,
        Check::RowSet,
    );

    // The header's revision changed: refused on load, and a save over it
    // is refused too rather than carrying on from it.
    fresh("header").await;
    sql.execute(
        "UPDATE recsync_objects SET revision = revision + 1 WHERE name = 'header'",
        &[],
    )
    .await
    .unwrap();
    assert_damaged(
        &refused("header").await,
        "header",
        Place::Header,
        Check::HeaderChecksum,
    );
    let err = save(&store, "header", &s.held, &s.held_summary)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Damaged {
                check: Check::HeaderChecksum,
                ..
            }
        ),
        "{err:?}"
    );
    // `replace` starts over.
    store
        .replace("header", Arc::new(s.held.clone()))
        .await
        .unwrap();
    assert_same(&store.load("header").await.unwrap(), &s.held);

    // The header lost: rows without it are not an empty object.
    fresh("headless").await;
    sql.execute("DELETE FROM recsync_objects WHERE name = 'headless'", &[])
        .await
        .unwrap();
    assert_damaged(
        &refused("headless").await,
        "headless",
        Place::Whole,
        Check::MissingHeader,
    );
    db.finish().await;
}

fn assert_damaged(err: &StoreError, object: &str, place: Place, check: Check) {
    match err {
        StoreError::Damaged {
            object: o,
            place: p,
            check: c,
            ..
        } => {
            assert_eq!(o.as_deref(), Some(object), "{err}");
            assert_eq!((p, c), (&place, &check), "{err}");
        }
        other => panic!("expected damaged state, got {other:?}"),
    }
}

fn middle(b: &Baseline) -> String {
    let ids: Vec<String> = b.entities().map(|e| e.id().to_string()).collect();
    ids[ids.len() / 2].clone()
}

/// The schema: created once when several stores start at once, left
/// alone when current, a newer version refused as a format, a version no
/// recsync records or tables missing refused as damage.
#[tokio::test]
async fn the_schema_is_created_once_and_a_newer_one_refused() {
    let Some(db) = Db::new("schema").await else {
        return;
    };
    let config = db.config();
    let starts = (0..4).map(|_| PostgresStore::connect_config(&config));
    for started in futures::future::join_all(starts).await {
        started.unwrap();
    }
    let sql = db.client().await;
    let version: i32 = sql
        .query_one("SELECT version FROM recsync_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, PostgresStore::SCHEMA_VERSION);
    // Set up again over a current schema: nothing changes, state stays.
    let s = synced(3);
    let store = db.store().await;
    store
        .replace("contacts", Arc::new(s.held.clone()))
        .await
        .unwrap();
    assert_same(&db.store().await.load("contacts").await.unwrap(), &s.held);

    sql.execute("UPDATE recsync_schema SET version = version + 1", &[])
        .await
        .unwrap();
    let err = PostgresStore::connect_config(&config).await.unwrap_err();
    let newer = u64::from(PostgresStore::SCHEMA_VERSION.unsigned_abs());
    assert!(
        matches!(
            err,
            StoreError::Format {
                found,
                supported,
                ..
            } if found == newer + 1 && supported == newer
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("a newer recsync wrote it"),
        "{err}"
    );

    sql.execute("UPDATE recsync_schema SET version = 0", &[])
        .await
        .unwrap();
    let err = PostgresStore::connect_config(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Damaged {
                place: Place::SchemaVersion { found: 0 },
                check: Check::Layout,
                ..
            }
        ),
        "{err:?}"
    );

    sql.batch_execute("UPDATE recsync_schema SET version = 1; DROP TABLE recsync_links")
        .await
        .unwrap();
    let err = PostgresStore::connect_config(&config).await.unwrap_err();
    match &err {
        StoreError::Damaged {
            place: Place::Tables { missing },
            check: Check::Layout,
            ..
        } => assert_eq!(missing, &["recsync_links"]),
        other => panic!("{other:?}"),
    }

    // At version 2 the journal is one of them; at version 1 it was not.
    sql.batch_execute(
        "CREATE TABLE recsync_links (object text, entity text, system text, record_id text);
         UPDATE recsync_schema SET version = 2; DROP TABLE recsync_journal",
    )
    .await
    .unwrap();
    let err = PostgresStore::connect_config(&config).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Damaged { place: Place::Tables { missing }, .. } if missing == &["recsync_journal"]),
        "{err:?}"
    );

    // The store's tables without a version: not taken for anything.
    sql.batch_execute("DROP TABLE recsync_schema")
        .await
        .unwrap();
    let err = PostgresStore::connect_config(&config).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Damaged { place: Place::Tables { missing }, .. } if missing == &["recsync_schema"]),
        "{err:?}"
    );
    db.finish().await;
}

/// Neither `Debug` of a store nor an error connecting names the password.
#[tokio::test]
async fn no_password_in_debug_or_errors() {
    // Nothing listens on port 1.
    let err = PostgresStore::connect("postgres://alice:pw-s3cret@127.0.0.1:1/state")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("pw-s3cret"), "{text}");
    assert!(text.contains("127.0.0.1:1/state"), "{text}");

    let Some(db) = Db::new("debug").await else {
        return;
    };
    // A password the server ignores (trust on loopback) or checks.
    let mut config = db.config();
    if config.get_password().is_none() {
        config.password("pw-s3cret");
    }
    let store = PostgresStore::connect_config(&config).await.unwrap();
    let lease = store
        .claim("contacts", "runner", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let shown = format!("{store:?} {:?}", store.fenced(&lease));
    assert!(!shown.contains("pw-s3cret"), "{shown}");
    assert!(shown.contains("PostgresStore"), "{shown}");
    db.finish().await;
}

/// `connect` outside a tokio runtime is an error, not a panic.
#[test]
fn connect_outside_a_tokio_runtime_is_an_error() {
    let err = futures::executor::block_on(PostgresStore::connect(
        "postgres://recsync@127.0.0.1:1/state",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

const BIG: u64 = 100_000;
const SYSTEMS: [&str; 2] = ["crm", "mkt"];

// EntityRecord is #[non_exhaustive]: outside the crate it is built from its
// default.
#[allow(clippy::field_reassign_with_default)]
fn big_entity(i: u64, changed: bool) -> EntityRecord {
    let mut r = EntityRecord::default();
    r.id = EntityId::new(format!("crm:c{i}"));
    let values: Vec<(String, serde_json::Value)> = vec![
        ("email".into(), json!(format!("person{i}@example.com"))),
        ("name".into(), json!(format!("Person {i}"))),
        ("score".into(), json!(i % 100 + u64::from(changed))),
        (
            "city".into(),
            json!(["Oslo", "Bergen", "Tromsø"][(i % 3) as usize]),
        ),
        (
            "notes".into(),
            json!("Met at the spring fair; wants a demo."),
        ),
    ];
    for system in SYSTEMS {
        r.links.insert(
            SystemId::new(system),
            LinkRecord {
                id: format!("{}{i}", &system[..1]),
                version: Some(format!("v{}", i % 7)),
                hash: i | 1,
                status: Default::default(),
            },
        );
        r.shadows
            .insert(SystemId::new(system), values.iter().cloned().collect());
    }
    r.canonical = values.into_iter().collect();
    r
}

fn big_baseline(revision: u64, changed: impl Fn(u64) -> bool) -> Baseline {
    let mut header = BaselineHeader::default();
    header.revision = revision;
    header
        .cursors
        .insert(SystemId::new("crm"), format!("cursor-{revision}"));
    Baseline::from_parts(header, (0..BIG).map(|i| big_entity(i, changed(i)))).unwrap()
}

/// 100,000 entities saved whole (the object's first save), then a commit
/// that touched 10 of them: the second save writes 10 rows, and each load
/// is the baseline saved.
#[tokio::test]
async fn a_large_baseline_then_ten_touched_entities() {
    let Some(db) = Db::new("large").await else {
        return;
    };
    let store = db.store().await;
    let sql = db.client().await;
    let first = big_baseline(1, |_| false);
    let mut all = CommitSummary::default();
    all.touched.extend(first.entities().map(|e| e.id().clone()));
    // Timed from the call: the baselines go in behind an `Arc`, as a
    // runner's do, not cloned.
    let (first, all) = (Arc::new(first), Arc::new(all));
    let t = Instant::now();
    store.save("contacts", first.clone(), all).await.unwrap();
    let whole = t.elapsed();

    let changed = |i: u64| i % (BIG / 10) == 7;
    let second = big_baseline(2, changed);
    let mut summary = CommitSummary::default();
    summary.touched.extend(
        (0..BIG)
            .filter(|i| changed(*i))
            .map(|i| EntityId::new(format!("crm:c{i}"))),
    );
    assert_eq!(summary.touched.len(), 10);
    let (second, summary) = (Arc::new(second), Arc::new(summary));
    let t = Instant::now();
    store
        .save("contacts", second.clone(), summary)
        .await
        .unwrap();
    let touched = t.elapsed();
    // The rows the last transaction wrote: the ten.
    let written: i64 = sql
        .query_one(
            "SELECT count(*) FROM recsync_entities
             WHERE xmin::text::bigint = (SELECT max(xmin::text::bigint) FROM recsync_entities)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 10);

    let t = Instant::now();
    let back = store.load("contacts").await.unwrap();
    let loaded = t.elapsed();
    assert!(back == *second, "the load differs from the baseline saved");
    let _ = writeln!(
        std::io::stderr(),
        "postgres, {BIG} entities: whole save {whole:?}, 10-entity save {touched:?}, load {loaded:?}"
    );
    assert!(
        touched * 10 < whole,
        "a 10-entity save took {touched:?}, the whole save {whole:?}"
    );
    // The links index follows: a record of the last entity is linked.
    let last = (SystemId::new("mkt"), format!("m{}", BIG - 1));
    let routes = store
        .route(&RouteQuery {
            family: "contacts/2 shards",
            mine: "contacts/elsewhere",
            others: &["contacts".to_owned()],
            propose: std::slice::from_ref(&last),
            ask: &[],
            release: &[],
            reserve: true,
            entities: &[],
        })
        .await
        .unwrap();
    assert_eq!(routes.owner(&last.0, &last.1), Some(Owner::Other));
    db.finish().await;
}

/// Two runners on two connections propose the same records at once, in
/// opposite orders: each record is reserved for exactly one of them, and
/// neither call fails (the reservations are taken in key order, so the two
/// transactions never wait for each other in a cycle).
#[tokio::test]
async fn two_shards_proposing_the_same_records_at_once_get_each_once() {
    let Some(db) = Db::new("routes_race").await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let records: Vec<(SystemId, String)> = (0..2_000)
        .map(|n| (SystemId::new("crm"), format!("c{n}")))
        .collect();
    let reversed: Vec<(SystemId, String)> = records.iter().rev().cloned().collect();
    let family = "contacts/2 shards";
    let (to_b, to_a) = (vec!["contacts/b".to_owned()], vec!["contacts/a".to_owned()]);
    let qa = RouteQuery {
        family,
        mine: "contacts/a",
        others: &to_b,
        propose: &records,
        ask: &[],
        release: &[],
        reserve: true,
        entities: &[],
    };
    let qb = RouteQuery {
        family,
        mine: "contacts/b",
        others: &to_a,
        propose: &reversed,
        ask: &[],
        release: &[],
        reserve: true,
        entities: &[],
    };
    let (ra, rb) = tokio::join!(a.route(&qa), b.route(&qb));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    for (system, id) in &records {
        let owners = (ra.owner(system, id), rb.owner(system, id));
        assert!(
            matches!(
                owners,
                (Some(Owner::Mine), Some(Owner::Other)) | (Some(Owner::Other), Some(Owner::Mine))
            ),
            "{id}: {owners:?}"
        );
    }
    drop((a, b));
    db.finish().await;
}

/// The journal of `object` on `store`: every entry, in the order saved.
async fn listed(store: &dyn AsyncStateStore, object: &str) -> Vec<JournalEntry> {
    store.journal(object, &JournalQuery::all()).await.unwrap()
}

/// A database of schema version 1 (before the journal) gets the journal's
/// table, empty, when a store connects: its objects load as before and
/// their next saves keep journals.
#[tokio::test]
async fn a_database_of_schema_version_1_gets_the_journal() {
    let Some(db) = Db::new("schema_v1").await else {
        return;
    };
    let s = synced(4);
    let store = db.store().await;
    store
        .replace("contacts", Arc::new(s.first.clone()))
        .await
        .unwrap();
    drop(store);
    let sql = db.client().await;
    // What version 1 left.
    sql.batch_execute("DROP TABLE recsync_journal; UPDATE recsync_schema SET version = 1")
        .await
        .unwrap();
    let has_journal = sql
        .query_one("SELECT to_regclass('recsync_journal') IS NOT NULL", &[])
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(!has_journal);
    let store = db.store().await;
    let version: i32 = sql
        .query_one("SELECT version FROM recsync_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    let has_journal = sql
        .query_one("SELECT to_regclass('recsync_journal') IS NOT NULL", &[])
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(has_journal);
    assert_same(&store.load("contacts").await.unwrap(), &s.first);
    assert!(listed(&store, "contacts").await.is_empty());
    let run = vec![
        entry(2, hour(2), "crm", "c1", 2),
        entry(2, hour(2), "mkt", "m1", 1),
    ];
    let summary = with_journal(&s.held_summary, batch(2, hour(2), &run, Retention::runs(3)));
    save(&store, "contacts", &s.held, &summary).await.unwrap();
    assert_same(&store.load("contacts").await.unwrap(), &s.held);
    assert_eq!(listed(&store, "contacts").await, run);
    db.finish().await;
}

/// A save the store refuses writes no journal entries: one that conflicts
/// (another writer saved first), one fenced by a stale lease, one whose
/// run id does not fit the database. A fenced save that goes through
/// writes its batch, and the fenced store lists it.
#[tokio::test]
async fn a_refused_save_writes_no_journal_entries() {
    let Some(db) = Db::new("journal_refused").await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let s = synced(5);
    let first = vec![entry(1, hour(1), "crm", "c1", 1)];
    let summary = with_journal(
        &s.first_summary,
        batch(1, hour(1), &first, Retention::runs(3)),
    );
    save(&a, "contacts", &s.first, &summary).await.unwrap();

    // Both loaded nothing; a saved first: b's save of revision 1 conflicts.
    let theirs = vec![entry(1, hour(1), "mkt", "m1", 2)];
    let conflicting = with_journal(
        &s.first_summary,
        batch(1, hour(1), &theirs, Retention::runs(0)),
    );
    let err = save(&b, "contacts", &s.first, &conflicting)
        .await
        .unwrap_err();
    assert_conflict(&err, "contacts", 0, 1);
    assert_eq!(listed(&a, "contacts").await, first);

    // A run id past what the database keeps: refused, nothing saved.
    let huge = vec![entry(u64::MAX, hour(2), "crm", "c1", 1)];
    let too_big = with_journal(
        &s.held_summary,
        batch(2, hour(2), &huge, Retention::runs(3)),
    );
    let err = save(&a, "contacts", &s.held, &too_big).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("run 18446744073709551615 of contacts does not fit the database"),
        "{err}"
    );
    assert_same(&a.load("contacts").await.unwrap(), &s.first);
    assert_eq!(listed(&a, "contacts").await, first);

    // Fenced: the holder's save keeps its batch; a stale token's, none.
    let lease = a
        .claim("contacts", "runner-a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let fenced = a.fenced(&lease);
    let second = vec![entry(2, hour(2), "crm", "c2", 1)];
    let held = with_journal(
        &s.held_summary,
        batch(2, hour(2), &second, Retention::runs(3)),
    );
    save(&fenced, "contacts", &s.held, &held).await.unwrap();
    assert_eq!(
        listed(&fenced, "contacts").await,
        [first.clone(), second.clone()].concat()
    );
    a.release(lease).await.unwrap();
    let taken = b
        .claim("contacts", "runner-b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let (next, next_summary) = next_revision(&s, &s.held, "crm-cursor-stale");
    let stale = vec![entry(3, hour(3), "crm", "c3", 1)];
    let stale_summary = with_journal(&next_summary, batch(3, hour(3), &stale, Retention::runs(1)));
    let err = save(&fenced, "contacts", &next, &stale_summary)
        .await
        .unwrap_err();
    assert_fenced(&err, "contacts", fenced.token(), Some(taken.token()));
    assert_eq!(listed(&b, "contacts").await, [first, second].concat());
    assert_same(&b.load("contacts").await.unwrap(), &s.held);
    db.finish().await;
}

/// A journal row that is not an entry is refused, naming the row, never
/// what it holds; rows of other records still list.
#[tokio::test]
async fn a_damaged_journal_row_is_refused_naming_the_row() {
    let Some(db) = Db::new("journal_damage").await else {
        return;
    };
    let store = db.store().await;
    let s = synced(3);
    let run = vec![
        entry(1, hour(1), "crm", "c1", 1),
        entry(1, hour(1), "crm", "c2", 1),
    ];
    let summary = with_journal(
        &s.first_summary,
        batch(1, hour(1), &run, Retention::runs(3)),
    );
    save(&store, "contacts", &s.first, &summary).await.unwrap();
    let sql = db.client().await;
    let seq: i64 = sql
        .query_one(
            "SELECT seq FROM recsync_journal WHERE record_id = 'c2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seq, 2);
    sql.execute(
        "UPDATE recsync_journal SET entry = replace(entry, '\"new 0\"', 'new 0\"')
         WHERE record_id = 'c2'",
        &[],
    )
    .await
    .unwrap();
    let err = store
        .journal("contacts", &JournalQuery::all())
        .await
        .unwrap_err();
    assert_damaged(
        &err,
        "contacts",
        Place::JournalRow { row: seq },
        Check::JournalEntry,
    );
    assert!(!format!("{err} {err:?}").contains("new 0"), "{err:?}");
    assert_eq!(
        store
            .journal("contacts", &JournalQuery::record("crm", "c1"))
            .await
            .unwrap(),
        run[..1]
    );
    db.finish().await;
}

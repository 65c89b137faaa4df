//! [`PostgresStore`] (feature `postgres`): baselines in PostgreSQL, a row
//! per entity, saves that compare the stored revision, leases with fencing
//! tokens, a row per journal entry, and an index of links that answers
//! [`route`](AsyncStateStore::route) without loading baselines. The
//! type's docs say what is stored where and how writers are kept apart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::lock::Mutex;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, IsolationLevel, NoTls, Row, Transaction};

use super::check::Crc64;
use super::journal_rows::{self, Bound};
use super::lane::Lane;
use super::nonblocking::{AsyncStateStore, Owner, RouteQuery, Routes};
use super::row::{self, EntityJson};
use super::{Check, Place, StoreError};
use crate::baseline::{
    AmbiguousRecords, Baseline, BaselineHeader, EntityId, EntityRecord, LinkStatus,
};
use crate::engine::CommitSummary;
use crate::journal::{JournalBatch, JournalEntry, JournalQuery};
use crate::model::SystemId;

/// The schema version this recsync creates and reads, kept in
/// `recsync_schema`: [`PostgresStore::SCHEMA_VERSION`]. Version 1 had no
/// journal.
const SCHEMA_VERSION: i32 = 2;

/// The key of the transaction-level advisory lock taken while the schema
/// is created or brought up to date (`"recsync\0"` in ASCII).
const SCHEMA_LOCK: i64 = 0x7265_6373_796e_6300;

/// The tables besides `recsync_schema`, each with the schema version that
/// added it.
const DATA_TABLES: [(&str, i32); 6] = [
    ("recsync_objects", 1),
    ("recsync_entities", 1),
    ("recsync_links", 1),
    ("recsync_routes", 1),
    ("recsync_leases", 1),
    ("recsync_journal", 2),
];

/// Step `k` brings a database at schema version `k` to `k + 1`; version 0
/// is none of the store's tables.
const STEPS: [&str; SCHEMA_VERSION as usize] = [CREATE_1, CREATE_2];

const CREATE_1: &str = "
CREATE TABLE recsync_schema (
    id      integer PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
);
CREATE TABLE recsync_objects (
    name          text PRIMARY KEY,
    revision      bigint NOT NULL,
    fingerprint   bigint,
    cursors       text NOT NULL,
    ambiguous     text,
    ambiguous_sum bigint,
    entity_count  bigint NOT NULL,
    row_sum       bigint NOT NULL,
    checksum      bigint NOT NULL
);
CREATE TABLE recsync_entities (
    object   text NOT NULL,
    id       text NOT NULL,
    record   bytea NOT NULL,
    checksum bigint NOT NULL,
    PRIMARY KEY (object, id)
);
CREATE TABLE recsync_links (
    object    text NOT NULL,
    entity    text NOT NULL,
    system    text NOT NULL,
    record_id text NOT NULL,
    PRIMARY KEY (object, entity, system)
);
CREATE INDEX recsync_links_record ON recsync_links (system, record_id, object);
CREATE TABLE recsync_routes (
    family    text NOT NULL,
    system    text NOT NULL,
    record_id text NOT NULL,
    object    text NOT NULL,
    PRIMARY KEY (family, system, record_id)
);
CREATE TABLE recsync_leases (
    object     text PRIMARY KEY,
    holder     text,
    token      bigint NOT NULL,
    expires_at timestamptz
);";

/// Version 2: the journal, a row per entry, numbered in the order saved
/// within its object (`seq`); `entry` is the entry's JSON (text, not
/// `jsonb`, which refuses the `\u0000` a value may hold). The indexes
/// serve a listing by run or by record, and retention's deletes by run and
/// by age.
const CREATE_2: &str = "
CREATE TABLE recsync_journal (
    object    text NOT NULL,
    seq       bigint NOT NULL,
    run       bigint NOT NULL,
    at        timestamptz NOT NULL,
    system    text NOT NULL,
    record_id text NOT NULL,
    entry     text NOT NULL,
    PRIMARY KEY (object, seq)
);
CREATE INDEX recsync_journal_run ON recsync_journal (object, run);
CREATE INDEX recsync_journal_record ON recsync_journal (object, system, record_id);
CREATE INDEX recsync_journal_at ON recsync_journal (object, at);";

/// The number of the object's last journal entry (0: none). A save holds
/// the object's header row locked, so no other save numbers entries of it
/// meanwhile.
const LAST_JOURNAL_SEQ: &str =
    "SELECT coalesce(max(seq), 0)::int8 FROM recsync_journal WHERE object = $1";

const COPY_JOURNAL: &str = "COPY recsync_journal (object, seq, run, at, system, record_id, entry) \
     FROM STDIN (FORMAT binary)";

/// Drops an object's entries older than a time.
const PRUNE_JOURNAL_AGE: &str = "DELETE FROM recsync_journal WHERE object = $1 AND at < $2";

/// Drops an object's entries of runs other than the `$2` saved last (by
/// their last entry's `seq`: the order saved, whatever the run ids say, as
/// a clock set back gives a later run a smaller id).
const PRUNE_JOURNAL_RUNS: &str = "
DELETE FROM recsync_journal
WHERE object = $1 AND run NOT IN (
    SELECT run FROM recsync_journal WHERE object = $1
    GROUP BY run ORDER BY MAX(seq) DESC LIMIT $2
)";

const CLEAR_JOURNAL: &str = "DELETE FROM recsync_journal WHERE object = $1";

/// An object's entries; a listing adds its conditions and the order.
const LIST_JOURNAL: &str = "SELECT seq, entry FROM recsync_journal WHERE object = $1";

const SET_SCHEMA_VERSION: &str = "
INSERT INTO recsync_schema (id, version) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET version = excluded.version";

/// Which of the store's tables the connection's `search_path` finds.
const FIND_TABLES: &str = "
SELECT to_regclass('recsync_schema') IS NOT NULL,
       to_regclass('recsync_objects') IS NOT NULL,
       to_regclass('recsync_entities') IS NOT NULL,
       to_regclass('recsync_links') IS NOT NULL,
       to_regclass('recsync_routes') IS NOT NULL,
       to_regclass('recsync_leases') IS NOT NULL,
       to_regclass('recsync_journal') IS NOT NULL";

const HEADER_COLUMNS: &str =
    "revision, fingerprint, cursors, ambiguous, ambiguous_sum, entity_count, row_sum, checksum";

/// Inserts a placeholder header if the object has none, so that a save's
/// lock has a row to take; returns a row only when it inserted. The
/// placeholder never outlives the save's transaction: the save ends by
/// writing the header (or rolls back).
const INSERT_HEADER: &str = "
INSERT INTO recsync_objects
    (name, revision, cursors, entity_count, row_sum, checksum)
VALUES ($1, 0, '{}', 0, 0, 0)
ON CONFLICT (name) DO NOTHING
RETURNING name";

const UPDATE_HEADER: &str = "
UPDATE recsync_objects SET
    revision = $2, fingerprint = $3, cursors = $4,
    ambiguous = CASE WHEN $5::bool THEN $6::text ELSE ambiguous END,
    ambiguous_sum = $7, entity_count = $8, row_sum = $9, checksum = $10
WHERE name = $1";

const DELETE_ENTITIES: &str =
    "DELETE FROM recsync_entities WHERE object = $1 AND id = ANY($2::text[]) RETURNING checksum";

const INSERT_ENTITIES: &str = "
INSERT INTO recsync_entities (object, id, record, checksum)
SELECT $1, * FROM unnest($2::text[], $3::bytea[], $4::int8[])";

const DELETE_LINKS: &str =
    "DELETE FROM recsync_links WHERE object = $1 AND entity = ANY($2::text[])";

const INSERT_LINKS: &str = "
INSERT INTO recsync_links (object, entity, system, record_id)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])";

const COPY_ENTITIES: &str =
    "COPY recsync_entities (object, id, record, checksum) FROM STDIN (FORMAT binary)";

const COPY_LINKS: &str =
    "COPY recsync_links (object, entity, system, record_id) FROM STDIN (FORMAT binary)";

const CLAIMED_RECORDS: &str = "
SELECT DISTINCT l.system, l.record_id
FROM unnest($2::text[], $3::text[]) AS r(system, record_id)
JOIN recsync_links l ON l.system = r.system AND l.record_id = r.record_id
WHERE l.object = ANY($1::text[])";

/// Reserves for a shard the records no one holds yet; a record reserved
/// before keeps its shard. In key order, so that two runners reserving
/// at once wait for each other's rows in one order and never deadlock.
const RESERVE: &str = "
INSERT INTO recsync_routes (family, system, record_id, object)
SELECT $1, system, record_id, $2 FROM unnest($3::text[], $4::text[]) AS r(system, record_id)
ORDER BY system, record_id
ON CONFLICT DO NOTHING";

/// Drops a shard's reservations of the records.
const RELEASE_ROUTES: &str = "
DELETE FROM recsync_routes r
USING unnest($3::text[], $4::text[]) AS q(system, record_id)
WHERE r.family = $1 AND r.object = $2 AND r.system = q.system AND r.record_id = q.record_id";

/// The shards the records are reserved for.
const RESERVED: &str = "
SELECT r.system, r.record_id, r.object
FROM unnest($2::text[], $3::text[]) AS q(system, record_id)
JOIN recsync_routes r ON r.system = q.system AND r.record_id = q.record_id
WHERE r.family = $1";

const CLAIMED_ENTITIES: &str = "
SELECT DISTINCT id FROM recsync_entities
WHERE object = ANY($1::text[]) AND id = ANY($2::text[])";

/// Takes the lease if it is free, expired or the holder's. A take-over
/// (anything but the holder renewing a lease it holds) draws the next
/// token. `ON CONFLICT DO UPDATE` locks the row, so two claimants at once
/// are served one after the other and the second finds the first's lease.
const CLAIM: &str = "
INSERT INTO recsync_leases AS l (object, holder, token, expires_at)
VALUES ($1, $2, 1, now() + $3::int8 * interval '1 microsecond')
ON CONFLICT (object) DO UPDATE SET
    holder = excluded.holder,
    token = CASE WHEN l.holder = excluded.holder AND l.expires_at > now()
                 THEN l.token ELSE l.token + 1 END,
    expires_at = excluded.expires_at
WHERE l.holder IS NULL OR l.expires_at <= now() OR l.holder = excluded.holder
RETURNING l.token, (extract(epoch FROM l.expires_at) * 1000000)::int8";

const RENEW: &str = "
UPDATE recsync_leases SET expires_at = now() + $4::int8 * interval '1 microsecond'
WHERE object = $1 AND token = $2 AND holder = $3 AND expires_at > now()
RETURNING (extract(epoch FROM expires_at) * 1000000)::int8";

const RELEASE: &str = "
UPDATE recsync_leases SET holder = NULL, expires_at = NULL
WHERE object = $1 AND token = $2 AND holder = $3";

/// The token of the lease on an object, if someone holds it now.
const CURRENT_TOKEN: &str = "
SELECT token FROM recsync_leases
WHERE object = $1 AND holder IS NOT NULL AND expires_at > now()";

/// The lease row of a fenced save, locked until the save commits.
const FENCE: &str = "
SELECT token, holder IS NOT NULL AND expires_at > now()
FROM recsync_leases WHERE object = $1 FOR SHARE";

/// Keeps baselines in PostgreSQL: a header row per object type, a row per
/// entity, an index of links, a row per [journal](crate::journal) entry,
/// and leases with fencing tokens for runners on several hosts.
///
/// # What is stored where
///
/// Six tables, created by the store in the connection's current schema
/// (the first schema of its `search_path` that exists; set `search_path`
/// in the connection's options to keep them elsewhere):
///
/// | table | a row per | holds |
/// | --- | --- | --- |
/// | `recsync_schema` | database (one row) | the store's schema version |
/// | `recsync_objects` | object type (a shard's state key for a shard) | the header: revision, map fingerprint, cursors, the records held back as [ambiguous](crate::baseline::AmbiguousRecords) and their CRC-64, the entity count, the wrapping sum of the row checksums, and a CRC-64 over all of it |
/// | `recsync_entities` | entity | its [`EntityRecord`] as the compact JSON row the SQLite store writes, and the CRC-64 of the object type, the entity id and the row |
/// | `recsync_links` | link of an entity to a system's record | object type, entity id, system, record id: the index [`route`](AsyncStateStore::route) reads, written with the entity rows |
/// | `recsync_leases` | object type ever claimed | holder, fencing token, expiry |
/// | `recsync_journal` | [journal](crate::journal) entry | object type, its number in the order saved (`seq`), run (`bigint`), commit time (`timestamptz`), system, record id, and the [`JournalEntry`] as JSON (`text`); indexed by object and run, by object, system and record id, and by object and time |
///
/// A [`save`](AsyncStateStore::save) writes the rows of the entities the
/// [`CommitSummary`] touched or removed (their links too), and the header,
/// in one transaction: a bulk `DELETE ... WHERE id = ANY($2)` and an
/// `INSERT ... SELECT FROM unnest(...)`, so a commit that touched ten
/// entities costs the same few statements whatever the size of the
/// baseline. A whole baseline ([`replace`](AsyncStateStore::replace), or a
/// save of an object with no header yet) goes in with binary `COPY`. A
/// load reads the header and the entity rows in one repeatable-read
/// snapshot and verifies them as the SQLite store does: the header's
/// checksum, every row's checksum and id, the count and the sum, so a row
/// lost, added, replaced by an older copy or flipped is
/// [`StoreError::Damaged`], never a smaller baseline. The links index is
/// derived from the rows, is not covered by the checksums, and is never
/// read by a load.
///
/// The journal batch a summary carries ([`CommitSummary::journal`]) is
/// written in the save's transaction, after the rows and the header: its
/// entries go in with binary `COPY`, numbered on from the object's last,
/// then what the batch's [`Retention`](crate::journal::Retention) does not
/// keep as of its time is deleted (entries older than its cutoff, compared
/// to the microsecond; then those of runs older than the newest it keeps,
/// found by stepping down the run index one run at a time). A save that
/// is refused ([`StoreError::Conflict`], [`StoreError::Fenced`]) or fails
/// writes no entries; one that commits, all of them.
/// [`replace`](AsyncStateStore::replace) leaves the journal as it is.
/// [`journal`](AsyncStateStore::journal) lists the rows a
/// [`JournalQuery`] asks for, filtered by the server and decoded on the
/// store's thread; a row that is not an entry is
/// [`StoreError::Damaged`] naming it ([`Place::JournalRow`],
/// [`Check::JournalEntry`]). Entries carry no checksums: damage that
/// leaves one readable, or a row deleted, goes unseen. Run ids are kept as
/// `bigint`, as revisions are: one past `i64::MAX` is refused, and the
/// save with it.
///
/// # Concurrency
///
/// - **Compare-and-set on the revision.** A save is the save of a commit,
///   which started from the revision before `baseline`'s: the store's
///   header must hold `baseline.revision() - 1` (no header counts as
///   revision 0, as does a baseline of revision 0's own start), checked
///   with the header row locked (`SELECT ... FOR UPDATE`; the first
///   header is inserted first and locked the same way, so the loser of a
///   race to insert it waits and then finds the winner's revision).
///   Otherwise the save is [`StoreError::Conflict`] and writes nothing:
///   another writer saved the object since this baseline was loaded. Two
///   runners that loaded the same revision and each committed are told
///   apart: the first save wins, the second conflicts. A review decision
///   saved through [`ReviewQueue::resolve_async`](super::ReviewQueue::resolve_async) is the next revision too,
///   so a run that loaded the state before the decision conflicts rather
///   than dropping it. [`replace`](AsyncStateStore::replace) writes
///   unconditionally (it starts over), still serialized with saves by the
///   header row's lock.
/// - **Leases.** [`claim`](PostgresStore::claim) takes the lease on an
///   object type (any string: a shard's state key is one) for a holder and
///   a time to live, if it is free, expired or already that holder's; every
///   take-over draws the next **fencing token**, which is never reused, also
///   after a [`release`](PostgresStore::release). Expiry is the server's
///   clock (`now()`), so the hosts' clocks do not matter.
///   [`renew`](PostgresStore::renew) extends a lease still held with its
///   token, or fails with [`StoreError::Fenced`].
/// - **Fencing.** [`fenced`](PostgresStore::fenced) gives a
///   [`FencedStore`]: the same store, whose saves and replaces check inside
///   their transaction, with the lease row locked (`FOR SHARE`, so no one
///   takes the lease over until the save commits), that the lease still
///   has the token and has not expired; otherwise
///   [`StoreError::Fenced`], and nothing is written. A runner that was
///   paused past its lease (a stopped VM, a long GC) and wakes up cannot
///   write its stale baseline over the new holder's.
///
/// The limit of fencing: the token protects the store, not the systems
/// being synced. A runner paused past its lease may still send the writes
/// it had planned to the systems before its save is refused. Those writes
/// are idempotent (each sets fields to the values the plan decided, a
/// create carries its correlation key), and the runner that took the
/// object over reads them back on its next run as it reads a crashed run's
/// writes: as changes that agree, or as a record linked by its key.
///
/// # Schema
///
/// [`connect`](PostgresStore::connect) and
/// [`from_client`](PostgresStore::from_client) create the tables if they
/// are missing and bring an older schema up to date, in one transaction
/// under a transaction-level advisory lock (`pg_advisory_xact_lock`), so
/// two processes starting at once do not race. A schema newer than this
/// recsync's ([`PostgresStore::SCHEMA_VERSION`]) is refused with [`StoreError::Format`];
/// a version below 1, or the store's tables partly missing, is
/// [`StoreError::Damaged`]. Version 1 is the first; version 2 adds
/// `recsync_journal`, which a database of version 1 gets, empty, when a
/// store of this recsync connects (a recsync of version 1 then refuses the
/// database as newer).
///
/// # Permissions
///
/// The tables hold personal data. Who may read or write them is the
/// server's to say (roles, `GRANT`, `pg_hba.conf`): the store connects as
/// the role it is given and creates its tables owned by that role, with no
/// grants to others. [`PostgresStore`]'s `Debug` and errors name the
/// server and database, never a password.
///
/// # Using it
///
/// Implements [`AsyncStateStore`] only: every call is a few statements on
/// the store's connection, awaited, never a blocked thread. A store has one
/// connection; its calls run one after another (a save is one transaction
/// on it). Clones share the connection; for calls in parallel, make more
/// stores.
///
/// ```no_run
/// use recsync::store::{AsyncStateStore, PostgresStore};
/// # async fn run() -> Result<(), recsync::StoreError> {
/// // Inside a tokio runtime: `connect` spawns the connection's task on it.
/// let store = PostgresStore::connect("postgres://recsync@db.internal/recsync").await?;
/// let baseline = store.load("contacts").await?;
/// # let _ = baseline; Ok(()) }
/// ```
///
/// **Connecting.** [`connect`](PostgresStore::connect) takes a connection
/// string (`postgres://user:password@host:port/database`, or `host=...
/// user=...`), connects without TLS, and spawns the connection's task with
/// `tokio::spawn`: it needs a tokio runtime, and is refused with
/// [`StoreError::Backend`] outside one. For TLS, another runtime, or
/// settings of the host's own, connect a `tokio_postgres::Client` with the
/// TLS connector of your choice (`postgres-native-tls`,
/// `tokio-postgres-rustls`), drive its connection yourself, and hand the
/// client to [`from_client`](PostgresStore::from_client).
///
/// A store whose connection is lost (the server restarted) fails every
/// call with [`StoreError::Backend`]; make a new one. A save whose future
/// is dropped either committed or rolls back, never half: the store's next
/// call runs after the rollback.
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Mutex<Client>,
    /// Where loads check and decode their rows, off the caller's executor.
    lane: Lane,
    /// What `Debug` and errors name: the server and database, no
    /// credentials.
    database: PathBuf,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.inner.database)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The schema version this recsync creates and reads, kept in the
    /// `recsync_schema` table.
    pub const SCHEMA_VERSION: i32 = SCHEMA_VERSION;

    /// Connects to the database `url` names, without TLS, and sets up the
    /// store's tables (see [Schema](PostgresStore#schema)).
    ///
    /// Needs a tokio runtime: the connection's task is spawned on it with
    /// `tokio::spawn`. See the type's docs for connecting another way.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config: Config = url.parse().map_err(|e| StoreError::Backend {
            message: "cannot read the PostgreSQL connection string".to_owned(),
            source: Some(Box::new(e)),
        })?;
        Self::connect_config(&config).await
    }

    /// [`connect`](PostgresStore::connect), with the connection's settings
    /// given as a `tokio_postgres::Config`.
    pub async fn connect_config(config: &Config) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| StoreError::Backend {
            message: "PostgresStore::connect needs a tokio runtime to run the \
                          connection on; outside one, connect a client yourself and \
                          use PostgresStore::from_client"
                .to_owned(),
            source: Some(Box::new(e)),
        })?;
        let database = describe(config);
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|e| StoreError::Backend {
                    message: format!("cannot connect to {}", database.display()),
                    source: Some(Box::new(e)),
                })?;
        // The task ends when the client is dropped or the connection fails;
        // a failure shows as the client's next call failing.
        runtime.spawn(async move {
            let _ = connection.await;
        });
        Self::set_up(client, database).await
    }

    /// A store on a client the host connected (with TLS, say) and whose
    /// connection the host drives. Sets up the store's tables (see the
    /// [Schema](PostgresStore#schema)). The client becomes the store's: no one
    /// else may run statements on it, as they would land inside the store's
    /// transactions.
    pub async fn from_client(client: Client) -> Result<Self, StoreError> {
        let name: String = client
            .query_one("SELECT current_database()::text", &[])
            .await
            .map_err(|e| StoreError::Backend {
                message: "cannot read which database the client is connected to".to_owned(),
                source: Some(Box::new(e)),
            })?
            .try_get(0)
            .map_err(|e| StoreError::Backend {
                message: "cannot read which database the client is connected to".to_owned(),
                source: Some(Box::new(e)),
            })?;
        Self::set_up(client, PathBuf::from(format!("postgres:///{name}"))).await
    }

    async fn set_up(mut client: Client, database: PathBuf) -> Result<Self, StoreError> {
        bring_schema_up_to_date(&mut client, &database).await?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                client: Mutex::new(client),
                lane: Lane::default(),
                database,
            }),
        })
    }

    /// What errors and `Debug` name the database by: `postgres://host:port/database`,
    /// without user or password.
    pub fn database(&self) -> &Path {
        &self.inner.database
    }

    /// Takes the lease on `object` for `holder` for `ttl`, by the server's
    /// clock: `Some` if it was free, had expired or was already
    /// `holder`'s, `None` if another holder has it.
    ///
    /// A lease taken over (free, expired, or another's before) gets the
    /// next fencing token of the object; a holder claiming a lease it still
    /// holds keeps its token and gets the new expiry. So each holder name
    /// must be one runner's (a host name and process id, say): two runners
    /// under one name would share a token.
    pub async fn claim(
        &self,
        object: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let micros = ttl_micros(ttl)?;
        let client = self.inner.client.lock().await;
        let row = client
            .query_opt(CLAIM, &[&object, &holder, &micros])
            .await
            .map_err(self.error(Some(object), "cannot claim the lease"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token: i64 = get(&row, 0).map_err(self.error(Some(object), "cannot read the lease"))?;
        let expires: i64 =
            get(&row, 1).map_err(self.error(Some(object), "cannot read the lease"))?;
        Ok(Some(Lease {
            object: object.to_owned(),
            holder: holder.to_owned(),
            token: token.unsigned_abs(),
            expires_at: from_micros(expires),
            ttl,
        }))
    }

    /// Extends `lease` by its time to live from now (the server's clock),
    /// if it is still held with its token; [`StoreError::Fenced`] if it
    /// expired or was taken over (a runner stops then: the lease's object
    /// is no longer its to save).
    pub async fn renew(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let micros = ttl_micros(lease.ttl)?;
        let token = token_sql(lease.token);
        let client = self.inner.client.lock().await;
        let object = lease.object.as_str();
        let row = client
            .query_opt(RENEW, &[&object, &token, &lease.holder, &micros])
            .await
            .map_err(self.error(Some(object), "cannot renew the lease"))?;
        let Some(row) = row else {
            let current = client
                .query_opt(CURRENT_TOKEN, &[&object])
                .await
                .map_err(self.error(Some(object), "cannot read the lease"))?
                .map(|row| get::<i64>(&row, 0))
                .transpose()
                .map_err(self.error(Some(object), "cannot read the lease"))?;
            return Err(StoreError::Fenced {
                object: object.to_owned(),
                token: lease.token,
                current: current.map(i64::unsigned_abs),
            });
        };
        let expires: i64 =
            get(&row, 0).map_err(self.error(Some(object), "cannot read the lease"))?;
        Ok(Lease {
            expires_at: from_micros(expires),
            ..lease.clone()
        })
    }

    /// Gives `lease` up: the object is free for the next claimant, who gets
    /// the next token. A lease no longer held with its token is left as it
    /// is.
    pub async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        let token = token_sql(lease.token);
        let client = self.inner.client.lock().await;
        client
            .execute(RELEASE, &[&lease.object, &token, &lease.holder])
            .await
            .map_err(self.error(Some(&lease.object), "cannot release the lease"))?;
        Ok(())
    }

    /// This store, with every save and replace fenced by `lease`: see
    /// [`FencedStore`].
    pub fn fenced(&self, lease: &Lease) -> FencedStore {
        FencedStore {
            store: self.clone(),
            object: lease.object.clone(),
            token: lease.token,
        }
    }

    /// The object types with a header, sorted.
    pub async fn objects(&self) -> Result<Vec<String>, StoreError> {
        let client = self.inner.client.lock().await;
        let rows = client
            .query("SELECT name FROM recsync_objects ORDER BY name", &[])
            .await
            .map_err(self.error(None, "cannot list objects"))?;
        rows.iter()
            .map(|r| get(r, 0))
            .collect::<Result<_, _>>()
            .map_err(self.error(None, "cannot list objects"))
    }

    fn damaged(&self, object: &str, place: Place, check: Check) -> StoreError {
        StoreError::Damaged {
            object: Some(object.to_owned()),
            path: self.inner.database.clone(),
            place,
            check,
        }
    }

    fn error<'a>(
        &'a self,
        object: Option<&'a str>,
        context: &'static str,
    ) -> impl Fn(tokio_postgres::Error) -> StoreError + 'a {
        pg_error(&self.inner.database, object, context)
    }

    async fn read(&self, object: &str) -> Result<Baseline, StoreError> {
        let fail = |context| self.error(Some(object), context);
        let mut client = self.inner.client.lock().await;
        // One snapshot: the header and the rows of one save.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(fail("cannot begin a read"))?;
        let found = tx
            .query_opt(
                &format!("SELECT {HEADER_COLUMNS} FROM recsync_objects WHERE name = $1"),
                &[&object],
            )
            .await
            .map_err(fail("cannot read the header"))?;
        let Some(found) = found else {
            self.verify_absent(&tx, object).await?;
            tx.commit().await.map_err(fail("cannot end the read"))?;
            return Ok(Baseline::new());
        };
        let stored = StoredHeader::from_row(&found)
            .map_err(|_| self.damaged(object, Place::Header, Check::HeaderChecksum))?;
        let header = stored
            .verify(object)
            .map_err(|check| self.damaged(object, Place::Header, check))?;
        let rows = tx
            .query(
                "SELECT id, record, checksum FROM recsync_entities WHERE object = $1",
                &[&object],
            )
            .await
            .map_err(fail("cannot read the entities"))?;
        tx.commit().await.map_err(fail("cannot end the read"))?;
        drop(client);
        // Checking and decoding 100,000 rows takes a good part of a
        // second: on the store's own thread, not the caller's executor.
        let (store, object) = (self.clone(), object.to_owned());
        self.inner
            .lane
            .run(move || store.decode(&object, &rows, header, &stored))
            .await?
    }

    /// The baseline of `object` from its verified header and its rows, each
    /// checked against its checksum, their count and sum against the
    /// header's.
    fn decode(
        &self,
        object: &str,
        rows: &[Row],
        header: BaselineHeader,
        stored: &StoredHeader,
    ) -> Result<Baseline, StoreError> {
        let prefix = row_prefix(object);
        let (mut count, mut sum) = (0u64, 0u64);
        let mut failure = None;
        let records = rows
            .iter()
            .map_while(|r| match self.decode_row(r, object, prefix) {
                Ok((record, crc)) => {
                    count = count.saturating_add(1);
                    sum = sum.wrapping_add(crc);
                    Some(record)
                }
                Err(e) => {
                    failure = Some(e);
                    None
                }
            });
        let baseline = Baseline::from_parts(header, records);
        if let Some(e) = failure {
            return Err(e);
        }
        let baseline = baseline.map_err(|source| StoreError::Baseline {
            object: object.to_owned(),
            source,
        })?;
        let expected = stored.count.unsigned_abs();
        if count != expected {
            return Err(self.damaged(
                object,
                Place::Header,
                Check::Count {
                    expected,
                    found: count,
                },
            ));
        }
        if sum != from_sql(stored.row_sum) {
            return Err(self.damaged(object, Place::Whole, Check::RowSet));
        }
        Ok(baseline)
    }

    /// No header is stored under `object`'s name. That is an object never
    /// saved only if no entity rows are stored under the name without a
    /// header and no header fails its checksum (it may be this object's,
    /// its name damaged).
    async fn verify_absent(&self, tx: &Transaction<'_>, object: &str) -> Result<(), StoreError> {
        let fail = |context| self.error(Some(object), context);
        let orphans = tx
            .query_opt(
                "SELECT 1 FROM recsync_entities WHERE object = $1 LIMIT 1",
                &[&object],
            )
            .await
            .map_err(fail("cannot look for rows without a header"))?;
        if orphans.is_some() {
            return Err(self.damaged(object, Place::Whole, Check::MissingHeader));
        }
        let headers = tx
            .query(
                &format!("SELECT name, {HEADER_COLUMNS} FROM recsync_objects"),
                &[],
            )
            .await
            .map_err(fail("cannot list the headers"))?;
        for row in &headers {
            let name: String = get(row, 0).map_err(fail("cannot list the headers"))?;
            let check = match StoredHeader::from_row_at(row, 1) {
                Ok(stored) => stored.verify(&name).err(),
                Err(_) => Some(Check::HeaderChecksum),
            };
            if let Some(check) = check {
                return Err(self.damaged(object, Place::Header, check));
            }
        }
        Ok(())
    }

    fn decode_row(
        &self,
        row: &Row,
        object: &str,
        prefix: Crc64,
    ) -> Result<(EntityRecord, u64), StoreError> {
        let fail = |context| self.error(Some(object), context);
        let id: &str = get(row, 0).map_err(fail("cannot read an entity id"))?;
        let at = || Place::Row {
            entity: EntityId::new(id),
        };
        let bytes: &[u8] = get(row, 1).map_err(fail("cannot read an entity"))?;
        let stored: i64 = get(row, 2).map_err(fail("cannot read a checksum"))?;
        let crc = row_check(prefix, id.as_bytes(), bytes);
        if stored != to_sql(crc) {
            return Err(self.damaged(object, at(), Check::RowChecksum));
        }
        let record =
            row::decode(bytes).map_err(|_| self.damaged(object, at(), Check::Unreadable))?;
        if record.id.as_str() != id {
            return Err(self.damaged(object, at(), Check::RowId));
        }
        Ok((record, crc))
    }

    /// Saves (`changes` is the commit's summary) or replaces (`None`)
    /// `object`'s baseline, fenced by `fence` if given.
    async fn write(
        &self,
        object: &str,
        baseline: &Baseline,
        changes: Option<&CommitSummary>,
        fence: Option<(&str, u64)>,
    ) -> Result<(), StoreError> {
        let fail = |context| self.error(Some(object), context);
        let header = HeaderValues::of(object, baseline.header())?;
        let mut client = self.inner.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(fail("cannot begin a transaction"))?;
        if let Some((lease, token)) = fence {
            check_fence(&tx, lease, token)
                .await
                .map_err(|e| e.into_store(self, lease))?;
        }
        // The header row, locked: every writer of the object takes this
        // lock first, so the checks below hold until the commit.
        let created = tx
            .query_opt(INSERT_HEADER, &[&object])
            .await
            .map_err(fail("cannot write the header"))?
            .is_some();
        let stored = if created {
            None
        } else {
            let row = tx
                .query_one(
                    &format!(
                        "SELECT {HEADER_COLUMNS} FROM recsync_objects WHERE name = $1 FOR UPDATE"
                    ),
                    &[&object],
                )
                .await
                .map_err(fail("cannot read the stored header"))?;
            Some(row)
        };
        let start = match changes {
            Some(summary) => {
                let expected = baseline.revision().saturating_sub(1);
                let stored = match &stored {
                    Some(row) => Some(self.stored_for_save(object, row)?),
                    None => None,
                };
                let found = stored.as_ref().map_or(0, |s| s.revision);
                if found != expected {
                    return Err(StoreError::Conflict {
                        object: object.to_owned(),
                        expected,
                        found,
                    });
                }
                // No header yet: the first save writes the whole baseline.
                stored.map(|s| (summary, s))
            }
            None => None,
        };
        let prefix = row_prefix(object);
        let (count, sum, ambiguous) = match start {
            Some((summary, stored)) => {
                let (count, sum) = write_touched(&tx, object, prefix, baseline, summary, &stored)
                    .await
                    .map_err(|e| e.into_store(self, object))?;
                let ambiguous = if summary.ambiguous {
                    Ambiguous::of(object, baseline)?
                } else {
                    Ambiguous::Keep(stored.ambiguous_sum)
                };
                (count, sum, ambiguous)
            }
            None => {
                let (count, sum) = write_whole(&tx, object, prefix, baseline)
                    .await
                    .map_err(|e| e.into_store(self, object))?;
                (count, sum, Ambiguous::of(object, baseline)?)
            }
        };
        header
            .write(&tx, count, sum, &ambiguous)
            .await
            .map_err(fail("cannot write the header"))?;
        if let Some(batch) = changes.and_then(|c| c.journal.as_deref()) {
            keep_journal(&tx, object, batch)
                .await
                .map_err(|e| e.into_store(self, object))?;
        }
        tx.commit().await.map_err(fail("cannot commit the save"))
    }

    /// The object's journal entries `query` asks for, in the order saved,
    /// filtered by the server and decoded on the store's thread.
    async fn list_journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let Some((conditions, values)) = journal_rows::conditions(query, '$', 2) else {
            return Ok(Vec::new());
        };
        let mut bound: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&object];
        for value in &values {
            bound.push(match value {
                Bound::Int(x) => x,
                Bound::Text(t) => t,
            });
        }
        let rows = {
            let client = self.inner.client.lock().await;
            client
                .query(&format!("{LIST_JOURNAL}{conditions} ORDER BY seq"), &bound)
                .await
                .map_err(self.error(Some(object), "cannot read the journal of"))?
        };
        let (store, object) = (self.clone(), object.to_owned());
        self.inner
            .lane
            .run(move || store.decode_journal(&object, &rows))
            .await?
    }

    fn decode_journal(&self, object: &str, rows: &[Row]) -> Result<Vec<JournalEntry>, StoreError> {
        let fail = |context| self.error(Some(object), context);
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = get(row, 0).map_err(fail("cannot read the journal of"))?;
            let text: &str = get(row, 1).map_err(fail("cannot read the journal of"))?;
            let entry = serde_json::from_str(text).map_err(|_| {
                self.damaged(object, Place::JournalRow { row: seq }, Check::JournalEntry)
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The stored header a save carries on from, verified: a save over a
    /// damaged header is refused (a load would refuse it too; `replace`
    /// starts over).
    fn stored_for_save(&self, object: &str, row: &Row) -> Result<StoredSums, StoreError> {
        let stored = StoredHeader::from_row(row)
            .map_err(|_| self.damaged(object, Place::Header, Check::HeaderChecksum))?;
        let header = stored
            .verify(object)
            .map_err(|check| self.damaged(object, Place::Header, check))?;
        Ok(StoredSums {
            revision: header.revision,
            count: stored.count.unsigned_abs(),
            sum: from_sql(stored.row_sum),
            ambiguous_sum: stored.ambiguous_sum,
        })
    }
}

#[async_trait]
impl AsyncStateStore for PostgresStore {
    /// Loads and verifies the object's header and rows in one snapshot
    /// (see the type's docs).
    async fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        self.read(object).await
    }

    /// Saves the rows the commit touched or removed, the header and the
    /// summary's journal batch, in one transaction, if the store holds the
    /// revision the commit started from (`baseline.revision() - 1`);
    /// [`StoreError::Conflict`] otherwise, with nothing written. An object
    /// with no header yet is written whole.
    async fn save(
        &self,
        object: &str,
        baseline: Arc<Baseline>,
        changed: Arc<CommitSummary>,
    ) -> Result<(), StoreError> {
        self.write(object, &baseline, Some(&changed), None).await
    }

    /// Writes the whole baseline, whatever revision the store holds; the
    /// journal stays as it is.
    async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError> {
        self.write(object, &baseline, None, None).await
    }

    /// Lists the object's journal rows (see the type's docs), filtered in
    /// SQL: a row that is not an entry is [`StoreError::Damaged`], naming
    /// the row.
    async fn journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.list_journal(object, query).await
    }

    /// Answers from the links index, the reservations and the entity rows'
    /// keys, in one transaction: four indexed statements, whatever the size
    /// of the baselines. The reservation is an insert that does nothing
    /// where a row exists (the table's key is the family, system and record
    /// id), so of two runners proposing one record at once, the second
    /// waits for the first's commit and finds its row. The index and the
    /// reservations are not covered by the checksums a load verifies.
    async fn route(&self, query: &RouteQuery<'_>) -> Result<Routes, StoreError> {
        let mut routes = Routes::new();
        let fail = |context| self.error(None, context);
        let others: Vec<&str> = query.others.iter().map(String::as_str).collect();
        let columns = |records: &[&(SystemId, String)]| -> (Vec<String>, Vec<String>) {
            records
                .iter()
                .map(|(s, id)| (s.as_str().to_owned(), id.clone()))
                .unzip()
        };
        let all: Vec<&(SystemId, String)> = query.propose.iter().chain(query.ask).collect();
        let mut client = self.inner.client.lock().await;
        // Read committed, whatever the role's default: a reservation that
        // meets a row another runner committed meanwhile finds it, rather
        // than failing to serialize.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(fail("cannot begin a transaction"))?;
        if !query.release.is_empty() {
            let released: Vec<&(SystemId, String)> = query.release.iter().collect();
            let (systems, ids) = columns(&released);
            tx.execute(
                RELEASE_ROUTES,
                &[&query.family, &query.mine, &systems, &ids],
            )
            .await
            .map_err(fail("cannot release reservations"))?;
        }
        if !all.is_empty() && !others.is_empty() {
            let (systems, ids) = columns(&all);
            let rows = tx
                .query(CLAIMED_RECORDS, &[&others, &systems, &ids])
                .await
                .map_err(fail("cannot read the links index"))?;
            for row in &rows {
                let system: &str = get(row, 0).map_err(fail("cannot read the links index"))?;
                let id: String = get(row, 1).map_err(fail("cannot read the links index"))?;
                routes.set_owner(SystemId::from(system), id, Owner::Other);
            }
        }
        let free: Vec<&(SystemId, String)> = query
            .propose
            .iter()
            .filter(|(s, id)| routes.owner(s, id).is_none())
            .collect();
        if query.reserve && !free.is_empty() {
            let (systems, ids) = columns(&free);
            tx.execute(RESERVE, &[&query.family, &query.mine, &systems, &ids])
                .await
                .map_err(fail("cannot reserve records for the shard"))?;
        }
        let open: Vec<&(SystemId, String)> = all
            .iter()
            .copied()
            .filter(|(s, id)| routes.owner(s, id).is_none())
            .collect();
        if !open.is_empty() {
            let (systems, ids) = columns(&open);
            let rows = tx
                .query(RESERVED, &[&query.family, &systems, &ids])
                .await
                .map_err(fail("cannot read the reservations"))?;
            for row in &rows {
                let system: &str = get(row, 0).map_err(fail("cannot read the reservations"))?;
                let id: String = get(row, 1).map_err(fail("cannot read the reservations"))?;
                let object: &str = get(row, 2).map_err(fail("cannot read the reservations"))?;
                let owner = if object == query.mine {
                    Owner::Mine
                } else {
                    Owner::Other
                };
                routes.set_owner(SystemId::from(system), id, owner);
            }
        }
        if !query.reserve {
            // A dry run: the proposals no one holds would be this shard's.
            for (system, id) in free {
                if routes.owner(system, id).is_none() {
                    routes.set_owner(system.clone(), id.clone(), Owner::Mine);
                }
            }
        }
        if !query.entities.is_empty() && !others.is_empty() {
            let entity_ids: Vec<&str> = query.entities.iter().map(EntityId::as_str).collect();
            let rows = tx
                .query(CLAIMED_ENTITIES, &[&others, &entity_ids])
                .await
                .map_err(fail("cannot read the entity ids"))?;
            for row in &rows {
                let id: &str = get(row, 0).map_err(fail("cannot read the entity ids"))?;
                routes.insert_entity(EntityId::new(id));
            }
        }
        tx.commit()
            .await
            .map_err(fail("cannot commit the reservations"))?;
        Ok(routes)
    }
}

/// A lease on an object type, taken with [`PostgresStore::claim`]: who
/// holds it, until when (by the server's clock), and its fencing token.
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    object: String,
    holder: String,
    token: u64,
    expires_at: DateTime<Utc>,
    ttl: Duration,
}

impl Lease {
    /// The object type (or shard's state key) the lease is on.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Who holds it.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token: drawn anew at every take-over of the object's
    /// lease, greater than every token before it, never reused.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// When it expires unless renewed, by the server's clock.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// The time to live it was claimed with; a renewal extends it by as
    /// much from then.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// A [`PostgresStore`] whose saves and replaces are fenced by a
/// [`Lease`]: what a runner that holds the lease on its object type (or
/// shard) saves through. Made by [`PostgresStore::fenced`].
///
/// Each [`save`](AsyncStateStore::save) and
/// [`replace`](AsyncStateStore::replace), of any object, first locks the
/// lease's row (`SELECT ... FOR SHARE`, inside the save's transaction) and
/// checks that the lease still carries this token and has not expired by
/// the server's clock; if not, it is [`StoreError::Fenced`] and nothing is
/// written. The lock holds until the save commits, so the lease cannot be
/// taken over in between: a save that passed the check commits before the
/// next holder's claim, whose first load then sees it. Saves still
/// compare revisions as the store's do, and write their journal batches
/// in the same transaction. Loads, [`route`](AsyncStateStore::route) and
/// [`journal`](AsyncStateStore::journal) go straight to the store.
///
/// Renewing the lease keeps its token, so a fenced store stays good for
/// the renewed lease.
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[derive(Debug, Clone)]
pub struct FencedStore {
    store: PostgresStore,
    object: String,
    token: u64,
}

impl FencedStore {
    /// The store underneath.
    pub fn store(&self) -> &PostgresStore {
        &self.store
    }

    /// The object type whose lease fences the writes.
    pub fn lease_object(&self) -> &str {
        &self.object
    }

    /// The fencing token the writes carry.
    pub fn token(&self) -> u64 {
        self.token
    }
}

#[async_trait]
impl AsyncStateStore for FencedStore {
    async fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        self.store.read(object).await
    }

    /// A save of the store's (compare-and-set), refused with
    /// [`StoreError::Fenced`] unless the lease still has this token.
    async fn save(
        &self,
        object: &str,
        baseline: Arc<Baseline>,
        changed: Arc<CommitSummary>,
    ) -> Result<(), StoreError> {
        self.store
            .write(
                object,
                &baseline,
                Some(&changed),
                Some((&self.object, self.token)),
            )
            .await
    }

    /// A replace, refused with [`StoreError::Fenced`] unless the lease
    /// still has this token.
    async fn replace(&self, object: &str, baseline: Arc<Baseline>) -> Result<(), StoreError> {
        self.store
            .write(object, &baseline, None, Some((&self.object, self.token)))
            .await
    }

    async fn route(&self, query: &RouteQuery<'_>) -> Result<Routes, StoreError> {
        self.store.route(query).await
    }

    async fn journal(
        &self,
        object: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.store.list_journal(object, query).await
    }
}

/// A failure inside a save's transaction, before it is named for a store.
enum WriteError {
    Pg(&'static str, tokio_postgres::Error),
    Store(StoreError),
}

impl WriteError {
    fn into_store(self, store: &PostgresStore, object: &str) -> StoreError {
        match self {
            WriteError::Pg(context, e) => store.error(Some(object), context)(e),
            WriteError::Store(e) => e,
        }
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> WriteError {
    move |e| WriteError::Pg(context, e)
}

/// Checks, with the lease row locked, that the lease on `object` still has
/// `token` and has not expired.
async fn check_fence(tx: &Transaction<'_>, object: &str, token: u64) -> Result<(), WriteError> {
    let row = tx
        .query_opt(FENCE, &[&object])
        .await
        .map_err(pg("cannot read the lease"))?;
    let (current, live) = match &row {
        Some(row) => (
            get::<i64>(row, 0).map_err(pg("cannot read the lease"))?,
            get::<Option<bool>>(row, 1)
                .map_err(pg("cannot read the lease"))?
                .unwrap_or(false),
        ),
        None => (0, false),
    };
    if live && current == token_sql(token) {
        return Ok(());
    }
    Err(WriteError::Store(StoreError::Fenced {
        object: object.to_owned(),
        token,
        current: live.then_some(current.unsigned_abs()),
    }))
}

/// Writes the rows of the entities `summary` names (deleting those the
/// baseline no longer has) and their links; returns the new count and sum.
async fn write_touched(
    tx: &Transaction<'_>,
    object: &str,
    prefix: Crc64,
    baseline: &Baseline,
    summary: &CommitSummary,
    stored: &StoredSums,
) -> Result<(u64, u64), WriteError> {
    let mut ids: Vec<&EntityId> = summary.touched.iter().chain(&summary.removed).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok((stored.count, stored.sum));
    }
    let names: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    let (mut count, mut sum) = (stored.count, stored.sum);
    // The rows they replace leave the count and the sum.
    let old = tx
        .query(DELETE_ENTITIES, &[&object, &names])
        .await
        .map_err(pg("cannot delete the old rows of"))?;
    for row in &old {
        let crc: i64 = get(row, 0).map_err(pg("cannot read a checksum of"))?;
        count = count.saturating_sub(1);
        sum = sum.wrapping_sub(from_sql(crc));
    }
    tx.execute(DELETE_LINKS, &[&object, &names])
        .await
        .map_err(pg("cannot delete the old links of"))?;
    let mut rows = RowBuf::default();
    let mut links = LinkBuf::default();
    for id in ids {
        if let Some(crc) = rows.push(baseline, object, prefix, id)? {
            count = count.saturating_add(1);
            sum = sum.wrapping_add(crc);
            links.push(baseline, id);
        }
    }
    if !rows.ids.is_empty() {
        let records: Vec<&[u8]> = rows.records().collect();
        tx.execute(INSERT_ENTITIES, &[&object, &rows.ids, &records, &rows.sums])
            .await
            .map_err(pg("cannot write the rows of"))?;
    }
    if !links.entities.is_empty() {
        tx.execute(
            INSERT_LINKS,
            &[&object, &links.entities, &links.systems, &links.records],
        )
        .await
        .map_err(pg("cannot write the links of"))?;
    }
    Ok((count, sum))
}

/// Appends `batch`'s entries to the object's journal with binary `COPY`,
/// numbered on from its last, and drops what its retention does not keep
/// as of its time, inside the save's transaction. Times are kept to the
/// microsecond, so ages are compared to it: an entry less than a
/// microsecond older than the cutoff may stay.
async fn keep_journal(
    tx: &Transaction<'_>,
    object: &str,
    batch: &JournalBatch,
) -> Result<(), WriteError> {
    if !batch.entries.is_empty() {
        let last: i64 = get(
            &tx.query_one(LAST_JOURNAL_SEQ, &[&object])
                .await
                .map_err(pg("cannot read the journal of"))?,
            0,
        )
        .map_err(pg("cannot read the journal of"))?;
        let sink = tx
            .copy_in(COPY_JOURNAL)
            .await
            .map_err(pg("cannot start writing the journal of"))?;
        let mut writer = pin!(BinaryCopyInWriter::new(
            sink,
            &[
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::TIMESTAMPTZ,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT
            ]
        ));
        let mut seq = last;
        for entry in &batch.entries {
            seq = seq.checked_add(1).ok_or_else(|| StoreError::Backend {
                message: format!("the journal of {object} has no numbers left"),
                source: None,
            })?;
            let run = journal_rows::run_sql(object, entry.run)?;
            let at = pg_time(object, entry.at)?;
            let json = journal_rows::encode(object, entry)?;
            writer
                .as_mut()
                .write(&[
                    &object,
                    &seq,
                    &run,
                    &at,
                    &entry.system.as_str(),
                    &entry.record_id,
                    &json,
                ])
                .await
                .map_err(pg("cannot write the journal of"))?;
        }
        writer
            .finish()
            .await
            .map_err(pg("cannot write the journal of"))?;
    }
    let retention = &batch.retention;
    let prune = pg("cannot drop old journal entries of");
    if let Some(cutoff) = retention.cutoff(batch.at) {
        let cutoff = pg_time(object, cutoff)?;
        tx.execute(PRUNE_JOURNAL_AGE, &[&object, &cutoff])
            .await
            .map_err(&prune)?;
    }
    match retention.runs {
        None => {}
        Some(0) => {
            tx.execute(CLEAR_JOURNAL, &[&object])
                .await
                .map_err(&prune)?;
        }
        Some(runs) => {
            let runs = journal_rows::runs_sql(runs);
            tx.execute(PRUNE_JOURNAL_RUNS, &[&object, &runs])
                .await
                .map_err(&prune)?;
        }
    }
    Ok(())
}

/// A time as a `timestamptz` parameter: to the microsecond, rounded down
/// (as the server keeps it), so a cutoff and the times it is compared with
/// round alike. A time the platform's clock type cannot hold is refused.
fn pg_time(object: &str, at: DateTime<Utc>) -> Result<SystemTime, StoreError> {
    let micros = at.timestamp_micros();
    let span = Duration::from_micros(micros.unsigned_abs());
    let time = if micros >= 0 {
        UNIX_EPOCH.checked_add(span)
    } else {
        UNIX_EPOCH.checked_sub(span)
    };
    time.ok_or_else(|| StoreError::Backend {
        message: format!("a journal time of {object} does not fit the database"),
        source: None,
    })
}

/// Writes every entity of `baseline` and its links with binary `COPY`,
/// after clearing the object's rows; returns the count and sum.
async fn write_whole(
    tx: &Transaction<'_>,
    object: &str,
    prefix: Crc64,
    baseline: &Baseline,
) -> Result<(u64, u64), WriteError> {
    tx.execute("DELETE FROM recsync_entities WHERE object = $1", &[&object])
        .await
        .map_err(pg("cannot clear the old rows of"))?;
    tx.execute("DELETE FROM recsync_links WHERE object = $1", &[&object])
        .await
        .map_err(pg("cannot clear the old links of"))?;
    let ids: Vec<EntityId> = baseline.entities().map(|e| e.id().clone()).collect();
    let (mut count, mut sum) = (0u64, 0u64);
    let mut links = LinkBuf::default();
    {
        let sink = tx
            .copy_in(COPY_ENTITIES)
            .await
            .map_err(pg("cannot start writing the rows of"))?;
        let mut writer = pin!(BinaryCopyInWriter::new(
            sink,
            &[Type::TEXT, Type::TEXT, Type::BYTEA, Type::INT8]
        ));
        let mut bytes = Vec::with_capacity(1024);
        for id in &ids {
            bytes.clear();
            let Some(json) = EntityJson::new(baseline, id) else {
                continue;
            };
            serialize(&mut bytes, &json, object, id)?;
            let crc = row_check(prefix, id.as_str().as_bytes(), &bytes);
            writer
                .as_mut()
                .write(&[&object, &id.as_str(), &bytes.as_slice(), &to_sql(crc)])
                .await
                .map_err(pg("cannot write the rows of"))?;
            count = count.saturating_add(1);
            sum = sum.wrapping_add(crc);
            links.push(baseline, id);
        }
        writer
            .finish()
            .await
            .map_err(pg("cannot write the rows of"))?;
    }
    let sink = tx
        .copy_in(COPY_LINKS)
        .await
        .map_err(pg("cannot start writing the links of"))?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT]
    ));
    for ((entity, system), record) in links
        .entities
        .iter()
        .zip(&links.systems)
        .zip(&links.records)
    {
        writer
            .as_mut()
            .write(&[&object, entity, system, record])
            .await
            .map_err(pg("cannot write the links of"))?;
    }
    writer
        .finish()
        .await
        .map_err(pg("cannot write the links of"))?;
    Ok((count, sum))
}

fn serialize(
    bytes: &mut Vec<u8>,
    json: &EntityJson<'_>,
    object: &str,
    id: &EntityId,
) -> Result<(), StoreError> {
    serde_json::to_writer(bytes, json).map_err(|e| StoreError::Backend {
        message: format!("cannot serialize entity {id} of {object}"),
        source: Some(Box::new(e)),
    })
}

/// Entity rows for an `unnest` insert: ids, serialized rows back to back,
/// checksums.
#[derive(Default)]
struct RowBuf<'b> {
    ids: Vec<&'b str>,
    bytes: Vec<u8>,
    ends: Vec<usize>,
    sums: Vec<i64>,
}

impl<'b> RowBuf<'b> {
    /// Adds the row of `id`, if the baseline has the entity; returns its
    /// checksum.
    fn push(
        &mut self,
        baseline: &Baseline,
        object: &str,
        prefix: Crc64,
        id: &'b EntityId,
    ) -> Result<Option<u64>, StoreError> {
        let Some(json) = EntityJson::new(baseline, id) else {
            return Ok(None);
        };
        let start = self.bytes.len();
        serialize(&mut self.bytes, &json, object, id)?;
        let row = self.bytes.get(start..).unwrap_or_default();
        let crc = row_check(prefix, id.as_str().as_bytes(), row);
        self.ids.push(id.as_str());
        self.ends.push(self.bytes.len());
        self.sums.push(to_sql(crc));
        Ok(Some(crc))
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.bytes.get(start..end).unwrap_or_default())
    }
}

/// Links for the index: entity, system, record id, as columns.
#[derive(Default)]
struct LinkBuf {
    entities: Vec<String>,
    systems: Vec<String>,
    records: Vec<String>,
}

impl LinkBuf {
    /// Every link of the entity `id` but a detached one, which the
    /// baseline's `find_linked` does not find either (a record there may be
    /// matched again, by any shard it routes to).
    fn push(&mut self, baseline: &Baseline, id: &EntityId) {
        let Some(entity) = baseline
            .find_entity(id)
            .and_then(|slot| baseline.entity_at(slot))
        else {
            return;
        };
        for (s, link) in entity.links.iter().enumerate() {
            let (Some(link), Some(system)) = (link, baseline.systems().get(s)) else {
                continue;
            };
            if link.status == LinkStatus::Detached {
                continue;
            }
            self.entities.push(id.as_str().to_owned());
            self.systems.push(system.as_str().to_owned());
            self.records.push(link.id.to_string());
        }
    }
}

/// The records held back as ambiguous, as a save writes them.
enum Ambiguous {
    /// Leave the stored text; its checksum is this.
    Keep(Option<i64>),
    /// Write this text (`None`: none held) and checksum.
    Write(Option<String>, Option<i64>),
}

impl Ambiguous {
    fn of(object: &str, baseline: &Baseline) -> Result<Self, StoreError> {
        let held = &baseline.header().ambiguous;
        if held.is_empty() {
            return Ok(Ambiguous::Write(None, None));
        }
        let text = serde_json::to_string(held).map_err(|e| StoreError::Backend {
            message: format!("cannot serialize the records held back of {object}"),
            source: Some(Box::new(e)),
        })?;
        let sum = to_sql(ambiguous_check(text.as_bytes()));
        Ok(Ambiguous::Write(Some(text), Some(sum)))
    }

    fn sum(&self) -> Option<i64> {
        match self {
            Ambiguous::Keep(sum) | Ambiguous::Write(_, sum) => *sum,
        }
    }
}

/// The header's own fields, as a save writes them.
struct HeaderValues<'o> {
    object: &'o str,
    revision: i64,
    fingerprint: Option<i64>,
    cursors: String,
}

impl<'o> HeaderValues<'o> {
    fn of(object: &'o str, header: &BaselineHeader) -> Result<Self, StoreError> {
        let revision = i64::try_from(header.revision).map_err(|_| StoreError::Backend {
            message: format!(
                "revision {} of {object} does not fit the database",
                header.revision
            ),
            source: None,
        })?;
        let cursors = serde_json::to_string(&header.cursors).map_err(|e| StoreError::Backend {
            message: format!("cannot serialize the cursors of {object}"),
            source: Some(Box::new(e)),
        })?;
        Ok(HeaderValues {
            object,
            revision,
            fingerprint: header.fingerprint.map(to_sql),
            cursors,
        })
    }

    async fn write(
        &self,
        tx: &Transaction<'_>,
        count: u64,
        sum: u64,
        ambiguous: &Ambiguous,
    ) -> Result<(), tokio_postgres::Error> {
        // A count past i64::MAX cannot be: the entities would not fit.
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let sum = to_sql(sum);
        let ambiguous_sum = ambiguous.sum();
        let check = header_check(
            self.object,
            self.revision,
            self.fingerprint,
            &self.cursors,
            count,
            sum,
            ambiguous_sum,
        );
        let (write, text) = match ambiguous {
            Ambiguous::Keep(_) => (false, None),
            Ambiguous::Write(text, _) => (true, text.as_deref()),
        };
        tx.execute(
            UPDATE_HEADER,
            &[
                &self.object,
                &self.revision,
                &self.fingerprint,
                &self.cursors,
                &write,
                &text,
                &ambiguous_sum,
                &count,
                &sum,
                &to_sql(check),
            ],
        )
        .await?;
        Ok(())
    }
}

/// An object's header row as read.
struct StoredHeader {
    revision: i64,
    fingerprint: Option<i64>,
    cursors: String,
    ambiguous: Option<String>,
    ambiguous_sum: Option<i64>,
    count: i64,
    row_sum: i64,
    checksum: i64,
}

/// What a save carries on from.
struct StoredSums {
    revision: u64,
    count: u64,
    sum: u64,
    ambiguous_sum: Option<i64>,
}

impl StoredHeader {
    /// Reads [`HEADER_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Self::from_row_at(row, 0)
    }

    /// Reads [`HEADER_COLUMNS`] from column `at` on.
    fn from_row_at(row: &Row, at: usize) -> Result<Self, tokio_postgres::Error> {
        Ok(StoredHeader {
            revision: get(row, at)?,
            fingerprint: get(row, at + 1)?,
            cursors: get(row, at + 2)?,
            ambiguous: get(row, at + 3)?,
            ambiguous_sum: get(row, at + 4)?,
            count: get(row, at + 5)?,
            row_sum: get(row, at + 6)?,
            checksum: get(row, at + 7)?,
        })
    }

    /// The baseline header, verified against its checksum, the records
    /// held back as ambiguous against theirs.
    fn verify(&self, object: &str) -> Result<BaselineHeader, Check> {
        let expected = header_check(
            object,
            self.revision,
            self.fingerprint,
            &self.cursors,
            self.count,
            self.row_sum,
            self.ambiguous_sum,
        );
        if to_sql(expected) != self.checksum || self.count < 0 {
            return Err(Check::HeaderChecksum);
        }
        let ambiguous = match (&self.ambiguous, self.ambiguous_sum) {
            (None, None) => AmbiguousRecords::default(),
            (Some(text), Some(sum)) if to_sql(ambiguous_check(text.as_bytes())) == sum => {
                serde_json::from_str(text).map_err(|_| Check::Unreadable)?
            }
            _ => return Err(Check::HeaderChecksum),
        };
        Ok(BaselineHeader {
            revision: u64::try_from(self.revision).map_err(|_| Check::Unreadable)?,
            fingerprint: self.fingerprint.map(from_sql),
            cursors: serde_json::from_str(&self.cursors).map_err(|_| Check::Unreadable)?,
            ambiguous,
        })
    }
}

/// Creates the store's tables, or brings them up to date, under an
/// advisory lock (see [Schema](PostgresStore#schema)).
async fn bring_schema_up_to_date(client: &mut Client, at: &Path) -> Result<(), StoreError> {
    let fail = |context| pg_error(at, None, context);
    let tx = client
        .transaction()
        .await
        .map_err(fail("cannot begin setting up the schema"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(fail("cannot lock the schema"))?;
    let found = tx
        .query_one(FIND_TABLES, &[])
        .await
        .map_err(fail("cannot list the store's tables"))?;
    let mut has = [false; 1 + DATA_TABLES.len()];
    for (i, slot) in has.iter_mut().enumerate() {
        *slot = get(&found, i).map_err(fail("cannot list the store's tables"))?;
    }
    let [schema_table, data @ ..] = has;
    let layout = |place| StoreError::Damaged {
        object: None,
        path: at.to_path_buf(),
        place,
        check: Check::Layout,
    };
    // The tables a database of `version` has, and does not.
    let missing = |present: &[bool], version: i32| -> Vec<String> {
        DATA_TABLES
            .iter()
            .zip(present)
            .filter(|((_, since), p)| *since <= version && !**p)
            .map(|((t, _), _)| (*t).to_owned())
            .collect()
    };
    let version: i32 = if schema_table {
        let version = tx
            .query_opt("SELECT version FROM recsync_schema WHERE id = 1", &[])
            .await
            .map_err(fail("cannot read the schema version"))?;
        let Some(version) = version else {
            return Err(layout(Place::Whole));
        };
        let version: i32 = get(&version, 0).map_err(fail("cannot read the schema version"))?;
        // The version first: a newer schema may keep other tables.
        if version > SCHEMA_VERSION {
            return Err(StoreError::Format {
                object: None,
                path: at.to_path_buf(),
                found: u64::from(version.unsigned_abs()),
                supported: u64::from(SCHEMA_VERSION.unsigned_abs()),
            });
        }
        if version < 1 {
            return Err(layout(Place::SchemaVersion {
                found: i64::from(version),
            }));
        }
        let gone = missing(&data, version);
        if !gone.is_empty() {
            return Err(layout(Place::Tables { missing: gone }));
        }
        version
    } else if data.iter().any(|p| *p) {
        // Tables without a version: nothing says what they are.
        return Err(layout(Place::Tables {
            missing: vec!["recsync_schema".to_owned()],
        }));
    } else {
        0
    };
    if version == SCHEMA_VERSION {
        return tx.commit().await.map_err(fail("cannot set up the schema"));
    }
    let from = usize::try_from(version).unwrap_or(0);
    for step in STEPS.get(from..).unwrap_or_default() {
        tx.batch_execute(step)
            .await
            .map_err(fail("cannot set up the schema"))?;
    }
    tx.execute(SET_SCHEMA_VERSION, &[&SCHEMA_VERSION])
        .await
        .map_err(fail("cannot record the schema version"))?;
    tx.commit().await.map_err(fail("cannot set up the schema"))
}

/// The server and database a configuration names, without user or
/// password: `postgres://host:port,host:port/database`.
fn describe(config: &Config) -> PathBuf {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("[{}]:{port}", path.display()),
            }
        })
        .collect();
    let database = config.get_dbname().or(config.get_user()).unwrap_or("");
    PathBuf::from(format!("postgres://{}/{database}", hosts.join(",")))
}

fn pg_error<'a>(
    at: &'a Path,
    object: Option<&'a str>,
    context: &'static str,
) -> impl Fn(tokio_postgres::Error) -> StoreError + 'a {
    move |e| {
        // The server found its own pages or indexes damaged.
        if matches!(
            e.code(),
            Some(c) if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED
        ) {
            return StoreError::Damaged {
                object: object.map(str::to_owned),
                path: at.to_path_buf(),
                place: Place::Whole,
                check: Check::Database,
            };
        }
        let message = match object {
            Some(object) if context.ends_with(" of") => format!("{context} {object}"),
            _ => context.to_owned(),
        };
        StoreError::Backend {
            message,
            source: Some(Box::new(e)),
        }
    }
}

/// A column's value; a value of another type (or `NULL` where none may
/// be) is an error.
fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    i: usize,
) -> Result<T, tokio_postgres::Error> {
    row.try_get(i)
}

fn ttl_micros(ttl: Duration) -> Result<i64, StoreError> {
    i64::try_from(ttl.as_micros()).map_err(|_| StoreError::Backend {
        message: format!("a lease's time to live of {ttl:?} is too long"),
        source: None,
    })
}

fn token_sql(token: u64) -> i64 {
    i64::try_from(token).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn to_sql(x: u64) -> i64 {
    i64::from_ne_bytes(x.to_ne_bytes())
}

fn from_sql(x: i64) -> u64 {
    u64::from_ne_bytes(x.to_ne_bytes())
}

fn row_prefix(object: &str) -> Crc64 {
    let mut c = Crc64::new();
    c.field(b"recsync postgres row 1");
    c.field(object.as_bytes());
    c
}

fn row_check(prefix: Crc64, id: &[u8], record: &[u8]) -> u64 {
    let mut c = prefix;
    c.field(id);
    c.field(record);
    c.finish()
}

fn ambiguous_check(text: &[u8]) -> u64 {
    let mut c = Crc64::new();
    c.field(b"recsync postgres ambiguous 1");
    c.field(text);
    c.finish()
}

fn header_check(
    object: &str,
    revision: i64,
    fingerprint: Option<i64>,
    cursors: &str,
    count: i64,
    row_sum: i64,
    ambiguous_sum: Option<i64>,
) -> u64 {
    let mut c = Crc64::new();
    c.field(b"recsync postgres header 1");
    c.field(object.as_bytes());
    c.update(&revision.to_le_bytes());
    match fingerprint {
        Some(f) => {
            c.update(&[1]);
            c.update(&f.to_le_bytes());
        }
        None => c.update(&[0]),
    }
    c.field(cursors.as_bytes());
    c.update(&count.to_le_bytes());
    c.update(&row_sum.to_le_bytes());
    match ambiguous_sum {
        Some(sum) => {
            c.update(&[1]);
            c.update(&sum.to_le_bytes());
        }
        None => c.update(&[0]),
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_names_no_credentials() {
        let config: Config = "postgres://alice:s3cret@db.internal:6543/state"
            .parse()
            .unwrap();
        let text = describe(&config).display().to_string();
        assert_eq!(text, "postgres://db.internal:6543/state");
        let config: Config = "host=/run/pg user=bob password=hunter2".parse().unwrap();
        let text = describe(&config).display().to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(text, "postgres://[/run/pg]:5432/bob");
    }

    #[test]
    fn the_header_checksum_covers_every_field() {
        let base = header_check("contacts", 3, Some(7), "{}", 10, 99, None);
        for other in [
            header_check("contactz", 3, Some(7), "{}", 10, 99, None),
            header_check("contacts", 4, Some(7), "{}", 10, 99, None),
            header_check("contacts", 3, None, "{}", 10, 99, None),
            header_check("contacts", 3, Some(7), "{ }", 10, 99, None),
            header_check("contacts", 3, Some(7), "{}", 11, 99, None),
            header_check("contacts", 3, Some(7), "{}", 10, 98, None),
            header_check("contacts", 3, Some(7), "{}", 10, 99, Some(0)),
        ] {
            assert_ne!(base, other);
        }
    }
}

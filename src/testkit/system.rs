//! [`MemorySystem`] and [`apply`]: a plan executed on records in memory,
//! with no connector and no runtime, for tests of the engine.

use std::fmt;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use super::write::{self, Marks};
use crate::connector::{Applied, ConnectorError};
use crate::engine::{OpOutcome, Outcomes};
use crate::model::{Record, Snapshot, SystemId};
use crate::plan::{OpKind, SyncPlan, WriteOp};

/// One system's records in memory, that write ops are applied to as
/// [`MemoryConnector`](super::MemoryConnector) applies them: for tests that
/// plan, execute and commit without a connector or an async runtime (see
/// [`apply`]).
///
/// Records are kept in the order they were put or created. A create gets
/// the next generated id (`"{prefix}{n}"`, the prefix being `"{system}-"`
/// unless [set](Self::id_prefix)), keeps the op's correlation key
/// (refusing one a record already has) and holds the fields written. An
/// update sets only the fields it writes (a field written empty, `null` or
/// `""`, is stored as sent, so it holds nothing); a delete removes the
/// record. Each write gives the record the next version (`"1"` for a
/// create) and stamps `updated_at` and the changed fields' timestamps with
/// the time [`apply`] is given; an op that expects another version than
/// the record's fails. [`versions`](Self::versions),
/// [`timestamps`](Self::timestamps) and
/// [`external_ids`](Self::external_ids) turn these off, for a system that
/// has none.
///
/// What a person does is done with [`insert`](Self::insert),
/// [`edit`](Self::edit) and [`remove`](Self::remove) (as a write would:
/// a new version, new timestamps), or to the records directly:
/// [`put`](Self::put) (a record as given), [`record_mut`](Self::record_mut).
///
/// `Debug` shows counts, never record data.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use recsync::testkit::{self, MemorySystem};
/// use recsync::{Baseline, Field, FieldMap, Record, SyncEngine};
///
/// let engine = SyncEngine::new(
///     FieldMap::builder()
///         .systems(["crm", "shop"])
///         .key("email")
///         .field(Field::new("email"))
///         .field(Field::new("name"))
///         .build()?,
/// );
/// let mut systems = [MemorySystem::new("crm"), MemorySystem::new("shop")];
/// systems[0].put(Record::new("c1").field("email", "ada@example.com").field("name", "Ada"));
///
/// let mut baseline = Baseline::new();
/// let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
/// let plan = engine.plan(&baseline, &testkit::snapshots(&systems))?;
/// let outcomes = testkit::apply(&plan, &mut systems, at);
/// engine.commit(&mut baseline, &plan, &outcomes)?;
///
/// let copy = systems[1].record("shop-1").unwrap();
/// assert_eq!(copy.get("name").and_then(|v| v.as_str()), Some("Ada"));
/// assert_eq!(copy.version.as_deref(), Some("1"));
/// assert_eq!(copy.updated_at, Some(at));
/// assert_eq!(baseline.find_linked("shop", "shop-1").and_then(|e| e.link("crm")), Some("c1"));
///
/// // Synced: the next plan has nothing to write.
/// assert!(engine.plan(&baseline, &testkit::snapshots(&systems))?.ops.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct MemorySystem {
    system: SystemId,
    id_prefix: String,
    /// The number of the last id handed out.
    last_id: u64,
    records: IndexMap<String, Record>,
    versions: bool,
    timestamps: bool,
    external_ids: bool,
}

impl MemorySystem {
    /// An empty system named `system`, with versions, timestamps and
    /// external ids.
    pub fn new(system: impl Into<SystemId>) -> Self {
        let system = system.into();
        MemorySystem {
            id_prefix: format!("{system}-"),
            system,
            last_id: 0,
            records: IndexMap::new(),
            versions: true,
            timestamps: true,
            external_ids: true,
        }
    }

    /// The prefix of generated record ids (default `"{system}-"`).
    #[must_use]
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = prefix.into();
        self
    }

    /// Whether writes give versions (default on). Off, a write leaves a
    /// record's version as it was, and an op's expected version is not
    /// checked, as in a system without versions.
    #[must_use]
    pub fn versions(mut self, on: bool) -> Self {
        self.versions = on;
        self
    }

    /// Whether writes stamp `updated_at` and the changed fields'
    /// timestamps (default on). Off, a write leaves the timestamps as they
    /// were, as in a system that reports none of its own.
    #[must_use]
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Whether creates keep their correlation key as an external id
    /// (default on), reported as [`Record::correlation`] and unique among
    /// the records.
    #[must_use]
    pub fn external_ids(mut self, on: bool) -> Self {
        self.external_ids = on;
        self
    }

    /// The system's name.
    pub fn system(&self) -> &SystemId {
        &self.system
    }

    /// Adds `record` as a person would, or replaces the record with its id
    /// (in its place). Its versions and timestamps are kept as given. An id
    /// of the generated form is never handed out again. A record marked
    /// [`deleted`](Record::deleted) (a tombstone) removes the record with
    /// its id, as a person's delete: the system holds live records only, so
    /// its snapshots never list a deleted one and writes to it are
    /// `NotFound`.
    pub fn put(&mut self, record: Record) {
        if let Some(n) = write::generated_number(&self.id_prefix, &record.id) {
            self.last_id = self.last_id.max(n);
        }
        if record.deleted {
            self.records.shift_remove(&record.id);
            return;
        }
        self.records.insert(record.id.clone(), record);
    }

    /// A new generated id, for a record a person makes (then
    /// [`put`](Self::put)); used up, as a create's is.
    pub fn new_id(&mut self) -> String {
        self.last_id = self.last_id.saturating_add(1);
        write::generated_id(&self.id_prefix, self.last_id)
    }

    /// A person creates a record at `at`, as a create would make it (less
    /// a correlation key); returns its new id.
    pub fn insert<K, V>(
        &mut self,
        fields: impl IntoIterator<Item = (K, V)>,
        at: DateTime<Utc>,
    ) -> String
    where
        K: Into<String>,
        V: Into<Value>,
    {
        let id = self.new_id();
        let fields = fields.into_iter().map(|(k, v)| (k.into(), v.into()));
        let record = write::created(id.clone(), fields, None, self.marks(at));
        self.records.insert(id.clone(), record);
        id
    }

    /// A person edits the record `id` at `at`, as an update would: the
    /// fields given take their values (those whose value changed get `at`
    /// as their timestamp); the version moves on and `updated_at` is `at`.
    /// A change made through [`record_mut`](Self::record_mut) instead moves
    /// no version on, and the engine takes a record whose version it has
    /// seen as unchanged.
    pub fn edit<K, V>(
        &mut self,
        id: &str,
        fields: impl IntoIterator<Item = (K, V)>,
        at: DateTime<Utc>,
    ) -> Result<(), ConnectorError>
    where
        K: Into<String>,
        V: Into<Value>,
    {
        let marks = self.marks(at);
        let record = self
            .records
            .get_mut(id)
            .ok_or_else(|| write::not_found(id))?;
        let fields = fields.into_iter().map(|(k, v)| (k.into(), v.into()));
        write::updated(record, fields, marks);
        Ok(())
    }

    /// How this system marks a write made at `at`.
    fn marks(&self, at: DateTime<Utc>) -> Marks {
        Marks {
            at: self.timestamps.then_some(at),
            versions: self.versions,
        }
    }

    /// The record `id`.
    pub fn record(&self, id: &str) -> Option<&Record> {
        self.records.get(id)
    }

    /// The record `id`, to change as a person would (keep its `id`).
    pub fn record_mut(&mut self, id: &str) -> Option<&mut Record> {
        self.records.get_mut(id)
    }

    /// Removes the record `id`, as a person deleting it would.
    pub fn remove(&mut self, id: &str) -> Option<Record> {
        self.records.shift_remove(id)
    }

    /// Removes every record.
    pub fn clear(&mut self) {
        self.records.clear();
    }

    /// Whether the system has the record `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.records.contains_key(id)
    }

    /// Every record, in the order put or created.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Record> + ExactSizeIterator + '_ {
        self.records.values()
    }

    /// How many records the system has.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the system has no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, as a complete snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::complete(
            self.system.clone(),
            self.records.values().cloned().collect(),
        )
    }

    /// Applies one write op made at `at`, as a connector would: what it
    /// made, or why it failed (an op for another system, a record not
    /// there, a stale expected version, a correlation key taken).
    pub fn apply(&mut self, op: &WriteOp, at: DateTime<Utc>) -> Result<Applied, ConnectorError> {
        write::check_system(op, &self.system)?;
        let marks = self.marks(at);
        let fields = op
            .fields
            .iter()
            .map(|w| (w.native.as_str().to_owned(), w.value.clone()));
        if op.kind == OpKind::Create {
            let correlation = op.correlation.clone().filter(|_| self.external_ids);
            if let Some(key) = &correlation {
                let holder = self.records().find(|r| r.correlation.as_ref() == Some(key));
                if let Some(holder) = holder {
                    return Err(write::taken(key, &holder.id));
                }
            }
            let id = self.new_id();
            let record = write::created(id.clone(), fields, correlation, marks);
            let applied = write::applied(op, &id, record.version.clone());
            self.records.insert(id, record);
            return Ok(applied);
        }
        let id = write::target(op)?;
        let Some(record) = self.records.get_mut(id) else {
            return Err(write::not_found(id));
        };
        if self.versions {
            write::check_version(op, id, record.version.as_deref())?;
        }
        if op.kind == OpKind::Delete {
            write::moved_on(record, marks);
            let version = record.version.clone();
            self.records.shift_remove(id);
            return Ok(write::applied(op, id, version));
        }
        write::updated(record, fields, marks);
        Ok(write::applied(op, id, record.version.clone()))
    }

    /// What [`apply`](Self::apply) would report for `op`, without doing
    /// it: a create's new id is used up.
    fn lie(&mut self, op: &WriteOp) -> Applied {
        let versions = self.versions;
        let version = |current: Option<&str>| versions.then(|| write::next_version(current));
        if op.kind == OpKind::Create {
            let version = version(None);
            let id = self.new_id();
            return write::applied(op, &id, version);
        }
        let id = op.record_id.as_deref().unwrap_or_default();
        let current = self.records.get(id).and_then(|r| r.version.as_deref());
        write::applied(op, id, version(current))
    }
}

impl fmt::Debug for MemorySystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySystem")
            .field("system", &self.system)
            .field("records", &self.records.len())
            .field("versions", &self.versions)
            .field("timestamps", &self.timestamps)
            .field("external_ids", &self.external_ids)
            .finish_non_exhaustive()
    }
}

/// What becomes of one op when [`apply_with`] executes a plan: the faults
/// a test of crash safety and failed writes injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fate {
    /// Applied, and its outcome reported (failed, if the system refused
    /// it).
    Applied,
    /// Not applied, and reported failed.
    Failed,
    /// Applied, but its outcome never reported, as when the process dies
    /// before it is recorded.
    Lost,
    /// Not applied, but reported applied, as a connector that lies: a
    /// create reports the id it would have made (used up), an update or a
    /// delete the version it would have given.
    Lied,
    /// Neither applied nor reported: the run stopped before it.
    Skipped,
}

/// Applies every op of `plan` at time `at` to the system it is for, in the
/// plan's order; returns each op's outcome, to
/// [commit](crate::SyncEngine::commit).
///
/// An op for a system not among `systems` fails. See [`MemorySystem`] for
/// what each op does, and [`apply_with`] to make chosen ops fail.
pub fn apply(plan: &SyncPlan, systems: &mut [MemorySystem], at: DateTime<Utc>) -> Outcomes {
    apply_with(plan, systems, at, |_, _| Fate::Applied)
}

/// Executes `plan` as [`apply`] does, each op as `fate` says: it is given
/// the op's position in `plan.ops` and the op.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use recsync::testkit::{self, Fate, MemorySystem};
/// use recsync::{Baseline, Field, FieldMap, OpOutcome, Record, SyncEngine};
///
/// let engine = SyncEngine::new(
///     FieldMap::builder()
///         .systems(["crm", "shop"])
///         .key("email")
///         .field(Field::new("email"))
///         .build()?,
/// );
/// let mut systems = [MemorySystem::new("crm"), MemorySystem::new("shop")];
/// systems[0].put(Record::new("c1").field("email", "ada@example.com"));
/// systems[0].put(Record::new("c2").field("email", "bob@example.com"));
/// let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
///
/// let mut baseline = Baseline::new();
/// let plan = engine.plan(&baseline, &testkit::snapshots(&systems))?;
/// let outcomes = testkit::apply_with(&plan, &mut systems, at, |i, _| {
///     if i == 0 { Fate::Failed } else { Fate::Applied }
/// });
/// assert!(matches!(outcomes.get(plan.ops[0].id), Some(OpOutcome::Failed { .. })));
/// assert_eq!(systems[1].len(), 1);
///
/// // The failed create is planned again.
/// engine.commit(&mut baseline, &plan, &outcomes)?;
/// let again = engine.plan(&baseline, &testkit::snapshots(&systems))?;
/// assert_eq!(again.ops.len(), 1);
/// assert_eq!(again.ops[0].id, plan.ops[0].id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn apply_with(
    plan: &SyncPlan,
    systems: &mut [MemorySystem],
    at: DateTime<Utc>,
    mut fate: impl FnMut(usize, &WriteOp) -> Fate,
) -> Outcomes {
    let mut outcomes = Outcomes::new();
    for (i, op) in plan.ops.iter().enumerate() {
        let fate = fate(i, op);
        let system = systems.iter_mut().find(|s| s.system == op.system);
        let outcome = match (fate, system) {
            (Fate::Skipped, _) | (Fate::Lost, None) => continue,
            (Fate::Failed, _) => OpOutcome::failed("write failed (injected)"),
            (_, None) => {
                OpOutcome::failed(format!("no system {} among the systems given", op.system))
            }
            (Fate::Applied, Some(system)) => system.apply(op, at).into(),
            (Fate::Lost, Some(system)) => {
                let _ = system.apply(op, at);
                continue;
            }
            (Fate::Lied, Some(system)) => system.lie(op).into(),
        };
        outcomes.record(op.id, outcome);
    }
    outcomes
}

/// Every system's records, as complete snapshots, in the order given.
pub fn snapshots(systems: &[MemorySystem]) -> Vec<Snapshot> {
    systems.iter().map(MemorySystem::snapshot).collect()
}

//! Shared by the bench binaries: the seeded data ([`data`]), the floor
//! ([`floor`]), the typical user's version ([`typical`]), and the data in
//! recsync's own forms (here).

pub mod data;
pub mod floor;
pub mod typical;

use chrono::DateTime;
use recsync::{Baseline, Field, FieldMap, Fields, Outcomes, Record, Snapshot, SyncEngine};

pub use data::{GenRecord, Spec, FIELDS, SYSTEMS};

/// Which state of the data: what the initial sync saw, or what the run being
/// planned sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Every system alike, as at the initial sync.
    Initial,
    /// After this run's edits, deletes and creates.
    Changed,
}

/// Every record of `state`, converted by `convert`, per system in id order.
/// Each vector has exactly the capacity it needs, so memory figures carry no
/// growth slack.
pub fn per_system<T>(
    spec: &Spec,
    state: State,
    mut convert: impl FnMut(GenRecord) -> T,
) -> Vec<Vec<T>> {
    let cap = match state {
        State::Initial => spec.n,
        State::Changed => spec.n + spec.created_per_system(),
    };
    let mut out: Vec<Vec<T>> = (0..spec.systems).map(|_| Vec::with_capacity(cap)).collect();
    let mut push = |g: GenRecord| {
        let s = g.system;
        out[s].push(convert(g));
    };
    match state {
        State::Initial => spec.initial(&mut push),
        State::Changed => spec.changed(&mut push),
    }
    for v in &mut out {
        v.shrink_to_fit();
    }
    out
}

/// The map: 20 fields named alike in every system, matched by email
/// (case-insensitive), last-write-wins everywhere.
pub fn engine(systems: usize) -> SyncEngine {
    let mut map = FieldMap::builder()
        .object("contacts")
        .systems(SYSTEMS[..systems].iter().copied())
        .key("email");
    for name in FIELDS {
        let field = Field::new(name);
        map = map.field(if name == "email" {
            field.case_insensitive()
        } else {
            field
        });
    }
    SyncEngine::new(map.build().expect("the bench map is valid"))
}

/// A generated record as a connector would hand it to recsync: field names
/// of its own (shared once it is in a `Snapshot`), `updated_at`, and a version where `versions` is on.
pub fn to_record(g: GenRecord, versions: bool) -> Record {
    let id = g.id();
    let mut r = Record::new(id);
    r.fields = Fields::with_capacity(FIELDS.len());
    for (name, v) in FIELDS.iter().zip(g.values) {
        r.fields.insert(name, v);
    }
    r.updated_at = DateTime::from_timestamp(g.updated_at, 0);
    if versions {
        r.version = Some(g.version.to_string());
    }
    r
}

/// Complete snapshots of every system in `state`.
pub fn snapshots(spec: &Spec, state: State, versions: bool) -> Vec<Snapshot> {
    per_system(spec, state, |g| to_record(g, versions))
        .into_iter()
        .enumerate()
        .map(|(s, records)| Snapshot::complete(SYSTEMS[s], records))
        .collect()
}

/// The baseline recsync holds after the initial sync: the initial snapshots
/// planned (every record linked by email, nothing to write) and committed.
pub fn synced(engine: &SyncEngine, spec: &Spec, versions: bool) -> Baseline {
    let initial = snapshots(spec, State::Initial, versions);
    let mut baseline = Baseline::new();
    let plan = engine.plan(&baseline, &initial).expect("initial plan");
    assert!(plan.ops.is_empty(), "the initial systems agree");
    engine
        .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
        .expect("initial commit");
    assert_eq!(baseline.len(), spec.n);
    baseline
}

/// A partial snapshot of the first system with `k` edited records.
pub fn increment(spec: &Spec, k: usize, versions: bool) -> Snapshot {
    let mut records = Vec::with_capacity(k);
    spec.increment(k, |g| records.push(to_record(g, versions)));
    Snapshot::partial(SYSTEMS[0], records)
}

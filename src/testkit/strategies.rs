//! Proptest strategies for your own property tests (feature `proptest`):
//! [values], [records](record), [snapshots](snapshot),
//! [conflict policies](conflict_policy), [field maps](field_map) with
//! directions and policies, and [edit histories](edit_history) (sequences of
//! user edits on N systems, with sync points) that [`Edit::apply`] plays
//! against [`MemoryConnector`]s.
//!
//! Values are drawn from small sets so that collisions, conflicts, ties and
//! empty values happen often; timestamps fall on whole minutes in one hour
//! of 2026-01-01, so last-write-wins sees ties as well as clear winners.
//!
//! ```
//! use proptest::prelude::*;
//! use recsync::testkit::strategies::{field_map, snapshot};
//! use recsync::{Baseline, SyncEngine};
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(16))]
//!     // In your tests, mark it #[test].
//!     fn planning_never_fails(
//!         map in field_map(&["crm", "shop"], &["email", "phone"]),
//!         crm in snapshot("crm", &["email", "phone"], 4),
//!         shop in snapshot("shop", &["email", "phone"], 4),
//!     ) {
//!         let engine = SyncEngine::new(map);
//!         prop_assert!(engine.plan(&Baseline::new(), &[crm, shop]).is_ok());
//!     }
//! }
//! # planning_never_fails();
//! ```

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

use super::MemoryConnector;
use crate::mapping::{Direction, Field, FieldMap};
use crate::model::{Record, Snapshot, SystemId};
use crate::policy::{ConflictPolicy, Fallback};

/// 2026-01-01T00:00:00Z, the start of the hour timestamps fall in.
fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Small JSON values that collide often: `null`, `""`, booleans, small
/// integers and one- or two-letter strings (in either case, so case-folding
/// normalizations matter).
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use recsync::testkit::strategies::values;
///
/// let mut runner = TestRunner::deterministic();
/// let value = values().new_tree(&mut runner).unwrap().current();
/// assert!(value.is_null() || value.is_boolean() || value.is_i64() || value.is_string());
/// ```
pub fn values() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        1 => Just(Value::Null),
        1 => Just(Value::from("")),
        1 => any::<bool>().prop_map(Value::from),
        3 => (-2i64..6).prop_map(Value::from),
        4 => select(vec!["a", "b", "A", "ab", "Ab", "x"]).prop_map(Value::from),
    ]
}

/// Values that are never [empty](crate::is_empty_value): what a key field
/// holds.
pub fn non_empty_values() -> impl Strategy<Value = Value> + Clone {
    values().prop_filter("non-empty", |v| !crate::is_empty_value(v))
}

/// A timestamp on a whole minute within the first hour of 2026-01-01.
pub fn timestamps() -> impl Strategy<Value = DateTime<Utc>> + Clone {
    (0i64..60).prop_map(|m| base() + TimeDelta::minutes(m))
}

/// A live record with an id `"r0"` to `"r9"`, each of `fields` present with
/// probability 0.8, an `updated_at`, per-field timestamps (for systems with
/// field history) half the time, and a version half the time.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use recsync::testkit::strategies::record;
///
/// let mut runner = TestRunner::deterministic();
/// let r = record(&["email", "phone"]).new_tree(&mut runner).unwrap().current();
/// assert!(r.fields.keys().all(|k| k == "email" || k == "phone"));
/// assert!(!r.deleted);
/// ```
pub fn record(fields: &[&str]) -> impl Strategy<Value = Record> + Clone {
    let names: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    let cells = prop::collection::vec(
        prop::option::weighted(0.8, (values(), timestamps())),
        names.len(),
    );
    (
        0u32..10,
        cells,
        timestamps(),
        any::<bool>(),
        prop::option::of(1u32..5),
    )
        .prop_map(move |(id, cells, at, history, version)| {
            let mut r = Record::new(format!("r{id}"));
            let mut latest = at;
            for (name, cell) in names.iter().zip(cells) {
                if let Some((value, changed)) = cell {
                    latest = latest.max(changed);
                    r = if history {
                        r.field_at(name.clone(), value, changed)
                    } else {
                        r.field(name.clone(), value)
                    };
                }
            }
            r.updated_at = Some(latest);
            r.version = version.map(|v| v.to_string());
            r
        })
}

/// A snapshot of `system` with up to `max_records` records of `fields`,
/// ids unique (`"r0"`, `"r1"`, ...). Half are complete; a partial one may
/// hold tombstones.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use recsync::testkit::strategies::snapshot;
///
/// let mut runner = TestRunner::deterministic();
/// let s = snapshot("crm", &["email"], 5).new_tree(&mut runner).unwrap().current();
/// assert_eq!(s.system, "crm");
/// assert!(s.records.len() <= 5);
/// ```
pub fn snapshot(
    system: impl Into<SystemId>,
    fields: &[&str],
    max_records: usize,
) -> impl Strategy<Value = Snapshot> + Clone {
    let system = system.into();
    (
        prop::collection::vec(
            (record(fields), prop::bool::weighted(0.15)),
            0..=max_records,
        ),
        any::<bool>(),
    )
        .prop_map(move |(records, complete)| {
            let records = records
                .into_iter()
                .enumerate()
                .map(|(i, (mut r, tombstone))| {
                    r.id = format!("r{i}");
                    if tombstone && !complete {
                        r.fields.clear();
                        r.field_updated_at.clear();
                        r.deleted = true;
                    }
                    r
                })
                .collect();
            if complete {
                Snapshot::complete(system.clone(), records)
            } else {
                Snapshot::partial(system.clone(), records)
            }
        })
}

/// Any [`Fallback`].
pub fn fallback() -> impl Strategy<Value = Fallback> + Clone {
    select(vec![
        Fallback::LastWriteWins,
        Fallback::Priority,
        Fallback::ManualReview,
    ])
}

/// A conflict policy over `systems`: last-write-wins, authority of one of
/// them with any fallback, or manual review (custom resolvers are yours to
/// add).
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use recsync::testkit::strategies::conflict_policy;
/// use recsync::ConflictPolicy;
///
/// let mut runner = TestRunner::deterministic();
/// let p = conflict_policy(&["crm", "shop"]).new_tree(&mut runner).unwrap().current();
/// if let ConflictPolicy::Authority { system, .. } = p {
///     assert!(system == "crm" || system == "shop");
/// }
/// ```
pub fn conflict_policy(systems: &[&str]) -> BoxedStrategy<ConflictPolicy> {
    let systems: Vec<SystemId> = systems.iter().map(|s| SystemId::new(*s)).collect();
    if systems.is_empty() {
        return prop_oneof![
            Just(ConflictPolicy::LastWriteWins),
            Just(ConflictPolicy::ManualReview)
        ]
        .boxed();
    }
    prop_oneof![
        2 => Just(ConflictPolicy::LastWriteWins),
        2 => (select(systems), fallback())
            .prop_map(|(system, fallback)| ConflictPolicy::Authority { system, fallback }),
        1 => Just(ConflictPolicy::ManualReview),
    ]
    .boxed()
}

/// One synced field's settings: its direction, and a policy that fits it.
fn field(name: String, systems: Vec<SystemId>) -> BoxedStrategy<Field> {
    let n = systems.len();
    if n == 0 {
        return Just(Field::new(name)).boxed();
    }
    let direction = prop_oneof![
        6 => Just(None),
        3 => (0..n, any::<bool>()).prop_map(Some),
        1 => Just(Some((usize::MAX, false))),
    ];
    (
        direction,
        0u8..3,
        0..n,
        fallback(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(dir, policy, authority, fallback, guard, fold)| {
            let mut f = Field::new(name.clone());
            let source = match dir {
                None => None,
                Some((usize::MAX, _)) => {
                    f = f.direction(Direction::NotSynced);
                    None
                }
                Some((from, enforce)) => {
                    f = f.direction(Direction::OneWay {
                        from: systems[from].clone(),
                        enforce,
                    });
                    Some(from)
                }
            };
            let authority = source.unwrap_or(authority);
            f = f.policy(match policy {
                0 => ConflictPolicy::LastWriteWins,
                1 => ConflictPolicy::Authority {
                    system: systems[authority].clone(),
                    fallback,
                },
                _ => ConflictPolicy::ManualReview,
            });
            f = f.no_overwrite_on_empty(guard);
            if fold {
                f = f.case_insensitive();
            }
            f
        })
        .boxed()
}

/// A field map over `systems` (two or more, in priority order) and
/// `fields`: the first field is the key (bidirectional, case-insensitive);
/// each other field gets a direction (bidirectional, one way from any system
/// enforced or not, or not synced), a policy that fits it, the empty-value
/// guard or not, and case folding or not; the skew tolerance is 0 to 2
/// minutes. Every field has its canonical name in every system, and may be
/// absent from the records there ([`Field::may_be_absent_in`]: a
/// [`MemoryConnector`]'s records hold only
/// the fields set on them). Give two
/// systems or more: no map builds with fewer, so the strategy would reject
/// every case.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use recsync::testkit::strategies::field_map;
///
/// let mut runner = TestRunner::deterministic();
/// let map = field_map(&["crm", "shop", "erp"], &["email", "phone", "city"])
///     .new_tree(&mut runner)
///     .unwrap()
///     .current();
/// assert_eq!(map.key_field().unwrap().name(), "email");
/// assert_eq!(map.fields().len(), 3);
/// ```
pub fn field_map(systems: &[&str], fields: &[&str]) -> impl Strategy<Value = FieldMap> + Clone {
    let ids: Vec<SystemId> = systems.iter().map(|s| SystemId::new(*s)).collect();
    let key = fields.first().map(|k| (*k).to_owned());
    let others: Vec<BoxedStrategy<Field>> = fields
        .iter()
        .skip(1)
        .map(|f| field((*f).to_owned(), ids.clone()))
        .collect();
    (others, 0i64..=2).prop_filter_map("field map builds", move |(others, skew)| {
        let mut builder = FieldMap::builder()
            .systems(ids.clone())
            .skew_tolerance(TimeDelta::minutes(skew));
        // The in-memory systems' records hold only the fields set on
        // them: any field may be absent from all of them.
        let absent_anywhere = |f: Field| ids.iter().fold(f, |f, s| f.may_be_absent_in(s.clone()));
        if let Some(key) = &key {
            builder = builder
                .key(key.clone())
                .field(absent_anywhere(Field::new(key.clone()).case_insensitive()));
        }
        for f in others {
            builder = builder.field(absent_anywhere(f));
        }
        builder.build().ok()
    })
}

/// One step of an [edit history](edit_history).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Edit {
    /// A person creates a record in system number `system` with these
    /// fields.
    Create {
        /// Index of the system.
        system: usize,
        /// Native fields and values.
        fields: Vec<(String, Value)>,
    },
    /// A person edits a live record of system `system`: the one at
    /// position `record` (modulo how many are live) in creation order.
    Update {
        /// Index of the system.
        system: usize,
        /// Which live record.
        record: usize,
        /// Native fields and their new values.
        fields: Vec<(String, Value)>,
    },
    /// A person deletes a live record, chosen as for `Update`.
    Delete {
        /// Index of the system.
        system: usize,
        /// Which live record.
        record: usize,
    },
    /// A sync runs here.
    Sync,
}

impl Edit {
    /// Plays a user edit against `systems` (index `i` is system number `i`)
    /// on `object`, and returns the id of the record it created, edited or
    /// deleted; `None` for [`Sync`](Edit::Sync), a system index out of
    /// range, or no live record to edit.
    pub fn apply(&self, systems: &[MemoryConnector], object: &str) -> Option<String> {
        let pick = |system: usize, record: usize| -> Option<(&MemoryConnector, String)> {
            let conn = systems.get(system)?;
            let live = conn.records(object);
            if live.is_empty() {
                return None;
            }
            Some((conn, live[record % live.len()].id.clone()))
        };
        match self {
            Edit::Create { system, fields } => {
                let conn = systems.get(*system)?;
                Some(conn.insert(object, fields.iter().cloned()))
            }
            Edit::Update {
                system,
                record,
                fields,
            } => {
                let (conn, id) = pick(*system, *record)?;
                conn.edit(object, &id, fields.iter().cloned()).ok()?;
                Some(id)
            }
            Edit::Delete { system, record } => {
                let (conn, id) = pick(*system, *record)?;
                conn.delete(object, &id).ok()?;
                Some(id)
            }
            Edit::Sync => None,
        }
    }
}

/// Sequences of `steps` edits on `systems` systems: creates (the `key`
/// field gets one of six values `"k0"` to `"k5"`, so records in different
/// systems match; each of `fields` is set with probability 0.7), updates of
/// one or more of `fields` (never the key), deletes, and sync points.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use recsync::testkit::strategies::{edit_history, Edit};
/// use recsync::testkit::MemoryConnector;
///
/// let mut runner = TestRunner::deterministic();
/// let history = edit_history(2, "email", &["phone"], 1..20)
///     .new_tree(&mut runner)
///     .unwrap()
///     .current();
/// let systems = [MemoryConnector::new("crm"), MemoryConnector::new("shop")];
/// for edit in &history {
///     edit.apply(&systems, "contacts");
/// }
/// let creates = history.iter().filter(|e| matches!(e, Edit::Create { .. })).count();
/// assert!(systems[0].len("contacts") + systems[1].len("contacts") <= creates);
/// ```
pub fn edit_history(
    systems: usize,
    key: &str,
    fields: &[&str],
    steps: impl Into<prop::collection::SizeRange>,
) -> impl Strategy<Value = Vec<Edit>> + Clone {
    let systems = systems.max(1);
    let key = key.to_owned();
    let names: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    let n = names.len();
    let keys = select(vec!["k0", "k1", "k2", "k3", "k4", "k5"]);
    let create = {
        let names = names.clone();
        (
            0..systems,
            keys,
            prop::collection::vec(prop::option::weighted(0.7, values()), n),
        )
            .prop_map(move |(system, k, cells)| {
                let mut fields = vec![(key.clone(), Value::from(k))];
                for (name, cell) in names.iter().zip(cells) {
                    if let Some(v) = cell {
                        fields.push((name.clone(), v));
                    }
                }
                Edit::Create { system, fields }
            })
    };
    let update = (
        0..systems,
        any::<usize>(),
        prop::collection::vec((0..n.max(1), values()), 1..=n.max(1)),
    )
        .prop_map(move |(system, record, picks)| {
            let fields = picks
                .into_iter()
                .filter_map(|(i, v)| names.get(i).map(|name| (name.clone(), v)))
                .collect();
            Edit::Update {
                system,
                record,
                fields,
            }
        });
    let delete =
        (0..systems, any::<usize>()).prop_map(|(system, record)| Edit::Delete { system, record });
    let edit = prop_oneof![
        3 => create,
        5 => update,
        1 => delete,
        2 => Just(Edit::Sync),
    ];
    prop::collection::vec(edit, steps)
}

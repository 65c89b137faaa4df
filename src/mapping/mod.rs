//! How the systems' fields correspond: [`FieldMap`], built from [`Field`]s.
//!
//! Each canonical field has a native name in each system that has it, a
//! [`Direction`], a [`ConflictPolicy`] (else the map's default), the
//! `no_overwrite_on_empty` guard (else the map's default), a
//! [`Normalization`] for change detection, and optionally a per-system
//! [`Transform`] between native and canonical values.
//!
//! The systems are named in **priority order**: where a tie has to be broken
//! (equal timestamps, agreeing values in different forms), the first wins.
//!
//! ```
//! use recsync::mapping::{Field, FieldMap};
//! use recsync::ConflictPolicy;
//!
//! let map = FieldMap::builder()
//!     .systems(["crm", "marketing"])
//!     .key("email")
//!     .no_overwrite_on_empty(true)
//!     .field(Field::new("email").native("crm", "Email").case_insensitive())
//!     .field(Field::new("name").native("crm", "Name").policy(ConflictPolicy::authority("crm")))
//!     .field(Field::new("score").one_way_from("marketing"))
//!     .build()?;
//! assert_eq!(map.field("name").unwrap().native_name("crm"), Some("Name"));
//! assert_eq!(map.field("name").unwrap().native_name("marketing"), Some("name"));
//! # Ok::<(), recsync::mapping::MapError>(())
//! ```

mod normalize;
mod records;
mod transform;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use chrono::TimeDelta;

pub use normalize::Normalization;
pub use transform::{Transform, TransformError};

pub(crate) use records::RecordRules;
use records::RecordRulesBuilder;

use crate::guard::Guards;
use crate::hash::StableHasher;
use crate::identity::{MatchKey, MatchMode};
use crate::model::SystemId;
use crate::policy::{ConflictPolicy, DeleteEditPolicy, DeletePolicy};
use crate::scope::{Filter, ScopeExit};

/// Which systems a field flows from and to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// Every system that has the field is both a source and a target.
    Bidirectional,
    /// Only `from` is a source; every other system that has the field is a
    /// target.
    OneWay {
        /// The only source.
        from: SystemId,
        /// When set, a target's own edit to the field is overwritten with the
        /// source's value; when not, it is left alone until the source
        /// changes.
        enforce: bool,
    },
    /// The field is mapped (for matching or display) but not synced.
    NotSynced,
}

/// One canonical field, as given to [`FieldMapBuilder::field`].
///
/// A field has the canonical name as its native name in every system of the
/// map unless [`native`](Field::native) renames it or
/// [`not_in`](Field::not_in) leaves a system out.
#[derive(Debug, Clone)]
pub struct Field {
    name: String,
    natives: Vec<(SystemId, String)>,
    absent: Vec<SystemId>,
    direction: Direction,
    policy: Option<ConflictPolicy>,
    no_overwrite_on_empty: Option<bool>,
    normalization: Normalization,
    transforms: Vec<(SystemId, Arc<dyn Transform>)>,
    sensitive: bool,
    reference: Option<String>,
}

impl Field {
    /// A bidirectional field with this canonical name.
    pub fn new(name: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            natives: Vec::new(),
            absent: Vec::new(),
            direction: Direction::Bidirectional,
            policy: None,
            no_overwrite_on_empty: None,
            normalization: Normalization::Exact,
            transforms: Vec::new(),
            sensitive: false,
            reference: None,
        }
    }

    /// The field's native name in `system`.
    #[must_use]
    pub fn native(mut self, system: impl Into<SystemId>, name: impl Into<String>) -> Self {
        self.natives.push((system.into(), name.into()));
        self
    }

    /// `system` does not have this field: it is neither a source nor a target.
    #[must_use]
    pub fn not_in(mut self, system: impl Into<SystemId>) -> Self {
        self.absent.push(system.into());
        self
    }

    /// Sets the direction.
    #[must_use]
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// One way from `system` to every other system that has the field; the
    /// targets' own edits are left alone.
    #[must_use]
    pub fn one_way_from(self, system: impl Into<SystemId>) -> Self {
        self.direction(Direction::OneWay {
            from: system.into(),
            enforce: false,
        })
    }

    /// Mapped but not synced.
    #[must_use]
    pub fn not_synced(self) -> Self {
        self.direction(Direction::NotSynced)
    }

    /// The conflict policy for this field, instead of the map's default.
    #[must_use]
    pub fn policy(mut self, policy: ConflictPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Whether an [empty](crate::is_empty_value) value may replace a
    /// non-empty one, instead of the map's default. When on, an empty value
    /// from a system is not propagated over a non-empty canonical value, and
    /// the plan says so in its held list.
    #[must_use]
    pub fn no_overwrite_on_empty(mut self, on: bool) -> Self {
        self.no_overwrite_on_empty = Some(on);
        self
    }

    /// How values are compared when detecting changes.
    #[must_use]
    pub fn normalize(mut self, normalization: Normalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// Shorthand for [`Normalization::CaseInsensitive`].
    #[must_use]
    pub fn case_insensitive(self) -> Self {
        self.normalize(Normalization::CaseInsensitive)
    }

    /// The transform between `system`'s native values and canonical values.
    #[must_use]
    pub fn transform(
        mut self,
        system: impl Into<SystemId>,
        transform: impl Transform + 'static,
    ) -> Self {
        self.transforms.push((system.into(), Arc::new(transform)));
        self
    }

    /// The field holds personal data that displays and reports redact.
    #[must_use]
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// The field refers to a record of another object type (a contact's
    /// company, a deal's account): its native value in each system is that
    /// record's native id there. Its canonical value is the referred
    /// entity's id, and writes translate it through the link table of
    /// `object`'s baseline, given to the plan with
    /// [`PlanOptions::parent`](crate::engine::PlanOptions::parent). A write
    /// whose parent is not linked in the target yet waits.
    #[must_use]
    pub fn references(mut self, object: impl Into<String>) -> Self {
        self.reference = Some(object.into());
        self
    }
}

/// A canonical field of a built [`FieldMap`].
#[derive(Debug, Clone)]
pub struct FieldSpec {
    name: String,
    native: Vec<Option<String>>,
    source: Vec<bool>,
    target: Vec<bool>,
    direction: Direction,
    policy: ConflictPolicy,
    no_overwrite_on_empty: bool,
    normalization: Normalization,
    transforms: Vec<Option<Arc<dyn Transform>>>,
    sensitive: bool,
    reference: Option<String>,
    systems: Arc<[SystemId]>,
}

impl FieldSpec {
    /// The canonical name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The native name in `system`, if the system has the field.
    pub fn native_name(&self, system: &str) -> Option<&str> {
        let i = self.systems.iter().position(|s| s == system)?;
        self.native[i].as_deref()
    }

    /// The direction.
    pub fn direction(&self) -> &Direction {
        &self.direction
    }

    /// The conflict policy (the field's own, else the map's default).
    pub fn policy(&self) -> &ConflictPolicy {
        &self.policy
    }

    /// Whether the empty-value guard is on.
    pub fn no_overwrite_on_empty(&self) -> bool {
        self.no_overwrite_on_empty
    }

    /// How values are compared.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    /// Whether the field is marked sensitive.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// The object type the field refers to, if it is a reference.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// Whether `system` is a source for this field.
    pub fn is_source(&self, system: &str) -> bool {
        self.systems
            .iter()
            .position(|s| s == system)
            .is_some_and(|i| self.source[i])
    }

    /// Whether `system` is a target for this field.
    pub fn is_target(&self, system: &str) -> bool {
        self.systems
            .iter()
            .position(|s| s == system)
            .is_some_and(|i| self.target[i])
    }

    pub(crate) fn native_at(&self, system: usize) -> Option<&str> {
        self.native.get(system).and_then(|n| n.as_deref())
    }

    pub(crate) fn source_at(&self, system: usize) -> bool {
        self.source.get(system).copied().unwrap_or(false)
    }

    pub(crate) fn target_at(&self, system: usize) -> bool {
        self.target.get(system).copied().unwrap_or(false)
    }

    pub(crate) fn enforced(&self) -> bool {
        matches!(self.direction, Direction::OneWay { enforce: true, .. })
    }

    pub(crate) fn to_canonical(
        &self,
        system: usize,
        native: &serde_json::Value,
    ) -> Result<serde_json::Value, TransformError> {
        match self.transforms.get(system).and_then(Option::as_ref) {
            Some(t) => t.to_canonical(native),
            None => Ok(native.clone()),
        }
    }

    #[allow(clippy::wrong_self_convention)]
    pub(crate) fn from_canonical(
        &self,
        system: usize,
        canonical: &serde_json::Value,
    ) -> Result<serde_json::Value, TransformError> {
        match self.transforms.get(system).and_then(Option::as_ref) {
            Some(t) => t.from_canonical(canonical),
            None => Ok(canonical.clone()),
        }
    }
}

/// How the systems' fields correspond. Build one with [`FieldMap::builder`].
#[derive(Debug, Clone)]
pub struct FieldMap {
    object: String,
    systems: Arc<[SystemId]>,
    fields: Vec<FieldSpec>,
    records: RecordRules,
    skew_tolerance: TimeDelta,
    fingerprint: u64,
}

impl FieldMap {
    /// A builder for a field map.
    pub fn builder() -> FieldMapBuilder {
        FieldMapBuilder::default()
    }

    /// The object type the map is for (`"contacts"`); `"records"` unless
    /// [`FieldMapBuilder::object`] named it.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The systems, in priority order.
    pub fn systems(&self) -> &[SystemId] {
        &self.systems
    }

    /// The canonical fields, in the order they were given.
    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// A canonical field by name.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The first canonical field records are matched by, if any.
    pub fn key_field(&self) -> Option<&FieldSpec> {
        self.records
            .match_keys
            .first()
            .and_then(|(k, _)| self.fields.get(*k))
    }

    /// How records not linked yet become entities.
    pub fn match_mode(&self) -> MatchMode {
        self.records.mode
    }

    /// The safety guards.
    pub fn guards(&self) -> &Guards {
        &self.records.guards
    }

    /// A fingerprint of everything in the map that decides what is synced
    /// and how (not the guards). Baselines remember the fingerprint of the
    /// map they were committed with; while it is unchanged, a plan may skip
    /// records that did not change.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Match keys: field index and normalization, in order.
    pub(crate) fn match_keys(&self) -> &[(usize, Normalization)] {
        &self.records.match_keys
    }

    pub(crate) fn records(&self) -> &RecordRules {
        &self.records
    }

    /// How far apart two systems' timestamps may be and still tie.
    pub fn skew_tolerance(&self) -> TimeDelta {
        self.skew_tolerance
    }

    pub(crate) fn system_index(&self, system: &str) -> Option<usize> {
        self.systems.iter().position(|s| s == system)
    }

    fn compute_fingerprint(&self) -> u64 {
        let mut h = StableHasher::new("map");
        h.str(&self.object);
        for s in self.systems.iter() {
            h.str(s.as_str());
        }
        for f in &self.fields {
            h.str(&f.name);
            for n in &f.native {
                h.str(n.as_deref().unwrap_or("\u{0}"));
            }
            h.str(&format!("{:?}", f.direction));
            h.str(&f.policy.name());
            h.u64(u64::from(f.no_overwrite_on_empty));
            h.str(&format!("{:?}", f.normalization));
            for t in &f.transforms {
                h.str(&t.as_ref().map_or(String::new(), |t| format!("{t:?}")));
            }
            h.str(f.reference.as_deref().unwrap_or(""));
        }
        self.records.fingerprint(&mut h, &self.fields);
        h.finish()
    }
}

/// Builds a [`FieldMap`]; [`build`](FieldMapBuilder::build) checks it and
/// reports every problem at once.
#[derive(Debug, Clone)]
pub struct FieldMapBuilder {
    object: String,
    systems: Vec<SystemId>,
    fields: Vec<Field>,
    records: RecordRulesBuilder,
    default_policy: ConflictPolicy,
    no_overwrite_on_empty: bool,
    skew_tolerance: TimeDelta,
}

impl Default for FieldMapBuilder {
    fn default() -> Self {
        FieldMapBuilder {
            object: "records".to_owned(),
            systems: Vec::new(),
            fields: Vec::new(),
            records: RecordRulesBuilder::default(),
            default_policy: ConflictPolicy::LastWriteWins,
            no_overwrite_on_empty: false,
            skew_tolerance: TimeDelta::zero(),
        }
    }
}

impl FieldMapBuilder {
    /// Names the object type the map is for (`"contacts"`, `"deals"`). Write
    /// ops carry it, so one connector can serve several object types.
    /// Default: `"records"`.
    #[must_use]
    pub fn object(mut self, name: impl Into<String>) -> Self {
        self.object = name.into();
        self
    }

    /// Adds a system; systems are given in priority order.
    #[must_use]
    pub fn system(mut self, system: impl Into<SystemId>) -> Self {
        self.systems.push(system.into());
        self
    }

    /// Adds systems, in priority order.
    #[must_use]
    pub fn systems<S: Into<SystemId>>(mut self, systems: impl IntoIterator<Item = S>) -> Self {
        self.systems.extend(systems.into_iter().map(Into::into));
        self
    }

    /// Adds a canonical field.
    #[must_use]
    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// Adds a match key: records not linked yet whose values of this
    /// canonical field are equal after trimming and case-folding are the
    /// same entity. Keys are tried in the order given.
    #[must_use]
    pub fn key(self, field: impl Into<String>) -> Self {
        self.match_key(MatchKey::new(field))
    }

    /// Adds a match key with its own normalization (a phone compared by
    /// digits only). Keys are tried in the order given.
    #[must_use]
    pub fn match_key(mut self, key: MatchKey) -> Self {
        self.records.match_keys.push(key);
        self
    }

    /// How records not linked yet become entities. Default:
    /// [`MatchMode::MatchThenCreate`].
    #[must_use]
    pub fn matching(mut self, mode: MatchMode) -> Self {
        self.records.mode = mode;
        self
    }

    /// Which way whole records flow: where new records are created and
    /// deletes propagate. [`Direction::Bidirectional`] (the default): from
    /// every system to every other. [`Direction::OneWay`]: only `from`'s new
    /// records are created in, and its deletes reach, the others; a record
    /// deleted in a target is unlinked, or re-created when `enforce` is set.
    /// [`Direction::NotSynced`]: no creates, no delete propagation.
    #[must_use]
    pub fn records(mut self, direction: Direction) -> Self {
        self.records.flow = Some(direction);
        self
    }

    /// What a delete in any system does to the others. Default:
    /// [`DeletePolicy::Hold`].
    #[must_use]
    pub fn deletes(mut self, policy: DeletePolicy) -> Self {
        self.records.deletes = policy;
        self
    }

    /// What a delete in `system` does to the others, instead of the map's
    /// default.
    #[must_use]
    pub fn deletes_from(mut self, system: impl Into<SystemId>, policy: DeletePolicy) -> Self {
        self.records.deletes_from.push((system.into(), policy));
        self
    }

    /// What wins when one system deleted a record another changed since the
    /// last sync. Default: [`DeleteEditPolicy::Hold`].
    #[must_use]
    pub fn delete_vs_edit(mut self, policy: DeleteEditPolicy) -> Self {
        self.records.delete_vs_edit = policy;
        self
    }

    /// The records of `system` that are in sync. Default: all.
    #[must_use]
    pub fn scope(mut self, system: impl Into<SystemId>, filter: Filter) -> Self {
        self.records.scope.push((system.into(), filter));
        self
    }

    /// What happens to a linked record that leaves scope. Default:
    /// [`ScopeExit::Unlink`].
    #[must_use]
    pub fn scope_exit(mut self, exit: ScopeExit) -> Self {
        self.records.scope_exit = exit;
        self
    }

    /// The safety guards. Default: [`Guards::default`].
    #[must_use]
    pub fn guards(mut self, guards: Guards) -> Self {
        self.records.guards = guards;
        self
    }

    /// The policy of fields that do not set their own. Default:
    /// [`ConflictPolicy::LastWriteWins`].
    #[must_use]
    pub fn default_policy(mut self, policy: ConflictPolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// The empty-value guard of fields that do not set their own. Default:
    /// off.
    #[must_use]
    pub fn no_overwrite_on_empty(mut self, on: bool) -> Self {
        self.no_overwrite_on_empty = on;
        self
    }

    /// How far apart two systems' timestamps may be and still count as a tie
    /// under last-write-wins (clocks of different systems drift). Default:
    /// zero.
    #[must_use]
    pub fn skew_tolerance(mut self, tolerance: TimeDelta) -> Self {
        self.skew_tolerance = tolerance;
        self
    }

    /// Checks the map and builds it, or lists every problem found.
    pub fn build(self) -> Result<FieldMap, MapError> {
        let mut problems = Vec::new();
        if self.object.is_empty() {
            problems.push(MapProblem::EmptyName { what: "object" });
        }
        if self.systems.len() < 2 {
            problems.push(MapProblem::TooFewSystems {
                count: self.systems.len(),
            });
        }
        let mut seen = BTreeSet::new();
        for s in &self.systems {
            if s.as_str().is_empty() {
                problems.push(MapProblem::EmptyName { what: "system" });
            } else if !seen.insert(s) {
                problems.push(MapProblem::DuplicateSystem { system: s.clone() });
            }
        }
        if self.skew_tolerance < TimeDelta::zero() {
            problems.push(MapProblem::NegativeSkewTolerance);
        }
        let systems: Arc<[SystemId]> = self.systems.clone().into();
        let index = |s: &SystemId| systems.iter().position(|x| x == s);
        let unknown = |field: &str, system: &SystemId, problems: &mut Vec<MapProblem>| {
            problems.push(MapProblem::UnknownSystem {
                field: field.to_owned(),
                system: system.clone(),
            });
        };
        if let ConflictPolicy::Authority { system, .. } = &self.default_policy {
            if index(system).is_none() {
                unknown("(default policy)", system, &mut problems);
            }
        }

        let mut names = BTreeSet::new();
        let mut specs = Vec::with_capacity(self.fields.len());
        for field in self.fields {
            let name = field.name.clone();
            if name.is_empty() {
                problems.push(MapProblem::EmptyName { what: "field" });
            } else if !names.insert(name.clone()) {
                problems.push(MapProblem::DuplicateField {
                    field: name.clone(),
                });
            }
            let mut native: Vec<Option<String>> = vec![Some(name.clone()); systems.len()];
            for s in &field.absent {
                match index(s) {
                    Some(i) => native[i] = None,
                    None => unknown(&name, s, &mut problems),
                }
            }
            for (s, n) in &field.natives {
                match index(s) {
                    Some(_) if n.is_empty() => problems.push(MapProblem::EmptyName {
                        what: "native field",
                    }),
                    Some(i) if field.absent.contains(s) => {
                        problems.push(MapProblem::NativeForAbsentSystem {
                            field: name.clone(),
                            system: systems[i].clone(),
                        });
                    }
                    Some(i) => native[i] = Some(n.clone()),
                    None => unknown(&name, s, &mut problems),
                }
            }
            let mut transforms: Vec<Option<Arc<dyn Transform>>> = vec![None; systems.len()];
            for (s, t) in field.transforms {
                match index(&s) {
                    Some(i) => transforms[i] = Some(t),
                    None => unknown(&name, &s, &mut problems),
                }
            }
            let present: Vec<bool> = native.iter().map(Option::is_some).collect();
            let (source, target) = match &field.direction {
                Direction::Bidirectional => (present.clone(), present.clone()),
                Direction::NotSynced => (vec![false; systems.len()], vec![false; systems.len()]),
                Direction::OneWay { from, .. } => match index(from) {
                    Some(f) => {
                        if !present[f] {
                            problems.push(MapProblem::SourceLacksField {
                                field: name.clone(),
                                system: from.clone(),
                            });
                        }
                        let source = (0..systems.len()).map(|i| i == f).collect();
                        let target = (0..systems.len()).map(|i| i != f && present[i]).collect();
                        (source, target)
                    }
                    None => {
                        unknown(&name, from, &mut problems);
                        (vec![false; systems.len()], vec![false; systems.len()])
                    }
                },
            };
            if field.direction != Direction::NotSynced
                && systems.len() >= 2
                && present.iter().filter(|p| **p).count() < 2
            {
                problems.push(MapProblem::NothingToSync {
                    field: name.clone(),
                });
            }
            let own_policy = field.policy.is_some();
            let policy = field.policy.unwrap_or_else(|| self.default_policy.clone());
            if let ConflictPolicy::Authority { system, .. } = &policy {
                match index(system) {
                    Some(i) if !source[i] && field.direction != Direction::NotSynced => {
                        problems.push(MapProblem::AuthorityNotSource {
                            field: name.clone(),
                            system: system.clone(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        // The default policy's unknown authority was reported once.
                        if own_policy {
                            unknown(&name, system, &mut problems);
                        }
                    }
                }
            }
            specs.push(FieldSpec {
                name,
                native,
                source,
                target,
                direction: field.direction,
                policy,
                no_overwrite_on_empty: field
                    .no_overwrite_on_empty
                    .unwrap_or(self.no_overwrite_on_empty),
                normalization: field.normalization,
                transforms,
                sensitive: field.sensitive,
                reference: field.reference,
                systems: systems.clone(),
            });
        }

        for (i, system) in systems.iter().enumerate() {
            let mut by_native: Vec<(&str, &str)> = specs
                .iter()
                .filter_map(|f| f.native[i].as_deref().map(|n| (n, f.name.as_str())))
                .collect();
            by_native.sort();
            for pair in by_native.windows(2) {
                if let [(n1, f1), (n2, f2)] = pair {
                    if n1 == n2 {
                        problems.push(MapProblem::NativeMappedTwice {
                            system: system.clone(),
                            native: (*n1).to_owned(),
                            fields: ((*f1).to_owned(), (*f2).to_owned()),
                        });
                    }
                }
            }
        }

        for f in &specs {
            if let Some(object) = &f.reference {
                if object.is_empty() {
                    problems.push(MapProblem::EmptyName { what: "object" });
                }
            }
        }
        let records = self.records.build(&systems, &specs, &mut problems);

        if problems.is_empty() {
            let mut map = FieldMap {
                object: self.object,
                systems,
                fields: specs,
                records,
                skew_tolerance: self.skew_tolerance,
                fingerprint: 0,
            };
            map.fingerprint = map.compute_fingerprint();
            Ok(map)
        } else {
            Err(MapError { problems })
        }
    }
}

/// A field map that [`FieldMapBuilder::build`] refused, with every problem
/// found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MapError {
    /// Every problem, in the order found.
    pub problems: Vec<MapProblem>,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid field map: {} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// One problem with a field map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapProblem {
    /// A sync needs two or more systems.
    #[error("a field map needs at least two systems, got {count}")]
    TooFewSystems {
        /// How many were given.
        count: usize,
    },
    /// A system was named twice.
    #[error("system {system} is named twice")]
    DuplicateSystem {
        /// The system.
        system: SystemId,
    },
    /// A name was empty.
    #[error("a {what} name is empty")]
    EmptyName {
        /// What kind of name.
        what: &'static str,
    },
    /// A canonical field was given twice.
    #[error("field {field} is defined twice")]
    DuplicateField {
        /// The field.
        field: String,
    },
    /// A field names a system the map does not have.
    #[error("field {field} names system {system}, which the map does not have")]
    UnknownSystem {
        /// The field.
        field: String,
        /// The unknown system.
        system: SystemId,
    },
    /// A field gives a native name in a system it says lacks the field.
    #[error("field {field} has a native name in {system} but is marked not in it")]
    NativeForAbsentSystem {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
    },
    /// Two canonical fields map to the same native field of one system.
    #[error("native field {native} of {system} is mapped twice, by {} and {}", fields.0, fields.1)]
    NativeMappedTwice {
        /// The system.
        system: SystemId,
        /// The native field name.
        native: String,
        /// The two canonical fields.
        fields: (String, String),
    },
    /// A one-way field's source does not have the field.
    #[error("field {field} flows one way from {system}, which does not have it")]
    SourceLacksField {
        /// The field.
        field: String,
        /// The source system.
        system: SystemId,
    },
    /// A synced field exists in fewer than two systems.
    #[error("field {field} is synced but exists in fewer than two systems")]
    NothingToSync {
        /// The field.
        field: String,
    },
    /// An authority policy names a system that is not a source for the field.
    #[error("field {field} gives authority to {system}, which is not a source for it")]
    AuthorityNotSource {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
    },
    /// The key is not one of the map's fields.
    #[error("key {key} is not a field of the map")]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A match key was given twice.
    #[error("key {key} is given twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A system was given two scope filters.
    #[error("system {system} has two scope filters")]
    DuplicateScope {
        /// The system.
        system: SystemId,
    },
    /// The skew tolerance is negative.
    #[error("the skew tolerance is negative")]
    NegativeSkewTolerance,
}

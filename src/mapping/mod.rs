//! How the systems' fields correspond: [`FieldMap`], built from [`Field`]s.
//!
//! Each canonical field has a native name in each system that has it, a
//! [`Direction`], a [`ConflictPolicy`] (else the map's default), the
//! `no_overwrite_on_empty` guard (else the map's default), a
//! [`Normalization`] for change detection, and per system either a
//! [`Transform`] (a [`Builtin`] one or your own) or a [`ValueMap`] between
//! native and canonical values, and [`Validation`] rules for the values
//! written to it.
//!
//! The systems are named in **priority order**: where a tie has to be broken
//! (equal timestamps, agreeing values in different forms), the first wins.
//!
//! [`FieldMapBuilder::build`] checks the whole map and lists every problem
//! ([`MapProblem`]), among them value maps and transforms that would not
//! round-trip on a field that flows both ways, and lossy transforms where a
//! field flows both ways. Maps load from and save to JSON and TOML config
//! files (see [`MapConfig`] and [`MapSet`]), record rules included: match
//! keys, matching mode, record direction (and whether it mirrors),
//! read-only systems, delete policies, scope filters ([`FilterConfig`]),
//! scope exit and guards ([`GuardsConfig`]).
//!
//! [`FieldSpec::to_canonical`] and [`FieldSpec::to_native`] convert one
//! value as a plan does. In a plan, a value that cannot be converted or
//! written is a per-record issue:
//!
//! | problem | what the plan does |
//! | --- | --- |
//! | reading a value fails (transform error, unmapped value) | [`IssueKind::Mapping`](crate::plan::IssueKind::Mapping); the record is skipped, what it holds is kept for the next plan |
//! | writing a value to a system fails | [`IssueKind::Mapping`](crate::plan::IssueKind::Mapping); that system's write is blocked, the others go on |
//! | a value breaks a [`Validation`] rule | [`IssueKind::InvalidValue`](crate::plan::IssueKind::InvalidValue); the record is written without the field, flagged until corrected |
//! | a required field would be empty | [`IssueKind::MissingRequired`](crate::plan::IssueKind::MissingRequired); the write to that system is blocked until corrected |
//! | no record of a system's (non-empty, complete) snapshot holds a mapped native field: a typo, or a field the system lacks | [`IssueKind::FieldNotFound`](crate::plan::IssueKind::FieldNotFound), once per system and field, with the closest native name held; the field is not written there until it appears, the map is fixed, or [`Field::may_be_absent_in`] says the system's records may leave it out |
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

mod builtin;
mod config;
mod convert;
mod match_key;
mod normalize;
#[cfg(feature = "phone")]
mod phone;

/// The prefix of a phone normalization's config name (`"phone:US"`); known
/// without the `phone` feature too, so a config naming one can say the
/// feature is needed.
#[cfg_attr(not(feature = "phone"), allow(dead_code))]
pub(crate) const PHONE_PREFIX: &str = "phone:";
mod record_config;
mod records;
mod registry;
mod rules;
mod transform;
mod validate;
mod value_map;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use chrono::TimeDelta;
use serde_json::Value;

pub use builtin::{Builtin, DateFormat, DateTimeFormat, Zone, ZoneError};
pub use config::{
    ConfigError, ConfigProblem, DirectionConfig, FieldConfig, MapConfig, MapSet, MapSetConfig,
    ObjectConfig, PolicyConfig, RowConfig, SystemFieldConfig, UnmappedConfig, ValueMapConfig,
};
pub use convert::{Conversion, MappingError};
pub(crate) use convert::{Mapped, Slot};
pub use match_key::{MatchKey, MatchMode};
pub use normalize::{Normalization, Normalizer};
#[cfg(feature = "phone")]
pub use phone::PhoneRegion;
pub use record_config::{BudgetConfig, FilterConfig, GuardsConfig, MatchKeyConfig};
pub use registry::Registry;
pub use transform::{Transform, TransformError, TransformErrorKind};
pub use validate::{Validation, ValueProblem, ValueType};
pub use value_map::{RowDirection, Unmapped, ValueMap, ValueRow};

pub(crate) use records::RecordRules;
use records::RecordRulesBuilder;

use crate::guard::Guards;
use crate::hash::StableHasher;
use crate::model::{Name, SystemId};
use crate::policy::{ConflictPolicy, DeleteEditPolicy, DeletePolicy, ReadOnlyMode};
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
        /// source's value (an empty source value clears it, unless the
        /// field's [empty-value guard](Field::no_overwrite_on_empty) is on);
        /// when not, it is left alone until the source changes.
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
    may_be_absent: Vec<SystemId>,
    direction: Direction,
    policy: Option<ConflictPolicy>,
    no_overwrite_on_empty: Option<bool>,
    normalization: Normalization,
    transforms: Vec<(SystemId, Slot)>,
    value_map: Option<ValueMap>,
    validations: Vec<(SystemId, Validation)>,
    sensitive: bool,
    journaled: bool,
    reference: Option<String>,
}

impl Field {
    /// A bidirectional field with this canonical name.
    pub fn new(name: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            natives: Vec::new(),
            absent: Vec::new(),
            may_be_absent: Vec::new(),
            direction: Direction::Bidirectional,
            policy: None,
            no_overwrite_on_empty: None,
            normalization: Normalization::Exact,
            transforms: Vec::new(),
            value_map: None,
            validations: Vec::new(),
            sensitive: false,
            journaled: true,
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

    /// `system` has the field, but its records may leave it out (an API
    /// that omits empty fields, an optional custom field or metadata key):
    /// a complete snapshot none of whose records holds the field is not
    /// [schema drift](crate::plan::IssueKind::FieldNotFound), and the field
    /// is written there as usual.
    ///
    /// Without it, a field that no record of a non-empty complete snapshot
    /// of `system` holds is reported, and not written to `system`, since
    /// the likeliest cause is a native name that is not the system's (a
    /// typo) or a field the system does not have (a missing
    /// [`not_in`](Field::not_in)). The option is per field, not per
    /// system, so that a system whose records leave out only some fields
    /// keeps the check on the others; for a system that leaves out every
    /// empty field, give it on each field that may be empty there.
    ///
    /// ```
    /// use recsync::{Field, FieldMap};
    ///
    /// let map = FieldMap::builder()
    ///     .systems(["crm", "shop"])
    ///     .field(Field::new("email"))
    ///     .field(Field::new("vip").native("shop", "metadata.vip").may_be_absent_in("shop"))
    ///     .build()?;
    /// assert!(map.field("vip").unwrap().may_be_absent_in("shop"));
    /// assert!(!map.field("vip").unwrap().may_be_absent_in("crm"));
    /// # Ok::<(), recsync::MapError>(())
    /// ```
    #[must_use]
    pub fn may_be_absent_in(mut self, system: impl Into<SystemId>) -> Self {
        self.may_be_absent.push(system.into());
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

    /// How values are compared when detecting changes, and when a value
    /// map matches native values.
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

    /// The transform between `system`'s native values and canonical values:
    /// a [`Builtin`] or your own [`Transform`].
    #[must_use]
    pub fn transform<T: Transform + 'static>(
        mut self,
        system: impl Into<SystemId>,
        transform: T,
    ) -> Self {
        let slot = match (&transform as &dyn Any).downcast_ref::<Builtin>() {
            Some(b) => Slot::Builtin(b.clone()),
            None => Slot::Custom(Arc::new(transform)),
        };
        self.transforms.push((system.into(), slot));
        self
    }

    /// A shared transform for `system` (as a [`Registry`] holds them).
    #[must_use]
    pub fn transform_shared(
        mut self,
        system: impl Into<SystemId>,
        transform: Arc<dyn Transform>,
    ) -> Self {
        self.transforms
            .push((system.into(), Slot::Custom(transform)));
        self
    }

    /// The value map (picklist) between the systems its rows name. Those
    /// systems cannot also have a transform for this field.
    #[must_use]
    pub fn value_map(mut self, map: ValueMap) -> Self {
        self.value_map = Some(map);
        self
    }

    /// The rules native values written to `system` must follow.
    #[must_use]
    pub fn validate(mut self, system: impl Into<SystemId>, rules: Validation) -> Self {
        self.validations.push((system.into(), rules));
        self
    }

    /// The field holds data no log should show (a tax id, an account
    /// number, a key). Every `Debug` and `Display` recsync gives prints
    /// `[redacted]` for its values: plans, write ops, conflicts, issues,
    /// mapping errors and value problems carry a `sensitive` flag the map
    /// and the engine set, and baseline state prints no values at all.
    /// Serde still writes the values (a serialized plan or baseline is
    /// data, not a log), and [`SyncPlan::display_unredacted`](crate::SyncPlan::display_unredacted)
    /// shows them when asked for by name.
    #[must_use]
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Keeps the field's values out of the [write journal](crate::journal):
    /// its writes are journaled by name only, so no value of it is stored
    /// there, and an undo cannot restore it (it holds the field for a
    /// person instead). For data that must not be kept beyond the systems
    /// that hold it. Plans are not affected.
    #[must_use]
    pub fn not_journaled(mut self) -> Self {
        self.journaled = false;
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
    name: Name,
    native: Vec<Option<Name>>,
    /// Per system: its records may leave the field out
    /// ([`Field::may_be_absent_in`]).
    may_be_absent: Vec<bool>,
    source: Vec<bool>,
    target: Vec<bool>,
    direction: Direction,
    policy: ConflictPolicy,
    no_overwrite_on_empty: bool,
    normalization: Normalization,
    transforms: Vec<Option<Slot>>,
    value_map: Option<Arc<value_map::ResolvedMap>>,
    validations: Vec<Option<Validation>>,
    sensitive: bool,
    journaled: bool,
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

    /// Whether `system`'s records may leave the field out
    /// ([`Field::may_be_absent_in`]).
    pub fn may_be_absent_in(&self, system: &str) -> bool {
        self.systems
            .iter()
            .position(|s| s == system)
            .is_some_and(|i| self.may_be_absent_at(i))
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

    /// The transform for `system`, if the field has one there.
    pub fn transform(&self, system: &str) -> Option<&dyn Transform> {
        let i = self.systems.iter().position(|s| s == system)?;
        self.transforms
            .get(i)
            .and_then(Option::as_ref)
            .map(Slot::get)
    }

    /// The validation rules for values written to `system`, if any.
    pub fn validation(&self, system: &str) -> Option<&Validation> {
        let i = self.systems.iter().position(|s| s == system)?;
        self.validations.get(i).and_then(Option::as_ref)
    }

    /// Whether the field is marked sensitive.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// Whether the journal keeps the field's values
    /// ([`Field::not_journaled`]).
    pub fn is_journaled(&self) -> bool {
        self.journaled
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

    /// The canonical name, shared: what a [`FieldWrite`](crate::plan::FieldWrite)
    /// names the field by.
    pub(crate) fn shared_name(&self) -> &Name {
        &self.name
    }

    /// The native name in system `system` (by index), shared.
    pub(crate) fn shared_native_at(&self, system: usize) -> Option<&Name> {
        self.native.get(system).and_then(Option::as_ref)
    }

    pub(crate) fn may_be_absent_at(&self, system: usize) -> bool {
        self.may_be_absent.get(system).copied().unwrap_or(false)
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
}

/// How the systems' fields correspond. Build one with [`FieldMap::builder`].
#[derive(Debug, Clone)]
pub struct FieldMap {
    object: Name,
    systems: Arc<[SystemId]>,
    fields: Vec<FieldSpec>,
    records: RecordRules,
    skew_tolerance: TimeDelta,
    fingerprint: u64,
    default_policy: ConflictPolicy,
    no_overwrite_on_empty: bool,
    /// The fields as given, for saving the map back to a config file.
    defs: Vec<Field>,
    /// The record rules as given, for the same.
    record_defs: RecordRulesBuilder,
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

    /// The object type, shared: what a [`WriteOp`](crate::plan::WriteOp)
    /// names it by.
    pub(crate) fn shared_object(&self) -> &Name {
        &self.object
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

    /// Whether `system` is read-only, and in which mode
    /// ([`FieldMapBuilder::read_only`]).
    pub fn read_only(&self, system: &str) -> Option<ReadOnlyMode> {
        self.system_index(system)
            .and_then(|s| self.records.read_only_at(s))
    }

    /// Whether the one-way record direction mirrors
    /// ([`FieldMapBuilder::mirror`]).
    pub fn mirrors(&self) -> bool {
        self.records.mirror
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

    /// The policy of fields that do not set their own.
    pub fn default_policy(&self) -> &ConflictPolicy {
        &self.default_policy
    }

    /// The empty-value guard of fields that do not set their own.
    pub fn default_no_overwrite_on_empty(&self) -> bool {
        self.no_overwrite_on_empty
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
            // Value maps and validation rules change what is read and
            // written: a changed map looks at every entity again.
            h.str(&format!("{:?}", f.value_map));
            h.str(&format!("{:?}", f.validations));
            // Not `may_be_absent`: an entity whose write waits for a field
            // absent from the target's records is planned again until it is
            // written (it is unsettled), so a map that now lets the field
            // be absent needs no look at every other entity.
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
    /// records are created in, and its deletes reach, the others. A record
    /// deleted in a target is, as a one-way field's target edit is:
    ///
    /// - with `enforce` set, re-created from the source's record at once;
    /// - without, left deleted (linked as deleted) until the source changes
    ///   the record (an edit to a field it is a source for), then re-created
    ///   from it with the edit (a delete and a source edit read by the same
    ///   plan re-create it too). Nothing is reported meanwhile, as for a
    ///   field's target edit left alone.
    ///
    /// A record that was only ever in targets has none to be re-created
    /// from, and is unlinked. With [`mirror`](Self::mirror), records only
    /// in targets are deleted there. [`Direction::NotSynced`]: no creates,
    /// no delete propagation.
    #[must_use]
    pub fn records(mut self, direction: Direction) -> Self {
        self.records.flow = Some(direction);
        self
    }

    /// Under a one-way record direction ([`records`](Self::records)), the
    /// targets mirror the source: a target's record that exists only there
    /// is deleted there. That is a record whose entity no source holds a
    /// record of: one that never matched a source record (deleted once
    /// every source was read completely in a plan, so that matching saw
    /// every source record), or whose source record was unlinked (its
    /// delete policy or a reviewer said [`Unlink`](crate::DeletePolicy::Unlink),
    /// or it left scope under [`ScopeExit::Unlink`]). A source record's
    /// delete held for review holds its copies too, until decided. These
    /// deletes count toward the [delete guard](crate::guard::Guards::deletes)
    /// and wait, over its budget, for approval. Frozen target records are
    /// left alone. Default: off; `build` refuses it without a one-way
    /// record direction.
    #[must_use]
    pub fn mirror(mut self, on: bool) -> Self {
        self.records.mirror = on;
        self
    }

    /// `system` is read-only (a warehouse, an API key without write
    /// scope): no create, update or delete is ever planned to it. It is
    /// still read, and its edits and deletes still flow to the others.
    /// What it would need is listed in the plan
    /// ([`SyncPlan::read_only`](crate::SyncPlan::read_only)), plan after
    /// plan while it is needed ([`ReadOnlyMode::Report`]). Same as
    /// [`read_only_mode`](Self::read_only_mode) with `Report`.
    #[must_use]
    pub fn read_only(self, system: impl Into<SystemId>) -> Self {
        self.read_only_mode(system, ReadOnlyMode::Report)
    }

    /// `system` is read-only, and `mode` says what a write it would need
    /// does: listed in the plan ([`ReadOnlyMode::Report`]), or refusing
    /// the plan with [`PlanError::ReadOnly`](crate::PlanError::ReadOnly)
    /// ([`ReadOnlyMode::Error`]).
    #[must_use]
    pub fn read_only_mode(mut self, system: impl Into<SystemId>, mode: ReadOnlyMode) -> Self {
        self.records.read_only.push((system.into(), mode));
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
        // What is refused, one rule a function, in the order problems are
        // listed: `rules.rs`.
        let mut problems = Vec::new();
        for rule in rules::MAP_RULES {
            rule(&self, &mut problems);
        }
        let systems: Arc<[SystemId]> = self.systems.into();
        let defs = self.fields.clone();
        let fields = rules::field_specs(
            self.fields,
            &systems,
            &self.default_policy,
            self.no_overwrite_on_empty,
            &mut problems,
        );
        for rule in rules::SPEC_RULES {
            rule(&systems, &fields, &mut problems);
        }
        let record_defs = self.records.clone();
        let records = self.records.build(&systems, &fields, &mut problems);
        if !problems.is_empty() {
            return Err(MapError { problems });
        }
        let mut map = FieldMap {
            object: Name::from(self.object),
            systems,
            fields,
            records,
            skew_tolerance: self.skew_tolerance,
            fingerprint: 0,
            default_policy: self.default_policy,
            no_overwrite_on_empty: self.no_overwrite_on_empty,
            defs,
            record_defs,
        };
        map.fingerprint = map.compute_fingerprint();
        Ok(map)
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
    /// Records mirror ([`FieldMapBuilder::mirror`]) but their direction is
    /// not one way: there is no source to mirror.
    #[error("records mirror, but the record direction is not one way")]
    MirrorNotOneWay,
    /// A field gives a system something (a transform, validation rules, a
    /// value map value) though the system does not have the field.
    #[error("field {field} gives {what} for {system}, which does not have the field")]
    NotInSystem {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// What was given.
        what: &'static str,
    },
    /// A field gives a system two of something that it can have only one of.
    #[error("field {field} gives two {what} for {system}")]
    Twice {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// What was given twice.
        what: &'static str,
    },
    /// A built-in transform's own settings are invalid.
    #[error("field {field}: the transform for {system} is invalid: {message}")]
    InvalidTransform {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// What is wrong.
        message: String,
    },
    /// A system has both a transform and values in the field's value map.
    #[error("field {field} has both a transform and a value map for {system}")]
    TransformAndValueMap {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
    },
    /// A lossy transform on a system that is both a source and a target of
    /// the field: values would change on every round trip.
    #[error(
        "field {field} flows both ways through {system}, but its transform {transform} is lossy"
    )]
    LossyTwoWay {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// The transform's name.
        transform: String,
    },
    /// A native value that does not come back unchanged (after the field's
    /// normalization) when converted to canonical and back, on a system that
    /// is both a source and a target: the field would be rewritten on every
    /// sync.
    #[error(
        "field {field}: value {value} of {system} does not round-trip (it comes back as {})",
        back.as_ref().map_or_else(|| "nothing: no row maps it back".to_owned(), Value::to_string)
    )]
    NoRoundTrip {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// The native value.
        value: Value,
        /// What it comes back as, if anything.
        back: Option<Value>,
    },
    /// A transform's own sample value fails to convert to canonical and
    /// back.
    #[error("field {field}: the transform for {system} fails on its sample {value}: {error}")]
    SampleFails {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// The sample.
        value: Value,
        /// The error.
        error: String,
    },
    /// A value map row that cannot be used.
    #[error("field {field}: value map row {row} is invalid: {reason}")]
    BadValueMapRow {
        /// The field.
        field: String,
        /// The row, counted from 1.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// A value map maps one value to two different values in one direction.
    #[error("field {field}: value {value} of {system} maps to two different values {direction}")]
    AmbiguousValue {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// The value (native when converting to canonical, canonical when
        /// converting to native).
        value: Value,
        /// Which way.
        direction: Conversion,
    },
    /// A phone normalization ([`Normalization::phone`], feature `phone`)
    /// names a region the phone number metadata does not know.
    #[error(
        "field {field}: phone normalization region {region:?} is not a known region \
         (an ISO 3166-1 alpha-2 code, like \"US\")"
    )]
    UnknownPhoneRegion {
        /// The field (of the field's normalization, or of a match key).
        field: String,
        /// The region as given.
        region: String,
    },
    /// A value map's default for unmapped values has no native form in a
    /// target system.
    #[error("field {field}: the default value {value} has no row for {system}")]
    UnmappedDefault {
        /// The field.
        field: String,
        /// The system.
        system: SystemId,
        /// The default.
        value: Value,
    },
}

impl MapProblem {
    /// The field the problem is about, where it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            MapProblem::DuplicateField { field }
            | MapProblem::UnknownSystem { field, .. }
            | MapProblem::NativeForAbsentSystem { field, .. }
            | MapProblem::SourceLacksField { field, .. }
            | MapProblem::NothingToSync { field }
            | MapProblem::AuthorityNotSource { field, .. }
            | MapProblem::NotInSystem { field, .. }
            | MapProblem::Twice { field, .. }
            | MapProblem::InvalidTransform { field, .. }
            | MapProblem::TransformAndValueMap { field, .. }
            | MapProblem::LossyTwoWay { field, .. }
            | MapProblem::NoRoundTrip { field, .. }
            | MapProblem::SampleFails { field, .. }
            | MapProblem::BadValueMapRow { field, .. }
            | MapProblem::AmbiguousValue { field, .. }
            | MapProblem::UnknownPhoneRegion { field, .. }
            | MapProblem::UnmappedDefault { field, .. } => Some(field),
            MapProblem::NativeMappedTwice { fields, .. } => Some(&fields.0),
            MapProblem::UnknownKey { key } | MapProblem::DuplicateKey { key } => Some(key),
            MapProblem::TooFewSystems { .. }
            | MapProblem::DuplicateSystem { .. }
            | MapProblem::EmptyName { .. }
            | MapProblem::DuplicateScope { .. }
            | MapProblem::NegativeSkewTolerance
            | MapProblem::MirrorNotOneWay => None,
        }
    }
}

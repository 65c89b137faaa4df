//! What [`FieldMapBuilder::build`](super::FieldMapBuilder::build) refuses,
//! one rule a function, and the steps that work out each field's
//! [`FieldSpec`] on the way.
//!
//! `build` runs, in this order: the [`MAP_RULES`] on the builder; then, field
//! by field, the [`FIELD_STEPS`]; then the [`SPEC_RULES`] across the built
//! fields; then the record rules (`RecordRulesBuilder::build`). Problems are
//! reported in the order they are found, so the order of these lists is the
//! order of a [`MapError`](super::MapError)'s problems: a new rule goes in
//! where its problems should be listed.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::TimeDelta;

use super::value_map::{self, FieldShape, ResolvedMap};
use super::{
    ConflictPolicy, Direction, Field, FieldMapBuilder, FieldSpec, MapProblem, Slot, Transform,
    Validation,
};
use crate::model::{Name, SystemId};

/// A rule on the map as a whole, checked on the builder before any field.
pub(super) type MapRule = fn(&FieldMapBuilder, &mut Vec<MapProblem>);

/// The rules on the map as a whole, in the order they report.
pub(super) const MAP_RULES: &[MapRule] = &[
    object_named,
    enough_systems,
    systems_named_once,
    skew_not_negative,
    default_authority_known,
    phone_regions_known,
];

/// Refuses an empty object name: write ops carry it to name the object type.
fn object_named(map: &FieldMapBuilder, problems: &mut Vec<MapProblem>) {
    if map.object.is_empty() {
        problems.push(MapProblem::EmptyName { what: "object" });
    }
}

/// Refuses a map of fewer than two systems: there is nothing to sync between.
fn enough_systems(map: &FieldMapBuilder, problems: &mut Vec<MapProblem>) {
    if map.systems.len() < 2 {
        problems.push(MapProblem::TooFewSystems {
            count: map.systems.len(),
        });
    }
}

/// Refuses an empty system name, and a system named twice (fields and
/// records name systems, and the priority order ranks them, by name).
fn systems_named_once(map: &FieldMapBuilder, problems: &mut Vec<MapProblem>) {
    let mut seen = BTreeSet::new();
    for s in &map.systems {
        if s.as_str().is_empty() {
            problems.push(MapProblem::EmptyName { what: "system" });
        } else if !seen.insert(s) {
            problems.push(MapProblem::DuplicateSystem { system: s.clone() });
        }
    }
}

/// Refuses a negative skew tolerance: no two timestamps could tie.
fn skew_not_negative(map: &FieldMapBuilder, problems: &mut Vec<MapProblem>) {
    if map.skew_tolerance < TimeDelta::zero() {
        problems.push(MapProblem::NegativeSkewTolerance);
    }
}

/// Refuses a phone normalization (of a field or a match key) whose region
/// the phone number metadata does not know: every number written without a
/// country code would compare by its digits alone.
fn phone_regions_known(map: &FieldMapBuilder, problems: &mut Vec<MapProblem>) {
    #[cfg(feature = "phone")]
    {
        let fields = map.fields.iter().map(|f| (&f.name, &f.normalization));
        let keys = map
            .records
            .match_keys
            .iter()
            .map(|k| (&k.field, &k.normalization));
        for (field, n) in fields.chain(keys) {
            if let super::Normalization::Phone(region) = n {
                if !region.is_known() {
                    problems.push(MapProblem::UnknownPhoneRegion {
                        field: field.clone(),
                        region: region.code().to_owned(),
                    });
                }
            }
        }
    }
    #[cfg(not(feature = "phone"))]
    let _ = (map, problems);
}

/// Refuses a default authority policy whose system the map lacks; reported
/// once here, not again for each field that takes the default.
fn default_authority_known(map: &FieldMapBuilder, problems: &mut Vec<MapProblem>) {
    if let ConflictPolicy::Authority { system, .. } = &map.default_policy {
        if index(&map.systems, system).is_none() {
            problems.push(unknown("(default policy)", system));
        }
    }
}

/// A field on its way to a [`FieldSpec`]: the field as given, and what the
/// [`FIELD_STEPS`] run so far worked out, one entry per system of the map.
struct FieldDraft<'a> {
    systems: &'a Arc<[SystemId]>,
    /// The field as given; steps take out the parts they place.
    def: Field,
    /// Whether an earlier field has the same (not empty) name.
    repeated: bool,
    /// Whether the field sets its own policy (else it takes the default).
    own_policy: bool,
    policy: ConflictPolicy,
    native: Vec<Option<String>>,
    /// Whether each system has the field.
    present: Vec<bool>,
    /// Whether each system's records may leave the field out.
    may_be_absent: Vec<bool>,
    transforms: Vec<Option<Slot>>,
    validations: Vec<Option<Validation>>,
    source: Vec<bool>,
    target: Vec<bool>,
    value_map: Option<ResolvedMap>,
}

/// One step on a field: either it works out part of the field's spec and
/// reports what it cannot place, or it only checks what earlier steps worked
/// out.
enum FieldStep {
    /// Works out part of the field's spec, reporting what it refuses.
    Build(fn(&mut FieldDraft<'_>, &mut Vec<MapProblem>)),
    /// Refuses something about the field as worked out so far.
    Check(fn(&FieldDraft<'_>, &mut Vec<MapProblem>)),
}

/// The steps run on each field, in order: a check may only read what the
/// builds before it worked out.
const FIELD_STEPS: &[FieldStep] = &[
    FieldStep::Check(field_named_once),
    FieldStep::Build(place_natives),
    FieldStep::Build(place_transforms),
    FieldStep::Build(place_validations),
    FieldStep::Build(place_may_be_absent),
    FieldStep::Build(place_flows),
    FieldStep::Check(something_to_sync),
    FieldStep::Check(authority_is_source),
    FieldStep::Build(resolve_value_map),
    FieldStep::Check(transforms_fit),
];

/// Works out each field's spec in turn, running the [`FIELD_STEPS`] on it.
pub(super) fn field_specs(
    fields: Vec<Field>,
    systems: &Arc<[SystemId]>,
    default_policy: &ConflictPolicy,
    default_no_overwrite_on_empty: bool,
    problems: &mut Vec<MapProblem>,
) -> Vec<FieldSpec> {
    let repeated = repeated_names(&fields);
    fields
        .into_iter()
        .zip(repeated)
        .map(|(def, repeated)| {
            let mut draft = FieldDraft::new(def, repeated, systems, default_policy);
            for step in FIELD_STEPS {
                match step {
                    FieldStep::Build(build) => build(&mut draft, problems),
                    FieldStep::Check(check) => check(&draft, problems),
                }
            }
            draft.into_spec(default_no_overwrite_on_empty)
        })
        .collect()
}

/// For each field, whether an earlier field has its name (an empty name is
/// refused as empty, not as repeated).
fn repeated_names(fields: &[Field]) -> Vec<bool> {
    let mut seen = BTreeSet::new();
    fields
        .iter()
        .map(|f| !f.name.is_empty() && !seen.insert(f.name.as_str()))
        .collect()
}

impl<'a> FieldDraft<'a> {
    /// The field before any step: in every system under its canonical name,
    /// flowing nowhere, with its own policy or else the default.
    fn new(
        mut def: Field,
        repeated: bool,
        systems: &'a Arc<[SystemId]>,
        default_policy: &ConflictPolicy,
    ) -> Self {
        let n = systems.len();
        let own_policy = def.policy.is_some();
        let policy = def.policy.take().unwrap_or_else(|| default_policy.clone());
        FieldDraft {
            systems,
            native: vec![Some(def.name.clone()); n],
            def,
            repeated,
            own_policy,
            policy,
            present: vec![true; n],
            may_be_absent: vec![false; n],
            transforms: vec![None; n],
            validations: vec![None; n],
            source: vec![false; n],
            target: vec![false; n],
            value_map: None,
        }
    }

    fn name(&self) -> &str {
        &self.def.name
    }

    fn shape(&self) -> FieldShape<'_> {
        FieldShape {
            name: &self.def.name,
            systems: self.systems,
            present: &self.present,
            source: &self.source,
            target: &self.target,
            normalization: &self.def.normalization,
        }
    }

    fn into_spec(self, default_no_overwrite_on_empty: bool) -> FieldSpec {
        let def = self.def;
        let name = Name::from(def.name);
        // A system that keeps the canonical name shares its text.
        let shared = |n: String| {
            if n == *name {
                name.clone()
            } else {
                Name::from(n)
            }
        };
        let native = self.native.into_iter().map(|n| n.map(&shared)).collect();
        FieldSpec {
            name,
            native,
            may_be_absent: self.may_be_absent,
            source: self.source,
            target: self.target,
            direction: def.direction,
            policy: self.policy,
            no_overwrite_on_empty: def
                .no_overwrite_on_empty
                .unwrap_or(default_no_overwrite_on_empty),
            normalization: def.normalization,
            transforms: self.transforms,
            value_map: self.value_map.map(Arc::new),
            validations: self.validations,
            sensitive: def.sensitive,
            journaled: def.journaled,
            reference: def.reference,
            systems: Arc::clone(self.systems),
        }
    }
}

/// Refuses an empty field name, and a field given twice: a canonical name
/// says which field a value belongs to.
fn field_named_once(field: &FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    if field.name().is_empty() {
        problems.push(MapProblem::EmptyName { what: "field" });
    } else if field.repeated {
        problems.push(MapProblem::DuplicateField {
            field: field.name().to_owned(),
        });
    }
}

/// Places the field's native names: leaves out the systems it is not in, then
/// renames. Refuses an unknown system, an empty native name, and a native name
/// for a system the field is marked not in.
fn place_natives(field: &mut FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    let systems = field.systems;
    for s in &field.def.absent {
        match index(systems, s) {
            Some(i) => field.native[i] = None,
            None => problems.push(unknown(&field.def.name, s)),
        }
    }
    for (s, n) in &field.def.natives {
        match index(systems, s) {
            Some(_) if n.is_empty() => problems.push(MapProblem::EmptyName {
                what: "native field",
            }),
            Some(i) if field.def.absent.contains(s) => {
                problems.push(MapProblem::NativeForAbsentSystem {
                    field: field.def.name.clone(),
                    system: systems[i].clone(),
                });
            }
            Some(i) => field.native[i] = Some(n.clone()),
            None => problems.push(unknown(&field.def.name, s)),
        }
    }
    for (present, native) in field.present.iter_mut().zip(&field.native) {
        *present = native.is_some();
    }
}

/// Places each transform on its system. Refuses an unknown system, a system
/// without the field, a second transform for one system, and a built-in
/// transform whose own settings are invalid.
fn place_transforms(field: &mut FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    for (s, t) in std::mem::take(&mut field.def.transforms) {
        match index(field.systems, &s) {
            None => problems.push(unknown(field.name(), &s)),
            Some(i) if !field.present[i] => problems.push(MapProblem::NotInSystem {
                field: field.def.name.clone(),
                system: s,
                what: "a transform",
            }),
            Some(i) if field.transforms[i].is_some() => problems.push(MapProblem::Twice {
                field: field.def.name.clone(),
                system: s,
                what: "transforms",
            }),
            Some(i) => {
                if let Slot::Builtin(b) = &t {
                    if let Err(message) = b.check() {
                        problems.push(MapProblem::InvalidTransform {
                            field: field.def.name.clone(),
                            system: s.clone(),
                            message,
                        });
                    }
                }
                field.transforms[i] = Some(t);
            }
        }
    }
}

/// Places each system's validation rules. Refuses an unknown system, a system
/// without the field, and a second set of rules for one system.
fn place_validations(field: &mut FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    for (s, v) in std::mem::take(&mut field.def.validations) {
        match index(field.systems, &s) {
            None => problems.push(unknown(field.name(), &s)),
            Some(i) if !field.present[i] => problems.push(MapProblem::NotInSystem {
                field: field.def.name.clone(),
                system: s,
                what: "validation rules",
            }),
            Some(i) if field.validations[i].is_some() => problems.push(MapProblem::Twice {
                field: field.def.name.clone(),
                system: s,
                what: "validation rules",
            }),
            Some(i) => field.validations[i] = Some(v),
        }
    }
}

/// Marks the systems whose records may leave the field out. Refuses an
/// unknown system and a system without the field.
fn place_may_be_absent(field: &mut FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    for s in &field.def.may_be_absent {
        match index(field.systems, s) {
            None => problems.push(unknown(field.name(), s)),
            Some(i) if !field.present[i] => problems.push(MapProblem::NotInSystem {
                field: field.def.name.clone(),
                system: s.clone(),
                what: "may_be_absent_in",
            }),
            Some(i) => field.may_be_absent[i] = true,
        }
    }
}

/// Works out which systems the field flows from (sources) and to (targets)
/// by its direction. Refuses a one-way field whose source is unknown or does
/// not have the field.
fn place_flows(field: &mut FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    match &field.def.direction {
        Direction::Bidirectional => {
            field.source.clone_from(&field.present);
            field.target.clone_from(&field.present);
        }
        Direction::NotSynced => {}
        Direction::OneWay { from, .. } => match index(field.systems, from) {
            Some(f) => {
                if !field.present[f] {
                    problems.push(MapProblem::SourceLacksField {
                        field: field.def.name.clone(),
                        system: from.clone(),
                    });
                }
                field.source[f] = true;
                for (i, target) in field.target.iter_mut().enumerate() {
                    *target = i != f && field.present[i];
                }
            }
            None => problems.push(unknown(&field.def.name, from)),
        },
    }
}

/// Refuses a synced field that fewer than two systems have: it has nowhere to
/// flow. (With fewer than two systems in the map, that was reported already.)
fn something_to_sync(field: &FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    if field.def.direction != Direction::NotSynced
        && field.systems.len() >= 2
        && field.present.iter().filter(|p| **p).count() < 2
    {
        problems.push(MapProblem::NothingToSync {
            field: field.name().to_owned(),
        });
    }
}

/// Refuses an authority policy whose system is not a source of a synced field
/// (its value could never win), and a field's own authority policy naming a
/// system the map lacks (the default's was reported once, by
/// [`default_authority_known`]).
fn authority_is_source(field: &FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    let ConflictPolicy::Authority { system, .. } = &field.policy else {
        return;
    };
    match index(field.systems, system) {
        Some(i) if !field.source[i] && field.def.direction != Direction::NotSynced => {
            problems.push(MapProblem::AuthorityNotSource {
                field: field.name().to_owned(),
                system: system.clone(),
            });
        }
        Some(_) => {}
        None if field.own_policy => problems.push(unknown(field.name(), system)),
        None => {}
    }
}

/// Checks the field's value map against the field's systems and flows and
/// builds its lookup tables; `value_map::resolve` says what it refuses.
fn resolve_value_map(field: &mut FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    let resolved = field
        .def
        .value_map
        .as_ref()
        .map(|vm| value_map::resolve(vm, &field.shape(), problems));
    field.value_map = resolved;
}

/// Refuses a transform on a system the value map also covers (a system uses
/// one or the other), and on a system that is both a source and a target, a
/// transform that does not round-trip ([`check_round_trip`]).
fn transforms_fit(field: &FieldDraft<'_>, problems: &mut Vec<MapProblem>) {
    let shape = field.shape();
    for (i, t) in field.transforms.iter().enumerate() {
        let Some(t) = t else { continue };
        if field.value_map.as_ref().is_some_and(|vm| vm.covers(i)) {
            problems.push(MapProblem::TransformAndValueMap {
                field: field.name().to_owned(),
                system: field.systems[i].clone(),
            });
        } else if field.source[i] && field.target[i] {
            check_round_trip(&shape, i, t.get(), problems);
        }
    }
}

/// Reports a lossy transform on system `s` (a source and a target of the
/// field), or any of its samples that does not come back unchanged.
fn check_round_trip(
    field: &FieldShape<'_>,
    s: usize,
    t: &dyn Transform,
    problems: &mut Vec<MapProblem>,
) {
    let problem_base = || (field.name.to_owned(), field.systems[s].clone());
    if t.lossy() {
        let (field, system) = problem_base();
        problems.push(MapProblem::LossyTwoWay {
            field,
            system,
            transform: t.name().to_owned(),
        });
        return;
    }
    for sample in t.samples() {
        let back = t.to_canonical(&sample).and_then(|c| t.from_canonical(&c));
        let (field_name, system) = problem_base();
        match back {
            Ok(b) if field.normalization.equal(Some(&b), Some(&sample)) => {}
            Ok(b) => problems.push(MapProblem::NoRoundTrip {
                field: field_name,
                system,
                value: sample,
                back: Some(b),
            }),
            Err(e) => problems.push(MapProblem::SampleFails {
                field: field_name,
                system,
                value: sample,
                error: e.to_string(),
            }),
        }
    }
}

/// A rule across the built fields, checked after every field's steps.
pub(super) type SpecRule = fn(&[SystemId], &[FieldSpec], &mut Vec<MapProblem>);

/// The rules across fields, in the order they report.
pub(super) const SPEC_RULES: &[SpecRule] = &[natives_distinct, references_named];

/// Refuses two fields with the same native name in one system: that system's
/// value would be read into both and written from both.
fn natives_distinct(systems: &[SystemId], fields: &[FieldSpec], problems: &mut Vec<MapProblem>) {
    for (i, system) in systems.iter().enumerate() {
        let mut by_native: Vec<(&str, &str)> = fields
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
}

/// Refuses a reference field whose object type is named empty.
fn references_named(_: &[SystemId], fields: &[FieldSpec], problems: &mut Vec<MapProblem>) {
    for f in fields {
        if f.reference.as_deref().is_some_and(str::is_empty) {
            problems.push(MapProblem::EmptyName { what: "object" });
        }
    }
}

fn index(systems: &[SystemId], system: &SystemId) -> Option<usize> {
    systems.iter().position(|x| x == system)
}

fn unknown(field: &str, system: &SystemId) -> MapProblem {
    MapProblem::UnknownSystem {
        field: field.to_owned(),
        system: system.clone(),
    }
}

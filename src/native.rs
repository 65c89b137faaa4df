//! A held conflict as each system holds its values: [`NativeConflict`],
//! made by [`Conflict::native`] through the field map, for a reviewer.
//! Its public path is [`plan`](crate::plan)'s.
//!
//! A conflict holds canonical values (`"O"`); a reviewer knows them as each
//! system shows them (`"opportunity"` in one, `"Qualification"` in the
//! other), under each system's field name. Each value is converted as a
//! plan writes it to that system ([`FieldSpec::to_native`]); a value the
//! map cannot convert is kept in canonical form with the reason
//! ([`NotNative`]), so one such value never hides the others.
//!
//! A conflict listed by [`ReviewQueue::open`](crate::store::ReviewQueue::open)
//! carries what each system held ([`ConflictCandidate::held_as`](crate::policy::ConflictCandidate::held_as)),
//! and that is shown as it is. A plan's conflict does not: its values show
//! as the systems would hold them once written, which is what they hold
//! unless the map reads several native values as one (a value no row
//! covers read as the value map's default, a row matched
//! case-insensitively shows as the row writes it, not as it was typed).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConflictId, EntityId};
use crate::mapping::{FieldMap, FieldSpec, MappingError};
use crate::model::{is_empty_value, SystemId};
use crate::policy::{Conflict, HeldBy, TIME_SHOWN};
use crate::redact::{debug_with, shown, view};

/// A held [`Conflict`] as the systems hold its values: each candidate
/// under its system's native field name, in its system's native form.
/// Made by [`Conflict::native`]; what a reviewer is shown.
///
/// Its `Display` is a short block, a line for the conflict and one per
/// candidate:
///
/// ```text
/// conflict 3f0c9a1d5e7b2c48 on hubspot:1 field stage (manual review):
///     hubspot dealstage = "closedwon" (was "appointmentscheduled"; changed 2026-03-01 09:00:07)
///     salesforce StageName = "Closed Lost" (was "Prospecting"; changed 2026-03-01 09:00:09)
/// ```
///
/// `Debug` and `Display` print `[redacted]` for the values of a field
/// marked sensitive (by the conflict or by the map);
/// [`display_unredacted`](NativeConflict::display_unredacted) shows them,
/// and serde keeps them (a reviewer's screen may need them: it is not a
/// log).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NativeConflict {
    /// The conflict's id, to resolve it by.
    pub id: ConflictId,
    /// The entity.
    pub entity: EntityId,
    /// The canonical field.
    pub field: String,
    /// Why it is held.
    pub held_by: HeldBy,
    /// Every candidate, in the conflict's order (the map's priority order).
    pub candidates: Vec<NativeCandidate>,
    /// The field is marked sensitive, by the conflict or by the map:
    /// `Debug` and `Display` print `[redacted]` for its values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One system's side of a [`NativeConflict`]: its value as the system
/// holds it. Its `Debug` prints `[redacted]` for the values of a sensitive
/// field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NativeCandidate {
    /// The system.
    pub system: SystemId,
    /// The field's native name in the system; the canonical name where the
    /// map names none (then [`value`](NativeCandidate::value) says why).
    pub field: String,
    /// The candidate's value in the system's native form, or in canonical
    /// form with the reason the map could not convert it.
    pub value: NativeValue,
    /// The conflict's baseline (the canonical value at the last sync) in
    /// the system's native form; `None` where there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<NativeValue>,
    /// When the system changed the field, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// The field is marked sensitive: `Debug` and `Display` print
    /// `[redacted]` for the values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// A value rendered for one system: in its native form, or, where the map
/// cannot convert it, in canonical form with the reason.
///
/// It does not know whether its field is sensitive, so its own `Debug`
/// prints `[redacted]` for the value; the [`NativeCandidate`] that holds it
/// shows it where the field is not sensitive.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NativeValue {
    /// The value as the system holds it.
    Native(Value),
    /// The map could not give the system's form: the canonical value.
    Canonical {
        /// The value, in canonical form.
        value: Value,
        /// Why it is not in the system's form.
        why: NotNative,
    },
}

/// Why a [`NativeValue`] is in canonical form.
///
/// Its `Debug` and `Display` print `[redacted]` for the value a
/// [`MappingError`] names where the field is sensitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotNative {
    /// The map has no field of the conflict's name (it changed since the
    /// conflict was held, or it is another object type's map).
    NoField,
    /// The map does not have the field in this system.
    NotInSystem,
    /// The field is a reference: its canonical value is the id of the
    /// entity it refers to, which each system holds as its own record's
    /// id, known from that object type's baseline, not from the map.
    Reference {
        /// The object type referred to.
        object: String,
    },
    /// The field's value map leaves this value out of the system
    /// ([`Unmapped::Skip`](crate::mapping::Unmapped::Skip)): a plan would
    /// not write it there.
    Skipped,
    /// The system's value map or transform failed on the value: a plan
    /// would report it as an issue and not write it there.
    Failed {
        /// What failed (marked sensitive where the field is).
        error: MappingError,
    },
}

impl Conflict {
    /// The conflict as each candidate system holds its values, for a
    /// reviewer, under the system's native field name: what the system
    /// held where the candidate carries it
    /// ([`held_as`](crate::policy::ConflictCandidate::held_as), as the
    /// review queue's items do), else the value converted through `map` as
    /// a plan writes it to that system ([`FieldSpec::to_native`]); the
    /// baseline converted likewise. Where the map reads several native
    /// values as one canonical value (a value map's default for values no
    /// row covers, a row matched case-insensitively), a converted value
    /// shows as the map writes it, not as it was typed.
    ///
    /// Never fails: a value the map cannot convert (no such field in the
    /// map or in that system, a reference, a value its value map skips or
    /// does not cover, a transform that fails) is kept in canonical form
    /// with the reason ([`NativeValue::Canonical`]). The field counts as
    /// sensitive where the conflict or the map marks it so.
    ///
    /// ```
    /// use recsync::mapping::{Field, FieldMap, ValueMap, ValueRow};
    /// use recsync::plan::NativeValue;
    /// use recsync::{Baseline, ConflictPolicy, Outcomes, Record, Snapshot, SyncEngine};
    /// use serde_json::json;
    ///
    /// let stage = ValueMap::new()
    ///     .row(ValueRow::both([("crm", "opportunity"), ("erp", "OPP")]).canonical("O"))
    ///     .row(ValueRow::both([("crm", "customer"), ("erp", "CUS")]).canonical("C"))
    ///     .row(ValueRow::both([("crm", "lost"), ("erp", "LST")]).canonical("L"));
    /// let map = FieldMap::builder()
    ///     .systems(["crm", "erp"])
    ///     .key("email")
    ///     .field(Field::new("email"))
    ///     .field(
    ///         Field::new("stage")
    ///             .native("erp", "Stage")
    ///             .value_map(stage)
    ///             .policy(ConflictPolicy::ManualReview),
    ///     )
    ///     .build()?;
    /// let engine = SyncEngine::new(map);
    /// let read = |crm: &str, erp: &str| {
    ///     let crm = Record::new("1").field("email", "ada@example.com").field("stage", crm);
    ///     let erp = Record::new("A").field("email", "ada@example.com").field("Stage", erp);
    ///     [Snapshot::complete("crm", vec![crm]), Snapshot::complete("erp", vec![erp])]
    /// };
    /// let mut baseline = Baseline::new();
    /// let plan = engine.plan(&baseline, &read("opportunity", "OPP"))?;
    /// engine.commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))?;
    ///
    /// // Both systems change the stage, differently: held for review.
    /// let plan = engine.plan(&baseline, &read("customer", "LST"))?;
    /// let conflict = &plan.conflicts[0];
    /// assert_eq!(conflict.candidates[1].value, json!("L"));
    ///
    /// let native = conflict.native(engine.map());
    /// let erp = native.candidate("erp").unwrap();
    /// assert_eq!((erp.field.as_str(), erp.value.value()), ("Stage", &json!("LST")));
    /// assert_eq!(erp.baseline, Some(NativeValue::Native(json!("OPP"))));
    /// assert!(native.to_string().contains(r#"erp Stage = "LST" (was "OPP""#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn native(&self, map: &FieldMap) -> NativeConflict {
        let spec = map.field(&self.field);
        let sensitive = self.sensitive || spec.is_some_and(FieldSpec::is_sensitive);
        let candidates = self
            .candidates
            .iter()
            .map(|c| {
                let sensitive = sensitive || c.sensitive;
                let render = |v: &Value| render(spec, &c.system, v, sensitive);
                NativeCandidate {
                    system: c.system.clone(),
                    field: spec
                        .and_then(|s| s.native_name(c.system.as_str()))
                        .unwrap_or(&self.field)
                        .to_owned(),
                    // What the system held, where the review queue knows it;
                    // else the value as the map writes it there.
                    value: match &c.held_as {
                        Some(held) => NativeValue::Native(held.clone()),
                        None => render(&c.value),
                    },
                    baseline: self.baseline.as_ref().map(render),
                    changed_at: c.changed_at,
                    sensitive,
                }
            })
            .collect();
        NativeConflict {
            id: self.id,
            entity: self.entity.clone(),
            field: self.field.clone(),
            held_by: self.held_by.clone(),
            candidates,
            sensitive,
        }
    }
}

/// `canonical` in `system`'s native form, as a plan writes it; in
/// canonical form with the reason where that cannot be had.
fn render(
    spec: Option<&FieldSpec>,
    system: &SystemId,
    canonical: &Value,
    sensitive: bool,
) -> NativeValue {
    let canonical_because = |why| NativeValue::Canonical {
        value: canonical.clone(),
        why,
    };
    let Some(spec) = spec else {
        return canonical_because(NotNative::NoField);
    };
    if spec.native_name(system.as_str()).is_none() {
        return canonical_because(NotNative::NotInSystem);
    }
    if let Some(object) = spec.reference() {
        // An empty reference is empty everywhere; an id is the parent's
        // entity's, which the engine translates through its links.
        if !is_empty_value(canonical) {
            return canonical_because(NotNative::Reference {
                object: object.to_owned(),
            });
        }
    }
    match spec.to_native(system.as_str(), canonical) {
        Ok(Some(native)) => NativeValue::Native(native),
        Ok(None) => canonical_because(NotNative::Skipped),
        Err(error) => canonical_because(NotNative::Failed {
            error: sensitive_if(error, sensitive),
        }),
    }
}

/// `error`, marked sensitive where the conflict says the field is (the
/// map it came from may not).
fn sensitive_if(mut error: MappingError, sensitive: bool) -> MappingError {
    match &mut error {
        MappingError::Transform { error, .. } => error.sensitive |= sensitive,
        MappingError::Unmapped { sensitive: s, .. } => *s |= sensitive,
    }
    error
}

impl NativeConflict {
    /// The candidate of `system`, if it is one.
    pub fn candidate(&self, system: &str) -> Option<&NativeCandidate> {
        self.candidates.iter().find(|c| c.system == system)
    }

    /// A display that shows the values of a sensitive field; the plain
    /// `Display` redacts them. Ask for it by name, never for logs.
    pub fn display_unredacted(&self) -> impl fmt::Display + '_ {
        Screen {
            conflict: self,
            redact: false,
        }
    }
}

impl NativeValue {
    /// The value: in the system's native form, or in canonical form where
    /// [`not_native`](NativeValue::not_native) says why.
    pub fn value(&self) -> &Value {
        match self {
            NativeValue::Native(v) | NativeValue::Canonical { value: v, .. } => v,
        }
    }

    /// Whether the value is in the system's native form.
    pub fn is_native(&self) -> bool {
        matches!(self, NativeValue::Native(_))
    }

    /// Why the value is in canonical form; `None` where it is native.
    pub fn not_native(&self) -> Option<&NotNative> {
        match self {
            NativeValue::Native(_) => None,
            NativeValue::Canonical { why, .. } => Some(why),
        }
    }

    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        match self {
            NativeValue::Native(v) => f.debug_tuple("Native").field(&shown(v, redact)).finish(),
            NativeValue::Canonical { value, why } => f
                .debug_struct("Canonical")
                .field("value", &shown(value, redact))
                .field("why", &debug_with(|f| why.fmt_debug(f, redact)))
                .finish(),
        }
    }
}

impl fmt::Debug for NativeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug(f, true)
    }
}

impl NotNative {
    fn fmt_display(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        match self {
            NotNative::NoField => f.write_str("the map has no such field"),
            NotNative::NotInSystem => f.write_str("the map has the field not in this system"),
            NotNative::Reference { object } => write!(
                f,
                "the id of the {object} entity referred to, which the system holds as its own record's id"
            ),
            NotNative::Skipped => f.write_str("the value map leaves it out of this system"),
            NotNative::Failed { error } => {
                write!(f, "{}", view(error, redact))
            }
        }
    }

    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        match self {
            NotNative::Failed { error } => f
                .debug_struct("Failed")
                .field("error", &view(error, redact))
                .finish(),
            other => fmt::Debug::fmt(other, f),
        }
    }
}

/// Why the value is in canonical form, as a note: `the map has no such
/// field`, or the mapping error, its value `[redacted]`: on its own it
/// cannot tell whether its field is sensitive (a candidate's line shows
/// it where the field is not).
impl fmt::Display for NotNative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_display(f, true)
    }
}

impl NativeCandidate {
    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        let baseline = debug_with(|f| match &self.baseline {
            Some(b) => f
                .debug_tuple("Some")
                .field(&debug_with(|f| b.fmt_debug(f, redact)))
                .finish(),
            None => f.write_str("None"),
        });
        let mut d = f.debug_struct("NativeCandidate");
        d.field("system", &self.system)
            .field("field", &self.field)
            .field("value", &debug_with(|f| self.value.fmt_debug(f, redact)))
            .field("baseline", &baseline)
            .field("changed_at", &self.changed_at);
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }

    /// One line of the screen: `system field = value (notes)`.
    fn fmt_line(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        write!(
            f,
            "{} {} = {} (",
            self.system,
            self.field,
            shown(self.value.value(), redact)
        )?;
        if let Some(why) = self.value.not_native() {
            f.write_str("canonical form: ")?;
            why.fmt_display(f, redact)?;
            f.write_str("; ")?;
        }
        match &self.baseline {
            Some(b) => {
                write!(f, "was {}", shown(b.value(), redact))?;
                if !b.is_native() {
                    f.write_str(" in canonical form")?;
                }
            }
            None => f.write_str("was none")?,
        }
        if let Some(t) = self.changed_at {
            write!(f, "; changed {}", t.format(TIME_SHOWN))?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for NativeCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug(f, self.sensitive)
    }
}

impl fmt::Debug for NativeConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let candidates =
            debug_with(|f| {
                f.debug_list()
                    .entries(self.candidates.iter().map(|c| {
                        debug_with(move |f| c.fmt_debug(f, self.sensitive || c.sensitive))
                    }))
                    .finish()
            });
        let mut d = f.debug_struct("NativeConflict");
        d.field("id", &self.id)
            .field("entity", &self.entity)
            .field("field", &self.field)
            .field("held_by", &self.held_by)
            .field("candidates", &candidates);
        if self.sensitive {
            d.field("sensitive", &true);
        }
        d.finish()
    }
}

/// A [`NativeConflict`]'s `Display`, with values redacted where sensitive
/// or not.
struct Screen<'a> {
    conflict: &'a NativeConflict,
    redact: bool,
}

impl fmt::Display for Screen<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.conflict;
        write!(
            f,
            "conflict {} on {} field {} ({}):",
            c.id, c.entity, c.field, c.held_by
        )?;
        for cand in &c.candidates {
            f.write_str("\n    ")?;
            cand.fmt_line(f, self.redact && (c.sensitive || cand.sensitive))?;
        }
        Ok(())
    }
}

/// The conflict's line, then a line per candidate: its system, native
/// field name and value, then its baseline and when it changed. A value
/// in canonical form says so and why. Values of a sensitive field print as
/// `[redacted]`.
impl fmt::Display for NativeConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Screen {
            conflict: self,
            redact: true,
        }
        .fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mapping::{Builtin, DateFormat, Field, Unmapped, ValueMap, ValueRow};
    use crate::policy::{ConflictCandidate, ConflictPolicy};

    fn at(s: &str) -> Option<DateTime<Utc>> {
        s.parse().ok()
    }

    /// Deals between hubspot and salesforce: a value-mapped stage, a close
    /// date HubSpot keeps in epoch milliseconds, a sensitive note.
    fn map() -> FieldMap {
        let stage = ValueMap::new()
            .row(
                ValueRow::both([
                    ("hubspot", "appointmentscheduled"),
                    ("salesforce", "Prospecting"),
                ])
                .canonical("L"),
            )
            .row(
                ValueRow::both([("hubspot", "opportunity"), ("salesforce", "Qualification")])
                    .canonical("O"),
            )
            .row(
                ValueRow::both([("hubspot", "closedwon"), ("salesforce", "Closed Won")])
                    .canonical("W"),
            );
        FieldMap::builder()
            .object("deals")
            // erp has the region salesforce lacks.
            .systems(["hubspot", "salesforce", "erp"])
            .default_policy(ConflictPolicy::ManualReview)
            .field(
                Field::new("stage")
                    .native("hubspot", "dealstage")
                    .native("salesforce", "StageName")
                    .value_map(stage),
            )
            .field(
                Field::new("close_date")
                    .native("hubspot", "closedate")
                    .native("salesforce", "CloseDate")
                    .transform(
                        "hubspot",
                        Builtin::Date {
                            native: DateFormat::EpochMillis,
                        },
                    ),
            )
            .field(
                Field::new("note")
                    .native("salesforce", "Note__c")
                    .sensitive(),
            )
            .field(Field::new("owner").references("users"))
            .field(Field::new("region").not_in("salesforce"))
            .field(
                Field::new("tier").value_map(
                    ValueMap::new()
                        .both([("hubspot", "gold"), ("salesforce", "G")])
                        .unmapped(Unmapped::Skip),
                ),
            )
            .build()
            .unwrap()
    }

    fn conflict(field: &str, baseline: Option<Value>, values: [Value; 2]) -> Conflict {
        let [h, s] = values;
        Conflict {
            id: ConflictId(0x3f0c_9a1d_5e7b_2c48),
            entity: EntityId::new("hubspot:1"),
            field: field.to_owned(),
            baseline,
            candidates: vec![
                ConflictCandidate {
                    system: "hubspot".into(),
                    value: h,
                    changed_at: at("2026-03-01T09:00:07Z"),
                    sensitive: false,
                    held_as: None,
                },
                ConflictCandidate {
                    system: "salesforce".into(),
                    value: s,
                    changed_at: None,
                    sensitive: false,
                    held_as: None,
                },
            ],
            held_by: HeldBy::ManualReview,
            sensitive: false,
        }
    }

    #[test]
    fn a_conflict_displays_its_canonical_values_on_one_line() {
        let c = conflict("stage", Some(json!("L")), [json!("O"), json!("W")]);
        assert_eq!(
            c.to_string(),
            r#"conflict 3f0c9a1d5e7b2c48 on hubspot:1 field stage (manual review): baseline "L", hubspot "O" at 2026-03-01 09:00:07, salesforce "W""#
        );
        let c = conflict("stage", None, [json!("O"), json!("W")]);
        assert!(
            c.to_string()
                .contains("(manual review): baseline none, hubspot"),
            "{c}"
        );
    }

    #[test]
    fn a_value_mapped_conflict_shows_each_system_s_own_value() {
        let c = conflict("stage", Some(json!("L")), [json!("O"), json!("W")]);
        let native = c.native(&map());
        assert_eq!(
            native.to_string(),
            "conflict 3f0c9a1d5e7b2c48 on hubspot:1 field stage (manual review):\n    \
             hubspot dealstage = \"opportunity\" (was \"appointmentscheduled\"; changed 2026-03-01 09:00:07)\n    \
             salesforce StageName = \"Closed Won\" (was \"Prospecting\")"
        );
        // The same as data.
        let sf = native.candidate("salesforce").unwrap();
        assert_eq!(sf.field, "StageName");
        assert_eq!(sf.value, NativeValue::Native(json!("Closed Won")));
        assert_eq!(sf.baseline, Some(NativeValue::Native(json!("Prospecting"))));
        assert_eq!(native.candidates[0].changed_at, at("2026-03-01T09:00:07Z"));
        assert!(native.candidates.iter().all(|c| c.value.is_native()));
        assert_eq!((native.id, native.field.as_str()), (c.id, "stage"));
        // Serde keeps every value, for a UI.
        let data = serde_json::to_value(&native).unwrap();
        assert_eq!(
            data["candidates"][1]["value"],
            json!({"native": "Closed Won"})
        );
        assert_eq!(
            serde_json::from_value::<NativeConflict>(data).unwrap(),
            native
        );
    }

    #[test]
    fn a_transformed_conflict_shows_each_system_s_own_form() {
        let c = conflict(
            "close_date",
            Some(json!("2026-03-31")),
            [json!("2026-04-30"), json!("2026-05-15")],
        );
        let native = c.native(&map());
        let hs = native.candidate("hubspot").unwrap();
        assert_eq!(hs.field, "closedate");
        assert_eq!(hs.value.value(), &json!(1_777_507_200_000_i64));
        assert_eq!(
            hs.baseline.as_ref().map(NativeValue::value),
            Some(&json!(1_774_915_200_000_i64))
        );
        let sf = native.candidate("salesforce").unwrap();
        assert_eq!(
            (sf.field.as_str(), sf.value.value()),
            ("CloseDate", &json!("2026-05-15"))
        );
        assert!(native
            .to_string()
            .contains("\n    hubspot closedate = 1777507200000 (was 1774915200000; changed"));
    }

    #[test]
    fn a_value_the_map_cannot_convert_is_shown_canonical_with_why() {
        let map = map();
        // No row for "X": the value map's default policy is an error.
        let c = conflict("stage", Some(json!("L")), [json!("O"), json!("X")]);
        let native = c.native(&map);
        let sf = native.candidate("salesforce").unwrap();
        assert!(!sf.value.is_native());
        assert_eq!(sf.value.value(), &json!("X"));
        assert!(matches!(
            sf.value.not_native(),
            Some(NotNative::Failed {
                error: MappingError::Unmapped { .. }
            })
        ));
        assert_eq!(sf.baseline, Some(NativeValue::Native(json!("Prospecting"))));
        // The other candidate is shown native all the same.
        assert!(native.candidate("hubspot").unwrap().value.is_native());
        assert!(native.to_string().ends_with(
            "salesforce StageName = \"X\" (canonical form: value \"X\" has no row in the value map to native; was \"Prospecting\")"
        ), "{native}");

        // A transform that fails on the value.
        let c = conflict(
            "close_date",
            None,
            [json!("not a date"), json!("2026-05-15")],
        );
        let hs = c.native(&map).candidates.remove(0);
        assert!(matches!(
            hs.value.not_native(),
            Some(NotNative::Failed {
                error: MappingError::Transform { .. }
            })
        ));
        assert_eq!(hs.field, "closedate");
        assert_eq!(hs.baseline, None);

        // A value the value map skips.
        let c = conflict("tier", None, [json!("gold"), json!("platinum")]);
        let native = c.native(&map);
        assert_eq!(
            native.candidates[0].value,
            NativeValue::Native(json!("gold"))
        );
        assert_eq!(
            native.candidates[1].value.not_native(),
            Some(&NotNative::Skipped)
        );
        let data = serde_json::to_value(&native.candidates[1].value).unwrap();
        assert_eq!(
            data,
            json!({"canonical": {"value": "platinum", "why": {"kind": "skipped"}}})
        );

        // A field the map does not have, in one system or at all.
        let c = conflict("region", None, [json!("EMEA"), json!("APAC")]);
        let native = c.native(&map);
        assert_eq!(
            native.candidates[0].value,
            NativeValue::Native(json!("EMEA"))
        );
        assert_eq!(
            native.candidates[1].value.not_native(),
            Some(&NotNative::NotInSystem)
        );
        assert_eq!(native.candidates[1].field, "region");
        let c = conflict("gone", Some(json!(1)), [json!(2), json!(3)]);
        let native = c.native(&map);
        for cand in &native.candidates {
            assert_eq!(cand.value.not_native(), Some(&NotNative::NoField));
            assert_eq!(
                cand.baseline.as_ref().and_then(NativeValue::not_native),
                Some(&NotNative::NoField)
            );
            assert_eq!(cand.field, "gone");
        }
        assert!(native.to_string().contains(
            "hubspot gone = 2 (canonical form: the map has no such field; was 1 in canonical form; changed"
        ), "{native}");

        // A reference: the parent's entity id, not what a system holds.
        let c = conflict("owner", None, [json!("hubspot:u1"), json!("hubspot:u2")]);
        let native = c.native(&map);
        assert_eq!(
            native.candidates[0].value.not_native(),
            Some(&NotNative::Reference {
                object: "users".into()
            })
        );
    }

    #[test]
    fn sensitive_values_stay_redacted() {
        let map = map();
        let secret = "s3cr3t-note";
        // Marked sensitive by the map: the conflict's own flag is not set.
        let c = conflict("note", Some(json!(secret)), [json!(secret), json!(secret)]);
        let native = c.native(&map);
        assert!(native.sensitive && native.candidates.iter().all(|c| c.sensitive));
        for shown in [
            native.to_string(),
            format!("{native:?}"),
            format!("{native:#?}"),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        assert!(native
            .to_string()
            .contains("salesforce Note__c = [redacted] (was [redacted])"));
        assert!(native.display_unredacted().to_string().contains(secret));
        assert_eq!(native.candidates[1].value.value(), &json!(secret));

        // Marked by the conflict, on a field whose mapping fails: the
        // error that names the value is redacted too.
        let mut c = conflict("stage", Some(json!(secret)), [json!(secret), json!("O")]);
        c.sensitive = true;
        let native = c.native(&map);
        let why = native.candidates[0].value.not_native().unwrap();
        for shown in [
            native.to_string(),
            format!("{native:?}"),
            format!("{:?}", native.candidates[0]),
            format!("{:?}", native.candidates[0].value),
            format!("{why}"),
            format!("{why:?}"),
            c.to_string(),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert!(native.display_unredacted().to_string().contains(secret));
        assert!(c.display_unredacted().to_string().contains(secret));
        // A field that is not sensitive shows its values in Debug.
        let c = conflict("stage", None, [json!("O"), json!("W")]);
        assert!(format!("{:?}", c.native(&map)).contains("Closed Won"));
    }
}

//! What `FieldMapBuilder::build` refuses, each problem naming its field, and
//! a config file with every kind of mistake rejected with all of them listed.

use recsync::mapping::{
    Builtin, ConfigError, ConfigProblem, Conversion, DateTimeFormat, MapProblem, Registry,
    Transform, TransformError, Validation, ValueMap, ValueRow, Zone,
};
use recsync::{ConflictPolicy, Field, FieldMap, MapError};
use serde_json::{json, Value};

fn problems(fields: Vec<Field>) -> Vec<MapProblem> {
    let b = fields.into_iter().fold(
        FieldMap::builder().systems(["hubspot", "salesforce"]),
        |b, f| b.field(f),
    );
    match b.build() {
        Ok(_) => Vec::new(),
        Err(MapError { problems }) => problems,
    }
}

fn stage() -> Field {
    Field::new("stage")
}

#[test]
fn a_value_map_that_does_not_round_trip() {
    let p = problems(vec![stage().value_map(
        ValueMap::new()
            .both([("hubspot", "Lead"), ("salesforce", "Open")])
            .one_way(
                "salesforce",
                [("hubspot", "Lead"), ("salesforce", "Working")],
            ),
    )]);
    assert_eq!(
        p,
        [MapProblem::NoRoundTrip {
            field: "stage".into(),
            system: "salesforce".into(),
            value: json!("Working"),
            back: Some(json!("Open")),
        }]
    );
    assert_eq!(
        p[0].to_string(),
        r#"field stage: value "Working" of salesforce does not round-trip (it comes back as "Open")"#
    );
    // The same rows on a field that flows one way from HubSpot are fine:
    // Salesforce is never read.
    assert!(problems(vec![stage().one_way_from("hubspot").value_map(
        ValueMap::new()
            .both([("hubspot", "Lead"), ("salesforce", "Open")])
            .one_way(
                "salesforce",
                [("hubspot", "Lead"), ("salesforce", "Working")]
            ),
    )])
    .is_empty());
}

#[test]
fn a_value_that_maps_to_two_values() {
    let read = problems(vec![stage().value_map(
        ValueMap::new()
            .both([("hubspot", "Lead"), ("salesforce", "Open")])
            .both([("hubspot", "Prospect"), ("salesforce", "Open")]),
    )]);
    assert!(read.contains(&MapProblem::AmbiguousValue {
        field: "stage".into(),
        system: "salesforce".into(),
        value: json!("Open"),
        direction: Conversion::ToCanonical,
    }));
    let write = problems(vec![stage().value_map(
        ValueMap::new()
            .row(ValueRow::both([("hubspot", "A"), ("salesforce", "X")]).canonical("c"))
            .row(ValueRow::both([("hubspot", "B"), ("salesforce", "Y")]).canonical("c")),
    )]);
    assert!(write.contains(&MapProblem::AmbiguousValue {
        field: "stage".into(),
        system: "hubspot".into(),
        value: json!("c"),
        direction: Conversion::ToNative,
    }));
    // Case-insensitive fields compare rows case-insensitively.
    let folded = problems(vec![stage().case_insensitive().value_map(
        ValueMap::new()
            .both([("hubspot", "Lead"), ("salesforce", "open")])
            .both([("hubspot", "Prospect"), ("salesforce", "Open")]),
    )]);
    assert!(folded
        .iter()
        .any(|p| matches!(p, MapProblem::AmbiguousValue { system, .. } if system == "salesforce")));
}

#[test]
fn value_map_rows_that_cannot_be_used() {
    let p = problems(vec![stage().not_in("salesforce").value_map(
        ValueMap::new()
            .both([("hubspot", "A"), ("erp", "a")])
            .both([("salesforce", "B")])
            .row(ValueRow::both(Vec::<(&str, &str)>::new()))
            .one_way("hubspot", [("salesforce", "C")])
            .both([("hubspot", "")]),
    )]);
    let kinds: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert!(p.contains(&MapProblem::UnknownSystem {
        field: "stage".into(),
        system: "erp".into()
    }));
    assert!(p.contains(&MapProblem::NotInSystem {
        field: "stage".into(),
        system: "salesforce".into(),
        what: "a value map value",
    }));
    assert!(
        kinds
            .iter()
            .any(|k| k == "field stage: value map row 3 is invalid: it has no values"),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k
            == "field stage: value map row 4 is invalid: it maps from hubspot but has no value for hubspot"),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| k == "field stage: value map row 5 is invalid: its value for hubspot is empty"),
        "{kinds:?}"
    );
}

#[test]
fn a_default_with_no_native_form() {
    let p = problems(vec![stage().value_map(
        ValueMap::new()
            .both([("hubspot", "Lead"), ("salesforce", "Open")])
            .unmapped(recsync::mapping::Unmapped::Default(json!("Other"))),
    )]);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(
        |p| matches!(p, MapProblem::UnmappedDefault { field, value, .. }
        if field == "stage" && *value == json!("Other"))
    ));
}

#[test]
fn a_lossy_transform_where_the_field_flows_both_ways() {
    let stars = Builtin::scale(0.5).rounded(0);
    let p = problems(vec![
        Field::new("score").transform("salesforce", stars.clone())
    ]);
    assert_eq!(
        p,
        [MapProblem::LossyTwoWay {
            field: "score".into(),
            system: "salesforce".into(),
            transform: "scale".into(),
        }]
    );
    // One way from HubSpot: Salesforce is only written.
    assert!(problems(vec![Field::new("score")
        .one_way_from("hubspot")
        .transform("salesforce", stars.clone())])
    .is_empty());
    // On the one-way field's source it is fine too: never written.
    assert!(problems(vec![Field::new("score")
        .one_way_from("hubspot")
        .transform("hubspot", stars)])
    .is_empty());
}

/// Upper-cases on write, reads as is: does not round-trip on mixed case.
#[derive(Debug)]
struct Shout;

impl Transform for Shout {
    fn name(&self) -> &str {
        "shout"
    }
    fn to_canonical(&self, v: &Value) -> Result<Value, TransformError> {
        Ok(v.clone())
    }
    fn from_canonical(&self, v: &Value) -> Result<Value, TransformError> {
        let s = v
            .as_str()
            .ok_or_else(|| TransformError::wrong_type("string", v))?;
        Ok(json!(s.to_uppercase()))
    }
    fn samples(&self) -> Vec<Value> {
        vec![json!("OK"), json!("Mixed"), json!(3)]
    }
}

#[test]
fn a_transform_whose_samples_do_not_round_trip() {
    let p = problems(vec![Field::new("code").transform("hubspot", Shout)]);
    assert_eq!(
        p,
        [
            MapProblem::NoRoundTrip {
                field: "code".into(),
                system: "hubspot".into(),
                value: json!("Mixed"),
                back: Some(json!("MIXED")),
            },
            MapProblem::SampleFails {
                field: "code".into(),
                system: "hubspot".into(),
                value: json!(3),
                error: "expected string, got 3".into(),
            }
        ]
    );
    // Compared after the field's normalization, "Mixed" and "MIXED" agree.
    let p = problems(vec![Field::new("code")
        .case_insensitive()
        .transform("hubspot", Shout)]);
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn transform_settings_and_placement() {
    let p = problems(vec![
        Field::new("a").transform("hubspot", Builtin::scale(0.0)),
        Field::new("b").transform(
            "hubspot",
            Builtin::DateTime {
                native: DateTimeFormat::Pattern("%Q".into()),
                zone: Zone::utc(),
            },
        ),
        Field::new("c")
            .transform("hubspot", Builtin::StringToNumber)
            .transform("hubspot", Builtin::NumberToString),
        Field::new("d")
            .transform("salesforce", Builtin::StringToNumber)
            .value_map(ValueMap::new().both([("hubspot", "1"), ("salesforce", "one")])),
        Field::new("e")
            .native("hubspot", "e")
            .not_in("salesforce")
            .transform("salesforce", Builtin::StringToNumber)
            .validate("salesforce", Validation::new().required()),
    ]);
    let by_field =
        |f: &str| -> Vec<&MapProblem> { p.iter().filter(|x| x.field() == Some(f)).collect() };
    assert!(matches!(
        by_field("a")[0],
        MapProblem::InvalidTransform { .. }
    ));
    assert!(matches!(
        by_field("b")[0],
        MapProblem::InvalidTransform { .. }
    ));
    assert!(matches!(
        by_field("c")[0],
        MapProblem::Twice {
            what: "transforms",
            ..
        }
    ));
    assert!(by_field("d").iter().any(
        |x| matches!(x, MapProblem::TransformAndValueMap { system, .. } if system == "salesforce")
    ));
    assert!(by_field("e").iter().any(|x| matches!(
        x,
        MapProblem::NotInSystem {
            what: "a transform",
            ..
        }
    )));
    assert!(by_field("e").iter().any(|x| matches!(
        x,
        MapProblem::NotInSystem {
            what: "validation rules",
            ..
        }
    )));
}

#[test]
fn authority_of_a_non_source_and_unknown_systems() {
    let p = problems(vec![
        Field::new("score")
            .one_way_from("hubspot")
            .policy(ConflictPolicy::authority("salesforce")),
        Field::new("x").validate("erp", Validation::new()),
    ]);
    assert_eq!(
        p,
        [
            MapProblem::AuthorityNotSource {
                field: "score".into(),
                system: "salesforce".into()
            },
            MapProblem::UnknownSystem {
                field: "x".into(),
                system: "erp".into()
            }
        ]
    );
}

#[test]
fn validation_rules_reach_the_field_spec() {
    let map = FieldMap::builder()
        .systems(["hubspot", "salesforce"])
        .field(
            Field::new("email").validate(
                "salesforce",
                Validation::new()
                    .required()
                    .kind(recsync::mapping::ValueType::Email)
                    .max_length(20),
            ),
        )
        .field(
            Field::new("status")
                .case_insensitive()
                .validate("hubspot", Validation::new().allowed(["Open", "Won"])),
        )
        .build()
        .unwrap();
    let email = map.field("email").unwrap();
    assert!(email.is_required(1));
    assert!(!email.is_required(0));
    assert!(email.check(1, &json!("ada@example.com")).is_ok());
    assert!(email.check(0, &json!("not an email")).is_ok());
    let err = email.check(1, &json!("not an email")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"value "not an email" is not a email address"#
    );
    assert!(email.check(1, &json!(null)).is_err());
    assert!(email.check(1, &json!("someone.long@example.com")).is_err());
    let status = map.field("status").unwrap();
    assert!(status.check(0, &json!("won")).is_ok());
    assert!(status.check(0, &json!("Lost")).is_err());
    assert_eq!(
        map.field("email").unwrap().validation("salesforce"),
        Some(
            &Validation::new()
                .required()
                .kind(recsync::mapping::ValueType::Email)
                .max_length(20)
        )
    );
}

/// A config with each kind of mistake: all of them are listed, each naming
/// its object and field.
#[test]
fn a_config_with_every_kind_of_mistake() {
    let text = r#"{
      "systems": ["hubspot", "salesforce"],
      "objects": [{
        "name": "contacts",
        "key": "email",
        "fields": [
          { "name": "email", "systems": { "salesforce": { "native": "Email" } } },
          { "name": "work_email", "systems": { "salesforce": { "native": "Email" } } },
          { "name": "phone", "systems": { "marketo": { "native": "Phone" } } },
          { "name": "stage", "value_map": { "rows": [
              { "values": { "hubspot": "Lead", "salesforce": "Open" } },
              { "from": "salesforce", "values": { "hubspot": "Lead", "salesforce": "Working" } }
          ] } },
          { "name": "score", "systems": { "salesforce": {
              "transform": { "type": "scale", "factor": 0.5, "round": 0 } } } },
          { "name": "status", "value_map": { "rows": [
              { "values": { "hubspot": "Lead", "salesforce": "Open" } },
              { "values": { "hubspot": "Prospect", "salesforce": "Open" } }
          ] } },
          { "name": "tier", "value_map": { "rows": [
              { "values": { "hubspot": "Gold", "erp": "G" } }
          ] } },
          { "name": "owner", "direction": { "one_way_from": "hubspot" },
            "policy": { "authority": "salesforce" } },
          { "name": "amount", "systems": { "hubspot": { "custom_transform": "cents" } } },
          { "name": "region", "normalize": "region_codes" },
          { "name": "arr", "policy": { "resolver": "largest" } }
        ]
      }]
    }"#;
    let err = recsync::mapping::MapSet::from_json(text, &Registry::new()).unwrap_err();
    let ConfigError::Invalid { problems } = &err else {
        panic!("{err}")
    };
    let fields: Vec<&str> = problems.iter().filter_map(ConfigProblem::field).collect();
    for f in [
        "email", "phone", "stage", "score", "status", "tier", "owner", "amount", "region", "arr",
    ] {
        assert!(fields.contains(&f), "{f} missing from {err}");
    }
    assert_eq!(
        problems.len(),
        fields.len(),
        "every problem names a field: {err}"
    );
    let text = err.to_string();
    for needle in [
        "native field Email of salesforce is mapped twice, by email and work_email",
        "field phone names system marketo, which the map does not have",
        r#"value "Working" of salesforce does not round-trip"#,
        "flows both ways through salesforce, but its transform scale is lossy",
        r#"value "Open" of salesforce maps to two different values to canonical"#,
        "field tier names system erp",
        "field owner gives authority to salesforce, which is not a source for it",
        r#"field amount, system hubspot: unknown transform "cents""#,
        r#"field region: unknown normalizer "region_codes""#,
        r#"field arr: unknown resolver "largest""#,
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    assert!(text.starts_with("invalid config: 10 problems"), "{text}");
    assert!(problems
        .iter()
        .all(|p| p.to_string().starts_with("object contacts")));
}

//! Config files: JSON and TOML load, round trips, parse errors with line and
//! column, and names the registry lacks.

use std::borrow::Cow;

use recsync::mapping::{
    Builtin, ConfigError, ConfigProblem, DateFormat, FieldMap, MapConfig, MapSet, Normalization,
    Normalizer, Registry, Transform, TransformError, Unmapped, Validation, ValueMap, ValueRow,
    ValueType, Zone,
};
use recsync::policy::{ConflictInput, ConflictResolver, Fallback, Resolution};
use recsync::{ConflictPolicy, Direction, Field};
use serde_json::{json, Value};

#[derive(Debug)]
struct Cents;

impl Transform for Cents {
    fn name(&self) -> &str {
        "cents"
    }
    fn to_canonical(&self, v: &Value) -> Result<Value, TransformError> {
        let c = v
            .as_i64()
            .ok_or_else(|| TransformError::wrong_type("integer", v))?;
        Ok(json!(c as f64 / 100.0))
    }
    fn from_canonical(&self, v: &Value) -> Result<Value, TransformError> {
        let a = v
            .as_f64()
            .ok_or_else(|| TransformError::wrong_type("number", v))?;
        Ok(json!((a * 100.0).round() as i64))
    }
    fn samples(&self) -> Vec<Value> {
        vec![json!(0), json!(1250)]
    }
}

#[derive(Debug)]
struct Region;

impl Normalizer for Region {
    fn name(&self) -> &str {
        "region"
    }
    fn normalize<'v>(&self, v: &'v Value) -> Cow<'v, Value> {
        match v.as_str() {
            Some("EU" | "Europe") => Cow::Owned(json!("EU")),
            _ => Cow::Borrowed(v),
        }
    }
}

#[derive(Debug)]
struct Largest;

impl ConflictResolver for Largest {
    fn name(&self) -> &str {
        "largest"
    }
    fn resolve(&self, input: &ConflictInput<'_>) -> Resolution {
        Resolution::Take(input.candidates[0].system.clone())
    }
}

fn registry() -> Registry {
    Registry::new()
        .transform(Cents)
        .normalizer(Region)
        .resolver(Largest)
}

/// A map that uses every feature a config file can express.
fn everything() -> FieldMap {
    FieldMap::builder()
        .object("contacts")
        .systems(["hubspot", "salesforce", "erp"])
        .key("email")
        .default_policy(ConflictPolicy::Authority {
            system: "salesforce".into(),
            fallback: Fallback::Priority,
        })
        .no_overwrite_on_empty(true)
        .skew_tolerance(chrono::TimeDelta::seconds(3))
        .field(
            Field::new("email")
                .native("salesforce", "Email")
                .case_insensitive()
                .sensitive()
                .validate(
                    "salesforce",
                    Validation::new()
                        .required()
                        .kind(ValueType::Email)
                        .max_length(80),
                ),
        )
        .field(
            Field::new("stage")
                .native("hubspot", "lifecyclestage")
                .not_in("erp")
                .policy(ConflictPolicy::LastWriteWins)
                .value_map(
                    ValueMap::new()
                        .one_way(
                            "hubspot",
                            [("hubspot", "Subscriber"), ("salesforce", "New")],
                        )
                        .both([("hubspot", "Opportunity"), ("salesforce", "Converted")])
                        .row(
                            ValueRow::both([("hubspot", "Customer"), ("salesforce", "Won")])
                                .canonical("customer"),
                        )
                        .unmapped(Unmapped::Default(json!("customer"))),
                )
                .validate(
                    "salesforce",
                    Validation::new().allowed(["New", "Converted", "Won"]),
                ),
        )
        .field(
            Field::new("score")
                .direction(Direction::OneWay {
                    from: "hubspot".into(),
                    enforce: true,
                })
                .policy(ConflictPolicy::ManualReview)
                .transform("hubspot", Builtin::scale(0.5).rounded(0)),
        )
        .field(
            Field::new("amount")
                .policy(ConflictPolicy::custom(Largest))
                .no_overwrite_on_empty(false)
                .transform("erp", Cents)
                .transform("hubspot", Builtin::StringToNumber),
        )
        .field(
            Field::new("region")
                .normalize(Normalization::custom(Region))
                .not_synced(),
        )
        .field(
            Field::new("since")
                .transform(
                    "hubspot",
                    Builtin::Date {
                        native: DateFormat::EpochMillis,
                    },
                )
                .transform(
                    "erp",
                    Builtin::DateToDateTime {
                        native: DateFormat::DayMonthYear,
                        zone: "+01:00".parse::<Zone>().unwrap(),
                    },
                ),
        )
        .build()
        .unwrap()
}

#[test]
fn json_round_trip_keeps_everything() {
    let map = everything();
    let text = map.to_json().unwrap();
    let back = FieldMap::from_json(&text, &registry()).unwrap();
    assert_eq!(MapConfig::from_map(&back), MapConfig::from_map(&map));
    assert_eq!(back.to_json().unwrap(), text);
    // What came back behaves the same.
    let stage = back.field("stage").unwrap();
    assert_eq!(stage.native_name("hubspot"), Some("lifecyclestage"));
    assert_eq!(stage.native_name("erp"), None);
    assert!(stage.validation("salesforce").is_some());
    assert_eq!(
        back.field("amount").unwrap().policy().name(),
        "resolver largest"
    );
    assert_eq!(
        back.field("amount")
            .unwrap()
            .transform("erp")
            .unwrap()
            .name(),
        "cents"
    );
    assert_eq!(
        back.field("region").unwrap().normalization().name(),
        "region"
    );
    assert!(back.field("email").unwrap().is_sensitive());
    assert_eq!(back.skew_tolerance(), chrono::TimeDelta::seconds(3));
    assert!(back.default_no_overwrite_on_empty());
    assert!(!back.field("amount").unwrap().no_overwrite_on_empty());
}

#[cfg(feature = "toml")]
#[test]
fn toml_round_trip_keeps_everything() {
    let map = everything();
    let text = map.to_toml().unwrap();
    let back = FieldMap::from_toml(&text, &registry()).unwrap();
    assert_eq!(MapConfig::from_map(&back), MapConfig::from_map(&map));
    assert_eq!(back.to_toml().unwrap(), text);
}

#[cfg(feature = "toml")]
const CONTACTS_TOML: &str = r#"
systems = ["hubspot", "salesforce"]
object = "contacts"
key = "email"
default_policy = { authority = "salesforce", fallback = "manual_review" }

[[fields]]
name = "email"
normalize = "case_insensitive"
systems.salesforce = { native = "Email" }

[[fields]]
name = "close"
direction = { one_way_from = "salesforce" }
systems.hubspot = { native = "closedate", transform = { type = "date", native = "epoch_millis" } }
systems.salesforce = { native = "CloseDate", transform = { type = "date", native = "MM/DD/YYYY" } }

[[fields]]
name = "stage"
policy = "manual_review"
value_map = { unmapped = "skip", rows = [
  { from = "hubspot", values = { hubspot = "Lead", salesforce = "Open" } },
  { values = { hubspot = "Customer", salesforce = "Won" } },
] }
"#;

#[cfg(feature = "toml")]
#[test]
fn toml_and_json_describe_the_same_map() {
    let from_toml = FieldMap::from_toml(CONTACTS_TOML, &Registry::new()).unwrap();
    let json = json!({
        "systems": ["hubspot", "salesforce"],
        "object": "contacts",
        "key": "email",
        "default_policy": { "authority": "salesforce", "fallback": "manual_review" },
        "fields": [
            { "name": "email", "normalize": "case_insensitive",
              "systems": { "salesforce": { "native": "Email" } } },
            { "name": "close", "direction": { "one_way_from": "salesforce" },
              "systems": {
                "hubspot": { "native": "closedate", "transform": { "type": "date", "native": "epoch_millis" } },
                "salesforce": { "native": "CloseDate", "transform": { "type": "date", "native": "MM/DD/YYYY" } } } },
            { "name": "stage", "policy": "manual_review",
              "value_map": { "unmapped": "skip", "rows": [
                { "from": "hubspot", "values": { "hubspot": "Lead", "salesforce": "Open" } },
                { "values": { "hubspot": "Customer", "salesforce": "Won" } } ] } }
        ]
    });
    let from_json = FieldMap::from_json(&json.to_string(), &Registry::new()).unwrap();
    assert_eq!(
        MapConfig::from_map(&from_toml),
        MapConfig::from_map(&from_json)
    );
    assert_eq!(from_toml.object(), "contacts");
    assert!(matches!(
        from_toml.default_policy(),
        ConflictPolicy::Authority {
            fallback: Fallback::ManualReview,
            ..
        }
    ));
}

#[test]
fn json_parse_errors_carry_line_and_column() {
    let text = "{\n  \"systems\": [\"a\", \"b\"],\n  \"fields\": [\n    { \"name\": \"x\", \"polcy\": \"manual_review\" }\n  ]\n}";
    let err = FieldMap::from_json(text, &Registry::new()).unwrap_err();
    let ConfigError::Parse {
        format,
        line,
        column,
        message,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*format, *line), ("json", 4));
    assert!(*column > 10, "{err}");
    assert!(message.contains("unknown field `polcy`"), "{message}");
    assert!(
        err.to_string().starts_with("json config, line 4, column"),
        "{err}"
    );

    let bad_zone = r#"{"systems": ["a", "b"], "fields": [{"name": "d", "systems": {"a":
        {"transform": {"type": "date_to_date_time", "zone": "Europe/Oslo"}}}}]}"#;
    let err = FieldMap::from_json(bad_zone, &Registry::new()).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { line: 2, message, .. } if message.contains("Europe/Oslo")),
        "{err}"
    );
    let bad_policy = r#"{"systems": ["a", "b"], "default_policy": "first_wins", "fields": []}"#;
    let err = FieldMap::from_json(bad_policy, &Registry::new()).unwrap_err();
    assert!(err.to_string().contains("first_wins"), "{err}");
}

#[cfg(feature = "toml")]
#[test]
fn toml_parse_errors_carry_line_and_column() {
    let text =
        "systems = [\"a\", \"b\"]\n\n[[fields]]\nname = \"x\"\ndirection = { one_way = \"a\" }\n";
    let err = FieldMap::from_toml(text, &Registry::new()).unwrap_err();
    let ConfigError::Parse {
        format,
        line,
        column,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*format, *line), ("toml", 5), "{err}");
    assert!(*column >= 13, "{err}");

    let syntax = "systems = [\"a\", \"b\"\nobject = 1\n";
    let err = FieldMap::from_toml(syntax, &Registry::new()).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err}");

    let policy = "systems = [\"a\", \"b\"]\n[[fields]]\nname = \"x\"\npolicy = { authority = \"a\", resolver = \"r\" }\n";
    let err = FieldMap::from_toml(policy, &Registry::new()).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { line: 4, .. }), "{err}");
}

#[test]
fn unknown_registry_names_are_errors_naming_the_entry() {
    let text = json!({
        "systems": ["a", "b"],
        "object": "deals",
        "default_policy": { "resolver": "newest_note" },
        "fields": [
            { "name": "amount", "systems": { "b": { "custom_transform": "cents" } } },
            { "name": "region", "normalize": "regions" },
            { "name": "both", "systems": { "a": {
                "transform": { "type": "identity" }, "custom_transform": "cents" } } }
        ]
    })
    .to_string();
    let err = FieldMap::from_json(&text, &Registry::new()).unwrap_err();
    let ConfigError::Invalid { problems } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        problems[0],
        ConfigProblem::UnknownName {
            object: "deals".into(),
            entry: "default_policy".into(),
            kind: "resolver",
            name: "newest_note".into(),
        }
    );
    assert_eq!(
        problems[1].to_string(),
        r#"object deals, field amount, system b: unknown transform "cents", not in the registry"#
    );
    assert_eq!(problems[1].field(), Some("amount"));
    assert_eq!(
        problems[2].to_string(),
        r#"object deals, field region: unknown normalizer "regions", not in the registry"#
    );
    assert_eq!(problems[3].field(), Some("both"));
    assert!(problems[3]
        .to_string()
        .contains("gives both `transform` and `custom_transform`"));
    // With the registry, the same names resolve.
    let text = text
        .replace("newest_note", "largest")
        .replace("regions", "region");
    let reg = registry();
    let err = FieldMap::from_json(&text, &reg).unwrap_err();
    let ConfigError::Invalid { problems } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 1, "{err}");
}

#[test]
fn map_sets_keep_file_order_and_report_per_object() {
    let text = json!({
        "systems": ["hubspot", "salesforce"],
        "objects": [
            { "name": "deals", "key": "name", "fields": [{ "name": "name" }] },
            { "name": "contacts", "key": "email", "fields": [{ "name": "email" }] },
            { "name": "companies", "fields": [{ "name": "domain" }] }
        ]
    });
    let set = MapSet::from_json(&text.to_string(), &Registry::new()).unwrap();
    let names: Vec<&str> = set.iter().map(|m| m.object()).collect();
    assert_eq!(names, ["deals", "contacts", "companies"]);
    assert_eq!(set.len(), 3);
    assert_eq!(
        set.get("contacts").unwrap().key_field().unwrap().name(),
        "email"
    );
    let back = MapSet::from_json(&set.to_json().unwrap(), &Registry::new()).unwrap();
    assert_eq!(back.to_config(), set.to_config());

    let bad = json!({
        "systems": ["hubspot", "salesforce"],
        "objects": [
            { "name": "deals", "key": "nope", "fields": [{ "name": "name" }] },
            { "name": "deals", "fields": [{ "name": "x", "systems": { "erp": {} } }] }
        ]
    });
    let err = MapSet::from_json(&bad.to_string(), &Registry::new()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("object deals: key nope is not a field of the map"),
        "{text}"
    );
    assert!(
        text.contains("object deals, name: the object is defined twice"),
        "{text}"
    );
    assert!(text.contains("field x names system erp"), "{text}");
    let empty = MapSet::from_json(r#"{"systems": ["a", "b"]}"#, &Registry::new()).unwrap_err();
    assert!(empty.to_string().contains("defines no object"), "{empty}");
}

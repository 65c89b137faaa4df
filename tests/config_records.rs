//! Config files carry a map's record rules (match keys, matching, record
//! direction, deletes, scope, guards, references): they load into what the
//! builder would make, save back unchanged, and errors name the entry.

use recsync::mapping::{ConfigError, ConfigProblem, MapConfig, MapProblem, Registry};
use recsync::scope::Filter;
use recsync::{
    Budget, DeleteEditPolicy, DeletePolicy, Direction, Field, FieldMap, Guards, MatchKey,
    MatchMode, Normalization, Record, ScopeExit,
};
use serde_json::json;

const FULL: &str = r#"{
  "systems": ["crm", "erp"],
  "object": "contacts",
  "match_keys": ["email", { "field": "phone", "normalize": "digits_only" }],
  "matching": "match_only",
  "records": { "one_way_from": "crm" },
  "deletes": "propagate",
  "deletes_from": { "erp": "unlink" },
  "delete_vs_edit": "edit_wins",
  "scope": {
    "crm": { "all": [
      { "field": "Status", "in": ["Open", "Working"] },
      { "not": { "field": "email", "is_empty": true } },
      { "any": [
        { "field": "Region", "equals": "EU" },
        { "field": "Region", "not_equals": "US" },
        { "field": "Tier", "not_in": ["free"] },
        { "field": "Owner", "is_present": true }
      ] }
    ] },
    "erp": { "all": [] }
  },
  "scope_exit": "freeze",
  "guards": {
    "deletes": { "count": 5, "share": 0.05 },
    "emptied_fields": "unlimited",
    "scope_exits": { "count": 0, "share": 0.0 },
    "empty_snapshot": false
  },
  "fields": [
    { "name": "email", "normalize": "case_insensitive" },
    { "name": "phone" },
    { "name": "company", "references": "companies" }
  ]
}"#;

/// The same map as `FULL`, built in code.
fn full_in_code() -> FieldMap {
    FieldMap::builder()
        .object("contacts")
        .systems(["crm", "erp"])
        .key("email")
        .match_key(MatchKey::new("phone").normalize(Normalization::DigitsOnly))
        .matching(MatchMode::MatchOnly)
        .records(Direction::OneWay {
            from: "crm".into(),
            enforce: false,
        })
        .deletes(DeletePolicy::Propagate)
        .deletes_from("erp", DeletePolicy::Unlink)
        .delete_vs_edit(DeleteEditPolicy::EditWins)
        .scope(
            "crm",
            Filter::field("Status")
                .is_in([json!("Open"), json!("Working")])
                .and(Filter::field("email").empty().not())
                .and(
                    Filter::field("Region")
                        .equals("EU")
                        .or(Filter::field("Region").not_equals("US"))
                        .or(Filter::field("Tier").not_in([json!("free")]))
                        .or(Filter::field("Owner").present()),
                ),
        )
        .scope("erp", Filter::All)
        .scope_exit(ScopeExit::Freeze)
        .guards(
            Guards::default()
                .deletes(Budget::new(5, 0.05))
                .emptied_fields(Budget::unlimited())
                .scope_exits(Budget::none())
                .empty_snapshot(false),
        )
        .field(Field::new("email").case_insensitive())
        .field(Field::new("phone"))
        .field(Field::new("company").references("companies"))
        .build()
        .unwrap()
}

fn problems(e: ConfigError) -> Vec<ConfigProblem> {
    match e {
        ConfigError::Invalid { problems } => problems,
        other => panic!("expected invalid config, got {other}"),
    }
}

#[test]
fn every_record_rule_loads_as_the_builder_makes_it() {
    let map = FieldMap::from_json(FULL, &Registry::new()).unwrap();
    let code = full_in_code();
    assert_eq!(map.fingerprint(), code.fingerprint());
    assert_eq!(map.guards(), code.guards());
    assert_eq!(map.match_mode(), MatchMode::MatchOnly);
    assert_eq!(map.key_field().map(|f| f.name()), Some("email"));
    assert_eq!(
        map.field("company").and_then(|f| f.reference()),
        Some("companies")
    );
    // The file's form and the code's form save to the same config.
    assert_eq!(MapConfig::from_map(&map), MapConfig::from_map(&code));
}

#[test]
fn the_loaded_scope_filter_filters() {
    let map = FieldMap::from_json(FULL, &Registry::new()).unwrap();
    let config = MapConfig::from_map(&map);
    let crm = config.scope["crm"].to_filter().unwrap();
    let open = Record::new("1")
        .field("Status", "Open")
        .field("email", "a@x")
        .field("Region", "EU");
    assert!(crm.matches(&open));
    assert!(!crm.matches(&open.clone().field("Status", "Closed")));
    assert!(!crm.matches(&open.clone().field("email", "")));
    assert!(!crm.matches(&open.clone().field("Region", "US").field("Tier", "free")));
    assert!(crm.matches(
        &open
            .field("Region", "US")
            .field("Tier", "free")
            .field("Owner", "ann")
    ));
    assert!(config.scope["erp"]
        .to_filter()
        .unwrap()
        .matches(&Record::new("x")));
}

#[test]
fn json_round_trip_load_build_save_load() {
    let config: MapConfig = serde_json::from_str(FULL).unwrap();
    let map = FieldMap::from_json(FULL, &Registry::new()).unwrap();
    let saved = map.to_json().unwrap();
    let reloaded = FieldMap::from_json(&saved, &Registry::new()).unwrap();
    assert_eq!(MapConfig::from_map(&reloaded), MapConfig::from_map(&map));
    assert_eq!(reloaded.fingerprint(), map.fingerprint());
    // Nothing the file said is lost on the way (`key` is written as the
    // first of the match keys).
    let saved_config: MapConfig = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved_config, config);
}

#[cfg(feature = "toml")]
#[test]
fn toml_round_trip_load_build_save_load() {
    let map = FieldMap::from_json(FULL, &Registry::new()).unwrap();
    let text = map.to_toml().unwrap();
    for key in [
        "match_keys",
        "matching",
        "records",
        "deletes_from",
        "delete_vs_edit",
        "scope",
        "scope_exit",
        "guards",
        "references",
    ] {
        assert!(text.contains(key), "{key} missing from\n{text}");
    }
    let reloaded = FieldMap::from_toml(&text, &Registry::new()).unwrap();
    assert_eq!(MapConfig::from_map(&reloaded), MapConfig::from_map(&map));
    assert_eq!(reloaded.fingerprint(), map.fingerprint());
    assert_eq!(reloaded.to_toml().unwrap(), text);
}

#[cfg(feature = "toml")]
#[test]
fn toml_record_rules_read_naturally() {
    let text = r#"
systems = ["hubspot", "salesforce"]

[[objects]]
name = "contacts"
key = "email"
deletes = "unlink"
deletes_from = { salesforce = "propagate" }
scope.salesforce = { field = "IsDeleted", not_equals = true }
guards = { deletes = { count = 3 } }

[[objects.fields]]
name = "email"

[[objects.fields]]
name = "company"
references = "companies"

[[objects]]
name = "companies"
key = "domain"

[[objects.fields]]
name = "domain"
"#;
    let set = recsync::mapping::MapSet::from_toml(text, &Registry::new()).unwrap();
    let contacts = set.get("contacts").unwrap();
    assert_eq!(contacts.guards().deletes, Budget::new(3, 0.0));
    assert_eq!(
        contacts.field("company").and_then(|f| f.reference()),
        Some("companies")
    );
    let again =
        recsync::mapping::MapSet::from_toml(&set.to_toml().unwrap(), &Registry::new()).unwrap();
    assert_eq!(again.to_config(), set.to_config());
}

#[test]
fn defaults_are_not_written() {
    let map = FieldMap::builder()
        .systems(["a", "b"])
        .key("email")
        .field(Field::new("email"))
        .build()
        .unwrap();
    let text = map.to_json().unwrap();
    for key in [
        "match_keys",
        "matching",
        "records",
        "deletes",
        "delete_vs_edit",
        "scope",
        "guards",
    ] {
        let entry = format!("\"{key}\":");
        assert!(
            !text.contains(&entry),
            "{key} written as a default:\n{text}"
        );
    }
    assert!(text.contains(r#""key": "email""#), "{text}");
}

#[test]
fn a_match_key_with_a_custom_normalizer_comes_from_the_registry() {
    let text = r#"{ "systems": ["a", "b"], "match_keys": [{ "field": "vat", "normalize": "vat_id" }],
        "fields": [{ "name": "vat" }] }"#;
    let p = problems(FieldMap::from_json(text, &Registry::new()).unwrap_err());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        matches!(&p[0], ConfigProblem::UnknownName { entry, kind: "normalizer", name, .. }
            if entry == "match_keys[0] (vat)" && name == "vat_id"),
        "{p:?}"
    );
}

#[test]
fn every_mistake_in_the_record_rules_is_listed_naming_its_entry() {
    let text = r#"{
      "systems": ["crm", "erp"],
      "key": "email",
      "match_keys": ["nope"],
      "records": { "one_way_from": "shop" },
      "deletes_from": { "shop": "unlink" },
      "scope": { "crm": { "custom": "vip_only" }, "ledger": { "field": "x", "equals": 1 } },
      "guards": { "deletes": { "count": 1, "share": -0.5 } },
      "fields": [{ "name": "email" }, { "name": "company", "references": "" }]
    }"#;
    let p = problems(FieldMap::from_json(text, &Registry::new()).unwrap_err());
    let text = ConfigError::Invalid {
        problems: p.clone(),
    }
    .to_string();
    let entry = |want: &str| {
        p.iter()
            .any(|x| matches!(x, ConfigProblem::Entry { entry, .. } if entry == want))
    };
    assert!(entry("key"), "key and match_keys both given: {text}");
    assert!(entry("records"), "{text}");
    assert!(entry("deletes_from.shop"), "{text}");
    assert!(entry("scope.ledger"), "{text}");
    assert!(entry("scope.crm"), "{text}");
    assert!(text.contains("custom filter \"vip_only\""), "{text}");
    assert!(entry("guards.deletes"), "{text}");
    assert!(
        p.iter().any(|x| matches!(x, ConfigProblem::Map {
            problem: MapProblem::UnknownKey { key }, .. } if key == "nope")),
        "{text}"
    );
    assert!(
        p.iter().any(|x| matches!(
            x,
            ConfigProblem::Map {
                problem: MapProblem::EmptyName { what: "object" },
                ..
            }
        )),
        "{text}"
    );
}

#[test]
fn malformed_filters_are_parse_errors_with_a_position() {
    let cases = [
        (r#"{ "field": "x" }"#, "needs one of"),
        (
            r#"{ "field": "x", "equals": 1, "in": [1] }"#,
            "more than one condition",
        ),
        (r#"{ "equals": 1 }"#, "needs the `field`"),
        (r#"{ "field": "x", "is_empty": false }"#, "can only be true"),
        (r#"{ "all": [], "not": { "all": [] } }"#, "is one of"),
        (r#"{ "fields": "x" }"#, "unknown field"),
        (r#"{}"#, "a filter needs"),
    ];
    for (filter, message) in cases {
        let text = format!(
            "{{\n\"systems\": [\"a\", \"b\"],\n\"scope\": {{ \"a\": {filter} }},\n\"fields\": [{{ \"name\": \"x\" }}]\n}}"
        );
        match FieldMap::from_json(&text, &Registry::new()) {
            Err(ConfigError::Parse {
                line, message: m, ..
            }) => {
                assert_eq!(line, 3, "{filter}: {m}");
                assert!(m.contains(message), "{filter}: {m}");
            }
            other => panic!("{filter}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn a_map_with_a_custom_filter_cannot_be_written() {
    let map = FieldMap::builder()
        .object("contacts")
        .systems(["a", "b"])
        .scope("b", Filter::custom("vip_only", |_| true))
        .field(Field::new("x"))
        .build()
        .unwrap();
    match map.to_json() {
        Err(ConfigError::Write { message, .. }) => {
            assert!(message.contains("scope.b"), "{message}");
            assert!(message.contains("vip_only"), "{message}");
        }
        other => panic!("expected a write error, got {other:?}"),
    }
}

#[test]
fn budgets_out_of_range_are_refused() {
    for (guards, entry) in [
        (r#"{ "scope_exits": { "share": 1e999 } }"#, None),
        (
            r#"{ "emptied_fields": { "count": 1, "share": -1 } }"#,
            Some("guards.emptied_fields"),
        ),
        (r#"{ "deletes": "some" }"#, None),
    ] {
        let text = format!(
            r#"{{ "systems": ["a", "b"], "guards": {guards}, "fields": [{{ "name": "x" }}] }}"#
        );
        match (FieldMap::from_json(&text, &Registry::new()), entry) {
            (Err(ConfigError::Invalid { problems }), Some(want)) => assert!(
                problems
                    .iter()
                    .any(|p| matches!(p, ConfigProblem::Entry { entry, .. } if entry == want)),
                "{problems:?}"
            ),
            (Err(ConfigError::Parse { .. }), None) => {}
            (other, _) => panic!("{guards}: {other:?}"),
        }
    }
}

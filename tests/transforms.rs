//! Every built-in transform both ways, with its error cases, and a transform
//! end to end through the engine.

use recsync::mapping::{
    Builtin, DateFormat, DateTimeFormat, Transform, TransformError, TransformErrorKind, Zone,
};
use recsync::{Baseline, Field, FieldMap, Outcomes, Record, Snapshot, SyncEngine};
use serde_json::{json, Value};

fn both_ways(t: &Builtin, native: Value, canonical: Value) {
    assert_eq!(t.to_canonical(&native).unwrap(), canonical, "{t:?} read");
    assert_eq!(t.from_canonical(&canonical).unwrap(), native, "{t:?} write");
}

fn kind(r: Result<Value, TransformError>) -> TransformErrorKind {
    r.unwrap_err().kind
}

fn zone(s: &str) -> Zone {
    s.parse().unwrap()
}

#[test]
fn identity() {
    let t = Builtin::Identity;
    both_ways(&t, json!("x"), json!("x"));
    both_ways(&t, json!({"a": 1}), json!({"a": 1}));
    assert!(!t.lossy());
}

#[test]
fn string_to_number() {
    let t = Builtin::StringToNumber;
    both_ways(&t, json!("12"), json!(12));
    both_ways(&t, json!("-3"), json!(-3));
    both_ways(&t, json!("12.5"), json!(12.5));
    both_ways(&t, json!("18446744073709551615"), json!(u64::MAX));
    // Reading ignores whitespace and takes the shortest form.
    assert_eq!(t.to_canonical(&json!(" 7 ")).unwrap(), json!(7));
    assert_eq!(t.to_canonical(&json!("7.0")).unwrap(), json!(7));
    assert_eq!(t.from_canonical(&json!(7.0)).unwrap(), json!("7"));
    assert_eq!(
        kind(t.to_canonical(&json!("12a"))),
        TransformErrorKind::Unparseable {
            format: "number".into()
        }
    );
    assert!(matches!(
        kind(t.to_canonical(&json!("NaN"))),
        TransformErrorKind::Unparseable { .. }
    ));
    assert!(matches!(
        kind(t.to_canonical(&json!(12))),
        TransformErrorKind::WrongType { .. }
    ));
    assert!(matches!(
        kind(t.from_canonical(&json!("12"))),
        TransformErrorKind::WrongType { .. }
    ));
}

#[test]
fn number_to_string() {
    let t = Builtin::NumberToString;
    both_ways(&t, json!(12), json!("12"));
    both_ways(&t, json!(0.25), json!("0.25"));
    both_ways(&t, json!(-40), json!("-40"));
    assert!(matches!(
        kind(t.to_canonical(&json!("12"))),
        TransformErrorKind::WrongType { .. }
    ));
    assert!(matches!(
        kind(t.from_canonical(&json!("twelve"))),
        TransformErrorKind::Unparseable { .. }
    ));
}

#[test]
fn string_to_bool() {
    for (yes, no) in [("yes", "no"), ("1", "0"), ("Y", "N"), ("true", "false")] {
        let t = Builtin::string_to_bool(yes, no);
        both_ways(&t, json!(yes), json!(true));
        both_ways(&t, json!(no), json!(false));
    }
    let t = Builtin::string_to_bool("yes", "no");
    let err = t.to_canonical(&json!("maybe")).unwrap_err();
    assert_eq!(err.to_string(), r#"value "maybe" is not a "yes" or "no""#);
    // Spellings are exact: a system that writes "Yes" needs "Yes".
    assert!(t.to_canonical(&json!("YES")).is_err());
    assert!(matches!(
        kind(t.to_canonical(&json!(true))),
        TransformErrorKind::WrongType { .. }
    ));
    assert!(matches!(
        kind(t.from_canonical(&json!("yes"))),
        TransformErrorKind::WrongType { .. }
    ));
}

#[test]
fn dates_in_every_format() {
    let cases = [
        (DateFormat::Iso, json!("2026-03-01")),
        (DateFormat::MonthDayYear, json!("03/01/2026")),
        (DateFormat::DayMonthYear, json!("01/03/2026")),
        (DateFormat::EpochMillis, json!(1_772_323_200_000_i64)),
    ];
    for (format, native) in cases {
        let t = Builtin::Date { native: format };
        both_ways(&t, native, json!("2026-03-01"));
    }
    // Epoch millis: strings of digits are read too; a time of day is dropped.
    let millis = Builtin::Date {
        native: DateFormat::EpochMillis,
    };
    assert_eq!(
        millis.to_canonical(&json!("1772323200000")).unwrap(),
        json!("2026-03-01")
    );
    assert_eq!(
        millis
            .to_canonical(&json!(1_772_323_200_000_i64 + 3_600_000))
            .unwrap(),
        json!("2026-03-01")
    );
    let us = Builtin::Date {
        native: DateFormat::MonthDayYear,
    };
    let err = us.to_canonical(&json!("2026-03-01")).unwrap_err();
    assert_eq!(
        err.kind,
        TransformErrorKind::Unparseable {
            format: "MM/DD/YYYY date".into()
        }
    );
    assert!(us.to_canonical(&json!("13/01/2026")).is_err());
    assert!(us.to_canonical(&json!("02/30/2026")).is_err());
    assert!(matches!(
        kind(us.to_canonical(&json!(20260301))),
        TransformErrorKind::WrongType { .. }
    ));
    assert!(matches!(
        kind(us.from_canonical(&json!("03/01/2026"))),
        TransformErrorKind::Unparseable { .. }
    ));
    assert!(matches!(
        kind(millis.to_canonical(&json!(i64::MAX))),
        TransformErrorKind::OutOfRange { .. }
    ));
    assert!(matches!(
        kind(millis.to_canonical(&json!(1.5))),
        TransformErrorKind::OutOfRange { .. }
    ));
}

#[test]
fn datetimes() {
    let rfc = Builtin::DateTime {
        native: DateTimeFormat::Rfc3339,
        zone: Zone::utc(),
    };
    both_ways(
        &rfc,
        json!("2026-03-01T09:30:00Z"),
        json!("2026-03-01T09:30:00Z"),
    );
    // Any offset is read, and canonical is UTC.
    assert_eq!(
        rfc.to_canonical(&json!("2026-03-01T11:30:00+02:00"))
            .unwrap(),
        json!("2026-03-01T09:30:00Z")
    );
    // A system in +02:00 is written in +02:00.
    let oslo = Builtin::DateTime {
        native: DateTimeFormat::Rfc3339,
        zone: zone("+02:00"),
    };
    both_ways(
        &oslo,
        json!("2026-03-01T11:30:00+02:00"),
        json!("2026-03-01T09:30:00Z"),
    );
    let millis = Builtin::DateTime {
        native: DateTimeFormat::EpochMillis,
        zone: Zone::utc(),
    };
    both_ways(
        &millis,
        json!(1_772_357_400_123_i64),
        json!("2026-03-01T09:30:00.123Z"),
    );
    let pattern = Builtin::DateTime {
        native: DateTimeFormat::Pattern("%d.%m.%Y %H:%M".into()),
        zone: zone("-05:00"),
    };
    both_ways(
        &pattern,
        json!("01.03.2026 04:30"),
        json!("2026-03-01T09:30:00Z"),
    );
    let with_offset = Builtin::DateTime {
        native: DateTimeFormat::Pattern("%Y-%m-%d %H:%M:%S %z".into()),
        zone: Zone::utc(),
    };
    assert_eq!(
        with_offset
            .to_canonical(&json!("2026-03-01 10:30:00 +0100"))
            .unwrap(),
        json!("2026-03-01T09:30:00Z")
    );
    assert!(matches!(
        kind(rfc.to_canonical(&json!("2026-03-01"))),
        TransformErrorKind::Unparseable { .. }
    ));
    assert!(matches!(
        kind(rfc.to_canonical(&json!(5))),
        TransformErrorKind::WrongType { .. }
    ));
    assert!(matches!(
        kind(pattern.to_canonical(&json!("2026-03-01T09:30:00Z"))),
        TransformErrorKind::Unparseable { .. }
    ));
    assert!(matches!(
        kind(rfc.from_canonical(&json!("yesterday"))),
        TransformErrorKind::Unparseable { .. }
    ));
}

#[test]
fn datetime_to_date_in_a_zone_is_lossy() {
    let t = Builtin::DateTimeToDate {
        native: DateTimeFormat::Rfc3339,
        zone: zone("+02:00"),
    };
    assert!(t.lossy());
    // 23:30 UTC on 28 Feb is 1 March in +02:00.
    assert_eq!(
        t.to_canonical(&json!("2026-02-28T23:30:00Z")).unwrap(),
        json!("2026-03-01")
    );
    // Writing gives midnight in the zone.
    assert_eq!(
        t.from_canonical(&json!("2026-03-01")).unwrap(),
        json!("2026-03-01T00:00:00+02:00")
    );
    let from_millis = Builtin::DateTimeToDate {
        native: DateTimeFormat::EpochMillis,
        zone: Zone::utc(),
    };
    assert_eq!(
        from_millis
            .to_canonical(&json!(1_772_357_400_000_i64))
            .unwrap(),
        json!("2026-03-01")
    );
    assert!(matches!(
        kind(t.from_canonical(&json!("2026-03-01T00:00:00Z"))),
        TransformErrorKind::Unparseable { .. }
    ));
}

#[test]
fn date_to_datetime_in_a_zone() {
    let t = Builtin::DateToDateTime {
        native: DateFormat::Iso,
        zone: zone("+02:00"),
    };
    assert!(!t.lossy());
    both_ways(&t, json!("2026-03-01"), json!("2026-02-28T22:00:00Z"));
    // Any canonical time is written as the date it falls on in the zone.
    assert_eq!(
        t.from_canonical(&json!("2026-03-01T21:59:00Z")).unwrap(),
        json!("2026-03-01")
    );
    assert_eq!(
        t.from_canonical(&json!("2026-03-01T22:00:00Z")).unwrap(),
        json!("2026-03-02")
    );
    let us = Builtin::DateToDateTime {
        native: DateFormat::MonthDayYear,
        zone: Zone::utc(),
    };
    both_ways(&us, json!("03/01/2026"), json!("2026-03-01T00:00:00Z"));
    assert!(matches!(
        kind(t.to_canonical(&json!("03/01/2026"))),
        TransformErrorKind::Unparseable { .. }
    ));
    assert!(matches!(
        kind(t.from_canonical(&json!(0))),
        TransformErrorKind::WrongType { .. }
    ));
}

#[test]
fn scaling() {
    let cents = Builtin::scale(0.01);
    both_ways(&cents, json!(1250), json!(12.5));
    both_ways(&cents, json!(7), json!(0.07));
    assert!(!cents.lossy());
    let fahrenheit = Builtin::scale(1.8).offset(32.0);
    both_ways(&fahrenheit, json!(100), json!(212));
    both_ways(&fahrenheit, json!(-40), json!(-40));
    // A 10-point score as 5 stars, rounded: lossy.
    let stars = Builtin::scale(0.5).rounded(0);
    assert!(stars.lossy());
    assert_eq!(stars.to_canonical(&json!(7)).unwrap(), json!(4));
    assert_eq!(stars.to_canonical(&json!(10)).unwrap(), json!(5));
    assert_eq!(stars.from_canonical(&json!(4)).unwrap(), json!(8));
    let two_decimals = Builtin::scale(1.0 / 3.0).rounded(2);
    assert_eq!(two_decimals.to_canonical(&json!(1)).unwrap(), json!(0.33));
    assert!(matches!(
        kind(cents.to_canonical(&json!("12"))),
        TransformErrorKind::WrongType { .. }
    ));
    assert!(matches!(
        kind(Builtin::scale(0.0).to_canonical(&json!(1))),
        TransformErrorKind::Custom { .. }
    ));
    assert!(matches!(
        kind(Builtin::scale(1e300).to_canonical(&json!(1e300))),
        TransformErrorKind::OutOfRange { .. }
    ));
}

#[test]
fn null_passes_through_every_builtin() {
    let all = [
        Builtin::StringToNumber,
        Builtin::NumberToString,
        Builtin::string_to_bool("y", "n"),
        Builtin::Date {
            native: DateFormat::Iso,
        },
        Builtin::scale(2.0),
    ];
    for t in all {
        assert_eq!(t.to_canonical(&Value::Null).unwrap(), Value::Null);
        assert_eq!(t.from_canonical(&Value::Null).unwrap(), Value::Null);
    }
}

#[test]
fn builtins_serialize_for_config_files() {
    let t = Builtin::Date {
        native: DateFormat::MonthDayYear,
    };
    assert_eq!(
        serde_json::to_value(&t).unwrap(),
        json!({"type": "date", "native": "MM/DD/YYYY"})
    );
    let s: Builtin =
        serde_json::from_value(json!({"type": "scale", "factor": 0.5, "round": 0})).unwrap();
    assert_eq!(s, Builtin::scale(0.5).rounded(0));
    let z: Builtin = serde_json::from_value(
        json!({"type": "date_time", "native": {"pattern": "%d.%m.%Y"}, "zone": "+01:00"}),
    )
    .unwrap();
    assert_eq!(
        z,
        Builtin::DateTime {
            native: DateTimeFormat::Pattern("%d.%m.%Y".into()),
            zone: zone("+01:00")
        }
    );
    assert!(serde_json::from_value::<Builtin>(json!({"type": "date", "nativ": "x"})).is_err());
    assert!(serde_json::from_value::<Builtin>(json!({"type": "nope"})).is_err());
}

#[test]
fn dates_in_different_formats_sync_without_loops() {
    // HubSpot stores epoch millis, Salesforce MM/DD/YYYY; canonical ISO.
    let map = FieldMap::builder()
        .systems(["hubspot", "salesforce"])
        .key("email")
        .field(Field::new("email"))
        .field(
            Field::new("close_date")
                .transform(
                    "hubspot",
                    Builtin::Date {
                        native: DateFormat::EpochMillis,
                    },
                )
                .transform(
                    "salesforce",
                    Builtin::Date {
                        native: DateFormat::MonthDayYear,
                    },
                ),
        )
        .build()
        .unwrap();
    let e = SyncEngine::new(map);
    let snaps = |hs: Value, sf: &str| {
        [
            Snapshot::complete(
                "hubspot",
                vec![Record::new("h")
                    .field("email", "a@x")
                    .field("close_date", hs)],
            ),
            Snapshot::complete(
                "salesforce",
                vec![Record::new("s")
                    .field("email", "a@x")
                    .field("close_date", sf)],
            ),
        ]
    };
    let mut b = Baseline::new();
    let first = e
        .plan(&b, &snaps(json!(1_772_323_200_000_i64), "03/01/2026"))
        .unwrap();
    assert!(first.ops.is_empty(), "{first}");
    e.commit(&mut b, &first, &Outcomes::all_applied(&first))
        .unwrap();
    // Salesforce moves the date: HubSpot gets epoch millis.
    let plan = e
        .plan(&b, &snaps(json!(1_772_323_200_000_i64), "03/15/2026"))
        .unwrap();
    assert_eq!(plan.ops.len(), 1, "{plan}");
    assert_eq!(plan.ops[0].system, "hubspot");
    assert_eq!(plan.ops[0].fields[0].value, json!(1_773_532_800_000_i64));
    e.commit(&mut b, &plan, &Outcomes::all_applied(&plan))
        .unwrap();
    let again = e
        .plan(&b, &snaps(json!(1_773_532_800_000_i64), "03/15/2026"))
        .unwrap();
    assert!(again.is_empty(), "{again}");
    // A value Salesforce cannot hold is an issue naming it.
    let bad = e
        .plan(&b, &snaps(json!(1_773_532_800_000_i64), "15/03/2026"))
        .unwrap();
    assert!(bad.ops.is_empty());
    assert_eq!(bad.issues.len(), 1, "{bad}");
    assert_eq!(bad.issues[0].system, "salesforce");
    assert_eq!(bad.issues[0].field.as_deref(), Some("close_date"));
}

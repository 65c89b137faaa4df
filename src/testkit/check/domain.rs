//! The values a person types, as a map implies them: each field's
//! canonical values (value-map rows, what its transforms accept, near
//! duplicates under its normalization), and each system's native form of
//! them.

use serde_json::{json, Value};

use crate::mapping::{FieldMap, FieldSpec};
use crate::model::is_empty_value;

/// Names, emails, phones, numbers, dates and datetimes: what business
/// records hold, for the fields a map gives no values for.
fn raw_pool() -> Vec<Value> {
    let mut pool: Vec<Value> = Vec::new();
    let strings = [
        "Ann Lee",
        "Ann Smith",
        "Alexandra Smith-Jones",
        "Bo Chen",
        "Zoë Ōta",
        "ann@example.com",
        "bo@example.org",
        "zoe.ota@example.net",
        "555-010-1234",
        "(555) 010-9999",
        "+1 555 010 7777",
        "example.com",
        "acme.io",
        "7",
        "42",
        "1000",
        "2024-02-29",
        "2025-12-31",
        "2024-02-29T13:45:00Z",
        "2025-12-31T23:59:59Z",
        "2024-02-29T00:00:00Z",
    ];
    for s in strings {
        for v in near_duplicates(s) {
            push_new(&mut pool, Value::from(v));
        }
    }
    for v in [
        json!(0),
        json!(7),
        json!(42),
        json!(42.5),
        json!(-3),
        json!(1000),
        json!(true),
        json!(false),
    ] {
        push_new(&mut pool, v);
    }
    pool
}

/// `s` and the forms a person or a system might give the same text in:
/// another case, surrounding spaces, other punctuation between digits.
fn near_duplicates(s: &str) -> Vec<String> {
    let mut out = vec![
        s.to_owned(),
        s.to_uppercase(),
        s.to_lowercase(),
        format!(" {s} "),
    ];
    if s.chars().any(|c| c.is_ascii_digit()) && s.contains('-') {
        out.push(s.replace('-', " "));
        out.push(s.replace('-', "."));
    }
    out.dedup();
    out
}

fn push_new(pool: &mut Vec<Value>, v: Value) {
    if !pool.contains(&v) {
        pool.push(v);
    }
}

/// Every field's canonical values, in the map's field order.
pub(super) fn canonical_pools(map: &FieldMap) -> Vec<Vec<Value>> {
    let raw = raw_pool();
    map.fields()
        .iter()
        .map(|spec| {
            let mut pool = Vec::new();
            for c in candidates(map, spec, &raw) {
                if writable(map, spec, &c) {
                    push_new(&mut pool, c);
                }
            }
            pool
        })
        .collect()
}

/// The canonical values a person can type into some system the field is
/// read from: a value map's rows where it has one, else the raw pool read
/// through each source system's native form.
fn candidates(map: &FieldMap, spec: &FieldSpec, raw: &[Value]) -> Vec<Value> {
    let sources = || {
        map.systems()
            .iter()
            .map(|s| s.as_str())
            .filter(|s| spec.is_source(s))
    };
    let mapped: Vec<(&str, Vec<Value>)> = sources()
        .filter_map(|s| Some((s, spec.mapped_natives(s)?)))
        .collect();
    let mut out = Vec::new();
    if !mapped.is_empty() {
        for (system, natives) in mapped {
            for c in natives.iter().filter_map(|n| read(spec, system, n)) {
                push_new(&mut out, c);
            }
        }
        return out;
    }
    for system in sources() {
        for r in raw {
            if let Some(c) = typed(spec, system, r).and_then(|n| read(spec, system, &n)) {
                push_new(&mut out, c);
            }
        }
    }
    out
}

/// Whether every system the field is written to takes `canonical` as a
/// valid native value.
fn writable(map: &FieldMap, spec: &FieldSpec, canonical: &Value) -> bool {
    if is_empty_value(canonical) {
        return false;
    }
    map.systems().iter().map(|s| s.as_str()).all(|system| {
        spec.native_name(system).is_none()
            || !spec.is_target(system)
            || typed(spec, system, canonical).is_some()
    })
}

/// `canonical` in `system`'s native form, where the field is in the system,
/// the conversion succeeds and the system's validation accepts it.
pub(super) fn typed(spec: &FieldSpec, system: &str, canonical: &Value) -> Option<Value> {
    let native = spec.to_native(system, canonical).ok().flatten()?;
    let index = spec.index_of(system)?;
    spec.check(index, &native).ok()?;
    Some(native)
}

/// `native` read from `system` into canonical form.
pub(super) fn read(spec: &FieldSpec, system: &str, native: &Value) -> Option<Value> {
    spec.to_canonical(system, native).ok().flatten()
}

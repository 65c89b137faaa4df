//! A compact byte encoding of JSON values, for the baseline's per-entity
//! storage: a contact's twenty fields take a few hundred bytes this way,
//! against kilobytes as `serde_json::Value`s.
//!
//! Each value is a tag byte and its content: integers as LEB128 varints,
//! floats as 8 little-endian bytes, strings and object keys length prefixed,
//! arrays and objects count prefixed. Reading gives a borrowed [`ValueRef`]
//! that compares against a `Value` without allocating.
//!
//! Buffers are only ever written by [`put_value`], so reads of a kept buffer
//! do not fail; where a read would fail anyway (a bug), it yields `Null`
//! rather than panic.

use serde_json::{Map, Number, Value};

use crate::mapping::Normalization;
use crate::model::is_empty_value;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const NEG: u8 = 4;
const FLOAT: u8 = 5;
const STR: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;
/// Not a JSON value: marks "no value" where a slot needs one.
pub(crate) const ABSENT: u8 = 9;

/// Appends `x` as an LEB128 varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Reads an LEB128 varint at `*pos`.
#[inline]
pub(crate) fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut x = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        x |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(x);
        }
        shift += 7;
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn get_bytes<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(get_varint(bytes, pos)?).ok()?;
    let end = pos.checked_add(len)?;
    let b = bytes.get(*pos..end)?;
    *pos = end;
    Some(b)
}

/// Appends the encoding of `v`.
pub(crate) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(UINT);
                put_varint(out, u);
            } else if let Some(i) = n.as_i64() {
                out.push(NEG);
                // Only negative integers get here; store -(i + 1) >= 0.
                put_varint(out, !(i as u64));
            } else {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(STR);
            put_bytes(out, s.as_bytes());
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item);
            }
        }
        Value::Object(map) => {
            out.push(OBJECT);
            put_varint(out, map.len() as u64);
            for (k, item) in map {
                put_bytes(out, k.as_bytes());
                put_value(out, item);
            }
        }
    }
}

/// A value read in place from an encoded buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Bool(bool),
    Uint(u64),
    Neg(i64),
    Float(f64),
    /// UTF-8 bytes (checked when the buffer was kept).
    Str(&'a [u8]),
    /// `count` encoded items.
    Array(&'a [u8], u64),
    /// `count` encoded key/value pairs.
    Object(&'a [u8], u64),
}

/// Reads the value at `*pos` and moves past it.
pub(crate) fn get_value<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<ValueRef<'a>> {
    let tag = *bytes.get(*pos)?;
    *pos += 1;
    Some(match tag {
        NULL => ValueRef::Null,
        FALSE => ValueRef::Bool(false),
        TRUE => ValueRef::Bool(true),
        UINT => ValueRef::Uint(get_varint(bytes, pos)?),
        NEG => ValueRef::Neg(!get_varint(bytes, pos)? as i64),
        FLOAT => {
            let end = pos.checked_add(8)?;
            let mut w = [0u8; 8];
            w.copy_from_slice(bytes.get(*pos..end)?);
            *pos = end;
            ValueRef::Float(f64::from_le_bytes(w))
        }
        STR => ValueRef::Str(get_bytes(bytes, pos)?),
        ARRAY | OBJECT => {
            let count = get_varint(bytes, pos)?;
            let start = *pos;
            for _ in 0..count {
                if tag == OBJECT {
                    get_bytes(bytes, pos)?;
                }
                get_value(bytes, pos)?;
            }
            let items = bytes.get(start..*pos)?;
            if tag == ARRAY {
                ValueRef::Array(items, count)
            } else {
                ValueRef::Object(items, count)
            }
        }
        _ => return None,
    })
}

/// Reads a value slot: a value, or [`ABSENT`] (`Some(None)`).
pub(crate) fn get_slot<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<Option<ValueRef<'a>>> {
    if bytes.get(*pos) == Some(&ABSENT) {
        *pos += 1;
        return Some(None);
    }
    get_value(bytes, pos).map(Some)
}

impl<'a> ValueRef<'a> {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An owned `Value`.
    pub(crate) fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Uint(u) => Value::from(u),
            ValueRef::Neg(i) => Value::from(i),
            ValueRef::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            ValueRef::Str(_) => Value::String(self.as_str().unwrap_or_default().to_owned()),
            ValueRef::Array(items, count) => {
                let mut pos = 0;
                let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1024));
                for _ in 0..count {
                    out.push(get_value(items, &mut pos).map_or(Value::Null, ValueRef::to_value));
                }
                Value::Array(out)
            }
            ValueRef::Object(items, count) => {
                let mut pos = 0;
                let mut out = Map::new();
                for _ in 0..count {
                    let key = get_bytes(items, &mut pos)
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .unwrap_or_default()
                        .to_owned();
                    let v = get_value(items, &mut pos).map_or(Value::Null, ValueRef::to_value);
                    out.insert(key, v);
                }
                Value::Object(out)
            }
        }
    }

    /// Exactly equal to `v`, as `Value`'s own `==` would say.
    pub(crate) fn eq_value(&self, v: &Value) -> bool {
        match (*self, v) {
            (ValueRef::Null, Value::Null) => true,
            (ValueRef::Bool(a), Value::Bool(b)) => a == *b,
            (ValueRef::Uint(a), Value::Number(n)) => n.as_u64() == Some(a),
            (ValueRef::Neg(a), Value::Number(n)) => n.as_u64().is_none() && n.as_i64() == Some(a),
            (ValueRef::Float(a), Value::Number(n)) => n.is_f64() && n.as_f64() == Some(a),
            (ValueRef::Str(a), Value::String(b)) => a == b.as_bytes(),
            (ValueRef::Array(items, count), Value::Array(b)) => {
                if count != b.len() as u64 {
                    return false;
                }
                let mut pos = 0;
                b.iter()
                    .all(|bv| get_value(items, &mut pos).is_some_and(|a| a.eq_value(bv)))
            }
            (ValueRef::Object(..), Value::Object(_)) => self.to_value() == *v,
            _ => false,
        }
    }

    /// Whether it counts as empty ([`is_empty_value`]).
    pub(crate) fn is_empty(&self) -> bool {
        match *self {
            ValueRef::Null => true,
            ValueRef::Str(_) => self.as_str().is_some_and(|s| s.trim().is_empty()),
            ValueRef::Array(_, n) | ValueRef::Object(_, n) => n == 0,
            _ => false,
        }
    }
}

/// Whether `a` and `b` count as the same under `norm` (absent counts as
/// `null`, all empty values are equal): [`Normalization::equal`] with one
/// side encoded, without allocating when they are exactly equal.
pub(crate) fn same(norm: &Normalization, a: Option<&Value>, b: Option<ValueRef<'_>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if b.eq_value(a) => true,
        (a, b) => {
            let ea = a.is_none_or(is_empty_value);
            let eb = b.is_none_or(|b| b.is_empty());
            if ea || eb {
                return ea && eb;
            }
            match b {
                Some(b) if !norm.is_exact() => norm.equal(a, Some(&b.to_value())),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round(v: &Value) -> Value {
        let mut out = Vec::new();
        put_value(&mut out, v);
        let mut pos = 0;
        let r = get_value(&out, &mut pos).unwrap();
        assert_eq!(pos, out.len());
        assert!(r.eq_value(v), "{v}");
        r.to_value()
    }

    #[test]
    fn values_round_trip_exactly() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(1),
            json!(u64::MAX),
            json!(-1),
            json!(i64::MIN),
            json!(1.0),
            json!(-2.5),
            json!(""),
            json!("ada@example.com"),
            json!("ünïcødé ✓"),
            json!([]),
            json!([1, "a", [null], {"k": 2}]),
            json!({}),
            json!({"b": 1, "a": {"c": [true]}}),
        ] {
            assert_eq!(round(&v), v);
        }
    }

    #[test]
    fn integers_and_floats_stay_apart() {
        let mut out = Vec::new();
        put_value(&mut out, &json!(1));
        let r = get_value(&out, &mut 0).unwrap();
        assert!(r.eq_value(&json!(1)));
        assert!(!r.eq_value(&json!(1.0)));
        assert!(!r.eq_value(&json!("1")));
    }

    #[test]
    fn same_follows_normalization() {
        let enc = |v: &Value| {
            let mut out = Vec::new();
            put_value(&mut out, v);
            out
        };
        let b = enc(&json!("A@X "));
        let r = get_value(&b, &mut 0).unwrap();
        assert!(same(
            &Normalization::CaseInsensitive,
            Some(&json!("a@x")),
            Some(r)
        ));
        assert!(!same(&Normalization::Exact, Some(&json!("a@x")), Some(r)));
        let e = enc(&json!(""));
        let er = get_value(&e, &mut 0).unwrap();
        assert!(same(&Normalization::Exact, None, Some(er)));
        assert!(same(&Normalization::Exact, Some(&json!(null)), None));
        assert!(!same(&Normalization::Exact, Some(&json!(0)), None));
    }
}

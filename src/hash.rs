//! Hashes that are stable across runs, platforms and crate versions.
//!
//! [`StableHasher`] (FNV-1a, 64 bit) makes ids that are persisted or handed
//! to other systems (op ids, conflict ids). It walks a self-delimiting
//! encoding: strings are length prefixed, JSON values are walked with object
//! keys in sorted order, so the result depends neither on `serde_json`'s map
//! order nor on `std`'s hasher.
//!
//! [`FoldHasher`] is the fast one, for the baseline's in-memory indexes
//! (seeded per process there) and the first form of record content hashes
//! (persisted in baselines saved before the current form, so also stable).
//! It takes 8 bytes a step and mixes with a 64x64->128 bit multiply folded
//! back to 64 bits.
//!
//! [`values_hash`] makes the current form of record content hashes: each
//! value hashed on its own ([`value_hash`]) with the same multiply, the
//! values' hashes chained.

use std::fmt;

use serde_json::Value;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bit.
#[derive(Debug, Clone)]
pub(crate) struct StableHasher(u64);

/// Text written on the stack; a write that does not fit fails.
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `str`s are written, so this is always text.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl StableHasher {
    pub(crate) fn new(domain: &str) -> Self {
        let mut h = StableHasher(OFFSET);
        h.str(domain);
        h
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    pub(crate) fn u64(&mut self, n: u64) {
        self.bytes(&n.to_le_bytes());
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    /// A number as [`str`](Self::str) of its text, written on the stack
    /// (a number's text is at most a few dozen bytes).
    fn number(&mut self, n: &serde_json::Number) {
        let mut text = StackText::default();
        if fmt::Write::write_fmt(&mut text, format_args!("{n}")).is_ok() {
            self.str(text.as_str());
        } else {
            self.str(&n.to_string());
        }
    }

    pub(crate) fn opt_value(&mut self, v: Option<&Value>) {
        match v {
            None => self.bytes(&[0xff]),
            Some(v) => self.value(v),
        }
    }

    pub(crate) fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.bytes(&[0]),
            Value::Bool(b) => self.bytes(&[1, u8::from(*b)]),
            Value::Number(n) => {
                self.bytes(&[2]);
                self.number(n);
            }
            Value::String(s) => {
                self.bytes(&[3]);
                self.str(s);
            }
            Value::Array(items) => {
                self.bytes(&[4]);
                self.u64(items.len() as u64);
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => {
                self.bytes(&[5]);
                self.u64(map.len() as u64);
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    self.str(k);
                    self.value(&map[k.as_str()]);
                }
            }
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// Multiplies and folds the 128-bit product back to 64 bits.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A fast 64-bit hash over words and byte strings; stable (little-endian
/// reads, fixed constants) for a given seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldHasher {
    state: u64,
}

impl FoldHasher {
    pub(crate) fn new(seed: u64) -> Self {
        FoldHasher { state: seed ^ K0 }
    }

    #[inline]
    pub(crate) fn u64(&mut self, x: u64) {
        self.state = fold(self.state ^ x ^ K1, K2);
    }

    #[inline]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        let (words, rest) = bytes.as_chunks::<8>();
        for w in words {
            self.u64(u64::from_le_bytes(*w));
        }
        if !rest.is_empty() {
            // The tail, zero-padded, byte by byte: a copy of a length not
            // known at compile time would be a call to `memcpy`.
            let mut w = 0u64;
            for (i, b) in rest.iter().enumerate() {
                w |= u64::from(*b) << (8 * i);
            }
            self.u64(w);
        }
    }

    /// Feeds a JSON value, self-delimiting (tag, then content). Object keys
    /// are taken in the map's iteration order.
    pub(crate) fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.u64(0),
            Value::Bool(b) => self.u64(1 + u64::from(*b)),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.u64(3);
                    self.u64(u);
                } else if let Some(i) = n.as_i64() {
                    self.u64(4);
                    self.u64(i as u64);
                } else {
                    self.u64(5);
                    self.u64(n.as_f64().map_or(0, f64::to_bits));
                }
            }
            Value::String(s) => {
                self.u64(6);
                self.bytes(s.as_bytes());
            }
            Value::Array(items) => {
                self.u64(7);
                self.u64(items.len() as u64);
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => {
                self.u64(8);
                self.u64(map.len() as u64);
                for (k, item) in map {
                    self.bytes(k.as_bytes());
                    self.value(item);
                }
            }
        }
    }

    #[inline]
    pub(crate) fn finish(&self) -> u64 {
        fold(self.state ^ K2, K0 ^ K1)
    }
}

impl std::hash::Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.u64(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.u64(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.u64(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.u64(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        FoldHasher::finish(self)
    }
}

/// The tags that start each kind of value in [`value_hash`], in the top
/// byte of the word that also holds a length (a short string's word takes
/// its tag 3 bits higher, above the length in its top byte).
const TAG_NULL: u64 = 1 << 56;
const TAG_FALSE: u64 = 2 << 56;
const TAG_TRUE: u64 = 3 << 56;
const TAG_U64: u64 = 4 << 56;
const TAG_I64: u64 = 5 << 56;
const TAG_F64: u64 = 6 << 56;
const TAG_STRING: u64 = 7 << 56;
const TAG_ARRAY: u64 = 8 << 56;
const TAG_OBJECT: u64 = 9 << 56;
const TAG_KEY: u64 = 10 << 56;

/// Bytes `i..i + 8`, little-endian.
#[inline]
fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Bytes `i..i + 4`, little-endian.
#[inline]
fn half(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[i..i + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// The hash of a byte string under `tag`. Every multiply has a fixed odd
/// constant as one side, so no value of the data can cancel it or swap
/// places with another. Up to 7 bytes, the bytes, length and tag fit one
/// word: one multiply. Beyond, the tag and length start the state (off
/// the path of the bytes), then one multiply per 8 bytes, the last word
/// the string's last 8 bytes (with the length, the whole string).
#[inline]
fn str_hash(b: &[u8], tag: u64) -> u64 {
    let len = b.len();
    let packed = match len {
        0 => Some(0),
        1..=3 => Some(u64::from(b[0]) | u64::from(b[len / 2]) << 8 | u64::from(b[len - 1]) << 16),
        // The two halves overlap by 8 - len bytes, the same bytes in both:
        // shifted into place, they are the string's bytes in order.
        4..=7 => Some(half(b, 0) | half(b, len - 4) << (8 * (len - 4))),
        _ => None,
    };
    if let Some(bytes) = packed {
        // Bytes in the low 56 bits at most, the length above them, the tag
        // in the top byte's high bits: one word, different for each string.
        return fold(bytes ^ (len as u64) << 56 ^ tag << 3 ^ K1, K2);
    }
    let mut state = fold(tag ^ len as u64 ^ K0, K2);
    let mut i = 0;
    while i + 8 < len {
        state = fold(state ^ word(b, i) ^ K1, K2);
        i += 8;
    }
    fold(state ^ word(b, len - 8) ^ K1, K2)
}

/// Adds the hash `x` of one part to the running hash `state`.
#[inline]
fn chain(state: u64, x: u64) -> u64 {
    fold(state ^ x, K2)
}

/// A stable 64-bit hash of one JSON value, self-delimiting (every kind of
/// value has its own tag, strings and lists their lengths), object keys
/// in the map's order.
///
/// A record's content hash chains the hashes of its values, which are
/// independent of each other: the processor works on several at once
/// instead of feeding one word at a time through a single state, and a
/// short string costs one multiply.
pub(crate) fn value_hash(v: &Value) -> u64 {
    match v {
        Value::Null => fold(TAG_NULL ^ K1, K2),
        Value::Bool(false) => fold(TAG_FALSE ^ K1, K2),
        Value::Bool(true) => fold(TAG_TRUE ^ K1, K2),
        Value::Number(n) => {
            let (tag, bits) = if let Some(u) = n.as_u64() {
                (TAG_U64, u)
            } else if let Some(i) = n.as_i64() {
                (TAG_I64, i as u64)
            } else {
                (TAG_F64, n.as_f64().map_or(0, f64::to_bits))
            };
            // The bits mixed first, then the kind: an XOR of the kind into
            // the bits would give every number a twin of another kind.
            fold(fold(bits ^ K1, K2) ^ tag ^ K0, K2)
        }
        Value::String(s) => str_hash(s.as_bytes(), TAG_STRING),
        Value::Array(items) => items.iter().fold(
            fold((TAG_ARRAY ^ items.len() as u64) ^ K1, K2),
            |h, item| chain(h, value_hash(item)),
        ),
        Value::Object(map) => map.iter().fold(
            fold((TAG_OBJECT ^ map.len() as u64) ^ K1, K2),
            |h, (k, item)| chain(chain(h, str_hash(k.as_bytes(), TAG_KEY)), value_hash(item)),
        ),
    }
}

/// [`value_hash`], with a string (the usual value) hashed in place rather
/// than through the call.
#[inline(always)]
fn item_hash(v: &Value) -> u64 {
    match v {
        Value::String(s) => str_hash(s.as_bytes(), TAG_STRING),
        other => value_hash(other),
    }
}

/// The hash of a list of values under `seed`: each value's
/// [`value_hash`], chained in order.
pub(crate) fn values_hash<'v>(seed: u64, values: impl IntoIterator<Item = &'v Value>) -> u64 {
    let state = values
        .into_iter()
        .fold(fold(seed ^ K0, K1), |h, v| chain(h, item_hash(v)));
    fold(state ^ K2, K0 ^ K1)
}

/// [`values_hash`] of `K` lists at once, each under its own seed: the
/// same hashes, taken a value of each list in turn. The lists' values lie
/// apart in memory, each read a likely cache miss when the lists are many
/// (a plan's records); taken in turn, the reads of several lists are under
/// way together instead of one after the other.
pub(crate) fn values_hashes<const K: usize>(seeds: [u64; K], lists: [&[Value]; K]) -> [u64; K] {
    let mut state = seeds.map(|seed| fold(seed ^ K0, K1));
    let longest = lists.iter().map(|l| l.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (h, list) in state.iter_mut().zip(&lists) {
            if let Some(v) = list.get(i) {
                *h = chain(*h, item_hash(v));
            }
        }
    }
    state.map(|h| fold(h ^ K2, K0 ^ K1))
}

/// Builds [`FoldHasher`]s for `std`'s hash maps, under a seed drawn once
/// per map from `std`'s random state: the maps of record ids a plan looks
/// up by the hundred thousand, where SipHash's cost shows, and whose keys
/// other systems choose (a crafted id cannot predict the seed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldState {
    seed: u64,
}

impl Default for FoldState {
    fn default() -> Self {
        use std::hash::BuildHasher;
        FoldState {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl std::hash::BuildHasher for FoldState {
    type Hasher = FoldHasher;

    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher::new(self.seed)
    }
}

/// A `HashMap` hashed with [`FoldState`].
pub(crate) type FoldMap<K, V> = std::collections::HashMap<K, V, FoldState>;

/// A `HashSet` hashed with [`FoldState`].
pub(crate) type FoldSet<K> = std::collections::HashSet<K, FoldState>;

/// The fast hash of one byte string.
#[inline]
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = FoldHasher::new(seed);
    h.bytes(bytes);
    h.finish()
}

/// Pairs of values a review built against an earlier draft of
/// [`value_hash`], whose multiplies took data on both sides: each pair
/// hashed alike, so an edit from one to the other was not seen. For the
/// tests of the hash and of the fast path that relies on it.
#[cfg(test)]
pub(crate) fn draft_twins() -> Vec<(Value, Value)> {
    use serde_json::json;
    // A prefix that zeroed the first multiply of a 3398-byte string.
    let long = |middle: &str| {
        let magic = (K1 ^ fold((TAG_STRING ^ 3398) ^ K1, K0)).to_le_bytes();
        let mut b = magic.to_vec();
        b.extend_from_slice(middle.as_bytes());
        while b.len() < 3398 {
            b.push(b'a' + (b.len() % 26) as u8);
        }
        Value::String(String::from_utf8_lossy(&b).into_owned())
    };
    vec![
        (long("00000100"), long("99999999")),
        // Numbers whose bits were the multiply's constant: 0, every kind.
        (json!(K2), json!(K2 as i64)),
        (json!(K2), json!(f64::from_bits(K2))),
        // A short string and the number mirroring its operands.
        (json!("\u{0}\u{0}\u{0}\u{0}\u{4}"), json!(TAG_STRING ^ 5)),
        // A u64 and an f64 whose operands were each other's, swapped.
        (
            json!((6u64 << 56) ^ K1 ^ K2),
            json!(f64::from_bits((4u64 << 56) ^ K1 ^ K2)),
        ),
        // Swapped 16-byte blocks; lengths 10 and 16 with the same ending.
        (
            json!("Order #aaaaaaaaJaaaaaaaaaaaaaaaa"),
            json!("Order #aaaaaaaaJ\u{1a}{t6eH#)\u{1a}{t6eH#)"),
        ),
        (json!("W0285Dqo.v"), json!("Iہ受=P285Dqo.v")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_values_do_not_move() {
        // Persisted ids depend on these: a change here is a breaking change.
        let mut h = StableHasher::new("op");
        h.str("crm");
        h.value(&json!({"b": 1, "a": [true, null, "x"]}));
        assert_eq!(h.finish(), 2_246_097_388_055_310_544);
    }

    #[test]
    fn a_number_hashes_as_its_text() {
        // Written on the stack, a number's text is what `to_string` gives,
        // so op and conflict ids stay as they were.
        for n in [
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.1),
            json!(-1.5e300),
            json!(f64::MIN_POSITIVE),
            json!(123_456_789.123_456_78),
        ] {
            let Value::Number(num) = &n else {
                panic!("{n} is a number");
            };
            let mut stack = StableHasher::new("t");
            stack.value(&n);
            let mut text = StableHasher::new("t");
            text.bytes(&[2]);
            text.str(&num.to_string());
            assert_eq!(stack.finish(), text.finish(), "{n}");
        }
    }

    #[test]
    fn fold_hash_known_values_do_not_move() {
        // Content hashes are persisted in baselines: a change here makes
        // every record look changed once (slow, not wrong), so keep it stable.
        assert_eq!(hash_bytes(0, b""), 6_888_105_170_390_326_265);
        assert_eq!(
            hash_bytes(0, b"ada@example.com"),
            15_094_784_432_856_356_030
        );
        let mut h = FoldHasher::new(7);
        h.value(&json!({"a": [1, -2, 2.5, "x", null, true]}));
        assert_eq!(h.finish(), 4_500_251_526_001_287_753);
    }

    #[test]
    fn fold_hash_tells_apart_what_differs() {
        assert_ne!(hash_bytes(0, b"ab"), hash_bytes(0, b"ba"));
        assert_ne!(hash_bytes(0, b"a"), hash_bytes(0, b"a\0"));
        let h = |v: Value| {
            let mut h = FoldHasher::new(0);
            h.value(&v);
            h.finish()
        };
        assert_ne!(h(json!(1)), h(json!(1.0)));
        assert_ne!(h(json!("1")), h(json!(1)));
        assert_ne!(h(json!(["a", "b"])), h(json!(["ab"])));
        assert_ne!(h(json!(null)), h(json!(false)));
    }

    #[test]
    fn value_hash_known_values_do_not_move() {
        // Record content hashes (see `engine/fast_path.rs`) are persisted in
        // baselines: a change here makes every record look changed once.
        let all = [
            json!(null),
            json!(true),
            json!(-2),
            json!(2.5),
            json!("ada@example.com"),
            json!("a much longer note of more than sixteen bytes"),
            json!({"a": [1, "x"]}),
        ];
        assert_eq!(values_hash(7, &all), 993_173_636_058_175_456);
    }

    #[test]
    fn values_hashes_are_each_lists_values_hash() {
        let pool = [
            json!(null),
            json!(false),
            json!(7),
            json!(-7),
            json!(2.5),
            json!(""),
            json!("ab"),
            json!("ada@example.com"),
            json!("a much longer note of more than sixteen bytes"),
            json!(["x", 1]),
            json!({"k": "v"}),
        ];
        // Lists of every length up to 12, drawn from the pool in turns
        // that differ per list, four at a time.
        let lists: Vec<Vec<Value>> = (0..48)
            .map(|i: usize| {
                (0..i % 13)
                    .map(|j| pool[(i * 7 + j * 3) % pool.len()].clone())
                    .collect()
            })
            .collect();
        for (n, four) in lists.chunks(4).enumerate() {
            let seeds: [u64; 4] = std::array::from_fn(|i| (n * 4 + i) as u64);
            let slices: [&[Value]; 4] = std::array::from_fn(|i| four[i].as_slice());
            let one_by_one = std::array::from_fn(|i| values_hash(seeds[i], slices[i]));
            assert_eq!(values_hashes(seeds, slices), one_by_one);
        }
    }

    #[test]
    fn value_hash_tells_apart_what_differs() {
        let h = |v: Value| value_hash(&v);
        let all = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!(1),
            json!(-1),
            json!(1.0),
            json!(1.5),
            json!(""),
            json!("1"),
            json!("a"),
            json!("a\0"),
            json!("ab"),
            json!("ba"),
            json!("abc"),
            json!("abcd"),
            json!("abcde"),
            json!("abcdefg"),
            json!("abcdefgh"),
            json!("abcdefghi"),
            json!("abcdefghijklmnop"),
            json!("abcdefghijklmnopq"),
            json!("abcdefghijklmnopqrstuvwxyz0123456789"),
            json!("abcdefghijklmnopqrstuvwxyz0123456788"),
            json!("bbcdefghijklmnopqrstuvwxyz0123456789"),
            json!([]),
            json!(["a", "b"]),
            json!(["ab"]),
            json!(["b", "a"]),
            json!({}),
            json!({"a": "b"}),
            json!({"b": "a"}),
            json!({"a": ["b"]}),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(h(a.clone()), h(b.clone()), "{a} and {b}");
            }
        }
        // Every byte of every length up to 40 counts.
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=base.len() {
            let one = str_hash(&base[..len], TAG_STRING);
            for i in 0..len {
                let mut other = base[..len].to_vec();
                other[i] ^= 1;
                assert_ne!(one, str_hash(&other, TAG_STRING), "byte {i} of {len}");
            }
        }
        // Order and split of a list count.
        assert_ne!(
            values_hash(0, &[json!("a"), json!("b")]),
            values_hash(0, &[json!("b"), json!("a")])
        );
        assert_ne!(
            values_hash(0, &[json!("ab")]),
            values_hash(1, &[json!("ab")])
        );
    }

    #[test]
    fn value_hash_has_no_twins_by_construction() {
        let h = |v: &Value| value_hash(v);
        for (a, b) in draft_twins() {
            assert_ne!(h(&a), h(&b), "{a} and {b}");
            assert_ne!(h(&a), 0, "{a}");
        }
        // Each 8-byte word and its XOR with the difference of the two
        // constants (the twin of a multiply with data on both sides).
        for w in [*b"abcdefgh", *b"ada@exam", *b"+1 555 0", *b"        "] {
            let twin = (u64::from_le_bytes(w) ^ K1 ^ K2).to_le_bytes();
            assert_ne!(str_hash(&w, TAG_STRING), str_hash(&twin, TAG_STRING));
        }
    }

    #[test]
    fn object_key_order_does_not_matter() {
        let mut a = StableHasher::new("t");
        a.value(&json!({"x": 1, "y": 2}));
        let mut b = StableHasher::new("t");
        let mut m = serde_json::Map::new();
        m.insert("y".into(), json!(2));
        m.insert("x".into(), json!(1));
        b.value(&Value::Object(m));
        assert_eq!(a.finish(), b.finish());
    }
}

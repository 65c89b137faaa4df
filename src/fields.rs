//! [`Fields`]: a record's native field names and values, with the names
//! shared between the records of a snapshot.
//!
//! A system's records mostly list the same fields in the same order. A
//! record keeps its values in a vector and its names in a list shared (by
//! reference count) with every other record of its snapshot that lists the
//! same names in the same order: 20 fields cost 20 values, not 20 values
//! and 20 owned names in a hash map. A record being built owns its own list
//! until [`Snapshot`](crate::Snapshot) shares it; a shared list is copied
//! before one record changes it, so sharing is never seen from outside.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::hash::FoldHasher;

/// The seed of a name list's hash.
const NAMES_SEED: u64 = 0x6e61_6d65_7331_0001;

/// Native field names in a record's order, shared by the records that list
/// the same ones.
#[derive(Default, Clone)]
struct Names {
    list: Vec<Box<str>>,
    /// The hash of `list`, once asked for (content hashes start from it).
    hash: OnceLock<u64>,
    /// Where each name is, once a lookup in a list longer than
    /// [`SCAN`] asks: built once per shared list, and kept up to date by
    /// `push` (a record being built).
    index: OnceLock<HashMap<Box<str>, usize>>,
}

/// Lists up to this long are looked up by scanning them.
const SCAN: usize = 16;

impl Names {
    fn position(&self, name: &str) -> Option<usize> {
        if self.list.len() <= SCAN {
            return self.list.iter().position(|n| **n == *name);
        }
        let index = self.index.get_or_init(|| {
            self.list
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect()
        });
        index.get(name).copied()
    }

    fn push(&mut self, name: &str) {
        self.hash = OnceLock::new();
        if let Some(index) = self.index.get_mut() {
            index.insert(name.into(), self.list.len());
        }
        self.list.push(name.into());
    }

    /// After names were taken out: what was derived from the list is
    /// derived again when asked.
    fn changed(&mut self) {
        self.hash = OnceLock::new();
        self.index = OnceLock::new();
    }

    fn hash(&self) -> u64 {
        *self.hash.get_or_init(|| {
            let mut h = FoldHasher::new(NAMES_SEED);
            h.u64(self.list.len() as u64);
            for n in &self.list {
                h.bytes(n.as_bytes());
            }
            h.finish()
        })
    }
}

/// A record's native fields: names and values, in the order they were set.
///
/// It reads like the map it replaces (`get`, `insert`, `iter`, `keys`,
/// `shift_remove`, ...), and two are equal when they hold the same names
/// with the same values, in any order. Records of one
/// [`Snapshot`](crate::Snapshot) that list the same names in the same order
/// share one copy of the names (a snapshot shares up to 8 distinct lists,
/// the ones met last). A lookup by name scans a list of up to 16 names;
/// a longer list builds an index once (once per shared list), so records
/// of hundreds of fields are built and read in time linear in their
/// fields.
///
/// ```
/// use recsync::Record;
/// use serde_json::json;
///
/// let mut r = Record::new("1").field("email", "ada@example.com").field("score", 7);
/// assert_eq!(r.fields.get("score"), Some(&json!(7)));
/// r.fields.insert("score", json!(8));
/// assert_eq!(r.fields.keys().collect::<Vec<_>>(), ["email", "score"]);
/// assert_eq!(r.fields.shift_remove("email"), Some(json!("ada@example.com")));
/// assert_eq!(r.fields.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Fields {
    names: Arc<Names>,
    values: Vec<Value>,
}

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Fields::default()
    }

    /// No fields, with room for `n` values.
    pub fn with_capacity(n: usize) -> Self {
        Fields {
            names: Arc::new(Names {
                list: Vec::with_capacity(n),
                ..Names::default()
            }),
            values: Vec::with_capacity(n),
        }
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Where field `name` is, if it is here.
    pub fn get_index_of(&self, name: &str) -> Option<usize> {
        self.names.position(name)
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(self.get_index_of(name)?)
    }

    /// The value of field `name`, to change it in place.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        let i = self.get_index_of(name)?;
        self.values.get_mut(i)
    }

    /// Where field `name` is, its name and its value.
    pub fn get_full(&self, name: &str) -> Option<(usize, &str, &Value)> {
        let i = self.get_index_of(name)?;
        Some((i, self.names.list.get(i)?, self.values.get(i)?))
    }

    /// The field at position `i`: name and value.
    pub fn get_index(&self, i: usize) -> Option<(&str, &Value)> {
        Some((self.names.list.get(i)?, self.values.get(i)?))
    }

    /// Whether field `name` is here.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get_index_of(name).is_some()
    }

    /// Sets field `name` to `value`: in its place where it is here (the old
    /// value is returned), else last.
    pub fn insert(&mut self, name: impl AsRef<str>, value: Value) -> Option<Value> {
        let name = name.as_ref();
        if let Some(slot) = self.get_mut(name) {
            return Some(std::mem::replace(slot, value));
        }
        Arc::make_mut(&mut self.names).push(name);
        self.values.push(value);
        None
    }

    /// Takes field `name` out, keeping the order of the others.
    pub fn shift_remove(&mut self, name: &str) -> Option<Value> {
        let i = self.get_index_of(name)?;
        let names = Arc::make_mut(&mut self.names);
        names.list.remove(i);
        names.changed();
        Some(self.values.remove(i))
    }

    /// Keeps the fields `keep` says yes to, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Value) -> bool) {
        let keeps: Vec<bool> = self
            .names
            .list
            .iter()
            .zip(self.values.iter_mut())
            .map(|(n, v)| keep(n, v))
            .collect();
        if keeps.iter().all(|k| *k) {
            return;
        }
        let names = Arc::make_mut(&mut self.names);
        let mut i = 0;
        names.list.retain(|_| {
            i += 1;
            keeps[i - 1]
        });
        names.changed();
        let mut i = 0;
        self.values.retain(|_| {
            i += 1;
            keeps[i - 1]
        });
    }

    /// Takes every field out.
    pub fn clear(&mut self) {
        *self = Fields::new();
    }

    /// The names, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + DoubleEndedIterator + '_ {
        self.names.list.iter().map(|n| &**n)
    }

    /// The values, in order.
    pub fn values(&self) -> std::slice::Iter<'_, Value> {
        self.values.iter()
    }

    /// The values, in order, to change them in place.
    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, Value> {
        self.values.iter_mut()
    }

    /// Names and values, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            names: self.names.list.iter(),
            values: self.values.iter(),
        }
    }

    /// Names and values, in order, the values to change in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> + '_ {
        self.into_iter()
    }

    /// The hash of the names, in order: the same for every record that
    /// lists the same names in the same order, and computed once per shared
    /// list.
    pub(crate) fn names_hash(&self) -> u64 {
        self.names.hash()
    }

    /// Whether `self` and `other` share one list of names.
    fn same_names(&self, other: &Fields) -> bool {
        Arc::ptr_eq(&self.names, &other.names)
    }

    /// Takes a list of names equal to this one from `lists` (the most
    /// recent first), or adds this one there; and gives back the values'
    /// spare room.
    fn share(&mut self, lists: &mut Vec<Arc<Names>>) {
        self.values.shrink_to_fit();
        if let Some(at) = lists
            .iter()
            .rposition(|l| Arc::ptr_eq(l, &self.names) || l.list == self.names.list)
        {
            if let Some(l) = lists.get(at) {
                self.names = Arc::clone(l);
            }
            // The list last matched is tried first next time.
            let last = lists.len() - 1;
            lists.swap(at, last);
            return;
        }
        Arc::make_mut(&mut self.names).list.shrink_to_fit();
        // A few distinct lists are kept; a snapshot of records that each
        // list other fields shares nothing, and pays little for trying.
        if lists.len() == SHARED_LISTS {
            lists.remove(0);
        }
        lists.push(Arc::clone(&self.names));
    }
}

/// The most room a deserialized record takes ahead of its fields.
const SIZE_HINT_CAP: usize = 1024;

/// How many distinct lists of names a snapshot keeps to share.
const SHARED_LISTS: usize = 8;

/// Lets the records share their lists of names, where they list the same
/// names in the same order, and gives back their values' spare room.
pub(crate) fn share_names<'a>(fields: impl IntoIterator<Item = &'a mut Fields>) {
    let mut lists = Vec::new();
    for f in fields {
        f.share(&mut lists);
    }
}

/// An iterator over names and values ([`Fields::iter`]).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    names: std::slice::Iter<'a, Box<str>>,
    values: std::slice::Iter<'a, Value>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        Some((self.names.next()?, self.values.next()?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.values.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        Some((self.names.next_back()?, self.values.next_back()?))
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Fields {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        let names: Vec<String> = self.names.list.iter().map(|n| n.to_string()).collect();
        names
            .into_iter()
            .zip(self.values)
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut fields = Fields::new();
        fields.extend(iter);
        fields
    }
}

impl<K: AsRef<str>> Extend<(K, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: AsRef<str>, const N: usize> From<[(K, Value); N]> for Fields {
    fn from(fields: [(K, Value); N]) -> Self {
        fields.into_iter().collect()
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        if self.same_names(other) || self.names.list == other.names.list {
            return self.values == other.values;
        }
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Fields {}

impl<'a> IntoIterator for &'a mut Fields {
    type Item = (&'a str, &'a mut Value);
    type IntoIter = std::iter::Zip<
        std::iter::Map<std::slice::Iter<'a, Box<str>>, fn(&Box<str>) -> &str>,
        std::slice::IterMut<'a, Value>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let name: fn(&Box<str>) -> &str = |n| n;
        self.names.list.iter().map(name).zip(self.values.iter_mut())
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of field names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Fields, A::Error> {
                // The length a format gives is not trusted beyond a little.
                let hint = access.size_hint().unwrap_or(0).min(SIZE_HINT_CAP);
                let mut fields = Fields::with_capacity(hint);
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    fields.insert(k, v);
                }
                Ok(fields)
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ann() -> Fields {
        [("email", json!("a@x.io")), ("name", json!("Ann"))].into()
    }

    #[test]
    fn records_that_list_the_same_names_share_them_and_stay_apart() {
        let mut a = ann();
        let mut b = ann();
        let mut c: Fields = [("name", json!("Bo")), ("email", json!("b@x.io"))].into();
        share_names([&mut a, &mut b, &mut c]);
        assert!(a.same_names(&b));
        assert!(!a.same_names(&c));
        assert_eq!(a.names_hash(), b.names_hash());
        assert_ne!(a.names_hash(), c.names_hash());
        // A change to one is not seen in the other.
        b.insert("phone", json!("555"));
        b.shift_remove("email");
        assert_eq!(a.keys().collect::<Vec<_>>(), ["email", "name"]);
        assert_eq!(b.keys().collect::<Vec<_>>(), ["name", "phone"]);
        assert_ne!(a.names_hash(), b.names_hash());
    }

    #[test]
    fn equal_is_the_same_names_and_values_in_any_order() {
        let a = ann();
        let b: Fields = [("name", json!("Ann")), ("email", json!("a@x.io"))].into();
        assert_eq!(a, b);
        let c: Fields = [("name", json!("Ann")), ("email", json!("b@x.io"))].into();
        assert_ne!(a, c);
        let mut d = a.clone();
        d.insert("x", Value::Null);
        assert_ne!(a, d);
    }

    #[test]
    fn it_reads_and_writes_as_a_json_object_in_order() {
        let mut a = ann();
        a.insert("score", json!(3));
        let text = serde_json::to_string(&a).expect("serialize");
        assert_eq!(text, r#"{"email":"a@x.io","name":"Ann","score":3}"#);
        let back: Fields = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back.keys().collect::<Vec<_>>(), ["email", "name", "score"]);
        assert_eq!(back, a);
        assert_eq!(
            format!("{a:?}"),
            r#"{"email": String("a@x.io"), "name": String("Ann"), "score": Number(3)}"#
        );
    }

    #[test]
    fn retain_and_iteration_keep_the_order() {
        let mut a: Fields = (0..6).map(|i| (format!("f{i}"), json!(i))).collect();
        a.retain(|_, v| v.as_i64().is_some_and(|i| i % 2 == 0));
        assert_eq!(a.keys().collect::<Vec<_>>(), ["f0", "f2", "f4"]);
        assert_eq!(
            a.iter().rev().map(|(k, _)| k).collect::<Vec<_>>(),
            ["f4", "f2", "f0"]
        );
        assert_eq!(a.get_full("f2"), Some((1, "f2", &json!(2))));
        assert_eq!(a.get_index(2), Some(("f4", &json!(4))));
        let owned: Vec<(String, Value)> = a.into_iter().collect();
        assert_eq!(owned.len(), 3);
    }

    #[test]
    fn a_wide_record_is_found_through_its_index_as_it_changes() {
        let mut a: Fields = (0..300).map(|i| (format!("f{i}"), json!(i))).collect();
        assert_eq!(a.len(), 300);
        assert_eq!(a.get("f299"), Some(&json!(299)));
        // Inserting a name it has replaces in place, a new one goes last.
        a.insert("f7", json!("seven"));
        a.insert("g", json!("g"));
        assert_eq!(a.get_full("f7"), Some((7, "f7", &json!("seven"))));
        assert_eq!(a.get_index_of("g"), Some(300));
        // Taking names out moves the rest, and the index follows.
        assert_eq!(a.shift_remove("f0"), Some(json!(0)));
        assert_eq!(a.get_index_of("f1"), Some(0));
        assert_eq!(a.get_index_of("g"), Some(299));
        a.retain(|k, _| k != "f150");
        assert_eq!(a.get("f150"), None);
        assert_eq!(a.get_index_of("f151"), Some(149));
        // A shared list is copied before it changes, index and all.
        let mut b = a.clone();
        share_names([&mut a, &mut b]);
        assert!(a.same_names(&b));
        b.insert("h", json!(1));
        assert_eq!(a.get("h"), None);
        assert_eq!(b.get_index_of("h"), Some(299));
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
    }

    #[test]
    fn a_deserialized_record_takes_no_room_a_format_claims_ahead() {
        use serde::de::value::MapDeserializer;

        /// Two fields, claimed to be a great many.
        struct Claims(std::vec::IntoIter<(String, Value)>);
        impl Iterator for Claims {
            type Item = (String, Value);
            fn next(&mut self) -> Option<Self::Item> {
                self.0.next()
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                (usize::MAX / 8, Some(usize::MAX / 8))
            }
        }
        let items = vec![("a".to_owned(), json!(1)), ("b".to_owned(), json!(2))];
        let de = MapDeserializer::<_, serde_json::Error>::new(Claims(items.into_iter()));
        let fields = Fields::deserialize(de).expect("two fields");
        assert_eq!(fields.len(), 2);
        assert!(fields.values.capacity() <= SIZE_HINT_CAP);
    }
}

//! What each system holds: [`SystemId`], [`Record`], [`Snapshot`], and the
//! rule for what counts as an empty value.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::fields::share_names;
pub use crate::fields::{Fields, Iter as FieldsIter};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// The impls a shared-string name has: serde as a plain string, `Debug` and
/// `Display` as the string, `From<&str>` and `From<String>`, `Borrow<str>`
/// (so maps keyed by one are looked up by `&str`), `==` with `str`, `&str`
/// and `String` on either side, `From<name> for String`, and `as_str` with
/// the doc given. The type is a tuple
/// struct around an `Arc<str>`, and derives `Eq`, `Ord` and `Hash` itself:
/// those of `Arc<str>` are the string's, so `Borrow<str>` agrees with them.
macro_rules! shared_str {
    ($name:ident { $(#[$as_str_doc:meta])* as_str }) => {
        impl $name {
            $(#[$as_str_doc])*
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <String as ::serde::Deserialize>::deserialize(deserializer).map($name::from)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name(::std::sync::Arc::from(text))
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(::std::sync::Arc::from(text))
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == &*other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == &*other.0
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &*self.0 == other.as_str()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self.as_str() == &*other.0
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> Self {
                String::from(&*name.0)
            }
        }
    };
}
pub(crate) use shared_str;

/// A short name for one connected system (`"hubspot"`, `"salesforce"`).
///
/// A sync has two or more systems; the [`FieldMap`](crate::FieldMap) names
/// them, in priority order.
///
/// Cloning one is cheap (a shared string): plans name a system in every
/// write, reason and conflict.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemId(Arc<str>);

impl SystemId {
    /// Makes a system id from its name.
    pub fn new(name: impl Into<String>) -> Self {
        SystemId(Arc::from(name.into()))
    }
}

shared_str!(SystemId {
    /// The system's name.
    as_str
});

impl From<&SystemId> for SystemId {
    fn from(id: &SystemId) -> Self {
        id.clone()
    }
}

/// A field or object name shared by every plan that names it: cloning one
/// is cheap.
///
/// Write ops name their object ([`WriteOp::object`](crate::WriteOp::object))
/// and each field they write, canonical and native
/// ([`FieldWrite`](crate::plan::FieldWrite)), by the field map's own
/// `Name`s: a clone is a reference-count bump, not a copy of the text. It
/// serializes as a plain string, prints as one, derefs to `str`, and
/// compares equal to the same text as `&str` or `String`.
///
/// ```
/// use recsync::Name;
///
/// let email = Name::new("email");
/// assert_eq!(email, "email");
/// assert_eq!(email.len(), 5); // a `str` method, through `Deref`
/// assert_eq!(serde_json::to_string(&email)?, r#""email""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    /// A name from its text.
    pub fn new(name: impl Into<String>) -> Self {
        Name(Arc::from(name.into()))
    }
}

shared_str!(Name {
    /// The name's text.
    as_str
});

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One system's record, in that system's own field names and value forms.
///
/// ```
/// use recsync::Record;
/// use serde_json::json;
///
/// let contact = Record::new("003A1")
///     .field("Email", json!("ada@example.com"))
///     .field("Phone", json!("555-0101"))
///     .updated_at("2026-03-01T10:00:00Z".parse().unwrap());
/// assert_eq!(contact.get("Phone"), Some(&json!("555-0101")));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's id in its system.
    pub id: String,
    /// Native field names and values. A field that is absent was not
    /// reported; a field that is present and [empty](is_empty_value) holds
    /// nothing.
    ///
    /// Records of one [`Snapshot`] that list the same names in the same
    /// order share one copy of the names ([`Fields`]).
    #[serde(default)]
    pub fields: Fields,
    /// When the record last changed, as its system says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// When single fields last changed, for systems that keep field history.
    /// Where a field has an entry it is preferred to `updated_at`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub field_updated_at: IndexMap<String, DateTime<Utc>>,
    /// The record's version or etag, where its system has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The record is a tombstone: its system reports it deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The correlation key recsync gave the create that made this record
    /// ([`WriteOp::correlation`](crate::plan::WriteOp::correlation)), where
    /// the system keeps it (in an external-id field). A record carrying one is
    /// linked to the entity it was created for, so a create whose commit was
    /// lost is never made twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// Native fields that [`field`](Record::field) or
    /// [`field_at`](Record::field_at) was given a number that is not finite
    /// for (NaN or an infinity, also inside an array or an option), which
    /// JSON cannot hold. Such a field is left out of
    /// [`fields`](Record::fields), so it reads as not reported: nothing is
    /// taken from it and no other system is written, or cleared, because of
    /// it. Each plan that sees the record reports each such field the map
    /// syncs as a
    /// [`NonFiniteNumber`](crate::plan::IssueKind::NonFiniteNumber) issue;
    /// a match key among them makes the record an
    /// [`InvalidKey`](crate::plan::IssueKind::InvalidKey) issue (it is not
    /// matched or created). Setting the field to a value again takes it off
    /// the list.
    ///
    /// ```
    /// use recsync::Record;
    ///
    /// let r = Record::new("1").field("score", f64::NAN).field("name", "Ada");
    /// assert_eq!(r.get("score"), None);
    /// assert_eq!(r.non_finite, ["score"]);
    /// let r = r.field("score", 7.5);
    /// assert!(r.non_finite.is_empty());
    /// ```
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_finite: Vec<String>,
}

impl Record {
    /// A record with the given native id and no fields.
    pub fn new(id: impl Into<String>) -> Self {
        Record {
            id: id.into(),
            fields: Fields::new(),
            updated_at: None,
            field_updated_at: IndexMap::new(),
            version: None,
            deleted: false,
            correlation: None,
            non_finite: Vec::new(),
        }
    }

    /// Sets a native field to anything a JSON value is made from (see
    /// [`FieldValue`]). A number that is not finite is refused, not turned
    /// into `null`: the field is left out and listed in
    /// [`non_finite`](Record::non_finite).
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: impl FieldValue) -> Self {
        self.set(name.into(), value);
        self
    }

    /// Sets a native field and the time it last changed (a number that is
    /// not finite is refused, as by [`field`](Record::field)).
    #[must_use]
    pub fn field_at(
        mut self,
        name: impl Into<String>,
        value: impl FieldValue,
        at: DateTime<Utc>,
    ) -> Self {
        let name = name.into();
        self.field_updated_at.insert(name.clone(), at);
        self.set(name, value);
        self
    }

    fn set(&mut self, name: String, value: impl FieldValue) {
        self.non_finite.retain(|n| *n != name);
        match value.into_json() {
            Some(v) => {
                self.fields.insert(&name, v);
            }
            None => {
                self.fields.shift_remove(&name);
                self.non_finite.push(name);
            }
        }
    }

    /// A person's edit of a record already built: sets a native field,
    /// when it changed, and moves the record's `updated_at` on to `at`
    /// where it was older (a number that is not finite is refused, as by
    /// [`field`](Record::field)).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use recsync::Record;
    ///
    /// let monday = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    /// let tuesday = Utc.with_ymd_and_hms(2026, 3, 3, 9, 0, 0).unwrap();
    /// let mut r = Record::new("1").field("name", "Ada").updated_at(monday);
    /// r.edit("name", "Ada Lovelace", tuesday);
    /// assert_eq!(r.get("name").and_then(|v| v.as_str()), Some("Ada Lovelace"));
    /// assert_eq!(r.changed_at("name"), Some(tuesday));
    /// assert_eq!(r.updated_at, Some(tuesday));
    /// ```
    pub fn edit(&mut self, name: impl Into<String>, value: impl FieldValue, at: DateTime<Utc>) {
        let name = name.into();
        self.field_updated_at.insert(name.clone(), at);
        self.set(name, value);
        if self.updated_at.is_none_or(|u| u < at) {
            self.updated_at = Some(at);
        }
    }

    /// Sets when the record last changed.
    #[must_use]
    pub fn updated_at(mut self, at: DateTime<Utc>) -> Self {
        self.updated_at = Some(at);
        self
    }

    /// Sets the record's version or etag.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Marks the record as deleted (a tombstone).
    #[must_use]
    pub fn deleted(mut self) -> Self {
        self.deleted = true;
        self
    }

    /// Sets the correlation key the system keeps for the record.
    #[must_use]
    pub fn correlation(mut self, key: impl Into<String>) -> Self {
        self.correlation = Some(key.into());
        self
    }

    /// The value of a native field, if the record has it.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// When a native field last changed: its own timestamp where the system
    /// keeps one, else the record's `updated_at`.
    pub fn changed_at(&self, field: &str) -> Option<DateTime<Utc>> {
        self.field_updated_at
            .get(field)
            .copied()
            .or(self.updated_at)
    }
}

/// A value [`Record::field`] accepts: what a [`serde_json::Value`] is made
/// from (strings, integers, floats, bools, `Value`, [`Number`], JSON maps,
/// `()`, and options, vectors, arrays and slices of these), with one
/// difference. A float that is not finite (NaN or an infinity) has no JSON
/// form; `serde_json` makes it `null`, which would read as the field
/// emptied and clear it in every other system. Here it is refused:
/// [`into_json`](FieldValue::into_json) gives `None`, and the record lists
/// the field in [`Record::non_finite`] instead of holding it.
///
/// Implement it for a type of your own by converting to a `Value`
/// (`Some(value)`), or return `None` for a value JSON cannot hold.
///
/// ```
/// use recsync::FieldValue;
/// use serde_json::json;
///
/// assert_eq!(2.5.into_json(), Some(json!(2.5)));
/// assert_eq!(f64::INFINITY.into_json(), None);
/// assert_eq!(vec![1.0, f64::NAN].into_json(), None);
/// assert_eq!(Some("a").into_json(), Some(json!("a")));
/// ```
pub trait FieldValue {
    /// The value as JSON; `None` where it holds a number that is not finite.
    fn into_json(self) -> Option<Value>;
}

macro_rules! field_value_from {
    ($($ty:ty),* $(,)?) => {
        $(
            impl FieldValue for $ty {
                fn into_json(self) -> Option<Value> {
                    Some(Value::from(self))
                }
            }
        )*
    };
}

field_value_from!(
    Value,
    Number,
    Map<String, Value>,
    bool,
    String,
    &str,
    Cow<'_, str>,
    (),
    i8,
    i16,
    i32,
    i64,
    isize,
    u8,
    u16,
    u32,
    u64,
    usize,
);

impl FieldValue for f64 {
    fn into_json(self) -> Option<Value> {
        self.is_finite().then(|| Value::from(self))
    }
}

impl FieldValue for f32 {
    fn into_json(self) -> Option<Value> {
        self.is_finite().then(|| Value::from(self))
    }
}

impl<T: FieldValue> FieldValue for Option<T> {
    fn into_json(self) -> Option<Value> {
        match self {
            Some(v) => v.into_json(),
            None => Some(Value::Null),
        }
    }
}

impl<T: FieldValue> FieldValue for Vec<T> {
    fn into_json(self) -> Option<Value> {
        self.into_iter()
            .map(FieldValue::into_json)
            .collect::<Option<Vec<Value>>>()
            .map(Value::Array)
    }
}

impl<T: FieldValue, const N: usize> FieldValue for [T; N] {
    fn into_json(self) -> Option<Value> {
        self.into_iter()
            .map(FieldValue::into_json)
            .collect::<Option<Vec<Value>>>()
            .map(Value::Array)
    }
}

impl<T: FieldValue + Clone> FieldValue for &[T] {
    fn into_json(self) -> Option<Value> {
        self.iter()
            .cloned()
            .map(FieldValue::into_json)
            .collect::<Option<Vec<Value>>>()
            .map(Value::Array)
    }
}

/// How much of a system a [`Snapshot`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// Every record in scope. A linked record that is absent was deleted.
    Complete,
    /// Only some records (from webhooks, or changes since a cursor). Absence
    /// means nothing.
    Partial,
}

/// What one system holds now: every record in scope, or some of them.
///
/// ```
/// use recsync::{Record, Snapshot};
///
/// let crm = Snapshot::complete("crm", vec![Record::new("1"), Record::new("2")]);
/// assert_eq!(crm.records.len(), 2);
/// ```
///
/// Made by [`complete`](Snapshot::complete), [`partial`](Snapshot::partial)
/// or deserialized, a snapshot lets its records that list the same field
/// names in the same order share one copy of the names; records put into
/// [`records`](Snapshot::records) afterwards keep their own until
/// [`share_names`](Snapshot::share_names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SnapshotData")]
pub struct Snapshot {
    /// The system the records come from.
    pub system: SystemId,
    /// Whether the records are all there is.
    pub coverage: Coverage,
    /// The records, in any order.
    pub records: Vec<Record>,
}

/// A snapshot as serde reads it, before its records share their names.
#[derive(Deserialize)]
struct SnapshotData {
    system: SystemId,
    coverage: Coverage,
    records: Vec<Record>,
}

impl From<SnapshotData> for Snapshot {
    fn from(data: SnapshotData) -> Self {
        Snapshot::new(data.system, data.coverage, data.records)
    }
}

impl Snapshot {
    /// A complete snapshot: every record in scope.
    pub fn complete(system: impl Into<SystemId>, records: Vec<Record>) -> Self {
        Snapshot::new(system.into(), Coverage::Complete, records)
    }

    /// A partial snapshot: some records, absence means nothing.
    pub fn partial(system: impl Into<SystemId>, records: Vec<Record>) -> Self {
        Snapshot::new(system.into(), Coverage::Partial, records)
    }

    fn new(system: SystemId, coverage: Coverage, records: Vec<Record>) -> Self {
        let mut snapshot = Snapshot {
            system,
            coverage,
            records,
        };
        snapshot.share_names();
        snapshot
    }

    /// Lets the records that list the same field names in the same order
    /// share one copy of the names, and gives back the spare room of their
    /// values: what [`complete`](Snapshot::complete) and
    /// [`partial`](Snapshot::partial) do, for records added since. It
    /// changes no record's fields or order.
    pub fn share_names(&mut self) {
        share_names(self.records.iter_mut().map(|r| &mut r.fields));
    }
}

/// Whether a value counts as empty: `null`, a string that is blank after
/// trimming whitespace, `[]` or `{}`.
///
/// `0` and `false` are values, not empty. This one rule is used everywhere
/// recsync asks "is this empty?": by the
/// [`no_overwrite_on_empty`](crate::mapping::Field::no_overwrite_on_empty)
/// guard, and when detecting changes (all empty values are equal to each
/// other, so a system that reports `""` where another reports `null` does not
/// count as a change).
///
/// ```
/// use recsync::is_empty_value;
/// use serde_json::json;
///
/// assert!(is_empty_value(&json!(null)));
/// assert!(is_empty_value(&json!("  ")));
/// assert!(is_empty_value(&json!([])));
/// assert!(is_empty_value(&json!({})));
/// assert!(!is_empty_value(&json!(0)));
/// assert!(!is_empty_value(&json!(false)));
/// ```
pub fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_serializes_as_a_plain_string() {
        let name = Name::new("email");
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, r#""email""#);
        let back: Name = serde_json::from_str(&json).unwrap();
        assert_eq!(back, name);
        let in_struct: Vec<Name> = serde_json::from_value(serde_json::json!(["a", "b"])).unwrap();
        assert_eq!(in_struct, [Name::from("a"), Name::from("b")]);
    }

    #[test]
    fn name_equals_its_text() {
        let name = Name::from(String::from("email"));
        assert_eq!(name, "email");
        assert!(name == *"email");
        assert_eq!(name, String::from("email"));
        assert_ne!(name, "phone");
        assert_ne!(name, String::from("phone"));
        assert_eq!(name.as_str(), "email");
        assert_eq!(&*name, "email");
        assert_eq!(AsRef::<str>::as_ref(&name), "email");
        assert_eq!(std::borrow::Borrow::<str>::borrow(&name), "email");
        assert_eq!(Name::default(), "");
        // The text on the left, and back to a String.
        assert!("email" == name);
        assert!(*"email" == name);
        let text = String::from("email");
        assert!(text == name);
        assert!("phone" != name);
        assert_eq!(String::from(name.clone()), "email");
        assert!("crm" == SystemId::new("crm"));
        let (crm, id) = (String::from("crm"), String::from("crm:1"));
        assert_eq!(SystemId::new("crm"), crm);
        assert_eq!(crate::ids::EntityId::new("crm:1"), id);
        assert_eq!(String::from(crate::ids::EntityId::new("crm:1")), "crm:1");
    }

    #[test]
    fn name_prints_as_its_text() {
        let name = Name::new("full \"name\"");
        assert_eq!(name.to_string(), "full \"name\"");
        assert_eq!(format!("{name:?}"), format!("{:?}", "full \"name\""));
    }

    #[test]
    fn name_orders_and_looks_up_as_its_text() {
        let mut names = vec![Name::new("b"), Name::new("a"), Name::new("ab")];
        names.sort();
        assert_eq!(names, ["a", "ab", "b"]);
        let set: std::collections::HashSet<Name> = names.into_iter().collect();
        assert!(set.contains("ab"));
    }

    #[test]
    fn a_cloned_name_shares_its_text() {
        let name = Name::new("email");
        let clone = name.clone();
        assert_eq!(clone.as_str().as_ptr(), name.as_str().as_ptr());
        // A name made again from the same text does not.
        assert_ne!(Name::new("email").as_str().as_ptr(), name.as_str().as_ptr());
    }

    #[test]
    fn system_id_keeps_its_impls() {
        let id = SystemId::from("crm");
        assert_eq!(id, "crm");
        assert!(id == *"crm");
        assert_eq!(id.to_string(), "crm");
        assert_eq!(format!("{id:?}"), r#""crm""#);
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""crm""#);
        assert_eq!(serde_json::from_str::<SystemId>(r#""crm""#).unwrap(), id);
        assert_eq!(SystemId::from(&id).as_str().as_ptr(), id.as_str().as_ptr());
    }
}

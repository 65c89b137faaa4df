//! [`Table`]: a server's records of every object type, in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The server's id for it.
    pub id: String,
    /// Its fields by the API's names.
    pub fields: Map<String, Value>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When it last changed: strictly later after every change, so it
    /// serves as a version.
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, BTreeMap<String, Row>>,
    next_id: u64,
    last: Option<DateTime<Utc>>,
}

/// The records of every object type of one server (cheap to clone: clones
/// share the records). Ids are given in increasing order; timestamps come
/// from the wall clock, one millisecond apart at least.
#[derive(Debug, Clone, Default)]
pub struct Table {
    inner: Arc<Mutex<Inner>>,
}

impl Inner {
    fn tick(&mut self) -> DateTime<Utc> {
        // Millisecond precision, as both APIs report it.
        let now = Utc::now();
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let now = match self.last {
            Some(last) if now <= last => last + TimeDelta::milliseconds(1),
            _ => now,
        };
        self.last = Some(now);
        now
    }
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a record of `object` with `fields`; `id` turns the next
    /// sequence number into the record's id.
    pub fn insert(
        &self,
        object: &str,
        fields: Map<String, Value>,
        id: impl FnOnce(u64) -> String,
    ) -> Row {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = id(inner.next_id);
        let now = inner.tick();
        let row = Row {
            id: id.clone(),
            fields,
            created: now,
            updated: now,
        };
        inner
            .objects
            .entry(object.to_owned())
            .or_default()
            .insert(id, row.clone());
        row
    }

    /// Sets `fields` on a record (a `null` value clears a field) and
    /// returns it as it is now; `None` if there is no such record.
    pub fn update(&self, object: &str, id: &str, fields: &Map<String, Value>) -> Option<Row> {
        let mut inner = self.lock();
        let now = inner.tick();
        let row = inner.objects.get_mut(object)?.get_mut(id)?;
        for (name, value) in fields {
            if value.is_null() {
                row.fields.remove(name);
            } else {
                row.fields.insert(name.clone(), value.clone());
            }
        }
        row.updated = now;
        Some(row.clone())
    }

    /// Removes a record; whether it was there.
    pub fn remove(&self, object: &str, id: &str) -> bool {
        let mut inner = self.lock();
        inner
            .objects
            .get_mut(object)
            .and_then(|rows| rows.remove(id))
            .is_some()
    }

    /// One record.
    pub fn get(&self, object: &str, id: &str) -> Option<Row> {
        self.lock().objects.get(object)?.get(id).cloned()
    }

    /// Up to `limit` records of `object` in id order, after the id `after`.
    pub fn page(&self, object: &str, after: Option<&str>, limit: usize) -> Vec<Row> {
        let inner = self.lock();
        let Some(rows) = inner.objects.get(object) else {
            return Vec::new();
        };
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.to_owned()),
            None => std::ops::Bound::Unbounded,
        };
        rows.range((start, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, row)| row.clone())
            .collect()
    }

    /// Every record of `object`, in id order.
    pub fn all(&self, object: &str) -> Vec<Row> {
        self.page(object, None, usize::MAX)
    }
}

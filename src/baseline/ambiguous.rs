//! [`AmbiguousRecords`]: the records plans held back as ambiguous matches,
//! remembered from plan to plan.
//!
//! A read that shows records sharing a match key value together holds them
//! back ([`AmbiguousMatch`](crate::plan::IssueKind::AmbiguousMatch)). A
//! later partial read (changes since a cursor, a record the debounce let
//! through) may show only one of them, which then looks unique. The
//! baseline keeps each such record, by system and id, with the key it was
//! held under, so that the plan still sees the others.
//!
//! Kept by key value: each value's records per system in id order (for the
//! first few candidates an issue lists), and each record's key by system and
//! id (for the records a read mentions). Both grow with the records held
//! back, nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::FoldMap;
use crate::model::SystemId;

/// The records of each system that plans held back as ambiguous matches
/// and no read has shown otherwise since: each by system and id, with the
/// match key (canonical field and normalized value) it was held under.
///
/// Part of the [`BaselineHeader`](crate::baseline::BaselineHeader): stores
/// keep it with the header, and serde writes it as a list of groups
/// (`{"system", "field", "key", "records"}`, sorted). Its `Debug` shows
/// counts only: key values are personal data.
#[derive(Clone, Default)]
pub struct AmbiguousRecords {
    /// Interned system names.
    systems: Vec<SystemId>,
    /// Per system (as `systems`): record id to key slot.
    records: Vec<FoldMap<Box<str>, u32>>,
    /// Key values by slot; `None`: free.
    keys: Vec<Option<HeldKey>>,
    free: Vec<u32>,
    /// Field, then normalized value, to key slot.
    key_slots: FoldMap<Box<str>, FoldMap<Box<str>, u32>>,
    len: usize,
}

#[derive(Clone)]
struct HeldKey {
    field: Box<str>,
    text: Box<str>,
    /// Per system (as `systems`), the records held under this key, by id.
    members: Vec<BTreeSet<Box<str>>>,
}

/// Records of one system held under one key value, as serde writes them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HeldGroup {
    pub(crate) system: SystemId,
    pub(crate) field: String,
    pub(crate) key: String,
    pub(crate) records: Vec<String>,
}

impl fmt::Debug for HeldGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key value is personal data: the field and the count only.
        f.debug_struct("HeldGroup")
            .field("system", &self.system)
            .field("field", &self.field)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl AmbiguousRecords {
    /// How many records are held back.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no record is held back.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key record `record_id` of `system` is held back under: its
    /// canonical field and normalized value.
    pub fn get(&self, system: &str, record_id: &str) -> Option<(&str, &str)> {
        let s = self.system_slot(system)?;
        let k = self.key_of(s, record_id)?;
        let key = self.key(k)?;
        Some((&key.field, &key.text))
    }

    // ----- crate-internal: for plans and commits

    pub(crate) fn system_slot(&self, name: &str) -> Option<usize> {
        self.systems.iter().position(|s| s.as_str() == name)
    }

    fn key(&self, k: u32) -> Option<&HeldKey> {
        self.keys.get(k as usize).and_then(Option::as_ref)
    }

    /// The key slot record `id` of system slot `s` is held under.
    pub(crate) fn key_of(&self, s: usize, id: &str) -> Option<u32> {
        self.records.get(s)?.get(id).copied()
    }

    /// The slot of the key `field` = `text`, if records are held under it.
    pub(crate) fn key_slot(&self, field: &str, text: &str) -> Option<u32> {
        self.key_slots.get(field)?.get(text).copied()
    }

    /// Every key records are held under: its slot, field and value.
    pub(crate) fn held_keys(&self) -> impl Iterator<Item = (u32, &str, &str)> {
        self.keys.iter().enumerate().filter_map(|(k, key)| {
            let key = key.as_ref()?;
            Some((u32::try_from(k).ok()?, &*key.field, &*key.text))
        })
    }

    /// The records of system slot `s` held under key slot `k`, by id.
    pub(crate) fn members(&self, k: u32, s: usize) -> impl Iterator<Item = &str> {
        self.key(k)
            .and_then(|key| key.members.get(s))
            .into_iter()
            .flatten()
            .map(|id| &**id)
    }

    /// How many records of system slot `s` are held under key slot `k`.
    pub(crate) fn count(&self, k: u32, s: usize) -> usize {
        self.key(k)
            .and_then(|key| key.members.get(s))
            .map_or(0, BTreeSet::len)
    }

    /// How many records of system slot `s` are held.
    pub(crate) fn system_len(&self, s: usize) -> usize {
        self.records.get(s).map_or(0, FoldMap::len)
    }

    /// Every record of system slot `s` held back (in no order).
    pub(crate) fn records_of(&self, s: usize) -> impl Iterator<Item = &str> {
        self.records
            .get(s)
            .into_iter()
            .flatten()
            .map(|(id, _)| &**id)
    }

    /// The system names, by slot.
    pub(crate) fn systems(&self) -> &[SystemId] {
        &self.systems
    }

    fn ensure_system(&mut self, system: &SystemId) -> usize {
        match self.system_slot(system.as_str()) {
            Some(s) => s,
            None => {
                self.systems.push(system.clone());
                self.records.push(FoldMap::default());
                self.systems.len() - 1
            }
        }
    }

    /// Holds record `id` of `system` back under `field` = `text`, in place
    /// of any key it was held under.
    pub(crate) fn hold(&mut self, system: &SystemId, id: &str, field: &str, text: &str) {
        let s = self.ensure_system(system);
        if let Some(k) = self.key_of(s, id) {
            if self
                .key(k)
                .is_some_and(|key| &*key.field == field && &*key.text == text)
            {
                return;
            }
            self.forget_at(s, id);
        }
        let k = match self.key_slot(field, text) {
            Some(k) => k,
            None => self.new_key(field, text),
        };
        let Some(key) = self.keys.get_mut(k as usize).and_then(Option::as_mut) else {
            return;
        };
        if key.members.len() <= s {
            key.members.resize_with(s + 1, BTreeSet::new);
        }
        let Some(members) = key.members.get_mut(s) else {
            return;
        };
        members.insert(id.into());
        if let Some(records) = self.records.get_mut(s) {
            records.insert(id.into(), k);
        }
        self.len += 1;
    }

    fn new_key(&mut self, field: &str, text: &str) -> u32 {
        let key = HeldKey {
            field: field.into(),
            text: text.into(),
            members: Vec::new(),
        };
        let k = match self.free.pop() {
            Some(k) => {
                if let Some(slot) = self.keys.get_mut(k as usize) {
                    *slot = Some(key);
                }
                k
            }
            None => {
                self.keys.push(Some(key));
                // Never more keys than records held, which fit in memory.
                u32::try_from(self.keys.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.key_slots
            .entry(field.into())
            .or_default()
            .insert(text.into(), k);
        k
    }

    /// Forgets record `id` of `system`; whether it was held.
    pub(crate) fn forget(&mut self, system: &str, id: &str) -> bool {
        self.system_slot(system)
            .is_some_and(|s| self.forget_at(s, id))
    }

    fn forget_at(&mut self, s: usize, id: &str) -> bool {
        let Some(k) = self.records.get_mut(s).and_then(|r| r.remove(id)) else {
            return false;
        };
        self.len = self.len.saturating_sub(1);
        let Some(key) = self.keys.get_mut(k as usize).and_then(Option::as_mut) else {
            return true;
        };
        if let Some(members) = key.members.get_mut(s) {
            members.remove(id);
        }
        if key.members.iter().all(BTreeSet::is_empty) {
            if let Some(texts) = self.key_slots.get_mut(&*key.field) {
                texts.remove(&*key.text);
                if texts.is_empty() {
                    self.key_slots.remove(&*key.field);
                }
            }
            if let Some(slot) = self.keys.get_mut(k as usize) {
                *slot = None;
            }
            self.free.push(k);
        }
        true
    }

    /// Applies what a plan changed: forgets, then holds.
    pub(crate) fn apply(&mut self, change: &AmbiguityChange) {
        for (system, id) in &change.forget {
            self.forget(system.as_str(), id);
        }
        for g in &change.hold {
            for id in &g.records {
                self.hold(&g.system, id, &g.field, &g.key);
            }
        }
    }

    /// The records held back as serde writes them: one group per system
    /// and key value, sorted by system, field and value; ids sorted.
    pub(crate) fn groups(&self) -> Vec<HeldGroup> {
        let mut out = Vec::new();
        for key in self.keys.iter().flatten() {
            for (s, members) in key.members.iter().enumerate() {
                let Some(system) = self.systems.get(s).filter(|_| !members.is_empty()) else {
                    continue;
                };
                out.push(HeldGroup {
                    system: system.clone(),
                    field: key.field.to_string(),
                    key: key.text.to_string(),
                    records: members.iter().map(|id| id.to_string()).collect(),
                });
            }
        }
        out.sort_by(|a, b| (&a.system, &a.field, &a.key).cmp(&(&b.system, &b.field, &b.key)));
        out
    }

    /// Bytes of memory held, estimated from sizes and capacities.
    pub(crate) fn heap_bytes(&self) -> usize {
        // Per record: its id twice (map and set) with their entries.
        let per_record = 2 * std::mem::size_of::<Box<str>>() + 24;
        let ids: usize = self
            .records
            .iter()
            .flat_map(|r| r.keys())
            .map(|id| 2 * id.len())
            .sum();
        let keys: usize = self
            .keys
            .iter()
            .flatten()
            .map(|k| k.field.len() + k.text.len() + 64)
            .sum();
        self.len * per_record + ids + keys
    }
}

impl PartialEq for AmbiguousRecords {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self.systems.iter().enumerate().all(|(s, system)| {
                self.records
                    .get(s)
                    .into_iter()
                    .flatten()
                    .all(|(id, _)| self.get(system.as_str(), id) == other.get(system.as_str(), id))
            })
    }
}

impl fmt::Debug for AmbiguousRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key values are personal data: counts only.
        f.debug_struct("AmbiguousRecords")
            .field("records", &self.len)
            .field("keys", &self.keys.iter().flatten().count())
            .finish()
    }
}

impl Serialize for AmbiguousRecords {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.groups())
    }
}

impl<'de> Deserialize<'de> for AmbiguousRecords {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let groups = Vec::<HeldGroup>::deserialize(deserializer)?;
        let mut out = AmbiguousRecords::default();
        // Each record once: two groups holding one record are not state
        // recsync writes.
        let mut seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for g in &groups {
            for id in &g.records {
                if !seen.entry(g.system.as_str()).or_default().insert(id) {
                    return Err(serde::de::Error::custom(format!(
                        "record {id} of {} is held back twice",
                        g.system
                    )));
                }
                out.hold(&g.system, id, &g.field, &g.key);
            }
        }
        Ok(out)
    }
}

/// What a plan changes in the baseline's [`AmbiguousRecords`]: records a
/// read showed otherwise (linked, created, gone, another key value, out of
/// scope) are forgotten, then records held back now are held (each in place
/// of what it was held under).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct AmbiguityChange {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) forget: Vec<(SystemId, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) hold: Vec<HeldGroup>,
}

impl AmbiguityChange {
    pub(crate) fn is_empty(&self) -> bool {
        self.forget.is_empty() && self.hold.is_empty()
    }
}

impl fmt::Debug for AmbiguityChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmbiguityChange")
            .field("forget", &self.forget)
            .field("hold", &self.hold)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(name: &str) -> SystemId {
        SystemId::new(name)
    }

    #[test]
    fn holds_forgets_and_frees_keys() {
        let mut a = AmbiguousRecords::default();
        a.hold(&sys("b"), "b2", "email", "x@y");
        a.hold(&sys("b"), "b1", "email", "x@y");
        a.hold(&sys("a"), "a1", "email", "x@y");
        assert_eq!(a.len(), 3);
        assert_eq!(a.get("b", "b1"), Some(("email", "x@y")));
        let k = a.key_slot("email", "x@y").unwrap();
        let b = a.system_slot("b").unwrap();
        assert_eq!(a.members(k, b).collect::<Vec<_>>(), ["b1", "b2"]);
        assert_eq!(a.count(k, b), 2);
        // Held again under another value: moved, not doubled.
        a.hold(&sys("b"), "b2", "email", "z@y");
        assert_eq!(a.len(), 3);
        assert_eq!(a.count(k, b), 1);
        a.forget("b", "b1");
        a.forget("a", "a1");
        a.forget("a", "nobody");
        assert_eq!(a.len(), 1);
        assert_eq!(a.key_slot("email", "x@y"), None);
        // The freed slot is taken again.
        a.hold(&sys("a"), "a9", "phone", "555");
        assert_eq!(a.key_slot("phone", "555"), Some(k));
        assert_eq!(a.get("a", "a9"), Some(("phone", "555")));
    }

    #[test]
    fn serde_writes_sorted_groups_and_refuses_a_record_twice() {
        let mut a = AmbiguousRecords::default();
        a.hold(&sys("b"), "b2", "email", "x@y");
        a.hold(&sys("a"), "a1", "email", "x@y");
        a.hold(&sys("b"), "b1", "email", "x@y");
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(
            text,
            r#"[{"system":"a","field":"email","key":"x@y","records":["a1"]},{"system":"b","field":"email","key":"x@y","records":["b1","b2"]}]"#
        );
        let back: AmbiguousRecords = serde_json::from_str(&text).unwrap();
        assert_eq!(back, a);
        assert_ne!(back, AmbiguousRecords::default());
        let twice = r#"[{"system":"b","field":"email","key":"x","records":["b1"]},{"system":"b","field":"phone","key":"5","records":["b1"]}]"#;
        let err = serde_json::from_str::<AmbiguousRecords>(twice).unwrap_err();
        assert!(
            err.to_string()
                .contains("record b1 of b is held back twice"),
            "{err}"
        );
        // Debug shows no key value.
        let shown = format!("{a:?}");
        assert!(!shown.contains("x@y"), "{shown}");
    }
}

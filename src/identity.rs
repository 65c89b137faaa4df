//! Identity: which records are the same entity.
//!
//! Linked records stay linked (the baseline keeps the links). A record that
//! is not linked yet is, in order:
//!
//! 1. **Correlated**: it carries the correlation key of a create recsync
//!    planned ([`Record::correlation`]), so it is the record that create
//!    made, even if the commit that would have linked it was lost. It joins
//!    that entity; a create is never made twice.
//! 2. **Matched** by the map's match keys, in order (email, then phone),
//!    each compared after its own normalization: a string (trimmed,
//!    non-empty) or a number. A match is never guessed: one record matching
//!    several entities, or several records of one system matching one, is
//!    reported as an
//!    [`AmbiguousMatch`](crate::plan::IssueKind::AmbiguousMatch) issue, and
//!    nothing is linked or created for them. One issue per system and key
//!    value, with the count and at most
//!    [`CANDIDATES_SHOWN`] candidates per
//!    system, so matching stays linear in time and memory however many
//!    records share a value.
//!
//!    The baseline remembers the records so held back, by system and id,
//!    with the key value ([`AmbiguousRecords`]): a later partial read
//!    (changes since a cursor, or what a debounce lets through) that shows
//!    only one of them, or a new record with that value, holds it back
//!    too, and reports it with the others, as a read showing them all
//!    would. What a read shows of a remembered record decides it anew: a
//!    tombstone, another key value, leaving scope; a complete snapshot of
//!    its system that does not list it says it is gone. Until then, a
//!    shown record sharing its value is not linked or created, even where
//!    the two alone would match: the remembered one is not read, so
//!    nothing of it can be linked. Records held back by a correlation key
//!    are not remembered: the entity the key names is.
//!
//!    A record whose key value cannot be compared
//!    (a bool, an array or object that is not empty, a number that is not
//!    finite) is an [`InvalidKey`](crate::plan::IssueKind::InvalidKey)
//!    issue and is neither matched, by that key or a later one, nor
//!    created: a copy made elsewhere would be a duplicate once the value is
//!    corrected. (An earlier key may still link it.) An empty value (null,
//!    `""`, `[]`, `{}`) is no key.
//! 3. Otherwise, **created** in the other systems (where the map's record
//!    direction allows), or reported as
//!    [`Unmatched`](crate::plan::IssueKind::Unmatched), as the map's
//!    [`MatchMode`] says.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::baseline::{
    AmbiguityChange, AmbiguousRecords, Baseline, Entity, EntityId, HeldGroup, LinkStatus,
};
use crate::hash::{FoldMap, FoldSet, StableHasher};
use crate::mapping::{FieldMap, FieldSpec, Mapped, Normalization};
pub use crate::mapping::{MatchKey, MatchMode};
use crate::model::{Record, SystemId};
use crate::plan::{Issue, IssueKind, CANDIDATES_SHOWN};

/// A key value, as matching sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    /// No value: not reported, or [empty](crate::is_empty_value).
    Missing,
    /// The text it is compared by.
    Text(String),
    /// A value that cannot be compared, and what it is.
    Invalid(&'static str),
}

/// A key value, after `norm`: its text is the normalized string (non-empty),
/// or the number (integers without a fraction, so `7` and `7.0` match). A
/// bool, or an array or object that is not empty, cannot be compared.
pub(crate) fn key_of(norm: &Normalization, value: &Value) -> Key {
    let v = norm.apply(value);
    match &*v {
        Value::String(s) => match s.trim() {
            "" => Key::Missing,
            t => Key::Text(t.to_owned()),
        },
        Value::Number(n) => Key::Text(match n.as_f64() {
            Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{f:.0}"),
            _ => n.to_string(),
        }),
        Value::Null => Key::Missing,
        Value::Array(a) if a.is_empty() => Key::Missing,
        Value::Object(o) if o.is_empty() => Key::Missing,
        Value::Bool(_) => Key::Invalid("bool"),
        Value::Array(_) => Key::Invalid("array"),
        Value::Object(_) => Key::Invalid("object"),
    }
}

/// The text a key value is compared by, if it has one.
pub(crate) fn key_text(norm: &Normalization, value: &Value) -> Option<String> {
    match key_of(norm, value) {
        Key::Text(t) => Some(t),
        Key::Missing | Key::Invalid(_) => None,
    }
}

/// A fingerprint of the map's match keys, naming what a key index holds.
pub(crate) fn key_spec(map: &FieldMap) -> u64 {
    let mut h = StableHasher::new("keys");
    for (f, norm) in map.match_keys() {
        h.str(map.fields()[*f].name());
        h.str(&format!("{norm:?}"));
    }
    h.finish() | 1
}

/// An entity's key text for match key `k` of `map`.
pub(crate) fn entity_key(
    map: &FieldMap,
    baseline_fields: &[String],
    k: usize,
    entity: &Entity,
) -> Option<String> {
    let (f, norm) = map.match_keys().get(k)?;
    let name = map.fields().get(*f)?.name();
    let slot = baseline_fields.iter().position(|x| x == name)?;
    let v = entity.view().canonical(slot)?.to_value();
    key_text(norm, &v)
}

/// A record's key value for match key `k`, read through the field's
/// transform for its system.
fn record_key(map: &FieldMap, k: usize, s: usize, r: &Record) -> Key {
    let Some(field) = map
        .match_keys()
        .get(k)
        .and_then(|(f, _)| map.fields().get(*f))
    else {
        return Key::Missing;
    };
    let norm = &map.match_keys()[k].1;
    let Some(name) = field.native_at(s) else {
        return Key::Missing;
    };
    let Some(native) = r.get(name) else {
        // The record's builder refused a number JSON cannot hold.
        return if r.non_finite.iter().any(|n| n == name) {
            Key::Invalid("non-finite number")
        } else {
            Key::Missing
        };
    };
    match field.read(s, native) {
        Mapped::Value(canonical) => key_of(norm, &canonical),
        // A key that cannot be read matches nothing; the record's field
        // sync reports the mapping problem.
        Mapped::Skip | Mapped::Failed(_) => Key::Missing,
    }
}

/// A record's key text for match key `k`, if it has one.
fn record_text(map: &FieldMap, k: usize, s: usize, r: &Record) -> Option<String> {
    match record_key(map, k, s, r) {
        Key::Text(t) => Some(t),
        Key::Missing | Key::Invalid(_) => None,
    }
}

/// What record `r` of map system `s` would be matched by: each match key's
/// index and text, where it has one. Nothing under
/// [`MatchMode::CreateOnly`], which matches nothing.
pub(crate) fn match_texts(map: &FieldMap, s: usize, r: &Record) -> Vec<(usize, String)> {
    if map.match_mode() == MatchMode::CreateOnly {
        return Vec::new();
    }
    (0..map.match_keys().len())
        .filter_map(|k| Some((k, record_text(map, k, s, r)?)))
        .collect()
}

/// Records that are one entity: joining an existing one, or new.
#[derive(Debug)]
pub(crate) struct Group<'r> {
    /// The existing entity's slot, if joining one.
    pub(crate) entity: Option<u32>,
    /// The records, by system index (at most one per system).
    pub(crate) records: Vec<(usize, &'r Record)>,
}

impl Group<'_> {
    fn has_system(&self, s: usize) -> bool {
        self.records.iter().any(|(x, _)| *x == s)
    }
}

/// Finds the existing entities whose key `k` is `text`.
struct KeyLookup<'b> {
    baseline: &'b Baseline,
    /// Built for this plan when the baseline's index is not for these keys.
    temp: Vec<HashMap<String, Vec<u32>>>,
    use_index: bool,
}

impl<'b> KeyLookup<'b> {
    fn new(map: &FieldMap, baseline: &'b Baseline) -> Self {
        let use_index = baseline.keys.spec == key_spec(map)
            && baseline.keys.tables.len() == map.match_keys().len();
        let mut temp: Vec<HashMap<String, Vec<u32>>> = Vec::new();
        if !use_index {
            temp = vec![HashMap::new(); map.match_keys().len()];
            for (slot, e) in baseline.occupied() {
                for (k, table) in temp.iter_mut().enumerate() {
                    if let Some(t) = entity_key(map, baseline.fields(), k, e) {
                        table.entry(t).or_default().push(slot);
                    }
                }
            }
        }
        KeyLookup {
            baseline,
            temp,
            use_index,
        }
    }

    fn find(&self, map: &FieldMap, k: usize, text: &str) -> Vec<u32> {
        if !self.use_index {
            return self
                .temp
                .get(k)
                .and_then(|t| t.get(text))
                .cloned()
                .unwrap_or_default();
        }
        let Some(table) = self.baseline.keys.tables.get(k) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = table
            .candidates(self.baseline.key_hash(text.as_bytes()))
            .filter(|slot| {
                self.baseline.entity_at(*slot).is_some_and(|e| {
                    entity_key(map, self.baseline.fields(), k, e).as_deref() == Some(text)
                })
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Records one key value holds back: reported as one issue per system.
struct Ambiguity {
    /// The normalized key value, or the correlation key.
    key: String,
    /// The match key's canonical field; `None` for a correlation key.
    field: Option<String>,
    sensitive: bool,
    /// The records held back, by index into the sorted unlinked records.
    members: Vec<usize>,
    /// The other candidates: records of existing entities, and records
    /// grouped by this plan, and the first few remembered records no
    /// snapshot of this plan mentions. May repeat.
    others: Vec<(SystemId, String)>,
    /// Per map system: how many remembered records of it, not mentioned by
    /// this plan's snapshots, the value holds back.
    remembered: Vec<(usize, usize)>,
    /// How many of those `others` does not list.
    unlisted: usize,
}

impl Ambiguity {
    /// One issue per system with a record held back, naming its first
    /// record and at most [`CANDIDATES_SHOWN`] candidates per system: the
    /// issues' size is bounded, however many records share the value.
    fn report(&self, systems: &[SystemId], unlinked: &[(usize, &Record)], issues: &mut Vec<Issue>) {
        let mut all: Vec<(&SystemId, &str)> = self
            .members
            .iter()
            .filter_map(|i| unlinked.get(*i))
            .filter_map(|(s, r)| Some((systems.get(*s)?, r.id.as_str())))
            .chain(self.others.iter().map(|(s, r)| (s, r.as_str())))
            .collect();
        all.sort_unstable();
        all.dedup();
        let mut shown: Vec<(SystemId, String)> = Vec::new();
        let mut run = 0usize;
        for (i, (s, r)) in all.iter().enumerate() {
            let same_system = i > 0 && all.get(i - 1).is_some_and(|(p, _)| p == s);
            run = if same_system { run + 1 } else { 0 };
            if run < CANDIDATES_SHOWN {
                shown.push(((*s).clone(), (*r).to_owned()));
            }
        }
        // Members are in (system, id) order: each system's run starts with
        // its first record.
        let mut i = 0;
        while let Some(&(s, first)) = self.members.get(i).and_then(|m| unlinked.get(*m)) {
            let records = self.members[i..]
                .iter()
                .take_while(|m| unlinked.get(**m).is_some_and(|(x, _)| *x == s))
                .count();
            i += records.max(1);
            let Some(system) = systems.get(s) else {
                continue;
            };
            let records = records.saturating_add(
                self.remembered
                    .iter()
                    .filter(|(x, _)| *x == s)
                    .map(|(_, n)| *n)
                    .sum(),
            );
            issues.push(Issue {
                system: system.clone(),
                record_id: first.id.clone(),
                entity: None,
                field: self.field.clone(),
                kind: IssueKind::AmbiguousMatch {
                    key: self.key.clone(),
                    records,
                    candidate_count: all.len().saturating_add(self.unlisted),
                    candidates: shown.clone(),
                },
                sensitive: self.sensitive,
            });
        }
    }
}

/// The records the baseline holds back as ambiguous
/// ([`AmbiguousRecords`]), as one plan sees them: which of them its
/// snapshots mention. A remembered record a snapshot mentions is decided by
/// what the snapshot shows (its key value now, a tombstone, out of scope);
/// one no snapshot mentions is still there, holding its key value, and
/// still holds back every record that shares it.
pub(crate) struct Recall<'a> {
    memory: &'a AmbiguousRecords,
    /// Per map system: its slot in `memory`.
    slots: Vec<Option<usize>>,
    /// Remembered records a snapshot lists once, by (memory slot, id):
    /// the key slot each is remembered under, and whether this plan holds
    /// it back again. What the snapshot shows of them decides them.
    shown: FoldMap<(usize, &'a str), (u32, bool)>,
    /// Remembered records a snapshot lists more than once (a paging bug):
    /// which copy is current cannot be told, so they stay as remembered,
    /// and a complete snapshot listing them does not say they are gone.
    twice: FoldSet<(usize, &'a str)>,
    /// Per (key slot, memory slot): how many are shown (counted for
    /// systems read partially only) and listed twice.
    by_key: FoldMap<(u32, usize), (usize, usize)>,
    /// Per memory slot: how many are listed (shown or twice).
    listed: Vec<usize>,
    /// Per map system: its snapshot is complete, so a remembered record it
    /// does not list is gone.
    complete: Vec<bool>,
    /// Keys remembered in a form the map's normalization no longer gives
    /// (a baseline saved before text was compared in Unicode normal form
    /// and fully case-folded): by field and the form it has now, their key
    /// slots. Looked up with the key of that form; the plan holds their
    /// records again under the form of now, so a commit brings the
    /// baseline up to date.
    moved: FoldMap<String, FoldMap<String, Vec<u32>>>,
}

/// The runs of `loose` (sorted by system, then id) that list one record:
/// one element each, or more for a record listed twice.
pub(crate) fn same_record_runs<'s, 'r>(
    loose: &'s [(usize, &'r Record)],
) -> impl Iterator<Item = &'s [(usize, &'r Record)]> {
    loose.chunk_by(|(s, a), (t, b)| s == t && a.id == b.id)
}

/// Records one match key value held back in this plan, to be remembered.
pub(crate) struct HeldBack<'r> {
    field: String,
    key: String,
    records: Vec<(usize, &'r Record)>,
}

impl<'a> Recall<'a> {
    /// What `memory` holds of the records `loose` lists (every record of
    /// the snapshots not linked yet, tombstones and records out of scope
    /// included, in (system, id) order); `complete` says, per map system,
    /// whether its snapshot is complete.
    pub(crate) fn new(
        map: &FieldMap,
        memory: &'a AmbiguousRecords,
        loose: &[(usize, &'a Record)],
        complete: Vec<bool>,
    ) -> Self {
        let slots: Vec<Option<usize>> = map
            .systems()
            .iter()
            .map(|s| memory.system_slot(s.as_str()))
            .collect();
        let mut recall = Recall {
            memory,
            slots,
            shown: FoldMap::default(),
            twice: FoldSet::default(),
            by_key: FoldMap::default(),
            listed: vec![0; memory.systems().len()],
            complete,
            moved: FoldMap::default(),
        };
        if memory.is_empty() {
            return recall;
        }
        recall.find_moved(map);
        recall.shown.reserve(memory.len().min(loose.len()));
        for run in same_record_runs(loose) {
            let Some(&(s, r)) = run.first() else {
                continue;
            };
            let copies = run.len();
            let Some(ms) = recall.slots.get(s).copied().flatten() else {
                continue;
            };
            let Some(k) = memory.key_of(ms, &r.id) else {
                continue;
            };
            if copies == 1 {
                recall.shown.insert((ms, r.id.as_str()), (k, false));
                // Only a partial read leaves records unshown that count.
                if !recall.complete.get(s).copied().unwrap_or(false) {
                    recall.by_key.entry((k, ms)).or_default().0 += 1;
                }
            } else {
                recall.twice.insert((ms, r.id.as_str()));
                recall.by_key.entry((k, ms)).or_default().1 += 1;
            }
            if let Some(n) = recall.listed.get_mut(ms) {
                *n += 1;
            }
        }
        recall
    }

    /// Finds the remembered keys whose text the map's normalization of
    /// that field now gives in another form ([`Recall::moved`]). Text of
    /// ASCII only is skipped: every built-in normalization gives ASCII the
    /// form it gave before.
    fn find_moved(&mut self, map: &FieldMap) {
        for (k, field, text) in self.memory.held_keys() {
            if text.is_ascii() {
                continue;
            }
            let Some(norm) = map
                .match_keys()
                .iter()
                .find(|(f, _)| map.fields().get(*f).is_some_and(|x| x.name() == field))
                .map(|(_, n)| n)
            else {
                continue;
            };
            match key_text(norm, &Value::from(text)) {
                Some(now) if now != text => self
                    .moved
                    .entry(field.to_owned())
                    .or_default()
                    .entry(now)
                    .or_default()
                    .push(k),
                _ => {}
            }
        }
    }

    /// The key slots remembered records of `field` = `text` are held
    /// under: the key's own, and those of older forms of it.
    fn key_slots(&self, field: &str, text: &str) -> Vec<u32> {
        let mut slots: Vec<u32> = self.memory.key_slot(field, text).into_iter().collect();
        if let Some(old) = self.moved.get(field).and_then(|m| m.get(text)) {
            slots.extend(old.iter().copied());
        }
        slots
    }

    /// The remembered records held under `field` = `text` that this plan's
    /// snapshots do not show (not listed by a partial one, or listed twice):
    /// per map system, how many, and the first few by id.
    fn unmentioned(&self, field: &str, text: &str) -> Vec<(usize, usize, Vec<&'a str>)> {
        let slots = self.key_slots(field, text);
        if slots.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (s, ms) in self.slots.iter().enumerate() {
            let Some(ms) = *ms else { continue };
            // A complete snapshot lists every record its system has: one
            // it does not list is gone.
            let complete = self.complete.get(s).copied().unwrap_or(false);
            let mut count = 0;
            let mut first: Vec<&'a str> = Vec::new();
            for &k in &slots {
                let (shown, twice) = self.by_key.get(&(k, ms)).copied().unwrap_or((0, 0));
                let n = if complete {
                    twice
                } else {
                    self.memory.count(k, ms).saturating_sub(shown)
                };
                if n == 0 {
                    continue;
                }
                count += n;
                first.extend(
                    self.memory
                        .members(k, ms)
                        .filter(|id| {
                            if complete {
                                self.twice.contains(&(ms, *id))
                            } else {
                                shown == 0 || !self.shown.contains_key(&(ms, *id))
                            }
                        })
                        .take(CANDIDATES_SHOWN),
                );
            }
            if count == 0 {
                continue;
            }
            if slots.len() > 1 {
                first.sort_unstable();
                first.dedup();
                first.truncate(CANDIDATES_SHOWN);
            }
            out.push((s, count, first));
        }
        out
    }

    /// What the plan changes in the memory: remembered records a snapshot
    /// shows and this plan does not hold back are forgotten, and so are
    /// those a complete snapshot does not list (gone from the system);
    /// records held back now are held, where not held under that value
    /// already.
    pub(crate) fn change(
        &mut self,
        systems: &[SystemId],
        held: &[HeldBack<'a>],
    ) -> AmbiguityChange {
        let mut change = AmbiguityChange::default();
        let memory = self.memory;
        for h in held {
            let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            let key = memory.key_slot(&h.field, &h.key);
            for (s, r) in &h.records {
                // A record held back is shown: if remembered, it is in
                // `shown`.
                let remembered = match self.slots.get(*s).copied().flatten() {
                    Some(ms) => self.shown.get_mut(&(ms, r.id.as_str())),
                    None => None,
                };
                let same = remembered.is_some_and(|(k, again)| {
                    *again = true;
                    key == Some(*k)
                });
                if !same {
                    groups.entry(*s).or_default().push(r.id.clone());
                }
            }
            for (s, records) in groups {
                let Some(system) = systems.get(s) else {
                    continue;
                };
                change.hold.push(HeldGroup {
                    system: system.clone(),
                    field: h.field.clone(),
                    key: h.key.clone(),
                    records,
                });
            }
        }
        for ((ms, id), (_, again)) in &self.shown {
            if !*again {
                if let Some(system) = memory.systems().get(*ms) {
                    change.forget.push((system.clone(), (*id).to_owned()));
                }
            }
        }
        for (s, ms) in self.slots.iter().enumerate() {
            let Some(ms) = *ms else { continue };
            let listed = self.listed.get(ms).copied().unwrap_or(0);
            if !self.complete.get(s).copied().unwrap_or(false) || memory.system_len(ms) == listed {
                continue;
            }
            let Some(system) = memory.systems().get(ms) else {
                continue;
            };
            for id in memory.records_of(ms) {
                if !self.shown.contains_key(&(ms, id)) && !self.twice.contains(&(ms, id)) {
                    change.forget.push((system.clone(), id.to_owned()));
                }
            }
        }
        self.rehold_moved(&mut change);
        change.forget.sort_unstable();
        change
            .hold
            .sort_by(|a, b| (&a.system, &a.field, &a.key).cmp(&(&b.system, &b.field, &b.key)));
        change
    }
}

impl Recall<'_> {
    /// Holds the remembered records of keys in an older form
    /// ([`Recall::moved`]) under the form of now, where this plan neither
    /// shows them (a record shown is decided by what it shows) nor forgets
    /// them: committed, the baseline keeps only the form of now.
    fn rehold_moved(&self, change: &mut AmbiguityChange) {
        if self.moved.is_empty() {
            return;
        }
        let forgotten: BTreeSet<(&str, &str)> = change
            .forget
            .iter()
            .map(|(s, id)| (s.as_str(), id.as_str()))
            .collect();
        let mut hold = Vec::new();
        for (field, forms) in &self.moved {
            for (text, slots) in forms {
                for (ms, system) in self.memory.systems().iter().enumerate() {
                    let records: Vec<String> = slots
                        .iter()
                        .flat_map(|&k| self.memory.members(k, ms))
                        .filter(|id| {
                            !self.shown.contains_key(&(ms, *id))
                                && !forgotten.contains(&(system.as_str(), *id))
                        })
                        .map(str::to_owned)
                        .collect();
                    if !records.is_empty() {
                        hold.push(HeldGroup {
                            system: system.clone(),
                            field: field.clone(),
                            key: text.clone(),
                            records,
                        });
                    }
                }
            }
        }
        change.hold.extend(hold);
    }
}

/// Groups records not linked yet into entities. `unlinked` holds records in
/// scope and not deleted, no id twice in one system; `gone(slot, s)` says
/// whether the record entity `slot` is linked to in system `s` is deleted
/// by this plan's snapshots. Issues go to `issues`; records left out of
/// every group were reported there (ambiguous, or a key that cannot be
/// compared) or are unmatched under [`MatchMode::MatchOnly`].
///
/// Records that share a key value with a remembered record no snapshot
/// mentions (`recall`) are held back too, and reported with it: the
/// remembered record is there, holding the value, though this read does not
/// show it. Returns the groups, and the records each match key value held
/// back, for the baseline to remember.
///
/// Linear in the records, however many share a key value: each value that
/// holds records back is one [`Ambiguity`], reported with a bounded list.
///
/// The steps, in order: [`Grouping::correlate`] (correlation keys),
/// [`Grouping::match_key`] for each match key, [`Grouping::report_held`]
/// (the ambiguities), [`Grouping::place_rest`] (created, or unmatched).
pub(crate) fn group_unlinked<'r>(
    map: &FieldMap,
    baseline: &Baseline,
    sys_slot: &[Option<usize>],
    mut unlinked: Vec<(usize, &'r Record)>,
    gone: &dyn Fn(u32, usize) -> bool,
    recall: &Recall<'_>,
    issues: &mut Vec<Issue>,
) -> (Vec<Group<'r>>, Vec<HeldBack<'r>>) {
    unlinked.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    let inputs = Inputs {
        map,
        baseline,
        sys_slot,
        gone,
        recall,
    };
    let mut grouping = Grouping::new(unlinked);
    // 1. Correlation keys.
    grouping.correlate(&inputs);
    // 2. Match keys, in order.
    if map.match_mode() != MatchMode::CreateOnly && !map.match_keys().is_empty() {
        let lookup = KeyLookup::new(map, baseline);
        for k in 0..map.match_keys().len() {
            grouping.match_key(&inputs, &KeyPass::new(map, &lookup, k), issues);
        }
    }
    let held = grouping.report_held(map.systems(), issues);
    // 3. What is left: created, or unmatched.
    grouping.place_rest(map, issues);
    (grouping.finish(), held)
}

/// What grouping reads: the map, the baseline, and what this plan's
/// snapshots say of the baseline's records.
struct Inputs<'a, 'm> {
    map: &'a FieldMap,
    baseline: &'a Baseline,
    /// Per map system: its slot in the baseline.
    sys_slot: &'a [Option<usize>],
    /// Whether the record entity `slot` is linked to in map system `s` is
    /// deleted by this plan's snapshots.
    gone: &'a dyn Fn(u32, usize) -> bool,
    /// The remembered ambiguous records, as this plan sees them.
    recall: &'a Recall<'m>,
}

impl Inputs<'_, '_> {
    /// The records existing entity `slot` is linked to (detached links
    /// left out), as candidates of an ambiguity.
    fn entity_links(&self, slot: u32) -> Vec<(SystemId, String)> {
        let Some(e) = self.baseline.entity_at(slot) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (s, name) in self.map.systems().iter().enumerate() {
            let linked = self.sys_slot[s].and_then(|b| e.link(b));
            if let Some(l) = linked.filter(|l| l.status != LinkStatus::Detached) {
                out.push((name.clone(), l.id.to_string()));
            }
        }
        out
    }

    /// Whether existing entity `slot` has a live link in map system `s`,
    /// so a record of `s` cannot join it. A link to a record deleted there
    /// (held, being restored, or gone in this plan's snapshot) is not live:
    /// a record carrying the entity's correlation key or key value in that
    /// system is a restore's create (whose commit may have been lost), or
    /// the record come back, and joins the entity.
    /// Whether entity `slot` has a live record in some system.
    fn alive(&self, slot: u32) -> bool {
        (0..self.sys_slot.len()).any(|s| self.linked_in(slot, s))
    }

    fn linked_in(&self, slot: u32, s: usize) -> bool {
        self.baseline
            .entity_at(slot)
            .and_then(|e| self.sys_slot[s].and_then(|b| e.link(b)))
            .is_some_and(|l| matches!(l.status, LinkStatus::Active | LinkStatus::Frozen))
            && !(self.gone)(slot, s)
    }
}

/// One match key, as its pass over the records reads it.
struct KeyPass<'p, 'b> {
    /// The key's index among the map's match keys.
    k: usize,
    /// Finds the existing entities holding a value of the key.
    lookup: &'p KeyLookup<'b>,
    /// The key's canonical field, as issues name it.
    field: Option<String>,
    /// The field is sensitive: issues about it say so.
    sensitive: bool,
}

impl<'p, 'b> KeyPass<'p, 'b> {
    fn new(map: &FieldMap, lookup: &'p KeyLookup<'b>, k: usize) -> Self {
        let key_field = map
            .match_keys()
            .get(k)
            .and_then(|(f, _)| map.fields().get(*f));
        KeyPass {
            k,
            lookup,
            field: key_field.map(|f| f.name().to_owned()),
            sensitive: key_field.is_some_and(FieldSpec::is_sensitive),
        }
    }
}

/// The candidates a record or key value that cannot be decided is reported
/// with: (system, record id).
type Candidates = Vec<(SystemId, String)>;

impl Group<'_> {
    /// Adds the group's records to `out`, as candidates.
    fn add_candidates(&self, systems: &[SystemId], out: &mut Candidates) {
        out.extend(
            self.records
                .iter()
                .map(|(s, r)| (systems[*s].clone(), r.id.clone())),
        );
    }
}

/// Grouping under way: the records not linked yet, in (system, id) order,
/// and what each step has decided of them.
struct Grouping<'r> {
    unlinked: Vec<(usize, &'r Record)>,
    /// Per record: the group it joined.
    group_of: Vec<Option<usize>>,
    /// Per record: held back, or reported; it joins no group.
    failed: Vec<bool>,
    groups: Vec<Group<'r>>,
    /// The group standing for an existing entity, by the entity's slot.
    by_entity: BTreeMap<u32, usize>,
    /// Each key value (or correlation key) holding records back.
    ambiguities: Vec<Ambiguity>,
}

impl<'r> Grouping<'r> {
    fn new(unlinked: Vec<(usize, &'r Record)>) -> Self {
        let n = unlinked.len();
        Grouping {
            unlinked,
            group_of: vec![None; n],
            failed: vec![false; n],
            groups: Vec::new(),
            by_entity: BTreeMap::new(),
            ambiguities: Vec::new(),
        }
    }

    /// Whether record `i` is still to be decided: in no group, neither held
    /// back nor reported.
    fn open(&self, i: usize) -> bool {
        self.group_of[i].is_none() && !self.failed[i]
    }

    /// A new group joining existing entity `entity` (or none), holding
    /// `records`; returns its index.
    fn new_group(&mut self, entity: Option<u32>, records: Vec<(usize, &'r Record)>) -> usize {
        self.groups.push(Group { entity, records });
        self.groups.len() - 1
    }

    /// The group standing for existing entity `slot`, made (with no
    /// records) if there is none yet.
    fn entity_group(&mut self, slot: u32) -> usize {
        let groups = &mut self.groups;
        *self.by_entity.entry(slot).or_insert_with(|| {
            groups.push(Group {
                entity: Some(slot),
                records: Vec::new(),
            });
            groups.len() - 1
        })
    }

    /// Record `i` joins group `g`.
    fn join(&mut self, g: usize, i: usize) {
        self.groups[g].records.push(self.unlinked[i]);
        self.group_of[i] = Some(g);
    }

    /// Step 1: correlation keys. A record carrying the correlation key of a
    /// create recsync planned joins the entity the key names, or, where no
    /// entity has that id, the record of this plan whose new entity would
    /// have it. A record that cannot join (its system is taken there) is
    /// held back: one ambiguity per correlation key.
    fn correlate(&mut self, inputs: &Inputs<'_, '_>) {
        // Most plans read no record that carries a key: the ids records'
        // new entities would have are not worth listing then.
        if self.unlinked.iter().all(|(_, r)| r.correlation.is_none()) {
            return;
        }
        let systems = inputs.map.systems();
        let would_be: HashMap<String, usize> = self
            .unlinked
            .iter()
            .enumerate()
            .map(|(i, (s, r))| {
                (
                    EntityId::from_link(&systems[*s], &r.id).as_str().to_owned(),
                    i,
                )
            })
            .collect();
        let mut clashes: BTreeMap<&'r str, usize> = BTreeMap::new();
        for i in 0..self.unlinked.len() {
            let (_, r) = self.unlinked[i];
            let Some(c) = r.correlation.as_deref() else {
                continue;
            };
            if let Some(slot) = inputs.baseline.find_entity(&EntityId::new(c)) {
                self.correlate_to_entity(inputs, &mut clashes, i, c, slot);
            } else if let Some(&j) = would_be.get(c).filter(|j| **j != i) {
                self.correlate_to_record(systems, &mut clashes, i, c, j);
            }
        }
    }

    /// Record `i`, whose correlation key `c` names existing entity `slot`,
    /// joins the entity's group; unless the entity has a live link in the
    /// record's system, or a record of that system joined it already: then
    /// it is held back, with those as candidates.
    fn correlate_to_entity(
        &mut self,
        inputs: &Inputs<'_, '_>,
        clashes: &mut BTreeMap<&'r str, usize>,
        i: usize,
        c: &'r str,
        slot: u32,
    ) {
        let s = self.unlinked[i].0;
        let g = self.entity_group(slot);
        if inputs.linked_in(slot, s) || self.groups[g].has_system(s) {
            let mut others = inputs.entity_links(slot);
            self.groups[g].add_candidates(inputs.map.systems(), &mut others);
            self.clash(clashes, c, i, others);
        } else {
            self.join(g, i);
        }
    }

    /// Record `i`, whose correlation key `c` is the id record `j`'s new
    /// entity would have, joins `j`'s group (made for `j` if it has none);
    /// unless a record of its system is in that group already: then it is
    /// held back, with the group's records as candidates.
    fn correlate_to_record(
        &mut self,
        systems: &[SystemId],
        clashes: &mut BTreeMap<&'r str, usize>,
        i: usize,
        c: &'r str,
        j: usize,
    ) {
        let s = self.unlinked[i].0;
        let g = match self.group_of[j] {
            Some(g) => g,
            None => {
                let g = self.new_group(None, vec![self.unlinked[j]]);
                self.group_of[j] = Some(g);
                g
            }
        };
        if self.groups[g].has_system(s) {
            let mut others = Vec::new();
            self.groups[g].add_candidates(systems, &mut others);
            self.clash(clashes, c, i, others);
        } else {
            self.join(g, i);
        }
    }

    /// Holds record `i` back under correlation key `c`, with `others` as
    /// candidates: the key's ambiguity (`clashes` finds it) is made on its
    /// first record.
    fn clash(
        &mut self,
        clashes: &mut BTreeMap<&'r str, usize>,
        c: &'r str,
        i: usize,
        others: Candidates,
    ) {
        let ambiguities = &mut self.ambiguities;
        let a = *clashes.entry(c).or_insert_with(|| {
            ambiguities.push(Ambiguity {
                key: c.to_owned(),
                field: None,
                sensitive: false,
                members: Vec::new(),
                others: Vec::new(),
                remembered: Vec::new(),
                unlisted: 0,
            });
            ambiguities.len() - 1
        });
        if let Some(a) = ambiguities.get_mut(a) {
            a.members.push(i);
            a.others.extend(others);
        }
        self.failed[i] = true;
    }

    /// Step 2, for one match key: the records still open are put in buckets
    /// by their value of the key, and each value is decided
    /// ([`Grouping::match_value`]).
    fn match_key(
        &mut self,
        inputs: &Inputs<'_, '_>,
        pass: &KeyPass<'_, '_>,
        issues: &mut Vec<Issue>,
    ) {
        let buckets = self.bucket(inputs.map, pass, issues);
        if buckets.is_empty() {
            return;
        }
        let group_keys = self.group_keys(inputs, pass.k);
        for (text, members) in buckets {
            self.match_value(inputs, pass, &group_keys, text, members);
        }
    }

    /// The records still open, by their value of the key (a record without
    /// one is in no bucket). A record whose value cannot be compared is
    /// reported ([`IssueKind::InvalidKey`]) and closed: it is neither
    /// matched, by this key or a later one, nor created.
    fn bucket(
        &mut self,
        map: &FieldMap,
        pass: &KeyPass<'_, '_>,
        issues: &mut Vec<Issue>,
    ) -> BTreeMap<String, Vec<usize>> {
        let mut buckets: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in 0..self.unlinked.len() {
            if !self.open(i) {
                continue;
            }
            let (s, r) = self.unlinked[i];
            match record_key(map, pass.k, s, r) {
                Key::Text(t) => buckets.entry(t).or_default().push(i),
                Key::Invalid(found) => {
                    issues.push(Issue {
                        system: map.systems()[s].clone(),
                        record_id: r.id.clone(),
                        entity: None,
                        field: pass.field.clone(),
                        kind: IssueKind::InvalidKey {
                            found: found.to_owned(),
                        },
                        sensitive: pass.sensitive,
                    });
                    self.failed[i] = true;
                }
                Key::Missing => {}
            }
        }
        buckets
    }

    /// The groups made so far, by their values of match key `k`: their
    /// records' values, and their existing entity's.
    fn group_keys(&self, inputs: &Inputs<'_, '_>, k: usize) -> BTreeMap<String, BTreeSet<usize>> {
        let (map, baseline) = (inputs.map, inputs.baseline);
        let mut group_keys: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (g, group) in self.groups.iter().enumerate() {
            for (s, r) in &group.records {
                if let Some(t) = record_text(map, k, *s, r) {
                    group_keys.entry(t).or_default().insert(g);
                }
            }
            if let Some(t) = group
                .entity
                .and_then(|slot| baseline.entity_at(slot))
                .and_then(|e| entity_key(map, baseline.fields(), k, e))
            {
                group_keys.entry(t).or_default().insert(g);
            }
        }
        group_keys
    }

    /// Decides the records `members` (in system order) sharing key value
    /// `text`. They join the one group or existing entity holding the
    /// value; or, where none does, become a new group if two or more (one
    /// alone is left to step 3). They are held back
    /// ([`Grouping::hold_value`]) where that cannot be told: several
    /// targets, two records of one system, a record of a system the target
    /// has already, or remembered records holding the value that this read
    /// does not show.
    fn match_value(
        &mut self,
        inputs: &Inputs<'_, '_>,
        pass: &KeyPass<'_, '_>,
        group_keys: &BTreeMap<String, BTreeSet<usize>>,
        text: String,
        members: Vec<usize>,
    ) {
        let targets = self.targets(inputs, pass, group_keys, &text);
        let single = (targets.len() == 1)
            .then(|| targets.first().copied())
            .flatten();
        let clash = self.clashes(inputs, &members, single);
        // Remembered records holding the value that this read does not
        // show hold the others back: they are there.
        let remembered = pass
            .field
            .as_deref()
            .map(|f| inputs.recall.unmentioned(f, &text))
            .unwrap_or_default();
        if targets.len() > 1 || clash || !remembered.is_empty() {
            self.hold_value(inputs, pass, text, members, &targets, &remembered);
            return;
        }
        let g = match single {
            Some(g) => g,
            None if members.len() >= 2 => self.new_group(None, Vec::new()),
            None => return,
        };
        for i in members {
            self.join(g, i);
        }
    }

    /// The groups key value `text` could join: groups holding it, and
    /// existing entities holding it (a group is made for each that has
    /// none yet).
    fn targets(
        &mut self,
        inputs: &Inputs<'_, '_>,
        pass: &KeyPass<'_, '_>,
        group_keys: &BTreeMap<String, BTreeSet<usize>>,
        text: &str,
    ) -> BTreeSet<usize> {
        let mut targets: BTreeSet<usize> = group_keys.get(text).cloned().unwrap_or_default();
        // An entity with no live record left is leaving the baseline (its
        // deletes wait for a read to confirm them): a record joining it
        // would be deleted with it, so a new record holding its key is new.
        for slot in pass.lookup.find(inputs.map, pass.k, text) {
            if inputs.alive(slot) {
                targets.insert(self.entity_group(slot));
            }
        }
        targets
    }

    /// Whether the records `members` (in system order) cannot all join one
    /// target: two are of one system, or, with one target `single`, one is
    /// of a system the target has a record of already, or a live link in.
    fn clashes(&self, inputs: &Inputs<'_, '_>, members: &[usize], single: Option<usize>) -> bool {
        // Members are in system order: two of one system are neighbours.
        let mut clash = members
            .windows(2)
            .any(|w| self.unlinked[w[0]].0 == self.unlinked[w[1]].0);
        if let Some(g) = single {
            let group = &self.groups[g];
            clash |= members.iter().any(|i| {
                let s = self.unlinked[*i].0;
                group.has_system(s) || group.entity.is_some_and(|slot| inputs.linked_in(slot, s))
            });
        }
        clash
    }

    /// Holds back the records `members` sharing key value `text`: one
    /// ambiguity, whose candidates are the remembered records this read
    /// does not show (the first few of each system, the rest counted), and
    /// the records of every target.
    fn hold_value(
        &mut self,
        inputs: &Inputs<'_, '_>,
        pass: &KeyPass<'_, '_>,
        text: String,
        members: Vec<usize>,
        targets: &BTreeSet<usize>,
        remembered: &[(usize, usize, Vec<&str>)],
    ) {
        let systems = inputs.map.systems();
        let mut others = Vec::new();
        let mut unlisted = 0usize;
        for (s, count, first) in remembered {
            unlisted = unlisted.saturating_add(count.saturating_sub(first.len()));
            others.extend(
                first
                    .iter()
                    .map(|id| (systems[*s].clone(), (*id).to_owned())),
            );
        }
        for g in targets {
            if let Some(slot) = self.groups[*g].entity {
                others.extend(inputs.entity_links(slot));
            }
            self.groups[*g].add_candidates(systems, &mut others);
        }
        for i in &members {
            self.failed[*i] = true;
        }
        self.ambiguities.push(Ambiguity {
            key: text,
            field: pass.field.clone(),
            sensitive: pass.sensitive,
            members,
            others,
            remembered: remembered.iter().map(|(s, n, _)| (*s, *n)).collect(),
            unlisted,
        });
    }

    /// Reports every ambiguity: one issue per system it holds records of.
    /// Returns the records each match key value held back, for the baseline
    /// to remember; those a correlation key held back are not remembered
    /// (the entity the key names is).
    fn report_held(&mut self, systems: &[SystemId], issues: &mut Vec<Issue>) -> Vec<HeldBack<'r>> {
        let mut held = Vec::new();
        for mut a in std::mem::take(&mut self.ambiguities) {
            a.members.sort_unstable();
            a.members.dedup();
            a.report(systems, &self.unlinked, issues);
            if let Some(field) = a.field {
                held.push(HeldBack {
                    field,
                    key: a.key,
                    records: a
                        .members
                        .iter()
                        .filter_map(|i| self.unlinked.get(*i))
                        .copied()
                        .collect(),
                });
            }
        }
        held
    }

    /// Step 3: each record still open is a new group of its own, to be
    /// created in the other systems; or, under [`MatchMode::MatchOnly`],
    /// reported as unmatched ([`IssueKind::NoKey`] when the map has no match
    /// key).
    fn place_rest(&mut self, map: &FieldMap, issues: &mut Vec<Issue>) {
        for i in 0..self.unlinked.len() {
            if !self.open(i) {
                continue;
            }
            let (s, r) = self.unlinked[i];
            if map.match_mode() == MatchMode::MatchOnly {
                issues.push(Issue {
                    system: map.systems()[s].clone(),
                    record_id: r.id.clone(),
                    entity: None,
                    field: None,
                    kind: if map.match_keys().is_empty() {
                        IssueKind::NoKey
                    } else {
                        IssueKind::Unmatched
                    },
                    sensitive: false,
                });
            } else {
                self.new_group(None, vec![(s, r)]);
            }
        }
    }

    /// The groups with records (a group made for an existing entity may
    /// have none), each's records in system order.
    fn finish(self) -> Vec<Group<'r>> {
        let mut groups = self.groups;
        groups.retain(|g| !g.records.is_empty());
        for g in &mut groups {
            g.records.sort_by_key(|(s, _)| *s);
        }
        groups
    }
}

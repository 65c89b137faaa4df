//! Schema drift: mapped native fields that no record of a system holds.
//!
//! A complete snapshot with records shows which native fields its system's
//! records hold. A field the map gives a native name in that system, which
//! no record of the snapshot holds (a key present with `null` is held), is
//! most likely a typo in the map, a field the system does not have, or one
//! deleted there: it is a
//! [`FieldNotFound`](crate::plan::IssueKind::FieldNotFound) issue, once per
//! system and field, naming the closest native field the records do hold,
//! and the plan writes nothing to it in that system ([`Drift::absent`]).
//! A field the map says may be absent there
//! ([`may_be_absent_in`](crate::Field::may_be_absent_in)) is not checked,
//! nor are partial snapshots (absence from some records means nothing) and
//! empty ones (nothing to tell by).
//!
//! The scan is cheap where nothing drifted: each field is looked up in the
//! first live record, which almost always holds every field; only fields
//! it lacks are looked up in the next records, until each is found. A
//! field really absent costs one pass over the snapshot.

use std::collections::BTreeSet;

use crate::mapping::FieldMap;
use crate::model::{Coverage, Record, Snapshot};
use crate::plan::{Issue, IssueKind};

/// What the scan of a plan's complete snapshots found.
#[derive(Debug, Default)]
pub(crate) struct Drift {
    /// Per map system and field (`s * fields + f`): the field is absent
    /// from the system's records, so writes to it wait. Empty where no
    /// field is absent (the common case).
    absent: Vec<bool>,
    /// One issue per system and absent field.
    pub(crate) issues: Vec<Issue>,
}

impl Drift {
    /// Scans the complete snapshots of `snaps` (by map system index) for
    /// mapped native fields that none of their live records holds.
    pub(crate) fn scan(map: &FieldMap, snaps: &[Option<&Snapshot>]) -> Drift {
        let fields = map.fields().len();
        let mut drift = Drift::default();
        for (s, snap) in snaps.iter().enumerate() {
            let Some(snap) = snap.filter(|x| x.coverage == Coverage::Complete) else {
                continue;
            };
            for f in missing_fields(map, s, &snap.records) {
                if drift.absent.is_empty() {
                    drift.absent = vec![false; snaps.len() * fields];
                }
                if let Some(slot) = drift.absent.get_mut(s * fields + f) {
                    *slot = true;
                }
                drift.issues.push(issue(map, s, f, &snap.records));
            }
        }
        drift
    }

    /// Whether field `f` (of `fields`) is absent from system `s`'s records:
    /// nothing is written to it there.
    #[inline]
    pub(crate) fn absent(&self, s: usize, f: usize, fields: usize) -> bool {
        !self.absent.is_empty() && self.absent.get(s * fields + f).copied().unwrap_or(false)
    }
}

/// Whether record `r` holds native field `nat`: as a key (`null` too), or
/// as a number that was not finite (the record was given the field).
#[inline]
fn holds(r: &Record, nat: &str) -> bool {
    r.fields.contains_key(nat) || r.non_finite.iter().any(|n| n == nat)
}

/// The fields (by map index) mapped in system `s`, and not marked
/// may-be-absent there, that no live record of `records` holds. None where
/// there is no live record.
fn missing_fields(map: &FieldMap, s: usize, records: &[Record]) -> Vec<usize> {
    let mut live = records.iter().filter(|r| !r.deleted);
    let Some(first) = live.next() else {
        return Vec::new();
    };
    let mut missing: Vec<(usize, &str)> = map
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| !field.may_be_absent_at(s))
        .filter_map(|(f, field)| field.native_at(s).map(|nat| (f, nat)))
        .filter(|(_, nat)| !holds(first, nat))
        .collect();
    for r in live {
        if missing.is_empty() {
            break;
        }
        missing.retain(|(_, nat)| !holds(r, nat));
    }
    missing.into_iter().map(|(f, _)| f).collect()
}

/// The issue for field `f`, absent from every record of system `s`.
fn issue(map: &FieldMap, s: usize, f: usize, records: &[Record]) -> Issue {
    let field = &map.fields()[f];
    let native = field.native_at(s).unwrap_or_default();
    // Native names other fields map in `s` are no likely meaning of a typo.
    let mapped: BTreeSet<&str> = map.fields().iter().filter_map(|x| x.native_at(s)).collect();
    let held = held_names(records);
    let candidates = held.into_iter().filter(|h| !mapped.contains(h));
    Issue {
        system: map.systems()[s].clone(),
        record_id: String::new(),
        entity: None,
        field: Some(field.name().to_owned()),
        kind: IssueKind::FieldNotFound {
            native: native.to_owned(),
            closest: closest(native, candidates).map(str::to_owned),
        },
        sensitive: field.is_sensitive(),
    }
}

/// Every native field name the live records of `records` hold, sorted. A
/// record whose keys are those of the record before it (the common case)
/// is not looked at key by key.
pub(crate) fn held_names(records: &[Record]) -> BTreeSet<&str> {
    let mut held = BTreeSet::new();
    let mut prev: Option<&Record> = None;
    for r in records.iter().filter(|r| !r.deleted) {
        let same = prev.is_some_and(|p| {
            p.fields.len() == r.fields.len()
                && p.fields.keys().eq(r.fields.keys())
                && p.non_finite == r.non_finite
        });
        if !same {
            held.extend(r.fields.keys());
            held.extend(r.non_finite.iter().map(String::as_str));
        }
        prev = Some(r);
    }
    held
}

/// Of `candidates`, the one closest to `name`, if any is close: compared
/// case-folded with separators (`_`, `-`, `.`, spaces) left out, then as
/// written, then by name (so the choice is stable). Close means an edit
/// distance ([`distance`]) of at most 1 plus a quarter of the longer
/// folded name.
pub(crate) fn closest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let folded = fold(name);
    let name_chars: Vec<char> = name.chars().collect();
    let mut best: Option<((usize, usize), &'c str)> = None;
    for c in candidates {
        let c_folded = fold(c);
        let d = distance(&folded, &c_folded);
        if d > 1 + folded.len().max(c_folded.len()) / 4 {
            continue;
        }
        let c_chars: Vec<char> = c.chars().collect();
        let key = (d, distance(&name_chars, &c_chars));
        if best.is_none_or(|(k, b)| (key, c) < (k, b)) {
            best = Some((key, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `s` lower-cased, without separators.
fn fold(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The Damerau-Levenshtein distance between `a` and `b` (the optimal
/// string alignment form): the fewest insertions, deletions,
/// substitutions and swaps of two neighbours that turn one into the other,
/// no substring edited twice.
pub(crate) fn distance(a: &[char], b: &[char]) -> usize {
    // Three rows of the table: two back, one back, this one.
    let mut two: Vec<usize> = vec![0; b.len() + 1];
    let mut one: Vec<usize> = (0..=b.len()).collect();
    let mut row: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (one[j] + 1).min(row[j - 1] + 1).min(one[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(two[j - 2] + 1);
            }
            row[j] = d;
        }
        std::mem::swap(&mut two, &mut one);
        std::mem::swap(&mut one, &mut row);
    }
    one[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        distance(&a, &b)
    }

    #[test]
    fn distance_counts_inserts_deletes_substitutions_and_swaps() {
        assert_eq!(d("", ""), 0);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("name", "name"), 0);
        assert_eq!(d("fullname", "full_name"), 1);
        assert_eq!(d("phone", "phnoe"), 1, "a swap is one edit");
        assert_eq!(d("kitten", "sitting"), 3);
        // The optimal string alignment form: no substring edited twice.
        assert_eq!(d("ca", "abc"), 3);
        assert_eq!(d("émail", "email"), 1, "characters, not bytes");
        assert_eq!(d("abc", "xyz"), 3);
    }

    #[test]
    fn the_closest_name_is_found_by_folded_then_written_distance() {
        let held = ["email", "full_name", "phone", "FullName", "city"];
        // Both fold to "fullname"; as written, full_name is nearer.
        assert_eq!(closest("fullname", held), Some("full_name"));
        assert_eq!(
            closest("fullName", ["full_name", "FullName"]),
            Some("FullName")
        );
        assert_eq!(closest("full_nmae", held), Some("full_name"));
        assert_eq!(closest("Emial", held), Some("email"));
        assert_eq!(closest("phon", held), Some("phone"));
        assert_eq!(closest("revenue", held), None, "nothing close");
        assert_eq!(closest("x", held), None);
        assert_eq!(closest("fullname", []), None);
        // Equally close names: the first by name, whatever the order.
        assert_eq!(closest("cat", ["cab", "car"]), Some("cab"));
        assert_eq!(closest("cat", ["car", "cab"]), Some("cab"));
    }

    #[test]
    fn held_names_reads_each_new_key_list_once() {
        let records = [
            Record::new("1").field("a", 1).field("b", 2),
            Record::new("2").field("a", 3).field("b", 4),
            Record::new("3").field("c", ()).field("n", f64::NAN),
            Record::new("4").field("gone", 1).deleted(),
        ];
        let held: Vec<&str> = held_names(&records).into_iter().collect();
        assert_eq!(held, ["a", "b", "c", "n"]);
    }
}

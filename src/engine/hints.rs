//! Field-position hints: where each native field was last found in a
//! record of its system, so that reading a field is mostly one string
//! compare. Only the plan's context ([`Cx`](super::input::Cx)) reads them.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::mapping::FieldMap;
use crate::model::Record;

/// Per map system and field (`s * fields + f`): where the native field was
/// last found in a record of that system. Records of one system mostly list
/// their fields in one order, so a lookup is one string compare instead of
/// hashing the name. Kept by the engine from plan to plan (a plan of one
/// record would otherwise miss on every field); a hint is only a guess,
/// checked before it is used, so plans on several threads may share them.
pub(crate) struct Hints(Box<[Line]>);

/// Hints on a cache line of their own: every planning thread reads them, and
/// a write to something else on their line would make each read a miss. (A
/// hint stored on a miss does the same to the hints beside it; records of
/// one system listing their fields in one order make that rare.)
#[repr(align(64))]
struct Line([AtomicU32; LINE]);

const LINE: usize = 16;

impl Hints {
    /// First guesses for `map`: each field where a record listing the
    /// system's fields in the map's order has it.
    pub(crate) fn new(map: &FieldMap) -> Self {
        let mut at = Vec::with_capacity(map.systems().len() * map.fields().len());
        for s in 0..map.systems().len() {
            let mut i = 0u32;
            for f in map.fields() {
                at.push(i);
                if f.native_at(s).is_some() {
                    i += 1;
                }
            }
        }
        Hints::from_positions(&at)
    }

    fn from_positions(at: &[u32]) -> Self {
        Hints(
            at.chunks(LINE)
                .map(|chunk| {
                    Line(std::array::from_fn(|i| {
                        AtomicU32::new(chunk.get(i).copied().unwrap_or(0))
                    }))
                })
                .collect(),
        )
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&AtomicU32> {
        self.0.get(i / LINE)?.0.get(i % LINE)
    }

    /// The value of native field `nat` in record `r`, looked for first
    /// where hint `i` says; found elsewhere, the hint moves there. `None`
    /// where `r` has no such field (or there is no hint `i`).
    #[inline]
    pub(crate) fn find<'r>(
        &self,
        i: usize,
        nat: &str,
        r: &'r Record,
    ) -> Option<&'r serde_json::Value> {
        let hint = self.get(i)?;
        // Relaxed: a hint is only a guess, checked before it is used.
        if let Some((k, v)) = r.fields.get_index(hint.load(Ordering::Relaxed) as usize) {
            if k == nat {
                return Some(v);
            }
        }
        let (i, _, v) = r.fields.get_full(nat)?;
        hint.store(u32::try_from(i).unwrap_or(0), Ordering::Relaxed);
        Some(v)
    }
}

impl Clone for Hints {
    fn clone(&self) -> Self {
        let at: Vec<u32> = self
            .0
            .iter()
            .flat_map(|line| line.0.iter().map(|h| h.load(Ordering::Relaxed)))
            .collect();
        Hints::from_positions(&at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Baseline;
    use crate::engine::input::Cx;
    use crate::engine::testing::map;
    use crate::engine::PlanOptions;
    use crate::model::Snapshot;

    #[test]
    fn first_hints_are_the_positions_of_a_record_in_map_order() {
        let hints = Hints::new(&map());
        let at: Vec<u32> = (0..9)
            .filter_map(|i| hints.get(i))
            .map(|h| h.load(Ordering::Relaxed))
            .collect();
        // crm and erp have every field; shop has no phone, so its name
        // comes second.
        assert_eq!(at, [0, 1, 2, 0, 1, 1, 0, 1, 2]);
        let copy = hints.clone();
        assert!((0..9).all(|i| copy.get(i).map(|h| h.load(Ordering::Relaxed)) == Some(at[i])));
        assert!(copy.get(9 + LINE).is_none());
    }

    fn hint(hints: &Hints, i: usize) -> Option<u32> {
        hints.get(i).map(|h| h.load(Ordering::Relaxed))
    }

    #[test]
    fn the_engine_keeps_what_a_plan_learned_of_where_fields_are() {
        let engine = crate::SyncEngine::new(map());
        let reversed = Record::new("1")
            .field("name", "Ann")
            .field("phone", "555")
            .field("email", "a@x.io");
        assert_eq!(hint(&engine.hints, 0), Some(0));
        let snaps = [
            Snapshot::complete("crm", vec![reversed]),
            Snapshot::complete("shop", Vec::new()),
            Snapshot::complete("erp", Vec::new()),
        ];
        let plan = engine.plan(&Baseline::new(), &snaps).expect("plan");
        assert_eq!(plan.ops.len(), 2, "{plan}");
        // The next plan looks for crm's email third, its name first.
        assert_eq!(hint(&engine.hints, 0), Some(2));
        assert_eq!(hint(&engine.hints, 2), Some(0));
    }

    #[test]
    fn a_field_is_found_wherever_a_record_lists_it_and_the_hint_follows() {
        let map = map();
        let hints = Hints::new(&map);
        let baseline = Baseline::new();
        let cx = Cx::new(&map, &hints, &baseline, &[], &PlanOptions::default()).expect("cx");
        let in_order = Record::new("1")
            .field("email", "a@x.io")
            .field("phone", "555")
            .field("name", "Ann");
        let reversed = Record::new("2")
            .field("name", "Bo")
            .field("phone", "556")
            .field("email", "b@x.io");
        let value = |r: &Record, f: usize| cx.field_value(0, f, r).map(|(_, v)| v.clone());
        for _ in 0..2 {
            for (r, name) in [(&in_order, "Ann"), (&reversed, "Bo")] {
                assert_eq!(value(r, 2), Some(serde_json::json!(name)));
                assert!(value(r, 1).is_some());
            }
        }
        assert_eq!(value(&reversed, 0), Some(serde_json::json!("b@x.io")));
        // The last record read listed email third: the next guess is there.
        assert_eq!(hints.get(0).map(|h| h.load(Ordering::Relaxed)), Some(2));
        // A field the system does not have is not looked up.
        assert_eq!(cx.field_value(1, 1, &in_order), None);
    }
}

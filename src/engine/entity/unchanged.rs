//! The shortcut for a field nothing touched: the one place the field steps
//! are skipped. It decides only whether the steps run; what they would
//! decide is the same either way ([`PlanOptions::full_walk`] turns it off,
//! with the entity fast path, and `tests/rewrites.rs` compares the plans
//! over random maps and histories).
//!
//! [`PlanOptions::full_walk`]: crate::PlanOptions::full_walk

use super::*;

impl<'c, 'a> Planner<'c, 'a> {
    /// The common case, told without the field steps: every system
    /// taking part holds exactly its shadow (or was not seen and keeps
    /// nothing), and every target's shadow is the canonical value, passed
    /// through unchanged. [`field`](Self::field) would then find no
    /// candidate, adopt no shadow and write nothing. Anything else (a
    /// held field, a reference, a transform, a target seen for the first
    /// time) takes the steps.
    pub(super) fn unchanged(&self, f: usize, field: &FieldSpec) -> bool {
        if self.cx.full_walk || self.cx.parents[f].is_some() {
            return false;
        }
        let Some(canonical) = self.canonical(f) else {
            return false;
        };
        for s in 0..self.n() {
            let (source, target) = (field.source_at(s), field.target_at(s));
            if !self.part[s] || !(source || target) {
                continue;
            }
            let Some(shadow) = self.shadow(s, f) else {
                return false;
            };
            if target && !(field.passes_through(s) && shadow == canonical) {
                return false;
            }
            if let Some((cur, _)) = self.current(s, f) {
                if !shadow.eq_value(cur) {
                    return false;
                }
            }
        }
        true
    }
}

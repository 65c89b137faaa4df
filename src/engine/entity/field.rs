//! One field of one entity, in the order the engine takes it: the shortcut
//! for a field nothing touched ([`Planner::unchanged`]), then
//! [detect](Planner::detect), [decide](Planner::decide), and either
//! [hold](Planner::hold) or [propagate](Planner::propagate).

use super::*;

impl<'c, 'a> Planner<'c, 'a> {
    /// Plans field `f`: what changed, what wins, and where it is written.
    pub(super) fn field(&mut self, f: usize) {
        let field: &'a FieldSpec = &self.cx.map.fields()[f];
        let held_before = self.held_before(f);
        if held_before.is_none() && self.unchanged(f, field) {
            return;
        }
        // The candidates' list is the entity's buffer, given back emptied.
        let mut cands = std::mem::take(&mut self.cands);
        let decided = if self.detect(f, field, &mut cands) {
            match self.decide(f, field, &cands, held_before) {
                Verdict::Hold(conflict) => {
                    self.hold(f, &cands, conflict, held_before);
                    None
                }
                Verdict::Keep => Some(None),
                Verdict::Take(value, reason) => Some(Some((value, reason))),
            }
        } else {
            None
        };
        cands.clear();
        self.cands = cands;
        // Nothing decided: a value could not be read, or the field is held.
        let Some(decided) = decided else {
            return;
        };
        // The field's value changes in this plan (not only a candidate in
        // another form of the same value).
        let changed = decided
            .as_ref()
            .is_some_and(|(v, _)| !codec::same(field.normalization(), Some(v), self.canonical(f)));
        self.settle(f, held_before, decided.as_ref().map(|(v, _)| v.as_ref()));
        self.adopt_shadows(f, field, changed);
        self.propagate(f, field, decided, changed);
    }
}

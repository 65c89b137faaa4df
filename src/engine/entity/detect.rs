//! **Detect**: which sources changed a field since the last sync.
//!
//! A source changed the field when what it holds now differs from its
//! shadow (what it held at the last commit) under the field's
//! normalization, unless it is the system's own form of what recsync wrote
//! to it ([`confirm`] found it so). Each such value is read into canonical
//! form and becomes a [candidate](super::Cand); two kinds of value are no
//! change even so: the echo of recsync's own create whose commit was lost,
//! and a value no value-map row reads that is what the map writes for the
//! value the others hold.
//!
//! [`confirm`]: super::confirm

use super::*;

impl<'c, 'a> Planner<'c, 'a> {
    /// The candidates for field `f`, into `cands` (empty on the way in);
    /// `false` when nothing is decided for it in this plan: a value could
    /// not be read (the record is skipped, or the field waits for a parent
    /// not linked yet), or a value no row of the field's value map reads
    /// was reported.
    pub(super) fn detect(
        &mut self,
        f: usize,
        field: &'a FieldSpec,
        cands: &mut Vec<Cand<'a>>,
    ) -> bool {
        let norm = field.normalization();
        let mut waiting = false;
        let mut unmapped: Vec<(usize, &'a Value, MappingError)> = Vec::new();
        for s in 0..self.n() {
            if !self.part[s] || !field.source_at(s) {
                continue;
            }
            let Some((cur, at)) = self.current(s, f) else {
                continue;
            };
            if codec::same(norm, Some(cur), self.shadow(s, f))
                || self.adopted(s, f)
                || self.holds_written_form(f, s, field, cur)
            {
                continue;
            }
            match self.read(f, s, cur) {
                Ok(canonical) => cands.push(Cand {
                    s,
                    native: cur,
                    canonical,
                    at: at.get(),
                }),
                // The unmapped policy says: this system's value is not read.
                Err(Fail::Skip) => {}
                Err(Fail::Mapping(e @ MappingError::Unmapped { .. })) => unmapped.push((s, cur, e)),
                Err(fail) => {
                    let is_wait = matches!(fail, Fail::Waiting(_));
                    self.fail(s, f, fail);
                    if self.skipped {
                        return false;
                    }
                    if is_wait {
                        waiting = true;
                        let observed = Observed {
                            value: cur.clone(),
                            changed_at: at.get(),
                        };
                        self.pending.push((s, f, observed));
                    }
                }
            }
        }
        self.drop_echoes(norm, f, cands);
        if !unmapped.is_empty() && !self.unmapped_are_echoes(f, field, cands, unmapped) {
            return false;
        }
        if waiting {
            // Never decide without a source whose value could not be read.
            self.held_fields[f] = true;
            self.waiting[f] = true;
            return false;
        }
        true
    }

    /// Source `s` holds what the map writes to it for the canonical value,
    /// through a value map or transform: no change, though its shadow may
    /// say otherwise (a write whose answer was lost). Read back, such a
    /// value can be another canonical value (a one-way row's target value
    /// that a two-way row reads: `"Platinum"` written as `"gold"`, read as
    /// `"Gold"`), which would overwrite the value it was written for.
    fn holds_written_form(&self, f: usize, s: usize, field: &'a FieldSpec, cur: &Value) -> bool {
        // A record linked before, or the one a lost create made: a record a
        // person linked this time brings values of its own.
        let ours = (self.links[s].has_shadow && !self.links[s].new) || self.echo[s];
        // A system recsync never writes (read-only, or a source only of the
        // field) holds nothing of recsync's: its value is a person's.
        if !ours || field.passes_through(s) || !field.target_at(s) || self.is_read_only(s) {
            return false;
        }
        let Some(canonical) = self.canonical(f).map(ValueRef::to_value) else {
            return false;
        };
        let norm = field.normalization();
        let written = matches!(field.write(s, &canonical), Mapped::Value(n) if norm.equal(Some(cur), Some(&n)));
        // Only where it reads back as another value: one that reads back as
        // the entity's value is a candidate like any other (a person may
        // have typed it over a write that failed, after another change).
        written
            && !matches!(field.read(s, cur), Mapped::Value(c) if norm.equal(Some(&c), Some(&canonical)))
    }

    /// The record a lost create made holds what recsync wrote: its value is
    /// an echo, not a change, where another source or the canonical value
    /// has it too.
    fn drop_echoes(&self, norm: &Normalization, f: usize, cands: &mut Vec<Cand<'a>>) {
        if !cands.iter().any(|c| self.echo[c.s]) {
            return;
        }
        let canon = self.canonical(f).map(ValueRef::to_value);
        let keep: Vec<bool> = cands
            .iter()
            .map(|c| {
                let echoed = cands
                    .iter()
                    .any(|o| !self.echo[o.s] && norm.equal(Some(&o.canonical), Some(&c.canonical)))
                    || canon
                        .as_ref()
                        .is_some_and(|v| norm.equal(Some(v), Some(&c.canonical)));
                !(self.echo[c.s] && echoed)
            })
            .collect();
        let mut i = 0;
        cands.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }

    /// A value no value map row reads (a one-way row's target value) is no
    /// change when it is what the map writes to that system for the value
    /// the others hold: on first sight, or an echo. The first that is not
    /// is a mapping failure on read ([`fail`](Planner::fail)): it is
    /// reported and the record is skipped (`false`).
    fn unmapped_are_echoes(
        &mut self,
        f: usize,
        field: &'a FieldSpec,
        cands: &[Cand<'a>],
        unmapped: Vec<(usize, &'a Value, MappingError)>,
    ) -> bool {
        let norm = field.normalization();
        let agreed: Option<Value> = match cands.split_first() {
            None => self.canonical(f).map(ValueRef::to_value),
            Some((first, rest)) => rest
                .iter()
                .all(|c| norm.equal(Some(&c.canonical), Some(&first.canonical)))
                .then(|| first.canonical.clone().into_owned()),
        };
        for (s, cur, e) in unmapped {
            let echo = agreed.as_ref().is_some_and(|v| {
                matches!(field.write(s, v), Mapped::Value(n) if norm.equal(Some(cur), Some(&n)))
            });
            if !echo {
                self.fail(s, f, Fail::Mapping(e));
                return false;
            }
        }
        true
    }
}

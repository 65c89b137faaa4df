//! **Propagate**: where a field's value is written.
//!
//! Sources adopt what they were seen holding as their shadows; then every
//! linked target whose value differs from the decided (or canonical) value,
//! once converted to its native form, gets a write, unless a guard on the
//! write says otherwise ([`may_write`](Planner::may_write)) or no record of
//! the target's complete snapshot holds the field (schema drift,
//! `engine/drift.rs`: the write waits).

use super::*;

impl<'c, 'a> Planner<'c, 'a> {
    /// Sources' shadows adopt what they were seen holding; a target seen
    /// for the first time starts its shadow at what it holds, and so does
    /// every target of an enforced field, which is judged by what it holds
    /// (so a plan that does not see it judges it by what it last held, not
    /// by an older value), and every target when the field `changed` in
    /// this plan (a one-way target's own edit, left alone until then, is
    /// what a failed write leaves it holding, so the write is planned
    /// again).
    pub(super) fn adopt_shadows(&mut self, f: usize, field: &'a FieldSpec, changed: bool) {
        for s in 0..self.n() {
            if !self.part[s] {
                continue;
            }
            let shadow = self.shadow(s, f);
            let tracked = field.target_at(s) && (shadow.is_none() || field.enforced() || changed);
            if !(field.source_at(s) || tracked) || self.adopted(s, f) {
                continue;
            }
            if let Some((cur, _)) = self.current(s, f) {
                if !shadow.is_some_and(|sh| sh.eq_value(cur)) {
                    let change = (s as u32, f as u32, Some(cur.clone()));
                    self.res.change.shadows.push(change);
                    if self.rewritten(s, f).is_some() {
                        // A value of its own now, not a form of a write.
                        self.res.change.rewritten.push((s as u32, f as u32, None));
                    }
                }
            }
        }
    }

    /// Writes the decided value (or, with none decided, the canonical
    /// value) of field `f` to each linked target that does not hold it, and
    /// keeps the decision for the creates. `changed`: the decided value is
    /// not the canonical value.
    pub(super) fn propagate(
        &mut self,
        f: usize,
        field: &'a FieldSpec,
        decided: Option<(Cow<'a, Value>, Reason)>,
        changed: bool,
    ) {
        let norm = field.normalization();
        let canonical = self.canonical(f);
        // An enforced field's source that holds nothing (no canonical value)
        // is enforced too: a target's own value is cleared, as a value from
        // the source would overwrite it.
        let source = (0..self.n()).find(|s| self.part[*s] && field.source_at(*s));
        let enforce_empty =
            field.enforced() && decided.is_none() && canonical.is_none() && source.is_some();
        if decided.is_none() && canonical.is_none() && !enforce_empty {
            return;
        }
        let reason = decided.as_ref().map(|(_, r)| r.clone());
        let nothing = Value::Null;
        // Nothing decided: the canonical value is decoded only for a target
        // that may be behind it.
        let mut decoded: Option<Value> = None;
        for t in 0..self.n() {
            if !self.part[t] || !field.target_at(t) {
                continue;
            }
            let Some(nat) = field.shared_native_at(t) else {
                continue;
            };
            let expected = self.expected(f, t, field, changed);
            // Written as it is: neither a reference, nor a value map or
            // transform for this target.
            let through = self.cx.parents[f].is_none() && field.passes_through(t);
            let value: &Value = match (&decided, canonical) {
                (Some((v, _)), _) => v.as_ref(),
                (None, Some(c)) => {
                    // The common case: the target holds the canonical value
                    // and the field passes through unchanged.
                    if through && holds(norm, expected, c) {
                        continue;
                    }
                    decoded.get_or_insert_with(|| c.to_value())
                }
                (None, None) if enforce_empty && !field.source_at(t) => &nothing,
                (None, None) => continue,
            };
            if self.cx.field_absent(t, f) {
                // Schema drift: no record of the target holds the field.
                // The write waits, recorded nowhere; the entity is planned
                // again until the field appears or the map changes.
                self.unsettled |= !known_same(norm, expected, value);
                continue;
            }
            let native: Cow<'_, Value> = if through {
                Cow::Borrowed(value)
            } else {
                match self.write(f, t, value) {
                    Ok(v) => Cow::Owned(v),
                    Err(fail) => {
                        self.fail(t, f, fail);
                        if self.skipped {
                            return;
                        }
                        continue;
                    }
                }
            };
            // A one-way target this plan did not read, when the source
            // changed the field: what it holds is not known, and "nothing
            // known" must not read as "holds nothing" (an emptied source
            // would then be written nowhere, while a later plan, judging
            // the target by its shadow, would write it).
            let unknown = changed
                && !field.source_at(t)
                && !field.enforced()
                && self.seen[t].is_none()
                && expected.is_none();
            if (!unknown && up_to_date(field, t, through, expected, &native, value))
                || self.holds_its_form(f, t, field, expected, &native)
                || !self.may_write(f, t, field, source, expected, &native)
            {
                continue;
            }
            self.writes[t].push((
                f,
                FieldWrite {
                    field: field.shared_name().clone(),
                    native: nat.clone(),
                    value: native.into_owned(),
                    reason: reason.clone().unwrap_or(Reason::Behind),
                    sensitive: field.is_sensitive(),
                },
                expected,
            ));
        }
        // For the creates (a skipped entity returned above: it writes
        // nothing).
        self.decided[f] = decided;
    }

    /// What target `t` will hold if not written: a source (or an enforced
    /// target) keeps what it holds now; a one-way target is judged by what
    /// it was last written, unless the source changed the field in this
    /// plan (`changed`): then by what it holds now (unknown where this plan
    /// did not see it), since its own edit since may differ from the
    /// change even where its last write did not.
    fn expected(&self, f: usize, t: usize, field: &FieldSpec, changed: bool) -> Option<Known<'a>> {
        let observed_now = self.current(t, f).map(|(v, _)| Known::Val(v));
        let shadow = self.shadow(t, f).map(Known::Ref);
        if changed && !field.source_at(t) && !field.enforced() {
            // Not seen in this plan, what it holds is not known: the
            // change is written (at worst once more than needed).
            observed_now
        } else if field.source_at(t) || field.enforced() {
            observed_now.or(shadow)
        } else {
            shadow.or(observed_now)
        }
    }

    /// Whether target `t` holds its own form of `native`: recsync wrote
    /// `native` (under the field's normalization) to it last, the system
    /// stored another form, and the target still holds that form. Writing
    /// it again would only be rewritten again.
    fn holds_its_form(
        &self,
        f: usize,
        t: usize,
        field: &FieldSpec,
        expected: Option<Known<'a>>,
        native: &Value,
    ) -> bool {
        let norm = field.normalization();
        let Some(sent) = self.rewritten(t, f) else {
            return false;
        };
        if !norm.equal(Some(sent), Some(native)) {
            return false;
        }
        let stored = if self.adopted(t, f) {
            self.current(t, f).map(|(v, _)| Known::Val(v))
        } else {
            self.shadow(t, f).map(Known::Ref)
        };
        match (expected, stored) {
            (Some(e), Some(s)) => s.same(norm, &e.to_value()),
            (e, s) => e.is_none_or(|e| e.is_empty()) && s.is_none_or(|s| s.is_empty()),
        }
    }

    /// The guards on one write of `native` to target `t`: an enforced
    /// empty value does not overwrite a target's value where the
    /// empty-value rule is on (held, with the reason); an invalid value is
    /// reported and left out; a write that empties a field counts for the
    /// guard on emptied fields, and waits while that guard refuses.
    fn may_write(
        &mut self,
        f: usize,
        t: usize,
        field: &'a FieldSpec,
        source: Option<usize>,
        expected: Option<Known<'a>>,
        native: &Value,
    ) -> bool {
        let empties = is_empty_value(native) && expected.is_some_and(|e| !e.is_empty());
        if empties && field.enforced() && !field.source_at(t) && field.no_overwrite_on_empty() {
            if let Some(s) = source {
                self.res.held.push(Hold {
                    entity: self.input.id.clone(),
                    field: Some(field.name().to_owned()),
                    kind: HoldKind::EmptyValue {
                        system: self.systems[s].clone(),
                    },
                });
                // Held, not settled: every plan looks again (and says so).
                self.unsettled = true;
            }
            return false;
        }
        if !self.valid(f, t, native) {
            return false;
        }
        // A read-only target is not written: its write is no emptied field.
        if empties && !self.is_read_only(t) {
            self.res.emptied.push(Withheld {
                kind: WithheldKind::EmptiedField,
                entity: self.input.id.clone(),
                system: self.systems[t].clone(),
                record_id: self.record_id(t),
                field: Some(field.name().to_owned()),
            });
            if self.withhold.emptied {
                self.unsettled = true;
                return false;
            }
        }
        true
    }
}

/// Whether what a target holds (`expected`) is the canonical value `c`.
fn holds(norm: &Normalization, expected: Option<Known<'_>>, c: ValueRef<'_>) -> bool {
    match expected {
        Some(Known::Val(v)) => codec::same(norm, Some(v), Some(c)),
        Some(Known::Ref(r)) => r == c,
        None => false,
    }
}

/// Whether target `t` already holds `value`, written as `native`: the same
/// value under the field's normalization; a value its value map skips (left
/// alone); or another rendering of the value through its transform (a
/// system that re-renders the dates it is written, "1/1/2026" for
/// "01/01/2026", is up to date: writing it again would loop).
fn up_to_date(
    field: &FieldSpec,
    t: usize,
    through: bool,
    expected: Option<Known<'_>>,
    native: &Value,
    value: &Value,
) -> bool {
    let norm = field.normalization();
    if known_same(norm, expected, native) {
        return true;
    }
    let Some(e) = expected.filter(|_| !through).map(Known::to_value) else {
        return false;
    };
    match field.read(t, &e) {
        Mapped::Skip => true,
        Mapped::Value(c) => field.has_transform(t) && norm.equal(Some(&c), Some(value)),
        Mapped::Failed(_) => false,
    }
}

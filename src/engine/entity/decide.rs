//! **Decide**: the canonical value of a field, and why; or why it is held.
//!
//! No candidate: the canonical value stays. One candidate, or several that
//! agree under the field's normalization: it wins. Several that disagree:
//! a reviewer's earlier decision on the same conflict wins, or else the
//! field's policy ([`policy::decide`]). Before any of that, the field's
//! empty-value rule ([`policy::empties_hold`]) sets aside candidates that
//! emptied a field with a value. A held field is recorded by
//! [`hold`](Planner::hold) and written nowhere.

use super::*;

/// What [`decide`](Planner::decide) found for a field.
pub(super) enum Verdict<'a> {
    /// No candidate is left: the canonical value stays.
    Keep,
    /// This value wins, for this reason (borrowed from the record where the
    /// field passes through).
    Take(Cow<'a, Value>, Reason),
    /// The field is held: for review (the conflict), or by the empty-value
    /// rule (`None`).
    Hold(Option<Conflict>),
}

impl<'c, 'a> Planner<'c, 'a> {
    /// Decides field `f` among `cands`, the sources that changed it.
    pub(super) fn decide(
        &mut self,
        f: usize,
        field: &'a FieldSpec,
        cands: &[Cand<'a>],
        held_before: Option<&'a Held>,
    ) -> Verdict<'a> {
        // The list of candidates left is the entity's buffer, given back.
        let mut live = std::mem::take(&mut self.live);
        live.clear();
        let verdict = if self.not_emptied(f, field, cands, &mut live) {
            self.decide_among(f, field, cands, &live, held_before)
        } else {
            Verdict::Hold(None)
        };
        self.live = live;
        verdict
    }

    /// Decides field `f` among the candidates `live` (indices in `cands`)
    /// that the empty-value rule left.
    fn decide_among(
        &mut self,
        f: usize,
        field: &'a FieldSpec,
        cands: &[Cand<'a>],
        live: &[usize],
        held_before: Option<&'a Held>,
    ) -> Verdict<'a> {
        let Some(first) = live.first().map(|i| &cands[*i].canonical) else {
            return Verdict::Keep;
        };
        // Values that differ from the first (under the normalization) make
        // a conflict.
        let norm = field.normalization();
        if live[1..]
            .iter()
            .any(|i| !norm.equal(Some(first), Some(&cands[*i].canonical)))
        {
            return self.conflict(f, field, cands, live, held_before);
        }
        let reason = if live.len() == 1 {
            Reason::Changed {
                system: self.systems[cands[live[0]].s].clone(),
            }
        } else {
            Reason::Agreed {
                systems: live
                    .iter()
                    .map(|i| self.systems[cands[*i].s].clone())
                    .collect(),
            }
        };
        Verdict::Take(cands[live[0]].canonical.clone(), reason)
    }

    /// The field's empty-value rule: where it is on and the canonical value
    /// is not empty, a candidate that emptied the field is set aside, with
    /// a hold that says so. Fills `live` (empty) with the indices of the
    /// candidates left; `false` when the rule holds the field
    /// ([`policy::empties_hold`]).
    fn not_emptied(
        &mut self,
        f: usize,
        field: &'a FieldSpec,
        cands: &[Cand<'a>],
        live: &mut Vec<usize>,
    ) -> bool {
        live.extend(0..cands.len());
        if !field.no_overwrite_on_empty() || self.canonical(f).is_none_or(|c| c.is_empty()) {
            return true;
        }
        let authority = match field.policy() {
            ConflictPolicy::Authority { system, .. } => self.cx.map.system_index(system.as_str()),
            _ => None,
        };
        let mut authority_emptied = false;
        let mut emptied_by = Vec::new();
        live.retain(|i| {
            let c = &cands[*i];
            if is_empty_value(&c.canonical) {
                emptied_by.push(c.s);
                authority_emptied |= Some(c.s) == authority;
                false
            } else {
                true
            }
        });
        let facts = policy::EmptiedFacts {
            emptied: emptied_by.len(),
            left: live.len(),
            authority_emptied,
        };
        for s in emptied_by {
            self.res.held.push(Hold {
                entity: self.input.id.clone(),
                field: Some(field.name().to_owned()),
                kind: HoldKind::EmptyValue {
                    system: self.systems[s].clone(),
                },
            });
        }
        !policy::empties_hold(&facts)
    }

    /// Several candidates disagree: the reviewer's decision on this very
    /// conflict (same entity, field, baseline value and candidates), or the
    /// field's policy. A resolution kept for a conflict that has since
    /// changed is reported stale.
    fn conflict(
        &mut self,
        f: usize,
        field: &'a FieldSpec,
        cands: &[Cand<'a>],
        live: &[usize],
        held_before: Option<&'a Held>,
    ) -> Verdict<'a> {
        let baseline = self.canonical(f).map(ValueRef::to_value);
        let id = self.conflict_id(field.name(), baseline.as_ref(), cands, live);
        let reviewed = held_before
            .filter(|hb| hb.conflict_id() == Some(id))
            .and_then(|hb| hb.resolution.clone());
        let verdict = match reviewed {
            Some(v) => Verdict::Take(Cow::Owned(v), Reason::Reviewed { conflict: id }),
            None => self.by_policy(field, cands, live, id, baseline),
        };
        if let Some(hb) = held_before {
            if hb.resolution.is_some() && hb.conflict_id() != Some(id) {
                let s = cands[live[0]].s;
                self.issue(s, Some(f), IssueKind::StaleResolution);
            }
        }
        verdict
    }

    /// A conflict's stable id: the entity, the field, the baseline value
    /// and each candidate's system and value.
    fn conflict_id(
        &self,
        name: &str,
        baseline: Option<&Value>,
        cands: &[Cand<'a>],
        live: &[usize],
    ) -> ConflictId {
        let mut h = StableHasher::new("conflict");
        h.str(self.input.id.as_str());
        h.str(name);
        h.opt_value(baseline);
        for i in live {
            h.str(self.systems[cands[*i].s].as_str());
            h.value(&cands[*i].canonical);
        }
        ConflictId(h.finish())
    }

    /// The field's conflict policy decides ([`policy::decide`]); a conflict
    /// it holds is added to the plan.
    fn by_policy(
        &mut self,
        field: &'a FieldSpec,
        cands: &[Cand<'a>],
        live: &[usize],
        id: ConflictId,
        baseline: Option<Value>,
    ) -> Verdict<'a> {
        let sensitive = field.is_sensitive();
        let candidates: Vec<Candidate<'_>> = live
            .iter()
            .map(|i| Candidate {
                system: &self.systems[cands[*i].s],
                value: &cands[*i].canonical,
                changed_at: cands[*i].at,
                sensitive,
            })
            .collect();
        let input = ConflictInput {
            entity: &self.input.id,
            field: field.name(),
            baseline: baseline.as_ref(),
            candidates: &candidates,
            sensitive,
        };
        match policy::decide(field.policy(), &input, self.cx.map.skew_tolerance()) {
            Decision::Take(i, rule) => {
                let c = &cands[live[i]];
                let candidates = live
                    .iter()
                    .map(|i| (self.systems[cands[*i].s].clone(), cands[*i].at))
                    .collect();
                let reason = Reason::ConflictWon {
                    winner: self.systems[c.s].clone(),
                    rule,
                    candidates,
                };
                Verdict::Take(c.canonical.clone(), reason)
            }
            Decision::Value(v, resolver) => {
                Verdict::Take(Cow::Owned(v), Reason::Resolver { resolver })
            }
            Decision::Hold(held_by) => {
                let conflict = Conflict {
                    id,
                    entity: self.input.id.clone(),
                    field: field.name().to_owned(),
                    baseline,
                    candidates: live
                        .iter()
                        .map(|i| ConflictCandidate {
                            system: self.systems[cands[*i].s].clone(),
                            value: cands[*i].canonical.clone().into_owned(),
                            changed_at: cands[*i].at,
                            sensitive,
                            held_as: None,
                        })
                        .collect(),
                    held_by,
                    sensitive,
                };
                self.res.conflicts.push(conflict.clone());
                Verdict::Hold(Some(conflict))
            }
        }
    }

    /// **Hold**: field `f` is written nowhere (creates included); the
    /// baseline keeps what each candidate holds, the conflict, and a
    /// reviewer's decision on it.
    pub(super) fn hold(
        &mut self,
        f: usize,
        cands: &[Cand<'a>],
        conflict: Option<Conflict>,
        held_before: Option<&'a Held>,
    ) {
        self.held_fields[f] = true;
        let observed = cands
            .iter()
            .map(|c| {
                let seen = Observed {
                    value: c.native.clone(),
                    changed_at: c.at,
                };
                (self.systems[c.s].clone(), seen)
            })
            .collect();
        let cid = conflict.as_ref().map(|c| c.id);
        let resolution = held_before
            .filter(|hb| hb.conflict_id() == cid)
            .and_then(|hb| hb.resolution.clone());
        let held = Held {
            conflict,
            observed,
            resolution,
        };
        if held_before != Some(&held) {
            self.res.change.held.push((f as u32, Some(held)));
        }
    }

    /// A field decided (or left as it is) is no longer held; a value
    /// decided becomes the canonical value.
    pub(super) fn settle(
        &mut self,
        f: usize,
        held_before: Option<&'a Held>,
        decided: Option<&Value>,
    ) {
        if held_before.is_some() {
            self.res.change.held.push((f as u32, None));
        }
        if let Some(v) = decided {
            if !self.canonical(f).is_some_and(|c| c.eq_value(v)) {
                self.res.change.canonical.push((f as u32, Some(v.clone())));
            }
        }
    }
}

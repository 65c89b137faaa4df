//! **Deletes**: what a record deleted in one system does to the others,
//! and the review a held delete waits in.

use super::*;
use crate::policy::DeleteAction;

impl<'c, 'a> Planner<'c, 'a> {
    /// **Deletes**: records deleted (or gone from a complete read) in some
    /// systems, decided by the delete rules ([`policy::delete_action`]) and
    /// carried out; then, where the map mirrors, records only in targets
    /// ([`mirror`](Self::mirror)). Returns whether the entity takes part in
    /// field sync.
    pub(super) fn deletes(&mut self) -> bool {
        self.decide_deletes() && self.mirror()
    }

    /// The delete rules, carried out. Returns whether the entity takes part
    /// in field sync.
    fn decide_deletes(&mut self) -> bool {
        let review = self.extra.and_then(|x| x.delete.as_ref());
        let deleting = self.detect_deletes();
        if deleting.is_empty() {
            if review.is_some() && !self.restoring(review) {
                self.res.change.delete_review = Some(Update::Clear);
            }
            return self.live_links() > 0 || self.res.change.new;
        }
        let edited = self.edited_against(review, &deleting);
        match self.decide_delete(review, &deleting, &edited) {
            DeleteAction::Unlink => self.unlink_deleted(review, &deleting),
            DeleteAction::Hold(by) => {
                self.hold_delete(&deleting, &edited, by, None);
                true
            }
            DeleteAction::Restore => {
                self.restore_deleted(&deleting, &edited);
                true
            }
            DeleteAction::Wait => {
                self.wait_deleted(review, &deleting);
                true
            }
            DeleteAction::Propagate => {
                self.propagate_delete(&deleting, &edited);
                false
            }
        }
    }

    /// The systems whose linked record is deleted (a tombstone, or absent
    /// from a complete read), not counting deletes awaiting confirmation.
    /// Updates links on the way: a frozen record's delete detaches it; a
    /// deleted record seen again (restored from a trash bin) is active
    /// again.
    fn detect_deletes(&mut self) -> Vec<usize> {
        let mut deleting: Vec<usize> = Vec::new();
        for s in 0..self.n() {
            if self.awaiting_delete.contains(&s) {
                continue;
            }
            match self.links[s].status {
                Some(LinkStatus::Active) if self.gone(s) => deleting.push(s),
                Some(LinkStatus::Frozen) if self.gone(s) => {
                    // A frozen record's delete is not propagated.
                    self.set_status(s, Some(LinkStatus::Detached));
                }
                Some(LinkStatus::Deleted) if self.seen[s].is_some() => {
                    // The record is back (restored from a trash bin).
                    self.set_status(s, Some(LinkStatus::Active));
                }
                Some(LinkStatus::Deleted) => deleting.push(s),
                _ => {}
            }
        }
        deleting
    }

    /// The systems that changed the record since the last sync, which a
    /// delete would lose. A delete held against an edit stays held until
    /// reviewed: the commit that held it advanced the edit's shadow, so the
    /// edit no longer reads as one, but it is still what the delete would
    /// lose.
    fn edited_against(&self, review: Option<&DeleteReview>, deleting: &[usize]) -> Vec<usize> {
        let mut edited = self.edited_systems(deleting);
        if let Some(r) = review
            .filter(|r| r.resolution.is_none() && r.held_by == DeleteHeldBy::DeleteAgainstEdit)
        {
            for name in &r.edited_in {
                if let Some(s) = self.cx.map.system_index(name.as_str()) {
                    if !edited.contains(&s) && !deleting.contains(&s) {
                        edited.push(s);
                    }
                }
            }
            edited.sort_unstable();
        }
        edited
    }

    /// The facts of this delete, decided by [`policy::delete_action`]. A
    /// delete withheld by a guard is counted for it.
    fn decide_delete(
        &mut self,
        review: Option<&DeleteReview>,
        deleting: &[usize],
        edited: &[usize],
    ) -> DeleteAction {
        let rules = self.cx.map.records();
        let reviewed = review
            .and_then(|r| r.resolution.as_ref())
            .filter(|_| !self.redecide)
            .and_then(|choice| match choice {
                ReviewChoice::Delete => Some(DeleteAction::Propagate),
                ReviewChoice::Restore => Some(DeleteAction::Restore),
                ReviewChoice::Unlink => Some(DeleteAction::Unlink),
                _ => None,
            });
        // A target's record is restored from the source's: where the
        // entity has no record in a source system (it was only ever in
        // targets), there is nothing to restore it from, and a record made
        // of nothing would be blank.
        let source_holds = (0..self.n()).any(|s| {
            rules.source[s]
                && !deleting.contains(&s)
                && matches!(
                    self.links[s].status,
                    Some(LinkStatus::Active | LinkStatus::Frozen)
                )
        });
        let enforced = match rules.flow {
            Direction::OneWay { enforce, .. } => Some(enforce),
            _ => None,
        };
        let restorable = enforced == Some(true) && source_holds;
        // Not enforced, a target's copy waits for the source to change the
        // record, as a one-way field's target edit does.
        let source_changed = (enforced == Some(false) && source_holds)
            .then(|| edited.iter().any(|s| rules.source[*s]));
        let deleted: Vec<Option<DeletePolicy>> = deleting
            .iter()
            .map(|d| rules.source[*d].then(|| rules.delete_policy[*d]))
            .collect();
        let action = policy::delete_action(&policy::DeleteFacts {
            deleted: &deleted,
            restorable,
            source_changed,
            edited: !edited.is_empty(),
            delete_vs_edit: rules.delete_vs_edit,
            reviewed,
            guard: self.withhold.deletes,
        });
        if action == DeleteAction::Hold(DeleteHeldBy::Guard) {
            self.count_deletes(deleting);
        }
        action
    }

    /// The deleted records are unlinked, a review of them ends, and the
    /// entity leaves the baseline when no record is left linked. Returns
    /// whether the entity takes part in field sync.
    fn unlink_deleted(&mut self, review: Option<&DeleteReview>, deleting: &[usize]) -> bool {
        for d in deleting {
            self.set_status(*d, Some(LinkStatus::Detached));
        }
        if review.is_some() {
            self.res.change.delete_review = Some(Update::Clear);
        }
        if self.live_links() == 0 {
            self.res.change.remove = true;
            return false;
        }
        true
    }

    /// The deleted records (targets of a one-way record direction that is
    /// not enforced) stay linked as deleted, so that a later change of the
    /// source's record restores them; nothing else is done or reported.
    /// A review kept from before ends.
    fn wait_deleted(&mut self, review: Option<&DeleteReview>, deleting: &[usize]) {
        for d in deleting {
            self.set_status(*d, Some(LinkStatus::Deleted));
        }
        if review.is_some() {
            self.res.change.delete_review = Some(Update::Clear);
        }
    }

    /// The deleted records are created again from the others, under a
    /// review that says so until the creates are done.
    fn restore_deleted(&mut self, deleting: &[usize], edited: &[usize]) {
        for d in deleting {
            self.set_status(*d, None);
            self.links[*d].has_shadow = false;
            self.create[*d] = true;
        }
        self.hold_delete(
            deleting,
            edited,
            DeleteHeldBy::Policy,
            Some(ReviewChoice::Restore),
        );
        self.res
            .held
            .retain(|h| !matches!(h.kind, HoldKind::Deleted { .. }));
    }

    /// The delete is made in every other linked target (frozen records and
    /// non-targets are detached); the entity leaves the baseline when
    /// nothing is left to delete or confirm.
    fn propagate_delete(&mut self, deleting: &[usize], edited: &[usize]) {
        let rules = self.cx.map.records();
        self.count_deletes(deleting);
        for d in deleting {
            self.set_status(*d, Some(LinkStatus::Deleted));
        }
        let mut targets = Vec::new();
        for t in 0..self.n() {
            match self.links[t].status {
                Some(LinkStatus::Active) if rules.target[t] && !self.exit_withheld[t] => {
                    targets.push(t)
                }
                Some(LinkStatus::Active | LinkStatus::Frozen) => {
                    self.set_status(t, Some(LinkStatus::Detached))
                }
                _ => {}
            }
        }
        for t in targets {
            let op = self.delete_op(t);
            self.push_op(op, t);
        }
        // A read-only target's record stays: the entity with it, so that
        // the next plan lists its delete again.
        if self.res.ops.is_empty()
            && self.res.read_only.is_empty()
            && self.awaiting_delete.is_empty()
        {
            self.res.change.remove = true;
        } else {
            self.keep_review(
                deleting,
                edited,
                DeleteHeldBy::Policy,
                Some(ReviewChoice::Delete),
            );
        }
    }

    /// The op that deletes the entity's record in target `t`.
    pub(super) fn delete_op(&self, t: usize) -> WriteOp {
        let record_id = self.record_id(t);
        let mut h = StableHasher::new("delete");
        h.str(self.systems[t].as_str());
        h.str(record_id.as_deref().unwrap_or(""));
        WriteOp {
            id: OpId(h.finish()),
            kind: OpKind::Delete,
            object: self.cx.map.shared_object().clone(),
            system: self.systems[t].clone(),
            record_id,
            entity: self.input.id.clone(),
            expected_version: self.expected_version(t),
            correlation: None,
            fields: Vec::new(),
        }
    }

    /// Whether a kept review is restoring records whose creates are not
    /// done yet (its systems still lack a link).
    pub(super) fn restoring(&self, review: Option<&DeleteReview>) -> bool {
        let Some(r) = review else { return false };
        r.resolution == Some(ReviewChoice::Restore)
            && r.deleted_in.iter().any(|(sys, _)| {
                self.cx
                    .map
                    .system_index(sys.as_str())
                    .is_some_and(|s| self.links[s].status.is_none())
            })
    }

    pub(super) fn count_deletes(&mut self, deleting: &[usize]) {
        let rules = self.cx.map.records();
        for t in 0..self.n() {
            if deleting.contains(&t)
                || self.links[t].status != Some(LinkStatus::Active)
                || self.exit_withheld[t]
                || !rules.target[t]
                || self.is_read_only(t)
            {
                continue;
            }
            self.res.deletes.push(Withheld {
                kind: WithheldKind::Delete,
                entity: self.input.id.clone(),
                system: self.systems[t].clone(),
                record_id: self.record_id(t),
                field: None,
            });
        }
    }

    pub(super) fn live_links(&self) -> usize {
        self.links
            .iter()
            .filter(|l| matches!(l.status, Some(LinkStatus::Active | LinkStatus::Frozen)))
            .count()
    }

    pub(super) fn review_for(
        &self,
        deleting: &[usize],
        edited: &[usize],
        by: DeleteHeldBy,
        resolution: Option<ReviewChoice>,
    ) -> DeleteReview {
        let mut h = StableHasher::new("delete review");
        h.str(self.input.id.as_str());
        let deleted_in: Vec<(SystemId, String)> = deleting
            .iter()
            .map(|d| {
                (
                    self.systems[*d].clone(),
                    self.links[*d].id.unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for (s, r) in &deleted_in {
            h.str(s.as_str());
            h.str(r);
        }
        DeleteReview {
            id: ConflictId(h.finish()),
            entity: self.input.id.clone(),
            deleted_in,
            edited_in: edited.iter().map(|s| self.systems[*s].clone()).collect(),
            resolution,
            held_by: by,
        }
    }

    pub(super) fn keep_review(
        &mut self,
        deleting: &[usize],
        edited: &[usize],
        by: DeleteHeldBy,
        resolution: Option<ReviewChoice>,
    ) {
        let old = self.extra.and_then(|x| x.delete.as_ref());
        let mut review = self.review_for(deleting, edited, by, resolution);
        if let Some(old) = old.filter(|o| o.id == review.id) {
            // Keep what a reviewer decided and why it was held first.
            if review.resolution.is_none() {
                review.resolution = old.resolution.clone();
            }
            review.edited_in = old.edited_in.clone();
            if old.held_by != DeleteHeldBy::Guard || by == DeleteHeldBy::Guard {
                review.held_by = old.held_by;
            }
        }
        if old != Some(&review) {
            self.res.change.delete_review = Some(Update::Set(review));
        }
    }

    pub(super) fn hold_delete(
        &mut self,
        deleting: &[usize],
        edited: &[usize],
        by: DeleteHeldBy,
        resolution: Option<ReviewChoice>,
    ) {
        for d in deleting {
            if self.links[*d].status != Some(LinkStatus::Deleted) && resolution.is_none() {
                self.set_status(*d, Some(LinkStatus::Deleted));
            }
        }
        self.keep_review(deleting, edited, by, resolution);
        let review = self.review_for(deleting, edited, by, None);
        let edited_in: Vec<SystemId> = edited.iter().map(|s| self.systems[*s].clone()).collect();
        for d in deleting {
            self.res.held.push(Hold {
                entity: self.input.id.clone(),
                field: None,
                kind: HoldKind::Deleted {
                    system: self.systems[*d].clone(),
                    record_id: self.links[*d].id.unwrap_or_default().to_owned(),
                    review: review.id,
                    by,
                    edited_in: edited_in.clone(),
                },
            });
        }
    }

    /// Active, not deleting systems whose record changed a field they are a
    /// source for since the last sync.
    pub(super) fn edited_systems(&self, deleting: &[usize]) -> Vec<usize> {
        let fields = self.cx.map.fields();
        (0..self.n())
            .filter(|s| {
                !deleting.contains(s)
                    && self.links[*s].status == Some(LinkStatus::Active)
                    && self.seen[*s].is_some()
                    && (0..fields.len()).any(|f| {
                        fields[f].source_at(*s)
                            && self.current(*s, f).is_some_and(|(cur, _)| {
                                !codec::same(
                                    fields[f].normalization(),
                                    Some(cur),
                                    self.shadow(*s, f),
                                )
                            })
                    })
            })
            .collect()
    }
}

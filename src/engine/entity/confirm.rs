//! **Confirm**: writes a system reported applied are believed once a read
//! shows them made ([`Unconfirmed`](crate::baseline::Unconfirmed)); a read
//! that shows one not made has it planned again, never taken for an edit.

use super::*;

impl<'c, 'a> Planner<'c, 'a> {
    /// Writes the systems reported applied that no read has confirmed:
    /// each is confirmed by this plan's read of its system, found not made
    /// (and planned again), or still unseen. See
    /// [`Unconfirmed`](crate::baseline::Unconfirmed).
    pub(super) fn confirm(&mut self) {
        let Some(extra) = self.extra else { return };
        for (b, a) in &extra.unconfirmed {
            let Some(t) = (0..self.n()).find(|t| self.cx.sys_slot[*t] == Some(*b as usize)) else {
                continue;
            };
            // A system not read tells nothing (a record deleted there is
            // still awaited, not deleting).
            let Some(read) = self.cx.coverage(t) else {
                if a.kind == OpKind::Delete && self.links[t].status == Some(LinkStatus::Deleted) {
                    self.awaiting_delete.push(t);
                }
                continue;
            };
            let l = &self.links[t];
            if l.new || !matches!(l.status, Some(LinkStatus::Active | LinkStatus::Deleted)) {
                // Relinked, unlinked or frozen since: nothing to confirm.
                self.forget(t);
                continue;
            }
            match a.kind {
                OpKind::Delete => self.confirm_delete(t, a, read),
                _ => self.confirm_write(t, a),
            }
        }
    }

    pub(super) fn confirm_delete(&mut self, t: usize, a: &Awaiting, read: Coverage) {
        if self.links[t].status != Some(LinkStatus::Deleted) {
            self.forget(t);
        } else if let Some(r) = self.seen[t] {
            // Still there: the delete was not made. The record takes part
            // again, and the delete is decided again (an edit made since
            // is not lost to the delete decided before it).
            self.set_status(t, Some(LinkStatus::Active));
            self.redecide = self.cx.map.fields().iter().enumerate().any(|(f, field)| {
                field.source_at(t)
                    && self.cx.field_value(t, f, r).is_some_and(|(_, cur)| {
                        !codec::same(field.normalization(), Some(cur), self.shadow(t, f))
                    })
            });
            self.not_made(t, a);
        } else if self.gone(t) || read == Coverage::Complete {
            // Gone: confirmed. The link goes.
            self.set_status(t, None);
            self.links[t].has_shadow = false;
            self.forget(t);
        } else {
            // Not in a partial read: absence there says nothing (and many
            // change feeds carry no tombstones), so it is not counted.
            self.awaiting_delete.push(t);
        }
    }

    pub(super) fn confirm_write(&mut self, t: usize, a: &'a Awaiting) {
        if self.links[t].status != Some(LinkStatus::Active) {
            // Deleted since (a delete held or propagated): nothing to
            // confirm.
            self.forget(t);
            return;
        }
        let Some(r) = self.seen[t] else {
            if a.kind == OpKind::Create && self.input.absent.contains(&t) {
                // Created, never seen, and absent from a complete snapshot:
                // no evidence of a delete. The create is planned again
                // (same correlation key: a record that shows up late links).
                self.not_made(t, a);
                self.not_gone.push(t);
                self.set_status(t, None);
                self.links[t].id = None;
                self.links[t].has_shadow = false;
                self.create[t] = true;
            } else if self.gone(t) {
                // A tombstone, or an updated record gone: a delete.
                self.forget(t);
            } else {
                // Read, but not this record: unseen one more time.
                let attempts = a.attempts.saturating_add(1);
                self.res
                    .change
                    .unconfirmed
                    .push((t as u32, Update::Set(attempts)));
                self.report_unconfirmed(t, a.kind, attempts);
            }
            return;
        };
        // The version the write reported, where it moved: confirmed, and
        // what the record holds is what the write left (in the system's own
        // form, where it stores another).
        let reported = a.version.as_deref();
        let as_left = reported.is_some()
            && r.version.as_deref() == reported
            && reported != a.version_before.as_deref();
        let fields = self.cx.map.fields();
        let mut not_made: Vec<(usize, Option<ValueRef<'a>>)> = Vec::new();
        for (bf, before) in a.before() {
            let Some(f) = (0..fields.len()).find(|f| self.cx.field_slot[*f] == Some(bf as usize))
            else {
                continue;
            };
            let norm = fields[f].normalization();
            let cur = self.cx.field_value(t, f, r).map(|(_, v)| v);
            let written = self.shadow(t, f);
            // Holding what was written: made. Holding what it held before:
            // not made, even at the version the write reported (a
            // connector that lies can name the version a later save
            // gives), unless this write was found so before and made
            // again, to the same end: that is the system's own form of it
            // (or a field it does not let us change), taken as such and
            // reported. Holding something else at the version the write
            // reported: made, in the system's own form. Anything else: an
            // edit made since.
            if codec::same(norm, cur, written) {
                self.adopt(t, f, cur, written);
            } else if codec::same(norm, cur, before) {
                if as_left && a.redone {
                    self.adopt(t, f, cur, written);
                    let native = fields[f].native_at(t).unwrap_or_default().to_owned();
                    self.issue(t, Some(f), IssueKind::KeptOwnValue { native });
                } else {
                    not_made.push((f, before));
                }
            } else if as_left {
                self.adopt(t, f, cur, written);
            }
        }
        if not_made.is_empty() {
            self.forget(t);
            return;
        }
        self.not_made(t, a);
        for (f, before) in not_made {
            self.overrides.push((t, f, before));
            self.res
                .change
                .shadows
                .push((t as u32, f as u32, before.map(ValueRef::to_value)));
            if self.rewritten(t, f).is_some() {
                // What the system made of an earlier write is no longer
                // known.
                self.res.change.rewritten.push((t as u32, f as u32, None));
            }
        }
    }

    /// Target `t`'s field `f` holds `cur` where `written` was written and
    /// the write was made: where `cur` is another form of it, that form is
    /// the system's shadow, and what was written is kept beside it, so
    /// neither is taken for a change ([`detect`](Planner::detect),
    /// [`propagate`](Planner::propagate)).
    fn adopt(&mut self, t: usize, f: usize, cur: Option<&'a Value>, written: Option<ValueRef<'a>>) {
        let same = match (cur, written) {
            (Some(c), Some(w)) => w.eq_value(c),
            (c, w) => c.is_none_or(is_empty_value) && w.is_none_or(|w| w.is_empty()),
        };
        if same {
            return;
        }
        self.adopted.push((t, f));
        let (t32, f32) = (t as u32, f as u32);
        self.res.change.shadows.push((t32, f32, cur.cloned()));
        let sent = written.map_or(Value::Null, ValueRef::to_value);
        self.res.change.rewritten.push((t32, f32, Some(sent)));
    }

    pub(super) fn forget(&mut self, t: usize) {
        self.res.change.unconfirmed.push((t as u32, Update::Clear));
    }

    /// A write found not made: forgotten, planned again, and counted.
    pub(super) fn not_made(&mut self, t: usize, a: &Awaiting) {
        let attempts = a.attempts.saturating_add(1);
        self.forget(t);
        self.res.change.retried.push((t as u32, attempts));
        self.report_unconfirmed(t, a.kind, attempts);
    }

    pub(super) fn report_unconfirmed(&mut self, t: usize, op: OpKind, attempts: u32) {
        if attempts >= crate::engine::UNCONFIRMED_PLANS {
            self.issue(t, None, IssueKind::UnconfirmedWrite { op, attempts });
        }
    }
}

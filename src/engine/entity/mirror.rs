//! **Mirror**: under a one-way record direction that mirrors
//! ([`FieldMapBuilder::mirror`](crate::mapping::FieldMapBuilder::mirror)),
//! a target's record that exists only there is deleted there. The facts
//! are gathered here; [`policy::mirror_action`] decides.

use super::*;
use crate::policy::{DeleteAction, MirrorFacts};

impl<'c, 'a> Planner<'c, 'a> {
    /// Deletes the entity's live target records where no source of records
    /// holds its record, under the delete guard (the deletes count toward
    /// its budget; withheld, the entity is looked at again). Runs after the
    /// delete rules; returns whether the entity still takes part in field
    /// sync.
    pub(super) fn mirror(&mut self) -> bool {
        let rules = self.cx.map.records();
        if !rules.mirror {
            return true;
        }
        let n = self.n();
        let sources = || (0..n).filter(|s| rules.source[*s]);
        let status = |s: usize| self.links[s].status;
        let source_record = sources().any(|s| {
            matches!(
                status(s),
                Some(LinkStatus::Active | LinkStatus::Frozen | LinkStatus::Deleted)
            )
        });
        let source_unlinked = sources().any(|s| status(s) == Some(LinkStatus::Detached));
        let sources_read =
            sources().all(|s| self.cx.coverage(s) == Some(crate::model::Coverage::Complete));
        let targets: Vec<usize> = (0..n)
            .filter(|t| {
                rules.target[*t]
                    && status(*t) == Some(LinkStatus::Active)
                    && !self.exit_withheld[*t]
            })
            .collect();
        let action = policy::mirror_action(&MirrorFacts {
            mirror: true,
            source_record,
            source_unlinked,
            sources_read,
            target_records: !targets.is_empty(),
            guard: self.withhold.deletes,
        });
        match action {
            None => true,
            Some(DeleteAction::Wait) => {
                // Matched no source record read: looked at again until a
                // plan reads every source whole (the fast path would skip
                // it for good).
                self.unsettled = true;
                true
            }
            Some(DeleteAction::Propagate) => {
                self.count_deletes(&[]);
                for t in targets {
                    let op = self.delete_op(t);
                    self.push_op(op, t);
                }
                false
            }
            Some(_) => {
                // Withheld by the delete guard: counted for it, and looked
                // at again until approved.
                self.count_deletes(&[]);
                self.unsettled = true;
                true
            }
        }
    }
}

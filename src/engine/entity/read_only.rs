//! **Read-only systems**: no write is planned to a system the map declares
//! read-only ([`FieldMapBuilder::read_only`](crate::mapping::FieldMapBuilder::read_only)).
//!
//! Every op the steps build comes through [`push_op`](Planner::push_op).
//! One to a read-only system becomes a [`ReadOnlyWrite`] in the plan
//! instead, and nothing of it reaches commit: the system's shadows keep
//! what it was last seen holding, its links stay as they were, and the
//! entity is unsettled, so the next plan looks at it again (the fast path
//! would otherwise skip it) and finds the same need, until the system no
//! longer needs it. Guards do not count such writes: they are not made.

use super::*;

impl<'c, 'a> Planner<'c, 'a> {
    /// Whether system `s` is read-only.
    pub(super) fn is_read_only(&self, s: usize) -> bool {
        self.cx.map.records().read_only_at(s).is_some()
    }

    /// Plans `op` to system `t`, or, where `t` is read-only, lists it as a
    /// write not planned. Returns whether the op was planned.
    pub(super) fn push_op(&mut self, op: WriteOp, t: usize) -> bool {
        if !self.is_read_only(t) {
            self.res.ops.push(op);
            return true;
        }
        self.res.read_only.push(ReadOnlyWrite {
            system: op.system,
            entity: op.entity,
            kind: op.kind,
            record_id: op.record_id,
            fields: op.fields,
        });
        self.unsettled = true;
        false
    }
}

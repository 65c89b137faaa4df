//! The table gathering fills: one row per entity a plan touches, one cell
//! per map system, saying what that system's snapshot holds of the entity.

use std::collections::HashMap;

use crate::model::Record;

/// What one system's snapshot holds of one entity.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Empty,
    Seen(&'a Record),
    New(&'a Record),
    /// The id appears more than once in the snapshot, not every copy the
    /// same: not read, not deleted, and its entity waits.
    Dup,
    /// The id appears more than once, every copy the same (a record, or a
    /// tombstone): read once, and reported.
    Twice(&'a Record),
    /// A tombstone.
    Gone,
    /// Absent from a complete snapshot.
    Absent,
    /// A tombstone of a record not linked yet whose correlation key names
    /// the entity: a create whose commit was lost, deleted since. Linked by
    /// this plan, and deleted.
    NewGone(&'a Record),
}

/// Rows of cells, one row per entity touched, one cell per map system.
pub(crate) struct Rows<'a> {
    n: usize,
    cells: Vec<Cell<'a>>,
    slots: Vec<u32>,
    dense: Vec<u32>,
    sparse: HashMap<u32, u32>,
    use_dense: bool,
}

impl<'a> Rows<'a> {
    /// Rows for `records` (the most records of one snapshot: at least
    /// that many rows are made) over a baseline of `slot_count` slots.
    pub(crate) fn new(n: usize, slot_count: usize, records: usize) -> Self {
        let use_dense = records.saturating_mul(8) >= slot_count;
        Rows {
            n,
            cells: Vec::with_capacity(records.saturating_mul(n)),
            slots: Vec::with_capacity(records),
            dense: if use_dense {
                vec![u32::MAX; slot_count]
            } else {
                Vec::new()
            },
            sparse: if use_dense {
                HashMap::new()
            } else {
                HashMap::with_capacity(records)
            },
            use_dense,
        }
    }

    /// The row of the entity at baseline slot `slot`, if it has one.
    #[inline]
    pub(crate) fn find(&self, slot: u32) -> Option<usize> {
        if self.use_dense {
            self.dense
                .get(slot as usize)
                .filter(|r| **r != u32::MAX)
                .map(|r| *r as usize)
        } else {
            self.sparse.get(&slot).map(|r| *r as usize)
        }
    }

    /// The row of the entity at baseline slot `slot`, made (every cell
    /// empty) if it has none.
    #[inline]
    pub(crate) fn row(&mut self, slot: u32) -> usize {
        if let Some(r) = self.find(slot) {
            return r;
        }
        let r = self.slots.len();
        self.slots.push(slot);
        self.cells.extend(std::iter::repeat_n(Cell::Empty, self.n));
        if self.use_dense {
            if let Some(d) = self.dense.get_mut(slot as usize) {
                *d = r as u32;
            }
        } else {
            self.sparse.insert(slot, r as u32);
        }
        r
    }

    /// The cell of system `s` in row `row`.
    #[inline]
    pub(crate) fn cell(&mut self, row: usize, s: usize) -> &mut Cell<'a> {
        &mut self.cells[row * self.n + s]
    }

    /// What the cell of system `s` in row `row` holds.
    #[inline]
    pub(crate) fn at(&self, row: usize, s: usize) -> Cell<'a> {
        self.cells[row * self.n + s]
    }

    /// The cells of row `row`, one per map system.
    #[inline]
    pub(crate) fn cells(&self, row: usize) -> &[Cell<'a>] {
        &self.cells[row * self.n..(row + 1) * self.n]
    }

    /// The baseline slot of row `row`'s entity.
    #[inline]
    pub(crate) fn slot(&self, row: usize) -> u32 {
        self.slots[row]
    }

    /// How many rows there are.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.slots.len()
    }
}

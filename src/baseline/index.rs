//! An open-addressing hash index from a 64-bit hash to entity slots.
//!
//! Keys are not stored: an entry is 32 bits of the key's hash and the slot
//! it points to, 8 bytes in all, and the caller checks each candidate slot
//! against its own data (the entity's id, link id or key value). That keeps
//! the baseline's three indexes (by entity id, by native id per system, by
//! match key) from holding a second copy of every string.
//!
//! Linear probing, at most three quarters full, with backward-shift deletion
//! (no tombstones). It is a multimap: the same hash may point to several
//! slots.

const EMPTY: u64 = 0;

#[derive(Debug, Clone, Default)]
pub(crate) struct RawIndex {
    /// `(hash as u32) << 32 | (slot + 1)`; 0 is empty.
    entries: Vec<u64>,
    len: usize,
}

#[inline]
fn tag(hash: u64) -> u64 {
    hash & 0xffff_ffff
}

#[inline]
fn pack(hash: u64, slot: u32) -> u64 {
    (tag(hash) << 32) | (u64::from(slot) + 1)
}

#[inline]
fn slot_of(entry: u64) -> u32 {
    ((entry & 0xffff_ffff) - 1) as u32
}

impl RawIndex {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    /// Adds `slot` under `hash` (slots must be below `u32::MAX`).
    pub(crate) fn insert(&mut self, hash: u64, slot: u32) {
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        let mask = self.mask();
        let mut i = (tag(hash) as usize) & mask;
        while self.entries[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.entries[i] = pack(hash, slot);
        self.len += 1;
    }

    fn grow(&mut self) {
        let cap = (self.entries.len() * 2).max(16);
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; cap]);
        let mask = cap - 1;
        for e in old.into_iter().filter(|e| *e != EMPTY) {
            let mut i = ((e >> 32) as usize) & mask;
            while self.entries[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.entries[i] = e;
        }
    }

    /// Every slot stored under a hash whose low 32 bits equal `hash`'s.
    pub(crate) fn candidates(&self, hash: u64) -> Candidates<'_> {
        let pos = if self.entries.is_empty() {
            0
        } else {
            (tag(hash) as usize) & self.mask()
        };
        Candidates {
            index: self,
            tag: tag(hash),
            pos,
            left: self.entries.len(),
        }
    }

    /// Removes the entry for `slot` under `hash`; false if there was none.
    pub(crate) fn remove(&mut self, hash: u64, slot: u32) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let mask = self.mask();
        let want = pack(hash, slot);
        let mut i = (tag(hash) as usize) & mask;
        loop {
            match self.entries[i] {
                EMPTY => return false,
                e if e == want => break,
                _ => i = (i + 1) & mask,
            }
        }
        // Backward shift: pull later entries of the run into the hole when
        // their home is not between the hole and where they sit.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let e = self.entries[j];
            if e == EMPTY {
                break;
            }
            let home = ((e >> 32) as usize) & mask;
            let dist_j = j.wrapping_sub(home) & mask;
            let dist_hole = j.wrapping_sub(hole) & mask;
            if dist_j >= dist_hole {
                self.entries[hole] = e;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// Bytes held by the table.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u64>()
    }
}

pub(crate) struct Candidates<'a> {
    index: &'a RawIndex,
    tag: u64,
    pos: usize,
    left: usize,
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let mask = self.index.mask();
        while self.left > 0 {
            let e = self.index.entries[self.pos];
            if e == EMPTY {
                self.left = 0;
                return None;
            }
            self.pos = (self.pos + 1) & mask;
            self.left -= 1;
            if e >> 32 == self.tag {
                return Some(slot_of(e));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_a_multimap() {
        let mut idx = RawIndex::default();
        let mut model: BTreeMap<(u64, u32), ()> = BTreeMap::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct hashes, so runs collide and wrap.
            let h = (x % 97) | ((x % 5) << 40);
            let slot = (x >> 20) as u32 % 300;
            if step % 3 == 0 && !model.is_empty() {
                let key = *model.keys().nth((x as usize) % model.len()).unwrap();
                assert!(idx.remove(key.0, key.1));
                model.remove(&key);
            } else if let std::collections::btree_map::Entry::Vacant(v) = model.entry((h, slot)) {
                idx.insert(h, slot);
                v.insert(());
            }
            assert_eq!(idx.len(), model.len());
        }
        for (h, s) in model.keys() {
            assert!(idx.candidates(*h).any(|c| c == *s), "{h} {s}");
        }
        assert!(!idx.remove(12_345, 7));
    }

    #[test]
    fn empty_index_finds_nothing() {
        let idx = RawIndex::default();
        assert_eq!(idx.candidates(5).count(), 0);
    }
}

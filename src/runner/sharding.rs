//! A sharded runner keeps its shard's records of what it read and leaves
//! the rest to the other shards' runners (see [`shard`](crate::shard)).

use crate::baseline::{Baseline, EntityId};
use crate::model::{Record, SystemId};
use crate::store::{Claims, StoreError};

use super::{Fetched, SyncRunner};

impl SyncRunner {
    /// Drops from `reads` the records of other shards; returns how many it
    /// dropped per system, in the map's order.
    ///
    /// Records `baseline` links are kept without asking anything. Of the
    /// others, those routed here (or correlated to an entity here) are
    /// asked about in one call to the store, which says which of them
    /// another shard's baseline links or holds the entity of.
    pub(super) async fn keep_shard(
        &self,
        reads: &mut [Fetched],
        baseline: &Baseline,
    ) -> Result<Vec<usize>, StoreError> {
        if self.shard.count() == 1 {
            return Ok(vec![0; reads.len()]);
        }
        let mut records = Vec::new();
        let mut entities = Vec::new();
        for (read, system) in reads.iter().zip(&self.systems) {
            for r in &read.snapshot.records {
                if let Fate::Ask = self.fate(baseline, system, r) {
                    records.push((system.clone(), r.id.clone()));
                    if let Some(c) = &r.correlation {
                        entities.push(EntityId::new(c.as_str()));
                    }
                }
            }
        }
        let claims = if records.is_empty() {
            Claims::new()
        } else {
            let others = self.shard.others(&self.object);
            self.store.claimed(&others, &records, &entities).await?
        };
        let mut left = Vec::with_capacity(reads.len());
        for (read, system) in reads.iter_mut().zip(&self.systems) {
            let before = read.snapshot.records.len();
            read.snapshot
                .records
                .retain(|r| match self.fate(baseline, system, r) {
                    Fate::Keep => true,
                    Fate::Leave => false,
                    Fate::Ask => {
                        !claims.has_record(system.as_str(), &r.id)
                            && !r
                                .correlation
                                .as_deref()
                                .is_some_and(|c| claims.has_entity(&EntityId::new(c)))
                    }
                });
            left.push(before - read.snapshot.records.len());
        }
        Ok(left)
    }

    /// What becomes of record `r` of `system` before the store is asked.
    fn fate(&self, baseline: &Baseline, system: &SystemId, r: &Record) -> Fate {
        let here = |c: &str| baseline.entity(&EntityId::new(c)).is_some();
        if baseline.find_linked(system.as_str(), &r.id).is_some()
            || r.correlation.as_deref().is_some_and(here)
        {
            Fate::Keep
        } else if self
            .shard
            .routes_here(self.engine.map(), system.as_str(), r)
        {
            Fate::Ask
        } else {
            Fate::Leave
        }
    }
}

/// A record's fate in a sharded runner.
enum Fate {
    /// Its shard's: linked here, or made for an entity here.
    Keep,
    /// Routed here, unless another shard links it or holds its entity.
    Ask,
    /// Routed to another shard.
    Leave,
}

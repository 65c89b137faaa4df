//! A sharded runner keeps its shard's records of what it read and leaves
//! the rest to the other shards' runners (see [`shard`](crate::shard)).

use std::collections::HashMap;

use crate::baseline::{Baseline, EntityId};
use crate::model::{Record, SystemId};
use crate::store::{Claims, StoreError};

use super::{Fetched, SyncRunner};

/// The records read, by system (its place in the map) and id.
type Index<'r> = HashMap<(usize, &'r str), &'r Record>;

impl SyncRunner {
    /// Drops from `reads` the records of other shards; returns how many it
    /// dropped per system, in the map's order.
    ///
    /// Records `baseline` links are kept without asking anything. Of the
    /// others, those routed here (or made for an entity here) are asked
    /// about in one call to the store, which says which of them another
    /// shard's baseline links or holds the entity of.
    pub(super) async fn keep_shard(
        &self,
        reads: &mut [Fetched],
        baseline: &Baseline,
    ) -> Result<Vec<usize>, StoreError> {
        if self.shard.count() == 1 {
            return Ok(vec![0; reads.len()]);
        }
        let fates = self.fates(reads, baseline);
        let mut records = Vec::new();
        let mut entities = Vec::new();
        for fate in fates.iter().flatten() {
            if let Fate::Ask {
                record,
                entity,
                origin,
            } = fate
            {
                records.push(record.clone());
                records.extend(origin.iter().cloned());
                entities.extend(entity.iter().cloned());
            }
        }
        let claims = if records.is_empty() {
            Claims::new()
        } else {
            let others = self.shard.others(&self.object);
            self.store.claimed(&others, &records, &entities).await?
        };
        let mut left = Vec::with_capacity(reads.len());
        for (read, fates) in reads.iter_mut().zip(fates) {
            let before = read.snapshot.records.len();
            let mut fates = fates.into_iter();
            read.snapshot
                .records
                .retain(|_| fates.next().is_some_and(|f| f.keeps(&claims)));
            left.push(before - read.snapshot.records.len());
        }
        Ok(left)
    }

    /// The fate of each record read, per system, before the store is
    /// asked.
    fn fates(&self, reads: &[Fetched], baseline: &Baseline) -> Vec<Vec<Fate>> {
        let mut index: Option<Index<'_>> = None;
        let mut fates = Vec::with_capacity(reads.len());
        for (read, system) in reads.iter().zip(&self.systems) {
            let mut of_system = Vec::with_capacity(read.snapshot.records.len());
            for r in &read.snapshot.records {
                let fate = match self.own_fate(baseline, system, r) {
                    Fate::Keep => Fate::Keep,
                    fate => match r.correlation.as_deref() {
                        // Made by a create whose entity no baseline here
                        // holds (its commit was lost, or another shard
                        // has it): it goes where the record the entity
                        // was made from goes, if that was read.
                        Some(c) => {
                            let index = index.get_or_insert_with(|| index_of(reads));
                            match self.origin(c, index) {
                                Some((s, origin)) if (s, &origin.id) != (system, &r.id) => {
                                    match self.own_fate(baseline, s, origin) {
                                        Fate::Keep => Fate::Keep,
                                        Fate::Leave => Fate::Leave,
                                        Fate::Ask { record, .. } => Fate::Ask {
                                            record: (system.clone(), r.id.clone()),
                                            entity: Some(EntityId::new(c)),
                                            origin: Some(record),
                                        },
                                    }
                                }
                                _ => fate,
                            }
                        }
                        None => fate,
                    },
                };
                of_system.push(fate);
            }
            fates.push(of_system);
        }
        fates
    }

    /// What becomes of record `r` of `system` by itself: kept if linked
    /// here or made for an entity here, asked about if routed here.
    fn own_fate(&self, baseline: &Baseline, system: &SystemId, r: &Record) -> Fate {
        let here = |c: &str| baseline.entity(&EntityId::new(c)).is_some();
        if baseline.find_linked(system.as_str(), &r.id).is_some()
            || r.correlation.as_deref().is_some_and(here)
        {
            Fate::Keep
        } else if self
            .shard
            .routes_here(self.engine.map(), system.as_str(), r)
        {
            Fate::Ask {
                record: (system.clone(), r.id.clone()),
                entity: r.correlation.as_deref().map(EntityId::new),
                origin: None,
            }
        } else {
            Fate::Leave
        }
    }

    /// The record read that the entity id `c` was made from: an entity's
    /// id is `{system}:{record id}` of its first record, with `~{n}` added
    /// when that was taken.
    fn origin<'r>(&self, c: &str, index: &Index<'r>) -> Option<(&SystemId, &'r Record)> {
        self.systems.iter().enumerate().find_map(|(s, system)| {
            let id = c.strip_prefix(system.as_str())?.strip_prefix(':')?;
            let plain = id.rsplit_once('~').map_or(id, |(base, _)| base);
            [id, plain]
                .into_iter()
                .find_map(|id| index.get(&(s, id)).map(|r| (system, *r)))
        })
    }
}

fn index_of(reads: &[Fetched]) -> Index<'_> {
    let mut index = HashMap::new();
    for (s, read) in reads.iter().enumerate() {
        for r in &read.snapshot.records {
            index.insert((s, r.id.as_str()), r);
        }
    }
    index
}

/// A record's fate in a sharded runner.
enum Fate {
    /// Its shard's: linked here, or made for an entity here.
    Keep,
    /// Routed here, unless another shard links `record` (or `origin`, the
    /// record its entity was made from) or holds `entity`.
    Ask {
        record: (SystemId, String),
        entity: Option<EntityId>,
        origin: Option<(SystemId, String)>,
    },
    /// Routed to another shard.
    Leave,
}

impl Fate {
    fn keeps(&self, claims: &Claims) -> bool {
        match self {
            Fate::Keep => true,
            Fate::Leave => false,
            Fate::Ask {
                record,
                entity,
                origin,
            } => {
                let linked = |(s, id): &(SystemId, String)| claims.has_record(s.as_str(), id);
                !linked(record)
                    && !origin.as_ref().is_some_and(linked)
                    && !entity.as_ref().is_some_and(|e| claims.has_entity(e))
            }
        }
    }
}

//! A sharded runner keeps its shard's records of what it read and leaves
//! the rest to the other shards' runners (see [`shard`](crate::shard)).

use crate::baseline::{Baseline, EntityId};
use crate::model::{Record, SystemId};
use crate::store::{Owner, RouteQuery, Routes, StoreError};

use super::{Fetched, SyncRunner};

impl SyncRunner {
    /// Drops from `reads` the records of other shards; returns how many it
    /// dropped per system, in the map's order.
    ///
    /// What `baseline` settles is kept without asking anything: a record it
    /// links or holds back as ambiguous, a record made for one of its
    /// entities. The store is asked about the rest in one call, which
    /// reserves for this shard the records routed to it that no shard owns
    /// yet.
    pub(super) async fn keep_shard(
        &self,
        reads: &mut [Fetched],
        baseline: &Baseline,
    ) -> Result<Vec<usize>, StoreError> {
        if self.shard.count() == 1 {
            return Ok(vec![0; reads.len()]);
        }
        let fates: Vec<Vec<Fate>> = reads
            .iter()
            .zip(&self.systems)
            .map(|(read, system)| {
                let records = &read.snapshot.records;
                records
                    .iter()
                    .map(|r| self.fate(baseline, system, r))
                    .collect()
            })
            .collect();
        let (mut propose, mut ask, mut entities) = (Vec::new(), Vec::new(), Vec::new());
        for fate in fates.iter().flatten() {
            if let Fate::Ask(q) = fate {
                if q.here && q.entity.is_none() {
                    propose.push(q.record.clone());
                } else {
                    ask.push(q.record.clone());
                }
                ask.extend(q.origin.iter().cloned());
                entities.extend(q.entity.iter().cloned());
            }
        }
        let routes = if propose.is_empty() && ask.is_empty() {
            Routes::new()
        } else {
            let others = self.shard.others(&self.object);
            let family = self.shard.family(&self.object);
            let query = RouteQuery {
                family: &family,
                mine: &self.state,
                others: &others,
                propose: &propose,
                ask: &ask,
                entities: &entities,
            };
            self.store.route(&query).await?
        };
        let mut left = Vec::with_capacity(reads.len());
        for (read, fates) in reads.iter_mut().zip(fates) {
            let before = read.snapshot.records.len();
            let mut fates = fates.into_iter();
            read.snapshot
                .records
                .retain(|_| fates.next().is_some_and(|f| f.keeps(&routes)));
            left.push(before - read.snapshot.records.len());
        }
        Ok(left)
    }

    /// What becomes of record `r` of `system` before the store is asked.
    fn fate(&self, baseline: &Baseline, system: &SystemId, r: &Record) -> Fate {
        let mine = |c: &str| baseline.entity(&EntityId::new(c)).is_some();
        if baseline.find_linked(system.as_str(), &r.id).is_some()
            || baseline
                .header()
                .ambiguous
                .get(system.as_str(), &r.id)
                .is_some()
            || r.correlation.as_deref().is_some_and(mine)
        {
            return Fate::Keep;
        }
        let entity = r.correlation.as_deref().map(EntityId::new);
        let origin = entity.as_ref().and_then(|e| self.origin(e));
        Fate::Ask(Query {
            record: (system.clone(), r.id.clone()),
            here: self
                .shard
                .routes_here(self.engine.map(), system.as_str(), r),
            origin: origin.filter(|o| o.0 != *system || o.1 != r.id),
            entity,
        })
    }

    /// The record an entity id was made from: an entity's id is
    /// `{system}:{record id}` of its first record (with `~{n}` added when
    /// that was taken).
    fn origin(&self, entity: &EntityId) -> Option<(SystemId, String)> {
        let c = entity.as_str();
        self.systems.iter().find_map(|system| {
            let id = c.strip_prefix(system.as_str())?.strip_prefix(':')?;
            let id = match id.rsplit_once('~') {
                Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
                _ => id,
            };
            Some((system.clone(), id.to_owned()))
        })
    }
}

/// A record's fate in a sharded runner.
enum Fate {
    /// Its shard's: linked here or held back here as ambiguous, or made
    /// for an entity here.
    Keep,
    /// Settled by the store's answer.
    Ask(Query),
}

/// What a sharded runner asks the store about one record.
struct Query {
    record: (SystemId, String),
    /// Whether its values route it to this shard.
    here: bool,
    /// The record its correlation key's entity was made from, if another.
    origin: Option<(SystemId, String)>,
    /// The entity its correlation key names.
    entity: Option<EntityId>,
}

impl Fate {
    fn keeps(&self, routes: &Routes) -> bool {
        let q = match self {
            Fate::Keep => return true,
            Fate::Ask(q) => q,
        };
        let (system, id) = &q.record;
        match routes.owner(system, id) {
            // Another shard links it, or took it first.
            Some(Owner::Other) => return false,
            Some(Owner::Mine) if q.entity.is_none() => return true,
            _ => {}
        }
        // Made by a create: it goes with its entity, or with the record
        // that entity was made from (its create's commit may be lost).
        if q.entity.as_ref().is_some_and(|e| routes.held_elsewhere(e)) {
            return false;
        }
        match q.origin.as_ref().and_then(|(s, id)| routes.owner(s, id)) {
            Some(Owner::Other) => false,
            Some(Owner::Mine) => true,
            // Neither it nor its origin is anyone's yet: its own route.
            None => q.here,
        }
    }
}

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
        dry: bool,
    ) -> Result<Kept, StoreError> {
        let mut kept = Kept {
            left: vec![0; reads.len()],
            reserved: Vec::new(),
        };
        if self.shard.count() == 1 {
            return Ok(kept);
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
        let (mut propose, mut ask, mut release, mut entities) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for fate in fates.iter().flatten() {
            match fate {
                Fate::Keep => {}
                Fate::Leave(record) => release.push(record.clone()),
                Fate::Ask(q) => {
                    if q.entity.is_none() {
                        propose.push(q.record.clone());
                    } else {
                        ask.push(q.record.clone());
                    }
                    ask.extend(q.origins.iter().cloned());
                    entities.extend(q.entity.iter().cloned());
                }
            }
        }
        let routes = if propose.is_empty() && ask.is_empty() && release.is_empty() {
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
                release: if dry { &[] } else { &release },
                reserve: !dry,
                entities: &entities,
            };
            self.store.route(&query).await?
        };
        kept.reserved = propose
            .into_iter()
            .filter(|(s, id)| routes.owner(s, id) == Some(Owner::Mine))
            .collect();
        for ((read, fates), left) in reads.iter_mut().zip(fates).zip(&mut kept.left) {
            let before = read.snapshot.records.len();
            let mut fates = fates.into_iter();
            read.snapshot
                .records
                .retain(|_| fates.next().is_some_and(|f| f.keeps(&routes)));
            *left = before - read.snapshot.records.len();
        }
        Ok(kept)
    }

    /// The records of `reserved` that the commit made of `baseline` did
    /// not turn into a link or a record held back: taken by this shard but
    /// not planned into an entity (a refused create, a record one way
    /// only), so free to meet their match in the shard their values route
    /// them to once [released](Self::release).
    pub(super) fn unused(
        &self,
        reserved: &[(SystemId, String)],
        baseline: &Baseline,
    ) -> Vec<(SystemId, String)> {
        reserved
            .iter()
            .filter(|(s, id)| {
                baseline.find_linked(s.as_str(), id).is_none()
                    && baseline.header().ambiguous.get(s.as_str(), id).is_none()
            })
            .cloned()
            .collect()
    }

    /// Drops this shard's reservations of `records`.
    pub(super) async fn release(&self, records: &[(SystemId, String)]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let others = self.shard.others(&self.object);
        let family = self.shard.family(&self.object);
        let query = RouteQuery {
            family: &family,
            mine: &self.state,
            others: &others,
            propose: &[],
            ask: &[],
            release: records,
            reserve: false,
            entities: &[],
        };
        self.store.route(&query).await.map(|_| ())
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
        let record = (system.clone(), r.id.clone());
        let here = self
            .shard
            .routes_here(self.engine.map(), system.as_str(), r);
        let Some(c) = r.correlation.as_deref() else {
            // A tombstone of a record no shard links is nobody's business.
            return if here && !r.deleted {
                Fate::Ask(Query {
                    record,
                    here,
                    origins: Vec::new(),
                    entity: None,
                })
            } else {
                Fate::Leave(record)
            };
        };
        let entity = EntityId::new(c);
        let origins = self
            .origins(&entity)
            .into_iter()
            .filter(|o| *o != record)
            .collect();
        Fate::Ask(Query {
            record,
            here,
            origins,
            entity: Some(entity),
        })
    }

    /// The records an entity id may have been made from, the likelier
    /// first: an entity's id is `{system}:{record id}` of its first record,
    /// with `~{n}` added when that was taken (so an id ending so may be
    /// either). Every system whose name with `:` begins the id is tried.
    fn origins(&self, entity: &EntityId) -> Vec<(SystemId, String)> {
        let c = entity.as_str();
        let mut out = Vec::new();
        for system in &self.systems {
            let Some(id) = c
                .strip_prefix(system.as_str())
                .and_then(|r| r.strip_prefix(':'))
            else {
                continue;
            };
            out.push((system.clone(), id.to_owned()));
            if let Some((base, n)) = id.rsplit_once('~') {
                if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                    out.push((system.clone(), base.to_owned()));
                }
            }
        }
        out
    }
}

/// What [`SyncRunner::keep_shard`] did.
pub(super) struct Kept {
    /// Records left to other shards, per system in the map's order.
    pub(super) left: Vec<usize>,
    /// Records reserved for this shard by this run.
    pub(super) reserved: Vec<(SystemId, String)>,
}

/// A record's fate in a sharded runner.
enum Fate {
    /// Its shard's: linked here or held back here as ambiguous, or made
    /// for an entity here.
    Keep,
    /// Routed to another shard; a reservation of this shard's on it (from
    /// a run that died before its commit) is dropped.
    Leave((SystemId, String)),
    /// Settled by the store's answer.
    Ask(Query),
}

/// What a sharded runner asks the store about one record.
struct Query {
    record: (SystemId, String),
    /// Whether its values route it to this shard.
    here: bool,
    /// The records its correlation key's entity may have been made from.
    origins: Vec<(SystemId, String)>,
    /// The entity its correlation key names.
    entity: Option<EntityId>,
}

impl Fate {
    fn keeps(&self, routes: &Routes) -> bool {
        let q = match self {
            Fate::Keep => return true,
            Fate::Leave(_) => return false,
            Fate::Ask(q) => q,
        };
        let (system, id) = &q.record;
        match routes.owner(system, id) {
            // Another shard links it, or took it first.
            Some(Owner::Other) => return false,
            Some(Owner::Mine) if q.entity.is_none() => return true,
            None if q.entity.is_none() => return false,
            _ => {}
        }
        // Made by a create: it goes with its entity, or with the record
        // that entity was made from (its create's commit may be lost).
        if q.entity.as_ref().is_some_and(|e| routes.held_elsewhere(e)) {
            return false;
        }
        let origin = q.origins.iter().find_map(|(s, id)| routes.owner(s, id));
        match origin {
            Some(Owner::Other) => false,
            Some(Owner::Mine) => true,
            // Neither it nor its origin is anyone's yet: its own route.
            None => q.here,
        }
    }
}

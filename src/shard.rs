//! Shards: one object type's entities split over several runners.
//!
//! A company that syncs very many records, or the accounts of many
//! customers, outgrows one process. With shards, runner *i* of *n* plans
//! and writes only the entities of shard *i*, each shard's baseline kept
//! apart in the store under its own state key
//! ([`Shard::state_key`]: `contacts/shard-2-of-4`), so runners on
//! several hosts share a store (`PostgresStore`, feature `postgres`)
//! without ever planning the same entity.
//!
//! # Which shard a record belongs to
//!
//! Every runner reads every record (a complete read, or the changes since
//! its own cursor) and keeps its shard's. What its own baseline settles it
//! keeps without asking: a record it links or holds back as ambiguous,
//! whatever its values say now (a changed email does not move a contact),
//! and a record made by a create of one of its entities
//! ([`Record::correlation`]). About every other record it asks the store
//! ([`AsyncStateStore::route`]), once per run, and the store answers from
//! what all the shards have stored:
//!
//! 1. A record another shard's baseline links is that shard's.
//! 2. A record a shard has taken is that shard's: the first runner to
//!    propose a record reserves it, atomically. So two shards running at
//!    once never both take a record, even one whose email changes between
//!    their reads. A reservation holds while its shard plans the record:
//!    once saved, the runner drops those its commit did not turn into a
//!    link or a record held back, and a shard whose run died drops its
//!    reservations on its next run for the records whose values now route
//!    them elsewhere. (Until that next run, another shard leaves such a
//!    record alone; if its match is in the other shard, that shard creates
//!    a copy of the match. That takes a run that died, a key that changed
//!    and that other shard running first.) A dry run reserves nothing.
//! 3. A record made by a create (it carries a correlation key) goes with
//!    its entity: to the shard that holds the entity, else to the shard
//!    that owns the record the entity was made from, so the create's
//!    record joins its contact even if the commit that would have linked
//!    it was lost and a person changed its email since.
//! 4. Any other record is routed by a stable hash ([`Shard::route`]) of its
//!    first match key's value that it has, normalized as matching
//!    normalizes it, so the copies of one contact in two systems (the same
//!    email, in any case) meet in one shard and are matched there;
//!    failing that, of its correlation key; failing that, of its system
//!    and id. The shard it routes to proposes it, and so reserves it.
//!
//! So an entity stays in the shard where its records were first taken.
//! Two copies of a contact meet only if the first match key each has is
//! the same key with the same value: a contact with an email in one system
//! and only a phone number in the other, which one runner would match by
//! phone, is routed by email in one and by phone in the other, and each
//! shard then creates the contact in the other system (a duplicate one
//! runner would not make). Give every record the first match key, or run
//! one runner, where that matters. Likewise, a record is matched only
//! against the entities of its shard: a contact whose email changed after
//! it was linked stays in the shard of its old email, so a new record with
//! its new email, routed to another shard, is not matched with it but
//! created in the other systems, where one runner would match the two (or
//! hold them back as ambiguous).
//!
//! Runners on shards need a store that keeps routes: a
//! [`MemoryStore`](crate::MemoryStore) for runners in one process,
//! `PostgresStore` (feature `postgres`) for runners on several hosts. A
//! reservation that became a link stays (a row per record a shard took):
//! links decide first anyway.
//!
//! The hash is [jump consistent hashing] over the 64-bit FNV-1a hash of the
//! key's text. Both are fixed: a record's shard for a given count never
//! changes between versions of recsync (a test pins them), because a
//! change would move records between shards. The shard count is part of
//! the state key, so changing it starts every shard from an empty baseline
//! (a first sync: records are linked by their keys, not created again).
//!
//! [jump consistent hashing]: https://arxiv.org/abs/1406.2294
//! [`AsyncStateStore::route`]: crate::store::AsyncStateStore::route

use std::fmt;

use crate::identity::match_texts;
use crate::mapping::FieldMap;
use crate::model::Record;

/// Shard `index` of `count`: which part of an object type's entities a
/// runner plans and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// A shard that cannot be: no shards, or an index past the count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no shard {index} of {count}: shards are numbered from 0 to the count less one, and there is at least one")]
pub struct ShardError {
    /// The index asked for.
    pub index: u32,
    /// The count asked for.
    pub count: u32,
}

impl Shard {
    /// Shard `index` (from 0) of `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError { index, count });
        }
        Ok(Shard { index, count })
    }

    /// The one shard of one: every entity.
    pub fn whole() -> Shard {
        Shard { index: 0, count: 1 }
    }

    /// Which shard this is, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Every shard of this count, in order.
    pub fn all(count: u32) -> impl Iterator<Item = Shard> {
        (0..count).map(move |index| Shard { index, count })
    }

    /// The key the shard's baseline of `object` is kept under in a store:
    /// `object` itself for the one shard of one, else
    /// `"{object}/shard-{index}-of-{count}"`.
    pub fn state_key(&self, object: &str) -> String {
        if self.count == 1 {
            object.to_owned()
        } else {
            format!("{object}/shard-{}-of-{}", self.index, self.count)
        }
    }

    /// The family of this shard's `object`: every shard of that object and
    /// count, as a store keeps their reservations
    /// ([`RouteQuery::family`](crate::store::RouteQuery::family)):
    /// `"{object}/{count} shards"`.
    pub fn family(&self, object: &str) -> String {
        format!("{object}/{} shards", self.count)
    }

    /// The state keys of the other shards of `object`.
    pub fn others(&self, object: &str) -> Vec<String> {
        Shard::all(self.count)
            .filter(|s| s != self)
            .map(|s| s.state_key(object))
            .collect()
    }

    /// The shard of `count` that a record of `system` that no baseline
    /// links belongs to, by step 4 of the [module docs](self): its first
    /// match key value, normalized; else its correlation key; else its
    /// system and id. `None` if `system` is not one of the map's.
    pub fn route(map: &FieldMap, system: &str, record: &Record, count: u32) -> Option<u32> {
        let s = map.systems().iter().position(|x| x.as_str() == system)?;
        let key = match match_texts(map, s, record).into_iter().next() {
            Some((_, text)) => text,
            None => match &record.correlation {
                Some(c) => c.clone(),
                None => format!("{system}:{}", record.id),
            },
        };
        Some(jump(fnv1a(key.as_bytes()), count))
    }

    /// Whether a record of `system` that no baseline links is this
    /// shard's: [`route`](Shard::route) to this shard. A record of a
    /// system the map does not have is no shard's.
    pub fn routes_here(&self, map: &FieldMap, system: &str, record: &Record) -> bool {
        Shard::route(map, system, record, self.count) == Some(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count)
    }
}

/// 64-bit FNV-1a: fixed forever, as routing depends on it.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Jump consistent hash (Lamping and Veach, 2014): a bucket in
/// `0..buckets` for `key`, spread evenly, such that growing the count by
/// one moves only the keys of the new bucket. `buckets` is at least 1.
fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // The top 31 bits of the key, plus one, as a divisor of 2^31.
        let next = ((b + 1) as f64) * ((1u64 << 31) as f64 / (((key >> 33) + 1) as f64));
        j = next as i64;
    }
    // b is in 0..buckets, so it fits.
    u32::try_from(b).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Field;

    fn map() -> FieldMap {
        FieldMap::builder()
            .object("contacts")
            .systems(["crm", "mkt"])
            .key("email")
            .field(Field::new("email").case_insensitive())
            .field(Field::new("name"))
            .build()
            .unwrap()
    }

    #[test]
    fn shards_are_numbered_from_zero_below_the_count() {
        assert!(Shard::new(0, 0).is_err());
        assert!(Shard::new(4, 4).is_err());
        let s = Shard::new(3, 4).unwrap();
        assert_eq!(s.state_key("contacts"), "contacts/shard-3-of-4");
        assert_eq!(Shard::whole().state_key("contacts"), "contacts");
        assert_eq!(
            s.others("contacts"),
            [
                "contacts/shard-0-of-4",
                "contacts/shard-1-of-4",
                "contacts/shard-2-of-4"
            ]
        );
        assert_eq!(s.to_string(), "shard 3 of 4");
    }

    /// Routing never changes between versions: a change would move
    /// records between shards.
    #[test]
    fn the_routing_hash_is_pinned() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let buckets: Vec<u32> = (0..8u64).map(|k| jump(k, 10)).collect();
        assert_eq!(buckets, [0, 6, 6, 8, 1, 4, 9, 0]);
        let m = map();
        let routes: Vec<u32> = (0..8)
            .map(|n| {
                let r = Record::new("1").field("email", format!("p{n}@example.com"));
                Shard::route(&m, "crm", &r, 4).unwrap()
            })
            .collect();
        assert_eq!(routes, [3, 2, 2, 3, 2, 2, 1, 1]);
    }

    #[test]
    fn copies_of_a_contact_meet_in_one_shard_whatever_their_case() {
        let m = map();
        for n in 0..200 {
            let a = Record::new(format!("c{n}")).field("email", format!("P{n}@Example.com"));
            let b = Record::new(format!("m{n}")).field("email", format!("p{n}@example.com "));
            assert_eq!(
                Shard::route(&m, "crm", &a, 7),
                Shard::route(&m, "mkt", &b, 7)
            );
        }
    }

    #[test]
    fn records_spread_evenly_and_growing_the_count_moves_few() {
        let m = map();
        let records: Vec<Record> = (0..20_000)
            .map(|n| Record::new("x").field("email", format!("p{n}@example.com")))
            .collect();
        let mut per = [0usize; 4];
        for r in &records {
            per[Shard::route(&m, "crm", r, 4).unwrap() as usize] += 1;
        }
        assert!(per.iter().all(|n| (4_500..5_500).contains(n)), "{per:?}");
        let moved = records
            .iter()
            .filter(|r| Shard::route(&m, "crm", r, 4) != Shard::route(&m, "crm", r, 5))
            .count();
        // About a fifth move (to the new shard), not most.
        assert!((3_500..4_500).contains(&moved), "{moved}");
    }

    #[test]
    fn a_record_without_keys_is_routed_by_correlation_then_by_its_id() {
        let m = map();
        let plain = Record::new("c1").field("name", "Ada");
        let by_id = Shard::route(&m, "crm", &plain, 1000).unwrap();
        assert_eq!(by_id, jump(fnv1a(b"crm:c1"), 1000));
        let mut made = Record::new("m9").field("name", "Ada");
        made.correlation = Some("crm:c1".to_owned());
        assert_eq!(Shard::route(&m, "mkt", &made, 1000), Some(by_id));
        assert_eq!(Shard::route(&m, "erp", &plain, 4), None);
        assert!(Shard::whole().routes_here(&m, "crm", &plain));
    }
}

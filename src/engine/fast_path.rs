//! The fast path: an entity whose records all hold what they held at the
//! last commit (the same version as a read saw, or the same content hash),
//! with nothing pending, is skipped without reading a field.
//!
//! Here too is the content hash of a record that the comparison uses, and
//! the same comparison for one record ([`holds_last_commit`]), which the
//! runner's debounce asks.

use crate::baseline::{Baseline, LinkRecord, LinkState, LinkStatus};
use crate::hash::{values_hash, values_hashes, FoldHasher};
use crate::model::Record;
use crate::plan::EntityChange;

use super::input::Cx;
use super::rows::Cell;

/// The seed of record content hashes. Persisted in baselines: never change.
const CONTENT_SEED: u64 = 0x7265_6373_796e_6331;

/// Set in every content hash of the current form (a baseline saved before
/// it holds hashes of the first form, half of them with this bit too).
const FORM_2: u64 = 1 << 63;

/// The content hash of a record's fields: the hash of its list of names
/// (computed once for the records that share it), then each value's own
/// hash in order ([`values_hash`]); never 0, which means "not known".
pub(crate) fn record_hash(r: &Record) -> u64 {
    values_hash(CONTENT_SEED ^ r.fields.names_hash(), r.fields.values()) | FORM_2
}

/// [`record_hash`] of `K` records at once ([`values_hashes`]): a plan
/// hashes the records of several entities together, so that reading their
/// values from memory overlaps.
pub(crate) fn record_hashes<const K: usize>(records: [&Record; K]) -> [u64; K] {
    let seeds = records.map(|r| CONTENT_SEED ^ r.fields.names_hash());
    let lists = records.map(|r| r.fields.values().as_slice());
    values_hashes(seeds, lists).map(|h| h | FORM_2)
}

/// The content hash of the first form, which baselines saved before the
/// current form hold: names and values in turn, the names hashed in every
/// record. A link keeping a hash that the record's current-form hash does
/// not match is compared in this form too: the same content so found is
/// skipped as before, and its link takes the current form.
fn first_form_hash(r: &Record) -> u64 {
    let mut h = FoldHasher::new(CONTENT_SEED);
    h.u64(r.fields.len() as u64);
    for (k, v) in &r.fields {
        h.bytes(k.as_bytes());
        h.value(v);
    }
    h.finish().max(1)
}

/// Whether `r`, whose current-form hash is `hash`, holds the content a
/// link's `kept` hash (not 0) was taken of, in either form. (A changed
/// record is hashed in both: the second costs less than planning it.)
fn same_content(r: &Record, hash: u64, kept: u64) -> bool {
    hash == kept || first_form_hash(r) == kept
}

/// Whether `r` reports the version its link recorded (both none counts).
fn reports_version(r: &Record, link: &LinkState) -> bool {
    match (&r.version, &link.version) {
        (Some(v), Some(l)) => l.is(v),
        (None, None) => true,
        _ => false,
    }
}

/// Whether `r`, a record of `system`, is as `baseline` last committed it:
/// its content is what the last read saw (its link keeps that content's
/// hash), or, where the last commit wrote it (the link keeps no hash, only
/// the version the write reported), it reports that version. Nothing in
/// such a record is new.
pub(crate) fn holds_last_commit(baseline: &Baseline, system: &str, r: &Record) -> bool {
    let link = baseline.system_slot(system).and_then(|b| {
        let slot = baseline.find_link(b, &r.id)?;
        baseline.entity_at(slot)?.link(b)
    });
    match link {
        None => false,
        // A content the last read saw: compared, not trusted to a version.
        Some(link) if link.hash != 0 => same_content(r, record_hash(r), link.hash),
        Some(link) => r.version.is_some() && reports_version(r, link),
    }
}

/// `Some` when the entity needs no planning: nothing pending, and every
/// record seen has the version or content it had at the last commit. The
/// inner change updates links whose version moved while content did not.
/// It takes a record's content hash from `known` (by system) where one is
/// there (not 0), and leaves there those it computes.
pub(crate) fn fast_path(
    cx: &Cx<'_>,
    slot: u32,
    cells: &[Cell<'_>],
    known: &mut [u64],
) -> Option<Option<EntityChange>> {
    if !cx.fast || cx.baseline.attention().contains(&slot) {
        return None;
    }
    let e = cx.baseline.entity_at(slot)?;
    let mut touch: Option<EntityChange> = None;
    for (s, cell) in cells.iter().enumerate() {
        let r = match cell {
            Cell::Empty | Cell::Dup => continue,
            Cell::Seen(r) => *r,
            Cell::Twice(r) if !r.deleted => *r,
            Cell::New(_) | Cell::Gone | Cell::Absent | Cell::NewGone(_) | Cell::Twice(_) => {
                return None
            }
        };
        let link = cx.sys_slot[s].and_then(|b| e.link(b))?;
        let in_scope = cx.in_scope(s, r);
        match link.status {
            LinkStatus::Active if in_scope => {}
            // A frozen record is held, and every plan says so: planned.
            LinkStatus::Frozen if !in_scope => return None,
            _ => return None,
        }
        let same_version = reports_version(r, link);
        // A version is trusted once a read has seen the content it names
        // (the link keeps that content's hash): the first read after a
        // write is planned in full, so a system's own form of what was
        // written is found there and not left for a later edit to trip on.
        if same_version && r.version.is_some() && link.hash != 0 {
            continue;
        }
        let hash = match known.get_mut(s) {
            Some(k) if *k != 0 => *k,
            Some(k) => {
                *k = record_hash(r);
                *k
            }
            None => record_hash(r),
        };
        if !same_content(r, hash, link.hash) {
            return None;
        }
        // Same content: only a moved version, or a hash of the first form,
        // is worth recording.
        if same_version && hash == link.hash {
            continue;
        }
        touch
            .get_or_insert_with(|| EntityChange::new(e.id.clone()))
            .links
            .push((
                s as u32,
                Some(LinkRecord {
                    id: r.id.clone(),
                    version: r.version.clone(),
                    hash,
                    status: link.status,
                }),
            ));
    }
    Some(touch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::map;
    use crate::model::Snapshot;

    #[test]
    fn a_record_holds_the_last_commit_by_content_read_or_version_written() {
        let engine = crate::SyncEngine::new(map());
        let ann = |id: &str| {
            Record::new(id)
                .field("email", "a@x.io")
                .field("name", "Ann")
        };
        let snaps = [
            Snapshot::complete("crm", vec![ann("c1").version("v1")]),
            Snapshot::complete("shop", vec![ann("s1")]),
            Snapshot::complete("erp", Vec::new()),
        ];
        let mut baseline = Baseline::new();
        let plan = engine.plan(&baseline, &snaps).expect("plan");
        let create = plan
            .ops
            .iter()
            .find(|o| o.system.as_str() == "erp")
            .expect("a create");
        let mut outcomes = crate::Outcomes::new();
        outcomes.record(
            create.id,
            crate::OpOutcome::created("e1").with_version("w1"),
        );
        engine
            .commit(&mut baseline, &plan, &outcomes)
            .expect("commit");
        let holds = |system: &str, r: &Record| holds_last_commit(&baseline, system, r);
        // Read last: by content, whatever the version says.
        assert!(holds("crm", &ann("c1").version("v1")));
        assert!(holds("crm", &ann("c1").version("v2")));
        assert!(!holds("crm", &ann("c1").version("v1").field("name", "Bo")));
        assert!(holds("shop", &ann("s1")));
        assert!(!holds("shop", &ann("s1").field("name", "Bo")));
        // Written last: by the version the write reported.
        assert!(holds("erp", &ann("e1").version("w1")));
        assert!(!holds("erp", &ann("e1").version("w2")));
        assert!(!holds("erp", &ann("e1")));
        // Records and systems the baseline does not know.
        assert!(!holds("shop", &ann("s2")));
        assert!(!holds("crm", &ann("s1")));
        assert!(!holds("nowhere", &ann("c1")));
    }

    /// An edit between values that an earlier draft of the hash took for
    /// the same is seen: the record is planned and the edit written.
    #[test]
    fn an_edit_between_twins_of_a_weaker_hash_is_written() {
        let engine = crate::SyncEngine::new(map());
        let rec = |id: &str, v: &serde_json::Value| {
            Record::new(id)
                .field("email", "a@x.io")
                .field("name", v.clone())
        };
        for (before, after) in crate::hash::draft_twins() {
            let mut baseline = Baseline::new();
            let first = [
                Snapshot::complete("crm", vec![rec("c1", &before)]),
                Snapshot::complete("shop", vec![rec("s1", &before)]),
                Snapshot::complete("erp", vec![rec("e1", &before)]),
            ];
            let plan = engine.plan(&baseline, &first).expect("plan");
            assert!(plan.ops.is_empty(), "{plan}");
            engine
                .commit(&mut baseline, &plan, &crate::Outcomes::new())
                .expect("commit");
            assert!(holds_last_commit(&baseline, "crm", &rec("c1", &before)));
            assert!(!holds_last_commit(&baseline, "crm", &rec("c1", &after)));
            let edited = [
                Snapshot::complete("crm", vec![rec("c1", &after)]),
                Snapshot::complete("shop", vec![rec("s1", &before)]),
                Snapshot::complete("erp", vec![rec("e1", &before)]),
            ];
            let plan = engine.plan(&baseline, &edited).expect("plan");
            assert_eq!(plan.ops.len(), 2, "{before} to {after}: {plan}");
        }
    }

    /// A record whose first-form hash has [`FORM_2`] as `bit` says, as
    /// half of the hashes in a baseline saved before the current form do.
    fn first_form_record(bit: bool) -> Record {
        (0..64)
            .map(|i| {
                Record::new("s1")
                    .field("email", "a@x.io")
                    .field("name", format!("Ann {i}"))
            })
            .find(|r| (first_form_hash(r) & FORM_2 != 0) == bit)
            .expect("one in 64 of a fair hash")
    }

    #[test]
    fn a_hash_of_the_first_form_is_the_same_content_and_is_migrated() {
        for bit in [false, true] {
            let r = first_form_record(bit);
            let first = first_form_hash(&r);
            let now = record_hash(&r);
            assert_ne!(now & FORM_2, 0);
            assert!(same_content(&r, now, now));
            assert!(same_content(&r, now, first));
            let other = r.clone().field("name", "Bo");
            assert!(!same_content(&other, record_hash(&other), first));
            assert!(!same_content(&r, now, first ^ 1));
            migrated(&r);
        }
    }

    /// A baseline whose shop link keeps the first form's hash of `r`: the
    /// record is the same, skipped, and its link takes the current form.
    fn migrated(r: &Record) {
        let first = first_form_hash(r);
        let now = record_hash(r);
        let engine = crate::SyncEngine::new(map());
        let snaps = [
            Snapshot::complete(
                "crm",
                vec![Record::new("c1")
                    .field("email", "a@x.io")
                    .field("name", r.get("name").cloned())],
            ),
            Snapshot::complete("shop", vec![r.clone()]),
            Snapshot::complete("erp", Vec::new()),
        ];
        let mut baseline = Baseline::new();
        let plan = engine.plan(&baseline, &snaps).expect("plan");
        let mut outcomes = crate::Outcomes::new();
        for op in &plan.ops {
            outcomes.record(op.id, crate::OpOutcome::created("e1"));
        }
        engine
            .commit(&mut baseline, &plan, &outcomes)
            .expect("commit");
        let shop = baseline.system_slot("shop").expect("shop");
        let slot = baseline.find_link(shop, "s1").expect("linked");
        let mut link = baseline
            .entity_at(slot)
            .and_then(|e| e.link(shop))
            .cloned()
            .expect("a link");
        assert_eq!(link.hash, now);
        link.hash = first;
        baseline.set_link(slot, shop, Some(link)).expect("set");
        assert!(holds_last_commit(&baseline, "shop", r));
        let snaps = [
            Snapshot::complete("crm", snaps[0].records.clone()),
            Snapshot::complete("shop", vec![r.clone()]),
            Snapshot::complete(
                "erp",
                vec![Record::new("e1")
                    .field("email", "a@x.io")
                    .field("name", r.get("name").cloned())],
            ),
        ];
        let plan = engine.plan(&baseline, &snaps).expect("plan");
        assert!(plan.ops.is_empty(), "{plan}");
        let change = plan
            .changes
            .iter()
            .find(|c| c.entity == baseline.entity_at(slot).expect("entity").id)
            .expect("the link migrated");
        let shop_index = 1;
        assert!(change
            .links
            .iter()
            .any(|(s, l)| *s == shop_index && l.as_ref().is_some_and(|l| l.hash == now)));
    }
}

//! A baseline saved by recsync at commit 8e645b3 loads and plans as it did
//! then.
//!
//! The files in `tests/fixtures/baseline_8e645b3/` were made by that
//! commit's code (its `README.md` says how, with the generator's source):
//! a map of two systems, `crm` and `shop`, keyed by email; the baseline of
//! their first syncs, saved by that commit's `JsonFileStore` and
//! `SqliteStore`; the snapshots of a round of edits in both systems since;
//! and the plan that commit made of those snapshots, as JSON and as its
//! `Display` text.
//!
//! Today's code takes the stored baselines over (`upgrade_legacy`, as a
//! host upgrading must), plans the stored snapshots with the stored map,
//! and must make the stored plan in everything a host sees: every op (its
//! idempotency key, fields, values and reasons), conflict, hold, issue,
//! read-only write and refusal. The baseline changes commit applies are
//! compared too, by [`same_plan_except_hashes`], with what the stored plan
//! cannot hold set apart and checked on its own:
//!
//! - the content hashes in the changes' links. Their form changed after
//!   8e645b3 (a record's hash starts from the hash of its list of field
//!   names), so today's plan gives every link of a record it reads a hash
//!   of the current form: where 8e645b3's plan changed a link, today's
//!   changes it too; where 8e645b3's left it, today's sets it to what the
//!   baseline holds with a new hash. [`same_plan_except_hashes`] leaves
//!   such hash-only link changes out of both plans
//!   ([`Context::hash_only`]); [`same_link_hashes`] checks that every hash
//!   today's plan sets is of the current form and that every link of a
//!   record read gets one: the migration of the stored hashes.
//! - `before`, which 8e645b3 did not have (what each target of an update
//!   held before the write, for commit to confirm it by later): checked
//!   against the stored snapshots by [`Context::check_before`].
//!
//! The plan's `fingerprint` is the map's, in today's form (the form changed
//! since 8e645b3, so the same map has another fingerprint); it is not
//! compared.
//!
//! Whether a plan skipped unchanged records without reading their fields
//! is not something the crate lets a caller see, so it is not checked.
//! (Today it does not skip them on the first plan from this baseline: the
//! shortcut needs the baseline's map fingerprint to be the map's, and the
//! commit of that plan is what records today's; see
//! `after_the_next_plan_nothing_is_left_to_write`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use recsync::mapping::{Registry, Transform, TransformError};
use recsync::store::JsonFileStore;
use recsync::{
    Baseline, FieldMap, OpKind, OpOutcome, Outcomes, Record, Snapshot, StateStore, StoreError,
    SyncEngine, SyncPlan, WriteOp,
};
use serde_json::{json, Value};

const OBJECT: &str = "contacts";

// ----- the fixture

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/baseline_8e645b3")
        .join(name)
}

fn read(name: &str) -> String {
    let path = fixture(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the fixture {}: {e}", path.display()))
}

/// The shop keeps amounts as integer cents; canonical is a decimal amount.
/// The map names it `cents`, a custom transform the registry supplies (as
/// the generator's did).
#[derive(Debug)]
struct Cents;

impl Transform for Cents {
    fn name(&self) -> &str {
        "cents"
    }
    fn to_canonical(&self, native: &Value) -> Result<Value, TransformError> {
        let cents = native
            .as_i64()
            .ok_or_else(|| TransformError::wrong_type("integer", native))?;
        Ok(json!(cents as f64 / 100.0))
    }
    fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError> {
        let amount = canonical
            .as_f64()
            .ok_or_else(|| TransformError::wrong_type("number", canonical))?;
        Ok(json!((amount * 100.0).round() as i64))
    }
    fn samples(&self) -> Vec<Value> {
        vec![json!(0), json!(1250), json!(-99), json!(123_456)]
    }
}

/// The engine for the stored map.
fn engine() -> SyncEngine {
    let registry = Registry::new().transform(Cents);
    let map = FieldMap::from_json(&read("map.json"), &registry)
        .unwrap_or_else(|e| panic!("today's code does not load the stored map: {e}"));
    SyncEngine::new(map)
}

/// What each system held at the next sync.
fn next_snapshots() -> Vec<Snapshot> {
    serde_json::from_str(&read("next_snapshots.json"))
        .unwrap_or_else(|e| panic!("today's code does not read the stored snapshots: {e}"))
}

/// The plan 8e645b3 made of the next snapshots, serialized.
fn stored_plan() -> Value {
    serde_json::from_str(&read("plan.json")).expect("plan.json is JSON")
}

/// The stored plan's `Display` text, with the wording changed since
/// 8e645b3 changed: a mapping issue names its direction (12e4f5c).
fn stored_text() -> String {
    read("plan.txt").replace(
        ": mapping failed, record skipped:",
        ": mapping to canonical failed, record skipped:",
    )
}

// ----- the stores, on copies of the stored files

/// A fresh owner-only directory under the system's temp dir, removed when
/// dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "recsync-baseline-8e645b3-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir).expect("a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a stored file into `to`, owner-only (git checks files out 0644).
fn copy_owner_only(name: &str, to: &Path) {
    std::fs::copy(fixture(name), to)
        .unwrap_or_else(|e| panic!("cannot copy {name} to {}: {e}", to.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    }
}

/// The first load of a store file written before today's format: refused
/// as unverifiable, then taken over with `upgrade_legacy`, after which a
/// plain load verifies it and gives the same baseline.
fn take_over(
    store_name: &str,
    load: impl Fn() -> Result<Baseline, StoreError>,
    upgrade: impl FnOnce() -> Result<Baseline, StoreError>,
) -> Baseline {
    match load() {
        Err(StoreError::Format { found: 1, .. }) => {}
        Err(e) => panic!("{store_name}: the 8e645b3 file is refused, but not as format 1: {e}"),
        Ok(_) => panic!(
            "{store_name}: a plain load took the 8e645b3 file, which carries no checksums, \
             without upgrade_legacy"
        ),
    }
    let taken = upgrade().unwrap_or_else(|e| panic!("{store_name}: upgrade_legacy fails: {e}"));
    let again = load().unwrap_or_else(|e| {
        panic!("{store_name}: the file upgrade_legacy saved does not load: {e}")
    });
    assert_eq!(
        entities(&again),
        entities(&taken),
        "{store_name}: the upgraded file loads as another baseline"
    );
    taken
}

/// The baseline as today's `JsonFileStore` takes over the 8e645b3 file.
fn from_json_store() -> Baseline {
    let dir = Scratch::new("json");
    copy_owner_only("json_store/contacts.json", &dir.0.join("contacts.json"));
    let store = JsonFileStore::open(&dir.0).expect("JsonFileStore::open");
    take_over(
        "JsonFileStore",
        || store.load(OBJECT),
        || store.upgrade_legacy(OBJECT),
    )
}

/// The baseline as today's `SqliteStore` takes over the 8e645b3 database.
#[cfg(feature = "sqlite")]
fn from_sqlite_store() -> Baseline {
    use recsync::store::SqliteStore;
    let dir = Scratch::new("sqlite");
    let db = dir.0.join("baseline.db");
    copy_owner_only("sqlite_store/baseline.db", &db);
    let store = SqliteStore::open(&db).expect("SqliteStore::open");
    assert_eq!(
        store.objects().expect("the objects"),
        [OBJECT],
        "SqliteStore: the 8e645b3 database holds one object"
    );
    take_over(
        "SqliteStore",
        || store.load(OBJECT),
        || store.upgrade_legacy(OBJECT),
    )
}

/// Every store the build has, with the baseline it loads.
fn stored_baselines() -> Vec<(&'static str, Baseline)> {
    #[allow(unused_mut)]
    let mut all = vec![("JsonFileStore", from_json_store())];
    #[cfg(feature = "sqlite")]
    all.push(("SqliteStore", from_sqlite_store()));
    all
}

/// A baseline's revision, and its entities as today serializes them, in
/// id order.
fn entities(baseline: &Baseline) -> (u64, Vec<Value>) {
    let mut all: Vec<Value> = baseline
        .entities()
        .map(|e| serde_json::to_value(e.to_record()).expect("an entity serializes"))
        .collect();
    all.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    (baseline.revision(), all)
}

// ----- comparing plans

/// Where a link's hash was: the entity, and the system (its index in a
/// plan's change, its name in a baseline's entity).
type HashAt = (String, String);

/// `items` (a plan's changes, or a baseline's entities) with the `"hash"`
/// key taken out of every link, and those hashes by where they were.
fn without_link_hashes(items: &Value) -> (Value, Vec<(HashAt, Value)>) {
    let mut items = items.clone();
    let mut hashes = Vec::new();
    for item in items.as_array_mut().into_iter().flatten() {
        let entity = item
            .get("entity")
            .or(item.get("id"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        match item.get_mut("links") {
            // A plan's change: `[[system index, link or null], ...]`.
            Some(Value::Array(pairs)) => {
                for pair in pairs {
                    let system = pair[0].to_string();
                    let link = pair.get_mut(1).and_then(Value::as_object_mut);
                    if let Some(hash) = link.and_then(|l| l.remove("hash")) {
                        hashes.push(((entity.clone(), system), hash));
                    }
                }
            }
            // A baseline's entity: `{system: link}`.
            Some(Value::Object(by_system)) => {
                for (system, link) in by_system {
                    if let Some(hash) = link.as_object_mut().and_then(|l| l.remove("hash")) {
                        hashes.push(((entity.clone(), system.clone()), hash));
                    }
                }
            }
            _ => {}
        }
    }
    (items, hashes)
}

/// One line naming a plan item: an op by its idempotency key, kind,
/// system and record, anything else by its entity.
fn describe(part: &str, item: &Value) -> String {
    match part {
        "ops" => format!(
            "op {} ({} {} {} of entity {})",
            item["id"],
            item["kind"],
            item["system"],
            item.get("record_id").unwrap_or(&json!("(new)")),
            item["entity"]
        ),
        _ => format!(
            "{} of entity {}",
            part,
            item.get("entity")
                .or(item.get("id"))
                .unwrap_or(&Value::Null)
        ),
    }
}

/// Panics naming the first item of `part` that differs, with both forms.
fn same_items(what: &str, part: &str, today: &Value, stored: &Value) {
    let empty = Vec::new();
    let today_items = today.as_array().unwrap_or(&empty);
    let stored_items = stored.as_array().unwrap_or(&empty);
    for (i, (t, s)) in today_items.iter().zip(stored_items).enumerate() {
        if t != s {
            panic!(
                "{what}: {part}[{i}] differs from 8e645b3's, at {}\n\
                 today:   {}\n8e645b3: {}",
                describe(part, s),
                serde_json::to_string_pretty(t).unwrap_or_default(),
                serde_json::to_string_pretty(s).unwrap_or_default(),
            );
        }
    }
    if today_items.len() != stored_items.len() {
        let n = today_items.len().min(stored_items.len());
        let (who, first) = if today_items.len() > n {
            ("today's has more", &today_items[n])
        } else {
            ("8e645b3's has more", &stored_items[n])
        };
        panic!(
            "{what}: {part}: {} today, {} from 8e645b3; {who}, the first at {part}[{n}]: {}\n{}",
            today_items.len(),
            stored_items.len(),
            describe(part, first),
            serde_json::to_string_pretty(first).unwrap_or_default(),
        );
    }
}

/// The plan parts a host sees, in the order checked.
const HOST_PARTS: [&str; 6] = ["ops", "conflicts", "held", "issues", "read_only", "refusal"];

/// The keys of a plan's changes that 8e645b3 did not have, each checked on
/// its own ([`Context::check_before`]).
const CHANGE_KEYS_SINCE: [&str; 1] = ["before"];

/// What the comparison needs besides the two plans: the map's systems and
/// fields by index, the links the loaded baseline holds, and the records
/// the snapshots hold.
struct Context {
    systems: Vec<String>,
    /// Canonical field names, by field index.
    fields: Vec<String>,
    /// Per entity, its links as the loaded baseline holds them, hashes
    /// taken out, by system name.
    links: BTreeMap<String, Value>,
    /// The links the loaded baseline holds with a hash: (entity, system).
    hashed: BTreeSet<HashAt>,
    /// The hashes the loaded baseline holds.
    kept_hashes: BTreeSet<u64>,
    /// The hash the loaded baseline holds for each link that has one.
    kept_hash: BTreeMap<HashAt, u64>,
    /// Per (system, record id), the record's native fields.
    records: BTreeMap<(String, String), Value>,
    /// The records the snapshots list as deleted: (system, record id).
    tombstones: BTreeSet<(String, String)>,
    /// Per (system, record id), the version the record reports.
    versions: BTreeMap<(String, String), Option<String>>,
}

impl Context {
    fn new(engine: &SyncEngine, baseline: &Baseline, snapshots: &[Snapshot]) -> Self {
        let map = engine.map();
        let systems: Vec<String> = map
            .systems()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let fields = map.fields().iter().map(|f| f.name().to_owned()).collect();
        let (entities, hashes) = without_link_hashes(&Value::from(entities(baseline).1));
        let links = entities
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or("?").to_owned(),
                    e["links"].clone(),
                )
            })
            .collect();
        let records = snapshots
            .iter()
            .flat_map(|s| {
                s.records.iter().map(|r| {
                    let fields = serde_json::to_value(&r.fields).expect("fields serialize");
                    ((s.system.as_str().to_owned(), r.id.clone()), fields)
                })
            })
            .collect();
        let tombstones = snapshots
            .iter()
            .flat_map(|s| {
                s.records
                    .iter()
                    .filter(|r| r.deleted)
                    .map(|r| (s.system.as_str().to_owned(), r.id.clone()))
            })
            .collect();
        let versions = snapshots
            .iter()
            .flat_map(|s| {
                s.records.iter().map(|r| {
                    (
                        (s.system.as_str().to_owned(), r.id.clone()),
                        r.version.clone(),
                    )
                })
            })
            .collect();
        Context {
            versions,
            tombstones,
            systems,
            fields,
            links,
            kept_hashes: hashes.iter().filter_map(|(_, h)| h.as_u64()).collect(),
            kept_hash: hashes
                .iter()
                .filter_map(|(at, h)| Some((at.clone(), h.as_u64()?)))
                .collect(),
            hashed: hashes.into_iter().map(|(at, _)| at).collect(),
            records,
        }
    }

    /// Whether a link change (`[system index, link]`, its hash taken out)
    /// sets the link to what the baseline holds already: only its hash.
    fn hash_only(&self, entity: &str, pair: &Value) -> bool {
        let system = pair[0].as_u64().and_then(|i| self.systems.get(i as usize));
        let held = self.links.get(entity);
        system.is_some_and(|s| {
            pair[1] != Value::Null && held.and_then(|h| h.get(s)) == Some(&pair[1])
        })
    }

    /// Whether the snapshots list the record of a link the baseline holds
    /// (entity, system name).
    fn listed(&self, (entity, system): &HashAt) -> bool {
        let id = self
            .links
            .get(entity)
            .and_then(|l| l.get(system))
            .and_then(|l| l.get("id"))
            .and_then(Value::as_str);
        id.is_some_and(|id| self.read(system, id))
    }

    /// Whether the record of a link the baseline holds reports the
    /// version the link keeps: such a record is skipped on its version,
    /// unread, and its link keeps the hash it has until the version moves.
    fn same_version(&self, (entity, system): &HashAt) -> bool {
        let link = self.links.get(entity).and_then(|l| l.get(system));
        let id = link.and_then(|l| l.get("id")).and_then(Value::as_str);
        let kept = link.and_then(|l| l.get("version")).and_then(Value::as_str);
        match (id, kept) {
            (Some(id), Some(kept)) => self
                .versions
                .get(&(system.clone(), id.to_owned()))
                .is_some_and(|v| v.as_deref() == Some(kept)),
            _ => false,
        }
    }

    /// Whether the snapshots list record `id` of `system`, not deleted.
    fn read(&self, system: &str, id: &str) -> bool {
        let at = (system.to_owned(), id.to_owned());
        self.records.contains_key(&at) && !self.tombstones.contains(&at)
    }

    /// `changes` (hashes taken out) without the link changes that set only
    /// a hash, and without the changes left with nothing else.
    fn without_hash_only(&self, changes: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        for change in changes.as_array().into_iter().flatten() {
            let mut change = change.clone();
            let entity = change["entity"].as_str().unwrap_or("?").to_owned();
            if let Some(Value::Array(pairs)) = change.get_mut("links") {
                pairs.retain(|pair| !self.hash_only(&entity, pair));
                if pairs.is_empty() {
                    change.as_object_mut().map(|c| c.remove("links"));
                }
            }
            if change
                .as_object()
                .is_some_and(|c| c.keys().any(|k| k != "entity"))
            {
                out.push(change);
            }
        }
        out
    }

    /// `before` in today's changes: exactly one entry per field an update
    /// op of the plan writes, holding the value the target's record held
    /// in the snapshots (`null` where it held none).
    fn check_before(&self, what: &str, plan: &Value) {
        let mut expected = BTreeSet::new();
        for op in plan["ops"].as_array().into_iter().flatten() {
            if op["kind"] != "update" {
                continue;
            }
            let system = op["system"].as_str().unwrap_or("?");
            let s = self.systems.iter().position(|n| n == system);
            let record = op["record_id"].as_str().unwrap_or("?");
            for write in op["fields"].as_array().into_iter().flatten() {
                let f = self.fields.iter().position(|n| write["field"] == **n);
                let native = self.records[&(system.to_owned(), record.to_owned())]
                    .get(write["native"].as_str().unwrap_or("?"))
                    .cloned()
                    .unwrap_or(Value::Null);
                expected.insert((
                    op["entity"].as_str().unwrap_or("?").to_owned(),
                    json!([s, f, native]).to_string(),
                ));
            }
        }
        let mut found = BTreeSet::new();
        for change in plan["changes"].as_array().into_iter().flatten() {
            for before in change["before"].as_array().into_iter().flatten() {
                let entity = change["entity"].as_str().unwrap_or("?").to_owned();
                let fresh = found.insert((entity.clone(), before.to_string()));
                assert!(
                    fresh,
                    "{what}: before {before} twice in the change of {entity}"
                );
            }
        }
        if let Some(missing) = expected.difference(&found).next() {
            panic!(
                "{what}: no `before` in the change of {} for [system, field, value held] {}, \
                 which an update op writes",
                missing.0, missing.1
            );
        }
        if let Some(extra) = found.difference(&expected).next() {
            panic!(
                "{what}: the change of {} has `before` {} ([system, field, value]), which \
                 no update op of the plan writes, or not with that value held",
                extra.0, extra.1
            );
        }
    }
}

/// Asserts `today` is the stored plan in everything a host sees (ops with
/// their idempotency keys, fields, values and reasons; conflicts, holds,
/// issues, read-only writes, the refusal), in the object and baseline
/// revision planned, and in the baseline changes commit applies, except
/// for the content hashes of those changes' links, which
/// [`same_link_hashes`] checks: link hashes are taken out, and link
/// changes that set nothing but a hash are left out of both plans. The
/// keys 8e645b3's
/// changes did not have ([`CHANGE_KEYS_SINCE`]) are checked on their own.
/// Keys absent from a plan count as empty.
fn same_plan_except_hashes(what: &str, today: &Value, stored: &Value, cx: &Context) {
    for key in ["object", "baseline_revision"] {
        assert_eq!(today[key], stored[key], "{what}: {key} differs");
    }
    for part in HOST_PARTS {
        let t = today.get(part).cloned().unwrap_or(Value::Null);
        let s = stored.get(part).cloned().unwrap_or(Value::Null);
        if t.is_array() || s.is_array() {
            same_items(what, part, &t, &s);
        } else {
            assert_eq!(t, s, "{what}: {part} differs");
        }
    }

    cx.check_before(what, today);
    let (today_changes, _) = without_link_hashes(&today["changes"]);
    let mut today_changes = cx.without_hash_only(&today_changes);
    for change in &mut today_changes {
        if let Some(keys) = change.as_object_mut() {
            for key in CHANGE_KEYS_SINCE {
                keys.remove(key);
            }
        }
    }
    let (stored_changes, _) = without_link_hashes(&stored["changes"]);
    same_items(
        what,
        "changes",
        &Value::from(today_changes),
        &Value::from(cx.without_hash_only(&stored_changes)),
    );

    // Anything else a plan carries (an undo's run, ambiguity changes) is
    // absent from both, or the same.
    let checked = ["object", "baseline_revision", "fingerprint", "changes"];
    let mut others: BTreeSet<&String> = BTreeSet::new();
    for plan in [today, stored] {
        others.extend(plan.as_object().into_iter().flat_map(|o| o.keys()));
    }
    for key in others {
        if !checked.contains(&key.as_str()) && !HOST_PARTS.contains(&key.as_str()) {
            assert_eq!(
                today.get(key),
                stored.get(key),
                "{what}: the plans differ in {key}"
            );
        }
    }
}

/// The bit every content hash of the current form has set (and a hash of
/// 8e645b3's form has or not, by chance).
const CURRENT_FORM: u64 = 1 << 63;

/// The content hashes in the links of the plan's changes, which take the
/// current form: every hash today's plan sets for a record it read is of
/// that form and not one the baseline holds (a link changed without its
/// record read, a delete, keeps its hash), and every link the baseline
/// holds with a hash, of a record the snapshots list, gets one, unless the
/// record reports the version the link keeps (it is trusted on its
/// version, and its hash is compared in 8e645b3's form when the version
/// moves) or its entity has an issue (held back as it was).
fn same_link_hashes(what: &str, today: &Value, stored: &Value, cx: &Context) {
    let (_, stored_hashes) = without_link_hashes(&stored["changes"]);
    assert!(
        !stored_hashes.is_empty(),
        "the stored plan has no link hashes: the fixture is not what this test expects"
    );
    let mut given = BTreeSet::new();
    for change in today["changes"].as_array().into_iter().flatten() {
        let entity = change["entity"].as_str().unwrap_or("?");
        for pair in change["links"].as_array().into_iter().flatten() {
            let Some(hash) = pair[1].get("hash").and_then(Value::as_u64) else {
                continue;
            };
            let name = pair[0]
                .as_u64()
                .and_then(|i| cx.systems.get(i as usize))
                .map_or("?", String::as_str);
            let at = (entity.to_owned(), name.to_owned());
            let id = pair[1]["id"].as_str().unwrap_or("?");
            if cx.read(name, id) {
                assert!(
                    hash & CURRENT_FORM != 0 && !cx.kept_hashes.contains(&hash),
                    "{what}: {at:?}'s link, whose record was read, is given hash {hash}, not \
                     one of the current form"
                );
                given.insert(at);
            } else {
                // A link changed without its record read (a delete) keeps
                // what it held.
                assert_eq!(
                    cx.kept_hash.get(&at),
                    Some(&hash),
                    "{what}: {at:?}'s link, whose record was not read, is given another hash"
                );
            }
        }
    }
    // A record with an issue is held back, its link as it was.
    let issues: BTreeSet<&str> = today["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["entity"].as_str())
        .collect();
    for at in &cx.hashed {
        if cx.listed(at) && !cx.same_version(at) && !issues.contains(at.0.as_str()) {
            assert!(
                given.contains(at),
                "{what}: {at:?}'s link keeps 8e645b3's hash: it is not migrated"
            );
        }
    }
}

// ----- a host's systems, to execute plans

/// One system, as a well-behaved connector keeps it (as the generator's
/// did): a create gets the next id with the system's prefix and version
/// `v1`; an update moves a versioned record's version on.
struct Sys {
    name: String,
    prefix: &'static str,
    next: u32,
    records: BTreeMap<String, Record>,
    keeps_correlation: bool,
}

impl Sys {
    fn from_snapshot(snapshot: &Snapshot) -> Self {
        let (prefix, keeps_correlation) = match snapshot.system.as_str() {
            "crm" => ("c", true),
            _ => ("s", false),
        };
        let next = snapshot
            .records
            .iter()
            .filter_map(|r| r.id.strip_prefix(prefix)?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        Sys {
            name: snapshot.system.as_str().to_owned(),
            prefix,
            next,
            records: snapshot
                .records
                .iter()
                .map(|r| (r.id.clone(), r.clone()))
                .collect(),
            keeps_correlation,
        }
    }

    fn complete(&self) -> Snapshot {
        Snapshot::complete(self.name.as_str(), self.records.values().cloned().collect())
    }

    fn apply(&mut self, op: &WriteOp) -> OpOutcome {
        assert_eq!(op.system, self.name.as_str(), "op for another system");
        match op.kind {
            OpKind::Create => {
                self.next += 1;
                let id = format!("{}{}", self.prefix, self.next);
                let mut r = Record::new(id.clone()).version("v1");
                for w in &op.fields {
                    r.fields.insert(w.native.clone(), w.value.clone());
                }
                if self.keeps_correlation {
                    r.correlation = op.correlation.clone();
                }
                self.records.insert(id.clone(), r);
                OpOutcome::created(id).with_version("v1")
            }
            OpKind::Update => {
                let id = op.record_id.as_deref().expect("an update names its record");
                let r = self
                    .records
                    .get_mut(id)
                    .unwrap_or_else(|| panic!("{} has no record {id} to update", self.name));
                assert_eq!(r.version, op.expected_version, "a conditional write");
                for w in &op.fields {
                    r.fields.insert(w.native.clone(), w.value.clone());
                }
                match r.version.as_deref() {
                    Some(v) => {
                        let n: u32 = v.trim_start_matches('v').parse().expect("versions are vN");
                        let v = format!("v{}", n + 1);
                        r.version = Some(v.clone());
                        OpOutcome::applied().with_version(v)
                    }
                    None => OpOutcome::applied(),
                }
            }
            OpKind::Delete => {
                let id = op.record_id.as_deref().expect("a delete names its record");
                self.records
                    .remove(id)
                    .unwrap_or_else(|| panic!("{} has no record {id} to delete", self.name));
                OpOutcome::applied()
            }
            other => panic!("an op of a kind this test does not know: {other:?}"),
        }
    }
}

fn execute(systems: &mut [Sys], plan: &SyncPlan) -> Outcomes {
    let mut outcomes = Outcomes::new();
    for op in &plan.ops {
        let sys = systems
            .iter_mut()
            .find(|s| op.system == s.name.as_str())
            .unwrap_or_else(|| panic!("no system {}", op.system));
        outcomes.record(op.id, sys.apply(op));
    }
    outcomes
}

// ----- the tests

#[test]
fn the_stores_load_the_baseline_8e645b3_saved() {
    let saved: Value = serde_json::from_str(&read("json_store/contacts.json"))
        .expect("the 8e645b3 state file is JSON");
    let (saved_entities, saved_hashes) = without_link_hashes(&saved["entities"]);
    assert!(
        !saved_hashes.is_empty(),
        "the 8e645b3 baseline holds no link hashes"
    );
    let header = &saved["header"];
    let mut json_store: Option<(u64, Vec<Value>)> = None;
    for (store, baseline) in stored_baselines() {
        assert_eq!(
            json!(baseline.header().fingerprint),
            header["fingerprint"],
            "{store}: the map fingerprint the baseline was saved with"
        );
        let (revision, loaded) = entities(&baseline);
        assert_eq!(json!(revision), header["revision"], "{store}: the revision");
        let (stripped, loaded_hashes) = without_link_hashes(&Value::from(loaded.clone()));
        same_items(
            &format!("{store}: the loaded baseline"),
            "entities",
            &stripped,
            &saved_entities,
        );
        assert_eq!(
            loaded_hashes, saved_hashes,
            "{store}: the content hashes of the links loaded are not those 8e645b3 saved"
        );
        match &json_store {
            None => json_store = Some((revision, loaded)),
            Some(first) => assert!(
                *first == (revision, loaded),
                "{store} loads another baseline than JsonFileStore"
            ),
        }
    }
}

#[test]
fn the_next_plan_is_the_plan_8e645b3_made() {
    let engine = engine();
    let next = next_snapshots();
    let stored = stored_plan();
    for (store, baseline) in stored_baselines() {
        let cx = Context::new(&engine, &baseline, &next);
        let plan = engine
            .plan(&baseline, &next)
            .unwrap_or_else(|e| panic!("{store}: the next snapshots do not plan: {e}"));
        let today = serde_json::to_value(&plan).expect("a plan serializes");
        let what = format!("the plan from the baseline {store} loaded");
        same_plan_except_hashes(&what, &today, &stored, &cx);
        same_link_hashes(&what, &today, &stored, &cx);
        assert_eq!(
            plan.to_string(),
            stored_text(),
            "{what}: its Display text differs from 8e645b3's (plan.txt)"
        );
        assert_eq!(plan.fingerprint, engine.map().fingerprint());
    }
    // The stored plan reads as today's SyncPlan, and writes back as stored.
    let read_back: SyncPlan = serde_json::from_value(stored.clone())
        .unwrap_or_else(|e| panic!("today's code does not read the stored plan: {e}"));
    assert_eq!(
        serde_json::to_value(&read_back).expect("a plan serializes"),
        stored,
        "the stored plan, read by today's code and written again"
    );
}

#[test]
fn after_the_next_plan_nothing_is_left_to_write() {
    let engine = engine();
    let next = next_snapshots();
    for (store, mut baseline) in stored_baselines() {
        let mut systems: Vec<Sys> = next.iter().map(Sys::from_snapshot).collect();
        let plan = engine.plan(&baseline, &next).expect("the next plan");
        assert!(!plan.ops.is_empty(), "the fixture's next plan writes");
        let outcomes = execute(&mut systems, &plan);
        engine
            .commit(&mut baseline, &plan, &outcomes)
            .unwrap_or_else(|e| panic!("{store}: the plan does not commit: {e}"));
        assert_eq!(
            baseline.header().fingerprint,
            Some(engine.map().fingerprint()),
            "{store}: the commit keeps today's map fingerprint"
        );
        let snapshots: Vec<Snapshot> = systems.iter().map(Sys::complete).collect();
        let again = engine.plan(&baseline, &snapshots).expect("the plan after");
        assert!(
            again.ops.is_empty() && again.refusal.is_none(),
            "{store}: after executing and committing the next plan there is more to write:\n{again}"
        );
        // What waits for review still does; nothing new is held.
        assert_eq!(
            again.conflicts, plan.conflicts,
            "{store}: the conflicts held"
        );
        assert_eq!(
            again.held, plan.held,
            "{store}: the values and records held"
        );
        assert_eq!(again.issues, plan.issues, "{store}: the issues");
        // The plan after confirms the writes read back; once committed,
        // nothing is left but the entity of the record an issue skips.
        let outcomes = execute(&mut systems, &again);
        engine
            .commit(&mut baseline, &again, &outcomes)
            .expect("the plan after commits");
        let settled = engine.plan(&baseline, &snapshots).expect("a third plan");
        let skipped: BTreeSet<_> = settled
            .issues
            .iter()
            .filter_map(|i| i.entity.clone())
            .collect();
        assert!(
            settled.ops.is_empty() && settled.changes.iter().all(|c| skipped.contains(&c.entity)),
            "{store}: two plans after the next one, still something to do:\n{settled}"
        );
    }
}

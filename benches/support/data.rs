//! Seeded synthetic CRM contacts: a small PRNG, 20 fields of realistic kinds,
//! and the change set a sync run sees.
//!
//! Every value is a pure function of (seed, entity number, system), so each
//! bench builds exactly the form it needs (recsync records, the floor's
//! vectors, the typical user's maps) without holding a second copy of the
//! data. The numbers below are per system:
//!
//! - about 4% of entities edited in that system only (1-3 fields, never the
//!   email, which is the matching key);
//! - 1% of entities edited in two systems (the first pair for two systems, a
//!   random pair of three), half of them conflicting (the same fields set to
//!   different values), half on different fields; so about 5% changed per
//!   system in all;
//! - 0.2% deleted (absent from the complete snapshot);
//! - 0.5% created (new records with new emails, after every existing id).
//!
//! Record ids are `crm-0000042`, `mkt-0000042`, `erp-0000042`: entity 42 in
//! each system. Zero padding keeps id order equal to entity order in every
//! system, which the floor's merge relies on.

use chrono::{Datelike, NaiveDate};
use serde_json::{Number, Value};

/// The fixed seed ("recsync0").
pub const SEED: u64 = 0x7265_6373_796e_6330;

/// The canonical (and native) field names, in order. The email (field 0) is
/// the matching key.
pub const FIELDS: [&str; 20] = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "title",
    "score",
    "stage",
    "created_on",
    "company",
    "industry",
    "employees",
    "revenue",
    "city",
    "country",
    "opt_in",
    "tags",
    "notes",
    "website",
    "lead_source",
    "last_contacted",
];

/// The systems, in priority order; two-system runs use the first two.
pub const SYSTEMS: [&str; 3] = ["crm", "marketing", "erp"];

/// Record id prefixes, per system.
const PREFIX: [&str; 3] = ["crm", "mkt", "erp"];

/// Entities are edited in one system with this chance, per system (in 1/10,000).
const EDIT_ONE: u64 = 400;
/// Deleted in one system (after the edit band), per system (in 1/10,000).
const DELETE: u64 = 20;
/// Edited in two systems (in 1/10,000).
const EDIT_TWO: u64 = 100;
/// Records created per system, per 1,000 entities.
const CREATE_PER_1000: usize = 5;

/// 2024-01-01T00:00:00Z: initial `updated_at` values fall in the two years
/// before it.
const INITIAL_EPOCH: i64 = 1_704_067_200;
/// 2026-05-01T00:00:00Z: edits happen in the day after it.
const EDIT_EPOCH: i64 = 1_777_593_600;

/// splitmix64: tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream for `parts` (entity number, system, purpose) under the seed.
    pub fn stream(parts: &[u64]) -> Rng {
        let mut h = SEED;
        for p in parts {
            h = mix(h ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        Rng(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// Stream purposes.
const VALUES: u64 = 1;
const STAMP: u64 = 2;
const FATE: u64 = 3;
const EDIT: u64 = 4;
const CREATE: u64 = 5;
const INCREMENT: u64 = 6;

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "John",
    "Sophie",
    "Niklaus",
    "Hedy",
    "Tim",
    "Katherine",
    "Linus",
    "Anita",
    "Bjarne",
    "Karen",
    "Guido",
    "Jean",
    "Yukihiro",
    "Shafi",
    "Leslie",
    "Lynn",
    "Robin",
    "Mary",
    "Carl",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "McCarthy",
    "Wilson",
    "Wirth",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "Torvalds",
    "Borg",
    "Stroustrup",
    "Jones",
    "van Rossum",
    "Sammet",
    "Matsumoto",
    "Goldwasser",
    "Lamport",
    "Conway",
    "Milner",
    "Keller",
    "Hewitt",
];
const TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "CFO",
    "VP Sales",
    "VP Marketing",
    "Head of Operations",
    "Engineering Manager",
    "Software Engineer",
    "Account Executive",
    "Marketing Manager",
    "Product Manager",
    "Data Analyst",
    "Office Manager",
    "Procurement Lead",
    "Founder",
];
const STAGES: &[&str] = &[
    "subscriber",
    "lead",
    "mql",
    "sql",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];
const INDUSTRIES: &[&str] = &[
    "Software",
    "Manufacturing",
    "Retail",
    "Healthcare",
    "Finance",
    "Education",
    "Logistics",
    "Energy",
    "Media",
    "Hospitality",
    "Construction",
    "Agriculture",
];
const CITIES: &[&str] = &[
    "Oslo",
    "Berlin",
    "Paris",
    "Lisbon",
    "Madrid",
    "Milan",
    "Vienna",
    "Prague",
    "Warsaw",
    "Dublin",
    "London",
    "Toronto",
    "Chicago",
    "Austin",
    "Denver",
    "Seattle",
    "Sydney",
    "Tokyo",
    "Seoul",
    "Singapore",
];
const COUNTRIES: &[&str] = &[
    "NO", "DE", "FR", "PT", "ES", "IT", "AT", "CZ", "PL", "IE", "GB", "CA", "US", "AU", "JP", "KR",
    "SG",
];
const SOURCES: &[&str] = &[
    "web",
    "referral",
    "event",
    "partner",
    "cold call",
    "paid search",
    "social",
    "import",
];
const TAGS: &[&str] = &[
    "vip",
    "newsletter",
    "webinar",
    "trial",
    "churn-risk",
    "upsell",
    "partner",
    "beta",
    "event",
    "enterprise",
    "smb",
    "renewal",
];
const SYLLABLES: &[&str] = &[
    "North", "wind", "Blue", "Star", "Iron", "Bright", "Oak", "Silver", "Green", "field", "stone",
    "works", "Rapid", "Summit", "Harbor", "Pixel", "Quantum", "Cedar",
];
const SUFFIXES: &[&str] = &["Inc", "Ltd", "GmbH", "AS", "Labs", "Group", "Systems", "Co"];
const WORDS: &[&str] = &[
    "called",
    "about",
    "renewal",
    "pricing",
    "asked",
    "for",
    "a",
    "demo",
    "next",
    "week",
    "budget",
    "approved",
    "waiting",
    "on",
    "legal",
    "prefers",
    "email",
    "met",
    "at",
    "conference",
    "needs",
    "integration",
    "with",
    "their",
    "ERP",
    "follow",
    "up",
    "in",
    "Q3",
    "decision",
    "maker",
    "is",
    "the",
    "team",
    "lead",
    "interested",
    "enterprise",
    "plan",
    "sent",
    "proposal",
];

fn date(days_since_ce: u64) -> String {
    let d = NaiveDate::from_num_days_from_ce_opt(days_since_ce as i32).unwrap_or(NaiveDate::MIN);
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// 2015-01-01 as days since the common era.
const DAY_2015: u64 = 735_599;

fn datetime(days_since_ce: u64, second: u64) -> String {
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(days_since_ce),
        second / 3600,
        second / 60 % 60,
        second % 60
    )
}

fn company(rng: &mut Rng) -> String {
    format!(
        "{}{} {}",
        rng.pick(SYLLABLES),
        rng.pick(SYLLABLES).to_lowercase(),
        rng.pick(SUFFIXES)
    )
}

fn website(company: &str) -> String {
    let host: String = company
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("https://www.{host}.example")
}

fn notes(rng: &mut Rng) -> String {
    let len = rng.below(201) as usize;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(rng.pick(WORDS));
    }
    s.truncate(len);
    s
}

fn tags(rng: &mut Rng) -> Value {
    let n = rng.below(5) as usize;
    let mut out: Vec<&str> = Vec::with_capacity(n);
    while out.len() < n {
        let t = rng.pick(TAGS);
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Value::Array(out.into_iter().map(Value::from).collect())
}

/// A fresh random value for field `f` (any field but the email).
fn field_value(f: usize, rng: &mut Rng) -> Value {
    match FIELDS[f] {
        "first_name" => rng.pick(FIRST).into(),
        "last_name" => rng.pick(LAST).into(),
        "phone" => format!(
            "+1-{:03}-{:03}-{:04}",
            200 + rng.below(800),
            rng.below(1000),
            rng.below(10_000)
        )
        .into(),
        "title" => rng.pick(TITLES).into(),
        "score" => rng.below(101).into(),
        "stage" => rng.pick(STAGES).into(),
        "created_on" => date(DAY_2015 + rng.below(3650)).into(),
        "company" => company(rng).into(),
        "industry" => rng.pick(INDUSTRIES).into(),
        "employees" => (1 + rng.below(50_000)).into(),
        "revenue" => Number::from_f64(rng.below(10_000_000_000) as f64 / 100.0)
            .map_or(Value::Null, Value::Number),
        "city" => rng.pick(CITIES).into(),
        "country" => rng.pick(COUNTRIES).into(),
        "opt_in" => (rng.below(2) == 1).into(),
        "tags" => tags(rng),
        "notes" => notes(rng).into(),
        "website" => website(&company(rng)).into(),
        "lead_source" => rng.pick(SOURCES).into(),
        "last_contacted" => datetime(DAY_2015 + 3287 + rng.below(850), rng.below(86_400)).into(),
        other => unreachable!("no generator for field {other}"),
    }
}

/// The 20 values of entity `number`, all systems alike. `salt` separates
/// created records from existing entities.
fn entity_values(number: u64, salt: u64) -> Vec<Value> {
    let mut rng = Rng::stream(&[VALUES, salt, number]);
    let mut values: Vec<Value> = Vec::with_capacity(FIELDS.len());
    values.push(Value::Null); // the email, set below from the names
    for f in 1..FIELDS.len() {
        values.push(field_value(f, &mut rng));
    }
    let first = values[1].as_str().unwrap_or("x").to_lowercase();
    let last: String = values[2]
        .as_str()
        .unwrap_or("x")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let domain = if salt == 0 {
        "example.com"
    } else {
        "new.example.net"
    };
    values[0] = format!("{first}.{last}.{salt}x{number}@{domain}").into();
    if let Some(c) = values[8].as_str() {
        values[17] = website(c).into();
    }
    values
}

/// One system's record of one entity, before it is put in any form.
#[derive(Debug, Clone)]
pub struct GenRecord {
    /// Index into [`SYSTEMS`].
    pub system: usize,
    /// The number in the record id.
    pub number: usize,
    /// Values, aligned with [`FIELDS`].
    pub values: Vec<Value>,
    /// Seconds since the Unix epoch.
    pub updated_at: i64,
    /// The record's revision (reported as its version where versions are on).
    pub version: u64,
}

impl GenRecord {
    /// The native record id (`crm-0000042`).
    pub fn id(&self) -> String {
        record_id(self.system, self.number)
    }
}

/// The native id of record `number` in `system`.
pub fn record_id(system: usize, number: usize) -> String {
    format!("{}-{:07}", PREFIX[system], number)
}

/// What happens to one entity in one system between the initial sync and
/// the run being planned.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    Same,
    Edited(Vec<(usize, Value)>),
    Deleted,
}

/// 1-3 distinct edited fields (never the email, nor any in `exclude`) with
/// values that differ from `base`. With `fields`, the same fields as those
/// edits, each set to a value that also differs from theirs (a conflict)
/// where the field has such a value.
fn edits(
    rng: &mut Rng,
    base: &[Value],
    fields: Option<&[(usize, Value)]>,
    exclude: &[usize],
) -> Vec<(usize, Value)> {
    let chosen: Vec<usize> = match fields {
        Some(same) => same.iter().map(|(f, _)| *f).collect(),
        None => {
            let n = 1 + rng.below(3) as usize;
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let f = 1 + rng.below(FIELDS.len() as u64 - 1) as usize;
                if !out.contains(&f) && !exclude.contains(&f) {
                    out.push(f);
                }
            }
            out
        }
    };
    chosen
        .into_iter()
        .map(|f| {
            let avoid = fields.and_then(|same| same.iter().find(|(g, _)| *g == f).map(|(_, v)| v));
            // A field with two values (the opt-in) has none that differs
            // from both the base and the other side: after a few draws the
            // two sides agree instead of conflicting.
            let mut draws = 0;
            loop {
                let v = field_value(f, rng);
                draws += 1;
                if v != base[f] && (Some(&v) != avoid || draws > 32) {
                    break (f, v);
                }
            }
        })
        .collect()
}

/// The size and shape of one generated data set.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Entities synced initially.
    pub n: usize,
    /// Systems (2 or 3).
    pub systems: usize,
}

impl Spec {
    /// `n` entities in `systems` systems.
    pub fn new(n: usize, systems: usize) -> Spec {
        assert!((2..=SYSTEMS.len()).contains(&systems));
        Spec { n, systems }
    }

    /// Records created per system in the changed state.
    pub fn created_per_system(&self) -> usize {
        self.n * CREATE_PER_1000 / 1000
    }

    /// The initial `updated_at` and version of entity `i` in system `s`.
    fn stamp(i: usize, s: usize) -> (i64, u64) {
        let mut rng = Rng::stream(&[STAMP, s as u64, i as u64]);
        (
            INITIAL_EPOCH - rng.below(2 * 365 * 86_400) as i64,
            1 + rng.below(40),
        )
    }

    fn fates(&self, i: usize, base: &[Value]) -> Vec<Fate> {
        let mut rng = Rng::stream(&[FATE, self.systems as u64, i as u64]);
        let mut fates = vec![Fate::Same; self.systems];
        if rng.below(10_000) < EDIT_TWO {
            let (a, b) = match (self.systems, rng.below(3)) {
                (2, _) | (_, 0) => (0, 1),
                (_, 1) => (0, 2),
                _ => (1, 2),
            };
            let first = edits(&mut rng, base, None, &[]);
            let second = if rng.below(2) == 0 {
                edits(&mut rng, base, Some(&first), &[])
            } else {
                let taken: Vec<usize> = first.iter().map(|(f, _)| *f).collect();
                edits(&mut rng, base, None, &taken)
            };
            fates[a] = Fate::Edited(first);
            fates[b] = Fate::Edited(second);
        } else {
            for fate in &mut fates {
                let roll = rng.below(10_000);
                if roll < EDIT_ONE {
                    *fate = Fate::Edited(edits(&mut rng, base, None, &[]));
                } else if roll < EDIT_ONE + DELETE {
                    *fate = Fate::Deleted;
                }
            }
        }
        fates
    }

    /// Every entity's values as initially synced, with its number:
    /// the baseline's content.
    pub fn entities(&self, mut f: impl FnMut(usize, Vec<Value>)) {
        for i in 0..self.n {
            f(i, entity_values(i as u64, 0));
        }
    }

    /// The records every system holds at the initial sync (all alike), in id
    /// order per system.
    pub fn initial(&self, mut f: impl FnMut(GenRecord)) {
        for i in 0..self.n {
            let values = entity_values(i as u64, 0);
            for s in 0..self.systems {
                let (updated_at, version) = Self::stamp(i, s);
                f(GenRecord {
                    system: s,
                    number: i,
                    values: values.clone(),
                    updated_at,
                    version,
                });
            }
        }
    }

    /// The records every system holds at the run being planned: the initial
    /// ones with this run's edits, deletes (left out) and creates (last), in
    /// id order per system.
    pub fn changed(&self, mut f: impl FnMut(GenRecord)) {
        for i in 0..self.n {
            let values = entity_values(i as u64, 0);
            let fates = self.fates(i, &values);
            for (s, fate) in fates.into_iter().enumerate() {
                let (updated_at, version) = Self::stamp(i, s);
                let mut record = GenRecord {
                    system: s,
                    number: i,
                    values: values.clone(),
                    updated_at,
                    version,
                };
                match fate {
                    Fate::Same => {}
                    Fate::Deleted => continue,
                    Fate::Edited(edits) => {
                        for (field, v) in edits {
                            record.values[field] = v;
                        }
                        let mut rng = Rng::stream(&[EDIT, s as u64, i as u64]);
                        record.updated_at = EDIT_EPOCH + rng.below(86_400) as i64;
                        record.version += 1;
                    }
                }
                f(record);
            }
        }
        for s in 0..self.systems {
            for k in 0..self.created_per_system() {
                let salt = 1 + s as u64;
                let mut rng = Rng::stream(&[CREATE, salt, k as u64]);
                f(GenRecord {
                    system: s,
                    number: self.n + k,
                    values: entity_values(k as u64, salt),
                    updated_at: EDIT_EPOCH + rng.below(86_400) as i64,
                    version: 1,
                });
            }
        }
    }

    /// `k` records of the first system edited since the initial sync (1-3
    /// fields each), spread evenly over the entities: what a webhook or a
    /// "changed since" query reports. In id order.
    pub fn increment(&self, k: usize, mut f: impl FnMut(GenRecord)) {
        let k = k.min(self.n);
        for j in 0..k {
            let i = j * self.n / k;
            let values = entity_values(i as u64, 0);
            let (_, version) = Self::stamp(i, 0);
            let mut rng = Rng::stream(&[INCREMENT, i as u64]);
            let mut record = GenRecord {
                system: 0,
                number: i,
                values,
                updated_at: EDIT_EPOCH + rng.below(86_400) as i64,
                version: version + 1,
            };
            for (field, v) in edits(&mut rng, &record.values, None, &[]) {
                record.values[field] = v;
            }
            f(record);
        }
    }
}

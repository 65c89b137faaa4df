//! Safety guards: budgets on destructive change, checked before a plan is
//! returned.
//!
//! A connector bug that returns an empty listing, a scope filter changed by
//! mistake, a script that blanks a column: each would read as a wave of
//! deletes, scope exits or emptied fields. Every plan counts them against
//! the map's [`Guards`]; over budget, the plan comes back with those changes
//! withheld and a [`Refusal`] that lists what would have happened. The host
//! may approve it ([`PlanOptions::approve`](crate::engine::PlanOptions::approve));
//! only then does a plan of the same changes include them. Everything else
//! in the plan goes ahead.
//!
//! An empty snapshot is judged first: refused, it is ignored, so the deletes
//! it would mean are not even counted. Approved, it is read, and the deletes
//! it means come before the delete budget like any others (a second refusal
//! to approve, listing them).
//!
//! | guard | counts | default |
//! | --- | --- | --- |
//! | [`deletes`](Guards::deletes) | records a plan deletes in other systems | 10 records, or 10% of entities, whichever allows more |
//! | [`emptied_fields`](Guards::emptied_fields) | field writes that empty a non-empty value | 100 fields, or 10% of entities |
//! | [`scope_exits`](Guards::scope_exits) | records that leave their system's scope | 10 records, or 10% of entities |
//! | [`empty_snapshot`](Guards::empty_snapshot) | a complete snapshot with no records from a system that has linked records | refused |

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::StableHasher;
use crate::ids::EntityId;
use crate::model::SystemId;

/// How many changes of one kind a plan may make unapproved: up to `count`,
/// or up to `share` of the baseline's entities, whichever allows more.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Allowed whatever the share.
    pub count: usize,
    /// Allowed share of the baseline's entities (0.1 is 10%).
    pub share: f64,
}

impl Budget {
    /// A budget of `count` changes, or `share` of the entities.
    pub fn new(count: usize, share: f64) -> Self {
        Budget { count, share }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Budget {
            count: usize::MAX,
            share: f64::INFINITY,
        }
    }

    /// Nothing allowed unapproved.
    pub fn none() -> Self {
        Budget {
            count: 0,
            share: 0.0,
        }
    }

    /// Whether `n` changes over `entities` entities are within budget.
    pub fn allows(&self, n: usize, entities: usize) -> bool {
        n <= self.count || (n as f64) <= self.share * entities as f64
    }
}

/// The safety guards of a map. Build with [`Guards::default`] and the
/// setters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Guards {
    /// Records deleted in other systems by propagated deletes.
    pub deletes: Budget,
    /// Field writes that replace a non-empty value with an empty one.
    pub emptied_fields: Budget,
    /// Records leaving their system's scope.
    pub scope_exits: Budget,
    /// Refuse a complete snapshot that holds no records while the baseline
    /// has records linked in that system (a listing that failed quietly).
    pub empty_snapshot: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            deletes: Budget::new(10, 0.1),
            emptied_fields: Budget::new(100, 0.1),
            scope_exits: Budget::new(10, 0.1),
            empty_snapshot: true,
        }
    }
}

impl Guards {
    /// No guard at all.
    pub fn off() -> Self {
        Guards {
            deletes: Budget::unlimited(),
            emptied_fields: Budget::unlimited(),
            scope_exits: Budget::unlimited(),
            empty_snapshot: false,
        }
    }

    /// Sets the delete budget.
    #[must_use]
    pub fn deletes(mut self, budget: Budget) -> Self {
        self.deletes = budget;
        self
    }

    /// Sets the emptied-field budget.
    #[must_use]
    pub fn emptied_fields(mut self, budget: Budget) -> Self {
        self.emptied_fields = budget;
        self
    }

    /// Sets the scope-exit budget.
    #[must_use]
    pub fn scope_exits(mut self, budget: Budget) -> Self {
        self.scope_exits = budget;
        self
    }

    /// Whether an empty complete snapshot is refused.
    #[must_use]
    pub fn empty_snapshot(mut self, refuse: bool) -> Self {
        self.empty_snapshot = refuse;
        self
    }
}

/// One guard that a plan went over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trip {
    /// Too many deletes.
    Deletes {
        /// How many the plan would make.
        count: usize,
        /// Entities in the baseline.
        entities: usize,
        /// The budget.
        budget: Budget,
    },
    /// Too many fields emptied.
    EmptiedFields {
        /// How many the plan would write.
        count: usize,
        /// Entities in the baseline.
        entities: usize,
        /// The budget.
        budget: Budget,
    },
    /// Too many records leaving scope.
    ScopeExits {
        /// How many records would leave.
        count: usize,
        /// Entities in the baseline.
        entities: usize,
        /// The budget.
        budget: Budget,
    },
    /// A complete snapshot came back empty; it was ignored.
    EmptySnapshot {
        /// The system.
        system: SystemId,
        /// Records the baseline has linked in it.
        linked: usize,
    },
}

impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let over = |f: &mut fmt::Formatter<'_>, what: &str, count, entities, b: &Budget| {
            write!(
                f,
                "{count} {what} of {entities} entities, over the budget of {} or {:.0}%",
                b.count,
                b.share * 100.0
            )
        };
        match self {
            Trip::Deletes {
                count,
                entities,
                budget,
            } => over(f, "deletes", count, entities, budget),
            Trip::EmptiedFields {
                count,
                entities,
                budget,
            } => over(f, "emptied fields", count, entities, budget),
            Trip::ScopeExits {
                count,
                entities,
                budget,
            } => over(f, "scope exits", count, entities, budget),
            Trip::EmptySnapshot { system, linked } => write!(
                f,
                "complete snapshot of {system} is empty but {linked} records are linked there; it was ignored"
            ),
        }
    }
}

/// What kind of change was withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WithheldKind {
    /// A delete of a record.
    Delete,
    /// A field write emptying a value.
    EmptiedField,
    /// A record leaving scope.
    ScopeExit,
}

/// One change a refused plan did not make.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Withheld {
    /// What kind of change.
    pub kind: WithheldKind,
    /// The entity.
    pub entity: EntityId,
    /// The system whose record would change.
    pub system: SystemId,
    /// The record, where it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The canonical field, for an emptied field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A host's approval of one refused set of changes (one per guard stage of
/// a [`Refusal`]): a plan given it
/// ([`PlanOptions::approve`](crate::engine::PlanOptions::approve)) that would
/// make exactly those changes makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Approval(pub u64);

impl fmt::Display for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Approval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Approval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map(Approval).map_err(|_| {
            serde::de::Error::custom(format!("invalid approval {text:?}: expected 16 hex digits"))
        })
    }
}

/// Why part of a plan was refused, what would have happened, and the
/// approvals that let it happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Refusal {
    /// The guards the plan went over.
    pub trips: Vec<Trip>,
    /// Every change withheld, in entity order. (An ignored empty snapshot
    /// withholds everything it would have meant; it is listed as a trip.)
    pub withheld: Vec<Withheld>,
    /// One approval per guard stage that refused; approving the refusal
    /// gives them all to the next plan.
    pub approvals: Vec<Approval>,
}

impl Refusal {
    /// Adds a refused stage.
    pub(crate) fn add(&mut self, trips: Vec<Trip>, mut withheld: Vec<Withheld>) {
        withheld.sort();
        self.approvals.push(fingerprint(&trips, &withheld));
        self.trips.extend(trips);
        self.withheld.extend(withheld);
        self.withheld.sort();
    }

    pub(crate) fn empty() -> Self {
        Refusal {
            trips: Vec::new(),
            withheld: Vec::new(),
            approvals: Vec::new(),
        }
    }
}

/// The approval id of a set of trips and withheld changes.
pub(crate) fn fingerprint(trips: &[Trip], withheld: &[Withheld]) -> Approval {
    let mut h = StableHasher::new("approval");
    for t in trips {
        match t {
            Trip::Deletes { .. } => h.str("deletes"),
            Trip::EmptiedFields { .. } => h.str("emptied"),
            Trip::ScopeExits { .. } => h.str("scope"),
            Trip::EmptySnapshot { system, linked } => {
                h.str("empty");
                h.str(system.as_str());
                h.u64(*linked as u64);
            }
        }
    }
    for w in withheld {
        h.u64(w.kind as u64);
        h.str(w.entity.as_str());
        h.str(w.system.as_str());
        h.str(w.record_id.as_deref().unwrap_or(""));
        h.str(w.field.as_deref().unwrap_or(""));
    }
    Approval(h.finish())
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused by safety guards (approve to proceed):")?;
        for t in &self.trips {
            write!(f, "\n    {t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_the_count_or_the_share() {
        let b = Budget::new(10, 0.1);
        assert!(b.allows(10, 5));
        assert!(b.allows(50, 1000));
        assert!(!b.allows(101, 1000));
        assert!(!Budget::none().allows(1, 1000));
        assert!(Budget::none().allows(0, 0));
        assert!(Budget::unlimited().allows(usize::MAX, 1));
    }

    #[test]
    fn approval_depends_on_what_is_withheld() {
        let w = |e: &str| Withheld {
            kind: WithheldKind::Delete,
            entity: EntityId::new(e),
            system: SystemId::new("crm"),
            record_id: Some("1".into()),
            field: None,
        };
        let t = vec![Trip::Deletes {
            count: 2,
            entities: 3,
            budget: Budget::none(),
        }];
        let a = fingerprint(&t, &[w("a"), w("b")]);
        let mut r = Refusal::empty();
        r.add(t.clone(), vec![w("b"), w("a")]);
        assert_eq!(r.approvals, vec![a]);
        assert_eq!(r.withheld, vec![w("a"), w("b")]);
        assert_ne!(fingerprint(&t, &[w("a")]), a);
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Approval>(&text).unwrap(), a);
    }
}

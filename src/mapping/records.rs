//! Map-level rules for whole records: how they are matched, where they are
//! created and deleted, which are in scope, and the safety guards.

use super::match_key::{MatchKey, MatchMode};
use crate::guard::Guards;
use crate::hash::StableHasher;
use crate::mapping::{Direction, FieldSpec, MapProblem, Normalization};
use crate::model::SystemId;
use crate::policy::{DeleteEditPolicy, DeletePolicy, ReadOnlyMode};
use crate::scope::{Filter, ScopeExit};

/// The record rules as given to the builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordRulesBuilder {
    pub(crate) match_keys: Vec<MatchKey>,
    pub(crate) mode: MatchMode,
    pub(crate) flow: Option<Direction>,
    pub(crate) deletes: DeletePolicy,
    pub(crate) deletes_from: Vec<(SystemId, DeletePolicy)>,
    pub(crate) delete_vs_edit: DeleteEditPolicy,
    pub(crate) scope: Vec<(SystemId, Filter)>,
    pub(crate) scope_exit: ScopeExit,
    pub(crate) guards: Guards,
    pub(crate) mirror: bool,
    pub(crate) read_only: Vec<(SystemId, ReadOnlyMode)>,
}

/// The record rules of a built map, per system index.
#[derive(Debug, Clone)]
pub(crate) struct RecordRules {
    pub(crate) match_keys: Vec<(usize, Normalization)>,
    pub(crate) mode: MatchMode,
    pub(crate) flow: Direction,
    /// Whether a system's new records are created in, and its deletes
    /// propagate to, the others.
    pub(crate) source: Vec<bool>,
    /// Whether records are created in, and deletes propagated to, a system.
    pub(crate) target: Vec<bool>,
    pub(crate) delete_policy: Vec<DeletePolicy>,
    pub(crate) delete_vs_edit: DeleteEditPolicy,
    pub(crate) scope: Vec<Option<Filter>>,
    pub(crate) scope_exit: ScopeExit,
    pub(crate) guards: Guards,
    /// A one-way record direction mirrors: records only in targets are
    /// deleted there.
    pub(crate) mirror: bool,
    /// Per system: read-only (never written), and what becomes of the
    /// writes it would need.
    pub(crate) read_only: Vec<Option<ReadOnlyMode>>,
}

impl RecordRulesBuilder {
    pub(crate) fn build(
        self,
        systems: &[SystemId],
        fields: &[FieldSpec],
        problems: &mut Vec<MapProblem>,
    ) -> RecordRules {
        let index = |s: &SystemId| systems.iter().position(|x| x == s);
        let unknown = |what: &str, system: &SystemId, problems: &mut Vec<MapProblem>| {
            problems.push(MapProblem::UnknownSystem {
                field: what.to_owned(),
                system: system.clone(),
            });
        };
        let n = systems.len();
        let mut match_keys = Vec::new();
        for key in self.match_keys {
            match fields.iter().position(|f| f.name() == key.field) {
                Some(f) if match_keys.iter().any(|(x, _)| *x == f) => {
                    problems.push(MapProblem::DuplicateKey { key: key.field });
                }
                Some(f) => match_keys.push((f, key.normalization)),
                None => problems.push(MapProblem::UnknownKey { key: key.field }),
            }
        }
        let flow = self.flow.unwrap_or(Direction::Bidirectional);
        let (source, target) = match &flow {
            Direction::Bidirectional => (vec![true; n], vec![true; n]),
            Direction::NotSynced => (vec![false; n], vec![false; n]),
            Direction::OneWay { from, .. } => match index(from) {
                Some(f) => (
                    (0..n).map(|i| i == f).collect(),
                    (0..n).map(|i| i != f).collect(),
                ),
                None => {
                    unknown("(records)", from, problems);
                    (vec![false; n], vec![false; n])
                }
            },
        };
        let mut delete_policy = vec![self.deletes; n];
        for (s, p) in self.deletes_from {
            match index(&s) {
                Some(i) => delete_policy[i] = p,
                None => unknown("(deletes)", &s, problems),
            }
        }
        let mut scope: Vec<Option<Filter>> = vec![None; n];
        for (s, f) in self.scope {
            match index(&s) {
                Some(i) if scope[i].is_some() => {
                    problems.push(MapProblem::DuplicateScope { system: s })
                }
                Some(i) => scope[i] = Some(f),
                None => unknown("(scope)", &s, problems),
            }
        }
        if self.mirror && !matches!(flow, Direction::OneWay { .. }) {
            problems.push(MapProblem::MirrorNotOneWay);
        }
        let mut read_only: Vec<Option<ReadOnlyMode>> = vec![None; n];
        for (s, mode) in self.read_only {
            match index(&s) {
                Some(i) if read_only[i].is_some() => problems.push(MapProblem::Twice {
                    field: "(read_only)".to_owned(),
                    system: s,
                    what: "read-only modes",
                }),
                Some(i) => read_only[i] = Some(mode),
                None => unknown("(read_only)", &s, problems),
            }
        }
        RecordRules {
            match_keys,
            mode: self.mode,
            flow,
            source,
            target,
            delete_policy,
            delete_vs_edit: self.delete_vs_edit,
            scope,
            scope_exit: self.scope_exit,
            guards: self.guards,
            mirror: self.mirror,
            read_only,
        }
    }
}

impl RecordRules {
    pub(crate) fn fingerprint(&self, h: &mut StableHasher, fields: &[FieldSpec]) {
        h.str("records");
        for (f, norm) in &self.match_keys {
            h.str(fields.get(*f).map_or("", FieldSpec::name));
            h.str(&format!("{norm:?}"));
        }
        h.str(&format!("{:?}/{:?}", self.mode, self.flow));
        for p in &self.delete_policy {
            h.str(&format!("{p:?}"));
        }
        h.str(&format!("{:?}/{:?}", self.delete_vs_edit, self.scope_exit));
        for f in &self.scope {
            match f {
                Some(f) => f.fingerprint(h),
                None => h.str("-"),
            }
        }
        // Hashed only when set, so that maps without them keep the
        // fingerprints they had.
        if self.mirror {
            h.str("mirror");
        }
        if self.read_only.iter().any(Option::is_some) {
            h.str(&format!("read-only {:?}", self.read_only));
        }
    }

    /// Whether system `s` is read-only, and in which mode.
    pub(crate) fn read_only_at(&self, s: usize) -> Option<ReadOnlyMode> {
        self.read_only.get(s).copied().flatten()
    }
}

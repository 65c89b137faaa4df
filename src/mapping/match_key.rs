//! The keys records are matched by, and how records not linked yet become
//! entities: what a map declares. Matching itself is
//! [`identity`](crate::identity)'s.

use serde::{Deserialize, Serialize};

use super::Normalization;

/// How records not linked yet become entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MatchMode {
    /// Link records that match; report the others as unmatched.
    MatchOnly,
    /// Link records that match; create the others in the systems the map's
    /// record direction allows. The default.
    #[default]
    MatchThenCreate,
    /// Match nothing: every record not linked yet is created in the other
    /// systems (loading into systems known to be empty). Correlation keys
    /// still link the records recsync itself created.
    CreateOnly,
}

/// One key records are matched by: a canonical field, compared after a
/// normalization ([`Normalization::CaseInsensitive`] unless set).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchKey {
    pub(crate) field: String,
    pub(crate) normalization: Normalization,
}

impl MatchKey {
    /// Match by `field`, trimmed and case-folded.
    pub fn new(field: impl Into<String>) -> Self {
        MatchKey {
            field: field.into(),
            normalization: Normalization::CaseInsensitive,
        }
    }

    /// Compare values after `normalization` instead.
    #[must_use]
    pub fn normalize(mut self, normalization: Normalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// The canonical field.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// How values are compared.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }
}

impl From<&str> for MatchKey {
    fn from(field: &str) -> Self {
        MatchKey::new(field)
    }
}

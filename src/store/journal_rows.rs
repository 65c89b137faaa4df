//! A [journal](crate::journal) entry as the shipped stores keep it: the
//! JSON of its [`JournalEntry`], one to a line or row, and, in a database,
//! the columns a listing filters on and retention drops by.

use super::StoreError;
use crate::journal::JournalEntry;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::journal::{JournalQuery, RunId};

/// The entry's JSON, as a store writes it.
pub(crate) fn encode(object: &str, entry: &JournalEntry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(|e| StoreError::Backend {
        message: format!("cannot serialize a journal entry of {object}"),
        source: Some(Box::new(e)),
    })
}

/// A run id as a database's signed 64-bit integer. Run ids are revisions,
/// which the databases keep as such too; one past `i64::MAX` is refused,
/// never wrapped into another run.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn run_sql(object: &str, run: RunId) -> Result<i64, StoreError> {
    i64::try_from(run.0).map_err(|_| StoreError::Backend {
        message: format!(
            "{run} of {object} does not fit the database's journal (run ids above {} are not kept)",
            i64::MAX
        ),
        source: None,
    })
}

/// A retention's run count as the databases' queries take it (a count past
/// `i64::MAX` keeps every run, as it would in memory).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn runs_sql(runs: usize) -> i64 {
    i64::try_from(runs).unwrap_or(i64::MAX)
}

/// A value a listing's condition binds.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) enum Bound<'q> {
    Int(i64),
    Text(&'q str),
}

/// The conditions of `query` on the journal table's columns (`run`,
/// `system`, `record_id`), each `AND <column> = <mark><n>` with `n`
/// counting from `first`, and the values they bind, in order; `None` when
/// no stored entry can match (a run id past what the database keeps).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn conditions<'q>(
    query: &'q JournalQuery,
    mark: char,
    first: usize,
) -> Option<(String, Vec<Bound<'q>>)> {
    let mut sql = String::new();
    let mut values = Vec::new();
    let mut add = |column: &str, value: Bound<'q>| {
        let n = first + values.len();
        sql.push_str(&format!(" AND {column} = {mark}{n}"));
        values.push(value);
    };
    if let Some(run) = query.run {
        add("run", Bound::Int(i64::try_from(run.0).ok()?));
    }
    if let Some(system) = &query.system {
        add("system", Bound::Text(system.as_str()));
    }
    if let Some(id) = &query.record_id {
        add("record_id", Bound::Text(id));
    }
    Some((sql, values))
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod tests {
    use super::*;

    #[test]
    fn conditions_number_their_values_in_order() {
        let all = JournalQuery::all();
        let (sql, values) = conditions(&all, '?', 2).unwrap();
        assert_eq!(sql, "");
        assert!(values.is_empty());
        let query = JournalQuery::record("crm", "c1");
        let (sql, values) = conditions(&query, '$', 2).unwrap();
        assert_eq!(sql, " AND system = $2 AND record_id = $3");
        assert!(matches!(
            values.as_slice(),
            [Bound::Text("crm"), Bound::Text("c1")]
        ));
        let (sql, _) = conditions(&JournalQuery::run(RunId(7)), '?', 2).unwrap();
        assert_eq!(sql, " AND run = ?2");
        assert!(conditions(&JournalQuery::run(RunId(u64::MAX)), '?', 2).is_none());
        assert!(run_sql("contacts", RunId(u64::MAX))
            .unwrap_err()
            .to_string()
            .contains("run 18446744073709551615 of contacts does not fit"));
        assert_eq!(run_sql("contacts", RunId(9)).unwrap(), 9);
    }
}

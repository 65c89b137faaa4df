//! A [journal](crate::journal) entry as the shipped stores keep it: the
//! JSON of its [`JournalEntry`], one to a line or row, and, in a database,
//! the columns a listing filters on and retention drops by.

use super::StoreError;
use crate::journal::JournalEntry;

/// The entry's JSON, as a store writes it.
pub(crate) fn encode(object: &str, entry: &JournalEntry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(|e| StoreError::Backend {
        message: format!("cannot serialize a journal entry of {object}"),
        source: Some(Box::new(e)),
    })
}

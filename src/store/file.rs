//! [`JsonFileStore`]: one JSON file per object type in a directory, replaced
//! atomically on every save and verified on every load.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::check::{crc64, hex, parse_hex, Crc64};
use super::journal_rows;
use super::lane::Lane;
use super::owner::{self, Broader};
use super::row::{self, EntityJson};
use super::{Check, Place, StateStore, StoreError};
use crate::baseline::{Baseline, BaselineHeader, EntityRecord};
use crate::engine::CommitSummary;
use crate::journal::{JournalBatch, JournalEntry, JournalQuery, RunId};

/// The format version this store writes and loads.
const VERSION: u64 = 2;
/// A state file's first line: the format and its version.
const FIRST_LINE: &[u8] = b"{\"recsync_state\":2,\"entities\":[";
/// How every version's first line starts.
const VERSION_PREFIX: &[u8] = b"{\"recsync_state\":";
const ROW_OPEN: &[u8] = b"{\"row\":";
const ROW_SUM: &[u8] = b",\"sum\":\"";
const ROW_CLOSE: &[u8] = b"\"}";
const TRAILER_OPEN: &[u8] = b"],";
const CHECK_OPEN: &[u8] = b"\"check\":\"";
const CHECK_CLOSE: &[u8] = b"\"}";

/// Keeps each object type's baseline in its own JSON file,
/// `<dir>/<object>.json`, readable by its owner only, with checksums that
/// every load verifies.
///
/// Every save writes the whole baseline to a new temporary file in the same
/// directory, flushes it to disk, renames it over the object's file and
/// flushes the directory, so the file always holds one complete baseline:
/// the one before a save, or the one after it. A crash mid-save may leave a
/// temporary file (`.<object>.json.<pid>.<n>.tmp`) behind; loads ignore it
/// and it may be deleted.
///
/// Since a save rewrites the whole file, its cost grows with the baseline;
/// for large baselines saved often, the SQLite store (feature `sqlite`)
/// writes only what a commit touched.
///
/// Object names are used in file names: ASCII letters, digits, `_` and `-`
/// are kept, every other byte is written as `%XX` (so `"../x"` cannot leave
/// the directory), and the empty name becomes `%`.
///
/// # Format (version 2)
///
/// One JSON document, laid out one entity to a line:
///
/// ```text
/// {"recsync_state":2,"entities":[
/// {"row":{"id":"crm:c1","links":{...},"canonical":{...}},"sum":"<crc>"},
/// {"row":{...},"sum":"<crc>"}
/// ],"object":"contacts","count":2,"rows":"<sum>","header":{"revision":7,...},"check":"<crc>"}
/// ```
///
/// - Each entity's `row` is the entity in compact form (as the SQLite store
///   keeps it: a system's shadow only where it differs from the canonical
///   value); `sum` is the CRC-64 of the row's bytes as written.
/// - The last line, the header, names the object type, counts the
///   entities, carries the wrapping sum of the row checksums (`rows`) and
///   the baseline's header (revision, map fingerprint, cursors, records
///   held back as ambiguous); `check` is the CRC-64 of the first line and
///   of the last line up to `"check"`.
///
/// A load verifies all of it: the layout, the header's checksum, the object
/// type, the count, each row's checksum, and the sum of row checksums (which
/// tells a row replaced by another valid one, such as an older copy). CRC-64
/// changes with every single-bit flip and every burst of flips within 64
/// bits, so such damage is always seen; other damage goes unseen with a
/// chance of 2^-64. Damaged state is a [`StoreError::Damaged`] naming the
/// file, the place (line and column, or the header) and the check, never a
/// smaller or different baseline, and never quoting what the file holds.
///
/// A missing file loads as an empty baseline: the first run of an object
/// type. Losing the whole file is not damage a store can see.
///
/// # Journal
///
/// The [journal](crate::journal) of each object type is a file beside its
/// state, `<dir>/<object>.journal.jsonl`: one [`JournalEntry`] to a line,
/// as its JSON, in the order they were saved. A
/// [`save`](StateStore::save) whose summary carries a batch
/// ([`CommitSummary::journal`]) writes the journal too: the entries it
/// had, then the batch's, less what the batch's
/// [`Retention`](crate::journal::Retention) drops as of its time, to a new
/// temporary file (`.<object>.journal.jsonl.<pid>.<n>.tmp`), flushed to
/// disk and renamed over the old one, and only then renames the state
/// file into place. So the journal is always whole (an old one or a new
/// one), and a crash between the two renames leaves at worst the entries
/// of a commit whose baseline save did not complete: writes that did
/// happen in the systems, recorded, with the baseline from before them
/// (the next run reads them back as it reads a crashed run's writes). A
/// save that fails before the state file's rename (the disk full, the
/// journal damaged) may leave the new journal behind in the same way, or
/// the old one; never a baseline without its journal.
///
/// Each save with a batch reads and rewrites the whole journal, as it
/// rewrites the whole state file: an append would be cheaper to write,
/// but could be torn by a crash into a line no load reads, and retention
/// drops the oldest run at nearly every save once the journal holds as
/// many runs as it keeps, which needs a rewrite anyway. A save without a
/// batch, and [`replace`](StateStore::replace), leave the journal alone.
///
/// [`journal`](StateStore::journal) reads the file and refuses a line
/// that is not an entry (cut short, or not written by recsync) with
/// [`StoreError::Damaged`] naming the journal file and the line
/// ([`Check::JournalEntry`]); a save with a batch refuses a line it cannot
/// read the run and time of, the same way, and writes nothing. Journal
/// lines carry no checksums: damage that leaves a line readable, or a
/// line lost whole, goes unseen. To go on past a damaged journal, move
/// its file aside: the baseline does not depend on it (the next save
/// starts a new one). A missing journal file is an empty journal.
///
/// # Files written before version 2
///
/// Files written by earlier versions of this store (one line,
/// `{"header":...,"entities":[...]}`) carry no checksums, so nothing can
/// tell a complete one from one that lost entities. [`load`](StateStore::load)
/// refuses them with [`StoreError::Format`] (`found: 1`). A host that has
/// checked such a file (or has no better copy) takes it over once with
/// [`upgrade_legacy`](JsonFileStore::upgrade_legacy), which loads it without
/// verification and saves it in the current format.
///
/// # Permissions
///
/// The directory is the store's own: [`open`](JsonFileStore::open) creates
/// it owner-only (0700 on unix) and, if it exists with group or other bits
/// set, drops them, as it does for the state and journal files (and
/// leftover temporary files) already in it (0600); new ones are created
/// owner-only. Where a mode cannot be changed (the
/// directory belongs to another user), `open` fails with
/// [`StoreError::Permissions`] naming the path and its mode. Give the store
/// a directory of its own: nothing else in it is touched, but the
/// directory's own mode is.
///
/// Clones share the directory and the order of calls: an
/// [`AsyncStateStore`](super::AsyncStateStore) call runs on the store's
/// blocking thread after every call made before it through any clone.
#[derive(Debug, Clone)]
pub struct JsonFileStore {
    dir: PathBuf,
    counter: Arc<AtomicU64>,
    pub(super) lane: Lane,
}

impl JsonFileStore {
    /// A store in `dir`, which is created (with its parents, owner-only on
    /// unix) if it does not exist. An existing `dir`, and the state files
    /// in it, are made owner-only (see the type's docs on permissions).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        owner::create_dir(&dir).map_err(io_err(&dir))?;
        owner::ensure(&dir, Broader::Tighten)?;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = name.ends_with(".json")
                || name.ends_with(".jsonl")
                || (name.starts_with('.') && name.ends_with(".tmp"));
            if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
                owner::ensure(&entry.path(), Broader::Tighten)?;
            }
        }
        Ok(JsonFileStore {
            dir,
            counter: Arc::new(AtomicU64::new(0)),
            lane: Lane::default(),
        })
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `object`'s baseline.
    pub fn path_of(&self, object: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_stem(object)))
    }

    /// The file that holds `object`'s [journal](crate::journal) (see the
    /// type's docs), once a save has written one.
    pub fn journal_path_of(&self, object: &str) -> PathBuf {
        self.dir
            .join(format!("{}.journal.jsonl", file_stem(object)))
    }

    /// Takes over a file written before format version 2: loads it without
    /// verification (it carries no checksums) and saves it in the current
    /// format, so later loads verify it. Call it once, after checking the
    /// file or restoring the copy to trust; a load of such a file is
    /// refused with [`StoreError::Format`] until then.
    ///
    /// A file in the current format is loaded, and verified, as by
    /// [`load`](StateStore::load): this never skips a check a current file
    /// has. A missing file is an empty baseline, and nothing is written.
    /// An old file that does not have the old format's two keys, `header`
    /// and `entities`, and no others, is refused as damaged.
    pub fn upgrade_legacy(&self, object: &str) -> Result<Baseline, StoreError> {
        let path = self.path_of(object);
        let Some(bytes) = read(&path)? else {
            return Ok(Baseline::new());
        };
        let reader = Reader {
            object,
            path: &path,
        };
        match reader.load(&bytes) {
            Err(StoreError::Format { found: 1, .. }) => {
                let legacy: Legacy = serde_json::from_slice(&bytes).map_err(|e| {
                    reader.damaged(
                        Place::Line {
                            line: e.line() as u64,
                            column: Some(e.column() as u64),
                        },
                        Check::Unreadable,
                    )
                })?;
                let baseline =
                    Baseline::from_parts(legacy.header, legacy.entities).map_err(|source| {
                        StoreError::Baseline {
                            object: object.to_owned(),
                            source,
                        }
                    })?;
                self.write(object, &baseline, None)?;
                Ok(baseline)
            }
            other => other,
        }
    }

    /// A new temporary file's path for `file` (a file name in the
    /// directory): `.<file>.<pid>.<n>.tmp`.
    fn temp_path(&self, file: &Path) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        self.dir
            .join(format!(".{name}.{}.{n}.tmp", std::process::id()))
    }

    /// Writes the baseline and, if given, the journal batch: the journal
    /// renamed into place before the state file (see the type's docs).
    fn write(
        &self,
        object: &str,
        baseline: &Baseline,
        journal: Option<&JournalBatch>,
    ) -> Result<(), StoreError> {
        let path = self.path_of(object);
        let temp = self.temp_path(&path);
        let written = write_temp(&temp, object, baseline);
        if let Err(e) = written {
            // Best effort: a temp file left behind is ignored by loads.
            let _ = fs::remove_file(&temp);
            return Err(match e {
                TempError::Io(source) => StoreError::Io { path: temp, source },
                TempError::Json(e) => StoreError::Backend {
                    message: format!("cannot serialize the baseline of {object}"),
                    source: Some(Box::new(e)),
                },
            });
        }
        if let Some(batch) = journal {
            if let Err(e) = self.keep_journal(object, batch) {
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
        }
        if let Err(source) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(StoreError::Io { path, source });
        }
        sync_dir(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })
    }

    /// Writes `object`'s journal with `batch`'s entries added and what its
    /// retention drops dropped, renamed into place and the directory
    /// flushed (so it is on disk before the state file's rename). Nothing
    /// is written when nothing changes.
    fn keep_journal(&self, object: &str, batch: &JournalBatch) -> Result<(), StoreError> {
        let path = self.journal_path_of(object);
        let stored = read(&path)?;
        let reader = Reader {
            object,
            path: &path,
        };
        let mut lines: Vec<(RunId, DateTime<Utc>, Cow<'_, [u8]>)> = Vec::new();
        for (i, line) in reader
            .journal_lines(stored.as_deref().unwrap_or_default())?
            .into_iter()
            .enumerate()
        {
            let stamp: Stamp =
                serde_json::from_slice(line).map_err(|e| reader.journal_damage(i, &e))?;
            lines.push((stamp.run, stamp.at, Cow::Borrowed(line)));
        }
        let had = lines.len();
        for entry in &batch.entries {
            let json = journal_rows::encode(object, entry)?;
            lines.push((entry.run, entry.at, Cow::Owned(json.into_bytes())));
        }
        // As `Retention::prune` drops entries.
        if let Some(cutoff) = batch.retention.cutoff(batch.at) {
            lines.retain(|(_, at, _)| *at >= cutoff);
        }
        if let Some(kept) = batch
            .retention
            .kept_runs(lines.iter().map(|(run, ..)| *run))
        {
            lines.retain(|(run, ..)| kept.contains(run));
        }
        if batch.entries.is_empty() && lines.len() == had {
            return Ok(());
        }
        let temp = self.temp_path(&path);
        let written = write_lines(&temp, lines.iter().map(|(.., line)| &**line));
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(StoreError::Io { path: temp, source });
        }
        if let Err(source) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(StoreError::Io { path, source });
        }
        sync_dir(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })
    }
}

/// What retention reads of a journal line: the entry's run and time.
#[derive(Deserialize)]
struct Stamp {
    run: RunId,
    at: DateTime<Utc>,
}

/// Writes `lines`, each ended by a newline, to a new owner-only file, and
/// flushes it to disk.
fn write_lines<'l>(temp: &Path, lines: impl Iterator<Item = &'l [u8]>) -> io::Result<()> {
    let file = owner::create_new(temp)?;
    let mut out = BufWriter::new(file);
    for line in lines {
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()
}

/// A file's bytes, or `None` if there is no file.
fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

enum TempError {
    Io(io::Error),
    Json(serde_json::Error),
}

impl From<io::Error> for TempError {
    fn from(e: io::Error) -> Self {
        TempError::Io(e)
    }
}

impl From<serde_json::Error> for TempError {
    fn from(e: serde_json::Error) -> Self {
        if e.is_io() {
            TempError::Io(io::Error::other(e))
        } else {
            TempError::Json(e)
        }
    }
}

fn write_temp(temp: &Path, object: &str, baseline: &Baseline) -> Result<(), TempError> {
    let file = owner::create_new(temp)?;
    let mut out = BufWriter::new(file);
    out.write_all(FIRST_LINE)?;
    let (mut count, mut sum) = (0u64, 0u64);
    let mut row = Vec::with_capacity(1024);
    for e in baseline.entities() {
        let Some(json) = EntityJson::new(baseline, e.id()) else {
            continue;
        };
        row.clear();
        serde_json::to_writer(&mut row, &json)?;
        let crc = crc64(&row);
        // A comma ends every entity's line but the last.
        out.write_all(if count == 0 { b"\n" } else { b",\n" })?;
        out.write_all(ROW_OPEN)?;
        out.write_all(&row)?;
        out.write_all(ROW_SUM)?;
        out.write_all(&hex(crc))?;
        out.write_all(ROW_CLOSE)?;
        count = count.saturating_add(1);
        sum = sum.wrapping_add(crc);
    }
    out.write_all(b"\n")?;
    let mut trailer = Vec::with_capacity(256);
    trailer.extend_from_slice(TRAILER_OPEN);
    trailer.extend_from_slice(b"\"object\":");
    serde_json::to_writer(&mut trailer, object)?;
    trailer.extend_from_slice(format!(",\"count\":{count},\"rows\":\"").as_bytes());
    trailer.extend_from_slice(&hex(sum));
    trailer.extend_from_slice(b"\",\"header\":");
    serde_json::to_writer(&mut trailer, baseline.header())?;
    trailer.push(b',');
    let check = header_check(&trailer);
    trailer.extend_from_slice(CHECK_OPEN);
    trailer.extend_from_slice(&hex(check));
    trailer.extend_from_slice(CHECK_CLOSE);
    trailer.push(b'\n');
    out.write_all(&trailer)?;
    let file = out
        .into_inner()
        .map_err(|e| TempError::Io(e.into_error()))?;
    file.sync_all()?;
    Ok(())
}

/// The header's checksum: over the first line, its newline, and the last
/// line up to `"check"`.
fn header_check(trailer_before_check: &[u8]) -> u64 {
    let mut c = Crc64::new();
    c.update(FIRST_LINE);
    c.update(b"\n");
    c.update(trailer_before_check);
    c.finish()
}

/// The header line's fields, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    object: String,
    count: u64,
    rows: String,
    header: BaselineHeader,
}

/// A file written before format version 2: the baseline's serde form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Legacy {
    header: BaselineHeader,
    entities: Vec<EntityRecord>,
}

/// Reads one object's state file.
struct Reader<'a> {
    object: &'a str,
    path: &'a Path,
}

impl Reader<'_> {
    fn damaged(&self, place: Place, check: Check) -> StoreError {
        StoreError::Damaged {
            object: Some(self.object.to_owned()),
            path: self.path.to_path_buf(),
            place,
            check,
        }
    }

    /// The baseline the file holds, verified.
    fn load(&self, bytes: &[u8]) -> Result<Baseline, StoreError> {
        let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        if first != FIRST_LINE {
            return Err(self.not_version_2(bytes, first));
        }
        let Some(body) = bytes.strip_suffix(b"\n") else {
            return Err(self.damaged(Place::Whole, Check::Truncated));
        };
        let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
        let n = lines.len();
        let (Some(last), Some(rows)) = (
            lines.last().filter(|_| n >= 2),
            lines.get(1..n.saturating_sub(1)),
        ) else {
            return Err(self.damaged(Place::Whole, Check::Truncated));
        };
        if last.starts_with(ROW_OPEN) {
            // The last line is an entity's: the header line is gone.
            return Err(self.damaged(Place::Whole, Check::Truncated));
        }
        let head = self.head(last)?;
        if head.object != self.object {
            return Err(self.damaged(Place::Header, Check::Object { found: head.object }));
        }
        let found = rows.len() as u64;
        if head.count != found {
            return Err(self.damaged(
                Place::Header,
                Check::Count {
                    expected: head.count,
                    found,
                },
            ));
        }
        let Some(rows_sum) = parse_hex(head.rows.as_bytes()) else {
            return Err(self.damaged(Place::Header, Check::Unreadable));
        };
        // Stream the rows into the baseline; the first bad one stops it.
        let mut sum = 0u64;
        let mut failure = None;
        let records = rows.iter().enumerate().map_while(|(i, line)| {
            match self.row(i, line, i + 1 == rows.len()) {
                Ok((record, crc)) => {
                    sum = sum.wrapping_add(crc);
                    Some(record)
                }
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        let baseline = Baseline::from_parts(head.header, records);
        if let Some(e) = failure {
            return Err(e);
        }
        let baseline = baseline.map_err(|source| StoreError::Baseline {
            object: self.object.to_owned(),
            source,
        })?;
        if sum != rows_sum {
            return Err(self.damaged(Place::Whole, Check::RowSet));
        }
        Ok(baseline)
    }

    /// Why a file whose first line is not version 2's is refused: another
    /// version, the format before versions, or damage.
    fn not_version_2(&self, bytes: &[u8], first: &[u8]) -> StoreError {
        if bytes.is_empty() {
            return self.damaged(Place::Whole, Check::Truncated);
        }
        if let Some(rest) = first.strip_prefix(VERSION_PREFIX) {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let version = rest
                .get(..digits)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse::<u64>().ok());
            if let Some(found) = version.filter(|v| *v > VERSION) {
                if rest.get(digits) == Some(&b',') {
                    return StoreError::Format {
                        object: Some(self.object.to_owned()),
                        path: self.path.to_path_buf(),
                        found,
                        supported: VERSION,
                    };
                }
            }
        }
        if serde_json::from_slice::<Legacy>(bytes).is_ok() {
            return StoreError::Format {
                object: Some(self.object.to_owned()),
                path: self.path.to_path_buf(),
                found: 1,
                supported: VERSION,
            };
        }
        self.damaged(
            Place::Line {
                line: 1,
                column: None,
            },
            Check::Layout,
        )
    }

    /// The header line, verified.
    fn head(&self, line: &[u8]) -> Result<Head, StoreError> {
        let layout = || self.damaged(Place::Header, Check::Layout);
        let inner = line
            .strip_prefix(TRAILER_OPEN)
            .and_then(|l| l.strip_suffix(CHECK_CLOSE))
            .ok_or_else(layout)?;
        let (fields, check) = inner
            .len()
            .checked_sub(CHECK_OPEN.len() + 16)
            .and_then(|at| inner.split_at_checked(at))
            .ok_or_else(layout)?;
        let check = check.strip_prefix(CHECK_OPEN).ok_or_else(layout)?;
        let check_matches = parse_hex(check).is_some_and(|check| {
            let mut before = Vec::with_capacity(TRAILER_OPEN.len() + fields.len());
            before.extend_from_slice(TRAILER_OPEN);
            before.extend_from_slice(fields);
            header_check(&before) == check
        });
        if !check_matches {
            return Err(self.damaged(Place::Header, Check::HeaderChecksum));
        }
        let unreadable = || self.damaged(Place::Header, Check::Unreadable);
        let fields = fields.strip_suffix(b",").ok_or_else(unreadable)?;
        let mut json = Vec::with_capacity(fields.len() + 2);
        json.push(b'{');
        json.extend_from_slice(fields);
        json.push(b'}');
        serde_json::from_slice(&json).map_err(|_| unreadable())
    }

    /// The lines of a journal file, without their newlines. A last line
    /// without one was cut short: damage at its number.
    fn journal_lines<'b>(&self, bytes: &'b [u8]) -> Result<Vec<&'b [u8]>, StoreError> {
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let Some(body) = bytes.strip_suffix(b"\n") else {
            let newlines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
            return Err(self.damaged(
                Place::Line {
                    line: newlines.saturating_add(1),
                    column: None,
                },
                Check::JournalEntry,
            ));
        };
        Ok(body.split(|b| *b == b'\n').collect())
    }

    /// Line `i + 1` of a journal file is not an entry: where the parser
    /// stopped, never what it read.
    fn journal_damage(&self, i: usize, e: &serde_json::Error) -> StoreError {
        self.damaged(
            Place::Line {
                line: (i as u64).saturating_add(1),
                column: (e.column() > 0).then_some(e.column() as u64),
            },
            Check::JournalEntry,
        )
    }

    /// Row `i` (on line `i + 2`), verified, with its checksum.
    fn row(&self, i: usize, line: &[u8], last: bool) -> Result<(EntityRecord, u64), StoreError> {
        let line_no = (i as u64).saturating_add(2);
        let at = |column: Option<u64>| Place::Line {
            line: line_no,
            column,
        };
        let layout = || self.damaged(at(None), Check::Layout);
        let line = if last {
            line
        } else {
            line.strip_suffix(b",").ok_or_else(layout)?
        };
        let inner = line
            .strip_prefix(ROW_OPEN)
            .and_then(|l| l.strip_suffix(ROW_CLOSE))
            .ok_or_else(layout)?;
        let (row, sum) = inner
            .len()
            .checked_sub(ROW_SUM.len() + 16)
            .and_then(|at| inner.split_at_checked(at))
            .ok_or_else(layout)?;
        let sum = sum.strip_prefix(ROW_SUM).ok_or_else(layout)?;
        let crc = crc64(row);
        if parse_hex(sum) != Some(crc) {
            return Err(self.damaged(at(None), Check::RowChecksum));
        }
        let record = row::decode(row).map_err(|e| {
            let column = (ROW_OPEN.len() as u64).saturating_add(e.column() as u64);
            self.damaged(at(Some(column)), Check::Unreadable)
        })?;
        Ok((record, crc))
    }
}

impl StateStore for JsonFileStore {
    /// Loads and verifies the object's file (see the type's docs): damaged
    /// state is [`StoreError::Damaged`], a file written before format
    /// version 2 is [`StoreError::Format`].
    fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        let path = self.path_of(object);
        let Some(bytes) = read(&path)? else {
            return Ok(Baseline::new());
        };
        Reader {
            object,
            path: &path,
        }
        .load(&bytes)
    }

    /// Writes the whole baseline (a JSON file cannot be changed in place
    /// without risking a half-written one) and, if the summary carries a
    /// journal batch, the journal first (see the type's docs).
    fn save(
        &self,
        object: &str,
        baseline: &Baseline,
        changed: &CommitSummary,
    ) -> Result<(), StoreError> {
        self.write(object, baseline, changed.journal.as_deref())
    }

    /// Writes the whole baseline; the journal stays as it is.
    fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
        self.write(object, baseline, None)
    }

    /// Reads the object's journal file (see the type's docs): a line that
    /// is not an entry is [`StoreError::Damaged`], naming the file and the
    /// line.
    fn journal(&self, object: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        let path = self.journal_path_of(object);
        let Some(bytes) = read(&path)? else {
            return Ok(Vec::new());
        };
        let reader = Reader {
            object,
            path: &path,
        };
        let mut entries = Vec::new();
        for (i, line) in reader.journal_lines(&bytes)?.into_iter().enumerate() {
            let entry: JournalEntry =
                serde_json::from_slice(line).map_err(|e| reader.journal_damage(i, &e))?;
            if query.matches(&entry) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

/// `object` as a file name stem: `[A-Za-z0-9_-]` kept, other bytes `%XX`.
pub(crate) fn file_stem(object: &str) -> String {
    if object.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(object.len());
    for b in object.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Flushes a directory's entries (a rename) to disk where the platform
/// allows it. Some file systems refuse to sync a directory; that is not an
/// error, the rename itself is atomic either way.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        match File::open(dir).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(()),
            Err(e)
                if e.kind() == io::ErrorKind::InvalidInput
                    || e.kind() == io::ErrorKind::Unsupported =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_cannot_leave_the_directory() {
        assert_eq!(file_stem("contacts"), "contacts");
        assert_eq!(file_stem("deal_stages-2"), "deal_stages-2");
        assert_eq!(file_stem("../etc/x"), "%2E%2E%2Fetc%2Fx");
        assert_eq!(file_stem(""), "%");
        assert_eq!(file_stem("ä"), "%C3%A4");
    }
}

//! [`JsonFileStore`]: one JSON file per object type in a directory, replaced
//! atomically on every save.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{StateStore, StoreError};
use crate::baseline::Baseline;
use crate::engine::CommitSummary;

/// Keeps each object type's baseline in its own JSON file,
/// `<dir>/<object>.json`, readable by its owner only.
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
#[derive(Debug)]
pub struct JsonFileStore {
    dir: PathBuf,
    counter: AtomicU64,
}

impl JsonFileStore {
    /// A store in `dir`, which is created (with its parents, owner-only on
    /// unix) if it does not exist.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        create_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(JsonFileStore {
            dir,
            counter: AtomicU64::new(0),
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

    fn temp_path(&self, object: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!(
            ".{}.json.{}.{n}.tmp",
            file_stem(object),
            std::process::id()
        ))
    }

    fn write(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
        let path = self.path_of(object);
        let temp = self.temp_path(object);
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        let written = write_temp(&temp, baseline);
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
        if let Err(source) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(StoreError::Io { path, source });
        }
        sync_dir(&self.dir).map_err(io_err(&self.dir))
    }
}

enum TempError {
    Io(io::Error),
    Json(serde_json::Error),
}

fn write_temp(temp: &Path, baseline: &Baseline) -> Result<(), TempError> {
    let file = create_owner_only(temp).map_err(TempError::Io)?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer(&mut out, baseline).map_err(|e| {
        if e.is_io() {
            TempError::Io(io::Error::other(e))
        } else {
            TempError::Json(e)
        }
    })?;
    out.write_all(b"\n").map_err(TempError::Io)?;
    let file = out
        .into_inner()
        .map_err(|e| TempError::Io(e.into_error()))?;
    file.sync_all().map_err(TempError::Io)
}

impl StateStore for JsonFileStore {
    fn load(&self, object: &str) -> Result<Baseline, StoreError> {
        let path = self.path_of(object);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Baseline::new()),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        // serde_json's message ends with "at line L column C"; a baseline
        // that parses but is inconsistent (a record linked twice) is
        // reported the same way, with where the parser was when it noticed.
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            object: object.to_owned(),
            message: format!("{} (file {})", e, path.display()),
        })
    }

    /// Writes the whole baseline: a JSON file cannot be changed in place
    /// without risking a half-written one.
    fn save(
        &self,
        object: &str,
        baseline: &Baseline,
        _changed: &CommitSummary,
    ) -> Result<(), StoreError> {
        self.write(object, baseline)
    }

    fn replace(&self, object: &str, baseline: &Baseline) -> Result<(), StoreError> {
        self.write(object, baseline)
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

/// Creates `dir` and its parents; new directories are owner-only on unix.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates a new file (failing if it exists), owner-only on unix.
fn create_owner_only(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
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

//! Owner-only files and directories: stored state holds personal data.
//!
//! New files and directories are created owner-only (0600 and 0700 on
//! unix). Ones that already exist with group or other bits set are either
//! tightened (the bits dropped) or refused, as the store that opens them
//! decides. Elsewhere than on unix nothing is checked.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use super::StoreError;

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
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates the file owner-only if it does not exist yet; an existing one is
/// left as it is (see [`ensure`]).
#[cfg(feature = "sqlite")]
pub(crate) fn create_if_missing(path: &Path) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

/// What to do with a file or directory open to more than its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broader {
    /// Drop the group and other bits.
    Tighten,
    /// Refuse with [`StoreError::Permissions`].
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Refuse,
}

/// Checks that `path`, if it exists, is owner-only; if it is not,
/// tightens or refuses it as `broader` says. A path that does not exist
/// passes.
pub(crate) fn ensure(path: &Path, broader: Broader) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        let refused = |source| StoreError::Permissions {
            path: path.to_path_buf(),
            mode,
            directory: meta.is_dir(),
            source,
        };
        match broader {
            Broader::Refuse => Err(refused(None)),
            Broader::Tighten => {
                fs::set_permissions(path, fs::Permissions::from_mode(mode & !0o077))
                    .map_err(|e| refused(Some(e)))
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, broader);
        Ok(())
    }
}

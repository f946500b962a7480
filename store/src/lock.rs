//! Store-wide locks (flock via fs2). Which operation takes which lock:
//!
//! | lock | taken by |
//! | --- | --- |
//! | store lock, shared | `add_*`, `import`, `export`, `set_realisation`, `add_root`/`remove_root`, creating `TempRoots`, `verify` without repair |
//! | store lock, exclusive | `gc`, `verify --repair`, purging stale temp dirs in `Store::open` (only if free at once) |
//! | registration lock, exclusive | the short commit step of every ingest/import: move into place and write metadata |
//! | a temp-roots file, exclusive | the `TempRoots` guard that owns it, for its whole life |
//!
//! Locks are released when dropped or when the process dies, so a crash never leaves one held.
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::error::{Result, StoreError};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the descriptor releases the flock too; unlocking first is just tidy.
        let _ = FileExt::unlock(&self.file);
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(StoreError::io("open lock file", path))
}

/// Blocks until a shared lock on `path` is held.
pub fn shared(path: &Path) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    FileExt::lock_shared(&file).map_err(StoreError::io("take a shared lock on", path))?;
    Ok(LockGuard { file })
}

/// Blocks until an exclusive lock on `path` is held.
pub fn exclusive(path: &Path) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    FileExt::lock_exclusive(&file).map_err(StoreError::io("take an exclusive lock on", path))?;
    Ok(LockGuard { file })
}

/// An exclusive lock on `path` if nobody holds any lock on it right now.
pub fn try_exclusive(path: &Path) -> Result<Option<LockGuard>> {
    let file = open_lock_file(path)?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(()) => Ok(Some(LockGuard { file })),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(None),
        Err(e) => Err(StoreError::io("try to lock", path)(e)),
    }
}

/// Where the store-wide lock and the registration lock live.
#[derive(Clone, Debug)]
pub struct LockPaths {
    /// The store-wide lock file (shared by most operations, exclusive for GC and repair).
    pub store: PathBuf,
    /// The lock file the commit step of every ingest and import holds exclusively.
    pub registration: PathBuf,
}

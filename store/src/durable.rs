//! Small durable file-system steps shared by the store and ferry's host side: the one
//! `{action} {path}: {source}` I/O error, atomic small-file writes, durable removals and
//! time since the Unix epoch.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An operating-system call that failed on a concrete path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct IoError {
    /// What was being done, as a verb phrase (`create`, `rename onto`).
    pub action: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// Why it failed.
    #[source]
    pub source: io::Error,
}

/// `map_err` adapter: `.map_err(io_err("create", &path))?`.
pub fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError {
        action,
        path,
        source,
    }
}

/// How much of an atomic write is fsynced before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Nothing: atomic (readers see the old or the new file) but not durable.
    Nothing,
    /// The file's data; the caller fsyncs the directory (once for many files).
    File,
    /// The file and its directory: the new content survives a crash.
    FileAndDir,
}

/// An atomic small-file write: the bytes go to a temporary sibling
/// (`.tmp-<name>-<unique>`), which is renamed onto the target.
#[derive(Debug, Clone, Copy)]
pub struct AtomicWrite {
    sync: Fsync,
    mode: u32,
    owner: Option<(u32, u32)>,
}

impl Default for AtomicWrite {
    fn default() -> Self {
        AtomicWrite::durable()
    }
}

impl AtomicWrite {
    /// Fsyncs the file and its directory; mode 0666 before the umask.
    pub fn durable() -> AtomicWrite {
        AtomicWrite {
            sync: Fsync::FileAndDir,
            mode: 0o666,
            owner: None,
        }
    }

    /// The same write with another fsync discipline.
    pub fn sync(self, sync: Fsync) -> AtomicWrite {
        AtomicWrite { sync, ..self }
    }

    /// The same write creating the file with `mode` (before the umask).
    pub fn mode(self, mode: u32) -> AtomicWrite {
        AtomicWrite { mode, ..self }
    }

    /// The same write giving the file to `uid`:`gid` before it has content.
    pub fn owner(self, uid: u32, gid: u32) -> AtomicWrite {
        AtomicWrite {
            owner: Some((uid, gid)),
            ..self
        }
    }

    /// Writes `bytes` to `path`; on failure the temporary file is removed
    /// and `path` is unchanged.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), IoError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = dir.join(format!(".tmp-{name}-{}", unique_suffix()));
        let result = self.write_through(&tmp, path, bytes);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_through(&self, tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), IoError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .open(tmp)
            .map_err(io_err("create", tmp))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err("chown", tmp))?;
        }
        file.write_all(bytes).map_err(io_err("write", tmp))?;
        if self.sync != Fsync::Nothing {
            file.sync_all().map_err(io_err("fsync", tmp))?;
        }
        fs::rename(tmp, path).map_err(io_err("rename onto", path))?;
        if self.sync == Fsync::FileAndDir {
            sync_parent(path)?;
        }
        Ok(())
    }
}

/// Writes a small file atomically and durably ([`AtomicWrite::durable`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    AtomicWrite::durable().write(path, bytes)
}

/// Removes a file and fsyncs its directory; a missing file is not an error.
pub fn remove_durably(path: &Path) -> Result<(), IoError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("remove", path)(e)),
    }
    sync_parent(path)
}

/// Fsyncs the directory holding `path`, so a rename or unlink in it is durable.
pub fn sync_parent(path: &Path) -> Result<(), IoError> {
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory, so renames and unlinks in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

/// A suffix for temporary file names that no other process or call uses:
/// pid, a per-process counter and the clock.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = since_epoch(SystemTime::now()).subsec_nanos();
    format!(
        "{}-{}-{nanos:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Time since the Unix epoch; zero for a time before it (a clock set wrong).
pub fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// `t` in seconds since the Unix epoch.
pub fn unix_secs(t: SystemTime) -> u64 {
    since_epoch(t).as_secs()
}

/// `t` in milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    since_epoch(t).as_millis() as u64
}

/// Now, in seconds since the Unix epoch.
pub fn unix_now_secs() -> u64 {
    unix_secs(SystemTime::now())
}

/// Now, in milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        write_atomic(&path, b"one").unwrap();
        AtomicWrite::durable()
            .sync(Fsync::Nothing)
            .write(&path, b"two")
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        remove_durably(&path).unwrap();
        remove_durably(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn io_error_says_action_path_and_cause() {
        let err = io_err("create", Path::new("/x/y"))(io::Error::other("boom"));
        assert_eq!(err.to_string(), "create /x/y: boom");
    }
}

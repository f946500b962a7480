//! Generations on a host: numbered profile links to system store paths under
//! `<state_dir>/profiles/`, the `system` link naming the current one, and the
//! host-wide activation lock.
//!
//! Invariant: every change to a link is "make a temporary link, rename(2) it
//! over the old name, fsync the directory", so `system` is never missing or
//! dangling for a reader, and a crash leaves either the old or the new link.
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ferry_store::durable::{io_err, IoError};
use fs2::FileExt;
use serde::Serialize;

/// The name of the current-generation link in the profiles directory.
pub const SYSTEM_LINK: &str = "system";

/// One generation of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generation {
    /// Its number (`system-N-link`).
    pub number: u64,
    /// When the generation was registered (the link's own mtime).
    #[serde(with = "unix_seconds")]
    pub date: SystemTime,
    /// The system store path it points to.
    pub system: PathBuf,
    /// Whether `system` points to it.
    pub current: bool,
}

mod unix_seconds {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(ferry_store::durable::unix_secs(*t))
    }
}

/// A profile or host-lock operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// A file-system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// No such generation.
    #[error("generation {number} does not exist on this host (see `ferry generations`)")]
    Missing {
        /// The generation asked for.
        number: u64,
    },
    /// The `system` link points somewhere unexpected.
    #[error("the system link {path} points to {target:?}, which is not a generation link")]
    Corrupt {
        /// The `system` link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// The current generation cannot be deleted.
    #[error("generation {number} is the current one and cannot be deleted")]
    DeleteCurrent {
        /// The current generation.
        number: u64,
    },
}

/// The profiles directory of one host.
#[derive(Debug, Clone)]
pub struct Profiles {
    dir: PathBuf,
}

impl Profiles {
    /// Profiles under `<state_dir>/profiles/` (created when missing).
    pub fn open(state_dir: &Path) -> Result<Profiles, GenerationError> {
        let dir = state_dir.join("profiles");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(Profiles { dir })
    }

    /// The profiles directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn link_name(number: u64) -> String {
        format!("system-{number}-link")
    }

    /// The path of generation `number`'s link.
    pub fn link_path(&self, number: u64) -> PathBuf {
        self.dir.join(Self::link_name(number))
    }

    /// Registers `system` as a new generation, one above the highest, and
    /// returns its number. Does not make it current.
    pub fn register(&self, system: &Path) -> Result<u64, GenerationError> {
        let number = self.numbers()?.last().copied().unwrap_or(0) + 1;
        self.replace_link(&Self::link_name(number), system)?;
        Ok(number)
    }

    /// Makes generation `number` the current one, atomically.
    pub fn switch_to(&self, number: u64) -> Result<(), GenerationError> {
        let link = self.link_path(number);
        if fs::symlink_metadata(&link).is_err() {
            return Err(GenerationError::Missing { number });
        }
        // Relative, so the profiles directory can be inspected from anywhere
        // it is mounted (the lab's private mounts).
        self.replace_link(SYSTEM_LINK, Path::new(&Self::link_name(number)))
    }

    /// Removes the `system` link: the host has no current generation. Only
    /// used when a host's very first activation is rolled back.
    pub fn clear_current(&self) -> Result<(), GenerationError> {
        let path = self.dir.join(SYSTEM_LINK);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e).into()),
        }
    }

    /// The current generation's number, if the host has one.
    pub fn current(&self) -> Result<Option<u64>, GenerationError> {
        let path = self.dir.join(SYSTEM_LINK);
        let target = match fs::read_link(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read link", &path)(e).into()),
        };
        let number =
            target
                .to_str()
                .and_then(parse_link_name)
                .ok_or_else(|| GenerationError::Corrupt {
                    path: path.clone(),
                    target: target.clone(),
                })?;
        Ok(Some(number))
    }

    /// The system store path of generation `number`.
    pub fn system_of(&self, number: u64) -> Result<PathBuf, GenerationError> {
        let link = self.link_path(number);
        fs::read_link(&link).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                GenerationError::Missing { number }
            } else {
                io_err("read link", &link)(e).into()
            }
        })
    }

    /// Generation numbers present, ascending.
    pub fn numbers(&self) -> Result<Vec<u64>, GenerationError> {
        let mut numbers = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_link_name) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Every generation, ascending.
    pub fn list(&self) -> Result<Vec<Generation>, GenerationError> {
        let current = self.current()?;
        let mut out = Vec::new();
        for number in self.numbers()? {
            let link = self.link_path(number);
            let meta = match fs::symlink_metadata(&link) {
                Ok(m) => m,
                // Deleted by a concurrent trim between listing and reading.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", &link)(e).into()),
            };
            out.push(Generation {
                number,
                date: meta.modified().map_err(io_err("stat", &link))?,
                system: self.system_of(number)?,
                current: current == Some(number),
            });
        }
        Ok(out)
    }

    /// Deletes one non-current generation.
    pub fn delete(&self, number: u64) -> Result<(), GenerationError> {
        if self.current()? == Some(number) {
            return Err(GenerationError::DeleteCurrent { number });
        }
        let link = self.link_path(number);
        fs::remove_file(&link).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                GenerationError::Missing { number }
            } else {
                io_err("remove", &link)(e).into()
            }
        })?;
        self.sync_dir()
    }

    /// Keeps the newest `keep` generations and the current one; deletes the
    /// rest and returns their numbers.
    pub fn keep_newest(&self, keep: usize) -> Result<Vec<u64>, GenerationError> {
        let current = self.current()?;
        let numbers = self.numbers()?;
        let cut = numbers.len().saturating_sub(keep);
        let doomed: Vec<u64> = numbers[..cut]
            .iter()
            .copied()
            .filter(|n| Some(*n) != current)
            .collect();
        for n in &doomed {
            self.delete(*n)?;
        }
        Ok(doomed)
    }

    /// Deletes every non-current generation registered before `cutoff`.
    pub fn delete_older_than(&self, cutoff: SystemTime) -> Result<Vec<u64>, GenerationError> {
        let doomed: Vec<u64> = self
            .list()?
            .into_iter()
            .filter(|g| !g.current && g.date < cutoff)
            .map(|g| g.number)
            .collect();
        for n in &doomed {
            self.delete(*n)?;
        }
        Ok(doomed)
    }

    /// Points `name` at `target` via a temporary link and rename(2).
    fn replace_link(&self, name: &str, target: &Path) -> Result<(), GenerationError> {
        let tmp = self.dir.join(format!(
            ".tmp-{name}-{}",
            ferry_store::durable::unique_suffix()
        ));
        symlink(target, &tmp).map_err(io_err("create link", &tmp))?;
        let final_path = self.dir.join(name);
        if let Err(e) = fs::rename(&tmp, &final_path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("rename link onto", &final_path)(e).into());
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), GenerationError> {
        Ok(ferry_store::durable::sync_dir(&self.dir)?)
    }

    /// Removes temporary links left by a crash between symlink and rename.
    pub fn purge_temporaries(&self) -> Result<(), GenerationError> {
        let entries = fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// `system-N-link` → N.
fn parse_link_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("system-")?.strip_suffix("-link")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The host-wide activation lock (`<state_dir>/activation.lock`, flock):
/// at most one activation, rollback or recovery runs at a time. Released on
/// drop, and by the kernel when the holder dies.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

impl HostLock {
    /// Waits for the lock.
    pub fn acquire(state_dir: &Path) -> Result<HostLock, GenerationError> {
        let file = Self::open(state_dir)?;
        file.lock_exclusive()
            .map_err(io_err("lock", &state_dir.join("activation.lock")))?;
        Ok(HostLock { _file: file })
    }

    /// Takes the lock if nobody holds it.
    pub fn try_acquire(state_dir: &Path) -> Result<Option<HostLock>, GenerationError> {
        let file = Self::open(state_dir)?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(Some(HostLock { _file: file })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(io_err("lock", &state_dir.join("activation.lock"))(e).into()),
        }
    }

    fn open(state_dir: &Path) -> Result<File, GenerationError> {
        fs::create_dir_all(state_dir).map_err(io_err("create", state_dir))?;
        let path = state_dir.join("activation.lock");
        Ok(fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_parse_strictly() {
        assert_eq!(parse_link_name("system-12-link"), Some(12));
        assert_eq!(parse_link_name("system--link"), None);
        assert_eq!(parse_link_name("system-1a-link"), None);
        assert_eq!(parse_link_name("system"), None);
    }
}

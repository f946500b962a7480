//! The lock file beside a site file: the exact packages a resolution chose, in a
//! diffable TOML format (see `debian/LOCK-FORMAT.md`), written atomically.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::resolve::{resolve_pinned, Resolution, ResolveError, Root};
use crate::universe::Universe;
use crate::version::Version;

/// The lock format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

const HEADER: &str = "# ferry lock file: the exact Debian packages of this site.\n\
# Written by `ferry lock`; change it with `ferry lock --update [PKG…]`, not by hand.\n\n";

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// `amd64`, `all`, ….
    pub architecture: String,
    /// SHA256 of the `.deb`, lower-case hex.
    pub sha256: String,
    /// Size of the `.deb` in bytes.
    pub size: u64,
    /// Path of the `.deb` in the repository (`pool/main/…`); never a host.
    pub filename: String,
    /// The suite it was resolved from.
    pub suite: String,
    /// The component it was resolved from.
    pub component: String,
}

/// A lock file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The architecture resolved for.
    pub arch: String,
    /// The requested roots, as written (`postgresql-15`, `libfoo (>= 2)`), sorted.
    pub roots: Vec<String>,
    /// The closure, sorted by name.
    #[serde(rename = "package", default)]
    pub packages: Vec<LockedPackage>,
}

/// Why a lock cannot be read, written or updated.
#[derive(Debug, Error)]
pub enum LockError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid lock.
    #[error("{path}: not a ferry lock file: {message}")]
    Syntax {
        /// The lock file.
        path: PathBuf,
        /// The TOML error.
        message: String,
    },
    /// The file was written by another format version.
    #[error("{path}: lock format version {found}, this ferry reads version {FORMAT_VERSION}\n  hint: run `ferry lock` to write it anew")]
    FormatVersion {
        /// The lock file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// Re-resolving failed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// `--update PKG` names a package that is not in the lock.
    #[error("{name} is not in the lock{}\n  hint: `ferry lock --update` with no names re-resolves everything", did_you_mean(.suggestions))]
    NotLocked {
        /// The name given.
        name: String,
        /// Close locked names.
        suggestions: Vec<String>,
    },
}

impl Lock {
    /// The lock file for a site file: `site.conf` → `site.lock`, beside it.
    pub fn path_for(site: &Path) -> PathBuf {
        site.with_extension("lock")
    }

    /// A lock recording `resolution`.
    pub fn from_resolution(resolution: &Resolution, arch: &str) -> Lock {
        let mut roots: Vec<String> = resolution.roots.iter().map(Root::to_string).collect();
        roots.sort();
        roots.dedup();
        let packages = resolution
            .packages
            .iter()
            .map(|c| LockedPackage {
                name: c.entry.name.clone(),
                version: c.entry.version.to_string(),
                architecture: c.entry.architecture.clone(),
                sha256: c.entry.sha256.clone(),
                size: c.entry.size,
                filename: c.entry.filename.clone(),
                suite: c.origin.suite.clone(),
                component: c.origin.component.clone(),
            })
            .collect();
        Lock {
            version: FORMAT_VERSION,
            arch: arch.to_string(),
            roots,
            packages,
        }
    }

    /// Resolves `roots` in `universe` and locks the result.
    pub fn resolve(universe: &Universe, roots: &[Root]) -> Result<Lock, LockError> {
        Self::update_from(None, universe, roots, &[])
    }

    /// Re-resolves against `universe`. With `only` empty every package may move to
    /// its newest satisfying version; otherwise only the named packages may, and
    /// every other package keeps its locked version while the indexes still offer
    /// it and it still satisfies.
    pub fn update(
        &self,
        universe: &Universe,
        roots: &[Root],
        only: &[&str],
    ) -> Result<Lock, LockError> {
        Self::update_from(Some(self), universe, roots, only)
    }

    fn update_from(
        old: Option<&Lock>,
        universe: &Universe,
        roots: &[Root],
        only: &[&str],
    ) -> Result<Lock, LockError> {
        let mut pins = BTreeMap::new();
        if let (Some(old), false) = (old, only.is_empty()) {
            old.check_locked(only)?;
            for p in &old.packages {
                if !only.contains(&p.name.as_str()) {
                    if let Ok(v) = p.version.parse::<Version>() {
                        pins.insert(p.name.clone(), v);
                    }
                }
            }
        }
        let resolution = resolve_pinned(universe, roots, &pins)?;
        Ok(Lock::from_resolution(&resolution, universe.arch()))
    }

    /// Whether the lock was made for exactly these roots (order and duplicates
    /// do not matter); a stale lock must be re-resolved.
    pub fn is_current_for(&self, roots: &[Root]) -> bool {
        let mut wanted: Vec<String> = roots.iter().map(Root::to_string).collect();
        wanted.sort();
        wanted.dedup();
        wanted == self.roots
    }

    /// Refuses names that are not locked packages, suggesting close ones.
    fn check_locked(&self, names: &[&str]) -> Result<(), LockError> {
        for &name in names {
            if self.package(name).is_none() {
                let mut close: Vec<(usize, &str)> = self
                    .packages
                    .iter()
                    .map(|p| (strsim::levenshtein(name, &p.name), p.name.as_str()))
                    .filter(|(d, _)| *d <= (name.len() / 4).max(2))
                    .collect();
                close.sort();
                return Err(LockError::NotLocked {
                    name: name.to_string(),
                    suggestions: close
                        .into_iter()
                        .take(3)
                        .map(|(_, n)| n.to_string())
                        .collect(),
                });
            }
        }
        Ok(())
    }

    /// The locked package called `name`.
    pub fn package(&self, name: &str) -> Option<&LockedPackage> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// The lock as text.
    pub fn to_toml(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        let body = toml::to_string(self).unwrap_or_default();
        format!("{HEADER}{body}")
    }

    /// Parses lock text; `path` is only used in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Lock, LockError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let syntax = |e: toml::de::Error| LockError::Syntax {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        };
        let v: VersionOnly = toml::from_str(text).map_err(syntax)?;
        if v.version != FORMAT_VERSION {
            return Err(LockError::FormatVersion {
                path: path.to_path_buf(),
                found: v.version,
            });
        }
        toml::from_str(text).map_err(syntax)
    }

    /// Reads a lock file.
    pub fn read(path: &Path) -> Result<Lock, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Writes the lock atomically: a temporary file in the same directory, synced,
    /// then renamed over `path`.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(self.to_toml().as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

fn did_you_mean(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

/// One package's change between two locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New in the closure.
    Added {
        /// Package name.
        name: String,
        /// Its version.
        version: String,
    },
    /// Gone from the closure.
    Removed {
        /// Package name.
        name: String,
        /// The version it had.
        version: String,
    },
    /// Another version.
    Changed {
        /// Package name.
        name: String,
        /// The old version.
        from: String,
        /// The new version.
        to: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { name, version } => write!(f, "+ {name} {version}"),
            Change::Removed { name, version } => write!(f, "- {name} {version}"),
            Change::Changed { name, from, to } => write!(f, "{name} {from} → {to}"),
        }
    }
}

/// Per-package changes from `old` to `new`, sorted by name; a package whose
/// version is unchanged but whose bytes differ (a rebuilt `.deb`) counts as changed.
pub fn diff(old: &Lock, new: &Lock) -> Vec<Change> {
    let olds: BTreeMap<&str, &LockedPackage> =
        old.packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let news: BTreeMap<&str, &LockedPackage> =
        new.packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut names: Vec<&str> = olds.keys().chain(news.keys()).copied().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| match (olds.get(n), news.get(n)) {
            (Some(o), Some(p)) if o.version != p.version || o.sha256 != p.sha256 => {
                Some(Change::Changed {
                    name: n.to_string(),
                    from: o.version.clone(),
                    to: p.version.clone(),
                })
            }
            (Some(o), None) => Some(Change::Removed {
                name: n.to_string(),
                version: o.version.clone(),
            }),
            (None, Some(p)) => Some(Change::Added {
                name: n.to_string(),
                version: p.version.clone(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;

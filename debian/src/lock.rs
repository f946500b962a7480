//! The lock file beside a site file: the exact packages a resolution chose and
//! which of them meets each one's dependencies, in a diffable TOML format (see
//! `debian/LOCK-FORMAT.md`), written atomically. A package group's closure and
//! where to fetch each `.deb` are read from the lock alone, offline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fetch::FetchItem;
use crate::object::ExpectedPackage;
use crate::relation::Alternative;
use crate::resolve::{resolve_pinned, Resolution, ResolveError, Root};
use crate::sources::AptConfig;
use crate::universe::{Candidate, Universe};
use crate::version::Version;

/// The lock format version this crate reads and writes. Version 1 had no
/// `depends`/`provides`, so no group's closure could be read from it.
pub const FORMAT_VERSION: u32 = 2;

/// What to run when the lock no longer fits the site or cannot be read.
const RELOCK: &str = "run `ferry lock SITE --update` to resolve the site anew";

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
    /// For each `Pre-Depends`/`Depends` relation that applies to the architecture,
    /// the locked package meeting it; sorted, unique, never the package itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    /// The virtual package names its `Provides` gives (names only), sorted, unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<String>,
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
    /// The file was written by an older ferry, in a format without the
    /// dependency edges a group's closure is read from.
    #[error("{path}: lock format version {found} records no dependencies, so no package group's closure can be read from it; this ferry reads version {FORMAT_VERSION}\n  hint: {RELOCK}")]
    OldFormat {
        /// The lock file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The file was written in a format version this ferry does not know.
    #[error("{path}: lock format version {found}, this ferry reads version {FORMAT_VERSION}\n  hint: a newer ferry wrote it; use that one, or {RELOCK}")]
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
    /// A package group's root is met by no locked package: the site changed since
    /// the lock was made.
    #[error("no locked package satisfies {root}{}{}: the lock is stale\n  hint: {RELOCK}", locked_text(.locked), did_you_mean(.suggestions))]
    StaleRoot {
        /// The root as written (`postgresql-15`, `libfoo (>= 2)`).
        root: String,
        /// The locked versions of that name that do not satisfy it (`libfoo 1.0`).
        locked: Vec<String>,
        /// Close locked or provided names.
        suggestions: Vec<String>,
    },
    /// The lock breaks its own invariants: it was edited by hand or truncated.
    #[error("the lock is damaged: {package} {problem}\n  hint: {RELOCK}")]
    Damaged {
        /// The locked package concerned.
        package: String,
        /// What is wrong (`depends on libgone, which is not locked`).
        problem: String,
    },
    /// No configured apt source serves the suite and component a package was
    /// locked from.
    #[error("no apt source serves {suite}/{component}, where the lock found {package}\n  hint: configure that suite and component in /etc/apt/sources.list.d, or the lock came from another deployer with other apt sources")]
    NoSource {
        /// The locked package.
        package: String,
        /// Its suite.
        suite: String,
        /// Its component.
        component: String,
    },
}

impl LockedPackage {
    /// Locks a chosen candidate; `chosen` holds every package of the resolution.
    fn of(c: &Candidate, chosen: &Universe) -> LockedPackage {
        let e = &c.entry;
        let mut depends = Vec::new();
        for rel in e.pre_depends.iter().chain(&e.depends) {
            // After a successful resolution a chosen package meets every relation
            // that applies; one that none meets gives no edge rather than a panic.
            let met = rel
                .alternatives
                .iter()
                .filter(|a| a.applies(chosen.arch(), &[]))
                .find_map(|a| meeting(chosen, a));
            if let Some(name) = met.filter(|n| *n != e.name) {
                depends.push(name.to_string());
            }
        }
        depends.sort();
        depends.dedup();
        let mut provides: Vec<String> = e
            .provides
            .iter()
            .flat_map(|r| &r.alternatives)
            .map(|a| a.name.clone())
            .collect();
        provides.sort();
        provides.dedup();
        LockedPackage {
            name: e.name.clone(),
            version: e.version.to_string(),
            architecture: e.architecture.clone(),
            sha256: e.sha256.clone(),
            size: e.size,
            filename: e.filename.clone(),
            suite: c.origin.suite.clone(),
            component: c.origin.component.clone(),
            depends,
            provides,
        }
    }

    /// What the `.deb` must say about itself, checked when it is added to the store.
    pub fn expected(&self) -> ExpectedPackage {
        ExpectedPackage {
            package: self.name.clone(),
            version: self.version.clone(),
            architecture: self.architecture.clone(),
        }
    }

    /// Where to fetch the `.deb`: the first apt source (in apt's order) whose suite
    /// is the package's and whose components hold its component, with the lock's
    /// filename, sha256 and size.
    pub fn fetch_item(&self, config: &AptConfig) -> Result<FetchItem, LockError> {
        let source = config
            .sources
            .iter()
            .find(|s| s.suite == self.suite && s.components.contains(&self.component))
            .ok_or_else(|| LockError::NoSource {
                package: self.name.clone(),
                suite: self.suite.clone(),
                component: self.component.clone(),
            })?;
        let sha256 = self.sha256.parse().map_err(|e| LockError::Damaged {
            package: self.name.clone(),
            problem: format!("has a bad sha256: {e}"),
        })?;
        Ok(FetchItem {
            base_uri: source.uri.clone(),
            filename: self.filename.clone(),
            sha256,
            size: self.size,
        })
    }

    /// Whether this package meets `root` by name: its version admits the root's
    /// constraint, if any.
    fn meets_by_name(&self, root: &Root) -> Result<bool, LockError> {
        if self.name != root.name {
            return Ok(false);
        }
        let Some(constraint) = &root.constraint else {
            return Ok(true);
        };
        let version: Version = self.version.parse().map_err(|e| LockError::Damaged {
            package: self.name.clone(),
            problem: format!("has a bad version: {e}"),
        })?;
        Ok(constraint.admits(&version))
    }
}

/// The name of the package in `chosen` that meets `alt`: the real package first,
/// then the first provider by name, as the resolver looks.
fn meeting<'u>(chosen: &'u Universe, alt: &Alternative) -> Option<&'u str> {
    let real = chosen
        .versions(&alt.name)
        .iter()
        .copied()
        .find(|&id| chosen.matches_real(id, alt));
    let provider = || {
        chosen
            .providers(&alt.name)
            .iter()
            .find(|(_, v)| chosen.matches_provided(v.as_ref(), alt))
            .map(|(id, _)| *id)
    };
    real.or_else(provider)
        .map(|id| chosen.get(id).entry.name.as_str())
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
        let chosen = Universe::of_candidates(arch, &resolution.packages);
        let packages = resolution
            .packages
            .iter()
            .map(|c| LockedPackage::of(c, &chosen))
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

    /// Re-resolves for `roots` (after the site's packages changed) keeping every
    /// locked version that is still offered and still satisfies: only what is
    /// new, or no longer fits, is chosen afresh.
    pub fn keep(&self, universe: &Universe, roots: &[Root]) -> Result<Lock, LockError> {
        let pins: BTreeMap<String, Version> = self
            .packages
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.version.parse::<Version>().ok()?)))
            .collect();
        let resolution = resolve_pinned(universe, roots, &pins)?;
        Ok(Lock::from_resolution(&resolution, universe.arch()))
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
                return Err(LockError::NotLocked {
                    name: name.to_string(),
                    suggestions: close_names(name, self.packages.iter().map(|p| p.name.as_str())),
                });
            }
        }
        Ok(())
    }

    /// The closure of one package group, from the lock alone: each root's locked
    /// package (by name with a fitting version, else, for a root without a
    /// constraint, the first locked package providing it), then everything their
    /// `depends` reach. Sorted by name, each package once.
    pub fn closure_of(&self, roots: &[Root]) -> Result<Vec<&LockedPackage>, LockError> {
        let by_name: BTreeMap<&str, &LockedPackage> =
            self.packages.iter().map(|p| (p.name.as_str(), p)).collect();
        let mut todo = Vec::new();
        for root in roots {
            todo.push(self.meeting_root(root)?);
        }
        let mut closure: BTreeMap<&str, &LockedPackage> = BTreeMap::new();
        while let Some(p) = todo.pop() {
            if closure.insert(p.name.as_str(), p).is_some() {
                continue;
            }
            for d in &p.depends {
                let next = by_name.get(d.as_str()).ok_or_else(|| LockError::Damaged {
                    package: p.name.clone(),
                    problem: format!("depends on {d}, which is not locked"),
                })?;
                todo.push(next);
            }
        }
        Ok(closure.into_values().collect())
    }

    /// The locked package that meets a group's root.
    fn meeting_root(&self, root: &Root) -> Result<&LockedPackage, LockError> {
        for p in &self.packages {
            if p.meets_by_name(root)? {
                return Ok(p);
            }
        }
        // A lock's `provides` carry no versions, so only an unversioned root can be
        // met through them.
        if root.constraint.is_none() {
            if let Some(p) = self
                .packages
                .iter()
                .find(|p| p.provides.contains(&root.name))
            {
                return Ok(p);
            }
        }
        let known: BTreeSet<&str> = self
            .packages
            .iter()
            .flat_map(|p| std::iter::once(&p.name).chain(&p.provides))
            .map(String::as_str)
            .collect();
        Err(LockError::StaleRoot {
            root: root.to_string(),
            locked: self
                .packages
                .iter()
                .filter(|p| p.name == root.name)
                .map(|p| format!("{} {}", p.name, p.version))
                .collect(),
            suggestions: if known.contains(root.name.as_str()) {
                Vec::new()
            } else {
                close_names(&root.name, known.into_iter())
            },
        })
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
        let path = path.to_path_buf();
        match v.version {
            FORMAT_VERSION => {}
            found @ 1..FORMAT_VERSION => return Err(LockError::OldFormat { path, found }),
            found => return Err(LockError::FormatVersion { path, found }),
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

/// Up to three of `names` close to `name`, closest first.
fn close_names<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut close: Vec<(usize, &str)> = names
        .map(|n| (strsim::levenshtein(name, n), n))
        .filter(|(d, _)| *d <= (name.len() / 4).max(2))
        .collect();
    close.sort();
    close.dedup();
    close
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn locked_text(locked: &[String]) -> String {
    if locked.is_empty() {
        String::new()
    } else {
        format!(" (the lock has {})", locked.join(", "))
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

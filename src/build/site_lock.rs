//! A site's lock file (`site.conf` → `site.lock`, format in
//! `debian/LOCK-FORMAT.md`): making or updating it from the deployer's apt
//! sources (`ferry lock`), and reading it for a build, which refuses a
//! missing or stale one.
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ferry_debian::lock::{diff, Change, Lock, LockError};
use ferry_debian::resolve::Root;
use ferry_debian::sources::{AptConfig, SourcesError};
use ferry_debian::system::{load_universe, SystemError};
use ferry_lang::Site;

use super::debian::{site_roots, DebianError, DebianInputs};

/// Where apt's configuration and lists are read from.
#[derive(Debug, Clone)]
pub struct AptRoot(pub PathBuf);

impl AptRoot {
    /// The lists directory under this root (`var/lib/apt/lists`).
    pub fn lists(&self) -> PathBuf {
        self.0.join("var/lib/apt/lists")
    }
}

/// What `ferry lock` re-resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockMode {
    /// Keep every locked version that still satisfies; resolve only what is new.
    Keep,
    /// Every package may move to its newest satisfying version.
    UpdateAll,
    /// Only these packages may move.
    Update(Vec<String>),
}

/// Why a lock could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SiteLockError {
    /// The site's `debian(…)` roots are not valid.
    #[error(transparent)]
    Roots(Box<DebianError>),
    /// The apt configuration cannot be read.
    #[error(transparent)]
    Sources(#[from] SourcesError),
    /// The signed indexes cannot be loaded.
    #[error(transparent)]
    Indexes(#[from] SystemError),
    /// Resolving or reading the lock failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The site uses Debian packages and has no lock.
    #[error("the site uses Debian packages but has no lock file {}", path.display())]
    Missing {
        /// Where the lock should be.
        path: PathBuf,
        /// The site file.
        site: PathBuf,
    },
    /// The lock was made for other packages than the site names now.
    #[error("the lock file {} is stale: the site now asks for {}", path.display(), describe(added, removed))]
    Stale {
        /// The lock.
        path: PathBuf,
        /// The site file.
        site: PathBuf,
        /// Roots the site has and the lock does not.
        added: Vec<String>,
        /// Roots the lock has and the site does not.
        removed: Vec<String>,
    },
    /// `--update` without a lock to update.
    #[error("there is no lock file {} to update", path.display())]
    NothingToUpdate {
        /// Where the lock should be.
        path: PathBuf,
        /// The site file.
        site: PathBuf,
    },
}

fn describe(added: &[String], removed: &[String]) -> String {
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("{} that the lock lacks", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("no more {}", removed.join(", ")));
    }
    parts.join(", and ")
}

impl SiteLockError {
    /// True when the site or the command line is wrong (exit 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SiteLockError::Sources(_) | SiteLockError::Indexes(_))
    }

    /// The command that fixes it, or what to check.
    pub fn hint(&self) -> Option<String> {
        match self {
            SiteLockError::Missing { site, .. } | SiteLockError::NothingToUpdate { site, .. } => {
                Some(format!("run `ferry lock {}`", site.display()))
            }
            SiteLockError::Stale { site, .. } => Some(format!(
                "run `ferry lock {}` (locked versions that still fit are kept)",
                site.display()
            )),
            SiteLockError::Indexes(_) => Some(
                "run `apt-get update` so the deployer's signed package lists are present and fresh"
                    .into(),
            ),
            SiteLockError::Roots(e) => e.hint(),
            _ => None,
        }
    }
}

/// Every Debian root the site asks for, sorted and unique.
pub fn all_roots(site: &Site) -> Result<Vec<Root>, SiteLockError> {
    let mut roots: Vec<Root> = site_roots(site)
        .map_err(|e| SiteLockError::Roots(Box::new(e)))?
        .into_iter()
        .flat_map(|(_, roots)| roots)
        .collect();
    roots.sort_by_key(|r| r.to_string());
    roots.dedup_by_key(|r| r.to_string());
    Ok(roots)
}

/// The Debian architecture of this deployer (and of its hosts).
pub fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        _ => "amd64",
    }
}

/// The result of [`lock_site`].
#[derive(Debug)]
pub struct LockOutcome {
    /// The lock file written.
    pub path: PathBuf,
    /// What changed from the previous lock (everything is added without one).
    pub changes: Vec<Change>,
    /// The new lock.
    pub lock: Lock,
}

/// Resolves the site's Debian packages against the apt sources under `apt`
/// and writes the lock beside `site_file` (atomically).
pub fn lock_site(
    site: &Site,
    site_file: &Path,
    mode: &LockMode,
    apt: &AptRoot,
    now: SystemTime,
) -> Result<LockOutcome, SiteLockError> {
    let path = Lock::path_for(site_file);
    let old = match Lock::read(&path) {
        Ok(lock) => Some(lock),
        Err(_) if !path.exists() => None,
        // An old format has no edges; `--update` of everything starts anew.
        Err(LockError::OldFormat { .. }) if *mode == LockMode::UpdateAll => None,
        Err(e) => return Err(e.into()),
    };
    if old.is_none() && !path.exists() && *mode != LockMode::Keep {
        return Err(SiteLockError::NothingToUpdate {
            path,
            site: site_file.to_path_buf(),
        });
    }
    let roots = all_roots(site)?;
    let config = AptConfig::read(&apt.0)?;
    let system = load_universe(&config, &apt.lists(), native_arch(), now)?;
    let universe = &system.universe;
    let lock = match (&old, mode) {
        (None, _) => Lock::resolve(universe, &roots)?,
        (Some(old), LockMode::Keep) => old.keep(universe, &roots)?,
        (Some(old), LockMode::UpdateAll) => old.update(universe, &roots, &[])?,
        (Some(old), LockMode::Update(names)) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            old.update(universe, &roots, &names)?
        }
    };
    let empty = Lock {
        version: lock.version,
        arch: lock.arch.clone(),
        roots: Vec::new(),
        packages: Vec::new(),
    };
    let changes = diff(old.as_ref().unwrap_or(&empty), &lock);
    lock.write(&path)?;
    Ok(LockOutcome {
        path,
        changes,
        lock,
    })
}

/// What a build of `site` needs for its Debian packages: `None` when it has
/// none; an error when the lock is missing or stale.
pub fn inputs_for_build(
    site: &Site,
    site_file: &Path,
    deb_cache: &Path,
    apt: &AptRoot,
) -> Result<Option<DebianInputs>, SiteLockError> {
    let roots = all_roots(site)?;
    if roots.is_empty() {
        return Ok(None);
    }
    let path = Lock::path_for(site_file);
    if !path.exists() {
        return Err(SiteLockError::Missing {
            path,
            site: site_file.to_path_buf(),
        });
    }
    let lock = Lock::read(&path)?;
    if !lock.is_current_for(&roots) {
        let wanted: Vec<String> = roots.iter().map(Root::to_string).collect();
        return Err(SiteLockError::Stale {
            added: wanted
                .iter()
                .filter(|r| !lock.roots.contains(r))
                .cloned()
                .collect(),
            removed: lock
                .roots
                .iter()
                .filter(|r| !wanted.contains(r))
                .cloned()
                .collect(),
            path,
            site: site_file.to_path_buf(),
        });
    }
    Ok(Some(DebianInputs {
        lock,
        lock_path: path,
        cache_dir: deb_cache.to_path_buf(),
        apt_root: apt.0.clone(),
    }))
}

//! Garbage collection: trim old generations, find everything reachable from the roots, and
//! delete the rest under the exclusive store lock, never leaving a valid path with a missing
//! reference (metadata goes first, referrers before what they refer to).
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::db::PathInfo;
use crate::error::{Result, StoreError};
use crate::fsops;
use crate::path::StorePath;
use crate::store::Store;

/// What `gc` is asked to do.
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Keep only the newest N generations of each profile (plus the current one) before collecting.
    pub keep_generations: Option<usize>,
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
}

/// What `gc` did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    /// Valid paths deleted (or that would be), sorted.
    pub deleted: Vec<StorePath>,
    /// Store entries without metadata (debris of crashed adds) deleted.
    pub debris: Vec<String>,
    /// Profile generation links removed by `keep_generations`.
    pub removed_generations: Vec<PathBuf>,
    /// Bytes of deleted objects (their archive sizes).
    pub bytes_freed: u64,
    /// Valid paths kept because a root reaches them.
    pub live: usize,
    /// Whether this run only reported what it would delete.
    pub dry_run: bool,
}

impl Store {
    /// Collects garbage. Takes the exclusive store lock: no add, import or root change runs
    /// meanwhile.
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        let _exclusive = self.exclusive_lock()?;
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        if !options.dry_run {
            self.purge_temporaries(true)?;
        }
        let trimmed = match options.keep_generations {
            Some(keep) => self.generations_to_trim(keep)?,
            None => Vec::new(),
        };
        if !options.dry_run {
            for link in &trimmed {
                std::fs::remove_file(link).map_err(StoreError::io("remove generation", link))?;
                if let Some(parent) = link.parent() {
                    fsops::fsync_dir(parent)?;
                }
            }
        }
        let skip: HashSet<PathBuf> = trimmed.iter().cloned().collect();
        report.removed_generations = trimmed;

        let roots: Vec<StorePath> = self
            .collect_roots(&skip)?
            .into_iter()
            .filter(|p| self.is_valid(p))
            .collect();
        let live: HashSet<StorePath> = self.closure(&roots)?.into_iter().collect();
        report.live = live.len();

        let mut dead: BTreeMap<StorePath, PathInfo> = BTreeMap::new();
        let entries = std::fs::read_dir(self.store_dir.as_path())
            .map_err(StoreError::io("list", self.store_dir.as_path()))?;
        for entry in entries.flatten() {
            let Some(base) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if base.starts_with('.') {
                continue;
            }
            // Entries that are not store paths at all are not ours to delete.
            let Ok(path) = self.parse_path(&format!("{}/{}", self.store_dir, base)) else {
                continue;
            };
            if live.contains(&path) {
                continue;
            }
            match self.db.read(&path)? {
                Some(info) => {
                    dead.insert(path, info);
                }
                None => report.debris.push(base),
            }
        }
        report.bytes_freed = dead.values().map(|info| info.nar_size).sum();
        report.deleted = dead.keys().cloned().collect();
        report.debris.sort();
        if options.dry_run {
            return Ok(report);
        }

        self.invalidate(&dead)?;
        for path in dead.keys() {
            fsops::remove_tree(&self.real_path(path))?;
        }
        for base in &report.debris {
            fsops::remove_tree(&self.store_dir.as_path().join(base))?;
        }
        fsops::fsync_dir(self.store_dir.as_path())?;
        self.forget_dead_realisations()?;
        Ok(report)
    }

    /// Removes the metadata of `paths` (a set closed under referrers: no valid path outside it
    /// refers into it) in one transaction, so every remaining record's references keep their
    /// records at every instant. The invalidation count is raised durably first.
    pub(crate) fn invalidate(&self, paths: &BTreeMap<StorePath, PathInfo>) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        self.count_invalidation()?;
        let doomed: Vec<&StorePath> = paths.keys().collect();
        self.db.remove(&doomed)
    }

    /// Generation links `<profile>-<N>-link` beyond the newest `keep` of each profile, never
    /// the one the profile link points to.
    fn generations_to_trim(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let mut by_profile: BTreeMap<(PathBuf, String), Vec<(u64, PathBuf)>> = BTreeMap::new();
        for entry in walkdir::WalkDir::new(self.profiles_dir())
            .follow_links(false)
            .min_depth(1)
        {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_symlink() {
                continue;
            }
            let Some(file_name) = entry.file_name().to_str() else {
                continue;
            };
            if let Some((profile, number)) = parse_generation(file_name) {
                let parent = entry
                    .path()
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .to_path_buf();
                by_profile
                    .entry((parent, profile.to_string()))
                    .or_default()
                    .push((number, entry.path().to_path_buf()));
            }
        }
        let mut trim = Vec::new();
        for ((parent, profile), mut generations) in by_profile {
            let current = std::fs::read_link(parent.join(&profile))
                .ok()
                .and_then(|t| t.file_name().map(|n| parent.join(n)));
            generations.sort_by_key(|g| std::cmp::Reverse(g.0));
            for (_, link) in generations.into_iter().skip(keep) {
                if Some(&link) != current.as_ref() {
                    trim.push(link);
                }
            }
        }
        trim.sort();
        Ok(trim)
    }

    /// Drops realisation records whose output is no longer valid.
    fn forget_dead_realisations(&self) -> Result<()> {
        self.db.forget_dead_realisations().map(drop)
    }
}

/// Splits `system-12-link` into (`system`, 12).
pub fn parse_generation(file_name: &str) -> Option<(&str, u64)> {
    let stem = file_name.strip_suffix("-link")?;
    let (profile, number) = stem.rsplit_once('-')?;
    if profile.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((profile, number.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn generation_links_parse() {
        assert_eq!(
            super::parse_generation("system-12-link"),
            Some(("system", 12))
        );
        assert_eq!(super::parse_generation("web-a-3-link"), Some(("web-a", 3)));
        assert_eq!(super::parse_generation("system"), None);
        assert_eq!(super::parse_generation("system--link"), None);
    }
}

//! The site build cache: an unchanged site (same evaluated model, same
//! source contents, same options) maps straight to the store paths it built
//! last time, so a no-op `ferry build` costs about as much as evaluation.
//!
//! The key is BLAKE3 (`derive_key("ferry site build v1", …)`) over the JSON
//! of the selected classes and everything they use, the store paths of the
//! ingested sources (content-addressed, so an edited source changes them) and
//! the sha256 of every locked Debian package it uses and the build options
//! that reach outputs. A hit is used only when every path
//! it names is still valid, after they were all pinned as temporary roots.
//! Anything else falls back to the per-recipe path, which is always correct.
//!
//! Checking every path costs a `stat` each, which on a big site is most of a
//! no-op build. So an entry also keeps the store's invalidation count
//! ([`Store::invalidation_count`]) from when its paths were last seen valid:
//! while the count is unchanged, nothing was made invalid since, and the
//! per-path check is skipped. After a `gc` the first lookup checks them all
//! and records the new count.
use std::collections::BTreeMap;
use std::path::PathBuf;

use ferry_lang::model::{Class, PackageId, Site, TextFileId};
use ferry_store::{Store, StorePath, TempRoots};
use serde::{Deserialize, Serialize};

use super::BuildOptions;

/// What one site build produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedBuild {
    /// class → its system object.
    pub systems: BTreeMap<String, StorePath>,
    /// The output of each package.
    pub packages: BTreeMap<PackageId, StorePath>,
    /// The output of each file.
    pub files: BTreeMap<TextFileId, StorePath>,
    /// The store's invalidation count when all these paths were last seen valid.
    #[serde(default)]
    pub seen_valid_at: Option<u64>,
}

impl CachedBuild {
    fn paths(&self) -> Vec<StorePath> {
        self.systems
            .values()
            .chain(self.packages.values())
            .chain(self.files.values())
            .cloned()
            .collect()
    }
}

/// The cache key of building `classes` of `site` with `sources` and
/// `options`; `None` (never in practice) means: don't use the cache.
pub fn key(
    site: &Site,
    classes: &[&Class],
    sources: &BTreeMap<PackageId, StorePath>,
    debian: &super::debian::Members,
    options: &BuildOptions,
) -> Option<String> {
    #[derive(Serialize)]
    struct Key<'a> {
        site: &'a str,
        classes: &'a [&'a Class],
        packages: &'a BTreeMap<PackageId, ferry_lang::model::Package>,
        files: &'a BTreeMap<TextFileId, ferry_lang::model::TextFile>,
        sources: &'a BTreeMap<PackageId, StorePath>,
        debian: BTreeMap<&'a PackageId, Vec<&'a str>>,
        host_state_dir: &'a std::path::Path,
        timeout: u64,
    }
    let key = Key {
        site: &site.name,
        classes,
        packages: &site.packages,
        files: &site.files,
        sources,
        // The sha256 of every locked package: a new lock is a new build.
        debian: debian
            .iter()
            .map(|(id, members)| (id, members.iter().map(|p| p.sha256.as_str()).collect()))
            .collect(),
        host_state_dir: &options.host_state_dir,
        timeout: options.timeout.as_secs(),
    };
    let mut hasher = blake3::Hasher::new_derive_key("ferry site build v1");
    // Streamed into the hasher through a buffer: serde_json writes token by
    // token, and BLAKE3 is many times faster on big updates than on tiny ones.
    let mut buffered = std::io::BufWriter::with_capacity(64 << 10, &mut hasher);
    serde_json::to_writer(&mut buffered, &key).ok()?;
    buffered.into_inner().ok()?;
    Some(hasher.finalize().to_hex().to_string())
}

fn entry(store: &Store, key: &str) -> PathBuf {
    store
        .state_dir()
        .join("db")
        .join("build-cache")
        .join(format!("{key}.json"))
}

/// The cached build of `key`, pinned in `roots`, if every path is still valid.
pub fn lookup(store: &Store, key: &str, roots: &mut TempRoots) -> Option<CachedBuild> {
    let text = std::fs::read(entry(store, key)).ok()?;
    let cached: CachedBuild = serde_json::from_slice(&text).ok()?;
    let paths = cached.paths();
    roots.add(store, &paths).ok()?;
    // Read after pinning: a gc that could still remove any of them has
    // already counted its invalidation (it holds the store lock throughout).
    let count = store.invalidation_count().ok();
    if count.is_some() && cached.seen_valid_at == count {
        return Some(cached);
    }
    if !store.missing(&paths).is_empty() {
        return None;
    }
    let cached = CachedBuild {
        seen_valid_at: count,
        ..cached
    };
    record(store, key, &cached);
    Some(cached)
}

/// Records a build (give it `seen_valid_at` only if its paths were all valid
/// at that count); a failure to record only costs the next build its shortcut.
pub fn record(store: &Store, key: &str, build: &CachedBuild) {
    let path = entry(store, key);
    let Some(dir) = path.parent() else { return };
    let _ = std::fs::create_dir_all(dir);
    let Ok(json) = serde_json::to_vec(build) else {
        return;
    };
    if let Ok(mut temp) = tempfile::NamedTempFile::new_in(dir) {
        use std::io::Write;
        if temp.write_all(&json).is_ok() {
            let _ = temp.persist(&path);
        }
    }
}

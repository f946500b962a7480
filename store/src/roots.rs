//! GC roots: indirect roots (symlinks under `gcroots/`), profile generations (`profiles/`),
//! site generations (`sites/`), and temporary roots of running operations (`temproots/`).
use std::collections::{BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use fs2::FileExt;

use crate::error::{Result, StoreError};
use crate::fsops;
use crate::lock;
use crate::path::StorePath;
use crate::store::Store;

/// Symlink chains longer than this are not followed (as the kernel's ELOOP limit).
const MAX_LINK_HOPS: usize = 40;

/// Paths pinned against GC while an operation runs. The pin lives in a locked file under
/// `<state_dir>/temproots/`; it ends when this guard is dropped or the process dies.
#[derive(Debug)]
pub struct TempRoots {
    file: File,
    path: PathBuf,
}

impl TempRoots {
    /// Pins more paths (they need not be valid yet: a path pinned before it arrives is kept
    /// once it does).
    pub fn add(&mut self, store: &Store, paths: &[StorePath]) -> Result<()> {
        // Holding the shared store lock while writing means GC never reads a half-written list.
        let _shared = store.shared_lock()?;
        let mut text = String::new();
        for path in paths {
            text.push_str(path.as_str());
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .map_err(StoreError::io("write", &self.path))
    }
}

impl Drop for TempRoots {
    fn drop(&mut self) {
        // Remove while the lock is still held so GC never mistakes a live file for a stale one.
        let _ = std::fs::remove_file(&self.path);
        let _ = FileExt::unlock(&self.file);
    }
}

impl Store {
    /// Where GC root links live (`<state_dir>/gcroots`).
    pub fn gcroots_dir(&self) -> PathBuf {
        self.state_dir.join("gcroots")
    }

    /// Where profile generation links live (`<state_dir>/profiles`).
    pub fn profiles_dir(&self) -> PathBuf {
        self.state_dir.join("profiles")
    }

    /// Where site generation records live (`<state_dir>/sites`).
    pub fn sites_dir(&self) -> PathBuf {
        self.state_dir.join("sites")
    }

    fn temproots_dir(&self) -> PathBuf {
        self.state_dir.join("temproots")
    }

    /// Makes `path` a GC root named `name`: the symlink `<state_dir>/gcroots/<name>` → `path`,
    /// replaced atomically if it exists. Returns the link's path.
    pub fn add_root(&self, name: &str, path: &StorePath) -> Result<PathBuf> {
        check_root_name(name)?;
        let _shared = self.shared_lock()?;
        if !self.is_valid(path) {
            self.check_path(path)?;
            return Err(StoreError::NotValid {
                path: path.to_string(),
            });
        }
        let dir = self.gcroots_dir();
        let link = dir.join(name);
        let temp = dir.join(format!(".tmp-{name}-{}", rand::random::<u64>()));
        std::os::unix::fs::symlink(path.as_path(), &temp)
            .map_err(StoreError::io("create symlink", &temp))?;
        std::fs::rename(&temp, &link).map_err(StoreError::io("rename into place", &link))?;
        fsops::fsync_dir(&dir)?;
        Ok(link)
    }

    /// Removes the root `name`; false if there was none.
    pub fn remove_root(&self, name: &str) -> Result<bool> {
        check_root_name(name)?;
        let _shared = self.shared_lock()?;
        let link = self.gcroots_dir().join(name);
        match std::fs::remove_file(&link) {
            Ok(()) => {
                fsops::fsync_dir(&self.gcroots_dir())?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove", &link)(e)),
        }
    }

    /// Pins `paths` for as long as the returned guard lives.
    pub fn temp_roots(&self, paths: &[StorePath]) -> Result<TempRoots> {
        let shared = self.shared_lock()?;
        let path = self.temproots_dir().join(format!(
            "{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io("create", &path))?;
        FileExt::lock_exclusive(&file).map_err(StoreError::io("lock", &path))?;
        let mut roots = TempRoots { file, path };
        drop(shared);
        roots.add(self, paths)?;
        Ok(roots)
    }

    /// Every root, resolved to the store paths they keep alive (valid or not). Symlinks in
    /// `skip` (generations about to be trimmed) are ignored. Needs the exclusive store lock,
    /// because stale temp-root files are deleted on the way.
    pub(crate) fn collect_roots(&self, skip: &HashSet<PathBuf>) -> Result<BTreeSet<StorePath>> {
        let mut roots = BTreeSet::new();
        for dir in [self.gcroots_dir(), self.profiles_dir(), self.sites_dir()] {
            for entry in walkdir::WalkDir::new(&dir).follow_links(false).min_depth(1) {
                let Ok(entry) = entry else { continue };
                // `.tmp-*` links are half-made roots of an interrupted `add_root`.
                let temporary = entry.file_name().as_encoded_bytes().starts_with(b".tmp-");
                if entry.file_type().is_symlink() && !temporary && !skip.contains(entry.path()) {
                    if let Some(path) = self.resolve_link(entry.path()) {
                        roots.insert(path);
                    }
                }
            }
        }
        let temp_dir = self.temproots_dir();
        let entries = std::fs::read_dir(&temp_dir).map_err(StoreError::io("list", &temp_dir))?;
        for entry in entries.flatten() {
            let file = entry.path();
            if lock::try_exclusive(&file)?.is_some() {
                // Nobody holds it: its process died without cleaning up.
                let _ = std::fs::remove_file(&file);
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            roots.extend(text.lines().filter_map(|line| self.parse_path(line).ok()));
        }
        Ok(roots)
    }

    /// Follows a chain of symlinks until it lands in the store; returns the store path it
    /// lands in (a link into a subdirectory of an object roots the whole object).
    pub(crate) fn resolve_link(&self, link: &Path) -> Option<StorePath> {
        let mut current = link.to_path_buf();
        for _ in 0..MAX_LINK_HOPS {
            let target = std::fs::read_link(&current).ok()?;
            let target = match current.parent() {
                Some(parent) if target.is_relative() => normalize(&parent.join(target)),
                _ => normalize(&target),
            };
            if let Ok(inside) = target.strip_prefix(self.store_dir.as_path()) {
                let first = inside.components().next()?;
                return self
                    .parse_path(&format!(
                        "{}/{}",
                        self.store_dir,
                        first.as_os_str().to_str()?
                    ))
                    .ok();
            }
            current = target;
        }
        None
    }
}

/// Lexical normalization (`..` pops a component); link targets are not resolved further here.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn check_root_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.starts_with(".tmp-")
    {
        return Err(StoreError::BadRootName {
            name: name.to_string(),
        });
    }
    Ok(())
}

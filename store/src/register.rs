//! The commit step shared by ingest and import: move staged objects into the store, make that
//! durable, then register their metadata in one transaction, so that "a valid path's references
//! are valid" holds at every instant, even across a crash.
use std::path::{Path, PathBuf};

use crate::db::PathInfo;
use crate::error::{Result, StoreError};
use crate::fsops::{self, DirHandle};
use crate::lock;
use crate::path::StorePath;
use crate::store::Store;

/// A private temporary directory under the store dir's staging dir (same file system, so
/// renames into the store are atomic).
/// Removed with everything left in it on drop; stale ones are purged by `open`/`gc`.
pub struct Staging {
    path: PathBuf,
    handle: DirHandle,
}

impl Staging {
    pub fn create(store: &Store) -> Result<Staging> {
        let name = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let staging_dir = store.staging_dir();
        // Refuses a staging dir that is a symlink before anything is written through it.
        store.existing_staging_dir()?;
        let path = staging_dir.join(name);
        if let Err(e) = std::fs::create_dir(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(StoreError::io("create temporary directory", &path)(e));
            }
            // The first staging ever, or after a gc removed the (empty) staging dir.
            match std::fs::create_dir(&staging_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::io("create directory", &staging_dir)(e)),
            }
            std::fs::create_dir(&path)
                .map_err(StoreError::io("create temporary directory", &path))?;
        }
        let handle = DirHandle::open(&path)?;
        Ok(Staging { path, handle })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn handle(&self) -> &DirHandle {
        &self.handle
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: what is left is purged by the next `open` or `gc`.
        let _ = fsops::remove_tree(&self.path);
    }
}

/// An object whose bytes are staged (and durable) under `Staging`, with its verified metadata.
pub struct StagedObject {
    /// Its entry name inside the staging directory.
    pub entry: String,
    /// A single-file object written as an unnamed file in the store dir instead (see
    /// `DirHandle::create_unnamed_file`): registering links it into place, with no staging
    /// entry to create and no cross-directory rename.
    pub unnamed: Option<std::fs::File>,
    pub info: PathInfo,
}

impl Store {
    /// Registers staged objects, given dependencies first. The caller has made their bytes
    /// durable and holds the shared store lock. Already valid paths are skipped. Returns the
    /// paths that became valid.
    pub(crate) fn register(
        &self,
        staging: &Staging,
        objects: Vec<StagedObject>,
    ) -> Result<Vec<StorePath>> {
        let _registration = lock::exclusive(&self.locks.registration)?;
        let mut moved = Vec::new();
        let paths: Vec<StorePath> = objects.iter().map(|o| o.info.path.clone()).collect();
        let valid = self.db.exist_many(&paths)?;
        let mut store_handle = None;
        for (object, valid) in objects.into_iter().zip(valid) {
            if valid {
                continue;
            }
            let destination = self.real_path(&object.info.path);
            // An object without metadata at the destination is debris of a crash between
            // placing and registering it (a live registration would hold the registration
            // lock): it is replaced.
            match &object.unnamed {
                Some(file) => {
                    let handle = match &mut store_handle {
                        Some(handle) => handle,
                        None => store_handle.insert(DirHandle::open(self.store_dir.as_path())?),
                    };
                    let name = object.info.path.base_name().as_bytes();
                    if let Err(e) = handle.link_unnamed(file, name) {
                        if e.kind() != std::io::ErrorKind::AlreadyExists {
                            return Err(StoreError::io("move into the store", &destination)(e));
                        }
                        fsops::remove_tree(&destination)?;
                        handle
                            .link_unnamed(file, name)
                            .map_err(StoreError::io("move into the store", &destination))?;
                    }
                }
                None => {
                    let source = staging.path().join(&object.entry);
                    fsops::move_sealed(&source, &destination)?;
                }
            }
            moved.push(object.info);
        }
        if moved.is_empty() {
            return Ok(Vec::new());
        }
        fsops::fsync_dir(self.store_dir.as_path())?;

        // One transaction makes the whole batch valid at once: the references of each record
        // are either valid already (checked by the caller) or in this same batch.
        let now = fsops::now_unix();
        for info in &mut moved {
            info.registration_time = now;
        }
        self.db.insert(&moved)?;
        Ok(moved.into_iter().map(|info| info.path).collect())
    }
}

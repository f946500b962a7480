//! The commit step shared by ingest and import: move staged objects into the store and write
//! their metadata, in an order that keeps "a valid path's references are valid" true at every
//! instant, even across a crash.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::db::PathInfo;
use crate::error::{Result, StoreError};
use crate::fsops::{self, DirHandle};
use crate::lock;
use crate::path::StorePath;
use crate::store::{Store, TEMP_PREFIX};

/// A private temporary directory in the store dir (same file system, so renames are atomic).
/// Removed with everything left in it on drop; stale ones are purged by `open`/`gc`.
pub struct Staging {
    path: PathBuf,
    handle: DirHandle,
}

impl Staging {
    pub fn create(store: &Store) -> Result<Staging> {
        let name = format!(
            "{TEMP_PREFIX}{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let path = store.store_dir.as_path().join(name);
        std::fs::create_dir(&path).map_err(StoreError::io("create temporary directory", &path))?;
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
        for object in objects {
            if self.db.exists(&object.info.path) {
                continue;
            }
            let destination = self.real_path(&object.info.path);
            // An object without metadata is debris of a crash between rename and metadata
            // write (a live registration would hold the registration lock): replace it.
            if std::fs::symlink_metadata(&destination).is_ok() {
                fsops::remove_tree(&destination)?;
            }
            let source = staging.path().join(&object.entry);
            fsops::move_sealed(&source, &destination)?;
            moved.push(object.info);
        }
        if moved.is_empty() {
            return Ok(Vec::new());
        }
        fsops::fsync_dir(self.store_dir.as_path())?;

        // Layer 0 refers only to paths valid before this batch; layer n to layers < n. Each
        // layer's records are durable before the next layer's are written.
        let mut layer_of: HashMap<StorePath, usize> = HashMap::new();
        let mut layers: Vec<Vec<PathInfo>> = Vec::new();
        let now = fsops::now_unix();
        for mut info in moved {
            let layer = info
                .references
                .iter()
                .filter_map(|r| layer_of.get(r))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            layer_of.insert(info.path.clone(), layer);
            info.registration_time = now;
            if layers.len() <= layer {
                layers.resize_with(layer + 1, Vec::new);
            }
            layers[layer].push(info);
        }
        let mut registered = Vec::new();
        for layer in layers {
            self.db.write_batch(&layer)?;
            registered.extend(layer.into_iter().map(|info| info.path));
        }
        Ok(registered)
    }
}

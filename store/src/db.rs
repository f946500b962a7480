//! Path metadata under `<state_dir>/db/paths/`: one JSON record per valid path (FORMAT.md §4),
//! named by the path's base name. A path is valid exactly when its record exists.
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::fsops;
use crate::hash::Digest;
use crate::path::{StoreDir, StorePath};
use crate::realisation::RecipeId;

/// Version written into every metadata record.
pub const METADATA_VERSION: u32 = 1;

/// What the store knows about one valid path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathInfo {
    pub path: StorePath,
    /// Sorted, without duplicates, never the path itself.
    pub references: Vec<StorePath>,
    /// The tree digest (FORMAT.md §1).
    pub tree_digest: Digest,
    /// Length of the object's node encoding in the archive stream ("NAR-like size").
    pub nar_size: u64,
    /// Seconds since the Unix epoch when the path became valid.
    pub registration_time: u64,
    /// The recipe that built it, if any.
    pub deriver: Option<RecipeId>,
    /// Free-form signatures (none are made in v1; kept for forward compatibility).
    pub signatures: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u32,
    #[serde(flatten)]
    info: PathInfo,
}

/// The directory of metadata records.
#[derive(Clone, Debug)]
pub struct PathDb {
    dir: PathBuf,
}

impl PathDb {
    pub fn new(dir: PathBuf) -> PathDb {
        PathDb { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self, path: &StorePath) -> PathBuf {
        self.dir.join(path.base_name())
    }

    pub fn exists(&self, path: &StorePath) -> bool {
        self.record_path(path).is_file()
    }

    /// The record of `path`, or `None` if the path is not valid.
    pub fn read(&self, path: &StorePath) -> Result<Option<PathInfo>> {
        let file = self.record_path(path);
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read metadata", &file)(e)),
        };
        let corrupt = |reason: String| StoreError::CorruptMetadata {
            path: file.clone(),
            reason,
        };
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if record.version != METADATA_VERSION {
            return Err(corrupt(format!("unknown version {}", record.version)));
        }
        if record.info.path != *path {
            return Err(corrupt(format!("it describes {}", record.info.path)));
        }
        Ok(Some(record.info))
    }

    /// The encoded record (FORMAT.md §4).
    pub fn encode(info: &PathInfo) -> Vec<u8> {
        let record = Record {
            version: METADATA_VERSION,
            info: info.clone(),
        };
        let mut bytes = match serde_json::to_vec_pretty(&record) {
            Ok(bytes) => bytes,
            // Strings, numbers and lists only: serialization cannot fail.
            Err(e) => unreachable!("path metadata does not serialize: {e}"),
        };
        bytes.push(b'\n');
        bytes
    }

    /// Writes a record atomically (temp file + rename). Durability of the rename is the caller's
    /// job (one directory fsync per layer of a batch).
    pub fn write(&self, info: &PathInfo, fsync_file: bool) -> Result<()> {
        fsops::write_atomically(
            &self.dir,
            info.path.base_name(),
            &Self::encode(info),
            fsync_file,
        )
    }

    /// Removes a record (makes the path invalid). The caller fsyncs the directory.
    pub fn remove(&self, path: &StorePath) -> Result<()> {
        let file = self.record_path(path);
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove metadata", &file)(e)),
        }
    }

    pub fn fsync(&self) -> Result<()> {
        fsops::fsync_dir(&self.dir)
    }

    /// Every path with a record, sorted.
    pub fn list(&self, store_dir: &StoreDir) -> Result<Vec<StorePath>> {
        let entries = std::fs::read_dir(&self.dir).map_err(StoreError::io("list", &self.dir))?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StoreError::io("list", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue; // a temporary record being written
            }
            if let Ok(path) = StorePath::parse(&format!("{}/{}", store_dir.as_str(), name)) {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(paths)
    }
}

/// Up to this many records in one batch are fsynced one by one; more use one `syncfs`.
const FSYNC_EACH_LIMIT: usize = 16;

impl PathDb {
    /// Writes several records durably: every record's bytes are on disk before its rename, and
    /// the renames are durable (directory fsync) before this returns.
    pub fn write_batch(&self, infos: &[PathInfo]) -> Result<()> {
        if infos.len() <= FSYNC_EACH_LIMIT {
            for info in infos {
                self.write(info, true)?;
            }
        } else {
            let mut temps = Vec::with_capacity(infos.len());
            for info in infos {
                let temp = self.dir.join(format!(
                    "{}{}-{}",
                    crate::store::TEMP_PREFIX,
                    info.path.base_name(),
                    rand::random::<u64>()
                ));
                std::fs::write(&temp, Self::encode(info))
                    .map_err(StoreError::io("write", &temp))?;
                temps.push((temp, self.record_path(&info.path)));
            }
            fsops::DirHandle::open(&self.dir)?.syncfs()?;
            for (temp, record) in temps {
                std::fs::rename(&temp, &record)
                    .map_err(StoreError::io("rename into place", &record))?;
            }
        }
        self.fsync()
    }
}

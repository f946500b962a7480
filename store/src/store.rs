//! The `Store` handle: directory layout, opening (with purge of stale temp dirs) and queries.
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::db::{PathDb, PathInfo};
use crate::error::{Result, StoreError};
use crate::fsops;
use crate::lock::{self, LockGuard, LockPaths};
use crate::path::{StoreDir, StorePath};

/// Prefix of every temporary file ferry makes in the metadata dir (and, before staging moved
/// into [`STAGING_DIR`], of staging directories in the store dir).
pub const TEMP_PREFIX: &str = ".tmp-";

/// The directory inside the store dir (same file system, so renames out of it are atomic)
/// holding the staging directories of adds and imports in progress. Keeping them out of the
/// store dir itself means opening a store never has to list all of its objects.
pub const STAGING_DIR: &str = ".tmp";

/// An open store: a store dir (objects) and a state dir (metadata, roots, profiles).
#[derive(Debug)]
pub struct Store {
    pub(crate) store_dir: StoreDir,
    pub(crate) state_dir: PathBuf,
    pub(crate) db: PathDb,
    pub(crate) locks: LockPaths,
}

/// The file in a state directory's `db/` naming the store directory the
/// state belongs to.
const OWNER_FILE: &str = "store-dir";

/// A state directory belongs to the first store directory it was opened
/// with (recorded in `db/store-dir`); opening it with another is refused.
fn check_owner(db_dir: &Path, state_dir: &Path, store_dir: &Path) -> Result<()> {
    let path = db_dir.join(OWNER_FILE);
    if !path.exists() {
        // Written whole, then linked into place only if nothing is there
        // yet: concurrent first opens agree, and a crash leaves no half file.
        let mut line = store_dir.as_os_str().as_bytes().to_vec();
        line.push(b'\n');
        let mut staged = tempfile::Builder::new()
            .prefix(".owner-")
            .tempfile_in(db_dir)
            .map_err(StoreError::io("create a temporary file in", db_dir))?;
        std::io::Write::write_all(&mut staged, &line)
            .and_then(|()| staged.as_file().sync_all())
            .map_err(StoreError::io("write", staged.path().to_path_buf()))?;
        match staged.persist_noclobber(&path) {
            Ok(_) => fsops::fsync_dir(db_dir)?,
            // Another open made it first: it is checked below like any.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io("link into place", &path)(e.error)),
        }
    }
    match std::fs::read(&path) {
        Ok(bytes) => {
            let recorded = PathBuf::from(std::ffi::OsStr::from_bytes(
                bytes.strip_suffix(b"\n").unwrap_or(&bytes),
            ));
            if recorded == store_dir {
                Ok(())
            } else {
                Err(StoreError::StateOfAnotherStore {
                    state_dir: state_dir.to_path_buf(),
                    recorded,
                    given: store_dir.to_path_buf(),
                })
            }
        }
        Err(e) => Err(StoreError::io("read", &path)(e)),
    }
}

impl Store {
    /// Opens (creating if needed) a store. Stale `.tmp-*` entries of crashed runs are purged
    /// when no other process is using the store at this moment; otherwise the next `open` or
    /// `gc` does it.
    pub fn open(store_dir: &Path, state_dir: &Path) -> Result<Store> {
        let store_dir = StoreDir::new(store_dir)?;
        let db_dir = state_dir.join("db");
        // Services run as other users and must read the store and traverse
        // the state dir to their own directories, whatever the caller's umask.
        for dir in [store_dir.as_path(), state_dir] {
            create_traversable(dir)?;
        }
        for dir in [store_dir.as_path().to_path_buf(), db_dir.clone()] {
            std::fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        }
        for name in ["gcroots", "profiles", "sites", "temproots"] {
            let dir = state_dir.join(name);
            std::fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        }
        check_owner(&db_dir, state_dir, store_dir.as_path())?;
        let store = Store {
            store_dir,
            state_dir: state_dir.to_path_buf(),
            db: PathDb::new(db_dir.clone()),
            locks: LockPaths {
                store: db_dir.join("lock"),
                registration: db_dir.join("register.lock"),
            },
        };
        if let Some(_exclusive) = lock::try_exclusive(&store.locks.store)? {
            store.purge_temporaries(false)?;
        }
        Ok(store)
    }

    /// Removes what crashed runs left: every staging directory and every `.tmp-*` file of the
    /// metadata dir; with `whole_store_dir`, also `.tmp-*` entries of the store dir itself
    /// (left by older versions; that means listing every object, so only `gc` asks for it).
    /// Only call with the exclusive store lock held: every operation that makes temporary
    /// entries holds the shared lock while they exist.
    pub(crate) fn purge_temporaries(&self, whole_store_dir: bool) -> Result<usize> {
        let mut purged = 0;
        if let Some(staging) = self.existing_staging_dir()? {
            let entries = std::fs::read_dir(&staging).map_err(StoreError::io("list", &staging))?;
            for entry in entries.flatten() {
                fsops::remove_tree(&entry.path())?;
                purged += 1;
            }
        }
        let db_dir = self.state_dir.join("db");
        let mut dirs = vec![db_dir.as_path()];
        if whole_store_dir {
            dirs.push(self.store_dir.as_path());
        }
        for dir in dirs {
            let entries = std::fs::read_dir(dir).map_err(StoreError::io("list", dir))?;
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .as_encoded_bytes()
                    .starts_with(TEMP_PREFIX.as_bytes())
                {
                    fsops::remove_tree(&entry.path())?;
                    purged += 1;
                }
            }
        }
        Ok(purged)
    }

    /// Where staging directories live (see [`STAGING_DIR`]).
    pub(crate) fn staging_dir(&self) -> PathBuf {
        self.store_dir.as_path().join(STAGING_DIR)
    }

    /// The staging directory if it exists, refused unless it is a real
    /// directory: a symlink there would make staging write, and purging
    /// delete, wherever it points.
    pub(crate) fn existing_staging_dir(&self) -> Result<Option<PathBuf>> {
        let path = self.staging_dir();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_dir() => Ok(Some(path)),
            Ok(_) => Err(StoreError::StagingNotADirectory { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("inspect", &path)(e)),
        }
    }

    /// The directory objects live in.
    pub fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    fn invalidations_file(&self) -> PathBuf {
        self.state_dir.join("db").join("invalidations")
    }

    /// How many times valid paths were made invalid (by `gc` or `verify --repair`) in this
    /// store's life. Paths never become invalid any other way, so a caller that saw a set of
    /// paths valid at count N, and pinned them as temporary roots, knows they are all still
    /// valid while the count is still N: one small read instead of a check per path.
    pub fn invalidation_count(&self) -> Result<u64> {
        let file = self.invalidations_file();
        match std::fs::read_to_string(&file) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| StoreError::CorruptMetadata {
                    path: file,
                    reason: format!("{:?} is not a count", text.trim()),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(StoreError::io("read", &file)(e)),
        }
    }

    /// Counts one more invalidation, durably, before any record is removed (exclusive lock held).
    pub(crate) fn count_invalidation(&self) -> Result<()> {
        let next = self.invalidation_count()?.saturating_add(1);
        let db_dir = self.state_dir.join("db");
        fsops::write_atomically(
            &db_dir,
            "invalidations",
            format!("{next}\n").as_bytes(),
            true,
        )?;
        fsops::fsync_dir(&db_dir)
    }

    /// The directory metadata, roots and profiles live in.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub(crate) fn shared_lock(&self) -> Result<LockGuard> {
        lock::shared(&self.locks.store)
    }

    pub(crate) fn exclusive_lock(&self) -> Result<LockGuard> {
        lock::exclusive(&self.locks.store)
    }

    /// Parses a store path and checks it belongs to this store's directory.
    pub fn parse_path(&self, text: &str) -> Result<StorePath> {
        let path = StorePath::parse(text)?;
        self.check_path(&path)?;
        Ok(path)
    }

    /// Refuses paths of another store dir (their hashes mean nothing here).
    pub fn check_path(&self, path: &StorePath) -> Result<()> {
        if path.store_dir() == self.store_dir.as_str() {
            Ok(())
        } else {
            Err(StoreError::WrongStoreDir {
                path: path.to_string(),
                store_dir: self.store_dir.to_string(),
            })
        }
    }

    /// Where the object of `path` lives on disk.
    pub fn real_path(&self, path: &StorePath) -> PathBuf {
        self.store_dir.as_path().join(path.base_name())
    }

    /// True when `path` is registered (its metadata record exists; the store keeps the
    /// invariant that every reference of a valid path is valid).
    pub fn is_valid(&self, path: &StorePath) -> bool {
        self.check_path(path).is_ok() && self.db.exists(path)
    }

    /// The metadata of a valid path.
    pub fn path_info(&self, path: &StorePath) -> Result<PathInfo> {
        self.check_path(path)?;
        self.db.read(path)?.ok_or_else(|| StoreError::NotValid {
            path: path.to_string(),
        })
    }

    /// The metadata of valid paths, in the given order, read in one transaction.
    pub fn path_infos(&self, paths: &[StorePath]) -> Result<Vec<PathInfo>> {
        for path in paths {
            self.check_path(path)?;
        }
        let records = self.db.read_many(&paths.iter().collect::<Vec<_>>())?;
        paths
            .iter()
            .zip(records)
            .map(|(path, record)| {
                record.ok_or_else(|| StoreError::NotValid {
                    path: path.to_string(),
                })
            })
            .collect()
    }

    /// The given paths that are not valid here, in the given order.
    pub fn missing(&self, paths: &[StorePath]) -> Vec<StorePath> {
        let found = match self.db.exist_many(paths) {
            Ok(found) => found,
            // As `is_valid`: what cannot be checked counts as missing.
            Err(_) => vec![false; paths.len()],
        };
        paths
            .iter()
            .zip(found)
            .filter(|(p, found)| !found || self.check_path(p).is_err())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Every valid path, sorted.
    pub fn all_valid_paths(&self) -> Result<Vec<StorePath>> {
        self.db.list(&self.store_dir)
    }

    /// Every valid path whose references include `path`, sorted.
    pub fn referrers(&self, path: &StorePath) -> Result<Vec<StorePath>> {
        self.check_path(path)?;
        let mut referrers = Vec::new();
        for candidate in self.all_valid_paths()? {
            if let Some(info) = self.db.read(&candidate)? {
                if info.references.binary_search(path).is_ok() {
                    referrers.push(candidate);
                }
            }
        }
        Ok(referrers)
    }
}

/// Creates `dir` (and its parents) if missing and makes it 0755 when this
/// call created it; an existing directory keeps the mode its owner chose.
fn create_traversable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(StoreError::io("set permissions of", dir))
}

//! The store's typed errors: what went wrong, on which path, and a hint for the user.
use std::path::PathBuf;

use crate::archive::ArchiveError;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system call failed on a concrete file.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `write`.
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store directory given is not usable as part of every hash.
    #[error("bad store directory {}: {reason}", path.display())]
    BadStoreDir {
        /// The directory given.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The store's staging directory is a symlink or not a directory: ferry
    /// neither writes into nor purges what it does not own.
    #[error("{} should be the store's own staging directory, but it is not a real directory (a symlink or a file); ferry will not follow it", path.display())]
    StagingNotADirectory {
        /// The staging directory (`<store>/.tmp`).
        path: PathBuf,
    },
    /// A store path string that does not parse.
    #[error("`{text}` is not a store path: {reason}")]
    BadStorePath {
        /// The string given.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A store object name that breaks the naming rules.
    #[error("`{name}` is not a valid store object name: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A path that belongs to another store directory.
    #[error("{path} is not in this store (the store directory is {store_dir})")]
    WrongStoreDir {
        /// The path given.
        path: String,
        /// This store's directory.
        store_dir: String,
    },
    /// A path that is not valid (not registered) in this store.
    #[error("{path} is not a valid path in this store")]
    NotValid {
        /// The path asked for.
        path: String,
    },
    /// A declared candidate reference that is not valid itself.
    #[error("reference {reference} of `{name}` is not a valid path in this store")]
    InvalidReference {
        /// The name of the object being added.
        name: String,
        /// The candidate reference that is not valid.
        reference: String,
    },
    /// The object would contain its own (temporary) path.
    #[error("`{name}` refers to its own path {self_path} (in {})", file.display())]
    SelfReference {
        /// The name of the object being added.
        name: String,
        /// The temporary path it was made at.
        self_path: String,
        /// The file that contains that path.
        file: PathBuf,
    },
    /// A file type the store cannot hold (device, FIFO, socket).
    #[error("{} is a {kind}, which a store object cannot contain", path.display())]
    UnsupportedFileType {
        /// The file.
        path: PathBuf,
        /// What it is, e.g. `FIFO`.
        kind: &'static str,
    },
    /// A source file changed while it was being added.
    #[error("{} changed while it was being added", path.display())]
    SourceChanged {
        /// The source file that changed.
        path: PathBuf,
    },
    /// A store object on disk that no longer matches its metadata.
    #[error("store object {path} is corrupt: {reason}")]
    CorruptObject {
        /// The object's store path (`<archive>` for an import stream as a whole).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The metadata database failed (locked for too long, full disk, corrupt file…).
    #[error("store database {}: cannot {action}: {reason}", path.display())]
    Database {
        /// What the database was asked to do.
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// The database's error.
        reason: String,
    },
    /// A metadata record that cannot be read back.
    #[error("metadata record {} is corrupt: {reason}", path.display())]
    CorruptMetadata {
        /// Where the record lives.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// The archive stream was refused.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A recipe id that is not 64 hex digits.
    #[error("`{text}` is not a recipe id (64 hex digits)")]
    BadRecipeId {
        /// The string given.
        text: String,
    },
    /// A GC root name that is not a plain file name.
    #[error("`{name}` is not a valid GC root name (a plain file name is needed)")]
    BadRootName {
        /// The name given.
        name: String,
    },
    /// A path inside a tree to add is longer than a store object may hold.
    #[error("{} is {len} bytes inside the tree; a store object's paths are at most {} bytes", path.display(), crate::archive::limits::RELATIVE_PATH_LEN)]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length inside the tree.
        len: usize,
    },
    /// The state directory records another store's paths: using it with
    /// this store would mix two stores' records in one database.
    #[error("the state directory {} belongs to the store {}, not to {}", state_dir.display(), recorded.display(), given.display())]
    StateOfAnotherStore {
        /// The state directory given.
        state_dir: PathBuf,
        /// The store directory it was made for.
        recorded: PathBuf,
        /// The store directory given now.
        given: PathBuf,
    },
}

impl StoreError {
    /// True when the error is caused by what the user handed in (exit code 2), not by the machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            StoreError::Io { .. }
                | StoreError::Database { .. }
                | StoreError::CorruptMetadata { .. }
                | StoreError::CorruptObject { .. }
        )
    }

    /// A line telling the user what to do next, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            StoreError::Io { .. } => "check that the store and state directories exist and are writable",
            StoreError::Database { .. } => "check that the state directory is writable and its disk not full; another ferry may hold the database for a long transaction",
            StoreError::BadStoreDir { .. } => "pass an absolute directory without `.` or `..`, e.g. --store-dir /ferry/store",
            StoreError::StagingNotADirectory { .. } => "remove it (ferry makes a real directory there again), after moving away anything of yours it points to",
            StoreError::BadStorePath { .. } => "a store path looks like <store-dir>/<32 base32 characters>-<name>",
            StoreError::BadName { .. } => "use ASCII letters, digits and `+-._?=`, not starting with `.`, at most 211 bytes; pass --name to choose one",
            StoreError::WrongStoreDir { .. } => "closures are only valid in a store with the same directory; pass --store-dir",
            StoreError::NotValid { .. } => "add it first (`ferry store add`) or import it (`ferry store import`)",
            StoreError::InvalidReference { .. } => "add the referenced path to the store before the object that uses it",
            StoreError::SelfReference { .. } => "self-references are not supported: make the output refer to its files by relative paths",
            StoreError::UnsupportedFileType { .. } => "remove device files, FIFOs and sockets from the tree",
            StoreError::SourceChanged { .. } => "stop whatever writes to the source and try again",
            StoreError::CorruptMetadata { .. } | StoreError::CorruptObject { .. } => "run `ferry store verify --repair`",
            StoreError::Archive(e) => return e.hint(),
            StoreError::BadRecipeId { .. } => return None,
            StoreError::BadRootName { .. } => "use a name without `/`, not `.` or `..`",
            StoreError::PathTooLong { .. } => "shorten the tree's directory and file names; full paths under the store must stay below PATH_MAX",
            StoreError::StateOfAnotherStore { .. } => "a state directory belongs to one store directory: pass both --store-dir and --state-dir (or FERRY_STORE_DIR and FERRY_STATE_DIR), one pair per store",
        })
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

/// Turns a `nix` errno into an `io::Error` so every OS failure has one shape.
pub(crate) fn errno(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// Shorthand used across the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

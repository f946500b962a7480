//! The archive stream (FORMAT.md §5): how objects travel between stores (`export`/`import`,
//! and the SSH copy protocol, which wraps it in zstd).
pub mod read;
pub mod write;

pub use read::{ImportMode, ImportReport};
pub use write::ExportStats;

/// First bytes of every archive.
pub const MAGIC: &[u8; 8] = b"FERRYARC";
/// The only version this code reads and writes.
pub const VERSION: u32 = 1;
/// Record tag: an object follows.
pub const TAG_OBJECT: u8 = 1;
/// Record tag: the end of the stream (followed by the object count).
pub const TAG_END: u8 = 0;

/// Limits on declared sizes and counts; anything above is refused before it is acted on.
pub mod limits {
    /// Bytes of a store path string.
    pub const PATH_LEN: u64 = 4096;
    /// References of one object.
    pub const REFERENCES: u64 = 65_536;
    /// Signatures of one object, and bytes of each.
    pub const SIGNATURES: u64 = 64;
    pub const SIGNATURE_LEN: u64 = 4096;
    /// Bytes of a directory entry name (Linux NAME_MAX).
    pub const ENTRY_NAME_LEN: u64 = 255;
    /// Bytes of a symlink target (Linux PATH_MAX - 1).
    pub const SYMLINK_TARGET_LEN: u64 = 4095;
    /// Entries of one directory.
    pub const DIRECTORY_ENTRIES: u64 = 1 << 22;
    /// Nesting depth of directories.
    pub const DEPTH: usize = 512;
    /// Bytes of one object's node encoding (1 TiB).
    pub const OBJECT_SIZE: u64 = 1 << 40;
}

/// Why an archive was refused. `offset` is the byte offset in the stream where it was noticed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a ferry archive (bad magic bytes)")]
    BadMagic,
    #[error("archive version {0} is not supported (this ferry reads version {VERSION})")]
    UnsupportedVersion(u32),
    #[error("archive is truncated at byte {offset}")]
    Truncated { offset: u64 },
    #[error("unknown record tag {tag} at byte {offset}")]
    BadTag { tag: u8, offset: u64 },
    #[error("unknown node tag {tag} at byte {offset}")]
    BadNodeTag { tag: u8, offset: u64 },
    #[error("bad {field} at byte {offset}: {reason}")]
    BadField {
        field: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("entry name {name:?} at byte {offset} is refused: {reason}")]
    BadEntryName {
        name: String,
        offset: u64,
        reason: &'static str,
    },
    #[error("entry {name:?} at byte {offset} is a duplicate or out of order (names must strictly increase)")]
    UnsortedEntry { name: String, offset: u64 },
    #[error("{what} {value} at byte {offset} exceeds the limit of {limit}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        limit: u64,
        offset: u64,
    },
    #[error("object {path} is in another store directory (this store is {store_dir})")]
    WrongStoreDir { path: String, store_dir: String },
    #[error("object {path} appears twice in the archive")]
    DuplicateObject { path: String },
    #[error("object {path} refers to {reference}, which is neither valid in this store nor earlier in the archive")]
    UnknownReference { path: String, reference: String },
    #[error("object {path} refers to itself")]
    SelfReference { path: String },
    #[error("object {path} declares size {declared} but its content is {actual} bytes")]
    SizeMismatch {
        path: String,
        declared: u64,
        actual: u64,
    },
    #[error("object {path} declares tree digest {declared} but its content hashes to {actual}")]
    DigestMismatch {
        path: String,
        declared: String,
        actual: String,
    },
    #[error("object {path} does not match its content: content and references give {derived}")]
    PathMismatch { path: String, derived: String },
    #[error("archive declares {declared} objects at its end but carried {actual}")]
    CountMismatch { declared: u64, actual: u64 },
    #[error("reading the archive failed at byte {offset}: {source}")]
    Read {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            ArchiveError::BadMagic => "the input is not an archive made by `ferry store export` (was it compressed?)",
            ArchiveError::UnsupportedVersion(_) => "export it again with this version of ferry",
            ArchiveError::Truncated { .. } | ArchiveError::Read { .. } | ArchiveError::CountMismatch { .. } => {
                "the archive was cut short: export it again"
            }
            ArchiveError::WrongStoreDir { .. } => "import into a store with the same --store-dir as the exporting one",
            ArchiveError::UnknownReference { .. } => "export the whole closure (`ferry store export` does), or import its dependencies first",
            _ => "the archive is corrupt or was tampered with; nothing of the refused object was kept",
        })
    }
}

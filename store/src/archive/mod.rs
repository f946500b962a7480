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
    /// Signatures of one object.
    pub const SIGNATURES: u64 = 64;
    /// Bytes of one signature.
    pub const SIGNATURE_LEN: u64 = 4096;
    /// Bytes of a directory entry name (Linux NAME_MAX).
    pub const ENTRY_NAME_LEN: u64 = 255;
    /// Bytes of a symlink target (Linux PATH_MAX - 1).
    pub const SYMLINK_TARGET_LEN: u64 = 4095;
    /// Entries of one directory.
    pub const DIRECTORY_ENTRIES: u64 = 1 << 22;
    /// Nesting depth of directories.
    pub const DEPTH: usize = 512;
    /// Bytes of a path inside an object (entry names joined by `/`). With a
    /// store dir of at most [`STORE_DIR_LEN`] bytes and an object name, every
    /// full path stays below Linux's PATH_MAX (4096), so whatever is imported
    /// can be read back by path (`verify`, `export`); `store add` refuses the
    /// same trees, so both sides agree.
    pub const RELATIVE_PATH_LEN: usize = 3072;
    /// Bytes of a store directory.
    pub const STORE_DIR_LEN: usize = 700;
    /// Bytes of one object's node encoding (1 TiB).
    pub const OBJECT_SIZE: u64 = 1 << 40;
}

/// Why an archive was refused. `offset` is the byte offset in the stream where it was noticed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The stream does not start with the archive magic bytes.
    #[error("not a ferry archive (bad magic bytes)")]
    BadMagic,
    /// The archive has a version this code does not read.
    #[error("archive version {0} is not supported (this ferry reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// The stream ended inside a record.
    #[error("archive is truncated at byte {offset}")]
    Truncated {
        /// Byte offset in the stream where it was noticed.
        offset: u64,
    },
    /// A record starts with a tag that is neither object nor end.
    #[error("unknown record tag {tag} at byte {offset}")]
    BadTag {
        /// The tag read.
        tag: u8,
        /// Byte offset in the stream where it was noticed.
        offset: u64,
    },
    /// A node starts with a tag that is neither file, symlink nor directory.
    #[error("unknown node tag {tag} at byte {offset}")]
    BadNodeTag {
        /// The tag read.
        tag: u8,
        /// Byte offset in the stream where it was noticed.
        offset: u64,
    },
    /// A field's value is malformed.
    #[error("bad {field} at byte {offset}: {reason}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// Byte offset in the stream where it was noticed.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A directory entry name is not a single path component.
    #[error("entry name {name:?} at byte {offset} is refused: {reason}")]
    BadEntryName {
        /// The name (lossily decoded).
        name: String,
        /// Byte offset in the stream where it was noticed.
        offset: u64,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A directory entry name is not greater than the one before it.
    #[error("entry {name:?} at byte {offset} is a duplicate or out of order (names must strictly increase)")]
    UnsortedEntry {
        /// The name (lossily decoded).
        name: String,
        /// Byte offset in the stream where it was noticed.
        offset: u64,
    },
    /// A declared count, size or depth is above its limit (see [`limits`]).
    #[error("{what} {value} at byte {offset} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was declared, e.g. `reference count`.
        what: &'static str,
        /// The value declared.
        value: u64,
        /// The largest value accepted.
        limit: u64,
        /// Byte offset in the stream where it was noticed.
        offset: u64,
    },
    /// An object or reference belongs to another store directory.
    #[error("object {path} is in another store directory (this store is {store_dir})")]
    WrongStoreDir {
        /// The path read.
        path: String,
        /// This store's directory.
        store_dir: String,
    },
    /// The same object appears twice.
    #[error("object {path} appears twice in the archive")]
    DuplicateObject {
        /// The object's store path.
        path: String,
    },
    /// A reference is neither valid in this store nor earlier in the stream.
    #[error("object {path} refers to {reference}, which is neither valid in this store nor earlier in the archive")]
    UnknownReference {
        /// The object's store path.
        path: String,
        /// The reference that is unknown.
        reference: String,
    },
    /// An object lists itself among its references.
    #[error("object {path} refers to itself")]
    SelfReference {
        /// The object's store path.
        path: String,
    },
    /// An object's node encoding is not as long as its header declares.
    #[error("object {path} declares size {declared} but its content is {actual} bytes")]
    SizeMismatch {
        /// The object's store path.
        path: String,
        /// The size its header declares.
        declared: u64,
        /// The bytes of its node encoding read, up to the node that went past the declared size.
        actual: u64,
    },
    /// An object's content does not hash to its declared tree digest.
    #[error("object {path} declares tree digest {declared} but its content hashes to {actual}")]
    DigestMismatch {
        /// The object's store path.
        path: String,
        /// The tree digest its header declares, in hex.
        declared: String,
        /// The digest of its content, in hex.
        actual: String,
    },
    /// An object's path is not the one its content and references give.
    #[error("object {path} does not match its content: content and references give {derived}")]
    PathMismatch {
        /// The object's store path.
        path: String,
        /// The path its content and references give.
        derived: String,
    },
    /// The end record's object count differs from the objects carried.
    #[error("archive declares {declared} objects at its end but carried {actual}")]
    CountMismatch {
        /// The count in the end record.
        declared: u64,
        /// The objects the stream carried.
        actual: u64,
    },
    /// Reading the stream failed.
    #[error("reading the archive failed at byte {offset}: {source}")]
    Read {
        /// Byte offset in the stream where it was noticed.
        offset: u64,
        /// The reader's error.
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    /// A line telling the user what to do about the refusal.
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

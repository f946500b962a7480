//! The canonical encodings of FORMAT.md §1–§2: tree digests and object ids. Never change these
//! without bumping the version strings; the golden vectors in tests/golden.rs pin them.
use std::fmt;

use crate::path::{StoreDir, StorePath};

/// Tag byte of a regular file node.
pub const TAG_FILE: u8 = b'f';
/// Tag byte of a symbolic link node.
pub const TAG_SYMLINK: u8 = b's';
/// Tag byte of a directory node.
pub const TAG_DIRECTORY: u8 = b'd';

/// The `blake3::derive_key` context of object ids.
pub const OBJECT_ID_CONTEXT: &str = "ferry store object v1";

/// A 32-byte BLAKE3 digest, shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Digest> {
        super::hex::decode32(text).map(Digest)
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        super::hex::encode(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// A hasher with a regular file's header (`f`, executable byte, size) already fed;
/// the caller feeds exactly `size` content bytes and finalizes.
pub fn file_hasher(executable: bool, size: u64) -> blake3::Hasher {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[TAG_FILE, u8::from(executable)]);
    hasher.update(&size.to_le_bytes());
    hasher
}

/// Files at least this big are hashed with BLAKE3's multi-threaded `update_rayon`.
pub const RAYON_HASH_THRESHOLD: usize = 128 * 1024;

/// Feeds file content, in parallel when the chunk is big enough to pay for it.
pub fn feed(hasher: &mut blake3::Hasher, chunk: &[u8]) {
    if chunk.len() >= RAYON_HASH_THRESHOLD {
        hasher.update_rayon(chunk);
    } else {
        hasher.update(chunk);
    }
}

/// The tree digest of a regular file.
pub fn file_digest(executable: bool, contents: &[u8]) -> Digest {
    let mut hasher = file_hasher(executable, contents.len() as u64);
    feed(&mut hasher, contents);
    Digest(*hasher.finalize().as_bytes())
}

/// The tree digest of a symbolic link.
pub fn symlink_digest(target: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[TAG_SYMLINK]);
    hasher.update(&(target.len() as u64).to_le_bytes());
    hasher.update(target);
    Digest(*hasher.finalize().as_bytes())
}

/// Builds a directory's digest from its entries, which must come in strictly increasing
/// byte order of their names (callers check this; it is what makes the digest canonical).
pub struct DirectoryHasher {
    hasher: blake3::Hasher,
}

impl DirectoryHasher {
    /// Starts the digest of a directory with `entry_count` entries.
    pub fn new(entry_count: u64) -> DirectoryHasher {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[TAG_DIRECTORY]);
        hasher.update(&entry_count.to_le_bytes());
        DirectoryHasher { hasher }
    }

    /// Adds the next entry, in strictly increasing name order, with its node's digest.
    pub fn entry(&mut self, name: &[u8], child: &Digest) {
        self.hasher.update(&(name.len() as u64).to_le_bytes());
        self.hasher.update(name);
        self.hasher.update(&child.0);
    }

    /// The directory's digest, once every entry is added.
    pub fn finish(self) -> Digest {
        Digest(*self.hasher.finalize().as_bytes())
    }
}

/// The tree digest of a directory from its sorted entries.
pub fn directory_digest<'a>(entries: impl ExactSizeIterator<Item = (&'a [u8], Digest)>) -> Digest {
    let mut hasher = DirectoryHasher::new(entries.len() as u64);
    for (name, child) in entries {
        hasher.entry(name, &child);
    }
    hasher.finish()
}

/// Archive-encoding size of a file node (tag, executable byte, size, contents): the unit of
/// an object's "NAR-like size".
pub fn file_node_size(size: u64) -> u64 {
    1 + 1 + 8 + size
}

/// Archive-encoding size of a symlink node.
pub fn symlink_node_size(target_len: u64) -> u64 {
    1 + 8 + target_len
}

/// Archive-encoding size of a directory node's own bytes (tag and count), without entries.
pub fn directory_node_size() -> u64 {
    1 + 8
}

/// Archive-encoding size of one directory entry's name header, without the child node.
pub fn entry_header_size(name_len: u64) -> u64 {
    8 + name_len
}

/// The object id: `derive_key(OBJECT_ID_CONTEXT, store dir ‖ name ‖ tree digest ‖ references)`,
/// each string as u64 LE length + bytes, references sorted and deduplicated.
pub fn object_id(
    store_dir: &StoreDir,
    name: &str,
    tree: &Digest,
    references: &[StorePath],
) -> [u8; 32] {
    let mut sorted: Vec<&str> = references.iter().map(StorePath::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut material = Vec::with_capacity(128 + sorted.len() * 96);
    put_string(&mut material, store_dir.as_str().as_bytes());
    put_string(&mut material, name.as_bytes());
    material.extend_from_slice(&tree.0);
    material.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    for reference in sorted {
        put_string(&mut material, reference.as_bytes());
    }
    blake3::derive_key(OBJECT_ID_CONTEXT, &material)
}

/// The store path an object with this name, tree and references gets in `store_dir`.
pub fn object_path(
    store_dir: &StoreDir,
    name: &str,
    tree: &Digest,
    references: &[StorePath],
) -> StorePath {
    let id = object_id(store_dir, name, tree, references);
    StorePath::from_parts(store_dir, &id, name)
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

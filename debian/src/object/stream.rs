//! Unpacked packages as one store archive stream (the store's `FORMAT.md` §5), read by
//! `Store::import`: the store then writes each file once, straight from memory, verifies every
//! object again against its declared digest and path, and registers them in batches, each made
//! durable before its records commit (the crash-safe order every add and import follows).
use std::io::{self, BufRead, Read};
use std::sync::mpsc::Receiver;

use ferry_store::archive::{MAGIC, TAG_END, TAG_OBJECT, VERSION};
use ferry_store::hash::canonical::{self, DirectoryHasher, TAG_DIRECTORY, TAG_FILE, TAG_SYMLINK};
use ferry_store::{Digest, StoreDir, StorePath};

use crate::unpack::{MemoryEntries, MemoryNode, MemoryTree};

/// File contents smaller than this are copied into the header chunk around them; bigger ones
/// travel as chunks of their own, moved rather than copied.
const INLINE_CONTENT: usize = 64 * 1024;

/// One object of the stream: its store path, and its record as chunks of bytes.
pub(crate) struct ObjectRecord {
    /// The path the object gets: derived here from its name and tree, as the store derives it
    /// again (and refuses the object if it differs).
    pub(crate) path: StorePath,
    chunks: Vec<Vec<u8>>,
}

impl ObjectRecord {
    /// The record of a tree named `name`, with no references and no deriver (what
    /// `Store::add_path_with` gives an unpacked package).
    pub(crate) fn new(store_dir: &StoreDir, name: &str, tree: MemoryTree) -> ObjectRecord {
        let mut node = Chunks::default();
        let (digest, nar_size) = encode_directory(tree.entries, &mut node);
        let path = canonical::object_path(store_dir, name, &digest, &[]);
        let mut header = Chunks::default();
        header.put(&[TAG_OBJECT]);
        header.put_bytes(path.as_str().as_bytes());
        header.put_u64(0); // references
        header.put(&[0]); // no deriver
        header.put_u64(0); // signatures
        header.put(&digest.0);
        header.put_u64(nar_size);
        let mut chunks = header.finish();
        chunks.extend(node.finish());
        ObjectRecord { path, chunks }
    }
}

/// Bytes gathered as a list of chunks.
#[derive(Default)]
struct Chunks {
    done: Vec<Vec<u8>>,
    current: Vec<u8>,
}

impl Chunks {
    fn put(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
    }

    fn put_u64(&mut self, value: u64) {
        self.put(&value.to_le_bytes());
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        self.put_u64(bytes.len() as u64);
        self.put(bytes);
    }

    /// Appends `content`, moving it when it is big.
    fn put_content(&mut self, content: Vec<u8>) {
        if content.len() < INLINE_CONTENT {
            self.put(&content);
            return;
        }
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.done.push(content);
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

/// Encodes one node into `out`; returns its tree digest and its encoded size.
fn encode_node(node: MemoryNode, out: &mut Chunks) -> (Digest, u64) {
    match node {
        MemoryNode::File {
            executable,
            content,
        } => {
            let digest = canonical::file_digest(executable, &content);
            let len = content.len() as u64;
            out.put(&[TAG_FILE, u8::from(executable)]);
            out.put_u64(len);
            out.put_content(content);
            (digest, canonical::file_node_size(len))
        }
        MemoryNode::Symlink { target } => {
            out.put(&[TAG_SYMLINK]);
            out.put_bytes(&target);
            (
                canonical::symlink_digest(&target),
                canonical::symlink_node_size(target.len() as u64),
            )
        }
        MemoryNode::Directory { entries } => encode_directory(entries, out),
    }
}

/// Encodes a directory (its entries already in byte order, as a `BTreeMap` keeps them).
fn encode_directory(entries: MemoryEntries, out: &mut Chunks) -> (Digest, u64) {
    let count = entries.len() as u64;
    out.put(&[TAG_DIRECTORY]);
    out.put_u64(count);
    let mut hasher = DirectoryHasher::new(count);
    let mut size = canonical::directory_node_size();
    for (name, child) in entries {
        out.put_bytes(&name);
        let (digest, child_size) = encode_node(child, out);
        hasher.entry(&name, &digest);
        size += canonical::entry_header_size(name.len() as u64) + child_size;
    }
    (hasher.finish(), size)
}

/// The archive stream of every record received from a channel, in the order received; it ends
/// (with the count of objects) once every sender is gone.
pub(crate) struct ArchiveStream {
    records: Receiver<ObjectRecord>,
    /// The chunks still to read, last first, and the read position in the last one.
    chunks: Vec<Vec<u8>>,
    offset: usize,
    objects: u64,
    ended: bool,
}

impl ArchiveStream {
    pub(crate) fn new(records: Receiver<ObjectRecord>) -> ArchiveStream {
        let mut start = MAGIC.to_vec();
        start.extend_from_slice(&VERSION.to_le_bytes());
        ArchiveStream {
            records,
            chunks: vec![start],
            offset: 0,
            objects: 0,
            ended: false,
        }
    }

    /// Makes sure the last chunk has bytes left; false at the end of the stream.
    fn refill(&mut self) -> bool {
        loop {
            match self.chunks.last() {
                Some(chunk) if self.offset < chunk.len() => return true,
                Some(_) => {
                    self.chunks.pop();
                    self.offset = 0;
                }
                None if self.ended => return false,
                None => match self.records.recv() {
                    Ok(record) => {
                        self.objects += 1;
                        self.chunks = record.chunks;
                        self.chunks.reverse();
                    }
                    Err(_) => {
                        let mut end = vec![TAG_END];
                        end.extend_from_slice(&self.objects.to_le_bytes());
                        self.chunks.push(end);
                        self.ended = true;
                    }
                },
            }
        }
    }
}

impl Read for ArchiveStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The chunks are the buffer: the import reads file contents straight out of them.
impl BufRead for ArchiveStream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if !self.refill() {
            return Ok(&[]);
        }
        Ok(&self.chunks[self.chunks.len() - 1][self.offset..])
    }

    fn consume(&mut self, amount: usize) {
        self.offset += amount;
    }
}

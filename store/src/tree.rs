//! Walks a file tree (a source to ingest, or an object to verify) into a flat node list and
//! computes its tree digest and size, hashing (and optionally copying) files in parallel.
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Result, StoreError};
use crate::fsops;
use crate::hash::canonical::{self, Digest};
use crate::scan::{Found, ScanPlan, Scanner};

/// Files up to this size are read in one go; bigger ones are streamed in chunks of this size.
const CHUNK: usize = 4 * 1024 * 1024;

/// One file, directory or symlink of a walked tree.
#[derive(Debug)]
pub struct Node {
    /// Path relative to the tree's root (empty for the root).
    pub relative: PathBuf,
    /// Its name in its parent directory (empty for the root).
    pub name: Vec<u8>,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub enum NodeKind {
    File {
        executable: bool,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// Indices of the children, in increasing byte order of their names.
    Directory {
        children: Vec<usize>,
    },
}

/// A walked tree in pre-order: parents come before their children.
#[derive(Debug)]
pub struct Tree {
    pub root: PathBuf,
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Walks `root` without following any symlink (the root itself may be a symlink).
    pub fn walk(root: &Path) -> Result<Tree> {
        let mut nodes: Vec<Node> = Vec::new();
        // Index of the directory node at each depth of the current walk position.
        let mut open_dirs: Vec<usize> = Vec::new();
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name();
        for entry in walker {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_path_buf();
                StoreError::io("read", path)(e.into())
            })?;
            let file_type = entry.file_type();
            let path = entry.path();
            let inside = path.strip_prefix(root).unwrap_or(path).as_os_str().len();
            if inside > crate::archive::limits::RELATIVE_PATH_LEN {
                return Err(StoreError::PathTooLong {
                    path: path.to_path_buf(),
                    len: inside,
                });
            }
            let kind = if file_type.is_dir() {
                NodeKind::Directory {
                    children: Vec::new(),
                }
            } else if file_type.is_file() {
                let meta = entry
                    .metadata()
                    .map_err(|e| StoreError::io("inspect", path)(e.into()))?;
                NodeKind::File {
                    executable: meta.mode() & 0o111 != 0,
                }
            } else if file_type.is_symlink() {
                let target =
                    std::fs::read_link(path).map_err(StoreError::io("read symlink", path))?;
                NodeKind::Symlink {
                    target: target.into_os_string().into_vec(),
                }
            } else {
                let kind = if file_type.is_fifo() {
                    "FIFO"
                } else if file_type.is_socket() {
                    "socket"
                } else {
                    "device file"
                };
                return Err(StoreError::UnsupportedFileType {
                    path: path.to_path_buf(),
                    kind,
                });
            };
            let index = nodes.len();
            let depth = entry.depth();
            open_dirs.truncate(depth);
            if let Some(&parent) = open_dirs.last() {
                if let NodeKind::Directory { children } = &mut nodes[parent].kind {
                    children.push(index);
                }
            }
            if matches!(kind, NodeKind::Directory { .. }) {
                open_dirs.push(index);
            }
            let relative = path
                .strip_prefix(root)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let name = if depth == 0 {
                Vec::new()
            } else {
                entry.file_name().as_bytes().to_vec()
            };
            nodes.push(Node {
                relative,
                name,
                kind,
            });
        }
        Ok(Tree {
            root: root.to_path_buf(),
            nodes,
        })
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::File { .. }))
            .count()
    }

    /// Combines per-file results into the tree digest and size (FORMAT.md §1). `files[i]` is the
    /// digest and content length of node `i` when it is a file.
    pub fn digest(&self, files: &[Option<(Digest, u64)>]) -> (Digest, u64) {
        let mut digests: Vec<Digest> = vec![Digest([0; 32]); self.nodes.len()];
        let mut sizes: Vec<u64> = vec![0; self.nodes.len()];
        // Reverse pre-order visits every child before its parent.
        for index in (0..self.nodes.len()).rev() {
            let node = &self.nodes[index];
            let (digest, size) = match &node.kind {
                NodeKind::File { .. } => {
                    // Every file node has a result: the caller hashed all of them.
                    let (digest, len) = files[index].unwrap_or((Digest([0; 32]), 0));
                    (digest, canonical::file_node_size(len))
                }
                NodeKind::Symlink { target } => (
                    canonical::symlink_digest(target),
                    canonical::symlink_node_size(target.len() as u64),
                ),
                NodeKind::Directory { children } => {
                    let digest = canonical::directory_digest(
                        children
                            .iter()
                            .map(|&c| (self.nodes[c].name.as_slice(), digests[c])),
                    );
                    let size = canonical::directory_node_size()
                        + children
                            .iter()
                            .map(|&c| {
                                canonical::entry_header_size(self.nodes[c].name.len() as u64)
                                    + sizes[c]
                            })
                            .sum::<u64>();
                    (digest, size)
                }
            };
            digests[index] = digest;
            sizes[index] = size;
        }
        (digests[0], sizes[0])
    }

    /// Hashes every file in parallel without copying (for `verify`).
    pub fn hash_files(&self) -> Result<Vec<Option<(Digest, u64)>>> {
        let plan = ScanPlan::new(&[], &[]);
        self.process_files(None, &plan).map(|results| {
            results
                .into_iter()
                .map(|r| r.map(|f| (f.digest, f.len)))
                .collect()
        })
    }

    /// Hashes, scans and copies every file in parallel into `destination` (whose directories
    /// must already exist), normalizing each copy; fsyncs each copy when `fsync_each`.
    pub fn process_files(
        &self,
        destination: Option<(&Path, bool)>,
        plan: &ScanPlan,
    ) -> Result<Vec<Option<FileResult>>> {
        // Work is handed out a directory at a time (in slices of at most BATCH files): threads
        // creating files in different directories do not contend for one directory's lock,
        // which is what limits parallel file creation on ext4.
        const BATCH: usize = 256;
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for node in &self.nodes {
            if let NodeKind::Directory { children } = &node.kind {
                let files: Vec<usize> = children
                    .iter()
                    .copied()
                    .filter(|&c| matches!(self.nodes[c].kind, NodeKind::File { .. }))
                    .collect();
                batches.extend(files.chunks(BATCH).map(<[usize]>::to_vec));
            }
        }
        if let Some(NodeKind::File { .. }) = self.nodes.first().map(|n| &n.kind) {
            batches.push(vec![0]);
        }
        let run_batch = |buffer: &mut Vec<u8>, batch: &Vec<usize>| {
            batch
                .iter()
                .map(|&index| {
                    let node = &self.nodes[index];
                    // Batches are built from file nodes only, just above.
                    let NodeKind::File { executable } = node.kind else {
                        unreachable!("batches hold only file nodes")
                    };
                    let source = join_relative(&self.root, &node.relative);
                    let target =
                        destination.map(|(dir, fsync)| (join_relative(dir, &node.relative), fsync));
                    let result = process_file(
                        &source,
                        executable,
                        target.as_ref().map(|(p, f)| (p.as_path(), *f)),
                        plan,
                        buffer,
                    )?;
                    Ok((index, result))
                })
                .collect::<Result<Vec<_>>>()
        };
        // One batch (a single file, a flat small directory) gains nothing from threads, and
        // starting rayon's pool costs more than hashing a small file.
        let processed: Vec<Vec<(usize, FileResult)>> = if batches.len() <= 1 {
            let mut buffer = Vec::new();
            batches
                .iter()
                .map(|batch| run_batch(&mut buffer, batch))
                .collect::<Result<Vec<_>>>()?
        } else {
            batches
                .par_iter()
                .map_init(Vec::new, run_batch)
                .collect::<Result<Vec<_>>>()?
        };
        let mut results: Vec<Option<FileResult>> = (0..self.nodes.len()).map(|_| None).collect();
        for (index, result) in processed.into_iter().flatten() {
            results[index] = Some(result);
        }
        Ok(results)
    }
}

/// Joins without adding a trailing slash for the root (an empty relative path).
pub fn join_relative(base: &Path, relative: &Path) -> PathBuf {
    if relative.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(relative)
    }
}

/// What hashing one file produced.
#[derive(Debug)]
pub struct FileResult {
    pub digest: Digest,
    pub len: u64,
    pub found: Found,
}

fn process_file(
    source: &Path,
    executable: bool,
    target: Option<(&Path, bool)>,
    plan: &ScanPlan,
    buffer: &mut Vec<u8>,
) -> Result<FileResult> {
    let mut input = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(source)
        .map_err(StoreError::io("open", source))?;
    let meta = input
        .metadata()
        .map_err(StoreError::io("inspect", source))?;
    if !meta.is_file() {
        return Err(StoreError::SourceChanged {
            path: source.to_path_buf(),
        });
    }
    let len = meta.len();
    let mut output = match target {
        Some((path, _)) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(path)
                .map_err(StoreError::io("create", path))?,
        ),
        None => None,
    };
    let mut hasher = canonical::file_hasher(executable, len);
    let mut scanner = Scanner::new(plan);
    let mut total: u64 = 0;
    buffer.clear();
    buffer.resize((len as usize).clamp(1, CHUNK), 0);
    // Exactly `len` bytes are taken: what was hashed is what was copied, even if the file grows.
    while total < len {
        let want = (len - total).min(buffer.len() as u64) as usize;
        let read =
            read_full(&mut input, &mut buffer[..want]).map_err(StoreError::io("read", source))?;
        if read < want {
            return Err(StoreError::SourceChanged {
                path: source.to_path_buf(),
            });
        }
        let chunk = &buffer[..read];
        total += read as u64;
        canonical::feed(&mut hasher, chunk);
        scanner.feed(chunk);
        if let (Some(out), Some((path, _))) = (output.as_mut(), target) {
            out.write_all(chunk)
                .map_err(StoreError::io("write", path))?;
        }
    }
    if let (Some(out), Some((path, fsync))) = (output.as_ref(), target) {
        fsops::normalize_fd(out, fsops::file_mode(executable), path)?;
        // Otherwise one `syncfs` at the end makes everything durable. (Starting each file's
        // writeback here with `sync_file_range` cost more CPU than it saved waiting: 5.8 s
        // instead of 4.8 s for 80,000 files on a journaled ext4.)
        if fsync {
            out.sync_all().map_err(StoreError::io("fsync", path))?;
        }
    }
    Ok(FileResult {
        digest: Digest(*hasher.finalize().as_bytes()),
        len,
        found: scanner.found,
    })
}

/// Reads until the buffer is full or the file ends.
fn read_full(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

//! Reading one object's node tree (FORMAT.md §2): iteratively, with an explicit stack of open
//! directories, checking every entry name, order, count and depth before acting on it.
use std::io::BufRead;

use super::super::{limits, ArchiveError};
use super::{stream_failure, Importer};
use crate::error::{Result, StoreError};
use crate::fsops::DirHandle;
use crate::hash::canonical::{self, Digest, DirectoryHasher, TAG_DIRECTORY, TAG_FILE, TAG_SYMLINK};

/// A directory whose entries are being read.
pub(super) struct OpenDirectory {
    /// Where its entries are created (`None` when only verifying).
    dir: Option<DirHandle>,
    hasher: DirectoryHasher,
    remaining: u64,
    previous: Option<Vec<u8>>,
    /// Name of the entry being read now.
    current: Vec<u8>,
}

impl OpenDirectory {
    /// Seals a directory whose entries are all read and gives its digest.
    fn close(self) -> Result<Digest> {
        if let Some(dir) = &self.dir {
            dir.seal()?;
        }
        Ok(self.hasher.finish())
    }
}

pub(super) enum NodeStart {
    /// A finished node (file, symlink, or empty directory).
    Leaf(Digest),
    /// A directory with entries still to read.
    Directory(Box<OpenDirectory>),
}

impl<R: BufRead> Importer<'_, R> {
    /// Reads one node tree; creates it as `name` in `parent` unless `parent` is `None`
    /// (verify only). Iterative, with an explicit stack, so hostile nesting cannot overflow
    /// the caller's stack (the depth is limited anyway).
    pub(super) fn node(&mut self, parent: Option<&DirHandle>, name: &[u8]) -> Result<Digest> {
        let mut stack: Vec<OpenDirectory> = Vec::new();
        let mut started = self.node_start(parent, name, 0)?;
        loop {
            let mut digest = match started {
                NodeStart::Leaf(digest) => digest,
                NodeStart::Directory(directory) => {
                    stack.push(*directory);
                    match self.next_entry(&mut stack)? {
                        Some(next) => {
                            started = next;
                            continue;
                        }
                        None => return Err(missing_directory()),
                    }
                }
            };
            // Attach finished nodes to their parents, closing every directory that is complete.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(digest);
                };
                let entry = std::mem::take(&mut top.current);
                top.hasher.entry(&entry, &digest);
                top.previous = Some(entry);
                if top.remaining > 0 {
                    break;
                }
                let Some(done) = stack.pop() else {
                    return Err(missing_directory());
                };
                digest = done.close()?;
            }
            match self.next_entry(&mut stack)? {
                Some(next) => started = next,
                None => return Err(missing_directory()),
            }
        }
    }

    /// Reads the next entry name of the innermost open directory and starts its node; an empty
    /// directory is finished on the spot (returned as a leaf).
    fn next_entry(&mut self, stack: &mut Vec<OpenDirectory>) -> Result<Option<NodeStart>> {
        let Some(top) = stack.last_mut() else {
            return Ok(None);
        };
        if top.remaining == 0 {
            let Some(done) = stack.pop() else {
                return Ok(None);
            };
            return Ok(Some(NodeStart::Leaf(done.close()?)));
        }
        let name_offset = self.input.offset;
        let entry = self
            .input
            .bytes("entry name length", limits::ENTRY_NAME_LEN)?;
        check_entry_name(&entry, name_offset)?;
        if top.previous.as_ref().is_some_and(|p| *p >= entry) {
            return Err(ArchiveError::UnsortedEntry {
                name: String::from_utf8_lossy(&entry).into_owned(),
                offset: name_offset,
            }
            .into());
        }
        self.charge(canonical::entry_header_size(entry.len() as u64))?;
        top.remaining -= 1;
        let depth = stack.len();
        // The entry's path inside the object: the names of the directories
        // open above it, then its own.
        let path_len = stack[..depth - 1]
            .iter()
            .map(|open| open.current.len() + 1)
            .sum::<usize>()
            + entry.len();
        if path_len > limits::RELATIVE_PATH_LEN {
            return Err(ArchiveError::LimitExceeded {
                what: "path length inside an object",
                value: path_len as u64,
                limit: limits::RELATIVE_PATH_LEN as u64,
                offset: name_offset,
            }
            .into());
        }
        let started = {
            let top = &stack[depth - 1];
            self.node_start(top.dir.as_ref(), &entry, depth)?
        };
        if let Some(top) = stack.last_mut() {
            top.current = entry;
        }
        Ok(Some(started))
    }

    /// Reads a node's header: a file or symlink completely, a directory up to its entry count.
    fn node_start(
        &mut self,
        parent: Option<&DirHandle>,
        name: &[u8],
        depth: usize,
    ) -> Result<NodeStart> {
        let offset = self.input.offset;
        match self.input.u8()? {
            TAG_FILE => self.file_node(parent, name, depth),
            TAG_SYMLINK => self.symlink_node(parent, name),
            TAG_DIRECTORY => self.directory_start(parent, name, depth, offset),
            tag => Err(ArchiveError::BadNodeTag { tag, offset }.into()),
        }
    }

    /// Reads a symlink node after its tag; creates it unless only verifying.
    fn symlink_node(&mut self, parent: Option<&DirHandle>, name: &[u8]) -> Result<NodeStart> {
        let target_offset = self.input.offset;
        let target = self
            .input
            .bytes("symlink target length", limits::SYMLINK_TARGET_LEN)?;
        if target.is_empty() || target.contains(&0) {
            return Err(ArchiveError::BadField {
                field: "symlink target",
                offset: target_offset,
                reason: "empty or contains NUL".to_string(),
            }
            .into());
        }
        self.charge(canonical::symlink_node_size(target.len() as u64))?;
        if let Some(dir) = parent {
            dir.create_symlink(name, &target)?;
        }
        Ok(NodeStart::Leaf(canonical::symlink_digest(&target)))
    }

    /// Reads a directory node after its tag (at `offset`) up to its entry count; creates the
    /// directory unless only verifying.
    fn directory_start(
        &mut self,
        parent: Option<&DirHandle>,
        name: &[u8],
        depth: usize,
        offset: u64,
    ) -> Result<NodeStart> {
        if depth >= limits::DEPTH {
            return Err(ArchiveError::LimitExceeded {
                what: "directory depth",
                value: depth as u64,
                limit: limits::DEPTH as u64,
                offset,
            }
            .into());
        }
        let count = self
            .input
            .count("directory entry count", limits::DIRECTORY_ENTRIES)?;
        self.charge(canonical::directory_node_size())?;
        let dir = parent.map(|p| p.create_dir(name)).transpose()?;
        Ok(NodeStart::Directory(Box::new(OpenDirectory {
            dir,
            hasher: DirectoryHasher::new(count),
            remaining: count,
            previous: None,
            current: Vec::new(),
        })))
    }
}

/// The explicit stack lost a directory: a bug in this module, reported instead of panicking.
fn missing_directory() -> StoreError {
    stream_failure("internal error: directory stack underflow")
}

/// Entry names are single path components: never empty, `.`, `..`, and without `/` or NUL.
fn check_entry_name(name: &[u8], offset: u64) -> Result<(), ArchiveError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == b"." || name == b".." {
        "it is `.` or `..`"
    } else if name.contains(&b'/') {
        "it contains `/`"
    } else if name.contains(&0) {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(ArchiveError::BadEntryName {
        name: String::from_utf8_lossy(name).into_owned(),
        offset,
        reason,
    })
}

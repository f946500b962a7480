//! An unpacked data tree held in memory: what [`super::unpack_tar_in_memory`] gives, ready to be
//! hashed and streamed into the store without touching the disk first.
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use super::{Sink, UnpackError};

/// Files bigger than this are read into a buffer that grows, rather than one allocated for the
/// size the archive claims (which a hostile archive may inflate).
const PREALLOCATE_MAX: u64 = 16 * 1024 * 1024;

/// A directory's entries, by name in byte order (the order the store hashes them in).
pub type MemoryEntries = BTreeMap<Vec<u8>, MemoryNode>;

/// One node of a [`MemoryTree`], normalised as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryNode {
    /// A regular file (a hard link is a copy).
    File {
        /// Any execute bit was set.
        executable: bool,
        /// The file's bytes.
        content: Vec<u8>,
    },
    /// A symlink, its target kept as data.
    Symlink {
        /// The target as archived.
        target: Vec<u8>,
    },
    /// A directory, its entries by name in byte order.
    Directory {
        /// The entries.
        entries: MemoryEntries,
    },
}

/// A whole unpacked tree: a root directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// The root directory's entries.
    pub entries: MemoryEntries,
}

/// The [`Sink`] of an in-memory unpack: builds a [`MemoryTree`], refusing to hold more than
/// `limit` bytes of file contents.
pub(super) struct MemorySink {
    tree: MemoryTree,
    limit: u64,
    used: u64,
}

impl MemorySink {
    pub(super) fn new(limit: u64) -> MemorySink {
        MemorySink {
            tree: MemoryTree::default(),
            limit,
            used: 0,
        }
    }

    pub(super) fn into_tree(self) -> MemoryTree {
        self.tree
    }

    /// Takes `len` more bytes from the budget.
    fn spend(&mut self, len: u64) -> Result<(), UnpackError> {
        self.used = self.used.saturating_add(len);
        if self.used > self.limit {
            return Err(UnpackError::OverMemoryLimit { limit: self.limit });
        }
        Ok(())
    }

    /// The entries of the directory holding `relative`, and `relative`'s name in it.
    fn parent_of<'p>(
        &mut self,
        relative: &'p Path,
    ) -> Result<(&mut MemoryEntries, &'p [u8]), UnpackError> {
        let mut components: Vec<&[u8]> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.as_bytes()),
                _ => None,
            })
            .collect();
        let Some(name) = components.pop() else {
            return Err(not_a_directory(relative, relative));
        };
        let mut entries = &mut self.tree.entries;
        for component in components {
            // The unpacker made every parent a directory before handing over a path; anything
            // else is refused rather than trusted.
            match entries.get_mut(component) {
                Some(MemoryNode::Directory { entries: inner }) => entries = inner,
                _ => {
                    return Err(not_a_directory(
                        relative,
                        Path::new(std::ffi::OsStr::from_bytes(component)),
                    ))
                }
            }
        }
        Ok((entries, name))
    }

    /// The node at `relative`, if there is one.
    fn node(&self, relative: &Path) -> Option<&MemoryNode> {
        let mut entries = &self.tree.entries;
        let mut names = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.as_bytes()),
                _ => None,
            })
            .peekable();
        loop {
            let node = entries.get(names.next()?)?;
            if names.peek().is_none() {
                return Some(node);
            }
            match node {
                MemoryNode::Directory { entries: inner } => entries = inner,
                _ => return None,
            }
        }
    }
}

fn not_a_directory(path: &Path, parent: &Path) -> UnpackError {
    UnpackError::NotADirectory {
        path: path.to_path_buf(),
        parent: parent.to_path_buf(),
    }
}

impl Sink for MemorySink {
    fn create_dir(&mut self, relative: &Path) -> Result<(), UnpackError> {
        let (entries, name) = self.parent_of(relative)?;
        entries
            .entry(name.to_vec())
            .or_insert_with(|| MemoryNode::Directory {
                entries: MemoryEntries::new(),
            });
        Ok(())
    }

    fn write_file(
        &mut self,
        relative: &Path,
        content: &mut dyn Read,
        size: u64,
        executable: bool,
    ) -> Result<u64, UnpackError> {
        let room = self.limit.saturating_sub(self.used);
        let mut bytes = Vec::with_capacity(size.min(room).min(PREALLOCATE_MAX) as usize);
        content
            .take(room.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| UnpackError::Tar { source })?;
        let len = bytes.len() as u64;
        self.spend(len)?;
        let (entries, name) = self.parent_of(relative)?;
        entries.insert(
            name.to_vec(),
            MemoryNode::File {
                executable,
                content: bytes,
            },
        );
        Ok(len)
    }

    fn symlink(&mut self, relative: &Path, target: &[u8]) -> Result<(), UnpackError> {
        let (entries, name) = self.parent_of(relative)?;
        entries.insert(
            name.to_vec(),
            MemoryNode::Symlink {
                target: target.to_vec(),
            },
        );
        Ok(())
    }

    fn hard_link(&mut self, relative: &Path, source: &Path) -> Result<(), UnpackError> {
        let copy = match self.node(source) {
            Some(file @ MemoryNode::File { .. }) => file.clone(),
            _ => {
                return Err(UnpackError::BadHardLink {
                    path: relative.to_path_buf(),
                    target: source.to_path_buf(),
                    reason: "its target is not a regular file earlier in the archive",
                })
            }
        };
        if let MemoryNode::File { content, .. } = &copy {
            self.spend(content.len() as u64)?;
        }
        let (entries, name) = self.parent_of(relative)?;
        entries.insert(name.to_vec(), copy);
        Ok(())
    }
}

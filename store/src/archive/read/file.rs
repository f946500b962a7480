//! Receiving one file node: where its content goes (an unnamed file in the store dir for a
//! single-file object, a staging entry otherwise, nowhere when only verifying), then the
//! content itself, hashed and written chunk by chunk.
use std::fs::File;
use std::io::BufRead;

use super::node::NodeStart;
use super::{ImportMode, Importer};
use crate::error::{Result, StoreError};
use crate::fsops::{self, DirHandle, DirectWriter};
use crate::hash::canonical::{self, Digest};

/// Size of the buffer file contents are copied through.
pub(super) const CHUNK: usize = 1024 * 1024;

/// Files from this size on are written bypassing the page cache (see `fsops::DirectWriter`).
const DIRECT_MIN: u64 = CHUNK as u64;

impl<R: BufRead> Importer<'_, R> {
    /// Reads a file node after its tag; creates it as `name` in `parent` unless `parent` is
    /// `None` (verify only).
    pub(super) fn file_node(
        &mut self,
        parent: Option<&DirHandle>,
        name: &[u8],
        depth: usize,
    ) -> Result<NodeStart> {
        let executable = self.input.flag("executable flag")?;
        let size = self.input.u64()?;
        self.charge(canonical::file_node_size(size))?;
        let (created, unnamed_root) = match parent {
            None => (None, false),
            Some(dir) => {
                let (file, unnamed_root) = self.create_file(dir, name, depth)?;
                (Some(file), unnamed_root)
            }
        };
        let mut file = created.map(|file| DirectWriter::new(file, size >= DIRECT_MIN));
        let mut hasher = canonical::file_hasher(executable, size);
        self.copy_content(size, &mut hasher, file.as_mut())?;
        if let Some(file) = file {
            fsops::normalize_fd(
                file.file(),
                fsops::file_mode(executable),
                self.staging.path(),
            )?;
            if unnamed_root {
                self.unnamed = Some(file.into_file());
            }
        }
        Ok(NodeStart::Leaf(Digest(*hasher.finalize().as_bytes())))
    }

    /// Creates the file a file node is written to, and says whether it is the object's unnamed
    /// file. A single-file object goes straight into the store dir as an unnamed file: no
    /// staging entry, no rename later (directory operations are most of the cost of many small
    /// objects).
    fn create_file(&mut self, dir: &DirHandle, name: &[u8], depth: usize) -> Result<(File, bool)> {
        let unnamed = match (self.unnamed_files, depth) {
            (true, 0) => self.store_dir.create_unnamed_file()?,
            _ => None,
        };
        if depth == 0 && unnamed.is_none() {
            self.unnamed_files = false;
        }
        Ok(match unnamed {
            Some(file) => (file, true),
            None => (dir.create_file(name)?, false),
        })
    }

    /// Reads `size` bytes of file content, hashing them and writing them to `file` if any.
    fn copy_content(
        &mut self,
        size: u64,
        hasher: &mut blake3::Hasher,
        mut file: Option<&mut DirectWriter>,
    ) -> Result<()> {
        let mut remaining = size;
        // The buffer has DIRECT_ALIGN bytes of slack; should the address
        // not be alignable, the writer just falls back to plain writes.
        let start = self
            .buffer
            .as_ptr()
            .align_offset(fsops::DIRECT_ALIGN)
            .min(fsops::DIRECT_ALIGN);
        while remaining > 0 {
            let want = remaining.min(CHUNK as u64) as usize;
            let mut buffer = std::mem::take(&mut self.buffer);
            let chunk = &mut buffer[start..start + want];
            let read = self.input.exact(chunk);
            if read.is_ok() {
                if self.mode == ImportMode::Incremental {
                    // The copy protocol: ssh's encryption already keeps
                    // the other cores busy, so splitting the hash over
                    // them only adds hand-offs and spinning.
                    hasher.update(chunk);
                } else {
                    canonical::feed(hasher, chunk);
                }
                if let Some(file) = file.as_mut() {
                    file.write_all(chunk)
                        .map_err(StoreError::io("write", self.staging.path()))?;
                }
            }
            self.buffer = buffer;
            read?;
            remaining -= want as u64;
        }
        Ok(())
    }
}

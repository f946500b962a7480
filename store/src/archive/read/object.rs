//! Reading one object record (FORMAT.md §5): its header, checked field by field; its node
//! tree, staged and re-hashed; the path re-derived from content and references; and only then
//! the object kept as pending for registration.
use std::fs::File;
use std::io::BufRead;

use super::super::{limits, ArchiveError};
use super::{ImportMode, Importer};
use crate::db::PathInfo;
use crate::error::Result;
use crate::fsops;
use crate::hash::canonical::{self, Digest};
use crate::path::StorePath;
use crate::realisation::RecipeId;
use crate::register::StagedObject;

/// An object's header as the stream declares it, every field within its limit.
struct ObjectHeader {
    path: StorePath,
    /// Strictly sorted, each valid in the store or earlier in the stream.
    references: Vec<StorePath>,
    deriver: Option<RecipeId>,
    signatures: Vec<String>,
    tree_digest: Digest,
    nar_size: u64,
}

impl<R: BufRead> Importer<'_, R> {
    /// Reads one object record after its tag and keeps it as pending once it verified.
    pub(super) fn object(&mut self) -> Result<()> {
        let header = self.object_header()?;
        // A valid path always has its entry in the store dir: where there is none (the
        // common case in a copy), the database need not be asked.
        let already_valid = self.store_dir.has_entry(header.path.base_name().as_bytes())
            && self.store.db.exists(&header.path);
        let entry = format!("o{}", self.report.paths.len());
        let unnamed = self.object_content(&header, already_valid, &entry)?;
        self.keep(header, already_valid, entry, unnamed)
    }

    /// Reads the header: path, references, deriver, signatures, tree digest and size.
    fn object_header(&mut self) -> Result<ObjectHeader> {
        let path = self.store_path("store path")?;
        if self.seen.contains(&path) {
            return Err(ArchiveError::DuplicateObject {
                path: path.to_string(),
            }
            .into());
        }
        let references = self.references(&path)?;
        let deriver = match self.input.flag("deriver flag")? {
            false => None,
            true => Some(RecipeId(self.input.digest()?)),
        };
        let count = self.input.count("signature count", limits::SIGNATURES)?;
        let mut signatures = Vec::new();
        for _ in 0..count {
            signatures.push(self.input.text("signature", limits::SIGNATURE_LEN)?);
        }
        let tree_digest = Digest(self.input.digest()?);
        let nar_size = self.input.count("object size", limits::OBJECT_SIZE)?;
        Ok(ObjectHeader {
            path,
            references,
            deriver,
            signatures,
            tree_digest,
            nar_size,
        })
    }

    /// Reads the reference list of `path`: strictly sorted, never `path` itself, and each one
    /// earlier in the stream or valid in this store.
    fn references(&mut self, path: &StorePath) -> Result<Vec<StorePath>> {
        let count = self.input.count("reference count", limits::REFERENCES)?;
        let mut references: Vec<StorePath> = Vec::new();
        for _ in 0..count {
            let offset = self.input.offset;
            let reference = self.store_path("reference")?;
            if references.last().is_some_and(|last| *last >= reference) {
                return Err(ArchiveError::BadField {
                    field: "references",
                    offset,
                    reason: "not strictly sorted".to_string(),
                }
                .into());
            }
            if reference == *path {
                return Err(ArchiveError::SelfReference {
                    path: path.to_string(),
                }
                .into());
            }
            if !self.seen.contains(&reference) && !self.known_valid(&reference) {
                return Err(ArchiveError::UnknownReference {
                    path: path.to_string(),
                    reference: reference.to_string(),
                }
                .into());
            }
            references.push(reference);
        }
        Ok(references)
    }

    /// Reads the object's node tree into staging as `entry` (or only verifies it, when the
    /// path is valid already) and checks it against the header. Gives the object's unnamed
    /// file, if it was written as one. Nothing of a refused object is kept.
    fn object_content(
        &mut self,
        header: &ObjectHeader,
        already_valid: bool,
        entry: &str,
    ) -> Result<Option<File>> {
        self.node_bytes = 0;
        self.declared_size = header.nar_size;
        self.current = Some(header.path.to_string());
        let staging_handle = self.staging.handle();
        let sink = if already_valid {
            None
        } else {
            Some(staging_handle)
        };
        let result = self
            .node(sink, entry.as_bytes())
            .and_then(|actual| self.check_content(header, &actual));
        let unnamed = self.unnamed.take();
        if let Err(error) = result {
            // Nothing of a refused object is kept (an unnamed file vanishes when dropped).
            let _ = fsops::remove_tree(&self.staging.path().join(entry));
            return Err(error);
        }
        Ok(unnamed)
    }

    /// Checks a node tree that hashed to `actual` against the header: its size, its digest,
    /// and the path that content and references give.
    fn check_content(&self, header: &ObjectHeader, actual: &Digest) -> Result<()> {
        let path = &header.path;
        if self.node_bytes != header.nar_size {
            return Err(ArchiveError::SizeMismatch {
                path: path.to_string(),
                declared: header.nar_size,
                actual: self.node_bytes,
            }
            .into());
        }
        if *actual != header.tree_digest {
            return Err(ArchiveError::DigestMismatch {
                path: path.to_string(),
                declared: header.tree_digest.to_hex(),
                actual: actual.to_hex(),
            }
            .into());
        }
        let derived = canonical::object_path(
            &self.store.store_dir,
            path.name(),
            actual,
            &header.references,
        );
        if derived != *path {
            return Err(ArchiveError::PathMismatch {
                path: path.to_string(),
                derived: derived.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Records a verified object in the report and, unless it was valid already, adds it to
    /// the pending batch (handed over when due in incremental mode).
    fn keep(
        &mut self,
        header: ObjectHeader,
        already_valid: bool,
        entry: String,
        unnamed: Option<File>,
    ) -> Result<()> {
        let path = header.path;
        self.seen.insert(path.clone());
        self.report.paths.push(path.clone());
        if already_valid {
            self.report.already_valid.push(path);
            return Ok(());
        }
        let nar_size = header.nar_size;
        let info = PathInfo {
            path,
            references: header.references,
            tree_digest: header.tree_digest,
            nar_size,
            registration_time: 0,
            deriver: header.deriver,
            signatures: header.signatures,
        };
        if self.pending.is_empty() {
            self.oldest_pending = std::time::Instant::now();
        }
        self.unnamed_pending += usize::from(unnamed.is_some());
        self.pending.push(StagedObject {
            entry,
            unnamed,
            info,
        });
        self.pending_bytes += nar_size;
        if self.mode == ImportMode::Incremental {
            self.hand_over_if_due()?;
        }
        Ok(())
    }
}

//! Adding to the store: copy a file tree (or bytes) into a staging dir while hashing and
//! scanning it in parallel, normalize it, make it durable, then register it.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::db::PathInfo;
use crate::error::{Result, StoreError};
use crate::fsops;
use crate::hash::canonical;
use crate::hash::Digest;
use crate::lock::LockGuard;
use crate::path::{validate_name, StorePath};
use crate::realisation::RecipeId;
use crate::register::{StagedObject, Staging};
use crate::scan::{ScanPlan, Scanner};
use crate::store::Store;
use crate::tree::{join_relative, FileResult, NodeKind, Tree};

/// Trees with at most this many files are made durable file by file; bigger ones with a single
/// `syncfs` of the store's file system, which avoids an fsync storm.
const FSYNC_EACH_LIMIT: usize = 64;

/// The staging entry an ingested object is built under.
const STAGED_ENTRY: &str = "object";

/// What a tree's content and references make of it.
struct Identity {
    path: StorePath,
    references: Vec<StorePath>,
    tree_digest: Digest,
    nar_size: u64,
}

/// Everything an add can be told besides the source and the name.
#[derive(Clone, Debug, Default)]
pub struct AddOptions<'a> {
    /// Paths the object may refer to; only their hash parts are searched for. Each must be valid.
    pub candidate_refs: &'a [StorePath],
    /// Strings whose presence means the object refers to itself, e.g. a build's scratch output
    /// path: finding one refuses the add with `StoreError::SelfReference`.
    pub self_markers: &'a [String],
    /// The recipe that produced the object.
    pub deriver: Option<RecipeId>,
    /// The content is probably not in the store yet (a build's fresh output, a tree a user
    /// adds by hand): copy while hashing, in one pass, and throw the copy away if the path
    /// turns out to be valid already. Otherwise (the default, right for sources re-added on
    /// every build) a first pass only hashes, and nothing is written when the path exists.
    pub probably_new: bool,
}

impl AddOptions<'_> {
    /// The candidates found (indices into `candidate_refs`) as a reference list: sorted,
    /// without duplicates.
    fn references(&self, found: impl IntoIterator<Item = usize>) -> Vec<StorePath> {
        found
            .into_iter()
            .map(|i| self.candidate_refs[i].clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The refusal of object `name` because `file` contains self-marker number `marker`.
    fn self_reference(&self, name: &str, marker: usize, file: PathBuf) -> StoreError {
        StoreError::SelfReference {
            name: name.to_string(),
            self_path: self.self_markers[marker].clone(),
            file,
        }
    }
}

impl Store {
    /// Adds a file, directory or symlink (not followed) as a store object named `name`.
    pub fn add_path(
        &self,
        source: &Path,
        name: &str,
        candidate_refs: &[StorePath],
    ) -> Result<StorePath> {
        self.add_path_with(
            source,
            name,
            &AddOptions {
                candidate_refs,
                ..AddOptions::default()
            },
        )
    }

    /// Adds one regular file made of `bytes`.
    pub fn add_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        executable: bool,
        candidate_refs: &[StorePath],
    ) -> Result<StorePath> {
        self.add_bytes_with(
            name,
            bytes,
            executable,
            &AddOptions {
                candidate_refs,
                ..AddOptions::default()
            },
        )
    }

    /// `add_path` with all options.
    pub fn add_path_with(
        &self,
        source: &Path,
        name: &str,
        options: &AddOptions<'_>,
    ) -> Result<StorePath> {
        let (_shared, plan) = self.begin_add(name, options)?;
        let tree = Tree::walk(source)?;

        // First pass: read and hash only. Sources are re-added on every build; when nothing
        // changed this is all it costs (no file is created), as with `nix-store --add`.
        if !options.probably_new {
            let hashed = tree.process_files(None, &plan)?;
            let identity = self.identify(&tree, &hashed, &plan, source, name, options)?;
            if self.db.exists(&identity.path) {
                return Ok(identity.path);
            }
        }

        // Second pass: copy, hashing again; what was copied is what gets registered.
        let fsync_each = tree.file_count() <= FSYNC_EACH_LIMIT;
        let staging = Staging::create(self)?;
        let object_root = staging.path().join(STAGED_ENTRY);
        // Directories and symlinks first (sequential, cheap), then all files in parallel.
        for node in &tree.nodes {
            let target = join_relative(&object_root, &node.relative);
            match &node.kind {
                NodeKind::Directory { .. } => std::fs::create_dir(&target)
                    .map_err(StoreError::io("create directory", &target))?,
                NodeKind::Symlink { target: link } => {
                    let parent = target.parent().unwrap_or(staging.path());
                    let handle = fsops::DirHandle::open(parent)?;
                    let name = target
                        .file_name()
                        .map(|n| n.as_encoded_bytes().to_vec())
                        .unwrap_or_default();
                    handle.create_symlink(&name, link)?;
                }
                NodeKind::File { .. } => {}
            }
        }
        let copied = tree.process_files(Some((&object_root, fsync_each)), &plan)?;
        // Seal directories deepest first so sealing a child does not touch a sealed parent's mtime.
        for node in tree.nodes.iter().rev() {
            if matches!(node.kind, NodeKind::Directory { .. }) {
                let dir = fsops::DirHandle::open(&join_relative(&object_root, &node.relative))?;
                dir.seal()?;
                if fsync_each {
                    dir.fsync()?;
                }
            }
        }
        let identity = self.identify(&tree, &copied, &plan, source, name, options)?;
        if self.db.exists(&identity.path) {
            return Ok(identity.path);
        }
        // Small trees were fsynced file by file and directory by directory above; the staging
        // directory's own entry does not matter once `register` renames the object out of it
        // and fsyncs the store dir.
        if !fsync_each {
            staging.handle().syncfs()?;
        }
        self.register_staged(&staging, identity, options.deriver)
    }

    /// Registers the one object staged as `STAGED_ENTRY` and returns its path.
    fn register_staged(
        &self,
        staging: &Staging,
        identity: Identity,
        deriver: Option<RecipeId>,
    ) -> Result<StorePath> {
        let path = identity.path.clone();
        let info = PathInfo {
            path: identity.path,
            references: identity.references,
            tree_digest: identity.tree_digest,
            nar_size: identity.nar_size,
            registration_time: 0,
            deriver,
            signatures: Vec::new(),
        };
        self.register(
            staging,
            vec![StagedObject {
                entry: STAGED_ENTRY.to_string(),
                unnamed: None,
                info,
            }],
        )?;
        Ok(path)
    }

    /// From per-file results: the references found (refusing self-references), the tree
    /// digest and size, and so the store path.
    fn identify(
        &self,
        tree: &Tree,
        results: &[Option<FileResult>],
        plan: &ScanPlan,
        source: &Path,
        name: &str,
        options: &AddOptions<'_>,
    ) -> Result<Identity> {
        let mut found = BTreeSet::new();
        for (node, result) in tree.nodes.iter().zip(results) {
            let (candidates, markers) = match (&node.kind, result) {
                (NodeKind::File { .. }, Some(result)) => (
                    result.found.candidates.clone(),
                    result.found.markers.clone(),
                ),
                (NodeKind::Symlink { target }, _) => {
                    let mut scanner = Scanner::new(plan);
                    scanner.feed(target);
                    (scanner.found.candidates, scanner.found.markers)
                }
                _ => continue,
            };
            if let Some(&marker) = markers.first() {
                return Err(options.self_reference(
                    name,
                    marker,
                    join_relative(source, &node.relative),
                ));
            }
            found.extend(candidates);
        }
        let references = options.references(found);
        let file_results: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().map(|f| (f.digest, f.len)))
            .collect();
        let (tree_digest, nar_size) = tree.digest(&file_results);
        let path = canonical::object_path(&self.store_dir, name, &tree_digest, &references);
        Ok(Identity {
            path,
            references,
            tree_digest,
            nar_size,
        })
    }

    /// `add_bytes` with all options.
    pub fn add_bytes_with(
        &self,
        name: &str,
        bytes: &[u8],
        executable: bool,
        options: &AddOptions<'_>,
    ) -> Result<StorePath> {
        let (_shared, plan) = self.begin_add(name, options)?;
        let mut scanner = Scanner::new(&plan);
        scanner.feed(bytes);
        if let Some(&marker) = scanner.found.markers.first() {
            return Err(options.self_reference(name, marker, name.into()));
        }
        let references = options.references(scanner.found.candidates.iter().copied());
        let tree_digest = canonical::file_digest(executable, bytes);
        let path = canonical::object_path(&self.store_dir, name, &tree_digest, &references);
        if self.db.exists(&path) {
            return Ok(path);
        }
        let staging = Staging::create(self)?;
        let mut file = staging.handle().create_file(STAGED_ENTRY.as_bytes())?;
        let staged = staging.path().join(STAGED_ENTRY);
        file.write_all(bytes)
            .map_err(StoreError::io("write", &staged))?;
        fsops::normalize_fd(&file, fsops::file_mode(executable), &staged)?;
        file.sync_all().map_err(StoreError::io("fsync", &staged))?;
        let nar_size = canonical::file_node_size(bytes.len() as u64);
        let identity = Identity {
            path,
            references,
            tree_digest,
            nar_size,
        };
        self.register_staged(&staging, identity, options.deriver)
    }

    /// What every add does first: check the name, take the shared store lock (held by the
    /// caller for the rest of the add), check the candidates, and plan the reference scan.
    fn begin_add(&self, name: &str, options: &AddOptions<'_>) -> Result<(LockGuard, ScanPlan)> {
        validate_name(name)?;
        let shared = self.shared_lock()?;
        self.check_candidates(name, options.candidate_refs)?;
        let plan = ScanPlan::new(options.candidate_refs, options.self_markers);
        Ok((shared, plan))
    }

    /// Every declared candidate must be a valid path of this store.
    fn check_candidates(&self, name: &str, candidates: &[StorePath]) -> Result<()> {
        for candidate in candidates {
            self.check_path(candidate)?;
            if !self.db.exists(candidate) {
                return Err(StoreError::InvalidReference {
                    name: name.to_string(),
                    reference: candidate.to_string(),
                });
            }
        }
        Ok(())
    }
}

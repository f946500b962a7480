//! `verify`: re-hash every valid path against its metadata and check its references; with
//! repair, move corrupt objects to `<state_dir>/quarantine/` (never delete them) and invalidate
//! them and everything that depends on them.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::db::PathInfo;
use crate::error::{Result, StoreError};
use crate::fsops;
use crate::hash::canonical;
use crate::hash::Digest;
use crate::path::StorePath;
use crate::store::Store;
use crate::tree::Tree;

/// One path that failed verification.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CorruptPath {
    /// The path that failed.
    pub path: StorePath,
    /// What is wrong with it.
    pub problem: String,
}

/// The outcome of `verify`.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Valid paths checked.
    pub checked: usize,
    /// Paths whose object or metadata does not match.
    pub corrupt: Vec<CorruptPath>,
    /// (path, reference) pairs where the reference is not valid.
    pub missing_references: Vec<(StorePath, StorePath)>,
    /// With repair: where corrupt objects were moved.
    pub quarantined: Vec<PathBuf>,
    /// With repair: every path made invalid (the corrupt ones and their referrers).
    pub invalidated: Vec<StorePath>,
}

impl VerifyReport {
    /// True when nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing_references.is_empty()
    }
}

enum Checked {
    Good(PathInfo),
    Corrupt(Option<PathInfo>, String),
}

impl Store {
    /// Re-hashes every valid path. With `repair`, quarantines what is corrupt (exclusive lock);
    /// without, only reads (shared lock).
    pub fn verify(&self, repair: bool) -> Result<VerifyReport> {
        let _lock = if repair {
            self.exclusive_lock()?
        } else {
            self.shared_lock()?
        };
        let paths = self.all_valid_paths()?;
        self.verify_locked(&paths, repair)
    }

    /// [`Store::verify`] of the closure of `roots` only (what one system
    /// runs): those paths are re-hashed; with `repair`, what depends on a
    /// broken one is invalidated wherever it is, so every valid path's
    /// references stay valid.
    pub fn verify_closure(&self, roots: &[StorePath], repair: bool) -> Result<VerifyReport> {
        let _lock = if repair {
            self.exclusive_lock()?
        } else {
            self.shared_lock()?
        };
        let valid: Vec<StorePath> = roots.iter().filter(|p| self.is_valid(p)).cloned().collect();
        let mut report = self.verify_locked(&self.closure(&valid)?, repair)?;
        for root in roots.iter().filter(|p| !valid.contains(p)) {
            report.corrupt.push(CorruptPath {
                path: root.clone(),
                problem: "it is not a valid path of this store".to_string(),
            });
        }
        Ok(report)
    }

    fn verify_locked(&self, paths: &[StorePath], repair: bool) -> Result<VerifyReport> {
        let checked: Vec<(StorePath, Checked)> = paths
            .par_iter()
            .map(|path| (path.clone(), self.check_one(path)))
            .collect();

        let mut report = VerifyReport {
            checked: paths.len(),
            ..VerifyReport::default()
        };
        let mut infos: BTreeMap<StorePath, PathInfo> = BTreeMap::new();
        let mut broken: BTreeSet<StorePath> = BTreeSet::new();
        let mut corrupt_objects: Vec<StorePath> = Vec::new();
        for (path, outcome) in checked {
            match outcome {
                Checked::Good(info) => {
                    infos.insert(path, info);
                }
                Checked::Corrupt(info, problem) => {
                    report.corrupt.push(CorruptPath {
                        path: path.clone(),
                        problem,
                    });
                    corrupt_objects.push(path.clone());
                    broken.insert(path.clone());
                    infos.insert(
                        path.clone(),
                        info.unwrap_or_else(|| placeholder_info(&path)),
                    );
                }
            }
        }
        for (path, info) in &infos {
            for reference in &info.references {
                if !self.db.exists(reference) {
                    report
                        .missing_references
                        .push((path.clone(), reference.clone()));
                    broken.insert(path.clone());
                }
            }
        }
        if !repair || broken.is_empty() {
            return Ok(report);
        }

        // Everything that depends on a broken path is invalid too, checked or not.
        for other in self.all_valid_paths()? {
            if let std::collections::btree_map::Entry::Vacant(slot) = infos.entry(other) {
                if let Some(info) = self.db.read(slot.key())? {
                    slot.insert(info);
                }
            }
        }
        let mut referrers: HashMap<&StorePath, Vec<&StorePath>> = HashMap::new();
        for (path, info) in &infos {
            for reference in &info.references {
                referrers.entry(reference).or_default().push(path);
            }
        }
        let mut doomed: BTreeSet<StorePath> = BTreeSet::new();
        let mut stack: Vec<StorePath> = broken.into_iter().collect();
        while let Some(path) = stack.pop() {
            if doomed.insert(path.clone()) {
                if let Some(users) = referrers.get(&path) {
                    stack.extend(users.iter().map(|p| (*p).clone()));
                }
            }
        }
        let doomed_infos: BTreeMap<StorePath, PathInfo> = doomed
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    infos.get(p).cloned().unwrap_or_else(|| placeholder_info(p)),
                )
            })
            .collect();
        self.invalidate(&doomed_infos)?;
        report.invalidated = doomed.into_iter().collect();

        let quarantine = self.state_dir.join("quarantine");
        std::fs::create_dir_all(&quarantine)
            .map_err(StoreError::io("create directory", &quarantine))?;
        let stamp = fsops::now_unix();
        for path in corrupt_objects {
            let source = self.real_path(&path);
            if std::fs::symlink_metadata(&source).is_err() {
                continue;
            }
            let target = quarantine.join(format!("{}-{stamp}", path.base_name()));
            fsops::move_tree(&source, &target)?;
            report.quarantined.push(target);
        }
        fsops::fsync_dir(self.store_dir.as_path())?;
        Ok(report)
    }

    fn check_one(&self, path: &StorePath) -> Checked {
        let info = match self.db.read(path) {
            Ok(Some(info)) => info,
            Ok(None) => {
                return Checked::Corrupt(
                    None,
                    "its metadata vanished during verification".to_string(),
                )
            }
            Err(e) => return Checked::Corrupt(None, e.to_string()),
        };
        let real = self.real_path(path);
        if std::fs::symlink_metadata(&real).is_err() {
            return Checked::Corrupt(
                Some(info),
                "its object is missing from the store directory".to_string(),
            );
        }
        let hashed = Tree::walk(&real).and_then(|tree| {
            let files = tree.hash_files()?;
            Ok(tree.digest(&files))
        });
        let (digest, size): (Digest, u64) = match hashed {
            Ok(result) => result,
            Err(e) => return Checked::Corrupt(Some(info), format!("it cannot be read: {e}")),
        };
        if digest != info.tree_digest {
            return Checked::Corrupt(
                Some(info.clone()),
                format!(
                    "its content hashes to {digest}, its metadata says {}",
                    info.tree_digest
                ),
            );
        }
        if size != info.nar_size {
            return Checked::Corrupt(
                Some(info.clone()),
                format!("its size is {size}, its metadata says {}", info.nar_size),
            );
        }
        let derived =
            canonical::object_path(&self.store_dir, path.name(), &digest, &info.references);
        if derived != *path {
            return Checked::Corrupt(
                Some(info),
                format!("its content and references give the path {derived}"),
            );
        }
        Checked::Good(info)
    }
}

/// Stands in for unreadable metadata: no known references.
fn placeholder_info(path: &StorePath) -> PathInfo {
    PathInfo {
        path: path.clone(),
        references: Vec::new(),
        tree_digest: Digest([0; 32]),
        nar_size: 0,
        registration_time: 0,
        deriver: None,
        signatures: Vec::new(),
    }
}

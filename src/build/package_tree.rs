//! A class's package tree: its unpacked packages merged, the way a
//! merged-`/usr` Debian system lays them out, into one store object that the
//! host mounts on `/usr` (`activate::usr_tree`).
//!
//! Packages keep their own objects; the tree holds only directories and
//! symlinks. A package's `usr/X` becomes `X` of the tree, its `bin`, `sbin`,
//! `lib*` become `bin`, `sbin`, `lib*` (a merged-`/usr` host links `/bin` and
//! the others into `/usr`). A regular file becomes a symlink to that file in
//! its package's object, so the tree references exactly the packages it
//! merges; a symlink is copied as it is, so relative links resolve inside the
//! tree and absolute ones (libc6's `/lib64/ld-linux-x86-64.so.2`) resolve
//! through the mounted tree. Other top-level directories (`etc`, `var`, …)
//! are not reachable under `/usr` and are listed as left out.
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use ferry_store::{Store, StoreError, StorePath};

use crate::activate::usr_tree::MERGED;

/// Why a package tree could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PackageTreeError {
    /// A package's object could not be read.
    #[error("cannot read package {package}: {source}")]
    Read {
        /// The package object.
        package: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Two packages disagree on whether a path is a directory.
    #[error(
        "{path} is a directory in {dir_in} but not in {other_in}: the packages cannot be merged"
    )]
    Conflict {
        /// The path inside the tree.
        path: String,
        /// The package where it is a directory.
        dir_in: String,
        /// The package where it is a file or symlink.
        other_in: String,
    },
    /// The tree could not be written or added to the store.
    #[error("cannot write the package tree: {0}")]
    Write(#[source] std::io::Error),
    /// The store refused the tree.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of [`build_package_tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageTree {
    /// The tree's store object.
    pub path: StorePath,
    /// Paths that a later package (in the given order) gave another target,
    /// with the packages: `(path, replaced package, replacing package)`.
    pub replaced: Vec<(String, String, String)>,
    /// Top-level directories of packages that are not under `/usr`, with
    /// the packages that have them.
    pub left_out: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir(String),
    Link(OsString, String),
}

/// Merges `packages` (unpacked package objects, in the order later ones win
/// on a clash) into the package tree `usr-<name>`.
pub fn build_package_tree(
    store: &Store,
    name: &str,
    packages: &[StorePath],
) -> Result<PackageTree, PackageTreeError> {
    let mut nodes: BTreeMap<PathBuf, Node> = BTreeMap::new();
    let mut replaced = Vec::new();
    let mut left_out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in packages {
        let label = package.name().to_string();
        let root = store.real_path(package);
        let read = |source| PackageTreeError::Read {
            package: package.to_string(),
            source,
        };
        for entry in walkdir::WalkDir::new(&root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| read(e.into()))?;
            let relative = entry.path().strip_prefix(&root).unwrap_or(entry.path());
            let Some(at) = tree_location(relative) else {
                if let Some(Component::Normal(top)) = relative.components().next() {
                    let top = top.to_string_lossy().into_owned();
                    if top != "usr" && !MERGED.contains(&top.as_str()) {
                        left_out.entry(top).or_default().insert(label.clone());
                    }
                }
                continue;
            };
            let node = if entry.file_type().is_dir() {
                Node::Dir(label.clone())
            } else if entry.file_type().is_symlink() {
                let target = fs::read_link(entry.path()).map_err(read)?;
                Node::Link(target.into_os_string(), label.clone())
            } else {
                let target = format!("{package}/{}", relative.display());
                Node::Link(target.into(), label.clone())
            };
            place(&mut nodes, at, node, &mut replaced)?;
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("package-tree-")
        .tempdir_in(store.state_dir())
        .map_err(PackageTreeError::Write)?;
    let top = dir.path().join("usr");
    write_tree(&top, &nodes).map_err(PackageTreeError::Write)?;
    let path = store.add_path(&top, &format!("usr-{name}"), packages)?;
    Ok(PackageTree {
        path,
        replaced,
        left_out,
    })
}

/// Where a package's path lands in the tree, if it is under `/usr` at all
/// (`usr` itself is the tree's root and has no place of its own).
pub(crate) fn tree_location(relative: &Path) -> Option<PathBuf> {
    let mut components = relative.components();
    let Some(Component::Normal(top)) = components.next() else {
        return None;
    };
    let top = top.to_str()?;
    if top == "usr" {
        let rest: PathBuf = components.collect();
        (!rest.as_os_str().is_empty()).then_some(rest)
    } else if MERGED.contains(&top) {
        Some(relative.to_path_buf())
    } else {
        None
    }
}

/// Puts one node into the tree: directories merge, a later link replaces
/// an earlier one (recorded), a directory never meets a non-directory.
fn place(
    nodes: &mut BTreeMap<PathBuf, Node>,
    at: PathBuf,
    node: Node,
    replaced: &mut Vec<(String, String, String)>,
) -> Result<(), PackageTreeError> {
    // Every ancestor must be a directory of the tree, not a copied symlink.
    for ancestor in at.ancestors().skip(1) {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        if let Some(Node::Link(_, other)) = nodes.get(ancestor) {
            return Err(conflict(ancestor, &node, other));
        }
    }
    match (nodes.get(&at), &node) {
        (None, _) => {
            nodes.insert(at, node);
        }
        (Some(Node::Dir(_)), Node::Dir(_)) => {}
        (Some(Node::Link(old, _)), Node::Link(new, _)) if old == new => {}
        (Some(Node::Link(_, old_in)), Node::Link(_, new_in)) => {
            replaced.push((at.display().to_string(), old_in.clone(), new_in.clone()));
            nodes.insert(at, node);
        }
        (Some(Node::Dir(dir_in)), Node::Link(_, other_in)) => {
            return Err(PackageTreeError::Conflict {
                path: at.display().to_string(),
                dir_in: dir_in.clone(),
                other_in: other_in.clone(),
            })
        }
        (Some(Node::Link(_, other_in)), Node::Dir(_)) => {
            return Err(conflict(&at, &node, other_in));
        }
    }
    Ok(())
}

fn conflict(at: &Path, node: &Node, other_in: &str) -> PackageTreeError {
    let dir_in = match node {
        Node::Dir(label) | Node::Link(_, label) => label.clone(),
    };
    PackageTreeError::Conflict {
        path: at.display().to_string(),
        dir_in,
        other_in: other_in.to_string(),
    }
}

fn write_tree(top: &Path, nodes: &BTreeMap<PathBuf, Node>) -> std::io::Result<()> {
    fs::create_dir_all(top)?;
    // A BTreeMap lists every directory before what it holds.
    for (at, node) in nodes {
        let path = top.join(at);
        match node {
            Node::Dir(_) => fs::create_dir(&path)?,
            Node::Link(target, _) => std::os::unix::fs::symlink(target, &path)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_and_the_merged_directories_land_in_the_tree_and_nothing_else_does() {
        let at = |p: &str| tree_location(Path::new(p));
        assert_eq!(at("usr/bin/python3"), Some(PathBuf::from("bin/python3")));
        assert_eq!(at("bin/sh"), Some(PathBuf::from("bin/sh")));
        assert_eq!(
            at("lib64/ld-linux-x86-64.so.2"),
            Some(PathBuf::from("lib64/ld-linux-x86-64.so.2"))
        );
        assert_eq!(at("usr"), None);
        assert_eq!(at("etc/passwd"), None);
        assert_eq!(at("var/lib/dpkg"), None);
    }

    #[test]
    fn directories_merge_later_links_replace_and_a_directory_never_meets_a_link() {
        let mut nodes = BTreeMap::new();
        let mut replaced = Vec::new();
        let dir = |p: &str| Node::Dir(p.into());
        let link = |t: &str, p: &str| Node::Link(t.into(), p.into());
        place(&mut nodes, "bin".into(), dir("a"), &mut replaced).unwrap();
        place(&mut nodes, "bin".into(), dir("b"), &mut replaced).unwrap();
        place(
            &mut nodes,
            "bin/x".into(),
            link("/s/a/bin/x", "a"),
            &mut replaced,
        )
        .unwrap();
        place(
            &mut nodes,
            "bin/x".into(),
            link("/s/a/bin/x", "b"),
            &mut replaced,
        )
        .unwrap();
        assert!(replaced.is_empty(), "the same target is no clash");
        place(
            &mut nodes,
            "bin/x".into(),
            link("/s/b/bin/x", "b"),
            &mut replaced,
        )
        .unwrap();
        assert_eq!(replaced, vec![("bin/x".into(), "a".into(), "b".into())]);
        assert_eq!(nodes[Path::new("bin/x")], link("/s/b/bin/x", "b"));
        let err = place(
            &mut nodes,
            "bin".into(),
            link("elsewhere", "c"),
            &mut replaced,
        );
        assert!(
            matches!(err, Err(PackageTreeError::Conflict { .. })),
            "{err:?}"
        );
        let err = place(&mut nodes, "bin/x/y".into(), dir("c"), &mut replaced);
        assert!(
            matches!(&err, Err(PackageTreeError::Conflict { path, .. }) if path == "bin/x"),
            "{err:?}"
        );
    }
}

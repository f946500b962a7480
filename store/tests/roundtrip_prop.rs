//! Property: for random trees (files, exec bits, symlinks, empty dirs, unicode names),
//! ingest → export → import into a second store gives the same paths and the same bytes.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ferry_store::{ImportMode, Store};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Tree {
    File(Vec<u8>, bool),
    Link(String),
    Dir(BTreeMap<String, Tree>),
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9éü中文ß _.+-]{1,12}".prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        (
            proptest::collection::vec(any::<u8>(), 0..400),
            any::<bool>()
        )
            .prop_map(|(bytes, exec)| Tree::File(bytes, exec)),
        "[a-z0-9./é]{1,24}".prop_map(Tree::Link),
        Just(Tree::Dir(BTreeMap::new())),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        proptest::collection::btree_map(name(), inner, 0..6).prop_map(Tree::Dir)
    })
}

fn materialize(tree: &Tree, at: &Path) {
    match tree {
        Tree::File(bytes, exec) => {
            std::fs::write(at, bytes).unwrap();
            std::fs::set_permissions(
                at,
                std::fs::Permissions::from_mode(if *exec { 0o755 } else { 0o644 }),
            )
            .unwrap();
        }
        Tree::Link(target) => std::os::unix::fs::symlink(target, at).unwrap(),
        Tree::Dir(entries) => {
            std::fs::create_dir(at).unwrap();
            for (name, child) in entries {
                materialize(child, &at.join(name));
            }
        }
    }
}

/// Everything about a tree that the store promises to keep, as a sorted listing.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_root_links(false)
        .sort_by_file_name()
    {
        let entry = entry.unwrap();
        let relative = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        let meta = entry.path().symlink_metadata().unwrap();
        let kind = if meta.file_type().is_symlink() {
            format!(
                "link {}",
                std::fs::read_link(entry.path()).unwrap().display()
            )
        } else if meta.is_dir() {
            format!("dir {:o}", meta.permissions().mode() & 0o7777)
        } else {
            format!(
                "file {:o} {:?}",
                meta.permissions().mode() & 0o7777,
                std::fs::read(entry.path()).unwrap()
            )
        };
        out.push(format!("{relative}: {kind}"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn export_import_round_trips(tree in tree(), with_reference in any::<bool>()) {
        let root = tempfile::tempdir().unwrap();
        let store_dir = root.path().join("store");
        let first = Store::open(&store_dir, &root.path().join("var-a")).unwrap();
        let dependency = first.add_bytes("dep", b"dependency", false, &[]).unwrap();
        let source = root.path().join("source");
        let tree = match (tree, with_reference) {
            (Tree::Dir(mut entries), true) => {
                entries.insert("uses-dep".to_string(), Tree::File(dependency.as_str().as_bytes().to_vec(), false));
                Tree::Dir(entries)
            }
            (other, _) => other,
        };
        materialize(&tree, &source);
        let path = first.add_path(&source, "random", std::slice::from_ref(&dependency)).unwrap();
        let original = listing(&first.real_path(&path));
        let mut archive = Vec::new();
        first.export_closure(std::slice::from_ref(&path), &mut archive).unwrap();
        drop(first);

        // The second store has the same store dir (part of every hash): move the first away.
        let moved = root.path().join("first-store");
        std::fs::rename(&store_dir, &moved).unwrap();
        let second = Store::open(&store_dir, &root.path().join("var-b")).unwrap();
        let report = second.import(archive.as_slice(), ImportMode::Atomic).unwrap();
        prop_assert_eq!(report.paths.last(), Some(&path));
        prop_assert!(second.is_valid(&path));
        prop_assert_eq!(listing(&second.real_path(&path)), original);
        prop_assert_eq!(second.path_info(&path).unwrap().references.is_empty(), !with_reference || !matches!(tree, Tree::Dir(_)));
        prop_assert!(second.verify(false).unwrap().is_clean());
    }
}

/// Regression: a store object that is itself a dangling symlink round-trips
/// (the listing once followed the top-level link and failed).
#[test]
fn a_top_level_dangling_symlink_round_trips() {
    let root = tempfile::tempdir().unwrap();
    let store_dir = root.path().join("store");
    let first = Store::open(&store_dir, &root.path().join("var-a")).unwrap();
    let source = root.path().join("source");
    materialize(&Tree::Link("a".to_string()), &source);
    let path = first.add_path(&source, "random", &[]).unwrap();
    let original = listing(&first.real_path(&path));
    assert_eq!(original.len(), 1, "{original:?}");
    let mut archive = Vec::new();
    first
        .export_closure(std::slice::from_ref(&path), &mut archive)
        .unwrap();
    drop(first);
    std::fs::rename(&store_dir, root.path().join("first-store")).unwrap();
    let second = Store::open(&store_dir, &root.path().join("var-b")).unwrap();
    second
        .import(archive.as_slice(), ImportMode::Atomic)
        .unwrap();
    assert_eq!(listing(&second.real_path(&path)), original);
    assert_eq!(
        std::fs::read_link(second.real_path(&path)).unwrap(),
        Path::new("a")
    );
}

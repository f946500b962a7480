//! Real `.deb`s built with `dpkg-deb`: what unpacking keeps, drops and reports, and that the
//! same bytes give the same store object in separate stores.
mod fixtures_deb;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_debian::fetch::Sha256;
use ferry_debian::object::{add_deb, find_deb_object, DebObject, ExpectedPackage, ObjectError};
use ferry_debian::unpack::unpack_deb;
use ferry_store::Store;
use fixtures_deb::{build_deb, digest_of, listing, make_writable, populate_features};

fn open_store(root: &Path, state: &str) -> Store {
    Store::open(&root.join("store"), &root.join(state)).unwrap()
}

fn add(store: &Store, deb: &Path, scratch: &Path) -> DebObject {
    let (sha, _) = digest_of(deb);
    add_deb(store, deb, &sha, None, scratch).unwrap()
}

#[test]
fn dpkg_deb_package_unpacks_with_modes_normalised_and_setuid_dropped() {
    let temp = tempfile::tempdir().unwrap();
    let deb = build_deb(
        temp.path(),
        "features",
        "1:2.0~rc1-3",
        "xz",
        populate_features,
    );
    let tree = temp.path().join("tree");
    let (control, report) = unpack_deb(&deb, &tree).unwrap();
    assert_eq!(control.package, "features");
    assert_eq!(control.version, "1:2.0~rc1-3");
    assert_eq!(control.architecture, "all");
    assert_eq!(
        control.field("Maintainer"),
        Some("ferry tests <tests@example.invalid>")
    );

    let mode = |p: &str| {
        fs::symlink_metadata(tree.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/bin/hello"), 0o555);
    assert_eq!(mode("usr/bin/su-like"), 0o555, "setuid dropped");
    assert_eq!(mode("usr/share/doc/features/README"), 0o444);
    assert_eq!(mode("usr/bin"), 0o755);
    assert_eq!(
        fs::read_link(tree.join("usr/bin/hi")).unwrap(),
        PathBuf::from("hello")
    );
    assert_eq!(
        fs::read_link(tree.join("lib64/ld-test.so")).unwrap(),
        PathBuf::from("/lib/x86_64-linux-gnu/ld-test.so")
    );
    // The hard link is resolved inside the tree: same content, same inode.
    let a = fs::metadata(tree.join("usr/bin/hello")).unwrap();
    let b = fs::metadata(tree.join("usr/bin/hello-again")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    assert_eq!(
        fs::read(tree.join("usr/bin/hello-again")).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );

    assert_eq!(report.files, 3);
    assert_eq!(report.hard_links, 1);
    assert_eq!(report.symlinks, 2);
    assert_eq!(report.bytes, 21 + 17 + 11);
    assert_eq!(
        report.dropped_mode_bits,
        vec![(PathBuf::from("usr/bin/su-like"), 0o4755)]
    );
    assert_eq!(
        report.absolute_symlinks,
        vec![(
            PathBuf::from("lib64/ld-test.so"),
            PathBuf::from("/lib/x86_64-linux-gnu/ld-test.so")
        )]
    );
    assert!(report.skipped.is_empty());
    // Maintainer scripts are neither extracted nor run.
    assert!(listing(&tree)
        .iter()
        .all(|l| !l.contains("DEBIAN") && !l.contains("postinst")));
    assert!(!Path::new("/tmp/ferry-debian-postinst-ran").exists());
}

#[test]
fn every_compression_gives_the_same_tree_and_store_path() {
    let temp = tempfile::tempdir().unwrap();
    let store = open_store(temp.path(), "state");
    let mut paths = Vec::new();
    let mut listings = Vec::new();
    for compression in ["xz", "gzip", "zstd", "none"] {
        let deb = build_deb(
            temp.path(),
            "features",
            "1.0",
            compression,
            populate_features,
        );
        let tree = temp.path().join(format!("tree-{compression}"));
        unpack_deb(&deb, &tree).unwrap();
        listings.push(listing(&tree));
        let object = add(&store, &deb, temp.path());
        assert_eq!(object.path.name(), "features-1.0");
        assert_eq!(
            find_deb_object(&store, &digest_of(&deb).0),
            Some(object.path.clone())
        );
        paths.push(object.path);
    }
    assert!(listings.windows(2).all(|w| w[0] == w[1]), "{listings:#?}");
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
}

#[test]
fn same_deb_in_two_separate_stores_gives_the_same_store_path() {
    let temp = tempfile::tempdir().unwrap();
    let deb = build_deb(
        temp.path(),
        "features",
        "1:2.0~rc1-3",
        "xz",
        populate_features,
    );
    let scratch = temp.path().join("scratch");
    fs::create_dir(&scratch).unwrap();

    // Deployer A: a store of its own, then gone entirely.
    let root = temp.path().join("deployer");
    let store_a = open_store(&root, "state-a");
    let object_a = add(&store_a, &deb, &scratch);
    assert_eq!(object_a.path.name(), "features-1=2.0_rc1-3");
    let listing_a = listing(&store_a.real_path(&object_a.path));
    let digest_a = store_a.path_info(&object_a.path).unwrap().tree_digest;
    drop(store_a);
    make_writable(&root);
    fs::remove_dir_all(&root).unwrap();

    // Deployer B: a fresh store with the same store dir.
    let store_b = open_store(&root, "state-b");
    let object_b = add(&store_b, &deb, &scratch);
    assert_eq!(object_b.path, object_a.path);
    assert_eq!(listing(&store_b.real_path(&object_b.path)), listing_a);

    // A store elsewhere has other paths (the store dir is part of the id) but the same tree.
    let other = open_store(&temp.path().join("elsewhere"), "state");
    let object_c = add(&other, &deb, &scratch);
    assert_ne!(object_c.path, object_a.path);
    assert_eq!(
        other.path_info(&object_c.path).unwrap().tree_digest,
        digest_a
    );
    // Scratch space is cleaned up after each add.
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
}

#[test]
fn sha256_mismatch_is_refused_and_nothing_is_registered() {
    let temp = tempfile::tempdir().unwrap();
    let deb = build_deb(temp.path(), "features", "1.0", "xz", populate_features);
    let store = open_store(temp.path(), "state");
    let (real, size) = digest_of(&deb);
    let wrong = Sha256::of(b"not the package");
    let error = add_deb(&store, &deb, &wrong, None, temp.path()).unwrap_err();
    match &error {
        ObjectError::HashMismatch {
            expected,
            got,
            size: got_size,
            ..
        } => {
            assert_eq!((*expected, *got, *got_size), (wrong, real, size));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert!(error.to_string().contains("nothing was added"));
    assert!(store.all_valid_paths().unwrap().is_empty());
    assert_eq!(find_deb_object(&store, &wrong), None);

    // A file damaged on disk after fetching is caught the same way.
    let mut bytes = fs::read(&deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let damaged = temp.path().join("damaged.deb");
    fs::write(&damaged, &bytes).unwrap();
    let error = add_deb(&store, &damaged, &real, None, temp.path()).unwrap_err();
    assert!(
        matches!(error, ObjectError::HashMismatch { .. }),
        "{error:?}"
    );
    assert!(store.all_valid_paths().unwrap().is_empty());
    // Nothing is left in the scratch dir either.
    assert!(fs::read_dir(temp.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".ferry-deb-")));
}

#[test]
fn control_fields_must_match_the_lock() {
    let temp = tempfile::tempdir().unwrap();
    let deb = build_deb(temp.path(), "features", "1.0", "xz", populate_features);
    let store = open_store(temp.path(), "state");
    let (sha, _) = digest_of(&deb);
    let expected = ExpectedPackage {
        package: "features".to_string(),
        version: "2.0".to_string(),
        architecture: "all".to_string(),
    };
    let error = add_deb(&store, &deb, &sha, Some(&expected), temp.path()).unwrap_err();
    match error {
        ObjectError::ControlMismatch {
            field,
            expected,
            got,
            ..
        } => {
            assert_eq!(
                (field, expected.as_str(), got.as_str()),
                ("Version", "2.0", "1.0")
            );
        }
        other => panic!("expected a control mismatch, got {other:?}"),
    }
    assert!(store.all_valid_paths().unwrap().is_empty());
    let right = ExpectedPackage {
        version: "1.0".to_string(),
        ..expected
    };
    let object = add_deb(&store, &deb, &sha, Some(&right), temp.path()).unwrap();
    assert!(store.is_valid(&object.path));
}

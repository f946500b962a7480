//! Export → import between two real stores: same paths, same bytes, same metadata.
use std::os::unix::fs::PermissionsExt;

use ferry_store::{ImportMode, Store};

#[test]
fn closure_exported_from_one_store_imports_into_another() {
    let root = tempfile::tempdir().unwrap();
    let source = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let lib = source
        .add_bytes("lib", b"library bytes", false, &[])
        .unwrap();
    let tree = root.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/run"), format!("#!/bin/sh\nexec {lib}\n")).unwrap();
    std::fs::set_permissions(tree.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(lib.as_path(), tree.join("lib")).unwrap();
    let app = source
        .add_path(&tree, "app", std::slice::from_ref(&lib))
        .unwrap();

    let mut archive = Vec::new();
    let stats = source
        .export_closure(std::slice::from_ref(&app), &mut archive)
        .unwrap();
    assert_eq!(stats.objects, 2);
    assert_eq!(stats.bytes, archive.len() as u64);

    // The receiving store must have the same store dir: move the source store away first.
    let received_root = tempfile::tempdir().unwrap();
    drop(source);
    std::fs::rename(
        root.path().join("store"),
        received_root.path().join("old-store"),
    )
    .unwrap();
    let target = Store::open(
        &root.path().join("store"),
        &received_root.path().join("var"),
    )
    .unwrap();
    let report = target
        .import(archive.as_slice(), ImportMode::Atomic)
        .unwrap();
    assert_eq!(report.paths, vec![lib.clone(), app.clone()]);
    assert_eq!(report.registered, vec![lib.clone(), app.clone()]);
    assert_eq!(
        std::fs::read(target.real_path(&app).join("bin/run")).unwrap(),
        format!("#!/bin/sh\nexec {lib}\n").into_bytes()
    );
    assert_eq!(
        target.path_info(&app).unwrap().references,
        vec![lib.clone()]
    );
    assert!(target.verify(false).unwrap().is_clean());
    // Importing again registers nothing new.
    let again = target
        .import(archive.as_slice(), ImportMode::Incremental)
        .unwrap();
    assert!(again.registered.is_empty());
    assert_eq!(again.already_valid, vec![lib, app]);
}

#[test]
fn incremental_import_cut_mid_stream_keeps_what_arrived_and_a_rerun_sends_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let store_dir = root.path().join("store");
    let source = Store::open(&store_dir, &root.path().join("var-a")).unwrap();
    let a = source.add_bytes("a", b"first", false, &[]).unwrap();
    let b = source
        .add_bytes("b", a.as_str().as_bytes(), false, std::slice::from_ref(&a))
        .unwrap();
    let c = source
        .add_bytes("c", &vec![7u8; 100_000], false, &[])
        .unwrap();
    let top = source
        .add_bytes(
            "top",
            format!("{b} {c}").as_bytes(),
            false,
            &[b.clone(), c.clone()],
        )
        .unwrap();
    // A dependency order with the big object third, so the cut below falls inside it.
    let closure = vec![a.clone(), b.clone(), c.clone(), top.clone()];
    assert_eq!(source.closure(std::slice::from_ref(&top)).unwrap().len(), 4);
    let mut archive = Vec::new();
    source.export(&closure, &mut archive).unwrap();
    drop(source);
    std::fs::rename(&store_dir, root.path().join("old-store")).unwrap();

    let target = Store::open(&store_dir, &root.path().join("var-b")).unwrap();
    // Cut inside the big object `c` (its 100,000 bytes dominate the stream).
    let cut = &archive[..archive.len() * 2 / 3];
    let error = target.import(cut, ImportMode::Incremental).unwrap_err();
    assert!(error.to_string().contains("truncated"), "{error}");
    let missing = target.missing(&closure);
    assert!(
        !missing.is_empty() && missing.len() < closure.len(),
        "kept {:?}",
        missing
    );
    for path in &closure {
        if !missing.contains(path) {
            assert!(target
                .closure(std::slice::from_ref(path))
                .unwrap()
                .iter()
                .all(|p| target.is_valid(p)));
        }
    }
    // The re-run sends only what is missing, in closure order.
    let mut rest = Vec::new();
    // Swap the stores back (both need the same store dir) to export from the source.
    std::fs::rename(&store_dir, root.path().join("target-store")).unwrap();
    std::fs::rename(root.path().join("old-store"), &store_dir).unwrap();
    let source = Store::open(&store_dir, &root.path().join("var-a")).unwrap();
    source.export(&missing, &mut rest).unwrap();
    drop(source);
    std::fs::rename(&store_dir, root.path().join("old-store")).unwrap();
    std::fs::rename(root.path().join("target-store"), &store_dir).unwrap();
    let target = Store::open(&store_dir, &root.path().join("var-b")).unwrap();
    let report = target
        .import(rest.as_slice(), ImportMode::Incremental)
        .unwrap();
    assert_eq!(report.registered, missing);
    assert!(target.missing(&closure).is_empty());
    assert!(target.verify(false).unwrap().is_clean());
}

/// Incremental imports write single-file objects as unnamed files in the store dir and link
/// them into place when their batch is registered; directory objects go through staging.
/// Debris of a crash in the way of a link is replaced, and nothing is left behind.
#[test]
fn incremental_import_links_single_file_objects_into_place_over_debris() {
    let root = tempfile::tempdir().unwrap();
    let source = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let files: Vec<_> = (0..40)
        .map(|i| {
            source
                .add_bytes(
                    &format!("f{i}"),
                    format!("file {i}").as_bytes(),
                    i % 3 == 0,
                    &[],
                )
                .unwrap()
        })
        .collect();
    let tree = root.path().join("tree");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("d/x"), files[0].as_str()).unwrap();
    let dir = source
        .add_path(&tree, "dir", std::slice::from_ref(&files[0]))
        .unwrap();
    let mut roots = files.clone();
    roots.push(dir.clone());
    let mut archive = Vec::new();
    source.export_closure(&roots, &mut archive).unwrap();
    drop(source);
    let old = tempfile::tempdir().unwrap();
    std::fs::rename(root.path().join("store"), old.path().join("store")).unwrap();

    let target = Store::open(&root.path().join("store"), &old.path().join("var")).unwrap();
    // A crash left a directory where one file object goes, and a file for another.
    let blocked_by_dir = target.real_path(&files[5]);
    std::fs::create_dir_all(blocked_by_dir.join("junk")).unwrap();
    std::fs::write(target.real_path(&files[6]), b"half-written").unwrap();

    let report = target
        .import(archive.as_slice(), ImportMode::Incremental)
        .unwrap();
    assert_eq!(report.registered.len(), 41);
    for (i, path) in files.iter().enumerate() {
        let real = target.real_path(path);
        assert_eq!(
            std::fs::read(&real).unwrap(),
            format!("file {i}").into_bytes()
        );
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, if i % 3 == 0 { 0o555 } else { 0o444 }, "{path}");
        let mtime = std::fs::metadata(&real).unwrap().modified().unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1)
        );
    }
    assert!(target.real_path(&dir).join("d/x").is_file());
    assert!(target.verify(false).unwrap().is_clean());
    let staging: Vec<_> = std::fs::read_dir(root.path().join("store/.tmp"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
}

/// A store holding a chain of `length` single-file objects, each referencing the one before,
/// and the chain's archive; the store is moved away (to the returned dir) so that a fresh store
/// can open at the same store dir.
fn chain_archive(root: &std::path::Path, length: usize) -> (Vec<ferry_store::StorePath>, Vec<u8>) {
    let source = Store::open(&root.join("store"), &root.join("var-source")).unwrap();
    let mut chain: Vec<ferry_store::StorePath> = Vec::new();
    for i in 0..length {
        let references: Vec<_> = chain.last().cloned().into_iter().collect();
        let content = match chain.last() {
            Some(previous) => format!("link {i} after {previous}"),
            None => format!("link {i}"),
        };
        let path = source
            .add_bytes(&format!("link{i}"), content.as_bytes(), false, &references)
            .unwrap();
        chain.push(path);
    }
    let mut archive = Vec::new();
    source.export(&chain, &mut archive).unwrap();
    drop(source);
    std::fs::rename(root.join("store"), root.join("source-store")).unwrap();
    (chain, archive)
}

/// Incremental imports register batches on a thread of their own while the stream goes on, so
/// a batch's references may sit in the batch before it. Every link of a chain longer than one
/// batch must become valid, in stream order, with its references.
#[test]
fn a_chain_spanning_several_batches_becomes_valid_link_by_link_in_stream_order() {
    let root = tempfile::tempdir().unwrap();
    let (chain, archive) = chain_archive(root.path(), 1500);
    let target = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let report = target
        .import(archive.as_slice(), ImportMode::Incremental)
        .unwrap();
    assert_eq!(report.registered, chain);
    assert!(target.missing(&chain).is_empty());
    assert_eq!(
        target.path_info(&chain[1499]).unwrap().references,
        vec![chain[1498].clone()]
    );
    assert!(target.verify(false).unwrap().is_clean());
}

/// When registering fails (here: the database cannot be opened), the import reports that
/// failure itself, not the stream's resulting inability to hand over its next batch, and
/// nothing becomes valid.
#[test]
fn a_failed_registration_is_reported_as_itself_and_makes_nothing_valid() {
    let root = tempfile::tempdir().unwrap();
    let (chain, archive) = chain_archive(root.path(), 1100);
    let target = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    // The database is opened on first use; a directory in its place makes that fail.
    std::fs::create_dir_all(root.path().join("var/db/store.sqlite")).unwrap();
    let error = target
        .import(archive.as_slice(), ImportMode::Incremental)
        .unwrap_err()
        .to_string();
    assert!(error.contains("store.sqlite"), "{error}");
    assert!(!error.contains("registration stopped"), "{error}");
    std::fs::remove_dir(root.path().join("var/db/store.sqlite")).unwrap();
    let reopened = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    assert_eq!(reopened.missing(&chain), chain);
}

/// Exports of many objects read ahead of themselves (files, directory trees; symlinks have
/// nothing to read). The stream must not depend on it: the same bytes every time, and an
/// import that verifies.
#[test]
fn an_export_reading_ahead_over_files_trees_and_symlinks_is_the_same_every_time() {
    let root = tempfile::tempdir().unwrap();
    let source = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let mut paths = Vec::new();
    for i in 0..80 {
        let path = match i % 3 {
            0 => source
                .add_bytes(
                    &format!("file{i}"),
                    format!("file {i}").as_bytes(),
                    false,
                    &[],
                )
                .unwrap(),
            1 => {
                let tree = root.path().join(format!("tree{i}"));
                std::fs::create_dir_all(tree.join("sub")).unwrap();
                std::fs::write(tree.join("sub/data"), vec![i as u8; 5000]).unwrap();
                std::fs::write(tree.join("top"), format!("top {i}")).unwrap();
                source.add_path(&tree, &format!("tree{i}"), &[]).unwrap()
            }
            _ => {
                let link = root.path().join(format!("link{i}"));
                std::os::unix::fs::symlink(format!("target-{i}"), &link).unwrap();
                source.add_path(&link, &format!("link{i}"), &[]).unwrap()
            }
        };
        paths.push(path);
    }
    let mut first = Vec::new();
    source.export(&paths, &mut first).unwrap();
    let mut second = Vec::new();
    source.export(&paths, &mut second).unwrap();
    assert_eq!(first, second);
    drop(source);
    std::fs::rename(root.path().join("store"), root.path().join("old-store")).unwrap();
    let target = Store::open(&root.path().join("store"), &root.path().join("var-b")).unwrap();
    let report = target
        .import(first.as_slice(), ImportMode::Incremental)
        .unwrap();
    assert_eq!(report.registered, paths);
    assert!(target.verify(false).unwrap().is_clean());
}

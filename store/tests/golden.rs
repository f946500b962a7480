//! Golden vectors (also listed in FORMAT.md §6): fixed trees → fixed tree digests, object ids,
//! store paths, and a fixed archive byte stream. A change in any encoding must break these.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_store::hash::canonical::{
    directory_digest, file_digest, object_id, object_path, symlink_digest,
};
use ferry_store::hash::hex;
use ferry_store::{ImportMode, Store, StoreDir, StorePath};

fn store_dir() -> StoreDir {
    StoreDir::new(Path::new("/ferry/store")).unwrap()
}

/// The golden tree: `a` ("A"), `b/c` → `../a`, `x` (executable "#!/bin/sh\n"), `z/` (empty).
fn golden_tree(root: &Path) -> PathBuf {
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("b")).unwrap();
    std::fs::create_dir_all(tree.join("z")).unwrap();
    std::fs::write(tree.join("a"), b"A").unwrap();
    std::os::unix::fs::symlink("../a", tree.join("b/c")).unwrap();
    std::fs::write(tree.join("x"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(tree.join("x"), std::fs::Permissions::from_mode(0o755)).unwrap();
    tree
}

const HELLO_FILE: &str = "6b97b1d64fcbc31012053ea98d3a7b9a25c9c112c5342130d44bc811f2a42f47";
const HELLO_EXEC: &str = "7c383bf8b27e7f0c37e0443b5561f9d994541ade16dfac5d0945312671392ae3";
const SYMLINK: &str = "c167bbb12f17d882d4f50209bda63061140911e955d7b9559210db88982d0f58";
const EMPTY_DIR: &str = "3af6451e1efae9e9b5616d4af92e58b3d4985cea64415bea9931dd0e7458899e";
const TREE: &str = "e5870fa0996a93bd14a521572e798c9deea8110a281dd53146fa18a28d0a1923";
const HELLO_ID: &str = "28a1e2670f65249e847a49a42421703458062fab0bdea6b4172fd4b278e33b36";
const HELLO_PATH: &str = "/ferry/store/52hy4rqgclj9x13s96j288bh6ic0cbxb-hello";
const TREE_PATH: &str = "/ferry/store/kpplxs3zzd7j0k3k5k3sllvwbhxspnyj-tree";

#[test]
fn tree_digests_are_pinned() {
    assert_eq!(file_digest(false, b"hello\n").to_hex(), HELLO_FILE);
    assert_eq!(file_digest(true, b"hello\n").to_hex(), HELLO_EXEC);
    assert_eq!(symlink_digest(b"../a").to_hex(), SYMLINK);
    assert_eq!(directory_digest(std::iter::empty()).to_hex(), EMPTY_DIR);
    let b = directory_digest([(b"c".as_slice(), symlink_digest(b"../a"))].into_iter());
    let tree = directory_digest(
        [
            (b"a".as_slice(), file_digest(false, b"A")),
            (b"b".as_slice(), b),
            (b"x".as_slice(), file_digest(true, b"#!/bin/sh\n")),
            (b"z".as_slice(), directory_digest(std::iter::empty())),
        ]
        .into_iter(),
    );
    assert_eq!(tree.to_hex(), TREE);
}

#[test]
fn object_ids_and_store_paths_are_pinned() {
    let hello = file_digest(false, b"hello\n");
    assert_eq!(
        hex::encode(&object_id(&store_dir(), "hello", &hello, &[])),
        HELLO_ID
    );
    let hello_path = object_path(&store_dir(), "hello", &hello, &[]);
    assert_eq!(hello_path.as_str(), HELLO_PATH);
    // The tree refers to hello; the reference is part of its identity.
    let tree = directory_digest(std::iter::empty());
    let tree_path = object_path(
        &store_dir(),
        "tree",
        &tree,
        std::slice::from_ref(&hello_path),
    );
    assert_eq!(tree_path.as_str(), TREE_PATH);
    assert_ne!(tree_path, object_path(&store_dir(), "tree", &tree, &[]));
    assert_ne!(
        hello_path,
        object_path(
            &StoreDir::new(Path::new("/other/store")).unwrap(),
            "hello",
            &hello,
            &[]
        )
    );
}

#[test]
fn ingesting_the_golden_tree_gives_the_golden_digest() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let path = store
        .add_path(&golden_tree(root.path()), "tree", &[])
        .unwrap();
    assert_eq!(store.path_info(&path).unwrap().tree_digest.to_hex(), TREE);
    let file = store.add_bytes("hello", b"hello\n", false, &[]).unwrap();
    assert_eq!(
        store.path_info(&file).unwrap().tree_digest.to_hex(),
        HELLO_FILE
    );
}

/// The archive vector needs a fixed store dir (it is inside the stream); concurrent runs of
/// this test (other worktrees) are serialized by a lock file.
const ARCHIVE_STORE: &str = "/tmp/ferry-golden-v1/store";
const ARCHIVE_HEX: &str = concat!(
    "4645525259415243010000000141000000000000002f746d702f66657272792d676f6c64656e2d76312f73746f72652f",
    "6437783877687171357a71386c6b6b6c6766356d3773723161387834767834732d68656c6c6f00000000000000000000",
    "000000000000006b97b1d64fcbc31012053ea98d3a7b9a25c9c112c5342130d44bc811f2a42f47100000000000000066",
    "00060000000000000068656c6c6f0a0140000000000000002f746d702f66657272792d676f6c64656e2d76312f73746f",
    "72652f73367376637a38686d326462716676337368717a316a7269337a3078716876322d747265650100000000000000",
    "41000000000000002f746d702f66657272792d676f6c64656e2d76312f73746f72652f6437783877687171357a71386c",
    "6b6b6c6766356d3773723161387834767834732d68656c6c6f0000000000000000004765bdfc995c399d1e30d269be61",
    "c0067268de6fa49dd3d9a4a53eff23c90c74b40000000000000064040000000000000001000000000000006166004100",
    "0000000000002f746d702f66657272792d676f6c64656e2d76312f73746f72652f6437783877687171357a71386c6b6b",
    "6c6766356d3773723161387834767834732d68656c6c6f01000000000000006264010000000000000001000000000000",
    "00637304000000000000002e2e2f6101000000000000007866010a0000000000000023212f62696e2f73680a01000000",
    "000000007a640000000000000000000200000000000000",
);

#[test]
fn archive_stream_is_pinned() {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/ferry-golden-v1.lock")
        .unwrap();
    fs2::FileExt::lock_exclusive(&lock).unwrap();
    let base = Path::new("/tmp/ferry-golden-v1");
    if base.exists() {
        let _ = std::process::Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(base)
            .status();
        std::fs::remove_dir_all(base).unwrap();
    }
    let store = Store::open(Path::new(ARCHIVE_STORE), &base.join("var")).unwrap();
    let hello = store.add_bytes("hello", b"hello\n", false, &[]).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let tree = golden_tree(scratch.path());
    std::fs::write(tree.join("a"), format!("{hello}").as_bytes()).unwrap();
    let tree_path = store
        .add_path(&tree, "tree", std::slice::from_ref(&hello))
        .unwrap();
    let mut archive = Vec::new();
    store
        .export_closure(std::slice::from_ref(&tree_path), &mut archive)
        .unwrap();
    assert_eq!(hex::encode(&archive), ARCHIVE_HEX);

    // The pinned bytes import into a fresh state dir over an emptied store dir.
    drop(store);
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(base)
        .status();
    std::fs::remove_dir_all(base).unwrap();
    let fresh = Store::open(Path::new(ARCHIVE_STORE), &base.join("var2")).unwrap();
    let bytes: Vec<u8> = (0..ARCHIVE_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&ARCHIVE_HEX[i..i + 2], 16).unwrap())
        .collect();
    let report = fresh.import(bytes.as_slice(), ImportMode::Atomic).unwrap();
    assert_eq!(report.paths, vec![hello.clone(), tree_path.clone()]);
    assert_eq!(StorePath::parse(tree_path.as_str()).unwrap().name(), "tree");
    assert!(fresh.verify(false).unwrap().is_clean());
}

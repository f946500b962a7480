//! Hostile data archives made by hand: each is refused (or its special files skipped), and a
//! refusal leaves nothing behind, inside or outside the destination, nor in the store.
mod fixtures_deb;

use std::fs;
use std::path::{Path, PathBuf};

use ferry_debian::object::{add_deb, ObjectError};
use ferry_debian::unpack::{
    unpack_tar, unpack_tar_in_memory, MemoryNode, SpecialKind, UnpackError, MAX_DEPTH,
};
use ferry_store::Store;
use fixtures_deb::{digest_of, raw_deb, raw_tar, RawEntry};

/// Unpacks `entries` into `<temp>/sandbox/dest` and returns the error; checks that the
/// destination is gone and that `<temp>/sandbox` holds nothing else.
fn refused(temp: &Path, entries: &[RawEntry]) -> UnpackError {
    let sandbox = temp.join("sandbox");
    fs::create_dir_all(&sandbox).unwrap();
    let dest = sandbox.join("dest");
    let error = unpack_tar(&raw_tar(entries)[..], &dest).unwrap_err();
    assert!(!dest.exists(), "destination left behind after {error}");
    let left: Vec<PathBuf> = fs::read_dir(&sandbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    error
}

/// A path's bytes for a [`RawEntry`], which holds `'static` slices.
fn leak(text: String) -> &'static [u8] {
    Box::leak(text.into_bytes().into_boxed_slice())
}

#[test]
fn parent_component_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let error = refused(
        temp.path(),
        &[
            RawEntry::Dir(b"./usr/"),
            RawEntry::File(b"../escape", b"out"),
        ],
    );
    assert!(
        matches!(error, UnpackError::ParentComponent { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "refusing entry `../escape`: its path contains `..`"
    );
    let error = refused(
        temp.path(),
        &[RawEntry::File(b"./usr/../../escape", b"out")],
    );
    assert!(
        matches!(error, UnpackError::ParentComponent { .. }),
        "{error:?}"
    );
    assert!(!temp.path().join("escape").exists());
}

#[test]
fn absolute_path_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let error = refused(
        temp.path(),
        &[RawEntry::File(b"/tmp/ferry-debian-absolute-escape", b"x")],
    );
    assert!(
        matches!(error, UnpackError::AbsolutePath { .. }),
        "{error:?}"
    );
    assert!(!Path::new("/tmp/ferry-debian-absolute-escape").exists());
}

#[test]
fn file_through_a_symlink_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let outside = temp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let target = leak(outside.display().to_string());
    let error = refused(
        temp.path(),
        &[
            RawEntry::Symlink(b"./link", target),
            RawEntry::File(b"./link/pwned", b"x"),
        ],
    );
    match &error {
        UnpackError::ThroughSymlink { path, symlink } => {
            assert_eq!(
                (path.as_path(), symlink.as_path()),
                (Path::new("link/pwned"), Path::new("link"))
            );
        }
        other => panic!("expected a symlink refusal, got {other:?}"),
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    // A relative symlink to the parent, then a directory and file through it.
    let error = refused(
        temp.path(),
        &[
            RawEntry::Symlink(b"./up", b".."),
            RawEntry::Dir(b"./up/d/"),
            RawEntry::File(b"./up/d/x", b"x"),
        ],
    );
    assert!(
        matches!(error, UnpackError::ThroughSymlink { .. }),
        "{error:?}"
    );
    assert!(!temp.path().join("d").exists());
}

#[test]
fn hard_links_must_stay_inside_the_tree() {
    let temp = tempfile::tempdir().unwrap();
    for link in [&b"/etc/passwd"[..], b"../x", b"./missing", b"./sym"] {
        let link: &'static [u8] = Box::leak(link.to_vec().into_boxed_slice());
        let error = refused(
            temp.path(),
            &[
                RawEntry::Symlink(b"./sym", b"/etc/passwd"),
                RawEntry::HardLink(b"./h", link),
            ],
        );
        assert!(
            matches!(error, UnpackError::BadHardLink { .. }),
            "{error:?}"
        );
    }
}

#[test]
fn duplicate_paths_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let error = refused(
        temp.path(),
        &[
            RawEntry::Symlink(b"./a", b"/etc/shadow"),
            RawEntry::File(b"./a", b"x"),
        ],
    );
    assert!(matches!(error, UnpackError::Duplicate { .. }), "{error:?}");
    let error = refused(
        temp.path(),
        &[RawEntry::File(b"./f", b"x"), RawEntry::File(b"./f/g", b"y")],
    );
    assert!(
        matches!(error, UnpackError::NotADirectory { .. }),
        "{error:?}"
    );
}

#[test]
fn device_nodes_and_fifos_are_skipped_and_listed() {
    let temp = tempfile::tempdir().unwrap();
    let dest = temp.path().join("dest");
    let tar = raw_tar(&[
        RawEntry::Dir(b"./dev/"),
        RawEntry::CharDevice(b"./dev/null"),
        RawEntry::Fifo(b"./dev/pipe"),
        RawEntry::File(b"./dev/README", b"kept\n"),
    ]);
    let report = unpack_tar(&tar[..], &dest).unwrap();
    assert_eq!(
        report.skipped,
        vec![
            (PathBuf::from("dev/null"), SpecialKind::CharDevice),
            (PathBuf::from("dev/pipe"), SpecialKind::Fifo)
        ]
    );
    assert!(!dest.join("dev/null").exists() && !dest.join("dev/pipe").exists());
    assert_eq!(fs::read(dest.join("dev/README")).unwrap(), b"kept\n");
}

#[test]
fn destination_must_be_fresh() {
    let temp = tempfile::tempdir().unwrap();
    let error = unpack_tar(&raw_tar(&[RawEntry::File(b"./a", b"x")])[..], temp.path()).unwrap_err();
    assert!(
        matches!(error, UnpackError::DestinationExists { .. }),
        "{error:?}"
    );
    assert!(
        temp.path().exists(),
        "an existing directory is never removed"
    );
}

#[test]
fn hostile_deb_registers_nothing_in_the_store() {
    let temp = tempfile::tempdir().unwrap();
    let store = Store::open(&temp.path().join("store"), &temp.path().join("state")).unwrap();
    // The symlink points at a directory of the test's own, standing in for `/etc`, so that a
    // regression cannot write into the machine's.
    let outside = temp.path().join("etc");
    fs::create_dir_all(outside.join("cron.d")).unwrap();
    let data = raw_tar(&[
        RawEntry::Symlink(b"./etc", leak(outside.display().to_string())),
        RawEntry::File(b"./etc/cron.d/evil", b"x"),
    ]);
    let deb = raw_deb(temp.path(), "evil", &data);
    let (sha, _) = digest_of(&deb);
    let error = add_deb(&store, &deb, &sha, None, temp.path()).unwrap_err();
    assert!(
        matches!(
            &error,
            ObjectError::Unpack {
                source: UnpackError::ThroughSymlink { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(store.all_valid_paths().unwrap().is_empty());
    assert_eq!(fs::read_dir(outside.join("cron.d")).unwrap().count(), 0);
    // A well-formed hand-made deb with the same layout minus the escape is accepted.
    let data = raw_tar(&[
        RawEntry::Symlink(b"./etc", b"/etc"),
        RawEntry::File(b"./README", b"x"),
    ]);
    let deb = raw_deb(temp.path(), "benign", &data);
    let (sha, _) = digest_of(&deb);
    let object = add_deb(&store, &deb, &sha, None, temp.path()).unwrap();
    assert_eq!(object.path.name(), "benign-1.0");
    assert_eq!(
        object.report.absolute_symlinks,
        vec![(PathBuf::from("etc"), PathBuf::from("/etc"))]
    );
}

#[test]
fn malformed_debs_are_refused_with_the_reason() {
    let temp = tempfile::tempdir().unwrap();
    let store = Store::open(&temp.path().join("store"), &temp.path().join("state")).unwrap();
    let not_ar = temp.path().join("text.deb");
    fs::write(&not_ar, "just text\n").unwrap();
    let (sha, _) = digest_of(&not_ar);
    let error = add_deb(&store, &not_ar, &sha, None, temp.path()).unwrap_err();
    assert!(error.to_string().contains("not a valid .deb"), "{error}");
    assert!(store.all_valid_paths().unwrap().is_empty());
}

/// A tar with one file at `depth` components (`d/d/…/f`), its long name in a GNU long-name
/// entry, as the `tar` crate writes names over 100 bytes.
fn deep_tar(depth: usize) -> Vec<u8> {
    let path = format!("{}f", "d/".repeat(depth - 1));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(1);
    builder.append_data(&mut header, &path, &b"x"[..]).unwrap();
    builder.into_inner().unwrap()
}

#[test]
fn path_deeper_than_the_limit_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let sandbox = temp.path().join("sandbox");
    fs::create_dir_all(&sandbox).unwrap();
    let dest = sandbox.join("dest");
    let error = unpack_tar(&deep_tar(MAX_DEPTH + 1)[..], &dest).unwrap_err();
    match &error {
        UnpackError::TooDeep { depth, .. } => assert_eq!(*depth, MAX_DEPTH + 1),
        other => panic!("expected a refusal for depth, got {other:?}"),
    }
    assert!(
        error.to_string().starts_with(
            "refusing an entry whose path has 257 components (at most 256 are allowed): `d/d/d/"
        ),
        "{error}"
    );
    assert!(!dest.exists());
    assert_eq!(fs::read_dir(&sandbox).unwrap().count(), 0);
    // In memory too, before anything is held.
    let error = unpack_tar_in_memory(&deep_tar(MAX_DEPTH + 1)[..], 1 << 20).unwrap_err();
    assert!(matches!(error, UnpackError::TooDeep { .. }), "{error:?}");
}

#[test]
fn path_exactly_at_the_depth_limit_is_unpacked() {
    let temp = tempfile::tempdir().unwrap();
    let dest = temp.path().join("dest");
    let report = unpack_tar(&deep_tar(MAX_DEPTH)[..], &dest).unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(report.directories, MAX_DEPTH as u64 - 1);
    let file = dest.join(format!("{}f", "d/".repeat(MAX_DEPTH - 1)));
    assert_eq!(fs::read(file).unwrap(), b"x");
}

/// The hostile archives above, each refused in memory with the same error as on disk.
#[test]
fn hostile_archives_are_refused_in_memory_as_on_disk() {
    let temp = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<RawEntry>> = vec![
        vec![RawEntry::File(b"../escape", b"out")],
        vec![RawEntry::File(b"/tmp/ferry-debian-absolute-escape", b"x")],
        vec![
            RawEntry::Symlink(b"./link", b"/etc"),
            RawEntry::File(b"./link/pwned", b"x"),
        ],
        vec![RawEntry::Symlink(b"./up", b".."), RawEntry::Dir(b"./up/d/")],
        vec![RawEntry::File(b"./f", b"x"), RawEntry::File(b"./f/g", b"x")],
        vec![RawEntry::File(b"./f", b"x"), RawEntry::File(b"./f", b"y")],
        vec![
            RawEntry::Symlink(b"./sym", b"/etc/passwd"),
            RawEntry::HardLink(b"./h", b"./sym"),
        ],
        vec![RawEntry::HardLink(b"./h", b"./missing")],
        vec![RawEntry::Symlink(b"./empty", b"")],
    ];
    for (i, entries) in cases.iter().enumerate() {
        let on_disk = refused(&temp.path().join(i.to_string()), entries);
        let in_memory = unpack_tar_in_memory(&raw_tar(entries)[..], 1 << 20).unwrap_err();
        assert_eq!(
            in_memory.to_string(),
            on_disk.to_string(),
            "case {i}: {in_memory:?} / {on_disk:?}"
        );
    }
}

#[test]
fn in_memory_unpack_stops_at_its_limit() {
    let data = raw_tar(&[
        RawEntry::File(b"./a", b"0123456789"),
        RawEntry::HardLink(b"./b", b"./a"),
    ]);
    // The hard link is a copy in memory, and counts.
    let (tree, report) = unpack_tar_in_memory(&data[..], 20).unwrap();
    assert_eq!(report.hard_links, 1);
    assert_eq!(
        tree.entries.get(&b"b"[..]),
        Some(&MemoryNode::File {
            executable: false,
            content: b"0123456789".to_vec()
        })
    );
    for limit in [9, 19] {
        let error = unpack_tar_in_memory(&data[..], limit).unwrap_err();
        assert!(
            matches!(error, UnpackError::OverMemoryLimit { limit: l } if l == limit),
            "{error:?}"
        );
    }
}

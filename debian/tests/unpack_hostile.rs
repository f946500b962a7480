//! Hostile data archives made by hand: each is refused (or its special files skipped), and a
//! refusal leaves nothing behind, inside or outside the destination, nor in the store.
mod fixtures_deb;

use std::fs;
use std::path::{Path, PathBuf};

use ferry_debian::object::{add_deb, ObjectError};
use ferry_debian::unpack::{unpack_tar, SpecialKind, UnpackError};
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

//! Hostile archives, one test per attack: each is refused with a typed error and leaves the
//! store exactly as it was (and writes nothing outside it).
use std::path::{Path, PathBuf};

use ferry_store::hash::canonical::{directory_digest, file_digest, object_path, symlink_digest};
use ferry_store::{ArchiveError, Digest, ImportMode, Store, StoreError, StorePath};

/// A node as the attacker writes it: entries in the order given, names unchecked.
#[derive(Clone)]
enum Node {
    File(bool, Vec<u8>),
    Link(Vec<u8>),
    Dir(Vec<(Vec<u8>, Node)>),
}

impl Node {
    fn digest(&self) -> Digest {
        match self {
            Node::File(executable, bytes) => file_digest(*executable, bytes),
            Node::Link(target) => symlink_digest(target),
            Node::Dir(entries) => directory_digest(
                entries
                    .iter()
                    .map(|(name, child)| (name.as_slice(), child.digest()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Node::File(executable, bytes) => {
                out.extend_from_slice(&[b'f', u8::from(*executable)]);
                put_bytes(out, bytes);
            }
            Node::Link(target) => {
                out.push(b's');
                put_bytes(out, target);
            }
            Node::Dir(entries) => {
                out.push(b'd');
                out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
                for (name, child) in entries {
                    put_bytes(out, name);
                    child.encode(out);
                }
            }
        }
    }

    fn size(&self) -> u64 {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len() as u64
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// One object record, with every field the attacker may lie about.
#[derive(Clone)]
struct Object {
    path: String,
    references: Vec<String>,
    digest: Digest,
    size: u64,
    node: Node,
}

impl Object {
    /// An honest object: digest, size and path derived from the content.
    fn honest(store: &Store, name: &str, node: Node, references: &[&str]) -> Object {
        let refs: Vec<StorePath> = references
            .iter()
            .map(|r| StorePath::parse(r).unwrap())
            .collect();
        let digest = node.digest();
        let path = object_path(store.store_dir(), name, &digest, &refs).to_string();
        let mut references: Vec<String> = references.iter().map(|r| r.to_string()).collect();
        references.sort();
        Object {
            path,
            references,
            digest,
            size: node.size(),
            node,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        put_bytes(out, self.path.as_bytes());
        out.extend_from_slice(&(self.references.len() as u64).to_le_bytes());
        for reference in &self.references {
            put_bytes(out, reference.as_bytes());
        }
        out.push(0); // no deriver
        out.extend_from_slice(&0u64.to_le_bytes()); // no signatures
        out.extend_from_slice(&self.digest.0);
        out.extend_from_slice(&self.size.to_le_bytes());
        self.node.encode(out);
    }
}

fn archive(objects: &[Object]) -> Vec<u8> {
    let mut out = b"FERRYARC".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    for object in objects {
        object.encode(&mut out);
    }
    out.push(0);
    out.extend_from_slice(&(objects.len() as u64).to_le_bytes());
    out
}

struct Fixture {
    _root: tempfile::TempDir,
    root: PathBuf,
    store: Store,
    /// A valid path already in the store before the attack.
    existing: StorePath,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().to_path_buf();
    let store = Store::open(&path.join("store"), &path.join("var")).unwrap();
    let existing = store
        .add_bytes("existing", b"already here", false, &[])
        .unwrap();
    Fixture {
        _root: root,
        root: path,
        store,
        existing,
    }
}

/// Every file name under the store dir and the roots dir with sizes, and every metadata record.
fn snapshot(root: &Path) -> Vec<String> {
    let mut entries = Vec::new();
    let store = Store::open(&root.join("store"), &root.join("var")).unwrap();
    for path in store.all_valid_paths().unwrap() {
        entries.push(format!("valid {:?}", store.path_info(&path).unwrap()));
    }
    for top in ["store", "var/gcroots"] {
        for entry in walkdir::WalkDir::new(root.join(top)).sort_by_file_name() {
            let entry = entry.unwrap();
            let meta = entry.path().symlink_metadata().unwrap();
            entries.push(format!(
                "{} {}",
                entry.path().strip_prefix(root).unwrap().display(),
                meta.len()
            ));
        }
    }
    entries
}

/// Imports `bytes` in both modes and returns the (identical) errors. Atomic mode must leave
/// the store unchanged; incremental mode may keep earlier objects, but only fully verified ones.
fn refuse(fixture: &Fixture, bytes: &[u8]) -> ArchiveError {
    let before = snapshot(&fixture.root);
    let atomic = fixture.store.import(bytes, ImportMode::Atomic).unwrap_err();
    assert_eq!(
        snapshot(&fixture.root),
        before,
        "atomic import changed the store"
    );
    let incremental = fixture
        .store
        .import(bytes, ImportMode::Incremental)
        .unwrap_err();
    assert_eq!(atomic.to_string(), incremental.to_string());
    for entry in std::fs::read_dir(fixture.store.store_dir().as_path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".tmp-"), "temporary {name} survived");
        if name == ".tmp" {
            let staging = fixture.store.store_dir().as_path().join(".tmp");
            let left: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
            assert!(left.is_empty(), "staging survived: {left:?}");
            continue;
        }
        let path = fixture
            .store
            .parse_path(&format!("{}/{name}", fixture.store.store_dir()))
            .unwrap();
        assert!(
            fixture.store.is_valid(&path),
            "incremental import left unverified {name}"
        );
    }
    assert!(fixture.store.verify(false).unwrap().is_clean());
    assert!(fixture.store.is_valid(&fixture.existing));
    match atomic {
        StoreError::Archive(error) => error,
        other => panic!("expected an archive error, got {other:?}"),
    }
}

fn with_entry(name: &[u8]) -> Node {
    Node::Dir(vec![(name.to_vec(), Node::File(false, b"x".to_vec()))])
}

fn hostile_entry(name: &[u8]) -> ArchiveError {
    let fixture = fixture();
    let object = Object::honest(&fixture.store, "evil", with_entry(name), &[]);
    refuse(&fixture, &archive(&[object]))
}

#[test]
fn entry_named_dot_dot_is_refused() {
    assert!(
        matches!(hostile_entry(b".."), ArchiveError::BadEntryName { reason, .. } if reason.contains(".."))
    );
}

#[test]
fn entry_named_dot_is_refused() {
    assert!(matches!(
        hostile_entry(b"."),
        ArchiveError::BadEntryName { .. }
    ));
}

#[test]
fn entry_name_with_slash_is_refused() {
    assert!(
        matches!(hostile_entry(b"../../etc/passwd"), ArchiveError::BadEntryName { reason, .. } if reason.contains('/'))
    );
}

#[test]
fn absolute_entry_name_is_refused() {
    assert!(matches!(
        hostile_entry(b"/etc/passwd"),
        ArchiveError::BadEntryName { .. }
    ));
}

#[test]
fn entry_name_with_nul_is_refused() {
    assert!(
        matches!(hostile_entry(b"a\0b"), ArchiveError::BadEntryName { reason, .. } if reason.contains("NUL"))
    );
}

#[test]
fn empty_entry_name_is_refused() {
    assert!(
        matches!(hostile_entry(b""), ArchiveError::BadEntryName { reason, .. } if reason.contains("empty"))
    );
}

#[test]
fn write_through_an_earlier_symlink_is_refused() {
    let fixture = fixture();
    let victim = fixture.root.join("victim");
    std::fs::create_dir(&victim).unwrap();
    // `a` → victim dir, then a second `a` as a directory holding `pwned`: if the importer
    // followed the link, `pwned` would land in the victim directory.
    let node = Node::Dir(vec![
        (
            b"a".to_vec(),
            Node::Link(victim.to_str().unwrap().as_bytes().to_vec()),
        ),
        (
            b"a".to_vec(),
            Node::Dir(vec![(b"pwned".to_vec(), Node::File(false, b"x".to_vec()))]),
        ),
    ]);
    let object = Object::honest(&fixture.store, "evil", node, &[]);
    let error = refuse(&fixture, &archive(&[object]));
    assert!(
        matches!(error, ArchiveError::UnsortedEntry { .. }),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "something was written through the symlink"
    );
}

#[test]
fn symlink_object_followed_by_objects_writes_nothing_outside() {
    // A root-level symlink object pointing outside, then a file object with a bad digest:
    // the symlink is data, never followed, and nothing lands at its target.
    let fixture = fixture();
    let outside = fixture.root.join("outside");
    let link = Object::honest(
        &fixture.store,
        "link",
        Node::Link(outside.to_str().unwrap().as_bytes().to_vec()),
        &[],
    );
    let mut file = Object::honest(
        &fixture.store,
        "file",
        Node::File(false, b"payload".to_vec()),
        &[],
    );
    file.digest = Digest([0; 32]);
    let error = refuse(&fixture, &archive(&[link, file]));
    assert!(
        matches!(error, ArchiveError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(!outside.exists());
}

#[test]
fn unsorted_entries_are_refused() {
    let fixture = fixture();
    let node = Node::Dir(vec![
        (b"b".to_vec(), Node::File(false, vec![])),
        (b"a".to_vec(), Node::File(false, vec![])),
    ]);
    let object = Object::honest(&fixture.store, "evil", node, &[]);
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::UnsortedEntry { .. }
    ));
}

#[test]
fn declared_size_larger_than_content_is_refused() {
    let fixture = fixture();
    let mut object = Object::honest(
        &fixture.store,
        "evil",
        Node::File(false, b"short".to_vec()),
        &[],
    );
    object.size += 1;
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::SizeMismatch { .. }
    ));
}

#[test]
fn declared_size_smaller_than_content_is_refused() {
    let fixture = fixture();
    let mut object = Object::honest(
        &fixture.store,
        "evil",
        Node::File(false, b"longer content".to_vec()),
        &[],
    );
    object.size -= 1;
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::SizeMismatch { .. }
    ));
}

#[test]
fn file_length_beyond_the_stream_is_truncation() {
    let fixture = fixture();
    let object = Object::honest(
        &fixture.store,
        "evil",
        Node::File(false, b"abc".to_vec()),
        &[],
    );
    let mut bytes = Vec::new();
    object.encode(&mut bytes);
    // Claim 1000 bytes of content (and a matching object size) but send only 3.
    let mut stream = b"FERRYARC".to_vec();
    stream.extend_from_slice(&1u32.to_le_bytes());
    let mut lying = object.clone();
    lying.size = 1 + 1 + 8 + 1000;
    let mut encoded = Vec::new();
    lying.encode(&mut encoded);
    let length_at = encoded.len() - 3 - 8;
    encoded[length_at..length_at + 8].copy_from_slice(&1000u64.to_le_bytes());
    stream.extend_from_slice(&encoded);
    assert!(matches!(
        refuse(&fixture, &stream),
        ArchiveError::Truncated { .. }
    ));
}

#[test]
fn digest_mismatch_is_refused() {
    let fixture = fixture();
    let mut object = Object::honest(
        &fixture.store,
        "evil",
        Node::File(false, b"original".to_vec()),
        &[],
    );
    object.node = Node::File(false, b"tampered".to_vec());
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::DigestMismatch { .. }
    ));
}

#[test]
fn path_that_does_not_match_content_is_refused() {
    let fixture = fixture();
    let honest = Object::honest(
        &fixture.store,
        "evil",
        Node::File(false, b"content".to_vec()),
        &[],
    );
    let mut object = honest.clone();
    // Claim the path of the object already in the store, with other content.
    object.path = fixture.existing.to_string().replace("-existing", "-evil");
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::PathMismatch { .. }
    ));
}

#[test]
fn unknown_version_is_refused() {
    let fixture = fixture();
    let object = Object::honest(&fixture.store, "ok", Node::File(false, b"x".to_vec()), &[]);
    let mut bytes = archive(&[object]);
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        refuse(&fixture, &bytes),
        ArchiveError::UnsupportedVersion(2)
    ));
}

#[test]
fn bad_magic_is_refused() {
    let fixture = fixture();
    assert!(matches!(
        refuse(&fixture, b"NOTFERRY\x01\0\0\0"),
        ArchiveError::BadMagic
    ));
    assert!(matches!(refuse(&fixture, b""), ArchiveError::BadMagic));
}

#[test]
fn every_truncation_of_a_valid_archive_is_refused() {
    let fixture = fixture();
    let first = Object::honest(
        &fixture.store,
        "one",
        Node::Dir(vec![(b"f".to_vec(), Node::File(true, b"12345".to_vec()))]),
        &[],
    );
    let second = Object::honest(
        &fixture.store,
        "two",
        Node::Link(first.path.as_bytes().to_vec()),
        &[first.path.as_str()],
    );
    let bytes = archive(&[first, second]);
    for cut in 0..bytes.len() {
        let error = refuse(&fixture, &bytes[..cut]);
        assert!(
            matches!(
                error,
                ArchiveError::Truncated { .. } | ArchiveError::BadMagic
            ),
            "cut at {cut}: {error}"
        );
    }
}

#[test]
fn reference_to_an_absent_path_is_refused() {
    let fixture = fixture();
    let absent = format!(
        "{}/00000000000000000000000000000000-absent",
        fixture.store.store_dir()
    );
    let object = Object::honest(
        &fixture.store,
        "evil",
        Node::File(false, absent.clone().into_bytes()),
        &[absent.as_str()],
    );
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::UnknownReference { .. }
    ));
}

#[test]
fn reference_to_a_later_object_is_refused() {
    let fixture = fixture();
    let dependency = Object::honest(
        &fixture.store,
        "dep",
        Node::File(false, b"dep".to_vec()),
        &[],
    );
    let user = Object::honest(
        &fixture.store,
        "user",
        Node::File(false, dependency.path.clone().into_bytes()),
        &[dependency.path.as_str()],
    );
    assert!(matches!(
        refuse(&fixture, &archive(&[user, dependency])),
        ArchiveError::UnknownReference { .. }
    ));
}

#[test]
fn duplicate_object_is_refused() {
    let fixture = fixture();
    let object = Object::honest(
        &fixture.store,
        "twice",
        Node::File(false, b"x".to_vec()),
        &[],
    );
    assert!(matches!(
        refuse(&fixture, &archive(&[object.clone(), object])),
        ArchiveError::DuplicateObject { .. }
    ));
}

#[test]
fn object_in_another_store_dir_is_refused() {
    let fixture = fixture();
    let other = Store::open(
        &fixture.root.join("other-store"),
        &fixture.root.join("other-var"),
    )
    .unwrap();
    let object = Object::honest(&other, "foreign", Node::File(false, b"x".to_vec()), &[]);
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::WrongStoreDir { .. }
    ));
}

#[test]
fn absurd_file_size_is_refused_before_reading() {
    let fixture = fixture();
    let mut object = Object::honest(&fixture.store, "huge", Node::File(false, vec![]), &[]);
    let mut encoded = Vec::new();
    object.size = 1 << 60;
    object.encode(&mut encoded);
    let mut stream = b"FERRYARC".to_vec();
    stream.extend_from_slice(&1u32.to_le_bytes());
    stream.extend_from_slice(&encoded);
    assert!(matches!(
        refuse(&fixture, &stream),
        ArchiveError::LimitExceeded {
            what: "object size",
            ..
        }
    ));
}

#[test]
fn file_larger_than_its_declared_object_is_refused_before_reading() {
    let fixture = fixture();
    let object = Object::honest(&fixture.store, "liar", Node::File(false, vec![]), &[]);
    let mut encoded = Vec::new();
    object.encode(&mut encoded);
    // Rewrite the file length to 2^50 while the object size says 10.
    let at = encoded.len() - 8;
    encoded[at..].copy_from_slice(&(1u64 << 50).to_le_bytes());
    let mut stream = b"FERRYARC".to_vec();
    stream.extend_from_slice(&1u32.to_le_bytes());
    stream.extend_from_slice(&encoded);
    assert!(matches!(
        refuse(&fixture, &stream),
        ArchiveError::SizeMismatch { .. }
    ));
}

#[test]
fn absurd_entry_and_reference_counts_are_refused() {
    let fixture = fixture();
    let object = Object::honest(&fixture.store, "many", Node::Dir(vec![]), &[]);
    let mut encoded = Vec::new();
    object.encode(&mut encoded);
    let at = encoded.len() - 8;
    encoded[at..].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut stream = b"FERRYARC".to_vec();
    stream.extend_from_slice(&1u32.to_le_bytes());
    stream.extend_from_slice(&encoded);
    assert!(matches!(
        refuse(&fixture, &stream),
        ArchiveError::LimitExceeded {
            what: "directory entry count",
            ..
        }
    ));

    let mut encoded = Vec::new();
    object.encode(&mut encoded);
    let refs_at = 1 + 8 + object.path.len();
    encoded[refs_at..refs_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut stream = b"FERRYARC".to_vec();
    stream.extend_from_slice(&1u32.to_le_bytes());
    stream.extend_from_slice(&encoded);
    assert!(matches!(
        refuse(&fixture, &stream),
        ArchiveError::LimitExceeded {
            what: "reference count",
            ..
        }
    ));

    let mut stream = b"FERRYARC".to_vec();
    stream.extend_from_slice(&1u32.to_le_bytes());
    stream.push(1);
    stream.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        refuse(&fixture, &stream),
        ArchiveError::LimitExceeded { .. }
    ));
}

#[test]
fn deeply_nested_directories_are_refused() {
    let fixture = fixture();
    let mut node = Node::Dir(vec![]);
    for _ in 0..600 {
        node = Node::Dir(vec![(b"d".to_vec(), node)]);
    }
    let object = Object::honest(&fixture.store, "deep", node, &[]);
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::LimitExceeded {
            what: "directory depth",
            ..
        }
    ));
}

#[test]
fn paths_too_long_to_read_back_inside_an_object_are_refused() {
    // 20 directories of 200-byte names: 4,020 bytes inside the object, past
    // PATH_MAX once under a store dir; verify and export could not read them.
    let fixture = fixture();
    let mut node = Node::File(false, b"x".to_vec());
    for level in 0..20u8 {
        node = Node::Dir(vec![(vec![b'a' + level % 26; 200], node)]);
    }
    let object = Object::honest(&fixture.store, "long", node, &[]);
    assert!(matches!(
        refuse(&fixture, &archive(&[object])),
        ArchiveError::LimitExceeded {
            what: "path length inside an object",
            ..
        }
    ));
}

#[test]
fn wrong_object_count_at_the_end_is_refused() {
    let fixture = fixture();
    let object = Object::honest(&fixture.store, "ok", Node::File(false, b"x".to_vec()), &[]);
    let mut bytes = archive(&[object]);
    let at = bytes.len() - 8;
    bytes[at..].copy_from_slice(&5u64.to_le_bytes());
    assert!(matches!(
        refuse(&fixture, &bytes),
        ArchiveError::CountMismatch { .. }
    ));
}

#[test]
fn incremental_import_keeps_verified_objects_before_a_bad_one() {
    let fixture = fixture();
    let good = Object::honest(
        &fixture.store,
        "good",
        Node::File(false, b"good".to_vec()),
        &[],
    );
    let mut bad = Object::honest(
        &fixture.store,
        "bad",
        Node::File(false, b"bad".to_vec()),
        &[],
    );
    bad.digest = Digest([1; 32]);
    let bytes = archive(&[good.clone(), bad.clone()]);
    let good_path = StorePath::parse(&good.path).unwrap();
    let bad_path = StorePath::parse(&bad.path).unwrap();

    fixture
        .store
        .import(bytes.as_slice(), ImportMode::Atomic)
        .unwrap_err();
    assert!(
        !fixture.store.is_valid(&good_path),
        "atomic mode registered part of a bad stream"
    );
    fixture
        .store
        .import(bytes.as_slice(), ImportMode::Incremental)
        .unwrap_err();
    assert!(
        fixture.store.is_valid(&good_path),
        "incremental mode lost a verified object"
    );
    assert!(!fixture.store.is_valid(&bad_path) && !fixture.store.real_path(&bad_path).exists());
    assert!(fixture.store.verify(false).unwrap().is_clean());
}

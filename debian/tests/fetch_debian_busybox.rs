//! Real Debian packages through this machine's apt configuration: busybox's `Filename`,
//! `SHA256` and `Size` from `apt-cache show`, its repository from the apt sources, fetched,
//! verified, unpacked into a store object, and run from there.
//!
//! Needs the apt lists (`apt-get update`, which scripts/setup.sh runs) and the configured
//! repository to be reachable.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use ferry_debian::fetch::{FetchItem, FetchSource, FetchedFile, Fetcher, NoProgress};
use ferry_debian::object::{add_fetched, find_deb_object, ExpectedPackage};
use ferry_store::Store;

/// The first stanza of `apt-cache show PACKAGE` that a repository serves (has a `Filename`).
fn apt_stanza(package: &str) -> Vec<(String, String)> {
    let output = Command::new("apt-cache")
        .args(["show", package])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "apt-cache show {package} failed (run apt-get update): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.split("\n\n")
        .map(|stanza| {
            stanza
                .lines()
                .filter(|l| !l.starts_with([' ', '\t']))
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect::<Vec<_>>()
        })
        .find(|fields| fields.iter().any(|(k, _)| k == "Filename"))
        .unwrap_or_else(|| panic!("apt-cache knows no downloadable {package}"))
}

/// The repository URIs of the apt sources, in order: deb822 `.sources` files first, then
/// one-line `sources.list` entries.
fn apt_uris() -> Vec<String> {
    let mut uris = Vec::new();
    let mut files: Vec<_> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "sources"))
    {
        for line in fs::read_to_string(file).unwrap().lines() {
            if let Some(value) = line.strip_prefix("URIs:") {
                uris.extend(value.split_whitespace().map(String::from));
            }
        }
    }
    if let Ok(list) = fs::read_to_string("/etc/apt/sources.list") {
        for line in list.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("deb") {
                continue;
            }
            let mut word = words.next();
            if word.is_some_and(|w| w.starts_with('[')) {
                while word.is_some_and(|w| !w.ends_with(']')) {
                    word = words.next();
                }
                word = words.next();
            }
            uris.extend(word.map(String::from));
        }
    }
    uris
}

/// A package as apt knows it, fetched from the first configured repository that serves it.
struct AptPackage {
    item: FetchItem,
    expected: ExpectedPackage,
    fetched: FetchedFile,
}

/// Looks `package` up with apt-cache and fetches it through the apt sources' URIs in order
/// (the first that serves the file wins: the security archive, say, serves other files).
fn fetch_from_apt(fetcher: &Fetcher, package: &str) -> AptPackage {
    let stanza = apt_stanza(package);
    let field = |name: &str| {
        stanza
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in apt-cache's {package} stanza"))
    };
    let uris = apt_uris();
    assert!(!uris.is_empty(), "no repository in the apt sources");
    let mut failures = Vec::new();
    for uri in uris {
        let item = FetchItem {
            base_uri: uri,
            filename: field("Filename"),
            sha256: field("SHA256").parse().unwrap(),
            size: field("Size").parse().unwrap(),
        };
        match fetcher.fetch_one(0, &item, &NoProgress) {
            Ok(fetched) => {
                let expected = ExpectedPackage {
                    package: package.to_string(),
                    version: field("Version"),
                    architecture: field("Architecture"),
                };
                return AptPackage {
                    item,
                    expected,
                    fetched,
                };
            }
            Err(error) => failures.push(error.to_string()),
        }
    }
    panic!("no apt source served {package}: {failures:#?}");
}

#[test]
fn real_busybox_is_fetched_verified_unpacked_and_runs_from_the_store() {
    let temp = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(&temp.path().join("cache")).unwrap();
    let busybox = fetch_from_apt(&fetcher, "busybox");
    assert_eq!(busybox.fetched.source, FetchSource::Downloaded);
    let size = fs::metadata(&busybox.fetched.path).unwrap().len();
    assert_eq!(size, busybox.item.size);

    let store = Store::open(&temp.path().join("store"), &temp.path().join("state")).unwrap();
    let object = add_fetched(
        &store,
        &busybox.fetched,
        Some(&busybox.expected),
        temp.path(),
    )
    .unwrap();
    assert!(
        object.path.name().starts_with("busybox-"),
        "{}",
        object.path
    );
    assert!(!object.path.name().contains(':'));
    assert_eq!(
        find_deb_object(&store, &busybox.item.sha256),
        Some(object.path.clone())
    );
    assert!(object.report.files > 0);
    assert!(
        object.report.dropped_mode_bits.is_empty(),
        "{:?}",
        object.report
    );

    let program = store.real_path(&object.path).join("bin/busybox");
    assert!(program.is_file(), "{} missing", program.display());
    let status = Command::new(&program).arg("true").status().unwrap();
    assert!(status.success(), "busybox true: {status}");
    let output = Command::new(&program)
        .args(["echo", "from the store"])
        .output()
        .unwrap();
    assert_eq!(output.stdout, b"from the store\n");

    // Fetching again hits the cache: the repository is not asked (this one does not exist).
    let offline = FetchItem {
        base_uri: "http://127.0.0.1:9/".to_string(),
        ..busybox.item.clone()
    };
    let again = fetcher.fetch_one(0, &offline, &NoProgress).unwrap();
    assert_eq!(again.source, FetchSource::Cached);
}

/// libc6 keeps its absolute `lib64/ld-linux-x86-64.so.2` symlink as data (and the report
/// lists it), and its real interpreter in the store runs busybox with the store's libc alone.
#[test]
fn real_libc6_lists_its_absolute_interpreter_symlink_and_runs_busybox() {
    let temp = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(&temp.path().join("cache")).unwrap();
    let store = Store::open(&temp.path().join("store"), &temp.path().join("state")).unwrap();
    let libc6 = fetch_from_apt(&fetcher, "libc6");
    let busybox = fetch_from_apt(&fetcher, "busybox");
    let libc = add_fetched(&store, &libc6.fetched, Some(&libc6.expected), temp.path()).unwrap();
    let bb = add_fetched(
        &store,
        &busybox.fetched,
        Some(&busybox.expected),
        temp.path(),
    )
    .unwrap();

    let link = (
        PathBuf::from("lib64/ld-linux-x86-64.so.2"),
        PathBuf::from("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    );
    assert!(
        libc.report.absolute_symlinks.contains(&link),
        "{:?}",
        libc.report.absolute_symlinks
    );
    let root = store.real_path(&libc.path);
    assert_eq!(fs::read_link(root.join(&link.0)).unwrap(), link.1);

    let lib = root.join("lib/x86_64-linux-gnu");
    let output = Command::new(lib.join("ld-linux-x86-64.so.2"))
        .arg("--library-path")
        .arg(&lib)
        .arg(store.real_path(&bb.path).join("bin/busybox"))
        .args(["echo", "libc from the store"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"libc from the store\n");
}

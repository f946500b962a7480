//! A real Debian package through this machine's apt configuration: busybox's `Filename`,
//! `SHA256` and `Size` from `apt-cache show`, its repository from the apt sources, fetched,
//! verified, unpacked into a store object, and run from there.
//!
//! Needs the apt lists (`apt-get update`, which scripts/setup.sh runs) and the configured
//! repository to be reachable.

use std::fs;
use std::process::Command;

use ferry_debian::fetch::{FetchItem, FetchSource, Fetcher, NoProgress, Sha256};
use ferry_debian::object::{add_fetched, find_deb_object, ExpectedPackage};
use ferry_store::Store;

/// The first stanza of `apt-cache show busybox` that a repository serves (has a `Filename`).
fn busybox_stanza() -> Vec<(String, String)> {
    let output = Command::new("apt-cache")
        .args(["show", "busybox"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "apt-cache show busybox failed (run apt-get update): {}",
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
        .expect("apt-cache knows a downloadable busybox")
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

#[test]
fn real_busybox_is_fetched_verified_unpacked_and_runs_from_the_store() {
    let stanza = busybox_stanza();
    let field = |name: &str| {
        stanza
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in apt-cache's busybox stanza"))
    };
    let sha256: Sha256 = field("SHA256").parse().unwrap();
    let size: u64 = field("Size").parse().unwrap();
    let uris = apt_uris();
    assert!(!uris.is_empty(), "no repository in the apt sources");

    let temp = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(&temp.path().join("cache")).unwrap();
    // The first repository that serves the file (the security archive, say, does not).
    let mut failures = Vec::new();
    let fetched = uris.iter().find_map(|uri| {
        let item = FetchItem {
            base_uri: uri.clone(),
            filename: field("Filename"),
            sha256,
            size,
        };
        fetcher
            .fetch_one(0, &item, &NoProgress)
            .map_err(|e| failures.push(e.to_string()))
            .ok()
    });
    let fetched = fetched.unwrap_or_else(|| panic!("no apt source served busybox: {failures:#?}"));
    assert_eq!(fetched.source, FetchSource::Downloaded);
    assert_eq!(fs::metadata(&fetched.path).unwrap().len(), size);

    let store = Store::open(&temp.path().join("store"), &temp.path().join("state")).unwrap();
    let expected = ExpectedPackage {
        package: "busybox".to_string(),
        version: field("Version"),
        architecture: field("Architecture"),
    };
    let object = add_fetched(&store, &fetched, Some(&expected), temp.path()).unwrap();
    assert!(
        object.path.name().starts_with("busybox-"),
        "{}",
        object.path
    );
    assert!(!object.path.name().contains(':'));
    assert_eq!(find_deb_object(&store, &sha256), Some(object.path.clone()));
    assert!(object.report.files > 0);
    assert!(
        object.report.dropped_mode_bits.is_empty(),
        "{:?}",
        object.report
    );

    let busybox = store.real_path(&object.path).join("bin/busybox");
    assert!(busybox.is_file(), "{} missing", busybox.display());
    let status = Command::new(&busybox).arg("true").status().unwrap();
    assert!(status.success(), "busybox true: {status}");
    let output = Command::new(&busybox)
        .args(["echo", "from the store"])
        .output()
        .unwrap();
    assert_eq!(output.stdout, b"from the store\n");

    // Fetching again hits the cache: no network needed.
    let again = fetcher
        .fetch_one(
            0,
            &FetchItem {
                base_uri: "http://127.0.0.1:9/".to_string(),
                filename: field("Filename"),
                sha256,
                size,
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(again.source, FetchSource::Cached);
}

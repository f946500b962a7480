//! Lock file tests: the text format, atomic writes, staleness, updates and diffs.

use super::*;
use crate::resolve::resolve;

fn universe(lines: &[&str]) -> Universe {
    crate::resolve::tests::universe(lines)
}

fn roots(names: &[&str]) -> Vec<Root> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

/// The format, specified by hand: changing it needs a new FORMAT_VERSION.
const GOLDEN: &str = r#"# ferry lock file: the exact Debian packages of this site.
# Written by `ferry lock`; change it with `ferry lock --update [PKG…]`, not by hand.

version = 1
arch = "amd64"
roots = ["app", "lib (>= 1)"]

[[package]]
name = "app"
version = "1"
architecture = "amd64"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 100
filename = "pool/main/app_1.deb"
suite = "stable"
component = "main"

[[package]]
name = "lib"
version = "2"
architecture = "amd64"
sha256 = "0000000000000000000000000000000000000000000000000000000000000002"
size = 102
filename = "pool/main/lib_2.deb"
suite = "stable"
component = "main"
"#;

#[test]
fn lock_text_matches_the_documented_format() {
    let u = universe(&["app 1;lib", "lib 1", "lib 2"]);
    let lock = Lock::resolve(&u, &roots(&["lib (>= 1)", "app"])).unwrap();
    assert_eq!(lock.to_toml(), GOLDEN);
    assert_eq!(Lock::from_toml(GOLDEN, Path::new("x.lock")).unwrap(), lock);
}

#[test]
fn write_is_atomic_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.conf");
    let path = Lock::path_for(&site);
    assert_eq!(path, dir.path().join("site.lock"));
    let lock = Lock::from_toml(GOLDEN, &path).unwrap();
    std::fs::write(&path, "old").unwrap();
    lock.write(&path).unwrap();
    assert_eq!(Lock::read(&path).unwrap(), lock);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["site.lock"], "no temporary file is left behind");
}

#[test]
fn staleness_follows_the_roots() {
    let lock = Lock::from_toml(GOLDEN, Path::new("x")).unwrap();
    assert!(lock.is_current_for(&roots(&["lib (>= 1)", "app", "app"])));
    assert!(!lock.is_current_for(&roots(&["app"])));
    assert!(!lock.is_current_for(&roots(&["app", "lib (>= 2)"])));
}

#[test]
fn bad_files_are_refused_with_the_path() {
    let err = Lock::from_toml("version = 2\n", Path::new("s.lock")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "s.lock: lock format version 2, this ferry reads version 1\n  hint: run `ferry lock` to write it anew"
    );
    let err = Lock::from_toml("version = 1\n", Path::new("s.lock")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.lock: not a ferry lock file: missing field"),
        "{err}"
    );
    let err = Lock::read(Path::new("/nonexistent/s.lock")).unwrap_err();
    assert!(matches!(err, LockError::Io { .. }));
}

#[test]
fn update_moves_only_the_named_packages() {
    let v1 = universe(&["app 1;lib, tool", "lib 1", "tool 1"]);
    let v2 = universe(&["app 1;lib, tool", "lib 1", "lib 2", "tool 1", "tool 2"]);
    let r = roots(&["app"]);
    let old = Lock::resolve(&v1, &r).unwrap();
    let some = old.update(&v2, &r, &["lib"]).unwrap();
    assert_eq!(some.package("lib").unwrap().version, "2");
    assert_eq!(some.package("tool").unwrap().version, "1");
    let err = old.update(&v2, &r, &["lbi"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "lbi is not in the lock (did you mean lib?)\n  hint: `ferry lock --update` with no names re-resolves everything"
    );
    let all = old.update(&v2, &r, &[]).unwrap();
    assert_eq!(all.package("tool").unwrap().version, "2");
    let changes: Vec<String> = diff(&old, &all).iter().map(Change::to_string).collect();
    assert_eq!(changes, ["lib 1 → 2", "tool 1 → 2"]);
}

#[test]
fn diff_shows_added_removed_and_changed() {
    let u = universe(&["a 1;b", "b 1", "c 1", "a 2;c"]);
    let old = Lock::from_resolution(&resolve(&u, &roots(&["a (= 1)"])).unwrap(), "amd64");
    let new = Lock::from_resolution(&resolve(&u, &roots(&["a"])).unwrap(), "amd64");
    let changes: Vec<String> = diff(&old, &new).iter().map(Change::to_string).collect();
    assert_eq!(changes, ["a 1 → 2", "- b 1", "+ c 1"]);
    assert!(diff(&new, &new).is_empty());
}

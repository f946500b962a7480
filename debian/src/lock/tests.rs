//! Lock file tests: the text format, atomic writes, staleness, updates, diffs,
//! dependency edges, group closures and fetch items.

use super::*;
use crate::control::parse_packages;
use crate::resolve::resolve;
use crate::sources::Source;
use crate::universe::Origin;

fn universe(lines: &[&str]) -> Universe {
    crate::resolve::tests::universe(lines)
}

fn roots(names: &[&str]) -> Vec<Root> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

/// The format, specified by hand: changing it needs a new FORMAT_VERSION.
const GOLDEN: &str = r#"# ferry lock file: the exact Debian packages of this site.
# Written by `ferry lock`; change it with `ferry lock --update [PKG…]`, not by hand.

version = 2
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
depends = ["lib", "mailer"]

[[package]]
name = "lib"
version = "2"
architecture = "amd64"
sha256 = "0000000000000000000000000000000000000000000000000000000000000002"
size = 102
filename = "pool/main/lib_2.deb"
suite = "stable"
component = "main"

[[package]]
name = "mailer"
version = "1"
architecture = "all"
sha256 = "0000000000000000000000000000000000000000000000000000000000000003"
size = 103
filename = "pool/main/mailer_1.deb"
suite = "stable"
component = "main"
depends = ["lib"]
provides = ["mail-transport-agent"]
"#;

/// The documented example's universe: `app` needs `lib` and a mail transport
/// agent, which `mailer` provides.
fn golden_universe() -> Universe {
    universe(&[
        "app 1;lib, mail-transport-agent",
        "lib 1",
        "lib 2",
        "mailer 1 all;lib (>= 1);mail-transport-agent",
    ])
}

#[test]
fn lock_text_matches_the_documented_format() {
    let lock = Lock::resolve(&golden_universe(), &roots(&["lib (>= 1)", "app"])).unwrap();
    assert_eq!(lock.to_toml(), GOLDEN);
    assert_eq!(Lock::from_toml(GOLDEN, Path::new("x.lock")).unwrap(), lock);
}

#[test]
fn the_documented_example_is_the_golden_text() {
    let doc = include_str!("../../LOCK-FORMAT.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    assert_eq!(example, GOLDEN);
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
    let err = Lock::from_toml("version = 3\n", Path::new("s.lock")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "s.lock: lock format version 3, this ferry reads version 2\n  hint: a newer ferry wrote it; use that one, or run `ferry lock SITE --update` to resolve the site anew"
    );
    let err = Lock::from_toml("version = 2\n", Path::new("s.lock")).unwrap_err();
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

/// A version-1 lock, as the previous ferry wrote it: no edges.
const VERSION_1: &str = r#"version = 1
arch = "amd64"
roots = ["app"]

[[package]]
name = "app"
version = "1"
architecture = "amd64"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 100
filename = "pool/main/app_1.deb"
suite = "stable"
component = "main"
"#;

#[test]
fn version_1_locks_are_refused_with_the_command_that_rewrites_them() {
    let err = Lock::from_toml(VERSION_1, Path::new("site.lock")).unwrap_err();
    assert!(
        matches!(err, LockError::OldFormat { found: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "site.lock: lock format version 1 records no dependencies, so no package group's closure can be read from it; this ferry reads version 2\n  hint: run `ferry lock SITE --update` to resolve the site anew"
    );
}

fn depends_of<'l>(lock: &'l Lock, name: &str) -> &'l [String] {
    &lock.package(name).unwrap().depends
}

#[test]
fn a_virtual_dependency_records_its_provider() {
    let u = universe(&[
        "app 1;mail-transport-agent, virt (>= 2)",
        "postfix 3;;mail-transport-agent",
        "exim 4;;mail-transport-agent",
        "impl-old 1;;virt (= 1)",
        "impl-new 1;;virt (= 2.5), other-virt",
    ]);
    let lock = Lock::resolve(&u, &roots(&["app"])).unwrap();
    assert_eq!(depends_of(&lock, "app"), ["exim", "impl-new"]);
    assert_eq!(
        lock.package("impl-new").unwrap().provides,
        ["other-virt", "virt"],
        "names only, sorted"
    );
    assert!(lock.package("exim").unwrap().depends.is_empty());
}

#[test]
fn alternatives_record_the_chosen_package() {
    // `d`'s `b | c` is met by `c`, which `e` chose first; `b` is not locked.
    let u = universe(&["e 1;c, d", "d 1;b | c", "b 1", "c 1"]);
    let lock = Lock::resolve(&u, &roots(&["e"])).unwrap();
    assert_eq!(depends_of(&lock, "d"), ["c"]);
    assert!(lock.package("b").is_none());
    // When both are chosen (`z` needs `b`), the first alternative met is recorded.
    let u = universe(&["y 1;b | c", "z 1;b", "b 1", "c 1"]);
    let lock = Lock::resolve(&u, &roots(&["y", "c", "z"])).unwrap();
    assert!(lock.package("b").is_some() && lock.package("c").is_some());
    assert_eq!(depends_of(&lock, "y"), ["b"]);
}

#[test]
fn alternatives_for_other_architectures_give_no_edge() {
    // `a` and `c` are locked (roots), yet only for i386 or not for amd64.
    let u = universe(&[
        "app 1;a [i386] | b, c [!amd64], d [amd64]",
        "a 1",
        "b 1",
        "c 1",
        "d 1",
    ]);
    let lock = Lock::resolve(&u, &roots(&["app", "a", "c"])).unwrap();
    assert_eq!(depends_of(&lock, "app"), ["b", "d"]);
}

#[test]
fn pre_depends_count_and_a_package_never_depends_on_itself() {
    let text = format!(
        "Package: app\nVersion: 1\nArchitecture: amd64\nPre-Depends: base\nDepends: virt, lib, lib (>= 1)\n\
         Provides: virt\nFilename: pool/app.deb\nSize: 1\nSHA256: {0}\n\n\
         Package: base\nVersion: 1\nArchitecture: all\nFilename: pool/base.deb\nSize: 1\nSHA256: {0}\n\n\
         Package: lib\nVersion: 1\nArchitecture: amd64\nFilename: pool/lib.deb\nSize: 1\nSHA256: {0}\n",
        "0".repeat(64)
    );
    let mut u = Universe::new("amd64");
    let origin = Origin {
        suite: "stable".into(),
        component: "main".into(),
    };
    u.add_index(&origin, parse_packages(text.as_bytes()).unwrap());
    let lock = Lock::resolve(&u, &roots(&["app"])).unwrap();
    assert_eq!(depends_of(&lock, "app"), ["base", "lib"]);
}

#[test]
fn a_relation_no_chosen_package_meets_gives_no_edge() {
    // Not a resolver's output: `lib` is missing from the chosen packages.
    let u = universe(&["app 1;lib, other", "lib 1", "other 1"]);
    let mut resolution = resolve(&u, &roots(&["app"])).unwrap();
    resolution.packages.retain(|c| c.entry.name != "lib");
    let lock = Lock::from_resolution(&resolution, "amd64");
    assert_eq!(depends_of(&lock, "app"), ["other"]);
}

/// A site of two package groups resolved into one lock.
fn site_lock() -> Lock {
    let u = universe(&[
        "postgresql 15;libpq, libc (>= 2)",
        "libpq 15;libc",
        "libc 1",
        "libc 2",
        "nginx 1;libc, libpcre | libpcre2",
        "libpcre2 10",
        "python3 3;libc, libexpat",
        "libexpat 2",
        "postfix 3;libc;mail-transport-agent",
    ]);
    Lock::resolve(
        &u,
        &roots(&["postgresql", "nginx", "python3", "mail-transport-agent"]),
    )
    .unwrap()
}

fn closure(lock: &Lock, names: &[&str]) -> Vec<String> {
    lock.closure_of(&roots(names))
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect()
}

#[test]
fn groups_sharing_a_library_get_their_own_closures() {
    let lock = site_lock();
    assert_eq!(
        closure(&lock, &["postgresql"]),
        ["libc 2", "libpq 15", "postgresql 15"]
    );
    assert_eq!(
        closure(&lock, &["nginx", "python3"]),
        [
            "libc 2",
            "libexpat 2",
            "libpcre2 10",
            "nginx 1",
            "python3 3"
        ]
    );
    assert_eq!(closure(&lock, &["libc", "libc", "libc (>= 2)"]), ["libc 2"]);
    assert!(closure(&lock, &[]).is_empty());
}

#[test]
fn a_virtual_root_is_met_by_its_locked_provider() {
    let lock = site_lock();
    assert_eq!(
        closure(&lock, &["mail-transport-agent"]),
        ["libc 2", "postfix 3"]
    );
    // Provides are locked without versions, so a versioned root cannot use them.
    let err = lock
        .closure_of(&roots(&["mail-transport-agent (>= 1)"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no locked package satisfies mail-transport-agent (>= 1): the lock is stale\n  hint: run `ferry lock SITE --update` to resolve the site anew"
    );
}

#[test]
fn a_constrained_root_needs_a_fitting_locked_version() {
    let lock = site_lock();
    assert_eq!(closure(&lock, &["postgresql (>= 15)"]).len(), 3);
    let err = lock
        .closure_of(&roots(&["postgresql (>= 16)"]))
        .unwrap_err();
    assert!(matches!(err, LockError::StaleRoot { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no locked package satisfies postgresql (>= 16) (the lock has postgresql 15): the lock is stale\n  hint: run `ferry lock SITE --update` to resolve the site anew"
    );
}

#[test]
fn a_root_the_lock_lacks_is_a_stale_lock_with_close_names() {
    let lock = site_lock();
    let err = lock.closure_of(&roots(&["ngnix"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no locked package satisfies ngnix (did you mean nginx?): the lock is stale\n  hint: run `ferry lock SITE --update` to resolve the site anew"
    );
    let err = lock.closure_of(&roots(&["redis-server"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no locked package satisfies redis-server: the lock is stale\n  hint: run `ferry lock SITE --update` to resolve the site anew"
    );
}

#[test]
fn a_damaged_lock_names_both_packages() {
    let mut lock = site_lock();
    lock.packages.retain(|p| p.name != "libpq");
    let err = lock.closure_of(&roots(&["postgresql"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the lock is damaged: postgresql depends on libpq, which is not locked\n  hint: run `ferry lock SITE --update` to resolve the site anew"
    );
    assert_eq!(
        closure(&lock, &["nginx"]).len(),
        3,
        "other groups still read"
    );
    let mut lock = site_lock();
    lock.packages[0].version = "not a version!".into();
    let name = lock.packages[0].name.clone();
    let err = lock
        .closure_of(&roots(&[&format!("{name} (>= 1)")]))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("the lock is damaged: {name} has a bad version: ")),
        "{err}"
    );
}

#[test]
fn edges_round_trip_through_the_text() {
    let lock = site_lock();
    let text = lock.to_toml();
    assert!(text.contains("depends = [\"libc\", \"libpq\"]\n"), "{text}");
    assert!(
        text.contains("provides = [\"mail-transport-agent\"]\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("provides =").count(),
        1,
        "empty lists are left out"
    );
    assert_eq!(Lock::from_toml(&text, Path::new("x")).unwrap(), lock);
}

fn source(uri: &str, suite: &str, components: &[&str]) -> Source {
    Source {
        uri: uri.into(),
        suite: suite.into(),
        components: components.iter().map(|c| c.to_string()).collect(),
        architectures: Vec::new(),
        signed_by: Vec::new(),
    }
}

#[test]
fn fetch_items_come_from_the_source_serving_the_suite_and_component() {
    let lock = Lock::from_toml(GOLDEN, Path::new("x")).unwrap();
    let app = lock.package("app").unwrap();
    let config = AptConfig {
        sources: vec![
            source("file:/srv/other", "stable", &["contrib"]),
            source("file:/srv/old", "oldstable", &["main"]),
            source("file:/srv/debian", "stable", &["contrib", "main"]),
            source("file:/srv/mirror", "stable", &["main"]),
        ],
        check_valid_until: true,
    };
    let item = app.fetch_item(&config).unwrap();
    assert_eq!(
        item.base_uri, "file:/srv/debian",
        "the first in apt's order"
    );
    assert_eq!(item.filename, "pool/main/app_1.deb");
    assert_eq!(item.sha256.to_string(), app.sha256);
    assert_eq!(item.size, 100);
    assert_eq!(
        app.expected(),
        ExpectedPackage {
            package: "app".into(),
            version: "1".into(),
            architecture: "amd64".into(),
        }
    );

    let config = AptConfig {
        sources: vec![config.sources[0].clone(), config.sources[1].clone()],
        check_valid_until: true,
    };
    let err = app.fetch_item(&config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no apt source serves stable/main, where the lock found app\n  hint: configure that suite and component in /etc/apt/sources.list.d, or the lock came from another deployer with other apt sources"
    );
}

#[test]
fn a_bad_sha256_in_the_lock_is_damage() {
    let mut lock = Lock::from_toml(GOLDEN, Path::new("x")).unwrap();
    lock.packages[0].sha256 = "abc".into();
    let config = AptConfig {
        sources: vec![source("file:/srv/debian", "stable", &["main"])],
        check_valid_until: true,
    };
    let err = lock.packages[0].fetch_item(&config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the lock is damaged: app has a bad sha256: `abc` is not a sha256 digest (64 hex digits)\n  hint: run `ferry lock SITE --update` to resolve the site anew"
    );
}

mod properties {
    use super::*;
    use crate::relation::Alternative;
    use crate::resolve::tests::properties::{universe_lines, NAMES};
    use crate::universe::Candidate;
    use proptest::prelude::*;

    /// Whether one of `packages` meets `alt`, by name or through Provides.
    fn met_by(packages: &[&Candidate], alt: &Alternative) -> bool {
        packages.iter().any(|c| {
            let e = &c.entry;
            (e.name == alt.name && alt.constraint.as_ref().is_none_or(|k| k.admits(&e.version)))
                || e.provides.iter().flat_map(|p| &p.alternatives).any(|p| {
                    p.name == alt.name
                        && match (&alt.constraint, &p.constraint) {
                            (None, _) => true,
                            (Some(k), Some(v)) => k.admits(&v.version),
                            (Some(_), None) => false,
                        }
                })
        })
    }

    proptest! {
        #[test]
        fn each_groups_closure_is_closed_and_round_trips(
            lines in universe_lines(),
            first in 0..8usize,
            second in 0..8usize,
        ) {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let u = universe(&refs);
            let all = roots(&[NAMES[first], NAMES[second]]);
            let Ok(resolution) = resolve(&u, &all) else {
                return Ok(());
            };
            let lock = Lock::from_resolution(&resolution, "amd64");
            let back = Lock::from_toml(&lock.to_toml(), Path::new("x")).unwrap();
            prop_assert_eq!(&back, &lock);
            for p in &lock.packages {
                for d in &p.depends {
                    prop_assert!(lock.package(d).is_some(), "{} → {} is locked", p.name, d);
                    prop_assert_ne!(d, &p.name);
                }
            }
            for group in [&all[..1], &all[1..], &all[..]] {
                let closure = lock.closure_of(group).unwrap();
                let members: Vec<&Candidate> = resolution
                    .packages
                    .iter()
                    .filter(|c| closure.iter().any(|p| p.name == c.entry.name))
                    .collect();
                prop_assert_eq!(members.len(), closure.len(), "a subset of the lock");
                for root in group {
                    let alt = Alternative {
                        name: root.name.clone(),
                        arch_qualifier: None,
                        constraint: root.constraint.clone(),
                        arch_restrictions: Vec::new(),
                        profiles: Vec::new(),
                    };
                    prop_assert!(met_by(&members, &alt), "{} is met", root);
                }
                for c in &members {
                    for rel in c.entry.pre_depends.iter().chain(&c.entry.depends) {
                        prop_assert!(
                            rel.alternatives.iter().any(|a| met_by(&members, a)),
                            "{} of {} is met inside the closure", rel, c.entry.name
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_pinned_provider_outranked_by_another_locked_provider_is_in_no_closure() {
    // `b` is kept by its pin for `v`; `x` then brings `a`, which meets `v` first by
    // name. The closure stays closed, and `b` is locked but reached by no group.
    let u = universe(&["app 1;v, x", "x 1;a", "a 1;;v", "b 1;;v"]);
    let r = roots(&["app"]);
    let pins = BTreeMap::from([("b".to_string(), "1".parse().unwrap())]);
    let lock = Lock::from_resolution(
        &crate::resolve::resolve_pinned(&u, &r, &pins).unwrap(),
        "amd64",
    );
    assert!(lock.package("b").is_some());
    assert_eq!(depends_of(&lock, "app"), ["a", "x"]);
    let names: Vec<&str> = lock
        .closure_of(&r)
        .unwrap()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["a", "app", "x"]);
}

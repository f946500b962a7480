//! A local signed repository built with the real Debian tools (`dpkg-deb`,
//! `apt-ftparchive`, `gpg`), resolved through the crate's verify → parse → resolve
//! → lock path, as `ferry lock` does against a real repository; then each package
//! group's closure and fetch items read back from the lock file alone.

use std::path::PathBuf;
use std::time::SystemTime;

use ferry_debian::fetch::Sha256;
use ferry_debian::lock::{diff, Change, Lock, LockError};
use ferry_debian::release::{Release, ReleaseError};
use ferry_debian::resolve::{resolve, Resolution, ResolveError, Root};
use ferry_debian::sources::AptConfig;
use ferry_debian::system::verified_packages;
use ferry_debian::universe::{Origin, Universe};

mod signed_repo;
use signed_repo::SignedRepo;

/// The repository of these tests: [`PACKAGES`], published.
struct Repo(SignedRepo);

impl std::ops::Deref for Repo {
    type Target = SignedRepo;
    fn deref(&self) -> &SignedRepo {
        &self.0
    }
}

/// `name version arch depends provides`
const PACKAGES: &[[&str; 5]] = &[
    [
        "app",
        "1.0",
        "amd64",
        "libfoo (>= 2), mta | mail-transport-agent, libbar, virt-api (>= 2)",
        "",
    ],
    ["libfoo", "1.0", "amd64", "libbase", ""],
    ["libfoo", "2.0", "amd64", "libbase", ""],
    ["libbar", "1.0", "amd64", "libfoo (>= 1)", ""],
    ["libbase", "1.0", "all", "", ""],
    ["postfix-test", "1.0", "amd64", "", "mail-transport-agent"],
    ["impl-a", "1.0", "amd64", "", "virt-api (= 1)"],
    ["impl-b", "1.0", "amd64", "", "virt-api (= 2.1)"],
    ["top", "1.0", "amd64", "broken", ""],
    ["broken", "1.0", "amd64", "libmissing (>= 3)", ""],
    ["libmissing", "1.0", "amd64", "", ""],
    ["db", "1.0", "amd64", "libfoo, libnone | libc-test", ""],
    ["libc-test", "1.0", "amd64", "", ""],
];

impl Repo {
    fn new() -> Repo {
        let repo = Repo(SignedRepo::new());
        for [name, version, arch, depends, provides] in PACKAGES {
            repo.add_package(name, version, arch, depends, provides);
        }
        repo.publish();
        repo
    }

    /// What `ferry lock` does with a source: verify, pick the index, check, parse.
    fn universe(&self, keyrings: &[PathBuf]) -> Universe {
        let release =
            Release::verify(&self.inrelease(), keyrings, true, SystemTime::now()).unwrap();
        assert_eq!(release.suite.as_deref(), Some("stable"));
        let index = release.index_for("main", "amd64").unwrap();
        assert_eq!(index.path, "main/binary-amd64/Packages.gz");
        let bytes = std::fs::read(self.repo().join("dists/stable").join(&index.path)).unwrap();
        let mut corrupt = bytes.clone();
        corrupt[20] ^= 0xff;
        let err = verified_packages(&release, &index.path, &corrupt).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not match the signed Release"),
            "{err}"
        );
        let entries = verified_packages(&release, &index.path, &bytes).unwrap();
        let mut u = Universe::new("amd64");
        u.add_index(
            &Origin {
                suite: "stable".into(),
                component: "main".into(),
            },
            entries,
        );
        u
    }

    /// The keyrings as apt's configuration names them, read from a sources file.
    fn configured_keyrings(&self) -> Vec<PathBuf> {
        self.config().sources[0].signed_by.clone()
    }

    /// apt's configuration with this repository as its one source.
    fn config(&self) -> AptConfig {
        let sysroot = self.apt_root(&format!("file:{}", self.repo().display()));
        let cfg = AptConfig::read(&sysroot).unwrap();
        assert_eq!(cfg.sources.len(), 1);
        assert_eq!(cfg.sources[0].suite, "stable");
        cfg
    }
}

fn roots(names: &[&str]) -> Vec<Root> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

fn versions(r: &Resolution) -> Vec<String> {
    r.packages
        .iter()
        .map(|c| format!("{} {}", c.entry.name, c.entry.version))
        .collect()
}

#[test]
fn local_signed_repository_resolves_and_locks() {
    let repo = Repo::new();
    let keyrings = repo.configured_keyrings();
    assert_eq!(
        keyrings,
        [repo
            .root()
            .join("sysroot/usr/share/keyrings/ferry-test.gpg")]
    );
    let u = repo.universe(&keyrings);
    let closure = resolve(&u, &roots(&["app"])).unwrap();
    // libfoo: the highest satisfying of two versions; mail-transport-agent and
    // virt-api (>= 2) through (versioned) Provides; libbar's libfoo (>= 1) is met by
    // the libfoo already chosen.
    assert_eq!(
        versions(&closure),
        [
            "app 1.0",
            "impl-b 1.0",
            "libbar 1.0",
            "libbase 1.0",
            "libfoo 2.0",
            "postfix-test 1.0"
        ]
    );
    let deb = repo.repo().join(&closure.packages[4].entry.filename);
    let digest = ferry_debian::release::sha256_hex(&std::fs::read(&deb).unwrap());
    assert_eq!(
        digest, closure.packages[4].entry.sha256,
        "the index's sha256 is the .deb's"
    );

    let lock_path = repo.root().join("site.lock");
    let lock = Lock::resolve(&u, &roots(&["app"])).unwrap();
    lock.write(&lock_path).unwrap();
    let text = std::fs::read_to_string(&lock_path).unwrap();
    assert!(
        text.contains("filename = \"pool/main/libfoo_2.0_amd64.deb\""),
        "{text}"
    );
    assert!(
        !text.contains("file:/") && !text.contains(&repo.repo().display().to_string()),
        "no repository location in the lock:\n{text}"
    );
    assert!(Lock::read(&lock_path)
        .unwrap()
        .is_current_for(&roots(&["app"])));
    let read = Lock::read(&lock_path).unwrap();
    let depends = |name: &str| read.package(name).unwrap().depends.clone();
    assert_eq!(
        depends("app"),
        ["impl-b", "libbar", "libfoo", "postfix-test"],
        "virtual dependencies name their locked providers"
    );
    assert_eq!(depends("libbar"), ["libfoo"]);
    assert_eq!(depends("libfoo"), ["libbase"]);
    assert!(depends("libbase").is_empty() && depends("impl-b").is_empty());
    assert_eq!(
        read.package("impl-b").unwrap().provides,
        ["virt-api"],
        "provided names without their versions"
    );

    // Publish libfoo 3.0 and a new libbar; update only libfoo.
    repo.add_package("libfoo", "3.0", "amd64", "libbase", "");
    repo.add_package("libbar", "1.1", "amd64", "libfoo (>= 1)", "");
    repo.publish();
    let u2 = repo.universe(&keyrings);
    let updated = lock.update(&u2, &roots(&["app"]), &["libfoo"]).unwrap();
    let changes: Vec<String> = diff(&lock, &updated)
        .iter()
        .map(Change::to_string)
        .collect();
    assert_eq!(changes, ["libfoo 2.0 → 3.0"]);
    let all = lock.update(&u2, &roots(&["app"]), &[]).unwrap();
    let changes: Vec<String> = diff(&lock, &all).iter().map(Change::to_string).collect();
    assert_eq!(changes, ["libbar 1.0 → 1.1", "libfoo 2.0 → 3.0"]);
}

#[test]
fn local_repository_errors_are_clear() {
    let repo = Repo::new();
    let u = repo.universe(&[repo.keyring()]);
    let unknown = resolve(&u, &roots(&["libfo"])).unwrap_err();
    assert!(matches!(unknown, ResolveError::UnknownPackage { .. }));
    insta::assert_snapshot!("unknown_package", unknown.to_string());
    let chain = resolve(&u, &roots(&["top"])).unwrap_err();
    insta::assert_snapshot!("unsatisfiable_chain", chain.to_string());
}

#[test]
fn tampered_or_foreign_signatures_are_refused() {
    let repo = Repo::new();
    let good = repo.inrelease();
    let at = good
        .windows(13)
        .position(|w| w == b"Suite: stable")
        .unwrap()
        + 12;
    let mut tampered = good.clone();
    tampered[at] ^= 0x01;
    let err = Release::verify(&tampered, &[repo.keyring()], true, SystemTime::now()).unwrap_err();
    assert!(matches!(err, ReleaseError::BadSignature), "{err}");
    assert_eq!(
        err.to_string(),
        "bad signature on InRelease: the file was changed after signing"
    );

    let other = repo.root().join("other.gpg");
    std::fs::write(&other, b"").unwrap();
    let err = Release::verify(&good, &[other], true, SystemTime::now()).unwrap_err();
    assert!(matches!(err, ReleaseError::NoKey { .. }), "{err}");

    let err = Release::verify(
        &good,
        &[repo.root().join("absent.gpg")],
        true,
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(matches!(err, ReleaseError::NoKeyring(_)), "{err}");
    Release::verify(&good, &[repo.keyring()], true, SystemTime::now()).unwrap();
}

fn names(closure: &[&ferry_debian::lock::LockedPackage]) -> Vec<String> {
    closure
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect()
}

#[test]
fn each_group_gets_its_closure_from_the_lock_file_alone() {
    let repo = Repo::new();
    let config = repo.config();
    let u = repo.universe(&config.sources[0].signed_by);
    // Two groups, resolved together: `db` and `app` share libfoo and libbase.
    let site = roots(&["db", "app", "mail-transport-agent"]);
    let lock_path = repo.root().join("site.lock");
    Lock::resolve(&u, &site).unwrap().write(&lock_path).unwrap();
    drop(u);

    let lock = Lock::read(&lock_path).unwrap();
    assert_eq!(
        lock.package("db").unwrap().depends,
        ["libc-test", "libfoo"],
        "the alternative that exists"
    );
    let db = lock.closure_of(&roots(&["db"])).unwrap();
    assert_eq!(
        names(&db),
        ["db 1.0", "libbase 1.0", "libc-test 1.0", "libfoo 2.0"]
    );
    assert_eq!(
        names(&lock.closure_of(&roots(&["app"])).unwrap()),
        [
            "app 1.0",
            "impl-b 1.0",
            "libbar 1.0",
            "libbase 1.0",
            "libfoo 2.0",
            "postfix-test 1.0"
        ]
    );
    assert_eq!(
        names(&lock.closure_of(&roots(&["mail-transport-agent"])).unwrap()),
        ["postfix-test 1.0"],
        "a virtual root is met by its locked provider"
    );
    assert_eq!(
        names(&lock.closure_of(&roots(&["libfoo (>= 2)"])).unwrap()),
        ["libbase 1.0", "libfoo 2.0"]
    );
    let stale = lock.closure_of(&roots(&["libfoo (>= 3)"])).unwrap_err();
    assert!(matches!(stale, LockError::StaleRoot { .. }), "{stale}");

    // Each .deb is found again through apt's configuration, and its bytes are the lock's.
    for p in &db {
        let item = p.fetch_item(&config).unwrap();
        assert_eq!(item.base_uri, config.sources[0].uri);
        let path = repo.repo().join(&item.filename);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(Sha256::of(&bytes), item.sha256, "{}", p.name);
        assert_eq!(bytes.len() as u64, item.size);
    }
}

//! Resolves postgresql-15's closure from this machine's real apt configuration and
//! lists, with every InRelease verified against the real keyrings. Needs
//! `apt-get update` to have run (scripts/setup.sh does).

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use ferry_debian::lock::Lock;
use ferry_debian::resolve::{resolve, Root};
use ferry_debian::sources::AptConfig;
use ferry_debian::system::{load_universe, APT_LISTS};

#[test]
fn resolves_postgresql_15_from_the_machines_apt_lists() {
    let config = AptConfig::read(Path::new("/")).expect("read /etc/apt");
    assert!(!config.sources.is_empty(), "this machine has apt sources");
    let loaded = load_universe(&config, Path::new(APT_LISTS), "amd64", SystemTime::now())
        .expect("verified indexes");
    assert!(
        loaded.universe.len() > 10_000,
        "apt lists hold Debian's main archive (run `apt-get update`); skipped: {:?}",
        loaded.skipped
    );
    let roots: Vec<Root> = vec!["postgresql-15".parse().unwrap()];
    let closure = resolve(&loaded.universe, &roots).expect("postgresql-15 resolves");
    let names: Vec<&str> = closure
        .packages
        .iter()
        .map(|c| c.entry.name.as_str())
        .collect();
    for needed in ["postgresql-15", "libc6", "libpq5"] {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
    for c in &closure.packages {
        assert_eq!(c.entry.sha256.len(), 64, "{} has a sha256", c.entry.name);
        assert!(
            c.entry.filename.starts_with("pool/"),
            "{}",
            c.entry.filename
        );
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "the closure is sorted by name");
    let ours: Vec<String> = closure
        .packages
        .iter()
        .map(|c| format!("{} {}", c.entry.name, c.entry.version))
        .collect();
    assert_eq!(
        ours,
        apt_from_scratch("postgresql-15"),
        "apt picks the same closure"
    );

    // The lock alone gives the same closure back, and apt's sources serve each .deb.
    let lock = Lock::from_resolution(&closure, "amd64");
    let from_lock: Vec<String> = lock
        .closure_of(&roots)
        .expect("the lock's edges are closed")
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    assert_eq!(from_lock, ours, "the lock's edges reach the whole closure");
    assert!(
        !lock.package("postgresql-15").unwrap().depends.is_empty(),
        "postgresql-15 has recorded dependencies"
    );
    for p in &lock.packages {
        p.fetch_item(&config)
            .expect("a configured source serves it");
    }
}

/// What apt would install on a machine with nothing installed: a simulated
/// `apt-get install --no-install-recommends` against an empty dpkg status.
fn apt_from_scratch(package: &str) -> Vec<String> {
    let out = Command::new("apt-get")
        .args([
            "-s",
            "-o",
            "Dir::State::status=/dev/null",
            "-o",
            "Debug::NoLocking=1",
        ])
        .args(["install", "--no-install-recommends", package])
        .output()
        .expect("apt-get runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next().unwrap_or_default();
            let version = w.next().unwrap_or_default().trim_start_matches('(');
            format!("{name} {version}")
        })
        .collect();
    lines.sort();
    lines
}

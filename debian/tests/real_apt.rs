//! Resolves postgresql-15's closure from this machine's real apt configuration and
//! lists, with every InRelease verified against the real keyrings. Needs
//! `apt-get update` to have run (scripts/setup.sh does).

use std::path::Path;
use std::time::SystemTime;

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
    // apt's own answer has 92 packages with Recommends off (shared/FACTS.md); ours
    // picks the same way, so it is of that order.
    assert!((40..200).contains(&names.len()), "{} packages", names.len());
}

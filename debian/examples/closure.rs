//! Resolves, fetches and unpacks the closure of some Debian packages into a
//! store, the way a ferry build will: the driver of `benches/debian-closure.sh`.
//!
//! `closure --cache DIR --store DIR --state DIR PACKAGE…` reads this
//! machine's apt configuration and lists, resolves the roots, fetches every
//! `.deb` (verified against the signed indexes' sha256) into the cache,
//! and adds each as one store object while the other downloads go on
//! (`object::fetch_and_add`, as a build does). It prints `name=version` per
//! package on stdout and where the time went on stderr.
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use ferry_debian::fetch::{Fetcher, NoProgress};
use ferry_debian::lock::Lock;
use ferry_debian::object::{default_unpack_jobs, fetch_and_add, WantedDeb};
use ferry_debian::resolve::Root;
use ferry_debian::sources::AptConfig;
use ferry_debian::system::{load_universe, APT_LISTS};
use ferry_store::Store;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (mut cache, mut store_dir, mut state_dir, mut roots) = (None, None, None, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cache" => cache = args.next().map(PathBuf::from),
            "--store" => store_dir = args.next().map(PathBuf::from),
            "--state" => state_dir = args.next().map(PathBuf::from),
            name => roots.push(name.parse::<Root>()?),
        }
    }
    let (Some(cache), Some(store_dir), Some(state_dir)) = (cache, store_dir, state_dir) else {
        return Err("usage: closure --cache DIR --store DIR --state DIR PACKAGE…".into());
    };

    let started = Instant::now();
    let config = AptConfig::read(std::path::Path::new("/"))?;
    let system = load_universe(
        &config,
        std::path::Path::new(APT_LISTS),
        "amd64",
        SystemTime::now(),
    )?;
    let loaded = started.elapsed();
    let lock = Lock::resolve(&system.universe, &roots)?;
    let resolved = started.elapsed();

    // As a build does: the group's closure and its fetch items from the lock alone.
    let closure = lock.closure_of(&roots)?;
    let debs = closure
        .iter()
        .map(|p| {
            Ok(WantedDeb {
                item: p.fetch_item(&config)?,
                expected: p.expected(),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let store = Store::open(&store_dir, &state_dir)?;
    let scratch = state_dir.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let fetcher = Fetcher::new(&cache)?;
    fetch_and_add(
        &store,
        &fetcher,
        &debs,
        &scratch,
        default_unpack_jobs(),
        &NoProgress,
    )?;
    for package in &closure {
        println!("{}={}", package.name, package.version);
    }
    let added = started.elapsed();
    let bytes: u64 = closure.iter().map(|p| p.size).sum();
    eprintln!(
        "{} packages, {:.1} MB of .debs: indexes {:.2} s, resolve {:.3} s, fetch+unpack+add {:.2} s",
        closure.len(),
        bytes as f64 / 1e6,
        loaded.as_secs_f64(),
        (resolved - loaded).as_secs_f64(),
        (added - resolved).as_secs_f64(),
    );
    Ok(())
}

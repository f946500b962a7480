//! Generations on disk: numbering, atomic switches that readers never see
//! half-done, listing, trimming (never the current one) and the host lock.
use crate::activate_support;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use activate_support::Host;
use ferry::activate::generations::{GenerationError, HostLock, Profiles};

fn systems(host: &Host, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = host.store.join(format!("{i:032}-system-web"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("manifest.json"), format!("{i}")).unwrap();
            dir
        })
        .collect()
}

#[test]
fn register_switch_list_and_trim() {
    let host = Host::new();
    let profiles = Profiles::open(&host.state).unwrap();
    let s = systems(&host, 4);
    assert_eq!(profiles.current().unwrap(), None);
    for (i, system) in s.iter().enumerate() {
        assert_eq!(profiles.register(system).unwrap(), i as u64 + 1);
    }
    assert_eq!(
        profiles.current().unwrap(),
        None,
        "registering does not switch"
    );
    profiles.switch_to(2).unwrap();
    assert_eq!(profiles.current().unwrap(), Some(2));
    assert_eq!(
        fs::read_link(host.state.join("profiles/system")).unwrap(),
        PathBuf::from("system-2-link")
    );
    let list = profiles.list().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[1].system, s[1]);
    assert!(list[1].current && !list[0].current);
    assert!(list[0].date <= SystemTime::now());

    assert!(matches!(
        profiles.delete(2),
        Err(GenerationError::DeleteCurrent { number: 2 })
    ));
    assert!(matches!(
        profiles.switch_to(7),
        Err(GenerationError::Missing { number: 7 })
    ));
    // Keep the newest one: 1 and 3 go, 2 stays because it is current.
    assert_eq!(profiles.keep_newest(1).unwrap(), vec![1, 3]);
    assert_eq!(profiles.numbers().unwrap(), vec![2, 4]);
    assert_eq!(
        profiles.register(&s[0]).unwrap(),
        5,
        "numbers are never reused"
    );
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(profiles.delete_older_than(future).unwrap(), vec![4, 5]);
    assert_eq!(profiles.numbers().unwrap(), vec![2]);
    // No temporary link is ever left behind.
    let names: Vec<String> = fs::read_dir(profiles.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
}

#[test]
fn readers_never_see_a_missing_or_dangling_system_link_during_switches() {
    let host = Host::new();
    let profiles = Profiles::open(&host.state).unwrap();
    let s = systems(&host, 3);
    for system in &s {
        profiles.register(system).unwrap();
    }
    profiles.switch_to(1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let link = host.state.join("profiles/system");
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, reads, link, allowed) =
                (stop.clone(), reads.clone(), link.clone(), s.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let resolved = fs::canonicalize(&link)
                        .unwrap_or_else(|e| panic!("system link missing or dangling: {e}"));
                    assert!(allowed.contains(&resolved), "{}", resolved.display());
                    fs::read(resolved.join("manifest.json")).expect("readable through the link");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for i in 0..600u64 {
        profiles.switch_to(i % 3 + 1).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("reader saw a broken link");
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(profiles.current().unwrap(), Some(599 % 3 + 1));
}

#[test]
fn the_host_lock_is_exclusive_and_released_on_drop() {
    let host = Host::new();
    let held = HostLock::acquire(&host.state).unwrap();
    assert!(HostLock::try_acquire(&host.state).unwrap().is_none());
    drop(held);
    assert!(HostLock::try_acquire(&host.state).unwrap().is_some());
}

#[test]
fn a_corrupt_system_link_is_reported_not_guessed() {
    let host = Host::new();
    let profiles = Profiles::open(&host.state).unwrap();
    std::os::unix::fs::symlink("/etc", host.state.join("profiles/system")).unwrap();
    let err = profiles.current().unwrap_err().to_string();
    assert!(err.contains("which is not a generation link"), "{err}");
}

//! An incremental import raises the descriptor limit while it holds unnamed files open, and
//! puts it back afterwards: services and hooks started later by the same process (the agent)
//! must get the limit they would have had. Its own test binary, so no other test's import
//! runs in this process at the same time.
use ferry_store::{ImportMode, Store};

fn soft_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: fills a local struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

#[test]
fn an_incremental_import_gives_back_the_descriptor_limit_it_raised() {
    let mut limit = soft_limit();
    if limit.rlim_max > 1024 {
        // Start below the hard limit, so that the import has something to raise.
        limit.rlim_cur = 1024;
        // SAFETY: sets the process's own soft limit from a local struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    }
    let before = soft_limit();

    let root = tempfile::tempdir().unwrap();
    let source = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let paths: Vec<_> = (0..20)
        .map(|i| {
            source
                .add_bytes(&format!("f{i}"), &[i as u8], false, &[])
                .unwrap()
        })
        .collect();
    let mut archive = Vec::new();
    source.export_closure(&paths, &mut archive).unwrap();
    drop(source);
    let old = tempfile::tempdir().unwrap();
    std::fs::rename(root.path().join("store"), old.path().join("store")).unwrap();
    let target = Store::open(&root.path().join("store"), &old.path().join("var")).unwrap();
    let report = target
        .import(archive.as_slice(), ImportMode::Incremental)
        .unwrap();
    assert_eq!(report.registered.len(), 20);

    let after = soft_limit();
    assert_eq!(
        (after.rlim_cur, after.rlim_max),
        (before.rlim_cur, before.rlim_max)
    );
}

//! One test per fixed bug, named after the behaviour it restores.
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The agent bootstrap ran with `umask 077`, so a host's store and state
/// directories came out 0700 and services running as other users could not
/// read their own binaries.
#[test]
fn store_and_state_dirs_are_traversable_under_a_strict_umask() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("ferry/store");
    let state = root.path().join("ferry/var");
    let file = root.path().join("hello");
    std::fs::write(&file, "hi").unwrap();
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "umask 077 && exec \"$0\" store add {}",
            file.display()
        ))
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_STORE_DIR", &store)
        .env("FERRY_STATE_DIR", &state)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(mode(&store), 0o755);
    assert_eq!(mode(&state), 0o755);
}

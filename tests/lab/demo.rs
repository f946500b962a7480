//! The README's first command, run for real: `scripts/demo.sh` on a lab of
//! four hosts with real sshd, PostgreSQL and the web app. Needs root (CI is root).
use std::process::Command;

#[test]
fn the_readme_demo_runs_every_step_as_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the demo needs root (CI runs as root)"
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/demo.sh"))
        .env("FERRY", env!("CARGO_BIN_EXE_ferry"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Whatever happened, leave no lab behind.
    let _ = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["lab", "down", &format!("{root}/sites/demo")])
        .status();
    assert!(
        out.status.success(),
        "demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for expected in [
        "== 1. deploy release 1",
        "(release 1): visit",
        "web.app → db.postgres",
        "== 3. upgrade to release 2",
        "schema migrated: visits.served_by exists",
        "rollout stopped: canary failed on web1",
        "== 5. site-wide rollback",
        "still in the database after the rollback",
        "== done",
    ] {
        assert!(
            stdout.contains(expected),
            "demo output lacks `{expected}`\n{stdout}"
        );
    }
    // After the rollback every web host answers with release 1 again.
    let last_step = stdout.rsplit("== 5.").next().unwrap();
    assert_eq!(
        last_step.matches("(release 1): visit").count(),
        3,
        "{last_step}"
    );
}

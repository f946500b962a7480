//! `ferry store …` and `ferry gc` through the real binary: results, exit codes, and the exact
//! text of every error a user can hit (insta snapshots).
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    /// A root of fixed length under /tmp, so miette wraps messages the same way every run.
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("ferry-cli-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_path_buf();
        Sandbox { _dir: dir, root }
    }

    fn ferry(&self, args: &[&str]) -> Command {
        self.ferry_with_state(&self.root.join("var"), args)
    }

    fn ferry_with_state(&self, state_dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .env("NO_COLOR", "1")
            .env_remove("FERRY_STORE_DIR")
            .env_remove("FERRY_STATE_DIR")
            .arg("--store-dir")
            .arg(self.root.join("store"))
            .arg("--state-dir")
            .arg(state_dir)
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.ferry(args).stdin(Stdio::null()).output().unwrap()
    }

    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        self.run_with_state_and_input(&self.root.join("var"), args, input)
    }

    fn run_with_state_and_input(&self, state_dir: &Path, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .ferry_with_state(state_dir, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Replaces the sandbox root and every store hash so snapshots are stable.
    fn redact(&self, text: &[u8]) -> String {
        let text = String::from_utf8_lossy(text).replace(self.root.to_str().unwrap(), "[ROOT]");
        redact_hashes(&text)
    }

    fn add_tree(&self) -> String {
        let tree = self.root.join("tree");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
        let output = self.run(&["store", "add", tree.to_str().unwrap(), "--name", "hello"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }
}

/// `/<32 base32 chars>-` → `/[HASH]-`.
fn redact_hashes(text: &str) -> String {
    const ALPHABET: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'/'
            && i + 34 <= bytes.len()
            && bytes[i + 33] == b'-'
            && bytes[i + 1..i + 33]
                .iter()
                .all(|b| ALPHABET.as_bytes().contains(b))
        {
            out.push_str("/[HASH]-");
            i += 34;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

#[test]
fn add_then_path_info_prints_the_path_and_its_metadata() {
    let sandbox = Sandbox::new();
    let path = sandbox.add_tree();
    assert!(
        path.starts_with(&format!("{}/store/", sandbox.root.display())) && path.ends_with("-hello")
    );
    let output = sandbox.run(&["store", "path-info", &path]);
    assert_eq!(code(&output), 0);
    let text = sandbox.redact(&output.stdout);
    let text: String = text
        .lines()
        .filter(|l| !l.contains("registered:"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("path_info_plain", text);
    let output = sandbox.run(&["store", "path-info", "--json", &path]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["path"], path.as_str());
    assert_eq!(json[0]["references"], serde_json::json!([]));
}

#[test]
fn add_of_a_missing_path_is_bad_input() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["store", "add", "/nonexistent/thing"]);
    assert_eq!(code(&output), 2);
    insta::assert_snapshot!("add_missing", sandbox.redact(&output.stderr));
}

#[test]
fn add_with_a_bad_name_is_bad_input() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.root.join("file"), b"x").unwrap();
    let output = sandbox.run(&[
        "store",
        "add",
        sandbox.root.join("file").to_str().unwrap(),
        "--name",
        "no spaces/please",
    ]);
    assert_eq!(code(&output), 2);
    insta::assert_snapshot!("add_bad_name", sandbox.redact(&output.stderr));
}

#[test]
fn path_info_of_garbage_is_bad_input() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["store", "path-info", "hello"]);
    assert_eq!(code(&output), 2);
    insta::assert_snapshot!("path_info_garbage", sandbox.redact(&output.stderr));
}

#[test]
fn path_info_of_another_store_is_bad_input() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[
        "store",
        "path-info",
        "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello",
    ]);
    assert_eq!(code(&output), 2);
    insta::assert_snapshot!("path_info_other_store", sandbox.redact(&output.stderr));
}

#[test]
fn path_info_of_an_invalid_path_is_bad_input() {
    let sandbox = Sandbox::new();
    let missing = format!(
        "{}/store/0123456789abcdfghijklmnpqrsvwxyz-hello",
        sandbox.root.display()
    );
    let output = sandbox.run(&["store", "path-info", &missing]);
    assert_eq!(code(&output), 2);
    insta::assert_snapshot!("path_info_invalid", sandbox.redact(&output.stderr));
}

#[test]
fn import_of_garbage_is_bad_input_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let output = sandbox.run_with_input(&["store", "import"], b"this is not an archive");
    assert_eq!(code(&output), 2);
    insta::assert_snapshot!("import_garbage", sandbox.redact(&output.stderr));
}

#[test]
fn export_then_import_into_a_fresh_store_through_the_binary() {
    let sandbox = Sandbox::new();
    let path = sandbox.add_tree();
    let exported = sandbox.run(&["store", "export", &path]);
    assert_eq!(
        code(&exported),
        0,
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(exported.stdout.starts_with(b"FERRYARC"));

    // Truncated: refused with exit 2.
    let cut = &exported.stdout[..exported.stdout.len() - 20];
    let fresh = Sandbox::new();
    // Same store dir text is needed: move the first store away and reuse its directory.
    std::fs::rename(sandbox.root.join("store"), sandbox.root.join("old-store")).unwrap();
    let output =
        sandbox.run_with_state_and_input(&fresh.root.join("var"), &["store", "import"], cut);
    assert_eq!(code(&output), 2);
    insta::assert_snapshot!(
        "import_truncated",
        redact_hashes(&String::from_utf8_lossy(&output.stderr))
    );

    let output = sandbox.run_with_state_and_input(
        &fresh.root.join("var"),
        &["store", "import"],
        &exported.stdout,
    );
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), path);
    assert_eq!(
        std::fs::read(Path::new(&path).join("bin/hello")).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );
}

#[test]
fn verify_reports_corruption_with_exit_1_and_repair_quarantines() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let path = sandbox.add_tree();
    assert_eq!(code(&sandbox.run(&["store", "verify"])), 0);
    let file = Path::new(&path).join("bin/hello");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&file, b"evil").unwrap();
    let output = sandbox.run(&["store", "verify"]);
    assert_eq!(code(&output), 1);
    insta::assert_snapshot!("verify_corrupt_stdout", sandbox.redact(&output.stdout));
    insta::assert_snapshot!("verify_corrupt_stderr", sandbox.redact(&output.stderr));
    let output = sandbox.run(&["store", "verify", "--repair"]);
    assert_eq!(code(&output), 1);
    assert!(String::from_utf8_lossy(&output.stdout).contains("quarantined: "));
    assert_eq!(code(&sandbox.run(&["store", "verify"])), 0);
    assert!(!Path::new(&path).exists());
}

#[test]
fn gc_deletes_unrooted_paths_and_dry_run_only_reports() {
    let sandbox = Sandbox::new();
    let path = sandbox.add_tree();
    let output = sandbox.run(&["gc", "--dry-run"]);
    assert_eq!(code(&output), 0);
    insta::assert_snapshot!("gc_dry_run", sandbox.redact(&output.stdout));
    assert!(Path::new(&path).exists());
    let output = sandbox.run(&["gc"]);
    assert_eq!(code(&output), 0);
    assert!(!Path::new(&path).exists());
}

#[test]
fn bad_keep_generations_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["gc", "--keep-generations", "many"]);
    assert_eq!(code(&output), 2);
}

/// Needs root (to drop to `nobody`): an unprivileged user can run a private store, including
/// moving sealed (0555) directories into place, quarantining and collecting them.
#[test]
fn unprivileged_user_runs_a_private_store_needs_root() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    std::fs::set_permissions(&sandbox.root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let tree = sandbox.root.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), b"data").unwrap();
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_ferry"))
            .arg("--store-dir")
            .arg(sandbox.root.join("store"))
            .arg("--state-dir")
            .arg(sandbox.root.join("var"))
            .args(args)
            .output()
            .unwrap()
    };
    let added = as_nobody(&["store", "add", tree.to_str().unwrap(), "--name", "mine"]);
    assert_eq!(
        code(&added),
        0,
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let path = String::from_utf8(added.stdout).unwrap().trim().to_string();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o555
    );
    let exported = as_nobody(&["store", "export", &path]);
    assert_eq!(code(&exported), 0);
    let collected = as_nobody(&["gc"]);
    assert_eq!(
        code(&collected),
        0,
        "{}",
        String::from_utf8_lossy(&collected.stderr)
    );
    assert!(!Path::new(&path).exists());
}

#[test]
fn path_info_follows_links_and_paths_into_the_store() {
    let sandbox = Sandbox::new();
    let path = sandbox.add_tree();
    let link = sandbox.root.join("result");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    for argument in [
        link.to_str().unwrap().to_string(),
        format!("{path}/bin/hello"),
    ] {
        let output = sandbox.run(&["store", "path-info", &argument]);
        assert_eq!(
            code(&output),
            0,
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap().lines().next(),
            Some(path.as_str())
        );
    }
}

/// `ferry copy` checks all its paths (often a whole closure) in one query, and names the first
/// one that is not valid, before connecting to any host.
#[test]
fn copy_of_a_path_that_is_not_valid_is_bad_input_and_names_it() {
    let sandbox = Sandbox::new();
    let valid = sandbox.add_tree();
    let missing = format!(
        "{}/store/0123456789abcdfghijklmnpqrsvwxyz-hello",
        sandbox.root.display()
    );
    let output = sandbox.run(&[
        "copy",
        "--to",
        "no-such-host.invalid",
        "--",
        &valid,
        &missing,
    ]);
    assert_eq!(code(&output), 2);
    let raw = String::from_utf8_lossy(&output.stderr);
    assert!(
        raw.contains("0123456789abcdfghijklmnpqrsvwxyz-hello"),
        "{raw}"
    );
    insta::assert_snapshot!("copy_invalid_path", sandbox.redact(&output.stderr));
}

/// The documented order `ferry copy --to HOST PATH…` works: `--to` takes
/// one host (or a comma-separated list) and leaves the paths alone.
#[test]
fn copy_to_a_host_then_paths_reads_the_paths_as_paths() {
    let sandbox = Sandbox::new();
    let valid = sandbox.add_tree();
    let missing = format!(
        "{}/store/0123456789abcdfghijklmnpqrsvwxyz-hello",
        sandbox.root.display()
    );
    for to in ["no-such-host.invalid", "a.invalid,b.invalid"] {
        let output = sandbox.run(&["copy", "--to", to, &valid, &missing]);
        let raw = String::from_utf8_lossy(&output.stderr);
        assert_eq!(code(&output), 2, "{raw}");
        // The paths were read as paths: the missing one is named as not valid.
        assert!(
            raw.contains("0123456789abcdfghijklmnpqrsvwxyz-hello") && !raw.contains("required"),
            "{raw}"
        );
    }
}

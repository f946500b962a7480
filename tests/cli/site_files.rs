//! Every `.conf` under `sites/`, `examples/` and `host-classes/` passes `ferry check`.
//!
//! All of them are checked as site roots: a library file (host-classes/*.conf,
//! examples/environments/classes.conf) evaluates as a site without an
//! inventory, so its classes are assembled and checked with no hosts. Library
//! functions are checked where a site or example calls them (the demo and the
//! examples call every function of the library).
use std::path::{Path, PathBuf};
use std::process::Command;

fn conf_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["sites", "examples", "host-classes"] {
        for entry in walkdir::WalkDir::new(root.join(dir)) {
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|e| e == "conf") {
                files.push(entry.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_site_example_and_library_file_checks_clean() {
    let files = conf_files();
    assert!(files.len() >= 10, "found only {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .arg("check")
            .arg(file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !stdout.starts_with("ok: ") {
            failures.push(format!(
                "{}:\n{}{}",
                file.display(),
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

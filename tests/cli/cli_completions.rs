//! `ferry completions SHELL` and `ferry man` run the real binary and describe the real command line.
use std::process::{Command, Output};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("ferry runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = ferry(args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn bash_completions_offer_the_subcommands_and_global_options() {
    let script = stdout_of(&["completions", "bash"]);
    assert!(
        script.contains("_ferry()"),
        "not a bash completion function:\n{script}"
    );
    assert!(script.contains("complete -F _ferry"));
    for word in ["completions", "man", "--store-dir", "--state-dir"] {
        assert!(script.contains(word), "bash completions lack `{word}`");
    }
    // The completed shell names come from the same definition.
    assert!(script.contains("bash") && script.contains("zsh") && script.contains("fish"));
}

#[test]
fn completions_exist_for_every_supported_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains("completions"),
            "{shell} script lacks the `completions` subcommand"
        );
    }
}

#[test]
fn bash_completion_script_is_valid_bash() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.bash");
    std::fs::write(&path, script).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn man_page_is_roff_and_lists_the_subcommands() {
    let page = stdout_of(&["man"]);
    assert!(
        page.contains(".TH ferry 1"),
        "not a ferry(1) roff page:\n{page}"
    );
    let subcommands = page
        .split(".SH SUBCOMMANDS")
        .nth(1)
        .expect("a SUBCOMMANDS section");
    assert!(
        subcommands.contains("ferry\\-completions(1)"),
        "{subcommands}"
    );
    assert!(subcommands.contains("ferry\\-man(1)"), "{subcommands}");
    assert!(
        page.contains("\\-\\-store\\-dir"),
        "global options missing from the man page"
    );
    let exit_status = page
        .split(".SH \"EXIT STATUS\"")
        .nth(1)
        .expect("an EXIT STATUS section");
    for code in ["\\fB0\\fR", "\\fB1\\fR", "\\fB2\\fR", "\\fB3\\fR"] {
        assert!(exit_status.contains(code), "{exit_status}");
    }
}

#[test]
fn man_out_dir_writes_the_pages_ferry_1_refers_to() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let listed = stdout_of(&["man", "--out-dir", out.to_str().unwrap()]);
    let listed: Vec<&str> = listed.lines().collect();
    let mut expected = vec!["ferry.1".to_string()];
    collect_pages(
        &<ferry::cli::Cli as clap::CommandFactory>::command(),
        "ferry",
        &mut expected,
    );
    let mut expected: Vec<String> = expected
        .iter()
        .map(|name| out.join(name).display().to_string())
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    for page in &listed {
        let text = std::fs::read_to_string(page).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH "),
            "{page} is not a man page"
        );
    }
    let completions = std::fs::read_to_string(out.join("ferry-completions.1")).unwrap();
    assert!(
        completions.contains(".TH ferry-completions 1"),
        "{completions}"
    );
    assert!(completions.contains("powershell"));
    let deploy = std::fs::read_to_string(out.join("ferry-deploy.1")).unwrap();
    assert!(deploy.contains(".SH \"EXIT STATUS\""), "{deploy}");
}

#[test]
fn unknown_shell_is_bad_usage() {
    let out = ferry(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
    assert!(stderr.contains("possible values: bash"), "{stderr}");
}

/// One page per visible subcommand, named like `ferry-store-add.1`.
fn collect_pages(command: &clap::Command, prefix: &str, pages: &mut Vec<String>) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix}-{}", sub.get_name());
        pages.push(format!("{name}.1"));
        collect_pages(sub, &name, pages);
    }
}

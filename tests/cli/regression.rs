//! One test per fixed bug, named after the behaviour it restores.
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// `ferry VERB DIR ARGS…` on the site in `dir`, with a store and state of
/// its own there and no terminal on stdin.
fn ferry_on_site(dir: &std::path::Path, verb: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([verb, dir.to_str().unwrap()])
        .args(args)
        .env("FERRY_STORE_DIR", dir.join("store"))
        .env("FERRY_STATE_DIR", dir.join("var"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

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

/// Without a terminal and without `--yes`, a deploy whose policy pauses for
/// confirmation switched the canary, then stopped at the first pause nobody
/// could answer (exit 1). It is refused before any host is contacted.
#[test]
fn a_deploy_that_would_pause_for_an_answer_nobody_can_give_is_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        r#"site = "paused"
class web { service app { exec = "sleep 1000" } }
inventory = file("hosts.toml")
rollout { canary = 1, batch = 1, pause = confirm }
"#,
    )
    .unwrap();
    // Documentation addresses (RFC 5737): nothing answers there.
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"w1\"\nclass = \"web\"\naddress = \"192.0.2.31\"\n\n[[host]]\nname = \"w2\"\nclass = \"web\"\naddress = \"192.0.2.32\"\n",
    )
    .unwrap();
    let out = ferry_on_site(dir.path(), "deploy", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("confirmation between batches") && stderr.contains("--yes"),
        "{stderr}"
    );
    // Nothing was attempted: no host was reached, no site generation recorded.
    assert!(!stderr.contains("unreachable"), "{stderr}");
    assert!(!dir.path().join("var/sites/paused").exists());
}

/// `ferry status` on a lab site whose lab is down tried the lab's addresses
/// through the default route, host by host, and timed out; it says the lab
/// is not running instead.
#[test]
fn status_of_a_lab_site_whose_lab_is_down_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        r#"site = "t-labdown"
class web { service app { exec = "sleep 1000" } }
inventory = lab {
  subnet = "10.237.204.0/24"
  hosts = [ { name = "w1", class = web } ]
}
"#,
    )
    .unwrap();
    for verb in ["status", "deploy"] {
        let out = ferry_on_site(dir.path(), verb, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb}: {stderr}");
        assert!(
            stderr.contains("no lab named `t-labdown` is running")
                && stderr.contains("ferry lab up"),
            "{verb}: {stderr}"
        );
        assert!(!stderr.contains("timed out"), "{verb}: {stderr}");
    }
}

/// Why a host could not be reached was printed on stdout only, so a script
/// that keeps stdout (or a terminal that shows only stderr) lost it.
#[test]
fn unreachable_host_reasons_reach_stderr() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        "site = \"t-noreach\"\nclass web { service app { exec = \"sleep 1000\" } }\ninventory = file(\"hosts.toml\")\n",
    )
    .unwrap();
    // A documentation address (RFC 5737): nothing answers there.
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"w1\"\nclass = \"web\"\naddress = \"192.0.2.41\"\n",
    )
    .unwrap();
    let out = ferry_on_site(dir.path(), "status", &["--ssh-option", "ConnectTimeout=1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("w1: unreachable: "), "{stdout}");
    let reason = stdout
        .split("w1: unreachable: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    // miette wraps long lines: compare letters and digits only.
    let letters = |text: &str| -> String { text.chars().filter(|c| c.is_alphanumeric()).collect() };
    assert!(
        !reason.is_empty() && letters(&stderr).contains(&letters(reason)),
        "stderr lacks {reason:?}:\n{stderr}"
    );
}

/// Hosts that could not be reached were dropped from the plan: the policy
/// never counted them, and a class whose services require theirs was
/// deployed anyway (a balancer in front of an unreachable web host). They
/// are failures of their batch now, and nothing past a failed dependency
/// starts.
#[test]
fn an_unreachable_host_counts_as_a_failure_and_holds_back_what_requires_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        r#"site = "t-holdback"
class web { service app { exec = "sleep 1000" } }
class lb { service proxy { exec = "sleep 1000"  requires = [web.app] } }
inventory = file("hosts.toml")
rollout { max_failures = 5, on_failure = stop }
"#,
    )
    .unwrap();
    // Documentation addresses (RFC 5737): nothing answers there.
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"w1\"\nclass = \"web\"\naddress = \"192.0.2.51\"\n\n\
         [[host]]\nname = \"b1\"\nclass = \"lb\"\naddress = \"192.0.2.52\"\n",
    )
    .unwrap();
    let out = ferry_on_site(
        dir.path(),
        "deploy",
        &["--yes", "--json", "--ssh-option", "ConnectTimeout=1"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let done: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no `done` event: {stdout}"));
    let report = &done["report"];
    let w1 = &report["outcome"]["hosts"]["w1"]["result"];
    assert_eq!(w1["result"], "failed", "{report}");
    assert!(
        w1["reason"].as_str().unwrap().starts_with("unreachable: "),
        "{report}"
    );
    assert_eq!(report["outcome"]["untouched"], serde_json::json!(["b1"]));
    assert_eq!(
        report["outcome"]["stopped"],
        "lb requires web, and web host(s) w1 failed: lb is not activated past a failed dependency"
    );
    assert_eq!(report["plan"]["hosts"][1]["name"], "b1", "{report}");
    assert!(
        report["plan"]["hosts"][1]["unreachable"].is_string(),
        "{report}"
    );
}

/// An interpolated secret was built as a path under the default state dir
/// `/ferry/var`, while the agents write secrets under the deployer's
/// `--state-dir`: with another state dir a service read a path that did not
/// exist.
#[test]
fn an_interpolated_secret_names_the_file_under_the_state_dir_the_hosts_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        "site = \"t-secretpath\"\nsecret token { file = \"./token\" }\n\
         class web { service app { exec = \"cat ${token}\" } }\n\
         inventory = file(\"hosts.toml\")\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"w1\"\nclass = \"web\"\naddress = \"192.0.2.61\"\n",
    )
    .unwrap();
    let out = ferry_on_site(dir.path(), "build", &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let system = built["systems"]["web"].as_str().unwrap();
    let manifest = std::fs::read_to_string(std::path::Path::new(system).join("manifest.json"))
        .unwrap_or_else(|e| panic!("{system}/manifest.json: {e}"));
    let wanted = format!("cat {}/var/secrets/token", dir.path().display());
    assert!(manifest.contains(&wanted), "{wanted:?} not in {manifest}");
    assert!(!manifest.contains("/ferry/var"), "{manifest}");
}

/// A missing secret source was found only at the canary's activation, after
/// every closure had been copied. It stops the deploy before anything is
/// copied or recorded now (exit 2, naming the secret, not its value).
#[test]
fn a_missing_secret_source_stops_the_deploy_before_anything_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        "site = \"t-nosecret\"\nsecret token { file = \"./absent\" }\n\
         class web { service app { exec = \"cat ${token}\" } }\n\
         inventory = file(\"hosts.toml\")\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"w1\"\nclass = \"web\"\naddress = \"192.0.2.62\"\n",
    )
    .unwrap();
    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["--yes", "--ssh-option", "ConnectTimeout=1"];
        args.extend_from_slice(extra);
        let out = ferry_on_site(dir.path(), "deploy", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        // miette wraps long lines: compare letters only.
        let letters: String = stderr.chars().filter(|c| c.is_alphanumeric()).collect();
        assert!(
            letters.contains("cannotreadthesecretsofclasswebsecrettoken")
                && letters.contains("nohostwastouched"),
            "{extra:?}: {stderr}"
        );
        assert!(!dir.path().join("var/sites/t-nosecret").exists());
    }
}

/// `closure --tree` showed each class's references only: the service edges
/// across hosts (`lb.proxy requires web.app`), which `--requisites` and
/// `--graph` show, were missing from it.
#[test]
fn closure_tree_shows_the_service_edges_across_hosts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        r#"site = "t-tree"
class web { service app { exec = "sleep 1000" } }
class lb { service proxy { exec = "sleep 1000"  requires = [web.app] } }
inventory = file("hosts.toml")
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"w1\"\nclass = \"web\"\naddress = \"192.0.2.51\"\n\n\
         [[host]]\nname = \"w2\"\nclass = \"web\"\naddress = \"192.0.2.53\"\n\n\
         [[host]]\nname = \"b1\"\nclass = \"lb\"\naddress = \"192.0.2.52\"\n",
    )
    .unwrap();
    let out = ferry_on_site(dir.path(), "closure", &["--requisites", "--tree"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let system_of = |class: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{class}: ")))
            .unwrap_or_else(|| panic!("no tree for {class}: {stdout}"))
            .to_string()
    };
    let (lb, web) = (system_of("lb"), system_of("web"));
    assert!(
        stdout.contains(&format!(
            "  ⇢ lb.proxy needs web.app on web [w1,w2]: {web}\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  ⇠ web.app needed by lb.proxy on lb [b1]: {lb}\n"
        )),
        "{stdout}"
    );
    // Each edge closes the tree of its own class, after that class's paths.
    let lb_tree = stdout.split(&format!("web: {web}")).next().unwrap();
    assert!(lb_tree.contains("⇢ lb.proxy needs"), "{stdout}");
    assert!(!lb_tree.contains("⇠ web.app needed by"), "{stdout}");
}

/// `ferry check .` from inside `examples/load-balancer` failed with "cannot
/// read `host-classes/std.conf`": the lexical normalisation of
/// `../../host-classes/std.conf` relative to `.` collapsed the second `..`.
#[test]
fn check_of_dot_inside_an_example_reads_the_files_it_imports_from_above() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/load-balancer");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["check", "."])
        .current_dir(&example)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--store-dir X` without `--state-dir` wrote X's records into the default
/// state dir's database, mixing two stores. A state dir belongs to one store
/// dir now: the second store is refused (exit 2) with how to pair them.
#[test]
fn a_state_dir_of_another_store_is_refused_on_the_command_line_with_the_pairing_hint() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("hello");
    std::fs::write(&file, "hi").unwrap();
    let add = |store: &str| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["store", "add", file.to_str().unwrap()])
            .env("FERRY_STORE_DIR", root.path().join(store))
            .env("FERRY_STATE_DIR", root.path().join("var"))
            .output()
            .unwrap()
    };
    assert!(add("store-a").status.success());
    let out = add("store-b");
    assert_eq!(out.status.code(), Some(2));
    // The report is wrapped to the terminal's width: compare without spaces.
    let stderr = String::from_utf8_lossy(&out.stderr).replace('│', " ");
    let flat: String = stderr.split_whitespace().collect();
    assert!(
        flat.contains(&format!(
            "belongstothestore{}",
            root.path().join("store-a").display()
        )),
        "names the store it belongs to: {stderr}"
    );
    assert!(
        flat.contains("passboth--store-dirand--state-dir"),
        "{stderr}"
    );
    assert!(!root.path().join("store-b").join("hello").exists());
}

/// `deploy --class nosuch` printed an internal code as its first line; it
/// is bad input named in words, before anything is built or contacted.
#[test]
fn deploy_of_an_unknown_class_is_bad_input_without_an_internal_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        "site = \"t-noclass\"\nclass web { service app { exec = \"sleep 1000\" } }\ninventory = file(\"hosts.toml\")\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"w1\"\nclass = \"web\"\naddress = \"192.0.2.51\"\n",
    )
    .unwrap();
    let out = ferry_on_site(dir.path(), "deploy", &["--class", "nosuch", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(first.contains("unknown class `nosuch`"), "{stderr}");
    assert!(
        !stderr.contains("build::") && !stderr.contains("ferry::"),
        "{stderr}"
    );
}

//! `ferry build` / `ferry closure` end to end: real builders, a real store.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch site with its own store and state directories.
struct Scratch {
    dir: tempfile::TempDir,
    store_dir: PathBuf,
    state_dir: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let state_dir = dir.path().join("var");
        Scratch {
            dir,
            store_dir,
            state_dir,
        }
    }

    /// A scratch whose store lives at a fixed path, for snapshots (the store
    /// directory is part of every hash).
    fn at_fixed_store(name: &str) -> Scratch {
        let scratch = Scratch::new();
        let store_dir = PathBuf::from(format!("/tmp/ferry-test-fixed/{name}/store"));
        let _ = std::fs::remove_dir_all(store_dir.parent().unwrap());
        Scratch {
            store_dir,
            ..scratch
        }
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join("site").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn ferry(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_STORE_DIR", &self.store_dir)
            .env("FERRY_STATE_DIR", &self.state_dir)
            .env("FERRY_DEB_CACHE", DEB_CACHE)
            .output()
            .unwrap()
    }

    fn ferry_ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(
            out.status.success(),
            "ferry {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn build_json(&self, site: &Path) -> serde_json::Value {
        serde_json::from_str(&self.ferry_ok(&["build", site.to_str().unwrap(), "--json"])).unwrap()
    }
}

/// Downloaded `.deb` files shared by the tests (verified on every use).
const DEB_CACHE: &str = "/var/cache/ferry-test/debian";

/// Locks a repository site against this machine's apt sources (its lock is
/// ignored by git: the mirror moves on, so a committed lock would not fetch
/// for long), once per test process and file.
fn locked(site: &Path) -> PathBuf {
    static LOCKED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut done = LOCKED.lock().unwrap_or_else(|p| p.into_inner());
    if !done.contains(&site.to_path_buf()) {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["lock", site.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ferry lock {}: {}",
            site.display(),
            stderr(&out)
        );
        done.push(site.to_path_buf());
    }
    site.to_path_buf()
}

/// Store hashes, sizes and Debian versions, which follow the mirror, as
/// placeholders: snapshots pin the shape of a closure, not today's packages.
fn scrub_debian(text: &str, site: &Path) -> String {
    let mut text = text.to_string();
    if let Ok(lock) = ferry_debian::lock::Lock::read(&ferry_debian::lock::Lock::path_for(site)) {
        let mut names: Vec<(String, String)> = lock
            .packages
            .iter()
            .filter_map(|p| {
                let object = ferry_debian::object::object_name(&p.name, &p.version).ok()?;
                Some((format!("-{object}"), format!("-{}-<version>", p.name)))
            })
            .collect();
        // Longest first, so `libpq5-…` never eats part of a longer name.
        names.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        for (from, to) in names {
            text = text.replace(&from, &to);
        }
    }
    let hash = regex_lite::Regex::new(r"/[0-9a-z]{32}-").unwrap();
    let text = hash.replace_all(&text, "/<hash>-");
    let size = regex_lite::Regex::new(r#""size": [0-9]+"#).unwrap();
    let text = size.replace_all(&text, r#""size": <n>"#);
    let human = regex_lite::Regex::new(r"[0-9][0-9.]* (B|KiB|MiB|GiB)\b").unwrap();
    let text = human.replace_all(&text, "<size>");
    // Paths are listed by hash, which moves with the versions: sort each run
    // of path lines by what is left.
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.contains("/<hash>-") && !line.trim_start().starts_with("system") {
            run.push(line);
            continue;
        }
        run.sort();
        out.extend(run.drain(..).map(str::to_string));
        out.push(line.to_string());
    }
    out.pop();
    out.join("\n") + if text.ends_with('\n') { "\n" } else { "" }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The repository's own files.
fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

const TWO_CLASSES: &str = r#"
site = "cutoff"

package lib {
  src = path("./lib")
  build = """
    mkdir -p $out
    grep -v '^#' $src/data.txt > $out/data
  """
}

package app {
  inputs = [lib]
  build = """
    mkdir -p $out/bin
    cp ${lib}/data $out/data
    printf '#!/bin/sh\necho app\n' > $out/bin/app
    chmod +x $out/bin/app
  """
}

class front {
  service app {
    exec = "${app}/bin/app --greeting GREETING"
  }
}

class back {
  service store {
    exec = "${lib}/data"
  }
}
"#;

#[test]
fn reproducibility_two_fresh_stores_give_identical_system_paths() {
    let first = Scratch::at_fixed_store("repro");
    let demo = locked(&repo("sites/demo/site.conf"));
    let a = first.build_json(&demo)["systems"].clone();
    // A second, fresh store at the same store directory, with new state.
    std::fs::remove_dir_all(&first.store_dir).unwrap();
    let second = Scratch {
        store_dir: first.store_dir.clone(),
        ..Scratch::new()
    };
    let b = second.build_json(&demo)["systems"].clone();
    assert_eq!(a, b);
    assert!(a["web"].as_str().unwrap().ends_with("-system-web"));
    assert!(a["db"].as_str().unwrap().ends_with("-system-db"));
}

#[test]
fn early_cutoff_comment_change_does_not_rebuild_dependents() {
    let s = Scratch::new();
    let site = s.write("site.conf", TWO_CLASSES);
    s.write("lib/data.txt", "# version one of the comment\npayload\n");
    let first = s.build_json(&site);
    assert_eq!(first["outcomes"]["lib"], "built");
    assert_eq!(first["outcomes"]["app"], "built");

    // Unchanged: nothing runs.
    let again = s.build_json(&site);
    assert_eq!(again["outcomes"]["lib"], "cached");
    assert_eq!(again["outcomes"]["app"], "cached");

    // Only a comment changes: lib's source (and so its recipe) changes and
    // lib is rebuilt, but its output is bit-identical, so app is not.
    s.write("lib/data.txt", "# a different comment\npayload\n");
    let after = s.build_json(&site);
    assert_eq!(after["outcomes"]["lib"], "built");
    assert_eq!(after["outcomes"]["app"], "cached");
    assert_eq!(after["packages"]["lib"], first["packages"]["lib"]);
    assert_eq!(after["systems"], first["systems"]);
}

#[test]
fn incremental_one_class_change_leaves_the_other_class_unchanged() {
    let s = Scratch::new();
    let site = s.write("site.conf", TWO_CLASSES);
    s.write("lib/data.txt", "payload\n");
    let before = s.build_json(&site);
    let back_closure = s.ferry_ok(&[
        "closure",
        site.to_str().unwrap(),
        "--requisites",
        "--class",
        "back",
    ]);

    s.write("site.conf", &TWO_CLASSES.replace("GREETING", "HELLO"));
    let after = s.build_json(&site);
    assert_ne!(after["systems"]["front"], before["systems"]["front"]);
    assert_eq!(after["systems"]["back"], before["systems"]["back"]);
    assert_eq!(
        after["outcomes"]["app"], "cached",
        "a service change rebuilds no package"
    );
    let back_after = s.ferry_ok(&[
        "closure",
        site.to_str().unwrap(),
        "--requisites",
        "--class",
        "back",
    ]);
    assert_eq!(back_closure, back_after);
}

#[test]
fn builder_sees_none_of_the_callers_environment() {
    let s = Scratch::new();
    let site = s.write(
        "site.conf",
        r#"
site = "env"
package dump {
  build = "env | sed 's|^out=.*|out=(scratch)|' > $out"
}
class c { service s { exec = "${dump}" } }
"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["build", site.to_str().unwrap(), "--json"])
        .env("FERRY_STORE_DIR", &s.store_dir)
        .env("FERRY_STATE_DIR", &s.state_dir)
        .env("FERRY_LEAK_PROBE", "caller-secret-value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let built: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dumped = std::fs::read_to_string(built["packages"]["dump"].as_str().unwrap()).unwrap();
    assert!(!dumped.contains("caller-secret-value"), "{dumped}");
    assert!(!dumped.contains("FERRY_STORE_DIR"), "{dumped}");
    assert!(dumped.contains("out="), "{dumped}");
}

/// Needs root (CI runs as root): builders get a fresh network namespace.
#[test]
fn builder_that_tries_the_network_fails_as_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs as root)"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = Scratch::new();
    // bash's /dev/tcp is the probe: bash is on every Debian machine. The
    // sandbox's own tests show the same probe connecting without isolation.
    let site = s.write(
        "site.conf",
        &format!(
            r#"
site = "net"
package tools {{
  build = """
    mkdir -p $out/bin
    ln -s /bin/bash $out/bin/bash
  """
}}
package fetch {{
  inputs = [tools]
  build = """
    bash -c 'echo probe > /dev/tcp/127.0.0.1/{port}'
    mkdir $out
  """
}}
class c {{ service s {{ exec = "${{fetch}}" }} }}
"#
        ),
    );
    let out = s.ferry(&["build", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("package `fetch` failed to build"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Network is unreachable"),
        "{}",
        stderr(&out)
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the builder reached the deployer's network"
    );
}

/// Replaces what differs between runs (temp dirs, hashes of paths in them).
fn scrub(text: &str, s: &Scratch) -> String {
    let mut text = text.replace(&s.dir.path().display().to_string(), "<tmp>");
    text = text.replace(&s.store_dir.display().to_string(), "<store>");
    // Build log names carry a recipe id prefix.
    let re_log = regex_lite::Regex::new(r"-[0-9a-f]{16}\.log").unwrap();
    re_log.replace_all(&text, "-<id>.log").into_owned()
}

#[test]
fn failing_builder_shows_log_tail_log_path_and_declaring_line() {
    let s = Scratch::new();
    let site = s.write(
        "site.conf",
        r#"
site = "fail"

package broken {
  build = """
    echo compiling...
    echo "error: something is wrong" >&2
    exit 3
  """
}
class c { service s { exec = "${broken}" } }
"#,
    );
    let out = s.ferry(&["build", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = scrub(&stderr(&out), &s);
    assert!(text.contains("error: something is wrong"), "{text}");
    assert!(text.contains("site.conf:4:9"), "{text}");
    insta::assert_snapshot!("failing_builder", text);
    // Nothing of the failed build is valid in the store.
    let paths = s.ferry_ok(&["store", "verify"]);
    assert!(!paths.contains("broken"), "{paths}");
}

#[test]
fn an_unknown_class_is_bad_input_named_without_an_internal_code() {
    let s = Scratch::new();
    let site = s.write("site.conf", TWO_CLASSES);
    std::fs::create_dir_all(s.dir.path().join("site/lib")).unwrap();
    std::fs::write(s.dir.path().join("site/lib/data.txt"), "x\n").unwrap();
    let out = s.ferry(&["build", site.to_str().unwrap(), "--class", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    assert_eq!(
        first.trim(),
        "× unknown class `nosuch`; the site has: back, front",
        "{text}"
    );
    assert!(!text.contains("build::"), "{text}");
}

#[test]
fn missing_source_is_bad_input_with_file_line_column() {
    let s = Scratch::new();
    let site = s.write(
        "site.conf",
        r#"
site = "missing"

package gone {
  src = path("./does-not-exist")
  build = "cp -r $src $out"
}
class c { service s { exec = "${gone}" } }
"#,
    );
    let out = s.ferry(&["build", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = scrub(&stderr(&out), &s);
    assert!(text.contains("site.conf:4:9"), "{text}");
    insta::assert_snapshot!("missing_source", text);
}

#[test]
fn package_cycle_is_bad_input_and_names_the_cycle() {
    let s = Scratch::new();
    let site = s.write(
        "site.conf",
        r#"
site = "cycle"

package a {
  inputs = [b]
  build = "mkdir $out"
}
package b {
  inputs = [a]
  build = "mkdir $out"
}
class c { service s { exec = "${a}" } }
"#,
    );
    let out = s.ferry(&["build", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = scrub(&stderr(&out), &s);
    assert!(text.contains("cycle"), "{text}");
    insta::assert_snapshot!("package_cycle", text);
}

/// Closure listings of every runnable site, pinned (store at a fixed path).
#[test]
fn closure_snapshots_of_the_demo_and_examples() {
    let mut sites = vec![repo("sites/demo/site.conf")];
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().join("site.conf"))
        .filter(|p| p.exists())
        .collect();
    examples.sort();
    sites.extend(examples);
    let mut shared: Option<Scratch> = None;
    for site in sites {
        let name = site
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // One store for all: every site's Debian packages are unpacked once.
        let s = shared.get_or_insert_with(|| Scratch::at_fixed_store("closure"));
        let site = locked(&site);
        let site = site.to_str().unwrap();
        for (view, args) in [
            ("plain", vec!["--requisites"]),
            ("tree", vec!["--requisites", "--tree"]),
            ("json", vec!["--requisites", "--json"]),
        ] {
            let mut all = vec!["closure", site];
            all.extend(args);
            let out = s.ferry(&all);
            assert!(
                out.status.success(),
                "closure of {site} failed: {}",
                stderr(&out)
            );
            let text = scrub(&String::from_utf8_lossy(&out.stdout), s);
            if view != "plain" {
                // Tree and JSON are ordered by hash, which follows the mirror's
                // versions: their shape is checked, the listing pinned in `plain`.
                assert!(text.contains("-system-"), "{view} of {site}: {text}");
                continue;
            }
            let text = scrub_debian(&text, Path::new(site));
            insta::assert_snapshot!(format!("closure_{name}_{view}"), text);
        }
    }
}

#[test]
fn plan_of_the_demo_lists_changes_per_host_and_the_batches() {
    let s = Scratch::at_fixed_store("plan-demo");
    let demo = locked(&repo("sites/demo/site.conf"));
    let text = scrub_debian(
        &scrub(
            &s.ferry_ok(&["plan", demo.to_str().unwrap(), "--offline"]),
            &s,
        ),
        &demo,
    );
    assert!(text.contains("no site generation yet"), "{text}");
    assert!(text.contains("stage 1: db"), "{text}");
    assert!(
        text.contains("web after db: web.app requires db.postgres"),
        "{text}"
    );
    insta::assert_snapshot!("plan_demo_fresh", text);

    // Once a site generation records every host on its target, nothing changes.
    let built = s.build_json(&demo);
    let site: serde_json::Value =
        serde_json::from_str(&s.ferry_ok(&["eval", demo.to_str().unwrap(), "--json"])).unwrap();
    let mut hosts = std::collections::BTreeMap::new();
    for host in site["inventory"]["hosts"].as_array().unwrap() {
        let class = host["class"].as_str().unwrap();
        hosts.insert(
            host["name"].as_str().unwrap().to_string(),
            ferry::deploy::site_generation::HostRecord {
                class: class.to_string(),
                system: built["systems"][class].as_str().unwrap().to_string(),
                host_generation: Some(1),
                outcome: ferry::deploy::site_generation::HostOutcome::Activated,
            },
        );
    }
    ferry::deploy::site_generation::SiteGenerations::new(&s.state_dir, "demo")
        .record("deploy", hosts, true, 1)
        .unwrap();
    let text = s.ferry_ok(&["plan", demo.to_str().unwrap(), "--offline"]);
    assert!(text.contains("compared with site generation 1"), "{text}");
    assert_eq!(text.matches(": unchanged").count(), 4, "{text}");
    assert!(!text.contains("batch 1"), "{text}");
}

#[test]
fn plan_with_a_selector_matching_nothing_is_bad_input() {
    let s = Scratch::new();
    let demo = locked(&repo("sites/demo/site.conf"));
    let out = s.ferry(&["plan", demo.to_str().unwrap(), "--on", "wbe1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad selector `wbe1`: it matches none of the site's hosts"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unchanged_site_is_a_cache_hit_but_never_returns_collected_paths() {
    let s = Scratch::new();
    let site = s.write("site.conf", TWO_CLASSES);
    s.write("lib/data.txt", "payload\n");
    let first = s.build_json(&site);
    assert_eq!(s.build_json(&site)["systems"], first["systems"]);

    // Nothing roots these outputs, so gc deletes them; the next build must
    // not hand back the deleted paths from its cache.
    s.ferry_ok(&["gc"]);
    let system = first["systems"]["front"].as_str().unwrap();
    assert!(!Path::new(system).exists(), "gc kept {system}");
    let again = s.build_json(&site);
    assert_eq!(
        again["systems"], first["systems"],
        "a rebuild gives the same paths"
    );
    assert_eq!(again["outcomes"]["lib"], "built");
    assert!(Path::new(system).exists());
    s.ferry_ok(&["store", "verify"]);
}

/// A no-op build skips the per-path validity checks while the store's
/// invalidation count is unchanged; a gc that only collects a build input
/// (the system itself is rooted) changes the count, so the next build finds
/// the input gone and builds it again instead of reporting a collected path.
#[test]
fn a_gc_of_build_only_inputs_is_noticed_by_the_next_no_op_build() {
    let s = Scratch::new();
    let site = s.write("site.conf", TWO_CLASSES);
    s.write("lib/data.txt", "payload\n");
    let site_str = site.to_str().unwrap();
    let build = |s: &Scratch| -> serde_json::Value {
        serde_json::from_str(&s.ferry_ok(&["build", site_str, "--class", "front", "--json"]))
            .unwrap()
    };
    let first = build(&s);
    let system = first["systems"]["front"].as_str().unwrap().to_string();
    let lib = first["packages"]["lib"].as_str().unwrap().to_string();
    let roots = s.state_dir.join("gcroots");
    std::fs::create_dir_all(&roots).unwrap();
    std::os::unix::fs::symlink(&system, roots.join("front")).unwrap();

    let hit = build(&s);
    assert_eq!(hit["outcomes"]["lib"], "cached");
    assert_eq!(hit["systems"], first["systems"]);

    s.ferry_ok(&["gc"]);
    assert!(
        Path::new(&system).exists(),
        "the rooted system was collected"
    );
    assert!(
        !Path::new(&lib).exists(),
        "gc kept the build-only input {lib}"
    );
    let after = build(&s);
    assert_eq!(after["systems"], first["systems"]);
    assert_eq!(after["outcomes"]["lib"], "built", "{after}");
    assert_eq!(after["outcomes"]["app"], "cached", "{after}");
    assert!(Path::new(&lib).exists());
    s.ferry_ok(&["store", "verify"]);
}

/// Every runnable site plans cleanly: its policy (built-in or an external
/// program such as examples/load-balancer's) gives a schedule that passes
/// ferry's checks. The load-balancer example once shipped a program that
/// echoed the plan back instead of answering with batches.
#[test]
fn every_site_and_example_plans_with_its_own_policy() {
    let mut sites = vec![
        repo("sites/demo/site.conf"),
        repo("sites/demo/v2.conf"),
        repo("sites/demo/v3.conf"),
    ];
    for entry in std::fs::read_dir(repo("examples")).unwrap() {
        let dir = entry.unwrap().path();
        for file in ["site.conf", "staging.conf", "production.conf"] {
            if dir.join(file).exists() {
                sites.push(dir.join(file));
            }
        }
    }
    let s = Scratch::new();
    for site in sites {
        let site = locked(&site);
        let text = s.ferry_ok(&["plan", site.to_str().unwrap(), "--offline"]);
        assert!(text.contains("rollout: "), "{}: {text}", site.display());
    }
}

const DIFF_SITE: &str = r#"site = "diffs"
let address(host) = host.address
class web { service app { exec = "sleep WEB_SLEEP" } }
class lb {
  service proxy {
    exec = "cat ${text_file("backends.conf", join(map(address, hosts(web)), "\n") + "\n")}; exec sleep 1000"
    requires = [web.app]
  }
}
inventory = file("hosts.toml")
"#;

fn diff_hosts(webs: &[(&str, &str)]) -> String {
    let mut text =
        String::from("[[host]]\nname = \"b1\"\nclass = \"lb\"\naddress = \"192.0.2.52\"\n");
    for (name, address) in webs {
        text.push_str(&format!(
            "\n[[host]]\nname = \"{name}\"\nclass = \"web\"\naddress = \"{address}\"\n"
        ));
    }
    text
}

/// `plan --diff` shows, per class, a unified diff of each text file and
/// service definition that changes: a new web host adds a line to the
/// balancer's generated config, a changed command line shows as one, and a
/// host's first system is diffed from nothing.
#[test]
fn plan_diff_shows_the_changed_lines_of_files_and_services_per_class() {
    let s = Scratch::at_fixed_store("plan-diff");
    let site = s.write("site.conf", &DIFF_SITE.replace("WEB_SLEEP", "1000"));
    s.write("hosts.toml", &diff_hosts(&[("w1", "192.0.2.51")]));
    let built = s.build_json(&site);
    let mut hosts = std::collections::BTreeMap::new();
    for (host, class) in [("b1", "lb"), ("w1", "web")] {
        hosts.insert(
            host.to_string(),
            ferry::deploy::site_generation::HostRecord {
                class: class.to_string(),
                system: built["systems"][class].as_str().unwrap().to_string(),
                host_generation: Some(1),
                outcome: ferry::deploy::site_generation::HostOutcome::Activated,
            },
        );
    }
    ferry::deploy::site_generation::SiteGenerations::new(&s.state_dir, "diffs")
        .record("deploy", hosts, true, 1)
        .unwrap();

    s.write("site.conf", &DIFF_SITE.replace("WEB_SLEEP", "2000"));
    s.write(
        "hosts.toml",
        &diff_hosts(&[("w1", "192.0.2.51"), ("w2", "192.0.2.53")]),
    );
    let site = site.to_str().unwrap();
    let text = scrub(&s.ferry_ok(&["plan", site, "--offline", "--diff"]), &s);
    assert!(
        text.contains(" 192.0.2.51\n+192.0.2.53\n"),
        "the balancer's config gains the new backend: {text}"
    );
    assert!(
        text.contains("-  \"exec\": \"sleep 1000\",\n+  \"exec\": \"sleep 2000\",\n"),
        "{text}"
    );
    assert!(
        text.contains("--- /dev/null\n+++ b/services/app.json\n"),
        "{text}"
    );
    assert!(
        text.contains("files    backends.conf\n"),
        "one name per changed file: {text}"
    );
    insta::assert_snapshot!("plan_diff_offline", text);

    // Without `--diff` the plan is as before, and `--json` carries the diffs.
    assert!(!s.ferry_ok(&["plan", site, "--offline"]).contains("+++ b/"));
    let json: serde_json::Value =
        serde_json::from_str(&s.ferry_ok(&["plan", site, "--offline", "--diff", "--json"]))
            .unwrap();
    let diffs = json["diffs"].as_array().unwrap();
    assert_eq!(diffs.len(), 3, "lb, web from v1, web from nothing: {json}");
    assert_eq!(diffs[0]["class"], "lb");
    assert_eq!(diffs[0]["entries"][0]["what"], "service proxy");
    assert_eq!(diffs[0]["entries"][1]["what"], "file backends.conf");
    assert_eq!(diffs[0]["entries"][1]["change"]["kind"], "text");
}

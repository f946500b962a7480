//! Rollout policies against a real lab fleet (needs root; CI runs as root):
//! eight `root` hosts (each boots systemd in a Debian root of its own, where
//! the deployer's `/usr` is not visible, so services run from their closure
//! under the host's systemd) with real sshd in two datacenters, deployed
//! with the real `ferry deploy` binary. One lab is brought up once and the scenarios run in
//! sequence on it; each scenario states what it expects of the one before
//! (the hosts' generations), and asserts only on what it changed itself.
//!
//! Hosts fail deterministically through a health check that fails on the
//! hosts named in the service's `FAIL_ON` variable (the agent exports
//! `FERRY_HOST_NAME` to services and their checks).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const SITE: &str = "rollout-lab-test";
const SUBNET: &str = "10.237.50.0/24";
const WEB: [&str; 6] = ["web1", "web2", "web3", "web4", "web5", "web6"];
const DB: [&str; 2] = ["db1", "db2"];

/// The lab of this file; taken down when dropped, whatever happened.
struct LabGuard {
    site: PathBuf,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["lab", "down"])
            .arg(&self.site)
            .output();
    }
}

/// What a release of the site is made of.
struct Release<'a> {
    db: &'a str,
    app: &'a str,
    side: &'a str,
    /// Hosts whose `app` health check fails.
    fail_on: &'a [&'a str],
    /// The body of the `rollout { … }` block.
    rollout: &'a str,
}

impl Default for Release<'_> {
    fn default() -> Self {
        Release {
            db: "1",
            app: "1",
            side: "1",
            fail_on: &[],
            rollout: "order = dependencies",
        }
    }
}

fn site_text(release: &Release<'_>) -> String {
    let repo = env!("CARGO_MANIFEST_DIR");
    let fail_on = format!(" {} ", release.fail_on.join(" "));
    format!(
        r#"
import "{repo}/host-classes/std.conf"

site = "{SITE}"

package python3 = debian("python3")

class db {{
  include std.base
  service store {{
    exec = "${{python3}}/bin/python3 -m http.server 7000 --bind 0.0.0.0 --directory $STATE_DIRECTORY"
    env = {{ RELEASE = "{db}" }}
    health = tcp(7000, timeout = 2s, retries = 25, interval = 200ms)
  }}
}}

class web {{
  include std.base
  service app {{
    exec = "${{python3}}/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory $STATE_DIRECTORY"
    env = {{ RELEASE = "{app}", FAIL_ON = "{fail_on}" }}
    requires = [db.store]
    health = [
      tcp(8080, timeout = 2s, retries = 25, interval = 200ms),
      command("case \"$FAIL_ON\" in *\" $FERRY_HOST_NAME \"*) exit 1;; esac", timeout = 2s, retries = 1, interval = 100ms),
    ]
  }}
  service side {{
    exec = "${{std.busybox}}/bin/sleep 1000000"
    env = {{ RELEASE = "{side}" }}
  }}
}}

inventory = lab {{
  subnet = "{SUBNET}"
  kind = "root"
  hosts = [
    {{ name = "db1",  class = db,  labels = {{ datacenter = "dc1" }} }},
    {{ name = "db2",  class = db,  labels = {{ datacenter = "dc2" }} }},
    {{ name = "web1", class = web, labels = {{ datacenter = "dc1" }} }},
    {{ name = "web2", class = web, labels = {{ datacenter = "dc1" }} }},
    {{ name = "web3", class = web, labels = {{ datacenter = "dc1" }} }},
    {{ name = "web4", class = web, labels = {{ datacenter = "dc2" }} }},
    {{ name = "web5", class = web, labels = {{ datacenter = "dc2" }} }},
    {{ name = "web6", class = web, labels = {{ datacenter = "dc2" }} }},
  ]
}}

rollout {{
  {rollout}
}}
"#,
        db = release.db,
        app = release.app,
        side = release.side,
        rollout = release.rollout,
    )
}

fn write_site(dir: &Path, name: &str, release: &Release<'_>) -> PathBuf {
    let file = dir.join(format!("{name}.conf"));
    std::fs::write(&file, site_text(release)).unwrap();
    // Every release asks for the same Debian packages: one lock each, made once.
    if !file.with_extension("lock").exists() {
        let out = ferry(&["lock", file.to_str().unwrap()]);
        assert!(out.status.success(), "ferry lock: {}", text(&out));
    }
    file
}

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("run ferry")
}

/// `ferry` run from `dir` (so site files can be named without a directory).
fn ferry_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ferry")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ferry deploy --yes --json`: the exit code and the final report.
fn deploy(site: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["deploy", site.to_str().unwrap(), "--yes", "--json"];
    args.extend_from_slice(extra);
    report_of(ferry(&args))
}

fn report_of(out: Output) -> (i32, Value, String) {
    let all = text(&out);
    let done = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no `done` event\n{all}"));
    (out.status.code().unwrap_or(-1), done["report"].clone(), all)
}

/// `ferry status --json`: host → its status.
fn status(site: &Path) -> BTreeMap<String, Value> {
    let out = ferry(&["status", site.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "status failed\n{}", text(&out));
    let hosts: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    hosts
        .into_iter()
        .map(|h| {
            assert_eq!(h["reachable"], true, "{h}");
            (h["host"].as_str().unwrap().to_string(), h["status"].clone())
        })
        .collect()
}

fn system(status: &BTreeMap<String, Value>, host: &str) -> String {
    status[host]["system"].as_str().unwrap().to_string()
}

fn generation(status: &BTreeMap<String, Value>, host: &str) -> u64 {
    status[host]["generation"].as_u64().unwrap()
}

fn activation_ms(status: &BTreeMap<String, Value>, host: &str) -> (u64, u64) {
    let report = &status[host]["last_activation"];
    (
        report["started_ms"].as_u64().unwrap(),
        report["finished_ms"].as_u64().unwrap(),
    )
}

fn pid(status: &BTreeMap<String, Value>, host: &str, service: &str) -> u64 {
    status[host]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .and_then(|s| s["pid"].as_u64())
        .unwrap_or_else(|| panic!("{host}.{service} has no process: {}", status[host]))
}

fn reached(report: &Value) -> Vec<String> {
    let mut hosts: Vec<String> = report["outcome"]["hosts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    hosts.sort();
    hosts
}

fn untouched(report: &Value) -> Vec<String> {
    let mut hosts: Vec<String> = report["outcome"]["untouched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    hosts
}

/// The host is where it was before: same system, same generation, and no
/// activation since (its last activation report is the same one).
fn assert_not_touched(
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
    host: &str,
) {
    assert_eq!(
        system(before, host),
        system(after, host),
        "{host} changed system"
    );
    assert_eq!(
        generation(before, host),
        generation(after, host),
        "{host} changed generation"
    );
    assert_eq!(
        activation_ms(before, host),
        activation_ms(after, host),
        "{host} was activated"
    );
}

#[test]
fn rollout_policies_on_a_lab_of_eight_hosts_in_two_datacenters_as_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let v1 = write_site(dir.path(), "v1", &Release::default());
    let _ = ferry(&["lab", "down", v1.to_str().unwrap()]);
    let up = ferry(&["lab", "up", v1.to_str().unwrap()]);
    let _guard = LabGuard { site: v1.clone() };
    assert!(up.status.success(), "lab up failed\n{}", text(&up));

    let (first, first_status) = first_deploy_activates_every_db_host_before_any_web_host(&v1);
    failing_canary_touches_no_further_host(dir.path());
    max_failures_with_stop_keeps_switched_hosts_and_leaves_the_rest(dir.path());
    on_failure_rollback_reverts_every_host_switched_in_the_run(dir.path());
    external_policy_program_orders_the_activations(dir.path());
    only_one_service_keeps_the_other_process_and_on_splits_generations(dir.path());
    site_rollback_puts_every_host_back_on_its_first_system(&v1, first, &first_status);
    // Last: it stops a host's sshd for good.
    an_unreachable_host_fails_its_batch_and_holds_back_its_dependents(dir.path());
}

/// (f) `web.app` requires `db.store`: every db host finished activating
/// before any web host started (the agents' own timestamps).
fn first_deploy_activates_every_db_host_before_any_web_host(
    v1: &Path,
) -> (u64, BTreeMap<String, Value>) {
    let (code, report, all) = deploy(v1, &[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(reached(&report).len(), 8, "{all}");
    let now = status(v1);
    let db_done = DB.iter().map(|h| activation_ms(&now, h).1).max().unwrap();
    let web_start = WEB.iter().map(|h| activation_ms(&now, h).0).min().unwrap();
    assert!(
        db_done <= web_start,
        "a web host started ({web_start}) before every db host finished ({db_done})"
    );
    (report["site_generation"].as_u64().unwrap(), now)
}

/// (a) The canary fails: exit 3, the canary is back where it was, and not
/// one other host was touched.
fn failing_canary_touches_no_further_host(dir: &Path) {
    let site = write_site(
        dir,
        "canary",
        &Release {
            app: "2",
            fail_on: &WEB,
            rollout: "order = dependencies  canary = 1  batch = 2  group_by = \"datacenter\"  max_failures = 5  on_failure = stop",
            ..Release::default()
        },
    );
    let before = status(&site);
    let (code, report, all) = deploy(&site, &[]);
    assert_eq!(code, 3, "{all}");
    assert_eq!(reached(&report), vec!["web1"], "{all}");
    assert_eq!(untouched(&report).len(), 5, "{all}");
    assert_eq!(
        report["outcome"]["hosts"]["web1"]["result"]["result"], "rolled-back",
        "{all}"
    );
    let after = status(&site);
    // The canary rolled itself back to the system it had.
    assert_eq!(system(&before, "web1"), system(&after, "web1"));
    for host in ["web2", "web3", "web4", "web5", "web6", "db1", "db2"] {
        assert_not_touched(&before, &after, host);
    }
}

/// (b) `max_failures = 1` with `on_failure = stop`, one host per batch, dc1
/// first: web1 switches, web2 fails (tolerated), web3 fails (too many) →
/// the run stops. web1 keeps the new system; dc2 is never touched.
fn max_failures_with_stop_keeps_switched_hosts_and_leaves_the_rest(dir: &Path) {
    let site = write_site(
        dir,
        "stop",
        &Release {
            app: "3",
            fail_on: &["web2", "web3"],
            rollout: "order = dependencies  batch = 1  group_by = \"datacenter\"  max_failures = 1  on_failure = stop",
            ..Release::default()
        },
    );
    let before = status(&site);
    let (code, report, all) = deploy(&site, &[]);
    assert_eq!(code, 3, "{all}");
    assert_eq!(reached(&report), vec!["web1", "web2", "web3"], "{all}");
    assert_eq!(untouched(&report), vec!["web4", "web5", "web6"], "{all}");
    assert!(
        report["outcome"]["stopped"]
            .as_str()
            .unwrap_or("")
            .contains("max_failures tolerates 1"),
        "{all}"
    );
    let after = status(&site);
    let target = report["plan"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "web1")
        .unwrap()["target_system"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(system(&after, "web1"), target, "web1 keeps the new system");
    assert!(generation(&after, "web1") > generation(&before, "web1"));
    for host in ["web2", "web3"] {
        assert_eq!(
            system(&before, host),
            system(&after, host),
            "{host} rolled back"
        );
    }
    for host in ["web4", "web5", "web6", "db1", "db2"] {
        assert_not_touched(&before, &after, host);
    }
}

/// (c) `on_failure = rollback`: web5 fails in dc2's first batch, so web1–web4
/// (switched earlier in this run) go back to what they ran before; web6 is
/// never touched.
fn on_failure_rollback_reverts_every_host_switched_in_the_run(dir: &Path) {
    let site = write_site(
        dir,
        "rollback",
        &Release {
            app: "4",
            fail_on: &["web5"],
            rollout: "order = dependencies  batch = 2  group_by = \"datacenter\"  max_failures = 0  on_failure = rollback",
            ..Release::default()
        },
    );
    let before = status(&site);
    let (code, report, all) = deploy(&site, &[]);
    assert_eq!(code, 3, "{all}");
    assert_eq!(
        reached(&report),
        vec!["web1", "web2", "web3", "web4", "web5"],
        "{all}"
    );
    assert_eq!(untouched(&report), vec!["web6"], "{all}");
    for host in ["web1", "web2", "web3", "web4"] {
        let run = &report["outcome"]["hosts"][host];
        assert_eq!(run["result"]["result"], "activated", "{host}: {all}");
        assert_eq!(run["reverted"]["result"], "activated", "{host}: {all}");
    }
    let after = status(&site);
    for host in WEB {
        assert_eq!(
            system(&before, host),
            system(&after, host),
            "{host} is not back on its previous system"
        );
    }
    assert_not_touched(&before, &after, "web6");
    // Each host's own generation list agrees: the active one runs the old system.
    let out = ferry(&[
        "generations",
        site.to_str().unwrap(),
        "--on",
        "web1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let current: Vec<&Value> = listed["generations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{listed}");
    assert_eq!(
        current[0]["system"],
        system(&before, "web1").as_str(),
        "{listed}"
    );
    // And the site generation recorded for the run says so.
    let out = ferry(&["generations", site.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let site_generations: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let last = site_generations.last().unwrap();
    assert_eq!(last["number"], report["site_generation"], "{last}");
    for host in ["web1", "web2", "web3", "web4", "web5"] {
        assert_eq!(
            last["hosts"][host]["system"],
            system(&before, host).as_str(),
            "{last}"
        );
    }
}

/// (d) An external policy program decides the batches: one host per batch,
/// in reverse name order. The agents' timestamps follow that order. The site
/// file is named without a directory (`ferry deploy external.conf` in its
/// directory), so the program runs in `.`.
fn external_policy_program_orders_the_activations(dir: &Path) {
    let program = dir.join("reverse.py");
    std::fs::write(
        &program,
        r#"#!/usr/bin/env python3
import json, sys
plan = json.load(sys.stdin)
names = sorted((h["name"] for h in plan["hosts"] if h["changes"]), reverse=True)
json.dump({"version": 1, "batches": [{"hosts": [n]} for n in names]}, sys.stdout)
"#,
    )
    .unwrap();
    let mut perms = std::fs::metadata(&program).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&program, perms).unwrap();
    let site = write_site(
        dir,
        "external",
        &Release {
            app: "5",
            rollout: "program = [\"./reverse.py\"]  on_failure = stop",
            ..Release::default()
        },
    );
    let (code, report, all) = report_of(ferry_in(
        dir,
        &["deploy", "external.conf", "--yes", "--json"],
    ));
    assert_eq!(code, 0, "{all}");
    assert_eq!(reached(&report), WEB.to_vec(), "{all}");
    let now = status(&site);
    let order = ["web6", "web5", "web4", "web3", "web2", "web1"];
    for pair in order.windows(2) {
        let (_, first_done) = activation_ms(&now, pair[0]);
        let (second_start, _) = activation_ms(&now, pair[1]);
        assert!(
            first_done <= second_start,
            "{} started at {second_start} before {} finished at {first_done}",
            pair[1],
            pair[0]
        );
    }
}

/// (e) `--only app` restarts `app` and leaves `side`'s process alone; `--on`
/// a subset leaves the fleet on different systems, which `status` shows.
fn only_one_service_keeps_the_other_process_and_on_splits_generations(dir: &Path) {
    let site = write_site(
        dir,
        "partial",
        &Release {
            app: "6",
            side: "2",
            ..Release::default()
        },
    );
    let before = status(&site);
    let (code, report, all) = deploy(&site, &["--only", "app"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(reached(&report), WEB.to_vec(), "{all}");
    let after = status(&site);
    for host in WEB {
        assert_eq!(
            pid(&before, host, "side"),
            pid(&after, host, "side"),
            "{host}: `side` was restarted by `--only app`"
        );
        assert_ne!(
            pid(&before, host, "app"),
            pid(&after, host, "app"),
            "{host}: `app` was not restarted"
        );
        assert_eq!(
            generation(&after, host),
            generation(&before, host) + 1,
            "{host}"
        );
    }
    for host in DB {
        assert_not_touched(&before, &after, host);
    }

    // Only web1: it moves on, web2..web6 stay where they are.
    let next = write_site(
        dir,
        "partial-on",
        &Release {
            app: "7",
            side: "2",
            ..Release::default()
        },
    );
    let (code, report, all) = deploy(&next, &["--on", "web1"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(reached(&report), vec!["web1"], "{all}");
    let split = status(&next);
    assert_ne!(system(&split, "web1"), system(&split, "web2"));
    assert_eq!(generation(&split, "web1"), generation(&after, "web1") + 1);
    for host in ["web2", "web3", "web4", "web5", "web6", "db1", "db2"] {
        assert_not_touched(&after, &split, host);
    }
    // The human status names each host's generation.
    let out = ferry(&["status", next.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout);
    for host in WEB {
        assert!(
            human.contains(host) && human.contains(&generation(&split, host).to_string()),
            "{human}"
        );
    }
}

/// `ferry rollback --to N`: the hosts that the later runs left on different
/// systems all go back to what site generation N recorded, without a rebuild.
fn site_rollback_puts_every_host_back_on_its_first_system(
    v1: &Path,
    first: u64,
    first_status: &BTreeMap<String, Value>,
) {
    let out = ferry(&[
        "rollback",
        v1.to_str().unwrap(),
        "--to",
        &first.to_string(),
        "--yes",
        "--json",
    ]);
    let (code, report, all) = report_of(out);
    assert_eq!(code, 0, "{all}");
    assert_eq!(reached(&report), WEB.to_vec(), "{all}");
    let now = status(v1);
    for host in WEB.iter().chain(DB.iter()) {
        assert_eq!(system(&now, host), system(first_status, host), "{host}");
    }
}

/// Stops the sshd of a lab host (the host can no longer be reached).
fn stop_sshd(host: &str) {
    let lab: Value =
        serde_json::from_slice(&std::fs::read(format!("/run/ferry-lab/{SITE}/lab.json")).unwrap())
            .unwrap();
    let netns = lab["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == host)
        .unwrap()["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let pids = Command::new("ip")
        .args(["netns", "pids", &netns])
        .output()
        .unwrap();
    let mut stopped = 0;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        // The listener (sshd retitles itself `sshd: /usr/sbin/sshd -D [listener] …`),
        // not the sessions (`sshd: root@notty`). The host's systemd does not
        // restart an sshd that exits on SIGTERM.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let title = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if title.contains("[listener]") {
            let pid: i32 = pid.parse().unwrap();
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM)
                .unwrap();
            stopped += 1;
        }
    }
    assert_eq!(stopped, 1, "no sshd listener found in {netns}");
}

/// A host that cannot be reached counts as a failure of its batch: with
/// `max_failures = 1` the other db host moves on, but no web host starts,
/// since web requires db and a db host failed. With `on_failure = continue`
/// the web hosts move on. Both runs exit 1, and the record keeps the
/// unreachable host's last known system.
fn an_unreachable_host_fails_its_batch_and_holds_back_its_dependents(dir: &Path) {
    let release = |rollout| Release {
        db: "9",
        app: "9",
        rollout,
        ..Release::default()
    };
    let site = write_site(
        dir,
        "unreachable",
        &release("order = dependencies  max_failures = 1  on_failure = stop"),
    );
    let before = status(&site);
    stop_sshd("db2");
    let (code, report, all) = deploy(&site, &[]);
    assert_eq!(code, 1, "{all}");
    assert!(report["unreachable"]["db2"].is_string(), "{all}");
    assert_eq!(reached(&report), ["db1", "db2"], "{all}");
    let db2 = &report["outcome"]["hosts"]["db2"]["result"];
    assert_eq!(db2["result"], "failed", "{all}");
    assert!(
        db2["reason"].as_str().unwrap().starts_with("unreachable: "),
        "{all}"
    );
    assert_eq!(
        report["outcome"]["stopped"],
        "web requires db, and db host(s) db2 failed: web is not activated past a failed dependency",
        "{all}"
    );
    assert_eq!(untouched(&report), WEB.to_vec(), "{all}");
    let after = ferry(&["status", site.to_str().unwrap(), "--json"]);
    let after: Vec<Value> = serde_json::from_slice(&after.stdout).unwrap();
    let after: BTreeMap<String, Value> = after
        .into_iter()
        .filter(|h| h["reachable"] == true)
        .map(|h| (h["host"].as_str().unwrap().to_string(), h["status"].clone()))
        .collect();
    for host in WEB {
        assert_not_touched(&before, &after, host);
    }
    assert_ne!(
        system(&before, "db1"),
        system(&after, "db1"),
        "db1 moved on"
    );

    let site = write_site(dir, "unreachable", &release("on_failure = continue"));
    let (code, report, all) = deploy(&site, &[]);
    assert_eq!(code, 1, "{all}");
    let mut moved = WEB.to_vec();
    moved.push("db2");
    moved.sort();
    assert_eq!(reached(&report), moved, "{all}");
    for host in WEB {
        assert_eq!(
            report["outcome"]["hosts"][host]["result"]["result"], "activated",
            "{all}"
        );
    }
    let out = ferry(&["generations", site.to_str().unwrap(), "--json"]);
    let site_generations: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let last = site_generations.last().unwrap();
    assert_eq!(last["complete"], false, "{last}");
    assert_eq!(
        last["hosts"]["db2"]["system"],
        system(&before, "db2").as_str(),
        "{last}"
    );
    assert_eq!(last["hosts"]["db2"]["outcome"], "failed", "{last}");
}

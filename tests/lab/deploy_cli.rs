//! `ferry deploy` through the CLI on real lab hosts: copy-only, and a deploy
//! killed half-way that converges when run again. Needs root (CI is root).
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = ferry(args);
    assert!(
        out.status.success(),
        "ferry {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `ferry ARGS` with a terminal on its stdin and stderr (through
/// util-linux `script`), typing `input`; the exit code and what the terminal showed.
fn on_a_terminal(args: &str, input: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_ferry")),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Takes the lab of a site down when dropped, whatever happened.
struct LabDown<'a>(&'a str);

impl Drop for LabDown<'_> {
    fn drop(&mut self) {
        let _ = ferry(&["lab", "down", self.0]);
    }
}

/// A site of three hosts whose service sleeps in its post_upgrade hook, so a
/// deploy takes long enough to be killed in the middle. Its lab comes down on drop.
struct LabSite {
    _dir: tempfile::TempDir,
    site: PathBuf,
    name: String,
}

impl LabSite {
    fn new(name: &str, subnet: u8, release: u32) -> LabSite {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site.conf");
        let std_conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("host-classes/std.conf");
        let write = |release: u32| {
            std::fs::write(
                &site,
                format!(
                    r#"
import "{std}"
site = "{name}"
class app {{
  include std.base
  service tick {{
    exec = "${{std.busybox}}/bin/sh -c 'echo {release} > $STATE_DIRECTORY/release; exec ${{std.busybox}}/bin/sleep 100000'"
    post_upgrade = "${{std.busybox}}/bin/sleep 2"
  }}
}}
inventory = lab {{
  subnet = "10.237.{subnet}.0/24"
  hosts = [ {{ name = "a1", class = app }}, {{ name = "a2", class = app }}, {{ name = "a3", class = app }} ]
}}
rollout {{ batch = 1  on_failure = stop }}
"#,
                    std = std_conf.display()
                ),
            )
            .unwrap()
        };
        write(release);
        ok(&["lock", site.to_str().unwrap()]);
        let lab = LabSite {
            _dir: dir,
            site,
            name: name.to_string(),
        };
        ok(&["lab", "up", lab.site()]);
        lab
    }

    fn site(&self) -> &str {
        self.site.to_str().unwrap()
    }

    fn set_release(&self, release: u32) {
        let text = std::fs::read_to_string(&self.site).unwrap();
        let old = text
            .split("echo ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        std::fs::write(
            &self.site,
            text.replacen(&format!("echo {old} "), &format!("echo {release} "), 1),
        )
        .unwrap();
    }

    fn ssh(&self, host: &str, command: &str) -> String {
        let out = Command::new("ssh")
            .args([
                "-F",
                &format!("/run/ferry-lab/{}/ssh_config", self.name),
                host,
                command,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for LabSite {
    fn drop(&mut self) {
        drop(LabDown(self.site()));
    }
}

#[test]
fn copy_only_puts_each_class_closure_on_its_hosts_and_activates_nothing() {
    let lab = LabSite::new("t-copyonly", 60, 1);
    let built: serde_json::Value =
        serde_json::from_str(&ok(&["build", lab.site(), "--json"])).unwrap();
    let system = built["systems"]["app"].as_str().unwrap().to_string();
    let out = ok(&["deploy", lab.site(), "--copy-only"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    for host in ["a1", "a2", "a3"] {
        assert_eq!(
            lab.ssh(
                host,
                &format!("ferry store path-info {system} >/dev/null && echo valid")
            ),
            "valid"
        );
        assert_eq!(
            lab.ssh(host, "ferry store verify >/dev/null && echo clean"),
            "clean"
        );
        // Nothing was activated: no profile link.
        assert_eq!(
            lab.ssh(
                host,
                "test -e /ferry/var/profiles/system && echo yes || echo no"
            ),
            "no"
        );
    }
    // On a terminal the question comes after the plan and names the hosts
    // it changes; answered "n", nothing is activated.
    let (code, screen) = on_a_terminal(&format!("deploy {}", lab.site()), "n\n");
    assert_eq!(code, Some(1), "{screen}");
    let plan_at = screen.find("a1 (app,").unwrap_or(usize::MAX);
    let question_at = screen
        .find("deploy `t-copyonly` on a1, a2, a3? [y/N]")
        .unwrap_or(0);
    assert!(plan_at < question_at, "the plan comes first:\n{screen}");
    assert!(
        screen.contains("cancelled; nothing was touched"),
        "{screen}"
    );
    assert_eq!(
        lab.ssh(
            "a1",
            "test -e /ferry/var/profiles/system && echo yes || echo no"
        ),
        "no"
    );

    // A second copy sends nothing new.
    let again = ok(&["deploy", lab.site(), "--copy-only"]);
    assert!(
        again.lines().all(|l| l.contains(" nothing to send: all ")),
        "{again}"
    );
}

#[test]
fn a_deploy_killed_half_way_converges_when_run_again() {
    let lab = LabSite::new("t-converge", 61, 1);
    ok(&["deploy", lab.site(), "--yes"]);
    lab.set_release(2);
    ok(&["build", lab.site()]);

    // Kill the deployer once the first host has switched (each activation
    // sleeps 2 s in its hook, so the others are still waiting).
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["deploy", lab.site(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while lab.ssh("a1", "cat /ferry/var/lib/tick/release 2>/dev/null") != "2" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first host never switched"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let releases: Vec<String> = ["a1", "a2", "a3"]
        .iter()
        .map(|h| lab.ssh(h, "cat /ferry/var/lib/tick/release"))
        .collect();
    assert!(
        releases.contains(&"1".to_string()),
        "the kill came too late to test anything: {releases:?}"
    );

    // Run again: every host ends on release 2, and the hosts that had
    // switched are not activated a second time.
    let out = ok(&["deploy", lab.site(), "--yes"]);
    for host in ["a1", "a2", "a3"] {
        assert_eq!(
            lab.ssh(host, "cat /ferry/var/lib/tick/release"),
            "2",
            "{host}: {out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("a1") && l.contains("unchanged")),
        "{out}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", lab.site(), "--json"])).unwrap();
    for host in status.as_array().unwrap() {
        assert_eq!(host["reachable"], true, "{host}");
        assert!(
            host["status"]["pending_confirmation"].is_null(),
            "{host}\n--- re-run:\n{out}"
        );
    }
}

/// `ferry plan` compared with the deployer's record only, so it went stale
/// after a host-level rollback (`unchanged` where a deploy would restart the
/// service), and `deploy --dry-run` said "no site generation yet" however
/// many were recorded. Plan asks the hosts now (`--offline` keeps the
/// recorded view), and host-level rollbacks are recorded, so the recorded
/// view is true too.
#[test]
fn plan_asks_the_hosts_and_host_level_rollbacks_are_recorded() {
    let lab = LabSite::new("t-planlive", 62, 1);
    ok(&["deploy", lab.site(), "--yes"]);
    lab.set_release(2);
    ok(&["deploy", lab.site(), "--yes"]);
    let rolled = ok(&[
        "rollback",
        lab.site(),
        "--on",
        "a1",
        "--host-generation",
        "1",
    ]);
    // The deployer's state dir is the machine's: numbers go on across runs.
    let recorded = rolled
        .split("recorded site generation ")
        .nth(1)
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no site generation recorded: {rolled}"));

    let changing = |plan: &str| -> Vec<String> {
        plan.lines()
            .filter(|l| l.starts_with('a') && l.ends_with("):"))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    let live = ok(&["plan", lab.site()]);
    assert!(
        live.starts_with("site `t-planlive`: compared with what each host runs now"),
        "{live}"
    );
    assert_eq!(changing(&live), ["a1"], "{live}");
    assert!(live.contains("  restart  tick"), "{live}");
    assert_eq!(live.matches(": unchanged").count(), 2, "{live}");

    let offline = ok(&["plan", lab.site(), "--offline"]);
    assert!(
        offline.contains(&format!("compared with site generation {recorded}")),
        "{offline}"
    );
    assert_eq!(changing(&offline), ["a1"], "{offline}");

    let dry = ok(&["deploy", lab.site(), "--dry-run", "--yes"]);
    assert!(!dry.contains("no site generation yet"), "{dry}");
    assert!(
        dry.contains("compared with what each host runs now"),
        "{dry}"
    );
    assert_eq!(changing(&dry), ["a1"], "{dry}");

    // With `--diff`, what a1 moves back to is shown line by line, against
    // the system the host itself reported.
    for diff in [
        ok(&["deploy", lab.site(), "--dry-run", "--diff", "--yes"]),
        ok(&["plan", lab.site(), "--diff"]),
    ] {
        assert!(diff.contains("\ndiff app (a1): "), "{diff}");
        assert!(diff.contains("+++ b/services/tick.json\n"), "{diff}");
        assert!(diff.contains("echo 1 > $STATE_DIRECTORY"), "{diff}");
        assert!(diff.contains("echo 2 > $STATE_DIRECTORY"), "{diff}");
        assert_eq!(diff.matches("\ndiff app (").count(), 1, "{diff}");
    }

    // On a terminal the question names only the host the deploy changes.
    let (code, screen) = on_a_terminal(&format!("deploy {}", lab.site()), "n\n");
    assert_eq!(code, Some(1), "{screen}");
    assert!(
        screen.contains("deploy `t-planlive` on a1? [y/N]"),
        "unchanged a2 and a3 are not asked about:\n{screen}"
    );

    // `gc` on a host keeps the agent it runs (its store path is rooted):
    // the `ferry` on the host's PATH still runs, and the deployer still
    // reaches the host without sending the agent again.
    let after_gc = lab.ssh(
        "a2",
        "ferry gc >/dev/null && test -x \"$(readlink -f /ferry/var/bin/ferry)\" && ferry --version",
    );
    assert!(after_gc.starts_with("ferry "), "{after_gc}");
    let status = ok(&["status", lab.site(), "--on", "a2"]);
    assert!(status.contains("a2"), "{status}");
}

/// A rotated secret was never delivered while the system stayed the same.
/// The plan shows the rotation now (the deployer compares salted digests the
/// host reports with the values it would send), and the deploy delivers it
/// and restarts exactly the service that reads it.
#[test]
fn a_rotated_secret_is_planned_delivered_and_restarts_only_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.conf");
    let std_conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("host-classes/std.conf");
    std::fs::write(
        &site,
        format!(
            r#"
import "{std}"
site = "t-rotate"
secret token {{ file = "./token" }}
class app {{
  include std.base
  service reader {{
    exec = "${{std.busybox}}/bin/sh -c '${{std.busybox}}/bin/cat ${{token}} > $STATE_DIRECTORY/seen; exec ${{std.busybox}}/bin/sleep 100000'"
  }}
  service other {{
    exec = "${{std.busybox}}/bin/sleep 100000"
  }}
}}
inventory = lab {{
  subnet = "10.237.63.0/24"
  hosts = [ {{ name = "r1", class = app }} ]
}}
"#,
            std = std_conf.display()
        ),
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "one").unwrap();
    let site = site.to_str().unwrap();
    ok(&["lock", site]);
    ok(&["lab", "up", site]);
    let _down = LabDown(site);
    let seen = || {
        let out = Command::new("ssh")
            .args(["-F", "/run/ferry-lab/t-rotate/ssh_config", "r1"])
            .arg("cat /ferry/var/lib/reader/seen")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let pids = || -> (u64, u64) {
        let hosts: serde_json::Value =
            serde_json::from_str(&ok(&["status", site, "--json"])).unwrap();
        let services = hosts[0]["status"]["services"].as_array().unwrap().clone();
        let pid = |name: &str| {
            services
                .iter()
                .find(|s| s["name"] == name)
                .and_then(|s| s["pid"].as_u64())
                .unwrap_or_else(|| panic!("{name} has no pid: {hosts}"))
        };
        (pid("reader"), pid("other"))
    };
    ok(&["deploy", site, "--yes"]);
    assert_eq!(seen(), "one");
    let (reader, other) = pids();

    std::fs::write(&token, "two").unwrap();
    let plan = ok(&["plan", site]);
    assert!(plan.contains("  secrets  rotated: token"), "{plan}");
    assert!(plan.contains("  restart  reader\n"), "{plan}");
    assert!(plan.contains("(the same)"), "{plan}");
    ok(&["deploy", site, "--yes"]);
    assert_eq!(seen(), "two");
    let (reader_now, other_now) = pids();
    assert_ne!(reader_now, reader, "the reader restarted");
    assert_eq!(other_now, other, "the other service was not touched");

    let plan = ok(&["plan", site]);
    assert!(
        plan.contains("r1 (app, ") && plan.contains("): unchanged"),
        "{plan}"
    );
}

/// `https://` health checks passed `check` and `build` but hosts refused
/// them, so every deploy with one rolled back. On a lab host, a service runs
/// a real TLS server (Debian's openssl from its closure, `s_server`) with a
/// certificate of a test CA: the check that names the CA (`ca = …`)
/// passes, and the one that trusts only the default roots rolls the deploy
/// back, saying why.
#[test]
fn an_https_health_check_passes_against_a_real_tls_server_its_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, _key) = crate::test_pki::test_pki(dir.path());
    let read = |file: &std::path::Path| std::fs::read_to_string(file).unwrap();
    let (ca, cert) = (read(&ca), read(&cert));
    let std_conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("host-classes/std.conf");
    let site = dir.path().join("site.conf");
    let write = |release: u32, ca_arg: &str| {
        std::fs::write(
            &site,
            format!(
                r#"
import "{std}"
site = "t-https"
package openssl = debian("openssl")
file ca_pem {{ text = """
{ca}""" }}
file server_pem {{ text = """
{cert}""" }}
secret server_key {{ file = "./server.key" }}
class web {{
  include std.base
  service tls {{
    exec = "exec ${{openssl}}/bin/openssl s_server -quiet -www -accept 8443 -cert ${{server_pem}} -key ${{server_key}}"
    env = {{ RELEASE = "{release}" }}
    health = http("https://127.0.0.1:8443/"{ca_arg}, timeout = 2s, retries = 20, interval = 250ms)
  }}
}}
inventory = lab {{
  subnet = "10.237.64.0/24"
  hosts = [ {{ name = "t1", class = web }} ]
}}
"#,
                std = std_conf.display()
            ),
        )
        .unwrap()
    };
    write(1, r#", ca = "${ca_pem}""#);
    let site = site.to_str().unwrap();
    ok(&["lock", site]);
    ok(&["lab", "up", site]);
    let _down = LabDown(site);
    let deployed = ok(&["deploy", site, "--yes"]);
    assert!(deployed.contains("activated generation 1"), "{deployed}");

    write(2, "");
    let out = ferry(&["deploy", site, "--yes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("UnknownIssuer"), "{text}");
    let status = ok(&["status", site]);
    assert!(status.starts_with("t1: generation 1, "), "{status}");
}

/// A hand-edited file and a deleted object in a host's active closure went
/// unnoticed by `status`, `plan` and `deploy`, and the copy trusted the
/// host's database, so the deleted object was never sent again.
/// `status --verify` lists both and exits 1; `deploy --repair` sends them
/// again and restarts the host's services; a copy sends a deleted object
/// again even without `--repair`.
#[test]
fn drift_is_found_by_status_verify_and_repaired_by_deploy_repair() {
    let lab = LabSite::new("t-drift", 65, 1);
    ok(&["deploy", lab.site(), "--yes"]);
    let object = |host: &str, name: &str| {
        let found = lab.ssh(host, &format!("ls /ferry/store | grep -m1 -- '-{name}-'"));
        assert!(!found.is_empty(), "no {name} object on {host}");
        format!("/ferry/store/{found}")
    };
    let edited = object("a1", "busybox");
    let deleted = object("a1", "coreutils");
    lab.ssh(
        "a1",
        &format!("f=$(find {edited} -type f | head -n1); chmod u+w \"$f\" && printf x >> \"$f\""),
    );
    lab.ssh("a1", &format!("chmod -R u+w {deleted} && rm -rf {deleted}"));

    let status = ferry(&["status", lab.site(), "--on", "a1", "--verify"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!("  drift: {edited}: its content hashes to")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("  drift: {deleted}: its object is missing")),
        "{shown}"
    );
    assert!(String::from_utf8_lossy(&status.stderr).contains("--repair"));

    let dry = ok(&[
        "deploy",
        lab.site(),
        "--on",
        "a1",
        "--repair",
        "--dry-run",
        "--yes",
    ]);
    assert!(
        dry.contains("  repair   2 modified or missing path(s) sent again"),
        "{dry}"
    );
    assert!(dry.contains("  restart  hostinfo, tick"), "{dry}");
    let before = lab.ssh(
        "a1",
        "cat /ferry/var/lib/tick/release; echo; stat -c %Y /ferry/var/lib/tick/release",
    );
    ok(&["deploy", lab.site(), "--on", "a1", "--repair", "--yes"]);
    let verified = ok(&["status", lab.site(), "--on", "a1", "--verify"]);
    assert!(verified.contains(" none modified or missing"), "{verified}");
    let after = lab.ssh(
        "a1",
        "cat /ferry/var/lib/tick/release; echo; stat -c %Y /ferry/var/lib/tick/release",
    );
    assert_ne!(before, after, "tick did not restart (it rewrites its file)");

    // Without --repair: a copy no longer trusts the database for an object
    // that is gone from the disk.
    let gone = object("a2", "coreutils");
    lab.ssh("a2", &format!("chmod -R u+w {gone} && rm -rf {gone}"));
    lab.set_release(2);
    ok(&["deploy", lab.site(), "--on", "a2", "--yes"]);
    let verified = ok(&["status", lab.site(), "--on", "a2", "--verify"]);
    assert!(verified.contains(" none modified or missing"), "{verified}");
}

/// A load balancer in front of web hosts that answer with their own address.
fn balancer_site(dir: &Path, webs: usize) -> PathBuf {
    let std_conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("host-classes/std.conf");
    let hosts: Vec<String> = std::iter::once(r#"{ name = "lb1", class = lb }"#.to_string())
        .chain((1..=webs).map(|i| format!(r#"{{ name = "web{i}", class = web }}"#)))
        .collect();
    let site = dir.join("site.conf");
    std::fs::write(
        &site,
        format!(
            r#"
import "{std}"
site = "t-lbgrow"
let who = text_file("who.conf", """
  daemon off;
  pid nginx.pid;
  error_log stderr;
  events {{}}
  http {{
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
    server {{
      listen 8080;
      location = /health {{ return 200 "ok\n"; }}
      location / {{ return 200 "$server_addr\n"; }}
    }}
  }}
""")
class web {{
  include std.base
  service nginx {{
    state_dirs = ["tmp"]
    exec = "${{std.nginx}}/sbin/nginx -e stderr -p $STATE_DIRECTORY -c ${{who}}"
    health = http("http://127.0.0.1:8080/health")
  }}
}}
class lb {{
  include std.base
  service balancer = std.load_balancer(web, backend_port = 8080) // {{ requires = [web.nginx] }}
}}
inventory = lab {{
  subnet = "10.237.207.0/24"
  hosts = [ {} ]
}}
"#,
            hosts.join(", "),
            std = std_conf.display()
        ),
    )
    .unwrap();
    site
}

/// The backends that answered `count` requests to the balancer.
fn backends_answering(address: &str, count: usize) -> std::collections::BTreeSet<String> {
    use std::io::{Read, Write};
    (0..count)
        .filter_map(|_| {
            let mut stream = std::net::TcpStream::connect((address, 80)).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply).ok()?;
            Some(reply.rsplit("\r\n\r\n").next()?.trim().to_string())
        })
        .collect()
}

/// Seed-level behaviour: the fleet changes size at deploy time. A web host
/// added behind the balancer: `lab up` adds it and leaves the others
/// running, the plan changes only the new host and the balancer's config,
/// and after the deploy the balancer spreads requests over every web host.
/// (Its first deploy also pins a fix: `std.load_balancer`'s nginx
/// crash-looped on any host without Debian's `/var/lib/nginx`, as it set
/// only two of nginx's five temp paths.)
#[test]
fn a_web_host_added_behind_the_balancer_changes_only_it_and_the_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let site = balancer_site(dir.path(), 2);
    let site = site.to_str().unwrap();
    let _down = LabDown(site);
    ok(&["lock", site]);
    ok(&["lab", "up", site]);
    ok(&["deploy", site, "--yes"]);
    let lb = "10.237.207.2";
    assert_eq!(
        backends_answering(lb, 6),
        ["10.237.207.3", "10.237.207.4"].map(String::from).into(),
    );

    balancer_site(dir.path(), 3);
    let up = ok(&["lab", "up", site]);
    for host in ["lb1", "web1", "web2"] {
        assert!(
            up.lines()
                .any(|l| l.trim_start().starts_with(host) && l.ends_with("kept running")),
            "{up}"
        );
    }
    assert!(
        up.lines()
            .any(|l| l.trim_start().starts_with("web3") && l.ends_with(" new")),
        "{up}"
    );

    let plan = ok(&["plan", site, "--diff"]);
    let changing: Vec<&str> = plan
        .lines()
        .filter(|l| l.ends_with("):") && !l.starts_with(' '))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(changing, ["lb1", "web3"], "{plan}");
    assert_eq!(plan.matches(": unchanged").count(), 2, "{plan}");
    assert!(plan.contains("files    nginx-lb-80.conf\n"), "{plan}");
    assert!(
        plan.contains(" server 10.237.207.4:8080;\n+    server 10.237.207.5:8080;\n"),
        "{plan}"
    );

    ok(&["deploy", site, "--yes"]);
    assert_eq!(
        backends_answering(lb, 9),
        ["10.237.207.3", "10.237.207.4", "10.237.207.5"]
            .map(String::from)
            .into(),
    );
}

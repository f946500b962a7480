//! Host activation through the agent (`HostSession`) on real lab hosts over real SSH (needs root): upgrade, failed health check, magic rollback, a session killed mid-activation, secrets, generations.
use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry::activate::generations::Profiles;
use ferry::activate::{ActivationReport, HostStatus, Manifest, Outcome};
use ferry::build::site_lock::{inputs_for_build, AptRoot};
use ferry::build::{build_site, select_classes, BuildOptions, Silent};
use ferry::transport::bootstrap::{AgentBinary, AgentSettings};
use ferry::transport::copy::AgentSource;
use ferry::transport::session::{host_env, ActivateRequest, HostSession, SessionOptions};
use ferry::transport::ssh::SshSettings;
use ferry::transport::{copy_closure, CopyOptions};
use ferry_lang::inventory::{HostEntry, LabKind};
use ferry_store::StorePath;

use common::{text, Fleet};

/// Shared with the other tests: downloaded `.deb`s, verified on every use.
const DEB_CACHE: &str = "/var/cache/ferry-test/debian";

/// A small site on `root` lab hosts (each boots systemd in a Debian root of
/// its own, without the deployer's `/usr`), whose software is Debian's from
/// the closure (`std.system`, `std.busybox`): class `web` serves `version`
/// with busybox httpd on port 8080 and reads secret `token`; its health check asks `health_port`
/// (8080 passes, anything else fails); `idle` never changes. Class `plain`
/// references no secret. Its lab inventory names the fleet's hosts `h0`
/// (web) and `h1` (plain), and `h2`, which does not exist.
fn site_text(
    name: &str,
    subnet: &str,
    version: &str,
    health_port: u16,
    health_command: &str,
) -> String {
    let repo = env!("CARGO_MANIFEST_DIR");
    format!(
        r#"
import "{repo}/host-classes/std.conf"

site = "{name}"

inventory = lab {{
  subnet = "{subnet}"
  kind = "root"
  hosts = [{{ name = "h0", class = web }}, {{ name = "h1", class = plain }}, {{ name = "h2", class = plain }}]
}}

secret token {{ file = "./token" }}

class web {{
  packages = [std.system, std.busybox]
  service www {{
    exec = "mkdir -p $STATE_DIRECTORY/www && echo {version} > $STATE_DIRECTORY/www/index.html && exec ${{std.busybox}}/bin/busybox httpd -f -p 8080 -h $STATE_DIRECTORY/www"
    secrets = [token]
    health = http("http://127.0.0.1:{health_port}/index.html", timeout = 2s, retries = 1, interval = 1s)
  }}
  service idle {{
    exec = "exec ${{std.busybox}}/bin/busybox sleep 1000000"
    health = command("{health_command}", timeout = 20s, retries = 0)
  }}
}}

class plain {{
  packages = [std.system, std.busybox]
  service idle {{
    exec = "exec ${{std.busybox}}/bin/busybox sleep 1000000"
  }}
}}
"#
    )
}

/// The fleet plus what the tests need to activate on it.
struct Deployer {
    fleet: Fleet,
    binary: AgentBinary,
    options: SessionOptions,
    site_dir: PathBuf,
    secret: String,
    name: String,
    subnet: String,
}

impl Deployer {
    fn new(name: &str, subnet: &str, hosts: usize) -> Deployer {
        let fleet = Fleet::up_kind(name, subnet, hosts, LabKind::Root);
        let binary =
            AgentBinary::add_to_store(&fleet.store, Path::new(env!("CARGO_BIN_EXE_ferry")))
                .unwrap();
        let options = SessionOptions {
            ssh: SshSettings {
                config_file: Some(fleet.lab.ssh_config()),
                options: Vec::new(),
                keepalive: None,
            },
            agent: AgentSettings {
                store_dir: fleet.store_dir(),
                state_dir: fleet.state_dir(),
            },
        };
        let site_dir = fleet.root.join("site");
        std::fs::create_dir_all(&site_dir).unwrap();
        let secret = format!("s3cret-{}-{}", name, std::process::id());
        std::fs::write(site_dir.join("token"), &secret).unwrap();
        Deployer {
            fleet,
            binary,
            options,
            site_dir,
            secret,
            name: name.to_string(),
            subnet: subnet.to_string(),
        }
    }

    /// Builds the site variant and returns (site, system of `class`).
    fn build(
        &self,
        version: &str,
        health_port: u16,
        health_command: &str,
        class: &str,
    ) -> (ferry_lang::Site, StorePath) {
        let file = self.site_dir.join("site.conf");
        std::fs::write(
            &file,
            site_text(
                &self.name,
                &self.subnet,
                version,
                health_port,
                health_command,
            ),
        )
        .unwrap();
        let site = ferry::site::load_site(&file).unwrap_or_else(|e| panic!("{e:?}"));
        // Every variant asks for the same Debian packages: one lock, made once.
        if !file.with_extension("lock").exists() {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
                .arg("lock")
                .arg(&file)
                .output()
                .unwrap();
            assert!(out.status.success(), "ferry lock: {}", text(&out));
        }
        let debian = inputs_for_build(
            &site,
            &file,
            Path::new(DEB_CACHE),
            &AptRoot(PathBuf::from("/")),
        )
        .unwrap();
        let classes = select_classes(&site, &[class.to_string()]).unwrap();
        let options = BuildOptions {
            jobs: 1,
            host_state_dir: self.fleet.state_dir(),
            debian,
            ..BuildOptions::default()
        };
        let built = build_site(&self.fleet.store, &site, &classes, &options, &Silent).unwrap();
        let system = built.systems[class].clone();
        (site, system)
    }

    fn host(&self, name: &str) -> HostEntry {
        self.fleet
            .lab
            .inventory()
            .into_iter()
            .find(|h| h.name == name)
            .unwrap()
    }

    fn copy(&self, host: &str, systems: &[StorePath]) {
        let options = CopyOptions {
            ssh: self.options.ssh.clone(),
            max_parallel: 1,
            agent: self.options.agent.clone(),
            progress: None,
        };
        let report = copy_closure(
            &self.fleet.store,
            AgentSource::Ready(&self.binary),
            &[self.host(host)],
            systems,
            &options,
        )
        .unwrap();
        assert!(report.all_ok(), "{report:?}");
    }

    fn session(&self, host: &str) -> HostSession {
        HostSession::open(
            &self.fleet.store,
            &self.binary,
            &self.host(host),
            &self.options,
        )
        .unwrap()
    }

    fn request(
        &self,
        site: &ferry_lang::Site,
        host: &str,
        system: &StorePath,
        confirm_within_ms: Option<u64>,
    ) -> ActivateRequest {
        let manifest = Manifest::load(&self.fleet.store.real_path(system)).unwrap();
        ActivateRequest {
            system: system.as_str().to_string(),
            host_env: host_env(&self.host(host)),
            confirm_within_ms,
            secrets: ferry::deploy::secrets::read_secrets(site, &manifest).unwrap(),
        }
    }

    fn status(&self, host: &str) -> HostStatus {
        let mut session = self.session(host);
        let status = session.status().unwrap();
        session.close().unwrap();
        status
    }

    /// Polls the host's status until `done` holds (bounded).
    fn wait_for(
        &self,
        host: &str,
        limit: Duration,
        done: impl Fn(&HostStatus) -> bool,
    ) -> HostStatus {
        let started = Instant::now();
        loop {
            let status = self.status(host);
            if done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "{host} did not converge: {status:#?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// What `www` on `host` serves, asked from lab host `client`.
    fn fetch(&self, client: &str, host: &str) -> String {
        let address = &self.host(host).address;
        // The client's own Debian root has bash, whose /dev/tcp is the client.
        let out = self.fleet.ssh(
            client,
            &format!(
                "exec 3<>/dev/tcp/{address}/8080 && printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"
            ),
        );
        assert!(out.status.success(), "{:?} {}", out.status, text(&out));
        let answer = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        let (head, body) = answer.split_once("\n\n").unwrap_or((&answer, ""));
        assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
        body.trim().to_string()
    }

    /// The host's state dir, seen from the root namespace.
    fn host_state(&self, host: &str) -> PathBuf {
        self.fleet
            .lab
            .host_private_dir(host, &self.fleet.root)
            .join("var")
    }
}

fn pid_of(status: &HostStatus, service: &str) -> u32 {
    status
        .services
        .iter()
        .find(|s| s.name == service)
        .and_then(|s| s.pid)
        .unwrap_or_else(|| panic!("{service} has no pid: {status:#?}"))
}

fn activated(report: &ActivationReport) -> u64 {
    match &report.outcome {
        Outcome::Activated { generation } => *generation,
        other => panic!("not activated: {other:?}\n{report:#?}"),
    }
}

/// Every regular file under `dir` (not following symlinks).
fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&entry.path(), found);
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(!files.is_empty(), "nothing under {}", dir.display());
    files
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn upgrade_failed_health_check_secrets_and_rollback_to_needs_root() {
    let d = Deployer::new("t-act", "10.237.40.0/24", 2);
    let (site1, v1) = d.build("version-one", 8080, "true", "web");
    let (_, v2) = d.build("version-two", 8080, "true", "web");
    let (site3, v3) = d.build("version-two", 8081, "true", "web");
    let (site_plain, plain) = d.build("version-one", 8080, "true", "plain");
    d.copy("h0", &[v1.clone(), v2.clone(), v3.clone()]);
    d.copy("h1", std::slice::from_ref(&plain));

    // v1: the service answers from another lab host.
    let mut session = d.session("h0");
    let report = session
        .activate(&d.request(&site1, "h0", &v1, None))
        .unwrap();
    assert_eq!(activated(&report), 1);
    assert_eq!(d.fetch("h1", "h0"), "version-one");
    let before = session.status().unwrap();
    assert_eq!(before.generation, Some(1));
    assert_eq!(
        before.system.as_deref(),
        Some(d.fleet.store.real_path(&v1).as_path())
    );

    // v2: answers v2; only the changed service was restarted.
    let report = session
        .activate(&d.request(&site1, "h0", &v2, None))
        .unwrap();
    assert_eq!(activated(&report), 2);
    assert_eq!(report.diff.changed, ["www".to_string()].into());
    assert_eq!(d.fetch("h1", "h0"), "version-two");
    let after = session.status().unwrap();
    assert_ne!(pid_of(&before, "www"), pid_of(&after, "www"));
    assert_eq!(pid_of(&before, "idle"), pid_of(&after, "idle"));
    // Each call is one exchange: handshake, agent status, 2 activations, 2 statuses.
    assert_eq!(session.exchanges(), 6);
    session.close().unwrap();

    // v3's health check fails: back on v2, with the reason.
    let mut session = d.session("h0");
    let report = session
        .activate(&d.request(&site3, "h0", &v3, None))
        .unwrap();
    match &report.outcome {
        Outcome::RolledBack {
            to_generation,
            reason,
        } => {
            assert_eq!(*to_generation, Some(2));
            assert!(reason.contains("8081"), "{reason}");
        }
        other => panic!("v3 was not rolled back: {other:?}"),
    }
    assert_eq!(d.fetch("h1", "h0"), "version-two");
    let status = session.status().unwrap();
    assert_eq!(status.generation, Some(2));
    let last = status.last_activation.expect("a last activation");
    assert!(!last.activated(), "{last:?}");

    // Generations list every one; rollback_to(1) brings v1 back.
    let generations = session.generations().unwrap();
    let numbers: Vec<u64> = generations.iter().map(|g| g.number).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    let current: Vec<u64> = generations
        .iter()
        .filter(|g| g.current)
        .map(|g| g.number)
        .collect();
    assert_eq!(current, vec![2]);
    assert_eq!(
        generations[0].system,
        d.fleet.store.real_path(&v1).to_string_lossy()
    );
    assert!(generations.iter().all(|g| g.created > 1_700_000_000));
    let report = session.rollback_to(1).unwrap();
    assert_eq!(activated(&report), 1);
    assert_eq!(d.fetch("h1", "h0"), "version-one");
    assert_eq!(session.status().unwrap().generation, Some(1));
    session.close().unwrap();

    // Secrets: on h0 with mode 0400, in no store, in no log; not on h1,
    // whose agent refuses a secret its system does not reference.
    let mut session = d.session("h1");
    let mut wrong = d.request(&site_plain, "h1", &plain, None);
    wrong.secrets = d.request(&site1, "h0", &v1, None).secrets;
    let refused = session.activate(&wrong).unwrap_err().to_string();
    assert!(
        refused.contains("secret token, which no service of"),
        "{refused}"
    );
    assert!(!refused.contains(&d.secret), "{refused}");
    let report = session
        .activate(&d.request(&site_plain, "h1", &plain, None))
        .unwrap();
    assert_eq!(activated(&report), 1);
    session.close().unwrap();
    let on_host = d.host_state("h0").join("secrets").join("token");
    assert_eq!(std::fs::read_to_string(&on_host).unwrap(), d.secret);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&on_host).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o400);
    let needle = d.secret.as_bytes();
    assert_eq!(
        files_containing(&d.fleet.store_dir(), needle),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(&d.fleet.host_store("h0"), needle),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(&d.host_state("h0").join("log"), needle),
        Vec::<PathBuf>::new()
    );
    assert!(!d.host_state("h1").join("secrets").join("token").exists());

    // `ferry status --json` of the whole site: h2 does not exist.
    let site_file = d.site_dir.join("site.conf");
    let out = d.fleet.ferry(&[
        "status",
        "--json",
        "--ssh-option",
        "ConnectTimeout=3",
        site_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hosts[0]["host"], "h0");
    assert_eq!(hosts[0]["status"]["generation"], 1);
    assert_eq!(hosts[1]["host"], "h1");
    assert_eq!(hosts[1]["status"]["generation"], 1);
    assert_eq!(hosts[2]["host"], "h2");
    assert_eq!(hosts[2]["reachable"], false);
    assert!(
        hosts[2]["error"].as_str().unwrap().contains("h2"),
        "{}",
        hosts[2]
    );
    assert_eq!(
        files_containing(&d.host_state("h1"), needle),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn magic_rollback_without_confirmation_and_confirm_over_a_new_session_needs_root() {
    let d = Deployer::new("t-magic", "10.237.41.0/24", 1);
    let (site, v1) = d.build("version-one", 8080, "true", "web");
    let (_, v2) = d.build("version-two", 8080, "true", "web");
    d.copy("h0", &[v1.clone(), v2.clone()]);

    let mut session = d.session("h0");
    assert_eq!(
        activated(
            &session
                .activate(&d.request(&site, "h0", &v1, None))
                .unwrap()
        ),
        1
    );
    // Generation 2 must be confirmed within 3 s; nobody does.
    let report = session
        .activate(&d.request(&site, "h0", &v2, Some(3_000)))
        .unwrap();
    assert_eq!(activated(&report), 2);
    let status = session.status().unwrap();
    assert_eq!(status.pending_confirmation.map(|p| p.generation), Some(2));
    session.close().unwrap();
    let status = d.wait_for("h0", Duration::from_secs(30), |s| s.generation == Some(1));
    assert!(status.pending_confirmation.is_none());
    match status.last_activation.map(|r| r.outcome) {
        Some(Outcome::RolledBack {
            to_generation,
            reason,
        }) => {
            assert_eq!(to_generation, Some(1));
            assert!(reason.contains("not confirmed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.fetch("h0", "h0"), "version-one");
    // `ferry status` says so, with the lab's ssh config found by itself.
    let site_file = d.site_dir.join("site.conf");
    let out = d
        .fleet
        .ferry(&["status", site_file.to_str().unwrap(), "--on", "h0"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.starts_with("h0: generation 1, "), "{shown}");
    assert!(
        shown.contains("rolled back: generation 2 was not confirmed before its deadline"),
        "{shown}"
    );
    assert!(shown.contains("  www: running (pid "), "{shown}");

    // Confirmed over a new session before the deadline: it stays.
    let mut session = d.session("h0");
    let report = session
        .activate(&d.request(&site, "h0", &v2, Some(3_000)))
        .unwrap();
    let generation = activated(&report);
    session.close().unwrap();
    let mut session = d.session("h0");
    assert!(session.confirm(generation).unwrap());
    assert!(!session.confirm(generation).unwrap(), "confirmed twice");
    session.close().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let status = d.status("h0");
    assert_eq!(status.generation, Some(generation));
    assert!(status.pending_confirmation.is_none());
    assert_eq!(d.fetch("h0", "h0"), "version-two");

    // `ferry status` shows a pending confirmation.
    let mut session = d.session("h0");
    let report = session
        .activate(&d.request(&site, "h0", &v1, Some(120_000)))
        .unwrap();
    let pending = activated(&report);
    let out = d
        .fleet
        .ferry(&["status", site_file.to_str().unwrap(), "--on", "h0"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!(
            "pending confirmation: generation {pending} must be confirmed within "
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "else the host goes back to generation {generation}"
        )),
        "{shown}"
    );
    assert!(session.confirm(pending).unwrap());
    session.close().unwrap();

    a_link_lost_mid_activation_ends_before_the_hosts_deadline(&d, pending);
}

/// The link to the host goes down while it activates: the deployer's
/// session ends, saying so, before the host's confirmation deadline has
/// passed (its keepalive is a fraction of the deadline), and the host,
/// unconfirmed, goes back to `previous` by itself.
fn a_link_lost_mid_activation_ends_before_the_hosts_deadline(d: &Deployer, previous: u64) {
    let (site, v3) = d.build("version-three", 8080, "sleep 3", "web");
    d.copy("h0", std::slice::from_ref(&v3));
    let deadline = Duration::from_secs(16);
    let mut options = d.options.clone();
    options.ssh.keepalive = Some(ferry::transport::ssh::keepalive_within(deadline));
    let request = d.request(&site, "h0", &v3, Some(deadline.as_millis() as u64));
    let state = d.host_state("h0");
    let journal = state.join("activation.journal");
    let veth = d.fleet.lab.hosts[0].veth.clone();
    let link = |up: &str| {
        let out = std::process::Command::new("ip")
            .args(["link", "set", &veth, up])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip link set {veth} {up}: {}",
            text(&out)
        );
    };
    let outcome = std::thread::scope(|scope| {
        let activation = scope.spawn(|| {
            let mut session =
                HostSession::open(&d.fleet.store, &d.binary, &d.host("h0"), &options).unwrap();
            session.activate(&request)
        });
        let started = Instant::now();
        while !journal.exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "no journal");
            std::thread::sleep(Duration::from_millis(20));
        }
        link("down");
        activation.join().unwrap()
    });
    let ended_ms = ferry_store::durable::unix_now_ms();
    let error = outcome.unwrap_err().to_string();
    link("up");
    // The bridge port takes a moment to forward again.
    let started = Instant::now();
    while HostSession::open(&d.fleet.store, &d.binary, &d.host("h0"), &d.options).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "h0 unreachable after link up"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(error.contains("was lost during its activation"), "{error}");
    // The host finished the activation and waits for a confirmation that
    // cannot come; the deployer had given up before that wait was over.
    let started = Instant::now();
    let pending: serde_json::Value = loop {
        let read = std::fs::read(state.join("pending-confirmation"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(pending) = read {
            break pending;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no pending confirmation"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let host_deadline = pending["deadline_ms"].as_u64().unwrap();
    assert!(
        ended_ms < host_deadline,
        "the session ended {} ms after the host's deadline",
        ended_ms - host_deadline
    );
    let status = d.wait_for("h0", Duration::from_secs(60), |s| {
        s.generation == Some(previous) && s.pending_confirmation.is_none()
    });
    match status.last_activation.map(|r| r.outcome) {
        Some(Outcome::RolledBack { reason, .. }) => {
            assert!(reason.contains("not confirmed"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.fetch("h0", "h0"), "version-one");
}

/// Kills every `ssh` process that uses the lab's ssh config (the session's
/// transport); returns how many it killed.
fn kill_lab_ssh(fleet: &Fleet) -> usize {
    let config = fleet.lab.ssh_config();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<_> = cmdline
            .split(|b| *b == 0)
            .map(String::from_utf8_lossy)
            .collect();
        if args.first().is_some_and(|a| a == "ssh")
            && args.iter().any(|a| a == config.to_str().unwrap())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed += 1;
        }
    }
    killed
}

#[test]
fn an_activation_completes_on_the_host_when_the_ssh_session_or_the_agent_dies_needs_root() {
    let d = Deployer::new("t-actcut", "10.237.42.0/24", 1);
    // The health check of `idle` takes 3 s: time to cut the session.
    let (site, v1) = d.build("version-one", 8080, "sleep 3", "web");
    d.copy("h0", std::slice::from_ref(&v1));
    let request = d.request(&site, "h0", &v1, None);
    let journal = d.host_state("h0").join("activation.journal");
    let outcome = std::thread::scope(|scope| {
        let activation = scope.spawn(|| {
            let mut session = d.session("h0");
            session.activate(&request)
        });
        let started = Instant::now();
        while !journal.exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "no journal");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(kill_lab_ssh(&d.fleet) > 0);
        activation.join().unwrap()
    });
    assert!(outcome.is_err(), "the session survived: {outcome:?}");
    let status = d.wait_for("h0", Duration::from_secs(30), |s| {
        s.last_activation.is_some()
    });
    assert_eq!(status.generation, Some(1), "{status:#?}");
    assert!(status.last_activation.unwrap().activated());
    assert!(!journal.exists());
    assert_eq!(d.fetch("h0", "h0"), "version-one");
    d.fleet.verify_on_host("h0");

    // Now kill -9 the agent itself mid-activation: the same.
    let (site, v2) = d.build("version-two", 8080, "sleep 3", "web");
    d.copy("h0", std::slice::from_ref(&v2));
    let request = d.request(&site, "h0", &v2, None);
    let outcome = std::thread::scope(|scope| {
        let activation = scope.spawn(|| {
            let mut session = d.session("h0");
            session.activate(&request)
        });
        let started = Instant::now();
        while !journal.exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "no journal");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(kill_agents(&d.fleet.state_dir()).len(), 1);
        activation.join().unwrap()
    });
    assert!(outcome.is_err(), "the session survived: {outcome:?}");
    let status = d.wait_for("h0", Duration::from_secs(30), |s| {
        s.last_activation
            .as_ref()
            .is_some_and(|r| r.target_generation == Some(2))
    });
    assert_eq!(status.generation, Some(2), "{status:#?}");
    assert!(status.last_activation.unwrap().activated());
    assert!(!journal.exists());
    assert_eq!(d.fetch("h0", "h0"), "version-two");
    d.fleet.verify_on_host("h0");

    // The activation process itself killed, before the switch and after it,
    // and then nobody contacts the host: the watchdog that the activation
    // armed before it changed anything converges the host back to
    // generation 2 on its own.
    let state = d.host_state("h0");
    let profiles = Profiles::open(&state).unwrap();
    for (version, after_switch) in [("version-three", false), ("version-four", true)] {
        let (site, system) = d.build(version, 8080, "sleep 3", "web");
        d.copy("h0", std::slice::from_ref(&system));
        let request = d.request(&site, "h0", &system, None);
        let outcome = std::thread::scope(|scope| {
            let activation = scope.spawn(|| {
                let mut session = d.session("h0");
                session.activate(&request)
            });
            let started = Instant::now();
            while !journal.exists() || (after_switch && profiles.current().unwrap() == Some(2)) {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{version}: no switch"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let killed_ms = ferry_store::durable::unix_now_ms();
            let killed = kill_processes(&d.fleet.state_dir(), "activate");
            assert_eq!(killed.len(), 1, "{killed:#?}");
            (killed_ms, activation.join().unwrap())
        });
        let (killed_ms, outcome) = outcome;
        let error = outcome.unwrap_err().to_string();
        assert!(error.contains("without a report"), "{version}: {error}");
        // No contact: only the host's own files are read until it converged.
        let started = Instant::now();
        let report = loop {
            let last = std::fs::read(state.join("last-activation.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<ActivationReport>(&b).ok());
            if let Some(report) = last.filter(|r| r.started_ms >= killed_ms && !journal.exists()) {
                break report;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{version}: h0 did not converge on its own (journal left: {})",
                journal.exists()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            report.outcome,
            Outcome::RolledBack {
                to_generation: Some(2),
                reason: format!(
                    "the activation of generation {} was interrupted",
                    report.target_generation.unwrap()
                ),
            },
            "{version}"
        );
        assert_eq!(profiles.current().unwrap(), Some(2), "{version}");
        let status = d.status("h0");
        assert_eq!(status.generation, Some(2), "{version}: {status:#?}");
        assert!(
            status.recovered.is_none(),
            "{version}: recovered on contact"
        );
        assert_eq!(d.fetch("h0", "h0"), "version-two", "{version}");
        d.fleet.verify_on_host("h0");
    }
}

/// SIGKILLs every agent (`ferry … remote --stdio`) serving `state_dir`;
/// returns the command lines it killed.
fn kill_agents(state_dir: &Path) -> Vec<String> {
    kill_processes(state_dir, "--stdio")
}

/// SIGKILLs every process with `word` and `state_dir` among its arguments;
/// returns their command lines. A child such a process forked and has not
/// yet exec'd (it shows its parent's command line) is not counted: it is
/// not a process of its own yet.
fn kill_processes(state_dir: &Path, word: &str) -> Vec<String> {
    let state_dir = state_dir.to_string_lossy().into_owned();
    let mut matched: Vec<(i32, i32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let (Ok(cmdline), Ok(stat)) = (
            std::fs::read(entry.path().join("cmdline")),
            std::fs::read_to_string(entry.path().join("stat")),
        ) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // `pid (comm) state ppid …`; comm may hold spaces, so split after it.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if args.iter().any(|a| a == word) && args.contains(&state_dir) {
            matched.push((pid, ppid, args.join(" ")));
        }
    }
    let pids: Vec<i32> = matched.iter().map(|m| m.0).collect();
    let mut killed = Vec::new();
    for (pid, ppid, args) in matched {
        if pids.contains(&ppid) {
            continue;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        killed.push(format!("{pid}: {args}"));
    }
    killed
}

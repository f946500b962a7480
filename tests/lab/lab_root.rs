//! Lab hosts of kind `root`: each boots systemd in a Debian root of its own,
//! where the deployer's `/usr` is not visible. Needs root (CI is root), mmdebstrap
//! and systemd-nspawn (scripts/setup.sh), and the machine's apt sources for the
//! first image build.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ferry::lab::{self, LabError, LabKind};
use ferry_lang::inventory::{LabHostSpec, LabSpec};

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ssh(config: &Path, host: &str, command: &str) -> Output {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .arg(host)
        .arg(command)
        .output()
        .unwrap()
}

fn ssh_stdout(config: &Path, host: &str, command: &str) -> String {
    String::from_utf8_lossy(&ssh(config, host, command).stdout)
        .trim()
        .to_string()
}

/// `systemctl is-system-running`, once the machine has finished starting
/// (sshd may answer before every unit is up).
fn settled_system_state(config: &Path, host: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = ssh_stdout(config, host, "systemctl is-system-running");
        let starting = state == "starting" || state == "initializing";
        if !starting || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// Whether `pid` is still a process (a zombie counts until reaped, so wait a moment for the reaper).
fn process_exists(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn root_host_boots_its_own_debian_and_down_removes_every_record_needs_root() {
    let name = "t-rootboot";
    let _ = lab::down(name);
    let tmp = tempfile::Builder::new()
        .prefix("ferry-lab-root-")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("ferry");
    let spec = LabSpec {
        subnet: Some("10.237.183.0/24".to_string()),
        kind: LabKind::Root,
        hosts: vec![LabHostSpec {
            name: "r1".into(),
            class: "web".into(),
            labels: BTreeMap::new(),
        }],
    };
    let lab = lab::up(name, &spec, &root).expect("lab up");
    assert_eq!(lab.kind, LabKind::Root);
    let host = &lab.hosts[0];
    let machine = host
        .machine
        .clone()
        .expect("a root host has a machine record");
    // Recorded in lab.json: what `down` works from.
    assert_eq!(
        lab::load(name).unwrap().hosts[0].machine,
        Some(machine.clone())
    );

    let config = lab.ssh_config();
    // Strict host-key checking against the lab's known_hosts, by name and by address.
    assert_eq!(ssh_stdout(&config, "r1", "hostname"), "r1");
    assert_eq!(ssh_stdout(&config, &host.address, "echo ok"), "ok");
    let state = settled_system_state(&config, "r1");
    assert!(
        state == "running" || state == "degraded",
        "systemctl is-system-running: {state}"
    );
    // PID 1 on the host is systemd, not the deployer's init.
    assert_eq!(ssh_stdout(&config, "r1", "cat /proc/1/comm"), "systemd");
    // The deployer's /usr is not visible on the host.
    for path in ["/usr/bin/python3", "/usr/lib/postgresql"] {
        assert!(Path::new(path).exists(), "the deployer should have {path}");
        assert_eq!(
            ssh_stdout(
                &config,
                "r1",
                &format!("test -e {path} && echo yes || echo no")
            ),
            "no",
            "{path} on the host"
        );
    }
    // The host's private dir is its own, empty at first, and the sessions know it.
    assert_eq!(
        ssh_stdout(&config, "r1", "echo $FERRY_STORE_DIR"),
        root.join("store").to_str().unwrap()
    );
    assert_eq!(
        ssh_stdout(&config, "r1", &format!("ls -A {}", root.display())),
        ""
    );

    let (_, statuses) = lab::status(name).unwrap();
    assert!(
        statuses[0].sshd_running && statuses[0].ssh_answers,
        "{statuses:?}"
    );

    let pid = lab::machine::leader(&machine).expect("the machine's nspawn runs");
    // A second `up` keeps the running machine.
    lab::up(name, &spec, &root).expect("second lab up");
    assert_eq!(lab::machine::leader(&machine), Some(pid));
    assert!(mounts_under(&lab.dir()).contains(&machine.root.to_string_lossy().into_owned()));

    assert!(lab::down(name).unwrap());
    assert!(!process_exists(pid), "nspawn {pid} survived `lab down`");
    assert_eq!(lab::machine::leader(&machine), None);
    assert!(!Path::new("/run/netns").join(&host.netns).exists());
    assert!(!Path::new("/sys/class/net").join(&host.veth).exists());
    assert!(!Path::new("/sys/class/net").join(&lab.bridge).exists());
    assert_eq!(mounts_under(&lab.dir()), Vec::<String>::new());
    assert!(!lab.dir().exists());
    assert!(matches!(lab::load(name), Err(LabError::NotFound(_))));
    // The shared image is untouched by the host's writes.
    assert!(!machine
        .image
        .join("etc/ssh/sshd_config.d/ferry-lab.conf")
        .exists());
    assert!(!lab::down(name).unwrap(), "a second `down` finds nothing");
}

/// A site of one root host whose service reads a file from its closure.
struct RootSite {
    dir: tempfile::TempDir,
    site: PathBuf,
}

const SITE: &str = "t-rootdeploy";

impl RootSite {
    fn new() -> RootSite {
        let dir = tempfile::Builder::new()
            .prefix("ferry-lab-root-")
            .tempdir()
            .unwrap();
        let site = dir.path().join("site.conf");
        std::fs::write(
            &site,
            format!(
                r#"
site = "{SITE}"
class app {{
  service tick {{
    exec = "/bin/sh -c 'cat ${{text_file("greeting", "hello from the closure")}} > /run/tick-seen; exec sleep 100000'"
  }}
  service ticker {{
    exec = "sleep 100001; true"
    user = "ferry-ticker"
  }}
}}
inventory = lab {{
  subnet = "10.237.184.0/24"
  kind = "root"
  hosts = [ {{ name = "r1", class = app }}, {{ name = "r2", class = app }} ]
}}
"#
            ),
        )
        .unwrap();
        RootSite { dir, site }
    }

    fn ferry(&self, args: &[&str]) -> Output {
        let root = self.dir.path().join("ferry");
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("--store-dir")
            .arg(root.join("store"))
            .arg("--state-dir")
            .arg(root.join("var"))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(out.status.success(), "ferry {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn site(&self) -> &str {
        self.site.to_str().unwrap()
    }
}

impl Drop for RootSite {
    fn drop(&mut self) {
        let _ = self.ferry(&["lab", "down", SITE]);
    }
}

#[test]
fn copy_and_deploy_to_a_root_host_run_the_service_under_its_systemd_and_create_its_user_needs_root()
{
    let _ = lab::down(SITE);
    let site = RootSite::new();
    let up = site.ok(&["lab", "up", site.site()]);
    assert!(up.contains("host kind: root\n"), "{up}");
    let status = site.ok(&["lab", "status", site.site()]);
    assert!(
        status.starts_with(&format!("lab `{SITE}` of root hosts on 10.237.184.0/24")),
        "{status}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&site.ok(&["lab", "status", site.site(), "--json"])).unwrap();
    assert_eq!(report["kind"], "root");
    let lab = lab::load(SITE).unwrap();
    let config = lab.ssh_config();

    // `ferry copy` of the class closure: the bootstrap uploads the agent,
    // which runs on the host's own libc.
    let built: serde_json::Value =
        serde_json::from_str(&site.ok(&["build", site.site(), "--json"])).unwrap();
    let system = built["systems"]["app"].as_str().unwrap().to_string();
    let config_text = config.to_str().unwrap();
    site.ok(&[
        "copy",
        "--ssh-config",
        config_text,
        "--to",
        "r1",
        "--",
        &system,
    ]);
    assert_eq!(
        ssh_stdout(
            &config,
            "r1",
            &format!("ferry store path-info {system} >/dev/null && echo valid")
        ),
        "valid"
    );

    // The Debian root has no such user: activation creates it.
    assert_eq!(
        ssh_stdout(&config, "r1", "getent passwd ferry-ticker || echo none"),
        "none"
    );
    site.ok(&["deploy", site.site()]);
    let entry = ssh_stdout(&config, "r1", "getent passwd ferry-ticker");
    let fields: Vec<&str> = entry.split(':').collect();
    assert_eq!(fields.len(), 7, "{entry}");
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system user: {entry}"
    );
    assert_eq!(fields[6], "/usr/sbin/nologin", "{entry}");
    let ticker_pid = ssh_stdout(
        &config,
        "r1",
        "systemctl show -p MainPID --value ferry-ticker.service",
    );
    assert_eq!(
        ssh_stdout(&config, "r1", &format!("stat -c %U /proc/{ticker_pid}")),
        "ferry-ticker"
    );
    let unit = "ferry-tick.service";
    assert_eq!(
        ssh_stdout(&config, "r1", &format!("systemctl is-active {unit}")),
        "active"
    );
    // The host's systemd runs it: its unit file is on the host and its
    // process is a child of the host's PID 1.
    assert_eq!(
        ssh_stdout(
            &config,
            "r1",
            &format!("test -f /etc/systemd/system/{unit} && echo yes")
        ),
        "yes"
    );
    assert!(!Path::new("/etc/systemd/system").join(unit).exists());
    let main_pid = ssh_stdout(
        &config,
        "r1",
        &format!("systemctl show -p MainPID --value {unit}"),
    );
    let stat = ssh_stdout(&config, "r1", &format!("cat /proc/{main_pid}/stat"));
    let ppid = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1))
        .unwrap_or_default()
        .to_string();
    assert_eq!(ppid, "1", "stat of the service's main process: {stat}");
    // The service read its file from the closure on the host.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while seen.is_empty() && Instant::now() < deadline {
        seen = ssh_stdout(&config, "r1", "cat /run/tick-seen 2>/dev/null");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen, "hello from the closure");

    // Each machine has a control group of its own: stopping a unit on r1 ends
    // all of its processes (the shell and its child), while the unit of the
    // same name on r2 keeps running. With one group shared by both machines,
    // r1's systemd could not kill the group and left the child running.
    let sleepers = |host: &str| {
        ssh_stdout(
            &config,
            host,
            "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done 2>/dev/null | grep -c '^sleep 100001' || true",
        )
    };
    assert_eq!((sleepers("r1"), sleepers("r2")), ("1".into(), "1".into()));
    let stop = ssh(&config, "r1", "systemctl stop ferry-ticker.service");
    assert!(stop.status.success(), "{}", text(&stop));
    assert_eq!((sleepers("r1"), sleepers("r2")), ("0".into(), "1".into()));
    let groups: Vec<PathBuf> = lab
        .hosts
        .iter()
        .filter_map(|h| h.machine.as_ref())
        .flat_map(|m| lab::cgroup::groups(&m.name))
        .collect();
    assert!(!groups.is_empty());
    assert!(groups.iter().all(|g| g.exists()), "{groups:?}");

    site.ok(&["lab", "down", site.site()]);
    assert!(groups.iter().all(|g| !g.exists()), "{groups:?}");
    assert!(!lab.dir().exists());
    assert_eq!(mounts_under(&lab.dir()), Vec::<String>::new());
}

//! The lab as a real fleet (needs root): namespaces, sshd per host, private dirs, clean teardown.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ferry::lab;
use ferry_lang::inventory::{LabHostSpec, LabSpec};

fn spec(subnet: &str, n: usize) -> LabSpec {
    LabSpec {
        subnet: Some(subnet.to_string()),
        kind: Default::default(),
        hosts: (0..n)
            .map(|i| LabHostSpec {
                name: format!("h{i}"),
                class: if i == 0 { "db".into() } else { "web".into() },
                labels: BTreeMap::from([("datacenter".to_string(), format!("dc{}", i % 2))]),
            })
            .collect(),
    }
}

fn ssh(lab: &lab::Lab, host: &str, command: &str) -> std::process::Output {
    Command::new("ssh")
        .arg("-F")
        .arg(lab.ssh_config())
        .arg(host)
        .arg(command)
        .output()
        .expect("run ssh")
}

fn leftovers(lab: &lab::Lab) -> Vec<String> {
    let mut found = Vec::new();
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for host in &lab.hosts {
        if String::from_utf8_lossy(&netns.stdout).contains(&host.netns) {
            found.push(format!("netns {}", host.netns));
        }
        if Path::new("/sys/class/net").join(&host.veth).exists() {
            found.push(format!("link {}", host.veth));
        }
    }
    if Path::new("/sys/class/net").join(&lab.bridge).exists() {
        found.push(format!("bridge {}", lab.bridge));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if mounts.contains(&format!("ferry-{}-", lab.name))
        || mounts.contains(&*lab.dir().to_string_lossy())
    {
        found.push("mount".to_string());
    }
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    if String::from_utf8_lossy(&ps.stdout).contains(&*lab.dir().to_string_lossy()) {
        found.push("process".to_string());
    }
    if lab.dir().exists() {
        found.push(format!("dir {}", lab.dir().display()));
    }
    found
}

#[test]
fn lab_up_gives_private_ssh_hosts_and_down_removes_everything_needs_root() {
    let root = tempfile::tempdir().unwrap();
    let root_dir = root.path().join("ferry");
    let spec = spec("10.237.11.0/24", 3);
    let lab = lab::up("t-fleet", &spec, &root_dir).expect("lab up");
    assert_eq!(lab.hosts[2].address, "10.237.11.4");
    assert_eq!(lab.hosts[1].labels["datacenter"], "dc1");

    // Each host answers over real SSH with strict host-key checking and
    // sees its own private root dir.
    for host in &lab.hosts {
        let out = ssh(
            &lab,
            &host.name,
            &format!(
                "echo {} > {}/who && cat {}/who",
                host.name,
                root_dir.display(),
                root_dir.display()
            ),
        );
        assert!(
            out.status.success(),
            "ssh {}: {}",
            host.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), host.name);
    }
    assert!(
        !root_dir.join("who").exists(),
        "a host wrote into the deployer's dir"
    );
    assert_eq!(
        std::fs::read_to_string(lab.host_private_dir("h1", &root_dir).join("who"))
            .unwrap()
            .trim(),
        "h1"
    );

    // `up` again is idempotent: same hosts, same host keys, still answering.
    let known_before = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let again = lab::up("t-fleet", &spec, &root_dir).expect("second lab up");
    assert_eq!(again, lab);
    assert_eq!(
        std::fs::read_to_string(lab.known_hosts()).unwrap(),
        known_before
    );
    let (_, statuses) = lab::status("t-fleet").unwrap();
    assert!(
        statuses
            .iter()
            .all(|s| s.netns && s.sshd_running && s.ssh_answers),
        "{statuses:?}"
    );

    // An open session must not survive `down`.
    let mut session = Command::new("ssh")
        .arg("-F")
        .arg(lab.ssh_config())
        .args(["h0", "sleep 300"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));

    assert!(lab::down("t-fleet").expect("lab down"));
    let _ = session.wait();
    assert_eq!(leftovers(&lab), Vec::<String>::new());
    assert!(
        !lab::down("t-fleet").expect("second lab down"),
        "second down found something"
    );
    assert!(matches!(
        lab::status("t-fleet"),
        Err(lab::LabError::NotFound(_))
    ));
}

#[test]
fn lab_refuses_duplicate_hosts_and_bad_names() {
    let mut dup = spec("10.237.12.0/24", 2);
    dup.hosts[1].name = "h0".into();
    let err = lab::up("t-dup", &dup, Path::new("/tmp/ferry-t-dup")).unwrap_err();
    assert_eq!(err.to_string(), "the lab declares host `h0` twice");
    let err = lab::up("bad name", &spec("10.237.12.0/24", 1), Path::new("/tmp/x")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("lab name `bad name` is not usable"),
        "{err}"
    );
    assert!(!lab::lab_dir("t-dup").exists());
}

#[test]
fn thirty_hosts_all_answer_needs_root() {
    let root = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let lab = lab::up(
        "t-thirty",
        &spec("10.237.13.0/24", 30),
        &root.path().join("ferry"),
    )
    .expect("lab up");
    let took = started.elapsed();
    let (_, statuses) = lab::status("t-thirty").unwrap();
    let down = lab::down("t-thirty");
    // Reported, not asserted: tests never assert wall-clock times.
    eprintln!("30 lab hosts up in {took:?}");
    assert!(down.expect("lab down"));
    assert_eq!(statuses.len(), 30);
    assert!(statuses.iter().all(|s| s.ssh_answers), "{statuses:?}");
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

#[test]
fn lab_cli_up_status_down_from_a_site_needs_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        r#"site = "t-labcli"
class web { }
inventory = lab {
  subnet = "10.237.14.0/24"
  hosts = [ { name = "a", class = web, labels = { datacenter = "dc1" } },
            { name = "b", class = web, labels = { datacenter = "dc2" } } ]
}
"#,
    )
    .unwrap();
    let root = dir.path().join("ferry");
    let ferry = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("--store-dir")
            .arg(root.join("store"))
            .arg("--state-dir")
            .arg(root.join("var"))
            .args(args)
            .output()
            .unwrap()
    };
    let site = dir.path().to_str().unwrap();
    let up = ferry(&["lab", "up", site]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        stdout.starts_with("lab `t-labcli` is up: 2 hosts on 10.237.14.0/24\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  b                web          10.237.14.3     new\n"),
        "{stdout}"
    );
    // Again: nothing to do, and it says so per host.
    let again = ferry(&["lab", "up", site]);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("  b                web          10.237.14.3     kept running\n"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    let status = ferry(&["lab", "status", site, "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["hosts"][1]["address"], "10.237.14.3");
    assert_eq!(report["hosts"][1]["ssh_answers"], true);

    // Sessions see ferry's dirs in their environment.
    let lab = lab::load("t-labcli").unwrap();
    let out = ssh(&lab, "a", "echo $FERRY_STORE_DIR");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        root.join("store").to_str().unwrap()
    );

    let down = ferry(&["lab", "down", site]);
    assert_eq!(
        String::from_utf8_lossy(&down.stdout),
        "lab `t-labcli` is down\n"
    );
    let again = ferry(&["lab", "down", "t-labcli"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "lab `t-labcli` was not running\n"
    );
    assert_eq!(leftovers(&lab), Vec::<String>::new());
    let status = ferry(&["lab", "status", "t-labcli"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stderr).contains("no lab named `t-labcli` is running"));
}

/// `lab up` with an inventory that gained a host tore the whole lab down and
/// built it again, so every host lost its store and generations. It adds and
/// removes only the difference now: the other hosts' sshd, namespace and
/// private files are untouched.
#[test]
fn a_lab_grows_and_shrinks_in_place_needs_root() {
    let root = tempfile::tempdir().unwrap();
    let root_dir = root.path().join("ferry");
    let name = "t-grow";
    let _ = lab::down(name);
    let two = lab::up(name, &spec("10.237.206.0/24", 2), &root_dir).expect("lab up");
    let sshd_pid = |lab: &lab::Lab, host: &str| -> String {
        let netns = &lab.hosts.iter().find(|h| h.name == host).unwrap().netns;
        let out = Command::new("ip")
            .args(["netns", "pids", netns])
            .output()
            .unwrap();
        let mut pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        pids.sort();
        pids.join(",")
    };
    for host in ["h0", "h1"] {
        let out = ssh(
            &two,
            host,
            &format!("echo {host} > {}/marker", root_dir.display()),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pids_before = (sshd_pid(&two, "h0"), sshd_pid(&two, "h1"));

    let three = lab::up(name, &spec("10.237.206.0/24", 3), &root_dir).expect("grow");
    assert_eq!(
        lab::changes(Some(&two), &three),
        lab::LabChanges {
            added: vec!["h2".into()],
            kept: vec!["h0".into(), "h1".into()],
            ..Default::default()
        }
    );
    assert_eq!(
        (sshd_pid(&three, "h0"), sshd_pid(&three, "h1")),
        pids_before
    );
    for host in ["h0", "h1"] {
        let out = ssh(&three, host, &format!("cat {}/marker", root_dir.display()));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), host);
    }
    let out = ssh(&three, "h2", "hostname");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Shrinking removes h2 and all it had; h0 and h1 go on as they were.
    let h2 = three.hosts[2].clone();
    let back = lab::up(name, &spec("10.237.206.0/24", 2), &root_dir).expect("shrink");
    assert_eq!(back.hosts.len(), 2);
    assert_eq!((sshd_pid(&back, "h0"), sshd_pid(&back, "h1")), pids_before);
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&netns.stdout).contains(&h2.netns));
    assert!(!Path::new("/sys/class/net").join(&h2.veth).exists());
    assert!(!back.host_dir("h2").exists());
    let out = ssh(&back, "h1", &format!("cat {}/marker", root_dir.display()));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h1");

    assert!(lab::down(name).expect("lab down"));
    assert_eq!(leftovers(&three), Vec::<String>::new());
}

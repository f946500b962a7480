//! The copy protocol against real lab hosts over real SSH (needs root).
use crate::common;

use std::time::{Duration, Instant};

use ferry_store::StorePath;

use common::{closure_of, text, Fleet};

#[test]
fn copy_to_three_lab_hosts_bootstraps_the_agent_and_sends_the_closure_needs_root() {
    let fleet = Fleet::up("t-copy3", "10.237.21.0/24", 3);
    let top = closure_of(&fleet.store, "site", 25);
    let closure = fleet.store.closure(std::slice::from_ref(&top)).unwrap();
    assert_eq!(closure.len(), 25);

    let (out, results) = fleet.copy(&["h0", "h1", "h2"], std::slice::from_ref(&top));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(results.len(), 3, "{}", text(&out));
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["agent_uploaded"], true, "{r}");
        assert_eq!(r["objects_sent"], 25, "{r}");
        assert_eq!(r["objects_registered"], 25, "{r}");
        // Where the time went: an SSH handshake and an agent upload take time, and the
        // phases, one after the other, fit in the host's total.
        let phase = |name: &str| r["milliseconds"][name].as_u64().unwrap();
        assert!(phase("connect") > 0 && phase("agent") > 0, "{r}");
        let phases: u64 = ["connect", "prepare", "agent", "query", "stream", "finish"]
            .iter()
            .map(|name| phase(name))
            .sum();
        let total = r["seconds"].as_f64().unwrap() * 1000.0;
        assert!(
            phases as f64 <= total + 1.0,
            "{phases} ms of phases in {total} ms: {r}"
        );
    }
    for host in ["h0", "h1", "h2"] {
        // The host's store holds exactly the closure plus the agent itself.
        let mut expected: Vec<String> = closure.iter().map(|p| p.base_name().to_string()).collect();
        let on_host = fleet.host_objects(host);
        let agent: Vec<_> = on_host
            .iter()
            .filter(|n| n.contains("-ferry-"))
            .cloned()
            .collect();
        assert_eq!(agent.len(), 1, "{on_host:?}");
        expected.extend(agent);
        expected.sort();
        assert_eq!(on_host, expected);
        // Every object re-hashes to its metadata on the host, and every one is valid.
        assert_eq!(fleet.verify_on_host(host), 26);
    }

    // Again: nothing is missing, so nothing but the session's messages is sent
    // and the agent is not uploaded again.
    let (out, results) = fleet.copy(&["h0", "h1", "h2"], &[top]);
    assert!(out.status.success(), "{}", text(&out));
    for r in &results {
        assert_eq!(r["agent_uploaded"], false, "{r}");
        assert_eq!(r["objects_sent"], 0, "{r}");
        assert_eq!(r["exchanges"], 3, "handshake, agent status, query: {r}");
    }
}

#[test]
fn round_trips_are_the_same_for_10_and_10000_paths_needs_root() {
    let fleet = Fleet::up("t-rtt", "10.237.22.0/24", 1);
    let small = closure_of(&fleet.store, "small", 10);
    let large = closure_of(&fleet.store, "large", 10_000);
    let (out, first) = fleet.copy(&["h0"], &[small]);
    assert!(out.status.success(), "{}", text(&out));
    let (out, second) = fleet.copy(&["h0"], &[large]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(first[0]["objects_sent"], 10);
    assert_eq!(second[0]["objects_sent"], 10_000);
    assert_eq!(second[0]["objects_registered"], 10_000);
    // Counted in the protocol layer: handshake, agent status, QueryMissing, Import.
    assert_eq!(first[0]["exchanges"], 4, "{}", first[0]);
    assert_eq!(second[0]["exchanges"], first[0]["exchanges"]);
}

#[test]
fn a_wrong_known_hosts_entry_is_refused_before_anything_is_sent_needs_root() {
    let fleet = Fleet::up("t-hostkey", "10.237.23.0/24", 1);
    let top = closure_of(&fleet.store, "x", 3);
    // Replace the host's real key with another one.
    let other = fleet.root.join("other_key");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(keygen.success());
    let pubkey = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut fields = pubkey.split_whitespace();
    let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
    let host = &fleet.lab.hosts[0];
    std::fs::write(
        fleet.lab.known_hosts(),
        format!("{},{} {kind} {blob}\n", host.name, host.address),
    )
    .unwrap();

    let (out, results) = fleet.copy(&["h0"], std::slice::from_ref(&top));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let error = results[0]["error"].as_str().unwrap();
    assert!(error.starts_with("cannot connect to h0: "), "{error}");
    assert!(
        error.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{error}"
    );
    assert!(
        error.contains("hint: the host's key differs from the one in the known_hosts"),
        "{error}"
    );
    assert!(
        fleet.host_objects("h0").is_empty(),
        "something reached the host"
    );

    // `--ssh-option` reaches ssh, but cannot turn host-key checking off.
    let config = fleet.lab.ssh_config();
    let out = fleet.ferry(&[
        "copy",
        "--json",
        "--ssh-config",
        config.to_str().unwrap(),
        "--ssh-option",
        "StrictHostKeyChecking=no",
        "--ssh-option",
        "ConnectTimeout=7",
        "--to",
        "h0",
        "--",
        top.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = results[0]["error"].as_str().unwrap();
    assert!(
        error.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{error}"
    );
    assert!(
        fleet.host_objects("h0").is_empty(),
        "something reached the host"
    );
}

#[test]
fn ssh_options_reach_ssh_needs_root() {
    let fleet = Fleet::up("t-sshopt", "10.237.25.0/24", 1);
    let top = closure_of(&fleet.store, "o", 2);
    let config = fleet.lab.ssh_config();
    // Port 2 has nothing listening: the option must have been used.
    let out = fleet.ferry(&[
        "copy",
        "--json",
        "--ssh-config",
        config.to_str().unwrap(),
        "--ssh-option",
        "Port=2",
        "--to",
        "h0",
        "--",
        top.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = results[0]["error"].as_str().unwrap();
    assert!(error.contains("port 2: Connection refused"), "{error}");
    // Without it the same copy works.
    let (out, _) = fleet.copy(&["h0"], &[top]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Kills every `ssh` process that uses the lab's ssh config (the
/// ControlMaster carrying the copy); returns how many it killed.
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
            unsafe_kill(pid);
            killed += 1;
        }
    }
    killed
}

fn unsafe_kill(pid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[test]
fn killing_ssh_mid_copy_keeps_the_host_store_valid_and_the_rerun_sends_only_the_rest_needs_root() {
    let fleet = Fleet::up("t-cut", "10.237.24.0/24", 1);
    // Bootstrap the agent first, so the cut falls into the object stream.
    let warm = closure_of(&fleet.store, "warm", 1);
    let (out, _) = fleet.copy(&["h0"], &[warm]);
    assert!(out.status.success(), "{}", text(&out));
    let objects: Vec<StorePath> = (0..48)
        .map(|i| common::random_object(&fleet.store, &fleet.root, &format!("blob-{i}"), 4 << 20, i))
        .collect();
    let mut top_text = String::new();
    for o in &objects {
        top_text.push_str(o.as_str());
        top_text.push('\n');
    }
    let top = fleet
        .store
        .add_bytes("blobs", top_text.as_bytes(), false, &objects)
        .unwrap();
    let before = fleet.host_objects("h0").len();

    let config = fleet.lab.ssh_config();
    let mut child = fleet
        .ferry_command(&[
            "copy",
            "--json",
            "--ssh-config",
            config.to_str().unwrap(),
            "--to",
            "h0",
            "--",
            top.as_str(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Cut once some objects have landed (the agent registers in batches).
    let deadline = Instant::now() + Duration::from_secs(60);
    while fleet.host_objects("h0").len() < before + 2 {
        assert!(Instant::now() < deadline, "no object arrived");
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("the copy ended before it could be cut: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(kill_lab_ssh(&fleet) >= 1, "no ssh process to kill");
    let cut = child.wait_with_output().unwrap();
    assert_eq!(cut.status.code(), Some(1), "{}", text(&cut));
    let stdout = String::from_utf8_lossy(&cut.stdout);
    assert!(
        stdout.contains("lost the connection to h0 while sending objects"),
        "{}",
        text(&cut)
    );
    let arrived = fleet.host_objects("h0").len() - before;
    let valid_after_cut = fleet.verify_on_host("h0");
    assert!(
        arrived > 0 && arrived < objects.len(),
        "{arrived} objects arrived before the cut"
    );

    let (out, results) = fleet.copy(&["h0"], std::slice::from_ref(&top));
    assert!(out.status.success(), "{}", text(&out));
    let sent = results[0]["objects_sent"].as_u64().unwrap() as usize;
    let bytes = results[0]["bytes_sent"].as_u64().unwrap();
    // Only what had not been registered is sent again (plus the top object).
    assert!(
        sent < objects.len() + 1,
        "re-sent everything: {}",
        results[0]
    );
    assert!(
        bytes < (sent as u64 + 1) * (4 << 20) + (1 << 20),
        "{}",
        results[0]
    );
    assert!(bytes > (sent as u64 - 1) * (4 << 20), "{}", results[0]);
    let closure = fleet.store.closure(&[top]).unwrap();
    let on_host = fleet.host_objects("h0");
    for path in &closure {
        assert!(
            on_host.contains(&path.base_name().to_string()),
            "{path} missing on the host"
        );
    }
    // The re-run sent exactly what was not valid after the cut (valid were
    // the agent, the warm-up object and what had fully arrived).
    assert_eq!(sent as u64, closure.len() as u64 - (valid_after_cut - 2));
    assert_eq!(fleet.verify_on_host("h0"), closure.len() as u64 + 2);
}

#[test]
fn incompressible_objects_go_uninflated_and_text_goes_compressed_needs_root() {
    let fleet = Fleet::up("t-frames", "10.237.26.0/24", 1);
    // First contact uploads the agent; the measured copies come after it.
    let warm = closure_of(&fleet.store, "warm", 1);
    let (out, _) = fleet.copy(&["h0"], &[warm]);
    assert!(out.status.success(), "{}", text(&out));

    let size: u64 = (5 << 20) + 1234;
    let random = common::random_object(&fleet.store, &fleet.root, "random", size as usize, 3);
    let (out, results) = fleet.copy(&["h0"], std::slice::from_ref(&random));
    assert!(out.status.success(), "{}", text(&out));
    let bytes = results[0]["bytes_sent"].as_u64().unwrap();
    // The object, its archive header, the session's messages and 5 bytes of
    // framing per MiB: never a compressor's inflation.
    assert!(bytes >= size && bytes <= size + 4096, "{}", results[0]);

    let mut config = String::new();
    let mut i = 0;
    while (config.len() as u64) < size {
        config.push_str(&format!(
            "[unit-{i}]\nExecStart=/ferry/store/x-service-{i}/bin/run --port {i}\n"
        ));
        i += 1;
    }
    let text_object = fleet
        .store
        .add_bytes("config", config.as_bytes(), false, &[])
        .unwrap();
    let (out, results) = fleet.copy(&["h0"], &[text_object]);
    assert!(out.status.success(), "{}", text(&out));
    let bytes = results[0]["bytes_sent"].as_u64().unwrap();
    assert!(bytes < size / 4, "{}", results[0]);
    // Both arrived whole: agent, warm-up object, random object, text.
    assert_eq!(fleet.verify_on_host("h0"), 4);
}

/// The test fleet's deployer store sits on a tmpfs that its drop unmounts while the store's
/// database is still open: a plain umount failed ("target is busy") and every lab test run
/// left a mount behind.
#[test]
fn a_dropped_fleet_leaves_no_mount_behind_while_its_store_is_open_needs_root() {
    let fleet = Fleet::up("t-drop", "10.237.27.0/24", 1);
    fleet
        .store
        .add_bytes("opens-the-db", b"x", false, &[])
        .unwrap();
    let root = fleet.root.clone();
    assert!(common::is_mount_point(&root));
    drop(fleet);
    assert!(
        !common::is_mount_point(&root),
        "{} is still mounted",
        root.display()
    );
    assert!(!root.exists(), "{} is left behind", root.display());
}

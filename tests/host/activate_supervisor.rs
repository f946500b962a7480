//! Service backends: one conformance suite run for real against ferry's
//! supervisor daemon, and the systemd backend's generated units checked with
//! `systemd-analyze verify` (systemd itself cannot run in this container).
//! Plus the daemon's own duties: surviving its parent, one per host, rotated
//! logs, SIGKILL after the grace period.
use crate::activate_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use activate_support::*;
use ferry::activate::backend::{
    systemd, BackendError, ServiceBackend, ServiceDefinition, ServiceState, SystemdBackend,
};
use ferry::activate::manifest::{RestartMode, RestartPolicy};
use ferry::activate::supervisor::{SupervisorClient, SupervisorLauncher, SupervisorRequest};

fn definition(name: &str, exec: &str, dir: &Path) -> ServiceDefinition {
    let working_dir = dir.join("lib").join(name);
    fs::create_dir_all(&working_dir).unwrap();
    ServiceDefinition {
        name: name.into(),
        exec: exec.into(),
        env: BTreeMap::from([("GREETING".to_string(), "hello world".to_string())]),
        user: None,
        working_dir,
        oneshot: false,
        restart: RestartPolicy {
            mode: RestartMode::OnFailure,
            limit: 3,
            window_ms: 10_000,
            backoff_ms: 10,
            backoff_max_ms: 100,
        },
        usr: None,
    }
}

/// The definitions the conformance suite uses (also rendered for systemd).
fn suite_definitions(dir: &Path) -> Vec<ServiceDefinition> {
    let mut oneshot_ok = definition("setup", "echo \"$GREETING\" > done", dir);
    oneshot_ok.oneshot = true;
    let mut oneshot_bad = definition("broken-setup", "exit 7", dir);
    oneshot_bad.oneshot = true;
    let mut stubborn = definition(
        "stubborn",
        "trap '' TERM; while :; do sleep 0.05; done",
        dir,
    );
    stubborn.restart.mode = RestartMode::Never;
    vec![
        // Starts a background child too: stopping must take the whole group.
        definition(
            "daemon",
            "sleep 100000 & echo $! > child.pid; echo \"$GREETING\" > env.txt; pwd > cwd.txt; exec sleep 100000",
            dir,
        ),
        definition("crasher", "exit 1", dir),
        definition("flaky", "if [ -e ran ]; then exec sleep 100000; fi; touch ran; exit 2", dir),
        oneshot_ok,
        oneshot_bad,
        stubborn,
    ]
}

fn state_of(
    backend: &mut dyn ServiceBackend,
    name: &str,
) -> ferry::activate::backend::ServiceStatus {
    backend.status(&[name.to_string()]).unwrap().remove(0)
}

/// What every service backend must do.
fn conformance(backend: &mut dyn ServiceBackend, dir: &Path) {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    backend.define(&suite_definitions(dir)).unwrap();
    assert_eq!(state_of(backend, "daemon").state, ServiceState::Stopped);
    assert_eq!(
        state_of(backend, "never-defined").state,
        ServiceState::Unknown
    );

    // start: environment, working directory, a live process.
    backend.start(&names(&["daemon"])).unwrap();
    let first = state_of(backend, "daemon");
    assert_eq!(first.state, ServiceState::Running);
    let pid = first.pid.unwrap();
    assert!(alive(pid));
    let lib = dir.join("lib/daemon");
    assert!(wait_for(Duration::from_secs(5), || lib
        .join("cwd.txt")
        .exists()
        && lib.join("child.pid").exists()));
    assert!(wait_for(Duration::from_secs(5), || fs::read_to_string(
        lib.join("env.txt")
    )
    .is_ok_and(|t| t == "hello world\n")));
    assert_eq!(
        fs::read_to_string(lib.join("cwd.txt")).unwrap().trim(),
        lib.to_str().unwrap()
    );
    // Starting a running service again does nothing.
    backend.start(&names(&["daemon"])).unwrap();
    assert_eq!(state_of(backend, "daemon").pid, Some(pid));

    // restart: a new process, the old group gone.
    let child: u32 = fs::read_to_string(lib.join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    backend
        .restart(&names(&["daemon"]), Duration::from_secs(5))
        .unwrap();
    let second = state_of(backend, "daemon");
    assert_eq!(second.state, ServiceState::Running);
    assert_ne!(second.pid, Some(pid));
    assert!(
        !alive(pid) && !alive(child),
        "the whole process group was stopped"
    );

    // stop.
    backend
        .stop(&names(&["daemon"]), Duration::from_secs(5))
        .unwrap();
    let stopped = state_of(backend, "daemon");
    assert_eq!((stopped.state, stopped.pid), (ServiceState::Stopped, None));
    assert!(!alive(second.pid.unwrap()));

    // A crash is restarted with backoff.
    backend.start(&names(&["flaky"])).unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        let s = state_of(backend, "flaky");
        s.state == ServiceState::Running && s.restarts == 1
    }));
    assert_eq!(
        state_of(backend, "flaky").last_exit.as_deref(),
        Some("exit status 2")
    );

    // Too many crashes in the window: crash-looping, no more restarts.
    backend.start(&names(&["crasher"])).unwrap();
    assert!(wait_for(Duration::from_secs(5), || state_of(
        backend, "crasher"
    )
    .state
        == ServiceState::CrashLooping));
    let looping = state_of(backend, "crasher");
    assert_eq!(looping.restarts, 3);
    assert_eq!(looping.pid, None);

    // One-shot tasks run to their end; a failing one is an error.
    backend.start(&names(&["setup"])).unwrap();
    assert_eq!(state_of(backend, "setup").state, ServiceState::Exited);
    assert_eq!(
        fs::read_to_string(dir.join("lib/setup/done")).unwrap(),
        "hello world\n"
    );
    let err = backend.start(&names(&["broken-setup"])).unwrap_err();
    assert!(
        err.to_string()
            .contains("one-shot service broken-setup failed: exit status 7"),
        "{err}"
    );
    assert_eq!(
        state_of(backend, "broken-setup").state,
        ServiceState::Failed
    );

    // A process ignoring SIGTERM is killed after the grace period.
    backend.start(&names(&["stubborn"])).unwrap();
    let stubborn = state_of(backend, "stubborn").pid.unwrap();
    std::thread::sleep(Duration::from_millis(100)); // let the trap be installed
    backend
        .stop(&names(&["stubborn"]), Duration::from_millis(200))
        .unwrap();
    assert!(!alive(stubborn));
    assert_eq!(
        state_of(backend, "stubborn").last_exit.as_deref(),
        Some("signal 9 (SIGKILL)")
    );

    // Remove forgets (and stops) services.
    backend.start(&names(&["daemon"])).unwrap();
    let pid = state_of(backend, "daemon").pid.unwrap();
    backend
        .remove(&names(&["daemon", "flaky"]), Duration::from_secs(5))
        .unwrap();
    assert_eq!(state_of(backend, "daemon").state, ServiceState::Unknown);
    assert!(!alive(pid));
    assert!(matches!(
        backend.start(&names(&["daemon"])),
        Err(BackendError::Refused { .. })
    ));
}

#[test]
fn supervisor_backend_passes_the_conformance_suite() {
    let host = Host::new();
    let mut backend = host.backend();
    conformance(&mut backend, &host.state);
    let log = fs::read_to_string(host.state.join("log/crasher.log")).unwrap();
    assert!(log.contains("crash-looping: 4 exits"), "{log}");
}

#[test]
fn systemd_units_of_the_conformance_services_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    let backend = SystemdBackend::new(&units);
    let mut definitions = suite_definitions(dir.path());
    // Everything the generator must escape: quotes, $, %, backslash, newline.
    let mut tricky = definition(
        "tricky",
        "echo 'it''s' \"$HOME\" 100% \\\\ done\necho second line",
        dir.path(),
    );
    tricky
        .env
        .insert("WEIRD".into(), "a \"quoted\" 50% $value\\".into());
    tricky.user = Some("daemon".into());
    tricky.restart.mode = RestartMode::Always;
    definitions.push(tricky);
    let mut paths = Vec::new();
    for def in &definitions {
        paths.push(backend.write_unit(def).unwrap());
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze complained:\n{stderr}"
    );

    let text = fs::read_to_string(units.join("ferry-tricky.service")).unwrap();
    assert!(text.contains("ExecStart=/bin/sh -c 'echo \\'it\\'\\'s\\' \"$$HOME\" 100%% \\\\\\\\ done\\necho second line'"), "{text}");
    assert!(
        text.contains("Environment=\"WEIRD=a \\\"quoted\\\" 50%% $value\\\\\""),
        "{text}"
    );
    assert!(text.contains("User=daemon\n"));
    assert!(text.contains("Restart=always\n"));
    assert_eq!(systemd::unit_name("web"), "ferry-web.service");

    // A broken unit is caught by the same check, so the check can fail.
    let broken = units.join("ferry-broken.service");
    fs::write(&broken, "[Service]\nExecStart=relative/path\n").unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!output.status.success());
}

const CHILD_ENV: &str = "FERRY_TEST_SUPERVISOR_PARENT";

/// Not a test on its own: the short-lived parent of
/// `supervisor_survives_the_process_that_started_it`.
#[test]
#[ignore = "child process of supervisor_survives_the_process_that_started_it"]
fn supervisor_parent_child() {
    let Ok(state) = std::env::var(CHILD_ENV) else {
        return;
    };
    let state = PathBuf::from(state);
    let mut backend = ferry::activate::backend::SupervisorBackend::new(&state, Host::launcher());
    backend
        .define(&[definition("kept", "exec sleep 100000", &state)])
        .unwrap();
    backend.start(&["kept".to_string()]).unwrap();
}

#[test]
fn supervisor_survives_the_process_that_started_it() {
    let host = Host::new();
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args([
            "activate_supervisor::supervisor_parent_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &host.state)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let parent_pid = parent.id();
    assert!(parent.wait().unwrap().success());
    assert!(!alive(parent_pid));
    let mut client = SupervisorClient::connect(&host.state).expect("daemon still listening");
    let daemon = client.ping().unwrap();
    let pidfile = fs::read_to_string(host.state.join("supervisor/supervisor.pid")).unwrap();
    assert_eq!(pidfile.trim(), daemon.to_string());
    // Detached: its own session, no longer the child of the gone parent.
    let stat = fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let (ppid, sid): (u32, u32) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
    assert_ne!(ppid, parent_pid);
    assert_eq!(sid, daemon, "the supervisor leads its own session");
    let status = client.status(&["kept".to_string()]).unwrap().remove(0);
    assert_eq!(status.state, ServiceState::Running);
    assert!(alive(status.pid.unwrap()));
}

#[test]
fn a_second_supervisor_for_the_same_state_dir_refuses_to_start() {
    let host = Host::new();
    let mut backend = host.backend();
    backend.status(&[]).unwrap(); // starts the daemon
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["remote", "supervise", "--state-dir"])
        .arg(&host.state)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another supervisor already runs for this state dir"),
        "{stderr}"
    );
    // And the hidden command stays out of the help text.
    let help = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("supervise"));
}

#[test]
fn service_logs_rotate_by_size() {
    let host = Host::new();
    let mut launcher = Host::launcher();
    launcher.args = SupervisorLauncher::ferry(launcher.program.clone()).args;
    launcher.args.extend([
        "--log-max-bytes".into(),
        "1000".into(),
        "--log-keep".into(),
        "2".into(),
    ]);
    let mut backend = ferry::activate::backend::SupervisorBackend::new(&host.state, launcher);
    let mut chatty = definition(
        "chatty",
        "i=0; while [ $i -lt 120 ]; do echo \"line $i of chatty output padding\"; i=$((i+1)); done; echo finished; exec sleep 100000",
        &host.state,
    );
    chatty.restart.mode = RestartMode::Never;
    backend.define(&[chatty]).unwrap();
    backend.start(&["chatty".to_string()]).unwrap();
    let log = host.state.join("log/chatty.log");
    assert!(wait_for(Duration::from_secs(5), || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("finished"))
    }));
    let rotated: Vec<PathBuf> = (1..=3)
        .map(|n| host.state.join(format!("log/chatty.log.{n}")))
        .collect();
    assert!(rotated[0].exists() && rotated[1].exists());
    assert!(!rotated[2].exists(), "only two rotated files are kept");
    for path in [&log, &rotated[0], &rotated[1]] {
        let size = fs::metadata(path).unwrap().len();
        assert!(size <= 1000, "{} has {size} bytes", path.display());
    }
    assert_eq!(fs::metadata(&rotated[0]).unwrap().len(), 1000);
    // Nothing is lost at the seams of the newest files.
    let joined = fs::read_to_string(&rotated[0]).unwrap() + &fs::read_to_string(&log).unwrap();
    assert!(
        joined.contains("line 119 of chatty output padding\nfinished\n"),
        "{joined}"
    );
}

#[test]
fn shutdown_stops_every_service_and_the_daemon() {
    let host = Host::new();
    let mut backend = host.backend();
    backend
        .define(&[definition("one", "exec sleep 100000", &host.state)])
        .unwrap();
    backend.start(&["one".to_string()]).unwrap();
    let service = host.pid_of("one").unwrap();
    let mut client = SupervisorClient::connect(&host.state).unwrap();
    let daemon = client.ping().unwrap();
    client
        .call(&SupervisorRequest::Shutdown { grace_ms: 1000 })
        .unwrap();
    // Even when the caller removes the whole state dir right away.
    fs::remove_dir_all(&host.state).unwrap();
    assert!(wait_for(Duration::from_secs(5), || !alive(daemon)));
    assert!(!alive(service));
}

#[test]
fn a_killed_supervisor_is_replaced_and_restarts_its_services() {
    let host = Host::new();
    let mut backend = host.backend();
    let mut one = definition("one", "exec sleep 100000", &host.state);
    one.restart.mode = RestartMode::Always;
    backend
        .define(&[one, definition("idle", "exec sleep 100000", &host.state)])
        .unwrap();
    backend.start(&["one".to_string()]).unwrap();
    let old_service = host.pid_of("one").unwrap();
    let old_daemon = SupervisorClient::connect(&host.state)
        .unwrap()
        .ping()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_daemon as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(5), || !alive(old_daemon)));

    // The next call starts a new daemon, which ends the orphaned process
    // group and starts the wanted service again; `idle` stays stopped.
    let status = backend
        .status(&["one".to_string(), "idle".to_string()])
        .unwrap();
    let new_daemon = SupervisorClient::connect(&host.state)
        .unwrap()
        .ping()
        .unwrap();
    assert_ne!(new_daemon, old_daemon);
    assert_eq!(status[0].state, ServiceState::Running);
    assert_ne!(status[0].pid, Some(old_service));
    assert!(alive(status[0].pid.unwrap()));
    assert!(
        !alive(old_service),
        "the orphan of the dead supervisor was ended"
    );
    assert_eq!(status[1].state, ServiceState::Stopped);
}

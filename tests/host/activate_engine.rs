//! The activation engine with real processes and files: v1 → v2 restarts only
//! what changed, every kind of failure rolls back with its reason, kill -9 at
//! many points recovers, rollback to an old generation, state dirs, users,
//! secrets and the magic-rollback confirmation record.
use crate::activate_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use activate_support::*;
use ferry::activate::backend::{ServiceBackend, ServiceState};
use ferry::activate::engine::{ActivationError, Outcome};
use ferry::activate::manifest::{Manifest, SecretRef};
use ferry::activate::secrets;

/// A class with an HTTP server `web` (answering `version`) and an unchanged
/// `worker` that counts its starts in its state dir.
fn web_system(host: &Host, version: &str, port: u16, tweak: impl FnOnce(&mut Manifest)) -> PathBuf {
    let label = format!("web-{version}-{}", rand_label());
    let mut web = service(&format!("exec {PYTHON} \"$SERVER\" {port} {version}"));
    web.health
        .push(http_check(&format!("http://127.0.0.1:{port}/"), 200));
    web.state_dirs.push("data".into());
    let mut worker = service("echo start >> \"$STATE_DIRECTORY/starts\"; exec sleep 100000");
    worker.requires.local.push("web".into());
    let mut m = manifest(vec![("web", web), ("worker", worker)]);
    tweak(&mut m);
    // The script's store path is substituted into the environment, as the
    // build step substitutes store paths into a manifest.
    let dir = host.system(&label, &m, &[("bin/server.py", SERVER_PY)]);
    let mut m2 = m.clone();
    m2.services.get_mut("web").unwrap().env.insert(
        "SERVER".into(),
        dir.join("bin/server.py").display().to_string(),
    );
    fs::write(dir.join("manifest.json"), m2.to_json()).unwrap();
    dir
}

fn rand_label() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn rolled_back_reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::RolledBack { reason, .. } => reason,
        Outcome::Activated { generation } => {
            panic!("expected a rollback, got generation {generation}")
        }
    }
}

#[test]
fn v1_to_v2_restarts_only_the_changed_service() {
    let host = Host::new();
    let port = free_port();
    let v1 = web_system(&host, "v1", port, |_| {});
    let v2 = web_system(&host, "v2", port, |_| {});
    let mut activator = host.activator();

    let first = activator.activate(&v1).unwrap();
    assert_eq!(first.outcome, Outcome::Activated { generation: 1 });
    assert_eq!(http_get(port).as_deref(), Some("v1"));
    let web_v1 = host.pid_of("web").unwrap();
    let worker_v1 = host.pid_of("worker").unwrap();
    fs::write(host.state.join("lib/web/data/db"), "precious").unwrap();

    let second = activator.activate(&v2).unwrap();
    assert_eq!(second.outcome, Outcome::Activated { generation: 2 });
    assert_eq!(second.diff.changed.iter().collect::<Vec<_>>(), ["web"]);
    assert_eq!(second.diff.unchanged.iter().collect::<Vec<_>>(), ["worker"]);
    assert_eq!(http_get(port).as_deref(), Some("v2"));
    let web_v2 = host.pid_of("web").unwrap();
    assert_ne!(web_v1, web_v2, "the changed service was restarted");
    assert!(!alive(web_v1));
    assert_eq!(
        host.pid_of("worker"),
        Some(worker_v1),
        "unchanged service kept its process"
    );
    assert_eq!(
        fs::read_to_string(host.state.join("lib/worker/starts")).unwrap(),
        "start\n"
    );
    assert_eq!(
        fs::read_to_string(host.state.join("lib/web/data/db")).unwrap(),
        "precious"
    );
    assert_eq!(current_system(&host.state), fs::canonicalize(&v2).unwrap());
    assert!(second.health.iter().all(|h| h.passed()));
    assert!(!host.state.join("activation.journal").exists());
}

#[test]
fn failing_health_check_rolls_back_and_the_old_service_runs_again() {
    let host = Host::new();
    let port = free_port();
    let v1 = web_system(&host, "v1", port, |_| {});
    let v2 = web_system(&host, "v2", port, |m| {
        let web = m.services.get_mut("web").unwrap();
        web.health = vec![http_check(&format!("http://127.0.0.1:{port}/fail"), 200)];
        web.health[0].retries = 2;
    });
    let mut activator = host.activator();
    activator.activate(&v1).unwrap();
    let web_v1 = host.pid_of("web").unwrap();
    let worker = host.pid_of("worker").unwrap();

    let report = activator.activate(&v2).unwrap();
    let reason = rolled_back_reason(&report.outcome);
    assert!(reason.contains("health check of web failed"), "{reason}");
    assert!(reason.contains("HTTP status 500, expected 200"), "{reason}");
    assert_eq!(
        report.outcome,
        Outcome::RolledBack {
            to_generation: Some(1),
            reason: reason.to_string()
        }
    );
    assert_eq!(http_get(port).as_deref(), Some("v1"));
    let web_again = host.pid_of("web").unwrap();
    assert_ne!(web_again, web_v1);
    assert!(alive(web_again));
    assert_eq!(host.pid_of("worker"), Some(worker));
    assert_eq!(current_system(&host.state), fs::canonicalize(&v1).unwrap());
    assert!(
        report.rollback_health.iter().all(|h| h.passed()),
        "{:?}",
        report.rollback_health
    );
    assert!(
        report.rollback_errors.is_empty(),
        "{:?}",
        report.rollback_errors
    );
    // `status` reports the rollback.
    let status = activator.status().unwrap();
    assert_eq!(status.generation, Some(1));
    assert!(matches!(
        status.last_activation.unwrap().outcome,
        Outcome::RolledBack {
            to_generation: Some(1),
            ..
        }
    ));
}

#[test]
fn failing_pre_upgrade_hook_rolls_back_before_anything_stops() {
    let host = Host::new();
    let port = free_port();
    let v1 = web_system(&host, "v1", port, |_| {});
    let v2 = web_system(&host, "v2", port, |m| {
        m.services.get_mut("web").unwrap().hooks.pre_upgrade = vec![
            "echo \"$OLD -> $NEW\" > \"$STATE_DIRECTORY/hook\"; echo no space >&2; exit 3".into(),
        ];
    });
    let mut activator = host.activator();
    activator.activate(&v1).unwrap();
    let web_v1 = host.pid_of("web").unwrap();

    let report = activator.activate(&v2).unwrap();
    let reason = rolled_back_reason(&report.outcome);
    assert_eq!(
        reason,
        "pre-upgrade hook of web failed: exit status: 3: no space"
    );
    assert_eq!(host.pid_of("web"), Some(web_v1), "nothing was stopped");
    assert_eq!(http_get(port).as_deref(), Some("v1"));
    let hook_saw = fs::read_to_string(host.state.join("lib/web/hook")).unwrap();
    assert_eq!(
        hook_saw.trim(),
        format!("{} -> {}", v1.display(), v2.display())
    );
}

#[test]
fn failing_post_upgrade_hook_rolls_back() {
    let host = Host::new();
    let port = free_port();
    let v1 = web_system(&host, "v1", port, |_| {});
    let v2 = web_system(&host, "v2", port, |m| {
        m.services.get_mut("web").unwrap().hooks.post_upgrade = vec!["exit 4".into()];
    });
    let mut activator = host.activator();
    activator.activate(&v1).unwrap();
    let report = activator.activate(&v2).unwrap();
    assert_eq!(
        rolled_back_reason(&report.outcome),
        "post-upgrade hook of web failed: exit status: 4"
    );
    assert_eq!(http_get(port).as_deref(), Some("v1"));
    assert_eq!(current_system(&host.state), fs::canonicalize(&v1).unwrap());
}

/// `post_upgrade` ran about 4 ms after the new process was spawned, before
/// its health checks. The order of every step is defined (GRAMMAR §6.3):
/// pre-upgrade hook, old service stops, new one starts, settles and passes
/// its health check, then the post-upgrade hook.
#[test]
fn post_upgrade_hooks_run_once_the_new_services_passed_their_health_checks() {
    let host = Host::new();
    let log = host.state.join("order.log");
    let app = |version: &str| {
        let mut s = service(&format!(
            "trap 'echo stop-{version} >> \"$LOG\"; exit 0' TERM; \
             echo start-{version} >> \"$LOG\"; sleep 0.3; \
             echo ready-{version} >> \"$LOG\"; touch \"$STATE_DIRECTORY/ready-{version}\"; \
             sleep 100000 & wait"
        ));
        s.env.insert("LOG".into(), log.display().to_string());
        s.health.push(command_check(
            &format!(
                "test -e \"$STATE_DIRECTORY/ready-{version}\" && echo health-{version} >> \"$LOG\""
            ),
            100,
        ));
        s.hooks.pre_upgrade = vec![format!("echo pre-{version} >> \"$LOG\"")];
        s.hooks.post_upgrade = vec![format!(
            "test -e \"$STATE_DIRECTORY/ready-{version}\" && echo post-{version} >> \"$LOG\""
        )];
        s
    };
    let v1 = host.system("order-v1", &manifest(vec![("app", app("v1"))]), &[]);
    let v2 = host.system("order-v2", &manifest(vec![("app", app("v2"))]), &[]);
    let mut activator = host.activator();
    assert!(activator.activate(&v1).unwrap().activated());
    fs::write(&log, "").unwrap();
    let report = activator.activate(&v2).unwrap();
    assert!(report.activated(), "{report:?}");
    let order = fs::read_to_string(&log).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "pre-v2",
            "stop-v1",
            "start-v2",
            "ready-v2",
            "health-v2",
            "post-v2"
        ],
        "{order}"
    );
}

#[test]
fn crash_looping_service_rolls_back() {
    let host = Host::new();
    let port = free_port();
    let v1 = web_system(&host, "v1", port, |_| {});
    let v2 = web_system(&host, "v2", port, |m| {
        let web = m.services.get_mut("web").unwrap();
        web.exec = "echo dying; exit 1".into();
        web.health.clear();
    });
    let mut activator = host.activator();
    activator.activate(&v1).unwrap();
    let report = activator.activate(&v2).unwrap();
    let reason = rolled_back_reason(&report.outcome);
    assert!(
        reason.starts_with("service web is crash-looping"),
        "{reason}"
    );
    assert!(reason.contains("exit status 1"), "{reason}");
    assert_eq!(http_get(port).as_deref(), Some("v1"));
    let log = fs::read_to_string(host.state.join("log/web.log")).unwrap();
    assert!(
        log.contains("dying") && log.contains("crash-looping"),
        "{log}"
    );
}

#[test]
fn failed_first_activation_leaves_no_current_generation_and_no_service() {
    let host = Host::new();
    let m = manifest(vec![("bad", {
        let mut s = sleeper("v1");
        s.health.push(command_check("exit 1", 1));
        s
    })]);
    let system = host.system("bad", &m, &[]);
    let mut activator = host.activator();
    let report = activator.activate(&system).unwrap();
    assert!(matches!(
        report.outcome,
        Outcome::RolledBack {
            to_generation: None,
            ..
        }
    ));
    assert!(fs::symlink_metadata(host.state.join("profiles/system")).is_err());
    let status = activator.backend().status(&["bad".to_string()]).unwrap();
    assert_eq!(status[0].state, ServiceState::Unknown);
}

#[test]
fn a_system_outside_the_store_is_refused_with_a_hint() {
    let host = Host::new();
    let elsewhere = host.root.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(elsewhere.join("manifest.json"), manifest(vec![]).to_json()).unwrap();
    let err = host.activator().activate(&elsewhere).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the system {} is not inside the store {}; copy it into the host's store first",
            elsewhere.display(),
            host.store.display()
        )
    );
    assert!(
        fs::read_dir(host.state.join("profiles"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

fn environ_version(pid: u32) -> Option<String> {
    let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("VERSION=").map(str::to_string))
}

#[test]
fn rollback_to_generation_one_after_three_keeps_state_dirs() {
    let host = Host::new();
    let mut activator = host.activator();
    let systems: Vec<PathBuf> = ["v1", "v2", "v3"]
        .iter()
        .map(|v| {
            let mut s = sleeper(v);
            s.exec = format!("echo {v} >> \"$STATE_DIRECTORY/history\"; exec sleep 100000");
            host.system(v, &manifest(vec![("app", s)]), &[])
        })
        .collect();
    for (i, system) in systems.iter().enumerate() {
        let report = activator.activate(system).unwrap();
        assert_eq!(
            report.outcome,
            Outcome::Activated {
                generation: i as u64 + 1
            }
        );
    }
    let report = activator.rollback_to(1).unwrap();
    assert_eq!(report.outcome, Outcome::Activated { generation: 1 });
    let pid = host.pid_of("app").unwrap();
    assert_eq!(environ_version(pid).as_deref(), Some("v1"));
    assert_eq!(
        current_system(&host.state),
        fs::canonicalize(&systems[0]).unwrap()
    );
    let listing = ferry::activate::Profiles::open(&host.state)
        .unwrap()
        .list()
        .unwrap();
    let summary: Vec<(u64, bool, PathBuf)> = listing
        .iter()
        .map(|g| (g.number, g.current, g.system.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, true, systems[0].clone()),
            (2, false, systems[1].clone()),
            (3, false, systems[2].clone()),
        ]
    );
    assert_eq!(
        fs::read_to_string(host.state.join("lib/app/history")).unwrap(),
        "v1\nv2\nv3\nv1\n"
    );
    assert!(matches!(
        activator.rollback_to(9),
        Err(ActivationError::Generations(_))
    ));
}

#[test]
fn unconfirmed_activation_rolls_back_after_its_deadline_and_confirmed_one_stays() {
    let host = Host::new();
    let mut activator = host.activator();
    activator.options.confirm_within = Some(Duration::from_secs(30));
    let v1 = host.system("c1", &manifest(vec![("app", sleeper("v1"))]), &[]);
    let v2 = host.system("c2", &manifest(vec![("app", sleeper("v2"))]), &[]);
    let v3 = host.system("c3", &manifest(vec![("app", sleeper("v3"))]), &[]);
    activator.activate(&v1).unwrap();
    assert!(activator.confirm(1).unwrap());
    activator.activate(&v2).unwrap();
    let pending = activator.pending().unwrap();
    assert_eq!(
        (pending.generation, pending.previous_generation),
        (2, Some(1))
    );
    assert!(activator
        .check_pending(SystemTime::now())
        .unwrap()
        .is_none());

    let later = SystemTime::now() + Duration::from_secs(31);
    let report = activator
        .check_pending(later)
        .unwrap()
        .expect("rolled back");
    assert_eq!(
        report.outcome,
        Outcome::RolledBack {
            to_generation: Some(1),
            reason: "generation 2 was not confirmed before its deadline".into()
        }
    );
    assert_eq!(
        environ_version(host.pid_of("app").unwrap()).as_deref(),
        Some("v1")
    );
    assert!(activator.pending().is_none());

    activator.activate(&v3).unwrap();
    assert!(
        !activator.confirm(2).unwrap(),
        "only the pending generation confirms"
    );
    assert!(activator.confirm(3).unwrap());
    assert!(activator
        .check_pending(later + Duration::from_secs(60))
        .unwrap()
        .is_none());
    assert_eq!(
        environ_version(host.pid_of("app").unwrap()).as_deref(),
        Some("v3")
    );
}

#[test]
fn service_runs_as_its_user_created_when_missing_needs_root() {
    let host = Host::new();
    let user = "ferrytestsvc";
    let mut app = sleeper("v1");
    app.user = Some(user.into());
    app.state_dirs.push("cache".into());
    app.health
        .push(command_check("test -w \"$STATE_DIRECTORY/cache\"", 0));
    let system = host.system("user", &manifest(vec![("app", app)]), &[]);
    let report = host.activator().activate(&system).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Activated { generation: 1 },
        "{report:?}"
    );
    let uid = nix::unistd::User::from_name(user)
        .unwrap()
        .expect("user created")
        .uid;
    let pid = host.pid_of("app").unwrap();
    assert_eq!(
        fs::metadata(format!("/proc/{pid}")).unwrap().uid(),
        uid.as_raw()
    );
    assert_eq!(
        fs::metadata(host.state.join("lib/app/cache"))
            .unwrap()
            .uid(),
        uid.as_raw()
    );
}

#[test]
fn secrets_are_0400_outside_the_store_and_removed_when_unreferenced_needs_root() {
    let host = Host::new();
    let user = "ferrytestsecret";
    let mut app = sleeper("v1");
    app.exec =
        "cat \"$FERRY_SECRETS_DIR/db-password\" > \"$STATE_DIRECTORY/seen\" && exec sleep 100000"
            .into();
    app.user = Some(user.into());
    app.secrets.push(SecretRef {
        name: "db-password".into(),
        owner: Some(user.into()),
    });
    app.health
        .push(command_check("test -s \"$STATE_DIRECTORY/seen\"", 20));
    let with_secret = host.system("s1", &manifest(vec![("app", app)]), &[]);
    let without = host.system("s2", &manifest(vec![("app", sleeper("v2"))]), &[]);
    let mut activator = host.activator();

    let err = activator.activate(&with_secret).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secrets db-password are referenced by the new system but missing on this host; send them before activating"
    );
    ferry::activate::engine::ensure_user(user).unwrap();
    let path = secrets::write_secret(&host.state, "db-password", b"hunter2", Some(user)).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o400);
    assert_eq!(
        meta.uid(),
        nix::unistd::User::from_name(user)
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    );
    assert!(!path.starts_with(&host.store));
    let report = activator.activate(&with_secret).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Activated { generation: 1 },
        "{report:?}"
    );
    // The service, running as its user, could read it.
    assert_eq!(
        fs::read_to_string(host.state.join("lib/app/seen")).unwrap(),
        "hunter2"
    );
    // The value is in no store file and no log.
    for dir in [&host.store, &host.state.join("log")] {
        for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
            if entry.file_type().is_file() {
                let text = fs::read(entry.path()).unwrap();
                assert!(
                    !text.windows(7).any(|w| w == b"hunter2"),
                    "{}",
                    entry.path().display()
                );
            }
        }
    }

    activator.activate(&without).unwrap();
    assert_eq!(activator.keep_generations(5).unwrap(), Vec::<u64>::new());
    assert!(path.exists(), "generation 1 still references it");
    assert_eq!(activator.keep_generations(1).unwrap(), vec![1]);
    assert!(!path.exists(), "no generation references it any more");
}

/// A rotated secret was never delivered while the system stayed the same.
/// Activating the same system again with the secret marked rotated restarts
/// exactly the services that read it, and the host says so in its digests.
#[test]
fn a_rotated_secret_restarts_exactly_the_services_that_read_it() {
    let host = Host::new();
    let mut reader = sleeper("v1");
    reader.exec =
        "cat \"$FERRY_SECRETS_DIR/token\" > \"$STATE_DIRECTORY/seen\" && exec sleep 100000".into();
    reader.secrets.push(SecretRef {
        name: "token".into(),
        owner: None,
    });
    let system = host.system(
        "rot",
        &manifest(vec![("reader", reader), ("other", sleeper("v1"))]),
        &[],
    );
    secrets::write_secret(&host.state, "token", b"one", None).unwrap();
    let mut activator = host.activator();
    activator.activate(&system).unwrap();
    let seen = host.state.join("lib/reader/seen");
    assert!(wait_for(Duration::from_secs(10), || fs::read(&seen)
        .ok()
        .as_deref()
        == Some(b"one")));
    let (reader_v1, other_v1) = (
        host.pid_of("reader").unwrap(),
        host.pid_of("other").unwrap(),
    );
    let before = secrets::installed_digests(&host.state).unwrap();

    secrets::write_secret(&host.state, "token", b"two", None).unwrap();
    let after = secrets::installed_digests(&host.state).unwrap();
    assert_ne!(before.digests["token"], after.digests["token"]);
    activator.options.rotated_secrets = ["token".to_string()].into();
    let report = activator.activate(&system).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Activated { generation: 2 },
        "{report:?}"
    );
    assert!(report.diff.changed.contains("reader"), "{report:?}");
    assert!(report.diff.unchanged.contains("other"), "{report:?}");
    assert!(wait_for(Duration::from_secs(10), || fs::read(&seen)
        .ok()
        .as_deref()
        == Some(b"two")));
    assert_ne!(
        host.pid_of("reader").unwrap(),
        reader_v1,
        "the reader restarted"
    );
    assert_eq!(host.pid_of("other").unwrap(), other_v1, "the other did not");
}

// ---------------------------------------------------------- crash tests --

const CHILD_ENV: &str = "FERRY_TEST_ACTIVATE_CHILD";

/// Not a test on its own: the child process of
/// `activation_killed_at_many_points_recovers`, which runs one activation
/// and is killed with SIGKILL part-way.
#[test]
#[ignore = "child process of activation_killed_at_many_points_recovers"]
fn crash_child_activates() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('\n');
    let (state, store, system, expect) = (
        PathBuf::from(parts.next().unwrap()),
        PathBuf::from(parts.next().unwrap()),
        PathBuf::from(parts.next().unwrap()),
        parts.next().unwrap().to_string(),
    );
    let mut options = Host::fast_options();
    options.settle = Duration::from_millis(100);
    let backend = ferry::activate::backend::SupervisorBackend::new(&state, Host::launcher());
    let mut activator = ferry::activate::Activator::new(&state, &store, Box::new(backend), options);
    let report = activator.activate(&system).unwrap();
    assert_eq!(report.activated(), expect == "activated", "{report:?}");
}

fn crash_system(host: &Host, version: &str) -> PathBuf {
    let mut a = sleeper(version);
    a.hooks.pre_upgrade = vec!["sleep 0.05".into()];
    a.hooks.post_upgrade = vec!["sleep 0.05".into()];
    let mut b = sleeper(version);
    b.requires.local.push("a".into());
    b.health.push(command_check("sleep 0.02", 3));
    let c = sleeper("always-the-same");
    host.system(
        &format!("crash-{version}"),
        &manifest(vec![("a", a), ("b", b), ("c", c)]),
        &[],
    )
}

fn spawn_child(host: &Host, system: &Path) -> std::process::Child {
    spawn_child_expecting(host, system, "activated")
}

fn spawn_child_expecting(host: &Host, system: &Path, expect: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "activate_engine::crash_child_activates",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!(
                "{}\n{}\n{}\n{expect}",
                host.state.display(),
                host.store.display(),
                system.display()
            ),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Asserts the host is consistent: on `a` or `b`, link valid, every service
/// of that generation running with that generation's definition.
fn assert_consistent(host: &Host, allowed: &[&PathBuf]) -> PathBuf {
    let current = current_system(&host.state);
    assert!(
        allowed
            .iter()
            .any(|s| fs::canonicalize(s).unwrap() == current),
        "host is on {} which is neither old nor new",
        current.display()
    );
    let manifest = Manifest::load(&current).unwrap();
    let names: Vec<String> = manifest.services.keys().cloned().collect();
    let statuses = host.backend().status(&names).unwrap();
    for status in statuses {
        assert_eq!(status.state, ServiceState::Running, "{status:?}");
        let pid = status.pid.unwrap();
        assert!(alive(pid));
        let want = &manifest.services[&status.name].env["VERSION"];
        assert_eq!(
            environ_version(pid).as_ref(),
            Some(want),
            "{} runs the wrong generation",
            status.name
        );
    }
    assert!(!host.state.join("activation.journal").exists());
    current
}

#[test]
fn activation_killed_at_many_points_recovers() {
    let host = Host::new();
    let v = [crash_system(&host, "v1"), crash_system(&host, "v2")];
    let mut activator = host.activator();
    activator.activate(&v[0]).unwrap();

    // One uninterrupted run in a child measures how long an activation takes
    // here, so the kill points spread over the whole of it on any machine.
    let started = Instant::now();
    let status = spawn_child(&host, &v[1]).wait().unwrap();
    assert!(status.success());
    let full = started.elapsed();
    let mut on = 1;
    assert_consistent(&host, &[&v[1]]);

    let points = 12;
    let mut recovered = 0;
    for i in 0..points {
        let target = &v[1 - on];
        let delay = full * i / points;
        let mut child = spawn_child(&host, target);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let interrupted = host.state.join("activation.journal").exists();
        let status = activator.status().unwrap();
        if interrupted {
            recovered += 1;
            assert!(
                status.recovered.is_some(),
                "journal left but no recovery at point {i}"
            );
        }
        let current = assert_consistent(&host, &[&v[0], &v[1]]);
        on = if current == fs::canonicalize(&v[0]).unwrap() {
            0
        } else {
            1
        };
        // Old or new, the host can always move on.
        let target = &v[1 - on];
        let report = activator.activate(target).unwrap();
        assert!(report.activated(), "point {i}: {report:?}");
        on = 1 - on;
        assert_consistent(&host, &[target]);
    }
    eprintln!("{recovered} of {points} kills interrupted an activation (full run {full:?})");
    assert!(recovered > 0, "no kill landed inside an activation");
    // `c` never changed: it kept its first process through everything.
    let c = activator.backend().status(&["c".to_string()]).unwrap();
    assert_eq!(c[0].restarts, 0);
}

#[test]
fn failing_activation_killed_at_many_points_ends_on_the_old_generation() {
    let host = Host::new();
    let good = crash_system(&host, "v1");
    let mut m = Manifest::load(&crash_system(&host, "v2")).unwrap();
    m.services.get_mut("b").unwrap().health = vec![command_check("exit 1", 2)];
    let bad = host.system("crash-bad", &m, &[]);
    let mut activator = host.activator();
    activator.activate(&good).unwrap();

    let started = Instant::now();
    assert!(spawn_child_expecting(&host, &bad, "rolled-back")
        .wait()
        .unwrap()
        .success());
    let full = started.elapsed();
    assert_consistent(&host, &[&good]);
    let points = 10;
    let mut recovered = 0;
    for i in 0..points {
        let mut child = spawn_child_expecting(&host, &bad, "rolled-back");
        std::thread::sleep(full * i / points);
        let _ = child.kill();
        let _ = child.wait();
        if host.state.join("activation.journal").exists() {
            recovered += 1;
        }
        activator.status().unwrap();
        assert_consistent(&host, &[&good]);
    }
    eprintln!("{recovered} of {points} kills interrupted a failing activation (full run {full:?})");
    assert!(recovered > 0, "no kill landed inside an activation");
}

#[test]
fn concurrent_activations_on_one_host_take_turns() {
    let host = Host::new();
    let base = host.system("t0", &manifest(vec![("app", sleeper("v0"))]), &[]);
    host.activator().activate(&base).unwrap();
    let systems: Vec<PathBuf> = ["t1", "t2"]
        .iter()
        .map(|v| host.system(v, &manifest(vec![("app", sleeper(v))]), &[]))
        .collect();
    let reports: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = systems
            .iter()
            .map(|system| scope.spawn(|| host.activator().activate(system).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut generations: Vec<u64> = reports
        .iter()
        .map(|r| match r.outcome {
            Outcome::Activated { generation } => generation,
            ref other => panic!("{other:?}"),
        })
        .collect();
    generations.sort();
    assert_eq!(generations, [2, 3]);
    // Whichever ran second is current, and its service runs.
    let last = reports.iter().max_by_key(|r| r.target_generation).unwrap();
    let current = current_system(&host.state);
    let manifest = Manifest::load(&current).unwrap();
    let pid = host.pid_of("app").unwrap();
    assert_eq!(
        environ_version(pid).as_ref(),
        Some(&manifest.services["app"].env["VERSION"])
    );
    assert_eq!(
        ferry::activate::Profiles::open(&host.state)
            .unwrap()
            .current()
            .unwrap(),
        last.target_generation
    );
}

#[test]
fn failing_oneshot_task_rolls_back_with_its_exit_status() {
    let host = Host::new();
    let v1 = host.system("o1", &manifest(vec![("app", sleeper("v1"))]), &[]);
    let mut migrate = service("echo migrating; exit 5");
    migrate.oneshot = true;
    let mut app = sleeper("v2");
    app.requires.local.push("migrate".into());
    let v2 = host.system(
        "o2",
        &manifest(vec![("app", app), ("migrate", migrate)]),
        &[],
    );
    let mut activator = host.activator();
    activator.activate(&v1).unwrap();
    let report = activator.activate(&v2).unwrap();
    assert_eq!(
        rolled_back_reason(&report.outcome),
        "starting migrate failed: the supervisor refused the request: one-shot service migrate failed: exit status 5"
    );
    assert_eq!(
        environ_version(host.pid_of("app").unwrap()).as_deref(),
        Some("v1")
    );
    assert_eq!(
        activator
            .backend()
            .status(&["migrate".to_string()])
            .unwrap()[0]
            .state,
        ServiceState::Unknown,
        "the added task is gone again"
    );
}

#[test]
fn an_unreachable_service_backend_leaves_the_host_untouched() {
    let host = Host::new();
    let system = host.system("x", &manifest(vec![("app", sleeper("v1"))]), &[]);
    let launcher = ferry::activate::supervisor::SupervisorLauncher {
        program: PathBuf::from("/bin/false"),
        args: vec![],
    };
    let backend = ferry::activate::backend::SupervisorBackend::new(&host.state, launcher);
    let mut activator = ferry::activate::Activator::new(
        &host.state,
        &host.store,
        Box::new(backend),
        Host::fast_options(),
    );
    let err = activator.activate(&system).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "the supervisor did not start: /bin/false exited with exit status: 1; see "
        ),
        "{err}"
    );
    let profiles = ferry::activate::Profiles::open(&host.state).unwrap();
    assert_eq!(
        profiles.numbers().unwrap(),
        Vec::<u64>::new(),
        "nothing registered"
    );
    assert!(!host.state.join("activation.journal").exists());
}

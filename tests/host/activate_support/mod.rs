//! Shared fixtures of the activation tests: a host (temporary state and store
//! dirs with its own supervisor daemon), fabricated system objects with a
//! manifest.json, and small real services (shell loops, a python HTTP server).
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry::activate::backend::{ServiceBackend, SupervisorBackend};
use ferry::activate::engine::{ActivationOptions, Activator};
use ferry::activate::manifest::{
    HealthCheck, HealthProbe, Hooks, Manifest, Requires, RestartPolicy, Service, MANIFEST_VERSION,
};
use ferry::activate::supervisor::{SupervisorClient, SupervisorLauncher, SupervisorRequest};

pub const PYTHON: &str = "/usr/bin/python3";

/// A fake host: its state and store dirs, and its supervisor (shut down on drop).
pub struct Host {
    pub root: tempfile::TempDir,
    pub state: PathBuf,
    pub store: PathBuf,
}

impl Host {
    pub fn new() -> Host {
        let root = tempfile::Builder::new()
            .prefix("ferry-act-")
            .tempdir()
            .expect("temp dir");
        let state = root.path().join("var");
        let store = root.path().join("store");
        fs::create_dir_all(&state).unwrap();
        fs::create_dir_all(&store).unwrap();
        Host { root, state, store }
    }

    pub fn launcher() -> SupervisorLauncher {
        SupervisorLauncher::ferry(PathBuf::from(env!("CARGO_BIN_EXE_ferry")))
    }

    pub fn backend(&self) -> SupervisorBackend {
        SupervisorBackend::new(&self.state, Self::launcher())
    }

    /// Options with short waits, for tests.
    pub fn fast_options() -> ActivationOptions {
        ActivationOptions {
            stop_grace: Duration::from_secs(2),
            hook_timeout: Duration::from_secs(10),
            settle: Duration::from_millis(250),
            confirm_within: None,
            host_env: BTreeMap::from([("FERRY_HOSTNAME".to_string(), "test-host".to_string())]),
            rotated_secrets: Default::default(),
            restart_all: false,
        }
    }

    pub fn activator(&self) -> Activator {
        Activator::new(
            &self.state,
            &self.store,
            Box::new(self.backend()),
            Self::fast_options(),
        )
    }

    /// Writes a system object `<store>/<fake hash>-system-<label>` holding
    /// `manifest` as manifest.json and `files` (relative path → content).
    pub fn system(&self, label: &str, manifest: &Manifest, files: &[(&str, &str)]) -> PathBuf {
        let hash = blake3::hash(format!("{label}{}", manifest.to_json()).as_bytes()).to_hex();
        let dir = self
            .store
            .join(format!("{}-system-{label}", &hash.as_str()[..32]));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("manifest.json"), manifest.to_json()).unwrap();
        for (path, content) in files {
            let file = dir.join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, content).unwrap();
        }
        dir
    }

    pub fn pid_of(&self, service: &str) -> Option<u32> {
        let mut backend = self.backend();
        backend.status(&[service.to_string()]).unwrap()[0].pid
    }

    pub fn profile_target(&self) -> PathBuf {
        fs::canonicalize(self.state.join("profiles/system")).expect("system link resolves")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(mut client) = SupervisorClient::connect(&self.state) {
            let _ = client.call(&SupervisorRequest::Shutdown { grace_ms: 2000 });
        }
    }
}

/// A manifest of class `web` with the given services.
pub fn manifest(services: Vec<(&str, Service)>) -> Manifest {
    Manifest {
        version: MANIFEST_VERSION,
        site: "test".into(),
        class: "web".into(),
        services: services
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect(),
        packages: vec![],
        files: vec![],
        usr: None,
        debian: Default::default(),
    }
}

/// A service running `exec` with default settings.
pub fn service(exec: &str) -> Service {
    Service {
        exec: exec.into(),
        env: BTreeMap::new(),
        user: None,
        state_dirs: vec![],
        health: vec![],
        hooks: Hooks::default(),
        requires: Requires::default(),
        secrets: vec![],
        oneshot: false,
        restart: RestartPolicy {
            backoff_ms: 20,
            backoff_max_ms: 200,
            limit: 3,
            window_ms: 10_000,
            ..RestartPolicy::default()
        },
    }
}

/// A long-running process that does nothing (version in its environment).
pub fn sleeper(version: &str) -> Service {
    let mut s = service("exec sleep 100000");
    s.env.insert("VERSION".into(), version.into());
    s
}

/// The python HTTP server script: answers every GET with its version.
pub const SERVER_PY: &str = r#"
import http.server, sys
port, version = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = version.encode()
        code = 500 if self.path == "/fail" else 200
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer.allow_reuse_address = True
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// A health check probing `url` quickly and often.
pub fn http_check(url: &str, expect_status: u16) -> HealthCheck {
    HealthCheck {
        probe: HealthProbe::Http {
            url: url.into(),
            expect_status,
            ca: None,
        },
        timeout_ms: 500,
        retries: 60,
        interval_ms: 25,
    }
}

/// A command check with few retries.
pub fn command_check(cmd: &str, retries: u32) -> HealthCheck {
    HealthCheck {
        probe: HealthProbe::Command { cmd: cmd.into() },
        timeout_ms: 2000,
        retries,
        interval_ms: 20,
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs `/` and returns the body, or `None` when nothing answers.
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split("\r\n\r\n").nth(1).map(str::to_string)
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// The system store path the `system` profile link resolves to, checked
/// the way a reader would see it.
pub fn current_system(state: &Path) -> PathBuf {
    fs::canonicalize(state.join("profiles/system")).expect("system link resolves")
}

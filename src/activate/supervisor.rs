//! ferry's own per-host service supervisor for hosts without systemd: a
//! daemon (`ferry remote supervise`) that starts services in their own
//! session and process group, restarts crashed ones with exponential backoff,
//! marks crash loops, writes rotated per-service logs, and answers a small
//! JSON-lines protocol on a unix socket under `<state_dir>/supervisor/`.
//!
//! One daemon per host: it holds an flock on its pidfile for its lifetime, so
//! a second one exits at once. It runs in its own session with stdin/stdout on
//! /dev/null, so it outlives the agent that started it.
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ferry_store::durable::unix_ms;

use fs2::FileExt;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::backend::{BackendError, ServiceDefinition, ServiceState, ServiceStatus};
use super::env::BASE_PATH;
use super::manifest::RestartMode;

/// Where the supervisor of a state dir keeps its files.
#[derive(Debug, Clone)]
pub struct SupervisorPaths {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub log_dir: PathBuf,
}

impl SupervisorPaths {
    pub fn new(state_dir: &Path) -> SupervisorPaths {
        let dir = state_dir.join("supervisor");
        SupervisorPaths {
            socket: dir.join("supervisor.sock"),
            pidfile: dir.join("supervisor.pid"),
            dir,
            log_dir: state_dir.join("log"),
        }
    }

    /// The log file of a service.
    pub fn service_log(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }
}

/// Size-based log rotation: `<svc>.log` is moved to `<svc>.log.1` (and
/// `.1` to `.2`, …) before a write would make it larger than `max_bytes`;
/// `keep` rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    pub max_bytes: u64,
    pub keep: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// A request on the supervisor socket: one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Define {
        services: Vec<ServiceDefinition>,
    },
    Start {
        names: Vec<String>,
    },
    Stop {
        names: Vec<String>,
        grace_ms: u64,
    },
    Remove {
        names: Vec<String>,
        grace_ms: u64,
    },
    Status {
        names: Vec<String>,
    },
    /// Stops every service and exits.
    Shutdown {
        grace_ms: u64,
    },
}

/// The answer to one request: one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Pong { pid: u32 },
    Status { services: Vec<ServiceStatus> },
    Error { message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("another supervisor already runs for this state dir (pidfile {pidfile})")]
    AlreadyRunning { pidfile: PathBuf },
}

// ---------------------------------------------------------------- daemon --

/// What survives a restart of the supervisor itself
/// (`<state_dir>/supervisor/services.json`): definitions, whether each
/// service should run, and the process group it ran in.
#[derive(Debug, Serialize, Deserialize)]
struct PersistedService {
    definition: ServiceDefinition,
    wanted: bool,
    pid: Option<u32>,
}

struct Entry {
    def: ServiceDefinition,
    /// Whether the service should be running (restarts only happen when set).
    wanted: bool,
    state: ServiceState,
    pid: Option<u32>,
    restarts: u32,
    /// Crash times within the restart window.
    crashes: VecDeque<Instant>,
    /// Crashes in a row without a long enough run in between.
    consecutive: u32,
    since: SystemTime,
    last_exit: Option<String>,
    /// Bumped by every explicit start/stop, so stale waiters and pending
    /// restarts of an older run do nothing.
    run: u64,
    started_at: Instant,
    log: Arc<Mutex<LogFile>>,
}

impl Entry {
    fn set_state(&mut self, state: ServiceState) {
        self.state = state;
        self.since = SystemTime::now();
    }

    fn status(&self, name: &str) -> ServiceStatus {
        ServiceStatus {
            name: name.to_string(),
            state: self.state,
            pid: self.pid,
            restarts: self.restarts,
            since_ms: unix_ms(self.since),
            last_exit: self.last_exit.clone(),
        }
    }
}

struct Daemon {
    paths: SupervisorPaths,
    log_config: LogConfig,
    services: Mutex<BTreeMap<String, Entry>>,
    /// Signalled whenever a service's process exits or starts.
    changed: Condvar,
    /// Set by a `shutdown` request; the accept loop ends when it sees it.
    shutting_down: std::sync::atomic::AtomicBool,
    /// The listening socket, for waking the accept loop at shutdown.
    listener_fd: std::sync::atomic::AtomicI32,
}

/// A log file with size-based rotation, shared by a service's output reader
/// and the supervisor's own event lines about it.
struct LogFile {
    path: PathBuf,
    config: LogConfig,
    file: Option<File>,
    size: u64,
}

impl LogFile {
    fn new(path: PathBuf, config: LogConfig) -> LogFile {
        LogFile {
            path,
            config,
            file: None,
            size: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        // Logging is best effort: a full disk must not take services down.
        let _ = self.try_write(bytes);
    }

    fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        // Split writes at the size limit, so no file ever grows beyond it
        // however large one read from the service's pipe was.
        let max = self.config.max_bytes.max(1);
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.size >= max {
                self.rotate()?;
            }
            let room = usize::try_from(max - self.size).unwrap_or(usize::MAX);
            let (now, later) = rest.split_at(room.min(rest.len()));
            if let Some(file) = self.file.as_mut() {
                file.write_all(now)?;
            }
            self.size += now.len() as u64;
            rest = later;
        }
        Ok(())
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.config.keep == 0 {
            fs::remove_file(&self.path).or_else(ignore_not_found)?;
        } else {
            fs::remove_file(numbered(self.config.keep)).or_else(ignore_not_found)?;
            for n in (1..self.config.keep).rev() {
                fs::rename(numbered(n), numbered(n + 1)).or_else(ignore_not_found)?;
            }
            fs::rename(&self.path, numbered(1)).or_else(ignore_not_found)?;
        }
        self.open()
    }
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        _ => status.to_string(),
    }
}

impl Daemon {
    fn record_path(&self) -> PathBuf {
        self.paths.dir.join("services.json")
    }

    /// Saves definitions, wishes and pids (caller holds the lock, so writes
    /// never interleave).
    fn persist(&self, services: &BTreeMap<String, Entry>) {
        let record: BTreeMap<&str, PersistedService> = services
            .iter()
            .map(|(name, e)| {
                (
                    name.as_str(),
                    PersistedService {
                        definition: e.def.clone(),
                        wanted: e.wanted,
                        pid: e.pid,
                    },
                )
            })
            .collect();
        let Ok(text) = serde_json::to_vec(&record) else {
            return;
        };
        let path = self.record_path();
        let tmp = self.paths.dir.join(".services.json.tmp");
        // Best effort: losing this file only loses restart-after-crash.
        if fs::write(&tmp, text).is_ok() {
            let _ = fs::rename(&tmp, &path);
        }
    }

    /// After a restart of the supervisor: ends the process groups its
    /// previous incarnation left behind (their output pipes are gone with
    /// it) and starts again every service that should run.
    fn adopt(self: &Arc<Self>) {
        let Some(record) = fs::read(self.record_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, PersistedService>>(&b).ok())
        else {
            return;
        };
        for service in record.values() {
            if let Some(pid) = service.pid {
                end_orphan_group(pid);
            }
        }
        self.define(record.values().map(|s| s.definition.clone()).collect());
        let mut services = self.lock();
        for (name, service) in &record {
            if !service.wanted || service.definition.oneshot {
                continue;
            }
            if let Some(entry) = services.get_mut(name) {
                entry.wanted = true;
                entry.run += 1;
                Self::event(entry, "supervisor restarted; starting the service again");
            }
            let _ = self.spawn(&mut services, name);
        }
        self.persist(&services);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panicking handler thread must not take the whole supervisor down;
        // the map itself stays consistent (every update is a few assignments).
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(entry: &Entry, text: &str) {
        let line = format!("[ferry-supervise {}] {text}\n", unix_ms(SystemTime::now()));
        entry
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(line.as_bytes());
    }

    fn define(&self, defs: Vec<ServiceDefinition>) {
        let mut services = self.lock();
        for def in defs {
            let name = def.name.clone();
            match services.get_mut(&name) {
                Some(entry) => entry.def = def,
                None => {
                    let log = LogFile::new(self.paths.service_log(&name), self.log_config);
                    services.insert(
                        name,
                        Entry {
                            def,
                            wanted: false,
                            state: ServiceState::Stopped,
                            pid: None,
                            restarts: 0,
                            crashes: VecDeque::new(),
                            consecutive: 0,
                            since: SystemTime::now(),
                            last_exit: None,
                            run: 0,
                            started_at: Instant::now(),
                            log: Arc::new(Mutex::new(log)),
                        },
                    );
                }
            }
        }
    }

    /// Spawns the process of `name` (caller holds the lock).
    fn spawn(
        self: &Arc<Self>,
        services: &mut BTreeMap<String, Entry>,
        name: &str,
    ) -> Result<(), String> {
        let Some(entry) = services.get_mut(name) else {
            return Err(format!("service {name} is not defined"));
        };
        let (child, reader) = match spawn_process(&entry.def) {
            Ok(pair) => pair,
            Err(message) => {
                entry.set_state(ServiceState::Failed);
                entry.last_exit = Some(format!("could not start: {message}"));
                Self::event(entry, &format!("could not start: {message}"));
                return Err(format!("service {name} could not start: {message}"));
            }
        };
        let pid = child.id();
        entry.pid = Some(pid);
        entry.started_at = Instant::now();
        entry.set_state(ServiceState::Running);
        Self::event(entry, &format!("started pid {pid}"));
        let log = Arc::clone(&entry.log);
        std::thread::spawn(move || copy_output(reader, log));
        let daemon = Arc::clone(self);
        let run = entry.run;
        let service = name.to_string();
        std::thread::spawn(move || daemon.wait_for(service, run, child));
        self.persist(services);
        self.changed.notify_all();
        Ok(())
    }

    fn wait_for(self: Arc<Self>, name: String, run: u64, mut child: Child) {
        let status = child.wait();
        let mut services = self.lock();
        let Some(entry) = services.get_mut(&name) else {
            return;
        };
        if entry.pid != Some(child.id()) {
            return;
        }
        entry.pid = None;
        let exit = match status {
            Ok(s) => s,
            Err(e) => {
                entry.last_exit = Some(format!("wait failed: {e}"));
                entry.set_state(ServiceState::Failed);
                self.persist(&services);
                self.changed.notify_all();
                return;
            }
        };
        let text = describe_exit(exit);
        Self::event(entry, &format!("pid {} ended: {text}", child.id()));
        entry.last_exit = Some(text);
        // Anything left in the group (background children) goes with it.
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        if !entry.wanted || entry.run != run {
            entry.set_state(ServiceState::Stopped);
            self.persist(&services);
            self.changed.notify_all();
            return;
        }
        let policy = entry.def.restart;
        let restart = !entry.def.oneshot
            && match policy.mode {
                RestartMode::Always => true,
                RestartMode::OnFailure => !exit.success(),
                RestartMode::Never => false,
            };
        if !restart {
            entry.wanted = false;
            entry.set_state(if exit.success() {
                ServiceState::Exited
            } else {
                ServiceState::Failed
            });
            self.persist(&services);
            self.changed.notify_all();
            return;
        }
        let now = Instant::now();
        let window = Duration::from_millis(policy.window_ms);
        if now.duration_since(entry.started_at) > Duration::from_millis(policy.backoff_max_ms) {
            entry.consecutive = 0;
        }
        entry.crashes.push_back(now);
        while entry
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            entry.crashes.pop_front();
        }
        if entry.crashes.len() as u64 > u64::from(policy.limit) {
            Self::event(
                entry,
                &format!(
                    "crash-looping: {} exits within {} ms; not restarting",
                    entry.crashes.len(),
                    policy.window_ms
                ),
            );
            entry.set_state(ServiceState::CrashLooping);
            self.persist(&services);
            self.changed.notify_all();
            return;
        }
        let factor = 1u64 << entry.consecutive.min(20);
        let delay = policy
            .backoff_ms
            .saturating_mul(factor)
            .min(policy.backoff_max_ms);
        entry.consecutive += 1;
        entry.set_state(ServiceState::Backoff);
        Self::event(entry, &format!("restarting in {delay} ms"));
        self.persist(&services);
        self.changed.notify_all();
        drop(services);
        std::thread::sleep(Duration::from_millis(delay));
        let mut services = self.lock();
        let still_wanted = services
            .get(&name)
            .is_some_and(|e| e.wanted && e.run == run && e.state == ServiceState::Backoff);
        if still_wanted {
            if let Some(entry) = services.get_mut(&name) {
                entry.restarts += 1;
            }
            let _ = self.spawn(&mut services, &name);
        }
    }

    fn start(self: &Arc<Self>, names: &[String]) -> Result<(), String> {
        for name in names {
            let mut services = self.lock();
            let Some(entry) = services.get_mut(name) else {
                return Err(format!("service {name} is not defined"));
            };
            if entry.pid.is_some() && entry.wanted {
                continue;
            }
            if entry.pid.is_some() {
                // A process from a stop that is still ending: wait it out.
                drop(services);
                self.stop(std::slice::from_ref(name), Duration::from_secs(10));
                services = self.lock();
            }
            let Some(entry) = services.get_mut(name) else {
                return Err(format!("service {name} is not defined"));
            };
            entry.wanted = true;
            entry.run += 1;
            entry.restarts = 0;
            entry.consecutive = 0;
            entry.crashes.clear();
            let oneshot = entry.def.oneshot;
            self.spawn(&mut services, name)?;
            if oneshot {
                let services = self.wait_until(services, name, None, |e| e.pid.is_none());
                if let Some(entry) = services.get(name) {
                    if entry.state != ServiceState::Exited {
                        return Err(format!(
                            "one-shot service {name} failed: {}",
                            entry.last_exit.as_deref().unwrap_or("unknown")
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn wait_until<'a>(
        &'a self,
        mut services: MutexGuard<'a, BTreeMap<String, Entry>>,
        name: &str,
        deadline: Option<Instant>,
        done: impl Fn(&Entry) -> bool,
    ) -> MutexGuard<'a, BTreeMap<String, Entry>> {
        loop {
            match services.get(name) {
                None => return services,
                Some(e) if done(e) => return services,
                Some(_) => {}
            }
            let wait = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return services;
                    }
                    d - now
                }
                None => Duration::from_secs(1),
            };
            services = self
                .changed
                .wait_timeout(services, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn stop(&self, names: &[String], grace: Duration) {
        for name in names {
            let mut services = self.lock();
            let Some(entry) = services.get_mut(name) else {
                continue;
            };
            entry.wanted = false;
            entry.run += 1;
            let Some(pid) = entry.pid else {
                if entry.state != ServiceState::Stopped {
                    entry.set_state(ServiceState::Stopped);
                }
                continue;
            };
            Self::event(entry, &format!("stopping pid {pid} (SIGTERM)"));
            let group = Pid::from_raw(pid as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            services = self.wait_until(services, name, Some(deadline), |e| e.pid != Some(pid));
            if services.get(name).is_some_and(|e| e.pid == Some(pid)) {
                if let Some(entry) = services.get(name) {
                    Self::event(
                        entry,
                        &format!("pid {pid} still alive after {grace:?}; SIGKILL"),
                    );
                }
                let _ = killpg(group, Signal::SIGKILL);
                services = self.wait_until(services, name, None, |e| e.pid != Some(pid));
            }
            drop(services);
        }
    }

    fn status(&self, names: &[String]) -> Vec<ServiceStatus> {
        let services = self.lock();
        if names.is_empty() {
            return services.iter().map(|(n, e)| e.status(n)).collect();
        }
        names
            .iter()
            .map(|name| match services.get(name) {
                Some(e) => e.status(name),
                None => ServiceStatus {
                    name: name.clone(),
                    state: ServiceState::Unknown,
                    pid: None,
                    restarts: 0,
                    since_ms: 0,
                    last_exit: None,
                },
            })
            .collect()
    }

    fn handle(self: &Arc<Self>, request: Request) -> (Response, bool) {
        match request {
            Request::Ping => (
                Response::Pong {
                    pid: std::process::id(),
                },
                false,
            ),
            Request::Define { services } => {
                self.define(services);
                self.persist(&self.lock());
                (Response::Ok, false)
            }
            Request::Start { names } => match self.start(&names) {
                Ok(()) => (Response::Ok, false),
                Err(message) => (Response::Error { message }, false),
            },
            Request::Stop { names, grace_ms } => {
                self.stop(&names, Duration::from_millis(grace_ms));
                self.persist(&self.lock());
                (Response::Ok, false)
            }
            Request::Remove { names, grace_ms } => {
                self.stop(&names, Duration::from_millis(grace_ms));
                let mut services = self.lock();
                for name in &names {
                    services.remove(name);
                }
                self.persist(&services);
                (Response::Ok, false)
            }
            Request::Status { names } => (
                Response::Status {
                    services: self.status(&names),
                },
                false,
            ),
            Request::Shutdown { grace_ms } => {
                let names: Vec<String> = self.lock().keys().cloned().collect();
                self.stop(&names, Duration::from_millis(grace_ms));
                // A deliberate shutdown leaves nothing to restart.
                let _ = fs::remove_file(self.record_path());
                (Response::Ok, true)
            }
        }
    }

    fn serve(self: Arc<Self>, stream: UnixStream) {
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut writer = stream;
        for line in BufReader::new(read_half).lines() {
            let Ok(line) = line else { return };
            if line.trim().is_empty() {
                continue;
            }
            let (response, exit) = match serde_json::from_str::<Request>(&line) {
                Ok(request) => self.handle(request),
                Err(e) => (
                    Response::Error {
                        message: format!("bad request: {e}"),
                    },
                    false,
                ),
            };
            let mut text = match serde_json::to_string(&response) {
                Ok(t) => t,
                Err(_) => return,
            };
            text.push('\n');
            let _ = writer.write_all(text.as_bytes());
            if exit {
                self.shutting_down
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                // Wake the accept loop so it sees the flag: shutdown(2) on a
                // listening socket makes a blocked accept return on Linux.
                // (Connecting to the socket's path would not do: the client
                // may already have removed the state dir.)
                let fd = self.listener_fd.load(std::sync::atomic::Ordering::SeqCst);
                // SAFETY: shutdown(2) only acts on the fd, which is the
                // listener's; run_daemon keeps it open until after the
                // accept loop has ended.
                unsafe {
                    libc::shutdown(fd, libc::SHUT_RDWR);
                }
                return;
            }
        }
    }
}

/// Starts `/bin/sh -c exec` in a new session (own process group), with the
/// definition's environment, working directory and user; its stdout and
/// stderr go into one pipe whose read end is returned.
fn spawn_process(def: &ServiceDefinition) -> Result<(Child, File), String> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let write_err: OwnedFd = write_end.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&def.exec)
        .env_clear()
        .env("PATH", BASE_PATH)
        .envs(&def.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::from(write_err));
    if def.working_dir.is_dir() {
        command.current_dir(&def.working_dir);
    } else {
        command.current_dir("/");
    }
    if let Some(user) = &def.user {
        let found = nix::unistd::User::from_name(user)
            .map_err(|e| format!("looking up user {user}: {e}"))?
            .ok_or_else(|| format!("user {user} does not exist"))?;
        command.uid(found.uid.as_raw()).gid(found.gid.as_raw());
        if !def.env.contains_key("HOME") {
            command.env("HOME", &def.working_dir);
        }
        command.env("USER", user).env("LOGNAME", user);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| e.to_string())?;
    drop(command);
    Ok((child, File::from(read_end)))
}

/// Ends a process group left by a previous supervisor, if `pid` still leads
/// its own session (so a reused pid of an unrelated process is left alone):
/// SIGTERM, then SIGKILL after five seconds.
fn end_orphan_group(pid: u32) {
    let leads_own_session = || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields: Vec<String> = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                let state = fields.first()?.clone();
                let session = fields.get(3)?.parse::<u32>().ok()?;
                Some(state != "Z" && session == pid)
            })
            .unwrap_or(false)
    };
    if !leads_own_session() {
        return;
    }
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while leads_own_session() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(group, Signal::SIGKILL);
}

fn copy_output(mut reader: File, log: Arc<Mutex<LogFile>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

/// Runs the supervisor daemon in this process until a `shutdown` request
/// (which stops every service first), then returns.
/// Takes the pidfile lock first: a second supervisor for the same state dir
/// returns [`SupervisorError::AlreadyRunning`].
pub fn run_daemon(state_dir: &Path, log_config: LogConfig) -> Result<(), SupervisorError> {
    let paths = SupervisorPaths::new(state_dir);
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SupervisorError::Io {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(&paths.dir).map_err(io("create", &paths.dir))?;
    fs::create_dir_all(&paths.log_dir).map_err(io("create", &paths.log_dir))?;
    let mut pidfile = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.pidfile)
        .map_err(io("open", &paths.pidfile))?;
    if pidfile.try_lock_exclusive().is_err() {
        return Err(SupervisorError::AlreadyRunning {
            pidfile: paths.pidfile.clone(),
        });
    }
    pidfile.set_len(0).map_err(io("write", &paths.pidfile))?;
    writeln!(pidfile, "{}", std::process::id()).map_err(io("write", &paths.pidfile))?;
    // We hold the lock, so a socket file left here belongs to a dead supervisor.
    fs::remove_file(&paths.socket)
        .or_else(ignore_not_found)
        .map_err(io("remove", &paths.socket))?;
    let listener = UnixListener::bind(&paths.socket).map_err(io("bind", &paths.socket))?;
    let daemon = Arc::new(Daemon {
        paths,
        log_config,
        services: Mutex::new(BTreeMap::new()),
        changed: Condvar::new(),
        shutting_down: std::sync::atomic::AtomicBool::new(false),
        listener_fd: std::sync::atomic::AtomicI32::new(std::os::fd::AsRawFd::as_raw_fd(&listener)),
    });
    daemon.adopt();
    for stream in listener.incoming() {
        if daemon
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            break;
        }
        let Ok(stream) = stream else { continue };
        let daemon = Arc::clone(&daemon);
        std::thread::spawn(move || daemon.serve(stream));
    }
    // Remove the socket before the pidfile lock goes, so a successor never
    // sees our socket after taking the lock.
    let _ = fs::remove_file(&daemon.paths.socket);
    let _ = fs::remove_file(&daemon.paths.pidfile);
    drop(pidfile);
    Ok(())
}

// ---------------------------------------------------------------- client --

/// How to start the supervisor daemon when it is not running: `program`
/// with `args` (e.g. the ferry binary and `remote supervise`); the state dir
/// is appended as `--state-dir DIR`.
#[derive(Debug, Clone)]
pub struct SupervisorLauncher {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl SupervisorLauncher {
    /// This very binary, `ferry remote supervise`.
    pub fn current_exe() -> Result<SupervisorLauncher, BackendError> {
        let program = std::env::current_exe().map_err(|source| BackendError::Io {
            action: "find the ferry binary".into(),
            source,
        })?;
        Ok(SupervisorLauncher::ferry(program))
    }

    /// The given ferry binary's `remote supervise`.
    pub fn ferry(program: PathBuf) -> SupervisorLauncher {
        SupervisorLauncher {
            program,
            args: vec!["remote".into(), "supervise".into()],
        }
    }
}

/// A connection to the supervisor of one state dir.
pub struct SupervisorClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl SupervisorClient {
    /// Connects to a running supervisor.
    pub fn connect(state_dir: &Path) -> Result<SupervisorClient, BackendError> {
        let socket = SupervisorPaths::new(state_dir).socket;
        let stream = UnixStream::connect(&socket).map_err(|source| BackendError::Io {
            action: format!("connect to the supervisor at {}", socket.display()),
            source,
        })?;
        let writer = stream.try_clone().map_err(|source| BackendError::Io {
            action: "clone the supervisor socket".into(),
            source,
        })?;
        Ok(SupervisorClient {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Connects, starting the daemon first when none answers.
    pub fn connect_or_start(
        state_dir: &Path,
        launcher: &SupervisorLauncher,
    ) -> Result<SupervisorClient, BackendError> {
        if let Ok(mut client) = Self::connect(state_dir) {
            if client.ping().is_ok() {
                return Ok(client);
            }
        }
        start_daemon(state_dir, launcher)?;
        Self::connect(state_dir)
    }

    /// Sends one request and reads its answer.
    pub fn call(&mut self, request: &Request) -> Result<Response, BackendError> {
        let mut text = serde_json::to_string(request).map_err(|e| BackendError::Protocol {
            message: e.to_string(),
        })?;
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|source| BackendError::Io {
                action: "send to the supervisor".into(),
                source,
            })?;
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| BackendError::Io {
                action: "read from the supervisor".into(),
                source,
            })?;
        if n == 0 {
            return Err(BackendError::Protocol {
                message: "the supervisor closed the connection".into(),
            });
        }
        let response: Response =
            serde_json::from_str(&line).map_err(|e| BackendError::Protocol {
                message: e.to_string(),
            })?;
        if let Response::Error { message } = response {
            return Err(BackendError::Refused { message });
        }
        Ok(response)
    }

    /// The daemon's pid.
    pub fn ping(&mut self) -> Result<u32, BackendError> {
        match self.call(&Request::Ping)? {
            Response::Pong { pid } => Ok(pid),
            other => Err(BackendError::Protocol {
                message: format!("expected pong, got {other:?}"),
            }),
        }
    }

    pub fn status(&mut self, names: &[String]) -> Result<Vec<ServiceStatus>, BackendError> {
        match self.call(&Request::Status {
            names: names.to_vec(),
        })? {
            Response::Status { services } => Ok(services),
            other => Err(BackendError::Protocol {
                message: format!("expected status, got {other:?}"),
            }),
        }
    }
}

/// Starts the daemon detached from the caller (new session, stdin/stdout on
/// /dev/null, stderr appended to `<state_dir>/log/supervisor.log`) and waits
/// until it answers.
pub fn start_daemon(state_dir: &Path, launcher: &SupervisorLauncher) -> Result<(), BackendError> {
    let paths = SupervisorPaths::new(state_dir);
    let io_err = |action: String| move |source| BackendError::Io { action, source };
    fs::create_dir_all(&paths.log_dir)
        .map_err(io_err(format!("create {}", paths.log_dir.display())))?;
    let log_path = paths.log_dir.join("supervisor.log");
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(format!("open {}", log_path.display())))?;
    let mut command = Command::new(&launcher.program);
    command
        .args(&launcher.args)
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(io_err(format!("start {}", launcher.program.display())))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        if let Ok(mut client) = SupervisorClient::connect(state_dir) {
            if client.ping().is_ok() {
                break;
            }
        }
        if exited.is_none() {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some((status, Instant::now()));
            }
        }
        // Ours may have lost a start race against another caller's daemon;
        // give that one a moment to answer before calling it a failure.
        if let Some((status, at)) = exited {
            if at.elapsed() > Duration::from_secs(1) {
                return Err(BackendError::NotStarted {
                    message: format!(
                        "{} exited with {status}; see {}",
                        launcher.program.display(),
                        log_path.display()
                    ),
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(BackendError::NotStarted {
                message: format!("no answer within 10 s; see {}", log_path.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reap the daemon if it ever exits while we live; after we exit, init does.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

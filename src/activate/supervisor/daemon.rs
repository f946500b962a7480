//! The supervisor daemon: its service table, restarts with backoff and
//! crash-loop detection, persistence across its own restarts, and the
//! socket loop answering requests.
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ferry_store::durable::{io_err, unix_ms, AtomicWrite, Fsync, IoError};
use fs2::FileExt;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::log::{copy_output, ignore_not_found, LogConfig, LogFile};
use super::protocol::{SupervisorPaths, SupervisorReply, SupervisorRequest};
use super::spawn::{describe_exit, end_orphan_group, spawn_process};
use crate::activate::manifest::RestartMode;
use crate::activate::service::{ServiceDefinition, ServiceState, ServiceStatus};

/// Why the supervisor daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A file-system or socket call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Another daemon holds the pidfile lock.
    #[error("another supervisor already runs for this state dir (pidfile {pidfile})")]
    AlreadyRunning {
        /// The pidfile it holds.
        pidfile: PathBuf,
    },
}

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
        // Best effort: losing this file only loses restart-after-crash.
        let _ = AtomicWrite::durable()
            .sync(Fsync::Nothing)
            .write(&self.record_path(), &text);
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

    fn handle(self: &Arc<Self>, request: SupervisorRequest) -> (SupervisorReply, bool) {
        match request {
            SupervisorRequest::Ping => (
                SupervisorReply::Pong {
                    pid: std::process::id(),
                },
                false,
            ),
            SupervisorRequest::Define { services } => {
                self.define(services);
                self.persist(&self.lock());
                (SupervisorReply::Ok, false)
            }
            SupervisorRequest::Start { names } => match self.start(&names) {
                Ok(()) => (SupervisorReply::Ok, false),
                Err(message) => (SupervisorReply::Error { message }, false),
            },
            SupervisorRequest::Stop { names, grace_ms } => {
                self.stop(&names, Duration::from_millis(grace_ms));
                self.persist(&self.lock());
                (SupervisorReply::Ok, false)
            }
            SupervisorRequest::Remove { names, grace_ms } => {
                self.stop(&names, Duration::from_millis(grace_ms));
                let mut services = self.lock();
                for name in &names {
                    services.remove(name);
                }
                self.persist(&services);
                (SupervisorReply::Ok, false)
            }
            SupervisorRequest::Status { names } => (
                SupervisorReply::Status {
                    services: self.status(&names),
                },
                false,
            ),
            SupervisorRequest::Shutdown { grace_ms } => {
                let names: Vec<String> = self.lock().keys().cloned().collect();
                self.stop(&names, Duration::from_millis(grace_ms));
                // A deliberate shutdown leaves nothing to restart.
                let _ = fs::remove_file(self.record_path());
                (SupervisorReply::Ok, true)
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
            let (response, exit) = match serde_json::from_str::<SupervisorRequest>(&line) {
                Ok(request) => self.handle(request),
                Err(e) => (
                    SupervisorReply::Error {
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

/// Runs the supervisor daemon in this process until a `shutdown` request
/// (which stops every service first), then returns.
/// Takes the pidfile lock first: a second supervisor for the same state dir
/// returns [`SupervisorError::AlreadyRunning`].
pub fn run_daemon(state_dir: &Path, log_config: LogConfig) -> Result<(), SupervisorError> {
    let paths = SupervisorPaths::new(state_dir);
    fs::create_dir_all(&paths.dir).map_err(io_err("create", &paths.dir))?;
    fs::create_dir_all(&paths.log_dir).map_err(io_err("create", &paths.log_dir))?;
    let mut pidfile = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.pidfile)
        .map_err(io_err("open", &paths.pidfile))?;
    if pidfile.try_lock_exclusive().is_err() {
        return Err(SupervisorError::AlreadyRunning {
            pidfile: paths.pidfile.clone(),
        });
    }
    pidfile
        .set_len(0)
        .map_err(io_err("write", &paths.pidfile))?;
    writeln!(pidfile, "{}", std::process::id()).map_err(io_err("write", &paths.pidfile))?;
    // We hold the lock, so a socket file left here belongs to a dead supervisor.
    fs::remove_file(&paths.socket)
        .or_else(ignore_not_found)
        .map_err(io_err("remove", &paths.socket))?;
    let listener = UnixListener::bind(&paths.socket).map_err(io_err("bind", &paths.socket))?;
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

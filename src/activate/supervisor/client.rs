//! The supervisor's client: how to start the daemon, connect to it and
//! call it.
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::protocol::{SupervisorPaths, SupervisorReply, SupervisorRequest};
use crate::activate::service::{BackendError, ServiceStatus};

/// How to start the supervisor daemon when it is not running: `program`
/// with `args` (e.g. the ferry binary and `remote supervise`); the state dir
/// is appended as `--state-dir DIR`.
#[derive(Debug, Clone)]
pub struct SupervisorLauncher {
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments before `--state-dir DIR`.
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
    pub fn call(&mut self, request: &SupervisorRequest) -> Result<SupervisorReply, BackendError> {
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
        let response: SupervisorReply =
            serde_json::from_str(&line).map_err(|e| BackendError::Protocol {
                message: e.to_string(),
            })?;
        if let SupervisorReply::Error { message } = response {
            return Err(BackendError::Refused { message });
        }
        Ok(response)
    }

    /// The daemon's pid.
    pub fn ping(&mut self) -> Result<u32, BackendError> {
        match self.call(&SupervisorRequest::Ping)? {
            SupervisorReply::Pong { pid } => Ok(pid),
            other => Err(BackendError::Protocol {
                message: format!("expected pong, got {other:?}"),
            }),
        }
    }

    /// The status of the named services (all when `names` is empty).
    pub fn status(&mut self, names: &[String]) -> Result<Vec<ServiceStatus>, BackendError> {
        self.call(&SupervisorRequest::Status {
            names: names.to_vec(),
        })?
        .into_statuses()
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

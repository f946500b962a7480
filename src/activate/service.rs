//! What a service is to a backend: its definition with host paths resolved,
//! its state and status, and a backend's error. Shared by the backend trait
//! and ferry's supervisor, which sits below it.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::manifest::RestartPolicy;

/// Everything a backend needs to run one service, with host paths resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDefinition {
    /// The service's name (unique on the host).
    pub name: String,
    /// Run as `/bin/sh -c <exec>`.
    pub exec: String,
    /// The complete environment (besides `PATH`, which defaults to a fixed
    /// base when absent).
    pub env: BTreeMap<String, String>,
    /// Run as this user (must exist); `None` = root.
    pub user: Option<String>,
    /// The working directory: `<state_dir>/lib/<service>`.
    pub working_dir: PathBuf,
    /// A one-shot task: runs to its end, is not restarted on success.
    pub oneshot: bool,
    /// When and how fast it is restarted.
    pub restart: RestartPolicy,
    /// The class's package tree, seen read-only as `/usr`
    /// ([`crate::activate::usr_tree`]); `None`: the host's `/usr`.
    #[serde(default)]
    pub usr: Option<PathBuf>,
}

/// What a service is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// Its process is alive.
    Running,
    /// It crashed and waits for its next restart.
    Backoff,
    /// It crashed too often in its window and is no longer restarted.
    CrashLooping,
    /// Not running, on request (or never started).
    Stopped,
    /// Finished with status 0 and not restarted (one-shot tasks).
    Exited,
    /// Finished with a failure and not restarted.
    Failed,
    /// The backend does not know the service.
    Unknown,
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ServiceState::Running => "running",
            ServiceState::Backoff => "backoff",
            ServiceState::CrashLooping => "crash-looping",
            ServiceState::Stopped => "stopped",
            ServiceState::Exited => "exited",
            ServiceState::Failed => "failed",
            ServiceState::Unknown => "unknown",
        };
        f.write_str(text)
    }
}

/// One service's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service's name.
    pub name: String,
    /// What it is doing.
    pub state: ServiceState,
    /// The main process, while there is one.
    pub pid: Option<u32>,
    /// Automatic restarts since the last explicit start.
    pub restarts: u32,
    /// Since when the service is in `state`, Unix milliseconds.
    pub since_ms: u64,
    /// How its last process ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub last_exit: Option<String>,
}

/// A backend that failed to do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// An I/O call failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The supervisor answered with an error.
    #[error("the supervisor refused the request: {message}")]
    Refused {
        /// The supervisor's message.
        message: String,
    },
    /// The supervisor could not be started.
    #[error("the supervisor did not start: {message}")]
    NotStarted {
        /// Why.
        message: String,
    },
    /// The supervisor's answer does not parse.
    #[error("the supervisor's answer is not understood: {message}")]
    Protocol {
        /// What was not understood.
        message: String,
    },
    /// A `systemctl` call failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A name with no installed definition.
    #[error("service {name} is not defined in this backend")]
    UnknownService {
        /// The service.
        name: String,
    },
}

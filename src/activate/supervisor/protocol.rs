//! The supervisor's protocol: one JSON object per line on its unix socket,
//! a request from a client and the daemon's reply.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::activate::service::{BackendError, ServiceDefinition, ServiceStatus};

/// A request on the supervisor socket: one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SupervisorRequest {
    /// Is the daemon there? (answered with its pid)
    Ping,
    /// Install or replace definitions.
    Define {
        /// The definitions.
        services: Vec<ServiceDefinition>,
    },
    /// Start services that are not running.
    Start {
        /// The services, in order.
        names: Vec<String>,
    },
    /// Stop services (SIGTERM, SIGKILL after the grace period).
    Stop {
        /// The services, in order.
        names: Vec<String>,
        /// The SIGTERM → SIGKILL grace period, in milliseconds.
        grace_ms: u64,
    },
    /// Stop services and forget their definitions.
    Remove {
        /// The services, in order.
        names: Vec<String>,
        /// The SIGTERM → SIGKILL grace period, in milliseconds.
        grace_ms: u64,
    },
    /// The status of services.
    Status {
        /// The services (all known ones when empty).
        names: Vec<String>,
    },
    /// Stops every service and exits.
    Shutdown {
        /// The SIGTERM → SIGKILL grace period, in milliseconds.
        grace_ms: u64,
    },
}

/// The answer to one request: one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SupervisorReply {
    /// Done.
    Ok,
    /// The answer to a ping: the daemon's pid.
    Pong {
        /// The daemon's process id.
        pid: u32,
    },
    /// The answer to a status request.
    Status {
        /// One status per service.
        services: Vec<ServiceStatus>,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

impl SupervisorReply {
    /// The statuses of a `Status` request's reply; any other reply breaks the protocol.
    pub fn into_statuses(self) -> Result<Vec<ServiceStatus>, BackendError> {
        match self {
            SupervisorReply::Status { services } => Ok(services),
            other => Err(BackendError::Protocol {
                message: format!("expected status, got {other:?}"),
            }),
        }
    }
}

/// Where the supervisor of a state dir keeps its files.
#[derive(Debug, Clone)]
pub struct SupervisorPaths {
    /// `<state_dir>/supervisor/`.
    pub dir: PathBuf,
    /// The unix socket the daemon listens on.
    pub socket: PathBuf,
    /// The pidfile the daemon holds locked while it runs.
    pub pidfile: PathBuf,
    /// `<state_dir>/log/`: one log per service.
    pub log_dir: PathBuf,
}

impl SupervisorPaths {
    /// The paths of the supervisor of `state_dir`.
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

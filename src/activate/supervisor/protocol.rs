//! The supervisor's protocol: one JSON object per line on its unix socket,
//! a request from a client and the daemon's reply.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::service::{ServiceDefinition, ServiceStatus};

/// A request on the supervisor socket: one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SupervisorRequest {
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
pub enum SupervisorReply {
    Ok,
    Pong { pid: u32 },
    Status { services: Vec<ServiceStatus> },
    Error { message: String },
}

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

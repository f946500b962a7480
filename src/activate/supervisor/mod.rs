//! ferry's own per-host service supervisor for hosts without systemd: a
//! daemon (`ferry remote supervise`) that starts services in their own
//! session and process group, restarts crashed ones with exponential backoff,
//! marks crash loops, writes rotated per-service logs, and answers a small
//! JSON-lines protocol on a unix socket under `<state_dir>/supervisor/`.
//!
//! One daemon per host: it holds an flock on its pidfile for its lifetime, so
//! a second one exits at once. It runs in its own session with stdin/stdout on
//! /dev/null, so it outlives the agent that started it.
mod client;
mod daemon;
mod log;
mod protocol;
mod spawn;

pub use client::{start_daemon, SupervisorClient, SupervisorLauncher};
pub use daemon::{run_daemon, SupervisorError};
pub use log::LogConfig;
pub use protocol::{SupervisorPaths, SupervisorReply, SupervisorRequest};

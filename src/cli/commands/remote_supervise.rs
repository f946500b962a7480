//! `ferry remote supervise`: run
//! this host's service supervisor daemon (hidden; started on demand by the
//! activation code).
use std::path::Path;

use crate::activate::supervisor::{self, LogConfig, SupervisorError};
use crate::cli::error::{CommandError, Exit};
use crate::cli::CommandResult;

/// Runs the supervisor daemon until it is told to stop.
pub fn run(state_dir: &Path, log_max_bytes: u64, log_keep: u32) -> CommandResult {
    let config = LogConfig {
        max_bytes: log_max_bytes,
        keep: log_keep,
    };
    match supervisor::run_daemon(state_dir, config) {
        Ok(()) => Ok(Exit::Success),
        Err(e @ SupervisorError::AlreadyRunning { .. }) => Err(CommandError::failure(
            miette::miette!(help = "stop it with a `shutdown` request first", "{e}"),
        )),
        Err(e) => Err(CommandError::failure(miette::miette!("{e}"))),
    }
}

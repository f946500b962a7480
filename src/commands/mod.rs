//! One module per verb; each wires a library call to output and nothing more.
pub mod completions;
pub mod man;
pub mod remote_supervise;

use crate::cli::{Cli, Command, CommandResult};

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Completions { shell } => completions::run(shell),
        Command::Man { out_dir } => man::run(out_dir.as_deref()),
        Command::Supervise {
            log_max_bytes,
            log_keep,
        } => remote_supervise::run(&cli.global.state_dir, log_max_bytes, log_keep),
    }
}

//! One module per verb; each wires a library call to output and nothing more.
use crate::cli::{Cli, Command, CommandResult};

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {}
}

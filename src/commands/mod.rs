//! One module per verb; each wires a library call to output and nothing more.
use crate::cli::{Cli, Command, CommandResult};

pub mod check;
pub mod eval;

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Eval(args) => eval::run(args),
    }
}

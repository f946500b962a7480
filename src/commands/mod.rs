//! One module per verb; each wires a library call to output and nothing more.
use crate::cli::{Cli, Command, CommandResult};

pub mod gc;
pub mod store;

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Store(args) => store::run(&cli.global, args),
        Command::Gc(args) => gc::run(&cli.global, args),
    }
}

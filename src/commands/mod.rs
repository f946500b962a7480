//! One module per verb; each wires a library call to output and nothing more.
use crate::cli::{Cli, Command, CommandResult};

pub mod check;
pub mod copy;
pub mod eval;
pub mod gc;
pub mod lab;
pub mod remote;
pub mod store;

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Copy(args) => copy::run(&cli.global, args),
        Command::Lab(args) => lab::run(&cli.global, args),
        Command::Remote(args) => remote::run(&cli.global, args),
        Command::Store(args) => store::run(&cli.global, args),
        Command::Gc(args) => gc::run(&cli.global, args),
    }
}

/// Renders a library error (with its sources and an optional hint) for miette.
pub(crate) fn report(error: &dyn std::error::Error, hint: Option<String>) -> miette::Report {
    let text = crate::transport::error_chain(error);
    match hint {
        Some(hint) => miette::miette!(help = hint, "{text}"),
        None => miette::miette!("{text}"),
    }
}

//! One module per verb; each wires a library call to output and nothing more.
pub mod build;
pub mod check;
pub mod closure;
pub mod completions;
pub mod copy;
pub mod deploy;
pub mod eval;
pub mod gc;
pub mod generations;
pub mod lab;
pub mod man;
pub mod plan;
pub mod remote;
pub mod remote_supervise;
pub mod rollback;
pub mod status;
pub mod store;

use crate::cli::{Cli, Command, CommandResult};

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Completions { shell } => completions::run(shell),
        Command::Man { out_dir } => man::run(out_dir.as_deref()),
        Command::Store(args) => store::run(&cli.global, args),
        Command::Build(args) => build::run(&cli.global, args),
        Command::Closure(args) => closure::run(&cli.global, args),
        Command::Plan(args) => plan::run(&cli.global, args),
        Command::Deploy(args) => deploy::run(&cli.global, args),
        Command::Rollback(args) => rollback::run(&cli.global, args),
        Command::Generations(args) => generations::run(&cli.global, args),
        Command::Gc(args) => gc::run(&cli.global, args),
        Command::Check(args) => check::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Copy(args) => copy::run(&cli.global, args),
        Command::Lab(args) => lab::run(&cli.global, args),
        Command::Remote(args) => remote::run(&cli.global, args),
        Command::Status(args) => status::run(&cli.global, args),
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

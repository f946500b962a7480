//! One module per verb; each wires a library call to output and nothing more.
pub mod completions;
pub mod man;
pub mod remote_supervise;

use crate::cli::{Cli, Command, CommandResult};

pub mod build;
pub mod check;
pub mod closure;
pub mod eval;
pub mod gc;
pub mod plan;
pub mod store;

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Completions { shell } => completions::run(shell),
        Command::Man { out_dir } => man::run(out_dir.as_deref()),
        Command::Store(args) => store::run(&cli.global, args),
        Command::Build(args) => build::run(&cli.global, args),
        Command::Closure(args) => closure::run(&cli.global, args),
        Command::Plan(args) => plan::run(&cli.global, args),
        Command::Gc(args) => gc::run(&cli.global, args),
        Command::Check(args) => check::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Supervise {
            log_max_bytes,
            log_keep,
        } => remote_supervise::run(&cli.global.state_dir, log_max_bytes, log_keep),
    }
}

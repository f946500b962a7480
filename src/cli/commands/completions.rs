//! `ferry completions SHELL`: print a shell completion script generated from the clap definition.
use clap::CommandFactory;
use clap_complete::aot::{generate, Shell};

use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::{Cli, CommandResult};

/// Prints the completion script for `shell` on stdout.
pub fn run(shell: Shell) -> CommandResult {
    let mut script = Vec::new();
    generate(shell, &mut Cli::command(), "ferry", &mut script);
    let script = String::from_utf8(script).map_err(|e| {
        CommandError::failure(miette::miette!(
            "the {shell} completion script is not UTF-8: {e}"
        ))
    })?;
    output::line(script.trim_end_matches('\n'));
    Ok(Exit::Success)
}

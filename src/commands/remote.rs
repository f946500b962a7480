//! `ferry remote`: the host agent (started by the deployer over SSH, not by people).
use std::path::PathBuf;

use crate::cli::{CommandResult, GlobalArgs};
use crate::output::{CommandError, Exit};

#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Serve the agent protocol on stdin/stdout.
    #[arg(long, conflicts_with = "install_self")]
    pub stdio: bool,
    /// Add this executable to the store (bootstrap); it must become `--expect`.
    #[arg(long, requires = "expect")]
    pub install_self: bool,
    /// The store path the deployer expects this executable to have.
    #[arg(long)]
    pub expect: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: RemoteArgs) -> CommandResult {
    if args.install_self {
        let expect = args.expect.unwrap_or_default();
        crate::remote::install_self(
            &global.store_dir,
            &global.state_dir,
            &expect.to_string_lossy(),
        )
        .map_err(|e| {
            CommandError::failure(miette::miette!("{}", crate::transport::error_chain(&e)))
        })?;
        return Ok(Exit::Success);
    }
    if !args.stdio {
        return Err(CommandError::input(miette::miette!(
            help = "the deployer starts the agent with `ferry remote --stdio`",
            "`ferry remote` needs --stdio or --install-self"
        )));
    }
    crate::remote::serve_stdio(&global.store_dir, &global.state_dir).map_err(|e| {
        CommandError::failure(miette::miette!(
            "ferry agent: {}",
            crate::transport::error_chain(&e)
        ))
    })?;
    Ok(Exit::Success)
}

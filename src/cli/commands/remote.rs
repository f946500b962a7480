//! `ferry remote`: the host side of ferry (started by the deployer over SSH or by the agent, not by people).
//!
//! `ferry remote --stdio` is the agent; its subcommands are the detached
//! processes the agent and the activation code start on the host.
use std::path::PathBuf;

use crate::agent::activation::{self, JobTarget};
use crate::cli::error::{CommandError, Exit};
use crate::cli::{CommandResult, GlobalArgs};

// Plain comments, not doc lines: clap would turn those into help text.
// Arguments of `ferry remote`.
#[allow(missing_docs)]
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RemoteArgs {
    // The host-side process to run instead of the agent.
    #[command(subcommand)]
    pub command: Option<RemoteCommand>,
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

// The detached host-side processes (a plain comment for the same reason).
#[allow(missing_docs)]
#[derive(Debug, clap::Subcommand)]
pub enum RemoteCommand {
    /// Run this host's service supervisor daemon (started by activation).
    Supervise {
        /// Rotate a service's log when it would grow beyond this many bytes.
        #[arg(long, default_value_t = 10 * 1024 * 1024)]
        log_max_bytes: u64,
        /// Rotated log files kept per service.
        #[arg(long, default_value_t = 5)]
        log_keep: u32,
    },
    /// Activate a system (or an earlier generation) and write the report
    /// (started detached by the agent, so it outlives the session).
    Activate {
        /// The system store path to activate.
        #[arg(
            long,
            required_unless_present = "rollback_to",
            conflicts_with = "rollback_to"
        )]
        system: Option<PathBuf>,
        /// Activate this earlier generation again instead.
        #[arg(long)]
        rollback_to: Option<u64>,
        /// Magic rollback: the deployer must confirm within this many milliseconds.
        #[arg(long)]
        confirm_within_ms: Option<u64>,
        /// A secret whose value changed: its services restart even when
        /// their definition is the same (repeatable).
        #[arg(long = "rotated-secret", value_name = "NAME")]
        rotated_secrets: Vec<String>,
        /// Where to write the result (JSON).
        #[arg(long)]
        report: PathBuf,
    },
    /// Converge the host if the activation process `--job` dies half-way,
    /// then wait for the pending confirmation's deadline and roll back when
    /// it was not confirmed (started detached by each activation process
    /// before it changes anything).
    Watchdog {
        /// The pid of the activation process that started this watchdog.
        #[arg(long)]
        job: Option<u32>,
    },
}

/// Runs the agent or one of its detached host-side processes.
pub fn run(global: &GlobalArgs, args: RemoteArgs) -> CommandResult {
    if let Some(command) = args.command {
        return run_subcommand(global, command);
    }
    if args.install_self {
        let expect = args.expect.unwrap_or_default();
        crate::agent::install_self(
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
            "`ferry remote` needs --stdio, --install-self or a subcommand"
        )));
    }
    crate::agent::serve_stdio(&global.store_dir, &global.state_dir).map_err(|e| {
        CommandError::failure(miette::miette!(
            "ferry agent: {}",
            crate::transport::error_chain(&e)
        ))
    })?;
    Ok(Exit::Success)
}

fn run_subcommand(global: &GlobalArgs, command: RemoteCommand) -> CommandResult {
    let failure = |e: &dyn std::error::Error| {
        CommandError::failure(miette::miette!("{}", crate::transport::error_chain(e)))
    };
    match command {
        RemoteCommand::Supervise {
            log_max_bytes,
            log_keep,
        } => super::remote_supervise::run(&global.state_dir, log_max_bytes, log_keep),
        RemoteCommand::Activate {
            system,
            rollback_to,
            confirm_within_ms,
            rotated_secrets,
            report,
        } => {
            let target = match (system, rollback_to) {
                (Some(system), _) => JobTarget::System(system),
                (None, Some(n)) => JobTarget::Generation(n),
                // clap requires one of them.
                (None, None) => {
                    return Err(CommandError::input(miette::miette!(
                        "`ferry remote activate` needs --system or --rollback-to"
                    )))
                }
            };
            let ok = activation::run_activation_job(
                &global.store_dir,
                &global.state_dir,
                &target,
                confirm_within_ms,
                &rotated_secrets,
                &report,
            )
            .map_err(|e| failure(&e))?;
            Ok(if ok { Exit::Success } else { Exit::Failure })
        }
        RemoteCommand::Watchdog { job } => {
            activation::run_watchdog(&global.store_dir, &global.state_dir, job)
                .map_err(|e| failure(&e))?;
            Ok(Exit::Success)
        }
    }
}

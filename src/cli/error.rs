//! The one place that decides exit codes: every error a command can meet
//! becomes a [`CommandError`] (a rendered report and its [`Exit`]) through a
//! `From` impl or one of the constructors here, as jj's `command_error.rs`.
use ferry_store::StoreError;

use crate::build::{BuildError, LocatedBuildError};
use crate::deploy::execute::DeployError;
use crate::lab::LabError;

/// Process exit codes (DESIGN §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// Something failed (a build, a copy, a host).
    Failure = 1,
    /// Bad usage or bad input (a site file, an argument).
    BadInput = 2,
    /// A deploy finished, but at least one host was rolled back.
    RolledBack = 3,
}

impl Exit {
    /// The exit of a finished deploy from its report's code (0 ok, 3 rolled back, else failure).
    pub fn of_deploy(code: i32) -> Exit {
        match code {
            0 => Exit::Success,
            3 => Exit::RolledBack,
            _ => Exit::Failure,
        }
    }
}

/// The exit code for a command that returned normally.
pub type CommandResult = Result<Exit, CommandError>;

/// An error on its way to the user, with the exit code it ends the process with.
#[derive(Debug)]
pub struct CommandError {
    /// How the process ends.
    pub exit: Exit,
    /// What the user reads (miette draws it on stderr).
    pub report: miette::Report,
}

impl CommandError {
    /// Bad input from the user: exit code 2.
    pub fn input(report: impl Into<miette::Report>) -> Self {
        CommandError {
            exit: Exit::BadInput,
            report: report.into(),
        }
    }

    /// A failure while doing the work: exit code 1.
    pub fn failure(report: impl Into<miette::Report>) -> Self {
        CommandError {
            exit: Exit::Failure,
            report: report.into(),
        }
    }

    /// Bad input (exit 2) when `bad_input`, else a failure (exit 1).
    fn classified(bad_input: bool, report: miette::Report) -> Self {
        if bad_input {
            CommandError::input(report)
        } else {
            CommandError::failure(report)
        }
    }
}

/// Success when no host failed; else a failure that says so (`describe(failed)`).
pub fn unless_hosts_failed(failed: usize, describe: impl FnOnce(usize) -> String) -> CommandResult {
    if failed == 0 {
        Ok(Exit::Success)
    } else {
        Err(CommandError::failure(miette::miette!(
            "{}",
            describe(failed)
        )))
    }
}

/// Renders a library error (with its sources and an optional hint) for miette.
pub fn report(error: &dyn std::error::Error, hint: Option<String>) -> miette::Report {
    let text = crate::transport::error_chain(error);
    match hint {
        Some(hint) => miette::miette!(help = hint, "{text}"),
        None => miette::miette!("{text}"),
    }
}

/// Renders a store error with its hint; bad input exits 2, anything else 1.
pub fn store_error(error: StoreError) -> CommandError {
    let report = match error.hint() {
        Some(hint) => miette::miette!(help = hint, "{error}"),
        None => miette::miette!("{error}"),
    };
    CommandError::classified(error.is_bad_input(), report)
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        store_error(error)
    }
}

/// A lock that cannot be made or is missing or stale: bad input exits 2,
/// unreadable apt sources or indexes 1.
impl From<crate::build::site_lock::SiteLockError> for CommandError {
    fn from(error: crate::build::site_lock::SiteLockError) -> Self {
        CommandError::classified(error.is_bad_input(), report(&error, error.hint()))
    }
}

/// A build error, located in the site: bad input exits 2, a failed build 1.
impl From<BuildError> for CommandError {
    fn from(error: BuildError) -> Self {
        let bad_input = error.is_bad_input();
        CommandError::classified(
            bad_input,
            miette::Report::new(LocatedBuildError::from(error)),
        )
    }
}

/// A deploy that could not run: a wrong request exits 2, anything else 1.
impl From<DeployError> for CommandError {
    fn from(error: DeployError) -> Self {
        let bad_input = error.is_bad_input();
        CommandError::classified(bad_input, miette::Report::new(error))
    }
}

/// A lab error with what to do about it; a bad lab declaration exits 2.
impl From<LabError> for CommandError {
    fn from(e: LabError) -> Self {
        let hint = match &e {
            LabError::NotRoot => Some("run `sudo ferry lab …`".to_string()),
            LabError::NoSshd => Some(
                "install Debian's OpenSSH server: `apt-get install openssh-server`".to_string(),
            ),
            LabError::NotFound(_) => Some("start it with `ferry lab up SITE`".to_string()),
            LabError::SubnetInUse { .. } => {
                Some("set `subnet` in the site's `lab { … }` inventory".to_string())
            }
            _ => None,
        };
        let bad_input = matches!(
            e,
            LabError::BadLabName(_)
                | LabError::BadHostName(_)
                | LabError::DuplicateHost(_)
                | LabError::Inventory(_)
        );
        CommandError::classified(bad_input, report(&e, hint))
    }
}

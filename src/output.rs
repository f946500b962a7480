//! Everything ferry prints to stdout goes through here; errors are rendered with miette.
use std::io::Write;

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

/// An error on its way to the user, with the exit code it ends the process with.
#[derive(Debug)]
pub struct CommandError {
    pub exit: Exit,
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
}

/// Prints one line of a command's result on stdout.
pub fn line(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `ferry … | head`) is not an error worth a panic.
    let _ = writeln!(out, "{text}");
}

/// Stdout for binary results (an archive); callers refuse to write one to a terminal.
pub fn raw() -> impl Write {
    std::io::stdout().lock()
}

/// Prints a value as pretty JSON on stdout.
pub fn json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(text),
        // Our own output types always serialize; this is an invariant.
        Err(e) => unreachable!("output value does not serialize: {e}"),
    }
}

/// Prints one diagnostic on stderr, as miette draws it, while a command goes on
/// (e.g. every error of a site before the command fails with a summary).
pub fn diagnostic(report: miette::Report) {
    eprintln!("{report:?}");
}

/// Renders the outcome of a command and returns the exit code.
pub fn finish(result: Result<Exit, CommandError>) -> i32 {
    match result {
        Ok(exit) => exit as i32,
        Err(error) => {
            eprintln!("{:?}", error.report);
            error.exit as i32
        }
    }
}

/// Prints already formatted text (ending in a newline) on stdout.
pub fn text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
}

/// Prints a value as one line of JSON on stdout (event streams).
pub fn json_line(value: &impl serde::Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => line(text),
        // Our own output types always serialize; this is an invariant.
        Err(e) => unreachable!("output value does not serialize: {e}"),
    }
}

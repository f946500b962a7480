//! Short-lived commands with a deadline (hooks, command health checks): run
//! in their own process group with their output captured, the whole group
//! killed when the time limit passes.
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How much of the captured output is read, and how many of its last
/// characters are kept for a report.
const OUTPUT_READ_LIMIT: u64 = 64 * 1024;
const OUTPUT_TAIL_CHARS: usize = 300;

/// Why a command with a deadline did not finish by itself.
#[derive(Debug)]
pub enum DeadlineError {
    /// The temporary file for its output could not be made.
    TempFile(io::Error),
    /// It could not be started.
    Spawn(io::Error),
    /// It ran past its time limit; its process group was killed.
    TimedOut,
    /// Waiting for it failed.
    Wait(io::Error),
}

/// How a command with a deadline ended by itself.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// The last characters of its trimmed stdout and stderr, when it failed
    /// (empty when it succeeded).
    pub output_tail: String,
}

/// Runs `command` (already given its program, arguments, environment and
/// user) with stdin on /dev/null, stdout and stderr into one temporary file,
/// in a new process group; kills that group at `timeout`.
pub fn run_with_deadline(
    mut command: Command,
    timeout: Duration,
) -> Result<Finished, DeadlineError> {
    let mut output = tempfile::tempfile().map_err(DeadlineError::TempFile)?;
    let stdout = output.try_clone().map_err(DeadlineError::TempFile)?;
    let stderr = output.try_clone().map_err(DeadlineError::TempFile)?;
    command.stdout(stdout).stderr(stderr);
    let status = wait_within(command, timeout)?;
    let output_tail = if status.success() {
        String::new()
    } else {
        output_tail(&mut output)
    };
    Ok(Finished {
        status,
        output_tail,
    })
}

/// Starts `command` (its stdout and stderr already set) with stdin on
/// /dev/null, in a new process group, and waits for it; kills that whole
/// group at `timeout`.
pub fn wait_within(mut command: Command, timeout: Duration) -> Result<ExitStatus, DeadlineError> {
    command.stdin(Stdio::null()).process_group(0);
    let mut child = command.spawn().map_err(DeadlineError::Spawn)?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                // The command runs in its own group; kill all of it.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                return Err(DeadlineError::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(DeadlineError::Wait(e)),
        }
    }
}

fn output_tail(output: &mut File) -> String {
    let mut text = String::new();
    let _ = output.seek(io::SeekFrom::Start(0));
    let _ = output.take(OUTPUT_READ_LIMIT).read_to_string(&mut text);
    let text = text.trim();
    let count = text.chars().count();
    text.chars()
        .skip(count.saturating_sub(OUTPUT_TAIL_CHARS))
        .collect()
}

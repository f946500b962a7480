//! What every transport provides: the [`Transport`] trait (run a script on a host), the
//! [`RemoteProcess`] it starts, their errors, and the pipe and error-text helpers they share.
use std::io::{Read, Write};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The pipe buffer asked for on the object stream's pipes (Linux's default
/// `pipe-max-size`, so unprivileged processes get it too).
const STREAM_PIPE_SIZE: i32 = 1 << 20;

/// Asks for a 1 MiB buffer on a pipe that carries the object stream (the
/// deployer's pipe into ssh, the agent's stdin): with the default 64 KiB,
/// writer and reader wake each other up 16 times per MiB, which shows on a
/// machine whose cores are busy with ssh's encryption. A refusal (not a pipe,
/// a lower limit) only keeps the default.
pub fn widen_pipe(fd: &impl std::os::fd::AsRawFd) {
    let _ = nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(STREAM_PIPE_SIZE),
    );
}

/// Errors of reaching a host or running a process there.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The host could not be reached (or refused us).
    #[error("cannot connect to {host}: {detail}")]
    Connect {
        /// The host as the user named it.
        host: String,
        /// What went wrong, as the connecting tool said it.
        detail: String,
        /// What the user can do about it, when we know.
        hint: Option<String>,
    },
    /// The host was reached but the command did not start.
    #[error("cannot start a command on {host}: {detail}")]
    Spawn {
        /// The host as the user named it.
        host: String,
        /// What went wrong.
        detail: String,
    },
    /// The connection broke while a process ran.
    #[error("lost the connection to {host}: {source}")]
    Io {
        /// The host as the user named it.
        host: String,
        /// The failed read or write.
        #[source]
        source: std::io::Error,
    },
}

impl TransportError {
    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<&str> {
        match self {
            TransportError::Connect { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    /// Makes [`TransportError::Spawn`] errors on `host` from their detail
    /// (shared by every transport's `spawn`).
    pub fn spawn_on(host: &str) -> impl Fn(String) -> TransportError + '_ {
        move |detail| TransportError::Spawn {
            host: host.to_string(),
            detail,
        }
    }
}

/// A way to run commands on one host.
pub trait Transport: Send + Sync {
    /// The host as the user named it (for messages).
    fn host(&self) -> &str;

    /// Runs `script` with `sh -c` on the host, as root, with piped stdio.
    fn spawn(&self, script: &str) -> Result<RemoteProcess, TransportError>;
}

/// The part of a running process a transport keeps: how to wait for it and stop it.
pub trait ProcessHandle: Send {
    /// Waits until the process ended.
    fn wait(&mut self) -> std::io::Result<ExitStatus>;
    /// Stops the process (one that already ended is fine).
    fn kill(&mut self);
}

/// A process running on a host, with its stdin and stdout as byte streams;
/// its stderr is collected in the background for error messages.
pub struct RemoteProcess {
    /// The process's stdin; `None` once closed.
    pub stdin: Option<Box<dyn Write + Send>>,
    /// The process's stdout.
    pub stdout: Box<dyn Read + Send>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    handle: Box<dyn ProcessHandle>,
}

/// How much of a process's stderr is kept for messages.
const STDERR_KEEP: usize = 64 * 1024;

impl RemoteProcess {
    /// Wraps a started process; `stderr` is read on a thread until it closes.
    pub fn new(
        stdin: Box<dyn Write + Send>,
        stdout: Box<dyn Read + Send>,
        stderr: Box<dyn Read + Send>,
        handle: Box<dyn ProcessHandle>,
    ) -> RemoteProcess {
        let collected = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&collected);
        let reader = std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut kept) = sink.lock() {
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        });
        RemoteProcess {
            stdin: Some(stdin),
            stdout,
            stderr: collected,
            stderr_reader: Some(reader),
            handle,
        }
    }

    /// Closes stdin (the process sees end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process and returns its status and everything it wrote to stderr.
    pub fn wait(mut self) -> std::io::Result<(ExitStatus, String)> {
        self.stdin = None;
        let status = self.handle.wait()?;
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        Ok((status, self.stderr_text()))
    }

    /// Stops the process.
    pub fn kill(&mut self) {
        self.handle.kill();
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|kept| String::from_utf8_lossy(&kept).trim().to_string())
            .unwrap_or_default()
    }
}

/// Formats an error with all its sources, for messages that cross a process boundary.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

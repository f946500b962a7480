//! The local transport: runs the same agent as a child process, no SSH (localhost and tests).
use std::process::{Child, Command, Stdio};

use super::process::{ProcessHandle, RemoteProcess, Transport, TransportError};

/// Runs scripts on this machine with `sh -c`, as the current user.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    name: String,
}

impl LocalTransport {
    /// The transport of `localhost`.
    pub fn new() -> LocalTransport {
        LocalTransport {
            name: "localhost".to_string(),
        }
    }
}

impl Default for LocalTransport {
    fn default() -> Self {
        LocalTransport::new()
    }
}

struct LocalChild(Child);

impl ProcessHandle for LocalChild {
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }

    fn kill(&mut self) {
        // Already exited is fine.
        let _ = self.0.kill();
    }
}

impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.name
    }

    fn spawn(&self, script: &str) -> Result<RemoteProcess, TransportError> {
        let spawn_err = TransportError::spawn_on(&self.name);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_err(format!("cannot run sh: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_err("the child's pipes are missing".to_string()));
        };
        Ok(RemoteProcess::new(
            Box::new(stdin),
            Box::new(stdout),
            Box::new(stderr),
            Box::new(LocalChild(child)),
        ))
    }
}

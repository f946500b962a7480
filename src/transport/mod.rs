//! Talking to hosts: the [`Transport`] trait, its SSH and local implementations, the agent connection and the copy protocol.
//!
//! A transport only knows how to run a shell script on a host as root with
//! piped stdio; everything above it (bootstrap, handshake, messages, copy)
//! is shared by all transports, so the lab and the tests exercise the exact
//! code path real hosts use.
//!
//! This module is the facade: the list of parts, what callers outside use
//! most, and [`connect`], which picks a host's transport. The parts import
//! each other directly.
use ferry_lang::inventory::HostEntry;

pub mod bootstrap;
pub mod codec;
pub mod connection;
pub mod copy;
pub mod local;
pub mod process;
pub mod session;
pub mod shell;
pub mod ssh;

pub use connection::{AgentConnection, ConnectionError};
pub use copy::{copy_closure, CopyError, CopyOptions, CopyReport, HostCopyReport};
pub use process::{
    error_chain, widen_pipe, ProcessHandle, RemoteProcess, Transport, TransportError,
};
pub use session::{ActivateRequest, GenerationInfo, HostSession, SessionError, SessionOptions};

/// The transport for `host`: local for `localhost`, SSH for everything else.
pub fn connect(
    host: &HostEntry,
    ssh: &ssh::SshSettings,
) -> Result<Box<dyn Transport>, ConnectionError> {
    if host.address == "localhost" && host.user.is_none() && host.port.is_none() {
        Ok(Box::new(local::LocalTransport::new()))
    } else {
        Ok(Box::new(ssh::SshTransport::connect(host, ssh)?))
    }
}

//! The deployer's activation API on one host: a session with its agent that activates, confirms, rolls back and reports status (DESIGN §7–§8).
//!
//! Each call is one request/response exchange on the session opened by
//! [`HostSession::open`], counted like the copy protocol's. Magic rollback
//! needs the confirmation to come over a *new* connection (it proves the
//! deployer can still reach the host after the activation), so the caller
//! closes the activating session and opens another one to call
//! [`HostSession::confirm`].
//!
//! A deploy of one host, once the system's closure was copied
//! ([`crate::transport::copy_closure`]):
//!
//! ```no_run
//! # use ferry::transport::session::*;
//! # use ferry::activate::{Manifest, Outcome};
//! # fn deploy(store: &ferry_store::Store, binary: &ferry::transport::bootstrap::AgentBinary,
//! #     host: &ferry_lang::inventory::HostEntry, site: &ferry_lang::Site,
//! #     system: &ferry_store::StorePath, options: &SessionOptions)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let manifest = Manifest::load(&store.real_path(system))?;
//! let mut session = HostSession::open(store, binary, host, options)?;
//! let report = session.activate(&ActivateRequest {
//!     system: system.as_str().to_string(),
//!     host_env: host_env(host),
//!     confirm_within_ms: Some(DEFAULT_CONFIRM_WITHIN_MS),
//!     secrets: ferry::deploy::secrets::read_secrets(site, &manifest)?,
//! })?;
//! session.close()?;
//! if let Outcome::Activated { generation } = report.outcome {
//!     // A new connection: proves the host is still reachable.
//!     let mut again = HostSession::open(store, binary, host, options)?;
//!     if !again.confirm(generation)? {
//!         // Too late: the host already went back by itself.
//!     }
//!     again.close()?;
//! }
//! # Ok(())
//! # }
//! ```
use std::collections::BTreeMap;

use ferry_lang::inventory::HostEntry;
use ferry_store::Store;

use super::bootstrap::{start_agent, AgentBinary, AgentSettings, BootstrapReport};
use super::codec::{CodecError, Request, Response};
use super::connect;
use super::connection::{AgentConnection, ConnectionError};
use super::process::{error_chain, Transport};
use super::ssh::SshSettings;
use crate::activate::{ActivationReport, HostStatus};

pub use super::codec::{ActivateRequest, GenerationInfo};

/// The deployer's default time for confirming an activation (magic rollback).
pub const DEFAULT_CONFIRM_WITHIN_MS: u64 = 30_000;

/// How to reach hosts and where their agents keep things.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// SSH settings beyond what the inventory says.
    pub ssh: SshSettings,
    /// Store and state dirs of the agents on the hosts.
    pub agent: AgentSettings,
}

/// Errors of a session with one host's agent.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reaching the agent or talking to it failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The agent binary to bootstrap is not valid in the deployer's store.
    #[error("the agent binary {path} is not a valid path of the deployer's store")]
    AgentNotInStore {
        /// Its store path.
        path: String,
    },
    /// The connection ended while the host was activating.
    #[error(
        "the connection to {host} was lost during its activation ({detail}); the host \
         finishes the activation by itself, and rolls it back unless it is confirmed \
         before its deadline"
    )]
    LostDuringActivation {
        /// The host as the user named it.
        host: String,
        /// What the connection said.
        detail: String,
    },
    /// An answer's JSON did not decode.
    #[error("the agent on {host} sent a {what} this ferry cannot read: {detail}")]
    Decode {
        /// The host as the user named it.
        host: String,
        /// What the answer was (`status`, `activation report`, …).
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
}

impl SessionError {
    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            SessionError::Connection(ConnectionError::Agent { .. }) => Some(
                "the host's activation log is <state_dir>/log/activation.log; `ferry status` \
                 shows what the host runs now"
                    .to_string(),
            ),
            SessionError::Connection(e) => e.hint(),
            SessionError::AgentNotInStore { .. } => {
                Some("add it with `AgentBinary::add_to_store` first".to_string())
            }
            _ => None,
        }
    }
}

/// A live session with the agent on one host.
pub struct HostSession {
    // Declared before `transport`: the agent's process ends before the
    // connection (e.g. an SSH master) it runs over.
    connection: AgentConnection,
    bootstrap: BootstrapReport,
    _transport: Box<dyn Transport>,
}

impl HostSession {
    /// Connects (SSH, or local for `localhost`), bootstraps the agent if needed, handshakes.
    pub fn open(
        store: &Store,
        binary: &AgentBinary,
        host: &HostEntry,
        options: &SessionOptions,
    ) -> Result<HostSession, SessionError> {
        if !store.is_valid(&binary.store_path) {
            return Err(SessionError::AgentNotInStore {
                path: binary.store_path.as_str().to_string(),
            });
        }
        let transport = connect(host, &options.ssh)?;
        let (connection, bootstrap) = start_agent(transport.as_ref(), binary, &options.agent)?;
        Ok(HostSession {
            connection,
            bootstrap,
            _transport: transport,
        })
    }

    /// The host as the user named it.
    pub fn host(&self) -> &str {
        self.connection.host()
    }

    /// Whether opening the session uploaded the agent (first contact).
    pub fn agent_uploaded(&self) -> bool {
        self.bootstrap.uploaded
    }

    /// Request/response exchanges of this session so far (handshake included).
    pub fn exchanges(&self) -> u64 {
        self.connection.exchanges()
    }

    /// Activates `request.system` (its closure must be on the host) after
    /// writing its secrets; returns when the host finished: activated, or
    /// rolled back with the reason. The activation completes on the host
    /// even if this session dies meanwhile.
    pub fn activate(
        &mut self,
        request: &ActivateRequest,
    ) -> Result<ActivationReport, SessionError> {
        let response = self
            .connection
            .request(&Request::Activate(request.clone()))
            .map_err(|e| self.lost_during_activation(e))?;
        self.report_of(response)
    }

    /// A connection that broke under an activation request is a lost link,
    /// and says what the host does next; other errors stay as they are.
    fn lost_during_activation(&self, error: ConnectionError) -> SessionError {
        match error {
            ConnectionError::Codec {
                source: CodecError::Closed | CodecError::Io(_),
                ..
            }
            | ConnectionError::Transport(_) => SessionError::LostDuringActivation {
                host: self.host().to_string(),
                detail: error_chain(&error),
            },
            other => other.into(),
        }
    }

    /// Confirms `generation` (magic rollback); `false` when it had no
    /// pending confirmation (already confirmed, or already rolled back).
    pub fn confirm(&mut self, generation: u64) -> Result<bool, SessionError> {
        match self.connection.request(&Request::Confirm { generation })? {
            Response::Confirmed { confirmed } => Ok(confirmed),
            other => Err(self.unexpected("Confirmed", other)),
        }
    }

    /// Activates generation `generation` again (same sequence and checks).
    pub fn rollback_to(&mut self, generation: u64) -> Result<ActivationReport, SessionError> {
        let response = self
            .connection
            .request(&Request::RollbackTo { generation })?;
        self.report_of(response)
    }

    /// What the host runs; an interrupted activation or an overdue
    /// confirmation is converged first.
    pub fn status(&mut self) -> Result<HostStatus, SessionError> {
        match self.connection.request(&Request::Status)? {
            Response::Status { status_json } => self.decode("status", &status_json),
            other => Err(self.unexpected("Status", other)),
        }
    }

    /// Re-hashes the closure of the host's current system (with `repair`,
    /// quarantines and invalidates what is broken so that a copy sends it
    /// again).
    pub fn verify(&mut self, repair: bool) -> Result<ferry_store::VerifyReport, SessionError> {
        match self.connection.request(&Request::Verify { repair })? {
            Response::Verified { report_json } => self.decode("verify report", &report_json),
            other => Err(self.unexpected("Verified", other)),
        }
    }

    /// The host's generations, oldest first.
    pub fn generations(&mut self) -> Result<Vec<GenerationInfo>, SessionError> {
        match self.connection.request(&Request::Generations)? {
            Response::Generations { generations_json } => {
                self.decode("generation list", &generations_json)
            }
            other => Err(self.unexpected("Generations", other)),
        }
    }

    /// Ends the session politely.
    pub fn close(self) -> Result<(), SessionError> {
        let HostSession {
            connection,
            _transport,
            ..
        } = self;
        connection.close()?;
        Ok(())
    }

    /// Stops the session's process at once (an abandoned session).
    pub fn kill(self) {
        self.connection.kill();
    }

    fn report_of(&self, response: Response) -> Result<ActivationReport, SessionError> {
        match response {
            Response::Activation { report_json } => self.decode("activation report", &report_json),
            other => Err(self.unexpected("Activation", other)),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        json: &str,
    ) -> Result<T, SessionError> {
        serde_json::from_str(json).map_err(|e| SessionError::Decode {
            host: self.host().to_string(),
            what,
            detail: e.to_string(),
        })
    }

    fn unexpected(&self, expected: &'static str, got: Response) -> SessionError {
        SessionError::Connection(ConnectionError::Unexpected {
            host: self.host().to_string(),
            expected,
            got: format!("{got:?}"),
        })
    }
}

/// The per-host facts every service and hook of `host` sees:
/// `FERRY_HOST_NAME`, `FERRY_HOST_ADDRESS`, `FERRY_HOST_CLASS` and one
/// `FERRY_LABEL_<KEY>` per label (key upper-cased, anything but letters and
/// digits turned into `_`).
pub fn host_env(host: &HostEntry) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("FERRY_HOST_NAME".to_string(), host.name.clone());
    env.insert("FERRY_HOST_ADDRESS".to_string(), host.address.clone());
    env.insert("FERRY_HOST_CLASS".to_string(), host.class.clone());
    for (key, value) in &host.labels {
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        env.insert(format!("FERRY_LABEL_{key}"), value.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_env_names_the_host_and_its_labels() {
        let host = HostEntry {
            name: "web1".into(),
            class: "web".into(),
            address: "10.0.0.5".into(),
            user: None,
            port: None,
            labels: [
                ("datacenter".to_string(), "dc1".to_string()),
                ("rack-row.x".to_string(), "7".to_string()),
            ]
            .into(),
            identity_file: None,
        };
        let env = host_env(&host);
        let expected: BTreeMap<String, String> = [
            ("FERRY_HOST_NAME", "web1"),
            ("FERRY_HOST_ADDRESS", "10.0.0.5"),
            ("FERRY_HOST_CLASS", "web"),
            ("FERRY_LABEL_DATACENTER", "dc1"),
            ("FERRY_LABEL_RACK_ROW_X", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected);
    }
}

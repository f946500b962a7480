//! Starting the agent on a host, installing it there first if needed (DESIGN §7).
//!
//! The agent is the deployer's own executable, added to the deployer's store
//! as a store object, so its path names its content. On a host:
//! 1. the probe runs the agent from that store path if the file is there,
//!    and the agent says whether the path is *valid* in the host's store;
//! 2. if not, the binary is uploaded in one stream to a temporary file,
//!    checked with `sha256sum -c` on the host *before* it runs, and then run
//!    once to add itself to the host's store (it must land on the same path);
//! 3. the probe runs again, now from the store.
//!
//! So first contact costs three commands and every later one a single one,
//! whatever the closure size.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferry_store::{Store, StorePath};

use super::codec::{self, Request, Response};
use super::connection::{AgentConnection, ConnectionError, Started};
use super::process::Transport;
use super::shell;

/// The store and state dirs the agent on a host uses (the store dir must be
/// the deployer's: it is part of every path's hash).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The host's store dir.
    pub store_dir: PathBuf,
    /// The host's state dir (database, generations, logs).
    pub state_dir: PathBuf,
}

/// The deployer's executable as a store object, ready to be installed on hosts.
#[derive(Debug, Clone)]
pub struct AgentBinary {
    /// Its store path (the same on every host).
    pub store_path: StorePath,
    /// Where its bytes are (the store path in the deployer's store).
    pub file: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    sha256: OnceLock<Result<String, String>>,
}

/// The GC root (under `<state_dir>/gcroots/`) of the store's current agent binary.
pub const AGENT_ROOT: &str = "ferry-agent";

/// The store object name of the agent binary.
pub fn agent_object_name() -> String {
    format!("ferry-{}", codec::FERRY_VERSION)
}

impl AgentBinary {
    /// The running `ferry` executable, added to `store`: what hosts run as their agent.
    pub fn this_ferry(store: &Store) -> Result<AgentBinary, ferry_store::StoreError> {
        let exe = std::env::current_exe().map_err(|source| ferry_store::StoreError::Io {
            action: "find",
            path: std::path::PathBuf::from("ferry's own executable"),
            source,
        })?;
        AgentBinary::add_to_store(store, &exe)
    }

    /// Adds `executable` (normally `std::env::current_exe()`) to `store`
    /// and makes it the GC root [`AGENT_ROOT`]: `ferry gc` on the deployer or
    /// on a host must never delete the agent that every session starts.
    pub fn add_to_store(
        store: &Store,
        executable: &Path,
    ) -> Result<AgentBinary, ferry_store::StoreError> {
        let store_path = store.add_path(executable, &agent_object_name(), &[])?;
        store.add_root(AGENT_ROOT, &store_path)?;
        let file = store.real_path(&store_path);
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        Ok(AgentBinary {
            store_path,
            file,
            size,
            sha256: OnceLock::new(),
        })
    }

    /// The SHA-256 the host checks the upload against (`sha256sum` is what
    /// every host has, so the deployer computes it the same way).
    fn sha256(&self) -> Result<&str, String> {
        self.sha256
            .get_or_init(|| {
                let output = std::process::Command::new("sha256sum")
                    .arg(&self.file)
                    .output()
                    .map_err(|e| format!("cannot run sha256sum: {e}"))?;
                if !output.status.success() {
                    return Err(format!(
                        "sha256sum failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
                let text = String::from_utf8_lossy(&output.stdout);
                text.split_whitespace()
                    .next()
                    .filter(|h| h.len() == 64)
                    .map(str::to_string)
                    .ok_or_else(|| format!("sha256sum printed {text:?}"))
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

fn global_args(settings: &AgentSettings) -> String {
    format!(
        "--store-dir {} --state-dir {}",
        shell::quote(&settings.store_dir.to_string_lossy()),
        shell::quote(&settings.state_dir.to_string_lossy())
    )
}

/// The script that starts the installed agent, or says it is not installed.
pub fn probe_script(agent: &StorePath, settings: &AgentSettings) -> String {
    let path = shell::quote(agent.as_str());
    let greeting = String::from_utf8_lossy(&codec::BOOTSTRAP_NEEDED).into_owned();
    format!(
        "if [ -x {path} ]; then exec {path} {} remote --stdio; fi; printf {greeting}",
        global_args(settings)
    )
}

/// The script that receives the binary on stdin, checks its hash and lets it install itself.
pub fn upload_script(agent: &StorePath, sha256: &str, settings: &AgentSettings) -> String {
    let state = shell::quote(&settings.state_dir.to_string_lossy());
    format!(
        "set -e; mkdir -p {state}; \
         tmp=$(umask 077; mktemp {state}/.ferry-agent-upload.XXXXXX); trap 'rm -f \"$tmp\"' EXIT; \
         cat > \"$tmp\"; \
         if ! echo \"{sha256}  $tmp\" | sha256sum -c --status; then \
         echo \"the uploaded agent binary does not match its sha256 {sha256}; it was not run\" >&2; exit 1; fi; \
         chmod 700 \"$tmp\"; \
         \"$tmp\" {} remote --install-self --expect {}",
        global_args(settings),
        shell::quote(agent.as_str()),
    )
}

/// What starting the agent took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    /// The binary was uploaded (first contact).
    pub uploaded: bool,
    /// Bytes of binary sent.
    pub bytes: u64,
}

/// Starts the agent on the host behind `transport`, installing it first if it is not there.
pub fn start_agent(
    transport: &dyn Transport,
    binary: &AgentBinary,
    settings: &AgentSettings,
) -> Result<(AgentConnection, BootstrapReport), ConnectionError> {
    let probe = probe_script(&binary.store_path, settings);
    if let Some(connection) = try_installed(transport, &probe)? {
        return Ok((connection, BootstrapReport::default()));
    }
    upload(transport, binary, settings)?;
    match try_installed(transport, &probe)? {
        Some(connection) => Ok((
            connection,
            BootstrapReport {
                uploaded: true,
                bytes: binary.size,
            },
        )),
        None => Err(ConnectionError::Bootstrap {
            host: transport.host().to_string(),
            detail: format!(
                "{} is still not valid after installing it",
                binary.store_path
            ),
        }),
    }
}

fn try_installed(
    transport: &dyn Transport,
    probe: &str,
) -> Result<Option<AgentConnection>, ConnectionError> {
    let mut connection = match AgentConnection::start(transport, probe)? {
        Started::NeedsBootstrap => return Ok(None),
        Started::Agent(c) => *c,
    };
    match connection.request(&Request::AgentStatus)? {
        Response::AgentStatus {
            registered: true, ..
        } => Ok(Some(connection)),
        Response::AgentStatus {
            registered: false, ..
        } => {
            connection.close()?;
            Ok(None)
        }
        other => Err(ConnectionError::Unexpected {
            host: connection.host().to_string(),
            expected: "AgentStatus",
            got: format!("{other:?}"),
        }),
    }
}

fn upload(
    transport: &dyn Transport,
    binary: &AgentBinary,
    settings: &AgentSettings,
) -> Result<(), ConnectionError> {
    let host = transport.host().to_string();
    let fail = |detail: String| ConnectionError::Bootstrap {
        host: host.clone(),
        detail,
    };
    let sha256 = binary.sha256().map_err(fail)?;
    let mut process = transport.spawn(&upload_script(&binary.store_path, sha256, settings))?;
    let copied = match process.stdin.as_mut() {
        Some(stdin) => std::fs::File::open(&binary.file)
            .and_then(|mut file| std::io::copy(&mut file, stdin))
            .and_then(|_| stdin.flush()),
        None => Ok(()),
    };
    process.close_stdin();
    let (status, stderr) = process.wait().map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(if stderr.is_empty() {
            format!("the install script exited with {status}")
        } else {
            stderr
        }));
    }
    copied.map_err(|e| fail(format!("sending the binary: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_keeps_the_agent_binary() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), &dir.path().join("var")).unwrap();
        let exe = dir.path().join("ferry");
        std::fs::write(&exe, b"#!/bin/sh\necho agent\n").unwrap();
        let agent = AgentBinary::add_to_store(&store, &exe).unwrap();
        let unrooted = store
            .add_bytes("scratch", b"nothing roots this", false, &[])
            .unwrap();
        let report = store.gc(&ferry_store::GcOptions::default()).unwrap();
        assert!(store.is_valid(&agent.store_path), "{report:?}");
        assert!(!store.is_valid(&unrooted), "gc ran: {report:?}");
    }
}

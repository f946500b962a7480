//! The SSH transport: the `openssh` crate over the system `ssh`, with the user's config, keys, agent and known_hosts.
//!
//! Host-key checking is always strict (`StrictHostKeyChecking=yes`): ferry
//! never accepts an unknown or changed key on its own. Extra `-o` options
//! (`--ssh-option`) go into a generated config file that lists them first
//! and then includes the user's config, so they take precedence exactly as
//! `ssh -o` would.
use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ferry_lang::inventory::HostEntry;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};

use super::process::{
    error_chain, widen_pipe, ProcessHandle, RemoteProcess, Transport, TransportError,
};
use super::shell;

/// How to reach hosts over SSH, beyond what the inventory says.
#[derive(Debug, Clone, Default)]
pub struct SshSettings {
    /// `ssh -F FILE` (e.g. a lab's `ssh_config`); `None` means ssh's defaults.
    pub config_file: Option<PathBuf>,
    /// `ssh -o` options, as `Key=Value`.
    pub options: Vec<String>,
    /// How often ssh asks a silent host whether it is still there
    /// (`ServerAliveInterval`; ssh gives up after three unanswered asks).
    /// `None`: every 15 s. A deploy makes it a fraction of the confirmation
    /// deadline, so a lost link ends well within it.
    pub keepalive: Option<std::time::Duration>,
}

/// The keepalive interval that ends a lost link (three unanswered asks,
/// plus one interval of slack) within half of `deadline`: an eighth of it,
/// between 1 and 15 s.
pub fn keepalive_within(deadline: std::time::Duration) -> std::time::Duration {
    (deadline / 8).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(15),
    )
}

/// The tokio runtime that drives `openssh`; ferry's own work runs on plain
/// threads and blocks on it.
fn runtime() -> Result<&'static tokio::runtime::Runtime, std::io::Error> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ferry-ssh")
        .build()?;
    // Another thread may have won the race; either runtime works.
    Ok(RUNTIME.get_or_init(|| rt))
}

/// One SSH connection (a ControlMaster) to one host.
pub struct SshTransport {
    name: String,
    session: Arc<Session>,
    // Holds the generated config file (if any) as long as the session.
    _config_dir: Option<tempfile::TempDir>,
}

impl SshTransport {
    /// Opens the connection (authenticates and checks the host key now, so
    /// a refused host fails here, before anything is sent).
    pub fn connect(
        host: &HostEntry,
        settings: &SshSettings,
    ) -> Result<SshTransport, TransportError> {
        let name = host.name.clone();
        let connect_err = |detail: String| {
            let hint = hint_for(&detail, &host.address, settings);
            TransportError::Connect {
                host: name.clone(),
                detail,
                hint,
            }
        };
        let mut builder = SessionBuilder::default();
        builder.known_hosts_check(KnownHosts::Strict);
        // A master whose ferry died without closing it (SIGKILL) goes away
        // by itself once idle; a live session keeps it busy.
        if let Some(idle) = std::num::NonZeroUsize::new(60) {
            builder.control_persist(openssh::ControlPersist::IdleFor(idle));
        }
        builder.control_directory(std::env::temp_dir());
        builder.connect_timeout(std::time::Duration::from_secs(15));
        builder.server_alive_interval(
            settings
                .keepalive
                .unwrap_or(std::time::Duration::from_secs(15)),
        );
        if let Some(user) = &host.user {
            builder.user(user.clone());
        }
        if let Some(port) = host.port {
            builder.port(port);
        }
        if let Some(key) = &host.identity_file {
            builder.keyfile(key);
        }
        let config_dir = if settings.options.is_empty() {
            if let Some(file) = &settings.config_file {
                builder.config_file(file);
            }
            None
        } else {
            let dir = tempfile::Builder::new()
                .prefix("ferry-ssh-")
                .tempdir()
                .map_err(|e| connect_err(format!("cannot write the ssh config: {e}")))?;
            let file = dir.path().join("ssh_config");
            std::fs::write(&file, generated_config(settings))
                .map_err(|e| connect_err(format!("cannot write the ssh config: {e}")))?;
            builder.config_file(&file);
            Some(dir)
        };
        let rt =
            runtime().map_err(|e| connect_err(format!("cannot start the async runtime: {e}")))?;
        let session = rt
            .block_on(builder.connect(&host.address))
            .map_err(|e| connect_err(error_chain(&e)))?;
        Ok(SshTransport {
            name,
            session: Arc::new(session),
            _config_dir: config_dir,
        })
    }
}

/// A config that sets `options` first (first value wins in ssh_config) and
/// then reads the config ssh would have read.
fn generated_config(settings: &SshSettings) -> String {
    let mut text = String::from("# generated by ferry for --ssh-option\n");
    for option in &settings.options {
        let _ = writeln!(text, "{option}");
    }
    match &settings.config_file {
        Some(file) => {
            let _ = writeln!(text, "Include {}", absolute(file).display());
        }
        None => {
            if let Some(home) = std::env::var_os("HOME") {
                let _ = writeln!(
                    text,
                    "Include {}",
                    Path::new(&home).join(".ssh/config").display()
                );
            }
            let _ = writeln!(text, "Include /etc/ssh/ssh_config");
        }
    }
    text
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn hint_for(detail: &str, address: &str, settings: &SshSettings) -> Option<String> {
    let known_hosts = match &settings.config_file {
        Some(file) => format!("the known_hosts named in {}", file.display()),
        None => "~/.ssh/known_hosts".to_string(),
    };
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        Some(format!(
            "the host's key differs from the one in {known_hosts}; if the host was really \
             reinstalled, remove the old entry (`ssh-keygen -R {address}`) and check the new key"
        ))
    } else if detail.contains("Host key verification failed")
        || detail.contains("No ED25519 host key is known")
        || detail.contains("host key is known")
    {
        Some(format!(
            "the host's key is not in {known_hosts}; ferry never accepts unknown keys, add it \
             (e.g. `ssh {address}` once and check the fingerprint)"
        ))
    } else if detail.contains("Permission denied") {
        Some(
            "check the login user and that your key (or ssh-agent) is accepted by the host"
                .to_string(),
        )
    } else {
        None
    }
}

struct SshChild {
    child: Option<openssh::Child<Arc<Session>>>,
}

impl ProcessHandle for SshChild {
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let Some(child) = self.child.take() else {
            return Err(std::io::Error::other(
                "the remote process was already waited for",
            ));
        };
        runtime()?
            .block_on(child.wait())
            .map_err(std::io::Error::other)
    }

    fn kill(&mut self) {
        // Dropping the child ends its `ssh -S` client process and with it the
        // remote command's channel.
        if let Some(child) = self.child.take() {
            if let Ok(rt) = runtime() {
                let _ = rt.block_on(child.disconnect());
            }
        }
    }
}

/// Wraps `script` so it runs as root: directly when logged in as root,
/// otherwise through `sudo -n` (never prompting).
pub fn as_root(script: &str) -> String {
    let quoted = shell::quote(script);
    format!(
        "if [ \"$(id -u)\" = 0 ]; then exec sh -c {quoted}; else exec sudo -n -- sh -c {quoted}; fi"
    )
}

impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.name
    }

    fn spawn(&self, script: &str) -> Result<RemoteProcess, TransportError> {
        let spawn_err = TransportError::spawn_on(&self.name);
        let rt = runtime().map_err(|e| spawn_err(e.to_string()))?;
        let session = Arc::clone(&self.session);
        let mut command = session.arc_raw_command(as_root(script));
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = rt
            .block_on(command.spawn())
            .map_err(|e| spawn_err(error_chain(&e)))?;
        let fd = |io: Option<std::io::Result<OwnedFd>>| -> Result<std::fs::File, TransportError> {
            match io {
                Some(Ok(fd)) => Ok(std::fs::File::from(fd)),
                Some(Err(e)) => Err(spawn_err(e.to_string())),
                None => Err(spawn_err("the remote process has no pipe".to_string())),
            }
        };
        let stdin = fd(child.stdin().take().map(|s| s.into_owned_fd()))?;
        widen_pipe(&stdin);
        let stdout = fd(child.stdout().take().map(|s| s.into_owned_fd()))?;
        let stderr = fd(child.stderr().take().map(|s| s.into_owned_fd()))?;
        Ok(RemoteProcess::new(
            Box::new(stdin),
            Box::new(stdout),
            Box::new(stderr),
            Box::new(SshChild { child: Some(child) }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_before_the_included_config() {
        let settings = SshSettings {
            config_file: Some(PathBuf::from("/run/ferry-lab/x/ssh_config")),
            options: vec!["ConnectTimeout=3".into(), "Port 2222".into()],
            keepalive: None,
        };
        assert_eq!(
            generated_config(&settings),
            "# generated by ferry for --ssh-option\nConnectTimeout=3\nPort 2222\n\
             Include /run/ferry-lab/x/ssh_config\n"
        );
    }

    #[test]
    fn root_wrapper_uses_sudo_only_for_other_users() {
        assert_eq!(
            as_root("echo hi"),
            "if [ \"$(id -u)\" = 0 ]; then exec sh -c 'echo hi'; else exec sudo -n -- sh -c 'echo hi'; fi"
        );
    }
}

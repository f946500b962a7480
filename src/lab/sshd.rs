//! Keys, sshd configs and the client's `ssh_config`/`known_hosts` of a lab; starting sshd in a host.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{mounts, run, Lab, LabError, LabHost};
use crate::transport::shell;

/// Debian's sshd; it must be started by absolute path (it re-executes itself).
pub const SSHD: &str = "/usr/sbin/sshd";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn keygen(path: &Path, comment: &str) -> Result<(), LabError> {
    if path.exists() {
        return Ok(());
    }
    let path_text = path.to_string_lossy();
    run(
        "ssh-keygen",
        &[
            "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &path_text,
        ],
    )?;
    Ok(())
}

/// Makes the lab's client key pair once.
pub fn ensure_client_key(lab: &Lab) -> Result<(), LabError> {
    keygen(&lab.client_key(), &format!("ferry-lab-{}", lab.name))
}

fn host_key(lab: &Lab, host: &LabHost) -> PathBuf {
    lab.host_dir(&host.name).join("ssh_host_ed25519_key")
}

/// Makes the host's SSH key pair once (the lab's `known_hosts` records its
/// public half); returns the private and public key files.
pub fn ensure_host_key(lab: &Lab, host: &LabHost) -> Result<(PathBuf, PathBuf), LabError> {
    let key = host_key(lab, host);
    keygen(&key, &format!("{}@ferry-lab-{}", host.name, lab.name))?;
    let public = key.with_extension("pub");
    Ok((key, public))
}

fn pid_file(lab: &Lab, host: &LabHost) -> PathBuf {
    lab.host_dir(&host.name).join("sshd.pid")
}

fn log_file(lab: &Lab, host: &LabHost) -> PathBuf {
    lab.host_dir(&host.name).join("sshd.log")
}

/// The PID sshd recorded for `host`, if any.
pub fn recorded_pid(lab: &Lab, host: &LabHost) -> Option<i32> {
    std::fs::read_to_string(pid_file(lab, host))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Writes the host key, `authorized_keys` and `sshd_config` of `host`.
pub fn ensure_host_files(lab: &Lab, host: &LabHost) -> Result<(), LabError> {
    let dir = lab.host_dir(&host.name);
    ensure_host_key(lab, host)?;
    let client_pub = lab.client_key().with_extension("pub");
    let authorized = dir.join("authorized_keys");
    std::fs::copy(&client_pub, &authorized).map_err(io_err(&authorized))?;

    // The state dir's `bin/` carries the bootstrapped agent's `ferry` link,
    // so `ssh HOST ferry …` finds it.
    let agent_bin = format!("{}:", lab.state_dir.join("bin").display());
    let mut config = String::new();
    let _ = writeln!(
        config,
        "# sshd of lab host {} (written by `ferry lab up`)",
        host.name
    );
    let _ = writeln!(config, "ListenAddress {}:22", host.address);
    let _ = writeln!(config, "HostKey {}", host_key(lab, host).display());
    let _ = writeln!(config, "PidFile {}", pid_file(lab, host).display());
    let _ = writeln!(config, "AuthorizedKeysFile {}", authorized.display());
    for line in [
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "MaxSessions 100",
        "MaxStartups 100",
        "Subsystem sftp internal-sftp",
    ] {
        let _ = writeln!(config, "{line}");
    }
    // A home of its own: the host's shells must not run (and, when the lab
    // kills them, leave locks behind in) the deployer's root dotfiles.
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(io_err(&home))?;
    let _ = writeln!(
        config,
        "SetEnv HOME={} PATH={agent_bin}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
         FERRY_STORE_DIR={} FERRY_STATE_DIR={}",
        home.display(),
        lab.store_dir.display(),
        lab.state_dir.display()
    );
    let path = dir.join("sshd_config");
    std::fs::write(&path, config).map_err(io_err(&path))
}

/// Starts the host's sshd inside its network namespace and a private mount
/// namespace, and waits until it listens (it writes its pid file then).
pub fn start(lab: &Lab, host: &LabHost) -> Result<(), LabError> {
    std::fs::create_dir_all("/run/sshd").map_err(io_err(Path::new("/run/sshd")))?;
    let pid = pid_file(lab, host);
    let _ = std::fs::remove_file(&pid);
    let log = log_file(lab, host);
    let config = lab.host_dir(&host.name).join("sshd_config");
    let script = format!(
        "{}exec {SSHD} -f {} -E {}",
        mounts::bind_commands(lab, host),
        shell::quote(&config.to_string_lossy()),
        shell::quote(&log.to_string_lossy()),
    );
    run(
        "ip",
        &[
            "netns",
            "exec",
            &host.netns,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ],
    )
    .map_err(|e| LabError::SshdStart {
        host: host.name.clone(),
        detail: e.to_string(),
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorded_pid(lab, host).is_none() {
        if Instant::now() > deadline {
            let detail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(LabError::SshdStart {
                host: host.name.clone(),
                detail: format!("no pid file after 10 s; sshd log: {}", detail.trim()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Writes the lab's `ssh_config` and `known_hosts` (each host's real key,
/// under its name and address), which keep strict host-key checking on.
pub fn write_client_files(lab: &Lab) -> Result<(), LabError> {
    let mut known_hosts = String::new();
    let mut config = String::new();
    let _ = writeln!(
        config,
        "# ssh client config of lab {} (written by `ferry lab up`)",
        lab.name
    );
    for host in &lab.hosts {
        let key_path = host_key(lab, host).with_extension("pub");
        let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let mut fields = key.split_whitespace();
        let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
            return Err(LabError::BadState {
                path: key_path,
                detail: "not an OpenSSH public key".to_string(),
            });
        };
        let _ = writeln!(known_hosts, "{},{} {kind} {blob}", host.name, host.address);
        let _ = writeln!(config, "Host {} {}", host.name, host.address);
        let _ = writeln!(config, "    HostName {}", host.address);
    }
    let _ = writeln!(config, "Host *");
    let _ = writeln!(config, "    User root");
    let _ = writeln!(config, "    IdentityFile {}", lab.client_key().display());
    let _ = writeln!(config, "    IdentitiesOnly yes");
    let _ = writeln!(
        config,
        "    UserKnownHostsFile {}",
        lab.known_hosts().display()
    );
    let _ = writeln!(config, "    GlobalKnownHostsFile /dev/null");
    let _ = writeln!(config, "    StrictHostKeyChecking yes");
    let _ = writeln!(config, "    CheckHostIP no");
    let _ = writeln!(config, "    BatchMode yes");
    let _ = writeln!(config, "    LogLevel ERROR");
    let known = lab.known_hosts();
    std::fs::write(&known, known_hosts).map_err(io_err(&known))?;
    let path = lab.ssh_config();
    std::fs::write(&path, config).map_err(io_err(&path))
}

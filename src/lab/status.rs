//! What a lab looks like right now: per host, whether its namespace and sshd are alive and sshd answers.
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;

use super::{load, network, sshd, Lab, LabError, LabHost};

/// The state of one lab host.
#[derive(Debug, Clone, Serialize)]
pub struct LabHostStatus {
    /// The host's name.
    pub name: String,
    /// Its class.
    pub class: String,
    /// Its address on the lab bridge.
    pub address: String,
    /// The host's network namespace exists.
    pub netns: bool,
    /// The process the lab started for the host is alive: its sshd, or for
    /// a `root` host its machine (whose systemd runs the sshd).
    pub sshd_running: bool,
    /// A TCP connection to port 22 got an SSH banner.
    pub ssh_answers: bool,
}

/// Whether the sshd that `up` started for `host` is still alive (for a
/// `root` host: its machine).
pub fn sshd_running(lab: &Lab, host: &LabHost) -> bool {
    if let Some(machine) = &host.machine {
        return super::machine::running(machine);
    }
    let Some(pid) = sshd::recorded_pid(lab, host) else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim() == "sshd")
        .unwrap_or(false)
}

/// Whether something on `address:22` speaks SSH (reads the server banner).
pub fn ssh_answers(address: &str) -> bool {
    let Ok(ip) = address.parse() else {
        return false;
    };
    let addr = SocketAddr::new(ip, 22);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut banner = [0u8; 4];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-"
}

/// The status of every host of lab `name`.
pub fn status(name: &str) -> Result<(Lab, Vec<LabHostStatus>), LabError> {
    let lab = load(name)?;
    let statuses = super::run_parallel(&lab.hosts, |host| LabHostStatus {
        name: host.name.clone(),
        class: host.class.clone(),
        address: host.address.clone(),
        netns: network::netns_exists(&host.netns),
        sshd_running: sshd_running(&lab, host),
        ssh_answers: ssh_answers(&host.address),
    });
    Ok((lab, statuses))
}

//! Taking a lab down: every process, namespace, link and directory it made, safe to repeat.
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{lab_dir, load, network, Lab, LabError, LabHost, LAB_BASE};

/// The PIDs of all processes in network namespace `netns`.
fn netns_pids(netns: &str) -> Vec<i32> {
    super::run("ip", &["netns", "pids", netns])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Powers a `root` host's machine off and unmounts its root, kills every
/// process left in the host's namespace (sshd, sessions, agents), then
/// removes its links and namespace. A namespace host's mount namespace goes
/// with its last process.
pub fn host(_lab: &Lab, host: &LabHost) -> Result<(), LabError> {
    if let Some(machine) = &host.machine {
        super::machine::stop(machine)?;
    }
    if network::netns_exists(&host.netns) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = netns_pids(&host.netns);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // A process that exited meanwhile is fine.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if Instant::now() > deadline {
                return Err(LabError::Command {
                    command: format!("kill processes of {}", host.netns),
                    stderr: "processes survived SIGKILL for 10 s".to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    network::remove_host(host)
}

/// Refuses a host whose machine root is still mounted: its directory is
/// never removed through a mount.
pub(super) fn refuse_mounted_root(host: &LabHost) -> Result<(), LabError> {
    match host
        .machine
        .as_ref()
        .filter(|m| super::machine::is_mounted(&m.root))
    {
        Some(machine) => Err(LabError::Command {
            command: format!("umount {}", machine.root.display()),
            stderr: "the host's root is still mounted".to_string(),
        }),
        None => Ok(()),
    }
}

/// Takes lab `name` down. Returns whether there was anything to remove;
/// a lab that is already gone is not an error.
pub fn down(name: &str) -> Result<bool, LabError> {
    let lab = match load(name) {
        Ok(lab) => lab,
        Err(LabError::NotFound(_)) => {
            let dir = lab_dir(name);
            let existed = dir.exists();
            if existed {
                std::fs::remove_dir_all(&dir)
                    .map_err(|source| LabError::Io { path: dir, source })?;
            }
            return Ok(existed);
        }
        Err(e) => return Err(e),
    };
    let results = super::run_parallel(&lab.hosts, |h| host(&lab, h));
    results.into_iter().collect::<Result<Vec<()>, LabError>>()?;
    network::remove_bridge(&lab)?;
    for h in &lab.hosts {
        refuse_mounted_root(h)?;
    }
    let dir = lab.dir();
    std::fs::remove_dir_all(&dir).map_err(|source| LabError::Io { path: dir, source })?;
    remove_mount_points(&lab);
    Ok(true)
}

/// Removes mount points this lab created, unless another lab still uses
/// them or something was put in them meanwhile (`remove_dir` needs empty).
fn remove_mount_points(lab: &Lab) {
    let in_use: Vec<_> = std::fs::read_dir(LAB_BASE)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| load(&e.file_name().to_string_lossy()).ok())
        .flat_map(|other| other.private_dirs)
        .collect();
    for dir in &lab.created_mount_points {
        if !in_use.contains(dir) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

//! `root` lab hosts: an overlay of the shared Debian image, booted with `systemd-nspawn` in the host's netns.
//!
//! Invariants:
//! - a host's [`Machine`] record is in `lab.json` before its overlay is
//!   mounted or its machine started, and everything it names (overlay mount,
//!   nspawn process, files) is derived from it, so `down` finds all of it;
//! - the image tree is only ever a read-only lower layer: a host writes to its
//!   own upper dir, which `down` removes with the lab's dir;
//! - the host is reachable with the lab's own keys and strict host-key
//!   checking, like a namespace host: its sshd uses the key in `known_hosts`;
//! - the host's private dirs (`/ferry`, …) are the same per-host dirs a
//!   namespace host gets, bound into the machine, so tests and tools find a
//!   host's store at [`Lab::host_private_dir`] whatever the kind.
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{cgroup, image, sshd, status, Lab, LabError, LabHost};

/// The program that boots the machines.
pub const NSPAWN: &str = "/usr/bin/systemd-nspawn";

/// How long a machine may take from start to an answering sshd.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a machine may take to power off before it is killed.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(30);

/// The record of one booted host (in `lab.json`, written before it starts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The nspawn machine name (unique per lab host, also in its command line).
    pub name: String,
    /// The image tree the host's root overlays.
    pub image: PathBuf,
    /// Where the host's root is mounted (the overlay) in the root namespace.
    pub root: PathBuf,
}

impl Machine {
    /// The host's machine record: paths under its host dir.
    pub fn plan(host_dir: &Path, name: String, image: &Path) -> Machine {
        Machine {
            name,
            image: image.to_path_buf(),
            root: host_dir.join("machine").join("root"),
        }
    }

    fn dir(&self) -> PathBuf {
        // `root` is always `<host dir>/machine/root` (see `plan`).
        self.root
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn upper(&self) -> PathBuf {
        self.dir().join("upper")
    }

    fn work(&self) -> PathBuf {
        self.dir().join("work")
    }

    /// The file `boot` writes the nspawn process's PID to.
    pub fn pid_file(&self) -> PathBuf {
        self.dir().join("nspawn.pid")
    }

    /// What nspawn and the machine's console printed.
    pub fn log_file(&self) -> PathBuf {
        self.dir().join("nspawn.log")
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::fs::write(path, text).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

/// Whether `path` is a mount point in this mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let text = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .any(|line| line.split(' ').nth(4) == Some(text.as_ref()))
    })
}

/// Mounts the host's overlay root and writes what makes it this host: its
/// hostname, sshd host key and config, the lab's client key, the mount
/// points of its private dirs.
pub fn prepare(lab: &Lab, host: &LabHost, machine: &Machine) -> Result<(), LabError> {
    for dir in [machine.upper(), machine.work(), machine.root.clone()] {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    if !is_mounted(&machine.root) {
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            machine.image.display(),
            machine.upper().display(),
            machine.work().display()
        );
        nix::mount::mount(
            Some("overlay"),
            &machine.root,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| LabError::Command {
            command: format!(
                "mount -t overlay -o {options} overlay {}",
                machine.root.display()
            ),
            stderr: e.to_string(),
        })?;
    }
    let root = &machine.root;
    write_file(
        &root.join("etc/hostname"),
        &format!("{}\n", host.name),
        0o644,
    )?;
    write_file(
        &root.join("etc/hosts"),
        &format!("127.0.0.1 localhost\n{} {}\n", host.address, host.name),
        0o644,
    )?;
    let (key, key_pub) = sshd::ensure_host_key(lab, host)?;
    // The image's own host keys were made once for every host: drop them.
    let ssh_dir = root.join("etc/ssh");
    for entry in std::fs::read_dir(&ssh_dir)
        .map_err(io_err(&ssh_dir))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(io_err(p));
    write_file(&ssh_dir.join("ssh_host_ed25519_key"), &read(&key)?, 0o600)?;
    write_file(
        &ssh_dir.join("ssh_host_ed25519_key.pub"),
        &read(&key_pub)?,
        0o644,
    )?;
    write_file(
        &ssh_dir.join("sshd_config.d/ferry-lab.conf"),
        &sshd_config(lab, host),
        0o644,
    )?;
    let client_pub = lab.client_key().with_extension("pub");
    let ssh_home = root.join("root/.ssh");
    write_file(
        &ssh_home.join("authorized_keys"),
        &read(&client_pub)?,
        0o600,
    )?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&ssh_home, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(&ssh_home))?;
    }
    for mount_point in &lab.private_dirs {
        let inside = root.join(mount_point.strip_prefix("/").unwrap_or(mount_point));
        std::fs::create_dir_all(&inside).map_err(io_err(&inside))?;
    }
    Ok(())
}

/// The drop-in that makes the image's sshd this host's: its key only, and
/// the environment ferry's agent reads.
fn sshd_config(lab: &Lab, host: &LabHost) -> String {
    let mut config = String::new();
    let _ = writeln!(
        config,
        "# sshd of lab host {} (written by `ferry lab up`)",
        host.name
    );
    for line in [
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UseDNS no",
        "MaxSessions 100",
        "MaxStartups 100",
    ] {
        let _ = writeln!(config, "{line}");
    }
    let _ = writeln!(
        config,
        "SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
         FERRY_STORE_DIR={} FERRY_STATE_DIR={}",
        lab.state_dir.join("bin").display(),
        lab.store_dir.display(),
        lab.state_dir.display()
    );
    config
}

/// Starts the machine (nspawn as the lab's process, its PID recorded) and
/// waits until its sshd answers on the host's address.
pub fn boot(lab: &Lab, host: &LabHost, machine: &Machine) -> Result<(), LabError> {
    let log_path = machine.log_file();
    let log = std::fs::File::create(&log_path).map_err(io_err(&log_path))?;
    let log_err = log.try_clone().map_err(io_err(&log_path))?;
    let mut command = Command::new(NSPAWN);
    command
        .args(["--quiet", "--boot", "--register=no", "--keep-unit"])
        .arg(format!("--machine={}", machine.name))
        .arg(format!(
            "--network-namespace-path=/run/netns/{}",
            host.netns
        ))
        .args([
            "--console=read-only",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
        ]);
    cgroup::enter(&mut command, &machine.name)?;
    for mount_point in &lab.private_dirs {
        let source = lab.host_private_dir(&host.name, mount_point);
        command.arg(format!(
            "--bind={}:{}",
            bind_escape(&source),
            bind_escape(mount_point)
        ));
    }
    command
        .arg("-D")
        .arg(&machine.root)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own process group: a terminal's ^C to `ferry lab up` must not stop the lab.
        .process_group(0);
    let mut child = command.spawn().map_err(|source| LabError::Spawn {
        program: "systemd-nspawn".to_string(),
        source,
    })?;
    let pid = child.id();
    let pid_file = machine.pid_file();
    std::fs::write(&pid_file, format!("{pid}\n")).map_err(io_err(&pid_file))?;
    // Reap it when it ends, so a process that ran `up` and `down` keeps no zombie.
    std::thread::spawn(move || child.wait());
    wait_for_sshd(host, machine, pid)
}

/// A path as one side of nspawn's `--bind=SOURCE:DEST`, where `:` separates
/// and backslash escapes.
fn bind_escape(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

fn wait_for_sshd(host: &LabHost, machine: &Machine, pid: u32) -> Result<(), LabError> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        if status::ssh_answers(&host.address) {
            return Ok(());
        }
        let alive = process_alive(pid as i32);
        if !alive || Instant::now() > deadline {
            let log = std::fs::read_to_string(machine.log_file()).unwrap_or_default();
            let what = if alive {
                format!(
                    "sshd did not answer on {}:22 within {} s",
                    host.address,
                    BOOT_TIMEOUT.as_secs()
                )
            } else {
                "systemd-nspawn exited".to_string()
            };
            return Err(LabError::SshdStart {
                host: host.name.clone(),
                detail: format!(
                    "{what}; last lines of {}:\n{}",
                    machine.log_file().display(),
                    image::tail(&log, 15)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` is a live (not zombie) process.
fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Whether `pid` is the nspawn process of `machine` (its command line names the machine).
fn is_leader(pid: i32, machine: &Machine) -> bool {
    let wanted = format!("--machine={}", machine.name);
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == wanted.as_bytes())
    }) && process_alive(pid)
}

/// The machine's nspawn process: the recorded PID, or (if `up` died before
/// recording it) the process whose command line names the machine.
pub fn leader(machine: &Machine) -> Option<i32> {
    let recorded = std::fs::read_to_string(machine.pid_file())
        .ok()
        .and_then(|t| t.trim().parse().ok());
    if let Some(pid) = recorded.filter(|pid| is_leader(*pid, machine)) {
        return Some(pid);
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .find(|pid| is_leader(*pid, machine))
}

/// Powers the machine off (SIGTERM makes nspawn shut its systemd down),
/// kills it after [`POWEROFF_TIMEOUT`], and unmounts its root.
pub fn stop(machine: &Machine) -> Result<(), LabError> {
    if let Some(pid) = leader(machine) {
        let pid_t = Pid::from_raw(pid);
        let _ = kill(pid_t, Signal::SIGTERM);
        if !wait_gone(pid, POWEROFF_TIMEOUT) {
            let _ = kill(pid_t, Signal::SIGKILL);
            if !wait_gone(pid, Duration::from_secs(10)) {
                return Err(LabError::Command {
                    command: format!("kill systemd-nspawn {pid} of machine {}", machine.name),
                    stderr: "it survived SIGKILL for 10 s".to_string(),
                });
            }
        }
    }
    cgroup::remove(&machine.name)?;
    if is_mounted(&machine.root) {
        nix::mount::umount2(&machine.root, nix::mount::MntFlags::empty())
            .or_else(|_| nix::mount::umount2(&machine.root, nix::mount::MntFlags::MNT_DETACH))
            .map_err(|e| LabError::Command {
                command: format!("umount {}", machine.root.display()),
                stderr: e.to_string(),
            })?;
    }
    Ok(())
}

fn wait_gone(pid: i32, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Whether the machine's nspawn process is alive.
pub fn running(machine: &Machine) -> bool {
    leader(machine).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_that_exits_is_reported_with_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine::plan(dir.path(), "fmtest00".into(), Path::new("/nonexistent"));
        std::fs::create_dir_all(machine.dir()).unwrap();
        let log: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        std::fs::write(machine.log_file(), log).unwrap();
        let host = LabHost {
            name: "r1".into(),
            class: "web".into(),
            // Not an IP address: the probe fails without sending anything.
            address: "no-such-address".into(),
            labels: Default::default(),
            netns: "ferry-t-r1".into(),
            veth: "fvtest00".into(),
            machine: Some(machine.clone()),
        };
        let mut exited = Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let err = wait_for_sshd(&host, &machine, exited.id()).unwrap_err();
        let lines: String = (6..=20).map(|i| format!("\nline {i}")).collect();
        assert_eq!(
            err.to_string(),
            format!(
                "sshd of lab host `r1` did not start: systemd-nspawn exited; last lines of {}:{lines}",
                machine.log_file().display()
            )
        );
    }

    #[test]
    fn bind_paths_escape_colons_and_backslashes() {
        assert_eq!(bind_escape(Path::new("/ferry")), "/ferry");
        assert_eq!(bind_escape(Path::new("/a:b\\c")), "/a\\:b\\\\c");
    }
}

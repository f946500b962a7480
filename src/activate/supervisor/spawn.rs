//! How the daemon starts a service process (own session, environment, user,
//! one output pipe), describes its end, and ends a group a predecessor left.
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::activate::env::BASE_PATH;
use crate::activate::service::ServiceDefinition;

pub(super) fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        _ => status.to_string(),
    }
}

/// Starts `/bin/sh -c exec` in a new session (own process group), with the
/// definition's environment, working directory and user; its stdout and
/// stderr go into one pipe whose read end is returned.
pub(super) fn spawn_process(def: &ServiceDefinition) -> Result<(Child, File), String> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let write_err: OwnedFd = write_end.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&def.exec)
        .env_clear()
        .env("PATH", BASE_PATH)
        .envs(&def.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::from(write_err));
    if def.working_dir.is_dir() {
        command.current_dir(&def.working_dir);
    } else {
        command.current_dir("/");
    }
    let mut ids = None;
    if let Some(user) = &def.user {
        let found = nix::unistd::User::from_name(user)
            .map_err(|e| format!("looking up user {user}: {e}"))?
            .ok_or_else(|| format!("user {user} does not exist"))?;
        ids = Some((found.uid.as_raw(), found.gid.as_raw()));
        if !def.env.contains_key("HOME") {
            command.env("HOME", &def.working_dir);
        }
        command.env("USER", user).env("LOGNAME", user);
    }
    crate::activate::usr_tree::prepare(&mut command, def.usr.as_deref(), ids)
        .map_err(|e| format!("package tree: {e}"))?;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| e.to_string())?;
    drop(command);
    Ok((child, File::from(read_end)))
}

/// Ends a process group left by a previous supervisor, if `pid` still leads
/// its own session (so a reused pid of an unrelated process is left alone):
/// SIGTERM, then SIGKILL after five seconds.
pub(super) fn end_orphan_group(pid: u32) {
    let leads_own_session = || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields: Vec<String> = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                let state = fields.first()?.clone();
                let session = fields.get(3)?.parse::<u32>().ok()?;
                Some(state != "Z" && session == pid)
            })
            .unwrap_or(false)
    };
    if !leads_own_session() {
        return;
    }
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while leads_own_session() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(group, Signal::SIGKILL);
}

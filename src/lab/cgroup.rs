//! A control group of its own for every `root` lab host.
//!
//! `systemd-nspawn --keep-unit` runs a machine in the control group of the
//! process that started it, and the machine's systemd sees that group as its
//! root. Without a group of their own, every machine of a lab (and of every
//! lab) would share one: a unit `ferry-app.service` on `web1` would be the same
//! group as on `web2`, so its systemd sees processes it cannot name (PID 0
//! from its namespace), fails to kill the group ("Input/output error"), and
//! leaves a stopped service's processes running. So before nspawn starts, its
//! process enters `ferry-lab/<machine>` in every hierarchy systemd uses: the
//! named `systemd` hierarchy and the unified one (cgroup v1 and hybrid hosts),
//! or the unified root (cgroup v2 hosts).
//!
//! Invariant: the group is derived from the machine name alone, so `down`
//! removes it even when `up` died halfway. The empty `ferry-lab` parent stays
//! (removing it could race with another lab's `up` creating its group).
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::LabError;

/// Where the hierarchies systemd uses are mounted, first to last.
const HIERARCHIES: [&str; 3] = [
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

/// The parent of every lab machine's group, in each hierarchy.
const PARENT: &str = "ferry-lab";

/// The mounted hierarchies a machine gets a group in. `/sys/fs/cgroup` itself
/// counts only when it is the unified hierarchy (it has `cgroup.controllers`),
/// not the tmpfs that holds v1 mounts.
fn hierarchies() -> Vec<PathBuf> {
    let named = Path::new(HIERARCHIES[0]).join("cgroup.procs").exists();
    HIERARCHIES
        .iter()
        .map(PathBuf::from)
        .filter(|h| {
            if h == Path::new("/sys/fs/cgroup") {
                !named && h.join("cgroup.controllers").exists()
            } else {
                h.join("cgroup.procs").exists()
            }
        })
        .collect()
}

/// The machine's group in each mounted hierarchy.
pub fn groups(machine_name: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(PARENT).join(machine_name))
        .collect()
}

/// Creates the machine's groups and makes `command`'s process enter them
/// between fork and exec, before nspawn reads its own group.
pub fn enter(command: &mut Command, machine_name: &str) -> Result<(), LabError> {
    let mut procs: Vec<File> = Vec::new();
    for group in groups(machine_name) {
        std::fs::create_dir_all(&group).map_err(|source| LabError::Io {
            path: group.clone(),
            source,
        })?;
        let file = group.join("cgroup.procs");
        let opened = OpenOptions::new()
            .write(true)
            .open(&file)
            .map_err(|source| LabError::Io { path: file, source })?;
        procs.push(opened);
    }
    if procs.is_empty() {
        return Ok(());
    }
    // SAFETY: between fork and exec the closure only calls write(2), which is
    // async-signal-safe, on descriptors opened before the fork; it allocates
    // nothing.
    unsafe {
        command.pre_exec(move || {
            for file in &procs {
                // "0" moves the writing process itself.
                if libc::write(file.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}

/// Removes the machine's groups (after its processes are gone): every
/// sub-group its systemd made, deepest first. A group that still holds a
/// process cannot be removed and is reported.
pub fn remove(machine_name: &str) -> Result<(), LabError> {
    for group in groups(machine_name) {
        if group.exists() {
            remove_tree(&group)?;
        }
    }
    Ok(())
}

fn remove_tree(group: &Path) -> Result<(), LabError> {
    let io = |source| LabError::Io {
        path: group.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(group).map_err(io)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(group) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io(source)),
    }
}

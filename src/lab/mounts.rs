//! Per-host private directories: bind mounts inside each host's own mount namespace.
//!
//! The bind mounts exist only in the namespace sshd runs in (made with
//! `unshare -m --propagation private`), so nothing is mounted in the root
//! namespace and the mounts vanish with the host's last process.
use std::path::{Path, PathBuf};

use super::{Lab, LabError, LabHost};
use crate::transport::shell;

/// The name of the per-host directory that backs `mount_point` (`/ferry` → `ferry`).
pub fn private_dir_key(mount_point: &Path) -> String {
    let text = mount_point.to_string_lossy();
    let key = text.trim_matches('/').replace('/', "_");
    if key.is_empty() {
        "root".to_string()
    } else {
        key
    }
}

/// Creates the mount points that do not exist yet; returns those it created.
pub fn ensure_mount_points(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, LabError> {
    let mut created = Vec::new();
    for dir in dirs {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|source| LabError::Io {
                path: dir.clone(),
                source,
            })?;
            created.push(dir.clone());
        }
    }
    Ok(created)
}

/// Creates the host's directories that back its private mounts.
pub fn ensure_host_dirs(lab: &Lab, host: &LabHost) -> Result<(), LabError> {
    for mount_point in &lab.private_dirs {
        let dir = lab.host_private_dir(&host.name, mount_point);
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io { path: dir, source })?;
    }
    Ok(())
}

/// Shell commands that bind every private dir of `host` onto its mount point.
pub fn bind_commands(lab: &Lab, host: &LabHost) -> String {
    lab.private_dirs
        .iter()
        .map(|mount_point| {
            let source = lab.host_private_dir(&host.name, mount_point);
            format!(
                "mount --bind {} {} && ",
                shell::quote(&source.to_string_lossy()),
                shell::quote(&mount_point.to_string_lossy())
            )
        })
        .collect()
}

//! Processes that see their class's package tree as `/usr`: a private mount
//! namespace in which the tree is bind-mounted read-only over `/usr`.
//!
//! Hosts are merged-`/usr` (`/bin`, `/sbin`, `/lib`, `/lib64` are links into
//! `/usr`, as on every Debian since 12), so the tree also answers for those:
//! `/bin/sh`, the ELF interpreter `/lib64/ld-linux-x86-64.so.2` and every
//! library the dynamic loader finds come from the class's closure, never from
//! the host. Everything else (`/etc`, `/var`, `/ferry`, `/proc`) stays the host's.
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The mount point the tree replaces.
pub const USR: &str = "/usr";

/// The top-level directories a merged-`/usr` host links into `/usr` (those
/// of other architectures may be absent); on a host where one of them is a
/// real directory the tree would not answer for it. Package trees and the
/// ELF check lay out and resolve paths by the same list.
pub const MERGED: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Why a host cannot run processes over a package tree.
#[derive(Debug, thiserror::Error)]
pub enum UsrTreeError {
    /// The tree is not a directory on this host.
    #[error("package tree {0} is not a directory on this host")]
    Missing(String),
    /// The host keeps one of `/bin`, `/sbin`, `/lib`, `/lib64` outside `/usr`.
    #[error("/{0} is not a link into /usr on this host (ferry needs a merged-/usr host to run a class's packages)")]
    NotMerged(&'static str),
}

/// Checks that `tree` can serve as `/usr` on this host: it is a directory
/// and the host is merged-`/usr`.
pub fn check(tree: &Path) -> Result<(), UsrTreeError> {
    if !tree.is_dir() {
        return Err(UsrTreeError::Missing(tree.display().to_string()));
    }
    for name in MERGED {
        let dir = Path::new("/").join(name);
        let target = std::fs::read_link(&dir).ok();
        let into_usr = target.is_some_and(|t| {
            let t = Path::new("/").join(t);
            t.starts_with(USR)
        });
        // A missing one (another architecture's) is fine: nothing can need it.
        if !into_usr && dir.exists() {
            return Err(UsrTreeError::NotMerged(name));
        }
    }
    Ok(())
}

/// Makes `command` run in a new mount namespace with `tree` read-only on
/// `/usr`, and then as `ids` (uid, gid; supplementary groups dropped) when
/// given. The caller must not also set the command's uid or gid: the mounts
/// need root, and the standard library switches user before this step runs.
pub fn run_over(command: &mut Command, tree: &Path, ids: Option<(u32, u32)>) -> io::Result<()> {
    let source = CString::new(tree.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: between fork and exec the closure makes only raw system calls
    // (async-signal-safe, no allocation: the paths were made above, and
    // `last_os_error` stores an error code without allocating).
    unsafe {
        command.pre_exec(move || {
            let null = std::ptr::null();
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Nothing mounted here may reach back into the host's namespace.
            check(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                source.as_ptr(),
                c"/usr".as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                null,
                c"/usr".as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            ))?;
            if let Some((uid, gid)) = ids {
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(gid))?;
                check(libc::setuid(uid))?;
            }
            Ok(())
        });
    }
    Ok(())
}

/// Runs `command` as the user `ids` (uid, gid), over `tree` when given:
/// the one place that decides how a service's process gets its user and
/// its `/usr` (services, hooks and command health checks).
pub fn prepare(
    command: &mut Command,
    tree: Option<&Path>,
    ids: Option<(u32, u32)>,
) -> io::Result<()> {
    match (tree, ids) {
        (Some(tree), ids) => run_over(command, tree, ids),
        (None, Some((uid, gid))) => {
            command.uid(uid).gid(gid);
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

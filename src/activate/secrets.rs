//! Secrets on a host: values written to `<state_dir>/secrets/<name>` with mode
//! 0400 and the owner the manifest names, never into the store; and removal
//! of secrets that no remaining generation references.
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_store::durable::{io_err, AtomicWrite, IoError};

use super::generations::Profiles;
use super::manifest::{is_plain_name, Manifest};

/// A secret that cannot be installed on (or pruned from) this host.
#[derive(Debug, thiserror::Error)]
pub enum SecretInstallError {
    /// The name is not a plain file name.
    /// The name is not a plain file name.
    #[error("secret name {name:?} must be a plain file name (letters, digits, '-', '_', '.')")]
    Name {
        /// The name.
        name: String,
    },
    /// The owner the manifest names is not a user here.
    /// The owner the manifest names is not a user here.
    #[error("user {user} (owner of secret {name}) does not exist on this host")]
    Owner {
        /// The secret.
        name: String,
        /// The user that does not exist.
        user: String,
    },
    /// A file-system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The generations could not be listed.
    #[error(transparent)]
    Generations(#[from] super::generations::GenerationError),
    /// A generation's manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] super::manifest::ManifestError),
}

/// The directory holding a host's secrets.
pub fn secrets_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("secrets")
}

/// The file of one secret.
pub fn secret_path(state_dir: &Path, name: &str) -> PathBuf {
    secrets_dir(state_dir).join(name)
}

/// Writes one secret atomically: a 0400 temporary file owned by `owner`
/// (root when `None`), fsynced, renamed into place.
pub fn write_secret(
    state_dir: &Path,
    name: &str,
    value: &[u8],
    owner: Option<&str>,
) -> Result<PathBuf, SecretInstallError> {
    if !is_plain_name(name) {
        return Err(SecretInstallError::Name { name: name.into() });
    }
    let ids = match owner {
        None => None,
        Some(user) => {
            let found = nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .ok_or_else(|| SecretInstallError::Owner {
                    name: name.into(),
                    user: user.into(),
                })?;
            Some((found.uid, found.gid))
        }
    };
    let dir = secrets_dir(state_dir);
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    // Only root (and owners through their own file) may look inside.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).map_err(io_err("chmod", &dir))?;
    let path = dir.join(name);
    let mut write = AtomicWrite::durable().mode(0o400);
    if let Some((uid, gid)) = ids {
        write = write.owner(uid.as_raw(), gid.as_raw());
    }
    write.write(&path, value)?;
    Ok(path)
}

/// Secret names the manifest references that are not on this host.
pub fn missing_secrets(state_dir: &Path, manifest: &Manifest) -> Vec<String> {
    manifest
        .secret_names()
        .into_iter()
        .filter(|name| !secret_path(state_dir, name).is_file())
        .collect()
}

/// Deletes every secret no remaining generation's manifest references and
/// returns the names deleted. A generation whose manifest cannot be read
/// keeps every secret (losing a secret is worse than keeping one).
pub fn prune_secrets(state_dir: &Path) -> Result<Vec<String>, SecretInstallError> {
    let profiles = Profiles::open(state_dir)?;
    let mut referenced = BTreeSet::new();
    for generation in profiles.list()? {
        let manifest = Manifest::load(&generation.system)?;
        referenced.extend(manifest.secret_names());
    }
    let dir = secrets_dir(state_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", &dir)(e).into()),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", &dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if referenced.contains(&name) {
            continue;
        }
        fs::remove_file(entry.path()).map_err(io_err("remove", &entry.path()))?;
        if !name.starts_with(".tmp-") {
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

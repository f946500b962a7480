//! Secrets on a host: values written to `<state_dir>/secrets/<name>` with mode
//! 0400 and the owner the manifest names, never into the store; and removal
//! of secrets that no remaining generation references.
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::generations::Profiles;
use super::manifest::{is_plain_name, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret name {name:?} must be a plain file name (letters, digits, '-', '_', '.')")]
    Name { name: String },
    #[error("user {user} (owner of secret {name}) does not exist on this host")]
    Owner { name: String, user: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Generations(#[from] super::generations::GenerationError),
    #[error(transparent)]
    Manifest(#[from] super::manifest::ManifestError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SecretError {
    let path = path.to_path_buf();
    move |source| SecretError::Io {
        action,
        path,
        source,
    }
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
) -> Result<PathBuf, SecretError> {
    if !is_plain_name(name) {
        return Err(SecretError::Name { name: name.into() });
    }
    let ids = match owner {
        None => None,
        Some(user) => {
            let found = nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .ok_or_else(|| SecretError::Owner {
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
    let tmp = dir.join(format!(
        ".tmp-{name}-{}",
        super::generations::unique_suffix()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        if let Some((uid, gid)) = ids {
            nix::unistd::fchown(std::os::fd::AsRawFd::as_raw_fd(&file), Some(uid), Some(gid))
                .map_err(|e| io_err("chown", &tmp)(io::Error::from(e)))?;
        }
        file.write_all(value).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        let path = dir.join(name);
        fs::rename(&tmp, &path).map_err(io_err("rename onto", &path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", &dir))?;
        Ok(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
pub fn prune_secrets(state_dir: &Path) -> Result<Vec<String>, SecretError> {
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
        Err(e) => return Err(io_err("list", &dir)(e)),
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

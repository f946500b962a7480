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

/// The file of the host's secret salt, outside the secrets dir (which
/// holds nothing but secrets).
const SALT_FILE: &str = "secret-salt";

/// What a host says of its installed secrets without giving them away: a
/// salt of its own and, per secret, the salted digest of its value
/// ([`secret_digest`]). A deployer computes the same digest of the value it
/// would send, so it sees a rotated secret without seeing the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecretDigests {
    /// The host's salt, 32 bytes as lowercase hex.
    pub salt: String,
    /// secret name → [`secret_digest`] of the installed value.
    pub digests: std::collections::BTreeMap<String, String>,
}

/// The salted digest of a secret value: BLAKE3 in keyed mode, keyed with
/// the host's 32-byte salt, over the value's bytes; 64 lowercase hex
/// digits. `None` when `salt_hex` is not 32 bytes of hex.
pub fn secret_digest(salt_hex: &str, value: &[u8]) -> Option<String> {
    let key = blake3::Hash::from_hex(salt_hex).ok()?;
    Some(
        blake3::keyed_hash(key.as_bytes(), value)
            .to_hex()
            .to_string(),
    )
}

/// The digests of every secret installed on this host; the salt is made
/// (32 bytes from the kernel's random source, mode 0600) on first use.
pub fn installed_digests(state_dir: &Path) -> Result<SecretDigests, IoError> {
    let salt = host_salt(state_dir)?;
    let mut digests = std::collections::BTreeMap::new();
    let dir = secrets_dir(state_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(SecretDigests { salt, digests })
        }
        Err(e) => return Err(io_err("list", &dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list", &dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") || !is_plain_name(&name) {
            continue;
        }
        let value = fs::read(entry.path()).map_err(io_err("read", &entry.path()))?;
        if let Some(digest) = secret_digest(&salt, &value) {
            digests.insert(name, digest);
        }
    }
    Ok(SecretDigests { salt, digests })
}

/// The host's salt as hex, made on first use.
fn host_salt(state_dir: &Path) -> Result<String, IoError> {
    let path = state_dir.join(SALT_FILE);
    if let Ok(text) = fs::read_to_string(&path) {
        let text = text.trim();
        if secret_digest(text, b"").is_some() {
            return Ok(text.to_string());
        }
    }
    let mut salt = [0u8; 32];
    let random = Path::new("/dev/urandom");
    io::Read::read_exact(
        &mut fs::File::open(random).map_err(io_err("open", random))?,
        &mut salt,
    )
    .map_err(io_err("read", random))?;
    let hex = blake3::Hash::from_bytes(salt).to_hex().to_string();
    AtomicWrite::durable()
        .mode(0o600)
        .write(&path, hex.as_bytes())?;
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest format, pinned: BLAKE3 keyed with the salt, over the value.
    #[test]
    fn secret_digest_golden_vector() {
        let salt = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        assert_eq!(
            secret_digest(salt, b"s3cret").unwrap(),
            blake3::keyed_hash(&std::array::from_fn(|i| i as u8), b"s3cret")
                .to_hex()
                .to_string()
        );
        assert_eq!(
            secret_digest(salt, b"s3cret").unwrap(),
            "e194d3bce9c4fe16237490cbaf5080b441cd4627dac5e65fbeae333761f46aac"
        );
        assert_eq!(secret_digest("00", b"x"), None);
        assert_eq!(secret_digest(&"zz".repeat(32), b"x"), None);
    }

    #[test]
    fn installed_digests_keep_one_salt_and_follow_the_values() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        write_secret(state, "token", b"one", None).unwrap();
        let first = installed_digests(state).unwrap();
        assert_eq!(
            first.digests["token"],
            secret_digest(&first.salt, b"one").unwrap()
        );
        write_secret(state, "token", b"two", None).unwrap();
        let second = installed_digests(state).unwrap();
        assert_eq!(second.salt, first.salt, "the salt is made once");
        assert_eq!(
            second.digests["token"],
            secret_digest(&first.salt, b"two").unwrap()
        );
        let other = tempfile::tempdir().unwrap();
        assert_ne!(installed_digests(other.path()).unwrap().salt, first.salt);
    }
}

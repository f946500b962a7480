//! The Debian root file system of `root` lab hosts: built once with `mmdebstrap`, cached by its package set.
//!
//! Invariants:
//! - an image is named by the hash of what goes into it (variant, suite,
//!   architecture, package list), so a changed package set is a new image and
//!   an unchanged one is never rebuilt;
//! - packages come from the machine's own apt sources and apt options (no
//!   mirror is named here), read when the image is built;
//! - the cache only ever holds complete images: the tar and its unpacked
//!   tree are made under temporary names and renamed into place, so
//!   an interrupted build leaves nothing that looks complete; builds are
//!   serialised by a lock file, so concurrent `lab up`s build an image once;
//! - the unpacked tree is the read-only lower layer every host of every lab
//!   shares; hosts write only to their own overlay upper dir.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::LabError;

/// Where built images live (`<key>.tar` and the unpacked `<key>/`).
pub const CACHE_DIR: &str = "/var/cache/ferry-lab/roots";

/// What every root host has: an init that boots, and the sshd ferry reaches it by.
/// `dbus` lets `systemctl` and friends behave as on a full host.
pub const PACKAGES: &[&str] = &["dbus", "openssh-server", "systemd-sysv"];

/// The `mmdebstrap` variant: the smallest that keeps apt and essential tools.
const VARIANT: &str = "minbase";

/// One root file system image, named by its package set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootImage {
    /// The Debian suite (the machine's own, e.g. `bookworm`).
    pub suite: String,
    /// The dpkg architecture (`amd64`).
    pub arch: String,
    /// The packages on top of the variant's, sorted.
    pub packages: Vec<String>,
}

impl RootImage {
    /// The image of [`PACKAGES`] for this machine's suite and architecture.
    pub fn for_this_machine() -> Result<RootImage, LabError> {
        let mut packages: Vec<String> = PACKAGES.iter().map(|p| p.to_string()).collect();
        packages.sort();
        Ok(RootImage {
            suite: machine_suite()?,
            arch: super::run("dpkg", &["--print-architecture"])?
                .trim()
                .to_string(),
            packages,
        })
    }

    /// The cache key: hex BLAKE3 of `variant \n suite \n arch \n pkg,pkg,…`, first 16 bytes.
    pub fn key(&self) -> String {
        let text = format!(
            "ferry-lab-root-v1\n{VARIANT}\n{}\n{}\n{}",
            self.suite,
            self.arch,
            self.packages.join(",")
        );
        blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
    }

    /// The image's tar in the cache.
    pub fn tar(&self) -> PathBuf {
        Path::new(CACHE_DIR).join(format!("{}.tar", self.key()))
    }

    /// The image's unpacked tree in the cache: the hosts' shared lower layer.
    pub fn tree(&self) -> PathBuf {
        Path::new(CACHE_DIR).join(self.key())
    }

    /// Builds the tar (unless cached) and unpacks it (unless unpacked); returns the tree.
    pub fn ensure(&self) -> Result<PathBuf, LabError> {
        let tree = self.tree();
        if tree.is_dir() {
            return Ok(tree);
        }
        std::fs::create_dir_all(CACHE_DIR).map_err(|source| LabError::Io {
            path: PathBuf::from(CACHE_DIR),
            source,
        })?;
        // One builder at a time: labs coming up together wait for the first
        // build instead of downloading the same packages side by side.
        let lock_path = Path::new(CACHE_DIR).join(".lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| LabError::Io {
                path: lock_path.clone(),
                source,
            })?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| LabError::Io {
                path: lock_path,
                source: errno.into(),
            })?;
        if tree.is_dir() {
            return Ok(tree);
        }
        let tar = self.tar();
        if !tar.is_file() {
            self.build(&tar)?;
        }
        let tmp =
            Path::new(CACHE_DIR).join(format!(".{}.unpack-{}", self.key(), std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|source| LabError::Io {
            path: tmp.clone(),
            source,
        })?;
        let (tar_text, tmp_text) = (tar.to_string_lossy(), tmp.to_string_lossy());
        super::run(
            "tar",
            &[
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "-xpf",
                &tar_text,
                "-C",
                &tmp_text,
            ],
        )?;
        if std::fs::rename(&tmp, &tree).is_err() {
            // Another `lab up` unpacked it first; theirs is as good.
            let _ = std::fs::remove_dir_all(&tmp);
            if !tree.is_dir() {
                return Err(LabError::Io {
                    path: tree,
                    source: std::io::Error::other("could not move the unpacked image into place"),
                });
            }
        }
        Ok(tree)
    }

    fn build(&self, tar: &Path) -> Result<(), LabError> {
        // mmdebstrap picks the output format from the extension.
        let tmp =
            Path::new(CACHE_DIR).join(format!(".{}.build-{}.tar", self.key(), std::process::id()));
        let mut command = Command::new("mmdebstrap");
        command
            .arg("--quiet")
            .arg(format!("--variant={VARIANT}"))
            .arg(format!("--architectures={}", self.arch))
            .arg(format!("--include={}", self.packages.join(",")));
        for option in apt_options()? {
            command.arg(format!("--aptopt={option}"));
        }
        command.arg(&self.suite).arg(&tmp);
        // Each existing sources file is pasted into the image's apt sources
        // (deb822 or one-line style), so it fetches from where this machine does.
        let sources = apt_source_files();
        if sources.is_empty() {
            return Err(LabError::NoAptSources);
        }
        command.args(&sources);
        let output = command.output().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => LabError::NoMmdebstrap,
            _ => LabError::Spawn {
                program: "mmdebstrap".to_string(),
                source,
            },
        })?;
        if !output.status.success() {
            let _ = std::fs::remove_file(&tmp);
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(LabError::ImageBuild {
                image: tar.to_path_buf(),
                log_tail: tail(&stderr, 20),
            });
        }
        std::fs::rename(&tmp, tar).map_err(|source| LabError::Io {
            path: tar.to_path_buf(),
            source,
        })
    }
}

/// The machine's Debian suite: `VERSION_CODENAME` of `/etc/os-release`.
fn machine_suite() -> Result<String, LabError> {
    let path = Path::new("/etc/os-release");
    let text = std::fs::read_to_string(path).map_err(|source| LabError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| LabError::BadState {
            path: path.to_path_buf(),
            detail: "no VERSION_CODENAME: cannot tell which Debian suite root lab hosts get"
                .to_string(),
        })
}

/// The apt sources files in use: `/etc/apt/sources.list` when it has an
/// entry, and every `*.list`/`*.sources` in `sources.list.d`, sorted.
fn apt_source_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let main = Path::new("/etc/apt/sources.list");
    let has_entry = std::fs::read_to_string(main).is_ok_and(|text| {
        text.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    if has_entry {
        files.push(main.to_path_buf());
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "list" || ext == "sources")
        })
        .collect();
    parts.sort();
    files.extend(parts);
    files
}

/// The machine's apt settings that decide whether its archive is accepted
/// (e.g. `Acquire::Check-Valid-Until "false"` for a snapshot past its
/// Valid-Until), as `apt-config dump` reports them.
fn apt_options() -> Result<Vec<String>, LabError> {
    const HONOURED: &[&str] = &["Acquire::Check-Valid-Until ", "Acquire::Check-Date "];
    let dump = super::run("apt-config", &["dump"])?;
    Ok(dump
        .lines()
        .filter(|line| HONOURED.iter().any(|prefix| line.starts_with(prefix)))
        .map(str::to_string)
        .collect())
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_key_is_pinned_and_follows_the_package_set() {
        let image = RootImage {
            suite: "bookworm".into(),
            arch: "amd64".into(),
            packages: vec![
                "dbus".into(),
                "openssh-server".into(),
                "systemd-sysv".into(),
            ],
        };
        // Golden: blake3("ferry-lab-root-v1\nminbase\nbookworm\namd64\ndbus,openssh-server,systemd-sysv").
        assert_eq!(image.key(), GOLDEN_KEY);
        let mut more = image.clone();
        more.packages.push("busybox".into());
        assert_ne!(more.key(), image.key());
        let mut other_suite = image.clone();
        other_suite.suite = "trixie".into();
        assert_ne!(other_suite.key(), image.key());
    }

    const GOLDEN_KEY: &str = "cb7ca6056bde10954b25bfa4c7a2d029";

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\nd", 2), "c\nd");
        assert_eq!(tail("a", 5), "a");
    }
}

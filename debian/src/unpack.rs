//! Unpacking a package's data archive into a fresh directory, safely and deterministically.
//!
//! Invariants:
//! - Nothing is written outside the destination: absolute paths and `..` are refused, no
//!   entry is written through a symlink (every parent must be a directory this unpack
//!   created), a hard link must name a regular file unpacked before it, and files are created
//!   with `O_CREAT | O_EXCL | O_NOFOLLOW`.
//! - The result depends only on the archive: regular files are `0444`, or `0555` if any execute
//!   bit was set; directories `0755`; symlinks keep their target as data (absolute ones
//!   too, and are listed in the report). Owners, times and setuid/setgid/sticky bits are
//!   dropped (the dropped bits are listed). This is what the store hashes (`store/FORMAT.md`
//!   §1), so the same archive gives the same store object everywhere.
//! - Device nodes and FIFOs are skipped and listed; anything else unknown is refused.
//! - On any refusal or error the destination is removed: nothing is left behind.
//! - The same checks hold whether the tree goes to a directory ([`unpack_tar`]) or into memory
//!   ([`unpack_tar_in_memory`]): both take every entry through one [`Unpacker`], which only
//!   hands checked, relative paths to its sink.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::deb::{DebArchive, DebControl, DebError};

mod memory;
pub use memory::{MemoryEntries, MemoryNode, MemoryTree};

/// The longest entry name the store can hold.
const MAX_NAME_LEN: usize = 255;

/// The most components an entry's path may have. Real packages stay far below (a few dozen);
/// the limit keeps hostile archives from making trees that recursive code (hashing, the
/// store's archive stream, whose limit is 512) could not walk.
pub const MAX_DEPTH: usize = 256;

/// The longest symlink target the store can hold.
const MAX_TARGET_LEN: usize = 4095;

/// What an unpack did, beyond creating the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Regular files written (hard links not counted).
    pub files: u64,
    /// Bytes of regular files written.
    pub bytes: u64,
    /// Directories created.
    pub directories: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created (each to a file inside the tree).
    pub hard_links: u64,
    /// Entries whose setuid, setgid or sticky bits were dropped, with their original mode.
    pub dropped_mode_bits: Vec<(PathBuf, u32)>,
    /// Device nodes and FIFOs that were skipped.
    pub skipped: Vec<(PathBuf, SpecialKind)>,
    /// Symlinks whose target is absolute, with that target (kept as it is: it points outside
    /// the object, e.g. libc6's `lib64/ld-linux-x86-64.so.2`).
    pub absolute_symlinks: Vec<(PathBuf, PathBuf)>,
}

/// A kind of archive entry the store cannot hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialKind {
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A FIFO (named pipe).
    Fifo,
}

/// Why an archive could not be unpacked (the destination is gone again).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The destination exists already.
    #[error("cannot unpack into {}: it exists already", dest.display())]
    DestinationExists {
        /// The destination given.
        dest: PathBuf,
    },
    /// The `.deb` could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The `.deb`.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The `.deb` is malformed.
    #[error("cannot read {}: {source}", path.display())]
    Deb {
        /// The `.deb`.
        path: PathBuf,
        /// What is wrong.
        source: DebError,
    },
    /// The tar stream is damaged or truncated.
    #[error("cannot read the data archive: {source}")]
    Tar {
        /// The error.
        source: io::Error,
    },
    /// Creating something in the destination failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `create file`.
        action: &'static str,
        /// The path in the destination.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An entry with an absolute path.
    #[error("refusing entry `{}`: its path is absolute", path.display())]
    AbsolutePath {
        /// The entry's path as archived.
        path: PathBuf,
    },
    /// An entry with a `..` component.
    #[error("refusing entry `{}`: its path contains `..`", path.display())]
    ParentComponent {
        /// The entry's path as archived.
        path: PathBuf,
    },
    /// An entry inside a directory that is a symlink.
    #[error("refusing entry `{}`: it lies under the symlink `{}`", path.display(), symlink.display())]
    ThroughSymlink {
        /// The entry's path.
        path: PathBuf,
        /// The symlink it would be written through.
        symlink: PathBuf,
    },
    /// An entry inside something that is not a directory.
    #[error("refusing entry `{}`: `{}` is not a directory", path.display(), parent.display())]
    NotADirectory {
        /// The entry's path.
        path: PathBuf,
        /// The ancestor that is a file.
        parent: PathBuf,
    },
    /// A second entry for a path that already exists (other than a directory again).
    #[error("refusing entry `{}`: the archive has that path twice", path.display())]
    Duplicate {
        /// The entry's path.
        path: PathBuf,
    },
    /// A hard link whose target is not a regular file unpacked before it.
    #[error("refusing hard link `{}` → `{}`: {reason}", path.display(), target.display())]
    BadHardLink {
        /// The link's path.
        path: PathBuf,
        /// Its target as archived.
        target: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A symlink the store cannot hold.
    #[error("refusing symlink `{}`: {reason}", path.display())]
    BadSymlink {
        /// The symlink's path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A path component longer than the store allows.
    #[error("refusing entry `{}`: a name is longer than 255 bytes", path.display())]
    NameTooLong {
        /// The entry's path.
        path: PathBuf,
    },
    /// A path with more components than [`MAX_DEPTH`].
    #[error("refusing an entry whose path has {depth} components (at most {MAX_DEPTH} are allowed): `{}…`", shortened(path))]
    TooDeep {
        /// The entry's path as archived.
        path: PathBuf,
        /// How many components it has.
        depth: usize,
    },
    /// An in-memory unpack ([`unpack_tar_in_memory`]) would hold more than its limit.
    #[error("the unpacked files are larger than {limit} bytes, the most unpacked in memory")]
    OverMemoryLimit {
        /// The limit given, in bytes.
        limit: u64,
    },
    /// An entry type that is not a file, directory, link, device or FIFO.
    #[error("refusing entry `{}`: unsupported tar entry type {kind}", path.display())]
    UnsupportedEntry {
        /// The entry's path.
        path: PathBuf,
        /// The tar type byte, e.g. `S` for GNU sparse.
        kind: char,
    },
}

/// Reads the `.deb` at `deb` and unpacks its data archive into `dest` (which must not exist;
/// its parent must). Returns the control fields and the report.
pub fn unpack_deb(deb: &Path, dest: &Path) -> Result<(DebControl, UnpackReport), UnpackError> {
    let file = File::open(deb).map_err(|source| UnpackError::Open {
        path: deb.to_path_buf(),
        source,
    })?;
    let deb_error = |source| UnpackError::Deb {
        path: deb.to_path_buf(),
        source,
    };
    let mut archive = DebArchive::new(io::BufReader::new(file)).map_err(deb_error)?;
    let control = archive.control().clone();
    let (_, data) = archive.data().map_err(deb_error)?;
    let report = unpack_tar(data, dest)?;
    Ok((control, report))
}

/// The first 64 bytes of a long path, for a message.
fn shortened(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
}

/// Unpacks the tar stream `reader` into memory, with the same checks and the same result as
/// [`unpack_tar`] (hard links become copies, as the store keeps them anyway). Refuses with
/// [`UnpackError::OverMemoryLimit`] once the files' contents would exceed `limit` bytes.
pub fn unpack_tar_in_memory(
    reader: impl Read,
    limit: u64,
) -> Result<(MemoryTree, UnpackReport), UnpackError> {
    let mut unpacker = Unpacker {
        sink: memory::MemorySink::new(limit),
        kinds: HashMap::new(),
        report: UnpackReport::default(),
    };
    unpacker.run(reader)?;
    Ok((unpacker.sink.into_tree(), unpacker.report))
}

/// Unpacks the tar stream `reader` into `dest`, which must not exist (its parent must). On
/// error, `dest` is removed again.
pub fn unpack_tar(reader: impl Read, dest: &Path) -> Result<UnpackReport, UnpackError> {
    match std::fs::DirBuilder::new().mode(0o755).create(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(UnpackError::DestinationExists {
                dest: dest.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(UnpackError::Io {
                action: "create directory",
                path: dest.to_path_buf(),
                source,
            })
        }
    }
    let mut unpacker = Unpacker {
        sink: DirSink { dest },
        kinds: HashMap::new(),
        report: UnpackReport::default(),
    };
    match unpacker.run(reader) {
        Ok(()) => Ok(unpacker.report),
        Err(error) => {
            // Best effort: the tree holds only what this unpack made (directories 0755), so
            // removal succeeds unless the file system itself fails, which `error` explains.
            let _ = std::fs::remove_dir_all(dest);
            Err(error)
        }
    }
}

/// What a path of the tree is, as this unpack made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
    Symlink,
}

/// Where an [`Unpacker`] puts what passed its checks. Paths are relative to the tree's root,
/// plain (no `.`, `..` or empty components), and their parents are directories made before.
trait Sink {
    /// Makes the directory `relative`.
    fn create_dir(&mut self, relative: &Path) -> Result<(), UnpackError>;
    /// Makes the regular file `relative` from `content` (`size` bytes, as the archive says);
    /// returns the bytes written.
    fn write_file(
        &mut self,
        relative: &Path,
        content: &mut dyn Read,
        size: u64,
        executable: bool,
    ) -> Result<u64, UnpackError>;
    /// Makes the symlink `relative` → `target` (checked: not empty, not too long).
    fn symlink(&mut self, relative: &Path, target: &[u8]) -> Result<(), UnpackError>;
    /// Makes `relative` a hard link to (or a copy of) the regular file `source`, made before.
    fn hard_link(&mut self, relative: &Path, source: &Path) -> Result<(), UnpackError>;
}

/// A [`Sink`] writing into a directory made for this unpack.
struct DirSink<'a> {
    dest: &'a Path,
}

impl Sink for DirSink<'_> {
    fn create_dir(&mut self, relative: &Path) -> Result<(), UnpackError> {
        let target = self.dest.join(relative);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&target)
            .map_err(io_error("create directory", &target))?;
        // The umask may have narrowed the mode; the tree must not depend on it.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .map_err(io_error("set the mode of", &target))
    }

    fn write_file(
        &mut self,
        relative: &Path,
        content: &mut dyn Read,
        _size: u64,
        executable: bool,
    ) -> Result<u64, UnpackError> {
        write_file(content, &self.dest.join(relative), executable)
    }

    fn symlink(&mut self, relative: &Path, target: &[u8]) -> Result<(), UnpackError> {
        let path = self.dest.join(relative);
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
            .map_err(io_error("create symlink", &path))
    }

    fn hard_link(&mut self, relative: &Path, source: &Path) -> Result<(), UnpackError> {
        let target = self.dest.join(relative);
        std::fs::hard_link(self.dest.join(source), &target)
            .map_err(io_error("create hard link", &target))
    }
}

/// The state of one unpack.
struct Unpacker<S> {
    sink: S,
    /// Every path created, relative to the root (the root is not listed).
    kinds: HashMap<PathBuf, Kind>,
    report: UnpackReport,
}

impl<S: Sink> Unpacker<S> {
    /// Unpacks every entry of the stream.
    fn run(&mut self, reader: impl Read) -> Result<(), UnpackError> {
        let tar_error = |source| UnpackError::Tar { source };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(tar_error)? {
            let entry = entry.map_err(tar_error)?;
            self.entry(entry)?;
        }
        Ok(())
    }

    /// Unpacks one entry.
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let relative = normalize(&raw)?;
        if relative.as_os_str().is_empty() {
            // The archive's root (`./`): it is `dest` itself.
            return Ok(());
        }
        self.make_parents(&relative)?;
        let existing = self.kinds.get(&relative).copied();
        let mode = entry
            .header()
            .mode()
            .map_err(|source| UnpackError::Tar { source })?;
        let special = match kind {
            tar::EntryType::Char => Some(SpecialKind::CharDevice),
            tar::EntryType::Block => Some(SpecialKind::BlockDevice),
            tar::EntryType::Fifo => Some(SpecialKind::Fifo),
            _ => None,
        };
        if let Some(special) = special {
            self.report.skipped.push((relative, special));
            return Ok(());
        }
        match (kind, existing) {
            (tar::EntryType::Directory, Some(Kind::Directory)) => return Ok(()),
            (_, Some(_)) => return Err(UnpackError::Duplicate { path: relative }),
            _ => {}
        }
        if mode & 0o7000 != 0 && !matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            self.report.dropped_mode_bits.push((relative.clone(), mode));
        }
        match kind {
            tar::EntryType::Directory => {
                self.create_dir(&relative)?;
                self.kinds.insert(relative, Kind::Directory);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let written =
                    self.sink
                        .write_file(&relative, &mut entry, size, mode & 0o111 != 0)?;
                self.report.files += 1;
                self.report.bytes += written;
                self.kinds.insert(relative, Kind::File);
            }
            tar::EntryType::Symlink => {
                let link = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.symlink(relative, &link)?;
            }
            tar::EntryType::Link => {
                let link = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hard_link(relative, &link)?;
            }
            other => {
                return Err(UnpackError::UnsupportedEntry {
                    path: relative,
                    kind: other.as_byte() as char,
                })
            }
        }
        Ok(())
    }

    /// Creates the missing ancestors of `relative` as directories; refuses an ancestor that is
    /// a symlink or a file.
    fn make_parents(&mut self, relative: &Path) -> Result<(), UnpackError> {
        let mut ancestors: Vec<&Path> = relative
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        ancestors.reverse();
        for ancestor in ancestors {
            match self.kinds.get(ancestor) {
                Some(Kind::Directory) => {}
                Some(Kind::Symlink) => {
                    return Err(UnpackError::ThroughSymlink {
                        path: relative.to_path_buf(),
                        symlink: ancestor.to_path_buf(),
                    })
                }
                Some(Kind::File) => {
                    return Err(UnpackError::NotADirectory {
                        path: relative.to_path_buf(),
                        parent: ancestor.to_path_buf(),
                    })
                }
                None => {
                    self.create_dir(ancestor)?;
                    self.kinds.insert(ancestor.to_path_buf(), Kind::Directory);
                }
            }
        }
        Ok(())
    }

    /// Creates one directory, `0755`.
    fn create_dir(&mut self, relative: &Path) -> Result<(), UnpackError> {
        self.sink.create_dir(relative)?;
        self.report.directories += 1;
        Ok(())
    }

    /// Creates symlink `relative` → `link` (kept as data, never followed).
    fn symlink(&mut self, relative: PathBuf, link: &[u8]) -> Result<(), UnpackError> {
        let bad = |reason| UnpackError::BadSymlink {
            path: relative.clone(),
            reason,
        };
        if link.is_empty() {
            return Err(bad("its target is empty"));
        }
        if link.len() > MAX_TARGET_LEN {
            return Err(bad("its target is longer than 4095 bytes"));
        }
        self.sink.symlink(&relative, link)?;
        let link = Path::new(OsStr::from_bytes(link));
        if link.is_absolute() {
            self.report
                .absolute_symlinks
                .push((relative.clone(), link.to_path_buf()));
        }
        self.report.symlinks += 1;
        self.kinds.insert(relative, Kind::Symlink);
        Ok(())
    }

    /// Creates hard link `relative` to the regular file `link` unpacked before.
    fn hard_link(&mut self, relative: PathBuf, link: &[u8]) -> Result<(), UnpackError> {
        let link = PathBuf::from(OsStr::from_bytes(link));
        let bad = |reason| UnpackError::BadHardLink {
            path: relative.clone(),
            target: link.clone(),
            reason,
        };
        let source = match normalize(&link) {
            Ok(source) => source,
            Err(_) => return Err(bad("its target is absolute or contains `..`")),
        };
        if self.kinds.get(&source) != Some(&Kind::File) {
            return Err(bad(
                "its target is not a regular file earlier in the archive",
            ));
        }
        self.sink.hard_link(&relative, &source)?;
        self.report.hard_links += 1;
        self.kinds.insert(relative, Kind::File);
        Ok(())
    }
}

/// An archive path made relative and plain: `./` and `.` components dropped; refuses
/// absolute paths, `..`, names over 255 bytes and more than [`MAX_DEPTH`] components.
fn normalize(raw: &Path) -> Result<PathBuf, UnpackError> {
    let bytes = raw.as_os_str().as_bytes();
    if bytes.starts_with(b"/") {
        return Err(UnpackError::AbsolutePath {
            path: raw.to_path_buf(),
        });
    }
    let depth = bytes
        .split(|&b| b == b'/')
        .filter(|c| !matches!(*c, b"" | b"."))
        .count();
    if depth > MAX_DEPTH {
        return Err(UnpackError::TooDeep {
            path: raw.to_path_buf(),
            depth,
        });
    }
    let mut relative = PathBuf::new();
    for component in bytes.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                return Err(UnpackError::ParentComponent {
                    path: raw.to_path_buf(),
                })
            }
            name if name.len() > MAX_NAME_LEN => {
                return Err(UnpackError::NameTooLong {
                    path: raw.to_path_buf(),
                })
            }
            name => relative.push(OsStr::from_bytes(name)),
        }
    }
    Ok(relative)
}

/// Writes a regular file's content to `target` (created new, never through a symlink) and
/// gives it mode `0444` or `0555`. Returns the bytes written.
fn write_file(
    content: &mut (impl Read + ?Sized),
    target: &Path,
    executable: bool,
) -> Result<u64, UnpackError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(io_error("create file", target))?;
    let written = io::copy(content, &mut file).map_err(|source| UnpackError::Tar { source })?;
    let mode = if executable { 0o555 } else { 0o444 };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_error("set the mode of", target))?;
    Ok(written)
}

/// A closure making an [`UnpackError::Io`].
fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UnpackError {
    let path = path.to_path_buf();
    move |source| UnpackError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_or_refused() {
        let n = |s: &str| normalize(Path::new(s));
        assert_eq!(n("./usr/bin/x").unwrap(), PathBuf::from("usr/bin/x"));
        assert_eq!(n("./").unwrap(), PathBuf::new());
        assert_eq!(n("usr//./lib/").unwrap(), PathBuf::from("usr/lib"));
        assert!(matches!(
            n("/etc/passwd"),
            Err(UnpackError::AbsolutePath { .. })
        ));
        assert!(matches!(
            n("./a/../../b"),
            Err(UnpackError::ParentComponent { .. })
        ));
        assert!(matches!(
            n(&"x".repeat(256)),
            Err(UnpackError::NameTooLong { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn normalized_paths_stay_inside(raw in "[a-z./]{0,30}") {
            if let Ok(relative) = normalize(Path::new(&raw)) {
                proptest::prop_assert!(relative.is_relative());
                proptest::prop_assert!(relative
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}

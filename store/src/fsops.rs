//! File-system primitives with the store's discipline: `*at` calls relative to directory handles
//! (nothing is ever written through a symlink), normalized modes and mtimes, durability.
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::durable::{AtomicWrite, Fsync};
use crate::error::{errno, Result, StoreError};

/// Every store object's files, directories and symlinks carry this modification time.
pub const NORMALIZED_MTIME: i64 = 1;

/// Mode of a regular file: executable or not, nothing else.
pub fn file_mode(executable: bool) -> u32 {
    if executable {
        0o555
    } else {
        0o444
    }
}

/// Mode of every directory in the store.
pub const DIRECTORY_MODE: u32 = 0o555;

fn mtime() -> TimeSpec {
    TimeSpec::new(NORMALIZED_MTIME, 0)
}

/// Sets the normalized mode and mtime on an open file or directory.
pub fn normalize_fd(fd: &impl AsRawFd, mode: u32, path: &Path) -> Result<()> {
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
        .map_err(|e| StoreError::io("set the mode of", path)(errno(e)))?;
    nix::sys::stat::futimens(fd.as_raw_fd(), &mtime(), &mtime())
        .map_err(|e| StoreError::io("set the mtime of", path)(errno(e)))
}

/// An open directory; every entry is created relative to it with `O_NOFOLLOW`/`O_EXCL`
/// semantics, so a name can never resolve through a symlink or overwrite anything.
pub struct DirHandle {
    fd: OwnedFd,
    /// For error messages only; never used to open anything.
    display: std::path::PathBuf,
}

impl DirHandle {
    /// Opens an existing directory (not following a final symlink).
    pub fn open(path: &Path) -> Result<DirHandle> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StoreError::io("open directory", path)(errno(e)))?;
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(DirHandle {
            fd,
            display: path.to_path_buf(),
        })
    }

    fn child_display(&self, name: &[u8]) -> std::path::PathBuf {
        self.display.join(OsStr::from_bytes(name))
    }

    /// Creates a new regular file `name` (must not exist), open for writing.
    pub fn create_file(&self, name: &[u8]) -> Result<File> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(
            Some(self.fd.as_raw_fd()),
            OsStr::from_bytes(name),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| StoreError::io("create", self.child_display(name))(errno(e)))?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Creates an unnamed regular file on this directory's file system (`O_TMPFILE`), open
    /// for writing: it has no name until [`DirHandle::link_unnamed`] gives it one, and it
    /// vanishes if the process dies first, so it can never be left behind as debris. `None`
    /// when the file system does not support unnamed files.
    pub fn create_unnamed_file(&self) -> Result<Option<File>> {
        let flags = OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        match nix::fcntl::openat(
            Some(self.fd.as_raw_fd()),
            ".",
            flags,
            Mode::from_bits_truncate(0o600),
        ) {
            // SAFETY: `openat` just returned this descriptor and nothing else owns it.
            Ok(fd) => Ok(Some(unsafe { File::from_raw_fd(fd) })),
            Err(
                nix::errno::Errno::EOPNOTSUPP
                | nix::errno::Errno::EISDIR
                | nix::errno::Errno::EINVAL
                | nix::errno::Errno::ENOENT,
            ) => Ok(None),
            Err(e) => Err(StoreError::io("create an unnamed file in", &self.display)(
                errno(e),
            )),
        }
    }

    /// Gives the unnamed `file` (from [`DirHandle::create_unnamed_file`]) the name `name` in
    /// this directory; fails with `AlreadyExists` if the name is taken.
    pub fn link_unnamed(&self, file: &File, name: &[u8]) -> std::io::Result<()> {
        let name = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
        // SAFETY: plain system calls on descriptors owned by `file` and `self`, with
        // NUL-terminated strings that outlive the calls.
        let linked = unsafe {
            libc::linkat(
                file.as_raw_fd(),
                c"".as_ptr(),
                self.fd.as_raw_fd(),
                name.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        if linked == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if !matches!(error.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) {
            return Err(error);
        }
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the descriptor's /proc link works for all.
        let proc_link = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(std::io::Error::other)?;
        // SAFETY: as above.
        let linked = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_link.as_ptr(),
                self.fd.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if linked == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// True when something is named `name` here (anything but a definite "no such entry"
    /// counts as present: callers use this to skip a more expensive check, never to trust).
    pub fn has_entry(&self, name: &[u8]) -> bool {
        !matches!(
            nix::sys::stat::fstatat(
                Some(self.fd.as_raw_fd()),
                OsStr::from_bytes(name),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
            Err(nix::errno::Errno::ENOENT)
        )
    }

    /// Creates a new directory `name` (must not exist) and opens it.
    pub fn create_dir(&self, name: &[u8]) -> Result<DirHandle> {
        let display = self.child_display(name);
        nix::sys::stat::mkdirat(
            Some(self.fd.as_raw_fd()),
            OsStr::from_bytes(name),
            Mode::from_bits_truncate(0o700),
        )
        .map_err(|e| StoreError::io("create directory", &display)(errno(e)))?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(
            Some(self.fd.as_raw_fd()),
            OsStr::from_bytes(name),
            flags,
            Mode::empty(),
        )
        .map_err(|e| StoreError::io("open directory", &display)(errno(e)))?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(DirHandle { fd, display })
    }

    /// Creates a symlink `name` → `target` (the target is data; it is never followed) with the
    /// normalized mtime.
    pub fn create_symlink(&self, name: &[u8], target: &[u8]) -> Result<()> {
        let display = self.child_display(name);
        nix::unistd::symlinkat(
            OsStr::from_bytes(target),
            Some(self.fd.as_raw_fd()),
            OsStr::from_bytes(name),
        )
        .map_err(|e| StoreError::io("create symlink", &display)(errno(e)))?;
        nix::sys::stat::utimensat(
            Some(self.fd.as_raw_fd()),
            OsStr::from_bytes(name),
            &mtime(),
            &mtime(),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| StoreError::io("set the mtime of", &display)(errno(e)))
    }

    /// Seals the directory: mode 0555, mtime 1. Call after its last entry was created.
    pub fn seal(&self) -> Result<()> {
        normalize_fd(&self.fd, DIRECTORY_MODE, &self.display)
    }

    pub fn fsync(&self) -> Result<()> {
        nix::unistd::fsync(self.fd.as_raw_fd())
            .map_err(|e| StoreError::io("fsync", &self.display)(errno(e)))
    }

    /// Flushes the whole file system this directory lives on: one call instead of an fsync per
    /// file, which is what keeps big ingests fast while staying durable.
    pub fn syncfs(&self) -> Result<()> {
        nix::unistd::syncfs(self.fd.as_raw_fd())
            .map_err(|e| StoreError::io("syncfs", &self.display)(errno(e)))
    }
}

/// fsyncs a directory so that renames and unlinks in it are durable.
pub fn fsync_dir(path: &Path) -> Result<()> {
    DirHandle::open(path)?.fsync()
}

/// Writes `bytes` to `dir/name` atomically: a temporary file, optionally fsynced, renamed into place.
/// The caller fsyncs `dir` (once for many files) to make the rename durable.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8], fsync: bool) -> Result<()> {
    let sync = if fsync { Fsync::File } else { Fsync::Nothing };
    AtomicWrite::durable()
        .sync(sync)
        .write(&dir.join(name), bytes)
        .map_err(|e| {
            // The store's own wording for the last step.
            let action = match e.action {
                "rename onto" => "rename into place",
                other => other,
            };
            StoreError::io(action, e.path)(e.source)
        })
}

/// Removes a file, symlink or whole tree, first making read-only store directories writable
/// (needed when not running as root). A missing path is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("inspect", path)(e)),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path).map_err(StoreError::io("remove", path));
    }
    for entry in walkdir::WalkDir::new(path).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
        }
    }
    std::fs::remove_dir_all(path).map_err(StoreError::io("remove", path))
}

/// Seconds since the Unix epoch (registration times).
pub fn now_unix() -> u64 {
    crate::durable::unix_now_secs()
}

/// Moves a tree, copying across file systems when a rename cannot (the quarantine may live on
/// another file system than the store).
pub fn move_tree(source: &Path, target: &Path) -> Result<()> {
    unseal_root(source);
    match std::fs::rename(source, target) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
        Err(e) => return Err(StoreError::io("move", source)(e)),
    }
    for entry in walkdir::WalkDir::new(source).follow_links(false) {
        let entry = entry.map_err(|e| StoreError::io("read", source)(e.into()))?;
        let relative = entry.path().strip_prefix(source).unwrap_or(Path::new(""));
        let destination = if relative.as_os_str().is_empty() {
            target.to_path_buf()
        } else {
            target.join(relative)
        };
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&destination)
                .map_err(StoreError::io("create directory", &destination))?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path())
                .map_err(StoreError::io("read symlink", entry.path()))?;
            std::os::unix::fs::symlink(link, &destination)
                .map_err(StoreError::io("create symlink", &destination))?;
        } else {
            std::fs::copy(entry.path(), &destination)
                .map_err(StoreError::io("copy", entry.path()))?;
        }
    }
    remove_tree(source)
}

/// Moving a directory to another parent rewrites its `..` entry, which needs write permission
/// on it unless running as root: open up the root of a sealed tree before a rename.
fn unseal_root(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        // If this fails, the rename reports the real problem.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
    }
}

/// Renames a sealed object into place, replacing debris (an unregistered leftover of a crash)
/// at the destination; the caller fsyncs the destination's directory. Works for unprivileged
/// users too. The common case is a single `rename`.
pub fn move_sealed(source: &Path, destination: &Path) -> Result<()> {
    let retry = match std::fs::rename(source, destination) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match retry.raw_os_error() {
        // Something is in the way (a directory onto a file, a file onto a directory, or onto
        // a non-empty directory): debris, since the caller checked the path is not valid.
        Some(libc::EISDIR | libc::ENOTDIR | libc::ENOTEMPTY | libc::EEXIST) => {
            remove_tree(destination)?;
            match std::fs::rename(source, destination) {
                Ok(()) => Ok(()),
                // A sealed directory for an unprivileged user: the general path below.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                    move_sealed(source, destination)
                }
                Err(e) => Err(StoreError::io("move into the store", destination)(e)),
            }
        }
        // Moving a directory to another parent rewrites its `..` entry, which needs write
        // permission on it unless running as root: open it up, move it, seal it again.
        Some(libc::EACCES | libc::EPERM)
            if std::fs::symlink_metadata(source).is_ok_and(|m| m.is_dir()) =>
        {
            unseal_root(source);
            if std::fs::symlink_metadata(destination).is_ok() {
                remove_tree(destination)?;
            }
            std::fs::rename(source, destination)
                .map_err(StoreError::io("move into the store", destination))?;
            // chmod does not touch the mtime, which stays at NORMALIZED_MTIME.
            let root = DirHandle::open(destination)?;
            nix::sys::stat::fchmod(
                root.fd.as_raw_fd(),
                Mode::from_bits_truncate(DIRECTORY_MODE),
            )
            .map_err(|e| StoreError::io("set the mode of", destination)(errno(e)))?;
            root.fsync()
        }
        _ => Err(StoreError::io("move into the store", destination)(retry)),
    }
}

/// The alignment of buffers, file offsets and lengths that writes bypassing the page cache
/// (`O_DIRECT`) need: the largest logical block size of common disks.
pub const DIRECT_ALIGN: usize = 4096;

/// Writes a new file's content bypassing the page cache (`O_DIRECT`) while the writes stay
/// block-aligned, and through the page cache after that. Copying a big file into the page
/// cache costs more CPU than hashing it on small machines, and its dirty pages then all wait
/// for the final `syncfs`; direct writes cost neither (the disk reads the buffer itself) and
/// overlap with receiving the rest. Durability is unchanged: the store still syncs before it
/// registers. A file system that refuses `O_DIRECT` (tmpfs, some FUSE) gets plain writes.
pub struct DirectWriter {
    file: File,
    direct: bool,
    /// Bytes written so far (the file was empty and is only appended to).
    written: u64,
}

impl DirectWriter {
    /// Takes a file just created (empty, at offset 0) and, if `direct`, turns on direct writes
    /// when the file system accepts them (small files are better written plainly: a direct
    /// write waits for the disk).
    pub fn new(file: File, direct: bool) -> DirectWriter {
        let direct = direct && set_direct(&file, true);
        DirectWriter {
            file,
            direct,
            written: 0,
        }
    }

    /// Whether the next aligned write bypasses the page cache.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Appends `data`. The block-aligned prefix of an aligned buffer is written directly; an
    /// unaligned rest (a file's last bytes) switches the file to plain writes for good, as the
    /// file offset is no longer aligned after it.
    pub fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut rest = data;
        if self.direct {
            let aligned = if rest.as_ptr().align_offset(DIRECT_ALIGN) == 0 {
                rest.len() - rest.len() % DIRECT_ALIGN
            } else {
                0
            };
            let before = self.written;
            match self.file.write_all(&rest[..aligned]) {
                Ok(()) => rest = &rest[aligned..],
                // A device with larger blocks, or a short write that left the offset
                // unaligned: what the kernel did not take continues through the page cache.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    let position = std::io::Seek::stream_position(&mut self.file)?;
                    let done = usize::try_from(position.saturating_sub(before)).unwrap_or(0);
                    rest = &rest[done.min(aligned)..];
                }
                Err(e) => return Err(e),
            }
            self.written += (data.len() - rest.len()) as u64;
            if !rest.is_empty() {
                self.direct = false;
                set_direct(&self.file, false);
            }
        }
        self.file.write_all(rest)?;
        self.written += rest.len() as u64;
        Ok(())
    }

    /// The file, for setting its mode and times.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file, when writing is done.
    pub fn into_file(self) -> File {
        self.file
    }
}

/// Turns `O_DIRECT` on or off for `file`; false when the file system refuses it.
fn set_direct(file: &File, on: bool) -> bool {
    let fd = file.as_raw_fd();
    let Ok(flags) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL) else {
        return false;
    };
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_DIRECT, on);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// Writes `data` through a `DirectWriter` in `chunk`-sized pieces from a buffer starting
    /// `misalign` bytes past an aligned address; returns what the file holds.
    fn write_through(data: &[u8], chunk: usize, misalign: usize) -> (Vec<u8>, bool, bool) {
        let dir = tempfile::tempdir().unwrap();
        let handle = DirHandle::open(dir.path()).unwrap();
        let mut writer = DirectWriter::new(handle.create_file(b"f").unwrap(), true);
        let direct_at_start = writer.is_direct();
        let mut storage = vec![0u8; chunk + 2 * DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN) + misalign;
        for piece in data.chunks(chunk) {
            storage[start..start + piece.len()].copy_from_slice(piece);
            writer
                .write_all(&storage[start..start + piece.len()])
                .unwrap();
        }
        let direct_at_end = writer.is_direct();
        drop(writer);
        (
            std::fs::read(dir.path().join("f")).unwrap(),
            direct_at_start,
            direct_at_end,
        )
    }

    #[test]
    fn direct_writer_keeps_every_byte_of_an_unaligned_tail() {
        let data = content(3 * (1 << 20) + 123);
        let (back, _, direct_at_end) = write_through(&data, 1 << 20, 0);
        assert_eq!(back, data);
        // The tail is not block-sized, so the file ends in plain writes whatever the file
        // system (tmpfs may refuse direct writes from the start).
        assert!(!direct_at_end);
    }

    #[test]
    fn direct_writer_stays_direct_on_aligned_chunks_where_supported() {
        let data = content(4 * (1 << 20));
        let dir = tempfile::tempdir().unwrap();
        let supported = set_direct(&File::create(dir.path().join("probe")).unwrap(), true);
        let (back, direct_at_start, direct_at_end) = write_through(&data, 1 << 20, 0);
        assert_eq!(back, data);
        assert_eq!(direct_at_start, supported);
        assert_eq!(direct_at_end, supported);
    }

    #[test]
    fn direct_writer_falls_back_for_an_unaligned_buffer() {
        let data = content((1 << 20) + 5000);
        let (back, _, direct_at_end) = write_through(&data, 1 << 20, 3);
        assert_eq!(back, data);
        assert!(!direct_at_end);
    }
}

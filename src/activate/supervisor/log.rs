//! Per-service log files with size-based rotation, fed by each service's
//! output and the daemon's own event lines.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Size-based log rotation: `<svc>.log` is moved to `<svc>.log.1` (and
/// `.1` to `.2`, …) before a write would make it larger than `max_bytes`;
/// `keep` rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Rotate before a write would make the log larger than this.
    pub max_bytes: u64,
    /// How many rotated files are kept.
    pub keep: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// A log file with size-based rotation, shared by a service's output reader
/// and the supervisor's own event lines about it.
pub(super) struct LogFile {
    path: PathBuf,
    config: LogConfig,
    file: Option<File>,
    size: u64,
}

impl LogFile {
    pub(super) fn new(path: PathBuf, config: LogConfig) -> LogFile {
        LogFile {
            path,
            config,
            file: None,
            size: 0,
        }
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        // Logging is best effort: a full disk must not take services down.
        let _ = self.try_write(bytes);
    }

    fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        // Split writes at the size limit, so no file ever grows beyond it
        // however large one read from the service's pipe was.
        let max = self.config.max_bytes.max(1);
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.size >= max {
                self.rotate()?;
            }
            let room = usize::try_from(max - self.size).unwrap_or(usize::MAX);
            let (now, later) = rest.split_at(room.min(rest.len()));
            if let Some(file) = self.file.as_mut() {
                file.write_all(now)?;
            }
            self.size += now.len() as u64;
            rest = later;
        }
        Ok(())
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.config.keep == 0 {
            fs::remove_file(&self.path).or_else(ignore_not_found)?;
        } else {
            fs::remove_file(numbered(self.config.keep)).or_else(ignore_not_found)?;
            for n in (1..self.config.keep).rev() {
                fs::rename(numbered(n), numbered(n + 1)).or_else(ignore_not_found)?;
            }
            fs::rename(&self.path, numbered(1)).or_else(ignore_not_found)?;
        }
        self.open()
    }
}

pub(super) fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

pub(super) fn copy_output(mut reader: File, log: Arc<Mutex<LogFile>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

//! Fetching: downloads the files a lock names (`pool/…/x.deb` under a repository URI), in
//! parallel, into a cache where only verified files ever appear.
//!
//! Invariants:
//! - `<cache>/<sha256>.deb` exists only after its size and sha256 were checked against what the
//!   caller expected: bytes stream into a `.partial-*` temp file in the cache dir while being
//!   hashed, and only a verified file is renamed into place. A failed fetch leaves nothing.
//! - A file already in the cache (size and sha256 right) is not fetched again, so a complete
//!   cache needs no network at all.
//! - Nothing here prints: progress goes to a [`FetchObserver`].
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest as _, Sha256 as Sha256Hasher};

mod digest;
pub use digest::{BadSha256, Sha256, Sha256Reader};

/// How many files are fetched at once unless the caller says otherwise.
pub const DEFAULT_JOBS: usize = 8;

/// Bytes read per step (and so the progress granularity).
pub(crate) const CHUNK: usize = 64 * 1024;

/// One file to fetch: what a lock records for a package, plus the repository it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchItem {
    /// The repository's base URI as apt's sources give it (`URIs:`), e.g. `http://host/debian`
    /// or `file:///srv/repo`.
    pub base_uri: String,
    /// The path inside the repository (`Filename:` of `Packages`), e.g. `pool/main/b/x.deb`.
    pub filename: String,
    /// The expected sha256 of the file.
    pub sha256: Sha256,
    /// The expected size in bytes.
    pub size: u64,
}

impl FetchItem {
    /// The full URI of the file: the base URI, `/`, then the filename (percent-encoded where a
    /// URL needs it). Refuses filenames that could leave the repository.
    pub fn uri(&self) -> Result<String, FetchError> {
        check_filename(&self.filename)?;
        let base = self.base_uri.trim_end_matches('/');
        if base.starts_with("file:") {
            return Ok(format!("{base}/{}", self.filename));
        }
        Ok(format!("{base}/{}", percent_encode_path(&self.filename)))
    }
}

/// Where a fetched file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchSource {
    /// It was in the cache already (size and sha256 checked).
    Cached,
    /// It was downloaded (or copied from a `file:` repository) and verified.
    Downloaded,
}

/// A verified file in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedFile {
    /// `<cache>/<sha256>.deb`.
    pub path: PathBuf,
    /// Its sha256 (equal to the expected one).
    pub sha256: Sha256,
    /// Its size (equal to the expected one).
    pub size: u64,
    /// Whether it had to be fetched.
    pub source: FetchSource,
}

/// Receives progress of a [`Fetcher::fetch_all`]; called from the fetching threads. `index` is
/// the item's position in the list given. All methods do nothing by default.
pub trait FetchObserver: Sync {
    /// Item `index` is being looked up (cache first, then its repository).
    fn started(&self, index: usize, item: &FetchItem) {
        let _ = (index, item);
    }
    /// `done` of `total` bytes of item `index` have arrived.
    fn progress(&self, index: usize, done: u64, total: u64) {
        let _ = (index, done, total);
    }
    /// Item `index` is in the cache, verified.
    fn finished(&self, index: usize, file: &FetchedFile) {
        let _ = (index, file);
    }
    /// Item `index` failed.
    fn failed(&self, index: usize, error: &FetchError) {
        let _ = (index, error);
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl FetchObserver for NoProgress {}

/// Why a file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A repository path that is absolute, has `.`/`..`/empty components or URL syntax.
    #[error("refusing repository path `{filename}`: {reason}")]
    BadFilename {
        /// The path given.
        filename: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A URI whose scheme is not `http`, `https` or `file`.
    #[error("cannot fetch {uri}: only http://, https:// and file: repositories are supported")]
    UnsupportedScheme {
        /// The URI.
        uri: String,
    },
    /// The repository could not be reached at all (connection refused, no such host, timeout…).
    #[error("cannot reach the repository for {uri}: {reason}")]
    Unreachable {
        /// The file's URI.
        uri: String,
        /// What went wrong, e.g. `connection refused`.
        reason: String,
    },
    /// The repository answered with an HTTP error status.
    #[error("the repository answered {uri} with HTTP status {status}")]
    Http {
        /// The file's URI.
        uri: String,
        /// The status code, e.g. 404.
        status: u16,
    },
    /// The file of a `file:` repository could not be read.
    #[error("cannot read {uri}: {source}")]
    Read {
        /// The file's URI.
        uri: String,
        /// The error.
        source: io::Error,
    },
    /// The transfer broke off after it started.
    #[error("the transfer of {uri} broke off: {reason}")]
    Transfer {
        /// The file's URI.
        uri: String,
        /// What went wrong.
        reason: String,
    },
    /// The file's size differs from the expected one.
    #[error("{uri} has the wrong size: expected {expected} bytes, got {got}{}", if *.more { " or more" } else { "" })]
    SizeMismatch {
        /// The file's URI.
        uri: String,
        /// The size the lock gives.
        expected: u64,
        /// The size received (when `more`, reading stopped there).
        got: u64,
        /// The file is at least `got` bytes long (reading stopped after the expected size).
        more: bool,
    },
    /// The file's sha256 differs from the expected one.
    #[error("{uri} has the wrong sha256: expected {expected}, got {got}")]
    HashMismatch {
        /// The file's URI.
        uri: String,
        /// The digest the lock gives.
        expected: Sha256,
        /// The digest of the bytes received.
        got: Sha256,
    },
    /// Reading or writing the cache failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Cache {
        /// What was being done, e.g. `create`.
        action: &'static str,
        /// The path in the cache.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl FetchError {
    /// What the user can do about it, where there is something.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            FetchError::Unreachable { .. } => "check the network and the URIs in /etc/apt/sources.list.d/; with a complete cache or store, nothing needs fetching",
            FetchError::Http { status: 404, .. } => "the repository no longer serves this version: update the lock (`ferry lock SITE --update`)",
            FetchError::SizeMismatch { .. } | FetchError::HashMismatch { .. } => "the repository's file differs from the lock: update the lock if the repository changed, otherwise suspect the mirror",
            FetchError::UnsupportedScheme { .. } => "use an http://, https:// or file: repository",
            _ => return None,
        })
    }
}

/// The directory of verified files, each named `<sha256>.deb`.
#[derive(Clone, Debug)]
pub struct DebCache {
    dir: PathBuf,
}

impl DebCache {
    /// Opens (creating if needed) the cache at `dir`.
    pub fn open(dir: &Path) -> Result<DebCache, FetchError> {
        std::fs::create_dir_all(dir).map_err(cache_error("create", dir))?;
        Ok(DebCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file with digest `sha256` lives (whether or not it is there).
    pub fn path_of(&self, sha256: &Sha256) -> PathBuf {
        self.dir.join(format!("{sha256}.deb"))
    }

    /// The cached file with this digest and size, if it is there and right. A cached file
    /// that is wrong (damaged on disk) is removed, so that it is fetched again.
    pub fn lookup(&self, sha256: &Sha256, size: u64) -> Result<Option<PathBuf>, FetchError> {
        let path = self.path_of(sha256);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cache_error("open", &path)(e)),
        };
        let (got, len) = Sha256::of_reader(file).map_err(cache_error("read", &path))?;
        if got == *sha256 && len == size {
            return Ok(Some(path));
        }
        std::fs::remove_file(&path).map_err(cache_error("remove damaged", &path))?;
        Ok(None)
    }
}

/// Downloads [`FetchItem`]s into a [`DebCache`], several at a time.
#[derive(Debug)]
pub struct Fetcher {
    cache: DebCache,
    jobs: usize,
    agent: ureq::Agent,
}

impl Fetcher {
    /// A fetcher into the cache at `cache_dir` (created if needed), [`DEFAULT_JOBS`] at a time,
    /// giving up on a connection after 30 s and on a silent transfer after 60 s.
    pub fn new(cache_dir: &Path) -> Result<Fetcher, FetchError> {
        Ok(Fetcher {
            cache: DebCache::open(cache_dir)?,
            jobs: DEFAULT_JOBS,
            agent: agent(Duration::from_secs(30), Duration::from_secs(60)),
        })
    }

    /// The same fetcher with at most `jobs` (at least 1) transfers at once.
    pub fn with_jobs(mut self, jobs: usize) -> Fetcher {
        self.jobs = jobs.max(1);
        self
    }

    /// The same fetcher with other timeouts: `connect` for opening a connection, `idle` for
    /// any single wait for the server.
    pub fn with_timeouts(mut self, connect: Duration, idle: Duration) -> Fetcher {
        self.agent = agent(connect, idle);
        self
    }

    /// The cache this fetcher fills.
    pub fn cache(&self) -> &DebCache {
        &self.cache
    }

    /// Fetches every item (cache first), at most `jobs` at once. One result per item, in the
    /// order given; a failure of one item does not stop the others.
    pub fn fetch_each(
        &self,
        items: &[FetchItem],
        observer: &dyn FetchObserver,
    ) -> Vec<Result<FetchedFile, FetchError>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<FetchedFile, FetchError>>>> =
            Mutex::new((0..items.len()).map(|_| None).collect());
        let workers = self.jobs.min(items.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = self.fetch_one(index, item, observer);
                    match &result {
                        Ok(file) => observer.finished(index, file),
                        Err(error) => observer.failed(index, error),
                    }
                    // A poisoned lock means another worker panicked; its panic is re-raised
                    // when the scope ends, so the value stored here no longer matters.
                    if let Ok(mut slots) = results.lock() {
                        slots[index] = Some(result);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .map(|slot| {
                // Every index below items.len() was taken by exactly one worker, which stored
                // its result before taking the next.
                slot.unwrap_or_else(|| unreachable!("every item is fetched once"))
            })
            .collect()
    }

    /// Like [`Fetcher::fetch_each`], but fails with the first failure in the order given
    /// (after all transfers ended; what succeeded stays cached).
    pub fn fetch_all(
        &self,
        items: &[FetchItem],
        observer: &dyn FetchObserver,
    ) -> Result<Vec<FetchedFile>, FetchError> {
        self.fetch_each(items, observer).into_iter().collect()
    }

    /// Fetches one item: from the cache if it is there, otherwise from its repository.
    pub fn fetch_one(
        &self,
        index: usize,
        item: &FetchItem,
        observer: &dyn FetchObserver,
    ) -> Result<FetchedFile, FetchError> {
        observer.started(index, item);
        let uri = item.uri()?;
        if let Some(path) = self.cache.lookup(&item.sha256, item.size)? {
            observer.progress(index, item.size, item.size);
            return Ok(FetchedFile {
                path,
                sha256: item.sha256,
                size: item.size,
                source: FetchSource::Cached,
            });
        }
        let progress = |done| observer.progress(index, done, item.size);
        let path = if let Some(local) = file_uri_path(&uri) {
            let file = File::open(local).map_err(|source| FetchError::Read {
                uri: uri.clone(),
                source,
            })?;
            self.store_verified(&uri, item, file, &progress)?
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            let response = self
                .agent
                .get(&uri)
                .call()
                .map_err(|e| request_error(&uri, e))?;
            let body = response.into_body().into_reader();
            self.store_verified(&uri, item, body, &progress)?
        } else {
            return Err(FetchError::UnsupportedScheme { uri });
        };
        Ok(FetchedFile {
            path,
            sha256: item.sha256,
            size: item.size,
            source: FetchSource::Downloaded,
        })
    }

    /// Streams `body` into a temp file in the cache while hashing it; renames it into place
    /// only if size and sha256 are right. On any failure the temp file is removed.
    fn store_verified(
        &self,
        uri: &str,
        item: &FetchItem,
        mut body: impl Read,
        progress: &dyn Fn(u64),
    ) -> Result<PathBuf, FetchError> {
        let dir = self.cache.dir();
        let mut temp = tempfile::Builder::new()
            .prefix(".partial-")
            .suffix(".deb")
            .tempfile_in(dir)
            .map_err(cache_error("create a temp file in", dir))?;
        let mut hasher = Sha256Hasher::new();
        let mut buffer = vec![0u8; CHUNK];
        let mut done = 0u64;
        loop {
            let n = match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(transfer_error(uri, &e)),
            };
            done += n as u64;
            if done > item.size {
                return Err(FetchError::SizeMismatch {
                    uri: uri.to_string(),
                    expected: item.size,
                    got: done,
                    more: true,
                });
            }
            hasher.update(&buffer[..n]);
            temp.write_all(&buffer[..n])
                .map_err(cache_error("write", temp.path()))?;
            progress(done);
        }
        if done != item.size {
            return Err(FetchError::SizeMismatch {
                uri: uri.to_string(),
                expected: item.size,
                got: done,
                more: false,
            });
        }
        let got = Sha256(hasher.finalize().into());
        if got != item.sha256 {
            return Err(FetchError::HashMismatch {
                uri: uri.to_string(),
                expected: item.sha256,
                got,
            });
        }
        temp.as_file()
            .sync_all()
            .map_err(cache_error("sync", temp.path()))?;
        let target = self.cache.path_of(&item.sha256);
        temp.persist(&target)
            .map_err(|e| cache_error("rename into", &target)(e.error))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(cache_error("sync", dir))?;
        Ok(target)
    }
}

/// The HTTP agent: rustls, redirects followed, error statuses as errors, bounded waits.
fn agent(connect: Duration, idle: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .timeout_recv_response(Some(idle))
        // Per read, not in total: a big package on a slow link may take long, but never
        // `idle` without a byte.
        .timeout_per_read(Some(idle))
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

/// The local path a `file:` URI names (`file:///srv/x` or `file:/srv/x`); percent escapes
/// are not decoded.
fn file_uri_path(uri: &str) -> Option<&Path> {
    let rest = uri.strip_prefix("file:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    Some(Path::new(path))
}

/// Refuses repository paths that could name something outside the repository or change a
/// URL's meaning.
fn check_filename(filename: &str) -> Result<(), FetchError> {
    let bad = |reason| {
        Err(FetchError::BadFilename {
            filename: filename.to_string(),
            reason,
        })
    };
    if filename.is_empty() {
        return bad("it is empty");
    }
    if filename.starts_with('/') {
        return bad("it is absolute");
    }
    if filename
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("it has an empty, `.` or `..` component");
    }
    if filename
        .chars()
        .any(|c| c.is_control() || matches!(c, '%' | '?' | '#' | '\\'))
    {
        return bad("it contains a control character, `%`, `?`, `#` or `\\`");
    }
    Ok(())
}

/// Percent-encodes every byte a URL path cannot carry as it is.
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/+:@!$&'()*,;=".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The error of a request that got no usable response.
fn request_error(uri: &str, error: ureq::Error) -> FetchError {
    let reason = match error {
        ureq::Error::StatusCode(status) => {
            return FetchError::Http {
                uri: uri.to_string(),
                status,
            }
        }
        ureq::Error::Io(e) => io_reason(&e),
        ureq::Error::HostNotFound => "no such host".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::Timeout(_) => "timed out".to_string(),
        other => other.to_string(),
    };
    FetchError::Unreachable {
        uri: uri.to_string(),
        reason,
    }
}

/// The error of a body read that failed mid-transfer.
fn transfer_error(uri: &str, error: &io::Error) -> FetchError {
    FetchError::Transfer {
        uri: uri.to_string(),
        reason: io_reason(error),
    }
}

/// A short, stable description of a network I/O error.
fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset".to_string(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_string(),
        io::ErrorKind::TimedOut => "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => "the connection closed early".to_string(),
        _ => error.to_string(),
    }
}

/// A closure making a [`FetchError::Cache`] for `path`.
fn cache_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Cache {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(base: &str, filename: &str) -> FetchItem {
        FetchItem {
            base_uri: base.to_string(),
            filename: filename.to_string(),
            sha256: Sha256([0; 32]),
            size: 0,
        }
    }

    #[test]
    fn uris_join_base_and_filename() {
        let uri = item("http://h/debian/", "pool/main/a/a_1:2~b+c_amd64.deb").uri();
        assert_eq!(
            uri.unwrap(),
            "http://h/debian/pool/main/a/a_1:2~b+c_amd64.deb"
        );
        let uri = item("http://h/debian", "pool/a b.deb").uri();
        assert_eq!(uri.unwrap(), "http://h/debian/pool/a%20b.deb");
        assert_eq!(
            file_uri_path(&item("file:///srv/r", "pool/x.deb").uri().unwrap()),
            Some(Path::new("/srv/r/pool/x.deb"))
        );
        assert_eq!(
            file_uri_path("file:/srv/r/x.deb"),
            Some(Path::new("/srv/r/x.deb"))
        );
    }

    #[test]
    fn filenames_that_leave_the_repository_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "pool/../../x",
            "pool//x",
            "./x",
            "a?b",
            "a%2e",
        ] {
            assert!(
                matches!(
                    item("http://h", bad).uri(),
                    Err(FetchError::BadFilename { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }
}

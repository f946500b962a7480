//! Fetching: downloads the files a lock names (`pool/…/x.deb` under a repository URI), in
//! parallel, into a cache where only verified files ever appear.
//!
//! Invariants:
//! - `<cache>/<sha256>.deb` exists only after its size and sha256 were checked against what the
//!   caller expected: bytes stream into a `.partial-*` temp file in the cache dir while being
//!   hashed, and only a verified file is renamed into place. A failed fetch leaves nothing.
//! - A file already in the cache (size and sha256 right) is not fetched again, so a complete
//!   cache needs no network at all.
//! - A transient failure (no connection, a reset or cut transfer, a timeout, HTTP 5xx or 429,
//!   a body shorter than promised) is retried a few times with a growing pause, each attempt
//!   from scratch; a permanent one (HTTP 404, a wrong sha256, a body too long) never is.
//! - Transfers to one host share a pool of kept-alive connections (one per job) and one
//!   name lookup, so a closure of many small packages does not pay a handshake per package.
//! - Nothing here prints: progress goes to a [`FetchObserver`].
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256 as Sha256Hasher};

mod digest;
mod resolver;
pub use digest::{BadSha256, Sha256, Sha256Reader};
use resolver::{CachingResolver, HostCache};

/// How many files are fetched at once unless the caller says otherwise.
pub const DEFAULT_JOBS: usize = 8;

/// Bytes read per step (and so the progress granularity).
pub(crate) const CHUNK: usize = 64 * 1024;

/// How a transient failure is retried: `attempts` in all, the first pause `base_delay`, each
/// later one twice the one before, never more than `max_delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The pause before the second attempt.
    pub base_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, pausing 0.2 s, 0.4 s, then 0.8 s: enough for a mirror that drops a
    /// connection now and then, short enough that a dead one fails within seconds.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

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
///
/// After [`FetchObserver::retrying`], the item's `progress` starts again from 0.
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
    /// Attempt number `attempt` (1-based) of item `index` failed with the transient `error`;
    /// it is tried again after a pause.
    fn retrying(&self, index: usize, attempt: u32, error: &FetchError) {
        let _ = (index, attempt, error);
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
    /// Every attempt failed with a transient error (or the last with a permanent one).
    #[error("{last} (gave up after {attempts} attempts)")]
    Attempts {
        /// The file's URI.
        uri: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        last: Box<FetchError>,
    },
}

impl FetchError {
    /// Whether trying again may succeed: the connection or the server failed, not the file.
    /// A body shorter than expected counts (a transfer cut short); one longer does not (that
    /// file is not the locked one), nor does a short one the server declared complete (the
    /// fetcher checks that, as only the response knows).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Unreachable { .. } | FetchError::Transfer { .. } => true,
            FetchError::Http { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            FetchError::SizeMismatch { more, .. } => !more,
            _ => false,
        }
    }

    /// What the user can do about it, where there is something.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            FetchError::Attempts { last, .. } => return last.hint(),
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
    timeouts: (Duration, Duration),
    retry: RetryPolicy,
    hosts: Arc<HostCache>,
    agent: ureq::Agent,
}

impl Fetcher {
    /// A fetcher into the cache at `cache_dir` (created if needed), [`DEFAULT_JOBS`] at a time,
    /// giving up on a connection after 30 s and on a silent transfer after 60 s, retrying as
    /// [`RetryPolicy::default`] says.
    pub fn new(cache_dir: &Path) -> Result<Fetcher, FetchError> {
        let mut fetcher = Fetcher {
            cache: DebCache::open(cache_dir)?,
            jobs: DEFAULT_JOBS,
            timeouts: (Duration::from_secs(30), Duration::from_secs(60)),
            retry: RetryPolicy::default(),
            hosts: Arc::default(),
            agent: ureq::Agent::new_with_defaults(),
        };
        fetcher.agent = fetcher.make_agent();
        Ok(fetcher)
    }

    /// The same fetcher with at most `jobs` (at least 1) transfers at once.
    pub fn with_jobs(mut self, jobs: usize) -> Fetcher {
        self.jobs = jobs.max(1);
        self.agent = self.make_agent();
        self
    }

    /// The same fetcher with other timeouts: `connect` for opening a connection, `idle` for
    /// any single wait for the server.
    pub fn with_timeouts(mut self, connect: Duration, idle: Duration) -> Fetcher {
        self.timeouts = (connect, idle);
        self.agent = self.make_agent();
        self
    }

    /// The same fetcher retrying transient failures as `retry` says.
    pub fn with_retries(mut self, retry: RetryPolicy) -> Fetcher {
        self.retry = RetryPolicy {
            attempts: retry.attempts.max(1),
            ..retry
        };
        self
    }

    /// The cache this fetcher fills.
    pub fn cache(&self) -> &DebCache {
        &self.cache
    }

    /// How many transfers run at once.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// The HTTP agent: rustls, redirects followed, error statuses as errors, bounded waits,
    /// and room in the pool for one idle connection per job to each host, so that every
    /// worker finds its connection again for its next item.
    fn make_agent(&self) -> ureq::Agent {
        let (connect, idle) = self.timeouts;
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect))
            .timeout_recv_response(Some(idle))
            // Per read, not in total: a big package on a slow link may take long, but never
            // `idle` without a byte.
            .timeout_per_read(Some(idle))
            .max_idle_connections(self.jobs.max(DEFAULT_JOBS) * 4)
            .max_idle_connections_per_host(self.jobs)
            .max_idle_age(Duration::from_secs(60))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build();
        let resolver = CachingResolver::new(
            ureq::unversioned::resolver::DefaultResolver::default(),
            self.hosts.clone(),
        );
        ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            resolver,
        )
    }

    /// Fetches every item (cache first), at most `jobs` at once, handing each result to `then`
    /// (on the fetching thread, in the order the items finish) as soon as it is there. A
    /// failure of one item does not stop the others.
    pub fn fetch_each_then(
        &self,
        items: &[FetchItem],
        observer: &dyn FetchObserver,
        then: &(dyn Fn(usize, Result<FetchedFile, FetchError>) + Sync),
    ) {
        let next = AtomicUsize::new(0);
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
                    then(index, result);
                });
            }
        });
    }

    /// Fetches every item (cache first), at most `jobs` at once. One result per item, in the
    /// order given; a failure of one item does not stop the others.
    pub fn fetch_each(
        &self,
        items: &[FetchItem],
        observer: &dyn FetchObserver,
    ) -> Vec<Result<FetchedFile, FetchError>> {
        let results: Mutex<Vec<Option<Result<FetchedFile, FetchError>>>> =
            Mutex::new((0..items.len()).map(|_| None).collect());
        self.fetch_each_then(items, observer, &|index, result| {
            // A poisoned lock means another worker panicked; its panic is re-raised when the
            // scope ends, so the value stored here no longer matters.
            if let Ok(mut slots) = results.lock() {
                slots[index] = Some(result);
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
            self.download(index, &uri, item, observer)?
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

    /// Downloads one file over HTTP(S), retrying transient failures as `self.retry` says; each
    /// attempt starts over with a fresh temp file.
    fn download(
        &self,
        index: usize,
        uri: &str,
        item: &FetchItem,
        observer: &dyn FetchObserver,
    ) -> Result<PathBuf, FetchError> {
        let progress = |done| observer.progress(index, done, item.size);
        let mut attempt = 1;
        loop {
            // A body that is shorter than the lock says but as long as the server declared
            // is the repository's file, not a cut transfer: trying again cannot help.
            let mut complete = false;
            let result = self
                .agent
                .get(uri)
                .call()
                .map_err(|e| request_error(uri, e))
                .and_then(|response| {
                    let declared = response.body().content_length();
                    let body = response.into_body().into_reader();
                    let stored = self.store_verified(uri, item, body, &progress);
                    if let Err(FetchError::SizeMismatch { got, .. }) = &stored {
                        complete = declared == Some(*got);
                    }
                    stored
                });
            let error = match result {
                Ok(path) => return Ok(path),
                Err(error) => error,
            };
            if !error.is_transient() || complete || attempt >= self.retry.attempts {
                if attempt == 1 {
                    return Err(error);
                }
                return Err(FetchError::Attempts {
                    uri: uri.to_string(),
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            observer.retrying(index, attempt, &error);
            if matches!(error, FetchError::Unreachable { .. }) {
                // The host may have moved: look it up again.
                self.hosts.forget();
            }
            std::thread::sleep(self.retry.delay(attempt));
            attempt += 1;
        }
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

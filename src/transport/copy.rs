//! The closure copy protocol: one `QueryMissing`, then every missing object streamed, then one result (DESIGN §7).
//!
//! Per host the exchanges are: handshake, agent status, `QueryMissing` (the
//! whole closure in one message; the agent pins it), and, when something is
//! missing, one `Import` whose request carries all missing objects as a
//! zstd-compressed store archive, dependencies first, with no per-object
//! acknowledgement. That is a constant number of round trips, whatever the
//! closure size. The agent imports incrementally, so a copy cut at any
//! moment leaves the host's store valid and the next copy sends only the rest.
use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_lang::inventory::HostEntry;
use ferry_store::{Store, StorePath};
use serde::Serialize;

use super::bootstrap::{start_agent, AgentBinary, AgentSettings, BootstrapReport};
use super::codec::{CodecError, DataStreamWriter, Request, Response};
use super::connect;
use super::connection::ConnectionError;
use super::process::Transport;
use super::ssh::SshSettings;

/// Errors of copying to one host.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reaching the agent or talking to it failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The deployer's own store could not be read.
    #[error("reading the local store: {0}")]
    Store(#[from] ferry_store::StoreError),
    /// The object stream broke off.
    #[error("lost the connection to {host} while sending objects: {detail}")]
    Stream {
        /// The host as the user named it.
        host: String,
        /// Why, with what the host said when it said something.
        detail: String,
    },
}

impl CopyError {
    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            CopyError::Connection(e) => e.hint(),
            _ => None,
        }
    }
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// SSH settings beyond what the inventory says.
    pub ssh: SshSettings,
    /// At most this many hosts are served at once.
    pub max_parallel: usize,
    /// Store and state dirs of the agents on the hosts.
    pub agent: AgentSettings,
    /// Who hears each host's steps (the terminal's progress lines); `None`: nobody.
    pub progress: Option<Arc<dyn CopyObserver>>,
}

/// What one copy to one host did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostCopyStats {
    /// Paths in the closure that was asked for.
    pub closure_paths: u64,
    /// Objects that were missing on the host and were sent.
    pub objects_sent: u64,
    /// Objects the host registered from the stream.
    pub objects_registered: u64,
    /// Bytes written to the agent's session (compressed stream and messages).
    pub bytes_sent: u64,
    /// Request/response exchanges of the session (the handshake included).
    pub exchanges: u64,
    /// The agent binary was uploaded first (first contact).
    pub agent_uploaded: bool,
    /// Bytes of agent binary uploaded.
    pub agent_bytes: u64,
    /// Where the time went, so a slow host shows whether it was the network, the agent's
    /// start or its disk.
    pub milliseconds: CopyPhases,
}

/// Milliseconds of one host's copy, phase by phase (they add up to about the whole).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopyPhases {
    /// Opening the connection (the SSH handshake; nothing for `localhost`).
    pub connect: u64,
    /// Then waiting for the deployer's own preparation (closure, shared stream, agent
    /// binary), which runs during the handshakes: usually nothing.
    pub prepare: u64,
    /// Starting the agent, uploading it first on first contact.
    pub agent: u64,
    /// The `QueryMissing` round trip.
    pub query: u64,
    /// Writing the object stream (the host reads it as fast as it can store it).
    pub stream: u64,
    /// Waiting for the host to make the last objects durable and valid.
    pub finish: u64,
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The outcome for one host.
#[derive(Debug)]
pub struct HostCopyReport {
    /// The host as the user named it.
    pub host: String,
    /// What the copy did, or why it failed.
    pub result: Result<HostCopyStats, CopyError>,
    /// How long the host's copy took, connecting included.
    pub elapsed: Duration,
}

/// The outcome for every host, in the order they were given.
#[derive(Debug)]
pub struct CopyReport {
    /// One report per host.
    pub hosts: Vec<HostCopyReport>,
}

impl CopyReport {
    /// Whether every host got its closure.
    pub fn all_ok(&self) -> bool {
        self.hosts.iter().all(|h| h.result.is_ok())
    }
}

/// The agent binary for [`copy_closure`]: one already in the store, or this ferry, added
/// while the connections are being made.
pub enum AgentSource<'a> {
    /// This binary, already in the store.
    Ready(&'a AgentBinary),
    /// This ferry, added to the store first.
    ThisFerry,
}

/// What every host's copy needs from the local store, worked out while the hosts are
/// being connected to (an SSH handshake takes long enough to hide it).
struct Prepared<'a> {
    closure: Vec<StorePath>,
    cache: Option<StreamCache>,
    binary: std::borrow::Cow<'a, AgentBinary>,
}

impl<'a> Prepared<'a> {
    fn new(
        store: &Store,
        agent: &AgentSource<'a>,
        roots: &[StorePath],
        hosts: usize,
    ) -> Result<Prepared<'a>, CopyError> {
        let closure = store.closure(roots)?;
        let cache = if hosts > 1 {
            Some(StreamCache::new(store, &closure)?)
        } else {
            None
        };
        let binary = match agent {
            AgentSource::Ready(binary) => std::borrow::Cow::Borrowed(*binary),
            AgentSource::ThisFerry => std::borrow::Cow::Owned(AgentBinary::this_ferry(store)?),
        };
        Ok(Prepared {
            closure,
            cache,
            binary,
        })
    }

    /// One host's share of the preparation.
    fn inputs(&self) -> HostInputs<'_> {
        HostInputs {
            binary: &self.binary,
            closure: &self.closure,
            cache: self.cache.as_ref(),
        }
    }
}

/// Copies the closure of `roots` from `store` to every host in `hosts`,
/// at most `options.max_parallel` at once. One host failing does not stop
/// the others.
pub fn copy_closure(
    store: &Store,
    agent: AgentSource<'_>,
    hosts: &[HostEntry],
    roots: &[StorePath],
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let prepared: std::sync::OnceLock<Result<Prepared<'_>, CopyError>> = std::sync::OnceLock::new();
    let observer: &dyn CopyObserver = match &options.progress {
        Some(observer) => observer.as_ref(),
        None => &SilentCopy,
    };
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<HostCopyReport>>> =
        hosts.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..options.max_parallel.max(1).min(hosts.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(host) = hosts.get(i) else { break };
                let started = Instant::now();
                let line = observer.host(&host.name);
                let transport = connect(host, &options.ssh).map_err(CopyError::from);
                let connected = millis(started);
                // Without what the copy needs there is nothing to report per host: the
                // error is the whole copy's.
                let waited = Instant::now();
                let Ok(ready) = prepared.wait() else { break };
                let waited = millis(waited);
                let result = transport.and_then(|transport| {
                    copy_with_cache(
                        transport.as_ref(),
                        store,
                        ready.inputs(),
                        &options.agent,
                        line.as_ref(),
                    )
                });
                let result = result.map(|mut stats| {
                    stats.milliseconds.connect = connected;
                    stats.milliseconds.prepare = waited;
                    stats
                });
                line.finished(&result);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(HostCopyReport {
                        host: host.name.clone(),
                        result,
                        elapsed: started.elapsed(),
                    });
                }
            });
        }
        let _ = prepared.set(Prepared::new(store, &agent, roots, hosts.len()));
    });
    if let Some(Err(error)) = prepared.into_inner() {
        return Err(error);
    }
    Ok(CopyReport {
        // Every index below `hosts.len()` was taken by exactly one worker.
        hosts: results
            .into_iter()
            .filter_map(|slot| slot.into_inner().ok().flatten())
            .collect(),
    })
}

/// Copies `closure` (dependencies first) to the host behind `transport`.
pub fn copy_to_host(
    transport: &dyn Transport,
    store: &Store,
    binary: &AgentBinary,
    closure: &[StorePath],
    settings: &AgentSettings,
    line: &dyn HostCopyObserver,
) -> Result<HostCopyStats, CopyError> {
    let inputs = HostInputs {
        binary,
        closure,
        cache: None,
    };
    copy_with_cache(transport, store, inputs, settings, line)
}

/// What one host's copy works from: the agent to start, the closure
/// (dependencies first), and the streams shared between hosts, if any.
struct HostInputs<'a> {
    binary: &'a AgentBinary,
    closure: &'a [StorePath],
    cache: Option<&'a StreamCache>,
}

fn copy_with_cache(
    transport: &dyn Transport,
    store: &Store,
    HostInputs {
        binary,
        closure,
        cache,
    }: HostInputs<'_>,
    settings: &AgentSettings,
    line: &dyn HostCopyObserver,
) -> Result<HostCopyStats, CopyError> {
    let host = transport.host().to_string();
    line.step("starting agent");
    let phase = Instant::now();
    let (mut connection, BootstrapReport { uploaded, bytes }) =
        start_agent(transport, binary, settings)?;
    let mut stats = HostCopyStats {
        closure_paths: closure.len() as u64,
        agent_uploaded: uploaded,
        agent_bytes: bytes,
        ..HostCopyStats::default()
    };
    stats.milliseconds.agent = millis(phase);
    line.step("querying");
    let phase = Instant::now();
    let paths = closure.iter().map(|p| p.as_str().to_string()).collect();
    let answer = connection.request(&Request::QueryMissing { paths })?;
    stats.milliseconds.query = millis(phase);
    let missing = match answer {
        Response::Missing { paths } => paths,
        other => {
            return Err(ConnectionError::Unexpected {
                host,
                expected: "Missing",
                got: format!("{other:?}"),
            }
            .into())
        }
    };
    // Send in closure order (dependencies first), whatever order came back,
    // and only paths that were asked about.
    let missing: HashSet<String> = missing.into_iter().collect();
    let to_send: Vec<StorePath> = closure
        .iter()
        .filter(|p| missing.contains(p.as_str()))
        .cloned()
        .collect();
    if !to_send.is_empty() {
        let phase = Instant::now();
        line.stream_started(to_send.len() as u64, connection.bytes_sent_counter());
        connection.send(&Request::Import {
            objects: to_send.len() as u64,
        })?;
        let mut sink = WatchedWriter {
            inner: connection.stream(),
            broke: None,
        };
        let exported = match cache.and_then(|c| c.stream(store, &to_send)) {
            Some(frames) => sink.write_all(&frames).map_err(StreamError::Io),
            None => stream_objects(store, &to_send, &mut sink),
        };
        let broke = sink.broke.take();
        line.stream_ended();
        match (exported, broke) {
            // A broken pipe is the connection's fault, whatever the export made of it.
            (_, Some(e)) | (Err(StreamError::Io(e)), None) => {
                // Give ssh a moment to write why the connection ended.
                std::thread::sleep(Duration::from_millis(50));
                let said = connection.host_stderr();
                return Err(CopyError::Stream {
                    host,
                    detail: if said.is_empty() {
                        e.to_string()
                    } else {
                        format!("{e} (the host said: {said})")
                    },
                });
            }
            (Err(StreamError::Store(e)), None) => return Err(CopyError::Store(e)),
            (Ok(()), None) => {}
        }
        stats.milliseconds.stream = millis(phase);
        let phase = Instant::now();
        if let Response::Imported { objects } = connection.receive()? {
            stats.objects_registered = objects;
        }
        stats.milliseconds.finish = millis(phase);
        stats.objects_sent = to_send.len() as u64;
    }
    stats.bytes_sent = connection.bytes_sent();
    stats.exchanges = connection.exchanges();
    connection.close()?;
    Ok(stats)
}

/// Passes writes through and remembers the first failure, so a broken
/// connection is told apart from a store that could not be read.
struct WatchedWriter<'a> {
    inner: &'a mut dyn Write,
    broke: Option<std::io::Error>,
}

impl Write for WatchedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.inner.write(data).inspect_err(|e| {
            if self.broke.is_none() {
                self.broke = Some(std::io::Error::new(e.kind(), e.to_string()));
            }
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            if self.broke.is_none() {
                self.broke = Some(std::io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

/// Why writing the object stream stopped.
enum StreamError {
    Store(ferry_store::StoreError),
    Io(std::io::Error),
}

/// Writes `paths` as an archive in data frames (each compressed when that pays).
fn stream_objects(
    store: &Store,
    paths: &[StorePath],
    writer: &mut dyn Write,
) -> Result<(), StreamError> {
    let mut frames = DataStreamWriter::new(writer).map_err(codec_io)?;
    store
        .export(paths, &mut frames)
        .map_err(StreamError::Store)?;
    frames.finish().map_err(codec_io)?;
    Ok(())
}

fn codec_io(e: CodecError) -> StreamError {
    match e {
        CodecError::Io(e) => StreamError::Io(e),
        other => StreamError::Io(std::io::Error::other(other.to_string())),
    }
}

/// The largest object stream kept in memory to be sent to several hosts.
const SHARED_STREAM_LIMIT: u64 = 256 << 20;

/// One shared stream: made once; `None` when it could not be made.
type SharedStream = std::sync::OnceLock<Option<Arc<Vec<u8>>>>;

/// Framed (and compressed) object streams shared by hosts that miss the same
/// paths (typically fresh hosts): exported and compressed once, sent to each, so
/// the deployer's work does not grow with the number of hosts.
struct StreamCache {
    sizes: std::collections::HashMap<StorePath, u64>,
    streams: Mutex<std::collections::HashMap<Vec<StorePath>, Arc<SharedStream>>>,
}

impl StreamCache {
    fn new(store: &Store, closure: &[StorePath]) -> Result<StreamCache, CopyError> {
        let sizes = store
            .path_infos(closure)?
            .into_iter()
            .map(|info| (info.path, info.nar_size))
            .collect();
        Ok(StreamCache {
            sizes,
            streams: Mutex::new(Default::default()),
        })
    }

    /// The framed stream of `paths` (end frame included), made by the first host that needs
    /// it (the others wait for it); `None` when it is too large to keep or
    /// could not be made (the caller then streams directly).
    fn stream(&self, store: &Store, paths: &[StorePath]) -> Option<Arc<Vec<u8>>> {
        let total: u64 = paths
            .iter()
            .map(|p| self.sizes.get(p).copied().unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add);
        if total > SHARED_STREAM_LIMIT {
            return None;
        }
        let slot = {
            let mut streams = self.streams.lock().ok()?;
            Arc::clone(streams.entry(paths.to_vec()).or_default())
        };
        slot.get_or_init(|| {
            let mut frames = DataStreamWriter::new(Vec::new()).ok()?;
            store.export(paths, &mut frames).ok()?;
            Some(Arc::new(frames.finish().ok()?))
        })
        .clone()
    }
}

/// Hears how a copy goes, host by host: the CLI draws it on the terminal
/// (`cli::progress::CopyProgress`); the library draws nothing.
pub trait CopyObserver: Send + Sync + std::fmt::Debug {
    /// The copy to `host` starts; what this returns hears that host's steps.
    fn host(&self, host: &str) -> Box<dyn HostCopyObserver>;
}

/// Hears the steps of the copy to one host.
pub trait HostCopyObserver: Send + Sync {
    /// A step starts (`starting agent`, `querying`).
    fn step(&self, text: &str);
    /// `objects` objects start to stream; `sent` counts the bytes written to the host so far.
    fn stream_started(&self, objects: u64, sent: Arc<AtomicU64>);
    /// The stream ended, sent or broken.
    fn stream_ended(&self);
    /// The copy to this host ended with `result`.
    fn finished(&self, result: &Result<HostCopyStats, CopyError>);
}

/// Hears nothing: for callers with no one to tell (tests, library use).
#[derive(Debug, Default, Clone, Copy)]
pub struct SilentCopy;

impl CopyObserver for SilentCopy {
    fn host(&self, _host: &str) -> Box<dyn HostCopyObserver> {
        Box::new(SilentCopy)
    }
}

impl HostCopyObserver for SilentCopy {
    fn step(&self, _text: &str) {}
    fn stream_started(&self, _objects: u64, _sent: Arc<AtomicU64>) {}
    fn stream_ended(&self) {}
    fn finished(&self, _result: &Result<HostCopyStats, CopyError>) {}
}

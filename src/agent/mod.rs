//! The host agent (`ferry remote --stdio`): serves the deployer's requests against the host's store and its activation.
//!
//! Invariants: the agent writes nothing but protocol bytes to stdout (its
//! diagnostics go to stderr); everything it receives is checked by the
//! store's import (re-hashed, hostile input refused) before it becomes
//! valid; paths the deployer asked about stay pinned as temporary roots
//! until the session ends; activation requests are served by
//! [`activation`], which runs each activation in a detached process so the
//! session's end never interrupts one.
pub mod activation;

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use ferry_store::{ImportMode, Store, StorePath, TempRoots};

use crate::transport::codec::{self, CodecError, DataStreamReader, Hello, Request, Response};

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The host's store failed.
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    /// The protocol stream broke.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The deployer and this agent speak different protocols.
    #[error(
        "the deployer speaks protocol {} (ferry {}), but this agent speaks protocol {} (ferry {})",
        theirs.protocol, theirs.version, ours.protocol, ours.version
    )]
    VersionMismatch {
        /// This agent's greeting.
        ours: Hello,
        /// The deployer's greeting.
        theirs: Hello,
    },
    /// `/proc/self/exe` could not be read.
    #[error("cannot find this agent's own executable: {0}")]
    OwnExecutable(std::io::Error),
    /// The uploaded agent did not become the expected store path.
    #[error("the uploaded agent became {got} in this store, but the deployer expected {expected}")]
    WrongSelfPath {
        /// The store path it became.
        got: String,
        /// The store path the deployer expected.
        expected: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// Serves one deployer session on stdin/stdout until `Bye` or end of input.
pub fn serve_stdio(store_dir: &Path, state_dir: &Path) -> Result<(), AgentError> {
    crate::transport::widen_pipe(&std::io::stdin());
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    serve(store_dir, state_dir, stdin, stdout)
}

/// Serves one session over any pair of streams.
pub fn serve(
    store_dir: &Path,
    state_dir: &Path,
    input: impl Read,
    output: impl Write,
) -> Result<(), AgentError> {
    // Small: it only has to make message reads cheap. Whatever it holds when a
    // data frame's head is read is copied once more; raw blocks bigger than
    // it are read straight into the importer's buffer.
    let mut reader = BufReader::with_capacity(16 * 1024, input);
    let mut writer = BufWriter::with_capacity(64 * 1024, output);
    writer
        .write_all(&codec::AGENT_GREETING)
        .map_err(CodecError::from)?;
    writer.flush().map_err(CodecError::from)?;
    let theirs = codec::read_hello(&mut reader)?;
    let ours = Hello::ours();
    // Answer with our identity either way, so the deployer can name both versions.
    codec::write_hello(&mut writer, &ours)?;
    if theirs != ours {
        return Err(AgentError::VersionMismatch { ours, theirs });
    }
    let store = Store::open(store_dir, state_dir)?;
    let mut pins: Vec<TempRoots> = Vec::new();
    loop {
        let request = match codec::read_message::<Request>(&mut reader) {
            Ok(r) => r,
            // A deployer that went away (or was killed) ends the session.
            Err(CodecError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let response = match request {
            Request::Bye => return Ok(()),
            Request::AgentStatus => agent_status(&store),
            Request::QueryMissing { paths } => query_missing(&store, &paths, &mut pins),
            Request::Import { .. } => match import(&store, &mut reader) {
                Ok(response) => response,
                Err(lost) => {
                    // The stream cannot be followed to its end: say why, once,
                    // and end the session rather than read its rest as messages.
                    let message = format!("{lost}; the session ends");
                    let _ = codec::write_message(&mut writer, &Response::Error { message });
                    return Err(lost.into());
                }
            },
            Request::Activate(request) => {
                activation::activate(&store, store_dir, state_dir, &request)
            }
            Request::Confirm { generation } => {
                activation::confirm(store_dir, state_dir, generation)
            }
            Request::RollbackTo { generation } => {
                activation::rollback_to(store_dir, state_dir, generation)
            }
            Request::Status => activation::status(store_dir, state_dir),
            Request::Generations => activation::generations(state_dir),
            Request::Verify { repair } => activation::verify(&store, state_dir, repair),
        };
        codec::write_message(&mut writer, &response)?;
    }
}

fn agent_status(store: &Store) -> Response {
    // The probe runs the agent by its store path, so argv[0] names it even
    // when the store dir is reached through a symlink (which `current_exe`
    // would resolve away).
    let path = std::env::args()
        .next()
        .filter(|a| a.starts_with('/'))
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let registered = store
        .parse_path(&path)
        .map(|p| store.is_valid(&p))
        .unwrap_or(false);
    Response::AgentStatus { registered, path }
}

fn query_missing(store: &Store, paths: &[String], pins: &mut Vec<TempRoots>) -> Response {
    let parsed: Result<Vec<StorePath>, _> = paths.iter().map(|p| store.parse_path(p)).collect();
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Response::Error {
                message: crate::transport::error_chain(&e),
            }
        }
    };
    // Pin the whole closure: what is here must not be collected before the
    // deploy that needs it activates, nor what is about to arrive.
    match store.temp_roots(&parsed) {
        Ok(guard) => pins.push(guard),
        Err(e) => {
            return Response::Error {
                message: crate::transport::error_chain(&e),
            }
        }
    }
    // The database says what is registered; the disk says what is there. A
    // registered object that is gone (deleted by hand) is invalidated with
    // what depends on it, so it is sent again instead of trusted.
    // One database query for all paths; the disk is asked only about the
    // registered ones.
    let mut missing = store.missing(&parsed);
    let unregistered: BTreeSet<&StorePath> = missing.iter().collect();
    let gone: Vec<StorePath> = parsed
        .iter()
        .filter(|p| !unregistered.contains(p))
        .filter(|p| std::fs::symlink_metadata(store.real_path(p)).is_err())
        .cloned()
        .collect();
    if !gone.is_empty() {
        if let Err(e) = store.verify_closure(&gone, true) {
            return Response::Error {
                message: crate::transport::error_chain(&e),
            };
        }
        missing = store.missing(&parsed);
    }
    Response::Missing {
        paths: missing.iter().map(|p| p.as_str().to_string()).collect(),
    }
}

/// Imports one data stream; an error is a stream that cannot be followed to its end.
fn import(store: &Store, reader: &mut impl Read) -> Result<Response, CodecError> {
    let mut stream = DataStreamReader::new(reader);
    let outcome = store.import(&mut stream, ImportMode::Incremental);
    // Whatever happened, read up to the stream's end so the next message is
    // at a frame boundary (a refused stream must not desynchronize us).
    stream.drain()?;
    Ok(match outcome {
        Ok(report) => Response::Imported {
            objects: report.registered.len() as u64,
        },
        Err(e) => Response::Error {
            message: crate::transport::error_chain(&e),
        },
    })
}

/// Adds this executable (an uploaded, hash-checked temporary file) to the
/// store (rooted, so the host's `ferry gc` keeps it); it must land on
/// `expected`, the deployer's path for it. Then points `<state_dir>/bin/ferry`
/// at it, so `ferry` works in a shell on the host.
pub fn install_self(
    store_dir: &Path,
    state_dir: &Path,
    expected: &str,
) -> Result<StorePath, AgentError> {
    let store = Store::open(store_dir, state_dir)?;
    let exe = std::env::current_exe().map_err(AgentError::OwnExecutable)?;
    let path = crate::transport::bootstrap::AgentBinary::add_to_store(&store, &exe)?.store_path;
    if path.as_str() != expected {
        return Err(AgentError::WrongSelfPath {
            got: path.as_str().to_string(),
            expected: expected.to_string(),
        });
    }
    let bin = state_dir.join("bin");
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| AgentError::Io { path, source }
    };
    std::fs::create_dir_all(&bin).map_err(io(&bin))?;
    let tmp = bin.join(format!(".ferry-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(path.as_path(), &tmp).map_err(io(&tmp))?;
    std::fs::rename(&tmp, bin.join("ferry")).map_err(io(&bin))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_ends_a_stream_it_cannot_follow_with_one_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut input = Vec::new();
        codec::write_hello(&mut input, &Hello::ours()).unwrap();
        codec::write_message(&mut input, &Request::Import { objects: 1 }).unwrap();
        // A data frame announced past the limit; what follows would decode
        // as further frames and messages if the agent read on.
        input.extend(((codec::MAX_FRAME + 1) as u32).to_le_bytes());
        codec::write_frame(&mut input, b"\x00junk").unwrap();
        codec::write_message(&mut input, &Request::AgentStatus).unwrap();
        codec::write_message(&mut input, &Request::Bye).unwrap();

        let mut output = Vec::new();
        let err = serve(
            &dir.path().join("store"),
            &dir.path().join("var"),
            &input[..],
            &mut output,
        )
        .unwrap_err();
        assert!(err.to_string().contains("more than the limit"), "{err}");
        let mut out = &output[..];
        assert_eq!(
            codec::read_greeting(&mut out).unwrap(),
            codec::AGENT_GREETING
        );
        codec::read_hello(&mut out).unwrap();
        let Response::Error { message } = codec::read_message::<Response>(&mut out).unwrap() else {
            panic!("not an error response");
        };
        assert!(
            message.contains("more than the limit") && message.ends_with("the session ends"),
            "{message}"
        );
        assert!(out.is_empty(), "the agent answered past the lost stream");
    }
}

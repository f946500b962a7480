//! The agent protocol's wire format: greeting, version handshake, length-prefixed frames and their messages.
//!
//! This is the only module that uses bincode (pinned `=2.0.1`; DESIGN §7).
//! Invariants:
//! - the greeting and the handshake are fixed raw bytes, independent of
//!   bincode, so two ferry versions can always tell each other apart, however
//!   their messages changed;
//! - every frame is `u32 LE length` + payload, and no frame is larger than
//!   [`MAX_FRAME`]: a peer cannot make the other allocate more than that;
//! - a data stream is a run of raw data frames ended by an empty frame;
//! - activation reports, host statuses and generation lists travel as JSON
//!   text inside the bincode message: they contain serde internally-tagged
//!   enums (`#[serde(tag = …)]`: the activation outcome, health probes),
//!   which need `deserialize_any`, which bincode (not self-describing)
//!   cannot do. JSON is also the format the host already stores them in.
use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// Bumped whenever a message or the framing changes.
pub const PROTOCOL_VERSION: u32 = 2;

/// The version of the ferry binary speaking (shown in mismatch errors).
pub const FERRY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What an agent writes first, before anything else.
pub const AGENT_GREETING: [u8; 8] = *b"FERRYAG1";

/// What the bootstrap probe writes when the agent is not installed yet.
pub const BOOTSTRAP_NEEDED: [u8; 8] = *b"FERRYBS1";

/// The largest frame either side sends or accepts.
pub const MAX_FRAME: usize = 16 << 20;

/// The size of the data frames a stream is cut into.
pub const DATA_CHUNK: usize = 1 << 20;

/// Errors of reading or writing the wire format.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("the connection broke: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
    #[error("the peer sent a frame of {size} bytes, more than the limit of {MAX_FRAME}")]
    FrameTooLarge { size: usize },
    #[error("a message of {size} bytes exceeds the frame limit of {MAX_FRAME}")]
    MessageTooLarge { size: usize },
    #[error("the peer sent a message this ferry cannot decode: {0}")]
    Decode(String),
    #[error("a message could not be encoded: {0}")]
    Encode(String),
    #[error("the peer's handshake is malformed")]
    BadHandshake,
}

/// A side's identity in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol: u32,
    pub version: String,
}

impl Hello {
    /// This binary's identity.
    pub fn ours() -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            version: FERRY_VERSION.to_string(),
        }
    }
}

/// Writes a handshake: `u32 LE protocol`, `u16 LE length`, version bytes.
pub fn write_hello(w: &mut impl Write, hello: &Hello) -> Result<(), CodecError> {
    let version = hello.version.as_bytes();
    let len = u16::try_from(version.len()).map_err(|_| CodecError::BadHandshake)?;
    w.write_all(&hello.protocol.to_le_bytes())?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(version)?;
    w.flush()?;
    Ok(())
}

/// Reads a handshake written by [`write_hello`].
pub fn read_hello(r: &mut impl Read) -> Result<Hello, CodecError> {
    let mut head = [0u8; 6];
    read_exact_or_closed(r, &mut head)?;
    let protocol = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let len = u16::from_le_bytes([head[4], head[5]]) as usize;
    let mut version = vec![0u8; len];
    read_exact_or_closed(r, &mut version)?;
    let version = String::from_utf8(version).map_err(|_| CodecError::BadHandshake)?;
    Ok(Hello { protocol, version })
}

/// Reads the 8-byte greeting that starts an agent's output.
pub fn read_greeting(r: &mut impl Read) -> Result<[u8; 8], CodecError> {
    let mut greeting = [0u8; 8];
    read_exact_or_closed(r, &mut greeting)?;
    Ok(greeting)
}

fn read_exact_or_closed(r: &mut impl Read, buf: &mut [u8]) -> Result<(), CodecError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => CodecError::Closed,
        _ => CodecError::Io(e),
    })
}

/// What the deployer asks of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Whether the agent's own executable is a valid path of its store.
    AgentStatus,
    /// Which of these paths (a whole closure) are missing? The agent pins the
    /// ones it has as temporary roots for the rest of the session.
    QueryMissing { paths: Vec<String> },
    /// A zstd-compressed store archive of `objects` objects follows as a data
    /// stream; the agent answers once, after importing all of it.
    Import { objects: u64 },
    /// Activate a system already in the host's store (secrets included);
    /// answered once the activation finished or rolled back.
    Activate(ActivateRequest),
    /// Magic rollback: the deployer reached the host again over a new
    /// connection; clears generation's pending confirmation.
    Confirm { generation: u64 },
    /// Activate an earlier generation again (same sequence, same rollback).
    RollbackTo { generation: u64 },
    /// What the host runs (converges an interrupted activation first).
    Status,
    /// The host's generations.
    Generations,
    /// The end of the session.
    Bye,
}

/// What to activate on a host and with what.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateRequest {
    /// The system's store path (its closure must already be on the host).
    pub system: String,
    /// Per-host facts for the services' environment (see [`crate::transport::session::host_env`]).
    pub host_env: BTreeMap<String, String>,
    /// Magic rollback: the deployer must confirm within this many
    /// milliseconds, else the host goes back by itself. `None`: no confirmation.
    pub confirm_within_ms: Option<u64>,
    /// Secret values for the services of this system only, by name.
    pub secrets: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for ActivateRequest {
    /// Names the secrets but never shows their values (requests end up in
    /// error messages and logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivateRequest")
            .field("system", &self.system)
            .field("host_env", &self.host_env)
            .field("confirm_within_ms", &self.confirm_within_ms)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One generation of a host, as `Generations` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationInfo {
    pub number: u64,
    /// When it was registered, Unix seconds.
    pub created: u64,
    /// The system store path.
    pub system: String,
    /// Whether the host runs it now.
    pub current: bool,
}

/// What an agent answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    AgentStatus {
        registered: bool,
        path: String,
    },
    Missing {
        paths: Vec<String>,
    },
    Imported {
        objects: u64,
    },
    /// An `ActivationReport` as JSON (see the module doc for why JSON).
    Activation {
        report_json: String,
    },
    Confirmed {
        confirmed: bool,
    },
    /// A `HostStatus` as JSON.
    Status {
        status_json: String,
    },
    /// A list of [`GenerationInfo`] as JSON.
    Generations {
        generations_json: String,
    },
    /// The request failed; the message says why, for the user.
    Error {
        message: String,
    },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// Writes one message as a frame.
pub fn write_message(w: &mut impl Write, message: &impl Serialize) -> Result<(), CodecError> {
    let payload = bincode::serde::encode_to_vec(message, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    write_frame(w, &payload)?;
    w.flush()?;
    Ok(())
}

/// Reads one message frame.
pub fn read_message<T: serde::de::DeserializeOwned>(r: &mut impl Read) -> Result<T, CodecError> {
    let payload = read_frame(r)?;
    let (value, used) = bincode::serde::decode_from_slice(&payload, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(CodecError::Decode(format!(
            "{} trailing bytes after the message",
            payload.len() - used
        )));
    }
    Ok(value)
}

/// Writes one raw frame (an empty one ends a data stream).
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> Result<(), CodecError> {
    if payload.len() > MAX_FRAME {
        return Err(CodecError::MessageTooLarge {
            size: payload.len(),
        });
    }
    // Bounded by MAX_FRAME just above, so it fits in a u32.
    w.write_all(&(payload.len() as u32).to_le_bytes())?;
    w.write_all(payload)?;
    Ok(())
}

/// Reads one raw frame, refusing sizes above [`MAX_FRAME`] before allocating.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, CodecError> {
    let mut len = [0u8; 4];
    read_exact_or_closed(r, &mut len)?;
    let size = u32::from_le_bytes(len) as usize;
    if size > MAX_FRAME {
        return Err(CodecError::FrameTooLarge { size });
    }
    let mut payload = vec![0u8; size];
    read_exact_or_closed(r, &mut payload)?;
    Ok(payload)
}

/// A `Write` that cuts what it is given into data frames; `finish` writes the
/// empty end frame.
pub struct DataStreamWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: Write> DataStreamWriter<W> {
    pub fn new(inner: W) -> Self {
        DataStreamWriter {
            inner,
            buffer: Vec::with_capacity(DATA_CHUNK),
        }
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            write_frame(&mut self.inner, &self.buffer).map_err(into_io)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Ends the stream and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, CodecError> {
        self.flush_chunk()?;
        write_frame(&mut self.inner, &[])?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for DataStreamWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = DATA_CHUNK - self.buffer.len();
        let n = data.len().min(room);
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == DATA_CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Frames are cut at chunk size, not at flushes: flushing on every
        // small write would make tiny frames.
        self.inner.flush()
    }
}

fn into_io(e: CodecError) -> std::io::Error {
    match e {
        CodecError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

/// A `Read` over a data stream: yields the data frames' bytes and reports
/// end of input at the empty end frame.
pub struct DataStreamReader<R: Read> {
    inner: R,
    current: Vec<u8>,
    offset: usize,
    ended: bool,
}

impl<R: Read> DataStreamReader<R> {
    pub fn new(inner: R) -> Self {
        DataStreamReader {
            inner,
            current: Vec::new(),
            offset: 0,
            ended: false,
        }
    }

    /// Reads and drops the rest of the stream, so the connection is back at
    /// a message boundary (used when an import fails part-way).
    pub fn drain(&mut self) -> Result<(), CodecError> {
        while !self.ended {
            let frame = read_frame(&mut self.inner)?;
            self.ended = frame.is_empty();
        }
        Ok(())
    }

    /// Whether the end frame was read.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

impl<R: Read> Read for DataStreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            self.current = read_frame(&mut self.inner).map_err(into_io)?;
            self.offset = 0;
            self.ended = self.current.is_empty();
        }
        let n = out.len().min(self.current.len() - self.offset);
        out[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_frames() {
        let mut wire = Vec::new();
        let request = Request::QueryMissing {
            paths: vec!["/ferry/store/a-x".into()],
        };
        write_message(&mut wire, &request).unwrap();
        write_message(&mut wire, &Response::Imported { objects: 3 }).unwrap();
        let mut r = &wire[..];
        assert_eq!(read_message::<Request>(&mut r).unwrap(), request);
        assert_eq!(
            read_message::<Response>(&mut r).unwrap(),
            Response::Imported { objects: 3 }
        );
        assert!(matches!(
            read_message::<Response>(&mut r),
            Err(CodecError::Closed)
        ));
    }

    #[test]
    fn oversized_frame_is_refused_before_allocating() {
        let wire = (u32::MAX).to_le_bytes();
        let err = read_frame(&mut &wire[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the peer sent a frame of {} bytes, more than the limit of {MAX_FRAME}",
                u32::MAX
            )
        );
    }

    #[test]
    fn garbage_payload_is_a_decode_error() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[0xff, 0xff, 0xff]).unwrap();
        assert!(matches!(
            read_message::<Request>(&mut &wire[..]),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn data_stream_round_trips_and_ends() {
        let data: Vec<u8> = (0..(3 * DATA_CHUNK + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut writer = DataStreamWriter::new(Vec::new());
        writer.write_all(&data).unwrap();
        let mut wire = writer.finish().unwrap();
        write_message(&mut wire, &Request::Bye).unwrap();
        let mut r = &wire[..];
        let mut reader = DataStreamReader::new(&mut r);
        let mut back = Vec::new();
        reader.read_to_end(&mut back).unwrap();
        assert!(reader.ended());
        assert_eq!(back, data);
        assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Bye);
    }

    #[test]
    fn drain_skips_to_the_next_message() {
        let mut writer = DataStreamWriter::new(Vec::new());
        writer.write_all(&vec![7u8; DATA_CHUNK + 5]).unwrap();
        let mut wire = writer.finish().unwrap();
        write_message(&mut wire, &Request::Bye).unwrap();
        let mut r = &wire[..];
        let mut reader = DataStreamReader::new(&mut r);
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        reader.drain().unwrap();
        assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Bye);
    }

    #[test]
    fn activation_messages_round_trip_and_hide_secret_values() {
        let request = Request::Activate(ActivateRequest {
            system: "/ferry/store/abc-system-web".into(),
            host_env: [("FERRY_HOST_NAME".to_string(), "web1".to_string())].into(),
            confirm_within_ms: Some(30_000),
            secrets: [("db".to_string(), b"hunter2".to_vec())].into(),
        });
        let mut wire = Vec::new();
        write_message(&mut wire, &request).unwrap();
        write_message(&mut wire, &Request::Confirm { generation: 4 }).unwrap();
        let report = Response::Activation {
            report_json: r#"{"outcome":"activated","generation":3}"#.into(),
        };
        write_message(&mut wire, &report).unwrap();
        let mut r = &wire[..];
        assert_eq!(read_message::<Request>(&mut r).unwrap(), request);
        assert_eq!(
            read_message::<Request>(&mut r).unwrap(),
            Request::Confirm { generation: 4 }
        );
        assert_eq!(read_message::<Response>(&mut r).unwrap(), report);
        let shown = format!("{request:?}");
        assert!(shown.contains("\"db\""), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn hello_round_trips() {
        let mut wire = Vec::new();
        write_hello(&mut wire, &Hello::ours()).unwrap();
        assert_eq!(read_hello(&mut &wire[..]).unwrap(), Hello::ours());
    }
}

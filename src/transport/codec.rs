//! The agent protocol's wire format: greeting, version handshake, length-prefixed frames and their messages.
//!
//! This is the only module that uses bincode (pinned `=2.0.1`; DESIGN §7).
//! Invariants:
//! - the greeting and the handshake are fixed raw bytes, independent of
//!   bincode, so two ferry versions can always tell each other apart, however
//!   their messages changed;
//! - every frame is `u32 LE length` + payload, and no frame is larger than
//!   [`MAX_FRAME`]: a peer cannot make the other allocate more than that;
//! - a data stream is a run of data frames ended by an empty frame; each data
//!   frame is one kind byte and a block of at most [`DATA_CHUNK`] stream
//!   bytes, sent as is ([`FRAME_RAW`]) or zstd-compressed on its own
//!   ([`FRAME_ZSTD`]) when that makes it meaningfully smaller, so
//!   incompressible data (already compressed files) costs neither side a
//!   codec pass, and text still travels compressed;
//! - activation reports, host statuses and generation lists travel as JSON
//!   text inside the bincode message: they contain serde internally-tagged
//!   enums (`#[serde(tag = …)]`: the activation outcome, health probes),
//!   which need `deserialize_any`, which bincode (not self-describing)
//!   cannot do. JSON is also the format the host already stores them in.
use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// Bumped whenever a message or the framing changes (3: data frames carry a
/// kind byte and are compressed one by one; 4: `Verify`).
pub const PROTOCOL_VERSION: u32 = 4;

/// The version of the ferry binary speaking (shown in mismatch errors).
pub const FERRY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What an agent writes first, before anything else.
pub const AGENT_GREETING: [u8; 8] = *b"FERRYAG1";

/// What the bootstrap probe writes when the agent is not installed yet.
pub const BOOTSTRAP_NEEDED: [u8; 8] = *b"FERRYBS1";

/// The largest frame either side sends or accepts.
pub const MAX_FRAME: usize = 16 << 20;

/// The size of the blocks a data stream is cut into (before compression); a
/// compressed frame never inflates to more than this.
pub const DATA_CHUNK: usize = 1 << 20;

/// Kind byte of a data frame whose block follows as is.
pub const FRAME_RAW: u8 = 0;

/// Kind byte of a data frame whose block follows as one zstd frame.
pub const FRAME_ZSTD: u8 = 1;

/// zstd level of data frames: the fastest standard level; the link, not the
/// ratio, is what a deploy waits for.
const ZSTD_LEVEL: i32 = 1;

/// Whether a block that compressed from `raw` to `packed` bytes is worth
/// sending compressed: it must save at least 1/16, else the receiver's
/// decompression costs more than the bytes saved.
fn worth_compressing(raw: usize, packed: usize) -> bool {
    packed < raw - raw / 16
}

/// How much of a block is compressed first to tell whether the whole block
/// is worth compressing.
const COMPRESSION_PROBE: usize = 64 << 10;

/// Errors of reading or writing the wire format.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading or writing the connection failed.
    #[error("the connection broke: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection where more was expected.
    #[error("the peer closed the connection")]
    Closed,
    /// A frame above [`MAX_FRAME`] was announced (refused before allocating).
    #[error("the peer sent a frame of {size} bytes, more than the limit of {MAX_FRAME}")]
    FrameTooLarge {
        /// The announced size.
        size: usize,
    },
    /// A message to send does not fit in one frame.
    #[error("a message of {size} bytes exceeds the frame limit of {MAX_FRAME}")]
    MessageTooLarge {
        /// Its encoded size.
        size: usize,
    },
    /// A frame's payload is not a message this ferry knows.
    #[error("the peer sent a message this ferry cannot decode: {0}")]
    Decode(String),
    /// A message could not be encoded.
    #[error("a message could not be encoded: {0}")]
    Encode(String),
    /// The handshake's bytes are not a handshake.
    #[error("the peer's handshake is malformed")]
    BadHandshake,
    /// A data frame's kind byte is neither [`FRAME_RAW`] nor [`FRAME_ZSTD`].
    #[error("the peer sent a data frame of unknown kind {kind}")]
    UnknownFrameKind {
        /// The kind byte.
        kind: u8,
    },
    /// A compressed data frame is corrupt or inflates beyond [`DATA_CHUNK`].
    #[error("the peer sent a compressed data frame that does not decompress to at most {DATA_CHUNK} bytes: {detail}")]
    BadCompressedFrame {
        /// The decompressor's complaint.
        detail: String,
    },
}

/// A side's identity in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the side.
    pub protocol: u32,
    /// [`FERRY_VERSION`] of the side.
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
    QueryMissing {
        /// The closure's store paths.
        paths: Vec<String>,
    },
    /// A store archive of `objects` objects follows as a data stream (its
    /// frames compressed where that pays); the agent answers once, after
    /// importing all of it.
    Import {
        /// How many objects the archive holds.
        objects: u64,
    },
    /// Activate a system already in the host's store (secrets included);
    /// answered once the activation finished or rolled back.
    Activate(ActivateRequest),
    /// Magic rollback: the deployer reached the host again over a new
    /// connection; clears generation's pending confirmation.
    Confirm {
        /// The generation to confirm.
        generation: u64,
    },
    /// Activate an earlier generation again (same sequence, same rollback).
    RollbackTo {
        /// The generation to go back to.
        generation: u64,
    },
    /// What the host runs (converges an interrupted activation first).
    Status,
    /// The host's generations.
    Generations,
    /// The end of the session.
    Bye,
    /// Re-hash the closure of the host's current system (drift: a
    /// hand-edited file, a deleted object). With `repair`, what is broken is
    /// quarantined and invalidated with everything that depends on it, so
    /// the next copy sends it again and the next activation restarts the
    /// services over it.
    Verify {
        /// Quarantine and invalidate what is broken.
        repair: bool,
    },
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
    /// Its number in the host's profile.
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
    /// The answer to `AgentStatus`.
    AgentStatus {
        /// The agent's executable is a valid path of the host's store.
        registered: bool,
        /// The agent's executable.
        path: String,
    },
    /// The answer to `QueryMissing`.
    Missing {
        /// The paths the host does not have, in no particular order.
        paths: Vec<String>,
    },
    /// The answer to `Import`, once everything is durable and valid.
    Imported {
        /// How many objects became valid.
        objects: u64,
    },
    /// An `ActivationReport` as JSON (see the module doc for why JSON).
    Activation {
        /// The report.
        report_json: String,
    },
    /// The answer to `Confirm`.
    Confirmed {
        /// False when nothing was waiting (already confirmed or rolled back).
        confirmed: bool,
    },
    /// A `HostStatus` as JSON.
    Status {
        /// The status.
        status_json: String,
    },
    /// A list of [`GenerationInfo`] as JSON.
    Generations {
        /// The list, oldest first.
        generations_json: String,
    },
    /// The request failed; the message says why, for the user.
    Error {
        /// Why.
        message: String,
    },
    /// The answer to `Verify`: the store's `VerifyReport`, as JSON.
    Verified {
        /// The report.
        report_json: String,
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

/// What is wrong with a message, in words (bincode's own `Display` is its
/// `Debug`, e.g. `UnexpectedEnd { additional: 1 }`).
fn describe_decode_error(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match e {
        E::UnexpectedEnd { additional: 1 } => "it is 1 byte short".into(),
        E::UnexpectedEnd { additional } => format!("it is {additional} bytes short"),
        E::LimitExceeded => format!("it would take more than {MAX_FRAME} bytes"),
        E::UnexpectedVariant {
            type_name, found, ..
        } => format!(
            "it names variant {found} of {type_name}, which this ferry does not have (another ferry version?)"
        ),
        E::Utf8 { .. } => "a text in it is not UTF-8".into(),
        E::InvalidBooleanValue(b) => format!("a flag in it is {b}, neither 0 nor 1"),
        E::OtherString(text) => text.clone(),
        E::Other(text) => (*text).into(),
        _ => "it is malformed".into(),
    }
}

/// Reads one message frame.
pub fn read_message<T: serde::de::DeserializeOwned>(r: &mut impl Read) -> Result<T, CodecError> {
    let payload = read_frame(r)?;
    let (value, used) = bincode::serde::decode_from_slice(&payload, config())
        .map_err(|e| CodecError::Decode(describe_decode_error(&e)))?;
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

/// A `Write` that cuts what it is given into data frames, each compressed
/// when that pays (see the module doc); `finish` writes the empty end frame.
/// A frame leaves in one write, its head included: a separate 5-byte write
/// would wake ssh for a 5-byte channel packet every frame.
pub struct DataStreamWriter<W: Write> {
    inner: W,
    /// A frame head's room, then the block being filled.
    buffer: Vec<u8>,
    /// A frame head's room, then room for a compressed block.
    packed: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
}

/// Bytes of a data frame's head: length and kind.
const FRAME_HEAD: usize = 5;

/// The head of a data frame whose block (after its kind byte) is `body` bytes.
fn frame_head(kind: u8, body: usize) -> [u8; FRAME_HEAD] {
    // A body is at most the compress bound of DATA_CHUNK, far below MAX_FRAME.
    let len = (body + 1) as u32;
    let mut head = [0u8; FRAME_HEAD];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4] = kind;
    head
}

impl<W: Write> DataStreamWriter<W> {
    /// A data stream written to `inner`.
    pub fn new(inner: W) -> Result<Self, CodecError> {
        let mut buffer = Vec::with_capacity(FRAME_HEAD + DATA_CHUNK);
        buffer.resize(FRAME_HEAD, 0);
        Ok(DataStreamWriter {
            inner,
            buffer,
            packed: vec![0; FRAME_HEAD + zstd::zstd_safe::compress_bound(DATA_CHUNK)],
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
        })
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        let block = &self.buffer[FRAME_HEAD..];
        if block.is_empty() {
            return Ok(());
        }
        // A block that is mostly incompressible (already compressed files,
        // random bytes) usually starts so: probe its first bytes, and only if
        // they shrink spend a zstd pass on the whole block.
        let probe = block.len().min(COMPRESSION_PROBE);
        let room = &mut self.packed[FRAME_HEAD..];
        let packed = if probe == block.len()
            || compress_into(&mut self.compressor, &block[..probe], room).is_some()
        {
            compress_into(&mut self.compressor, block, room)
        } else {
            None
        };
        let frame = match packed {
            Some(n) => {
                self.packed[..FRAME_HEAD].copy_from_slice(&frame_head(FRAME_ZSTD, n));
                &self.packed[..FRAME_HEAD + n]
            }
            None => {
                let head = frame_head(FRAME_RAW, block.len());
                self.buffer[..FRAME_HEAD].copy_from_slice(&head);
                &self.buffer[..]
            }
        };
        self.inner.write_all(frame)?;
        self.buffer.truncate(FRAME_HEAD);
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

/// Compresses `data` into `room` (which holds the compress bound of a whole
/// block); its compressed size if that is worth sending. A zstd error only
/// means the block goes raw.
fn compress_into(
    compressor: &mut zstd::bulk::Compressor<'static>,
    data: &[u8],
    room: &mut [u8],
) -> Option<usize> {
    compressor
        .compress_to_buffer(data, room)
        .ok()
        .filter(|&n| worth_compressing(data.len(), n))
}

impl<W: Write> Write for DataStreamWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = FRAME_HEAD + DATA_CHUNK - self.buffer.len();
        let n = data.len().min(room);
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == FRAME_HEAD + DATA_CHUNK {
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
        CodecError::Closed => std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the peer closed the connection",
        ),
        other => std::io::Error::other(other),
    }
}

/// Reads and drops `n` bytes of `inner`.
fn skip(inner: &mut impl Read, n: u64) -> Result<(), CodecError> {
    let skipped = std::io::copy(&mut inner.take(n), &mut std::io::sink())?;
    if skipped != n {
        return Err(CodecError::Closed);
    }
    Ok(())
}

/// A `Read` over a data stream: yields the blocks of its data frames and
/// reports end of input at the empty end frame. Raw blocks are read straight
/// into the caller's buffer; compressed ones are decompressed into a buffer
/// of at most [`DATA_CHUNK`] bytes (a frame cannot inflate past it).
pub struct DataStreamReader<R: Read> {
    inner: R,
    /// Bytes of the current raw block not read yet.
    raw_left: usize,
    /// The current decompressed block (its first `decoded_len` bytes) and
    /// how much of it was handed out.
    decoded: Vec<u8>,
    decoded_len: usize,
    offset: usize,
    packed: Vec<u8>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    ended: bool,
    /// The size of a refused frame whose length cannot be trusted: the
    /// stream cannot be followed past it.
    lost_at: Option<usize>,
}

impl<R: Read> DataStreamReader<R> {
    /// A data stream read from `inner`.
    pub fn new(inner: R) -> Self {
        DataStreamReader {
            inner,
            raw_left: 0,
            decoded: Vec::new(),
            decoded_len: 0,
            offset: 0,
            packed: Vec::new(),
            decompressor: None,
            ended: false,
            lost_at: None,
        }
    }

    /// Reads the next frame's length; `None` at the end frame.
    fn frame_length(&mut self) -> Result<Option<usize>, CodecError> {
        let mut len = [0u8; 4];
        read_exact_or_closed(&mut self.inner, &mut len)?;
        let size = u32::from_le_bytes(len) as usize;
        if size > MAX_FRAME {
            self.lost_at = Some(size);
            return Err(CodecError::FrameTooLarge { size });
        }
        if size == 0 {
            self.ended = true;
            return Ok(None);
        }
        Ok(Some(size))
    }

    /// Starts the next frame: a raw block is left in `inner` for `read`, a
    /// compressed one is decompressed into `decoded`.
    fn next_frame(&mut self) -> Result<(), CodecError> {
        let Some(size) = self.frame_length()? else {
            return Ok(());
        };
        let mut kind = [0u8];
        read_exact_or_closed(&mut self.inner, &mut kind)?;
        let body = size - 1;
        match kind[0] {
            FRAME_RAW => self.raw_left = body,
            FRAME_ZSTD => {
                self.packed.resize(body, 0);
                read_exact_or_closed(&mut self.inner, &mut self.packed)?;
                let decompressor = match &mut self.decompressor {
                    Some(d) => d,
                    slot => slot.insert(zstd::bulk::Decompressor::new()?),
                };
                // A block never inflates past DATA_CHUNK: a frame that would is
                // an error, not an allocation.
                self.decoded.resize(DATA_CHUNK, 0);
                self.offset = 0;
                self.decoded_len = 0;
                self.decoded_len = decompressor
                    .decompress_to_buffer(&self.packed, &mut self.decoded[..])
                    .map_err(|e| CodecError::BadCompressedFrame {
                        detail: e.to_string(),
                    })?;
            }
            other => {
                // Its length is within bounds: skip its body, so the stream
                // stays at a frame boundary for `drain`.
                skip(&mut self.inner, body as u64)?;
                return Err(CodecError::UnknownFrameKind { kind: other });
            }
        }
        Ok(())
    }

    /// Reads and drops the rest of the stream, so the connection is back at
    /// a message boundary (used when an import fails part-way). Frames are
    /// skipped, not decoded. A stream that cannot be followed (it announced
    /// a frame over [`MAX_FRAME`]) is an error: nothing after it can be
    /// trusted to be a frame, so the session must end.
    pub fn drain(&mut self) -> Result<(), CodecError> {
        if let Some(size) = self.lost_at {
            return Err(CodecError::FrameTooLarge { size });
        }
        self.offset = self.decoded_len;
        let mut left = self.raw_left as u64;
        self.raw_left = 0;
        loop {
            skip(&mut self.inner, left)?;
            if self.ended {
                return Ok(());
            }
            left = self.frame_length()?.unwrap_or(0) as u64;
        }
    }

    /// Whether the end frame was read.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

impl<R: Read> Read for DataStreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.offset < self.decoded_len {
                let n = out.len().min(self.decoded_len - self.offset);
                out[..n].copy_from_slice(&self.decoded[self.offset..self.offset + n]);
                self.offset += n;
                return Ok(n);
            }
            if self.raw_left > 0 {
                let want = out.len().min(self.raw_left);
                let got = self.inner.read(&mut out[..want])?;
                if got == 0 && want > 0 {
                    return Err(into_io(CodecError::Closed));
                }
                self.raw_left -= got;
                return Ok(got);
            }
            if self.ended || out.is_empty() {
                return Ok(0);
            }
            self.next_frame().map_err(into_io)?;
        }
    }
}

#[cfg(test)]
mod tests;

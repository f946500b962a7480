//! The deployer's end of an agent session: greeting, version handshake, counted request/response exchanges.
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::codec::{self, CodecError, Hello, Request, Response};
use super::process::{RemoteProcess, Transport, TransportError};

/// Errors of talking to an agent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The host could not be reached, or the agent's process not started.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Reading or writing the agent's messages failed.
    #[error(
        "talking to the agent on {host} failed: {source}{}",
        stderr_suffix(stderr)
    )]
    Codec {
        /// The host as the user named it.
        host: String,
        /// What failed.
        #[source]
        source: CodecError,
        /// What the agent's process wrote to stderr.
        stderr: String,
    },
    /// The agent speaks another protocol version.
    #[error(
        "the agent on {host} speaks protocol {} (ferry {}), but this ferry speaks protocol {} (ferry {})",
        theirs.protocol, theirs.version, ours.protocol, ours.version
    )]
    VersionMismatch {
        /// The host as the user named it.
        host: String,
        /// This ferry's handshake.
        ours: Hello,
        /// The agent's handshake.
        theirs: Hello,
    },
    /// The agent answered with an error.
    #[error("the agent on {host} refused: {message}")]
    Agent {
        /// The host as the user named it.
        host: String,
        /// The agent's reason.
        message: String,
    },
    /// The agent answered something other than the request's answer.
    #[error("the agent on {host} answered {got} where {expected} was expected")]
    Unexpected {
        /// The host as the user named it.
        host: String,
        /// The answer expected.
        expected: &'static str,
        /// The answer received.
        got: String,
    },
    /// Something other than the ferry agent answered.
    #[error(
        "{host} printed {output:?} instead of starting the ferry agent{}",
        stderr_suffix(stderr)
    )]
    NotAnAgent {
        /// The host as the user named it.
        host: String,
        /// What it printed instead of the greeting.
        output: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// Uploading or registering the agent failed.
    #[error("installing the ferry agent on {host} failed: {detail}")]
    Bootstrap {
        /// The host as the user named it.
        host: String,
        /// Why.
        detail: String,
    },
}

impl ConnectionError {
    /// What the user can do about it, when we know (for every caller: copy,
    /// session).
    pub fn hint(&self) -> Option<String> {
        match self {
            ConnectionError::Transport(t) => t.hint().map(str::to_string),
            ConnectionError::VersionMismatch { .. } => Some(
                "the host runs an agent from another ferry release; a fresh bootstrap normally \
                 avoids this, so check which ferry binary the host runs"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (the host said: {stderr})")
    }
}

/// A writer that counts the bytes passing through it (shared with progress display).
pub struct CountingWriter<W> {
    inner: W,
    count: Arc<AtomicU64>,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A live session with the agent on one host.
pub struct AgentConnection {
    host: String,
    process: RemoteProcess,
    reader: BufReader<Box<dyn Read + Send>>,
    writer: CountingWriter<BufWriter<Box<dyn Write + Send>>>,
    exchanges: u64,
    agent: Hello,
}

/// What a started script turned out to be.
pub enum Started {
    /// The agent answered the handshake.
    Agent(Box<AgentConnection>),
    /// The bootstrap probe says the agent is not installed.
    NeedsBootstrap,
}

impl AgentConnection {
    /// Runs `script` on the host and, if it starts an agent, does the
    /// handshake. A version mismatch is an error naming both versions.
    pub fn start(transport: &dyn Transport, script: &str) -> Result<Started, ConnectionError> {
        let host = transport.host().to_string();
        let mut process = transport.spawn(script)?;
        let stdout = std::mem::replace(&mut process.stdout, Box::new(std::io::empty()));
        let Some(stdin) = process.stdin.take() else {
            return Err(ConnectionError::Bootstrap {
                host,
                detail: "no stdin".to_string(),
            });
        };
        let mut reader = BufReader::with_capacity(256 * 1024, stdout);
        let greeting = match codec::read_greeting(&mut reader) {
            Ok(g) => g,
            Err(e) => {
                drop(stdin);
                let (_, stderr) = finish(process);
                let mut output = Vec::new();
                let _ = reader.read_to_end(&mut output);
                return Err(match e {
                    CodecError::Closed => ConnectionError::NotAnAgent {
                        host,
                        output: String::from_utf8_lossy(&output).into_owned(),
                        stderr,
                    },
                    source => ConnectionError::Codec {
                        host,
                        source,
                        stderr,
                    },
                });
            }
        };
        if greeting == codec::BOOTSTRAP_NEEDED {
            drop(stdin);
            let _ = finish(process);
            return Ok(Started::NeedsBootstrap);
        }
        if greeting != codec::AGENT_GREETING {
            drop(stdin);
            let mut output = greeting.to_vec();
            let _ = reader.by_ref().take(4096).read_to_end(&mut output);
            let (_, stderr) = finish(process);
            return Err(ConnectionError::NotAnAgent {
                host,
                output: String::from_utf8_lossy(&output).into_owned(),
                stderr,
            });
        }
        let writer = CountingWriter {
            inner: BufWriter::with_capacity(256 * 1024, stdin),
            count: Arc::new(AtomicU64::new(0)),
        };
        let mut connection = AgentConnection {
            host,
            process,
            reader,
            writer,
            exchanges: 0,
            agent: Hello::ours(),
        };
        connection.handshake()?;
        Ok(Started::Agent(Box::new(connection)))
    }

    fn handshake(&mut self) -> Result<(), ConnectionError> {
        let ours = Hello::ours();
        codec::write_hello(&mut self.writer, &ours).map_err(|e| self.codec_error(e))?;
        let theirs = codec::read_hello(&mut self.reader).map_err(|e| self.codec_error(e))?;
        self.exchanges += 1;
        if theirs != ours {
            return Err(ConnectionError::VersionMismatch {
                host: self.host.clone(),
                ours,
                theirs,
            });
        }
        self.agent = theirs;
        Ok(())
    }

    fn codec_error(&mut self, source: CodecError) -> ConnectionError {
        // The agent's (or ssh's) last words usually say why the stream broke.
        std::thread::sleep(std::time::Duration::from_millis(50));
        ConnectionError::Codec {
            host: self.host.clone(),
            source,
            stderr: self.process.stderr_text(),
        }
    }

    /// The host this connection talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The agent's identity from the handshake.
    pub fn agent(&self) -> &Hello {
        &self.agent
    }

    /// How many request/response exchanges (round trips) this session made,
    /// the handshake included.
    pub fn exchanges(&self) -> u64 {
        self.exchanges
    }

    /// Bytes written to the agent so far (after compression).
    pub fn bytes_sent(&self) -> u64 {
        self.writer.count.load(Ordering::Relaxed)
    }

    /// A live view of [`Self::bytes_sent`] for progress display.
    pub fn bytes_sent_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.writer.count)
    }

    /// One exchange: sends `request`, returns the answer; an agent's error
    /// answer becomes [`ConnectionError::Agent`].
    pub fn request(&mut self, request: &Request) -> Result<Response, ConnectionError> {
        self.send(request)?;
        self.receive()
    }

    /// Sends a request without waiting for its answer (a data stream may follow).
    pub fn send(&mut self, request: &Request) -> Result<(), ConnectionError> {
        codec::write_message(&mut self.writer, request).map_err(|e| self.codec_error(e))
    }

    /// Where a data stream that follows a request is written.
    pub fn stream(&mut self) -> &mut dyn Write {
        &mut self.writer
    }

    /// Reads the answer to the request sent last; completes one exchange.
    pub fn receive(&mut self) -> Result<Response, ConnectionError> {
        self.writer
            .flush()
            .map_err(|e| self.codec_error(e.into()))?;
        let response =
            codec::read_message::<Response>(&mut self.reader).map_err(|e| self.codec_error(e))?;
        self.exchanges += 1;
        match response {
            Response::Error { message } => Err(ConnectionError::Agent {
                host: self.host.clone(),
                message,
            }),
            other => Ok(other),
        }
    }

    /// What the host's side (agent or ssh) wrote to stderr so far.
    pub fn host_stderr(&self) -> String {
        self.process.stderr_text()
    }

    /// Ends the session politely and waits for the agent to exit.
    pub fn close(mut self) -> Result<(), ConnectionError> {
        codec::write_message(&mut self.writer, &Request::Bye).map_err(|e| self.codec_error(e))?;
        let AgentConnection {
            process,
            writer,
            host,
            ..
        } = self;
        drop(writer);
        let (status, stderr) = finish(process);
        match status {
            Some(s) if s.success() => Ok(()),
            _ => Err(ConnectionError::Codec {
                host,
                source: CodecError::Closed,
                stderr,
            }),
        }
    }

    /// Kills the session's process (used when a copy is abandoned).
    pub fn kill(mut self) {
        self.process.kill();
    }
}

fn finish(process: RemoteProcess) -> (Option<std::process::ExitStatus>, String) {
    match process.wait() {
        Ok((status, stderr)) => (Some(status), stderr),
        Err(e) => (None, e.to_string()),
    }
}

//! Health checks: a command that must exit 0, a TCP port that must accept, an
//! HTTP URL that must answer with a given status; each with a timeout per
//! attempt, retries and an interval, and a typed reason when it fails.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::env::BASE_PATH;
use super::manifest::{HealthCheck, HealthProbe};
use super::process::{run_with_deadline, DeadlineError};

/// Why one attempt of a check failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthFailure {
    /// The command exited non-zero (`output`: the tail of what it printed).
    #[error("command exited with {status}{}", tail_suffix(output))]
    CommandFailed {
        /// Its exit status.
        status: String,
        /// The tail of its output.
        output: String,
    },
    /// The command ran past its time limit and was killed.
    #[error("command did not finish within {timeout_ms} ms")]
    CommandTimeout {
        /// The time limit, in milliseconds.
        timeout_ms: u64,
    },
    /// The command could not be started.
    #[error("command could not start: {message}")]
    CommandSpawn {
        /// Why.
        message: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {address}: {message}")]
    Resolve {
        /// `host:port`.
        address: String,
        /// Why.
        message: String,
    },
    /// The TCP connection was refused or failed.
    #[error("connection to {address} failed: {message}")]
    Connect {
        /// `host:port`.
        address: String,
        /// Why.
        message: String,
    },
    /// Nothing answered within the time limit.
    #[error("no answer from {address} within {timeout_ms} ms")]
    Timeout {
        /// `host:port`.
        address: String,
        /// The time limit, in milliseconds.
        timeout_ms: u64,
    },
    /// The HTTP status was not the expected one.
    #[error("HTTP status {got}, expected {expected}")]
    Status {
        /// The status answered.
        got: u16,
        /// The status expected.
        expected: u16,
    },
    /// The HTTP answer could not be parsed.
    #[error("not an HTTP response: {message}")]
    BadResponse {
        /// What is wrong with it.
        message: String,
    },
    /// The TLS handshake failed, or the certificate was not trusted.
    #[error("TLS with {address} failed: {message}")]
    Tls {
        /// `host:port`.
        address: String,
        /// Why (rustls's words: an unknown issuer, a name mismatch, …).
        message: String,
    },
    /// The URL is not an `http://` URL this checker understands.
    #[error("URL {url:?} is not supported: {message}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
}

fn tail_suffix(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

/// The outcome of one check after all its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// The service the check belongs to.
    pub service: String,
    /// A short description of the probe (`http http://…`, `tcp host:port`, `command …`).
    pub check: String,
    /// How many attempts ran.
    pub attempts: u32,
    /// `None` when the check passed; else the last attempt's failure.
    pub failure: Option<HealthFailure>,
}

impl HealthResult {
    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Where and how command checks run.
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    /// Environment of the command (the service's environment).
    pub env: BTreeMap<String, String>,
    /// Working directory (the service's state dir), if it exists.
    pub cwd: Option<std::path::PathBuf>,
    /// The class's package tree, seen as `/usr` by the command.
    pub usr: Option<std::path::PathBuf>,
}

/// Describes a probe for reports.
pub fn describe(probe: &HealthProbe) -> String {
    match probe {
        HealthProbe::Command { cmd } => format!("command {cmd}"),
        HealthProbe::Tcp { host, port } => format!("tcp {host}:{port}"),
        HealthProbe::Http {
            url, expect_status, ..
        } => format!("http {url} (expect {expect_status})"),
    }
}

/// Runs `check` until it passes or its attempts run out.
pub fn run_check(service: &str, check: &HealthCheck, context: &CommandContext) -> HealthResult {
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    let attempts_allowed = check.retries.saturating_add(1);
    let mut attempts = 0;
    let mut failure = None;
    while attempts < attempts_allowed {
        if attempts > 0 {
            std::thread::sleep(Duration::from_millis(check.interval_ms));
        }
        attempts += 1;
        match probe_once(&check.probe, timeout, context) {
            Ok(()) => {
                failure = None;
                break;
            }
            Err(f) => failure = Some(f),
        }
    }
    HealthResult {
        service: service.to_string(),
        check: describe(&check.probe),
        attempts,
        failure,
    }
}

/// One attempt of a probe.
pub fn probe_once(
    probe: &HealthProbe,
    timeout: Duration,
    context: &CommandContext,
) -> Result<(), HealthFailure> {
    match probe {
        HealthProbe::Command { cmd } => probe_command(cmd, timeout, context),
        HealthProbe::Tcp { host, port } => connect(host, *port, timeout).map(|_| ()),
        HealthProbe::Http {
            url,
            expect_status,
            ca,
        } => probe_http(url, *expect_status, ca.as_deref().map(Path::new), timeout),
    }
}

fn probe_command(
    cmd: &str,
    timeout: Duration,
    context: &CommandContext,
) -> Result<(), HealthFailure> {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .env("PATH", BASE_PATH)
        .envs(&context.env);
    if let Some(cwd) = context.cwd.as_deref().filter(|p| Path::new(p).is_dir()) {
        command.current_dir(cwd);
    }
    if let Some(tree) = &context.usr {
        if let Err(e) = super::usr_tree::run_over(&mut command, tree, None) {
            return Err(HealthFailure::CommandSpawn {
                message: e.to_string(),
            });
        }
    }
    let finished = run_with_deadline(command, timeout).map_err(|e| match e {
        DeadlineError::TempFile(e) => HealthFailure::CommandSpawn {
            message: format!("temporary file: {e}"),
        },
        DeadlineError::Spawn(e) | DeadlineError::Wait(e) => HealthFailure::CommandSpawn {
            message: e.to_string(),
        },
        DeadlineError::TimedOut => HealthFailure::CommandTimeout {
            timeout_ms: timeout.as_millis() as u64,
        },
    })?;
    if finished.status.success() {
        return Ok(());
    }
    Err(HealthFailure::CommandFailed {
        status: finished.status.to_string(),
        output: finished.output_tail,
    })
}

fn last_chars(text: &str, n: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(n)).collect()
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, HealthFailure> {
    let address = format!("{host}:{port}");
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| HealthFailure::Resolve {
            address: address.clone(),
            message: e.to_string(),
        })?
        .collect();
    let mut last = HealthFailure::Resolve {
        address: address.clone(),
        message: "no addresses".into(),
    };
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = HealthFailure::Timeout {
                    address: address.clone(),
                    timeout_ms: timeout.as_millis() as u64,
                }
            }
            Err(e) => {
                last = HealthFailure::Connect {
                    address: address.clone(),
                    message: e.to_string(),
                }
            }
        }
    }
    Err(last)
}

/// A parsed `http[s]://host[:port][/path]` URL.
#[derive(Debug, PartialEq, Eq)]
struct HttpUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_http_url(url: &str) -> Result<HttpUrl, HealthFailure> {
    let bad = |message: &str| HealthFailure::BadUrl {
        url: url.to_string(),
        message: message.to_string(),
    };
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(bad("only http:// and https:// URLs are checked")),
    };
    let default_port = if tls { 443 } else { 80 };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let end = bracketed.find(']').ok_or_else(|| bad("unclosed '['"))?;
        let host = &bracketed[..end];
        let port = match &bracketed[end + 1..] {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad port"))?,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(HttpUrl {
        tls,
        host,
        port,
        path: path.to_string(),
    })
}

fn probe_http(
    url: &str,
    expect: u16,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<(), HealthFailure> {
    let parsed = parse_http_url(url)?;
    let address = format!("{}:{}", parsed.host, parsed.port);
    let started = Instant::now();
    let tcp = connect(&parsed.host, parsed.port, timeout)?;
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    let _ = tcp.set_read_timeout(Some(left));
    let _ = tcp.set_write_timeout(Some(left));
    let tls_failure = |message: String| HealthFailure::Tls {
        address: address.clone(),
        message,
    };
    if !parsed.tls {
        return exchange(tcp, &parsed, expect, started, timeout);
    }
    let config = super::tls::client_config(ca).map_err(tls_failure)?;
    let name = rustls::pki_types::ServerName::try_from(parsed.host.clone())
        .map_err(|e| tls_failure(format!("{:?} is not a server name: {e}", parsed.host)))?;
    let connection =
        rustls::ClientConnection::new(config, name).map_err(|e| tls_failure(e.to_string()))?;
    let stream = rustls::StreamOwned::new(connection, tcp);
    exchange(stream, &parsed, expect, started, timeout)
}

/// One GET over `stream` (plain or TLS); only the status line matters. A
/// TLS error surfaces as an I/O error of kind `InvalidData`.
fn exchange(
    mut stream: impl Read + Write,
    parsed: &HttpUrl,
    expect: u16,
    started: Instant,
    timeout: Duration,
) -> Result<(), HealthFailure> {
    let address = format!("{}:{}", parsed.host, parsed.port);
    let timed_out = || HealthFailure::Timeout {
        address: address.clone(),
        timeout_ms: timeout.as_millis() as u64,
    };
    let broke = |e: std::io::Error| {
        let message = e.to_string();
        if e.kind() == std::io::ErrorKind::InvalidData && parsed.tls {
            HealthFailure::Tls {
                address: address.clone(),
                message,
            }
        } else {
            HealthFailure::Connect {
                address: address.clone(),
                message,
            }
        }
    };
    let host_header = if parsed.host.contains(':') {
        format!("[{}]:{}", parsed.host, parsed.port)
    } else {
        format!("{}:{}", parsed.host, parsed.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: ferry-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        parsed.path
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => timed_out(),
            _ => broke(e),
        })?;
    // Only the status line matters; read until its end.
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 8192 {
        if started.elapsed() >= timeout {
            return Err(timed_out());
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(timed_out())
            }
            Err(e) => return Err(broke(e)),
        }
    }
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let got = parse_status_line(line.trim_end()).ok_or_else(|| HealthFailure::BadResponse {
        message: if line.is_empty() {
            "connection closed before a status line".into()
        } else {
            format!("status line {:?}", last_chars(&line, 80))
        },
    })?;
    if got == expect {
        Ok(())
    } else {
        Err(HealthFailure::Status {
            got,
            expected: expect,
        })
    }
}

fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080/health?x=1").unwrap(),
            HttpUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/health?x=1".into()
            }
        );
        assert_eq!(
            parse_http_url("http://example").unwrap(),
            HttpUrl {
                tls: false,
                host: "example".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(parse_http_url("http://[::1]:81/").unwrap().host, "::1");
        assert_eq!(
            parse_http_url("https://x/").unwrap(),
            HttpUrl {
                tls: true,
                host: "x".into(),
                port: 443,
                path: "/".into()
            }
        );
        assert!(matches!(
            parse_http_url("ftp://x/"),
            Err(HealthFailure::BadUrl { .. })
        ));
        assert!(matches!(
            parse_http_url("http://x:notaport/"),
            Err(HealthFailure::BadUrl { .. })
        ));
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line("HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(parse_status_line("HTTP/1.0 500"), Some(500));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
    }
}

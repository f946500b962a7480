//! Health checks against real listeners, servers and commands started here.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use ferry::activate::health::{run_check, CommandContext, HealthFailure};
use ferry::activate::manifest::{HealthCheck, HealthProbe};

fn check(probe: HealthProbe, timeout_ms: u64, retries: u32) -> HealthCheck {
    HealthCheck {
        probe,
        timeout_ms,
        retries,
        interval_ms: 20,
    }
}

/// Serves `n` connections with `answer` (after reading the request head).
fn serve(answer: &'static [u8], n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => head.extend_from_slice(&buf[..k]),
                }
            }
            assert!(head.starts_with(b"GET /health HTTP/1.1\r\n"));
            let _ = stream.write_all(answer);
        }
    });
    port
}

fn http(port: u16, expect_status: u16) -> HealthProbe {
    HealthProbe::Http {
        url: format!("http://127.0.0.1:{port}/health"),
        expect_status,
        ca: None,
    }
}

#[test]
fn http_check_passes_on_the_expected_status_and_names_a_wrong_one() {
    let ok = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1);
    let result = run_check(
        "web",
        &check(http(ok, 200), 5000, 0),
        &CommandContext::default(),
    );
    assert!(result.passed(), "{result:?}");
    assert_eq!(result.attempts, 1);

    let bad = serve(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", 3);
    let result = run_check(
        "web",
        &check(http(bad, 200), 5000, 2),
        &CommandContext::default(),
    );
    assert_eq!(result.attempts, 3);
    assert_eq!(
        result.failure,
        Some(HealthFailure::Status {
            got: 503,
            expected: 200
        })
    );
    assert_eq!(
        result.failure.unwrap().to_string(),
        "HTTP status 503, expected 200"
    );
}

#[test]
fn http_check_reports_silence_and_garbage() {
    // Accepts, reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(3));
        drop(held);
    });
    let result = run_check(
        "web",
        &check(http(silent, 200), 150, 0),
        &CommandContext::default(),
    );
    assert!(
        matches!(
            result.failure,
            Some(HealthFailure::Timeout {
                timeout_ms: 150,
                ..
            })
        ),
        "{result:?}"
    );

    let garbage = serve(b"SSH-2.0-OpenSSH_9.2\r\n", 1);
    let result = run_check(
        "web",
        &check(http(garbage, 200), 5000, 0),
        &CommandContext::default(),
    );
    match result.failure {
        Some(HealthFailure::BadResponse { message }) => {
            assert!(message.contains("SSH-2.0"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tcp_check_connects_and_retries_until_a_listener_appears() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = HealthProbe::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    assert!(run_check(
        "db",
        &check(probe.clone(), 5000, 0),
        &CommandContext::default()
    )
    .passed());
    drop(listener);

    let refused = run_check(
        "db",
        &check(probe.clone(), 500, 1),
        &CommandContext::default(),
    );
    assert_eq!(refused.attempts, 2);
    match refused.failure {
        Some(HealthFailure::Connect { address, message }) => {
            assert_eq!(address, format!("127.0.0.1:{port}"));
            assert!(message.contains("refused"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // The listener comes up while the check is retrying.
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        drop(l);
    });
    let mut slow = check(probe, 5000, 200);
    slow.interval_ms = 10;
    let result = run_check("db", &slow, &CommandContext::default());
    assert!(result.passed(), "{result:?}");
    assert!(result.attempts > 1);
    late.join().unwrap();
}

#[test]
fn command_check_uses_exit_status_environment_and_timeout() {
    let mut context = CommandContext::default();
    context.env.insert("EXPECTED".into(), "yes".into());
    let pass = check(
        HealthProbe::Command {
            cmd: "test \"$EXPECTED\" = yes".into(),
        },
        2000,
        0,
    );
    assert!(run_check("app", &pass, &context).passed());

    let fail = check(
        HealthProbe::Command {
            cmd: "echo not ready >&2; exit 3".into(),
        },
        2000,
        0,
    );
    let result = run_check("app", &fail, &context);
    assert_eq!(
        result.failure.as_ref().map(|f| f.to_string()).as_deref(),
        Some("command exited with exit status: 3: not ready")
    );

    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg.pid");
    let slow = check(
        HealthProbe::Command {
            cmd: format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        },
        200,
        0,
    );
    let result = run_check("app", &slow, &context);
    assert_eq!(
        result.failure,
        Some(HealthFailure::CommandTimeout { timeout_ms: 200 })
    );
    // The whole process group went, including the background child.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..200).any(|_| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let dead = stat.map(|s| s.contains(") Z")).unwrap_or(true);
        if !dead {
            std::thread::sleep(Duration::from_millis(10));
        }
        dead
    });
    assert!(gone, "background child {pid} survived the timeout");
}

#[test]
fn unsupported_url_is_a_clear_failure() {
    let probe = HealthProbe::Http {
        url: "ftp://example.org/".into(),
        expect_status: 200,
        ca: None,
    };
    let result = run_check("web", &check(probe, 100, 3), &CommandContext::default());
    assert_eq!(
        result.failure.unwrap().to_string(),
        "URL \"ftp://example.org/\" is not supported: only http:// and https:// URLs are checked"
    );
}

/// A real TLS server: `openssl s_server -www` on a free port (killed on drop).
struct TlsServer(std::process::Child, u16);

impl TlsServer {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> TlsServer {
        let port = free_port();
        let child = std::process::Command::new("openssl")
            // Every local address: 127.0.0.2 reaches it under a name its
            // certificate does not carry.
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = TlsServer(child, port);
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "openssl s_server did not listen on {port}");
        server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `https://` checks passed `check` and `build`, but hosts refused them, so
/// every deploy with one rolled back. Against a real TLS server: a check
/// that trusts the server's CA passes; with the default roots the same
/// server is an unknown issuer; a name the certificate does not carry, plain
/// HTTP to the TLS port and a `ca` file without certificates fail, saying
/// what went wrong.
#[test]
fn https_checks_pass_against_a_server_their_ca_signed_and_fail_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::test_pki::test_pki(dir.path());
    let server = TlsServer::start(&cert, &key);
    let port = server.1;
    let https = |url: String, ca: Option<&std::path::Path>| HealthProbe::Http {
        url,
        expect_status: 200,
        ca: ca.map(|p| p.display().to_string()),
    };
    let run = |probe| run_check("web", &check(probe, 2000, 0), &CommandContext::default());

    let trusted = run(https(format!("https://127.0.0.1:{port}/"), Some(&ca)));
    assert!(trusted.passed(), "{:?}", trusted.failure);
    let by_name = run(https(format!("https://localhost:{port}/"), Some(&ca)));
    assert!(by_name.passed(), "{:?}", by_name.failure);

    let unknown = run(https(format!("https://127.0.0.1:{port}/"), None))
        .failure
        .unwrap();
    assert!(matches!(unknown, HealthFailure::Tls { .. }), "{unknown:?}");
    assert!(unknown.to_string().contains("UnknownIssuer"), "{unknown}");

    // 127.0.0.2 is loopback too, but not a name of the certificate.
    let wrong_name = run(https(format!("https://127.0.0.2:{port}/"), Some(&ca)))
        .failure
        .unwrap();
    assert!(
        matches!(wrong_name, HealthFailure::Tls { .. }),
        "{wrong_name:?}"
    );
    assert!(
        wrong_name
            .to_string()
            .contains("certificate not valid for name \"127.0.0.2\""),
        "{wrong_name}"
    );

    let plain = run(HealthProbe::Http {
        url: format!("http://127.0.0.1:{port}/"),
        expect_status: 200,
        ca: None,
    })
    .failure
    .unwrap();
    assert!(
        matches!(
            plain,
            HealthFailure::BadResponse { .. } | HealthFailure::Connect { .. }
        ),
        "{plain:?}"
    );

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let bad_ca = run(https(format!("https://127.0.0.1:{port}/"), Some(&not_pem)))
        .failure
        .unwrap();
    assert!(
        bad_ca.to_string().contains("holds no certificate"),
        "{bad_ca}"
    );
}

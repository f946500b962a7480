//! The agent protocol over the local transport: handshake, version mismatch, hostile input, copy.
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use ferry::transport::bootstrap::{probe_script, AgentBinary, AgentSettings};
use ferry::transport::codec::{self, Hello, Request, Response};
use ferry::transport::connection::{AgentConnection, ConnectionError, Started};
use ferry::transport::copy::{copy_to_host, SilentCopy};
use ferry::transport::local::LocalTransport;
use ferry::transport::shell;
use ferry_store::Store;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The agent's stderr as one line (miette wraps long messages).
fn flat(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn agent_script(root: &Path) -> String {
    format!(
        "exec {} --store-dir {} --state-dir {} remote --stdio",
        shell::quote(FERRY),
        shell::quote(&root.join("store").to_string_lossy()),
        shell::quote(&root.join("var").to_string_lossy())
    )
}

fn start(script: &str) -> Result<AgentConnection, ConnectionError> {
    match AgentConnection::start(&LocalTransport::new(), script)? {
        Started::Agent(c) => Ok(*c),
        Started::NeedsBootstrap => panic!("the agent asked for a bootstrap"),
    }
}

#[test]
fn handshake_then_query_missing_answers_what_the_store_lacks() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let here = store.add_bytes("here", b"here", false, &[]).unwrap();
    let mut connection = start(&agent_script(root.path())).unwrap();
    assert_eq!(connection.agent(), &Hello::ours());
    let absent = format!(
        "{}/0000000000000000000000000000000a-absent",
        root.path().join("store").display()
    );
    let answer = connection
        .request(&Request::QueryMissing {
            paths: vec![here.as_str().to_string(), absent.clone()],
        })
        .unwrap();
    assert_eq!(
        answer,
        Response::Missing {
            paths: vec![absent]
        }
    );
    assert_eq!(connection.exchanges(), 2, "handshake and one query");
    connection.close().unwrap();
}

#[test]
fn an_agent_of_another_protocol_is_a_clear_error() {
    // A stand-in for an agent from another ferry release: right greeting,
    // another protocol number.
    let script = r"printf 'FERRYAG1\143\000\000\000\005\0009.9.9'; cat > /dev/null";
    let err = start(script).err().expect("a mismatch must fail");
    assert_eq!(
        err.to_string(),
        format!(
            "the agent on localhost speaks protocol 99 (ferry 9.9.9), but this ferry speaks protocol {} (ferry {})",
            codec::PROTOCOL_VERSION,
            codec::FERRY_VERSION
        )
    );
}

#[test]
fn the_agent_refuses_a_deployer_of_another_protocol() {
    let root = tempfile::tempdir().unwrap();
    let mut agent = Command::new("sh")
        .args(["-c", &agent_script(root.path())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = agent.stdin.take().unwrap();
    codec::write_hello(
        &mut stdin,
        &Hello {
            protocol: 7,
            version: "0.0.7".into(),
        },
    )
    .unwrap();
    drop(stdin);
    let out = agent.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut stdout = &out.stdout[..];
    assert_eq!(
        codec::read_greeting(&mut stdout).unwrap(),
        codec::AGENT_GREETING
    );
    assert_eq!(
        codec::read_hello(&mut stdout).unwrap(),
        Hello::ours(),
        "the agent names its own version"
    );
    let stderr = flat(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "ferry agent: the deployer speaks protocol 7 (ferry 0.0.7), but this agent speaks protocol {} (ferry {})",
            codec::PROTOCOL_VERSION,
            codec::FERRY_VERSION
        )),
        "{stderr}"
    );
}

#[test]
fn something_else_than_an_agent_is_named_with_its_output() {
    let err = start("echo 'Welcome to host!'; echo oops >&2")
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "localhost printed \"Welcome to host!\\n\" instead of starting the ferry agent (the host said: oops)"
    );
}

#[test]
fn a_hostile_stream_is_refused_and_the_session_stays_usable() {
    let root = tempfile::tempdir().unwrap();
    let mut connection = start(&agent_script(root.path())).unwrap();
    connection.send(&Request::Import { objects: 1 }).unwrap();
    {
        let mut frames = codec::DataStreamWriter::new(connection.stream()).unwrap();
        frames
            .write_all(b"NOTANARCHIVE and some more bytes")
            .unwrap();
        frames.finish().unwrap();
    }
    let err = connection.receive().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the agent on localhost refused: not a ferry archive (bad magic bytes)"
    );
    // Still in step: the next exchange works.
    let answer = connection
        .request(&Request::QueryMissing { paths: vec![] })
        .unwrap();
    assert_eq!(answer, Response::Missing { paths: vec![] });
    connection.close().unwrap();
}

#[test]
fn an_oversized_frame_ends_the_agent_with_a_message() {
    let root = tempfile::tempdir().unwrap();
    let mut agent = Command::new("sh")
        .args(["-c", &agent_script(root.path())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = agent.stdin.take().unwrap();
    codec::write_hello(&mut stdin, &Hello::ours()).unwrap();
    stdin.write_all(&u32::MAX.to_le_bytes()).unwrap();
    drop(stdin);
    let mut stderr = Vec::new();
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let stderr = flat(&stderr);
    assert_eq!(agent.wait().unwrap().code(), Some(1));
    assert!(
        stderr
            .contains("the peer sent a frame of 4294967295 bytes, more than the limit of 16777216"),
        "{stderr}"
    );
}

#[test]
fn local_copy_into_the_same_store_sends_nothing_in_constant_exchanges() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
    let leaf = store.add_bytes("leaf", b"leaf", false, &[]).unwrap();
    let top = store
        .add_bytes(
            "top",
            format!("uses {leaf}").as_bytes(),
            false,
            std::slice::from_ref(&leaf),
        )
        .unwrap();
    let binary = AgentBinary::add_to_store(&store, Path::new(FERRY)).unwrap();
    let settings = AgentSettings {
        store_dir: root.path().join("store"),
        state_dir: root.path().join("var"),
    };
    // The probe finds the agent in the store and starts it from there.
    assert!(probe_script(&binary.store_path, &settings).contains(binary.store_path.as_str()));
    let closure = store.closure(&[top]).unwrap();
    let stats = copy_to_host(
        &LocalTransport::new(),
        &store,
        &binary,
        &closure,
        &settings,
        &SilentCopy,
    )
    .unwrap();
    assert_eq!(stats.closure_paths, 2);
    assert_eq!(stats.objects_sent, 0);
    assert!(!stats.agent_uploaded);
    assert_eq!(stats.exchanges, 3);
}

//! Test fixtures: real `.deb`s built with `dpkg-deb`, hostile ones built by hand, and a tiny
//! HTTP server on loopback serving files from a directory.
#![allow(dead_code)]
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ferry_debian::fetch::Sha256;

/// Builds `<out>/<package>.deb` with `dpkg-deb --build -Z<compression>` from a staging root
/// that `populate` fills (the `DEBIAN/control` is written here).
pub fn build_deb(
    out: &Path,
    package: &str,
    version: &str,
    compression: &str,
    populate: impl FnOnce(&Path),
) -> PathBuf {
    let root = out.join(format!("{package}-{compression}-root"));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {package}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: ferry tests <tests@example.invalid>\nDescription: test package\n"
        ),
    )
    .unwrap();
    populate(&root);
    let deb = out.join(format!("{package}-{compression}.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", &format!("-Z{compression}")])
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb runs (scripts/setup.sh installs dpkg)");
    assert!(
        status.status.success(),
        "dpkg-deb failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    deb
}

/// The staging tree of the "features" package: an executable, a setuid program, a relative
/// and an absolute symlink, a hard link, a plain file and a maintainer script.
pub fn populate_features(root: &Path) {
    let bin = root.join("usr/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("hello"), "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(bin.join("hello"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(bin.join("su-like"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(bin.join("su-like"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(bin.join("hello"), bin.join("hello-again")).unwrap();
    std::os::unix::fs::symlink("hello", bin.join("hi")).unwrap();
    let lib = root.join("lib64");
    fs::create_dir_all(&lib).unwrap();
    std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/ld-test.so", lib.join("ld-test.so")).unwrap();
    let doc = root.join("usr/share/doc/features");
    fs::create_dir_all(&doc).unwrap();
    fs::write(doc.join("README"), "plain data\n").unwrap();
    fs::set_permissions(doc.join("README"), fs::Permissions::from_mode(0o640)).unwrap();
    // A script that would leave a mark if anything ran it.
    let script = root.join("DEBIAN/postinst");
    fs::write(&script, "#!/bin/sh\ntouch /tmp/ferry-debian-postinst-ran\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
}

/// One entry of a hand-made data archive.
pub enum RawEntry {
    /// A regular file.
    File(&'static [u8], &'static [u8]),
    /// A directory.
    Dir(&'static [u8]),
    /// A symlink (path, target).
    Symlink(&'static [u8], &'static [u8]),
    /// A hard link (path, target).
    HardLink(&'static [u8], &'static [u8]),
    /// A character device.
    CharDevice(&'static [u8]),
    /// A FIFO.
    Fifo(&'static [u8]),
}

/// A tar stream of `entries`, with names written raw into the header (bypassing the `tar`
/// crate's own path checks, as a hostile archive would).
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, link, kind, data): (&[u8], &[u8], tar::EntryType, &[u8]) = match entry {
            RawEntry::File(name, data) => (name, b"", tar::EntryType::Regular, data),
            RawEntry::Dir(name) => (name, b"", tar::EntryType::Directory, b""),
            RawEntry::Symlink(name, target) => (name, target, tar::EntryType::Symlink, b""),
            RawEntry::HardLink(name, target) => (name, target, tar::EntryType::Link, b""),
            RawEntry::CharDevice(name) => (name, b"", tar::EntryType::Char, b""),
            RawEntry::Fifo(name) => (name, b"", tar::EntryType::Fifo, b""),
        };
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A `.deb` at `out` with a valid control archive and `data` as `data.tar` (uncompressed).
pub fn raw_deb(out: &Path, package: &str, data: &[u8]) -> PathBuf {
    let control = format!("Package: {package}\nVersion: 1.0\nArchitecture: all\n");
    let mut control_tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_path("./control").unwrap();
    header.set_size(control.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    control_tar.append(&header, control.as_bytes()).unwrap();
    let control_tar = control_tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&control_tar).unwrap();
    let control_gz = gz.finish().unwrap();

    let path = out.join(format!("{package}.deb"));
    let mut ar = ar::Builder::new(fs::File::create(&path).unwrap());
    let members: [(&[u8], &[u8]); 3] = [
        (b"debian-binary", b"2.0\n"),
        (b"control.tar.gz", &control_gz),
        (b"data.tar", data),
    ];
    for (name, bytes) in members {
        let header = ar::Header::new(name.to_vec(), bytes.len() as u64);
        ar.append(&header, bytes).unwrap();
    }
    path
}

/// The sha256 and size of a file.
pub fn digest_of(path: &Path) -> (Sha256, u64) {
    let bytes = fs::read(path).unwrap();
    (Sha256::of(&bytes), bytes.len() as u64)
}

/// Every path under `root` (relative, sorted) with what it is: `f <mode> <content hash>`,
/// `l <target>` or `d <mode>`. Two trees are identical exactly when these listings are.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                out.push(format!(
                    "{relative} l {}",
                    fs::read_link(&path).unwrap().display()
                ));
            } else if meta.is_dir() {
                out.push(format!("{relative} d {mode:o}"));
                stack.push(path);
            } else {
                let content = Sha256::of(&fs::read(&path).unwrap());
                out.push(format!("{relative} f {mode:o} {content}"));
            }
        }
    }
    out.sort();
    out
}

/// A minimal HTTP/1.1 server on 127.0.0.1 serving `GET /<path>` from a directory (and
/// `GET /broken/<path>` cut short); every response closes its connection. Stops when dropped.
pub struct HttpServer {
    /// The port it listens on.
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// The most connections that were open at once.
    pub max_concurrent: Arc<AtomicUsize>,
    /// How many requests were answered.
    pub requests: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `root`, answering at most 1,000 connections.
    pub fn serve(root: &Path) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let max_concurrent = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let root = root.to_path_buf();
        let (stop2, max2, req2) = (stop.clone(), max_concurrent.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming().take(1000) {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, open, max, req) =
                    (root.clone(), open.clone(), max2.clone(), req2.clone());
                workers.push(std::thread::spawn(move || {
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let _ = answer(stream, &root);
                    req.fetch_add(1, Ordering::SeqCst);
                    open.fetch_sub(1, Ordering::SeqCst);
                }));
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        HttpServer {
            port,
            stop,
            max_concurrent,
            requests,
            thread: Some(thread),
        }
    }

    /// The base URI of the served directory.
    pub fn base_uri(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request: the file under `root`, or 404.
fn answer(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let relative = path.trim_start_matches('/');
    // `broken/<path>` serves `<path>` but promises 1,000 bytes more: the transfer breaks off.
    let (relative, extra) = match relative.strip_prefix("broken/") {
        Some(rest) => (rest, 1000),
        None => (relative, 0),
    };
    let mut stream = stream;
    let file = if relative.split('/').any(|c| c == "..") {
        None
    } else {
        fs::File::open(root.join(relative)).ok()
    };
    match file {
        Some(mut file) => {
            let mut body = Vec::new();
            file.read_to_end(&mut body)?;
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() + extra
            )?;
            stream.write_all(&body)?;
        }
        None => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
    }
    stream.flush()
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// What a [`ScriptedServer`] answers to one request.
pub enum Reply {
    /// `200` with the whole body; the connection stays open for the next request.
    Body(Vec<u8>),
    /// `200` promising the whole body's length, then only its first half, then the
    /// connection closes: a transfer cut short.
    CutShort(Vec<u8>),
    /// This status with an empty body; the connection stays open.
    Status(u16),
}

/// An HTTP/1.1 server on 127.0.0.1 that answers request number `n` (from 0, over all
/// connections) for `path` with `script(n, path)`, keeping connections alive. Counts the
/// requests and the connections it accepted. Stops accepting when dropped.
pub struct ScriptedServer {
    /// The port it listens on.
    pub port: u16,
    /// How many requests arrived.
    pub requests: Arc<AtomicUsize>,
    /// How many connections were accepted.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Serves `script` until dropped.
    pub fn serve(script: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (stop2, requests2, connections2) =
            (stop.clone(), requests.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                connections2.fetch_add(1, Ordering::SeqCst);
                let (script, requests) = (script.clone(), requests2.clone());
                // Not joined: an idle kept-alive connection ends when the client closes it
                // or after the read timeout.
                std::thread::spawn(move || {
                    let _ = answer_scripted(stream, &*script, &requests);
                });
            }
        });
        ScriptedServer {
            port,
            requests,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URI of the server.
    pub fn base_uri(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers the requests of one connection as the script says, until it closes.
fn answer_scripted(
    stream: TcpStream,
    script: &dyn Fn(usize, &str) -> Reply,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
        }
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        match script(n, &path) {
            Reply::Body(body) => {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )?;
                stream.write_all(&body)?;
            }
            Reply::CutShort(body) => {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )?;
                stream.write_all(&body[..body.len() / 2])?;
                stream.flush()?;
                return Ok(());
            }
            Reply::Status(status) => {
                write!(
                    stream,
                    "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\n\r\n"
                )?;
            }
        }
        stream.flush()?;
    }
}

/// Store objects are read-only; a test that deletes a store makes them writable first.
pub fn make_writable(root: &Path) {
    let status = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(root)
        .status()
        .unwrap();
    assert!(status.success());
}

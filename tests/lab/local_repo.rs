//! A security update, end to end, from a signed Debian repository of our own:
//! built with `dpkg-deb` and `apt-ftparchive`, signed with a throwaway key and
//! served over HTTP from a lab host. Version 2 of a package is published,
//! `ferry lock --update` pins it, `plan` shows `1.0 → 2.0`, `deploy` switches
//! to it without sending the unchanged packages again, and `rollback` brings
//! the version-1 bytes back. The hosts are `root` lab hosts, where the
//! deployer's `/usr` is not visible: the service runs from its closure. Needs root (CI is root) and the machine's apt
//! sources (for one real package, busybox-static).
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../debian/tests/signed_repo/mod.rs"]
mod signed_repo;

use super::common::noise;
use signed_repo::{Entry, SignedRepo};

const SITE: &str = "t-localrepo";
const PORT: u16 = 8480;
/// Bytes of incompressible payload in `greeting` (which changes) and in
/// `ballast` (which does not).
const GREETING_PAYLOAD: usize = 1 << 20;
const BALLAST_PAYLOAD: usize = 4 << 20;

/// The repository plus a deployer that reads apt's configuration from a root
/// whose one source is that repository, on a lab host's address.
struct Deployer {
    repo: SignedRepo,
    dir: tempfile::TempDir,
    site: PathBuf,
}

impl Deployer {
    fn ferry(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_APT_ROOT", self.repo.root().join("sysroot"))
            .env("FERRY_DEB_CACHE", self.dir.path().join("debs"))
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(out.status.success(), "ferry {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn site(&self) -> &str {
        self.site.to_str().unwrap()
    }

    fn ssh(&self, host: &str, command: &str) -> String {
        let out = Command::new("ssh")
            .args([
                "-F",
                &format!("/run/ferry-lab/{SITE}/ssh_config"),
                host,
                command,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// What h0's service read from its closure's `greeting` package, once it has.
    fn message_on_h0(&self, expected: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.ssh("h0", "cat /ferry/var/lib/greet/message 2>/dev/null");
            if seen == expected || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `deploy --json`: the bytes the copy sent to `host`.
    fn deploy_sending(&self, host: &str) -> u64 {
        let out = self.ok(&["deploy", self.site(), "--yes", "--json"]);
        let done: serde_json::Value =
            serde_json::from_str(out.lines().last().expect("deploy printed nothing")).unwrap();
        assert_eq!(done["event"], "done", "{out}");
        // Every event is stamped (RFC 3339, UTC).
        for line in out.lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                event["time"].as_str().is_some_and(|t| t.ends_with('Z')),
                "{line}"
            );
        }
        done["report"]["copies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["host"] == host)
            .unwrap_or_else(|| panic!("no copy to {host}: {out}"))["bytes_sent"]
            .as_u64()
            .unwrap()
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        let _ = self.ferry(&["lab", "down", self.site()]);
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An HTTP server for the repository, inside a lab host's network namespace;
/// killed on drop.
struct Server {
    child: Child,
}

impl Server {
    fn start(netns: &str, address: &str, dir: &Path) -> Server {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "python3", "-m", "http.server"])
            .arg(PORT.to_string())
            .args(["--bind", address, "--directory"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child };
        let at: SocketAddr = format!("{address}:{PORT}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&at, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the repository server never answered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real busybox-static `.deb`, downloaded through the machine's apt.
fn download_busybox_static(into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    signed_repo::run(
        Command::new("apt-get")
            .args([
                "download",
                "-o",
                "APT::Sandbox::User=root",
                "busybox-static",
            ])
            .current_dir(into),
    );
    std::fs::read_dir(into)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("apt-get download left no .deb")
}

fn publish_greeting(repo: &SignedRepo, version: &str, message: &str, seed: u64) {
    let payload = noise(GREETING_PAYLOAD, seed);
    repo.add_package_with(
        "greeting",
        version,
        "all",
        "",
        "",
        &[
            (
                "usr/share/greeting/message",
                Entry::File(message.as_bytes()),
            ),
            ("usr/share/greeting/payload", Entry::File(&payload)),
        ],
    );
}

fn site_text(address: &str) -> String {
    format!(
        r#"
site = "{SITE}"
package tools = debian(["busybox-static", "ferry-sh"])
package greeting = debian("greeting")
package ballast = debian("ballast")
class web {{
  service greet {{
    exec = "${{tools}}/bin/sh -c '${{tools}}/bin/busybox cat ${{greeting}}/share/greeting/message > $STATE_DIRECTORY/message; ${{tools}}/bin/busybox test -s ${{ballast}}/share/ballast/payload && exec ${{tools}}/bin/busybox sleep 100481'"
  }}
}}
# h1 also serves the repository, at http://{address}:{PORT}/.
inventory = lab {{
  subnet = "10.237.191.0/24"
  kind = "root"
  hosts = [ {{ name = "h0", class = web }}, {{ name = "h1", class = web }} ]
}}
"#
    )
}

#[test]
fn a_package_update_from_a_signed_repository_is_planned_deployed_and_rolled_back_needs_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "lab hosts need root (CI runs as root)"
    );
    let repo = SignedRepo::new();
    let busybox = download_busybox_static(&repo.root().join("downloads"));
    repo.add_deb(&busybox);
    repo.add_package_with(
        "ferry-sh",
        "1.0",
        "all",
        "busybox-static",
        "",
        &[("bin/sh", Entry::Link("busybox"))],
    );
    publish_greeting(&repo, "1.0", "one", 1);
    let ballast = noise(BALLAST_PAYLOAD, 2);
    repo.add_package_with(
        "ballast",
        "1.0",
        "all",
        "",
        "",
        &[("usr/share/ballast/payload", Entry::File(&ballast))],
    );
    repo.publish();

    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.conf");
    // The lab's addresses are known once it is up; h1 is the second host.
    std::fs::write(&site, site_text("10.237.191.3")).unwrap();
    let d = Deployer { repo, dir, site };
    d.ok(&["lab", "up", d.site()]);
    let lab = ferry::lab::load(SITE).unwrap();
    let h1 = lab.hosts.iter().find(|h| h.name == "h1").unwrap();
    let uri = format!("http://{}:{PORT}/", h1.address);
    std::fs::write(&d.site, site_text(&h1.address)).unwrap();
    d.repo.apt_root(&uri);
    let server = Server::start(&h1.netns, &h1.address, &d.repo.repo());
    d.repo.apt_update(&uri);

    // Version 1, locked from the served repository and deployed.
    let locked = d.ok(&["lock", d.site()]);
    assert!(locked.contains("greeting 1.0"), "{locked}");
    let lock_text = std::fs::read_to_string(d.site.with_extension("lock")).unwrap();
    assert!(
        !lock_text.contains(&h1.address),
        "no repository location in the lock:\n{lock_text}"
    );
    let first = d.deploy_sending("h0");
    assert!(
        first > (GREETING_PAYLOAD + BALLAST_PAYLOAD) as u64,
        "the first deploy sent only {first} bytes"
    );
    assert_eq!(d.message_on_h0("one"), "one");
    // The service runs the closure's busybox, from the host's store.
    let exe = d.ssh("h0", "readlink /proc/$(pgrep -f -o 'sleep 100481')/exe");
    assert!(
        exe.starts_with("/ferry/store/") && exe.ends_with("/bin/busybox"),
        "the service runs {exe:?}"
    );

    // Version 2 is published; the lock moves only when asked.
    publish_greeting(&d.repo, "2.0", "two", 3);
    d.repo.publish();
    d.repo.apt_update(&uri);
    let plan = d.ok(&["plan", d.site()]);
    assert!(!plan.contains("greeting 1.0 → 2.0"), "{plan}");
    let updated = d.ok(&["lock", d.site(), "--update", "greeting"]);
    assert!(updated.contains("greeting 1.0 → 2.0"), "{updated}");
    let plan = d.ok(&["plan", d.site()]);
    assert!(plan.contains("greeting 1.0 → 2.0"), "{plan}");
    assert!(
        plan.contains("packages 4 Debian packages, 1 changed"),
        "{plan}"
    );
    assert!(!plan.contains("ballast"), "ballast did not change:\n{plan}");

    // The update sends greeting 2.0 and what refers to it, never the unchanged ballast.
    let second = d.deploy_sending("h0");
    assert_eq!(d.message_on_h0("two"), "two");
    println!(
        "first deploy sent {first} bytes; the update sent {second} bytes, {:.3} × the changed package's payload",
        second as f64 / GREETING_PAYLOAD as f64
    );
    let limit = GREETING_PAYLOAD as f64 * 1.1;
    assert!(
        (second as f64) <= limit,
        "the update sent {second} bytes, more than 1.1 × the changed package ({GREETING_PAYLOAD})"
    );

    // Rollback restores the version-1 bytes on the host.
    d.ok(&["rollback", d.site(), "--yes"]);
    assert_eq!(d.message_on_h0("one"), "one");

    // Host-level: a generation h0 does not have is refused (exit 2) before
    // anything switches, naming the ones it has; the version-2 one is
    // switched to.
    let listed = d.ok(&["generations", d.site(), "--on", "h0", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let generations = listed["generations"].as_array().unwrap();
    let v2 = generations
        .iter()
        .filter(|g| g["current"] == false)
        .filter_map(|g| g["number"].as_u64())
        .max()
        .unwrap();
    let out = d.ferry(&[
        "rollback",
        d.site(),
        "--on",
        "h0",
        "--host-generation",
        "999",
        "--yes",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        err.contains("generation 999 does not exist")
            && err.contains(&format!("{v2}"))
            && err.contains("(current "),
        "{err}"
    );
    assert_eq!(d.message_on_h0("one"), "one");
    d.ok(&[
        "rollback",
        d.site(),
        "--on",
        "h0",
        "--host-generation",
        &v2.to_string(),
        "--yes",
    ]);
    assert_eq!(d.message_on_h0("two"), "two");

    // With the repository gone, a deployer whose store and download cache
    // lack the packages cannot fetch them and names the repository; the one
    // whose store holds every locked package still builds. (The cache is the
    // new deployer's own: the test's shared one holds every `.deb` this run
    // fetched, which made the build pass whenever the machine's store did
    // not already hold them.)
    drop(server);
    let empty = d.dir.path().join("empty");
    let store = empty.join("store");
    let state = empty.join("var");
    let cache = empty.join("debs");
    let out = d.ferry(&[
        "--store-dir",
        store.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--deb-cache",
        cache.to_str().unwrap(),
        "build",
        d.site(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&h1.address), "{err}");
    d.ok(&["build", d.site()]);
}

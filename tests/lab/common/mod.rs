//! Shared set-up for the lab tests: a deployer store under a lab root, lab hosts, closures.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry::lab::{self, Lab};
use ferry_lang::inventory::{LabHostSpec, LabKind, LabSpec};
use ferry_store::{Store, StorePath};

/// A lab plus the deployer's store that lives under the lab's private root
/// (the hosts see their own store at the same path, so paths match).
pub struct Fleet {
    pub lab: Lab,
    pub root: PathBuf,
    pub store: Store,
    _tmp: tempfile::TempDir,
}

impl Fleet {
    pub fn up(name: &str, subnet: &str, hosts: usize) -> Fleet {
        Fleet::up_kind(name, subnet, hosts, LabKind::Namespace)
    }

    /// [`Fleet::up`] with hosts of `kind` (`Root`: each boots a Debian root of its own).
    pub fn up_kind(name: &str, subnet: &str, hosts: usize, kind: LabKind) -> Fleet {
        // A stale lab of an earlier, killed run must not get in the way.
        let _ = lab::down(name);
        let tmp = tempfile::Builder::new()
            .prefix("ferry-lab-test-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join("ferry");
        std::fs::create_dir_all(&root).unwrap();
        // The deployer's store on tmpfs: thousands of fsyncing adds on disk
        // would dominate the test's time, and the store's durability is not
        // what these tests are about (the hosts' stores stay on disk).
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=4g",
                "ferry-test",
                root.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(mounted.success(), "mount tmpfs on {}", root.display());
        let spec = LabSpec {
            subnet: Some(subnet.to_string()),
            kind,
            hosts: (0..hosts)
                .map(|i| LabHostSpec {
                    name: format!("h{i}"),
                    class: "web".into(),
                    labels: BTreeMap::new(),
                })
                .collect(),
        };
        let lab = match lab::up(name, &spec, &root) {
            Ok(lab) => lab,
            Err(e) => {
                // No Fleet exists yet to unmount it on drop.
                let _ = Command::new("umount").arg("--lazy").arg(&root).status();
                panic!("lab up: {e:?}");
            }
        };
        let store = Store::open(&root.join("store"), &root.join("var")).unwrap();
        Fleet {
            lab,
            root,
            store,
            _tmp: tmp,
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("var")
    }

    /// The host's store dir as seen from the root namespace.
    pub fn host_store(&self, host: &str) -> PathBuf {
        self.lab.host_private_dir(host, &self.root).join("store")
    }

    /// Store objects on the host (names in its store dir, temporary entries left out).
    pub fn host_objects(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.host_store(host))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Runs the ferry binary with this fleet's store and the lab's ssh config.
    pub fn ferry(&self, args: &[&str]) -> Output {
        self.ferry_command(args).output().expect("run ferry")
    }

    pub fn ferry_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .arg("--store-dir")
            .arg(self.store_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args);
        command
    }

    /// `ferry copy --json` of `paths` to `hosts`; returns the parsed per-host results.
    pub fn copy(&self, hosts: &[&str], paths: &[StorePath]) -> (Output, Vec<serde_json::Value>) {
        let config = self.lab.ssh_config();
        let mut args = vec![
            "copy",
            "--json",
            "--ssh-config",
            config.to_str().unwrap(),
            "--to",
        ];
        let to = hosts.join(",");
        args.push(&to);
        args.push("--");
        let texts: Vec<&str> = paths.iter().map(|p| p.as_str()).collect();
        args.extend(texts);
        let out = self.ferry(&args);
        let results = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out, results)
    }

    /// Runs a command on a lab host over real SSH.
    pub fn ssh(&self, host: &str, command: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.lab.ssh_config())
            .arg(host)
            .arg(command)
            .output()
            .unwrap()
    }
}

impl Fleet {
    /// `ferry store verify --json` on the host, run over SSH by the agent
    /// binary the bootstrap installed in the host's store; asserts it is
    /// clean and returns how many valid paths it checked.
    pub fn verify_on_host(&self, host: &str) -> u64 {
        let out = self.ssh(host, "ferry store verify --json");
        assert!(out.status.success(), "verify on {host}: {}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["corrupt"], serde_json::json!([]), "{report}");
        assert_eq!(
            report["missing_references"],
            serde_json::json!([]),
            "{report}"
        );
        report["checked"].as_u64().unwrap()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = lab::down(&self.lab.name);
        // Lazily: `self.store` (dropped after this) still holds the database open, and a
        // plain umount of a busy tmpfs fails, leaving a mount behind every test run.
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(&self.root)
            .status();
    }
}

/// Whether `path` is a mount point now (for checking that nothing is left behind).
pub fn is_mount_point(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let path = path.to_string_lossy();
    mounts
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path.as_ref()))
}

/// A closure of `n` small paths: `n - 1` leaves and one top object that references them all.
pub fn closure_of(store: &Store, tag: &str, n: usize) -> StorePath {
    let mut leaves = Vec::new();
    for i in 0..n.saturating_sub(1) {
        let body = format!("leaf {i} of {tag}\n");
        leaves.push(
            store
                .add_bytes(&format!("{tag}-leaf-{i}"), body.as_bytes(), false, &[])
                .unwrap(),
        );
    }
    let mut top = format!("top of {tag}\n");
    for leaf in &leaves {
        top.push_str(leaf.as_str());
        top.push('\n');
    }
    store
        .add_bytes(&format!("{tag}-top"), top.as_bytes(), false, &leaves)
        .unwrap()
}

/// `size` pseudo-random (incompressible) bytes, the same for the same seed.
pub fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut bytes = vec![0u8; size];
    for chunk in bytes.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = chunk.len();
        chunk.copy_from_slice(&state.to_le_bytes()[..n]);
    }
    bytes
}

/// One object of `size` pseudo-random (incompressible) bytes.
pub fn random_object(store: &Store, dir: &Path, name: &str, size: usize, seed: u64) -> StorePath {
    let file = dir.join(name);
    std::fs::write(&file, noise(size, seed)).unwrap();
    let path = store.add_path(&file, name, &[]).unwrap();
    std::fs::remove_file(&file).unwrap();
    path
}

pub fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

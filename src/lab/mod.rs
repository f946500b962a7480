//! The lab: a real SSH fleet on this machine, one network namespace and one sshd per host (DESIGN §11).
//!
//! Two kinds of host ([`LabKind`]): `namespace` hosts run an sshd in a private
//! mount namespace on the deployer's own root; `root` hosts boot systemd in a
//! Debian root of their own ([`image`], [`machine`]).
//!
//! Invariants:
//! - every lab lives under [`LAB_BASE`]`/<name>/`, and its `lab.json` records
//!   everything `up` made, so `down` can remove exactly that (and is safe twice);
//! - link names are derived from a hash of the lab name, so several labs can
//!   run at once without colliding (and fit Linux's 15-byte limit);
//! - addresses come from [`crate::inventory::lab`], the same rule the
//!   evaluator used, so closures that embed them stay true;
//! - host-key checking stays strict: the lab writes its own `known_hosts`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use ferry_lang::inventory::LabKind;
use ferry_lang::inventory::{HostEntry, LabSpec};
use serde::{Deserialize, Serialize};

use crate::inventory::lab::LabInventoryError;

pub mod cgroup;
pub mod image;
pub mod machine;
pub mod mounts;
pub mod network;
pub mod sshd;
pub mod status;
pub mod teardown;

pub use status::{status, LabHostStatus};
pub use teardown::down;

/// Where labs keep their files (keys, configs, per-host private dirs).
pub const LAB_BASE: &str = "/run/ferry-lab";

/// Errors of setting up, inspecting or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not run as root.
    #[error("the lab needs root (namespaces, links and mounts); run it as root")]
    NotRoot,
    /// The lab's name cannot name links and directories.
    #[error("lab name `{0}` is not usable: use 1-40 ASCII letters, digits, `-` or `_`")]
    BadLabName(String),
    /// A host's name cannot name a namespace.
    #[error("lab host name `{0}` is not usable: use ASCII letters, digits, `-`, `_` or `.`")]
    BadHostName(String),
    /// Two hosts share a name.
    #[error("the lab declares host `{0}` twice")]
    DuplicateHost(String),
    /// The lab's declaration gives no usable hosts.
    #[error(transparent)]
    Inventory(#[from] LabInventoryError),
    #[error("lab subnet {subnet} is already used by lab `{other}`; give this lab another subnet")]
    /// Another running lab has the subnet.
    SubnetInUse {
        /// The subnet.
        subnet: String,
        /// The lab using it.
        other: String,
    },
    #[error("`{command}` failed: {stderr}")]
    /// A command (`ip`, `mount`, …) failed.
    Command {
        /// The command line.
        command: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    #[error("cannot run `{program}`: {source}")]
    /// A program could not be started.
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    /// A file of the lab could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// sshd is not installed.
    #[error("the lab needs sshd at {}, which is not installed", sshd::SSHD)]
    NoSshd,
    #[error("sshd of lab host `{host}` did not start: {detail}")]
    /// A host's sshd did not come up.
    SshdStart {
        /// The lab host.
        host: String,
        /// Why.
        detail: String,
    },
    /// No such lab is up.
    #[error("no lab named `{0}` is running")]
    NotFound(String),
    /// `systemd-nspawn` is not installed.
    #[error("`root` lab hosts are booted with {}, which is not installed; install the `systemd-container` package", machine::NSPAWN)]
    NoNspawn,
    /// `mmdebstrap` is not installed (needed once, to build the root image).
    #[error("the root image of `root` lab hosts is built with mmdebstrap, which is not installed; install the `mmdebstrap` package")]
    NoMmdebstrap,
    /// The machine has no apt sources to build a root image from.
    #[error("no apt sources in /etc/apt/sources.list or /etc/apt/sources.list.d: `root` lab hosts are built from them")]
    NoAptSources,
    #[error("building the root image {} failed; mmdebstrap said:\n{log_tail}", image.display())]
    /// `mmdebstrap` failed.
    ImageBuild {
        /// The image tar it was to make.
        image: PathBuf,
        /// The end of its output.
        log_tail: String,
    },
    #[error("lab state file {path} is unreadable: {detail}")]
    /// The lab's `lab.json` does not parse.
    BadState {
        /// The state file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// One host of a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    /// The host's name in the site.
    pub name: String,
    /// Its class.
    pub class: String,
    /// Its address on the lab bridge.
    pub address: String,
    /// Its inventory labels.
    pub labels: BTreeMap<String, String>,
    /// The host's network namespace (`ip netns` name).
    pub netns: String,
    /// The root-namespace end of the host's veth pair.
    pub veth: String,
    /// A `root` host's machine (its own root file system, booted); `None` for namespace hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<machine::Machine>,
}

/// A running lab, as recorded in its `lab.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    /// The lab's name (the site's name).
    pub name: String,
    /// Its subnet, as the site declares it.
    pub subnet: String,
    /// What its hosts are.
    #[serde(default)]
    pub kind: LabKind,
    /// The bridge all its hosts hang on.
    pub bridge: String,
    /// The bridge's (the deployer's) address in the subnet.
    pub bridge_address: String,
    /// Directories each host sees as its own (e.g. `/ferry`, `/nix`).
    pub private_dirs: Vec<PathBuf>,
    /// ferry's store dir on the hosts.
    pub store_dir: PathBuf,
    /// ferry's state dir on the hosts.
    pub state_dir: PathBuf,
    /// Mount points `up` had to create (removed again by `down` when empty).
    pub created_mount_points: Vec<PathBuf>,
    /// Its hosts.
    pub hosts: Vec<LabHost>,
}

impl Lab {
    /// The lab's directory.
    pub fn dir(&self) -> PathBuf {
        lab_dir(&self.name)
    }

    /// The `ssh_config` to pass to `ssh -F` (and to ferry's `--ssh-config`).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir().join("ssh_config")
    }

    /// The lab's `known_hosts`, with every host's real key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir().join("known_hosts")
    }

    /// The private key the lab authorizes on every host.
    pub fn client_key(&self) -> PathBuf {
        self.dir().join("id_ed25519")
    }

    /// A host's own directory in the lab dir.
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.dir().join("hosts").join(host)
    }

    /// What a host sees at `mount_point` (one of `private_dirs`), seen from the root namespace.
    pub fn host_private_dir(&self, host: &str, mount_point: &Path) -> PathBuf {
        self.host_dir(host)
            .join("private")
            .join(mounts::private_dir_key(mount_point))
    }

    /// The hosts as an inventory: what `ferry copy`/`deploy` connect to.
    pub fn inventory(&self) -> Vec<HostEntry> {
        self.hosts
            .iter()
            .map(|h| HostEntry {
                name: h.name.clone(),
                class: h.class.clone(),
                address: h.address.clone(),
                user: Some("root".to_string()),
                port: None,
                labels: h.labels.clone(),
                identity_file: None,
            })
            .collect()
    }
}

/// What to make of a lab beyond its spec.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Directories each host gets privately (bind mounts of per-host dirs):
    /// those holding ferry's store and state dirs (`/ferry`), and any other
    /// a peer tool needs (`/nix`).
    pub private_dirs: Vec<PathBuf>,
    /// ferry's store dir on the hosts (set as `FERRY_STORE_DIR` in SSH sessions).
    pub store_dir: PathBuf,
    /// ferry's state dir on the hosts (`FERRY_STATE_DIR`); its `bin/` (the
    /// bootstrapped agent's `ferry` link) is put on the PATH of SSH sessions.
    pub state_dir: PathBuf,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            private_dirs: vec![PathBuf::from("/ferry")],
            store_dir: PathBuf::from("/ferry/store"),
            state_dir: PathBuf::from("/ferry/var"),
        }
    }
}

/// The directory of lab `name`.
pub fn lab_dir(name: &str) -> PathBuf {
    Path::new(LAB_BASE).join(name)
}

/// Reads a running lab's record.
pub fn load(name: &str) -> Result<Lab, LabError> {
    check_lab_name(name)?;
    let path = lab_dir(name).join("lab.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LabError::NotFound(name.to_string()))
        }
        Err(source) => return Err(LabError::Io { path, source }),
    };
    serde_json::from_str(&text).map_err(|e| LabError::BadState {
        path,
        detail: e.to_string(),
    })
}

fn save(lab: &Lab) -> Result<(), LabError> {
    let path = lab.dir().join("lab.json");
    let tmp = lab.dir().join("lab.json.tmp");
    // Serializing our own plain struct cannot fail.
    let text = serde_json::to_string_pretty(lab).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(|source| LabError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &path).map_err(|source| LabError::Io { path, source })
}

/// Brings lab `name` up with the hosts of `spec`; `root` is the directory each
/// host sees privately (ferry's store and state live under it).
///
/// Idempotent, and in place: hosts that already run are kept, missing or
/// broken ones are (re)made, hosts the spec no longer has are removed
/// ([`changes`] says which is which). Only a lab with another subnet, kind
/// or directories is taken down first. Addresses go by position (`.2 + i`),
/// so a host added at the end leaves every other host untouched.
pub fn up(name: &str, spec: &LabSpec, root: &Path) -> Result<Lab, LabError> {
    let options = LabOptions {
        private_dirs: vec![root.to_path_buf()],
        store_dir: root.join("store"),
        state_dir: root.join("var"),
    };
    up_with(name, spec, &options)
}

/// [`up`] with more private directories (e.g. `/nix` for a peer tool).
pub fn up_with(name: &str, spec: &LabSpec, options: &LabOptions) -> Result<Lab, LabError> {
    check_lab_name(name)?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(LabError::NotRoot);
    }
    match spec.kind {
        LabKind::Namespace if !Path::new(sshd::SSHD).exists() => return Err(LabError::NoSshd),
        LabKind::Root if !Path::new(machine::NSPAWN).exists() => return Err(LabError::NoNspawn),
        _ => {}
    }
    let mut seen = std::collections::BTreeSet::new();
    for host in &spec.hosts {
        check_host_name(&host.name)?;
        if !seen.insert(host.name.as_str()) {
            return Err(LabError::DuplicateHost(host.name.clone()));
        }
    }
    let entries = crate::inventory::lab::resolve(spec)?;
    let base = crate::inventory::lab::subnet_base(spec)?;
    let subnet = format!("{base}/24");
    check_subnet_free(name, &subnet)?;

    let image = match spec.kind {
        LabKind::Namespace => None,
        LabKind::Root => Some(image::RootImage::for_this_machine()?),
    };
    let wanted = plan(
        name,
        spec,
        &entries,
        &subnet,
        options,
        image.as_ref().map(|i| i.tree()).as_deref(),
    );
    if let Ok(existing) = load(name) {
        if same_shape(&existing, &wanted) {
            resize(&existing, &wanted)?;
        } else {
            down(name)?;
        }
    }
    let dir = lab_dir(name);
    std::fs::create_dir_all(dir.join("hosts")).map_err(|source| LabError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut lab = wanted;
    lab.created_mount_points = mounts::ensure_mount_points(&lab.private_dirs)?;
    if let Ok(existing) = load(name) {
        // Keep the record of mount points an earlier `up` created.
        for p in existing.created_mount_points {
            if !lab.created_mount_points.contains(&p) {
                lab.created_mount_points.push(p);
            }
        }
    }
    // Record before making anything, so a failed `up` can still be taken down.
    save(&lab)?;

    if let Some(image) = &image {
        image.ensure()?;
    }
    sshd::ensure_client_key(&lab)?;
    network::ensure_bridge(&lab)?;
    let results = run_parallel(&lab.hosts, |host| bring_up_host(&lab, host));
    results.into_iter().collect::<Result<Vec<()>, LabError>>()?;
    sshd::write_client_files(&lab)?;
    Ok(lab)
}

fn bring_up_host(lab: &Lab, host: &LabHost) -> Result<(), LabError> {
    if status::sshd_running(lab, host) && network::netns_exists(&host.netns) {
        return Ok(());
    }
    teardown::host(lab, host)?;
    mounts::ensure_host_dirs(lab, host)?;
    match &host.machine {
        None => {
            sshd::ensure_host_files(lab, host)?;
            network::add_host(lab, host)?;
            sshd::start(lab, host)
        }
        Some(machine) => {
            network::add_host(lab, host)?;
            machine::prepare(lab, host, machine)?;
            machine::boot(lab, host, machine)
        }
    }
}

/// Runs `job` for every host on a few threads: setup is mostly waiting on
/// short-lived `ip`/`ssh-keygen`/`sshd` processes, so threads overlap well
/// even on two cores.
pub(crate) fn run_parallel<T: Sync, R: Send>(items: &[T], job: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const WORKERS: usize = 8;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = job(item);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        // Every index below `items.len()` was taken by exactly one worker.
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

fn plan(
    name: &str,
    spec: &LabSpec,
    entries: &[HostEntry],
    subnet: &str,
    options: &LabOptions,
    image: Option<&Path>,
) -> Lab {
    let tag = network::lab_tag(name);
    let base = subnet.trim_end_matches(".0/24");
    Lab {
        name: name.to_string(),
        subnet: subnet.to_string(),
        kind: spec.kind,
        bridge: format!("fb{tag}"),
        bridge_address: format!("{base}.1"),
        private_dirs: options.private_dirs.clone(),
        store_dir: options.store_dir.clone(),
        state_dir: options.state_dir.clone(),
        created_mount_points: Vec::new(),
        hosts: entries
            .iter()
            .zip(&spec.hosts)
            .enumerate()
            .map(|(i, (entry, declared))| LabHost {
                name: entry.name.clone(),
                class: entry.class.clone(),
                address: entry.address.clone(),
                labels: declared.labels.clone(),
                netns: format!("ferry-{name}-{}", entry.name),
                veth: format!("fv{tag}{i:02x}"),
                machine: image.map(|image| {
                    machine::Machine::plan(
                        &lab_dir(name).join("hosts").join(&entry.name),
                        format!("fm{tag}{i:02x}"),
                        image,
                    )
                }),
            })
            .collect(),
    }
}

/// Whether `b` can be reached from `a` host by host: the same subnet,
/// kind and directories (the hosts may differ).
fn same_shape(a: &Lab, b: &Lab) -> bool {
    a.subnet == b.subnet
        && a.kind == b.kind
        && a.private_dirs == b.private_dirs
        && a.store_dir == b.store_dir
        && a.state_dir == b.state_dir
}

/// Whether a host can keep running as it is: the same address, links,
/// namespace and machine (its class and labels are only the inventory's).
fn same_host(a: &LabHost, b: &LabHost) -> bool {
    a.name == b.name
        && a.address == b.address
        && a.netns == b.netns
        && a.veth == b.veth
        && a.machine == b.machine
}

/// What `up` does to each host of a lab that already runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LabChanges {
    /// New hosts, made from nothing.
    pub added: Vec<String>,
    /// Hosts whose address or links moved (a host before them in the list
    /// came or went): remade, their private directories (store, state,
    /// generations) kept.
    pub remade: Vec<String>,
    /// Hosts left running untouched.
    pub kept: Vec<String>,
    /// Hosts the site no longer has: stopped, their directories removed.
    pub removed: Vec<String>,
}

/// How going from lab `before` (if one runs) to `after` treats each host.
pub fn changes(before: Option<&Lab>, after: &Lab) -> LabChanges {
    let before = before.filter(|b| same_shape(b, after));
    let old = |name: &str| before.and_then(|b| b.hosts.iter().find(|h| h.name == name));
    let mut changes = LabChanges::default();
    for host in &after.hosts {
        match old(&host.name) {
            None => changes.added.push(host.name.clone()),
            Some(was) if same_host(was, host) => changes.kept.push(host.name.clone()),
            Some(_) => changes.remade.push(host.name.clone()),
        }
    }
    for host in before.map(|b| b.hosts.as_slice()).unwrap_or_default() {
        if !after.hosts.iter().any(|h| h.name == host.name) {
            changes.removed.push(host.name.clone());
        }
    }
    changes
}

/// Brings a running lab's hosts to `wanted`'s without touching the hosts
/// that stay as they are: hosts that are gone stop and lose their
/// directories, hosts whose address or links moved stop (and are made
/// again by `up`, over their kept directories).
fn resize(existing: &Lab, wanted: &Lab) -> Result<(), LabError> {
    let leaving: Vec<&LabHost> = existing
        .hosts
        .iter()
        .filter(|h| !wanted.hosts.iter().any(|w| same_host(h, w)))
        .collect();
    let results = run_parallel(&leaving, |h| teardown::host(existing, h));
    results.into_iter().collect::<Result<Vec<()>, LabError>>()?;
    for host in leaving {
        if wanted.hosts.iter().any(|w| w.name == host.name) {
            continue;
        }
        teardown::refuse_mounted_root(host)?;
        let dir = existing.host_dir(&host.name);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LabError::Io {
                    path: dir,
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_subnet_free(name: &str, subnet: &str) -> Result<(), LabError> {
    let Ok(entries) = std::fs::read_dir(LAB_BASE) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        if other == name {
            continue;
        }
        if let Ok(lab) = load(&other) {
            if lab.subnet == subnet {
                return Err(LabError::SubnetInUse {
                    subnet: subnet.to_string(),
                    other,
                });
            }
        }
    }
    Ok(())
}

fn check_lab_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LabError::BadLabName(name.to_string()))
    }
}

fn check_host_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LabError::BadHostName(name.to_string()))
    }
}

/// Runs a helper program to completion; a non-zero exit is an error carrying its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| LabError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_lang::inventory::LabHostSpec;

    #[test]
    fn link_names_fit_ifnamsiz_and_differ_between_labs_and_hosts() {
        let spec = LabSpec {
            subnet: None,
            kind: LabKind::Namespace,
            hosts: (0..253)
                .map(|i| LabHostSpec {
                    name: format!("host-{i}"),
                    class: "web".into(),
                    labels: BTreeMap::new(),
                })
                .collect(),
        };
        let entries = crate::inventory::lab::resolve(&spec).unwrap();
        let a = plan(
            "a-very-long-lab-name-for-tests",
            &spec,
            &entries,
            "10.237.0.0/24",
            &LabOptions::default(),
            None,
        );
        let b = plan(
            "another",
            &spec,
            &entries,
            "10.237.0.0/24",
            &LabOptions::default(),
            None,
        );
        let mut names = std::collections::BTreeSet::new();
        for lab in [&a, &b] {
            assert!(lab.bridge.len() <= 15, "{}", lab.bridge);
            assert!(names.insert(lab.bridge.clone()));
            for host in &lab.hosts {
                assert!(host.veth.len() <= 15, "{}", host.veth);
                assert!(names.insert(host.veth.clone()), "{} twice", host.veth);
            }
        }
        assert_eq!(a.hosts[252].address, "10.237.0.254");
        assert_eq!(a.bridge_address, "10.237.0.1");
    }
}

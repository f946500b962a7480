//! The inventory contract between the language and the deployer.
//!
//! A site declares *where* its hosts come from (an [`InventorySource`]); the
//! evaluator never reads files or runs programs itself, so it asks an
//! [`InventoryResolver`] (implemented by the `ferry` binary in `src/inventory/`)
//! to turn that source into [`HostEntry`]s. The hosts are an input of
//! evaluation: `hosts(db)[0].address` in a site file reads them.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a site's hosts come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InventorySource {
    /// A static TOML file, path resolved relative to the declaring site file.
    File {
        /// The file's absolute path.
        path: PathBuf,
    },
    /// An external program (argv) printing the inventory as JSON on stdout.
    Exec {
        /// The program and its arguments.
        command: Vec<String>,
        /// The directory it runs in: that of the declaring site file.
        dir: PathBuf,
    },
    /// An Ansible inventory file (INI or YAML), groups map to classes.
    Ansible {
        /// The file's absolute path.
        path: PathBuf,
    },
    /// Hosts of the local lab (DESIGN §11); addresses are assigned by the lab.
    Lab(LabSpec),
}

/// A lab fleet as the site declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// IPv4 subnet in CIDR form, e.g. `10.237.1.0/24`; `None` lets the lab pick
    /// one derived from the site name.
    pub subnet: Option<String>,
    /// What a lab host is: a namespace sharing the deployer's root, or a
    /// booted machine with a root file system of its own.
    /// Serialized as `host_kind`: the inventory's own tag is `kind`.
    #[serde(
        default,
        rename = "host_kind",
        skip_serializing_if = "LabKind::is_default"
    )]
    pub kind: LabKind,
    /// The lab's hosts, in declaration order.
    pub hosts: Vec<LabHostSpec>,
}

/// The network address of a lab subnet, which must be an IPv4 /24 written
/// `a.b.c.0/24`; `None` for anything else. The evaluator checks a site's
/// subnet with it, and the lab provider assigns addresses from it.
pub fn lab_subnet_network(text: &str) -> Option<std::net::Ipv4Addr> {
    let (addr, "24") = text.split_once('/')? else {
        return None;
    };
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    (addr.octets()[3] == 0).then_some(addr)
}

/// The kinds of lab host, chosen with `kind = "…"` in `lab { … }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabKind {
    /// Network + mount namespace and an sshd, on the deployer's own root
    /// file system: light, for scale (the default).
    #[default]
    Namespace,
    /// A minimal Debian root of its own, booted with systemd in the host's
    /// network namespace: the deployer's `/usr` is not visible.
    Root,
}

impl LabKind {
    /// Every kind, in the order the diagnostic lists them.
    pub const ALL: [LabKind; 2] = [LabKind::Namespace, LabKind::Root];

    /// The word the declaration uses for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            LabKind::Namespace => "namespace",
            LabKind::Root => "root",
        }
    }

    /// Whether this is the kind a lab gets when it names none.
    pub fn is_default(&self) -> bool {
        *self == LabKind::default()
    }

    /// The kind named `word`, if any.
    pub fn from_word(word: &str) -> Option<LabKind> {
        LabKind::ALL.into_iter().find(|k| k.as_str() == word)
    }
}

impl std::fmt::Display for LabKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lab host as declared in the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHostSpec {
    /// The host's name, unique in the site.
    pub name: String,
    /// The class the host runs.
    pub class: String,
    /// Free-form labels such as `datacenter = "eu1"`.
    pub labels: BTreeMap<String, String>,
}

/// One real host, after the inventory was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// The host's name, unique in the site.
    pub name: String,
    /// The class the host runs.
    pub class: String,
    /// What `ssh` connects to: an IP address or a DNS name.
    pub address: String,
    /// SSH login user; `None` means the ssh config's default.
    pub user: Option<String>,
    /// SSH port; `None` means the ssh config's default.
    pub port: Option<u16>,
    /// Free-form labels such as `datacenter = "eu1"`.
    pub labels: BTreeMap<String, String>,
    /// The SSH private key to log in with; `None` means the ssh config's
    /// (and the agent's) keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
}

/// Turns an [`InventorySource`] into hosts. Implemented outside this crate.
pub trait InventoryResolver {
    /// Resolves the source; the error text is shown to the user at the
    /// span of the `inventory` declaration.
    fn resolve(&self, source: &InventorySource) -> Result<Vec<HostEntry>, String>;
}

//! Inventory providers: turn a site's `inventory` declaration into hosts.
//!
//! One file per provider (DESIGN §7); [`Providers`] dispatches on the source
//! kind and is what the CLI hands to the evaluator.
use std::path::PathBuf;

use ferry_lang::inventory::{HostEntry, InventoryResolver, InventorySource};

pub mod ansible;
pub mod exec;
pub mod file;
pub mod lab;

/// The inventory providers ferry ships, behind the language's resolver trait.
#[derive(Debug, Default, Clone, Copy)]
pub struct Providers;

impl InventoryResolver for Providers {
    fn resolve(&self, source: &InventorySource) -> Result<Vec<HostEntry>, String> {
        match source {
            InventorySource::Lab(spec) => lab::resolve(spec).map_err(|e| e.to_string()),
            InventorySource::Exec { command, dir } => {
                exec::resolve(command, dir).map_err(with_hint)
            }
            InventorySource::Ansible { path } => ansible::resolve(path).map_err(with_hint),
            InventorySource::File { path } => file::resolve(path).map_err(|e| e.to_string()),
        }
    }
}

/// Errors of the exec and Ansible providers, and of checking hosts against a site.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The `exec` inventory names no command.
    #[error("the inventory command is empty")]
    EmptyCommand,
    /// The inventory command did not start.
    #[error("cannot run inventory command `{command}` in {}: {source}", dir.display())]
    CommandStart {
        /// The command line.
        command: String,
        /// The directory it ran in.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The inventory command failed.
    #[error("inventory command `{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The inventory command's output is not the expected JSON.
    #[error("inventory command `{command}` printed bad JSON: {detail}")]
    BadJson {
        /// The command line.
        command: String,
        /// What is wrong.
        detail: String,
    },
    /// The Ansible inventory file could not be read.
    #[error("cannot read Ansible inventory {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line of an INI Ansible inventory does not parse.
    #[error("Ansible inventory {}:{line}:{column}: {detail}", path.display())]
    AnsibleSyntax {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The column where the entry starts (1-based).
        column: usize,
        /// What is wrong.
        detail: String,
    },
    /// A YAML Ansible inventory does not parse.
    #[error("Ansible inventory {}: {detail}", path.display())]
    AnsibleYaml {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// `FERRY_ANSIBLE_READER=ansible`, but there is no `ansible-inventory`.
    #[error("FERRY_ANSIBLE_READER=ansible, but no ansible-inventory is on PATH")]
    NoAnsible,
    /// A host's port is not a port number.
    #[error("host `{host}` in {place} has ansible_port `{port}`, which is not a port number")]
    BadPort {
        /// The host.
        host: String,
        /// Where it is listed.
        place: String,
        /// The value.
        port: String,
    },
    /// A host's `ansible_connection` is one ferry cannot use.
    #[error("host `{host}` in {place} has ansible_connection `{connection}`: ferry reaches hosts over SSH, or `local` for the deployer itself")]
    Connection {
        /// The host.
        host: String,
        /// Where it is listed.
        place: String,
        /// The connection plugin.
        connection: String,
    },
    /// A host is in no group (a group names the class).
    #[error("host `{host}` in {place} is in no group, so it has no class")]
    NoClass {
        /// The host.
        host: String,
        /// Where it is listed.
        place: String,
    },
    /// A host is in several groups that could be its class.
    #[error("host `{host}` in {place} is in groups {groups}, so its class is ambiguous")]
    AmbiguousClass {
        /// The host.
        host: String,
        /// Where it is listed.
        place: String,
        /// The groups, comma-separated.
        groups: String,
    },
    /// A host is listed twice (host, where).
    #[error("host `{0}` appears twice in {1}")]
    DuplicateHost(String, String),
    /// A host's group is not a valid class name.
    #[error("host `{host}` in {place} has class `{class}`, which is not a class name")]
    BadClass {
        /// The host.
        host: String,
        /// Where it is listed.
        place: String,
        /// The group.
        class: String,
    },
    /// A host has no address.
    #[error("host `{host}` in {place} has no address")]
    NoAddress {
        /// The host.
        host: String,
        /// Where it is listed.
        place: String,
    },
}

/// The error's text for the evaluator's diagnostic, with the hint when there is one.
fn with_hint(e: InventoryError) -> String {
    match e.hint() {
        Some(hint) => format!("{e}; {hint}"),
        None => e.to_string(),
    }
}

impl InventoryError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            InventoryError::CommandStart { .. } => {
                Some("the command runs in the site file's directory; check its path and that it is executable")
            }
            InventoryError::AmbiguousClass { .. } | InventoryError::NoClass { .. } => {
                Some("give the host the variable `ferry_class=<class>` to say which group is its class")
            }
            InventoryError::AnsibleSyntax { .. } | InventoryError::AnsibleYaml { .. } => Some(
                "this is ferry's built-in reader: with Ansible installed (`ansible-inventory` on PATH), Ansible itself reads the file",
            ),
            InventoryError::BadClass { .. } => Some(
                "a class name is letters, digits and `_` (no `-`): rename the group, or give its hosts `ferry_class=<class>`",
            ),
            _ => None,
        }
    }
}

/// Whether `name` can be a class name: the language's identifiers,
/// `[A-Za-z_][A-Za-z0-9_]*` (so `tomcat-servers` cannot be one).
pub fn is_class_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks what every provider must guarantee: unique names, class names
/// that can be classes, an address per host. `place` names the source.
pub fn check_hosts(hosts: &[HostEntry], place: &str) -> Result<(), InventoryError> {
    let mut seen = std::collections::BTreeSet::new();
    for host in hosts {
        if !seen.insert(host.name.as_str()) {
            return Err(InventoryError::DuplicateHost(
                host.name.clone(),
                place.to_string(),
            ));
        }
        if !is_class_name(&host.class) {
            return Err(InventoryError::BadClass {
                host: host.name.clone(),
                place: place.to_string(),
                class: host.class.clone(),
            });
        }
        if host.address.trim().is_empty() {
            return Err(InventoryError::NoAddress {
                host: host.name.clone(),
                place: place.to_string(),
            });
        }
    }
    Ok(())
}

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
                exec::resolve(command, dir).map_err(|e| e.to_string())
            }
            InventorySource::Ansible { path } => ansible::resolve(path).map_err(|e| e.to_string()),
            InventorySource::File { path } => file::resolve(path).map_err(|e| e.to_string()),
        }
    }
}

/// Errors of the exec and Ansible providers, and of checking hosts against a site.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("the inventory command is empty")]
    EmptyCommand,
    #[error("cannot run inventory command `{command}` in {}: {source}", dir.display())]
    CommandStart {
        command: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("inventory command `{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("inventory command `{command}` printed bad JSON: {detail}")]
    BadJson { command: String, detail: String },
    #[error("cannot read Ansible inventory {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Ansible inventory {}, line {line}: {detail}", path.display())]
    AnsibleSyntax {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("Ansible inventory {}: {detail}", path.display())]
    AnsibleYaml { path: PathBuf, detail: String },
    #[error("host `{host}` in {place} is in no group, so it has no class")]
    NoClass { host: String, place: String },
    #[error("host `{host}` in {place} is in groups {groups}, so its class is ambiguous")]
    AmbiguousClass {
        host: String,
        place: String,
        groups: String,
    },
    #[error("host `{0}` appears twice in {1}")]
    DuplicateHost(String, String),
    #[error("host `{host}` in {place} has class `{class}`, which is not a class name")]
    BadClass {
        host: String,
        place: String,
        class: String,
    },
    #[error("host `{host}` in {place} has no address")]
    NoAddress { host: String, place: String },
    #[error("host `{host}` has class `{class}`, but the site declares no such class{}", suggestion(.did_you_mean))]
    UnknownClass {
        host: String,
        class: String,
        did_you_mean: Option<String>,
    },
}

fn suggestion(did_you_mean: &Option<String>) -> String {
    did_you_mean
        .as_ref()
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
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
            InventoryError::UnknownClass { .. } => Some("declare the class in the site, or fix the inventory"),
            _ => None,
        }
    }
}

/// Whether `name` can be a class name (the language's identifiers).
pub fn is_class_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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

/// Checks that every host's class is one the site declares (for the site
/// loader, which knows the classes once the site is evaluated).
pub fn check_classes(hosts: &[HostEntry], classes: &[String]) -> Result<(), InventoryError> {
    for host in hosts {
        if !classes.contains(&host.class) {
            let did_you_mean = classes
                .iter()
                .map(|c| (strsim::jaro_winkler(c, &host.class), c))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, c)| c.clone());
            return Err(InventoryError::UnknownClass {
                host: host.name.clone(),
                class: host.class.clone(),
                did_you_mean,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, class: &str) -> HostEntry {
        HostEntry {
            name: name.into(),
            class: class.into(),
            address: "10.0.0.1".into(),
            user: None,
            port: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn unknown_class_suggests_the_closest_one() {
        let classes = vec!["web".to_string(), "database".to_string()];
        let err = check_classes(&[host("a", "web"), host("b", "databse")], &classes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `b` has class `databse`, but the site declares no such class (did you mean `database`?)"
        );
        let err = check_classes(&[host("c", "cache")], &classes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `c` has class `cache`, but the site declares no such class"
        );
    }
}

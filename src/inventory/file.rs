//! The static file provider: hosts listed in a TOML file (`inventory = file("hosts.toml")`).
//!
//! ```toml
//! [[host]]
//! name = "web1"
//! class = "web"
//! address = "192.0.2.10"
//! user = "deploy"      # optional
//! port = 2222          # optional
//! identity_file = "/etc/ferry/fleet_key"   # optional: the SSH key to log in with
//! labels = { datacenter = "eu1" }
//! ```
//! Unknown classes are reported by the evaluator (it knows the site's classes).
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ferry_lang::inventory::HostEntry;
use serde::Deserialize;

/// Errors of the TOML file inventory.
#[derive(Debug, thiserror::Error)]
pub enum FileInventoryError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("`{path}`:{line}:{column}: {message}")]
    Toml {
        /// The file.
        path: String,
        /// The line (1-based).
        line: usize,
        /// The column (1-based).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Two entries have the same host name.
    #[error("`{path}`: host `{name}` is listed twice (entries {first} and {second})")]
    Duplicate {
        /// The file.
        path: String,
        /// The host name.
        name: String,
        /// The first entry (1-based).
        first: usize,
        /// The second entry (1-based).
        second: usize,
    },
    /// An entry has an empty required field.
    #[error("`{path}`: host entry {index} has an empty {field}")]
    Empty {
        /// The file.
        path: String,
        /// The entry (1-based).
        index: usize,
        /// The field.
        field: &'static str,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    #[serde(default)]
    host: Vec<HostRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostRecord {
    name: String,
    class: String,
    address: String,
    user: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// The SSH key to log in with.
    identity_file: Option<std::path::PathBuf>,
}

/// Reads and checks the hosts of a TOML inventory file.
pub fn resolve(path: &Path) -> Result<Vec<HostEntry>, FileInventoryError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FileInventoryError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text)
}

/// Parses inventory text; `path` is only used in messages.
pub fn parse(path: &str, text: &str) -> Result<Vec<HostEntry>, FileInventoryError> {
    let file: InventoryFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        FileInventoryError::Toml {
            path: path.to_string(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut hosts = Vec::with_capacity(file.host.len());
    for (i, record) in file.host.into_iter().enumerate() {
        let index = i + 1;
        for (field, value) in [
            ("name", &record.name),
            ("class", &record.class),
            ("address", &record.address),
        ] {
            if value.trim().is_empty() {
                return Err(FileInventoryError::Empty {
                    path: path.to_string(),
                    index,
                    field,
                });
            }
        }
        if let Some(first) = seen.insert(record.name.clone(), index) {
            return Err(FileInventoryError::Duplicate {
                path: path.to_string(),
                name: record.name,
                first,
                second: index,
            });
        }
        hosts.push(HostEntry {
            name: record.name,
            class: record.class,
            address: record.address,
            user: record.user,
            port: record.port,
            labels: record.labels,
            identity_file: record.identity_file,
        });
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hosts_with_optional_fields() {
        let hosts = parse(
            "hosts.toml",
            "[[host]]\nname = \"web1\"\nclass = \"web\"\naddress = \"192.0.2.10\"\nuser = \"deploy\"\nport = 2222\nlabels = { datacenter = \"eu1\" }\n\n[[host]]\nname = \"db1\"\nclass = \"db\"\naddress = \"192.0.2.20\"\n",
        )
        .unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].port, Some(2222));
        assert_eq!(hosts[0].user.as_deref(), Some("deploy"));
        assert_eq!(hosts[0].labels["datacenter"], "eu1");
        assert_eq!(hosts[1].port, None);
    }

    #[test]
    fn toml_errors_name_file_line_and_column() {
        let err = parse("hosts.toml", "[[host]]\nname = \"web1\"\nclass = web\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`hosts.toml`:3:9:"), "{err}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = parse(
            "h.toml",
            "[[host]]\nname = \"a\"\nclass = \"web\"\naddress = \"x\"\nlabel = {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `label`"), "{err}");
    }

    #[test]
    fn duplicate_host_is_an_error() {
        let one = "[[host]]\nname = \"a\"\nclass = \"web\"\naddress = \"x\"\n";
        let err = parse("h.toml", &format!("{one}{one}"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "`h.toml`: host `a` is listed twice (entries 1 and 2)");
    }
}

//! The system object of a class: `manifest.json` plus links to every package
//! and file the class uses. All hosts of a class share it: per-host facts
//! (own name, address, labels) are passed by the agent at activation.
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;

use ferry_lang::model::{Class, Probe, ServiceKind, Site};
use ferry_store::{Store, StorePath};
use serde::Serialize;

use super::graph::class_roots;
use super::text::{secret_path, Outputs};
use super::{BuildError, BuildOptions};

/// Version of `manifest.json`'s schema.
pub const MANIFEST_VERSION: u32 = 1;

/// The JSON written as `manifest.json` into a class's system object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SystemManifest {
    pub version: u32,
    pub site: String,
    pub class: String,
    pub services: BTreeMap<String, ServiceManifest>,
    /// Store paths of every package and file the class uses.
    pub packages: BTreeMap<String, String>,
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServiceManifest {
    pub exec: String,
    pub oneshot: bool,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub state_dirs: Vec<String>,
    pub health: Vec<HealthManifest>,
    pub pre_upgrade: Option<String>,
    pub post_upgrade: Option<String>,
    /// `class.service` names; local when the class is this one.
    pub requires: Vec<String>,
    /// Secret name → on-host file path.
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HealthManifest {
    Command {
        command: String,
        timeout_ms: u64,
        retries: u32,
        interval_ms: u64,
    },
    Tcp {
        host: String,
        port: u16,
        timeout_ms: u64,
        retries: u32,
        interval_ms: u64,
    },
    Http {
        url: String,
        timeout_ms: u64,
        retries: u32,
        interval_ms: u64,
    },
}

/// The manifest of `class`, with every reference rendered to a store path.
pub fn manifest(
    site: &Site,
    class: &Class,
    outputs: &Outputs,
    options: &BuildOptions,
) -> (SystemManifest, Vec<StorePath>) {
    let host_state = &options.host_state_dir;
    let mut references = Vec::new();
    let mut render = |text: &ferry_lang::model::Text| {
        let rendered = outputs.render(text, host_state);
        references.extend(rendered.references);
        rendered.text
    };
    let mut services = BTreeMap::new();
    for (name, service) in &class.services {
        let health = service
            .health
            .iter()
            .map(|check| {
                let (timeout_ms, retries, interval_ms) =
                    (check.timeout_ms, check.retries, check.interval_ms);
                match &check.probe {
                    Probe::Command { command } => HealthManifest::Command {
                        command: render(command),
                        timeout_ms,
                        retries,
                        interval_ms,
                    },
                    Probe::Tcp { host, port } => HealthManifest::Tcp {
                        host: host.clone(),
                        port: *port,
                        timeout_ms,
                        retries,
                        interval_ms,
                    },
                    Probe::Http { url } => HealthManifest::Http {
                        url: render(url),
                        timeout_ms,
                        retries,
                        interval_ms,
                    },
                }
            })
            .collect();
        let entry = ServiceManifest {
            exec: render(&service.exec),
            oneshot: service.kind == ServiceKind::Oneshot,
            env: service
                .env
                .iter()
                .map(|(k, v)| (k.clone(), render(v)))
                .collect(),
            user: service.user.clone(),
            state_dirs: service.state_dirs.clone(),
            health,
            pre_upgrade: service.pre_upgrade.as_ref().map(&mut render),
            post_upgrade: service.post_upgrade.as_ref().map(&mut render),
            requires: service.requires.iter().map(|r| r.to_string()).collect(),
            secrets: service
                .secrets
                .iter()
                .map(|s| (s.clone(), secret_path(host_state, s)))
                .collect(),
        };
        services.insert(name.clone(), entry);
    }
    let mut packages = BTreeMap::new();
    let mut files = BTreeMap::new();
    for root in class_roots(class) {
        match root {
            super::graph::NodeKey::Package(id) => {
                let path = &outputs.packages[&id];
                references.push(path.clone());
                packages.insert(site.packages[&id].name.clone(), path.to_string());
            }
            super::graph::NodeKey::File(id) => {
                let path = &outputs.files[&id];
                references.push(path.clone());
                files.insert(site.files[&id].name.clone(), path.to_string());
            }
        }
    }
    references.sort();
    references.dedup();
    let manifest = SystemManifest {
        version: MANIFEST_VERSION,
        site: site.name.clone(),
        class: class.name.clone(),
        services,
        packages,
        files,
    };
    (manifest, references)
}

/// Writes the system object of `class` into the store.
pub fn build_system(
    store: &Store,
    site: &Site,
    class: &Class,
    outputs: &Outputs,
    options: &BuildOptions,
) -> Result<StorePath, BuildError> {
    let io = |source| BuildError::System {
        class: class.name.clone(),
        source,
    };
    let (manifest, references) = manifest(site, class, outputs, options);
    let dir = tempfile::Builder::new()
        .prefix("system-")
        .tempdir_in(store.state_dir())
        .map_err(io)?;
    let root = dir.path().join("system");
    std::fs::create_dir_all(root.join("packages")).map_err(io)?;
    std::fs::create_dir_all(root.join("files")).map_err(io)?;
    // serde_json over BTreeMaps is deterministic; the manifest is data inside
    // the object (hashed as bytes), not a hashed encoding of its own.
    let mut json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| io(std::io::Error::other(e)))?;
    json.push(b'\n');
    std::fs::write(root.join("manifest.json"), json).map_err(io)?;
    for (name, path) in &manifest.packages {
        symlink(path, root.join("packages").join(name)).map_err(io)?;
    }
    for (name, path) in &manifest.files {
        symlink(path, root.join("files").join(name)).map_err(io)?;
    }
    let name = format!("system-{}", class.name);
    Ok(store.add_path(&root, &name, &references)?)
}

//! The system object of a class: `manifest.json` plus links to every package
//! and file the class uses. All hosts of a class share it: per-host facts
//! (own name, address, labels) are passed by the agent at activation.
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;

use ferry_lang::model::{Class, Probe, ServiceKind, Site};
use ferry_store::{Store, StorePath};

use super::debian::ClassTree;
use super::graph::{class_roots, NodeKey};
use super::text::Outputs;
use super::{BuildError, BuildOptions};
use crate::activate::manifest::{
    HealthCheck, HealthProbe, Hooks, Manifest, RemoteDependency, Requires, RestartPolicy,
    SecretRef, Service as ManifestService, MANIFEST_FILE, MANIFEST_VERSION,
};

/// The manifest of `class` (schema: `src/activate/MANIFEST.md`), with every
/// reference rendered to a store path, and the paths it refers to.
pub fn manifest(
    site: &Site,
    class: &Class,
    outputs: &Outputs,
    tree: Option<&ClassTree>,
    options: &BuildOptions,
) -> (Manifest, Vec<StorePath>) {
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
            .map(|check| HealthCheck {
                probe: match &check.probe {
                    Probe::Command { command } => HealthProbe::Command {
                        cmd: render(command),
                    },
                    Probe::Tcp { host, port } => HealthProbe::Tcp {
                        host: host.clone(),
                        port: *port,
                    },
                    Probe::Http { url, ca } => HealthProbe::Http {
                        url: render(url),
                        expect_status: 200,
                        ca: ca.as_ref().map(&mut render),
                    },
                },
                timeout_ms: check.timeout_ms,
                retries: check.retries,
                interval_ms: check.interval_ms,
            })
            .collect();
        let (local, remote): (Vec<_>, Vec<_>) =
            service.requires.iter().partition(|r| r.class == class.name);
        let mut local: Vec<String> = local.into_iter().map(|r| r.service.clone()).collect();
        local.sort();
        let mut remote: Vec<RemoteDependency> = remote
            .into_iter()
            .map(|r| RemoteDependency {
                class: r.class.clone(),
                service: r.service.clone(),
            })
            .collect();
        remote.sort();
        let mut secrets: Vec<SecretRef> = service
            .secrets
            .iter()
            .map(|name| SecretRef {
                name: name.clone(),
                owner: service.user.clone(),
            })
            .collect();
        secrets.sort();
        let entry = ManifestService {
            exec: render(&service.exec),
            env: service
                .env
                .iter()
                .map(|(k, v)| (k.clone(), render(v)))
                .collect(),
            user: service.user.clone(),
            state_dirs: service.state_dirs.clone(),
            health,
            hooks: Hooks {
                pre_upgrade: service
                    .pre_upgrade
                    .as_ref()
                    .map(&mut render)
                    .into_iter()
                    .collect(),
                post_upgrade: service
                    .post_upgrade
                    .as_ref()
                    .map(&mut render)
                    .into_iter()
                    .collect(),
            },
            requires: Requires { local, remote },
            secrets,
            oneshot: service.kind == ServiceKind::Oneshot,
            restart: RestartPolicy::default(),
        };
        services.insert(name.clone(), entry);
    }
    let mut packages = Vec::new();
    let mut files = Vec::new();
    for root in class_roots(class) {
        let path = match &root {
            NodeKey::Package(id) => &outputs.packages[id],
            NodeKey::File(id) => &outputs.files[id],
        };
        references.push(path.clone());
        match root {
            NodeKey::Package(_) => packages.push(path.to_string()),
            NodeKey::File(_) => files.push(path.to_string()),
        }
    }
    packages.sort();
    files.sort();
    references.extend(tree.map(|t| t.path.clone()));
    references.sort();
    references.dedup();
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        site: site.name.clone(),
        class: class.name.clone(),
        services,
        packages,
        files,
        usr: tree.map(|t| t.path.to_string()),
        debian: tree.map(|t| t.versions.clone()).unwrap_or_default(),
    };
    (manifest, references)
}

/// Writes the system object of `class` into the store.
pub fn build_system(
    store: &Store,
    site: &Site,
    class: &Class,
    outputs: &Outputs,
    tree: Option<&ClassTree>,
    options: &BuildOptions,
) -> Result<StorePath, BuildError> {
    let (manifest, references) = manifest(site, class, outputs, tree, options);
    add_system(store, &class.name, &manifest, &references)
}

/// Adds the system object of `class` with `manifest` (named `system-<class>`) to the store.
fn add_system(
    store: &Store,
    class: &str,
    manifest: &Manifest,
    references: &[StorePath],
) -> Result<StorePath, BuildError> {
    let io = |source| BuildError::System {
        class: class.to_string(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix("system-")
        .tempdir_in(store.state_dir())
        .map_err(io)?;
    let root = dir.path().join("system");
    write_system_dir(&root, manifest).map_err(io)?;
    Ok(store.add_path(&root, &format!("system-{class}"), references)?)
}

/// Writes a system directory: `manifest.json` and links to its packages and files.
fn write_system_dir(root: &std::path::Path, manifest: &Manifest) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("packages"))?;
    std::fs::create_dir_all(root.join("files"))?;
    // Sorted maps and lists make the JSON deterministic; it is data inside
    // the object (hashed as bytes), not a hashed encoding of its own.
    std::fs::write(root.join(MANIFEST_FILE), manifest.to_json())?;
    // Links named after the store objects (`<hash>-<name>`), so two packages
    // with the same name never collide.
    for (dir, paths) in [("packages", &manifest.packages), ("files", &manifest.files)] {
        for path in paths {
            let base = path.rsplit('/').next().unwrap_or(path);
            symlink(path, root.join(dir).join(base))?;
        }
    }
    Ok(())
}

/// Which services a partial deploy takes from the new system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSelection {
    /// Only these (empty: all).
    pub only: Vec<String>,
    /// Never these.
    pub skip: Vec<String>,
}

impl ServiceSelection {
    /// True when nothing narrows the deploy.
    pub fn is_all(&self) -> bool {
        self.only.is_empty() && self.skip.is_empty()
    }

    /// Whether `service` comes from the new system.
    pub fn takes(&self, service: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|s| s == service))
            && !self.skip.iter().any(|s| s == service)
    }
}

/// A system for a partial upgrade: the services `selection` takes come from
/// `target`, every other service keeps its definition from `current`, so the
/// activation diff restarts exactly the selected services. Packages and files
/// are the union of both systems'.
pub fn compose_system(
    store: &Store,
    current: &StorePath,
    target: &StorePath,
    selection: &ServiceSelection,
) -> Result<StorePath, BuildError> {
    let load = |path: &StorePath| {
        Manifest::load(&store.real_path(path)).map_err(|e| BuildError::System {
            class: path.name().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    let (old, new) = (load(current)?, load(target)?);
    let mut services = BTreeMap::new();
    let names: std::collections::BTreeSet<&String> =
        old.services.keys().chain(new.services.keys()).collect();
    for name in names {
        let side = if selection.takes(name) { &new } else { &old };
        if let Some(service) = side.services.get(name) {
            services.insert(name.clone(), service.clone());
        }
    }
    let union = |a: &[String], b: &[String]| {
        let mut all: Vec<String> = a.iter().chain(b).cloned().collect();
        all.sort();
        all.dedup();
        all
    };
    let manifest = Manifest {
        services,
        packages: union(&old.packages, &new.packages),
        files: union(&old.files, &new.files),
        ..new.clone()
    };
    let references: Vec<StorePath> = manifest
        .packages
        .iter()
        .chain(&manifest.files)
        .chain(&manifest.usr)
        .map(|p| store.parse_path(p))
        .collect::<Result<_, _>>()?;
    add_system(store, &manifest.class, &manifest, &references)
}

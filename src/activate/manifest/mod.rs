//! The schema of a system object's `manifest.json`, its validation, the diff
//! between two manifests and the dependency order of a class's services.
//!
//! The format is specified in `src/activate/MANIFEST.md`. Every map is a
//! `BTreeMap` and every list the build step writes is sorted, so the same
//! site always produces byte-identical JSON (the manifest is part of a hashed
//! store object).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The only manifest version this code reads and writes.
pub const MANIFEST_VERSION: u32 = 1;

/// The file name of the manifest inside a system object.
pub const MANIFEST_FILE: &str = "manifest.json";

/// One class's whole configuration as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_VERSION`].
    pub version: u32,
    /// The site this system was built from.
    pub site: String,
    /// The host class this system is for.
    pub class: String,
    /// Services by name.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Store paths of every package the system uses, sorted.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Store paths of every configuration file the system uses, sorted.
    #[serde(default)]
    pub files: Vec<String>,
    /// The class's package tree: every service process, hook and command
    /// health check sees it read-only as `/usr` (`usr_tree`). Absent: the
    /// host's own `/usr` (and the field is left out of the JSON, so systems
    /// without one keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usr: Option<String>,
    /// The Debian packages in `usr`: name → version (what `ferry plan`
    /// compares). Left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub debian: BTreeMap<String, String>,
}

/// One long-running process (or one-shot task) of a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Command line run as `/bin/sh -c <exec>`, store paths already substituted.
    pub exec: String,
    /// Environment of the process (added to a minimal fixed base).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The user it runs as; `None` = root. Created when missing (MANIFEST.md).
    #[serde(default)]
    pub user: Option<String>,
    /// Directories created under `<state_dir>/lib/<service>/`, relative names.
    #[serde(default)]
    pub state_dirs: Vec<String>,
    /// Checks that must pass after activation.
    #[serde(default)]
    pub health: Vec<HealthCheck>,
    /// Commands run around the switch.
    #[serde(default)]
    pub hooks: Hooks,
    /// Services that must run before this one.
    #[serde(default)]
    pub requires: Requires,
    /// Secrets the service reads.
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    /// A task that runs to completion instead of a daemon.
    #[serde(default)]
    pub oneshot: bool,
    /// What to do when the process exits.
    #[serde(default)]
    pub restart: RestartPolicy,
}

/// Commands (for `/bin/sh -c`) run with `OLD` and `NEW` set to the old and new
/// system store paths (`OLD` is empty on a host's first activation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Run before any service is stopped.
    #[serde(default)]
    pub pre_upgrade: Vec<String>,
    /// Run after every changed and added service started and passed its
    /// health checks.
    #[serde(default)]
    pub post_upgrade: Vec<String>,
}

/// Service-level dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// Services of this same class (this host), by name; sorted.
    #[serde(default)]
    pub local: Vec<String>,
    /// Services of other classes; the rollout orders hosts by these, the
    /// host itself does not wait for them.
    #[serde(default)]
    pub remote: Vec<RemoteDependency>,
}

/// A service of another class that this host's services depend on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteDependency {
    /// The other class.
    pub class: String,
    /// The service in it.
    pub service: String,
}

/// A secret a service reads from `<state_dir>/secrets/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The secret's name: the file name under `<state_dir>/secrets/`.
    pub name: String,
    /// The user owning the file (mode 0400); `None` = root.
    #[serde(default)]
    pub owner: Option<String>,
}

/// One health check: a probe, tried up to `1 + retries` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// What is probed.
    #[serde(flatten)]
    pub probe: HealthProbe,
    /// Limit for one attempt, in milliseconds.
    #[serde(default = "default_health_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts after the first failure.
    #[serde(default = "default_health_retries")]
    pub retries: u32,
    /// Pause between attempts, in milliseconds.
    #[serde(default = "default_health_interval_ms")]
    pub interval_ms: u64,
}

fn default_health_timeout_ms() -> u64 {
    10_000
}
fn default_health_retries() -> u32 {
    3
}
fn default_health_interval_ms() -> u64 {
    1_000
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthProbe {
    /// `/bin/sh -c cmd` must exit 0.
    /// `/bin/sh -c cmd` must exit 0.
    Command {
        /// The shell command.
        cmd: String,
    },
    /// A TCP connection to `host:port` must succeed.
    /// `host:port` must accept a TCP connection.
    Tcp {
        /// The host to connect to.
        host: String,
        /// The port.
        port: u16,
    },
    /// `GET url` (plain HTTP) must answer with `expect_status`.
    Http {
        /// The `http://` or `https://` URL to fetch.
        url: String,
        /// The status the answer must have.
        #[serde(default = "default_expect_status")]
        expect_status: u16,
        /// For `https://`: the PEM file of the only certificate authorities
        /// the server's certificate may chain to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca: Option<String>,
    },
}

fn default_expect_status() -> u16 {
    200
}

/// When a service's process is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// When a service is restarted.
    pub mode: RestartMode,
    /// Restarts within `window_ms` after which the service is `crash-looping`
    /// and no longer restarted.
    pub limit: u32,
    /// The window in which crashes count towards a crash loop, in milliseconds.
    pub window_ms: u64,
    /// First restart delay; doubled per consecutive crash up to `backoff_max_ms`.
    pub backoff_ms: u64,
    /// The longest pause between restarts, in milliseconds.
    pub backoff_max_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::OnFailure,
            limit: 5,
            window_ms: 60_000,
            backoff_ms: 100,
            backoff_max_ms: 10_000,
        }
    }
}

/// Which exits are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Any exit other than status 0 (and any death by signal).
    OnFailure,
    /// Every exit.
    Always,
    /// No exit.
    Never,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The package tree is not an absolute path.
    #[error("package tree `{path}` is not an absolute path")]
    UsrTree {
        /// The path as written.
        path: String,
    },
    /// The manifest file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest file.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the schema.
    #[error("manifest {path} is not valid: {source}")]
    Parse {
        /// The manifest file.
        path: String,
        /// What does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest version this ferry does not read.
    #[error("manifest version {found} is not supported (this ferry reads version {MANIFEST_VERSION}); deploy with a matching ferry")]
    Version {
        /// The version the manifest has.
        found: u32,
    },
    /// A service name that is not allowed.
    #[error("service name {name:?} is not allowed: use letters, digits, '-', '_' and '.', not starting with '.'")]
    ServiceName {
        /// The name.
        name: String,
    },
    /// A local requirement naming no service of the class.
    #[error("service {service} requires {missing}, which this class does not have")]
    MissingRequirement {
        /// The service that requires it.
        service: String,
        /// The service it requires.
        missing: String,
    },
    /// Local requirements that form a cycle.
    #[error("services require each other in a cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The services in the cycle, in order.
        cycle: Vec<String>,
    },
    /// A state dir that escapes the service's directory.
    #[error("service {service}: state dir {dir:?} must be a relative path without '..'")]
    StateDir {
        /// The service.
        service: String,
        /// The state dir.
        dir: String,
    },
    /// A secret name that is not a plain file name.
    #[error("service {service}: secret name {name:?} must be a plain file name")]
    SecretName {
        /// The service.
        service: String,
        /// The secret name.
        name: String,
    },
    /// A user name that is not valid.
    #[error("service {service}: user name {user:?} is not a valid user name")]
    UserName {
        /// The service.
        service: String,
        /// The user name.
        user: String,
    },
}

impl Manifest {
    /// Reads and validates `<system>/manifest.json`.
    pub fn load(system: &Path) -> Result<Manifest, ManifestError> {
        let path = system.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let manifest = Manifest::from_json(&text).map_err(|e| match e {
            ManifestError::Parse { source, .. } => ManifestError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })?;
        Ok(manifest)
    }

    /// Parses and validates manifest JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        // Read the version first, so a future format gets a version error and
        // not a confusing field error.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse {
                path: "<manifest>".into(),
                source,
            })?;
        if version.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                found: version.version,
            });
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse {
                path: "<manifest>".into(),
                source,
            })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The canonical JSON form: pretty, sorted, with a final newline.
    pub fn to_json(&self) -> String {
        // Plain data with string keys always serializes.
        let mut text = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| unreachable!("manifest does not serialize: {e}"));
        text.push('\n');
        text
    }

    /// Checks names, paths and local requirements (including cycles).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                found: self.version,
            });
        }
        if let Some(usr) = &self.usr {
            if !Path::new(usr).is_absolute() {
                return Err(ManifestError::UsrTree { path: usr.clone() });
            }
        }
        for (name, service) in &self.services {
            if !is_plain_name(name) {
                return Err(ManifestError::ServiceName { name: name.clone() });
            }
            for dir in &service.state_dirs {
                let path = Path::new(dir);
                let bad = dir.is_empty()
                    || path.is_absolute()
                    || path
                        .components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)));
                if bad {
                    return Err(ManifestError::StateDir {
                        service: name.clone(),
                        dir: dir.clone(),
                    });
                }
            }
            for secret in &service.secrets {
                if !is_plain_name(&secret.name) {
                    return Err(ManifestError::SecretName {
                        service: name.clone(),
                        name: secret.name.clone(),
                    });
                }
            }
            let users = service
                .user
                .iter()
                .chain(service.secrets.iter().filter_map(|s| s.owner.as_ref()));
            for user in users {
                if !is_user_name(user) {
                    return Err(ManifestError::UserName {
                        service: name.clone(),
                        user: user.clone(),
                    });
                }
            }
            for required in &service.requires.local {
                if !self.services.contains_key(required) {
                    return Err(ManifestError::MissingRequirement {
                        service: name.clone(),
                        missing: required.clone(),
                    });
                }
            }
        }
        self.start_order().map(|_| ())
    }

    /// Local services in dependency order: every service after the services
    /// it requires; ties broken by name so the order is deterministic.
    /// Stop in the reverse of this order.
    pub fn start_order(&self) -> Result<Vec<String>, ManifestError> {
        let mut remaining: BTreeMap<&str, BTreeSet<&str>> = self
            .services
            .iter()
            .map(|(name, s)| {
                let deps = s
                    .requires
                    .local
                    .iter()
                    .map(String::as_str)
                    .filter(|d| self.services.contains_key(*d))
                    .collect();
                (name.as_str(), deps)
            })
            .collect();
        let mut order = Vec::with_capacity(remaining.len());
        loop {
            let ready: Vec<&str> = remaining
                .iter()
                .filter(|(_, deps)| deps.is_empty())
                .map(|(name, _)| *name)
                .collect();
            if ready.is_empty() {
                break;
            }
            for name in ready {
                remaining.remove(name);
                for deps in remaining.values_mut() {
                    deps.remove(name);
                }
                order.push(name.to_string());
            }
        }
        if remaining.is_empty() {
            return Ok(order);
        }
        Err(ManifestError::Cycle {
            cycle: find_cycle(&remaining),
        })
    }

    /// Services (in start order) that are in `names`.
    pub fn ordered_subset(&self, names: &BTreeSet<String>) -> Result<Vec<String>, ManifestError> {
        Ok(self
            .start_order()?
            .into_iter()
            .filter(|n| names.contains(n))
            .collect())
    }

    /// Every secret name any service references.
    pub fn secret_names(&self) -> BTreeSet<String> {
        self.services
            .values()
            .flat_map(|s| s.secrets.iter().map(|r| r.name.clone()))
            .collect()
    }
}

/// The services of `manifest` that read any of `secrets`: the ones a
/// rotation of those secrets restarts.
pub fn services_reading(manifest: &Manifest, secrets: &BTreeSet<String>) -> BTreeSet<String> {
    manifest
        .services
        .iter()
        .filter(|(_, s)| s.secrets.iter().any(|r| secrets.contains(&r.name)))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Walks the dependency edges of services left in a cycle until one repeats.
fn find_cycle(remaining: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<String> {
    let Some(start) = remaining.keys().next() else {
        return Vec::new();
    };
    let mut path: Vec<&str> = vec![start];
    let mut current = *start;
    loop {
        // Every service left has at least one dependency left (else it would
        // have been ordered), so `next` exists.
        let Some(next) = remaining.get(current).and_then(|d| d.iter().next()) else {
            return path.iter().map(|s| s.to_string()).collect();
        };
        if let Some(pos) = path.iter().position(|p| p == next) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(next.to_string());
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

/// A file or service name: `[A-Za-z0-9._-]+`, not starting with '.'.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A portable POSIX user name, as `useradd` accepts it.
fn is_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// How the services of two manifests relate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDiff {
    /// Only in the new manifest.
    pub added: BTreeSet<String>,
    /// Only in the old manifest.
    pub removed: BTreeSet<String>,
    /// In both, with any field different.
    pub changed: BTreeSet<String>,
    /// In both, identical.
    pub unchanged: BTreeSet<String>,
}

impl ManifestDiff {
    /// Services that stay the same but restart anyway, moved from
    /// `unchanged` to `changed`: those of `new` that read a rotated secret,
    /// or, after a repair replaced files under them, all of them. The
    /// activation and the plan both decide it here.
    pub fn restart_also(&mut self, new: &Manifest, rotated: &BTreeSet<String>, all: bool) {
        let restart = if all {
            self.unchanged.clone()
        } else {
            services_reading(new, rotated)
        };
        for service in restart {
            if self.unchanged.remove(&service) {
                self.changed.insert(service);
            }
        }
    }
}

/// Compares the services of `old` (none on a first activation) and `new`.
pub fn diff(old: Option<&Manifest>, new: &Manifest) -> ManifestDiff {
    let mut result = ManifestDiff::default();
    let empty = BTreeMap::new();
    let old_services = old.map(|m| &m.services).unwrap_or(&empty);
    // A new package tree changes every service's binaries, even where its
    // definition reads the same.
    let same_tree = old.is_none_or(|m| m.usr == new.usr);
    for (name, service) in &new.services {
        match old_services.get(name) {
            None => result.added.insert(name.clone()),
            Some(previous) if previous == service && same_tree => {
                result.unchanged.insert(name.clone())
            }
            Some(_) => result.changed.insert(name.clone()),
        };
    }
    for name in old_services.keys() {
        if !new.services.contains_key(name) {
            result.removed.insert(name.clone());
        }
    }
    result
}

#[cfg(test)]
mod tests;

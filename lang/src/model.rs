//! The resolved site: what evaluation produces and what the builder and deployer consume.
//!
//! Everything here is plain data (serde). Its JSON form is what
//! `ferry eval --json` prints; it is versioned by [`MODEL_VERSION`] and
//! documented in `lang/EVAL-JSON.md`. Strings that may mention packages,
//! files or secrets are [`Text`]: literal pieces plus references that the
//! build step replaces with store paths (or, for secrets, on-host paths).
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::inventory::{HostEntry, InventorySource};

/// Version of the model's JSON form; bumped on any incompatible change.
pub const MODEL_VERSION: u32 = 1;

/// Where something was declared: file (as loaded), 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The file as the loader resolved it.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: u32,
    /// The 1-based column, in characters.
    pub column: u32,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A package's site-wide name (package names are unique among the packages a site uses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PackageId(pub String);

/// A text file's site-wide name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TextFileId(pub String);

/// A string with context: literal text and references to things that only
/// get a path later (the build step substitutes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    /// The pieces in order; concatenated once references have paths.
    pub parts: Vec<TextPart>,
}

/// One piece of a [`Text`]: literal text or a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum TextPart {
    /// Literal text.
    Lit(String),
    /// The store path of a package's output.
    Package(PackageId),
    /// The store path of a text file.
    File(TextFileId),
    /// The on-host path of a secret's file (outside the store, mode 0400).
    Secret(String),
}

impl Text {
    /// A text of literal text only.
    pub fn literal(text: impl Into<String>) -> Text {
        Text {
            parts: vec![TextPart::Lit(text.into())],
        }
    }

    /// The text if it has no references.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TextPart::Lit(t) => out.push_str(t),
                _ => return None,
            }
        }
        Some(out)
    }

    /// The packages the text refers to, in order (with repeats).
    pub fn packages(&self) -> impl Iterator<Item = &PackageId> {
        self.parts.iter().filter_map(|p| match p {
            TextPart::Package(id) => Some(id),
            _ => None,
        })
    }

    /// The text files the text refers to, in order (with repeats).
    pub fn files(&self) -> impl Iterator<Item = &TextFileId> {
        self.parts.iter().filter_map(|p| match p {
            TextPart::File(id) => Some(id),
            _ => None,
        })
    }

    /// The names of the secrets the text refers to, in order (with repeats).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TextPart::Secret(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The text with references shown as `${package:name}` etc. (for humans).
    pub fn display(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TextPart::Lit(t) => out.push_str(t),
                TextPart::Package(id) => out.push_str(&format!("${{package:{}}}", id.0)),
                TextPart::File(id) => out.push_str(&format!("${{file:{}}}", id.0)),
                TextPart::Secret(name) => out.push_str(&format!("${{secret:{name}}}")),
            }
        }
        out
    }
}

/// The whole evaluated site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// [`MODEL_VERSION`].
    pub version: u32,
    /// The site's name (`site = …`, else taken from the root file's path).
    pub name: String,
    /// `environment = …`, or `default`.
    pub environment: String,
    /// The root site file.
    pub root: PathBuf,
    /// Every package the site uses (directly or as an input), by id.
    pub packages: BTreeMap<PackageId, Package>,
    /// Every text file the site uses, by id.
    pub files: BTreeMap<TextFileId, TextFile>,
    /// Host classes by name.
    pub classes: BTreeMap<String, Class>,
    /// Secrets by name (sources only, never values).
    pub secrets: BTreeMap<String, Secret>,
    /// Where the hosts come from and the hosts found.
    pub inventory: Inventory,
    /// How a deploy proceeds across the hosts.
    pub rollout: RolloutPolicy,
    /// Service-level dependencies.
    pub graph: ServiceGraph,
}

impl Site {
    /// All hosts of the site, in inventory order.
    pub fn hosts(&self) -> &[HostEntry] {
        &self.inventory.hosts
    }

    /// The service `reference` names, if the site has it.
    pub fn service(&self, reference: &ServiceRef) -> Option<&Service> {
        self.classes
            .get(&reference.class)?
            .services
            .get(&reference.service)
    }

    /// Everything a class's system needs in the store: the packages and
    /// files its services and settings mention, plus, transitively, the
    /// inputs of those packages and whatever those files mention.
    pub fn class_closure(&self, class: &Class) -> (BTreeSet<PackageId>, BTreeSet<TextFileId>) {
        let mut packages: BTreeSet<PackageId> = class.packages.iter().cloned().collect();
        let mut files: BTreeSet<TextFileId> = BTreeSet::new();
        for service in class.services.values() {
            for text in service.texts() {
                packages.extend(text.packages().cloned());
                files.extend(text.files().cloned());
            }
        }
        let mut pending_packages: Vec<PackageId> = packages.iter().cloned().collect();
        let mut pending_files: Vec<TextFileId> = files.iter().cloned().collect();
        while !pending_packages.is_empty() || !pending_files.is_empty() {
            while let Some(id) = pending_files.pop() {
                let Some(file) = self.files.get(&id) else {
                    continue;
                };
                for p in file.text.packages() {
                    if packages.insert(p.clone()) {
                        pending_packages.push(p.clone());
                    }
                }
                for f in file.text.files() {
                    if files.insert(f.clone()) {
                        pending_files.push(f.clone());
                    }
                }
            }
            while let Some(id) = pending_packages.pop() {
                let Some(package) = self.packages.get(&id) else {
                    continue;
                };
                for input in &package.inputs {
                    if packages.insert(input.clone()) {
                        pending_packages.push(input.clone());
                    }
                }
                for text in std::iter::once(&package.builder).chain(package.env.values()) {
                    for f in text.files() {
                        if files.insert(f.clone()) {
                            pending_files.push(f.clone());
                        }
                    }
                }
            }
        }
        (packages, files)
    }
}

/// How to build one package (a recipe's inputs, before store paths are known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The package's site-wide name (its key in [`Site::packages`]).
    pub id: PackageId,
    /// The store object name of the output.
    pub name: String,
    /// Absolute path of the source tree or file, copied into the store and
    /// given to the builder as `$src`.
    pub src: Option<PathBuf>,
    /// Packages whose outputs the builder may use (their `bin/` dirs are on
    /// its `PATH`). Includes every package the builder script or env mentions.
    pub inputs: Vec<PackageId>,
    /// The `/bin/sh` script that builds `$out`.
    pub builder: Text,
    /// Extra environment of the builder.
    pub env: BTreeMap<String, Text>,
    /// For `package NAME = debian(…)`: the Debian packages (names with
    /// optional constraints, as written) whose closure, from the site's lock,
    /// is the package. Such a package has no builder, `src`, inputs or env.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debian: Vec<String>,
    /// Where the package was declared.
    pub origin: Origin,
}

/// A text file built straight into the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFile {
    /// The file's site-wide name (its key in [`Site::files`]).
    pub id: TextFileId,
    /// The store object name.
    pub name: String,
    /// The file's content.
    pub text: Text,
    /// Whether the file is stored with its executable bit set.
    pub executable: bool,
    /// Where the file was declared (or `text_file(…)` called).
    pub origin: Origin,
}

/// One host class, with its includes flattened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    /// The class's name in the root file.
    pub name: String,
    /// Names of the classes included, directly or indirectly, in include order.
    pub includes: Vec<String>,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Packages installed into the system besides those services mention.
    pub packages: Vec<PackageId>,
    /// The hosts of this class, from the inventory.
    pub hosts: Vec<HostEntry>,
    /// Where the class was declared.
    pub origin: Origin,
}

/// One service of a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service's name, unique in its class.
    pub name: String,
    /// Whether it stays up or runs once per activation.
    pub kind: ServiceKind,
    /// Command line, run by `/bin/sh -c` with `$STATE_DIRECTORY` set to the
    /// service's state directory (`<state_dir>/lib/<service>`, DESIGN §4).
    pub exec: Text,
    /// Environment variables of the service's process.
    pub env: BTreeMap<String, Text>,
    /// The user it runs as; `None` means the agent's user.
    pub user: Option<String>,
    /// Directories created under the state directory before the start.
    pub state_dirs: Vec<String>,
    /// All must pass after a start for the service to count as healthy.
    pub health: Vec<HealthCheck>,
    /// Runs before the switch, with `OLD` and `NEW` (system paths) in its environment.
    pub pre_upgrade: Option<Text>,
    /// Runs after the switch, with `OLD` and `NEW` in its environment.
    pub post_upgrade: Option<Text>,
    /// Services that must be up before this one; of this class or another.
    pub requires: Vec<ServiceRef>,
    /// Secrets this service reads (named or interpolated).
    pub secrets: Vec<String>,
    /// Where the service was declared.
    pub origin: Origin,
}

impl Service {
    /// Every text of the service: command, environment, hooks and health probes.
    pub fn texts(&self) -> impl Iterator<Item = &Text> {
        let probes = self.health.iter().flat_map(|check| match &check.probe {
            Probe::Command { command } => vec![command],
            Probe::Http { url, ca } => std::iter::once(url).chain(ca).collect(),
            Probe::Tcp { .. } => Vec::new(),
        });
        std::iter::once(&self.exec)
            .chain(self.env.values())
            .chain(self.pre_upgrade.iter())
            .chain(self.post_upgrade.iter())
            .chain(probes)
    }
}

/// How a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// A process that stays up; restarted when it dies.
    LongRunning,
    /// A task that runs to completion on each activation.
    Oneshot,
}

/// `class.service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceRef {
    /// The class the service is in.
    pub class: String,
    /// The service's name in that class.
    pub service: String,
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.class, self.service)
    }
}

/// A health check with its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// What is checked.
    pub probe: Probe,
    /// Per attempt.
    pub timeout_ms: u64,
    /// Attempts after the first failure.
    pub retries: u32,
    /// Wait between attempts.
    pub interval_ms: u64,
}

/// One way to tell whether a service is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Probe {
    /// Passes when the command exits 0.
    Command {
        /// The command line, run by `/bin/sh -c`.
        command: Text,
    },
    /// Passes when a TCP connection to `host:port` (default host 127.0.0.1) opens.
    Tcp {
        /// The host to connect to.
        host: String,
        /// The port to connect to (1–65535).
        port: u16,
    },
    /// Passes on an HTTP status 200–399.
    Http {
        /// The URL fetched (`http://` or `https://`).
        url: Text,
        /// For `https://`: the PEM file of the certificate authorities the
        /// server's certificate must chain to, instead of the well-known
        /// roots and the host's own bundle (e.g. a site's internal CA).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca: Option<Text>,
    },
}

/// A secret: where the deployer reads it. The value never enters the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// The secret's name (its key in [`Site::secrets`]).
    pub name: String,
    /// Where the deployer reads the value.
    pub source: SecretSource,
    /// Where the secret was declared.
    pub origin: Origin,
}

/// Where the deployer reads a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SecretSource {
    /// A file on the deployer (absolute, resolved relative to the declaring file).
    File {
        /// The file's absolute path.
        path: PathBuf,
    },
    /// An environment variable of the deployer.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A program on the deployer whose stdout is the secret.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
    },
}

/// The site's inventory: where hosts come from and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// `None` when the site declares no inventory (it then has no hosts).
    pub source: Option<InventorySource>,
    /// The hosts the source gave, in its order.
    pub hosts: Vec<HostEntry>,
}

/// How a deploy proceeds across hosts (DESIGN §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPolicy {
    /// In which order classes are deployed.
    pub order: RolloutOrder,
    /// Hosts deployed first, alone, before everything else (0 = no canary).
    pub canary: u32,
    /// At most this many hosts activating at once.
    pub batch: Amount,
    /// Label whose groups are deployed one after the other.
    pub group_by: Option<String>,
    /// Failures tolerated before `on_failure` applies.
    pub max_failures: Amount,
    /// What happens once more hosts failed than `max_failures` allows.
    pub on_failure: OnFailure,
    /// What happens between batches.
    pub pause: Pause,
    /// An external policy program (argv): reads the plan as JSON on stdin,
    /// prints the batches as JSON. Overrides the built-in ordering.
    pub program: Option<Vec<String>>,
}

impl Default for RolloutPolicy {
    fn default() -> RolloutPolicy {
        RolloutPolicy {
            order: RolloutOrder::Dependencies,
            canary: 0,
            batch: Amount::Percent(100),
            group_by: None,
            max_failures: Amount::Count(0),
            on_failure: OnFailure::Rollback,
            pause: Pause::None,
            program: None,
        }
    }
}

/// The order in which a rollout takes the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutOrder {
    /// Classes whose services others require go first.
    Dependencies,
    /// Classes in the order the site declares them.
    Declared,
    /// No ordering between classes.
    None,
}

/// A count of hosts or a percentage of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Amount {
    /// This many hosts.
    Count(u32),
    /// 0–100.
    Percent(u8),
}

impl Amount {
    /// The amount as a host count out of `total` (percentages round up, at least 1 when `total > 0` and percent > 0).
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n as usize,
            Amount::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

/// What a rollout does once too many hosts failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop deploying; hosts already switched keep the new system.
    Stop,
    /// Stop deploying and roll back every host already switched in this run.
    Rollback,
    /// Go on with the remaining hosts.
    Continue,
}

/// What a rollout does between two batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Pause {
    /// Go straight on.
    None,
    /// Wait this long.
    Duration {
        /// The wait in milliseconds.
        ms: u64,
    },
    /// Wait for the operator to confirm between batches.
    Confirm,
}

/// Service-level dependency graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceGraph {
    /// `from` requires `to`.
    pub edges: Vec<ServiceEdge>,
    /// Every service, dependencies before dependents (ties by name).
    pub order: Vec<ServiceRef>,
    /// Classes, dependencies first where the service graph allows it; for
    /// classes that depend on each other both ways, by name.
    pub class_order: Vec<String>,
}

/// One `requires`: service `from` needs service `to` up first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEdge {
    /// The requiring service.
    pub from: ServiceRef,
    /// The required service.
    pub to: ServiceRef,
    /// True when the two services are in different classes (so on different hosts).
    pub cross_class: bool,
}

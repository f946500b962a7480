//! `ferry plan`: what a deploy would change, host by host, and in which batches.
//!
//! What a host runs now comes from the hosts themselves (a deploy's survey,
//! which `ferry plan` runs as a dry run), or from the site's latest site
//! generation on this deployer with `ferry plan --offline` (the hosts are not
//! contacted); a host never deployed by this
//! deployer counts as fresh. A host that could not be asked is planned as
//! changing and counts as a failure of its batch.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use ferry_lang::inventory::HostEntry;
use ferry_lang::model::Site;
use ferry_rollout::{PlannedHost, RolloutPlan, RolloutSchedule, ServiceEdge, ServiceNode};
use ferry_store::{Store, StorePath};
use serde::Serialize;

use crate::activate::manifest::{diff, Manifest};
use crate::closure::human_size;

use super::diff::{object_name, ClassDiff};
use super::policy::policy_of;
use super::site_generation::SiteGeneration;

/// A store path that a deploy adds to or removes from a host, with its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathChange {
    /// The store path.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What one host would go through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct HostChange {
    /// Paths of the target closure the host does not have yet.
    pub added: Vec<PathChange>,
    /// Paths of the current closure the target no longer uses.
    pub removed: Vec<PathChange>,
    /// Services that are new on the host.
    pub services_started: Vec<String>,
    /// Services whose definition changes.
    pub services_restarted: Vec<String>,
    /// Services the target no longer has.
    pub services_stopped: Vec<String>,
    /// Services that stay as they are.
    pub services_unchanged: Vec<String>,
    /// Config files (by name) added, removed or changed.
    pub files_changed: Vec<String>,
    /// Debian package changes in the class's tree, `name old → new`,
    /// `+ name version`, `- name version` (none on a first deploy).
    pub packages_changed: Vec<String>,
    /// Debian packages in the target's tree.
    pub packages_total: usize,
}

/// One host's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// The host.
    pub name: String,
    /// Its class.
    pub class: String,
    /// Its inventory address.
    pub address: String,
    /// What it runs now, when known.
    pub current_system: Option<String>,
    /// What it moves to.
    pub target_system: String,
    /// False when the target is what it runs already.
    pub changes: bool,
    /// Why the host could not be asked what it runs (it fails its batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
    /// Secrets rotated on the deployer that the host gets again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets_rotated: Vec<String>,
    /// Paths of its active closure that were modified or missing
    /// (`--repair`): sent again, and every service restarts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
    /// What moving changes.
    pub change: HostChange,
}

/// The whole plan of a deploy.
#[derive(Debug, Serialize)]
pub struct DeployPlan {
    /// The site's name.
    pub site: String,
    /// The site's latest site generation on this deployer, if any.
    pub based_on: Option<u64>,
    /// True when the current systems come from the hosts themselves (a
    /// deploy's survey), false when from `based_on` (`ferry plan`).
    pub live: bool,
    /// Every host of the plan, in inventory order.
    pub hosts: Vec<HostPlan>,
    /// The checked schedule of the changing hosts.
    pub schedule: RolloutSchedule,
    /// `from → to` service edges across classes, which fix the class order.
    pub cross_host: Vec<String>,
    /// What changes inside each moving class's system (`--diff` only;
    /// [`super::diff::class_diffs`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<ClassDiff>,
    /// The engine's input, kept for the deploy that follows the plan.
    #[serde(skip)]
    pub plan: RolloutPlan,
}

/// What a host runs before a deploy, as far as the deployer knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurrentHost {
    /// The system it runs; `None` before its first deploy.
    pub system: Option<String>,
    /// The host's own generation of that system.
    pub generation: Option<u64>,
    /// What the host says of its installed secrets (live only).
    #[serde(skip)]
    pub secrets: Option<crate::activate::secrets::SecretDigests>,
}

/// What the latest site generation says each host runs.
pub fn current_from_generation(
    generation: Option<&SiteGeneration>,
) -> BTreeMap<String, CurrentHost> {
    generation
        .map(|g| {
            g.hosts
                .iter()
                .map(|(name, r)| {
                    (
                        name.clone(),
                        CurrentHost {
                            system: Some(r.system.clone()),
                            generation: r.host_generation,
                            secrets: None,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the deployer knows of the hosts a plan covers before it moves them.
#[derive(Debug, Clone, Copy)]
pub struct HostsNow<'a> {
    /// host → what it runs (hosts that answered, or the record's view).
    pub current: &'a BTreeMap<String, CurrentHost>,
    /// host → why it could not be asked (empty when nobody was asked).
    pub unreachable: &'a BTreeMap<String, String>,
    /// host → the secrets whose value it must get again (empty offline).
    pub rotated: &'a BTreeMap<String, Vec<String>>,
    /// host → the paths of its active closure found modified or missing
    /// (`deploy --repair`; empty otherwise).
    pub repaired: &'a BTreeMap<String, Vec<String>>,
    /// The site's latest site generation on this deployer, if any.
    pub based_on: Option<u64>,
    /// True when `current` comes from the hosts themselves.
    pub live: bool,
}

/// The target of every host of `hosts` whose class was built.
pub fn class_targets(
    hosts: &[&HostEntry],
    systems: &BTreeMap<String, StorePath>,
) -> BTreeMap<String, StorePath> {
    hosts
        .iter()
        .filter_map(|h| Some((h.name.clone(), systems.get(&h.class)?.clone())))
        .collect()
}

/// The rollout engine's view of moving `hosts` to `targets` (host → system).
pub fn rollout_plan(
    site: &Site,
    hosts: &[&HostEntry],
    targets: &BTreeMap<String, StorePath>,
    now: HostsNow<'_>,
) -> RolloutPlan {
    let planned = hosts
        .iter()
        .filter_map(|host| {
            let target = targets.get(&host.name)?;
            let current = now.current.get(&host.name).cloned().unwrap_or_default();
            Some(PlannedHost {
                name: host.name.clone(),
                class: host.class.clone(),
                labels: host.labels.clone(),
                current_system: current.system,
                current_generation: current.generation,
                target_system: target.to_string(),
                unreachable: now.unreachable.get(&host.name).cloned(),
                secrets_rotated: now.rotated.get(&host.name).cloned().unwrap_or_default(),
                repaired: now.repaired.get(&host.name).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let requires = site
        .graph
        .edges
        .iter()
        .map(|e| {
            ServiceEdge::new(
                ServiceNode::new(e.from.class.clone(), e.from.service.clone()),
                ServiceNode::new(e.to.class.clone(), e.to.service.clone()),
            )
        })
        .collect();
    RolloutPlan {
        classes: site.graph.class_order.clone(),
        hosts: planned,
        requires,
        policy: policy_of(&site.rollout),
    }
}

/// Services a move restarts although their definition stays the same.
#[derive(Debug, Clone, Default)]
pub struct Restarts {
    /// Rotated secrets: the services that read them restart.
    pub rotated: BTreeSet<String>,
    /// A repair replaced files: every service restarts.
    pub all: bool,
}

/// Compares two systems in the local store: closure paths and manifests;
/// services restart as the activation will restart them (`restarts`,
/// [`crate::activate::manifest::ManifestDiff::restart_also`]).
pub fn host_change(
    store: &Store,
    current: Option<&StorePath>,
    target: &StorePath,
    restarts: &Restarts,
) -> HostChange {
    let closure_of = |p: Option<&StorePath>| -> BTreeSet<StorePath> {
        p.filter(|p| store.is_valid(p))
            .and_then(|p| store.closure(std::slice::from_ref(p)).ok())
            .map(|c| c.into_iter().collect())
            .unwrap_or_default()
    };
    let old = closure_of(current);
    let new = closure_of(Some(target));
    let sized = |p: &StorePath| PathChange {
        path: p.to_string(),
        size: store.path_info(p).map(|i| i.nar_size).unwrap_or(0),
    };
    let mut change = HostChange {
        added: new.difference(&old).map(sized).collect(),
        removed: old.difference(&new).map(sized).collect(),
        ..HostChange::default()
    };
    // The activation's own diff, so plan shows exactly what a host will do.
    let load = |p: &StorePath| Manifest::load(&store.real_path(p)).ok();
    let old_manifest = current.and_then(load);
    if let Some(new_manifest) = load(target) {
        let mut services = diff(old_manifest.as_ref(), &new_manifest);
        services.restart_also(&new_manifest, &restarts.rotated, restarts.all);
        change.services_started = services.added.into_iter().collect();
        change.services_restarted = services.changed.into_iter().collect();
        change.services_stopped = services.removed.into_iter().collect();
        change.services_unchanged = services.unchanged.into_iter().collect();
        let old_files: BTreeSet<&String> = old_manifest.iter().flat_map(|m| &m.files).collect();
        let new_files: BTreeSet<&String> = new_manifest.files.iter().collect();
        // A file whose text changed is one name, however many paths moved.
        let names: BTreeSet<&str> = old_files
            .symmetric_difference(&new_files)
            .map(|p| object_name(p))
            .collect();
        change.files_changed = names.into_iter().map(str::to_string).collect();
        change.packages_total = new_manifest.debian.len();
        if let Some(old) = &old_manifest {
            change.packages_changed = package_changes(&old.debian, &new_manifest.debian);
        }
    }
    change
}

/// What moved between two trees' Debian packages (name → version), by name.
pub(crate) fn package_changes(
    old: &std::collections::BTreeMap<String, String>,
    new: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| match (old.get(name), new.get(name)) {
            (Some(a), Some(b)) if a != b => Some(format!("{name} {a} → {b}")),
            (None, Some(b)) => Some(format!("+ {name} {b}")),
            (Some(a), None) => Some(format!("- {name} {a}")),
            _ => None,
        })
        .collect()
}

/// Plans moving `hosts` to `targets` (host → system) from what they run `now`.
pub fn plan_deploy(
    store: &Store,
    site: &Site,
    site_dir: &Path,
    hosts: &[&HostEntry],
    targets: &BTreeMap<String, StorePath>,
    now: HostsNow<'_>,
) -> Result<DeployPlan, ferry_rollout::PolicyError> {
    let plan = rollout_plan(site, hosts, targets, now);
    let strategy = ferry_rollout::strategy_for(&plan.policy, site_dir);
    let schedule = ferry_rollout::schedule(&plan, &*strategy)?;
    let mut host_plans = Vec::new();
    for planned in &plan.hosts {
        let Some(host) = hosts.iter().find(|h| h.name == planned.name) else {
            continue;
        };
        let target = &targets[&host.name];
        let current_path = planned
            .current_system
            .as_deref()
            .and_then(|p| store.parse_path(p).ok());
        let restarts = Restarts {
            rotated: planned.secrets_rotated.iter().cloned().collect(),
            all: !planned.repaired.is_empty(),
        };
        let change = host_change(store, current_path.as_ref(), target, &restarts);
        host_plans.push(HostPlan {
            name: host.name.clone(),
            class: host.class.clone(),
            address: host.address.clone(),
            current_system: planned.current_system.clone(),
            target_system: planned.target_system.clone(),
            changes: planned.changes(),
            unreachable: planned.unreachable.clone(),
            secrets_rotated: planned.secrets_rotated.clone(),
            repaired: planned.repaired.clone(),
            change,
        });
    }
    let cross_host = site
        .graph
        .edges
        .iter()
        .filter(|e| e.cross_class)
        .map(|e| format!("{} requires {}", e.from, e.to))
        .collect();
    Ok(DeployPlan {
        site: site.name.clone(),
        based_on: now.based_on,
        live: now.live,
        hosts: host_plans,
        schedule,
        cross_host,
        diffs: Vec::new(),
        plan,
    })
}

impl fmt::Display for DeployPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.based_on {
            _ if self.live => writeln!(
                f,
                "site `{}`: compared with what each host runs now",
                self.site
            )?,
            Some(n) => writeln!(
                f,
                "site `{}`: compared with site generation {n} (hosts not contacted)",
                self.site
            )?,
            None => writeln!(
                f,
                "site `{}`: no site generation yet, every host is fresh",
                self.site
            )?,
        }
        for host in &self.hosts {
            let c = &host.change;
            if let Some(reason) = &host.unreachable {
                writeln!(
                    f,
                    "\n{} ({}, {}): unreachable, counts as a failure of its batch: {reason}",
                    host.name, host.class, host.address
                )?;
                continue;
            }
            if !host.changes {
                writeln!(
                    f,
                    "\n{} ({}, {}): unchanged",
                    host.name, host.class, host.address
                )?;
                continue;
            }
            writeln!(f, "\n{} ({}, {}):", host.name, host.class, host.address)?;
            match host.current_system.as_deref() {
                Some(now) if now == host.target_system => {
                    writeln!(f, "  system   {now} (the same)")?
                }
                now => writeln!(
                    f,
                    "  system   {} → {}",
                    now.unwrap_or("(none)"),
                    host.target_system
                )?,
            }
            if !host.repaired.is_empty() {
                writeln!(
                    f,
                    "  repair   {} modified or missing path(s) sent again: {}",
                    host.repaired.len(),
                    host.repaired.join(", ")
                )?;
            }
            if !host.secrets_rotated.is_empty() {
                writeln!(f, "  secrets  rotated: {}", host.secrets_rotated.join(", "))?;
            }
            let total = |v: &[PathChange]| human_size(v.iter().map(|p| p.size).sum());
            writeln!(
                f,
                "  paths    +{} ({}), -{} ({})",
                c.added.len(),
                total(&c.added),
                c.removed.len(),
                total(&c.removed)
            )?;
            for p in &c.added {
                writeln!(f, "    + {}  {}", p.path, human_size(p.size))?;
            }
            for p in &c.removed {
                writeln!(f, "    - {}  {}", p.path, human_size(p.size))?;
            }
            let list = |v: &[String]| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(", ")
                }
            };
            writeln!(f, "  start    {}", list(&c.services_started))?;
            writeln!(f, "  restart  {}", list(&c.services_restarted))?;
            writeln!(f, "  stop     {}", list(&c.services_stopped))?;
            if !c.files_changed.is_empty() {
                writeln!(f, "  files    {}", c.files_changed.join(", "))?;
            }
            if c.packages_total > 0 {
                let moved = match c.packages_changed.len() {
                    0 if host.current_system.is_none() => "all new".to_string(),
                    0 => "unchanged".to_string(),
                    n => format!("{n} changed"),
                };
                writeln!(
                    f,
                    "  packages {} Debian packages, {moved}",
                    c.packages_total
                )?;
                for line in &c.packages_changed {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        if !self.cross_host.is_empty() {
            writeln!(
                f,
                "\ncross-host dependencies: {}",
                self.cross_host.join("; ")
            )?;
        }
        write!(f, "\n{}", self.schedule)?;
        for diff in &self.diffs {
            write!(f, "{diff}")?;
        }
        Ok(())
    }
}

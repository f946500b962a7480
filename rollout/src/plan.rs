//! The rollout engine's input: the hosts of a deploy, the service graph and the policy.
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a rollout strategy needs to decide the order of a deploy.
///
/// Built by the deploy/plan commands from the evaluated site, the inventory and
/// what each host currently runs. Pure data: no strategy reads anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPlan {
    /// The site's host classes in declaration order. `order = declared` follows
    /// it, and it breaks ties everywhere else so that plans are deterministic.
    /// Classes of hosts or edges missing here sort after it, by name.
    pub classes: Vec<String>,
    /// Every host the run covers (after `--on`), in inventory order, including
    /// hosts that already run their target system.
    pub hosts: Vec<PlannedHost>,
    /// Service dependencies: `from` requires `to`, within a class or across classes.
    pub requires: Vec<ServiceEdge>,
    /// How to order, group and guard the run.
    pub policy: Policy,
}

impl RolloutPlan {
    /// The hosts whose target differs from what they run now, in plan order.
    pub fn changing_hosts(&self) -> impl Iterator<Item = &PlannedHost> {
        self.hosts.iter().filter(|host| host.changes())
    }

    /// Looks a host up by name.
    pub fn host(&self, name: &str) -> Option<&PlannedHost> {
        self.hosts.iter().find(|host| host.name == name)
    }
}

/// One host of a rollout plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedHost {
    /// The inventory name, unique in the plan.
    pub name: String,
    /// The host class it belongs to.
    pub class: String,
    /// Inventory labels (`datacenter = eu1`), used by `group_by`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The system store path the host runs now; `None` for a fresh host.
    pub current_system: Option<String>,
    /// The host's current generation number, if it has one.
    pub current_generation: Option<u64>,
    /// The system store path this run gives the host.
    pub target_system: String,
    /// Why the deployer could not ask the host what it runs; `None` when it
    /// answered (or was not asked, as in `ferry plan --offline`). An
    /// unreachable host is scheduled like any changing host and counts as a
    /// failure of its batch, so `max_failures` and `on_failure` see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
    /// Secrets whose value on the deployer differs from the one the host
    /// has: the host is activated again even when its system stays the
    /// same, which delivers them and restarts the services that read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets_rotated: Vec<String>,
    /// Paths of the host's active closure found modified or missing
    /// (`deploy --repair`): the host is activated again to restore them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
}

impl PlannedHost {
    /// Whether this run must move the host. A host that runs its target
    /// already is listed as unchanged and never batched, unless a secret
    /// it reads was rotated; a host that could not be asked is never taken
    /// to run its target.
    pub fn changes(&self) -> bool {
        self.unreachable.is_some()
            || !self.secrets_rotated.is_empty()
            || !self.repaired.is_empty()
            || self.current_system.as_deref() != Some(self.target_system.as_str())
    }
}

/// A service of a class, written `class.service`: a node of the service graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceNode {
    /// The host class that declares the service.
    pub class: String,
    /// The service's name within its class.
    pub service: String,
}

impl ServiceNode {
    /// The service `service` of class `class`.
    pub fn new(class: impl Into<String>, service: impl Into<String>) -> Self {
        ServiceNode {
            class: class.into(),
            service: service.into(),
        }
    }
}

impl fmt::Display for ServiceNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.class, self.service)
    }
}

/// `from` requires `to`: `to`'s hosts must run the new system before `from`'s.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceEdge {
    /// The service that requires `to`.
    pub from: ServiceNode,
    /// The service `from` requires.
    pub to: ServiceNode,
}

impl ServiceEdge {
    /// The edge "`from` requires `to`".
    pub fn new(from: ServiceNode, to: ServiceNode) -> Self {
        ServiceEdge { from, to }
    }
}

impl fmt::Display for ServiceEdge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} requires {}", self.from, self.to)
    }
}

/// A rollout policy (DESIGN §9), converted from the site's `rollout { … }` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// How classes are put into stages.
    pub order: Order,
    /// Hosts in the first batch of each stage, which must be healthy before the
    /// rest of the stage is touched. `None` or `Some(0)`: no canary.
    pub canary: Option<u32>,
    /// The most hosts activating at once.
    pub batch: BatchSize,
    /// A host label; within a stage, one group (label value) at a time.
    pub group_by: Option<String>,
    /// Group values to roll out first, in this order; other values follow sorted,
    /// and hosts without the label come last.
    #[serde(default)]
    pub group_order: Vec<String>,
    /// How many failed hosts the run tolerates before `on_failure` applies.
    pub max_failures: FailureLimit,
    /// What to do once `max_failures` is exceeded or a canary fails.
    pub on_failure: OnFailure,
    /// What happens between batches.
    pub pause: Pause,
    /// An external policy program (argv) that decides the batches instead of
    /// the built-in strategy. See `rollout/EXTERNAL-POLICY.md`.
    pub external: Option<Vec<String>>,
}

impl Default for Policy {
    /// The policy of a site without a `rollout` block: dependency order, one host
    /// at a time, stop at the first failure.
    fn default() -> Self {
        Policy {
            order: Order::Dependencies,
            canary: None,
            batch: BatchSize::Count(1),
            group_by: None,
            group_order: Vec::new(),
            max_failures: FailureLimit::Count(0),
            on_failure: OnFailure::Stop,
            pause: Pause::None,
            external: None,
        }
    }
}

impl Policy {
    /// The canary size, with `Some(0)` meaning no canary.
    pub fn canary_size(&self) -> usize {
        self.canary.map_or(0, |n| n as usize)
    }

    /// Checks the values a language-level type cannot rule out.
    pub fn validate(&self) -> Result<(), String> {
        match self.batch {
            BatchSize::Count(0) => return Err("batch = 0 would never activate a host".into()),
            BatchSize::Percent(0) => return Err("batch = 0% would never activate a host".into()),
            BatchSize::Percent(p) if p > 100 => {
                return Err(format!("batch = {p}% is more than 100%"));
            }
            _ => {}
        }
        if let FailureLimit::Percent(p) = self.max_failures {
            if p > 100 {
                return Err(format!("max_failures = {p}% is more than 100%"));
            }
        }
        if let Some(label) = &self.group_by {
            if label.is_empty() {
                return Err("group_by names no label".into());
            }
        }
        if let Some(argv) = &self.external {
            if argv.first().is_none_or(|program| program.is_empty()) {
                return Err("external policy names no program".into());
            }
        }
        Ok(())
    }
}

/// How classes are ordered into stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// A class goes after every class whose services its services require.
    /// Classes that require each other through different services (a class-level
    /// cycle over an acyclic service graph) share one stage.
    Dependencies,
    /// One stage per class, in the site's declaration order.
    Declared,
    /// One stage with every host.
    None,
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Dependencies => "dependencies",
            Order::Declared => "declared",
            Order::None => "none",
        })
    }
}

/// `batch = N | P%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchSize {
    /// At most this many hosts at once (`0` is refused by [`Policy::validate`]).
    Count(u32),
    /// Percent of the hosts in the stage (or in the group, with `group_by`),
    /// rounded up, at least one.
    Percent(u8),
}

impl BatchSize {
    /// The most hosts of a stage or group of `hosts` hosts that activate at once.
    pub fn limit(self, hosts: usize) -> usize {
        match self {
            BatchSize::Count(n) => (n as usize).max(1),
            BatchSize::Percent(p) => (hosts * p as usize).div_ceil(100).max(1),
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `max_failures = N | P%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureLimit {
    /// Tolerate this many failed hosts.
    Count(u32),
    /// Percent of all hosts this run changes, rounded down: `10%` of 15 hosts
    /// tolerates one failure, of 9 hosts none. Rounding down keeps the promise
    /// "never more than P% broken".
    Percent(u8),
}

impl FailureLimit {
    /// How many failed hosts a run changing `hosts` hosts tolerates.
    pub fn tolerated(self, hosts: usize) -> usize {
        match self {
            FailureLimit::Count(n) => n as usize,
            FailureLimit::Percent(p) => hosts * p as usize / 100,
        }
    }
}

impl fmt::Display for FailureLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureLimit::Count(n) => write!(f, "{n}"),
            FailureLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `on_failure = stop | rollback | continue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Touch no further host; hosts already switched keep the new system.
    Stop,
    /// Touch no further host and roll back every host switched in this run.
    Rollback,
    /// Go on with the remaining batches; failures are reported at the end.
    Continue,
}

impl fmt::Display for OnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFailure::Stop => "stop",
            OnFailure::Rollback => "rollback",
            OnFailure::Continue => "continue",
        })
    }
}

/// `pause = 30s | confirm`: what happens between two batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pause {
    /// The next batch starts as soon as the previous one is healthy.
    None,
    /// Wait this long (health settles, metrics move) before the next batch.
    /// In JSON: `{"duration": 30.0}` (seconds).
    Duration(#[serde(with = "seconds")] Duration),
    /// Ask the operator before the next batch.
    Confirm,
}

impl fmt::Display for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pause::None => f.write_str("none"),
            Pause::Duration(d) => write!(f, "{}s", d.as_secs_f64()),
            Pause::Confirm => f.write_str("confirm"),
        }
    }
}

/// A duration as fractional seconds in JSON, which tools read more easily than
/// serde's default `{"secs": …, "nanos": …}`.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

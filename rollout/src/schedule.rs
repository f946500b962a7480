//! The rollout engine's output: stages of batches, how they are checked, and how `ferry plan` shows them.
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::order::ClassOrder;
use crate::plan::{OnFailure, Pause, PlannedHost, Policy, RolloutPlan, ServiceEdge};
use crate::PolicyError;

/// A checked rollout: what a deploy activates, in which order.
///
/// Invariants (enforced by [`RolloutSchedule::check`], which every strategy's
/// answer passes through): every host that changes is in exactly one batch;
/// unchanged and unknown hosts are in none; no batch or stage is empty; a host
/// never comes before a host its class must follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSchedule {
    /// The policy the schedule was made under (kept for the site generation record).
    pub policy: Policy,
    /// Stages in activation order; a stage starts when the previous one is done.
    pub stages: Vec<Stage>,
    /// Hosts that already run their target system, in plan order.
    pub unchanged: Vec<String>,
}

/// A set of classes activated together, batch after batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The classes whose hosts this stage activates.
    pub classes: Vec<String>,
    /// Why the stage is where it is.
    pub reasons: Vec<StageReason>,
    /// Batches in order; a batch starts when the previous one is healthy.
    pub batches: Vec<Batch>,
}

/// Hosts activated at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Whether the batch is its stage's canary.
    pub kind: BatchKind,
    /// The `group_by` label value these hosts share, if the policy groups.
    pub group: Option<String>,
    /// Host names, in activation order.
    pub hosts: Vec<String>,
}

impl Batch {
    /// How the batch is described to people: `canary`, `datacenter=eu1`.
    pub fn tags(&self, group_by: Option<&str>) -> Vec<String> {
        let mut tags = Vec::new();
        if self.kind == BatchKind::Canary {
            tags.push("canary".to_owned());
        }
        match (group_by, &self.group) {
            (Some(label), Some(value)) => tags.push(format!("{label}={value}")),
            (Some(label), None) => tags.push(format!("no {label}")),
            (None, Some(value)) => tags.push(format!("group {value}")),
            (None, None) => {}
        }
        tags
    }
}

/// Whether a batch is a canary: the first hosts of a stage to get the new system.
///
/// A canary batch tests the stage's new system on a few hosts before the rest
/// of the stage is touched: a failure in it stops the run (or rolls it back)
/// even when `max_failures` would tolerate it, unless `on_failure = continue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// The first batch of a stage, which proves its new system.
    Canary,
    /// Any other batch.
    Normal,
}

/// Why a stage is ordered where it is; printed by `ferry plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageReason {
    /// A service of this stage requires a service of an earlier stage.
    Requires {
        /// The requirement that reaches into the earlier stage.
        edge: ServiceEdge,
    },
    /// These classes require each other through different services, so they
    /// are activated together (a class-level cycle; the services are acyclic).
    Together {
        /// The classes of the cycle, in declaration order.
        classes: Vec<String>,
        /// The requirements between them, sorted.
        edges: Vec<ServiceEdge>,
    },
    /// No service of this stage requires another class.
    Independent,
    /// `order = declared`: the site declares `after` before `class`.
    Declared {
        /// The class of this stage.
        class: String,
        /// The class declared just before it; `None` for the first class.
        after: Option<String>,
    },
    /// `order = none`: every host in one stage.
    Unordered,
    /// An external policy program chose this order.
    External {
        /// The program's command line.
        program: String,
    },
}

impl fmt::Display for StageReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageReason::Requires { edge } => {
                write!(f, "{} after {}: {edge}", edge.from.class, edge.to.class)
            }
            StageReason::Together { classes, edges } => {
                let edges: Vec<String> = edges.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{} together: {}",
                    classes.join(" and "),
                    edges.join(", ")
                )
            }
            StageReason::Independent => f.write_str("requires no service of another class"),
            StageReason::Declared {
                class,
                after: Some(after),
            } => {
                write!(f, "{class} after {after}: declared order")
            }
            StageReason::Declared { class, after: None } => {
                write!(f, "{class} first: declared order")
            }
            StageReason::Unordered => f.write_str("all classes together: order = none"),
            StageReason::External { program } => write!(f, "chosen by external policy {program}"),
        }
    }
}

/// One way a strategy's answer breaks the schedule's invariants.
///
/// Batches and stages are numbered from 1, batches across stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleViolation {
    /// A batch names a host that is not in the plan.
    UnknownHost {
        /// The name the batch gives.
        host: String,
        /// The batch that names it.
        batch: usize,
    },
    /// A batch names a host that already runs its target system.
    UnchangedHost {
        /// The unchanged host.
        host: String,
        /// The batch that names it.
        batch: usize,
    },
    /// A host is named more than once.
    Duplicate {
        /// The host named again.
        host: String,
        /// The batch that names it first.
        first: usize,
        /// The batch that names it again (may be `first`).
        again: usize,
    },
    /// A changing host is in no batch.
    Missing {
        /// The host left out.
        host: String,
    },
    /// A batch has no hosts.
    EmptyBatch {
        /// The empty batch.
        batch: usize,
    },
    /// A stage has no batches.
    EmptyStage {
        /// The empty stage.
        stage: usize,
    },
    /// `host` (class `class`) is in batch `batch`, but `earlier` (class
    /// `earlier_class`), which it must follow, is in batch `earlier_batch`.
    OutOfOrder {
        /// The host that comes too early.
        host: String,
        /// Its class.
        class: String,
        /// Its batch.
        batch: usize,
        /// A host it must follow.
        earlier: String,
        /// That host's class.
        earlier_class: String,
        /// That host's batch, the same as or after `batch`.
        earlier_batch: usize,
    },
}

impl fmt::Display for ScheduleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleViolation::UnknownHost { host, batch } => {
                write!(
                    f,
                    "batch {batch} names `{host}`, which is not a host of this plan"
                )
            }
            ScheduleViolation::UnchangedHost { host, batch } => write!(
                f,
                "batch {batch} names `{host}`, which already runs its target system"
            ),
            ScheduleViolation::Duplicate { host, first, again } if first == again => {
                write!(f, "`{host}` is twice in batch {first}")
            }
            ScheduleViolation::Duplicate { host, first, again } => {
                write!(f, "`{host}` is in batch {first} and again in batch {again}")
            }
            ScheduleViolation::Missing { host } => {
                write!(f, "`{host}` changes but is in no batch")
            }
            ScheduleViolation::EmptyBatch { batch } => write!(f, "batch {batch} has no hosts"),
            ScheduleViolation::EmptyStage { stage } => write!(f, "stage {stage} has no batches"),
            ScheduleViolation::OutOfOrder {
                host,
                class,
                batch,
                earlier,
                earlier_class,
                earlier_batch,
            } => write!(
                f,
                "`{host}` ({class}) is in batch {batch}, but `{earlier}` ({earlier_class}) \
                 is in batch {earlier_batch}: every {earlier_class} host must be done before \
                 any {class} host starts"
            ),
        }
    }
}

impl RolloutSchedule {
    /// Checks a strategy's stages against the plan and wraps them with the
    /// unchanged hosts. `strategy` names it in
    /// errors. Batches are numbered from 1 across stages in messages.
    pub fn check(
        plan: &RolloutPlan,
        strategy: &str,
        stages: Vec<Stage>,
    ) -> Result<RolloutSchedule, PolicyError> {
        let order = ClassOrder::of(plan)?;
        let violations = violations(plan, &order, &stages);
        if !violations.is_empty() {
            return Err(PolicyError::InvalidSchedule {
                strategy: strategy.to_owned(),
                violations,
            });
        }
        Ok(RolloutSchedule {
            policy: plan.policy.clone(),
            stages,
            unchanged: plan
                .hosts
                .iter()
                .filter(|h| !h.changes())
                .map(|h| h.name.clone())
                .collect(),
        })
    }

    /// All batches in activation order.
    pub fn batches(&self) -> impl Iterator<Item = &Batch> {
        self.stages.iter().flat_map(|stage| stage.batches.iter())
    }

    /// The hosts this run changes, batch by batch.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.batches().flat_map(|b| &b.hosts)
    }

    /// How many hosts this run changes.
    pub fn hosts_to_change(&self) -> usize {
        self.batches().map(|b| b.hosts.len()).sum()
    }
}

fn violations(plan: &RolloutPlan, order: &ClassOrder, stages: &[Stage]) -> Vec<ScheduleViolation> {
    let mut found = Vec::new();
    let by_name: HashMap<&str, &PlannedHost> =
        plan.hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    // host → batch number (1-based, across stages)
    let mut placed: HashMap<&str, usize> = HashMap::new();
    let mut number = 0;
    for (stage_index, stage) in stages.iter().enumerate() {
        if stage.batches.is_empty() {
            found.push(ScheduleViolation::EmptyStage {
                stage: stage_index + 1,
            });
        }
        for batch in &stage.batches {
            number += 1;
            if batch.hosts.is_empty() {
                found.push(ScheduleViolation::EmptyBatch { batch: number });
            }
            for host in &batch.hosts {
                let (host, batch) = (host.clone(), number);
                match by_name.get(host.as_str()) {
                    None => found.push(ScheduleViolation::UnknownHost { host, batch }),
                    Some(known) if !known.changes() => {
                        found.push(ScheduleViolation::UnchangedHost { host, batch })
                    }
                    Some(known) => match placed.get(known.name.as_str()) {
                        Some(&first) => found.push(ScheduleViolation::Duplicate {
                            host,
                            first,
                            again: batch,
                        }),
                        None => {
                            placed.insert(&known.name, batch);
                        }
                    },
                }
            }
        }
    }
    for host in plan.changing_hosts() {
        if !placed.contains_key(host.name.as_str()) {
            found.push(ScheduleViolation::Missing {
                host: host.name.clone(),
            });
        }
    }
    // Order: every changing host of a class that `later` must follow sits in a
    // strictly earlier batch. Comparing against the last-placed host of each
    // class keeps this linear in hosts × classes; one offender per host keeps
    // the message readable.
    let mut last_of_class: BTreeMap<&str, (usize, &PlannedHost)> = BTreeMap::new();
    for host in plan.changing_hosts() {
        if let Some(&batch) = placed.get(host.name.as_str()) {
            let last = last_of_class.entry(&host.class).or_insert((batch, host));
            if batch > last.0 {
                *last = (batch, host);
            }
        }
    }
    for later in plan.changing_hosts() {
        let Some(&later_batch) = placed.get(later.name.as_str()) else {
            continue;
        };
        let offender = last_of_class.iter().find(|(class, (batch, _))| {
            *batch >= later_batch && order.must_precede(&later.class, class)
        });
        if let Some((_, &(earlier_batch, earlier))) = offender {
            found.push(ScheduleViolation::OutOfOrder {
                host: later.name.clone(),
                class: later.class.clone(),
                batch: later_batch,
                earlier: earlier.name.clone(),
                earlier_class: earlier.class.clone(),
                earlier_batch,
            });
        }
    }
    found
}

/// The text `ferry plan` prints for the rollout: policy, stages, batches, why.
impl fmt::Display for RolloutSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.policy;
        write!(f, "rollout: ")?;
        match &p.external {
            Some(argv) => write!(f, "external policy `{}`", argv.join(" "))?,
            None => {
                write!(f, "order {}, batch {}", p.order, p.batch)?;
                if p.canary_size() > 0 {
                    write!(f, ", canary {}", p.canary_size())?;
                }
                if let Some(label) = &p.group_by {
                    write!(f, ", one {label} at a time")?;
                }
            }
        }
        writeln!(f)?;
        match p.on_failure {
            OnFailure::Continue => write!(f, "  failures: continue past any failure")?,
            other => write!(f, "  failures: tolerate {}, then {other}", p.max_failures)?,
        }
        match p.pause {
            Pause::None => writeln!(f)?,
            Pause::Duration(_) => writeln!(f, "; pause {} between batches", p.pause)?,
            Pause::Confirm => writeln!(f, "; confirm before each batch")?,
        }
        let mut number = 0;
        for (index, stage) in self.stages.iter().enumerate() {
            writeln!(f, "stage {}: {}", index + 1, stage.classes.join(", "))?;
            for reason in &stage.reasons {
                writeln!(f, "  why: {reason}")?;
            }
            for batch in &stage.batches {
                number += 1;
                write!(f, "  batch {number}")?;
                let tags = batch.tags(p.group_by.as_deref());
                if !tags.is_empty() {
                    write!(f, " ({})", tags.join(", "))?;
                }
                writeln!(f, ": {}", batch.hosts.join(", "))?;
            }
        }
        if self.stages.is_empty() {
            writeln!(f, "nothing to activate")?;
        }
        if !self.unchanged.is_empty() {
            writeln!(f, "unchanged: {}", self.unchanged.join(", "))?;
        }
        Ok(())
    }
}

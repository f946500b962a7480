//! Failure accounting during a rollout: a pure state machine fed batch by batch.
//!
//! Rules, in this order, after each batch:
//! 1. Hosts that `Failed` or were `RolledBack` count as failures. Hosts that
//!    `Succeeded` count as switched in this run.
//! 2. A failure in a canary batch, or more failures in the run than
//!    `max_failures` tolerates, triggers `on_failure`:
//!    - `stop`: no further host is touched; switched hosts keep the new system;
//!    - `rollback`: no further host is touched and every host switched so far in
//!      this run (all batches, including the one just finished) goes back to
//!      its previous generation;
//!    - `continue`: the run goes on; failures show in the final report.
//!
//!    A canary failure triggers `on_failure` even when `max_failures` would
//!    tolerate it: the canary exists to stop a bad system early.
//! 3. A batch whose hosts' class requires a service of another class with a
//!    failed host in this run (a load balancer in front of a web host that
//!    failed or could not be reached) is not started: that, too, triggers
//!    `on_failure` (with `continue` the run goes on).
//! 4. Otherwise the next batch runs.
//!
//! Failed and rolled-back hosts are never in a rollback list: the host agent
//! never reports success on failure and restores the previous generation
//! itself (DESIGN §8), and a host that failed before activation never switched.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::plan::{FailureLimit, OnFailure, RolloutPlan};
use crate::schedule::{Batch, BatchKind, RolloutSchedule};

/// What happened to one host in a batch, as the failure accounting counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostVerdict {
    /// Activated, healthy and confirmed.
    Succeeded,
    /// Never switched (unreachable, copy failed) or left without confirmation.
    Failed,
    /// Activated, failed its checks, and went back to its previous generation.
    RolledBack,
}

/// What the deployer does after a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Run the next batch (if [`RolloutProgress::next_batch`] has one).
    Continue,
    /// Touch no further host.
    Stop {
        /// Why the run stops.
        reason: StopReason,
    },
    /// Touch no further host, and roll these hosts (switched in this run, in
    /// activation order) back to their previous generation.
    RollbackAll {
        /// The hosts to roll back, in activation order.
        hosts: Vec<String>,
        /// Why the run stops.
        reason: StopReason,
    },
}

/// Why a rollout stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// Hosts of a canary batch failed.
    CanaryFailed {
        /// The canary's failed hosts.
        hosts: Vec<String>,
    },
    /// More hosts failed than `max_failures` tolerates.
    TooManyFailures {
        /// Every host that failed in the run, in activation order.
        failed: Vec<String>,
        /// How many failures the policy tolerates.
        tolerated: usize,
    },
    /// The next batch's class requires a class with failed hosts.
    DependencyFailed {
        /// The class that was not activated.
        class: String,
        /// The class it requires.
        requires: String,
        /// The hosts of `requires` that failed in this run, in activation order.
        failed: Vec<String>,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::CanaryFailed { hosts } => {
                write!(f, "canary failed on {}", hosts.join(", "))
            }
            StopReason::TooManyFailures { failed, tolerated } => write!(
                f,
                "{} host(s) failed ({}), max_failures tolerates {tolerated}",
                failed.len(),
                failed.join(", ")
            ),
            StopReason::DependencyFailed {
                class,
                requires,
                failed,
            } => write!(
                f,
                "{class} requires {requires}, and {requires} host(s) {} failed: \
                 {class} is not activated past a failed dependency",
                failed.join(", ")
            ),
        }
    }
}

/// A deployer reported outcomes that do not fit the schedule: a bug in the caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProgressError {
    /// Outcomes were recorded after the run was done or stopped.
    #[error("the rollout is over; no batch is waiting for outcomes")]
    Finished,
    /// The outcomes name other hosts than the waiting batch.
    #[error(
        "outcomes do not match the batch: missing {missing:?}, not in the batch {unexpected:?}"
    )]
    Mismatch {
        /// Hosts of the batch without an outcome.
        missing: Vec<String>,
        /// Hosts with an outcome that are not in the batch.
        unexpected: Vec<String>,
    },
}

/// Where a rollout stands: which batch is next, who switched, who failed.
#[derive(Debug, Clone)]
pub struct RolloutProgress {
    batches: Vec<Batch>,
    next: usize,
    tolerated: usize,
    on_failure: OnFailure,
    switched: Vec<String>,
    failed: Vec<String>,
    stopped: Option<Decision>,
    /// host → its class.
    class_of: BTreeMap<String, String>,
    /// class → the other classes whose services its services require.
    requires: BTreeMap<String, BTreeSet<String>>,
}

impl RolloutProgress {
    /// Starts accounting for `schedule`, made from `plan`. `max_failures =
    /// P%` is taken of all the hosts this run changes.
    pub fn new(plan: &RolloutPlan, schedule: &RolloutSchedule) -> Self {
        let limit: FailureLimit = schedule.policy.max_failures;
        let mut requires: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for edge in plan.requires.iter().filter(|e| e.from.class != e.to.class) {
            requires
                .entry(edge.from.class.clone())
                .or_default()
                .insert(edge.to.class.clone());
        }
        RolloutProgress {
            class_of: plan
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.class.clone()))
                .collect(),
            requires,
            batches: schedule.batches().cloned().collect(),
            next: 0,
            tolerated: limit.tolerated(schedule.hosts_to_change()),
            on_failure: schedule.policy.on_failure,
            switched: Vec::new(),
            failed: Vec::new(),
            stopped: None,
        }
    }

    /// The batch to activate now; `None` once the run is over (done or stopped).
    pub fn next_batch(&self) -> Option<&Batch> {
        if self.stopped.is_some() {
            return None;
        }
        self.batches.get(self.next)
    }

    /// Records the outcome of every host of [`Self::next_batch`] and decides.
    pub fn record(
        &mut self,
        outcomes: &BTreeMap<String, HostVerdict>,
    ) -> Result<Decision, ProgressError> {
        let batch = self.next_batch().ok_or(ProgressError::Finished)?.clone();
        let missing: Vec<String> = batch
            .hosts
            .iter()
            .filter(|h| !outcomes.contains_key(*h))
            .cloned()
            .collect();
        let unexpected: Vec<String> = outcomes
            .keys()
            .filter(|h| !batch.hosts.contains(h))
            .cloned()
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(ProgressError::Mismatch {
                missing,
                unexpected,
            });
        }
        let canary = batch.kind == BatchKind::Canary;
        let mut failed_here = Vec::new();
        for host in &batch.hosts {
            match outcomes[host] {
                HostVerdict::Succeeded => self.switched.push(host.clone()),
                HostVerdict::Failed | HostVerdict::RolledBack => failed_here.push(host.clone()),
            }
        }
        self.failed.extend(failed_here.iter().cloned());
        self.next += 1;

        let reason = if canary && !failed_here.is_empty() {
            StopReason::CanaryFailed { hosts: failed_here }
        } else if self.failed.len() > self.tolerated {
            StopReason::TooManyFailures {
                failed: self.failed.clone(),
                tolerated: self.tolerated,
            }
        } else if let Some(reason) = self.next_batch_blocked() {
            reason
        } else {
            return Ok(Decision::Continue);
        };
        let decision = match self.on_failure {
            OnFailure::Continue => return Ok(Decision::Continue),
            OnFailure::Stop => Decision::Stop { reason },
            OnFailure::Rollback => Decision::RollbackAll {
                hosts: self.switched.clone(),
                reason,
            },
        };
        self.stopped = Some(decision.clone());
        Ok(decision)
    }

    /// Why the next batch must not start: one of its hosts' classes requires
    /// a class with a failed host in this run.
    fn next_batch_blocked(&self) -> Option<StopReason> {
        let batch = self.batches.get(self.next)?;
        let classes: BTreeSet<&String> = batch
            .hosts
            .iter()
            .filter_map(|h| self.class_of.get(h))
            .collect();
        for class in classes {
            for required in self.requires.get(class).into_iter().flatten() {
                let failed: Vec<String> = self
                    .failed
                    .iter()
                    .filter(|h| self.class_of.get(*h) == Some(required))
                    .cloned()
                    .collect();
                if !failed.is_empty() {
                    return Some(StopReason::DependencyFailed {
                        class: class.clone(),
                        requires: required.clone(),
                        failed,
                    });
                }
            }
        }
        None
    }

    /// Hosts switched to their target in this run, in activation order.
    pub fn switched(&self) -> &[String] {
        &self.switched
    }

    /// Hosts that failed in this run, in activation order.
    pub fn failed(&self) -> &[String] {
        &self.failed
    }

    /// The decision that ended the run early, if one did.
    pub fn stopped(&self) -> Option<&Decision> {
        self.stopped.as_ref()
    }

    /// How many failed hosts the run tolerates before `on_failure` applies.
    pub fn tolerated(&self) -> usize {
        self.tolerated
    }
}

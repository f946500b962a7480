//! Rollout policies: turn a deploy's hosts, service graph and policy into checked stages of batches.
//!
//! Pure logic except [`external`], which runs an operator's policy program.
//! The crate depends on no other ferry crate: it sees hosts, services and
//! systems only as the names in a [`RolloutPlan`].
//!
//! The flow is: build a [`RolloutPlan`], pick a [`RolloutStrategy`] with
//! [`strategy_for`], get a [`RolloutSchedule`] from [`schedule`] (which checks
//! any strategy's answer before anything is touched), then feed per-host
//! outcomes batch by batch into a [`RolloutProgress`], which says whether to
//! go on, stop, or roll back.
//!
//! Stages: with `order = dependencies`, a class goes after every class whose
//! services its services require. Dependencies are between services, so two
//! classes may require each other (`web.app → db.postgres`,
//! `db.backup → web.static`): classes in one strongly connected component of
//! the class graph form one stage and are activated together. A cycle among
//! services is refused ([`PolicyError::ServiceCycle`]).
#![warn(missing_docs)]

use std::path::Path;

use miette::Diagnostic;
use thiserror::Error;

mod accounting;
mod builtin;
pub mod external;
mod order;
mod plan;
mod schedule;

pub use accounting::{Decision, HostVerdict, ProgressError, RolloutProgress, StopReason};
pub use builtin::BuiltinStrategy;
pub use external::{ExternalError, ExternalStrategy};
pub use plan::{
    BatchSize, FailureLimit, OnFailure, Order, Pause, PlannedHost, Policy, RolloutPlan,
    ServiceEdge, ServiceNode,
};
pub use schedule::{Batch, BatchKind, RolloutSchedule, ScheduleViolation, Stage, StageReason};

/// A way to order a deploy: built-in or an external program.
pub trait RolloutStrategy {
    /// Names the strategy in messages: "the built-in strategy",
    /// "external policy `./policy.py`".
    fn name(&self) -> String;

    /// Orders the plan's changing hosts into stages of batches. The answer is
    /// checked by [`schedule`]; a strategy need not re-check it.
    fn batches(&self, plan: &RolloutPlan) -> Result<Vec<Stage>, PolicyError>;
}

/// The strategy a plan's policy asks for. `site_dir` is where an external
/// policy program runs (relative program paths are relative to it).
pub fn strategy_for(policy: &Policy, site_dir: &Path) -> Box<dyn RolloutStrategy> {
    match &policy.external {
        Some(argv) => Box::new(ExternalStrategy::new(argv.clone()).current_dir(site_dir)),
        None => Box::new(BuiltinStrategy),
    }
}

/// Asks `strategy` for the batches of `plan` and checks the answer: every
/// changing host exactly once, no unknown or unchanged host, no empty batch,
/// class order respected. Nothing is touched before this returns `Ok`.
pub fn schedule(
    plan: &RolloutPlan,
    strategy: &dyn RolloutStrategy,
) -> Result<RolloutSchedule, PolicyError> {
    plan.policy
        .validate()
        .map_err(|reason| PolicyError::InvalidPolicy { reason })?;
    let stages = strategy.batches(plan)?;
    RolloutSchedule::check(plan, &strategy.name(), stages)
}

/// Why no schedule could be made.
#[derive(Debug, Error, Diagnostic)]
pub enum PolicyError {
    /// The policy has a value no schedule can honour (`batch = 0`, `120%`).
    #[error("invalid rollout policy: {reason}")]
    #[diagnostic(help("fix the site's `rollout` block"))]
    InvalidPolicy {
        /// What is wrong with the policy, naming the setting.
        reason: String,
    },

    /// Two hosts of the plan share a name.
    #[error("host `{host}` appears twice in the rollout plan")]
    #[diagnostic(help("host names must be unique across the inventory"))]
    DuplicateHost {
        /// The name given twice.
        host: String,
    },

    /// Services require each other in a cycle, so none of them can start.
    #[error("services require each other in a cycle: {}", cycle_text(.cycle))]
    #[diagnostic(help(
        "no service can start before the others it waits for; remove one of these `requires`"
    ))]
    ServiceCycle {
        /// The cycle, first service repeated at the end.
        cycle: Vec<ServiceNode>,
    },

    /// A strategy's answer broke the schedule's invariants; nothing was touched.
    #[error("invalid rollout schedule from {strategy}:{}", violations_text(.violations))]
    #[diagnostic(help("no host was touched; fix the policy and run again"))]
    InvalidSchedule {
        /// The strategy that answered, as [`RolloutStrategy::name`] says it.
        strategy: String,
        /// Every way the answer breaks the invariants.
        violations: Vec<ScheduleViolation>,
    },

    /// An external policy program gave no usable answer.
    #[error(transparent)]
    #[diagnostic(transparent)]
    External(#[from] ExternalError),
}

fn cycle_text(cycle: &[ServiceNode]) -> String {
    cycle
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}

fn violations_text(violations: &[ScheduleViolation]) -> String {
    violations.iter().map(|v| format!("\n  - {v}")).collect()
}

#[cfg(test)]
mod tests;

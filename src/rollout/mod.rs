//! Rollout policies: turn a deploy's hosts, service graph and policy into checked stages of batches.
//!
//! Pure logic except [`external`], which runs an operator's policy program.
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
use std::path::Path;

use miette::Diagnostic;
use thiserror::Error;

mod builtin;
pub mod external;
mod order;
mod plan;
mod progress;
mod schedule;

pub use builtin::BuiltinStrategy;
pub use external::{ExternalError, ExternalStrategy};
pub use plan::{
    BatchSize, FailureLimit, OnFailure, Order, Pause, PlannedHost, Policy, RolloutPlan,
    ServiceEdge, ServiceRef,
};
pub use progress::{Decision, HostOutcome, ProgressError, RolloutProgress, StopReason};
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
    #[error("invalid rollout policy: {reason}")]
    #[diagnostic(help("fix the site's `rollout` block"))]
    InvalidPolicy { reason: String },

    #[error("host `{host}` appears twice in the rollout plan")]
    #[diagnostic(help("host names must be unique across the inventory"))]
    DuplicateHost { host: String },

    #[error("services require each other in a cycle: {}", cycle_text(.cycle))]
    #[diagnostic(help(
        "no service can start before the others it waits for; remove one of these `requires`"
    ))]
    ServiceCycle {
        /// The cycle, first service repeated at the end.
        cycle: Vec<ServiceRef>,
    },

    #[error("invalid rollout schedule from {strategy}:{}", violations_text(.violations))]
    #[diagnostic(help("no host was touched; fix the policy and run again"))]
    InvalidSchedule {
        strategy: String,
        violations: Vec<ScheduleViolation>,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    External(#[from] ExternalError),
}

fn cycle_text(cycle: &[ServiceRef]) -> String {
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

//! `ferry deploy` and site-wide `ferry rollback`: move hosts to target systems
//! under the site's rollout policy and record the result as a site generation.
//!
//! Order of work (DESIGN §9), one phase each: ask every selected host what
//! it runs now (`survey`); work out each host's target (`targets`);
//! read every secret the targets use (a missing source stops the deploy
//! here, a rotated value makes its host change); plan and schedule (checked
//! before anything is touched); copy every changing host's
//! closure, all hosts in parallel, before any activation (`copy`); activate
//! batch by batch, confirming each success over a *new* connection, so a host
//! that never gets its confirmation rolls itself back (`rollout`); record the
//! site generation (`record`).
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use ferry_lang::inventory::HostEntry;
use ferry_lang::Site;
use ferry_store::{Store, StorePath};
use serde::Serialize;

use super::hosts::{Reach, Sessions};
use super::plan::{plan_deploy, DeployPlan, HostsNow};
use super::run::{run_rollout, Pauser, RolloutObserver, RolloutOutcome};
use super::secrets::{read_for_systems, rotated_secrets};
use super::site_generation::SiteGenerations;
use crate::build::system::ServiceSelection;
use crate::transport::bootstrap::AgentBinary;
use crate::transport::ssh::keepalive_within;

mod copy;
mod record;
mod rollout;
mod survey;
mod targets;

/// One deploy (or site rollback) to run.
pub struct DeployRequest<'a> {
    /// The deployer's store, holding every target system.
    pub store: &'a Store,
    /// The evaluated site.
    pub site: &'a Site,
    /// The site's directory (external policy programs are found from it).
    pub site_dir: PathBuf,
    /// The hosts to move (after `--on`), in inventory order.
    pub hosts: Vec<&'a HostEntry>,
    /// host → system to move it to.
    pub targets: BTreeMap<String, StorePath>,
    /// `--only` / `--skip`.
    pub selection: ServiceSelection,
    /// What is recorded as the site generation's command.
    pub command: String,
    /// How to reach the hosts.
    pub reach: Reach,
    /// Magic rollback deadline.
    pub confirm_within: Duration,
    /// Plan and copy nothing, activate nothing.
    pub dry_run: bool,
    /// Re-hash each host's active closure first; a host with modified or
    /// missing paths gets them again and restarts its services.
    pub repair: bool,
    /// The plan carries what changes inside each class's system
    /// ([`crate::deploy::diff::class_diffs`]), for the question and the dry run.
    pub diff: bool,
}

/// Why a deploy stopped as a whole (a single host's failure is in its result instead).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DeployError {
    /// `--only`/`--skip` on a host that has no system to keep the other services from.
    #[error("host `{host}` runs no system yet, so `--only`/`--skip` has nothing to keep")]
    #[diagnostic(help("deploy every service to it first (without --only/--skip)"))]
    PartialOnFreshHost {
        /// The host.
        host: String,
    },
    /// The partial system could not be written.
    #[error("cannot compose the partial system for host `{host}`: {reason}")]
    Compose {
        /// The host.
        host: String,
        /// Why, as text.
        reason: String,
    },
    /// The rollout policy refused the plan, or its schedule failed its check.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Policy(#[from] ferry_rollout::PolicyError),
    /// This ferry could not be added to the store as the agent.
    #[error("cannot add ferry's own executable to the store: {0}")]
    Agent(String),
    /// The site generation could not be written.
    #[error("cannot record the site generation: {0}")]
    Record(#[from] super::site_generation::SiteGenerationError),
    /// A secret of a changing host's system could not be read.
    #[error(transparent)]
    #[diagnostic(help("{}", .0.hint.unwrap_or("check the secret's source on the deployer")))]
    Secrets(#[from] super::secrets::SystemSecretError),
    /// The operator said no to the plan.
    #[error("cancelled; nothing was touched")]
    Cancelled,
}

impl DeployError {
    /// True when the request itself is wrong (exit 2), not the hosts.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DeployError::PartialOnFreshHost { .. }
                | DeployError::Policy(_)
                | DeployError::Secrets(_)
        )
    }
}

/// Per-host result of the copy step.
#[derive(Debug, Clone, Serialize)]
pub struct CopySummary {
    /// The host.
    pub host: String,
    /// It got the whole closure.
    pub ok: bool,
    /// Objects that were missing on the host and were sent.
    pub objects_sent: u64,
    /// Bytes written to the host's agent session.
    pub bytes_sent: u64,
    /// Why the copy failed (the whole error chain).
    pub error: Option<String>,
}

/// Everything a deploy did.
#[derive(Debug, Serialize)]
pub struct DeployReport {
    /// The plan and schedule the run followed.
    pub plan: DeployPlan,
    /// Hosts that could not be asked what they run: never touched, and each
    /// a failure of its batch.
    pub unreachable: BTreeMap<String, String>,
    /// One summary per host a copy was made for.
    pub copies: Vec<CopySummary>,
    /// What the rollout did to each host.
    pub outcome: RolloutOutcome,
    /// The site generation recorded (none for `--dry-run`).
    pub site_generation: Option<u64>,
}

impl DeployReport {
    /// A `--dry-run`: the plan, and every host it would change untouched.
    fn dry_run(plan: DeployPlan, unreachable: BTreeMap<String, String>) -> DeployReport {
        let outcome = RolloutOutcome {
            hosts: BTreeMap::new(),
            untouched: plan.schedule.hosts().cloned().collect(),
            stopped: None,
        };
        DeployReport {
            plan,
            unreachable,
            copies: Vec::new(),
            outcome,
            site_generation: None,
        }
    }

    /// The process exit code of this deploy (DESIGN §10): the rollout's,
    /// or 1 when it went well but some host could not be asked.
    pub fn exit_code(&self) -> i32 {
        let code = self.outcome.exit_code();
        if code == 0 && !self.unreachable.is_empty() {
            1
        } else {
            code
        }
    }
}

/// Runs a deploy (or a site rollback) and records it. `approve` sees the
/// plan before anything is copied or activated; false cancels the deploy.
pub fn deploy(
    request: &DeployRequest<'_>,
    pauser: &dyn Pauser,
    observer: &dyn RolloutObserver,
    approve: &dyn Fn(&DeployPlan) -> bool,
) -> Result<DeployReport, DeployError> {
    let binary =
        AgentBinary::this_ferry(request.store).map_err(|e| DeployError::Agent(e.to_string()))?;
    // A link lost mid-activation ends well within the confirmation deadline.
    let mut reach = request.reach.clone();
    reach
        .ssh
        .keepalive
        .get_or_insert(keepalive_within(request.confirm_within));
    let sessions = Sessions::new(request.store, &binary, &reach);

    // 1. What every host runs now (live).
    let survey = survey::survey(request, &sessions);
    // 2. Partial upgrades: keep the other services' current definitions.
    let targets = targets::targets(request, &survey)?;
    // 3. Every secret the hosts' targets read, on the deployer: a missing
    // source stops the deploy before anything is copied, and a value that
    // differs from the host's makes the host change.
    let secrets = read_for_systems(request.store, request.site, targets.values())?;
    let rotated = rotated_secrets(&survey.current, &targets, &secrets);
    // 4. Plan and schedule; nothing is touched if the policy's answer is bad.
    let now = HostsNow {
        current: &survey.current,
        unreachable: &survey.unreachable,
        rotated: &rotated,
        repaired: &survey.repaired,
        based_on: SiteGenerations::new(request.store.state_dir(), &request.site.name)
            .latest()
            .ok()
            .flatten()
            .map(|g| g.number),
        live: true,
    };
    let mut plan = plan_deploy(
        request.store,
        request.site,
        &request.site_dir,
        &request.hosts,
        &targets,
        now,
    )?;
    if request.diff {
        plan.diffs = crate::deploy::diff::class_diffs(request.store, &plan);
    }
    let changing: BTreeSet<String> = plan.schedule.hosts().cloned().collect();
    if request.dry_run {
        return Ok(DeployReport::dry_run(plan, survey.unreachable));
    }
    if !approve(&plan) {
        return Err(DeployError::Cancelled);
    }
    // 5. Copy every changing host's closure, before any activation.
    let copied = copy::copy_closures(request, &binary, &survey.reachable, &targets, &changing);
    // 6. Activate under the policy; a host that could not be asked fails its batch.
    let executor = rollout::SessionExecutor::new(
        request,
        &sessions,
        &survey,
        (&targets, &secrets),
        copied.failed,
    );
    let outcome = run_rollout(
        &plan.plan,
        &plan.schedule,
        &executor,
        pauser,
        observer,
        request.reach.max_parallel,
    );
    // 7. Record what every host of the site runs now.
    let run = record::RunResult {
        survey: &survey,
        targets: &targets,
        changing: &changing,
        outcome: &outcome,
    };
    let site_generation = record::record(request, &run)?;
    Ok(DeployReport {
        plan,
        unreachable: survey.unreachable,
        copies: copied.copies,
        outcome,
        site_generation: Some(site_generation),
    })
}

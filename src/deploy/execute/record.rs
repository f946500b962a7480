//! Deploy phase 6, the record: what every host of the site runs after the
//! run, written as the next site generation on the deployer.
use std::collections::{BTreeMap, BTreeSet};

use ferry_lang::inventory::HostEntry;
use ferry_store::StorePath;

use super::survey::Survey;
use super::{DeployError, DeployRequest};
use crate::deploy::run::{HostResult, RolloutOutcome};
use crate::deploy::site_generation::{HostOutcome, HostRecord, SiteGeneration, SiteGenerations};

/// What one run did, as the record needs it.
pub(super) struct RunResult<'a> {
    pub survey: &'a Survey<'a>,
    /// host → the system it was moved to.
    pub targets: &'a BTreeMap<String, StorePath>,
    /// The hosts the schedule changes.
    pub changing: &'a BTreeSet<String>,
    pub outcome: &'a RolloutOutcome,
}

/// Records the run as the site's next generation; returns its number.
pub(super) fn record(request: &DeployRequest<'_>, run: &RunResult<'_>) -> Result<u64, DeployError> {
    let generations = SiteGenerations::new(request.store.state_dir(), &request.site.name);
    let previous = generations.latest()?;
    let mut records = BTreeMap::new();
    for host in request.site.hosts() {
        if let Some(entry) = host_record(run, previous.as_ref(), host) {
            records.insert(host.name.clone(), entry);
        }
    }
    let complete = run.survey.unreachable.is_empty()
        && run.outcome.untouched.is_empty()
        && run.outcome.hosts.values().all(|h| h.on_target());
    let recorded = generations.record(
        &request.command,
        records,
        complete,
        ferry_store::durable::unix_now_secs(),
    )?;
    Ok(recorded.number)
}

/// What `host` runs after the run, as far as the deployer knows; `None`
/// when it runs no known system.
fn host_record(
    run: &RunResult<'_>,
    previous: Option<&SiteGeneration>,
    host: &HostEntry,
) -> Option<HostRecord> {
    let current = &run.survey.current;
    // A host that was not asked runs what the last record said, as far as we know.
    let recorded = previous.and_then(|g| g.hosts.get(&host.name));
    let (before, before_gen) = match current.get(&host.name) {
        Some(now) => (now.system.clone(), now.generation),
        None => (
            recorded.map(|r| r.system.clone()),
            recorded.and_then(|r| r.host_generation),
        ),
    };
    let record = |system: Option<String>, generation: Option<u64>, outcome| {
        system.map(|system| HostRecord {
            class: host.class.clone(),
            system,
            host_generation: generation,
            outcome,
        })
    };
    let target = || run.targets.get(&host.name).map(|t| t.to_string());
    if let Some(host_run) = run.outcome.hosts.get(&host.name) {
        match (&host_run.result, &host_run.reverted) {
            (HostResult::Activated { generation }, None) => {
                record(target(), Some(*generation), HostOutcome::Activated)
            }
            // The run was rolled back but this host could not go back:
            // as far as we know it still runs the target.
            (HostResult::Activated { generation }, Some(HostResult::Failed { .. })) => {
                record(target(), Some(*generation), HostOutcome::Failed)
            }
            (_, Some(_)) | (HostResult::RolledBack { .. }, _) => {
                record(before, before_gen, HostOutcome::RolledBack)
            }
            (HostResult::Failed { .. }, None) => record(before, before_gen, HostOutcome::Failed),
        }
    } else if run.targets.contains_key(&host.name) && !run.changing.contains(&host.name) {
        record(before, before_gen, HostOutcome::Unchanged)
    } else if current.contains_key(&host.name) {
        record(before, before_gen, HostOutcome::NotTouched)
    } else {
        // Not selected, or unreachable and never reached by its batch:
        // keep what the last record said.
        recorded.map(|r| HostRecord {
            outcome: HostOutcome::NotTouched,
            ..r.clone()
        })
    }
}

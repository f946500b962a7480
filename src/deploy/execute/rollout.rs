//! Deploy phase 5, the rollout: the rollout loop's [`HostExecutor`] over agent
//! sessions. A host is activated over one session and its new generation
//! confirmed over a *new* one (magic rollback); a revert activates the host's
//! generation from before the run.
use std::collections::BTreeMap;
use std::time::Duration;

use ferry_lang::inventory::HostEntry;
use ferry_store::StorePath;

use super::survey::Survey;
use super::DeployRequest;
use crate::activate::engine::{ActivationReport, Outcome};
use crate::deploy::hosts::Sessions;
use crate::deploy::plan::CurrentHost;
use crate::deploy::run::{HostExecutor, HostResult};
use crate::deploy::secrets::SecretValues;
use crate::transport::session::{host_env, ActivateRequest};

/// Activates hosts over SSH sessions; the rollout loop's [`HostExecutor`].
pub(super) struct SessionExecutor<'a> {
    sessions: &'a Sessions<'a>,
    hosts: BTreeMap<String, &'a HostEntry>,
    targets: &'a BTreeMap<String, StorePath>,
    secrets: &'a SecretValues,
    current: &'a BTreeMap<String, CurrentHost>,
    /// host → why it could not be asked, or did not get its closure.
    not_ready: BTreeMap<String, String>,
    confirm_within: Duration,
}

impl<'a> SessionExecutor<'a> {
    /// Moves the surveyed, reachable hosts to `targets` (with their systems'
    /// secret values, read before the copy), except those in
    /// `copy_failed` (host → why its copy failed); the hosts the survey
    /// could not reach fail too.
    pub(super) fn new(
        request: &DeployRequest<'a>,
        sessions: &'a Sessions<'a>,
        survey: &'a Survey<'a>,
        (targets, secrets): (&'a BTreeMap<String, StorePath>, &'a SecretValues),
        copy_failed: BTreeMap<String, String>,
    ) -> SessionExecutor<'a> {
        SessionExecutor {
            sessions,
            hosts: survey
                .reachable
                .iter()
                .map(|h| (h.name.clone(), *h))
                .collect(),
            targets,
            secrets,
            current: &survey.current,
            not_ready: survey
                .unreachable
                .iter()
                .map(|(h, reason)| (h.clone(), format!("unreachable: {reason}")))
                .chain(
                    copy_failed
                        .into_iter()
                        .map(|(h, reason)| (h, format!("copy failed: {reason}"))),
                )
                .collect(),
            confirm_within: request.confirm_within,
        }
    }

    fn activate_system(&self, host: &HostEntry, system: &StorePath) -> HostResult {
        let failed = |reason: String| HostResult::Failed { reason };
        // Read before the copy for every changing host's system.
        let Some(secrets) = self.secrets.get(system).cloned() else {
            return failed(format!("the secrets of {system} were not read"));
        };
        let request = ActivateRequest {
            system: system.to_string(),
            host_env: host_env(host),
            confirm_within_ms: Some(self.confirm_within.as_millis() as u64),
            secrets,
        };
        let report = match self.sessions.run(host, |s| s.activate(&request)) {
            Ok(report) => report,
            Err(reason) => return failed(reason),
        };
        match report.outcome {
            Outcome::Activated { generation } => self.confirm(host, generation),
            Outcome::RolledBack { .. } => host_result(&report),
        }
    }

    /// Magic rollback: confirm over a new connection, proving the deployer
    /// can still reach the host after the switch.
    fn confirm(&self, host: &HostEntry, generation: u64) -> HostResult {
        let failed = |reason: String| HostResult::Failed { reason };
        match self.sessions.run(host, |s| s.confirm(generation)) {
            Ok(true) => HostResult::Activated { generation },
            Ok(false) => failed(format!(
                "generation {generation} was no longer waiting for confirmation"
            )),
            Err(e) => failed(format!("could not confirm generation {generation} ({e}); the host rolls itself back at its deadline")),
        }
    }
}

/// What a host's own activation report means to the rollout loop.
fn host_result(report: &ActivationReport) -> HostResult {
    if let Some(reason) = report.unwell_after_rollback() {
        return HostResult::Failed { reason };
    }
    match &report.outcome {
        Outcome::Activated { generation } => HostResult::Activated {
            generation: *generation,
        },
        Outcome::RolledBack {
            to_generation,
            reason,
        } => HostResult::RolledBack {
            generation: *to_generation,
            reason: reason.clone(),
        },
    }
}

impl HostExecutor for SessionExecutor<'_> {
    fn activate(&self, name: &str) -> HostResult {
        if let Some(reason) = self.not_ready.get(name) {
            return HostResult::Failed {
                reason: reason.clone(),
            };
        }
        match (self.hosts.get(name), self.targets.get(name)) {
            (Some(host), Some(target)) => self.activate_system(host, target),
            _ => HostResult::Failed {
                reason: "not part of this deploy".to_string(),
            },
        }
    }

    fn revert(&self, name: &str) -> HostResult {
        let Some(host) = self.hosts.get(name) else {
            return HostResult::Failed {
                reason: "not part of this deploy".to_string(),
            };
        };
        match self.current.get(name).and_then(|c| c.generation) {
            Some(generation) => match self.sessions.run(host, |s| s.rollback_to(generation)) {
                Ok(report) => host_result(&report),
                Err(reason) => HostResult::Failed { reason },
            },
            None => HostResult::Failed {
                reason: "the host had no generation before this run to go back to".to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activate::manifest::ManifestDiff;

    fn rolled_back(problems: &[&str]) -> ActivationReport {
        let mut report = ActivationReport::begin(
            Outcome::RolledBack {
                to_generation: Some(2),
                reason: "health check of app failed".into(),
            },
            Some(2),
            Some(3),
            ManifestDiff::default(),
            0,
        );
        report.rollback_errors = problems.iter().map(|p| p.to_string()).collect();
        report
    }

    #[test]
    fn a_rollback_that_leaves_the_host_unwell_counts_as_failed() {
        let result = host_result(&rolled_back(&[
            "health check of app after rollback: HTTP status 500, expected 200",
        ]));
        assert_eq!(
            result,
            HostResult::Failed {
                reason: "health check of app failed; rolling back left the host unwell: \
                         health check of app after rollback: HTTP status 500, expected 200"
                    .into()
            }
        );
        assert_eq!(
            host_result(&rolled_back(&[])),
            HostResult::RolledBack {
                generation: Some(2),
                reason: "health check of app failed".into()
            }
        );
    }
}

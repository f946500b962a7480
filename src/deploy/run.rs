//! The rollout loop: runs a checked schedule batch by batch against real
//! hosts, accounts failures with [`RolloutProgress`], pauses between batches,
//! and rolls switched hosts back when the policy says so.
//!
//! Hosts are reached only through [`HostExecutor`] (the deployer's SSH
//! sessions in `ferry deploy`), so the loop itself does no I/O.
use std::collections::BTreeMap;
use std::sync::Mutex;

use ferry_rollout::{
    Batch, BatchKind, Decision, HostVerdict, Pause, RolloutPlan, RolloutProgress, RolloutSchedule,
};
use serde::Serialize;

/// What one host did when asked to move to its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum HostResult {
    /// Switched, healthy and confirmed: the host runs `generation` now.
    Activated {
        /// The host's new generation.
        generation: u64,
    },
    /// The host tried, failed, and went back by itself to `generation`.
    RolledBack {
        /// The generation it went back to (`None`: it had none).
        generation: Option<u64>,
        /// Why the activation failed.
        reason: String,
    },
    /// The host could not be asked, or its answer is unknown.
    Failed {
        /// Why.
        reason: String,
    },
}

impl HostResult {
    fn outcome(&self) -> HostVerdict {
        match self {
            HostResult::Activated { .. } => HostVerdict::Succeeded,
            HostResult::RolledBack { .. } => HostVerdict::RolledBack,
            HostResult::Failed { .. } => HostVerdict::Failed,
        }
    }
}

/// The phases a host goes through, for progress lines and `--json` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Its batch has not started.
    Waiting,
    /// The host is being switched (and confirmed).
    Activating,
    /// The host runs its target.
    Done,
    /// The host went back by itself.
    RolledBack,
    /// The host could not be moved (or asked).
    Failed,
    /// Going back to its previous system because the run is rolled back.
    Reverting,
    /// Back on its previous system because the run was rolled back.
    Reverted,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Waiting => "waiting",
            Phase::Activating => "activating",
            Phase::Done => "done",
            Phase::RolledBack => "rolled back",
            Phase::Failed => "failed",
            Phase::Reverting => "rolling back (run rolled back)",
            Phase::Reverted => "rolled back with the run",
        })
    }
}

/// Moves hosts; implemented over SSH sessions by `ferry deploy`.
pub trait HostExecutor: Sync {
    /// Activates the host's target system, and confirms it (magic rollback).
    fn activate(&self, host: &str) -> HostResult;
    /// Puts the host back on the system it ran before this run.
    fn revert(&self, host: &str) -> HostResult;
}

/// Watches the loop (progress lines, JSON events).
pub trait RolloutObserver: Sync {
    /// A batch starts; `tags` describe it (`canary`, `datacenter=eu1`).
    fn batch(&self, _index: usize, _batch: &Batch, _tags: &[String]) {}
    /// A host enters `phase`; `detail` says more (a reason, a generation).
    fn phase(&self, _host: &str, _phase: Phase, _detail: &str) {}
    /// The run stops early, for `reason`.
    fn stopped(&self, _reason: &str) {}
}

/// Waits between batches; returns false when the operator declined to go on.
pub trait Pauser {
    /// Pauses as `pause` says before `next`; false to stop the run.
    fn pause(&self, pause: &Pause, next: &Batch) -> bool;
}

/// One host's part in a run.
#[derive(Debug, Clone, Serialize)]
pub struct HostRun {
    /// What its activation did.
    pub result: HostResult,
    /// Set when the run was rolled back after this host had switched.
    pub reverted: Option<HostResult>,
    /// The batch (0-based) that activated the host.
    pub batch: usize,
}

impl HostRun {
    /// True when the host ends this run on its target system.
    pub fn on_target(&self) -> bool {
        matches!(self.result, HostResult::Activated { .. }) && self.reverted.is_none()
    }

    /// True when the host ended up back on its previous system.
    pub fn rolled_back(&self) -> bool {
        matches!(self.result, HostResult::RolledBack { .. }) || self.reverted.is_some()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutOutcome {
    /// host → its part, for every host the run reached.
    pub hosts: BTreeMap<String, HostRun>,
    /// Hosts to change that the run never reached.
    pub untouched: Vec<String>,
    /// Why the run ended early, if it did.
    pub stopped: Option<String>,
}

impl RolloutOutcome {
    /// Exit code of the deploy (DESIGN §10): 0, 3 when any host was rolled
    /// back, 1 on any other failure.
    pub fn exit_code(&self) -> i32 {
        if self.hosts.values().any(HostRun::rolled_back) {
            3
        } else if self
            .hosts
            .values()
            .any(|h| matches!(h.result, HostResult::Failed { .. }))
            || self.stopped.is_some()
        {
            1
        } else {
            0
        }
    }
}

/// Runs `schedule` (made from `plan`): each batch's hosts in parallel (at
/// most `max_parallel` at once), failures accounted by the policy, pauses
/// between batches.
pub fn run_rollout(
    plan: &RolloutPlan,
    schedule: &RolloutSchedule,
    executor: &dyn HostExecutor,
    pauser: &dyn Pauser,
    observer: &dyn RolloutObserver,
    max_parallel: usize,
) -> RolloutOutcome {
    let mut progress = RolloutProgress::new(plan, schedule);
    let mut hosts: BTreeMap<String, HostRun> = BTreeMap::new();
    let mut stopped = None;
    let mut index = 0;
    let all: Vec<String> = schedule.hosts().cloned().collect();
    for host in &all {
        observer.phase(host, Phase::Waiting, "");
    }

    while let Some(batch) = progress.next_batch().cloned() {
        if index > 0 && !pauser.pause(&schedule.policy.pause, &batch) {
            stopped = Some("the operator stopped the rollout".to_string());
            break;
        }
        observer.batch(
            index,
            &batch,
            &batch.tags(schedule.policy.group_by.as_deref()),
        );
        let results = activate_batch(&batch, executor, observer, max_parallel);
        let outcomes: BTreeMap<String, HostVerdict> = results
            .iter()
            .map(|(h, r)| (h.clone(), r.outcome()))
            .collect();
        for (host, result) in results {
            hosts.insert(
                host,
                HostRun {
                    result,
                    reverted: None,
                    batch: index,
                },
            );
        }
        index += 1;
        // The batch's outcomes cover exactly its hosts, so record cannot mismatch.
        let decision = progress.record(&outcomes).unwrap_or(Decision::Continue);
        match decision {
            Decision::Continue => {}
            Decision::Stop { reason } => {
                let text = if batch.kind == BatchKind::Canary {
                    format!("{reason}; no further host touched")
                } else {
                    reason.to_string()
                };
                observer.stopped(&text);
                stopped = Some(text);
                break;
            }
            Decision::RollbackAll {
                hosts: switched,
                reason,
            } => {
                let text = match switched.len() {
                    0 => format!("{reason}; no other host touched"),
                    n => format!("{reason}; rolling back the {n} host(s) switched in this run"),
                };
                observer.stopped(&text);
                stopped = Some(text);
                // Newest first: undo in the reverse order of activation.
                for host in switched.iter().rev() {
                    observer.phase(host, Phase::Reverting, "");
                    let reverted = executor.revert(host);
                    let phase = if matches!(reverted, HostResult::Failed { .. }) {
                        Phase::Failed
                    } else {
                        Phase::Reverted
                    };
                    observer.phase(host, phase, &describe(&reverted));
                    if let Some(run) = hosts.get_mut(host) {
                        run.reverted = Some(reverted);
                    }
                }
                break;
            }
        }
    }
    let untouched = all.into_iter().filter(|h| !hosts.contains_key(h)).collect();
    RolloutOutcome {
        hosts,
        untouched,
        stopped,
    }
}

fn describe(result: &HostResult) -> String {
    match result {
        HostResult::Activated { generation } => format!("generation {generation}"),
        HostResult::RolledBack { reason, .. } => reason.clone(),
        HostResult::Failed { reason } => reason.clone(),
    }
}

fn activate_batch(
    batch: &Batch,
    executor: &dyn HostExecutor,
    observer: &dyn RolloutObserver,
    max_parallel: usize,
) -> BTreeMap<String, HostResult> {
    let results = Mutex::new(BTreeMap::new());
    for chunk in batch.hosts.chunks(max_parallel.max(1)) {
        std::thread::scope(|scope| {
            for host in chunk {
                let results = &results;
                scope.spawn(move || {
                    observer.phase(host, Phase::Activating, "");
                    let result = executor.activate(host);
                    let phase = match &result {
                        HostResult::Activated { .. } => Phase::Done,
                        HostResult::RolledBack { .. } => Phase::RolledBack,
                        HostResult::Failed { .. } => Phase::Failed,
                    };
                    observer.phase(host, phase, &describe(&result));
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(host.clone(), result);
                });
            }
        });
    }
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use ferry_rollout::{BatchSize, FailureLimit, OnFailure, PlannedHost, Policy};

    /// Hosts named in `failing` fail their activation (and roll back by
    /// themselves); every call is recorded in order.
    struct Scripted {
        failing: BTreeSet<String>,
        log: Mutex<Vec<String>>,
    }

    impl HostExecutor for Scripted {
        fn activate(&self, host: &str) -> HostResult {
            self.log.lock().unwrap().push(format!("activate {host}"));
            if self.failing.contains(host) {
                HostResult::RolledBack {
                    generation: Some(1),
                    reason: "health check failed".into(),
                }
            } else {
                HostResult::Activated { generation: 2 }
            }
        }
        fn revert(&self, host: &str) -> HostResult {
            self.log.lock().unwrap().push(format!("revert {host}"));
            HostResult::Activated { generation: 3 }
        }
    }

    struct NoPause;
    impl Pauser for NoPause {
        fn pause(&self, _: &Pause, _: &Batch) -> bool {
            true
        }
    }
    struct Quiet;
    impl RolloutObserver for Quiet {}

    fn schedule(hosts: &[&str], policy: Policy) -> (RolloutPlan, RolloutSchedule) {
        let plan = RolloutPlan {
            classes: vec!["web".into()],
            hosts: hosts
                .iter()
                .map(|h| PlannedHost {
                    name: h.to_string(),
                    class: "web".into(),
                    labels: BTreeMap::new(),
                    current_system: Some("/old".into()),
                    current_generation: Some(1),
                    target_system: "/new".into(),
                    unreachable: None,
                    secrets_rotated: Vec::new(),
                    repaired: Vec::new(),
                })
                .collect(),
            requires: vec![],
            policy,
        };
        let schedule = ferry_rollout::schedule(&plan, &ferry_rollout::BuiltinStrategy).unwrap();
        (plan, schedule)
    }

    fn run(hosts: &[&str], failing: &[&str], policy: Policy) -> (RolloutOutcome, Vec<String>) {
        let executor = Scripted {
            failing: failing.iter().map(|s| s.to_string()).collect(),
            log: Mutex::new(vec![]),
        };
        let (plan, schedule) = schedule(hosts, policy);
        let outcome = run_rollout(&plan, &schedule, &executor, &NoPause, &Quiet, 4);
        (outcome, executor.log.into_inner().unwrap())
    }

    #[test]
    fn all_healthy_activates_every_host_once_and_exits_0() {
        let policy = Policy {
            batch: BatchSize::Count(2),
            ..Policy::default()
        };
        let (outcome, log) = run(&["a", "b", "c"], &[], policy);
        assert_eq!(outcome.exit_code(), 0);
        assert_eq!(log.len(), 3);
        assert!(outcome.hosts.values().all(HostRun::on_target));
        assert!(outcome.untouched.is_empty());
    }

    #[test]
    fn failing_canary_touches_no_other_host_and_exits_3() {
        let policy = Policy {
            canary: Some(1),
            batch: BatchSize::Count(2),
            on_failure: OnFailure::Stop,
            ..Policy::default()
        };
        let (outcome, log) = run(&["a", "b", "c"], &["a"], policy);
        assert_eq!(log, vec!["activate a"]);
        assert_eq!(outcome.untouched, vec!["b", "c"]);
        assert_eq!(outcome.exit_code(), 3);
        assert!(outcome.stopped.unwrap().contains("canary failed on a"));
    }

    #[test]
    fn rollback_policy_reverts_every_switched_host_newest_first() {
        let policy = Policy {
            batch: BatchSize::Count(1),
            max_failures: FailureLimit::Count(0),
            on_failure: OnFailure::Rollback,
            ..Policy::default()
        };
        let (outcome, log) = run(&["a", "b", "c"], &["c"], policy);
        assert_eq!(
            log,
            vec![
                "activate a",
                "activate b",
                "activate c",
                "revert b",
                "revert a"
            ]
        );
        assert!(outcome.hosts["a"].reverted.is_some() && outcome.hosts["b"].reverted.is_some());
        assert!(outcome.hosts["c"].reverted.is_none());
        assert_eq!(outcome.exit_code(), 3);
    }

    #[test]
    fn max_failures_stop_leaves_the_rest_untouched() {
        let policy = Policy {
            batch: BatchSize::Count(1),
            max_failures: FailureLimit::Count(1),
            on_failure: OnFailure::Stop,
            ..Policy::default()
        };
        let (outcome, log) = run(&["a", "b", "c", "d"], &["a", "b"], policy);
        assert_eq!(log, vec!["activate a", "activate b"]);
        assert_eq!(outcome.untouched, vec!["c", "d"]);
        assert!(outcome.hosts.values().all(|h| h.reverted.is_none()));
    }

    #[test]
    fn continue_policy_goes_on_and_reports_failures() {
        let policy = Policy {
            batch: BatchSize::Count(1),
            on_failure: OnFailure::Continue,
            ..Policy::default()
        };
        let (outcome, log) = run(&["a", "b", "c"], &["b"], policy);
        assert_eq!(log.len(), 3);
        assert!(outcome.stopped.is_none());
        assert_eq!(outcome.exit_code(), 3);
    }

    #[test]
    fn an_operator_declining_the_pause_stops_the_run() {
        struct Decline;
        impl Pauser for Decline {
            fn pause(&self, _: &Pause, _: &Batch) -> bool {
                false
            }
        }
        let executor = Scripted {
            failing: BTreeSet::new(),
            log: Mutex::new(vec![]),
        };
        let policy = Policy {
            batch: BatchSize::Count(1),
            pause: Pause::Confirm,
            ..Policy::default()
        };
        let (plan, schedule) = schedule(&["a", "b"], policy);
        let outcome = run_rollout(&plan, &schedule, &executor, &Decline, &Quiet, 4);
        assert_eq!(executor.log.into_inner().unwrap(), vec!["activate a"]);
        assert_eq!(outcome.untouched, vec!["b"]);
        assert_eq!(outcome.exit_code(), 1);
    }
}

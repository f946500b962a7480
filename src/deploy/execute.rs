//! `ferry deploy` and site-wide `ferry rollback`: move hosts to target systems
//! under the site's rollout policy and record the result as a site generation.
//!
//! Order of work (DESIGN §9): ask every selected host what it runs now; plan
//! and schedule (checked before anything is touched); copy every changing
//! host's closure, all hosts in parallel, before any activation; activate
//! batch by batch; confirm each success over a *new* connection (a host that
//! never gets its confirmation rolls itself back); record the site generation.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_lang::inventory::HostEntry;
use ferry_lang::Site;
use ferry_store::{Store, StorePath};
use serde::Serialize;

use crate::activate::engine::Outcome;
use crate::activate::manifest::Manifest;
use crate::build::system::{compose_system, ServiceSelection};
use crate::transport::bootstrap::{AgentBinary, AgentSettings};
use crate::transport::copy::{copy_closure, AgentSource, CopyOptions};
use crate::transport::session::{host_env, ActivateRequest, HostSession, SessionOptions};
use crate::transport::ssh::SshSettings;

use super::plan::{plan_deploy, CurrentHost, DeployPlan};
use super::run::{run_rollout, HostExecutor, HostResult, Pauser, RolloutObserver, RolloutOutcome};
use super::secrets::read_secrets;
use super::site_generation::{HostOutcome, HostRecord, SiteGenerations};

/// How long a deploy waits for an activation already running on a host.
const ACTIVATION_WAIT: Duration = Duration::from_secs(15 * 60);

/// How to reach hosts.
#[derive(Debug, Clone)]
pub struct Reach {
    pub ssh: SshSettings,
    pub agent: AgentSettings,
    pub max_parallel: usize,
    /// Who hears per-host copy steps (the terminal's progress lines); `None`: nobody.
    pub progress: Option<std::sync::Arc<dyn crate::transport::copy::CopyObserver>>,
}

/// One deploy (or site rollback) to run.
pub struct DeployRequest<'a> {
    pub store: &'a Store,
    pub site: &'a Site,
    pub site_dir: PathBuf,
    /// The hosts to move (after `--on`), in inventory order.
    pub hosts: Vec<&'a HostEntry>,
    /// host → system to move it to.
    pub targets: BTreeMap<String, StorePath>,
    /// `--only` / `--skip`.
    pub selection: ServiceSelection,
    /// What is recorded as the site generation's command.
    pub command: String,
    pub reach: Reach,
    /// Magic rollback deadline.
    pub confirm_within: Duration,
    /// Plan and copy nothing, activate nothing.
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DeployError {
    #[error("host `{host}` runs no system yet, so `--only`/`--skip` has nothing to keep")]
    #[diagnostic(help("deploy every service to it first (without --only/--skip)"))]
    PartialOnFreshHost { host: String },
    #[error("cannot compose the partial system for host `{host}`: {reason}")]
    Compose { host: String, reason: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Policy(#[from] ferry_rollout::PolicyError),
    #[error("cannot add ferry's own executable to the store: {0}")]
    Agent(String),
    #[error("cannot record the site generation: {0}")]
    Record(#[from] super::site_generation::SiteGenerationError),
}

impl DeployError {
    /// True when the request itself is wrong (exit 2), not the hosts.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DeployError::PartialOnFreshHost { .. } | DeployError::Policy(_)
        )
    }
}

/// Per-host result of the copy step.
#[derive(Debug, Clone, Serialize)]
pub struct CopySummary {
    pub host: String,
    pub ok: bool,
    pub objects_sent: u64,
    pub bytes_sent: u64,
    pub error: Option<String>,
}

/// Everything a deploy did.
#[derive(Debug, Serialize)]
pub struct DeployReport {
    pub plan: DeployPlan,
    /// Hosts that could not be asked what they run (not touched).
    pub unreachable: BTreeMap<String, String>,
    pub copies: Vec<CopySummary>,
    pub outcome: RolloutOutcome,
    /// The site generation recorded (none for `--dry-run`).
    pub site_generation: Option<u64>,
}

impl DeployReport {
    pub fn exit_code(&self) -> i32 {
        let code = self.outcome.exit_code();
        if code == 0 && !self.unreachable.is_empty() {
            1
        } else {
            code
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs `f` for every host, at most `max_parallel` at once, in parallel.
pub fn for_hosts<T: Send>(
    hosts: &[&HostEntry],
    max_parallel: usize,
    f: impl Fn(&HostEntry) -> T + Sync,
) -> Vec<T> {
    let mut out = Vec::with_capacity(hosts.len());
    for chunk in hosts.chunks(max_parallel.max(1)) {
        let results: Vec<T> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|h| scope.spawn(|| f(h))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        out.extend(results);
    }
    out
}

/// Opens a session to every host (at most `max_parallel` at once), runs `f`
/// on it and closes it; a host's error is its whole error chain as text,
/// with the hint when there is one.
pub fn on_each_host<T: Send>(
    store: &Store,
    binary: &AgentBinary,
    options: &SessionOptions,
    hosts: &[&HostEntry],
    max_parallel: usize,
    f: impl Fn(&mut HostSession) -> Result<T, crate::transport::session::SessionError> + Sync,
) -> Vec<Result<T, String>> {
    for_hosts(hosts, max_parallel, |host| {
        HostSession::open(store, binary, host, options)
            .and_then(|mut session| {
                let result = f(&mut session);
                let _ = session.close();
                result
            })
            .map_err(|e| match e.hint() {
                Some(hint) => format!("{}\n  hint: {hint}", crate::transport::error_chain(&e)),
                None => crate::transport::error_chain(&e),
            })
    })
}

struct Sessions<'a> {
    store: &'a Store,
    binary: &'a AgentBinary,
    options: SessionOptions,
}

impl Sessions<'_> {
    fn open(&self, host: &HostEntry) -> Result<HostSession, String> {
        HostSession::open(self.store, self.binary, host, &self.options)
            .map_err(|e| crate::transport::error_chain(&e))
    }

    /// What the host runs now, and the generation still waiting for the
    /// deployer's confirmation, if any. An activation still running on the
    /// host (say, of a deploy that was killed) is waited for first: until it
    /// ends, what the host runs is not settled.
    fn current(&self, host: &HostEntry) -> Result<(CurrentHost, Option<u64>), String> {
        let mut session = self.open(host)?;
        let started = std::time::Instant::now();
        let status = loop {
            let status = session
                .status()
                .map_err(|e| crate::transport::error_chain(&e))?;
            if !status.activation_in_progress {
                break status;
            }
            if started.elapsed() > ACTIVATION_WAIT {
                return Err(format!(
                    "an activation has been running on the host for over {} s",
                    ACTIVATION_WAIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let _ = session.close();
        let pending = status.pending_confirmation.map(|p| p.generation);
        let now = CurrentHost {
            system: status.system.map(|p| p.display().to_string()),
            generation: status.generation,
        };
        Ok((now, pending))
    }

    /// Confirms `generation` over a new connection.
    fn confirm(&self, host: &HostEntry, generation: u64) -> Result<bool, String> {
        let mut session = self.open(host)?;
        let confirmed = session
            .confirm(generation)
            .map_err(|e| crate::transport::error_chain(&e));
        let _ = session.close();
        confirmed
    }
}

/// Activates hosts over SSH sessions; the rollout loop's [`HostExecutor`].
struct SessionExecutor<'a> {
    sessions: &'a Sessions<'a>,
    site: &'a Site,
    hosts: BTreeMap<String, &'a HostEntry>,
    targets: &'a BTreeMap<String, StorePath>,
    current: &'a BTreeMap<String, CurrentHost>,
    copy_failed: BTreeMap<String, String>,
    confirm_within: Duration,
}

impl SessionExecutor<'_> {
    fn activate_system(&self, host: &HostEntry, system: &StorePath) -> HostResult {
        let failed = |reason: String| HostResult::Failed { reason };
        let manifest = match Manifest::load(&self.sessions.store.real_path(system)) {
            Ok(m) => m,
            Err(e) => return failed(e.to_string()),
        };
        let secrets = match read_secrets(self.site, &manifest) {
            Ok(s) => s,
            Err(e) => return failed(e.to_string()),
        };
        let request = ActivateRequest {
            system: system.to_string(),
            host_env: host_env(host),
            confirm_within_ms: Some(self.confirm_within.as_millis() as u64),
            secrets,
        };
        let report = match self.sessions.open(host).and_then(|mut s| {
            let report = s
                .activate(&request)
                .map_err(|e| crate::transport::error_chain(&e));
            let _ = s.close();
            report
        }) {
            Ok(report) => report,
            Err(reason) => return failed(reason),
        };
        match report.outcome {
            Outcome::RolledBack {
                to_generation,
                reason,
            } => HostResult::RolledBack {
                generation: to_generation,
                reason,
            },
            Outcome::Activated { generation } => {
                // Magic rollback: confirm over a new connection, proving the
                // deployer can still reach the host after the switch.
                let confirmed = self.sessions.open(host).and_then(|mut s| {
                    let ok = s
                        .confirm(generation)
                        .map_err(|e| crate::transport::error_chain(&e));
                    let _ = s.close();
                    ok
                });
                match confirmed {
                    Ok(true) => HostResult::Activated { generation },
                    Ok(false) => failed(format!("generation {generation} was no longer waiting for confirmation")),
                    Err(e) => failed(format!("could not confirm generation {generation} ({e}); the host rolls itself back at its deadline")),
                }
            }
        }
    }
}

impl HostExecutor for SessionExecutor<'_> {
    fn activate(&self, name: &str) -> HostResult {
        if let Some(reason) = self.copy_failed.get(name) {
            return HostResult::Failed {
                reason: format!("copy failed: {reason}"),
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
            Some(generation) => match self.sessions.open(host).and_then(|mut s| {
                let report = s
                    .rollback_to(generation)
                    .map_err(|e| crate::transport::error_chain(&e));
                let _ = s.close();
                report
            }) {
                Ok(report) => match report.outcome {
                    Outcome::Activated { generation } => HostResult::Activated { generation },
                    Outcome::RolledBack {
                        to_generation,
                        reason,
                    } => HostResult::RolledBack {
                        generation: to_generation,
                        reason,
                    },
                },
                Err(reason) => HostResult::Failed { reason },
            },
            None => HostResult::Failed {
                reason: "the host had no generation before this run to go back to".to_string(),
            },
        }
    }
}

/// Runs a deploy (or a site rollback) and records it.
pub fn deploy(
    request: &DeployRequest<'_>,
    pauser: &dyn Pauser,
    observer: &dyn RolloutObserver,
) -> Result<DeployReport, DeployError> {
    let store = request.store;
    let binary = AgentBinary::this_ferry(store).map_err(|e| DeployError::Agent(e.to_string()))?;
    let sessions = Sessions {
        store,
        binary: &binary,
        options: SessionOptions {
            ssh: request.reach.ssh.clone(),
            agent: request.reach.agent.clone(),
        },
    };

    // 1. What every host runs now (live).
    let answers = for_hosts(&request.hosts, request.reach.max_parallel, |h| {
        sessions.current(h)
    });
    let mut current = BTreeMap::new();
    let mut unreachable = BTreeMap::new();
    let mut pending = BTreeMap::new();
    for (host, answer) in request.hosts.iter().zip(answers) {
        match answer {
            Ok((now, waiting)) => {
                if let Some(generation) = waiting {
                    pending.insert(host.name.clone(), generation);
                }
                current.insert(host.name.clone(), now);
            }
            Err(reason) => {
                unreachable.insert(host.name.clone(), reason);
            }
        }
    }
    // An earlier run that died after switching a host but before confirming
    // it left the host waiting: if that is this run's target, confirm it now,
    // or the host would roll itself back after this run "succeeded".
    for host in &request.hosts {
        let (Some(&generation), Some(target), Some(now)) = (
            pending.get(&host.name),
            request.targets.get(&host.name),
            current.get(&host.name),
        ) else {
            continue;
        };
        if request.selection.is_all()
            && now.generation == Some(generation)
            && now.system.as_deref() == Some(target.as_str())
        {
            match sessions.confirm(host, generation) {
                Ok(true) => {}
                Ok(false) => {
                    unreachable.insert(host.name.clone(), format!("generation {generation} was waiting for confirmation but rolled back first"));
                }
                Err(reason) => {
                    unreachable.insert(host.name.clone(), reason);
                }
            }
        }
    }

    let reachable: Vec<&HostEntry> = request
        .hosts
        .iter()
        .copied()
        .filter(|h| !unreachable.contains_key(&h.name))
        .collect();

    // 2. Partial upgrades: keep the other services' current definitions.
    let mut targets = BTreeMap::new();
    for host in &reachable {
        let Some(target) = request.targets.get(&host.name) else {
            continue;
        };
        if request.selection.is_all() {
            targets.insert(host.name.clone(), target.clone());
            continue;
        }
        let now = current
            .get(&host.name)
            .and_then(|c: &CurrentHost| c.system.clone());
        let Some(now) = now
            .and_then(|p| store.parse_path(&p).ok())
            .filter(|p| store.is_valid(p))
        else {
            return Err(DeployError::PartialOnFreshHost {
                host: host.name.clone(),
            });
        };
        let composed = compose_system(store, &now, target, &request.selection).map_err(|e| {
            DeployError::Compose {
                host: host.name.clone(),
                reason: e.to_string(),
            }
        })?;
        targets.insert(host.name.clone(), composed);
    }

    // 3. Plan and schedule; nothing is touched if the policy's answer is bad.
    let plan = plan_deploy(
        store,
        request.site,
        &request.site_dir,
        &reachable,
        &targets,
        &current,
        None,
    )?;
    if request.dry_run {
        let outcome = RolloutOutcome {
            hosts: BTreeMap::new(),
            untouched: plan
                .schedule
                .batches()
                .flat_map(|b| b.hosts.clone())
                .collect(),
            stopped: None,
        };
        return Ok(DeployReport {
            plan,
            unreachable,
            copies: Vec::new(),
            outcome,
            site_generation: None,
        });
    }

    // 4. Copy every changing host's closure, before any activation.
    let changing: BTreeSet<String> = plan
        .schedule
        .batches()
        .flat_map(|b| b.hosts.clone())
        .collect();
    let mut by_target: BTreeMap<&StorePath, Vec<HostEntry>> = BTreeMap::new();
    for host in reachable.iter().filter(|h| changing.contains(&h.name)) {
        by_target
            .entry(&targets[&host.name])
            .or_default()
            .push((*host).clone());
    }
    let copy_options = CopyOptions {
        ssh: request.reach.ssh.clone(),
        max_parallel: request.reach.max_parallel,
        agent: request.reach.agent.clone(),
        progress: request.reach.progress.clone(),
    };
    let mut copies = Vec::new();
    let mut copy_failed = BTreeMap::new();
    for (target, hosts) in &by_target {
        match copy_closure(
            store,
            AgentSource::Ready(&binary),
            hosts,
            std::slice::from_ref(*target),
            &copy_options,
        ) {
            Ok(report) => {
                for host in report.hosts {
                    let (ok, stats, error) = match host.result {
                        Ok(stats) => (true, stats, None),
                        Err(e) => (
                            false,
                            Default::default(),
                            Some(crate::transport::error_chain(&e)),
                        ),
                    };
                    if let Some(error) = &error {
                        copy_failed.insert(host.host.clone(), error.clone());
                    }
                    copies.push(CopySummary {
                        host: host.host,
                        ok,
                        objects_sent: stats.objects_sent,
                        bytes_sent: stats.bytes_sent,
                        error,
                    });
                }
            }
            Err(e) => {
                for host in hosts {
                    copy_failed.insert(host.name.clone(), e.to_string());
                }
            }
        }
    }

    // 5. Activate under the policy.
    let executor = SessionExecutor {
        sessions: &sessions,
        site: request.site,
        hosts: reachable.iter().map(|h| (h.name.clone(), *h)).collect(),
        targets: &targets,
        current: &current,
        copy_failed,
        confirm_within: request.confirm_within,
    };
    let outcome = run_rollout(
        &plan.schedule,
        &executor,
        pauser,
        observer,
        request.reach.max_parallel,
    );

    // 6. Record what every host of the site runs now.
    let generations = SiteGenerations::new(store.state_dir(), &request.site.name);
    let previous = generations.latest()?;
    let mut records = BTreeMap::new();
    for host in request.site.hosts() {
        let before = current.get(&host.name).and_then(|c| c.system.clone());
        let before_gen = current.get(&host.name).and_then(|c| c.generation);
        let record = |system: Option<String>, generation: Option<u64>, outcome| {
            system.map(|system| HostRecord {
                class: host.class.clone(),
                system,
                host_generation: generation,
                outcome,
            })
        };
        let entry = if let Some(run) = outcome.hosts.get(&host.name) {
            match (&run.result, &run.reverted) {
                (HostResult::Activated { generation }, None) => record(
                    targets.get(&host.name).map(|t| t.to_string()),
                    Some(*generation),
                    HostOutcome::Activated,
                ),
                // The run was rolled back but this host could not go back:
                // as far as we know it still runs the target.
                (HostResult::Activated { generation }, Some(HostResult::Failed { .. })) => record(
                    targets.get(&host.name).map(|t| t.to_string()),
                    Some(*generation),
                    HostOutcome::Failed,
                ),
                (_, Some(_)) | (HostResult::RolledBack { .. }, _) => {
                    record(before, before_gen, HostOutcome::RolledBack)
                }
                (HostResult::Failed { .. }, None) => {
                    record(before, before_gen, HostOutcome::Failed)
                }
            }
        } else if targets.contains_key(&host.name) && !changing.contains(&host.name) {
            record(before, before_gen, HostOutcome::Unchanged)
        } else if current.contains_key(&host.name) {
            record(before, before_gen, HostOutcome::NotTouched)
        } else {
            // Not selected or unreachable: keep what the last record said.
            previous
                .as_ref()
                .and_then(|g| g.hosts.get(&host.name))
                .map(|r| HostRecord {
                    outcome: HostOutcome::NotTouched,
                    ..r.clone()
                })
        };
        if let Some(entry) = entry {
            records.insert(host.name.clone(), entry);
        }
    }
    let complete = unreachable.is_empty()
        && outcome.untouched.is_empty()
        && outcome.hosts.values().all(|h| h.on_target());
    let recorded = generations.record(&request.command, records, complete, now_secs())?;
    Ok(DeployReport {
        plan,
        unreachable,
        copies,
        outcome,
        site_generation: Some(recorded.number),
    })
}

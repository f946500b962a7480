//! The activation sequence of DESIGN §8 on one host, as a library: lock,
//! requirements, register generation N+1, diff manifests, pre-upgrade hooks,
//! stop removed+changed services, atomic switch, start changed+added,
//! post-upgrade hooks, settle and health checks; on any failure switch back
//! to N, restart N's services and report *rolled back*. Plus rollback to any
//! generation, recovery from an activation killed half-way (journal), and the
//! pending-confirmation record of magic rollback.
//!
//! Invariants: unchanged services are never stopped or restarted; state dirs
//! under `<state_dir>/lib/<service>` are never deleted; every outcome other
//! than a fully healthy new generation is reported as rolled back; a journal
//! file exists exactly while the host may be between generations, and only
//! an activation holding the host lock may see it without converging.
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::backend::{BackendError, ServiceBackend, ServiceDefinition, ServiceState};
use super::generations::{GenerationError, HostLock, Profiles};
use super::health::{self, CommandContext, HealthResult};
use super::manifest::{self, Manifest, ManifestDiff, ManifestError, Service};
use super::secrets;
use super::supervisor::BASE_PATH;

/// File names under the state dir.
const JOURNAL_FILE: &str = "activation.journal";
const PENDING_FILE: &str = "pending-confirmation";
const LAST_REPORT_FILE: &str = "last-activation.json";

/// How long past the settle time a crashing service is watched for its
/// crash loop to be declared (for an exact rollback reason).
const CRASH_VERDICT_WAIT: Duration = Duration::from_secs(10);

/// Knobs of an activation.
#[derive(Debug, Clone)]
pub struct ActivationOptions {
    /// SIGTERM → SIGKILL grace period when stopping a service.
    pub stop_grace: Duration,
    /// Limit for one hook.
    pub hook_timeout: Duration,
    /// How long started services are watched for crashes before the health
    /// checks run.
    pub settle: Duration,
    /// Magic rollback: when set, a successful activation leaves a
    /// pending-confirmation record with this deadline.
    pub confirm_within: Option<Duration>,
    /// Per-host facts (hostname, address, labels) added to the environment
    /// of every service and hook; they are not in the closure.
    pub host_env: BTreeMap<String, String>,
}

impl Default for ActivationOptions {
    fn default() -> Self {
        ActivationOptions {
            stop_grace: Duration::from_secs(10),
            hook_timeout: Duration::from_secs(300),
            settle: Duration::from_secs(1),
            confirm_within: None,
            host_env: BTreeMap::new(),
        }
    }
}

/// How an activation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The new generation is current, its services run and are healthy.
    Activated { generation: u64 },
    /// Something failed; the host is back on `to_generation` (`None`: the
    /// host had no generation before, and has none now).
    RolledBack {
        to_generation: Option<u64>,
        reason: String,
    },
}

/// One thing done to a service (or a hook run) during an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAction {
    pub service: String,
    pub action: ActionKind,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `None` when it worked; else why not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    PreUpgradeHook,
    Stop,
    Start,
    Remove,
    PostUpgradeHook,
    /// Stop during a rollback.
    RollbackStop,
    /// Start during a rollback.
    RollbackStart,
}

/// Everything an activation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationReport {
    pub outcome: Outcome,
    pub from_generation: Option<u64>,
    pub target_generation: Option<u64>,
    pub diff: ManifestDiff,
    pub actions: Vec<ServiceAction>,
    /// Health results of the target generation.
    pub health: Vec<HealthResult>,
    /// Health results of the generation rolled back to.
    pub rollback_health: Vec<HealthResult>,
    /// Problems while rolling back (the host may need attention).
    pub rollback_errors: Vec<String>,
    /// Set when this report is a recovery from an interrupted activation.
    pub recovered: bool,
    pub started_ms: u64,
    pub finished_ms: u64,
}

impl ActivationReport {
    pub fn activated(&self) -> bool {
        matches!(self.outcome, Outcome::Activated { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(transparent)]
    Generations(#[from] GenerationError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "the system {system} is not inside the store {store}; copy it into the host's store first"
    )]
    NotInStore { system: PathBuf, store: PathBuf },
    #[error("the system {system} does not exist on this host: {source}")]
    SystemMissing {
        system: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("secrets {} are referenced by the new system but missing on this host; send them before activating", names.join(", "))]
    MissingSecrets { names: Vec<String> },
    #[error("cannot create user {user}: {message}")]
    User { user: String, message: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ActivationError {
    let path = path.to_path_buf();
    move |source| ActivationError::Io {
        action,
        path,
        source,
    }
}

/// The record of an activation in progress (written before anything is
/// stopped, removed when the host is consistent again).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    from_generation: Option<u64>,
    target_generation: u64,
    started_ms: u64,
    /// The process running the activation.
    #[serde(default)]
    pid: u32,
}

/// The magic-rollback record: `generation` must be confirmed before
/// `deadline_ms`, else the host goes back to `previous_generation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfirmation {
    pub generation: u64,
    pub previous_generation: Option<u64>,
    pub deadline_ms: u64,
}

/// What a host is running.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostStatus {
    pub generation: Option<u64>,
    pub system: Option<PathBuf>,
    pub services: Vec<super::backend::ServiceStatus>,
    pub pending_confirmation: Option<PendingConfirmation>,
    /// The last activation's report (with its health results).
    pub last_activation: Option<ActivationReport>,
    /// Set when this call found an interrupted activation and converged.
    pub recovered: Option<ActivationReport>,
    /// Another activation is running right now: what this status says may
    /// change when it ends (a deployer waits for it).
    #[serde(default)]
    pub activation_in_progress: bool,
}

/// Activates systems on this host with one service backend.
pub struct Activator {
    state_dir: PathBuf,
    store_dir: PathBuf,
    backend: Box<dyn ServiceBackend>,
    pub options: ActivationOptions,
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes a small file atomically and durably (temporary file in the same
/// directory, fsync, rename, directory fsync).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ActivationError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        super::generations::unique_suffix()
    ));
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename onto", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

fn remove_durably(path: &Path) -> Result<(), ActivationError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("remove", path)(e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Creates a system user when missing: `useradd --system --user-group
/// --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin NAME`.
pub fn ensure_user(name: &str) -> Result<(), ActivationError> {
    if let Ok(Some(_)) = nix::unistd::User::from_name(name) {
        return Ok(());
    }
    let output = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .env("PATH", BASE_PATH)
        .output()
        .map_err(|e| ActivationError::User {
            user: name.into(),
            message: format!("cannot run useradd: {e}"),
        })?;
    // Another activation may have created it in between.
    if output.status.success() || matches!(nix::unistd::User::from_name(name), Ok(Some(_))) {
        return Ok(());
    }
    Err(ActivationError::User {
        user: name.into(),
        message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

impl Activator {
    pub fn new(
        state_dir: &Path,
        store_dir: &Path,
        backend: Box<dyn ServiceBackend>,
        options: ActivationOptions,
    ) -> Activator {
        Activator {
            state_dir: state_dir.to_path_buf(),
            store_dir: store_dir.to_path_buf(),
            backend,
            options,
        }
    }

    pub fn backend(&mut self) -> &mut dyn ServiceBackend {
        self.backend.as_mut()
    }

    fn profiles(&self) -> Result<Profiles, ActivationError> {
        Ok(Profiles::open(&self.state_dir)?)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    /// The state dir of a service (persists across generations).
    pub fn service_state_dir(&self, service: &str) -> PathBuf {
        self.state_dir.join("lib").join(service)
    }

    /// Activates `new_system` as a new generation (DESIGN §8 steps 1–5).
    pub fn activate(&mut self, new_system: &Path) -> Result<ActivationReport, ActivationError> {
        let _lock = HostLock::acquire(&self.state_dir)?;
        self.recover_locked()?;
        let manifest = self.check_requirements(new_system)?;
        let profiles = self.profiles()?;
        let from = profiles.current()?;
        let target = profiles.register(new_system)?;
        self.transition(from, target, manifest)
    }

    /// Activates generation `number`'s system again, through the same
    /// sequence (hooks, diff, health checks, rollback on failure).
    pub fn rollback_to(&mut self, number: u64) -> Result<ActivationReport, ActivationError> {
        let _lock = HostLock::acquire(&self.state_dir)?;
        self.recover_locked()?;
        let profiles = self.profiles()?;
        let system = profiles.system_of(number)?;
        let manifest = self.check_requirements(&system)?;
        let from = profiles.current()?;
        self.transition(from, number, manifest)
    }

    /// Finishes an activation that was interrupted (its process killed):
    /// converges the host to the generation it came from, with that
    /// generation's services running. `None` when there was nothing to do.
    pub fn recover(&mut self) -> Result<Option<ActivationReport>, ActivationError> {
        let _lock = HostLock::acquire(&self.state_dir)?;
        self.recover_locked()
    }

    /// Removes the pending-confirmation record of `generation` (magic
    /// rollback: the deployer reached the host again). Returns whether there
    /// was one to confirm.
    pub fn confirm(&mut self, generation: u64) -> Result<bool, ActivationError> {
        let _lock = HostLock::acquire(&self.state_dir)?;
        let path = self.path(PENDING_FILE);
        match read_json::<PendingConfirmation>(&path) {
            Some(p) if p.generation == generation => {
                remove_durably(&path)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The pending confirmation, if any.
    pub fn pending(&self) -> Option<PendingConfirmation> {
        read_json(&self.path(PENDING_FILE))
    }

    /// Magic rollback's timer end: when a pending confirmation's deadline is
    /// before `now`, goes back to its previous generation and reports it.
    pub fn check_pending(
        &mut self,
        now: SystemTime,
    ) -> Result<Option<ActivationReport>, ActivationError> {
        match self.pending() {
            Some(p) if unix_ms(now) >= p.deadline_ms => {}
            _ => return Ok(None),
        }
        let _lock = HostLock::acquire(&self.state_dir)?;
        self.recover_locked()?;
        // Re-read under the lock: a confirmation may have arrived meanwhile.
        let Some(pending) = self.pending() else {
            return Ok(None);
        };
        if unix_ms(now) < pending.deadline_ms {
            return Ok(None);
        }
        let profiles = self.profiles()?;
        let started_ms = now_ms();
        let current = profiles.current()?;
        let mut report = ActivationReport {
            outcome: Outcome::RolledBack {
                to_generation: pending.previous_generation,
                reason: format!(
                    "generation {} was not confirmed before its deadline",
                    pending.generation
                ),
            },
            from_generation: current,
            target_generation: pending.previous_generation,
            diff: ManifestDiff::default(),
            actions: Vec::new(),
            health: Vec::new(),
            rollback_health: Vec::new(),
            rollback_errors: Vec::new(),
            recovered: false,
            started_ms,
            finished_ms: 0,
        };
        if current == Some(pending.generation) {
            let unconfirmed = self.manifest_of(pending.generation).ok();
            self.write_journal(&Journal {
                from_generation: pending.previous_generation,
                target_generation: pending.generation,
                started_ms,
                pid: std::process::id(),
            })?;
            self.converge(
                pending.previous_generation,
                unconfirmed.as_ref(),
                None,
                &mut report,
            );
        }
        remove_durably(&self.path(PENDING_FILE))?;
        remove_durably(&self.path(JOURNAL_FILE))?;
        report.finished_ms = now_ms();
        self.save_report(&report);
        Ok(Some(report))
    }

    /// Generation, system, services and the last activation; converges an
    /// interrupted activation first when no activation is running.
    pub fn status(&mut self) -> Result<HostStatus, ActivationError> {
        let lock = match HostLock::try_acquire(&self.state_dir)? {
            Some(lock) => Some(lock),
            // The lock is busy but the activation that wrote the journal is
            // dead: the holder is a process it forked that has not reached
            // its exec yet (and so still shares the lock). Wait for it.
            None if self.journal_owner_is_dead() => Some(HostLock::acquire(&self.state_dir)?),
            None => None,
        };
        let activation_in_progress = lock.is_none();
        let recovered = match lock {
            Some(_lock) => self.recover_locked()?,
            None => None,
        };
        let profiles = self.profiles()?;
        let generation = profiles.current()?;
        let system = generation.and_then(|n| profiles.system_of(n).ok());
        let names: Vec<String> = match generation.and_then(|n| self.manifest_of(n).ok()) {
            Some(m) => m.services.keys().cloned().collect(),
            None => Vec::new(),
        };
        let services = if names.is_empty() {
            Vec::new()
        } else {
            self.backend.status(&names)?
        };
        Ok(HostStatus {
            generation,
            system,
            services,
            pending_confirmation: self.pending(),
            last_activation: read_json(&self.path(LAST_REPORT_FILE)),
            recovered,
            activation_in_progress,
        })
    }

    fn journal_owner_is_dead(&self) -> bool {
        let Some(journal) = read_json::<Journal>(&self.path(JOURNAL_FILE)) else {
            return false;
        };
        if journal.pid == 0 {
            return false;
        }
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(journal.pid as i32), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }

    fn manifest_of(&self, generation: u64) -> Result<Manifest, ActivationError> {
        let system = self.profiles()?.system_of(generation)?;
        Ok(Manifest::load(&system)?)
    }

    /// Step 1's host requirements: the system is in this host's store, its
    /// manifest is valid, its secrets are here, its users exist (created
    /// when missing).
    fn check_requirements(&mut self, system: &Path) -> Result<Manifest, ActivationError> {
        let resolved =
            fs::canonicalize(system).map_err(|source| ActivationError::SystemMissing {
                system: system.to_path_buf(),
                source,
            })?;
        let store = fs::canonicalize(&self.store_dir).unwrap_or_else(|_| self.store_dir.clone());
        if !resolved.starts_with(&store) || resolved == store {
            return Err(ActivationError::NotInStore {
                system: system.to_path_buf(),
                store: self.store_dir.clone(),
            });
        }
        let manifest = Manifest::load(system)?;
        let missing = secrets::missing_secrets(&self.state_dir, &manifest);
        if !missing.is_empty() {
            return Err(ActivationError::MissingSecrets { names: missing });
        }
        // The service backend must answer before anything changes (this
        // also starts ferry's supervisor when it is not running yet).
        self.backend.status(&[])?;
        for service in manifest.services.values() {
            let users = service
                .user
                .iter()
                .chain(service.secrets.iter().filter_map(|s| s.owner.as_ref()));
            for user in users {
                ensure_user(user)?;
            }
        }
        Ok(manifest)
    }

    fn write_journal(&self, journal: &Journal) -> Result<(), ActivationError> {
        let text = serde_json::to_vec(journal)
            .unwrap_or_else(|e| unreachable!("journal does not serialize: {e}"));
        write_atomic(&self.path(JOURNAL_FILE), &text)
    }

    fn save_report(&self, report: &ActivationReport) {
        // The report is informational (for `status`); failing to keep it
        // must not change the outcome.
        if let Ok(text) = serde_json::to_vec_pretty(report) {
            let _ = write_atomic(&self.path(LAST_REPORT_FILE), &text);
        }
    }

    /// Converges after an interrupted activation (the caller holds the lock).
    fn recover_locked(&mut self) -> Result<Option<ActivationReport>, ActivationError> {
        let profiles = self.profiles()?;
        profiles.purge_temporaries()?;
        let journal_path = self.path(JOURNAL_FILE);
        if !journal_path.exists() {
            return Ok(None);
        }
        let started_ms = now_ms();
        let Some(journal) = read_json::<Journal>(&journal_path) else {
            // Written atomically, so unreadable means tampered with: the
            // current link is all we can trust; converge to it.
            let current = profiles.current()?;
            let mut report = self.empty_report(current, current, started_ms);
            self.converge(current, None, None, &mut report);
            remove_durably(&journal_path)?;
            return Ok(Some(report));
        };
        let interrupted = self.manifest_of(journal.target_generation).ok();
        let mut report = self.empty_report(
            journal.from_generation,
            Some(journal.target_generation),
            started_ms,
        );
        report.outcome = Outcome::RolledBack {
            to_generation: journal.from_generation,
            reason: format!(
                "the activation of generation {} was interrupted",
                journal.target_generation
            ),
        };
        self.converge(
            journal.from_generation,
            interrupted.as_ref(),
            None,
            &mut report,
        );
        // A pending confirmation refers to a state we just left.
        remove_durably(&self.path(PENDING_FILE))?;
        remove_durably(&journal_path)?;
        report.finished_ms = now_ms();
        self.save_report(&report);
        Ok(Some(report))
    }

    fn empty_report(
        &self,
        from: Option<u64>,
        target: Option<u64>,
        started_ms: u64,
    ) -> ActivationReport {
        ActivationReport {
            outcome: Outcome::RolledBack {
                to_generation: from,
                reason: String::new(),
            },
            from_generation: from,
            target_generation: target,
            diff: ManifestDiff::default(),
            actions: Vec::new(),
            health: Vec::new(),
            rollback_health: Vec::new(),
            rollback_errors: Vec::new(),
            recovered: true,
            started_ms,
            finished_ms: started_ms,
        }
    }

    /// Steps 2–5 from generation `from` to `target` (already registered).
    fn transition(
        &mut self,
        from: Option<u64>,
        target: u64,
        new: Manifest,
    ) -> Result<ActivationReport, ActivationError> {
        let started_ms = now_ms();
        // A newer activation replaces whatever waited for confirmation.
        remove_durably(&self.path(PENDING_FILE))?;
        let old = match from {
            Some(n) => Some(self.manifest_of(n)?),
            None => None,
        };
        let diff = manifest::diff(old.as_ref(), &new);
        let mut report = ActivationReport {
            outcome: Outcome::Activated { generation: target },
            from_generation: from,
            target_generation: Some(target),
            diff: diff.clone(),
            actions: Vec::new(),
            health: Vec::new(),
            rollback_health: Vec::new(),
            rollback_errors: Vec::new(),
            recovered: false,
            started_ms,
            finished_ms: 0,
        };
        self.write_journal(&Journal {
            from_generation: from,
            target_generation: target,
            started_ms,
            pid: std::process::id(),
        })?;
        let old_system = match from {
            Some(n) => Some(self.profiles()?.system_of(n)?),
            None => None,
        };
        let new_system = self.profiles()?.system_of(target)?;
        let forward = self.forward(
            old.as_ref(),
            &new,
            (old_system.as_deref(), &new_system),
            target,
            &diff,
            &mut report,
        );
        match forward {
            Ok(()) => {
                if let Some(within) = self.options.confirm_within {
                    let pending = PendingConfirmation {
                        generation: target,
                        previous_generation: from,
                        deadline_ms: unix_ms(SystemTime::now() + within),
                    };
                    let text = serde_json::to_vec(&pending)
                        .unwrap_or_else(|e| unreachable!("record does not serialize: {e}"));
                    write_atomic(&self.path(PENDING_FILE), &text)?;
                }
            }
            Err(reason) => {
                report.outcome = Outcome::RolledBack {
                    to_generation: from,
                    reason,
                };
                // Only what the forward pass acted on needs undoing: a
                // failed pre-upgrade hook leaves every service untouched.
                let touched: BTreeSet<String> = report
                    .actions
                    .iter()
                    .filter(|a| {
                        matches!(
                            a.action,
                            ActionKind::Stop | ActionKind::Start | ActionKind::Remove
                        )
                    })
                    .map(|a| a.service.clone())
                    .collect();
                self.converge(from, Some(&new), Some(&touched), &mut report);
            }
        }
        remove_durably(&self.path(JOURNAL_FILE))?;
        report.finished_ms = now_ms();
        self.save_report(&report);
        Ok(report)
    }

    fn record(
        report: &mut ActivationReport,
        service: &str,
        action: ActionKind,
        error: Option<String>,
    ) {
        report.actions.push(ServiceAction {
            service: service.to_string(),
            action,
            at_ms: now_ms(),
            error,
        });
    }

    /// The way forward; `Err` carries the reason to roll back.
    fn forward(
        &mut self,
        old: Option<&Manifest>,
        new: &Manifest,
        (old_system, new_system): (Option<&Path>, &Path),
        target: u64,
        diff: &ManifestDiff,
        report: &mut ActivationReport,
    ) -> Result<(), String> {
        let touched: BTreeSet<String> = diff.changed.union(&diff.added).cloned().collect();
        let start_order = new.ordered_subset(&touched).map_err(|e| e.to_string())?;
        let hook_env = |service: &str| {
            let mut env = BTreeMap::new();
            env.insert(
                "OLD".to_string(),
                old_system
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            env.insert("NEW".to_string(), new_system.display().to_string());
            (service.to_string(), env)
        };

        for name in &start_order {
            let service = &new.services[name];
            for hook in &service.hooks.pre_upgrade {
                let (svc, extra) = hook_env(name);
                let result = self.run_hook(&svc, service, hook, &extra);
                Self::record(
                    report,
                    name,
                    ActionKind::PreUpgradeHook,
                    result.clone().err(),
                );
                result.map_err(|e| format!("pre-upgrade hook of {name} failed: {e}"))?;
            }
        }

        let mut stopping: BTreeSet<String> = diff.removed.union(&diff.changed).cloned().collect();
        let mut stop_order = match old {
            Some(m) => m.ordered_subset(&stopping).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        stop_order.reverse();
        for name in &stop_order {
            let result = self
                .backend
                .stop(std::slice::from_ref(name), self.options.stop_grace)
                .map_err(|e| e.to_string());
            Self::record(report, name, ActionKind::Stop, result.clone().err());
            result.map_err(|e| format!("stopping {name} failed: {e}"))?;
            stopping.remove(name);
        }

        let definitions: Vec<ServiceDefinition> = start_order
            .iter()
            .map(|name| self.definition(name, &new.services[name]))
            .collect();
        for name in &start_order {
            self.prepare_state_dirs(name, &new.services[name])?;
        }
        self.backend
            .define(&definitions)
            .map_err(|e| format!("installing service definitions failed: {e}"))?;

        self.profiles()
            .and_then(|p| Ok(p.switch_to(target)?))
            .map_err(|e| format!("switching the system link failed: {e}"))?;

        let removed: Vec<String> = diff.removed.iter().cloned().collect();
        if !removed.is_empty() {
            let result = self
                .backend
                .remove(&removed, self.options.stop_grace)
                .map_err(|e| e.to_string());
            for name in &removed {
                Self::record(report, name, ActionKind::Remove, result.clone().err());
            }
            result.map_err(|e| format!("removing services failed: {e}"))?;
        }

        for name in &start_order {
            let result = self
                .backend
                .start(std::slice::from_ref(name))
                .map_err(|e| e.to_string());
            Self::record(report, name, ActionKind::Start, result.clone().err());
            result.map_err(|e| format!("starting {name} failed: {e}"))?;
        }

        for name in &start_order {
            let service = &new.services[name];
            for hook in &service.hooks.post_upgrade {
                let (svc, extra) = hook_env(name);
                let result = self.run_hook(&svc, service, hook, &extra);
                Self::record(
                    report,
                    name,
                    ActionKind::PostUpgradeHook,
                    result.clone().err(),
                );
                result.map_err(|e| format!("post-upgrade hook of {name} failed: {e}"))?;
            }
        }

        let long_running: Vec<String> = start_order
            .iter()
            .filter(|n| !new.services[*n].oneshot)
            .cloned()
            .collect();
        self.settle(&long_running)?;

        let results = self.run_health_checks(new);
        let failed = results.iter().find(|r| !r.passed()).map(|r| {
            format!(
                "health check of {} failed after {} attempt(s): {}: {}",
                r.service,
                r.attempts,
                r.check,
                r.failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            )
        });
        report.health = results;
        if let Some(reason) = failed {
            // A crash loop explains a failed check better than the check.
            self.settle(&long_running)?;
            return Err(reason);
        }
        Ok(())
    }

    /// Watches freshly started services for `options.settle`: a crash loop
    /// (or a service that ended) fails the activation.
    fn settle(&mut self, names: &[String]) -> Result<(), String> {
        if names.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.options.settle;
        // A service that crashed during the settle time has failed either
        // way; waiting a little longer for its crash loop to be declared
        // only makes the reason exact.
        let crash_deadline = deadline + CRASH_VERDICT_WAIT;
        loop {
            let statuses = self.backend.status(names).map_err(|e| e.to_string())?;
            let now = Instant::now();
            let mut crashing = None;
            for s in &statuses {
                let exit = s.last_exit.as_deref().unwrap_or("no exit status");
                match s.state {
                    ServiceState::CrashLooping => {
                        return Err(format!(
                            "service {} is crash-looping ({} restarts, last: {exit})",
                            s.name, s.restarts
                        ))
                    }
                    ServiceState::Failed
                    | ServiceState::Stopped
                    | ServiceState::Exited
                    | ServiceState::Unknown => {
                        return Err(format!("service {} is {} ({exit})", s.name, s.state))
                    }
                    ServiceState::Backoff => crashing = Some(s),
                    ServiceState::Running if s.restarts > 0 => crashing = Some(s),
                    ServiceState::Running => {}
                }
            }
            match crashing {
                None if now >= deadline => return Ok(()),
                Some(s) if now >= crash_deadline => {
                    return Err(format!(
                        "service {} keeps crashing ({} restarts, last: {})",
                        s.name,
                        s.restarts,
                        s.last_exit.as_deref().unwrap_or("no exit status")
                    ))
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn run_health_checks(&self, manifest: &Manifest) -> Vec<HealthResult> {
        let mut results = Vec::new();
        let Ok(order) = manifest.start_order() else {
            return results;
        };
        for name in order {
            let service = &manifest.services[&name];
            let context = CommandContext {
                env: self.service_env(&name, service),
                cwd: Some(self.service_state_dir(&name)),
            };
            for check in &service.health {
                results.push(health::run_check(&name, check, &context));
            }
        }
        results
    }

    /// Brings the host to generation `target` (or to no generation) with its
    /// services running, whatever state `other` (the generation we came
    /// from, if known) left behind. Unchanged running services are left alone.
    /// `touched` limits what is stopped to the services the interrupted or
    /// failed pass acted on (`None`: unknown, assume all of the difference).
    fn converge(
        &mut self,
        target: Option<u64>,
        other: Option<&Manifest>,
        touched: Option<&BTreeSet<String>>,
        report: &mut ActivationReport,
    ) {
        let grace = self.options.stop_grace;
        let target_manifest = match target.map(|n| self.manifest_of(n)) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                report
                    .rollback_errors
                    .push(format!("cannot read the manifest to roll back to: {e}"));
                return;
            }
        };
        // Services of the other generation that are not identical in the
        // target: stop them, in that generation's reverse dependency order.
        if let Some(other) = other {
            let mut leaving: BTreeSet<String> = match &target_manifest {
                Some(t) => {
                    let d = manifest::diff(Some(t), other);
                    d.added.union(&d.changed).cloned().collect()
                }
                None => other.services.keys().cloned().collect(),
            };
            if let Some(touched) = touched {
                leaving.retain(|name| touched.contains(name));
            }
            let mut order = other
                .ordered_subset(&leaving)
                .unwrap_or_else(|_| leaving.iter().cloned().collect());
            order.reverse();
            for name in &order {
                let result = self
                    .backend
                    .stop(std::slice::from_ref(name), grace)
                    .map_err(|e| e.to_string());
                Self::record(report, name, ActionKind::RollbackStop, result.clone().err());
                if let Err(e) = result {
                    report.rollback_errors.push(format!("stopping {name}: {e}"));
                }
            }
            let gone: Vec<String> = other
                .services
                .keys()
                .filter(|n| {
                    target_manifest
                        .as_ref()
                        .is_none_or(|t| !t.services.contains_key(*n))
                })
                .cloned()
                .collect();
            if !gone.is_empty() {
                if let Err(e) = self.backend.remove(&gone, grace) {
                    report
                        .rollback_errors
                        .push(format!("removing services: {e}"));
                }
            }
        }
        let profiles = match self.profiles() {
            Ok(p) => p,
            Err(e) => {
                report.rollback_errors.push(e.to_string());
                return;
            }
        };
        let switched = match target {
            Some(n) => profiles.switch_to(n),
            None => profiles.clear_current(),
        };
        if let Err(e) = switched {
            report.rollback_errors.push(format!("switching back: {e}"));
        }
        let Some(manifest) = target_manifest else {
            return;
        };
        let order = match manifest.start_order() {
            Ok(o) => o,
            Err(e) => {
                report.rollback_errors.push(e.to_string());
                return;
            }
        };
        let definitions: Vec<ServiceDefinition> = order
            .iter()
            .map(|n| self.definition(n, &manifest.services[n]))
            .collect();
        for name in &order {
            if let Err(e) = self.prepare_state_dirs(name, &manifest.services[name]) {
                report.rollback_errors.push(e);
            }
        }
        if let Err(e) = self.backend.define(&definitions) {
            report
                .rollback_errors
                .push(format!("installing definitions: {e}"));
            return;
        }
        let statuses = match self.backend.status(&order) {
            Ok(s) => s,
            Err(e) => {
                report.rollback_errors.push(format!("service status: {e}"));
                return;
            }
        };
        for status in statuses {
            let up = match status.state {
                ServiceState::Running => true,
                ServiceState::Exited => manifest.services[&status.name].oneshot,
                _ => false,
            };
            if up {
                continue;
            }
            let name = status.name;
            let result = self
                .backend
                .start(std::slice::from_ref(&name))
                .map_err(|e| e.to_string());
            Self::record(
                report,
                &name,
                ActionKind::RollbackStart,
                result.clone().err(),
            );
            if let Err(e) = result {
                report.rollback_errors.push(format!("starting {name}: {e}"));
            }
        }
        report.rollback_health = self.run_health_checks(&manifest);
        for failed in report.rollback_health.iter().filter(|r| !r.passed()) {
            report.rollback_errors.push(format!(
                "health check of {} after rollback: {}",
                failed.service,
                failed
                    .failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            ));
        }
    }

    /// The environment of a service: the manifest's, the host's facts, and
    /// the host paths it may need.
    fn service_env(&self, name: &str, service: &Service) -> BTreeMap<String, String> {
        let mut env = self.options.host_env.clone();
        env.insert(
            "STATE_DIRECTORY".into(),
            self.service_state_dir(name).display().to_string(),
        );
        env.insert(
            "FERRY_SECRETS_DIR".into(),
            secrets::secrets_dir(&self.state_dir).display().to_string(),
        );
        env.insert("FERRY_SERVICE".into(), name.to_string());
        env.extend(service.env.clone());
        env
    }

    fn definition(&self, name: &str, service: &Service) -> ServiceDefinition {
        ServiceDefinition {
            name: name.to_string(),
            exec: service.exec.clone(),
            env: self.service_env(name, service),
            user: service.user.clone(),
            working_dir: self.service_state_dir(name),
            oneshot: service.oneshot,
            restart: service.restart,
        }
    }

    /// Creates `<state_dir>/lib/<service>` and its declared subdirectories,
    /// owned by the service's user. Never deletes anything.
    fn prepare_state_dirs(&self, name: &str, service: &Service) -> Result<(), String> {
        let base = self.service_state_dir(name);
        let owner = match &service.user {
            Some(user) => match nix::unistd::User::from_name(user) {
                Ok(Some(u)) => Some((u.uid, u.gid)),
                _ => return Err(format!("user {user} of service {name} does not exist")),
            },
            None => None,
        };
        let dirs =
            std::iter::once(base.clone()).chain(service.state_dirs.iter().map(|d| base.join(d)));
        for dir in dirs {
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            if let Some((uid, gid)) = owner {
                nix::unistd::chown(&dir, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", dir.display()))?;
            }
        }
        Ok(())
    }

    /// Runs one hook as the service's user, in its state dir, with its
    /// environment plus `extra`; kills its process group at the time limit.
    fn run_hook(
        &self,
        name: &str,
        service: &Service,
        hook: &str,
        extra: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        self.prepare_state_dirs(name, service)?;
        let mut output = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        let stdout = output
            .try_clone()
            .map_err(|e| format!("temporary file: {e}"))?;
        let stderr = output
            .try_clone()
            .map_err(|e| format!("temporary file: {e}"))?;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(hook)
            .env_clear()
            .env("PATH", BASE_PATH)
            .envs(self.service_env(name, service))
            .envs(extra)
            .current_dir(self.service_state_dir(name))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        if let Some(user) = &service.user {
            let found = nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .ok_or_else(|| format!("user {user} does not exist"))?;
            command.uid(found.uid.as_raw()).gid(found.gid.as_raw());
        }
        let mut child = command.spawn().map_err(|e| format!("cannot run: {e}"))?;
        let deadline = Instant::now() + self.options.hook_timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = child.wait();
                    return Err(format!(
                        "did not finish within {:?}",
                        self.options.hook_timeout
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting: {e}")),
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut text = String::new();
        let _ = output.seek(io::SeekFrom::Start(0));
        let _ = (&mut output).take(64 * 1024).read_to_string(&mut text);
        let text = text.trim();
        let tail: String = {
            let count = text.chars().count();
            text.chars().skip(count.saturating_sub(300)).collect()
        };
        if tail.is_empty() {
            Err(status.to_string())
        } else {
            Err(format!("{status}: {tail}"))
        }
    }

    /// Deletes old generations (never the current one) and then secrets no
    /// remaining generation references.
    pub fn keep_generations(&mut self, keep: usize) -> Result<Vec<u64>, ActivationError> {
        let _lock = HostLock::acquire(&self.state_dir)?;
        let deleted = self.profiles()?.keep_newest(keep.max(1))?;
        secrets::prune_secrets(&self.state_dir).map_err(|e| ActivationError::Io {
            action: "prune secrets in",
            path: secrets::secrets_dir(&self.state_dir),
            source: io::Error::other(e.to_string()),
        })?;
        Ok(deleted)
    }
}

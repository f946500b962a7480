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
//!
//! This file holds the public types and entry points; the steps live beside
//! it: `forward` (the way to a new generation), `hooks`, `verify` (settle and
//! health checks), `converge` (the way back), `recover` (interrupted
//! activations and magic rollback), `journal` (records on disk) and
//! `definitions` (a manifest service as a backend definition).
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_store::durable::{remove_durably, IoError};
use serde::{Deserialize, Serialize};

use super::backend::{BackendError, ServiceBackend};
use super::env::BASE_PATH;
use super::generations::{GenerationError, HostLock, Profiles};
use super::health::HealthResult;
use super::manifest::{Manifest, ManifestDiff, ManifestError};
use super::secrets;

mod converge;
mod definitions;
mod forward;
mod hooks;
mod journal;
mod recover;
mod verify;

use journal::Journal;

/// File names under the state dir.
const JOURNAL_FILE: &str = "activation.journal";
const PENDING_FILE: &str = "pending-confirmation";
const LAST_REPORT_FILE: &str = "last-activation.json";

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
    /// Secrets whose value changed for this activation: the services that
    /// read them restart even when their definition is the same.
    pub rotated_secrets: std::collections::BTreeSet<String>,
    /// Restart every service, changed or not (after a repair replaced
    /// files under them).
    pub restart_all: bool,
}

impl Default for ActivationOptions {
    fn default() -> Self {
        ActivationOptions {
            stop_grace: Duration::from_secs(10),
            hook_timeout: Duration::from_secs(300),
            settle: Duration::from_secs(1),
            confirm_within: None,
            host_env: BTreeMap::new(),
            rotated_secrets: Default::default(),
            restart_all: false,
        }
    }
}

/// How an activation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The new generation is current, its services run and are healthy.
    /// Activated.
    Activated {
        /// The generation now current.
        generation: u64,
    },
    /// Something failed; the host is back on `to_generation` (`None`: the
    /// host had no generation before, and has none now).
    RolledBack {
        /// The generation now current.
        to_generation: Option<u64>,
        /// Why the activation did not stand.
        reason: String,
    },
}

/// One thing done to a service (or a hook run) during an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAction {
    /// The service acted on.
    pub service: String,
    /// What was done.
    pub action: ActionKind,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `None` when it worked; else why not.
    pub error: Option<String>,
}

/// The kinds of [`ServiceAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// A pre-upgrade hook ran.
    PreUpgradeHook,
    /// Stopped (removed or changed).
    Stop,
    /// Started (changed or added).
    Start,
    /// Forgotten by the backend (removed).
    Remove,
    /// A post-upgrade hook ran.
    PostUpgradeHook,
    /// Stop during a rollback.
    RollbackStop,
    /// Start during a rollback.
    RollbackStart,
}

/// Everything an activation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationReport {
    /// How it ended.
    pub outcome: Outcome,
    /// The generation current before (`None`: none).
    pub from_generation: Option<u64>,
    /// The generation activated (or converged to, in a recovery).
    pub target_generation: Option<u64>,
    /// What changed between the two manifests.
    pub diff: ManifestDiff,
    /// Everything done to services, in order.
    pub actions: Vec<ServiceAction>,
    /// Health results of the target generation.
    pub health: Vec<HealthResult>,
    /// Health results of the generation rolled back to.
    pub rollback_health: Vec<HealthResult>,
    /// Problems while rolling back (the host may need attention).
    pub rollback_errors: Vec<String>,
    /// Set when this report is a recovery from an interrupted activation.
    pub recovered: bool,
    /// When it started, Unix milliseconds.
    pub started_ms: u64,
    /// When it ended, Unix milliseconds.
    pub finished_ms: u64,
}

impl ActivationReport {
    /// Whether the new generation stands.
    pub fn activated(&self) -> bool {
        matches!(self.outcome, Outcome::Activated { .. })
    }

    /// For an activation that rolled back but whose way back left problems (a
    /// service of the restored generation that would not stop, start or pass
    /// its health check): why the host is unwell. Such a host is neither on its
    /// target nor safely back, so it counts as failed.
    pub fn unwell_after_rollback(&self) -> Option<String> {
        match &self.outcome {
            Outcome::RolledBack { reason, .. } if !self.rollback_errors.is_empty() => {
                Some(format!(
                    "{reason}; rolling back left the host unwell: {}",
                    self.rollback_errors.join("; ")
                ))
            }
            _ => None,
        }
    }

    /// A report at the start of a transition: nothing done yet, not recovered, not finished.
    pub(crate) fn begin(
        outcome: Outcome,
        from_generation: Option<u64>,
        target_generation: Option<u64>,
        diff: ManifestDiff,
        started_ms: u64,
    ) -> ActivationReport {
        ActivationReport {
            outcome,
            from_generation,
            target_generation,
            diff,
            actions: Vec::new(),
            health: Vec::new(),
            rollback_health: Vec::new(),
            rollback_errors: Vec::new(),
            recovered: false,
            started_ms,
            finished_ms: 0,
        }
    }
}

/// Why an activation could not run (as opposed to running and rolling back).
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// The profiles or the host lock failed.
    #[error(transparent)]
    Generations(#[from] GenerationError),
    /// A manifest could not be used.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The system's package tree cannot serve as `/usr` here.
    #[error(transparent)]
    UsrTree(#[from] crate::activate::usr_tree::UsrTreeError),
    /// The system is outside this host's store.
    #[error(
        "the system {system} is not inside the store {store}; copy it into the host's store first"
    )]
    NotInStore {
        /// The system asked for.
        system: PathBuf,
        /// This host's store directory.
        store: PathBuf,
    },
    /// The system path does not exist here.
    #[error("the system {system} does not exist on this host: {source}")]
    SystemMissing {
        /// The system asked for.
        system: PathBuf,
        /// Why it cannot be resolved.
        #[source]
        source: io::Error,
    },
    /// Secrets the system needs were not sent.
    #[error("secrets {} are referenced by the new system but missing on this host; send them before activating", names.join(", "))]
    MissingSecrets {
        /// The secrets not on this host.
        names: Vec<String>,
    },
    /// A service's user could not be created.
    #[error("cannot create user {user}: {message}")]
    User {
        /// The user.
        user: String,
        /// What `useradd` said.
        message: String,
    },
    /// The service backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A file-system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// The magic-rollback record: `generation` must be confirmed before
/// `deadline_ms`, else the host goes back to `previous_generation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfirmation {
    /// The generation waiting for confirmation.
    pub generation: u64,
    /// Where the host goes back to without one.
    pub previous_generation: Option<u64>,
    /// The deadline, Unix milliseconds.
    pub deadline_ms: u64,
}

/// What a host is running.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostStatus {
    /// The current generation (`None`: never activated).
    pub generation: Option<u64>,
    /// The current generation's system store path.
    pub system: Option<PathBuf>,
    /// The current generation's services, as the backend sees them.
    pub services: Vec<super::backend::ServiceStatus>,
    /// A magic-rollback record waiting for its confirmation.
    pub pending_confirmation: Option<PendingConfirmation>,
    /// The last activation's report (with its health results).
    pub last_activation: Option<ActivationReport>,
    /// Set when this call found an interrupted activation and converged.
    pub recovered: Option<ActivationReport>,
    /// Another activation is running right now: what this status says may
    /// change when it ends (a deployer waits for it).
    #[serde(default)]
    pub activation_in_progress: bool,
    /// The salted digests of the secrets installed here (`None` from an
    /// agent that predates them, or when they could not be read).
    #[serde(default)]
    pub secrets: Option<secrets::SecretDigests>,
}

/// Activates systems on this host with one service backend.
pub struct Activator {
    state_dir: PathBuf,
    store_dir: PathBuf,
    backend: Box<dyn ServiceBackend>,
    /// The knobs every activation of this activator uses.
    pub options: ActivationOptions,
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
    /// An activator for the host with this state dir, store and backend.
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

    /// The service backend, for direct queries.
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

    /// True while a journal exists: an activation runs now, or one was
    /// killed half-way and [`Activator::recover`] has not converged it yet.
    pub fn in_transition(&self) -> bool {
        self.path(JOURNAL_FILE).exists()
    }

    /// The pending confirmation, if any.
    pub fn pending(&self) -> Option<PendingConfirmation> {
        read_json(&self.path(PENDING_FILE))
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
            secrets: secrets::installed_digests(&self.state_dir).ok(),
        })
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
        if let Some(usr) = &manifest.usr {
            crate::activate::usr_tree::check(Path::new(usr))?;
        }
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

    /// Deletes old generations (never the current one) and then secrets no
    /// remaining generation references.
    pub fn keep_generations(&mut self, keep: usize) -> Result<Vec<u64>, ActivationError> {
        let _lock = HostLock::acquire(&self.state_dir)?;
        let deleted = self.profiles()?.keep_newest(keep.max(1))?;
        secrets::prune_secrets(&self.state_dir).map_err(|e| IoError {
            action: "prune secrets in",
            path: secrets::secrets_dir(&self.state_dir),
            source: io::Error::other(e.to_string()),
        })?;
        Ok(deleted)
    }
}

//! The agent's activation requests (DESIGN §8 over §7): secrets, the detached activation process, the magic-rollback watchdog, confirm, status and generations.
//!
//! Invariants:
//! - an activation (or rollback) runs in its own process, in its own session
//!   and process group, with its output in `<state_dir>/log/activation.log`:
//!   the agent waits for it, but the deployer, the SSH session or the agent
//!   dying does not stop it, so the host always converges;
//! - secret values are written 0400 outside the store before the activation
//!   and are never logged, put into an error message, or passed on a
//!   command line;
//! - the host facts of the last activation are kept in
//!   `<state_dir>/host-env.json`, so a rollback, a watchdog or a recovery
//!   restarts services with the same environment the deployer gave them.
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use ferry_store::durable::{io_err, since_epoch, unix_now_ms, unix_secs, IoError};
use ferry_store::Store;
use serde::{Deserialize, Serialize};

use crate::activate::supervisor::SupervisorLauncher;
use crate::activate::{
    backend, engine::ensure_user, secrets, ActivationOptions, ActivationReport, Activator,
    Manifest, Profiles,
};
use crate::transport::codec::{ActivateRequest, GenerationInfo, Response};
use crate::transport::error_chain;

/// Where the last activation's host facts are kept (see the module doc).
const HOST_ENV_FILE: &str = "host-env.json";
/// Left by a repair: the next activation restarts every service.
const REPAIRED_FILE: &str = "repaired";
/// Where the detached activation processes leave their results.
const JOBS_DIR: &str = "activations";
/// The log of activation and watchdog processes, under `<state_dir>/log/`.
const ACTIVATION_LOG: &str = "activation.log";
/// Results older than this were left by agents that died before reading
/// them; they are removed by the next activation.
const STALE_RESULT_AGE: Duration = Duration::from_secs(24 * 3600);

/// Why an agent-side activation step failed (sent to the deployer as text).
#[derive(Debug, thiserror::Error)]
pub enum HostActivationError {
    /// The activation could not run.
    #[error(transparent)]
    Activation(#[from] crate::activate::ActivationError),
    /// A secret could not be written.
    #[error(transparent)]
    Secret(#[from] secrets::SecretInstallError),
    /// The profiles could not be read.
    #[error(transparent)]
    Generations(#[from] crate::activate::generations::GenerationError),
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] crate::activate::manifest::ManifestError),
    /// The host's store failed.
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    /// The system is not a valid path of this host's store.
    #[error("{system} is not a valid path of this host's store; copy its closure first")]
    NotInStore {
        /// The system asked for.
        system: String,
    },
    /// The deployer sent a secret the system does not use.
    #[error(
        "the deployer sent secret {name}, which no service of {system} references; \
         secrets go only to hosts whose system uses them"
    )]
    UnreferencedSecret {
        /// The secret.
        name: String,
        /// The system being activated.
        system: String,
    },
    /// A file-system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The detached activation process failed.
    #[error("the activation process {detail}; see {log} on the host")]
    Job {
        /// What happened to the process.
        detail: String,
        /// Its log file on the host.
        log: PathBuf,
    },
}

/// What the detached activation process leaves for the agent.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobResult {
    /// The activation's report, when it ran.
    pub report: Option<ActivationReport>,
    /// Why it could not run.
    pub error: Option<String>,
}

/// What a detached activation process does.
#[derive(Debug, Clone)]
pub enum JobTarget {
    /// Activate this system.
    System(PathBuf),
    /// Activate this generation again (rollback).
    Generation(u64),
}

/// The activator of this host, with the detected backend and the last
/// activation's host facts.
pub fn activator(
    store_dir: &Path,
    state_dir: &Path,
    confirm_within: Option<Duration>,
) -> Result<Activator, HostActivationError> {
    let launcher =
        SupervisorLauncher::current_exe().map_err(crate::activate::ActivationError::Backend)?;
    let backend = backend::detect(state_dir, launcher);
    let options = ActivationOptions {
        confirm_within,
        host_env: read_host_env(state_dir),
        ..ActivationOptions::default()
    };
    Ok(Activator::new(state_dir, store_dir, backend, options))
}

fn read_host_env(state_dir: &Path) -> BTreeMap<String, String> {
    fs::read(state_dir.join(HOST_ENV_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Writes a small file atomically and durably, creating its directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HostActivationError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    Ok(ferry_store::durable::write_atomic(path, bytes)?)
}

fn as_response(result: Result<Response, HostActivationError>) -> Response {
    result.unwrap_or_else(|e| Response::Error {
        message: error_chain(&e),
    })
}

/// `Activate`: writes the secrets, then runs the activation in a detached
/// process and waits for its report.
pub fn activate(
    store: &Store,
    store_dir: &Path,
    state_dir: &Path,
    request: &ActivateRequest,
) -> Response {
    as_response((|| {
        let system = store
            .parse_path(&request.system)
            .ok()
            .filter(|p| store.is_valid(p))
            .ok_or_else(|| HostActivationError::NotInStore {
                system: request.system.clone(),
            })?;
        let manifest = Manifest::load(&store.real_path(&system))?;
        let rotated = write_secrets(state_dir, &request.system, &manifest, &request.secrets)?;
        let env = serde_json::to_vec_pretty(&request.host_env)
            .map_err(|e| io_err("encode", &state_dir.join(HOST_ENV_FILE))(e.into()))?;
        write_atomic(&state_dir.join(HOST_ENV_FILE), &env)?;
        let report = run_job(
            store_dir,
            state_dir,
            &JobTarget::System(PathBuf::from(&request.system)),
            request.confirm_within_ms,
            &rotated,
        )?;
        Ok(Response::Activation {
            report_json: report,
        })
    })())
}

/// `RollbackTo`: generation `number` again, through the same detached process.
pub fn rollback_to(store_dir: &Path, state_dir: &Path, number: u64) -> Response {
    as_response(
        run_job(
            store_dir,
            state_dir,
            &JobTarget::Generation(number),
            None,
            &[],
        )
        .map(|report_json| Response::Activation { report_json }),
    )
}

/// Writes every secret the deployer sent, with the owner the manifest
/// names; a secret the system does not reference is refused. Returns the
/// names whose value changed (or that were missing): rotated secrets, whose
/// services the activation restarts.
fn write_secrets(
    state_dir: &Path,
    system: &str,
    manifest: &Manifest,
    values: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<String>, HostActivationError> {
    let mut rotated = Vec::new();
    let mut owners: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for service in manifest.services.values() {
        for secret in &service.secrets {
            owners.insert(&secret.name, secret.owner.as_deref());
        }
    }
    for (name, value) in values {
        let Some(owner) = owners.get(name.as_str()) else {
            return Err(HostActivationError::UnreferencedSecret {
                name: name.clone(),
                system: system.to_string(),
            });
        };
        if let Some(user) = owner {
            ensure_user(user)?;
        }
        if fs::read(secrets::secret_path(state_dir, name))
            .ok()
            .as_ref()
            != Some(value)
        {
            rotated.push(name.clone());
        }
        secrets::write_secret(state_dir, name, value, *owner)?;
    }
    Ok(rotated)
}

/// Starts `ferry remote activate` detached, waits for it and returns its
/// report as JSON.
fn run_job(
    store_dir: &Path,
    state_dir: &Path,
    target: &JobTarget,
    confirm_within_ms: Option<u64>,
    rotated: &[String],
) -> Result<String, HostActivationError> {
    let jobs = state_dir.join(JOBS_DIR);
    fs::create_dir_all(&jobs).map_err(io_err("create", &jobs))?;
    remove_stale_results(&jobs);
    let report_file = jobs.join(format!(
        "{}-{}.json",
        std::process::id(),
        since_epoch(SystemTime::now()).as_nanos()
    ));
    let mut args: Vec<String> = vec!["remote".into(), "activate".into()];
    match target {
        JobTarget::System(system) => {
            args.push("--system".into());
            args.push(system.to_string_lossy().into_owned());
        }
        JobTarget::Generation(n) => {
            args.push("--rollback-to".into());
            args.push(n.to_string());
        }
    }
    if let Some(ms) = confirm_within_ms {
        args.push("--confirm-within-ms".into());
        args.push(ms.to_string());
    }
    for name in rotated {
        args.push("--rotated-secret".into());
        args.push(name.clone());
    }
    args.push("--report".into());
    args.push(report_file.to_string_lossy().into_owned());
    let log = log_path(state_dir);
    let mut child = spawn_detached(store_dir, state_dir, &args)?;
    let status = child.wait().map_err(io_err("wait for", &report_file))?;
    let bytes = fs::read(&report_file);
    let _ = fs::remove_file(&report_file);
    let result: JobResult = match bytes {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| HostActivationError::Job {
            detail: format!("left an unreadable report: {e}"),
            log: log.clone(),
        })?,
        Err(_) => {
            return Err(HostActivationError::Job {
                detail: format!("ended ({status}) without a report"),
                log,
            })
        }
    };
    match (result.report, result.error) {
        (Some(report), _) => serde_json::to_string(&report).map_err(|e| HostActivationError::Job {
            detail: format!("report cannot be encoded: {e}"),
            log,
        }),
        (None, Some(error)) => Err(HostActivationError::Job { detail: error, log }),
        (None, None) => Err(HostActivationError::Job {
            detail: "left an empty report".into(),
            log,
        }),
    }
}

/// Removes results no agent will read any more (their agent died while
/// waiting); best effort, a leftover file harms nothing.
fn remove_stale_results(jobs: &Path) {
    let Ok(entries) = fs::read_dir(jobs) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_RESULT_AGE);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("log").join(ACTIVATION_LOG)
}

/// Runs this ferry binary with `args` in a new session (its own process
/// group, no controlling terminal), stdin on /dev/null and its output
/// appended to the activation log: a hang-up of the agent's session or
/// the agent's death does not reach it.
fn spawn_detached(
    store_dir: &Path,
    state_dir: &Path,
    args: &[String],
) -> Result<std::process::Child, HostActivationError> {
    let exe = std::env::current_exe().map_err(io_err("find", Path::new("/proc/self/exe")))?;
    let log = log_path(state_dir);
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err("open", &log))
    };
    let mut command = Command::new(&exe);
    command
        .arg("--store-dir")
        .arg(store_dir)
        .arg("--state-dir")
        .arg(state_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
    Ok(command.spawn().map_err(io_err("start", &exe))?)
}

/// One line in the activation log (the process's stderr is that log).
fn log_line(text: &str) {
    let now = unix_now_ms();
    let _ = writeln!(
        io::stderr(),
        "[ferry-activate {now} pid {}] {text}",
        std::process::id()
    );
}

/// The body of `ferry remote activate`: runs the activation, starts the
/// watchdog when a confirmation is due, prunes unreferenced secrets, and
/// writes the result to `report_file`.
pub fn run_activation_job(
    store_dir: &Path,
    state_dir: &Path,
    target: &JobTarget,
    confirm_within_ms: Option<u64>,
    rotated: &[String],
    report_file: &Path,
) -> Result<bool, HostActivationError> {
    log_line(&format!("start: {target:?}"));
    let confirm_within = confirm_within_ms.map(Duration::from_millis);
    // Armed before anything changes: whatever step this process dies at,
    // the watchdog converges the host without waiting for anyone to contact
    // it, and it holds the confirmation deadline once there is one.
    let job = std::process::id().to_string();
    let watchdog = ["remote", "watchdog", "--job", &job].map(String::from);
    let outcome = spawn_detached(store_dir, state_dir, &watchdog)
        .and_then(|_watchdog| activator(store_dir, state_dir, confirm_within))
        .and_then(|mut activator| {
            activator.options.rotated_secrets = rotated.iter().cloned().collect();
            activator.options.restart_all = state_dir.join(REPAIRED_FILE).exists();
            Ok(match target {
                JobTarget::System(system) => activator.activate(system)?,
                JobTarget::Generation(n) => activator.rollback_to(*n)?,
            })
        });
    let result = match outcome {
        Ok(report) => {
            log_line(&format!("finished: {:?}", report.outcome));
            if report.activated() {
                let _ = fs::remove_file(state_dir.join(REPAIRED_FILE));
            }
            match secrets::prune_secrets(state_dir) {
                Ok(removed) if !removed.is_empty() => log_line(&format!(
                    "removed unreferenced secrets: {}",
                    removed.join(", ")
                )),
                Ok(_) => {}
                Err(e) => log_line(&format!("pruning secrets: {}", error_chain(&e))),
            }
            JobResult {
                report: Some(report),
                error: None,
            }
        }
        Err(e) => {
            log_line(&format!("failed: {}", error_chain(&e)));
            JobResult {
                report: None,
                error: Some(error_chain(&e)),
            }
        }
    };
    let ok = result.report.is_some();
    let bytes = serde_json::to_vec(&result)
        .map_err(|e| io_err("encode", report_file)(io::Error::other(e)))?;
    write_atomic(report_file, &bytes)?;
    Ok(ok)
}

/// The body of `ferry remote watchdog`, which the activation process `job`
/// starts before it changes anything: while an activation is under way it
/// waits on the host lock, and when the activation's process died half-way
/// (its journal is left) converges the host back at once; then it sleeps
/// until the pending confirmation's deadline and rolls back when it was
/// not confirmed. Returns once `job` is gone and nothing is pending.
pub fn run_watchdog(
    store_dir: &Path,
    state_dir: &Path,
    job: Option<u32>,
) -> Result<(), HostActivationError> {
    // The job is alive exactly while it is still our parent: a dead
    // parent's children are re-parented, so a reused pid never fools this.
    let job_alive = || job.is_some_and(|pid| nix::unistd::getppid().as_raw() as u32 == pid);
    loop {
        // Read before looking at the host: a job that ends meanwhile is
        // seen on the next round, after what it left is dealt with.
        let alive = job_alive();
        let mut activator = activator(store_dir, state_dir, None)?;
        if activator.in_transition() {
            // Blocks while the activation holds the host lock.
            if let Some(report) = activator.recover()? {
                log_line(&format!("watchdog: {:?}", report.outcome));
            }
        }
        let Some(pending) = activator.pending() else {
            if !alive {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let now = unix_now_ms();
        if now < pending.deadline_ms {
            // Wake up at the deadline, or earlier to notice a confirmation
            // (then there is nothing left to watch).
            let wait = (pending.deadline_ms - now).min(1000);
            std::thread::sleep(Duration::from_millis(wait));
            continue;
        }
        if let Some(report) = activator.check_pending(SystemTime::now())? {
            log_line(&format!("watchdog: {:?}", report.outcome));
        }
    }
}

/// `Confirm`: clears the pending confirmation of `generation`.
pub fn confirm(store_dir: &Path, state_dir: &Path, generation: u64) -> Response {
    as_response((|| {
        let mut activator = activator(store_dir, state_dir, None)?;
        let confirmed = activator.confirm(generation)?;
        Ok(Response::Confirmed { confirmed })
    })())
}

/// `Status`: rolls an overdue unconfirmed generation back (when its
/// watchdog is gone, e.g. after a reboot), converges an interrupted
/// activation, then reports.
pub fn status(store_dir: &Path, state_dir: &Path) -> Response {
    as_response((|| {
        let mut activator = activator(store_dir, state_dir, None)?;
        activator.check_pending(SystemTime::now())?;
        let status = activator.status()?;
        let status_json = serde_json::to_string(&status)
            .map_err(|e| io_err("encode", state_dir)(io::Error::other(e)))?;
        Ok(Response::Status { status_json })
    })())
}

/// `Verify`: re-hashes the closure of the current system. With `repair`
/// (under the host lock, so no activation runs meanwhile), what is broken
/// is quarantined and invalidated with its referrers, and the next
/// activation restarts every service (their files were replaced).
pub fn verify(store: &Store, state_dir: &Path, repair: bool) -> Response {
    as_response((|| {
        let _lock = repair
            .then(|| crate::activate::generations::HostLock::acquire(state_dir))
            .transpose()?;
        let profiles = Profiles::open(state_dir)?;
        let roots = match profiles.current()? {
            Some(n) => {
                let system = profiles.system_of(n)?;
                vec![store.parse_path(&system.to_string_lossy())?]
            }
            None => Vec::new(),
        };
        let report = store.verify_closure(&roots, repair)?;
        if repair && !report.invalidated.is_empty() {
            write_atomic(&state_dir.join(REPAIRED_FILE), b"")?;
        }
        let report_json = serde_json::to_string(&report)
            .map_err(|e| io_err("encode", state_dir)(io::Error::other(e)))?;
        Ok(Response::Verified { report_json })
    })())
}

/// `Generations`: the host's generations, oldest first.
pub fn generations(state_dir: &Path) -> Response {
    as_response((|| {
        let list: Vec<GenerationInfo> = Profiles::open(state_dir)?
            .list()?
            .into_iter()
            .map(|g| GenerationInfo {
                number: g.number,
                created: unix_secs(g.date),
                system: g.system.to_string_lossy().into_owned(),
                current: g.current,
            })
            .collect();
        let generations_json = serde_json::to_string(&list)
            .map_err(|e| io_err("encode", state_dir)(io::Error::other(e)))?;
        Ok(Response::Generations { generations_json })
    })())
}

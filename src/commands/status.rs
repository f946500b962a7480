//! `ferry status SITE`: what every selected host runs (generation, services, last health results, pending confirmation, last rollback), asked of each host's agent in parallel.
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ferry_lang::inventory::{HostEntry, InventorySource};
use ferry_lang::Site;
use ferry_store::Store;
use serde::Serialize;

use crate::activate::{HostStatus, Outcome};
use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::selector::{select, Selector};
use crate::output::{self, CommandError, Exit};
use crate::transport::bootstrap::{AgentBinary, AgentSettings};
use crate::transport::session::{HostSession, SessionError, SessionOptions};
use crate::transport::ssh::SshSettings;

/// How to reach a site's hosts over SSH (shared by the commands that talk to hosts).
#[derive(Debug, Clone, clap::Args)]
pub struct SshArgs {
    /// An ssh config file to use instead of ssh's defaults (`ssh -F`); a lab
    /// site uses its running lab's config by default.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// An extra ssh option, as for `ssh -o` (repeatable).
    #[arg(long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
}

impl SshArgs {
    /// The SSH settings for `site`: the given config, else the running
    /// lab's when the site's inventory is a lab.
    pub fn settings_for(&self, site: &Site) -> SshSettings {
        SshSettings {
            config_file: self.ssh_config.clone().or_else(|| lab_ssh_config(site)),
            options: self.ssh_options.clone(),
        }
    }
}

/// The ssh config of the running lab of a lab site (`None` for other
/// sites, or when its lab is not up).
pub fn lab_ssh_config(site: &Site) -> Option<PathBuf> {
    match site.inventory.source {
        Some(InventorySource::Lab(_)) => crate::lab::load(&site.name)
            .ok()
            .map(|lab| lab.ssh_config()),
        _ => None,
    }
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The site (a site file, or a directory holding `site.conf`).
    pub site: PathBuf,
    /// Only these hosts: names, classes, `class=C`, `host=H`, `KEY=VALUE` labels, comma-separated.
    #[arg(long, value_name = "SELECTOR")]
    pub on: Option<String>,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// How many hosts to ask at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct HostResult {
    host: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<HostStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(global: &GlobalArgs, args: StatusArgs) -> CommandResult {
    let site = crate::site::load_site(&args.site)?;
    let selector = match &args.on {
        Some(text) => Some(Selector::parse(text).map_err(CommandError::input)?),
        None => None,
    };
    let hosts: Vec<HostEntry> = select(site.hosts(), selector.as_ref(), args.on.as_deref())
        .map_err(CommandError::input)?
        .into_iter()
        .cloned()
        .collect();
    let store = Store::open(&global.store_dir, &global.state_dir)
        .map_err(|e| CommandError::failure(super::report(&e, e.hint().map(str::to_string))))?;
    let exe = std::env::current_exe().map_err(|e| {
        CommandError::failure(miette::miette!("cannot find ferry's own executable: {e}"))
    })?;
    let binary = AgentBinary::add_to_store(&store, &exe)
        .map_err(|e| CommandError::failure(super::report(&e, e.hint().map(str::to_string))))?;
    let options = SessionOptions {
        ssh: args.ssh.settings_for(&site),
        agent: AgentSettings {
            store_dir: global.store_dir.clone(),
            state_dir: global.state_dir.clone(),
        },
    };
    let results = query_all(
        &store,
        &binary,
        &hosts,
        &options,
        usize::from(args.max_parallel),
    );
    if args.json {
        output::json(&results);
    } else {
        for result in &results {
            print_host(result);
        }
    }
    let unreachable = results.iter().filter(|r| !r.reachable).count();
    if unreachable == 0 {
        Ok(Exit::Success)
    } else {
        Err(CommandError::failure(miette::miette!(
            "{unreachable} of {} hosts could not be asked",
            results.len()
        )))
    }
}

/// Asks every host, at most `max_parallel` at once; results in host order.
fn query_all(
    store: &Store,
    binary: &AgentBinary,
    hosts: &[HostEntry],
    options: &SessionOptions,
    max_parallel: usize,
) -> Vec<HostResult> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<HostResult>>> = hosts.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..max_parallel.max(1).min(hosts.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(host) = hosts.get(i) else { break };
                let result = match query(store, binary, host, options) {
                    Ok(status) => HostResult {
                        host: host.name.clone(),
                        reachable: true,
                        status: Some(status),
                        error: None,
                    },
                    Err(e) => HostResult {
                        host: host.name.clone(),
                        reachable: false,
                        status: None,
                        error: Some(match e.hint() {
                            Some(hint) => {
                                format!("{}\n  hint: {hint}", crate::transport::error_chain(&e))
                            }
                            None => crate::transport::error_chain(&e),
                        }),
                    },
                };
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    // Every index below `hosts.len()` was taken by exactly one worker.
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

fn query(
    store: &Store,
    binary: &AgentBinary,
    host: &HostEntry,
    options: &SessionOptions,
) -> Result<HostStatus, SessionError> {
    let mut session = HostSession::open(store, binary, host, options)?;
    let status = session.status()?;
    session.close()?;
    Ok(status)
}

fn print_host(result: &HostResult) {
    let Some(status) = &result.status else {
        output::line(format!(
            "{}: unreachable: {}",
            result.host,
            result.error.as_deref().unwrap_or("")
        ));
        return;
    };
    match (status.generation, &status.system) {
        (Some(n), Some(system)) => output::line(format!(
            "{}: generation {n}, {}",
            result.host,
            system.display()
        )),
        _ => output::line(format!("{}: no generation activated yet", result.host)),
    }
    // The health results of what runs now: the target's when the last
    // activation worked, else those of the generation it went back to.
    let health = status
        .last_activation
        .as_ref()
        .map(|r| {
            if r.activated() {
                r.health.as_slice()
            } else {
                r.rollback_health.as_slice()
            }
        })
        .unwrap_or(&[]);
    for service in &status.services {
        let mut text = format!("  {}: {}", service.name, service.state);
        if let Some(pid) = service.pid {
            text.push_str(&format!(" (pid {pid})"));
        }
        if service.restarts > 0 {
            text.push_str(&format!(", {} restarts", service.restarts));
        }
        for check in health.iter().filter(|h| h.service == service.name) {
            match &check.failure {
                None => text.push_str(&format!("; health {}: passed", check.check)),
                Some(failure) => {
                    text.push_str(&format!("; health {}: failed: {failure}", check.check))
                }
            }
        }
        output::line(text);
    }
    if let Some(pending) = &status.pending_confirmation {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let back_to = pending
            .previous_generation
            .map_or("no generation".to_string(), |n| format!("generation {n}"));
        let when = match pending.deadline_ms.checked_sub(now_ms) {
            Some(left) => format!("within {:.1} s", left as f64 / 1000.0),
            None => "now (overdue)".to_string(),
        };
        output::line(format!(
            "  pending confirmation: generation {} must be confirmed {when}, else the host goes back to {back_to}",
            pending.generation
        ));
    }
    if let Some(report) = &status.last_activation {
        if let Outcome::RolledBack { reason, .. } = &report.outcome {
            output::line(format!("  rolled back: {reason}"));
        }
    }
    if let Some(recovered) = &status.recovered {
        output::line(format!(
            "  recovered an interrupted activation (back on {})",
            recovered
                .target_generation
                .map_or("no generation".to_string(), |n| format!("generation {n}"))
        ));
    }
}

//! `ferry status SITE`: what every selected host runs (generation, services, last health results, pending confirmation, last rollback), asked of each host's agent in parallel.
use serde::Serialize;

use crate::activate::{HostStatus, Outcome};
use crate::cli::args::{help_overrides, HostArgs, TargetArgs};
use crate::cli::error::unless_hosts_failed;
use crate::cli::output;
use crate::cli::{CommandResult, GlobalArgs};

/// Arguments of `ferry status`.
#[derive(Debug, clap::Args)]
#[command(mut_args(help_overrides(&[
    ("site", "The site (a site file, or a directory holding `site.conf`)"),
    (
        "on",
        "Only these hosts: names, classes, `class=C`, `host=H`, `KEY=VALUE` labels, comma-separated"
    ),
])))]
pub struct StatusArgs {
    /// The site and its hosts.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How to reach the hosts.
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also re-hash each host's active closure: list every path that was
    /// modified or is missing, and exit 1 when any is (`ferry deploy
    /// --repair` sends them again).
    #[arg(long)]
    pub verify: bool,
}

#[derive(Serialize)]
struct HostResult {
    host: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<HostStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// With `--verify`: what the re-hash found.
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<ferry_store::VerifyReport>,
}

/// Asks every selected host what it runs and prints it.
pub fn run(global: &GlobalArgs, args: StatusArgs) -> CommandResult {
    let site = crate::cli::site::load_site(&args.target.site)?;
    let hosts = args.target.select(&site)?;
    let store = global.open_store()?;
    let reach = args.hosts.reach(global, &site, false)?;
    let verify = args.verify;
    let answers = crate::deploy::hosts::ask_each_host(&store, &hosts, &reach, |s| {
        let status = s.status()?;
        let report = verify.then(|| s.verify(false)).transpose()?;
        Ok((status, report))
    })
    .map_err(crate::cli::error::store_error)?;
    let results: Vec<HostResult> = hosts
        .iter()
        .zip(answers)
        .map(|(host, answer)| match answer {
            Ok((status, verify)) => HostResult {
                host: host.name.clone(),
                reachable: true,
                status: Some(status),
                error: None,
                verify,
            },
            Err(error) => HostResult {
                host: host.name.clone(),
                reachable: false,
                status: None,
                error: Some(error),
                verify: None,
            },
        })
        .collect();
    if args.json {
        output::json(&results);
    } else {
        for result in &results {
            print_host(result);
        }
    }
    let unreachable: Vec<String> = results
        .iter()
        .filter(|r| !r.reachable)
        .map(|r| format!("{}: {}", r.host, r.error.as_deref().unwrap_or("no answer")))
        .collect();
    let drifted: Vec<String> = results
        .iter()
        .filter_map(|r| Some((r, r.verify.as_ref()?)))
        .filter(|(_, v)| !v.is_clean())
        .map(|(r, v)| {
            format!(
                "{}: {} of {} paths modified or missing",
                r.host,
                v.corrupt.len(),
                v.checked
            )
        })
        .collect();
    if !drifted.is_empty() {
        return Err(crate::cli::error::CommandError::failure(miette::miette!(
            help = "`ferry deploy SITE --repair --on HOST` sends them again and restarts the host's services",
            "{} of {} hosts drifted from their active closure:\n{}",
            drifted.len(),
            results.len(),
            drifted.iter().chain(&unreachable).cloned().collect::<Vec<_>>().join("\n")
        )));
    }
    // The reasons go to stderr too: stdout may be a pipe or a file.
    unless_hosts_failed(unreachable.len(), |n| {
        format!(
            "{n} of {} hosts could not be asked:\n{}",
            results.len(),
            unreachable.join("\n")
        )
    })
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
    if status.activation_in_progress {
        output::line("  an activation is running now; ask again when it ends");
    }
    if let Some(pending) = &status.pending_confirmation {
        let now_ms = ferry_store::durable::unix_now_ms();
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
    if let Some(report) = &result.verify {
        if report.is_clean() {
            output::line(format!(
                "  verified: {} paths, none modified or missing",
                report.checked
            ));
        }
        for broken in &report.corrupt {
            output::line(format!("  drift: {}: {}", broken.path, broken.problem));
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

//! CLI glue shared by `ferry deploy` and `ferry rollback`: confirm with the
//! operator, run the deploy with live progress or JSON events, print the
//! summary, and turn the outcome into the exit code.
use std::io::IsTerminal;

use ferry_lang::inventory::HostEntry;
use ferry_rollout::{Batch, Pause};

use crate::activate::engine::Outcome;
use crate::deploy::execute::{deploy, on_each_host, DeployRequest, Reach};
use crate::deploy::report::summary;
use crate::deploy::run::{Pauser, RolloutObserver};
use crate::output::{self, CommandError, Exit};
use crate::progress::{DeployProgress, JsonEvents};
use crate::site_build::BuiltSite;
use crate::transport::bootstrap::AgentBinary;
use crate::transport::copy::{copy_closure, AgentSource, CopyOptions};
use crate::transport::session::{HostSession, SessionError, SessionOptions};

/// Whether the operator can be asked questions.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question on stderr.
fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Pauses between batches as the policy says.
struct CliPauser {
    yes: bool,
}

impl Pauser for CliPauser {
    fn pause(&self, pause: &Pause, next: &Batch) -> bool {
        match pause {
            Pause::None => true,
            Pause::Duration(duration) => {
                std::thread::sleep(*duration);
                true
            }
            // Without a terminal nobody can answer: stop rather than guess.
            Pause::Confirm => {
                self.yes
                    || (interactive() && ask(&format!("continue with {}?", next.hosts.join(", "))))
            }
        }
    }
}

/// Runs a deploy request end to end and returns its exit code.
pub fn run_request(
    request: &DeployRequest<'_>,
    yes: bool,
    json: bool,
) -> Result<Exit, CommandError> {
    if !json && !request.dry_run && !yes && interactive() {
        let hosts: Vec<&str> = request.hosts.iter().map(|h| h.name.as_str()).collect();
        if !ask(&format!(
            "{} `{}` on {}?",
            request.command,
            request.site.name,
            hosts.join(", ")
        )) {
            return Err(CommandError::failure(miette::miette!(
                "cancelled; nothing was touched"
            )));
        }
    }
    let progress = DeployProgress::new(!json && crate::progress::enabled(json));
    let observer: &dyn RolloutObserver = if json { &JsonEvents } else { &progress };
    let report = deploy(request, &CliPauser { yes }, observer);
    progress.finish();
    let report = report.map_err(|e| {
        if e.is_bad_input() {
            CommandError::input(miette::Report::new(e))
        } else {
            CommandError::failure(miette::Report::new(e))
        }
    })?;
    if json {
        output::json_line(&serde_json::json!({"event": "done", "report": report}));
    } else {
        if request.dry_run {
            output::text(&report.plan.to_string());
        }
        output::text(&summary(&report));
    }
    Ok(match report.exit_code() {
        0 => Exit::Success,
        3 => Exit::RolledBack,
        _ => Exit::Failure,
    })
}

/// `ferry deploy --copy-only`: every selected host gets its class's closure.
pub fn copy_only(
    built: &BuiltSite,
    hosts: &[&HostEntry],
    reach: &Reach,
    json: bool,
) -> Result<Exit, CommandError> {
    let binary = AgentBinary::this_ferry(&built.store).map_err(crate::store_cli::error)?;
    let options = CopyOptions {
        ssh: reach.ssh.clone(),
        max_parallel: reach.max_parallel,
        agent: reach.agent.clone(),
        progress: reach.progress,
    };
    let mut all_ok = true;
    for (class, system) in &built.result.systems {
        let class_hosts: Vec<HostEntry> = hosts
            .iter()
            .filter(|h| &h.class == class)
            .map(|h| (*h).clone())
            .collect();
        if class_hosts.is_empty() {
            continue;
        }
        let report = copy_closure(
            &built.store,
            AgentSource::Ready(&binary),
            &class_hosts,
            std::slice::from_ref(system),
            &options,
        )
        .map_err(|e| {
            CommandError::failure(miette::miette!("{}", crate::transport::error_chain(&e)))
        })?;
        for host in report.hosts {
            match &host.result {
                Ok(stats) if json => output::json_line(
                    &serde_json::json!({"host": host.host, "class": class, "system": system, "ok": true, "stats": stats}),
                ),
                Ok(stats) => output::line(format!(
                    "{:<16} {class:<10} {} objects sent, {} ({} already there)",
                    host.host,
                    stats.objects_sent,
                    crate::closure::human_size(stats.bytes_sent),
                    stats.closure_paths - stats.objects_sent
                )),
                Err(e) => {
                    all_ok = false;
                    let reason = crate::transport::error_chain(e);
                    if json {
                        output::json_line(
                            &serde_json::json!({"host": host.host, "class": class, "ok": false, "error": reason}),
                        );
                    } else {
                        output::line(format!("{:<16} {class:<10} failed: {reason}", host.host));
                    }
                }
            }
        }
    }
    Ok(if all_ok { Exit::Success } else { Exit::Failure })
}

/// Opens a session to each host (bootstrapping this ferry as the agent where
/// needed), runs `f`, closes it; answers in host order, errors as text.
pub fn ask_each_host<T: Send>(
    store: &ferry_store::Store,
    hosts: &[&HostEntry],
    reach: &Reach,
    f: impl Fn(&mut HostSession) -> Result<T, SessionError> + Sync,
) -> Result<Vec<Result<T, String>>, CommandError> {
    let binary = AgentBinary::this_ferry(store).map_err(crate::store_cli::error)?;
    let options = SessionOptions {
        ssh: reach.ssh.clone(),
        agent: reach.agent.clone(),
    };
    Ok(on_each_host(
        store,
        &binary,
        &options,
        hosts,
        reach.max_parallel,
        f,
    ))
}

/// `ferry rollback --on SEL --host-generation G`: each host back to its own
/// generation G, in parallel, without a policy (an operator's direct order).
pub fn host_rollback(
    store: &ferry_store::Store,
    hosts: &[&HostEntry],
    reach: &Reach,
    generation: u64,
    json: bool,
) -> Result<Exit, CommandError> {
    let results = ask_each_host(store, hosts, reach, |session| {
        session.rollback_to(generation)
    })?;
    let mut worst = Exit::Success;
    for (host, result) in hosts.iter().zip(results) {
        let (ok, text) = match &result {
            Ok(report) => match &report.outcome {
                Outcome::Activated { generation } => {
                    (Exit::Success, format!("now on generation {generation}"))
                }
                Outcome::RolledBack { reason, .. } => (
                    Exit::RolledBack,
                    format!("could not switch, stayed: {reason}"),
                ),
            },
            Err(reason) => (Exit::Failure, format!("failed: {reason}")),
        };
        if ok != Exit::Success && worst != Exit::Failure {
            worst = ok;
        }
        if json {
            output::json_line(
                &serde_json::json!({"host": host.name, "ok": ok == Exit::Success, "result": text}),
            );
        } else {
            output::line(format!("{:<16} {text}", host.name));
        }
    }
    Ok(worst)
}

/// `2026-11-24 04:12:09 UTC` for seconds since the epoch (no time zone database needed).
pub fn date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `ferry generations SITE --on SEL`: each host's own generations.
pub fn host_generations(
    store: &ferry_store::Store,
    hosts: &[&HostEntry],
    reach: &Reach,
    json: bool,
) -> Result<Exit, CommandError> {
    let results = ask_each_host(store, hosts, reach, |session| session.generations())?;
    let mut exit = Exit::Success;
    for (host, result) in hosts.iter().zip(results) {
        match result {
            Ok(list) if json => {
                output::json_line(&serde_json::json!({"host": host.name, "generations": list}))
            }
            Ok(list) => {
                output::line(format!("{}:", host.name));
                for g in list {
                    let mark = if g.current { "(current)" } else { "" };
                    output::line(format!(
                        "  {:>4}  {}  {} {mark}",
                        g.number,
                        date(g.created),
                        g.system
                    ));
                }
            }
            Err(reason) => {
                exit = Exit::Failure;
                output::line(format!("{}: unreachable: {reason}", host.name));
            }
        }
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(super::date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::date(1_795_492_367), "2026-11-24 03:52:47 UTC");
    }
}

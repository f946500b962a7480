//! Host-session glue of `ferry deploy --copy-only`, `rollback --host-generation`,
//! `generations --on` and `status`: open a session to each host, act, print.
//! Kept verbatim here for the move of these functions into `deploy/`.
use ferry_lang::inventory::HostEntry;

use crate::activate::engine::Outcome;
use crate::cli::error::{CommandError, Exit};
use crate::cli::output::{self, date};
use crate::cli::site::BuiltSite;
use crate::deploy::execute::{on_each_host, Reach};
use crate::transport::bootstrap::AgentBinary;
use crate::transport::copy::{copy_closure, AgentSource, CopyOptions};
use crate::transport::session::{HostSession, SessionError, SessionOptions};

/// `ferry deploy --copy-only`: every selected host gets its class's closure.
pub fn copy_only(
    built: &BuiltSite,
    hosts: &[&HostEntry],
    reach: &Reach,
    json: bool,
) -> Result<Exit, CommandError> {
    let binary = AgentBinary::this_ferry(&built.store).map_err(crate::cli::error::store_error)?;
    let options = CopyOptions {
        ssh: reach.ssh.clone(),
        max_parallel: reach.max_parallel,
        agent: reach.agent.clone(),
        progress: reach.progress.clone(),
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
    let binary = AgentBinary::this_ferry(store).map_err(crate::cli::error::store_error)?;
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

//! `ferry copy`: copy the closure of store paths to hosts (the copy protocol on its own).
use ferry_lang::inventory::HostEntry;
use ferry_store::Store;
use serde::Serialize;

use crate::cli::args::{agent_settings, copy_progress, help_overrides, HostArgs};
use crate::cli::error::{unless_hosts_failed, CommandError};
use crate::cli::{output, progress};
use crate::cli::{CommandResult, GlobalArgs};
use crate::transport::copy::AgentSource;
use crate::transport::{copy_closure, CopyOptions};

/// Arguments of `ferry copy`: the shared host arguments, with help that
/// speaks of copying only (there is no site, so no lab default).
#[derive(Debug, clap::Args)]
#[command(mut_args(help_overrides(&[
    ("ssh_config", "An ssh config file to use instead of ssh's defaults (`ssh -F`)"),
    ("ssh_options", "An extra ssh option, as for `ssh -o` (repeatable)"),
    ("max_parallel", "How many hosts to copy to at once"),
])))]
pub struct CopyArgs {
    /// Hosts to copy to, as `[USER@]HOST` (`localhost` uses no SSH);
    /// comma-separated or repeated (`--to web1,web2` or `--to web1 --to web2`).
    #[arg(
        long = "to",
        required = true,
        value_delimiter = ',',
        value_name = "[USER@]HOST"
    )]
    pub to: Vec<String>,
    /// How to reach the hosts.
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Print the result as JSON (and no progress).
    #[arg(long)]
    pub json: bool,
    /// Store paths whose closures to copy.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Serialize)]
struct HostResult {
    host: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(flatten)]
    stats: Option<crate::transport::copy::HostCopyStats>,
    seconds: f64,
}

fn host_entry(target: &str) -> HostEntry {
    let (user, address) = match target.rsplit_once('@') {
        Some((user, address)) => (Some(user.to_string()), address.to_string()),
        None => (None, target.to_string()),
    };
    HostEntry {
        name: target.to_string(),
        class: String::new(),
        address,
        user,
        port: None,
        labels: Default::default(),
        identity_file: None,
    }
}

/// Copies the closure of the given paths to every `--to` host.
pub fn run(global: &GlobalArgs, args: CopyArgs) -> CommandResult {
    let store = Store::open(&global.store_dir, &global.state_dir)
        .map_err(|e| CommandError::failure(store_report(&e)))?;
    let roots = args
        .paths
        .iter()
        .map(|text| store.parse_path(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CommandError::input(store_report(&e)))?;
    // One query for all roots: a closure of 10,000 paths is a common argument list.
    if let Some(path) = store.missing(&roots).first() {
        return Err(CommandError::input(miette::miette!(
            help = "add it first (`ferry store add`) or build it",
            "{path} is not a valid path of the store {}",
            global.store_dir.display()
        )));
    }
    let options = CopyOptions {
        ssh: args.hosts.ssh(),
        max_parallel: usize::from(args.hosts.max_parallel),
        agent: agent_settings(global),
        progress: copy_progress(progress::enabled(args.json)),
    };
    let hosts: Vec<HostEntry> = args.to.iter().map(|t| host_entry(t)).collect();
    let report = copy_closure(&store, AgentSource::ThisFerry, &hosts, &roots, &options)
        .map_err(|e| CommandError::failure(crate::cli::error::report(&e, e.hint())))?;
    let results: Vec<HostResult> = report
        .hosts
        .iter()
        .map(|h| HostResult {
            host: h.host.clone(),
            ok: h.result.is_ok(),
            error: h.result.as_ref().err().map(|e| {
                let text = crate::transport::error_chain(e);
                match e.hint() {
                    Some(hint) => format!("{text}\n  hint: {hint}"),
                    None => text,
                }
            }),
            stats: h.result.as_ref().ok().cloned(),
            seconds: h.elapsed.as_secs_f64(),
        })
        .collect();
    if args.json {
        output::json(&results);
    } else {
        for r in &results {
            match (&r.stats, &r.error) {
                (Some(s), _) => {
                    let ms = &s.milliseconds;
                    output::line(format!(
                        "{}: {} of {} paths sent, {} bytes, {} round trips, {:.2} s \
                         (connect {} ms, prepare {} ms, agent {} ms, query {} ms, stream {} ms, \
                         finish {} ms)",
                        r.host,
                        s.objects_sent,
                        s.closure_paths,
                        s.bytes_sent,
                        s.exchanges,
                        r.seconds,
                        ms.connect,
                        ms.prepare,
                        ms.agent,
                        ms.query,
                        ms.stream,
                        ms.finish
                    ))
                }
                (None, Some(e)) => output::line(format!("{}: failed: {e}", r.host)),
                (None, None) => {}
            }
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    unless_hosts_failed(failed, |n| {
        format!("the copy failed on {n} of {} hosts", results.len())
    })
}

fn store_report(e: &ferry_store::StoreError) -> miette::Report {
    crate::cli::error::report(e, e.hint().map(str::to_string))
}

//! `ferry copy`: copy the closure of store paths to hosts (the copy protocol on its own).
use std::io::IsTerminal;
use std::path::PathBuf;

use ferry_lang::inventory::HostEntry;
use ferry_store::Store;
use serde::Serialize;

use crate::cli::{CommandResult, GlobalArgs};
use crate::output::{self, CommandError, Exit};
use crate::transport::bootstrap::AgentSettings;
use crate::transport::copy::AgentSource;
use crate::transport::ssh::SshSettings;
use crate::transport::{copy_closure, CopyOptions};

#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// Hosts to copy to, as `[USER@]HOST` (`localhost` uses no SSH).
    #[arg(long = "to", required = true, num_args = 1.., value_name = "[USER@]HOST")]
    pub to: Vec<String>,
    /// An ssh config file to use instead of ssh's defaults (`ssh -F`).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// An extra ssh option, as for `ssh -o` (repeatable).
    #[arg(long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// How many hosts to copy to at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
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
    }
}

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
        ssh: SshSettings {
            config_file: args.ssh_config.clone(),
            options: args.ssh_options.clone(),
        },
        max_parallel: usize::from(args.max_parallel),
        agent: AgentSettings {
            store_dir: global.store_dir.clone(),
            state_dir: global.state_dir.clone(),
        },
        progress: !args.json && std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
    };
    let hosts: Vec<HostEntry> = args.to.iter().map(|t| host_entry(t)).collect();
    let report = copy_closure(&store, AgentSource::ThisFerry, &hosts, &roots, &options)
        .map_err(|e| CommandError::failure(super::report(&e, e.hint())))?;
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
    if failed == 0 {
        Ok(Exit::Success)
    } else {
        Err(CommandError::failure(miette::miette!(
            "the copy failed on {failed} of {} hosts",
            results.len()
        )))
    }
}

fn store_report(e: &ferry_store::StoreError) -> miette::Report {
    super::report(e, e.hint().map(str::to_string))
}

//! `ferry generations SITE [--on SEL]`: the site's generations on this
//! deployer, or with `--on` each selected host's own generations.
use crate::cli::args::{help_overrides, HostArgs, TargetArgs};
use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::hosts::{ask_each_host, Reach};
use crate::deploy::site_generation::SiteGenerations;
use ferry_lang::inventory::HostEntry;

/// Arguments of `ferry generations`.
#[derive(Debug, clap::Args)]
#[command(mut_args(help_overrides(&[(
    "on",
    "Ask these hosts for their own generations instead"
)])))]
pub struct GenerationsArgs {
    /// The site and, with `--on`, the hosts to ask.
    #[command(flatten)]
    pub target: TargetArgs,
    // No doc line: it would become `--json`'s help, which is empty today.
    #[allow(missing_docs)]
    #[arg(long)]
    pub json: bool,
    /// How to reach the hosts.
    #[command(flatten)]
    pub hosts: HostArgs,
}

/// Lists the site's generations, or with `--on` the hosts' own.
pub fn run(global: &GlobalArgs, args: GenerationsArgs) -> CommandResult {
    let site = crate::cli::site::load_site(&args.target.site)?;
    if args.target.on.is_none() {
        let generations = SiteGenerations::new(&global.state_dir, &site.name)
            .list()
            .map_err(CommandError::failure)?;
        if args.json {
            output::json(&generations);
        } else if generations.is_empty() {
            output::line(format!("site `{}` has no generations yet", site.name));
        } else {
            for g in &generations {
                let state = if g.complete { "complete" } else { "partial" };
                output::line(format!(
                    "{:>4}  {}  {:<16} {state}",
                    g.number,
                    crate::cli::output::date(g.created),
                    g.command
                ));
                for (host, record) in &g.hosts {
                    let generation = record
                        .host_generation
                        .map(|n| format!("gen {n}"))
                        .unwrap_or_default();
                    output::line(format!(
                        "        {host:<16} {:<12} {generation:<8} {}",
                        format!("{:?}", record.outcome).to_lowercase(),
                        record.system
                    ));
                }
            }
        }
        return Ok(Exit::Success);
    }
    let hosts = args.target.select(&site)?;
    let store = global.open_store()?;
    let reach = args.hosts.reach(global, &site, false)?;
    host_generations(&store, &hosts, &reach, args.json)
}

/// `ferry generations SITE --on SEL`: each host's own generations.
fn host_generations(
    store: &ferry_store::Store,
    hosts: &[&HostEntry],
    reach: &Reach,
    json: bool,
) -> Result<Exit, CommandError> {
    let results = ask_each_host(store, hosts, reach, |session| session.generations())
        .map_err(crate::cli::error::store_error)?;
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
                        output::date(g.created),
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

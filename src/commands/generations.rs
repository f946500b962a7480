//! `ferry generations SITE [--on SEL]`: the site's generations on this
//! deployer, or with `--on` each selected host's own generations.
use std::path::PathBuf;

use ferry_lang::inventory::HostEntry;

use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::hosts::{ask_each_host, Reach};
use crate::deploy::selector::select_on;
use crate::deploy::site_generation::SiteGenerations;
use crate::host_args::{self, HostArgs};
use crate::output::{self, CommandError, Exit};

#[derive(Debug, clap::Args)]
pub struct GenerationsArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// Ask these hosts for their own generations instead.
    #[arg(long, value_name = "SELECTOR")]
    pub on: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hosts: HostArgs,
}

pub fn run(global: &GlobalArgs, args: GenerationsArgs) -> CommandResult {
    let site = crate::site::load_site(&args.site)?;
    let Some(on) = args.on.as_deref() else {
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
                    crate::deploy_cli::date(g.created),
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
    };
    let hosts = select_on(site.hosts(), Some(on)).map_err(CommandError::input)?;
    let store = crate::store_cli::open(global)?;
    let reach = host_args::reach(global, &site, &args.hosts, false);
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
        .map_err(crate::store_cli::error)?;
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
                        crate::deploy_cli::date(g.created),
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

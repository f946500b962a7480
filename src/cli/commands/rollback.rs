//! `ferry rollback SITE [--to N] [--on SEL]`: every (selected) host back to the
//! system it had in site generation N, under the site's rollout policy, with
//! no rebuild; or, with `--host-generation G`, each selected host back to its
//! own generation G.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ferry_lang::inventory::HostEntry;

use crate::activate::engine::Outcome;
use crate::build::system::ServiceSelection;
use crate::cli::args::RolloutArgs;
use crate::cli::error::CommandError;
use crate::cli::error::Exit;
use crate::cli::output;
use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::execute::DeployRequest;
use crate::deploy::hosts::{ask_each_host, Reach};
use crate::deploy::selector::select_on;
use crate::deploy::site_generation::{HostOutcome, HostRecord, SiteGenerations};

/// Arguments of `ferry rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// The site generation to go back to (see `ferry generations SITE`); default: the one before the latest.
    #[arg(long, value_name = "SITE_GEN", conflicts_with = "host_generation")]
    pub to: Option<u64>,
    /// Host-level: each selected host back to its own generation G (see `ferry generations SITE --on …`).
    #[arg(long, value_name = "G", requires = "on")]
    pub host_generation: Option<u64>,
    /// Only these hosts.
    #[arg(long, value_name = "SELECTOR")]
    pub on: Option<String>,
    /// How the rollout runs.
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// Rolls the selected hosts back, site-wide or host by host.
pub fn run(global: &GlobalArgs, args: RollbackArgs) -> CommandResult {
    let site = crate::cli::site::load_site(&args.site)?;
    let hosts = select_on(site.hosts(), args.on.as_deref()).map_err(CommandError::input)?;
    let visible = crate::cli::progress::enabled(args.rollout.json);
    let reach = args.rollout.hosts.reach(global, &site, visible)?;
    let store = global.open_store()?;
    let generations = SiteGenerations::new(&global.state_dir, &site.name);
    if let Some(generation) = args.host_generation {
        let asked = HostRollback {
            store: &store,
            hosts: &hosts,
            reach: &reach,
            generations: &generations,
        };
        return host_rollback(&asked, generation, args.rollout.json);
    }

    let numbers = generations.numbers().map_err(CommandError::failure)?;
    let to = match args.to {
        Some(n) => n,
        None => match numbers.len() {
            0 | 1 => {
                return Err(CommandError::input(miette::miette!(
                    help = "`ferry generations SITE` lists them",
                    "site `{}` has {} site generation(s); there is no earlier one to go back to",
                    site.name,
                    numbers.len()
                )))
            }
            n => numbers[n - 2],
        },
    };
    let record = generations.get(to).map_err(CommandError::input)?;
    let mut targets = BTreeMap::new();
    for host in &hosts {
        let Some(entry) = record.hosts.get(&host.name) else {
            continue;
        };
        let path = store.parse_path(&entry.system)?;
        if !store.is_valid(&path) {
            return Err(CommandError::failure(miette::miette!(
                "the system {path} of host `{}` in site generation {to} is no longer in this deployer's store",
                host.name
            )));
        }
        targets.insert(host.name.clone(), path);
    }
    let request = DeployRequest {
        store: &store,
        site: &site,
        site_dir: crate::cli::site::site_dir(&args.site),
        hosts,
        targets,
        selection: ServiceSelection::default(),
        command: format!("rollback to {to}"),
        reach,
        confirm_within: Duration::from_secs(args.rollout.confirm_timeout),
        repair: false,
        dry_run: false,
        diff: false,
    };
    super::deploy::run_request(&request, args.rollout.yes, args.rollout.json)
}

/// A host's generation numbers in words: `generations 1, 2, 3 (current 3)`,
/// the last ten of a long list.
fn existing_generations(list: &[crate::transport::codec::GenerationInfo]) -> String {
    const SHOWN: usize = 10;
    if list.is_empty() {
        return "no generations".into();
    }
    let mut numbers: Vec<u64> = list.iter().map(|g| g.number).collect();
    numbers.sort_unstable();
    let skipped = numbers.len().saturating_sub(SHOWN);
    let shown: Vec<String> = numbers[skipped..].iter().map(u64::to_string).collect();
    let earlier = if skipped > 0 {
        format!("{skipped} earlier, then ")
    } else {
        String::new()
    };
    let current = match list.iter().find(|g| g.current) {
        Some(g) => format!(" (current {})", g.number),
        None => String::new(),
    };
    format!("generations {earlier}{}{current}", shown.join(", "))
}

/// The hosts of a host-level rollback, how to reach them, and where it is recorded.
struct HostRollback<'a> {
    store: &'a ferry_store::Store,
    hosts: &'a [&'a HostEntry],
    reach: &'a Reach,
    generations: &'a SiteGenerations,
}

/// `ferry rollback --on SEL --host-generation G`: each host back to its own
/// generation G, in parallel, without a policy (an operator's direct order),
/// recorded as a site generation so that `ferry plan --offline` stays true.
fn host_rollback(
    asked: &HostRollback<'_>,
    generation: u64,
    json: bool,
) -> Result<Exit, CommandError> {
    let HostRollback {
        store,
        hosts,
        reach,
        generations,
    } = *asked;
    // An operator's direct order runs on every selected host or none: a
    // generation one of them lacks is refused before any host switches.
    let listed = ask_each_host(store, hosts, reach, |session| session.generations())
        .map_err(crate::cli::error::store_error)?;
    let lacking: Vec<String> = hosts
        .iter()
        .zip(&listed)
        .filter_map(|(host, list)| match list {
            Ok(list) if !list.iter().any(|g| g.number == generation) => Some(format!(
                "`{}` has {}",
                host.name,
                existing_generations(list)
            )),
            // An unreachable host is reported by the rollback below.
            _ => None,
        })
        .collect();
    if !lacking.is_empty() {
        return Err(CommandError::input(miette::miette!(
            help = "`ferry generations SITE --on HOST` lists each host's generations with their dates",
            "no host switched: generation {generation} does not exist on {} of the {} selected host(s); {}",
            lacking.len(),
            hosts.len(),
            lacking.join("; ")
        )));
    }
    let results = ask_each_host(store, hosts, reach, |session| {
        session.rollback_to(generation)
    })
    .map_err(crate::cli::error::store_error)?;
    let mut worst = Exit::Success;
    let mut switched = BTreeMap::new();
    for ((host, result), list) in hosts.iter().zip(results).zip(&listed) {
        if let (Ok(report), Ok(list)) = (&result, list) {
            if let (Outcome::Activated { generation }, None) =
                (&report.outcome, report.unwell_after_rollback())
            {
                if let Some(info) = list.iter().find(|g| g.number == *generation) {
                    switched.insert(
                        host.name.clone(),
                        HostRecord {
                            class: host.class.clone(),
                            system: info.system.clone(),
                            host_generation: Some(*generation),
                            outcome: HostOutcome::Activated,
                        },
                    );
                }
            }
        }
        let (ok, text) = match &result {
            Ok(report) => match (&report.outcome, report.unwell_after_rollback()) {
                (_, Some(unwell)) => (Exit::Failure, format!("failed: {unwell}")),
                (Outcome::Activated { generation }, None) => {
                    (Exit::Success, format!("now on generation {generation}"))
                }
                (Outcome::RolledBack { reason, .. }, None) => (
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
    if !switched.is_empty() {
        let command = format!("rollback --host-generation {generation}");
        let recorded = generations
            .record_host_switches(&command, switched, ferry_store::durable::unix_now_secs())
            .map_err(CommandError::failure)?;
        if !json {
            output::line(format!("recorded site generation {}", recorded.number));
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::existing_generations;
    use crate::transport::codec::GenerationInfo;

    fn generations(numbers: std::ops::RangeInclusive<u64>, current: u64) -> Vec<GenerationInfo> {
        numbers
            .map(|number| GenerationInfo {
                number,
                created: 0,
                system: String::new(),
                current: number == current,
            })
            .collect()
    }

    #[test]
    fn a_missing_host_generation_is_refused_with_the_ones_that_exist() {
        assert_eq!(
            existing_generations(&generations(1..=3, 2)),
            "generations 1, 2, 3 (current 2)"
        );
        assert_eq!(
            existing_generations(&generations(1..=34, 34)),
            "generations 24 earlier, then 25, 26, 27, 28, 29, 30, 31, 32, 33, 34 (current 34)"
        );
        assert_eq!(existing_generations(&[]), "no generations");
    }
}

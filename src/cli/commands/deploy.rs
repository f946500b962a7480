//! `ferry deploy SITE`: build, copy and activate under the site's rollout policy.
//! Also runs site-wide rollbacks ([`run_request`]): confirm with the operator,
//! run with live progress or JSON events, print the summary.
use std::collections::BTreeSet;
use std::time::Duration;

use crate::build::system::ServiceSelection;
use crate::cli::args::{BuildArgs, RolloutArgs, TargetArgs};
use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::progress::{self, DeployProgress, JsonEvents};
use crate::cli::prompt::{ask, interactive, CliPauser};
use crate::cli::site;
use crate::cli::site::BuiltSite;
use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::execute::{deploy, DeployRequest};
use crate::deploy::hosts::{copy_each_class, Reach};
use crate::deploy::plan::{class_targets, DeployPlan};
use crate::deploy::report::summary;
use crate::deploy::run::RolloutObserver;
use crate::transport::bootstrap::AgentBinary;
use ferry_lang::inventory::HostEntry;

/// Arguments of `ferry deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The site and its hosts.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Upgrade only this service (repeatable); the others keep running their current definition.
    #[arg(long = "only", value_name = "SERVICE")]
    pub only: Vec<String>,
    /// Leave this service as it is (repeatable).
    #[arg(long = "skip", value_name = "SERVICE")]
    pub skip: Vec<String>,
    /// Plan only: show what would happen, copy and activate nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With the plan (the dry run's, or the one shown before asking): a
    /// unified diff of every text file and service definition that changes,
    /// per class, and package versions.
    #[arg(long)]
    pub diff: bool,
    /// Re-hash each host's active closure first: what was modified or
    /// deleted is sent again, and the host's services restart over it.
    #[arg(long)]
    pub repair: bool,
    /// Build and copy the closures, activate nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub copy_only: bool,
    /// How the rollout runs.
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// How to build.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Builds the site and deploys it to the selected hosts.
pub fn run(global: &GlobalArgs, args: DeployArgs) -> CommandResult {
    let json = args.rollout.json;
    let built = site::load_and_build(global, &args.target.site, &args.build, json)?;
    let hosts = args.target.select(&built.site)?;
    let visible = progress::enabled(json);
    let reach = args.rollout.hosts.reach(global, &built.site, visible)?;
    if args.copy_only {
        return copy_only(&built, &hosts, &reach, json);
    }
    let selection = ServiceSelection {
        only: args.only.clone(),
        skip: args.skip.clone(),
    };
    check_services(&built.site, &selection)?;
    let request = DeployRequest {
        store: &built.store,
        site: &built.site,
        site_dir: site::site_dir(&args.target.site),
        targets: class_targets(&hosts, &built.result.systems),
        hosts,
        selection,
        command: "deploy".to_string(),
        reach,
        confirm_within: Duration::from_secs(args.rollout.confirm_timeout),
        dry_run: args.dry_run,
        repair: args.repair,
        diff: args.diff,
    };
    run_request(&request, args.rollout.yes, json)
}

/// Runs a deploy request (a deploy or a site rollback) end to end and returns its exit code.
pub fn run_request(request: &DeployRequest<'_>, yes: bool, json: bool) -> CommandResult {
    let pauses_to_ask = request.site.rollout.pause == ferry_lang::model::Pause::Confirm;
    if pauses_to_ask && !request.dry_run && !yes && !interactive() {
        // Going ahead would switch the canary and then stop at the first
        // pause nobody can answer: refuse before any host is touched.
        return Err(CommandError::input(miette::miette!(
            help = "pass --yes to answer every pause with yes, or run it from a terminal to answer each",
            "the rollout policy pauses for confirmation between batches (`pause = confirm`), but there is no terminal to ask; no host was touched"
        )));
    }
    let progress = DeployProgress::new(!json && progress::enabled(json));
    let observer: &dyn RolloutObserver = if json { &JsonEvents } else { &progress };
    let ask_first = !json && !request.dry_run && !yes && interactive();
    // The question comes after the plan, and names only the hosts it changes.
    let approve = |plan: &DeployPlan| {
        let unreachable: BTreeSet<&str> = plan
            .hosts
            .iter()
            .filter(|h| h.unreachable.is_some())
            .map(|h| h.name.as_str())
            .collect();
        let changing: Vec<String> = plan
            .schedule
            .hosts()
            .map(|h| {
                if unreachable.contains(h.as_str()) {
                    format!("{h} (unreachable)")
                } else {
                    h.clone()
                }
            })
            .collect();
        !ask_first
            || changing.is_empty()
            || progress.suspend(|| {
                output::text(&plan.to_string());
                ask(&format!(
                    "{} `{}` on {}?",
                    request.command,
                    request.site.name,
                    changing.join(", ")
                ))
            })
    };
    let pauser = CliPauser {
        yes,
        progress: &progress,
    };
    let report = deploy(request, &pauser, observer, &approve);
    progress.finish();
    let report = report?;
    if json {
        output::event(serde_json::json!({"event": "done", "report": report}));
    } else {
        if request.dry_run {
            output::text(&report.plan.to_string());
        }
        output::text(&summary(&report));
    }
    // Unreachable hosts are failures: their reasons reach stderr as well as
    // the summary, whatever stdout is.
    for (host, reason) in &report.unreachable {
        output::problem(format!("{host}: unreachable: {reason}"));
    }
    Ok(Exit::of_deploy(report.exit_code()))
}

/// `--only`/`--skip` must name services of the site.
fn check_services(
    site: &ferry_lang::Site,
    selection: &ServiceSelection,
) -> Result<(), CommandError> {
    let known: std::collections::BTreeSet<&String> = site
        .classes
        .values()
        .flat_map(|c| c.services.keys())
        .collect();
    for name in selection.only.iter().chain(&selection.skip) {
        if !known.contains(name) {
            return Err(CommandError::input(miette::miette!(
                help = format!(
                    "the site's services: {}",
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "no service is named `{name}`"
            )));
        }
    }
    Ok(())
}

/// `ferry deploy --copy-only`: every selected host gets its class's closure.
fn copy_only(
    built: &BuiltSite,
    hosts: &[&HostEntry],
    reach: &Reach,
    json: bool,
) -> Result<Exit, CommandError> {
    let binary = AgentBinary::this_ferry(&built.store).map_err(crate::cli::error::store_error)?;
    let mut all_ok = true;
    copy_each_class(
        &built.store,
        &binary,
        &built.result.systems,
        hosts,
        reach,
        |class, system, report| {
            for host in report.hosts {
                match &host.result {
                    Ok(stats) if json => output::json_line(
                        &serde_json::json!({"host": host.host, "class": class, "system": system, "ok": true, "stats": stats}),
                    ),
                    Ok(stats) => output::line(format!(
                        "{:<16} {class:<10} {}",
                        host.host,
                        progress::copy_summary(stats)
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
        },
    )
    .map_err(|e| CommandError::failure(miette::miette!("{}", crate::transport::error_chain(&e))))?;
    Ok(if all_ok { Exit::Success } else { Exit::Failure })
}

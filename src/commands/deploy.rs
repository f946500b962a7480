//! `ferry deploy SITE`: build, copy and activate under the site's rollout policy.
use std::path::PathBuf;
use std::time::Duration;

use ferry_lang::inventory::HostEntry;

use crate::build::system::ServiceSelection;
use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::execute::DeployRequest;
use crate::deploy::hosts::{copy_each_class, Reach};
use crate::deploy::plan::class_targets;
use crate::deploy::selector::select_on;
use crate::host_args::{self, HostArgs};
use crate::output::{self, CommandError, Exit};
use crate::site_build::{self, BuildArgs, BuiltSite};
use crate::transport::bootstrap::AgentBinary;

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// Only these hosts: names, classes, `class=C`, `host=H` or labels `KEY=VALUE`, comma-separated.
    #[arg(long, value_name = "SELECTOR")]
    pub on: Option<String>,
    /// Upgrade only this service (repeatable); the others keep running their current definition.
    #[arg(long = "only", value_name = "SERVICE")]
    pub only: Vec<String>,
    /// Leave this service as it is (repeatable).
    #[arg(long = "skip", value_name = "SERVICE")]
    pub skip: Vec<String>,
    /// Plan only: show what would happen, copy and activate nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Build and copy the closures, activate nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub copy_only: bool,
    /// Don't ask before deploying or between batches (`pause = confirm`).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// A JSON event stream on stdout instead of progress lines and a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds a host waits for the deployer's confirmation before it rolls itself back.
    #[arg(long, default_value_t = 30)]
    pub confirm_timeout: u64,
    #[command(flatten)]
    pub hosts: HostArgs,
    #[command(flatten)]
    pub build: BuildArgs,
}

pub fn run(global: &GlobalArgs, args: DeployArgs) -> CommandResult {
    let built = site_build::load_and_build(global, &args.site, &args.build, args.json)?;
    let hosts = select_on(built.site.hosts(), args.on.as_deref()).map_err(CommandError::input)?;
    let visible = crate::progress::enabled(args.json);
    let reach = host_args::reach(global, &built.site, &args.hosts, visible);
    if args.copy_only {
        return copy_only(&built, &hosts, &reach, args.json);
    }
    let selection = ServiceSelection {
        only: args.only.clone(),
        skip: args.skip.clone(),
    };
    check_services(&built.site, &selection)?;
    let request = DeployRequest {
        store: &built.store,
        site: &built.site,
        site_dir: site_build::site_dir(&args.site),
        targets: class_targets(&hosts, &built.result.systems),
        hosts,
        selection,
        command: "deploy".to_string(),
        reach,
        confirm_within: Duration::from_secs(args.confirm_timeout),
        dry_run: args.dry_run,
    };
    crate::deploy_cli::run_request(&request, args.yes, args.json)
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
    let binary = AgentBinary::this_ferry(&built.store).map_err(crate::store_cli::error)?;
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
        },
    )
    .map_err(|e| CommandError::failure(miette::miette!("{}", crate::transport::error_chain(&e))))?;
    Ok(if all_ok { Exit::Success } else { Exit::Failure })
}

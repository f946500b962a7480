//! `ferry plan SITE [--on SEL] [--offline] [--diff]`: what a deploy would change;
//! nothing is copied or activated. It asks the hosts what they run (as a
//! deploy's survey does); `--offline` compares with the latest site
//! generation this deployer recorded instead, without contacting anyone.
use std::time::Duration;

use crate::build::system::ServiceSelection;
use crate::cli::args::{BuildArgs, HostArgs, TargetArgs};
use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::progress::{self, DeployProgress};
use crate::cli::prompt::CliPauser;
use crate::cli::site::{self, BuiltSite};
use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::diff::class_diffs;
use crate::deploy::execute::{deploy, DeployRequest};
use crate::deploy::plan::{
    class_targets, current_from_generation, plan_deploy, DeployPlan, HostsNow,
};
use crate::deploy::site_generation::SiteGenerations;
use ferry_lang::inventory::HostEntry;

/// Arguments of `ferry plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The site and its hosts.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compare with the latest site generation recorded here instead of asking the hosts.
    #[arg(long)]
    pub offline: bool,
    /// Also show, per class, a unified diff of every text file and service
    /// definition that changes, and package versions (binary files by size).
    #[arg(long)]
    pub diff: bool,
    /// How to reach the hosts (not with `--offline`).
    #[command(flatten)]
    pub hosts: HostArgs,
    /// How to build.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Builds the site and prints what a deploy would change.
pub fn run(global: &GlobalArgs, args: PlanArgs) -> CommandResult {
    let built = site::load_and_build(global, &args.target.site, &args.build, args.json)?;
    let hosts = args.target.select(&built.site)?;
    let (plan, exit) = if args.offline {
        let mut plan = recorded_plan(global, &args, &built, &hosts)?;
        if args.diff {
            plan.diffs = class_diffs(&built.store, &plan);
        }
        (plan, Exit::Success)
    } else {
        live_plan(global, &args, &built, hosts)?
    };
    if args.json {
        output::json(&plan);
    } else {
        output::text(&plan.to_string());
    }
    Ok(exit)
}

/// The plan against what the latest site generation says the hosts run.
fn recorded_plan(
    global: &GlobalArgs,
    args: &PlanArgs,
    built: &BuiltSite,
    hosts: &[&HostEntry],
) -> Result<DeployPlan, CommandError> {
    let generations = SiteGenerations::new(&global.state_dir, &built.site.name);
    let latest = generations.latest().map_err(CommandError::failure)?;
    let recorded = current_from_generation(latest.as_ref());
    let now = HostsNow {
        current: &recorded,
        unreachable: &Default::default(),
        rotated: &Default::default(),
        repaired: &Default::default(),
        based_on: latest.as_ref().map(|g| g.number),
        live: false,
    };
    let targets = class_targets(hosts, &built.result.systems);
    let site_dir = site::site_dir(&args.target.site);
    plan_deploy(&built.store, &built.site, &site_dir, hosts, &targets, now)
        .map_err(CommandError::input)
}

/// The plan against what each host says it runs: a deploy's dry run. A
/// host that could not be asked is in the plan, and makes the exit code 1.
fn live_plan(
    global: &GlobalArgs,
    args: &PlanArgs,
    built: &BuiltSite,
    hosts: Vec<&HostEntry>,
) -> Result<(DeployPlan, Exit), CommandError> {
    let reach = args
        .hosts
        .reach(global, &built.site, progress::enabled(args.json))?;
    let request = DeployRequest {
        store: &built.store,
        site: &built.site,
        site_dir: site::site_dir(&args.target.site),
        targets: class_targets(&hosts, &built.result.systems),
        hosts,
        selection: ServiceSelection::default(),
        command: "plan".to_string(),
        reach,
        confirm_within: Duration::from_secs(30),
        repair: false,
        dry_run: true,
        diff: args.diff,
    };
    let hidden = DeployProgress::new(false);
    let pauser = CliPauser {
        yes: true,
        progress: &hidden,
    };
    let report = deploy(&request, &pauser, &hidden, &|_| true)?;
    for (host, reason) in &report.unreachable {
        output::problem(format!("{host}: unreachable: {reason}"));
    }
    let exit = Exit::of_deploy(report.exit_code());
    Ok((report.plan, exit))
}

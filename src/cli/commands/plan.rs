//! `ferry plan SITE [--on SEL]`: what a deploy would change; nothing is touched.
use crate::cli::args::{BuildArgs, TargetArgs};
use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::site;
use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::plan::{class_targets, current_from_generation, plan_deploy};
use crate::deploy::site_generation::SiteGenerations;

/// Arguments of `ferry plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The site and its hosts.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// How to build.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Builds the site and prints what a deploy would change.
pub fn run(global: &GlobalArgs, args: PlanArgs) -> CommandResult {
    let built = site::load_and_build(global, &args.target.site, &args.build, args.json)?;
    let hosts = args.target.select(&built.site)?;
    let generations = SiteGenerations::new(&global.state_dir, &built.site.name);
    let current = generations.latest().map_err(CommandError::failure)?;
    let site_dir = site::site_dir(&args.target.site);
    let targets = class_targets(&hosts, &built.result.systems);
    let now = current_from_generation(current.as_ref());
    let based_on = current.as_ref().map(|g| g.number);
    let plan = plan_deploy(
        &built.store,
        &built.site,
        &site_dir,
        &hosts,
        &targets,
        &now,
        based_on,
    )
    .map_err(CommandError::input)?;
    if args.json {
        output::json(&plan);
    } else {
        output::text(&plan.to_string());
    }
    Ok(Exit::Success)
}

//! `ferry plan SITE [--on SEL]`: what a deploy would change; nothing is touched.
use std::path::PathBuf;

use crate::cli::{CommandResult, GlobalArgs};
use crate::deploy::plan::{class_targets, current_from_generation, plan_deploy};
use crate::deploy::selector::select_on;
use crate::deploy::site_generation::SiteGenerations;
use crate::output::{self, CommandError, Exit};
use crate::site_build::{self, BuildArgs};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// Only these hosts: names, classes, `class=C`, `host=H` or labels `KEY=VALUE`, comma-separated.
    #[arg(long, value_name = "SELECTOR")]
    pub on: Option<String>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub build: BuildArgs,
}

pub fn run(global: &GlobalArgs, args: PlanArgs) -> CommandResult {
    let built = site_build::load_and_build(global, &args.site, &args.build, args.json)?;
    let hosts = select_on(built.site.hosts(), args.on.as_deref()).map_err(CommandError::input)?;
    let generations = SiteGenerations::new(&global.state_dir, &built.site.name);
    let current = generations.latest().map_err(CommandError::failure)?;
    let site_dir = site_build::site_dir(&args.site);
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

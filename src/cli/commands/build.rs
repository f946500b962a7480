//! `ferry build SITE [--class C]…`: build every class's system into the local store.
use std::path::PathBuf;

use crate::cli::args::BuildArgs;
use crate::cli::error::Exit;
use crate::cli::output;
use crate::cli::site;
use crate::cli::{CommandResult, GlobalArgs};

/// Arguments of `ferry build`.
#[derive(Debug, clap::Args)]
pub struct BuildCommandArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// How to build.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Print the result as JSON (systems, packages, what was built or cached).
    #[arg(long)]
    pub json: bool,
}

/// Builds the site and prints each class's system.
pub fn run(global: &GlobalArgs, args: BuildCommandArgs) -> CommandResult {
    let built = site::load_and_build(global, &args.site, &args.build, args.json)?;
    if args.json {
        output::json(&built.result);
    } else {
        for (class, system) in &built.result.systems {
            output::line(format!("{class}\t{system}"));
        }
    }
    Ok(Exit::Success)
}

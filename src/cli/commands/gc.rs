//! `ferry gc`: trim old generations if asked, then delete what no root reaches.
use ferry_store::GcOptions;

use crate::cli::error::Exit;
use crate::cli::output;
use crate::cli::{CommandResult, GlobalArgs};

/// Arguments of `ferry gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// First remove all but the newest N generations of every profile (never the current one).
    #[arg(long, value_name = "N")]
    pub keep_generations: Option<usize>,
    /// Print what would be deleted without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Trims generations if asked, then deletes what no root reaches.
pub fn run(global: &GlobalArgs, args: GcArgs) -> CommandResult {
    let store = global.open_store()?;
    let options = GcOptions {
        keep_generations: args.keep_generations,
        dry_run: args.dry_run,
    };
    let report = store.gc(&options)?;
    if args.json {
        output::json(&report);
        return Ok(Exit::Success);
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for link in &report.removed_generations {
        output::line(format_args!("{verb} generation {}", link.display()));
    }
    for path in &report.deleted {
        output::line(format_args!("{verb} {path}"));
    }
    output::line(format_args!(
        "{verb} {} paths ({} bytes) and {} leftovers; {} paths are live",
        report.deleted.len(),
        report.bytes_freed,
        report.debris.len(),
        report.live
    ));
    Ok(Exit::Success)
}

//! `ferry check SITE`: parse and evaluate a site, report every error.
use std::path::PathBuf;

use crate::cli::error::Exit;
use crate::cli::output;
use crate::cli::CommandResult;

/// Arguments of `ferry check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
}

/// Evaluates the site and prints a one-line summary.
pub fn run(args: CheckArgs) -> CommandResult {
    let site = crate::cli::site::load_site(&args.site)?;
    let services: usize = site.classes.values().map(|c| c.services.len()).sum();
    output::line(format!(
        "ok: site `{}` ({}): {} classes, {} services, {} hosts, {} packages, {} files",
        site.name,
        site.environment,
        site.classes.len(),
        services,
        site.inventory.hosts.len(),
        site.packages.len(),
        site.files.len()
    ));
    // Which reader read an Ansible inventory: their reading may differ.
    if let Some(ferry_lang::inventory::InventorySource::Ansible { path }) = &site.inventory.source {
        if let Ok(reader) = crate::inventory::ansible::reader() {
            output::line(format!("inventory: {}: {reader}", path.display()));
        }
    }
    Ok(Exit::Success)
}

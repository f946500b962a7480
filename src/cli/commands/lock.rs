//! `ferry lock SITE [--update [PKG…]]`: pin the site's Debian packages.
use std::path::PathBuf;
use std::time::SystemTime;

use crate::build::site_lock::{lock_site, LockMode};
use crate::cli::error::Exit;
use crate::cli::output;
use crate::cli::site;
use crate::cli::{CommandResult, GlobalArgs};

/// Arguments of `ferry lock`.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// Re-resolve: with no names every package may move to its newest
    /// satisfying version; with names only those may (the rest stay locked).
    #[arg(long, num_args = 0.., value_name = "PKG")]
    pub update: Option<Vec<String>>,
}

/// Writes the lock and prints what changed.
pub fn run(global: &GlobalArgs, args: LockArgs) -> CommandResult {
    let site_value = site::load_site(&args.site)?;
    let mode = match args.update {
        None => LockMode::Keep,
        Some(names) if names.is_empty() => LockMode::UpdateAll,
        Some(names) => LockMode::Update(names),
    };
    let file = crate::site::site_file(&args.site);
    let outcome = lock_site(&site_value, &file, &mode, &global.apt(), SystemTime::now())?;
    for change in &outcome.changes {
        output::line(change.to_string());
    }
    let size: u64 = outcome.lock.packages.iter().map(|p| p.size).sum();
    output::line(format!(
        "{}: {} packages, {} to download, {}",
        outcome.path.display(),
        outcome.lock.packages.len(),
        crate::closure::human_size(size),
        match outcome.changes.len() {
            0 => "unchanged".to_string(),
            1 => "1 change".to_string(),
            n => format!("{n} changes"),
        }
    ));
    Ok(Exit::Success)
}

//! The CLI's path from a site file to built systems: load (rendering every
//! diagnostic), select, build with progress. Shared by `build`, `closure`,
//! `plan`, `deploy` and every command that reads a site.
use std::path::{Path, PathBuf};

use ferry_lang::Site;
use ferry_store::Store;

use crate::build::{self, BuildOptions, SiteBuild};
use crate::cli::args::BuildArgs;
use crate::cli::error::CommandError;
use crate::cli::output;
use crate::cli::progress::{self, BuildProgress};
use crate::cli::GlobalArgs;

/// Parses and evaluates the site at `path` with ferry's inventory providers.
/// Errors are bad input (exit 2); every diagnostic is printed first.
pub fn load_site(path: &Path) -> Result<Site, CommandError> {
    crate::site::load_site(path).map_err(|diagnostics| {
        for report in diagnostics.reports() {
            output::diagnostic(miette::Report::new(report));
        }
        let count = match diagnostics.items.len() {
            1 => "1 error".to_string(),
            n => format!("{n} errors"),
        };
        CommandError::input(miette::miette!(
            "`{}` has {count}",
            crate::site::site_file(path).display()
        ))
    })
}

/// A site, its store, and what was built for it.
pub struct BuiltSite {
    /// The evaluated site.
    pub site: Site,
    /// The local store the systems were built into.
    pub store: Store,
    /// The built systems, packages and files.
    pub result: SiteBuild,
}

/// Loads the site at `path` and builds the selected classes.
pub fn load_and_build(
    global: &GlobalArgs,
    path: &Path,
    args: &BuildArgs,
    json: bool,
) -> Result<BuiltSite, CommandError> {
    let site = load_site(path)?;
    let store = global.open_store()?;
    let classes = build::select_classes(&site, &args.classes)?;
    let debian = build::site_lock::inputs_for_build(
        &site,
        &crate::site::site_file(path),
        &global.deb_cache(),
        &global.apt(),
    )?;
    let mut options = BuildOptions {
        timeout: std::time::Duration::from_secs(args.build_timeout),
        // The agents run with our state dir (`args::agent_settings`), so an
        // interpolated secret names the file they write.
        host_state_dir: global.state_dir.clone(),
        debian,
        ..BuildOptions::default()
    };
    if let Some(jobs) = args.jobs {
        options.jobs = jobs.max(1);
    }
    let progress = BuildProgress::new(progress::enabled(json));
    let result = build::build_site(&store, &site, &classes, &options, &progress);
    progress.finish();
    let result = result?;
    Ok(BuiltSite {
        site,
        store,
        result,
    })
}

/// The directory of the site file (where external policy programs run).
/// A bare file name (`ferry deploy site.conf`) lives in `.`: an empty path
/// would make every program fail to start ("No such file or directory").
pub fn site_dir(path: &Path) -> PathBuf {
    match crate::site::site_file(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn a_bare_site_file_name_runs_its_policy_program_in_the_current_directory() {
        assert_eq!(super::site_dir(Path::new("v7.conf")), Path::new("."));
        assert_eq!(
            super::site_dir(Path::new("sites/x.conf")),
            Path::new("sites")
        );
        assert_eq!(super::site_dir(Path::new("/a/b.conf")), Path::new("/a"));
    }
}

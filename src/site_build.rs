//! The CLI's path from a site file to built systems: load, select, build,
//! with progress and error rendering. Shared by `build`, `closure`, `deploy`.
use std::path::Path;

use ferry_lang::Site;
use ferry_store::Store;

use crate::build::{self, BuildOptions, LocatedBuildError, SiteBuild};
use crate::cli::GlobalArgs;
use crate::output::CommandError;
use crate::progress::{self, BuildProgress};

/// Build options every building command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Only these classes (repeatable); default: all.
    #[arg(long = "class", value_name = "CLASS")]
    pub classes: Vec<String>,
    /// Builds running at once (default: number of cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Time limit of one builder, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub build_timeout: u64,
}

/// A site, its store, and what was built for it.
pub struct BuiltSite {
    pub site: Site,
    pub store: Store,
    pub result: SiteBuild,
}

/// Turns a build error into a report: bad input exits 2, a failed build 1.
pub fn build_error(error: build::BuildError) -> CommandError {
    let bad_input = error.is_bad_input();
    let report = miette::Report::new(LocatedBuildError::from(error));
    if bad_input {
        CommandError::input(report)
    } else {
        CommandError::failure(report)
    }
}

/// Loads the site at `path` and builds the selected classes.
pub fn load_and_build(
    global: &GlobalArgs,
    path: &Path,
    args: &BuildArgs,
    json: bool,
) -> Result<BuiltSite, CommandError> {
    let site = crate::site::load_site(path)?;
    let store = crate::store_cli::open(global)?;
    let classes = build::select_classes(&site, &args.classes).map_err(build_error)?;
    let mut options = BuildOptions {
        timeout: std::time::Duration::from_secs(args.build_timeout),
        ..BuildOptions::default()
    };
    if let Some(jobs) = args.jobs {
        options.jobs = jobs.max(1);
    }
    let progress = BuildProgress::new(progress::enabled(json));
    let result = build::build_site(&store, &site, &classes, &options, &progress);
    progress.finish();
    let result = result.map_err(build_error)?;
    Ok(BuiltSite {
        site,
        store,
        result,
    })
}

/// The directory of the site file (where external policy programs run).
/// A bare file name (`ferry deploy site.conf`) lives in `.`: an empty path
/// would make every program fail to start ("No such file or directory").
pub fn site_dir(path: &Path) -> std::path::PathBuf {
    match crate::site::site_file(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
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

//! `ferry store add|path-info|verify|export|import`: thin wiring of `ferry_store::Store`.
use std::io::IsTerminal;
use std::path::PathBuf;

use ferry_store::{ImportMode, PathInfo, Store, StorePath};

use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::{CommandResult, GlobalArgs};

/// Arguments of `ferry store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// What to do with the store.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The verbs of `ferry store`.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Add a file, directory or symlink to the store and print its store path.
    Add {
        /// What to add (a symlink is added as a symlink, not followed).
        path: PathBuf,
        /// The object's name (default: the file name of PATH).
        #[arg(long)]
        name: Option<String>,
    },
    /// Show what the store knows about valid paths.
    PathInfo {
        /// Store paths.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every valid path and check its references (exit 1 if anything is corrupt).
    Verify {
        /// Move corrupt objects to <state-dir>/quarantine/ and invalidate them and their dependents.
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the closure of PATHS as an archive to stdout.
    Export {
        /// Store paths; everything they reference is exported too.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Read an archive from stdin, verify every object, and register them (all or nothing).
    Import,
}

/// Runs one `ferry store` verb on the store of `--store-dir`.
pub fn run(global: &GlobalArgs, args: StoreArgs) -> CommandResult {
    let store = global.open_store()?;
    match args.command {
        StoreCommand::Add { path, name } => add(&store, &path, name),
        StoreCommand::PathInfo { paths, json } => path_info(&store, &paths, json),
        StoreCommand::Verify { repair, json } => verify(&store, repair, json),
        StoreCommand::Export { paths } => export(&store, &paths),
        StoreCommand::Import => import(&store),
    }
}

fn add(store: &Store, path: &std::path::Path, name: Option<String>) -> CommandResult {
    let name = match name {
        Some(name) => name,
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| {
                CommandError::input(miette::miette!(
                    help = "pass --name to choose the object's name",
                    "{} has no usable file name",
                    path.display()
                ))
            })?,
    };
    if std::fs::symlink_metadata(path).is_err() {
        return Err(CommandError::input(miette::miette!(
            help = "check the path; `ferry store add` takes an existing file, directory or symlink",
            "{} does not exist",
            path.display()
        )));
    }
    // Whatever a user adds by hand is most likely new: hash and copy in one pass.
    let options = ferry_store::AddOptions {
        probably_new: true,
        ..ferry_store::AddOptions::default()
    };
    let added = store.add_path_with(path, &name, &options)?;
    output::line(added);
    Ok(Exit::Success)
}

fn parse_paths(store: &Store, texts: &[String]) -> Result<Vec<StorePath>, CommandError> {
    texts.iter().map(|text| resolve(store, text)).collect()
}

/// A store path, or a file system path leading into one (`./result`, a profile link, a file
/// inside an object): the object that holds it.
fn resolve(store: &Store, text: &str) -> Result<StorePath, CommandError> {
    let error = match store.parse_path(text) {
        Ok(path) => return Ok(path),
        Err(error) => error,
    };
    let inside = std::fs::canonicalize(text)
        .ok()
        .and_then(|real| {
            real.strip_prefix(store.store_dir().as_path())
                .ok()
                .map(PathBuf::from)
        })
        .and_then(|inside| {
            inside
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
        });
    match inside.and_then(|base| {
        store
            .parse_path(&format!("{}/{base}", store.store_dir()))
            .ok()
    }) {
        Some(path) => Ok(path),
        None => Err(crate::cli::error::store_error(error)),
    }
}

fn path_info(store: &Store, texts: &[String], json: bool) -> CommandResult {
    let paths = parse_paths(store, texts)?;
    let infos: Vec<PathInfo> = paths
        .iter()
        .map(|p| store.path_info(p))
        .collect::<Result<_, _>>()?;
    if json {
        output::json(&infos);
        return Ok(Exit::Success);
    }
    for info in infos {
        output::line(&info.path);
        output::line(format_args!("  tree-digest: {}", info.tree_digest));
        output::line(format_args!("  nar-size: {}", info.nar_size));
        output::line(format_args!("  registered: {}", info.registration_time));
        if let Some(deriver) = info.deriver {
            output::line(format_args!("  deriver: {deriver}"));
        }
        for reference in &info.references {
            output::line(format_args!("  reference: {reference}"));
        }
        for signature in &info.signatures {
            output::line(format_args!("  signature: {signature}"));
        }
    }
    Ok(Exit::Success)
}

fn verify(store: &Store, repair: bool, json: bool) -> CommandResult {
    let report = store.verify(repair)?;
    if json {
        output::json(&report);
    } else {
        for corrupt in &report.corrupt {
            output::line(format_args!(
                "corrupt: {}: {}",
                corrupt.path, corrupt.problem
            ));
        }
        for (path, reference) in &report.missing_references {
            output::line(format_args!("missing reference: {path} -> {reference}"));
        }
        for moved in &report.quarantined {
            output::line(format_args!("quarantined: {}", moved.display()));
        }
        for path in &report.invalidated {
            output::line(format_args!("invalidated: {path}"));
        }
        output::line(format_args!("checked {} paths", report.checked));
    }
    if report.is_clean() {
        return Ok(Exit::Success);
    }
    let problems = report.corrupt.len() + report.missing_references.len();
    Err(CommandError::failure(if repair {
        miette::miette!(help = "the corrupt objects are kept in the quarantine directory; rebuild or re-import what was invalidated", "the store had {problems} problem(s); they were repaired")
    } else {
        miette::miette!(
            help = "run `ferry store verify --repair` to quarantine corrupt paths",
            "the store has {problems} problem(s)"
        )
    }))
}

fn export(store: &Store, texts: &[String]) -> CommandResult {
    if std::io::stdout().is_terminal() {
        return Err(CommandError::input(miette::miette!(
            help = "redirect it: `ferry store export PATH > closure.ferry`",
            "refusing to write a binary archive to a terminal"
        )));
    }
    let paths = parse_paths(store, texts)?;
    store.export_closure(&paths, output::raw())?;
    Ok(Exit::Success)
}

fn import(store: &Store) -> CommandResult {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CommandError::input(miette::miette!(
            help = "feed it an archive: `ferry store import < closure.ferry`",
            "expected an archive on stdin, not a terminal"
        )));
    }
    let report = store.import(stdin.lock(), ImportMode::Atomic)?;
    for path in &report.paths {
        output::line(path);
    }
    Ok(Exit::Success)
}

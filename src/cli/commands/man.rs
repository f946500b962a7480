//! `ferry man [--out-dir DIR]`: the man pages (roff), generated from the clap definition.
use std::path::Path;

use clap::CommandFactory;
use miette::miette;

use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::{Cli, CommandResult};

/// Prints ferry(1) on stdout, or with `out_dir` writes ferry(1) and one page
/// per subcommand (`ferry-deploy.1`, …, which ferry(1) refers to) into it and
/// prints their paths.
pub fn run(out_dir: Option<&Path>) -> CommandResult {
    match out_dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| {
                    CommandError::failure(miette!("could not render the man page: {e}"))
                })?;
            let page = String::from_utf8(page)
                .map_err(|e| CommandError::failure(miette!("the man page is not UTF-8: {e}")))?;
            output::line(page.trim_end_matches('\n'));
        }
        Some(dir) => {
            let failed = |e: std::io::Error| {
                CommandError::failure(miette!(
                    "could not write man pages into {}: {e}",
                    dir.display()
                ))
            };
            std::fs::create_dir_all(dir).map_err(failed)?;
            clap_mangen::generate_to(Cli::command(), dir).map_err(failed)?;
            let mut pages: Vec<String> = std::fs::read_dir(dir)
                .map_err(failed)?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.path())
                .filter(|path| {
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default();
                    name.starts_with("ferry") && name.ends_with(".1")
                })
                .map(|path| path.display().to_string())
                .collect();
            pages.sort();
            for page in pages {
                output::line(page);
            }
        }
    }
    Ok(Exit::Success)
}

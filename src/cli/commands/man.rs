//! `ferry man [--out-dir DIR]`: the man pages (roff), generated from the clap
//! definition, each with the EXIT STATUS section clap does not know about.
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use miette::miette;

use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::{Cli, CommandResult};

/// The EXIT STATUS section (roff), as `cli::error::Exit` defines the codes.
const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Everything asked for was done.
.TP
\fB1\fR
Something failed: a build, a copy, a host, or a deploy that stopped.
.TP
\fB2\fR
Bad usage or bad input: an argument, a site file (pointed at by file:line:column), a missing or stale lock.
.TP
\fB3\fR
A deploy finished, but at least one host was rolled back.
"#;

/// Prints ferry(1) on stdout, or with `out_dir` writes ferry(1) and one page
/// per subcommand (`ferry-deploy.1`, …, which ferry(1) refers to) into it and
/// prints their paths.
pub fn run(out_dir: Option<&Path>) -> CommandResult {
    match out_dir {
        None => {
            let page = page(Cli::command()).map_err(|e| {
                CommandError::failure(miette!("could not render the man page: {e}"))
            })?;
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
            let mut command = Cli::command().disable_help_subcommand(true);
            command.build();
            let mut pages = Vec::new();
            write_pages(command, dir, &mut pages).map_err(failed)?;
            pages.sort();
            for page in pages {
                output::line(page.display().to_string());
            }
        }
    }
    Ok(Exit::Success)
}

/// Writes the page of `command` and of each of its visible subcommands, at
/// any depth, into `dir`, as `clap_mangen::generate_to` names them.
fn write_pages(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    let path = dir.join(clap_mangen::Man::new(command.clone()).get_filename());
    std::fs::write(&path, page(command)?)?;
    written.push(path);
    Ok(())
}

/// One man page: clap's, with EXIT STATUS before VERSION (or at the end).
fn page(command: clap::Command) -> std::io::Result<String> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(command).render(&mut roff)?;
    let roff = String::from_utf8(roff)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(match roff.find(".SH VERSION") {
        Some(at) => format!("{}{EXIT_STATUS}{}", &roff[..at], &roff[at..]),
        None => format!("{roff}{EXIT_STATUS}"),
    })
}

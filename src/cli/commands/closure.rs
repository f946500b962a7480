//! `ferry closure SITE --requisites|--why PATH|--size`: what the site runs.
use std::path::PathBuf;

use crate::cli::args::BuildArgs;
use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::site;
use crate::cli::{CommandResult, GlobalArgs};
use crate::closure::site_closure;

/// Arguments of `ferry closure`.
#[derive(Debug, clap::Args)]
pub struct ClosureArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// Every store path the site (or `--class`) runs, plus the service edges across hosts.
    #[arg(long, short = 'R')]
    pub requisites: bool,
    /// As a reference tree per class, closed by its service edges to and from other classes.
    #[arg(long, conflicts_with_all = ["graph", "json"])]
    pub tree: bool,
    /// As a Graphviz dot graph.
    #[arg(long, conflicts_with_all = ["tree", "json"])]
    pub graph: bool,
    /// As a JSON document (see ARCHITECTURE.md, "closure JSON").
    #[arg(long)]
    pub json: bool,
    /// Why is PATH in the closure: the chain of references from each class's system.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["requisites", "tree", "graph"])]
    pub why: Option<String>,
    /// Number of paths and total size, per class and for the site.
    #[arg(long, conflicts_with_all = ["tree", "graph"])]
    pub size: bool,
    /// How to build.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Builds the site and prints what its closure holds.
pub fn run(global: &GlobalArgs, args: ClosureArgs) -> CommandResult {
    if !args.requisites && args.why.is_none() && !args.size {
        return Err(CommandError::input(miette::miette!(
            help = "e.g. `ferry closure site.conf --requisites`",
            "say what to show: --requisites, --why PATH or --size"
        )));
    }
    let built = site::load_and_build(global, &args.site, &args.build, args.json)?;
    let closure = site_closure(&built.store, &built.site, &built.result.systems)?;

    if let Some(target) = &args.why {
        let target = built.store.parse_path(target)?;
        let chains = closure.why(&target);
        if chains.is_empty() {
            return Err(CommandError::failure(miette::miette!(
                "{target} is not in the closure of any selected class"
            )));
        }
        if args.json {
            output::json(&chains);
        } else {
            for (class, chain) in chains {
                output::line(format!("{class}:"));
                for (depth, path) in chain.iter().enumerate() {
                    let arrow = if depth == 0 {
                        String::new()
                    } else {
                        format!("{}└─→ ", "    ".repeat(depth - 1))
                    };
                    output::line(format!("  {arrow}{path}"));
                }
            }
        }
        return Ok(Exit::Success);
    }
    if args.json {
        output::json(&closure);
    } else if args.tree {
        output::text(&closure.render_tree());
    } else if args.graph {
        output::text(&closure.render_dot());
    } else if args.requisites {
        output::text(&closure.render_plain());
    }
    if args.size && !args.json {
        output::text(&closure.render_sizes());
    }
    Ok(Exit::Success)
}

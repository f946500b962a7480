//! The command line: clap definitions and dispatch to `commands::<verb>`.
//! Everything the binary does beyond the library lives below: shared
//! arguments, site loading, the error → exit code mapping, output, progress
//! and operator prompts.
pub mod args;
pub mod commands;
pub mod error;
pub mod output;
pub mod progress;
pub mod prompt;
pub mod site;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ferry_store::Store;

pub use error::{CommandError, CommandResult, Exit};

/// ferry: a functional, store-based fleet deployer.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, propagate_version = true)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The store directory (part of every store path's hash).
    #[arg(
        long,
        global = true,
        env = "FERRY_STORE_DIR",
        default_value = "/ferry/store"
    )]
    pub store_dir: PathBuf,
    /// The state directory: store metadata, profiles, GC roots, logs.
    #[arg(
        long,
        global = true,
        env = "FERRY_STATE_DIR",
        default_value = "/ferry/var"
    )]
    pub state_dir: PathBuf,
    /// The root whose apt configuration (`etc/apt`) and signed lists
    /// (`var/lib/apt/lists`) name the Debian repositories.
    #[arg(long, global = true, env = "FERRY_APT_ROOT", default_value = "/")]
    pub apt_root: PathBuf,
    /// Where downloaded `.deb` files are kept (by sha256, verified on every
    /// use); default: `<state-dir>/cache/debian`.
    #[arg(long, global = true, env = "FERRY_DEB_CACHE")]
    pub deb_cache: Option<PathBuf>,
}

impl GlobalArgs {
    /// Where downloaded `.deb` files are kept.
    pub fn deb_cache(&self) -> PathBuf {
        self.deb_cache
            .clone()
            .unwrap_or_else(|| self.state_dir.join("cache").join("debian"))
    }

    /// Where apt's configuration and lists are read.
    pub fn apt(&self) -> crate::build::site_lock::AptRoot {
        crate::build::site_lock::AptRoot(self.apt_root.clone())
    }

    /// Opens the store of `--store-dir` / `--state-dir`.
    pub fn open_store(&self) -> Result<Store, CommandError> {
        Ok(Store::open(&self.store_dir, &self.state_dir)?)
    }
}

/// The verbs of `ferry`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build every class's system (packages, files, manifest) into the local store.
    Build(commands::build::BuildCommandArgs),
    /// Resolve the site's Debian packages and pin them in its lock file
    /// (`site.conf` → `site.lock`); `--update` moves them to newer versions.
    Lock(commands::lock::LockArgs),
    /// Everything the site runs: store paths of every class and the service
    /// edges across hosts; or why a path is there, or how big it all is.
    Closure(commands::closure::ClosureArgs),
    /// What a deploy would change, host by host (asking each what it runs
    /// now, or with `--offline` from the last record), and the batches it would run in.
    Plan(commands::plan::PlanArgs),
    /// Build, copy and activate the site under its rollout policy; record a site generation.
    Deploy(commands::deploy::DeployArgs),
    /// Back to an earlier site generation (site-wide, under the policy), or hosts to their own generation.
    Rollback(commands::rollback::RollbackArgs),
    /// The site's generations on this deployer, or (`--on`) the hosts' own generations.
    Generations(commands::generations::GenerationsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: `ferry completions bash > /etc/bash_completion.d/ferry`
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::aot::Shell,
    },
    /// Print the ferry(1) man page (roff), or write every page into a directory.
    ///
    /// Example: `ferry man --out-dir /usr/local/share/man/man1`
    Man {
        /// Write ferry.1 and one page per subcommand here instead of printing ferry.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// What every host runs: generation, services, last health results,
    /// pending confirmations and rollbacks (asks each host's agent).
    ///
    /// Example: `ferry status ./site --on class=web`
    Status(commands::status::StatusArgs),
    /// Copy the closure of store paths to hosts over SSH.
    Copy(commands::copy::CopyArgs),
    /// Local hosts for trying a site: network namespaces with their own sshd (root).
    Lab(commands::lab::LabArgs),
    /// The host agent the deployer starts over SSH (internal).
    #[command(hide = true)]
    Remote(commands::remote::RemoteArgs),
    /// Work with the local store: add, inspect, verify, export and import objects.
    Store(commands::store::StoreArgs),
    /// Delete every store object that no root (profile, site generation, GC root,
    /// running operation) reaches.
    Gc(commands::gc::GcArgs),
    /// Parse and evaluate a site; report every error.
    Check(commands::check::CheckArgs),
    /// Print the evaluated site (`--json` for tools).
    Eval(commands::eval::EvalArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = run(cli);
    output::finish(result)
}

/// Dispatches a parsed command line to its verb.
pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Completions { shell } => commands::completions::run(shell),
        Command::Man { out_dir } => commands::man::run(out_dir.as_deref()),
        Command::Store(args) => commands::store::run(&cli.global, args),
        Command::Build(args) => commands::build::run(&cli.global, args),
        Command::Lock(args) => commands::lock::run(&cli.global, args),
        Command::Closure(args) => commands::closure::run(&cli.global, args),
        Command::Plan(args) => commands::plan::run(&cli.global, args),
        Command::Deploy(args) => commands::deploy::run(&cli.global, args),
        Command::Rollback(args) => commands::rollback::run(&cli.global, args),
        Command::Generations(args) => commands::generations::run(&cli.global, args),
        Command::Gc(args) => commands::gc::run(&cli.global, args),
        Command::Check(args) => commands::check::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Copy(args) => commands::copy::run(&cli.global, args),
        Command::Lab(args) => commands::lab::run(&cli.global, args),
        Command::Remote(args) => commands::remote::run(&cli.global, args),
        Command::Status(args) => commands::status::run(&cli.global, args),
    }
}

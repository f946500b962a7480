//! `ferry lab up|down|status SITE`: the local SSH fleet of a site's `lab` inventory.
use std::path::{Path, PathBuf};

use ferry_lang::inventory::{InventorySource, LabSpec};
use serde::Serialize;

use crate::cli::error::{CommandError, Exit};
use crate::cli::output;
use crate::cli::{CommandResult, GlobalArgs};
use crate::lab::{self, LabOptions};

/// Arguments of `ferry lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// What to do with the lab.
    #[command(subcommand)]
    pub action: LabAction,
}

/// The verbs of `ferry lab`.
#[derive(Debug, clap::Subcommand)]
pub enum LabAction {
    /// Start the lab's hosts (root): per host a network namespace with a private
    /// store and an sshd, or with `kind = "root"` a booted Debian root of its own.
    Up {
        /// The site file, or a directory holding `site.conf`.
        site: PathBuf,
        /// Another directory each host gets privately, e.g. `/nix` (repeatable).
        #[arg(long = "private-dir", value_name = "DIR")]
        private_dirs: Vec<PathBuf>,
    },
    /// Stop the lab and remove everything it made (safe to repeat).
    Down {
        /// The site (or the lab's name, which is the site's name).
        site: PathBuf,
    },
    /// List the lab's hosts, addresses and whether their sshd answers.
    Status {
        /// The site (or the lab's name, which is the site's name).
        site: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `ferry lab` verb.
pub fn run(global: &GlobalArgs, args: LabArgs) -> CommandResult {
    match args.action {
        LabAction::Up { site, private_dirs } => up(global, &site, private_dirs),
        LabAction::Down { site } => {
            let name = lab_name(&site)?;
            let removed = lab::down(&name)?;
            output::line(if removed {
                format!("lab `{name}` is down")
            } else {
                format!("lab `{name}` was not running")
            });
            Ok(Exit::Success)
        }
        LabAction::Status { site, json } => status(&site, json),
    }
}

/// The lab's name: the site's name when SITE is a site, else SITE itself
/// (so a lab can be taken down even when its site no longer evaluates).
fn lab_name(site: &Path) -> Result<String, CommandError> {
    if site.exists() {
        Ok(crate::cli::site::load_site(site)?.name)
    } else {
        Ok(site.to_string_lossy().into_owned())
    }
}

fn lab_spec(site: &Path) -> Result<(String, LabSpec), CommandError> {
    let loaded = crate::cli::site::load_site(site)?;
    match loaded.inventory.source {
        Some(InventorySource::Lab(spec)) => Ok((loaded.name, spec)),
        other => Err(CommandError::input(miette::miette!(
            help =
                "declare `inventory = lab { hosts = [ … ] }` in the site to try it on local hosts",
            "site `{}` has {} inventory, not a lab",
            loaded.name,
            match other {
                Some(InventorySource::File { .. }) => "a `file`",
                Some(InventorySource::Exec { .. }) => "an `exec`",
                Some(InventorySource::Ansible { .. }) => "an `ansible`",
                _ => "no",
            }
        ))),
    }
}

fn up(global: &GlobalArgs, site: &Path, extra: Vec<PathBuf>) -> CommandResult {
    let (name, spec) = lab_spec(site)?;
    // The hosts' store and state dirs are private: their parents are bind
    // mounts of per-host directories.
    let mut private_dirs = Vec::new();
    for dir in [&global.store_dir, &global.state_dir] {
        let parent = dir
            .parent()
            .filter(|p| *p != Path::new("/"))
            .ok_or_else(|| {
                CommandError::input(miette::miette!(
                    "{} cannot be a lab host's private directory",
                    dir.display()
                ))
            })?;
        let parent = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        if !private_dirs.iter().any(|p: &PathBuf| parent.starts_with(p)) {
            private_dirs.push(parent);
        }
    }
    for dir in extra {
        if !private_dirs.contains(&dir) {
            private_dirs.push(dir);
        }
    }
    let options = LabOptions {
        private_dirs,
        store_dir: global.store_dir.clone(),
        state_dir: global.state_dir.clone(),
    };
    let before = lab::load(&name).ok();
    let lab = lab::up_with(&name, &spec, &options)?;
    let changes = lab::changes(before.as_ref(), &lab);
    output::line(format!(
        "lab `{}` is up: {} hosts on {}",
        lab.name,
        lab.hosts.len(),
        lab.subnet
    ));
    output::line(format!("host kind: {}", lab.kind));
    for host in &lab.hosts {
        let what = if changes.kept.contains(&host.name) {
            "kept running"
        } else if changes.remade.contains(&host.name) {
            "remade (its address moved; store and generations kept)"
        } else {
            "new"
        };
        output::line(format!(
            "  {:<16} {:<12} {:<15} {what}",
            host.name, host.class, host.address
        ));
    }
    if !changes.removed.is_empty() {
        output::line(format!("removed: {}", changes.removed.join(", ")));
    }
    output::line(format!("ssh config: {}", lab.ssh_config().display()));
    output::line(format!(
        "try: ssh -F {} {}",
        lab.ssh_config().display(),
        lab.hosts.first().map_or("HOST", |h| &h.name)
    ));
    Ok(Exit::Success)
}

#[derive(Serialize)]
struct StatusJson {
    lab: String,
    kind: lab::LabKind,
    subnet: String,
    ssh_config: PathBuf,
    hosts: Vec<lab::LabHostStatus>,
}

fn status(site: &Path, json: bool) -> CommandResult {
    let name = lab_name(site)?;
    let (lab, hosts) = lab::status(&name)?;
    let all_up = hosts.iter().all(|h| h.ssh_answers);
    if json {
        output::json(&StatusJson {
            lab: lab.name.clone(),
            kind: lab.kind,
            subnet: lab.subnet.clone(),
            ssh_config: lab.ssh_config(),
            hosts,
        });
    } else {
        output::line(format!(
            "lab `{}` of {} hosts on {} (ssh config {})",
            lab.name,
            lab.kind,
            lab.subnet,
            lab.ssh_config().display()
        ));
        for h in &hosts {
            // A root host's process is its machine, whose systemd runs its sshd.
            let root = lab.kind == lab::LabKind::Root;
            let state = match (h.netns, h.sshd_running, h.ssh_answers) {
                (_, _, true) => "ssh answers",
                (true, true, false) if root => "the machine runs but its sshd does not answer",
                (true, true, false) => "sshd runs but does not answer",
                (true, false, _) if root => "the machine is not running",
                (true, false, _) => "sshd is not running",
                (false, _, _) => "namespace missing",
            };
            output::line(format!(
                "  {:<16} {:<12} {:<15} {state}",
                h.name, h.class, h.address
            ));
        }
    }
    Ok(if all_up { Exit::Success } else { Exit::Failure })
}

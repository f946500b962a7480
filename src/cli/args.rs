//! Arguments shared by several commands: the site and its host selector,
//! how to reach hosts (SSH settings; a lab site defaults to its running lab's
//! `ssh_config`), how to build, and how to run a rollout.
use std::path::PathBuf;
use std::sync::Arc;

use ferry_lang::inventory::{HostEntry, InventorySource};
use ferry_lang::Site;

use crate::cli::error::CommandError;
use crate::cli::progress::CopyProgress;
use crate::cli::GlobalArgs;
use crate::deploy::hosts::Reach;
use crate::deploy::selector::select_on;
use crate::transport::bootstrap::AgentSettings;
use crate::transport::copy::CopyObserver;
use crate::transport::ssh::SshSettings;

/// A site and which of its hosts a command works on.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// Only these hosts: names, classes, `class=C`, `host=H` or labels `KEY=VALUE`, comma-separated.
    #[arg(long, value_name = "SELECTOR")]
    pub on: Option<String>,
}

impl TargetArgs {
    /// The hosts of `site` that `--on` selects (all without it); a bad selector is bad input.
    pub fn select<'a>(&self, site: &'a Site) -> Result<Vec<&'a HostEntry>, CommandError> {
        select_on(site.hosts(), self.on.as_deref()).map_err(CommandError::input)
    }
}

/// How to reach hosts over SSH, and how many at once.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// An ssh config file (`ssh -F`); default: ssh's own, or the running lab's for a lab site.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// An extra ssh option, as for `ssh -o` (repeatable; never turns host-key checking off).
    #[arg(long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// How many hosts are copied to / asked at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
}

impl HostArgs {
    /// The SSH settings as given (no site to default from).
    pub fn ssh(&self) -> SshSettings {
        SshSettings {
            config_file: self.ssh_config.clone(),
            options: self.ssh_options.clone(),
            keepalive: None,
        }
    }

    /// The ssh config to use for `site`.
    pub fn ssh_config(&self, site: &Site) -> Result<Option<PathBuf>, crate::lab::LabError> {
        if self.ssh_config.is_some() {
            return Ok(self.ssh_config.clone());
        }
        match &site.inventory.source {
            // A lab site's hosts exist only while its lab is up: without it,
            // ssh would try the lab's addresses through the default route.
            Some(InventorySource::Lab(_)) => Ok(Some(crate::lab::load(&site.name)?.ssh_config())),
            _ => Ok(None),
        }
    }

    /// How to reach the hosts of `site`; `progress` draws per-host copy
    /// lines. A lab site whose lab is not up is refused.
    pub fn reach(
        &self,
        global: &GlobalArgs,
        site: &Site,
        progress: bool,
    ) -> Result<Reach, CommandError> {
        Ok(Reach {
            ssh: SshSettings {
                config_file: self.ssh_config(site)?,
                options: self.ssh_options.clone(),
                keepalive: None,
            },
            agent: agent_settings(global),
            max_parallel: usize::from(self.max_parallel),
            progress: copy_progress(progress),
        })
    }
}

/// The store and state dirs the agents on the hosts use: the same as ours.
pub fn agent_settings(global: &GlobalArgs) -> AgentSettings {
    AgentSettings {
        store_dir: global.store_dir.clone(),
        state_dir: global.state_dir.clone(),
    }
}

/// Who draws copy progress: the terminal's per-host lines when `visible`, else nobody.
pub fn copy_progress(visible: bool) -> Option<Arc<dyn CopyObserver>> {
    visible.then(|| Arc::new(CopyProgress::new()) as Arc<dyn CopyObserver>)
}

/// Gives the arguments named in `help` (id, text) their own help text, in
/// place: for a command whose shared argument means something narrower there.
/// (`mut_arg` would move each to the end of the list, and so reorder completions.)
pub fn help_overrides(
    help: &'static [(&'static str, &'static str)],
) -> impl FnMut(clap::Arg) -> clap::Arg {
    move |arg| match help.iter().find(|(id, _)| arg.get_id() == *id) {
        Some((_, text)) => arg.help(*text),
        None => arg,
    }
}

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

/// How a rollout runs (`deploy` and site-wide `rollback`): asking, output, confirmation, hosts.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    /// Don't ask before deploying or between batches (`pause = confirm`).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// A JSON event stream on stdout instead of progress lines and a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds a host waits for the deployer's confirmation before it rolls itself back.
    #[arg(long, default_value_t = 30)]
    pub confirm_timeout: u64,
    /// How to reach the hosts.
    #[command(flatten)]
    pub hosts: HostArgs,
}

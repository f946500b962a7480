//! CLI arguments for commands that reach hosts (deploy, rollback, status,
//! generations), and the SSH settings they give: for a lab site without
//! `--ssh-config`, the running lab's own `ssh_config`.
use std::path::PathBuf;

use ferry_lang::inventory::InventorySource;
use ferry_lang::Site;

use crate::cli::GlobalArgs;
use crate::deploy::hosts::Reach;
use crate::transport::bootstrap::AgentSettings;
use crate::transport::ssh::SshSettings;

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

/// The ssh config to use for `site`.
pub fn ssh_config(site: &Site, args: &HostArgs) -> Option<PathBuf> {
    if args.ssh_config.is_some() {
        return args.ssh_config.clone();
    }
    match &site.inventory.source {
        // Only a lab that is up has an ssh config.
        Some(InventorySource::Lab(_)) => crate::lab::load(&site.name)
            .ok()
            .map(|lab| lab.ssh_config()),
        _ => None,
    }
}

/// How to reach the hosts of `site`.
pub fn reach(global: &GlobalArgs, site: &Site, args: &HostArgs, progress: bool) -> Reach {
    Reach {
        ssh: SshSettings {
            config_file: ssh_config(site, args),
            options: args.ssh_options.clone(),
        },
        agent: AgentSettings {
            store_dir: global.store_dir.clone(),
            state_dir: global.state_dir.clone(),
        },
        max_parallel: usize::from(args.max_parallel),
        progress,
    }
}

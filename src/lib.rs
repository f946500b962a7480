//! ferry: evaluate a site, build its closures, copy them to hosts and activate them.
pub mod activate;
pub mod build;
pub mod cli;
pub mod closure;
pub mod commands;
pub mod deploy;
pub mod inventory;
pub mod output;
pub mod progress;
pub mod rollout;
pub mod site;
pub mod site_build;
pub mod store_cli;

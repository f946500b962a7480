//! ferry: evaluate a site, build its closures, copy them to hosts and activate them.
pub mod activate;
pub mod build;
pub mod cli;
pub mod closure;
pub mod commands;
pub mod deploy;
pub mod deploy_cli;
pub mod host_args;
pub mod inventory;
pub mod lab;
pub mod output;
pub mod progress;
pub mod remote;
pub mod site;
pub mod site_build;
pub mod store_cli;
pub mod transport;

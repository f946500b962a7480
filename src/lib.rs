//! ferry: evaluate a site, build its closures, copy them to hosts and activate them.
pub mod build;
pub mod cli;
pub mod commands;
pub mod inventory;
pub mod lab;
pub mod output;
pub mod remote;
pub mod site;
pub mod store_cli;
pub mod transport;

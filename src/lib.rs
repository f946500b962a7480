//! ferry: evaluate a site, build its closures, copy them to hosts and activate them.
#![warn(missing_docs)]
pub mod activate;
pub mod agent;
pub mod build;
pub mod cli;
pub mod closure;
pub mod deploy;
pub mod inventory;
pub mod lab;
pub mod site;
pub mod transport;

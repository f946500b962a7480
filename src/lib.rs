//! ferry: evaluate a site, build its closures, copy them to hosts and activate them.
pub mod activate;
pub mod build;
pub mod cli;
pub mod commands;
pub mod inventory;
pub mod output;
pub mod rollout;

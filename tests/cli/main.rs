//! The ferry binary on the deployer: CLI output and diagnostics, every site file, builds, inventories, the store's CLI and crash safety, and one test per fixed bug.
//! One test binary per group, so the crate is linked once per group rather than once per file.
mod ansible_readers;
mod build_site;
mod cli_completions;
mod cli_site;
mod debian_site;
mod inventory_providers;
mod regression;
mod site_files;
mod store_cli;
mod store_crash;

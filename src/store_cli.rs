//! Glue between `ferry-store` and the CLI: open the store named by the global options, and
//! turn store errors into user-facing reports (what, why, a hint; exit 2 for bad input).
use ferry_store::{Store, StoreError};

use crate::cli::GlobalArgs;
use crate::output::CommandError;

/// Opens the store of `--store-dir` / `--state-dir`.
pub fn open(global: &GlobalArgs) -> Result<Store, CommandError> {
    Store::open(&global.store_dir, &global.state_dir).map_err(error)
}

/// Renders a store error with its hint; bad input exits 2, anything else 1.
pub fn error(error: StoreError) -> CommandError {
    let report = match error.hint() {
        Some(hint) => miette::miette!(help = hint, "{error}"),
        None => miette::miette!("{error}"),
    };
    if error.is_bad_input() {
        CommandError::input(report)
    } else {
        CommandError::failure(report)
    }
}

//! ferry-lang: the site language — parser, evaluator and diagnostics. No I/O of its own.
pub mod inventory;

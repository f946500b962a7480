//! One module per verb; each wires a library call to output and nothing more.
pub mod build;
pub mod check;
pub mod closure;
pub mod completions;
pub mod copy;
pub mod deploy;
pub mod eval;
pub mod gc;
pub mod generations;
pub mod lab;
pub mod man;
pub mod plan;
pub mod remote;
pub mod remote_supervise;
pub mod rollback;
pub mod status;
pub mod store;

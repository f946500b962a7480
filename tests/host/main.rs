//! Activation on one host with real processes: the engine, generations, health checks, the supervisor, and the agent protocol over the local transport.
//! One test binary per group, so the crate is linked once per group rather than once per file.
mod activate_engine;
mod activate_generations;
mod activate_health;
mod activate_supervisor;
mod activate_support;
mod agent_protocol;
#[path = "../support/test_pki.rs"]
mod test_pki;
mod usr_tree;

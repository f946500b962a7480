//! Lab fleets (network namespaces and real sshd, as root): the agent, closure copies, deploys, rollouts and the README's demo.
//! One test binary per group, so the crate is linked once per group rather than once per file.
mod agent_activation;
mod common;
mod copy_lab;
mod demo;
mod deploy_cli;
mod lab_fleet;
mod lab_root;
mod local_repo;
mod rollout_lab;
#[path = "../support/test_pki.rs"]
mod test_pki;

//! Deploys across a site: plans, host selection, policies, the rollout loop,
//! sessions with many hosts, secrets delivery and site generations.
pub mod diff;
pub mod execute;
pub mod hosts;
pub mod plan;
pub mod policy;
pub mod report;
pub mod run;
pub mod secrets;
pub mod selector;
pub mod site_generation;

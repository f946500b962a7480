//! Deploys across a site: plans, host selection, policies and site generations.
pub mod plan;
pub mod policy;
pub mod selector;
pub mod site_generation;

//! Builds: turn recipes into store objects (DESIGN §5).
pub mod recipe;
pub mod sandbox;
pub mod scheduler;

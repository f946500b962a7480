//! Host-side activation (DESIGN §8): the system manifest, generations and
//! the host lock, service backends (ferry's supervisor, systemd), health
//! checks, secrets, and the activation engine with rollback, crash recovery
//! and the magic-rollback confirmation record.
//!
//! How the host agent (`ferry remote`) uses it, once the system's closure is
//! in the host's store and its secrets were written with
//! [`secrets::write_secret`]:
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::{Duration, SystemTime};
//! use ferry::activate::{backend, supervisor::SupervisorLauncher, ActivationOptions, Activator};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (state, store) = (Path::new("/ferry/var"), Path::new("/ferry/store"));
//! let backend = backend::detect(state, SupervisorLauncher::current_exe()?);
//! let options = ActivationOptions {
//!     confirm_within: Some(Duration::from_secs(30)),
//!     ..ActivationOptions::default()
//! };
//! let mut activator = Activator::new(state, store, backend, options);
//! let report = activator.activate(Path::new("/ferry/store/…-system-web"))?;
//! // … report goes back to the deployer; later, over a new connection:
//! if let ferry::activate::Outcome::Activated { generation } = report.outcome {
//!     activator.confirm(generation)?;
//! }
//! // A detached watchdog calls this after the deadline:
//! activator.check_pending(SystemTime::now())?;
//! # Ok(())
//! # }
//! ```
pub mod backend;
pub mod engine;
pub mod env;
pub mod generations;
pub mod health;
pub mod manifest;
pub(crate) mod process;
pub mod secrets;
pub mod service;
pub mod supervisor;
mod tls;
pub mod usr_tree;

pub use engine::{
    ActivationError, ActivationOptions, ActivationReport, Activator, HostStatus, Outcome,
    PendingConfirmation,
};
pub use generations::{Generation, HostLock, Profiles};
pub use manifest::{diff, Manifest, ManifestDiff};

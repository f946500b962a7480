//! Host-side activation (DESIGN §8): the system manifest, generations and
//! the host lock, service backends (ferry's supervisor, systemd), health
//! checks, secrets, and the activation engine with rollback, crash recovery
//! and the magic-rollback confirmation record.
pub mod backend;
pub mod engine;
pub mod generations;
pub mod health;
pub mod manifest;
pub mod secrets;
pub mod supervisor;

pub use engine::{
    ActivationError, ActivationOptions, ActivationReport, Activator, HostStatus, Outcome,
    PendingConfirmation,
};
pub use generations::{Generation, HostLock, Profiles};
pub use manifest::{diff, Manifest, ManifestDiff};

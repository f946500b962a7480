//! The service-backend trait: install service definitions, start, stop,
//! restart and query services by name. One implementation per file under
//! `backend/`: ferry's own supervisor and systemd.
pub mod supervisor;
pub mod systemd;

use std::path::Path;
use std::time::Duration;

use super::supervisor::SupervisorLauncher;

pub use super::service::{BackendError, ServiceDefinition, ServiceState, ServiceStatus};
pub use supervisor::SupervisorBackend;
pub use systemd::SystemdBackend;

/// The backend for this host: systemd when it is the running init (the
/// check `sd_booted(3)` does: `/run/systemd/system` exists), else ferry's
/// supervisor, started with `launcher` when needed.
pub fn detect(state_dir: &Path, launcher: SupervisorLauncher) -> Box<dyn ServiceBackend> {
    if Path::new("/run/systemd/system").is_dir() {
        Box::new(SystemdBackend::new(Path::new("/etc/systemd/system")))
    } else {
        Box::new(SupervisorBackend::new(state_dir, launcher))
    }
}

/// Installs and controls services. Names refer to definitions installed by
/// `define`; every operation acts on the named services in the order given.
pub trait ServiceBackend {
    /// A short name for reports (`supervisor`, `systemd`).
    fn kind(&self) -> &'static str;
    /// Installs or replaces definitions; running services keep running with
    /// their old definition until restarted.
    fn define(&mut self, services: &[ServiceDefinition]) -> Result<(), BackendError>;
    /// Forgets definitions (stopping the services first).
    fn remove(&mut self, names: &[String], grace: Duration) -> Result<(), BackendError>;
    /// Starts services that are not running; a one-shot service runs to its
    /// end and its failure is an error.
    fn start(&mut self, names: &[String]) -> Result<(), BackendError>;
    /// Stops services: SIGTERM to the whole process group, SIGKILL after `grace`.
    fn stop(&mut self, names: &[String], grace: Duration) -> Result<(), BackendError>;
    /// Stop, then start.
    fn restart(&mut self, names: &[String], grace: Duration) -> Result<(), BackendError> {
        self.stop(names, grace)?;
        self.start(names)
    }
    /// The status of the named services (all known ones when `names` is empty).
    fn status(&mut self, names: &[String]) -> Result<Vec<ServiceStatus>, BackendError>;
}

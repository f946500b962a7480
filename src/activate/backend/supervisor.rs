//! [`ServiceBackend`] over ferry's own supervisor daemon: every call is one
//! request on its unix socket; the daemon is started on first use.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BackendError, ServiceBackend, ServiceDefinition, ServiceStatus};
use crate::activate::supervisor::{
    SupervisorClient, SupervisorLauncher, SupervisorReply, SupervisorRequest,
};

/// Talks to the supervisor of one state dir.
pub struct SupervisorBackend {
    state_dir: PathBuf,
    launcher: SupervisorLauncher,
    client: Option<SupervisorClient>,
}

impl SupervisorBackend {
    /// A backend that starts the daemon with `launcher` when it is not running.
    pub fn new(state_dir: &Path, launcher: SupervisorLauncher) -> SupervisorBackend {
        SupervisorBackend {
            state_dir: state_dir.to_path_buf(),
            launcher,
            client: None,
        }
    }

    fn call(&mut self, request: &SupervisorRequest) -> Result<SupervisorReply, BackendError> {
        // One retry on a fresh connection: the daemon may have been
        // restarted since the last call.
        for attempt in 0..2 {
            if self.client.is_none() {
                self.client = Some(SupervisorClient::connect_or_start(
                    &self.state_dir,
                    &self.launcher,
                )?);
            }
            let Some(client) = self.client.as_mut() else {
                continue;
            };
            match client.call(request) {
                Ok(r) => return Ok(r),
                Err(e @ BackendError::Refused { .. }) => return Err(e),
                Err(e) if attempt == 1 => return Err(e),
                Err(_) => self.client = None,
            }
        }
        Err(BackendError::Protocol {
            message: "no connection to the supervisor".into(),
        })
    }

    fn expect_ok(&mut self, request: &SupervisorRequest) -> Result<(), BackendError> {
        match self.call(request)? {
            SupervisorReply::Ok => Ok(()),
            other => Err(BackendError::Protocol {
                message: format!("expected ok, got {other:?}"),
            }),
        }
    }
}

impl ServiceBackend for SupervisorBackend {
    fn kind(&self) -> &'static str {
        "supervisor"
    }

    fn define(&mut self, services: &[ServiceDefinition]) -> Result<(), BackendError> {
        self.expect_ok(&SupervisorRequest::Define {
            services: services.to_vec(),
        })
    }

    fn remove(&mut self, names: &[String], grace: Duration) -> Result<(), BackendError> {
        self.expect_ok(&SupervisorRequest::Remove {
            names: names.to_vec(),
            grace_ms: grace.as_millis() as u64,
        })
    }

    fn start(&mut self, names: &[String]) -> Result<(), BackendError> {
        self.expect_ok(&SupervisorRequest::Start {
            names: names.to_vec(),
        })
    }

    fn stop(&mut self, names: &[String], grace: Duration) -> Result<(), BackendError> {
        self.expect_ok(&SupervisorRequest::Stop {
            names: names.to_vec(),
            grace_ms: grace.as_millis() as u64,
        })
    }

    fn status(&mut self, names: &[String]) -> Result<Vec<ServiceStatus>, BackendError> {
        self.call(&SupervisorRequest::Status {
            names: names.to_vec(),
        })?
        .into_statuses()
    }
}

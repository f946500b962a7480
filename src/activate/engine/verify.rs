//! The last forward step: watch the started services settle, then run the
//! new generation's health checks.
use std::time::{Duration, Instant};

use super::{ActivationReport, Activator};
use crate::activate::backend::ServiceState;
use crate::activate::health::{self, CommandContext, HealthResult};
use crate::activate::manifest::Manifest;

/// How long past the settle time a crashing service is watched for its
/// crash loop to be declared (for an exact rollback reason).
const CRASH_VERDICT_WAIT: Duration = Duration::from_secs(10);

impl Activator {
    /// Settles the long-running services of `start_order` and runs the
    /// health checks of `new` into the report; `Err` is the reason to roll
    /// back (a crash loop explains a failed check better than the check).
    pub(super) fn verify(
        &mut self,
        new: &Manifest,
        start_order: &[String],
        report: &mut ActivationReport,
    ) -> Result<(), String> {
        let long_running: Vec<String> = start_order
            .iter()
            .filter(|n| !new.services[*n].oneshot)
            .cloned()
            .collect();
        self.settle(&long_running)?;

        let results = self.run_health_checks(new);
        let failed = results.iter().find(|r| !r.passed()).map(|r| {
            format!(
                "health check of {} failed after {} attempt(s): {}: {}",
                r.service,
                r.attempts,
                r.check,
                r.failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            )
        });
        report.health = results;
        if let Some(reason) = failed {
            // A crash loop explains a failed check better than the check.
            self.settle(&long_running)?;
            return Err(reason);
        }
        Ok(())
    }

    /// Watches freshly started services for `options.settle`: a crash loop
    /// (or a service that ended) fails the activation.
    fn settle(&mut self, names: &[String]) -> Result<(), String> {
        if names.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.options.settle;
        // A service that crashed during the settle time has failed either
        // way; waiting a little longer for its crash loop to be declared
        // only makes the reason exact.
        let crash_deadline = deadline + CRASH_VERDICT_WAIT;
        loop {
            let statuses = self.backend.status(names).map_err(|e| e.to_string())?;
            let now = Instant::now();
            let mut crashing = None;
            for s in &statuses {
                let exit = s.last_exit.as_deref().unwrap_or("no exit status");
                match s.state {
                    ServiceState::CrashLooping => {
                        return Err(format!(
                            "service {} is crash-looping ({} restarts, last: {exit})",
                            s.name, s.restarts
                        ))
                    }
                    ServiceState::Failed
                    | ServiceState::Stopped
                    | ServiceState::Exited
                    | ServiceState::Unknown => {
                        return Err(format!("service {} is {} ({exit})", s.name, s.state))
                    }
                    ServiceState::Backoff => crashing = Some(s),
                    ServiceState::Running if s.restarts > 0 => crashing = Some(s),
                    ServiceState::Running => {}
                }
            }
            match crashing {
                None if now >= deadline => return Ok(()),
                Some(s) if now >= crash_deadline => {
                    return Err(format!(
                        "service {} keeps crashing ({} restarts, last: {})",
                        s.name,
                        s.restarts,
                        s.last_exit.as_deref().unwrap_or("no exit status")
                    ))
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs every health check of `manifest`, services in start order.
    pub(super) fn run_health_checks(&self, manifest: &Manifest) -> Vec<HealthResult> {
        let mut results = Vec::new();
        let Ok(order) = manifest.start_order() else {
            return results;
        };
        for name in order {
            let service = &manifest.services[&name];
            let context = CommandContext {
                env: self.service_env(&name, service),
                cwd: Some(self.service_state_dir(&name)),
                usr: manifest.usr.as_ref().map(std::path::PathBuf::from),
            };
            for check in &service.health {
                results.push(health::run_check(&name, check, &context));
            }
        }
        results
    }
}

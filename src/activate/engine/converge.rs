//! Convergence: bring the host to a generation (or to none) with its
//! services running, whatever a failed or interrupted pass left behind.
use std::collections::BTreeSet;

use super::{ActionKind, ActivationReport, Activator};
use crate::activate::backend::{ServiceDefinition, ServiceState};
use crate::activate::manifest::{self, Manifest};

impl Activator {
    /// Brings the host to generation `target` (or to no generation) with its
    /// services running, whatever state `other` (the generation we came
    /// from, if known) left behind. Unchanged running services are left alone.
    /// `touched` limits what is stopped to the services the interrupted or
    /// failed pass acted on (`None`: unknown, assume all of the difference).
    pub(super) fn converge(
        &mut self,
        target: Option<u64>,
        other: Option<&Manifest>,
        touched: Option<&BTreeSet<String>>,
        report: &mut ActivationReport,
    ) {
        let target_manifest = match target.map(|n| self.manifest_of(n)) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                report
                    .rollback_errors
                    .push(format!("cannot read the manifest to roll back to: {e}"));
                return;
            }
        };
        if let Some(other) = other {
            self.leave_other(other, target_manifest.as_ref(), touched, report);
        }
        if !self.switch_back(target, report) {
            return;
        }
        let Some(manifest) = target_manifest else {
            return;
        };
        if self.bring_up(&manifest, report).is_some() {
            self.check_after_rollback(&manifest, report);
        }
    }

    /// Services of the other generation that are not identical in the
    /// target: stop them, in that generation's reverse dependency order;
    /// forget the ones the target does not have.
    fn leave_other(
        &mut self,
        other: &Manifest,
        target_manifest: Option<&Manifest>,
        touched: Option<&BTreeSet<String>>,
        report: &mut ActivationReport,
    ) {
        let grace = self.options.stop_grace;
        let mut leaving: BTreeSet<String> = match target_manifest {
            Some(t) => {
                let d = manifest::diff(Some(t), other);
                d.added.union(&d.changed).cloned().collect()
            }
            None => other.services.keys().cloned().collect(),
        };
        if let Some(touched) = touched {
            leaving.retain(|name| touched.contains(name));
        }
        let mut order = other
            .ordered_subset(&leaving)
            .unwrap_or_else(|_| leaving.iter().cloned().collect());
        order.reverse();
        for name in &order {
            let result = self
                .backend
                .stop(std::slice::from_ref(name), grace)
                .map_err(|e| e.to_string());
            Self::record(report, name, ActionKind::RollbackStop, result.clone().err());
            if let Err(e) = result {
                report.rollback_errors.push(format!("stopping {name}: {e}"));
            }
        }
        let gone: Vec<String> = other
            .services
            .keys()
            .filter(|n| target_manifest.is_none_or(|t| !t.services.contains_key(*n)))
            .cloned()
            .collect();
        if !gone.is_empty() {
            if let Err(e) = self.backend.remove(&gone, grace) {
                report
                    .rollback_errors
                    .push(format!("removing services: {e}"));
            }
        }
    }

    /// Points the system link at `target` (or removes it); `false` when the
    /// profiles cannot even be opened, so nothing more can be done.
    fn switch_back(&mut self, target: Option<u64>, report: &mut ActivationReport) -> bool {
        let profiles = match self.profiles() {
            Ok(p) => p,
            Err(e) => {
                report.rollback_errors.push(e.to_string());
                return false;
            }
        };
        let switched = match target {
            Some(n) => profiles.switch_to(n),
            None => profiles.clear_current(),
        };
        if let Err(e) = switched {
            report.rollback_errors.push(format!("switching back: {e}"));
        }
        true
    }

    /// Installs the target's definitions and starts every service of it that
    /// is not up; `None` when the backend cannot be brought that far.
    fn bring_up(&mut self, manifest: &Manifest, report: &mut ActivationReport) -> Option<()> {
        let order = match manifest.start_order() {
            Ok(o) => o,
            Err(e) => {
                report.rollback_errors.push(e.to_string());
                return None;
            }
        };
        let definitions: Vec<ServiceDefinition> = order
            .iter()
            .map(|n| self.definition(n, &manifest.services[n], manifest.usr.as_deref()))
            .collect();
        for name in &order {
            if let Err(e) = self.prepare_state_dirs(name, &manifest.services[name]) {
                report.rollback_errors.push(e);
            }
        }
        if let Err(e) = self.backend.define(&definitions) {
            report
                .rollback_errors
                .push(format!("installing definitions: {e}"));
            return None;
        }
        let statuses = match self.backend.status(&order) {
            Ok(s) => s,
            Err(e) => {
                report.rollback_errors.push(format!("service status: {e}"));
                return None;
            }
        };
        for status in statuses {
            let up = match status.state {
                ServiceState::Running => true,
                ServiceState::Exited => manifest.services[&status.name].oneshot,
                _ => false,
            };
            if up {
                continue;
            }
            let name = status.name;
            let result = self
                .backend
                .start(std::slice::from_ref(&name))
                .map_err(|e| e.to_string());
            Self::record(
                report,
                &name,
                ActionKind::RollbackStart,
                result.clone().err(),
            );
            if let Err(e) = result {
                report.rollback_errors.push(format!("starting {name}: {e}"));
            }
        }
        Some(())
    }

    /// Runs the target's health checks; failures become rollback errors.
    fn check_after_rollback(&mut self, manifest: &Manifest, report: &mut ActivationReport) {
        report.rollback_health = self.run_health_checks(manifest);
        for failed in report.rollback_health.iter().filter(|r| !r.passed()) {
            report.rollback_errors.push(format!(
                "health check of {} after rollback: {}",
                failed.service,
                failed
                    .failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            ));
        }
    }
}

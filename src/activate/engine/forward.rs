//! The way forward (DESIGN §8 steps 2–5): journal, pre-upgrade hooks, stop,
//! define, switch, remove, start, verify, post-upgrade hooks; on failure the
//! host converges back to where it came from.
use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use ferry_store::durable::{remove_durably, unix_ms, unix_now_ms, write_atomic};

use super::hooks::HookPhase;
use super::{
    ActionKind, ActivationError, ActivationReport, Activator, Journal, Outcome,
    PendingConfirmation, ServiceAction, JOURNAL_FILE, PENDING_FILE,
};
use crate::activate::backend::ServiceDefinition;
use crate::activate::manifest::{self, Manifest, ManifestDiff};

impl Activator {
    /// Steps 2–5 from generation `from` to `target` (already registered).
    pub(super) fn transition(
        &mut self,
        from: Option<u64>,
        target: u64,
        new: Manifest,
    ) -> Result<ActivationReport, ActivationError> {
        let started_ms = unix_now_ms();
        // A newer activation replaces whatever waited for confirmation.
        remove_durably(&self.path(PENDING_FILE))?;
        let old = match from {
            Some(n) => Some(self.manifest_of(n)?),
            None => None,
        };
        let mut diff = manifest::diff(old.as_ref(), &new);
        diff.restart_also(
            &new,
            &self.options.rotated_secrets,
            self.options.restart_all,
        );
        let mut report = ActivationReport::begin(
            Outcome::Activated { generation: target },
            from,
            Some(target),
            diff.clone(),
            started_ms,
        );
        self.write_journal(&Journal {
            from_generation: from,
            target_generation: target,
            started_ms,
            pid: std::process::id(),
        })?;
        let old_system = match from {
            Some(n) => Some(self.profiles()?.system_of(n)?),
            None => None,
        };
        let new_system = self.profiles()?.system_of(target)?;
        let forward = self.forward(
            old.as_ref(),
            &new,
            (old_system.as_deref(), &new_system),
            target,
            &diff,
            &mut report,
        );
        match forward {
            Ok(()) => {
                if let Some(within) = self.options.confirm_within {
                    let pending = PendingConfirmation {
                        generation: target,
                        previous_generation: from,
                        deadline_ms: unix_ms(SystemTime::now() + within),
                    };
                    let text = serde_json::to_vec(&pending)
                        .unwrap_or_else(|e| unreachable!("record does not serialize: {e}"));
                    write_atomic(&self.path(PENDING_FILE), &text)?;
                }
            }
            Err(reason) => {
                report.outcome = Outcome::RolledBack {
                    to_generation: from,
                    reason,
                };
                // Only what the forward pass acted on needs undoing: a
                // failed pre-upgrade hook leaves every service untouched.
                let touched: BTreeSet<String> = report
                    .actions
                    .iter()
                    .filter(|a| {
                        matches!(
                            a.action,
                            ActionKind::Stop | ActionKind::Start | ActionKind::Remove
                        )
                    })
                    .map(|a| a.service.clone())
                    .collect();
                self.converge(from, Some(&new), Some(&touched), &mut report);
            }
        }
        remove_durably(&self.path(JOURNAL_FILE))?;
        report.finished_ms = unix_now_ms();
        self.save_report(&report);
        Ok(report)
    }

    /// Adds one action, stamped now, to the report.
    pub(super) fn record(
        report: &mut ActivationReport,
        service: &str,
        action: ActionKind,
        error: Option<String>,
    ) {
        report.actions.push(ServiceAction {
            service: service.to_string(),
            action,
            at_ms: unix_now_ms(),
            error,
        });
    }

    /// The way forward; `Err` carries the reason to roll back.
    fn forward(
        &mut self,
        old: Option<&Manifest>,
        new: &Manifest,
        systems: (Option<&Path>, &Path),
        target: u64,
        diff: &ManifestDiff,
        report: &mut ActivationReport,
    ) -> Result<(), String> {
        let touched: BTreeSet<String> = diff.changed.union(&diff.added).cloned().collect();
        let start_order = new.ordered_subset(&touched).map_err(|e| e.to_string())?;
        self.run_hooks(HookPhase::PreUpgrade, &start_order, new, systems, report)?;
        self.stop_leaving(old, diff, report)?;
        self.define_started(new, &start_order)?;
        self.profiles()
            .and_then(|p| Ok(p.switch_to(target)?))
            .map_err(|e| format!("switching the system link failed: {e}"))?;
        self.remove_gone(diff, report)?;
        self.start_in_order(&start_order, report)?;
        self.verify(new, &start_order, report)?;
        // Only a verified generation is upgraded to: the hooks that finish
        // an upgrade (a migration, a cache warm-up, joining a balancer) see
        // services that settled and passed their health checks.
        self.run_hooks(HookPhase::PostUpgrade, &start_order, new, systems, report)
    }

    /// Stops the removed and changed services of `old`, in reverse
    /// dependency order.
    fn stop_leaving(
        &mut self,
        old: Option<&Manifest>,
        diff: &ManifestDiff,
        report: &mut ActivationReport,
    ) -> Result<(), String> {
        let stopping: BTreeSet<String> = diff.removed.union(&diff.changed).cloned().collect();
        let mut stop_order = match old {
            Some(m) => m.ordered_subset(&stopping).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        stop_order.reverse();
        for name in &stop_order {
            let result = self
                .backend
                .stop(std::slice::from_ref(name), self.options.stop_grace)
                .map_err(|e| e.to_string());
            Self::record(report, name, ActionKind::Stop, result.clone().err());
            result.map_err(|e| format!("stopping {name} failed: {e}"))?;
        }
        Ok(())
    }

    /// Prepares the state dirs of the services about to start and installs
    /// their definitions.
    fn define_started(&mut self, new: &Manifest, start_order: &[String]) -> Result<(), String> {
        let definitions: Vec<ServiceDefinition> = start_order
            .iter()
            .map(|name| self.definition(name, &new.services[name], new.usr.as_deref()))
            .collect();
        for name in start_order {
            self.prepare_state_dirs(name, &new.services[name])?;
        }
        self.backend
            .define(&definitions)
            .map_err(|e| format!("installing service definitions failed: {e}"))
    }

    /// Forgets the services the new generation no longer has.
    fn remove_gone(
        &mut self,
        diff: &ManifestDiff,
        report: &mut ActivationReport,
    ) -> Result<(), String> {
        let removed: Vec<String> = diff.removed.iter().cloned().collect();
        if removed.is_empty() {
            return Ok(());
        }
        let result = self
            .backend
            .remove(&removed, self.options.stop_grace)
            .map_err(|e| e.to_string());
        for name in &removed {
            Self::record(report, name, ActionKind::Remove, result.clone().err());
        }
        result.map_err(|e| format!("removing services failed: {e}"))
    }

    /// Starts the changed and added services in dependency order.
    fn start_in_order(
        &mut self,
        start_order: &[String],
        report: &mut ActivationReport,
    ) -> Result<(), String> {
        for name in start_order {
            let result = self
                .backend
                .start(std::slice::from_ref(name))
                .map_err(|e| e.to_string());
            Self::record(report, name, ActionKind::Start, result.clone().err());
            result.map_err(|e| format!("starting {name} failed: {e}"))?;
        }
        Ok(())
    }
}

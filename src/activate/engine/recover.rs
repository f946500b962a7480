//! Recovery: converge after an activation killed half-way (its journal is
//! still there), and magic rollback when a confirmation deadline passed.
use std::time::SystemTime;

use ferry_store::durable::{remove_durably, unix_ms, unix_now_ms};

use super::{
    read_json, ActivationError, ActivationReport, Activator, Journal, Outcome, JOURNAL_FILE,
    PENDING_FILE,
};
use crate::activate::generations::HostLock;
use crate::activate::manifest::ManifestDiff;

impl Activator {
    /// Converges after an interrupted activation (the caller holds the lock).
    pub(super) fn recover_locked(&mut self) -> Result<Option<ActivationReport>, ActivationError> {
        let profiles = self.profiles()?;
        profiles.purge_temporaries()?;
        let journal_path = self.path(JOURNAL_FILE);
        if !journal_path.exists() {
            return Ok(None);
        }
        let started_ms = unix_now_ms();
        let Some(journal) = read_json::<Journal>(&journal_path) else {
            // Written atomically, so unreadable means tampered with: the
            // current link is all we can trust; converge to it.
            let current = profiles.current()?;
            let mut report = self.empty_report(current, current, started_ms);
            self.converge(current, None, None, &mut report);
            remove_durably(&journal_path)?;
            return Ok(Some(report));
        };
        let interrupted = self.manifest_of(journal.target_generation).ok();
        let mut report = self.empty_report(
            journal.from_generation,
            Some(journal.target_generation),
            started_ms,
        );
        report.outcome = Outcome::RolledBack {
            to_generation: journal.from_generation,
            reason: format!(
                "the activation of generation {} was interrupted",
                journal.target_generation
            ),
        };
        self.converge(
            journal.from_generation,
            interrupted.as_ref(),
            None,
            &mut report,
        );
        // A pending confirmation refers to a state we just left.
        remove_durably(&self.path(PENDING_FILE))?;
        remove_durably(&journal_path)?;
        report.finished_ms = unix_now_ms();
        self.save_report(&report);
        Ok(Some(report))
    }

    /// Magic rollback's timer end: when a pending confirmation's deadline is
    /// before `now`, goes back to its previous generation and reports it.
    pub fn check_pending(
        &mut self,
        now: SystemTime,
    ) -> Result<Option<ActivationReport>, ActivationError> {
        match self.pending() {
            Some(p) if unix_ms(now) >= p.deadline_ms => {}
            _ => return Ok(None),
        }
        let _lock = HostLock::acquire(&self.state_dir)?;
        self.recover_locked()?;
        // Re-read under the lock: a confirmation may have arrived meanwhile.
        let Some(pending) = self.pending() else {
            return Ok(None);
        };
        if unix_ms(now) < pending.deadline_ms {
            return Ok(None);
        }
        let profiles = self.profiles()?;
        let started_ms = unix_now_ms();
        let current = profiles.current()?;
        let mut report = ActivationReport::begin(
            Outcome::RolledBack {
                to_generation: pending.previous_generation,
                reason: format!(
                    "generation {} was not confirmed before its deadline",
                    pending.generation
                ),
            },
            current,
            pending.previous_generation,
            ManifestDiff::default(),
            started_ms,
        );
        if current == Some(pending.generation) {
            let unconfirmed = self.manifest_of(pending.generation).ok();
            self.write_journal(&Journal {
                from_generation: pending.previous_generation,
                target_generation: pending.generation,
                started_ms,
                pid: std::process::id(),
            })?;
            self.converge(
                pending.previous_generation,
                unconfirmed.as_ref(),
                None,
                &mut report,
            );
        }
        remove_durably(&self.path(PENDING_FILE))?;
        remove_durably(&self.path(JOURNAL_FILE))?;
        report.finished_ms = unix_now_ms();
        self.save_report(&report);
        Ok(Some(report))
    }
}

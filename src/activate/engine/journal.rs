//! The records an activation keeps under the state dir: the journal of an
//! activation in progress and the last activation's report.
use serde::{Deserialize, Serialize};

use ferry_store::durable::write_atomic;

use super::{
    read_json, ActivationError, ActivationReport, Activator, Outcome, JOURNAL_FILE,
    LAST_REPORT_FILE,
};
use crate::activate::manifest::ManifestDiff;

/// The record of an activation in progress (written before anything is
/// stopped, removed when the host is consistent again).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Journal {
    pub(super) from_generation: Option<u64>,
    pub(super) target_generation: u64,
    pub(super) started_ms: u64,
    /// The process running the activation.
    #[serde(default)]
    pub(super) pid: u32,
}

impl Activator {
    pub(super) fn write_journal(&self, journal: &Journal) -> Result<(), ActivationError> {
        let text = serde_json::to_vec(journal)
            .unwrap_or_else(|e| unreachable!("journal does not serialize: {e}"));
        Ok(write_atomic(&self.path(JOURNAL_FILE), &text)?)
    }

    pub(super) fn save_report(&self, report: &ActivationReport) {
        // The report is informational (for `status`); failing to keep it
        // must not change the outcome.
        if let Ok(text) = serde_json::to_vec_pretty(report) {
            let _ = write_atomic(&self.path(LAST_REPORT_FILE), &text);
        }
    }

    pub(super) fn journal_owner_is_dead(&self) -> bool {
        let Some(journal) = read_json::<Journal>(&self.path(JOURNAL_FILE)) else {
            return false;
        };
        if journal.pid == 0 {
            return false;
        }
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(journal.pid as i32), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }

    pub(super) fn empty_report(
        &self,
        from: Option<u64>,
        target: Option<u64>,
        started_ms: u64,
    ) -> ActivationReport {
        ActivationReport {
            recovered: true,
            finished_ms: started_ms,
            ..ActivationReport::begin(
                Outcome::RolledBack {
                    to_generation: from,
                    reason: String::new(),
                },
                from,
                target,
                ManifestDiff::default(),
                started_ms,
            )
        }
    }
}

//! The one component that draws progress on the terminal (stderr), with
//! indicatif. Hidden when stdout is not a terminal or in `--json` mode.
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::build::{BuildObserver, NodeOutcome};

/// Whether live progress should be drawn at all.
pub fn enabled(json: bool) -> bool {
    !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// Build progress: one spinner line per running build and a total bar.
pub struct BuildProgress {
    multi: MultiProgress,
    total: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl BuildProgress {
    pub fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new_spinner());
        total.set_style(
            ProgressStyle::with_template("{spinner} built {pos}, {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        total.set_message("0 cached");
        total.enable_steady_tick(Duration::from_millis(120));
        BuildProgress {
            multi,
            total,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, what: &str) -> Option<ProgressBar> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(what)
    }

    /// Removes the bars; call before printing results.
    pub fn finish(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl BuildObserver for BuildProgress {
    fn started(&self, what: &str) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("building {what}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(what.to_string(), bar);
    }

    fn finished(&self, what: &str, outcome: NodeOutcome) {
        if let Some(bar) = self.take(what) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        match outcome {
            NodeOutcome::Built => self.total.inc(1),
            NodeOutcome::Cached => {
                let cached = self
                    .total
                    .message()
                    .trim_end_matches(" cached")
                    .parse::<u64>()
                    .unwrap_or(0)
                    + 1;
                self.total.set_message(format!("{cached} cached"));
            }
            NodeOutcome::Written => {}
        }
    }

    fn failed(&self, what: &str) {
        if let Some(bar) = self.take(what) {
            bar.abandon_with_message(format!("failed: {what}"));
        }
    }
}

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
    visible: bool,
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
        if visible {
            total.enable_steady_tick(Duration::from_millis(120));
        }
        BuildProgress {
            visible,
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
        // Hidden: no bars, and above all no ticker thread per build.
        if !self.visible {
            return;
        }
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

/// Deploy progress: one live line per host with its phase.
pub struct DeployProgress {
    multi: MultiProgress,
    lines: Mutex<HashMap<String, ProgressBar>>,
}

impl DeployProgress {
    pub fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        DeployProgress {
            multi: MultiProgress::with_draw_target(target),
            lines: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, host: &str) -> ProgressBar {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .entry(host.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<16} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(host.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }

    /// Removes the live lines; call before printing the summary.
    pub fn finish(&self) {
        for bar in self
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

impl crate::deploy::run::RolloutObserver for DeployProgress {
    fn batch(&self, index: usize, batch: &ferry_rollout::Batch, tags: &[String]) {
        let tags = if tags.is_empty() {
            String::new()
        } else {
            format!(" ({})", tags.join(", "))
        };
        let _ = self.multi.println(format!(
            "batch {}{tags}: {}",
            index + 1,
            batch.hosts.join(", ")
        ));
    }

    fn phase(&self, host: &str, phase: crate::deploy::run::Phase, detail: &str) {
        let text = match detail {
            "" => phase.to_string(),
            _ => format!("{phase}: {detail}"),
        };
        self.line(host).set_message(text);
    }

    fn stopped(&self, reason: &str) {
        let _ = self.multi.println(format!("rollout stopped: {reason}"));
    }
}

/// `--json` mode: one JSON event per line on stdout.
pub struct JsonEvents;

impl crate::deploy::run::RolloutObserver for JsonEvents {
    fn batch(&self, index: usize, batch: &ferry_rollout::Batch, _tags: &[String]) {
        crate::output::json_line(&serde_json::json!({
            "event": "batch", "index": index + 1, "kind": batch.kind, "group": batch.group, "hosts": batch.hosts
        }));
    }

    fn phase(&self, host: &str, phase: crate::deploy::run::Phase, detail: &str) {
        crate::output::json_line(
            &serde_json::json!({"event": "host", "host": host, "phase": phase, "detail": detail}),
        );
    }

    fn stopped(&self, reason: &str) {
        crate::output::json_line(&serde_json::json!({"event": "stopped", "reason": reason}));
    }
}

//! The one component that draws progress on the terminal (stderr), with
//! indicatif: builds, rollouts and copies. Hidden when stdout is not a
//! terminal or in `--json` mode (where rollout events go to stdout as JSON).
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::build::{BuildObserver, NodeOutcome};
use crate::transport::copy::{CopyError, CopyObserver, HostCopyObserver, HostCopyStats};

/// Whether live progress should be drawn at all.
pub fn enabled(json: bool) -> bool {
    !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// Lines drawn on stderr when `visible`, else drawn nowhere.
fn lines_on_stderr(visible: bool) -> MultiProgress {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    MultiProgress::with_draw_target(target)
}

/// The line style of `template`; a spinner if it does not parse (ours always do).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Build progress: one spinner line per running build and a total bar.
pub struct BuildProgress {
    visible: bool,
    multi: MultiProgress,
    total: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
    fetch: FetchProgress,
}

/// `.deb` downloads: one bar of bytes over every package being fetched.
struct FetchProgress {
    multi: MultiProgress,
    visible: bool,
    bar: Mutex<Option<ProgressBar>>,
    /// Bytes seen so far per item index.
    done: Mutex<HashMap<usize, u64>>,
}

impl FetchProgress {
    fn bar(&self) -> Option<ProgressBar> {
        if !self.visible {
            return None;
        }
        let mut bar = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            bar.get_or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(style(
                    "  fetching Debian packages {bytes}/{total_bytes} ({bytes_per_sec}) [{elapsed}]",
                ));
                bar
            })
            .clone(),
        )
    }
}

impl ferry_debian::fetch::FetchObserver for FetchProgress {
    fn started(&self, _index: usize, item: &ferry_debian::fetch::FetchItem) {
        if let Some(bar) = self.bar() {
            bar.inc_length(item.size);
        }
    }

    fn progress(&self, index: usize, done: u64, _total: u64) {
        let mut seen = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let before = seen.insert(index, done).unwrap_or(0);
        if let Some(bar) = self.bar() {
            bar.inc(done.saturating_sub(before));
        }
    }
}

impl BuildProgress {
    /// Bars on stderr when `visible`, else nothing drawn.
    pub fn new(visible: bool) -> Self {
        let multi = lines_on_stderr(visible);
        let total = multi.add(ProgressBar::new_spinner());
        total.set_style(style("{spinner} built {pos}, {msg} [{elapsed}]"));
        total.set_message("0 cached");
        if visible {
            total.enable_steady_tick(Duration::from_millis(120));
        }
        BuildProgress {
            visible,
            fetch: FetchProgress {
                multi: multi.clone(),
                visible,
                bar: Mutex::new(None),
                done: Mutex::new(HashMap::new()),
            },
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
        if let Some(bar) = self
            .fetch
            .bar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
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
        bar.set_style(style("  {spinner} {msg} [{elapsed}]"));
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
            NodeOutcome::Written | NodeOutcome::Unpacked => {}
        }
    }

    fn fetching(&self) -> &dyn ferry_debian::fetch::FetchObserver {
        &self.fetch
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
    /// Lines on stderr when `visible`, else nothing drawn.
    pub fn new(visible: bool) -> Self {
        DeployProgress {
            multi: lines_on_stderr(visible),
            lines: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` (a question to the operator) with the display held still
    /// and cleared, so that nothing draws over the question or the answer.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    fn line(&self, host: &str) -> ProgressBar {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .entry(host.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style("{spinner} {prefix:<16} {msg}"));
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
        crate::cli::output::event(serde_json::json!({
            "event": "batch", "index": index + 1, "kind": batch.kind, "group": batch.group, "hosts": batch.hosts
        }));
    }

    fn phase(&self, host: &str, phase: crate::deploy::run::Phase, detail: &str) {
        crate::cli::output::event(
            serde_json::json!({"event": "host", "host": host, "phase": phase, "detail": detail}),
        );
    }

    fn stopped(&self, reason: &str) {
        crate::cli::output::event(serde_json::json!({"event": "stopped", "reason": reason}));
    }
}

/// Copy progress: one line per host on stderr with its step, then the bytes
/// streamed and their rate.
#[derive(Debug)]
pub struct CopyProgress {
    multi: MultiProgress,
}

impl CopyProgress {
    /// Draws on stderr; make one only when [`enabled`] says so.
    pub fn new() -> CopyProgress {
        CopyProgress {
            multi: lines_on_stderr(true),
        }
    }
}

impl Default for CopyProgress {
    fn default() -> Self {
        CopyProgress::new()
    }
}

impl CopyObserver for CopyProgress {
    fn host(&self, host: &str) -> Box<dyn HostCopyObserver> {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(style(
            "{prefix:>12.bold} {msg} {bytes} ({binary_bytes_per_sec})",
        ));
        bar.set_prefix(host.to_string());
        Box::new(CopyLine {
            bar,
            ticker: Mutex::new(None),
        })
    }
}

/// The line of one host's copy.
struct CopyLine {
    bar: ProgressBar,
    /// While the stream runs: its stop flag and the thread that moves the bar.
    ticker: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl HostCopyObserver for CopyLine {
    fn step(&self, text: &str) {
        self.bar.set_message(text.to_string());
    }

    fn stream_started(&self, objects: u64, sent: Arc<AtomicU64>) {
        let bar = self.bar.clone();
        bar.set_message(format!("{objects} objects"));
        let stop = Arc::new(AtomicBool::new(false));
        let stop_ticker = Arc::clone(&stop);
        let ticker = std::thread::spawn(move || {
            while !stop_ticker.load(Ordering::Relaxed) {
                bar.set_position(sent.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.set_position(sent.load(Ordering::Relaxed));
        });
        if let Ok(mut slot) = self.ticker.lock() {
            *slot = Some((stop, ticker));
        }
    }

    fn stream_ended(&self) {
        let taken = self.ticker.lock().ok().and_then(|mut slot| slot.take());
        if let Some((stop, ticker)) = taken {
            stop.store(true, Ordering::Relaxed);
            let _ = ticker.join();
        }
    }

    fn finished(&self, result: &Result<HostCopyStats, CopyError>) {
        // A copy that failed mid-stream never said the stream ended.
        self.stream_ended();
        match result {
            // The same words as the summary table: what was sent, in bytes
            // (the agent's upload and the messages included), and what was there.
            Ok(stats) => self.bar.finish_with_message(copy_summary(stats)),
            Err(_) => self.bar.abandon_with_message("failed"),
        }
    }
}

/// One copy in words: `3 of 40 objects sent (1.2 MiB), 37 already there`,
/// or `nothing to send: all 40 objects already there (2.1 KiB of messages)`.
pub fn copy_summary(stats: &HostCopyStats) -> String {
    let bytes = crate::closure::human_size(stats.bytes_sent);
    let there = stats.closure_paths.saturating_sub(stats.objects_sent);
    if stats.objects_sent == 0 {
        let agent = if stats.agent_uploaded {
            " and the agent"
        } else {
            ""
        };
        format!(
            "nothing to send: all {} objects already there ({bytes} of messages{agent})",
            stats.closure_paths
        )
    } else {
        format!(
            "{} of {} objects sent ({bytes}), {there} already there",
            stats.objects_sent, stats.closure_paths
        )
    }
}

#[cfg(test)]
mod copy_summary_tests {
    use super::*;

    #[test]
    fn a_copy_that_sent_nothing_says_so_and_what_its_bytes_were() {
        let stats = HostCopyStats {
            closure_paths: 40,
            bytes_sent: 2150,
            ..HostCopyStats::default()
        };
        assert_eq!(
            copy_summary(&stats),
            "nothing to send: all 40 objects already there (2.1 KiB of messages)"
        );
        let stats = HostCopyStats {
            objects_sent: 3,
            ..stats
        };
        assert_eq!(
            copy_summary(&stats),
            "3 of 40 objects sent (2.1 KiB), 37 already there"
        );
    }
}

//! The human summary of a deploy: one row per host, then the outcome.
use std::fmt::Write;

use super::execute::DeployReport;
use super::run::HostResult;
use crate::closure::human_size;

/// The summary table printed at the end of `ferry deploy` / `ferry rollback`.
pub fn summary(report: &DeployReport) -> String {
    let mut out = String::new();
    let copied: std::collections::BTreeMap<&str, u64> = report
        .copies
        .iter()
        .map(|c| (c.host.as_str(), c.bytes_sent))
        .collect();
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:<10} result",
        "host", "class", "copied"
    );
    for host in &report.plan.hosts {
        let copied = copied
            .get(host.name.as_str())
            .map(|b| human_size(*b))
            .unwrap_or_else(|| "-".to_string());
        let result = match report.outcome.hosts.get(&host.name) {
            Some(run) => {
                match (&run.result, &run.reverted) {
                    (HostResult::Activated { generation }, None) => {
                        format!("activated generation {generation}")
                    }
                    (HostResult::Activated { generation }, Some(HostResult::Failed { reason })) => {
                        format!("activated generation {generation}, but rolling it back failed: {reason}")
                    }
                    (HostResult::Activated { generation }, Some(_)) => {
                        format!("rolled back (generation {generation} undone with the run)")
                    }
                    (HostResult::RolledBack { reason, .. }, _) => format!("rolled back: {reason}"),
                    (HostResult::Failed { reason }, _) => format!("failed: {reason}"),
                }
            }
            None => match &host.unreachable {
                Some(reason) => format!("not touched (unreachable: {reason})"),
                None if !host.changes => "unchanged".to_string(),
                None => "not touched".to_string(),
            },
        };
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<10} {result}",
            host.name, host.class, copied
        );
    }
    let planned: std::collections::BTreeSet<&str> =
        report.plan.hosts.iter().map(|h| h.name.as_str()).collect();
    // An unreachable host the plan covers has its row above (failed or not touched).
    for (host, reason) in report
        .unreachable
        .iter()
        .filter(|(h, _)| !planned.contains(h.as_str()))
    {
        let _ = writeln!(
            out,
            "{host:<16} {:<10} {:<10} unreachable: {reason}",
            "?", "-"
        );
    }
    if let Some(reason) = &report.outcome.stopped {
        let _ = writeln!(out, "rollout stopped: {reason}");
    }
    match report.site_generation {
        Some(n) => {
            let _ = writeln!(out, "recorded site generation {n}");
        }
        None => {
            let _ = writeln!(out, "dry run: nothing was copied or activated");
        }
    }
    out
}

//! Deploy phase 4, the copy: every changing host gets its target's whole
//! closure before any host is activated; hosts with the same target share
//! one copy run.
use std::collections::{BTreeMap, BTreeSet};

use ferry_lang::inventory::HostEntry;
use ferry_store::StorePath;

use super::{CopySummary, DeployRequest};
use crate::transport::bootstrap::AgentBinary;
use crate::transport::copy::{copy_closure, AgentSource, CopyReport};
use crate::transport::error_chain;

/// What the copy phase did.
pub(super) struct Copied {
    /// One summary per host a copy run reported on.
    pub copies: Vec<CopySummary>,
    /// host → why it did not get its closure (it is not activated).
    pub failed: BTreeMap<String, String>,
}

/// Copies to every host of `reachable` that is in `changing` its target's closure.
pub(super) fn copy_closures(
    request: &DeployRequest<'_>,
    binary: &AgentBinary,
    reachable: &[&HostEntry],
    targets: &BTreeMap<String, StorePath>,
    changing: &BTreeSet<String>,
) -> Copied {
    let mut by_target: BTreeMap<&StorePath, Vec<HostEntry>> = BTreeMap::new();
    for host in reachable.iter().filter(|h| changing.contains(&h.name)) {
        by_target
            .entry(&targets[&host.name])
            .or_default()
            .push((*host).clone());
    }
    let options = request.reach.copy_options();
    let mut copied = Copied {
        copies: Vec::new(),
        failed: BTreeMap::new(),
    };
    for (target, hosts) in &by_target {
        match copy_closure(
            request.store,
            AgentSource::Ready(binary),
            hosts,
            std::slice::from_ref(*target),
            &options,
        ) {
            Ok(report) => copied.add(report),
            Err(e) => {
                for host in hosts {
                    copied.failed.insert(host.name.clone(), e.to_string());
                }
            }
        }
    }
    copied
}

impl Copied {
    /// Adds the hosts of one copy run.
    fn add(&mut self, report: CopyReport) {
        for host in report.hosts {
            let (ok, stats, error) = match host.result {
                Ok(stats) => (true, stats, None),
                Err(e) => (false, Default::default(), Some(error_chain(&e))),
            };
            if let Some(error) = &error {
                self.failed.insert(host.host.clone(), error.clone());
            }
            self.copies.push(CopySummary {
                host: host.host,
                ok,
                objects_sent: stats.objects_sent,
                bytes_sent: stats.bytes_sent,
                error,
            });
        }
    }
}

//! Deploy phase 1, the survey: ask every selected host (live) what it runs
//! now, and confirm a generation an earlier run left waiting when it is this
//! run's target.
use std::collections::BTreeMap;
use std::time::Duration;

use ferry_lang::inventory::HostEntry;

use super::DeployRequest;
use crate::deploy::hosts::{for_hosts, Sessions};
use crate::deploy::plan::CurrentHost;
use crate::transport::error_chain;

/// How long a deploy waits for an activation already running on a host.
const ACTIVATION_WAIT: Duration = Duration::from_secs(15 * 60);

/// What the selected hosts run now, as far as they could be asked.
pub(super) struct Survey<'a> {
    /// host → what it runs (every host that answered).
    pub current: BTreeMap<String, CurrentHost>,
    /// host → why it is left out of this run (it is not touched).
    pub unreachable: BTreeMap<String, String>,
    /// The hosts this run works on, in inventory order.
    pub reachable: Vec<&'a HostEntry>,
    /// host → the paths of its active closure that were modified or
    /// missing (`--repair`: invalidated on the host, so they are sent again).
    pub repaired: BTreeMap<String, Vec<String>>,
}

/// Asks every host of `request` (in parallel) and settles leftovers.
pub(super) fn survey<'a>(request: &DeployRequest<'a>, sessions: &Sessions<'_>) -> Survey<'a> {
    // A dry run only looks; a real repair invalidates what is broken.
    let verify = request.repair.then_some(!request.dry_run);
    let answers = for_hosts(&request.hosts, request.reach.max_parallel, |h| {
        current(sessions, h, verify)
    });
    let mut current = BTreeMap::new();
    let mut unreachable = BTreeMap::new();
    let mut pending = BTreeMap::new();
    let mut repaired = BTreeMap::new();
    for (host, answer) in request.hosts.iter().zip(answers) {
        match answer {
            Ok((now, waiting, broken)) => {
                if !broken.is_empty() {
                    repaired.insert(host.name.clone(), broken);
                }
                if let Some(generation) = waiting {
                    pending.insert(host.name.clone(), generation);
                }
                current.insert(host.name.clone(), now);
            }
            Err(reason) => {
                unreachable.insert(host.name.clone(), reason);
            }
        }
    }
    confirm_leftovers(request, sessions, &current, &pending, &mut unreachable);
    let reachable = request
        .hosts
        .iter()
        .copied()
        .filter(|h| !unreachable.contains_key(&h.name))
        .collect();
    Survey {
        current,
        unreachable,
        reachable,
        repaired,
    }
}

/// What `host` runs now, and the generation still waiting for the
/// deployer's confirmation, if any. An activation still running on the
/// host (say, of a deploy that was killed) is waited for first: until it
/// ends, what the host runs is not settled.
/// With `verify` (`Some(repair)`), also the paths of its active closure that
/// were modified or missing.
fn current(
    sessions: &Sessions<'_>,
    host: &HostEntry,
    verify: Option<bool>,
) -> Result<(CurrentHost, Option<u64>, Vec<String>), String> {
    let mut session = sessions.open(host)?;
    let started = std::time::Instant::now();
    let status = loop {
        let status = session.status().map_err(|e| error_chain(&e))?;
        if !status.activation_in_progress {
            break status;
        }
        if started.elapsed() > ACTIVATION_WAIT {
            return Err(format!(
                "an activation has been running on the host for over {} s",
                ACTIVATION_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let broken = match verify {
        Some(repair) => session
            .verify(repair)
            .map_err(|e| error_chain(&e))?
            .corrupt
            .into_iter()
            .map(|c| c.path.to_string())
            .collect(),
        None => Vec::new(),
    };
    let _ = session.close();
    let pending = status.pending_confirmation.map(|p| p.generation);
    let now = CurrentHost {
        system: status.system.map(|p| p.display().to_string()),
        generation: status.generation,
        secrets: status.secrets,
    };
    Ok((now, pending, broken))
}

/// An earlier run that died after switching a host but before confirming
/// it left the host waiting: if that is this run's target, confirm it now,
/// or the host would roll itself back after this run "succeeded". A host
/// whose confirmation fails joins `unreachable`.
fn confirm_leftovers(
    request: &DeployRequest<'_>,
    sessions: &Sessions<'_>,
    current: &BTreeMap<String, CurrentHost>,
    pending: &BTreeMap<String, u64>,
    unreachable: &mut BTreeMap<String, String>,
) {
    for host in &request.hosts {
        let (Some(&generation), Some(target), Some(now)) = (
            pending.get(&host.name),
            request.targets.get(&host.name),
            current.get(&host.name),
        ) else {
            continue;
        };
        if request.selection.is_all()
            && now.generation == Some(generation)
            && now.system.as_deref() == Some(target.as_str())
        {
            // Confirms over a new connection.
            match sessions.run(host, |s| s.confirm(generation)) {
                Ok(true) => {}
                Ok(false) => {
                    unreachable.insert(host.name.clone(), format!("generation {generation} was waiting for confirmation but rolled back first"));
                }
                Err(reason) => {
                    unreachable.insert(host.name.clone(), reason);
                }
            }
        }
    }
}

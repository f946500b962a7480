//! The built-in rollout strategy: stages by class order, then canary, groups and batches.
//!
//! Within a stage, hosts are split into groups by the `group_by` label (one
//! group at a time, groups never interleave), then each group into batches of
//! at most `batch` hosts. `batch = P%` is P% of the group (or of the stage
//! without `group_by`), rounded up, at least one host.
//!
//! Stages come first, groups second: with `group_by = datacenter`, every db
//! host in every datacenter is done before the first web host starts (db eu1,
//! db us1, web eu1, web us1). Dependencies are fleet-wide — a web host may use
//! a db in another datacenter — so grouping never weakens the class order.
//! Groups follow `group_order`, then sorted label values, then hosts without
//! the label; hosts keep plan (inventory) order inside a group.
//!
//! Hosts that could not be reached go last in their group (in plan order
//! among themselves), so that a canary proves the new system on hosts that
//! answer; they still count as failures of the batch they land in.
//!
//! Canary: the first batch of every stage is its canary, `canary` hosts taken
//! from the stage's first group (so at most that group's size). It is also
//! capped by the batch limit, because `batch` promises "at most that many
//! hosts activating at once". The canary proves the stage's new system on a
//! few hosts; the rest of the stage waits until it is healthy (and, with
//! `pause`, until the pause is over), and a failing canary stops the run
//! (see [`crate::RolloutProgress`]).
use std::collections::BTreeMap;

use crate::order::ClassOrder;
use crate::plan::{PlannedHost, RolloutPlan};
use crate::schedule::{Batch, BatchKind, Stage};
use crate::{PolicyError, RolloutStrategy};

/// The strategy used when the policy names no external program.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinStrategy;

impl RolloutStrategy for BuiltinStrategy {
    fn name(&self) -> String {
        "the built-in strategy".into()
    }

    fn batches(&self, plan: &RolloutPlan) -> Result<Vec<Stage>, PolicyError> {
        plan.policy
            .validate()
            .map_err(|reason| PolicyError::InvalidPolicy { reason })?;
        let order = ClassOrder::of(plan)?;
        let mut stages = Vec::new();
        for class_stage in order.stages {
            let hosts: Vec<&PlannedHost> = plan
                .changing_hosts()
                .filter(|host| class_stage.classes.contains(&host.class))
                .collect();
            if hosts.is_empty() {
                continue;
            }
            stages.push(Stage {
                classes: class_stage.classes,
                reasons: class_stage.reasons,
                batches: batch_stage(plan, &hosts),
            });
        }
        Ok(stages)
    }
}

/// Splits one stage's changing hosts (in plan order) into groups and batches.
fn batch_stage(plan: &RolloutPlan, hosts: &[&PlannedHost]) -> Vec<Batch> {
    let policy = &plan.policy;
    let groups: Vec<(Option<String>, Vec<&PlannedHost>)> = match &policy.group_by {
        None => vec![(None, hosts.to_vec())],
        Some(label) => {
            let mut by_value: BTreeMap<Option<&String>, Vec<&PlannedHost>> = BTreeMap::new();
            for &host in hosts {
                by_value
                    .entry(host.labels.get(label))
                    .or_default()
                    .push(host);
            }
            // Explicitly ordered values first, then the rest sorted, unlabelled last.
            let mut ordered: Vec<(Option<String>, Vec<&PlannedHost>)> = Vec::new();
            for value in &policy.group_order {
                if let Some(members) = by_value.remove(&Some(value)) {
                    ordered.push((Some(value.clone()), members));
                }
            }
            let unlabelled = by_value.remove(&None);
            ordered.extend(
                by_value
                    .into_iter()
                    .map(|(value, members)| (value.cloned(), members)),
            );
            if let Some(members) = unlabelled {
                ordered.push((None, members));
            }
            ordered
        }
    };
    let mut batches = Vec::new();
    let mut canary_left = policy.canary_size();
    for (group, mut members) in groups {
        // Stable: plan order within the reachable and the unreachable hosts.
        members.sort_by_key(|host| host.unreachable.is_some());
        let limit = policy.batch.limit(members.len());
        let mut rest: &[&PlannedHost] = &members;
        if canary_left > 0 {
            let size = canary_left.min(limit).min(rest.len());
            batches.push(batch(BatchKind::Canary, &group, &rest[..size]));
            rest = &rest[size..];
            canary_left = 0;
        }
        for chunk in rest.chunks(limit) {
            batches.push(batch(BatchKind::Normal, &group, chunk));
        }
    }
    batches
}

fn batch(kind: BatchKind, group: &Option<String>, hosts: &[&PlannedHost]) -> Batch {
    Batch {
        kind,
        group: group.clone(),
        hosts: hosts.iter().map(|h| h.name.clone()).collect(),
    }
}

//! Property tests of the built-in rollout strategy: whatever the site and policy,
//! the schedule keeps its promises. Each property is checked here from the
//! plan itself, not by calling the engine's own checker.
use std::collections::{BTreeMap, BTreeSet};

use ferry_rollout::{
    schedule, Batch, BatchKind, BatchSize, BuiltinStrategy, Order, PlannedHost, Policy,
    PolicyError, RolloutPlan, RolloutSchedule, RolloutStrategy, ServiceEdge, ServiceNode, Stage,
};
use proptest::prelude::*;

const DATACENTERS: [Option<&str>; 4] = [Some("eu1"), Some("us1"), Some("ap1"), None];

fn class_name(i: usize) -> String {
    format!("c{i}")
}

/// Hosts: (class index, datacenter index, changes).
fn hosts(classes: usize) -> impl Strategy<Value = Vec<PlannedHost>> {
    prop::collection::vec(
        (0..classes, 0..DATACENTERS.len(), prop::bool::weighted(0.8)),
        0..18,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (class, dc, changes))| {
                let class = class_name(class);
                let target = format!("/ferry/store/{class}-new");
                PlannedHost {
                    name: format!("h{i:02}"),
                    labels: DATACENTERS[dc]
                        .map(|dc| ("dc".to_string(), dc.to_string()))
                        .into_iter()
                        .collect(),
                    current_system: Some(if changes {
                        format!("/ferry/store/{class}-old")
                    } else {
                        target.clone()
                    }),
                    current_generation: Some(1),
                    target_system: target,
                    unreachable: None,
                    secrets_rotated: Vec::new(),
                    repaired: Vec::new(),
                    class,
                }
            })
            .collect()
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![
            Just(Order::Dependencies),
            Just(Order::Declared),
            Just(Order::None)
        ],
        prop::option::of(0u32..4),
        prop_oneof![
            (1u32..5).prop_map(BatchSize::Count),
            (1u8..=100).prop_map(BatchSize::Percent)
        ],
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(order, canary, batch, group, us_first)| Policy {
            order,
            canary,
            batch,
            group_by: group.then(|| "dc".to_string()),
            group_order: if us_first { vec!["us1".into()] } else { vec![] },
            ..Policy::default()
        })
}

/// Services with a random level each; a service only requires services of a
/// lower level, so the service graph is acyclic while the class graph may not be.
fn acyclic_plan() -> impl Strategy<Value = RolloutPlan> {
    (1usize..5)
        .prop_flat_map(|classes| {
            (
                Just(classes),
                prop::collection::vec((0..classes, 0u8..6), 1..10),
                prop::collection::vec((0usize..10, 0usize..10), 0..14),
                hosts(classes),
                policy(),
            )
        })
        .prop_map(|(classes, services, pairs, hosts, policy)| {
            let services: Vec<(ServiceNode, u8)> = services
                .into_iter()
                .enumerate()
                .map(|(i, (class, level))| {
                    (ServiceNode::new(class_name(class), format!("s{i}")), level)
                })
                .collect();
            let requires = pairs
                .into_iter()
                .filter_map(|(a, b)| {
                    let (from, from_level) = services.get(a)?;
                    let (to, to_level) = services.get(b)?;
                    (from_level > to_level).then(|| ServiceEdge::new(from.clone(), to.clone()))
                })
                .collect();
            RolloutPlan {
                classes: (0..classes).rev().map(class_name).collect(),
                hosts,
                requires,
                policy,
            }
        })
}

/// `reach[a]` = classes a's services require, transitively.
fn class_reach(plan: &RolloutPlan) -> BTreeMap<String, BTreeSet<String>> {
    let mut reach: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for edge in &plan.requires {
        reach
            .entry(edge.from.class.clone())
            .or_default()
            .insert(edge.to.class.clone());
    }
    loop {
        let mut grew = false;
        let snapshot = reach.clone();
        for (_, set) in reach.iter_mut() {
            for mid in set.clone() {
                for next in snapshot.get(&mid).into_iter().flatten() {
                    grew |= set.insert(next.clone());
                }
            }
        }
        if !grew {
            return reach;
        }
    }
}

fn requires_class(reach: &BTreeMap<String, BTreeSet<String>>, a: &str, b: &str) -> bool {
    reach.get(a).is_some_and(|set| set.contains(b))
}

/// Batch index (global) and stage index of every scheduled host.
fn positions(schedule: &RolloutSchedule) -> BTreeMap<String, (usize, usize)> {
    let mut at = BTreeMap::new();
    let mut number = 0;
    for (stage, s) in schedule.stages.iter().enumerate() {
        for batch in &s.batches {
            for host in &batch.hosts {
                at.insert(host.clone(), (number, stage));
            }
            number += 1;
        }
    }
    at
}

fn check_schedule(plan: &RolloutPlan, schedule: &RolloutSchedule) -> Result<(), TestCaseError> {
    let by_name: BTreeMap<&str, &PlannedHost> =
        plan.hosts.iter().map(|h| (h.name.as_str(), h)).collect();

    // Every changing host exactly once; unchanged hosts listed, never batched.
    let scheduled: Vec<&String> = schedule.batches().flat_map(|b| &b.hosts).collect();
    let unique: BTreeSet<&String> = scheduled.iter().copied().collect();
    prop_assert_eq!(unique.len(), scheduled.len(), "a host is in two batches");
    let changing: BTreeSet<&String> = plan.changing_hosts().map(|h| &h.name).collect();
    prop_assert_eq!(&unique, &changing);
    let unchanged: Vec<&String> = plan
        .hosts
        .iter()
        .filter(|h| !h.changes())
        .map(|h| &h.name)
        .collect();
    prop_assert_eq!(schedule.unchanged.iter().collect::<Vec<_>>(), unchanged);

    let canary = plan.policy.canary.unwrap_or(0) as usize;
    for stage in &schedule.stages {
        prop_assert!(!stage.batches.is_empty());
        let stage_hosts: Vec<&PlannedHost> = stage
            .batches
            .iter()
            .flat_map(|b| &b.hosts)
            .map(|h| by_name[h.as_str()])
            .collect();
        for host in &stage_hosts {
            prop_assert!(
                stage.classes.contains(&host.class),
                "host outside its stage's classes"
            );
        }
        let mut seen_groups: Vec<Option<String>> = Vec::new();
        for (index, batch) in stage.batches.iter().enumerate() {
            prop_assert!(!batch.hosts.is_empty());
            // Batch size ≤ the limit of its group (or of the stage).
            let population = match &plan.policy.group_by {
                Some(label) => {
                    for host in &batch.hosts {
                        prop_assert_eq!(
                            by_name[host.as_str()].labels.get(label),
                            batch.group.as_ref()
                        );
                    }
                    stage_hosts
                        .iter()
                        .filter(|h| h.labels.get(label) == batch.group.as_ref())
                        .count()
                }
                None => stage_hosts.len(),
            };
            let limit = plan.policy.batch.limit(population);
            prop_assert!(
                batch.hosts.len() <= limit,
                "batch of {} over limit {limit}",
                batch.hosts.len()
            );
            // The canary batch comes first in its stage, and only there.
            match batch.kind {
                BatchKind::Canary => {
                    prop_assert_eq!(index, 0, "canary batch not first in its stage");
                    prop_assert!(batch.hosts.len() <= canary);
                }
                BatchKind::Normal => {
                    prop_assert!(index > 0 || canary == 0, "stage starts without canary")
                }
            }
            // Groups never interleave: a group once left is never seen again.
            if seen_groups.last() != Some(&batch.group) {
                prop_assert!(
                    !seen_groups.contains(&batch.group),
                    "group {:?} interleaved",
                    batch.group
                );
                seen_groups.push(batch.group.clone());
            }
        }
    }

    // Dependency order.
    let at = positions(schedule);
    match plan.policy.order {
        Order::Dependencies => {
            let reach = class_reach(plan);
            for edge in &plan.requires {
                let (a, b) = (&edge.from.class, &edge.to.class);
                if a == b {
                    continue;
                }
                let mutual = requires_class(&reach, b, a);
                for later in plan.changing_hosts().filter(|h| &h.class == a) {
                    for earlier in plan.changing_hosts().filter(|h| &h.class == b) {
                        let (lb, ls) = at[&later.name];
                        let (eb, es) = at[&earlier.name];
                        if mutual {
                            prop_assert_eq!(ls, es, "class-level cycle split across stages");
                        } else {
                            prop_assert!(
                                eb < lb,
                                "{} ({b}) not before {} ({a}): {edge}",
                                earlier.name,
                                later.name
                            );
                        }
                    }
                }
            }
        }
        Order::Declared => {
            for stage in &schedule.stages {
                prop_assert_eq!(stage.classes.len(), 1);
            }
            let rank = |class: &str| plan.classes.iter().position(|c| c == class);
            let ranks: Vec<_> = schedule
                .stages
                .iter()
                .map(|s| rank(&s.classes[0]))
                .collect();
            prop_assert!(
                ranks.windows(2).all(|w| w[0] < w[1]),
                "declared order not kept: {ranks:?}"
            );
        }
        Order::None => prop_assert!(schedule.stages.len() <= 1),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn built_in_schedules_keep_their_promises(plan in acyclic_plan()) {
        let schedule = schedule(&plan, &BuiltinStrategy)
            .map_err(|e| TestCaseError::fail(format!("acyclic plan refused: {e}")))?;
        check_schedule(&plan, &schedule)?;
    }

    #[test]
    fn class_level_cycles_are_accepted_as_one_stage(
        ring in 2usize..5,
        hosts in hosts(5),
        policy in policy(),
    ) {
        // c_i.a requires c_{i+1}.b around a ring: classes cycle, services do not.
        let requires: Vec<ServiceEdge> = (0..ring)
            .map(|i| ServiceEdge::new(
                ServiceNode::new(class_name(i), "a"),
                ServiceNode::new(class_name((i + 1) % ring), "b"),
            ))
            .collect();
        let plan = RolloutPlan {
            classes: (0..5).map(class_name).collect(),
            hosts,
            requires,
            policy: Policy { order: Order::Dependencies, ..policy },
        };
        let schedule = schedule(&plan, &BuiltinStrategy)
            .map_err(|e| TestCaseError::fail(format!("class cycle refused: {e}")))?;
        check_schedule(&plan, &schedule)?;
        let ring_stages: BTreeSet<usize> = schedule.stages.iter().enumerate()
            .filter(|(_, s)| s.classes.iter().any(|c| (0..ring).any(|i| c == &class_name(i))))
            .map(|(i, _)| i)
            .collect();
        prop_assert!(ring_stages.len() <= 1, "ring classes in stages {ring_stages:?}");
    }

    #[test]
    fn service_cycles_are_refused_and_named(
        plan in acyclic_plan(),
        cycle_classes in prop::collection::vec(0usize..4, 1..5),
    ) {
        let mut plan = plan;
        let members: Vec<ServiceNode> = cycle_classes.iter().enumerate()
            .map(|(i, c)| ServiceNode::new(class_name(*c), format!("loop{i}")))
            .collect();
        for (i, from) in members.iter().enumerate() {
            let to = &members[(i + 1) % members.len()];
            plan.requires.push(ServiceEdge::new(from.clone(), to.clone()));
        }
        match schedule(&plan, &BuiltinStrategy) {
            Err(PolicyError::ServiceCycle { cycle }) => {
                prop_assert!(cycle.len() >= 2);
                prop_assert_eq!(cycle.first(), cycle.last());
                for pair in cycle.windows(2) {
                    let edge = ServiceEdge::new(pair[0].clone(), pair[1].clone());
                    prop_assert!(plan.requires.contains(&edge), "{edge} is not an edge");
                }
            }
            other => prop_assert!(false, "expected a service cycle error, got {other:?}"),
        }
    }
}

/// A schedule that differs from a good one in one way, and whether it must be refused.
fn mutate(
    plan: &RolloutPlan,
    good: &RolloutSchedule,
    how: usize,
    pick: usize,
) -> Option<(Vec<Stage>, &'static str)> {
    let mut stages = good.stages.clone();
    let count: usize = stages.iter().map(|s| s.batches.len()).sum();
    if count == 0 {
        return None;
    }
    let flat: Vec<(usize, usize)> = stages
        .iter()
        .enumerate()
        .flat_map(|(s, stage)| (0..stage.batches.len()).map(move |b| (s, b)))
        .collect();
    let (s, b) = flat[pick % flat.len()];
    match how % 4 {
        0 => {
            stages[s].batches[b].hosts.pop();
            Some((stages, "a host dropped"))
        }
        1 => {
            let host = stages[s].batches[b].hosts[0].clone();
            let (s2, b2) = flat[(pick / 7) % flat.len()];
            stages[s2].batches[b2].hosts.push(host);
            Some((stages, "a host duplicated"))
        }
        2 => {
            stages[s].batches[b].hosts.push("stranger".into());
            Some((stages, "an unknown host added"))
        }
        _ => {
            // All batches in reverse order: wrong whenever two batches hold
            // hosts of classes that must be ordered.
            let reach = class_reach(plan);
            let at = positions(good);
            let ordered = plan.policy.order == Order::Dependencies
                && plan.changing_hosts().any(|a| {
                    plan.changing_hosts().any(|b| {
                        requires_class(&reach, &a.class, &b.class)
                            && !requires_class(&reach, &b.class, &a.class)
                            && at[&a.name].0 != at[&b.name].0
                    })
                });
            if !ordered {
                return None;
            }
            let mut batches: Vec<Batch> = stages.iter().flat_map(|s| s.batches.clone()).collect();
            batches.reverse();
            Some((
                vec![Stage {
                    classes: vec![],
                    reasons: vec![],
                    batches,
                }],
                "batches reversed across dependent classes",
            ))
        }
    }
}

struct Answer(Vec<Stage>);

impl RolloutStrategy for Answer {
    fn name(&self) -> String {
        "a mutated answer".into()
    }
    fn batches(&self, _plan: &RolloutPlan) -> Result<Vec<Stage>, PolicyError> {
        Ok(self.0.clone())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The checker every external answer passes refuses each kind of broken answer.
    #[test]
    fn broken_answers_are_refused(plan in acyclic_plan(), how in 0usize..4, pick in 0usize..1000) {
        let good = schedule(&plan, &BuiltinStrategy)
            .map_err(|e| TestCaseError::fail(format!("acyclic plan refused: {e}")))?;
        prop_assert!(schedule(&plan, &Answer(good.stages.clone())).is_ok());
        if let Some((stages, what)) = mutate(&plan, &good, how, pick) {
            match schedule(&plan, &Answer(stages)) {
                Err(PolicyError::InvalidSchedule { violations, .. }) => {
                    prop_assert!(!violations.is_empty());
                }
                other => prop_assert!(false, "{what}: expected refusal, got {other:?}"),
            }
        }
    }
}

//! Class ordering: from the service graph (or the declared order) to stages of classes.
//!
//! Dependencies are between services, so the class graph may have cycles
//! (`web.app → db.postgres` and `db.backup → web.static`). Such classes form
//! one strongly connected component of the class graph and are activated
//! together in one stage. Only a cycle among *services* is an error.
use std::collections::{BTreeMap, BTreeSet};

use super::plan::{Order, RolloutPlan, ServiceEdge, ServiceRef};
use super::schedule::StageReason;
use super::PolicyError;

/// The classes of one stage, and why the stage sits where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassStage {
    pub classes: Vec<String>,
    pub reasons: Vec<StageReason>,
}

/// The stages of classes for a plan's `order`, and the precedence they imply.
#[derive(Debug, Clone)]
pub(crate) struct ClassOrder {
    /// Every class of the plan, in stage order (stages without hosts included).
    pub stages: Vec<ClassStage>,
    /// later → earlier: every changing host of `earlier` must be activated in a
    /// batch before any host of `later`. Transitive; never within one stage.
    precedes: BTreeMap<String, BTreeSet<String>>,
}

impl ClassOrder {
    /// Orders the plan's classes under its policy's `order`. Refuses a cycle
    /// among services whatever the order, because such a site cannot start.
    pub fn of(plan: &RolloutPlan) -> Result<ClassOrder, PolicyError> {
        let mut names = BTreeSet::new();
        if let Some(host) = plan.hosts.iter().find(|h| !names.insert(h.name.as_str())) {
            return Err(PolicyError::DuplicateHost {
                host: host.name.clone(),
            });
        }
        check_service_cycles(&plan.requires)?;
        let classes = class_universe(plan);
        match plan.policy.order {
            Order::None => Ok(ClassOrder {
                stages: vec![ClassStage {
                    classes,
                    reasons: vec![StageReason::Unordered],
                }],
                precedes: BTreeMap::new(),
            }),
            Order::Declared => Ok(declared(classes)),
            Order::Dependencies => Ok(dependencies(classes, &plan.requires)),
        }
    }

    /// Whether every changing host of `earlier` must be done before `later` starts.
    pub fn must_precede(&self, later: &str, earlier: &str) -> bool {
        self.precedes
            .get(later)
            .is_some_and(|set| set.contains(earlier))
    }
}

/// All classes named by the plan: declared ones first, then the rest by name.
fn class_universe(plan: &RolloutPlan) -> Vec<String> {
    let mut classes: Vec<String> = Vec::new();
    for class in &plan.classes {
        if !classes.contains(class) {
            classes.push(class.clone());
        }
    }
    let mut others = BTreeSet::new();
    for class in plan.hosts.iter().map(|h| &h.class).chain(
        plan.requires
            .iter()
            .flat_map(|e| [&e.from.class, &e.to.class]),
    ) {
        if !classes.contains(class) {
            others.insert(class.clone());
        }
    }
    classes.extend(others);
    classes
}

fn declared(classes: Vec<String>) -> ClassOrder {
    let precedes = classes
        .iter()
        .enumerate()
        .map(|(i, later)| (later.clone(), classes[..i].iter().cloned().collect()))
        .collect();
    let stages = classes
        .iter()
        .enumerate()
        .map(|(i, class)| ClassStage {
            classes: vec![class.clone()],
            reasons: vec![StageReason::Declared {
                class: class.clone(),
                after: i.checked_sub(1).map(|p| classes[p].clone()),
            }],
        })
        .collect();
    ClassOrder { stages, precedes }
}

fn dependencies(classes: Vec<String>, requires: &[ServiceEdge]) -> ClassOrder {
    let rank: BTreeMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    // requires_class[a] = classes whose services a's services require directly.
    let mut requires_class: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for edge in requires {
        if edge.from.class != edge.to.class {
            requires_class
                .entry(&edge.from.class)
                .or_default()
                .insert(&edge.to.class);
        }
    }
    // Transitive closure by a walk from each class: class graphs are small.
    let reach: BTreeMap<&str, BTreeSet<&str>> = classes
        .iter()
        .map(|class| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![class.as_str()];
            while let Some(c) = todo.pop() {
                for &next in requires_class.get(c).into_iter().flatten() {
                    if seen.insert(next) {
                        todo.push(next);
                    }
                }
            }
            (class.as_str(), seen)
        })
        .collect();
    let reaches = |a: &str, b: &str| reach.get(a).is_some_and(|set| set.contains(b));

    // Strongly connected components, each listed in declaration rank.
    let mut component_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut components: Vec<Vec<&str>> = Vec::new();
    for class in &classes {
        if component_of.contains_key(class.as_str()) {
            continue;
        }
        let members: Vec<&str> = classes
            .iter()
            .map(String::as_str)
            .filter(|&other| other == class || (reaches(class, other) && reaches(other, class)))
            .collect();
        for &member in &members {
            component_of.insert(member, components.len());
        }
        components.push(members);
    }

    // Kahn's algorithm over components; ties go to the lowest declaration rank,
    // which is the component's index since components were found in rank order.
    let mut waiting_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components.len()];
    for (&from, tos) in &requires_class {
        for &to in tos {
            let (a, b) = (component_of[from], component_of[to]);
            if a != b {
                waiting_on[a].insert(b);
            }
        }
    }
    let mut placed: Vec<usize> = Vec::new();
    let mut done = vec![false; components.len()];
    while placed.len() < components.len() {
        // The component graph is acyclic by construction, so one is always ready.
        let Some(next) =
            (0..components.len()).find(|&c| !done[c] && waiting_on[c].iter().all(|&w| done[w]))
        else {
            unreachable!("the condensation of a graph into components is acyclic");
        };
        done[next] = true;
        placed.push(next);
    }

    let precedes = reach
        .iter()
        .map(|(&later, earlier_set)| {
            let earlier = earlier_set
                .iter()
                .filter(|&&earlier| component_of[later] != component_of[earlier])
                .map(|&earlier| earlier.to_owned())
                .collect();
            (later.to_owned(), earlier)
        })
        .collect();

    let stages = placed
        .into_iter()
        .map(|c| {
            let members = &components[c];
            let mut sorted: Vec<&str> = members.clone();
            sorted.sort_by_key(|m| rank[m]);
            let mut reasons = Vec::new();
            let mut inside: Vec<ServiceEdge> = requires
                .iter()
                .filter(|e| {
                    e.from.class != e.to.class
                        && members.contains(&e.from.class.as_str())
                        && members.contains(&e.to.class.as_str())
                })
                .cloned()
                .collect();
            if !inside.is_empty() {
                inside.sort();
                inside.dedup();
                reasons.push(StageReason::Together {
                    classes: sorted.iter().map(|s| s.to_string()).collect(),
                    edges: inside,
                });
            }
            let mut outward: Vec<&ServiceEdge> = requires
                .iter()
                .filter(|e| {
                    members.contains(&e.from.class.as_str())
                        && !members.contains(&e.to.class.as_str())
                })
                .collect();
            outward.sort_by_key(|e| (rank[e.from.class.as_str()], rank[e.to.class.as_str()], *e));
            outward.dedup();
            for edge in outward {
                reasons.push(StageReason::Requires { edge: edge.clone() });
            }
            if reasons.is_empty() {
                reasons.push(StageReason::Independent);
            }
            ClassStage {
                classes: sorted.into_iter().map(str::to_owned).collect(),
                reasons,
            }
        })
        .collect();
    ClassOrder { stages, precedes }
}

/// Refuses a cycle among services, naming it: `web.app → db.pg → web.app`.
fn check_service_cycles(requires: &[ServiceEdge]) -> Result<(), PolicyError> {
    let mut next: BTreeMap<&ServiceRef, BTreeSet<&ServiceRef>> = BTreeMap::new();
    for edge in requires {
        next.entry(&edge.from).or_default().insert(&edge.to);
        next.entry(&edge.to).or_default();
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    let mut mark: BTreeMap<&ServiceRef, Mark> = next.keys().map(|&s| (s, Mark::Unseen)).collect();
    // An explicit stack instead of recursion: service graphs of big sites can be deep.
    for &start in next.keys() {
        if mark[start] != Mark::Unseen {
            continue;
        }
        let mut path: Vec<(&ServiceRef, Vec<&ServiceRef>)> =
            vec![(start, next[start].iter().rev().copied().collect())];
        mark.insert(start, Mark::OnPath);
        while let Some((node, pending)) = path.last_mut() {
            let node = *node;
            match pending.pop() {
                None => {
                    mark.insert(node, Mark::Done);
                    path.pop();
                }
                Some(child) => match mark[child] {
                    Mark::Done => {}
                    Mark::OnPath => {
                        let from = path.iter().position(|(s, _)| *s == child).unwrap_or(0);
                        let mut cycle: Vec<ServiceRef> =
                            path[from..].iter().map(|(s, _)| (*s).clone()).collect();
                        cycle.push(child.clone());
                        return Err(PolicyError::ServiceCycle { cycle });
                    }
                    Mark::Unseen => {
                        mark.insert(child, Mark::OnPath);
                        path.push((child, next[child].iter().rev().copied().collect()));
                    }
                },
            }
        }
    }
    Ok(())
}

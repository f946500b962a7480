//! Class ordering: from the service graph (or the declared order) to stages of classes.
//!
//! Dependencies are between services, so the class graph may have cycles
//! (`web.app → db.postgres` and `db.backup → web.static`). Such classes form
//! one strongly connected component of the class graph and are activated
//! together in one stage. Only a cycle among *services* is an error.
use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{Order, RolloutPlan, ServiceEdge, ServiceNode};
use crate::schedule::StageReason;
use crate::PolicyError;

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

/// Class → classes, each a set: who requires whom, or who must follow whom.
type ClassSets<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

/// `order = dependencies`: classes grouped into strongly connected components
/// of the class graph, the components placed in dependency order.
fn dependencies(classes: Vec<String>, requires: &[ServiceEdge]) -> ClassOrder {
    let rank: BTreeMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let requires_class = class_requirements(requires);
    let reach = transitive_requirements(&classes, &requires_class);
    let (components, component_of) = strongly_connected(&classes, &reach);
    let placed = component_order(&components, &component_of, &requires_class);
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
        .map(|c| component_stage(&components[c], requires, &rank))
        .collect();
    ClassOrder { stages, precedes }
}

/// requires_class[a] = classes whose services a's services require directly.
fn class_requirements(requires: &[ServiceEdge]) -> ClassSets<'_> {
    let mut requires_class: ClassSets<'_> = BTreeMap::new();
    for edge in requires {
        if edge.from.class != edge.to.class {
            requires_class
                .entry(&edge.from.class)
                .or_default()
                .insert(&edge.to.class);
        }
    }
    requires_class
}

/// Every class each class requires, directly or not.
fn transitive_requirements<'a>(
    classes: &'a [String],
    requires_class: &ClassSets<'a>,
) -> ClassSets<'a> {
    // Transitive closure by a walk from each class: class graphs are small.
    classes
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
        .collect()
}

/// Strongly connected components, each listed in declaration rank, and the
/// component of each class.
fn strongly_connected<'a>(
    classes: &'a [String],
    reach: &ClassSets<'a>,
) -> (Vec<Vec<&'a str>>, BTreeMap<&'a str, usize>) {
    let reaches = |a: &str, b: &str| reach.get(a).is_some_and(|set| set.contains(b));
    let mut component_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut components: Vec<Vec<&str>> = Vec::new();
    for class in classes {
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
    (components, component_of)
}

/// The components' indices in activation order.
fn component_order(
    components: &[Vec<&str>],
    component_of: &BTreeMap<&str, usize>,
    requires_class: &ClassSets<'_>,
) -> Vec<usize> {
    // Kahn's algorithm over components; ties go to the lowest declaration rank,
    // which is the component's index since components were found in rank order.
    let mut waiting_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components.len()];
    for (&from, tos) in requires_class {
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
    placed
}

/// One component as a stage: its classes in declaration rank, and why it sits
/// where it does.
fn component_stage(
    members: &[&str],
    requires: &[ServiceEdge],
    rank: &BTreeMap<&str, usize>,
) -> ClassStage {
    let mut sorted: Vec<&str> = members.to_vec();
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
            members.contains(&e.from.class.as_str()) && !members.contains(&e.to.class.as_str())
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
}

/// Refuses a cycle among services, naming it: `web.app → db.pg → web.app`.
fn check_service_cycles(requires: &[ServiceEdge]) -> Result<(), PolicyError> {
    let mut next: BTreeMap<&ServiceNode, BTreeSet<&ServiceNode>> = BTreeMap::new();
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
    let mut mark: BTreeMap<&ServiceNode, Mark> = next.keys().map(|&s| (s, Mark::Unseen)).collect();
    // An explicit stack instead of recursion: service graphs of big sites can be deep.
    for &start in next.keys() {
        if mark[start] != Mark::Unseen {
            continue;
        }
        let mut path: Vec<(&ServiceNode, Vec<&ServiceNode>)> =
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
                        let mut cycle: Vec<ServiceNode> =
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

//! Whole-site checks on the service graph: cycles and orderings.
use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Class, ServiceEdge, ServiceGraph, ServiceRef};

/// Builds the service graph of a site whose `requires` all point at
/// existing services. Returns the cycles instead when there are any.
pub fn service_graph(
    classes: &BTreeMap<String, Class>,
) -> Result<ServiceGraph, Vec<Vec<ServiceRef>>> {
    let mut nodes: Vec<ServiceRef> = Vec::new();
    let mut index: BTreeMap<ServiceRef, usize> = BTreeMap::new();
    for (class_name, class) in classes {
        for service in class.services.keys() {
            let node = ServiceRef {
                class: class_name.clone(),
                service: service.clone(),
            };
            index.insert(node.clone(), nodes.len());
            nodes.push(node);
        }
    }
    let mut edges = Vec::new();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let service = &classes[&node.class].services[&node.service];
        for target in &service.requires {
            if let Some(&j) = index.get(target) {
                if !out[i].contains(&j) {
                    out[i].push(j);
                    edges.push(ServiceEdge {
                        from: node.clone(),
                        to: target.clone(),
                        cross_class: node.class != target.class,
                    });
                }
            }
        }
    }
    let cycles = find_cycles(&out);
    if !cycles.is_empty() {
        return Err(cycles
            .into_iter()
            .map(|c| c.into_iter().map(|i| nodes[i].clone()).collect())
            .collect());
    }
    let order = topological(&out)
        .into_iter()
        .map(|i| nodes[i].clone())
        .collect();
    let class_order = class_order(classes, &edges);
    Ok(ServiceGraph {
        edges,
        order,
        class_order,
    })
}

/// One cycle per strongly connected component that has one, each starting
/// at its smallest node and listed in edge order.
fn find_cycles(out: &[Vec<usize>]) -> Vec<Vec<usize>> {
    // Iterative DFS with colours; a back edge to a grey node closes a cycle.
    let mut colour = vec![0u8; out.len()];
    let mut cycles = Vec::new();
    let mut in_cycle = vec![false; out.len()];
    for start in 0..out.len() {
        if colour[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if *next < out[node].len() {
                let target = out[node][*next];
                *next += 1;
                match colour[target] {
                    0 => {
                        colour[target] = 1;
                        stack.push((target, 0));
                    }
                    1 if !in_cycle[target] => {
                        let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        for &n in &cycle {
                            in_cycle[n] = true;
                        }
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| **n)
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        cycles.push(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
    cycles
}

/// Dependencies first (edges point from dependent to dependency); ties by index.
fn topological(out: &[Vec<usize>]) -> Vec<usize> {
    let mut remaining: Vec<usize> = out.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); out.len()];
    for (from, targets) in out.iter().enumerate() {
        for &to in targets {
            dependents[to].push(from);
        }
    }
    let mut ready: BTreeSet<usize> = (0..out.len()).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(out.len());
    while let Some(next) = ready.pop_first() {
        order.push(next);
        for &d in &dependents[next] {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order
}

/// Classes whose services are required by other classes first. Classes that
/// require each other (allowed) are released together, by name.
fn class_order(classes: &BTreeMap<String, Class>, edges: &[ServiceEdge]) -> Vec<String> {
    let names: Vec<&String> = classes.keys().collect();
    let position: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut needs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); names.len()];
    for edge in edges.iter().filter(|e| e.cross_class) {
        if let (Some(&from), Some(&to)) = (
            position.get(edge.from.class.as_str()),
            position.get(edge.to.class.as_str()),
        ) {
            needs[from].insert(to);
        }
    }
    let mut done = vec![false; names.len()];
    let mut order = Vec::new();
    while order.len() < names.len() {
        let ready: Vec<usize> = (0..names.len())
            .filter(|&i| !done[i] && needs[i].iter().all(|&d| done[d] || d == i))
            .collect();
        let batch = if ready.is_empty() {
            // A class-level cycle: take the first remaining class to break it.
            vec![(0..names.len()).find(|&i| !done[i]).unwrap_or(0)]
        } else {
            ready
        };
        for i in batch {
            done[i] = true;
            order.push(names[i].clone());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_cycle_once_starting_at_its_smallest_node() {
        // 0 → 1 → 2 → 0, 3 → 3, 4 → 0
        let out = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        assert_eq!(find_cycles(&out), vec![vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn topological_order_puts_dependencies_first() {
        // 0 requires 2, 1 requires 0
        let out = vec![vec![2], vec![0], vec![]];
        assert_eq!(topological(&out), vec![2, 0, 1]);
    }
}

//! The build graph of a site: which packages and text files the selected
//! classes need, and in which order they can be built.
use std::collections::BTreeMap;

use ferry_lang::model::{Class, Origin, PackageId, Probe, Site, Text, TextFileId};

/// One thing to build.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKey {
    /// A package to build.
    Package(PackageId),
    /// A text file to write.
    File(TextFileId),
}

impl NodeKey {
    /// How the node is named in messages (`package webapp`, `file nginx.conf`).
    pub fn describe(&self) -> String {
        match self {
            NodeKey::Package(id) => format!("package `{}`", id.0),
            NodeKey::File(id) => format!("file `{}`", id.0),
        }
    }
}

/// Nodes in a fixed (sorted) order with their dependencies by index.
#[derive(Debug, Clone)]
pub struct BuildGraph {
    /// The nodes, sorted.
    pub nodes: Vec<NodeKey>,
    /// For each node, the indices of the nodes it needs.
    pub deps: Vec<Vec<usize>>,
}

/// Why a site cannot be turned into a build graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// Something names a package or file the site does not define.
    Unknown {
        /// What is named.
        what: String,
        /// Where.
        origin: Origin,
    },
    /// Packages (or files) that need each other.
    Cycle {
        /// The cycle, in order.
        chain: Vec<String>,
        /// Where it starts.
        origin: Origin,
    },
}

/// Every [`Text`] of a class that ends up in its system.
pub fn class_texts(class: &Class) -> Vec<&Text> {
    let mut texts = Vec::new();
    for service in class.services.values() {
        texts.push(&service.exec);
        texts.extend(service.env.values());
        texts.extend(service.pre_upgrade.iter());
        texts.extend(service.post_upgrade.iter());
        for check in &service.health {
            match &check.probe {
                Probe::Command { command } => texts.push(command),
                Probe::Http { url, ca } => texts.extend(std::iter::once(url).chain(ca)),
                Probe::Tcp { .. } => {}
            }
        }
    }
    texts
}

/// The nodes a class needs directly (before following dependencies).
pub fn class_roots(class: &Class) -> Vec<NodeKey> {
    let mut roots: Vec<NodeKey> = class
        .packages
        .iter()
        .cloned()
        .map(NodeKey::Package)
        .collect();
    for text in class_texts(class) {
        roots.extend(text.packages().cloned().map(NodeKey::Package));
        roots.extend(text.files().cloned().map(NodeKey::File));
    }
    roots.sort();
    roots.dedup();
    roots
}

fn text_deps(text: &Text) -> impl Iterator<Item = NodeKey> + '_ {
    text.packages()
        .cloned()
        .map(NodeKey::Package)
        .chain(text.files().cloned().map(NodeKey::File))
}

/// The direct dependencies of a node, or an error if the node is unknown.
fn direct_deps(
    site: &Site,
    key: &NodeKey,
    origin: &Origin,
) -> Result<(Vec<NodeKey>, Origin), GraphError> {
    let mut deps = Vec::new();
    let own_origin = match key {
        NodeKey::Package(id) => {
            let package = site.packages.get(id).ok_or_else(|| GraphError::Unknown {
                what: key.describe(),
                origin: origin.clone(),
            })?;
            deps.extend(package.inputs.iter().cloned().map(NodeKey::Package));
            deps.extend(text_deps(&package.builder));
            for value in package.env.values() {
                deps.extend(text_deps(value));
            }
            package.origin.clone()
        }
        NodeKey::File(id) => {
            let file = site.files.get(id).ok_or_else(|| GraphError::Unknown {
                what: key.describe(),
                origin: origin.clone(),
            })?;
            deps.extend(text_deps(&file.text));
            file.origin.clone()
        }
    };
    deps.sort();
    deps.dedup();
    Ok((deps, own_origin))
}

/// The graph of everything `classes` need, with cycles refused.
pub fn build_graph<'a>(
    site: &Site,
    classes: impl IntoIterator<Item = &'a Class>,
) -> Result<BuildGraph, GraphError> {
    // Collect every reachable node with its deps, depth-first.
    let mut found: BTreeMap<NodeKey, (Vec<NodeKey>, Origin)> = BTreeMap::new();
    let mut stack: Vec<(NodeKey, Origin)> = Vec::new();
    for class in classes {
        stack.extend(
            class_roots(class)
                .into_iter()
                .map(|k| (k, class.origin.clone())),
        );
    }
    while let Some((key, origin)) = stack.pop() {
        if found.contains_key(&key) {
            continue;
        }
        let (deps, own_origin) = direct_deps(site, &key, &origin)?;
        stack.extend(deps.iter().map(|d| (d.clone(), own_origin.clone())));
        found.insert(key, (deps, own_origin));
    }

    let nodes: Vec<NodeKey> = found.keys().cloned().collect();
    let index: BTreeMap<&NodeKey, usize> = nodes.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let deps: Vec<Vec<usize>> = found
        .values()
        .map(|(ds, _)| ds.iter().map(|d| index[d]).collect())
        .collect();
    let origins: Vec<&Origin> = found.values().map(|(_, o)| o).collect();
    check_acyclic(&nodes, &deps, &origins)?;
    Ok(BuildGraph { nodes, deps })
}

fn check_acyclic(
    nodes: &[NodeKey],
    deps: &[Vec<usize>],
    origins: &[&Origin],
) -> Result<(), GraphError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    for start in 0..nodes.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS; `path` is the chain of active nodes.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match marks[dep] {
                    Mark::New => {
                        marks[dep] = Mark::Active;
                        path.push((dep, 0));
                    }
                    Mark::Active => {
                        let from = path.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        let mut chain: Vec<String> = path[from..]
                            .iter()
                            .map(|&(n, _)| nodes[n].describe())
                            .collect();
                        chain.push(nodes[dep].describe());
                        return Err(GraphError::Cycle {
                            chain,
                            origin: origins[dep].clone(),
                        });
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
            }
        }
    }
    Ok(())
}

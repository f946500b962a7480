//! Closure queries over a built site: every store path each class runs, the
//! cross-host service edges, reference trees, `--why` chains and sizes.
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ferry_lang::model::Site;
use ferry_store::{PathInfo, Store, StoreError, StorePath};
use serde::Serialize;

/// Version of the `ferry closure --json` document.
pub const CLOSURE_JSON_VERSION: u32 = 1;

/// The closure of a site (or of some of its classes).
#[derive(Debug, Serialize)]
pub struct SiteClosure {
    /// [`CLOSURE_JSON_VERSION`].
    pub version: u32,
    /// The site's name.
    pub site: String,
    /// Per class: its system path and closure (dependencies first).
    pub classes: BTreeMap<String, ClassClosure>,
    /// Every path of every selected class, sorted, with its metadata.
    pub paths: Vec<PathEntry>,
    /// Service dependencies between classes (hence between hosts).
    pub service_edges: Vec<ServiceEdgeEntry>,
    /// Sum of the sizes of all distinct paths.
    pub total_size: u64,
}

/// One class's closure.
#[derive(Debug, Serialize)]
pub struct ClassClosure {
    /// Its system object.
    pub system: StorePath,
    /// Its closure, dependencies first.
    pub paths: Vec<StorePath>,
    /// The closure's size in bytes.
    pub size: u64,
    /// The hosts of the class.
    pub hosts: Vec<String>,
}

/// One path of the closure, with its metadata.
#[derive(Debug, Serialize)]
pub struct PathEntry {
    /// The path.
    pub path: StorePath,
    /// The paths it refers to.
    pub references: Vec<StorePath>,
    /// Its size in bytes.
    pub size: u64,
    /// The classes whose closure holds this path.
    pub classes: Vec<String>,
}

/// A service of one class that needs a service of another.
#[derive(Debug, Serialize)]
pub struct ServiceEdgeEntry {
    /// The dependent service.
    pub from: String,
    /// The service it needs.
    pub to: String,
    /// The dependent service's class.
    pub from_class: String,
    /// The needed service's class.
    pub to_class: String,
    /// The hosts running the dependent service.
    pub from_hosts: Vec<String>,
    /// The hosts running the needed service.
    pub to_hosts: Vec<String>,
}

/// Computes the closure of the given class systems.
pub fn site_closure(
    store: &Store,
    site: &Site,
    systems: &BTreeMap<String, StorePath>,
) -> Result<SiteClosure, StoreError> {
    let mut classes = BTreeMap::new();
    let mut infos: BTreeMap<StorePath, (PathInfo, BTreeSet<String>)> = BTreeMap::new();
    for (class, system) in systems {
        let paths = store.closure(std::slice::from_ref(system))?;
        let mut size = 0;
        for path in &paths {
            if !infos.contains_key(path) {
                infos.insert(path.clone(), (store.path_info(path)?, BTreeSet::new()));
            }
            let (info, owners) = infos.get_mut(path).expect("inserted above");
            owners.insert(class.clone());
            size += info.nar_size;
        }
        let hosts = site
            .classes
            .get(class)
            .map(|c| c.hosts.iter().map(|h| h.name.clone()).collect())
            .unwrap_or_default();
        classes.insert(
            class.clone(),
            ClassClosure {
                system: system.clone(),
                paths,
                size,
                hosts,
            },
        );
    }
    let hosts_of = |class: &str| -> Vec<String> {
        site.classes
            .get(class)
            .map(|c| c.hosts.iter().map(|h| h.name.clone()).collect())
            .unwrap_or_default()
    };
    let service_edges = site
        .graph
        .edges
        .iter()
        .filter(|e| {
            e.cross_class
                && (systems.contains_key(&e.from.class) || systems.contains_key(&e.to.class))
        })
        .map(|e| ServiceEdgeEntry {
            from: e.from.to_string(),
            to: e.to.to_string(),
            from_class: e.from.class.clone(),
            to_class: e.to.class.clone(),
            from_hosts: hosts_of(&e.from.class),
            to_hosts: hosts_of(&e.to.class),
        })
        .collect();
    let total_size = infos.values().map(|(i, _)| i.nar_size).sum();
    let paths = infos
        .into_iter()
        .map(|(path, (info, owners))| PathEntry {
            path,
            references: info.references,
            size: info.nar_size,
            classes: owners.into_iter().collect(),
        })
        .collect();
    Ok(SiteClosure {
        version: CLOSURE_JSON_VERSION,
        site: site.name.clone(),
        classes,
        paths,
        service_edges,
        total_size,
    })
}

impl SiteClosure {
    fn references(&self) -> BTreeMap<&StorePath, &[StorePath]> {
        self.paths
            .iter()
            .map(|p| (&p.path, p.references.as_slice()))
            .collect()
    }

    /// Plain lines: every path, then the cross-host service edges.
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        for entry in &self.paths {
            out.push_str(&format!("{}\n", entry.path));
        }
        if !self.service_edges.is_empty() {
            out.push_str("# service edges across hosts (from → to)\n");
            for edge in &self.service_edges {
                out.push_str(&format!(
                    "{} → {}\t[{}] → [{}]\n",
                    edge.from,
                    edge.to,
                    edge.from_hosts.join(","),
                    edge.to_hosts.join(",")
                ));
            }
        }
        out
    }

    /// A reference tree per class, like `nix-store -q --tree`; a path seen
    /// before is shown once more with `[...]` and not expanded again. Each
    /// class's tree ends with its service edges to and from other classes:
    /// the dependencies a reference tree cannot show, because they run on
    /// other hosts.
    pub fn render_tree(&self) -> String {
        let refs = self.references();
        let mut out = String::new();
        for (class, closure) in &self.classes {
            out.push_str(&format!("{class}: {}\n", closure.system));
            let mut seen = BTreeSet::new();
            seen.insert(&closure.system);
            tree_children(&refs, &closure.system, "", &mut seen, &mut out);
            self.tree_service_edges(class, &mut out);
        }
        out
    }

    /// The `⇢ needs` and `⇠ needed by` lines that close a class's tree.
    fn tree_service_edges(&self, class: &str, out: &mut String) {
        let system_of = |class: &str| {
            self.classes
                .get(class)
                .map_or_else(|| "not selected".to_string(), |c| c.system.to_string())
        };
        for needs in [true, false] {
            for edge in &self.service_edges {
                // (this side, the other side) of the edge, seen from `class`.
                let ((own_class, mine), (other, theirs, hosts)) = if needs {
                    (
                        (&edge.from_class, &edge.from),
                        (&edge.to_class, &edge.to, &edge.to_hosts),
                    )
                } else {
                    (
                        (&edge.to_class, &edge.to),
                        (&edge.from_class, &edge.from, &edge.from_hosts),
                    )
                };
                if own_class != class {
                    continue;
                }
                let (arrow, verb) = if needs {
                    ("⇢", "needs")
                } else {
                    ("⇠", "needed by")
                };
                out.push_str(&format!(
                    "  {arrow} {mine} {verb} {theirs} on {other} [{}]: {}\n",
                    hosts.join(","),
                    system_of(other)
                ));
            }
        }
    }

    /// Graphviz dot: references as solid edges, service edges dashed.
    pub fn render_dot(&self) -> String {
        let mut out = String::from(
            "digraph closure {\n  rankdir=LR;\n  node [shape=box, fontname=monospace];\n",
        );
        for entry in &self.paths {
            out.push_str(&format!(
                "  \"{}\" [label=\"{}\"];\n",
                entry.path,
                entry.path.base_name()
            ));
        }
        for entry in &self.paths {
            for reference in &entry.references {
                out.push_str(&format!("  \"{}\" -> \"{}\";\n", entry.path, reference));
            }
        }
        for edge in &self.service_edges {
            let (Some(from), Some(to)) = (
                self.classes.get(&edge.from_class),
                self.classes.get(&edge.to_class),
            ) else {
                continue;
            };
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [style=dashed, color=blue, label=\"{} → {}\"];\n",
                from.system, to.system, edge.from, edge.to
            ));
        }
        out.push_str("}\n");
        out
    }

    /// Per class and in total: number of paths and bytes.
    pub fn render_sizes(&self) -> String {
        let mut out = String::new();
        for (class, closure) in &self.classes {
            out.push_str(&format!(
                "{class}\t{} paths\t{}\n",
                closure.paths.len(),
                human_size(closure.size)
            ));
        }
        out.push_str(&format!(
            "total\t{} paths\t{}\n",
            self.paths.len(),
            human_size(self.total_size)
        ));
        out
    }

    /// For each class whose closure holds `target`: the shortest chain of
    /// references from its system to `target`.
    pub fn why(&self, target: &StorePath) -> BTreeMap<String, Vec<StorePath>> {
        let refs = self.references();
        let mut chains = BTreeMap::new();
        for (class, closure) in &self.classes {
            if let Some(chain) = shortest_chain(&refs, &closure.system, target) {
                chains.insert(class.clone(), chain);
            }
        }
        chains
    }
}

fn tree_children<'a>(
    refs: &BTreeMap<&'a StorePath, &'a [StorePath]>,
    node: &'a StorePath,
    prefix: &str,
    seen: &mut BTreeSet<&'a StorePath>,
    out: &mut String,
) {
    let children: Vec<&StorePath> = refs
        .get(node)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let (branch, indent) = if last {
            ("└───", "    ")
        } else {
            ("├───", "│   ")
        };
        if seen.insert(child) {
            out.push_str(&format!("{prefix}{branch}{child}\n"));
            tree_children(refs, child, &format!("{prefix}{indent}"), seen, out);
        } else {
            out.push_str(&format!("{prefix}{branch}{child} [...]\n"));
        }
    }
}

fn shortest_chain(
    refs: &BTreeMap<&StorePath, &[StorePath]>,
    from: &StorePath,
    to: &StorePath,
) -> Option<Vec<StorePath>> {
    let mut parent: BTreeMap<&StorePath, &StorePath> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut chain = vec![node.clone()];
            let mut at = node;
            while let Some(p) = parent.get(at) {
                chain.push((*p).clone());
                at = p;
            }
            chain.reverse();
            return Some(chain);
        }
        for child in refs.get(node).copied().unwrap_or_default() {
            if seen.insert(child) {
                parent.insert(child, node);
                queue.push_back(child);
            }
        }
    }
    None
}

/// Bytes for humans: `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

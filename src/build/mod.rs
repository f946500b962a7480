//! Builds: turn an evaluated site into store objects (DESIGN §5).
//!
//! [`build_site`] ingests package sources, builds packages (recipes run by
//! [`sandbox`], skipped when a realisation exists), writes text files, and
//! assembles one system object per class ([`system`]). The same result is
//! used to provision a fresh host and to reconfigure a running one.
pub mod cache;
pub mod debian;
pub mod elf_check;
pub mod error;
pub mod graph;
pub mod package_tree;
pub mod recipe;
pub mod sandbox;
pub mod scheduler;
pub mod site_lock;
pub mod system;
pub mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ferry_lang::model::{Class, PackageId, Site, TextFileId};
use ferry_store::{AddOptions, Store, StorePath, TempRoots};
use serde::Serialize;

pub use error::{BuildError, LocatedBuildError};
use graph::{BuildGraph, NodeKey};
use recipe::Recipe;
use sandbox::BuilderJob;
use text::Outputs;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Builds running at once (≥ 1).
    pub jobs: usize,
    /// Time limit of one builder.
    pub timeout: Duration,
    /// The state directory on the *hosts* (where secrets and service state live).
    pub host_state_dir: PathBuf,
    /// Run builders without network when the platform allows it.
    pub isolate_network: bool,
    /// The site's lock and where to fetch, for `debian(…)` packages.
    pub debian: Option<debian::DebianInputs>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            timeout: Duration::from_secs(3600),
            host_state_dir: PathBuf::from("/ferry/var"),
            isolate_network: true,
            debian: None,
        }
    }
}

/// What happened to one node of the build graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeOutcome {
    /// The builder ran.
    Built,
    /// A realisation of the same recipe existed: nothing ran.
    Cached,
    /// A text file was written (always cheap; identical text gives the same path).
    Written,
    /// A Debian package's tree was made from its locked packages.
    Unpacked,
}

/// Watches a build as it runs (the CLI draws progress from this).
pub trait BuildObserver: Sync {
    /// A node started building.
    fn started(&self, _what: &str) {}
    /// A node is done.
    fn finished(&self, _what: &str, _outcome: NodeOutcome) {}
    /// A node failed.
    fn failed(&self, _what: &str) {}
    /// Who watches `.deb` downloads.
    fn fetching(&self) -> &dyn ferry_debian::fetch::FetchObserver {
        &ferry_debian::fetch::NoProgress
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl BuildObserver for Silent {}

/// The result of building a site (or some of its classes).
#[derive(Debug, Serialize)]
pub struct SiteBuild {
    /// The system object of each built class.
    pub systems: BTreeMap<String, StorePath>,
    /// The output of each built package.
    pub packages: BTreeMap<PackageId, StorePath>,
    /// The output of each written file.
    pub files: BTreeMap<TextFileId, StorePath>,
    /// What happened to each package (by package id).
    pub outcomes: BTreeMap<String, NodeOutcome>,
    /// Keeps every output alive against a concurrent `ferry gc` until the
    /// caller has rooted what it needs.
    #[serde(skip)]
    pub temp_roots: Vec<TempRoots>,
}

impl SiteBuild {
    /// Package ids whose builder actually ran.
    pub fn built(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|(_, o)| **o == NodeOutcome::Built)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Selects the classes to build: all of them, or the named ones.
pub fn select_classes<'a>(site: &'a Site, only: &[String]) -> Result<Vec<&'a Class>, BuildError> {
    if only.is_empty() {
        return Ok(site.classes.values().collect());
    }
    only.iter()
        .map(|name| {
            site.classes
                .get(name)
                .ok_or_else(|| BuildError::UnknownClass {
                    class: name.clone(),
                    known: site.classes.keys().cloned().collect(),
                })
        })
        .collect()
}

/// Builds the systems of `classes` (see [`select_classes`]).
pub fn build_site(
    store: &Store,
    site: &Site,
    classes: &[&Class],
    options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<SiteBuild, BuildError> {
    let graph = graph::build_graph(site, classes.iter().copied()).map_err(|e| match e {
        graph::GraphError::Unknown { what, origin } => BuildError::Unknown { what, origin },
        graph::GraphError::Cycle { chain, origin } => BuildError::Cycle { chain, origin },
    })?;
    let sources = ingest_sources(store, site, &graph)?;
    let members = debian::members(site, &graph, options.debian.as_ref())?;
    let mut roots = store.temp_roots(&[])?;
    let cache_key = cache::key(site, classes, &sources, &members, options);
    if let Some(hit) = cache_key
        .as_deref()
        .and_then(|key| cache::lookup(store, key, &mut roots))
    {
        let outcomes = hit
            .packages
            .keys()
            .map(|id| (id.0.clone(), NodeOutcome::Cached))
            .collect();
        return Ok(SiteBuild {
            systems: hit.systems,
            packages: hit.packages,
            files: hit.files,
            outcomes,
            temp_roots: vec![roots],
        });
    }
    let count_before = store.invalidation_count().ok();
    let objects = match &options.debian {
        Some(inputs) if !members.is_empty() => {
            debian::realize(store, &members, inputs, observer.fetching(), &mut roots)?
        }
        _ => BTreeMap::new(),
    };
    let run = NodeRunner {
        store,
        site,
        options,
        observer,
        sources: &sources,
        debian: (&members, &objects),
        roots: Mutex::new(roots),
    };

    let outcome = scheduler::run_dag(&graph.deps, options.jobs, |node, deps| {
        run.build_node(&graph, node, deps)
    });
    let mut outputs = Outputs::default();
    let mut outcomes = BTreeMap::new();
    let mut first_error = None;
    for (node, result) in outcome.results.into_iter().enumerate() {
        match (result, &graph.nodes[node]) {
            (Some(Ok((path, how))), NodeKey::Package(id)) => {
                outputs.packages.insert(id.clone(), path);
                outcomes.insert(id.0.clone(), how);
            }
            (Some(Ok((path, _))), NodeKey::File(id)) => {
                outputs.files.insert(id.clone(), path);
            }
            (Some(Err(e)), _) if first_error.is_none() => first_error = Some(e),
            _ => {}
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }

    let mut roots = run.roots.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut systems = BTreeMap::new();
    for class in classes {
        let reachable = debian::reachable_packages(&graph, &graph::class_roots(class));
        let tree = debian::class_tree(store, &class.name, &reachable, &members, &objects)?;
        if let Some(tree) = &tree {
            roots.add(store, std::slice::from_ref(&tree.path))?;
        }
        let path = system::build_system(store, site, class, &outputs, tree.as_ref(), options)?;
        roots.add(store, std::slice::from_ref(&path))?;
        systems.insert(class.name.clone(), path);
    }
    let temp_roots = vec![roots];
    let built = cache::CachedBuild {
        systems,
        packages: outputs.packages,
        files: outputs.files,
        // The count from before anything was checked: if a gc ran during the
        // build, the next lookup sees a newer count and checks every path.
        seen_valid_at: count_before,
    };
    if let Some(key) = &cache_key {
        cache::record(store, key, &built);
    }
    let cache::CachedBuild {
        systems,
        packages,
        files,
        ..
    } = built;
    Ok(SiteBuild {
        systems,
        packages,
        files,
        outcomes,
        temp_roots,
    })
}

/// Adds every package source of the graph to the store (in parallel).
fn ingest_sources(
    store: &Store,
    site: &Site,
    graph: &BuildGraph,
) -> Result<BTreeMap<PackageId, StorePath>, BuildError> {
    use rayon::prelude::*;
    let with_src: Vec<(&PackageId, &Path)> = graph
        .nodes
        .iter()
        .filter_map(|n| match n {
            NodeKey::Package(id) => site
                .packages
                .get(id)
                .and_then(|p| p.src.as_deref().map(|s| (id, s))),
            NodeKey::File(_) => None,
        })
        .collect();
    if with_src.is_empty() {
        // Not even rayon's thread pool: a site without sources pays nothing here.
        return Ok(BTreeMap::new());
    }
    with_src
        .par_iter()
        .map(|(id, src)| {
            let package = &site.packages[*id];
            if src.symlink_metadata().is_err() {
                return Err(BuildError::MissingSource {
                    package: id.0.clone(),
                    path: src.to_path_buf(),
                    origin: package.origin.clone(),
                });
            }
            let name = format!("{}-src", package.name);
            let path = store
                .add_path(src, &name, &[])
                .map_err(|source| BuildError::Source {
                    package: id.0.clone(),
                    path: src.to_path_buf(),
                    origin: package.origin.clone(),
                    source: Box::new(source),
                })?;
            Ok(((*id).clone(), path))
        })
        .collect()
}

/// Builds single nodes; shared by the scheduler's worker threads.
struct NodeRunner<'a> {
    store: &'a Store,
    site: &'a Site,
    options: &'a BuildOptions,
    observer: &'a dyn BuildObserver,
    sources: &'a BTreeMap<PackageId, StorePath>,
    /// The locked packages of each `debian(…)` package, and their objects by sha256.
    debian: (&'a debian::Members, &'a BTreeMap<String, StorePath>),
    /// One temporary-root file for every output of this build.
    roots: Mutex<TempRoots>,
}

impl NodeRunner<'_> {
    fn build_node(
        &self,
        graph: &BuildGraph,
        node: usize,
        deps: Vec<(StorePath, NodeOutcome)>,
    ) -> Result<(StorePath, NodeOutcome), BuildError> {
        // The scheduler hands over dependency outputs in `graph.deps[node]` order.
        let mut outputs = Outputs::default();
        for ((path, _), &d) in deps.into_iter().zip(&graph.deps[node]) {
            match &graph.nodes[d] {
                NodeKey::Package(id) => outputs.packages.insert(id.clone(), path),
                NodeKey::File(id) => outputs.files.insert(id.clone(), path),
            };
        }
        let key = &graph.nodes[node];
        let what = key.describe();
        let result = match key {
            NodeKey::File(id) => self.write_file(id, &outputs),
            NodeKey::Package(id) => self.build_package(id, &outputs),
        };
        match &result {
            Ok((path, outcome)) => {
                self.observer.finished(&what, *outcome);
                self.roots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(self.store, std::slice::from_ref(path))?;
            }
            Err(_) => self.observer.failed(&what),
        }
        result
    }

    fn write_file(
        &self,
        id: &TextFileId,
        outputs: &Outputs,
    ) -> Result<(StorePath, NodeOutcome), BuildError> {
        let file = &self.site.files[id];
        let rendered = outputs.render(&file.text, &self.options.host_state_dir);
        let path = self.store.add_bytes(
            &file.name,
            rendered.text.as_bytes(),
            file.executable,
            &rendered.references,
        )?;
        Ok((path, NodeOutcome::Written))
    }

    fn build_package(
        &self,
        id: &PackageId,
        outputs: &Outputs,
    ) -> Result<(StorePath, NodeOutcome), BuildError> {
        let package = &self.site.packages[id];
        if let Some(members) = self.debian.0.get(id) {
            let path = debian::package_output(self.store, &package.name, members, self.debian.1)?;
            return Ok((path, NodeOutcome::Unpacked));
        }
        let host_state = &self.options.host_state_dir;
        let builder = outputs.render(&package.builder, host_state);
        let mut references: BTreeSet<StorePath> = builder.references.iter().cloned().collect();
        let mut env = BTreeMap::new();
        for (key, value) in &package.env {
            let rendered = outputs.render(value, host_state);
            references.extend(rendered.references);
            env.insert(key.clone(), rendered.text);
        }
        for input in &package.inputs {
            references.insert(outputs.packages[input].clone());
        }
        references.extend(outputs.files.values().cloned());
        let src = self.sources.get(id).cloned();
        let recipe = Recipe {
            name: package.name.clone(),
            builder: builder.text,
            src: src.as_ref().map(|s| s.to_string()),
            inputs: references.iter().map(|p| p.to_string()).collect(),
            env,
            timeout_secs: self.options.timeout.as_secs(),
        };
        let recipe_id = recipe.id();
        if let Some(path) = self.store.realisation(&recipe_id) {
            return Ok((path, NodeOutcome::Cached));
        }

        // Only builders that really run are shown as running.
        self.observer
            .started(&NodeKey::Package(id.clone()).describe());
        let state = self.store.state_dir();
        let log = state.join("log").join("build").join(format!(
            "{}-{}.log",
            package.name,
            &recipe_id.to_string()[..16]
        ));
        let job = BuilderJob {
            name: package.name.clone(),
            script: recipe.builder.clone(),
            inputs: package
                .inputs
                .iter()
                .map(|i| self.store.real_path(&outputs.packages[i]))
                .collect(),
            src: src.as_ref().map(|s| self.store.real_path(s)),
            env: recipe.env.clone(),
            timeout: self.options.timeout,
            isolate_network: self.options.isolate_network,
        };
        let run = sandbox::run_builder(&job, &state.join("build"), &log).map_err(|reason| {
            BuildError::BuilderFailed(Box::new(error::BuilderFailure {
                package: id.0.clone(),
                origin: package.origin.clone(),
                tail: sandbox::log_tail(&log, 30),
                reason,
                log: log.clone(),
            }))
        })?;
        let mut candidates: Vec<StorePath> = references.into_iter().collect();
        candidates.extend(src);
        let marker = run.out.display().to_string();
        let options = AddOptions {
            candidate_refs: &candidates,
            self_markers: std::slice::from_ref(&marker),
            deriver: Some(recipe_id),
            // A builder that ran made something new, almost always.
            probably_new: true,
        };
        let path = self
            .store
            .add_path_with(&run.out, &package.name, &options)
            .map_err(|source| {
                BuildError::Output(Box::new(error::OutputFailure {
                    package: id.0.clone(),
                    origin: package.origin.clone(),
                    log: log.clone(),
                    source,
                }))
            })?;
        self.store.set_realisation(&recipe_id, &path)?;
        Ok((path, NodeOutcome::Built))
    }
}

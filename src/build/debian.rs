//! Debian packages of a site (`package NAME = debian(…)`): which locked
//! packages each one is, fetching the missing ones on the deployer, adding
//! each unpacked `.deb` as one store object, and the trees that merge them.
//!
//! The lock (`ferry_debian::lock`) alone says what a package is: the
//! closure of its roots over the lock's `depends`. Nothing here reads apt's
//! lists, so a deployer whose store already holds every locked package
//! builds offline; only a missing one needs the apt sources (to find the
//! repository by suite and component) and the network.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ferry_debian::fetch::{FetchError, FetchObserver, Fetcher};
use ferry_debian::lock::{Lock, LockError, LockedPackage};
use ferry_debian::object::{
    default_unpack_jobs, fetch_and_add, find_deb_object, FetchAddError, ObjectError, WantedDeb,
};
use ferry_debian::resolve::Root;
use ferry_debian::sources::{AptConfig, SourcesError};
use ferry_lang::model::{Origin, PackageId, Site};
use ferry_store::{Store, StorePath, TempRoots};

use super::elf_check::{check_tree, Unresolved};
use super::graph::{BuildGraph, NodeKey};
use super::package_tree::{build_package_tree, PackageTreeError};

/// What a build needs to turn `debian(…)` packages into store objects.
#[derive(Debug, Clone)]
pub struct DebianInputs {
    /// The site's lock.
    pub lock: Lock,
    /// Where it was read from (for messages).
    pub lock_path: PathBuf,
    /// Where fetched `.deb` files are kept, by sha256.
    pub cache_dir: PathBuf,
    /// The root whose apt configuration names the repositories (`/`).
    pub apt_root: PathBuf,
}

/// Why the Debian packages of a site could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// The site uses `debian(…)` packages but the build was given no lock.
    #[error("package `{package}` comes from Debian, but the site has no lock")]
    NoLock {
        /// The package.
        package: String,
        /// Where it was declared.
        origin: Origin,
    },
    /// A root is not valid Debian syntax.
    #[error("package `{package}`: {root:?} is not a Debian package: {reason}")]
    BadRoot {
        /// The package.
        package: String,
        /// The root as written.
        root: String,
        /// What the parser said.
        reason: String,
        /// Where it was declared.
        origin: Origin,
    },
    /// The lock does not hold a package's roots (stale) or is damaged.
    #[error("package `{package}`: {source}")]
    Lock {
        /// The package.
        package: String,
        /// Why.
        #[source]
        source: Box<LockError>,
        /// Where it was declared.
        origin: Origin,
    },
    /// The apt configuration needed to fetch missing packages is unreadable.
    #[error("cannot read the apt sources to fetch {missing} missing packages: {source}")]
    Sources {
        /// How many packages were missing.
        missing: usize,
        /// Why.
        #[source]
        source: SourcesError,
    },
    /// A missing package cannot be located in any configured source.
    #[error("cannot fetch {package}: {source}")]
    Locate {
        /// `name version`.
        package: String,
        /// Why.
        #[source]
        source: Box<LockError>,
    },
    /// Fetching failed (unreachable repository, wrong sha256, …).
    #[error(transparent)]
    Fetch(#[from] Box<FetchError>),
    /// A fetched `.deb` could not be unpacked or added.
    #[error("cannot add {package} to the store: {source}")]
    Object {
        /// `name version`.
        package: String,
        /// Why.
        #[source]
        source: Box<ObjectError>,
    },
    /// A package tree could not be made.
    #[error("cannot make the package tree of {name}: {source}")]
    Tree {
        /// The package or class.
        name: String,
        /// Why.
        #[source]
        source: Box<PackageTreeError>,
    },
    /// A class's tree has no `/bin/sh`, which runs every service.
    #[error("class `{class}` runs Debian packages, but none of them has /bin/sh (every service, hook and check runs through it)")]
    NoShell {
        /// The class.
        class: String,
    },
    /// A class's binaries need an interpreter or library its tree does not hold.
    #[error("class `{class}` is not self-contained: {}", unresolved_summary(.unresolved))]
    NotSelfContained {
        /// The class.
        class: String,
        /// What does not resolve inside the tree, sorted.
        unresolved: Vec<Unresolved>,
    },
    /// A class's tree could not be read to check its ELF files.
    #[error("cannot check the ELF files of class `{class}`: {source}")]
    ElfCheck {
        /// The class.
        class: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    /// Scratch space could not be made.
    #[error("cannot make scratch space in {path}: {source}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl DebianError {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            DebianError::NoLock { .. } => Some("run `ferry lock SITE` to resolve and pin the site's Debian packages".into()),
            DebianError::Lock { .. } => Some("the site's packages changed since the lock was written: run `ferry lock SITE`".into()),
            DebianError::Sources { .. } | DebianError::Locate { .. } => Some(
                "the deployer's apt sources must serve the lock's suites, or the packages must already be in the store (`ferry store import`)".into(),
            ),
            DebianError::Fetch(e) => e.hint().map(str::to_string),
            DebianError::NoShell { .. } => {
                Some("add `debian(\"dash\")` to the class (std.base has it)".into())
            }
            DebianError::NotSelfContained { .. } => Some(
                "add the Debian package that ships the missing file to the class (`apt-file search FILE` names it), then run `ferry lock SITE`".into(),
            ),
            _ => None,
        }
    }

    /// Where in the site the error is, when it is about one package.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            DebianError::NoLock { origin, .. }
            | DebianError::BadRoot { origin, .. }
            | DebianError::Lock { origin, .. } => Some(origin),
            _ => None,
        }
    }
}

/// Each `debian(…)` package of the graph with the locked packages it is.
pub type Members = BTreeMap<PackageId, Vec<LockedPackage>>;

/// The Debian roots of every `debian(…)` package in `site`, parsed, with the
/// package they belong to.
pub fn site_roots(site: &Site) -> Result<Vec<(PackageId, Vec<Root>)>, DebianError> {
    let mut all = Vec::new();
    for (id, package) in &site.packages {
        if package.debian.is_empty() {
            continue;
        }
        let mut roots = Vec::new();
        for text in &package.debian {
            let root = text.parse::<Root>().map_err(|e| DebianError::BadRoot {
                package: id.0.clone(),
                root: text.clone(),
                reason: e.to_string(),
                origin: package.origin.clone(),
            })?;
            roots.push(root);
        }
        all.push((id.clone(), roots));
    }
    Ok(all)
}

/// The locked packages of each `debian(…)` package in `graph`.
pub fn members(
    site: &Site,
    graph: &BuildGraph,
    inputs: Option<&DebianInputs>,
) -> Result<Members, DebianError> {
    let mut members = Members::new();
    let in_graph: BTreeSet<&PackageId> = graph
        .nodes
        .iter()
        .filter_map(|n| match n {
            NodeKey::Package(id) => Some(id),
            NodeKey::File(_) => None,
        })
        .collect();
    for (id, roots) in site_roots(site)? {
        if !in_graph.contains(&id) {
            continue;
        }
        let package = &site.packages[&id];
        let Some(inputs) = inputs else {
            return Err(DebianError::NoLock {
                package: id.0.clone(),
                origin: package.origin.clone(),
            });
        };
        let closure = inputs
            .lock
            .closure_of(&roots)
            .map_err(|source| DebianError::Lock {
                package: id.0.clone(),
                source: Box::new(source),
                origin: package.origin.clone(),
            })?;
        members.insert(id, closure.into_iter().cloned().collect());
    }
    Ok(members)
}

/// The store objects of every member: found in the store, or fetched (in
/// parallel, each verified against the lock's sha256 before anything is
/// registered) and added. Every object is held by `roots`.
pub fn realize(
    store: &Store,
    members: &Members,
    inputs: &DebianInputs,
    observer: &dyn FetchObserver,
    roots: &mut TempRoots,
) -> Result<BTreeMap<String, StorePath>, DebianError> {
    let mut wanted: BTreeMap<&str, &LockedPackage> = BTreeMap::new();
    for package in members.values().flatten() {
        wanted.insert(package.sha256.as_str(), package);
    }
    let mut objects = BTreeMap::new();
    let mut missing = Vec::new();
    for (sha, package) in &wanted {
        match sha
            .parse()
            .ok()
            .and_then(|sha| find_deb_object(store, &sha))
        {
            Some(path) => {
                objects.insert(sha.to_string(), path);
            }
            None => missing.push(*package),
        }
    }
    let present: Vec<StorePath> = objects.values().cloned().collect();
    roots.add(store, &present)?;
    if missing.is_empty() {
        return Ok(objects);
    }
    let config = AptConfig::read(&inputs.apt_root).map_err(|source| DebianError::Sources {
        missing: missing.len(),
        source,
    })?;
    let debs: Vec<WantedDeb> = missing
        .iter()
        .map(|p| {
            let item = p
                .fetch_item(&config)
                .map_err(|source| DebianError::Locate {
                    package: format!("{} {}", p.name, p.version),
                    source: Box::new(source),
                })?;
            Ok(WantedDeb {
                item,
                expected: p.expected(),
            })
        })
        .collect::<Result<_, DebianError>>()?;
    let fetcher = Fetcher::new(&inputs.cache_dir).map_err(Box::new)?;
    let scratch = scratch_dir(store)?;
    // Each `.deb` is unpacked and added as soon as it arrives, while the others download.
    let paths = fetch_and_add(
        store,
        &fetcher,
        &debs,
        scratch.path(),
        default_unpack_jobs(),
        observer,
    )
    .map_err(|FetchAddError { index, error }| match error {
        ObjectError::Fetch(error) => DebianError::Fetch(error),
        error => DebianError::Object {
            package: format!("{} {}", missing[index].name, missing[index].version),
            source: Box::new(error),
        },
    })?;
    roots.add(store, &paths)?;
    for (package, path) in missing.iter().zip(paths) {
        objects.insert(package.sha256.clone(), path);
    }
    Ok(objects)
}

fn scratch_dir(store: &Store) -> Result<tempfile::TempDir, DebianError> {
    let parent = store.state_dir().join("build");
    let made = std::fs::create_dir_all(&parent)
        .and_then(|()| tempfile::Builder::new().prefix("deb-").tempdir_in(&parent));
    made.map_err(|source| DebianError::Scratch {
        path: parent,
        source,
    })
}

/// The objects of `packages`, in name order (later ones win a clash in a tree).
fn objects_of<'a>(
    packages: impl IntoIterator<Item = &'a LockedPackage>,
    objects: &BTreeMap<String, StorePath>,
) -> Vec<StorePath> {
    let mut by_name: BTreeMap<&str, StorePath> = BTreeMap::new();
    for p in packages {
        if let Some(path) = objects.get(&p.sha256) {
            by_name.insert(p.name.as_str(), path.clone());
        }
    }
    by_name.into_values().collect()
}

/// The tree of one `debian(…)` package: its members merged, the path its
/// `${…}` interpolates to.
pub fn package_output(
    store: &Store,
    name: &str,
    members: &[LockedPackage],
    objects: &BTreeMap<String, StorePath>,
) -> Result<StorePath, DebianError> {
    let tree =
        build_package_tree(store, name, &objects_of(members, objects)).map_err(|source| {
            DebianError::Tree {
                name: name.to_string(),
                source: Box::new(source),
            }
        })?;
    Ok(tree.path)
}

/// A class's tree, mounted on `/usr` for its services: every member of every
/// `debian(…)` package in `reachable` (the class's packages, those its texts
/// and files mention, and their inputs). `None` when there are none.
pub fn class_tree(
    store: &Store,
    class: &str,
    reachable: &BTreeSet<PackageId>,
    members: &Members,
    objects: &BTreeMap<String, StorePath>,
) -> Result<Option<ClassTree>, DebianError> {
    let mut packages: BTreeMap<&str, &LockedPackage> = BTreeMap::new();
    for id in reachable {
        for p in members.get(id).into_iter().flatten() {
            packages.insert(p.name.as_str(), p);
        }
    }
    if packages.is_empty() {
        return Ok(None);
    }
    let tree = build_package_tree(
        store,
        class,
        &objects_of(packages.values().copied(), objects),
    )
    .map_err(|source| DebianError::Tree {
        name: format!("class {class}"),
        source: Box::new(source),
    })?;
    let real = store.real_path(&tree.path);
    if !has_shell(&real) {
        return Err(DebianError::NoShell {
            class: class.to_string(),
        });
    }
    let report = check_tree(&real).map_err(|source| DebianError::ElfCheck {
        class: class.to_string(),
        source,
    })?;
    if !report.unresolved.is_empty() {
        return Err(DebianError::NotSelfContained {
            class: class.to_string(),
            unresolved: report.unresolved,
        });
    }
    Ok(Some(ClassTree {
        path: tree.path,
        versions: packages
            .values()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect(),
    }))
}

/// A class's package tree and the Debian versions in it.
#[derive(Debug, Clone)]
pub struct ClassTree {
    /// The tree object.
    pub path: StorePath,
    /// Package name → version.
    pub versions: BTreeMap<String, String>,
}

/// How many things an error lists before it says "and N more".
const UNRESOLVED_SHOWN: usize = 5;

/// The first few unresolved needs, `FILE needs WHAT`, and how many more there are.
fn unresolved_summary(unresolved: &[Unresolved]) -> String {
    let mut text = unresolved
        .iter()
        .take(UNRESOLVED_SHOWN)
        .map(|u| format!("{} needs {}", u.file, u.missing))
        .collect::<Vec<_>>()
        .join("; ");
    if unresolved.len() > UNRESOLVED_SHOWN {
        text.push_str(&format!(
            "; and {} more",
            unresolved.len() - UNRESOLVED_SHOWN
        ));
    }
    text
}

fn has_shell(tree: &Path) -> bool {
    tree.join("bin/sh").symlink_metadata().is_ok()
}

/// Every package reachable from `class`'s roots in `graph` (through inputs
/// and files).
pub fn reachable_packages(graph: &BuildGraph, roots: &[NodeKey]) -> BTreeSet<PackageId> {
    let index: BTreeMap<&NodeKey, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = roots.iter().filter_map(|r| index.get(r).copied()).collect();
    let mut out = BTreeSet::new();
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        if let NodeKey::Package(id) = &graph.nodes[node] {
            out.insert(id.clone());
        }
        stack.extend(graph.deps[node].iter().copied());
    }
    out
}

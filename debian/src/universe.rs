//! The candidates a resolution may choose from: every package of one architecture
//! (plus `all`) from every configured index, looked up by name and by `Provides`.

use std::collections::BTreeMap;

use crate::control::PackageEntry;
use crate::relation::{Alternative, ArchQualifier};
use crate::version::Version;

/// Where a candidate's index came from; locked so a package can be found again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// The suite (`bookworm`, `bookworm-security`, …).
    pub suite: String,
    /// The component (`main`, …).
    pub component: String,
}

/// A package offered by one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The index paragraph.
    pub entry: PackageEntry,
    /// Its suite and component.
    pub origin: Origin,
}

/// All candidates for one architecture.
#[derive(Debug, Clone)]
pub struct Universe {
    arch: String,
    candidates: Vec<Candidate>,
    /// Real packages by name, highest version first.
    by_name: BTreeMap<String, Vec<usize>>,
    /// Virtual names: who provides them, with the provided version if any;
    /// ordered by provider name, then highest version first.
    providers: BTreeMap<String, Vec<(usize, Option<Version>)>>,
}

impl Universe {
    /// An empty universe for `arch` (e.g. `amd64`); `all` packages are always kept.
    pub fn new(arch: &str) -> Self {
        Universe {
            arch: arch.to_string(),
            candidates: Vec::new(),
            by_name: BTreeMap::new(),
            providers: BTreeMap::new(),
        }
    }

    /// The architecture this universe serves.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Number of candidates kept.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether no candidate was added.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Adds one index's packages. Packages of other architectures are dropped; when
    /// two indexes offer the same name, version and architecture, the first one
    /// added is kept (add sources in apt's order).
    pub fn add_index(&mut self, origin: &Origin, entries: Vec<PackageEntry>) {
        for entry in entries {
            if entry.architecture != self.arch && entry.architecture != "all" {
                continue;
            }
            self.insert(Candidate {
                entry,
                origin: origin.clone(),
            });
        }
        self.sort();
    }

    /// A universe of exactly these candidates (a resolution's chosen packages), so
    /// that which of them satisfies a relation is answered by the same matching the
    /// resolver used.
    pub(crate) fn of_candidates(arch: &str, candidates: &[Candidate]) -> Universe {
        let mut u = Universe::new(arch);
        for c in candidates {
            u.insert(c.clone());
        }
        u.sort();
        u
    }

    /// Adds a candidate unless its name and version are already there.
    fn insert(&mut self, candidate: Candidate) {
        let entry = &candidate.entry;
        let dup = self.by_name.get(&entry.name).is_some_and(|ids| {
            ids.iter()
                .any(|&i| self.candidates[i].entry.version == entry.version)
        });
        if dup {
            return;
        }
        let id = self.candidates.len();
        self.by_name.entry(entry.name.clone()).or_default().push(id);
        for rel in &entry.provides {
            for alt in &rel.alternatives {
                let v = alt.constraint.as_ref().map(|c| c.version.clone());
                self.providers
                    .entry(alt.name.clone())
                    .or_default()
                    .push((id, v));
            }
        }
        self.candidates.push(candidate);
    }

    /// Restores the lookup orders: versions highest first, providers by name.
    fn sort(&mut self) {
        let cands = &self.candidates;
        for ids in self.by_name.values_mut() {
            ids.sort_by(|&a, &b| cands[b].entry.version.cmp(&cands[a].entry.version));
        }
        for ids in self.providers.values_mut() {
            ids.sort_by(|(a, _), (b, _)| {
                let (a, b) = (&cands[*a].entry, &cands[*b].entry);
                a.name.cmp(&b.name).then(b.version.cmp(&a.version))
            });
        }
    }

    /// The candidate with this id.
    pub fn get(&self, id: usize) -> &Candidate {
        &self.candidates[id]
    }

    /// Ids of the real packages called `name`, highest version first.
    pub fn versions(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Ids of the packages providing `name`, with the provided version.
    pub fn providers(&self, name: &str) -> &[(usize, Option<Version>)] {
        self.providers.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether `name` is a real or virtual package here.
    pub fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name) || self.providers.contains_key(name)
    }

    /// Up to three known names close to `name`, closest first.
    pub fn close_names(&self, name: &str) -> Vec<String> {
        let limit = (name.len() / 4).max(2);
        let mut close: Vec<(usize, &String)> = self
            .by_name
            .keys()
            .chain(self.providers.keys())
            .map(|n| (strsim::levenshtein(name, n), n))
            .filter(|(d, _)| *d <= limit)
            .collect();
        close.sort();
        close.dedup();
        close.into_iter().take(3).map(|(_, n)| n.clone()).collect()
    }

    /// Whether candidate `id` matches the alternative as a real package (name,
    /// architecture qualifier and version constraint).
    pub fn matches_real(&self, id: usize, alt: &Alternative) -> bool {
        let entry = &self.candidates[id].entry;
        entry.name == alt.name
            && self.qualifier_allows(alt)
            && alt
                .constraint
                .as_ref()
                .is_none_or(|c| c.admits(&entry.version))
    }

    /// Whether a provision `(id, provided version)` matches the alternative: an
    /// unversioned `Provides` never satisfies a versioned relation.
    pub fn matches_provided(&self, provided: Option<&Version>, alt: &Alternative) -> bool {
        self.qualifier_allows(alt)
            && match (&alt.constraint, provided) {
                (None, _) => true,
                (Some(c), Some(v)) => c.admits(v),
                (Some(_), None) => false,
            }
    }

    /// The universe holds one architecture, so `:any` and `:native` always fit and
    /// a named qualifier fits only this architecture.
    fn qualifier_allows(&self, alt: &Alternative) -> bool {
        match &alt.arch_qualifier {
            Some(ArchQualifier::Named(a)) => a == &self.arch || a == "all",
            _ => true,
        }
    }
}

//! Resolving requested root packages to their `Depends`/`Pre-Depends` closure, the
//! way apt picks: per relation the first alternative that can be satisfied, virtual
//! packages through `Provides`, the highest satisfying version, and packages already
//! chosen satisfying later relations when they fit. `Recommends`/`Suggests` are not
//! followed.
//!
//! Where apt would ask (a virtual package with several providers), the provider
//! first by name is taken, so the answer is always the same. On this machine the
//! closure of postgresql-15 equals what `apt-get install --no-install-recommends`
//! picks from scratch (tests/real_apt.rs checks it).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::relation::{parse_alternative, Alternative, Constraint, RelationError};
use crate::universe::{Candidate, Universe};
use crate::version::Version;

/// A requested package: a name with an optional constraint, `postgresql-15` or
/// `libfoo (>= 2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The package name (may be virtual).
    pub name: String,
    /// The version constraint, if any.
    pub constraint: Option<Constraint>,
}

impl Root {
    fn as_alternative(&self) -> Alternative {
        Alternative {
            name: self.name.clone(),
            arch_qualifier: None,
            constraint: self.constraint.clone(),
            arch_restrictions: Vec::new(),
            profiles: Vec::new(),
        }
    }
}

impl FromStr for Root {
    type Err = RelationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let alt = parse_alternative(s.trim())?;
        if alt.arch_qualifier.is_some()
            || !alt.arch_restrictions.is_empty()
            || !alt.profiles.is_empty()
        {
            return Err(RelationError::Syntax {
                text: s.to_string(),
                reason: "a root is a name with an optional version constraint",
            });
        }
        Ok(Root {
            name: alt.name,
            constraint: alt.constraint,
        })
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_alternative().fmt(f)
    }
}

/// The closure: every chosen package, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The roots as requested.
    pub roots: Vec<Root>,
    /// The chosen packages, one per name, sorted by name.
    pub packages: Vec<Candidate>,
}

/// Why a closure cannot be resolved.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ResolveError {
    /// A root names no real or virtual package.
    #[error("unknown package {name:?}{}\n  hint: check the name with `apt-cache search`, and that the source carrying it is configured", did_you_mean(.suggestions))]
    UnknownPackage {
        /// The requested name.
        name: String,
        /// Close known names.
        suggestions: Vec<String>,
    },
    /// A relation no candidate satisfies.
    #[error("unsatisfiable dependency: {}\n  available: {}", chain_text(.chain, .relation), available_text(.available))]
    Unsatisfiable {
        /// The packages from the root down to the one with the failing relation.
        chain: Vec<String>,
        /// The failing relation.
        relation: String,
        /// The versions of the relation's names that exist.
        available: Vec<String>,
    },
    /// A relation needs a package at another version than one already chosen.
    #[error("conflict: {} needs {name} at another version than {chosen}, already chosen", chain_text(.chain, .relation))]
    Conflict {
        /// The package name wanted twice.
        name: String,
        /// The version already in the closure.
        chosen: String,
        /// The chain to the package with the relation.
        chain: Vec<String>,
        /// The relation.
        relation: String,
    },
}

fn did_you_mean(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

fn chain_text(chain: &[String], relation: &str) -> String {
    let mut parts = chain.to_vec();
    parts.push(relation.to_string());
    parts.join(" → ")
}

fn available_text(a: &[String]) -> String {
    if a.is_empty() {
        "none (no package has that name or provides it)".to_string()
    } else {
        a.join(", ")
    }
}

/// Resolves `roots` against `universe`, choosing the highest satisfying versions.
pub fn resolve(universe: &Universe, roots: &[Root]) -> Result<Resolution, ResolveError> {
    resolve_pinned(universe, roots, &BTreeMap::new())
}

/// Like [`resolve`], but a package named in `pins` keeps the pinned version
/// whenever that version is offered and satisfies the relation at hand.
pub fn resolve_pinned(
    universe: &Universe,
    roots: &[Root],
    pins: &BTreeMap<String, Version>,
) -> Result<Resolution, ResolveError> {
    let mut state = State {
        universe,
        pins,
        chosen: BTreeMap::new(),
        parent: BTreeMap::new(),
        queue: VecDeque::new(),
    };
    for root in roots {
        let alt = root.as_alternative();
        if state.satisfied(&alt) {
            continue;
        }
        if !universe.knows(&root.name) {
            return Err(ResolveError::UnknownPackage {
                name: root.name.clone(),
                suggestions: universe.close_names(&root.name),
            });
        }
        match state.pick(&alt) {
            Pick::Found(id) => state.choose(id, None),
            Pick::Conflict(chosen) => {
                return Err(state.conflict(None, &alt.name, chosen, root.to_string()))
            }
            Pick::Nothing => return Err(state.unsatisfiable(None, &[alt])),
        }
    }
    while let Some(id) = state.queue.pop_front() {
        state.follow(id)?;
    }
    let mut packages: Vec<Candidate> = state
        .chosen
        .values()
        .map(|&id| universe.get(id).clone())
        .collect();
    packages.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
    Ok(Resolution {
        roots: roots.to_vec(),
        packages,
    })
}

enum Pick {
    Found(usize),
    /// Only a package whose name is already chosen at another version would do.
    Conflict(usize),
    Nothing,
}

struct State<'u> {
    universe: &'u Universe,
    pins: &'u BTreeMap<String, Version>,
    /// Chosen candidate per package name.
    chosen: BTreeMap<String, usize>,
    /// Who pulled each chosen package in (by candidate id).
    parent: BTreeMap<usize, usize>,
    queue: VecDeque<usize>,
}

impl State<'_> {
    fn choose(&mut self, id: usize, parent: Option<usize>) {
        self.chosen
            .insert(self.universe.get(id).entry.name.clone(), id);
        if let Some(p) = parent {
            self.parent.insert(id, p);
        }
        self.queue.push_back(id);
    }

    fn is_chosen(&self, id: usize) -> bool {
        self.chosen.get(&self.universe.get(id).entry.name) == Some(&id)
    }

    /// Whether an already-chosen package satisfies the alternative.
    fn satisfied(&self, alt: &Alternative) -> bool {
        let u = self.universe;
        let real = self
            .chosen
            .get(&alt.name)
            .is_some_and(|&id| u.matches_real(id, alt));
        real || u
            .providers(&alt.name)
            .iter()
            .any(|(id, v)| self.is_chosen(*id) && u.matches_provided(v.as_ref(), alt))
    }

    /// The best candidate for an alternative: a real package first, then providers;
    /// within each, the pinned version if it fits, else the highest.
    fn pick(&self, alt: &Alternative) -> Pick {
        let u = self.universe;
        let mut fitting: Vec<usize> = u
            .versions(&alt.name)
            .iter()
            .copied()
            .filter(|&id| u.matches_real(id, alt))
            .collect();
        fitting.extend(
            u.providers(&alt.name)
                .iter()
                .filter(|(_, v)| u.matches_provided(v.as_ref(), alt))
                .map(|(id, _)| *id),
        );
        let mut conflict = None;
        let mut free = Vec::new();
        for id in fitting {
            match self.chosen.get(&u.get(id).entry.name) {
                Some(&other) if other != id => conflict = conflict.or(Some(other)),
                _ => free.push(id),
            }
        }
        let pinned = free.iter().copied().find(|&id| {
            let e = &u.get(id).entry;
            self.pins.get(&e.name) == Some(&e.version)
        });
        match (pinned.or(free.first().copied()), conflict) {
            (Some(id), _) => Pick::Found(id),
            (None, Some(other)) => Pick::Conflict(other),
            (None, None) => Pick::Nothing,
        }
    }

    /// Chooses a candidate for every relation of package `id`.
    fn follow(&mut self, id: usize) -> Result<(), ResolveError> {
        let u = self.universe;
        let entry = &u.get(id).entry;
        for rel in entry.pre_depends.iter().chain(&entry.depends) {
            let alts: Vec<Alternative> = rel
                .alternatives
                .iter()
                .filter(|a| a.applies(u.arch(), &[]))
                .cloned()
                .collect();
            if alts.is_empty() || alts.iter().any(|a| self.satisfied(a)) {
                continue;
            }
            let mut conflict = None;
            let mut found = None;
            for alt in &alts {
                match self.pick(alt) {
                    Pick::Found(c) => {
                        found = Some(c);
                        break;
                    }
                    Pick::Conflict(other) => conflict = conflict.or(Some((alt, other))),
                    Pick::Nothing => {}
                }
            }
            match (found, conflict) {
                (Some(c), _) => self.choose(c, Some(id)),
                (None, Some((alt, other))) => {
                    return Err(self.conflict(Some(id), &alt.name, other, rel.to_string()))
                }
                (None, None) => return Err(self.unsatisfiable(Some(id), &alts)),
            }
        }
        Ok(())
    }

    /// `root 1.0 → mid 2.0 → id` as text, root first.
    fn chain(&self, id: Option<usize>) -> Vec<String> {
        let mut chain = Vec::new();
        let mut at = id;
        while let Some(i) = at {
            let e = &self.universe.get(i).entry;
            chain.push(format!("{} {}", e.name, e.version));
            at = self.parent.get(&i).copied();
        }
        chain.reverse();
        chain
    }

    fn unsatisfiable(&self, id: Option<usize>, alts: &[Alternative]) -> ResolveError {
        let u = self.universe;
        let mut available = Vec::new();
        for alt in alts {
            for &c in u.versions(&alt.name) {
                let e = &u.get(c).entry;
                available.push(format!("{} {}", e.name, e.version));
            }
            for (c, v) in u.providers(&alt.name) {
                let e = &u.get(*c).entry;
                let provided = v.as_ref().map(|v| format!(" (= {v})")).unwrap_or_default();
                available.push(format!(
                    "{} {} provides {}{provided}",
                    e.name, e.version, alt.name
                ));
            }
        }
        let relation = alts
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
        ResolveError::Unsatisfiable {
            chain: self.chain(id),
            relation,
            available,
        }
    }

    fn conflict(
        &self,
        id: Option<usize>,
        name: &str,
        chosen: usize,
        relation: String,
    ) -> ResolveError {
        ResolveError::Conflict {
            name: name.to_string(),
            chosen: self.universe.get(chosen).entry.version.to_string(),
            chain: self.chain(id),
            relation,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

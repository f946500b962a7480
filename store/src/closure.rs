//! Closures: a set of paths plus everything they reference, in a deterministic topological
//! order with dependencies first (the order `export` and the copy protocol send objects in).
use std::collections::{HashMap, HashSet};

use crate::db::PathInfo;
use crate::error::{Result, StoreError};
use crate::path::StorePath;
use crate::store::Store;

impl Store {
    /// The records of every path reachable from `roots`, read a breadth-first level at a time
    /// (one database transaction per level, not one per path). Fails if a path is not valid.
    pub(crate) fn reachable_infos(
        &self,
        roots: &[StorePath],
    ) -> Result<HashMap<StorePath, PathInfo>> {
        let mut infos: HashMap<StorePath, PathInfo> = HashMap::new();
        let mut frontier: Vec<StorePath> = roots.to_vec();
        while !frontier.is_empty() {
            let mut next: Vec<StorePath> = Vec::new();
            for info in self.path_infos(&frontier)? {
                next.extend(info.references.iter().cloned());
                infos.insert(info.path.clone(), info);
            }
            next.sort();
            next.dedup();
            next.retain(|p| !infos.contains_key(p));
            frontier = next;
        }
        Ok(infos)
    }

    /// The closure of `roots`: every path reachable through references, each after all of its
    /// references. Roots are visited in sorted order and references in sorted order, so the
    /// result depends only on the graph. Fails if a path is not valid.
    pub fn closure(&self, roots: &[StorePath]) -> Result<Vec<StorePath>> {
        let mut sorted_roots: Vec<&StorePath> = roots.iter().collect();
        sorted_roots.sort();
        sorted_roots.dedup();
        let mut infos = self.reachable_infos(roots)?;
        // Every reachable path was read above, and each is entered (so asked for) once.
        let mut references_of = |path: &StorePath| -> Result<Vec<StorePath>> {
            infos
                .remove(path)
                .map(|info| info.references)
                .ok_or_else(|| StoreError::NotValid {
                    path: path.to_string(),
                })
        };
        let mut done: HashSet<StorePath> = HashSet::new();
        let mut order = Vec::new();
        // Iterative depth-first post-order: (path, its references, next reference to visit).
        let mut stack: Vec<(StorePath, Vec<StorePath>, usize)> = Vec::new();
        let mut entered: HashSet<StorePath> = HashSet::new();
        for root in sorted_roots {
            if done.contains(root) {
                continue;
            }
            entered.insert(root.clone());
            stack.push((root.clone(), references_of(root)?, 0));
            while let Some((path, references, next)) = stack.last_mut() {
                if let Some(reference) = references.get(*next).cloned() {
                    *next += 1;
                    // `entered` also guards against a (corrupt) cycle looping forever.
                    if done.contains(&reference) || entered.contains(&reference) {
                        continue;
                    }
                    entered.insert(reference.clone());
                    let references = references_of(&reference)?;
                    stack.push((reference, references, 0));
                } else {
                    let path = path.clone();
                    stack.pop();
                    done.insert(path.clone());
                    order.push(path);
                }
            }
        }
        Ok(order)
    }
}

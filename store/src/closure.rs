//! Closures: a set of paths plus everything they reference, in a deterministic topological
//! order with dependencies first (the order `export` and the copy protocol send objects in).
use std::collections::HashSet;

use crate::error::Result;
use crate::path::StorePath;
use crate::store::Store;

impl Store {
    /// The closure of `roots`: every path reachable through references, each after all of its
    /// references. Roots are visited in sorted order and references in sorted order, so the
    /// result depends only on the graph. Fails if a path is not valid.
    pub fn closure(&self, roots: &[StorePath]) -> Result<Vec<StorePath>> {
        let mut sorted_roots: Vec<&StorePath> = roots.iter().collect();
        sorted_roots.sort();
        sorted_roots.dedup();
        let mut done: HashSet<StorePath> = HashSet::new();
        let mut order = Vec::new();
        // Iterative depth-first post-order: (path, its references, next reference to visit).
        let mut stack: Vec<(StorePath, Vec<StorePath>, usize)> = Vec::new();
        let mut entered: HashSet<StorePath> = HashSet::new();
        for root in sorted_roots {
            if done.contains(root) {
                continue;
            }
            let info = self.path_info(root)?;
            entered.insert(root.clone());
            stack.push((root.clone(), info.references, 0));
            while let Some((path, references, next)) = stack.last_mut() {
                if let Some(reference) = references.get(*next).cloned() {
                    *next += 1;
                    // `entered` also guards against a (corrupt) cycle looping forever.
                    if done.contains(&reference) || entered.contains(&reference) {
                        continue;
                    }
                    let info = self.path_info(&reference)?;
                    entered.insert(reference.clone());
                    stack.push((reference, info.references, 0));
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

//! Reference scanning: finds which declared candidates' hash parts occur in file contents and
//! symlink targets, and whether any forbidden self-reference marker does. Works on chunks.
use std::collections::HashMap;

use memchr::memmem;

use crate::hash::base32::{self, HASH_CHARS};
use crate::path::StorePath;

/// What to search for; shared (read-only) by all scanning threads.
pub struct ScanPlan {
    hash_parts: HashMap<[u8; HASH_CHARS], usize>,
    markers: Vec<memmem::Finder<'static>>,
    /// Longest needle minus one: how many bytes to carry across chunk boundaries.
    carry: usize,
}

impl ScanPlan {
    pub fn new(candidates: &[StorePath], markers: &[String]) -> ScanPlan {
        let mut hash_parts = HashMap::new();
        for (index, candidate) in candidates.iter().enumerate() {
            let mut key = [0u8; HASH_CHARS];
            key.copy_from_slice(candidate.hash_part().as_bytes());
            hash_parts.entry(key).or_insert(index);
        }
        let markers: Vec<_> = markers
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| memmem::Finder::new(m.as_bytes()).into_owned())
            .collect();
        let longest = markers
            .iter()
            .map(|f| f.needle().len())
            .chain(std::iter::once(HASH_CHARS))
            .max()
            .unwrap_or(HASH_CHARS);
        ScanPlan {
            hash_parts,
            markers,
            carry: longest - 1,
        }
    }

    /// True when there is nothing to look for, so scanning can be skipped entirely.
    pub fn is_empty(&self) -> bool {
        self.hash_parts.is_empty() && self.markers.is_empty()
    }

    fn scan_slice(&self, data: &[u8], found: &mut Found) {
        if !self.hash_parts.is_empty() {
            self.scan_hash_parts(data, found);
        }
        for (index, marker) in self.markers.iter().enumerate() {
            if marker.find(data).is_some() {
                found.markers.push(index);
            }
        }
    }

    /// Slides a 32-byte window; on a byte outside the base32 alphabet it jumps past it, so
    /// ordinary data is skipped quickly and only all-base32 windows are looked up.
    fn scan_hash_parts(&self, data: &[u8], found: &mut Found) {
        let mut start = 0;
        while start + HASH_CHARS <= data.len() {
            let window = &data[start..start + HASH_CHARS];
            match window.iter().rposition(|&b| !base32::is_symbol(b)) {
                Some(bad) => start += bad + 1,
                None => {
                    let mut key = [0u8; HASH_CHARS];
                    key.copy_from_slice(window);
                    if let Some(&index) = self.hash_parts.get(&key) {
                        found.candidates.push(index);
                    }
                    start += 1;
                }
            }
        }
    }
}

/// Indices of candidates and markers seen (may repeat; callers deduplicate).
#[derive(Default, Debug)]
pub struct Found {
    pub candidates: Vec<usize>,
    pub markers: Vec<usize>,
}

/// Scans one stream (a file) chunk by chunk, catching needles that span chunk boundaries.
pub struct Scanner<'a> {
    plan: &'a ScanPlan,
    tail: Vec<u8>,
    pub found: Found,
}

impl<'a> Scanner<'a> {
    pub fn new(plan: &'a ScanPlan) -> Scanner<'a> {
        Scanner {
            plan,
            tail: Vec::new(),
            found: Found::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.plan.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            // A match spanning the boundary lies within tail + the first `carry` bytes.
            let mut seam = self.tail.clone();
            seam.extend_from_slice(&chunk[..chunk.len().min(self.plan.carry)]);
            self.plan.scan_slice(&seam, &mut self.found);
        }
        self.plan.scan_slice(chunk, &mut self.found);
        let carry = self.plan.carry;
        if chunk.len() >= carry {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - carry..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(carry);
            self.tail.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(hash: &str) -> StorePath {
        StorePath::parse(&format!("/s/{hash}-x")).unwrap()
    }

    #[test]
    fn finds_hash_parts_across_chunk_boundaries() {
        let a = path("0123456789abcdfghijklmnpqrsvwxyz");
        let b = path("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
        let plan = ScanPlan::new(&[a.clone(), b], &["/tmp/out".to_string()]);
        let text = format!("hello {} world /tmp/out", a.as_str());
        for split in 0..text.len() {
            let mut scanner = Scanner::new(&plan);
            for piece in text.as_bytes()[..split].chunks(3) {
                scanner.feed(piece);
            }
            scanner.feed(&text.as_bytes()[split..]);
            scanner.found.candidates.dedup();
            assert_eq!(scanner.found.candidates, vec![0], "split at {split}");
            assert!(scanner.found.markers.contains(&0), "split at {split}");
        }
    }

    #[test]
    fn ignores_partial_and_absent_hashes() {
        let a = path("0123456789abcdfghijklmnpqrsvwxyz");
        let plan = ScanPlan::new(&[a], &[]);
        let mut scanner = Scanner::new(&plan);
        scanner.feed(b"0123456789abcdfghijklmnpqrsvwxy- and 123456789abcdfghijklmnpqrsvwxyz0");
        assert!(scanner.found.candidates.is_empty());
    }
}

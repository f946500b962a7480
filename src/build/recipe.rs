//! Recipes (Nix's derivations) and their hand-specified canonical encoding.
//!
//! A recipe's id is `blake3::derive_key("ferry recipe v1", canonical(recipe))`
//! where `canonical` is, in this order:
//!
//! | field    | encoding                                                   |
//! |----------|------------------------------------------------------------|
//! | magic    | the 8 bytes `FRECIPE1`                                     |
//! | name     | string                                                     |
//! | builder  | string (the script, store paths already substituted)       |
//! | src      | u8 0 = none, or u8 1 followed by a string (a store path)   |
//! | inputs   | u64 LE count, then each input store path as a string, sorted by bytes, no duplicates |
//! | env      | u64 LE count, then key string, value string, sorted by key bytes |
//! | timeout  | u64 LE seconds                                             |
//!
//! A *string* is a u64 LE byte length followed by the UTF-8 bytes.
//! Inputs are named by their **output** store paths, not by their recipes, so
//! an input that is rebuilt bit-identically leaves every dependent's id (and
//! so its realisation) unchanged: early cutoff. The golden vector in the tests
//! pins this encoding; changing it must break them.
use std::collections::{BTreeMap, BTreeSet};

use ferry_store::RecipeId;

/// How to build one store object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The output's name.
    pub name: String,
    /// The builder script.
    pub builder: String,
    /// The source's store path, if any.
    pub src: Option<String>,
    /// The inputs' store paths.
    pub inputs: BTreeSet<String>,
    /// Extra environment of the builder.
    pub env: BTreeMap<String, String>,
    /// The builder's time limit in seconds.
    pub timeout_secs: u64,
}

const KEY_CONTEXT: &str = "ferry recipe v1";

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

impl Recipe {
    /// The canonical byte encoding described in the module documentation.
    pub fn canonical(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256 + self.builder.len());
        buf.extend_from_slice(b"FRECIPE1");
        put_str(&mut buf, &self.name);
        put_str(&mut buf, &self.builder);
        match &self.src {
            None => buf.push(0),
            Some(src) => {
                buf.push(1);
                put_str(&mut buf, src);
            }
        }
        buf.extend_from_slice(&(self.inputs.len() as u64).to_le_bytes());
        for input in &self.inputs {
            put_str(&mut buf, input);
        }
        buf.extend_from_slice(&(self.env.len() as u64).to_le_bytes());
        for (key, value) in &self.env {
            put_str(&mut buf, key);
            put_str(&mut buf, value);
        }
        buf.extend_from_slice(&self.timeout_secs.to_le_bytes());
        buf
    }

    /// The recipe's id.
    pub fn id(&self) -> RecipeId {
        let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
        hasher.update(&self.canonical());
        RecipeId(*hasher.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recipe {
        Recipe {
            name: "hello".into(),
            builder: "mkdir $out".into(),
            src: Some("/ferry/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-src".into()),
            inputs: ["/ferry/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-dep".to_string()].into(),
            env: [("GREETING".to_string(), "hi".to_string())].into(),
            timeout_secs: 600,
        }
    }

    #[test]
    fn canonical_encoding_golden_vector() {
        let mut expected = Vec::new();
        expected.extend_from_slice(b"FRECIPE1");
        expected.extend_from_slice(&5u64.to_le_bytes());
        expected.extend_from_slice(b"hello");
        expected.extend_from_slice(&10u64.to_le_bytes());
        expected.extend_from_slice(b"mkdir $out");
        expected.push(1);
        expected.extend_from_slice(&49u64.to_le_bytes());
        expected.extend_from_slice(b"/ferry/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-src");
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&49u64.to_le_bytes());
        expected.extend_from_slice(b"/ferry/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-dep");
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&8u64.to_le_bytes());
        expected.extend_from_slice(b"GREETING");
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(b"hi");
        expected.extend_from_slice(&600u64.to_le_bytes());
        assert_eq!(sample().canonical(), expected);
    }

    #[test]
    fn recipe_id_golden_vector() {
        assert_eq!(sample().id().to_string(), GOLDEN_ID);
    }

    #[test]
    fn every_field_changes_the_id() {
        let base = sample().id();
        let mut r = sample();
        r.name.push('x');
        assert_ne!(r.id(), base);
        let mut r = sample();
        r.builder.push(' ');
        assert_ne!(r.id(), base);
        let mut r = sample();
        r.src = None;
        assert_ne!(r.id(), base);
        let mut r = sample();
        r.inputs.clear();
        assert_ne!(r.id(), base);
        let mut r = sample();
        r.env.insert("A".into(), "".into());
        assert_ne!(r.id(), base);
        let mut r = sample();
        r.timeout_secs += 1;
        assert_ne!(r.id(), base);
    }

    const GOLDEN_ID: &str = "e1995f860964b211408099d67edd65d6d3bb98124cb0894b0b186bea7cb9c30b";
}

//! Store directories, store object names and store paths (`<store_dir>/<hash>-<name>`).
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::error::{Result, StoreError};
use crate::hash::base32::{self, HASH_BYTES, HASH_CHARS};

/// Longest allowed object name, as in Nix.
pub const MAX_NAME_LEN: usize = 211;

/// An absolute, normalized store directory. Its text is part of every object id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreDir {
    text: String,
}

impl StoreDir {
    /// Checks that `path` is absolute, UTF-8, and has no `.`/`..` components; drops a trailing `/`.
    pub fn new(path: &Path) -> Result<StoreDir> {
        let bad = |reason| StoreError::BadStoreDir {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_absolute() {
            return Err(bad("it must be an absolute path"));
        }
        let text = path.to_str().ok_or_else(|| bad("it must be valid UTF-8"))?;
        if path
            .components()
            .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
            || text.contains("//")
        {
            return Err(bad("it must be normalized (no `.`, `..` or `//`)"));
        }
        let text = text.trim_end_matches('/');
        if text.is_empty() {
            return Err(bad("the root directory cannot be a store"));
        }
        if text.len() > crate::archive::limits::STORE_DIR_LEN {
            return Err(bad(
                "it must be at most 700 bytes long (every path in the store stays below PATH_MAX)",
            ));
        }
        Ok(StoreDir {
            text: text.to_string(),
        })
    }

    /// The directory as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The directory as a file-system path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.text)
    }
}

impl fmt::Display for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks a store object name against Nix's rules: ASCII letters, digits and `+-._?=`,
/// not starting with `.`, 1 to 211 bytes.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| StoreError::BadName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("it is longer than 211 bytes"));
    }
    if name.starts_with('.') {
        return Err(bad("it starts with `.`"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
    {
        return Err(bad(
            "it contains a character other than ASCII letters, digits and `+-._?=`",
        ));
    }
    Ok(())
}

/// The path of a store object, kept as its full text; ordered by that text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    text: String,
    /// Byte offset of the base name (`<hash>-<name>`) in `text`.
    base_start: usize,
}

impl StorePath {
    /// Builds the path of an object id (first 20 bytes used) and a validated name.
    pub(crate) fn from_parts(dir: &StoreDir, id: &[u8; 32], name: &str) -> StorePath {
        let hash = base32::encode(&id[..HASH_BYTES]);
        let text = format!("{}/{}-{}", dir.as_str(), hash, name);
        StorePath {
            base_start: dir.as_str().len() + 1,
            text,
        }
    }

    /// Parses `<store_dir>/<32 base32 chars>-<name>`; the store dir is not checked against a store.
    pub fn parse(text: &str) -> Result<StorePath> {
        let bad = |reason: &str| StoreError::BadStorePath {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let slash = text
            .rfind('/')
            .ok_or_else(|| bad("it is not an absolute path"))?;
        let dir = &text[..slash];
        let base = &text[slash + 1..];
        if base.len() < HASH_CHARS + 2 || base.as_bytes()[HASH_CHARS] != b'-' {
            return Err(bad("its file name is not `<32-character hash>-<name>`"));
        }
        StoreDir::new(Path::new(if dir.is_empty() { "/" } else { dir }))
            .map_err(|_| bad("its directory is not an absolute normalized path"))?;
        if !base.as_bytes()[..HASH_CHARS]
            .iter()
            .all(|&b| base32::is_symbol(b))
        {
            return Err(bad(
                "its hash part has characters outside the base32 alphabet",
            ));
        }
        validate_name(&base[HASH_CHARS + 1..]).map_err(|e| bad(&e.to_string()))?;
        Ok(StorePath {
            text: text.to_string(),
            base_start: slash + 1,
        })
    }

    /// The whole path as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The whole path as a file-system path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.text)
    }

    /// The whole path as an owned file-system path.
    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf::from(&self.text)
    }

    /// The store directory part, e.g. `/ferry/store`.
    pub fn store_dir(&self) -> &str {
        &self.text[..self.base_start - 1]
    }

    /// `<hash>-<name>`: the file name inside the store directory.
    pub fn base_name(&self) -> &str {
        &self.text[self.base_start..]
    }

    /// The 32-character base32 hash part: what reference scanning searches for.
    pub fn hash_part(&self) -> &str {
        &self.text[self.base_start..self.base_start + HASH_CHARS]
    }

    /// The name after the hash, e.g. `hello-2.12`.
    pub fn name(&self) -> &str {
        &self.text[self.base_start + HASH_CHARS + 1..]
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({})", self.text)
    }
}

impl FromStr for StorePath {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<StorePath> {
        StorePath::parse(text)
    }
}

impl serde::Serialize for StorePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for StorePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        StorePath::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_splits_a_store_path() {
        let p =
            StorePath::parse("/ferry/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12").unwrap();
        assert_eq!(p.store_dir(), "/ferry/store");
        assert_eq!(p.hash_part(), "0123456789abcdfghijklmnpqrsvwxyz");
        assert_eq!(p.name(), "hello-2.12");
        assert_eq!(p.base_name(), "0123456789abcdfghijklmnpqrsvwxyz-hello-2.12");
        assert_eq!(p.to_string(), p.as_str());
    }

    #[test]
    fn refuses_malformed_store_paths() {
        for text in [
            "relative/0123456789abcdfghijklmnpqrsvwxyz-x",
            "/ferry/store/0123456789abcdfghijklmnpqrsvwxyz",
            "/ferry/store/0123456789abcdfghijklmnpqrsvwxye-x",
            "/ferry/store/0123456789abcdfghijklmnpqrsvwxyz-.hidden",
            "/ferry/store/0123456789abcdfghijklmnpqrsvwxyz-a b",
            "/ferry/../0123456789abcdfghijklmnpqrsvwxyz-x",
        ] {
            assert!(StorePath::parse(text).is_err(), "{text} parsed");
        }
    }

    #[test]
    fn names_follow_nix_rules() {
        assert!(validate_name("hello-2.12+x_y?=z").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(".x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("é").is_err());
        assert!(validate_name(&"a".repeat(211)).is_ok());
        assert!(validate_name(&"a".repeat(212)).is_err());
    }

    #[test]
    fn store_dirs_are_absolute_and_normalized() {
        assert_eq!(
            StoreDir::new(Path::new("/ferry/store/")).unwrap().as_str(),
            "/ferry/store"
        );
        assert!(StoreDir::new(Path::new("ferry/store")).is_err());
        assert!(StoreDir::new(Path::new("/ferry/../store")).is_err());
        assert!(StoreDir::new(Path::new("/")).is_err());
    }
}

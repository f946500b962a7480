//! apt's configuration under a root directory: the `deb` sources of
//! `etc/apt/sources.list`, `etc/apt/sources.list.d/*.list` and `*.sources`, the
//! keyrings that sign them, and `Acquire::Check-Valid-Until` from `etc/apt/apt.conf*`.

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::deb822::{self, Deb822Error};

/// One `deb` source: a repository URI and one suite of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The repository URI as configured, without a trailing `/`.
    pub uri: String,
    /// The suite (`bookworm`, `bookworm-updates`, …).
    pub suite: String,
    /// The components (`main`, …).
    pub components: Vec<String>,
    /// `arch=`/`Architectures:` if given (empty: the machine's architectures).
    pub architectures: Vec<String>,
    /// Keyrings that may sign the suite's `InRelease`, as paths under the root.
    pub signed_by: Vec<PathBuf>,
}

impl Source {
    /// The URL of a file of the suite: `path` under `dists/SUITE/` (`InRelease`,
    /// `main/binary-amd64/Packages.xz`).
    pub fn dists_url(&self, path: &str) -> String {
        format!("{}/dists/{}/{path}", self.uri, self.suite)
    }

    /// The URL of a package's `Filename` (`pool/main/…`) in this repository.
    pub fn pool_url(&self, filename: &str) -> String {
        format!("{}/{}", self.uri, filename.trim_start_matches('/'))
    }
}

/// apt's configuration as far as resolving needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptConfig {
    /// The enabled `deb` sources, in apt's reading order.
    pub sources: Vec<Source>,
    /// `Acquire::Check-Valid-Until` (default `true`).
    pub check_valid_until: bool,
}

/// Why apt's configuration cannot be read.
#[derive(Debug, Error)]
pub enum SourcesError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A one-line `deb` entry is malformed.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A deb822 `.sources` file is malformed.
    #[error("{path}: {source}")]
    Deb822 {
        /// The file.
        path: PathBuf,
        /// The syntax error.
        source: Deb822Error,
    },
    /// A `.sources` paragraph lacks a required field.
    #[error("{path}: paragraph at line {line} has no {field} field")]
    MissingField {
        /// The file.
        path: PathBuf,
        /// Paragraph line.
        line: usize,
        /// The field.
        field: &'static str,
    },
}

impl AptConfig {
    /// Reads the configuration of the system rooted at `root` (`/` for this machine).
    pub fn read(root: &Path) -> Result<AptConfig, SourcesError> {
        let etc = root.join("etc/apt");
        let default_keys = default_keyrings(root)?;
        let mut sources = Vec::new();
        let list = etc.join("sources.list");
        if list.exists() {
            sources.extend(read_one_line_file(root, &list, &default_keys)?);
        }
        for path in sorted_entries(&etc.join("sources.list.d"))? {
            match path.extension().and_then(|e| e.to_str()) {
                Some("list") => sources.extend(read_one_line_file(root, &path, &default_keys)?),
                Some("sources") => sources.extend(read_deb822_file(root, &path, &default_keys)?),
                _ => {}
            }
        }
        let mut check_valid_until = true;
        let mut conf_files = Vec::new();
        if etc.join("apt.conf").exists() {
            conf_files.push(etc.join("apt.conf"));
        }
        conf_files.extend(
            sorted_entries(&etc.join("apt.conf.d"))?
                .into_iter()
                .filter(|p| is_apt_conf_part(p)),
        );
        for path in conf_files {
            let text = read_text(&path)?;
            if let Some(v) = conf_bool(&text, "Acquire::Check-Valid-Until") {
                check_valid_until = v;
            }
        }
        Ok(AptConfig {
            sources,
            check_valid_until,
        })
    }
}

/// apt reads `apt.conf.d` files whose names are letters, digits, `_-.` and that end
/// in `.conf` or have no extension.
fn is_apt_conf_part(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && (!name.contains('.') || name.ends_with(".conf"))
}

fn read_text(path: &Path) -> Result<String, SourcesError> {
    fs::read_to_string(path).map_err(|source| SourcesError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, SourcesError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let io = |source| SourcesError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        if e.file_type().map_err(io)?.is_file() || e.path().is_file() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The keyrings apt trusts for a source without `Signed-By`.
fn default_keyrings(root: &Path) -> Result<Vec<PathBuf>, SourcesError> {
    let mut keys = Vec::new();
    let archive = root.join("usr/share/keyrings/debian-archive-keyring.gpg");
    if archive.exists() {
        keys.push(archive);
    }
    let trusted = root.join("etc/apt/trusted.gpg");
    if trusted.exists() {
        keys.push(trusted);
    }
    keys.extend(
        sorted_entries(&root.join("etc/apt/trusted.gpg.d"))?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "gpg")),
    );
    Ok(keys)
}

/// A configured key path, read under `root`.
fn under_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn read_one_line_file(
    root: &Path,
    path: &Path,
    default_keys: &[PathBuf],
) -> Result<Vec<Source>, SourcesError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| SourcesError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason: reason.to_string(),
        };
        let (kind, mut rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected `deb URI suite component…`"))?;
        match kind {
            "deb" => {}
            "deb-src" => continue,
            _ => return Err(bad("a source line starts with `deb` or `deb-src`")),
        }
        let mut options = Vec::new();
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('[') {
            let (opts, after) = r.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            options = opts
                .split_whitespace()
                .filter_map(|o| o.split_once('='))
                .collect();
            rest = after;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [uri, suite, components @ ..] = words.as_slice() else {
            return Err(bad("expected `deb URI suite component…`"));
        };
        let option = |key: &str| -> Vec<String> {
            options
                .iter()
                .filter(|(k, _)| *k == key)
                .flat_map(|(_, v)| v.split(','))
                .map(str::to_string)
                .collect()
        };
        let signed_by: Vec<PathBuf> = option("signed-by")
            .iter()
            .map(|p| under_root(root, p))
            .collect();
        out.push(Source {
            uri: uri.trim_end_matches('/').to_string(),
            suite: suite.to_string(),
            components: components.iter().map(|c| c.to_string()).collect(),
            architectures: option("arch"),
            signed_by: if signed_by.is_empty() {
                default_keys.to_vec()
            } else {
                signed_by
            },
        });
    }
    Ok(out)
}

fn read_deb822_file(
    root: &Path,
    path: &Path,
    default_keys: &[PathBuf],
) -> Result<Vec<Source>, SourcesError> {
    let text = read_text(path)?;
    let paras = deb822::parse(&text).map_err(|source| SourcesError::Deb822 {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for p in paras {
        let words = |f: &str| -> Vec<String> {
            p.get(f)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let required = |field: &'static str| {
            let w = words(field);
            if w.is_empty() {
                Err(SourcesError::MissingField {
                    path: path.to_path_buf(),
                    line: p.line,
                    field,
                })
            } else {
                Ok(w)
            }
        };
        let enabled = p
            .get("Enabled")
            .is_none_or(|v| !matches!(v, "no" | "false" | "0"));
        if !enabled || !required("Types")?.iter().any(|t| t == "deb") {
            continue;
        }
        // Signed-By is either key file paths or an inline armored key; only paths
        // are kept, an inline key leaves the default keyrings.
        let signed_by: Vec<PathBuf> = match p.get("Signed-By") {
            Some(v) if !v.contains("BEGIN PGP") => {
                v.split_whitespace().map(|k| under_root(root, k)).collect()
            }
            _ => default_keys.to_vec(),
        };
        for uri in required("URIs")? {
            for suite in required("Suites")? {
                out.push(Source {
                    uri: uri.trim_end_matches('/').to_string(),
                    suite,
                    components: words("Components"),
                    architectures: words("Architectures"),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The last boolean value of `key` (`A::B`, case-insensitive) in an apt.conf text,
/// in either the `A::B "v";` or the `A { B "v"; };` form.
pub fn conf_bool(text: &str, key: &str) -> Option<bool> {
    let mut found = None;
    let mut scopes: Vec<String> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    for token in conf_tokens(text) {
        match token.as_str() {
            "{" => {
                scopes.push(words.join(" "));
                words.clear();
            }
            "}" => {
                scopes.pop();
                words.clear();
            }
            ";" => {
                if let [name, value] = words.as_slice() {
                    let mut full = scopes.clone();
                    full.push(name.clone());
                    if full.join("::").eq_ignore_ascii_case(key) {
                        found = match value.to_ascii_lowercase().as_str() {
                            "true" | "yes" | "on" | "1" | "enable" => Some(true),
                            "false" | "no" | "off" | "0" | "disable" => Some(false),
                            _ => found,
                        };
                    }
                }
                words.clear();
            }
            _ => words.push(token),
        }
    }
    found
}

/// apt.conf tokens: words, quoted strings (unquoted), `{`, `}`, `;`; comments
/// (`//`, `#`, `/* */`) dropped.
fn conf_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push(chars.by_ref().take_while(|&c| c != '"').collect()),
            '{' | '}' | ';' => out.push(c.to_string()),
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|&c| c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            c if c.is_whitespace() => {}
            c => {
                let mut word = c.to_string();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !"\"{};".contains(*c)) {
                    word.push(c);
                }
                out.push(word);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

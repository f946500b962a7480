//! Binary package paragraphs of a `Packages` index, with the fields resolving and
//! fetching need.

use thiserror::Error;

use crate::deb822::{self, Deb822Error, Paragraph};
use crate::relation::{parse_relations, Relation, RelationError};
use crate::version::{Version, VersionError};

/// A package's `Multi-Arch` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiArch {
    /// No field, or `no`.
    #[default]
    No,
    /// `same`: co-installable across architectures.
    Same,
    /// `foreign`: satisfies dependencies of every architecture.
    Foreign,
    /// `allowed`: may satisfy `pkg:any` dependencies.
    Allowed,
}

/// One binary package as an index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageEntry {
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: Version,
    /// `Architecture` (`amd64`, `all`, …).
    pub architecture: String,
    /// `Depends`.
    pub depends: Vec<Relation>,
    /// `Pre-Depends`.
    pub pre_depends: Vec<Relation>,
    /// `Provides`: virtual names, optionally with an `=` version.
    pub provides: Vec<Relation>,
    /// `Filename`: the `.deb`'s path in the repository (`pool/main/…`).
    pub filename: String,
    /// `Size` in bytes.
    pub size: u64,
    /// `SHA256` of the `.deb`, lower-case hex.
    pub sha256: String,
    /// `Multi-Arch`.
    pub multi_arch: MultiArch,
    /// `Essential: yes`.
    pub essential: bool,
}

/// Why an index does not parse.
#[derive(Debug, Error)]
pub enum ControlError {
    /// The deb822 structure is broken.
    #[error(transparent)]
    Syntax(#[from] Deb822Error),
    /// A required field is missing.
    #[error("paragraph at line {line}{}: missing field {field}", package_suffix(.package))]
    MissingField {
        /// Line of the paragraph.
        line: usize,
        /// The package, when its name is known.
        package: Option<String>,
        /// The missing field.
        field: &'static str,
    },
    /// A field has a bad value.
    #[error("package {package} (line {line}): bad {field}: {reason}")]
    BadField {
        /// Line of the paragraph.
        line: usize,
        /// The package.
        package: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn package_suffix(p: &Option<String>) -> String {
    p.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
}

/// Parses a whole (uncompressed) `Packages` index.
pub fn parse_packages(bytes: &[u8]) -> Result<Vec<PackageEntry>, ControlError> {
    deb822::parse_bytes(bytes)?
        .iter()
        .map(package_from_paragraph)
        .collect()
}

/// Reads one package paragraph.
pub fn package_from_paragraph(p: &Paragraph) -> Result<PackageEntry, ControlError> {
    let line = p.line;
    let name = p.get("Package").ok_or(ControlError::MissingField {
        line,
        package: None,
        field: "Package",
    })?;
    let required = |field: &'static str| {
        p.get(field).ok_or_else(|| ControlError::MissingField {
            line,
            package: Some(name.to_string()),
            field,
        })
    };
    let bad = |field: &'static str, reason: String| ControlError::BadField {
        line,
        package: name.to_string(),
        field,
        reason,
    };
    let relations = |field: &'static str| {
        parse_relations(p.get(field).unwrap_or(""))
            .map_err(|e: RelationError| bad(field, e.to_string()))
    };
    let version = required("Version")?
        .parse()
        .map_err(|e: VersionError| bad("Version", e.to_string()))?;
    let size = required("Size")?
        .parse()
        .map_err(|e: std::num::ParseIntError| bad("Size", e.to_string()))?;
    let sha256 = required("SHA256")?.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("SHA256", "not 64 hex digits".into()));
    }
    let multi_arch = match p.get("Multi-Arch") {
        None | Some("no") => MultiArch::No,
        Some("same") => MultiArch::Same,
        Some("foreign") => MultiArch::Foreign,
        Some("allowed") => MultiArch::Allowed,
        Some(other) => return Err(bad("Multi-Arch", format!("unknown value {other:?}"))),
    };
    Ok(PackageEntry {
        name: name.to_string(),
        version,
        architecture: required("Architecture")?.to_string(),
        depends: relations("Depends")?,
        pre_depends: relations("Pre-Depends")?,
        provides: relations("Provides")?,
        filename: required("Filename")?.to_string(),
        size,
        sha256,
        multi_arch,
        essential: p.get("Essential") == Some("yes"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn reads_the_fields_resolving_needs() {
        let text = format!(
            "Package: libpq5\nVersion: 15.20-0+deb12u1\nArchitecture: amd64\nMulti-Arch: same\n\
             Depends: libc6 (>= 2.34), libgssapi-krb5-2 (>= 1.17)\nPre-Depends: dpkg (>= 1.15)\n\
             Provides: libpq (= 15.20)\nFilename: pool/main/p/pq/libpq5.deb\nSize: 190000\n\
             SHA256: {}\nDescription: x\n more\n\nPackage: base-files\nVersion: 12.4\n\
             Architecture: amd64\nEssential: yes\nFilename: pool/b.deb\nSize: 1\nSHA256: {HASH}\n",
            HASH.to_uppercase()
        );
        let pkgs = parse_packages(text.as_bytes()).unwrap();
        assert_eq!(pkgs.len(), 2);
        let p = &pkgs[0];
        assert_eq!(p.version.as_str(), "15.20-0+deb12u1");
        assert_eq!(p.depends.len(), 2);
        assert_eq!(p.pre_depends[0].to_string(), "dpkg (>= 1.15)");
        assert_eq!(p.provides[0].to_string(), "libpq (= 15.20)");
        assert_eq!(p.multi_arch, MultiArch::Same);
        assert_eq!(p.sha256, HASH);
        assert!(!p.essential && pkgs[1].essential);
    }

    #[test]
    fn missing_and_bad_fields_name_the_package() {
        let err = parse_packages(
            format!("Package: a\nVersion: 1\nArchitecture: all\nSize: 1\nSHA256: {HASH}\n")
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "paragraph at line 1 (a): missing field Filename"
        );
        let text = format!(
            "Package: a\nVersion: 1\nArchitecture: all\nFilename: f\nSize: big\nSHA256: {HASH}\n"
        );
        let err = parse_packages(text.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "package a (line 1): bad Size: invalid digit found in string"
        );
    }
}

//! Index bytes from apt's own lists directory (`/var/lib/apt/lists`), and
//! decompressing indexes by their file name (`.xz`, `.gz`, `.lz4`, plain).

use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::sources::Source;

/// Why an index cannot be read or decompressed.
#[derive(Debug, Error)]
pub enum ListsError {
    /// apt has no copy of this file (run `apt-get update`).
    #[error("apt has no {what} for {uri} {suite} in {dir}\n  hint: run `apt-get update`")]
    Missing {
        /// What was looked for.
        what: String,
        /// The source URI.
        uri: String,
        /// The suite.
        suite: String,
        /// The lists directory.
        dir: PathBuf,
    },
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The compressed bytes are broken.
    #[error("cannot decompress {name}: {source}")]
    Decompress {
        /// The file name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The file-name prefix apt uses in its lists directory for a source URI plus
/// `dists/SUITE/`: the URI without scheme and credentials, `/` turned into `_`.
pub fn list_prefix(source: &Source) -> String {
    let uri = source
        .uri
        .split_once("://")
        .map_or(source.uri.as_str(), |(_, r)| r);
    // Credentials live in the authority only (`user:pass@host`), never in the path.
    let authority_end = uri.find('/').unwrap_or(uri.len());
    let uri = match uri[..authority_end].rfind('@') {
        Some(at) => &uri[at + 1..],
        None => uri,
    };
    let mut out = String::new();
    for c in format!("{uri}/dists/{}/", source.suite).chars() {
        match c {
            '/' => out.push('_'),
            // apt's URItoFileName quotes these (and blanks, controls) as %xx.
            c if "\\|{}[]<>\"^~_=!@#$%&*".contains(c) || !c.is_ascii_graphic() => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("%{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// apt's copy of the source's `InRelease`.
pub fn read_inrelease(lists: &Path, source: &Source) -> Result<Vec<u8>, ListsError> {
    let path = lists.join(format!("{}InRelease", list_prefix(source)));
    if !path.exists() {
        return Err(missing(lists, source, "InRelease"));
    }
    std::fs::read(&path).map_err(|e| ListsError::Io { path, source: e })
}

/// apt's copy of the `Packages` index for `component`/`arch`, decompressed.
/// Returns the path under `dists/SUITE/` of the uncompressed index (whose hash
/// the Release lists) and its bytes.
pub fn read_packages(
    lists: &Path,
    source: &Source,
    component: &str,
    arch: &str,
) -> Result<(String, Vec<u8>), ListsError> {
    let rel = format!("{component}/binary-{arch}/Packages");
    let base = format!("{}{}", list_prefix(source), rel.replace('/', "_"));
    for suffix in ["", ".lz4", ".xz", ".gz"] {
        let path = lists.join(format!("{base}{suffix}"));
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| ListsError::Io {
                path: path.clone(),
                source: e,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok((rel, decompress(&name, &bytes)?));
        }
    }
    Err(missing(lists, source, &rel))
}

fn missing(lists: &Path, source: &Source, what: &str) -> ListsError {
    ListsError::Missing {
        what: what.to_string(),
        uri: source.uri.clone(),
        suite: source.suite.clone(),
        dir: lists.to_path_buf(),
    }
}

/// Decompresses an index by its name's extension; other names pass through.
pub fn decompress(name: &str, bytes: &[u8]) -> Result<Vec<u8>, ListsError> {
    let mut out = Vec::new();
    let result = if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(bytes).read_to_end(&mut out)
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)
    } else if name.ends_with(".lz4") {
        lz4_flex::frame::FrameDecoder::new(bytes).read_to_end(&mut out)
    } else {
        return Ok(bytes.to_vec());
    };
    result.map_err(|source| ListsError::Decompress {
        name: name.to_string(),
        source,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn source(uri: &str, suite: &str) -> Source {
        Source {
            uri: uri.into(),
            suite: suite.into(),
            components: vec!["main".into()],
            architectures: vec![],
            signed_by: vec![],
        }
    }

    #[test]
    fn list_names_follow_apt() {
        assert_eq!(
            list_prefix(&source(
                "http://repo.invalid/debian-security",
                "bookworm-security"
            )),
            "repo.invalid_debian-security_dists_bookworm-security_"
        );
        assert_eq!(
            list_prefix(&source("https://u:p@repo.invalid:8080/a_b", "s")),
            "repo.invalid:8080_a%5fb_dists_s_"
        );
        assert_eq!(
            list_prefix(&source("http://repo.invalid/~me/x y@z", "s")),
            "repo.invalid_%7eme_x%20y%40z_dists_s_"
        );
    }

    #[test]
    fn decompresses_every_format_apt_keeps() {
        let text = b"Package: a\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&text).unwrap();
        let xz = xz.finish().unwrap();
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(&text).unwrap();
        let lz = lz.finish().unwrap();
        assert_eq!(decompress("Packages.gz", &gz).unwrap(), text);
        assert_eq!(decompress("Packages.xz", &xz).unwrap(), text);
        assert_eq!(decompress("Packages.lz4", &lz).unwrap(), text);
        assert_eq!(decompress("Packages", &text).unwrap(), text);
        assert!(decompress("Packages.xz", &gz).is_err());
    }
}

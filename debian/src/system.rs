//! The machine's own candidates: every configured source whose lists apt holds in
//! `/var/lib/apt/lists`, each `InRelease` verified with the source's keyrings and
//! each `Packages` index checked against the verified hash before it is parsed.

use std::path::Path;
use std::time::SystemTime;

use thiserror::Error;

use crate::control::{parse_packages, ControlError, PackageEntry};
use crate::lists::{decompress, read_inrelease, read_packages, ListsError};
use crate::release::{Release, ReleaseError};
use crate::sources::{AptConfig, Source};
use crate::universe::{Origin, Universe};

/// apt's default lists directory.
pub const APT_LISTS: &str = "/var/lib/apt/lists";

/// A universe made from apt's lists, and the sources left out for lack of lists.
#[derive(Debug)]
pub struct SystemUniverse {
    /// The candidates.
    pub universe: Universe,
    /// Sources (or components) apt holds no lists for; their packages are absent.
    pub skipped: Vec<(Source, ListsError)>,
}

/// Why the machine's indexes cannot be used.
#[derive(Debug, Error)]
pub enum SystemError {
    /// An index cannot be read.
    #[error(transparent)]
    Lists(#[from] ListsError),
    /// An `InRelease` is refused or an index does not match it.
    #[error("{uri} {suite}: {source}")]
    Release {
        /// The source URI.
        uri: String,
        /// The suite.
        suite: String,
        /// Why.
        source: ReleaseError,
    },
    /// An index does not parse.
    #[error("{uri} {suite} {path}: {source}")]
    Control {
        /// The source URI.
        uri: String,
        /// The suite.
        suite: String,
        /// The index path.
        path: String,
        /// Why.
        source: Box<ControlError>,
    },
}

/// Why one index's bytes are refused.
#[derive(Debug, Error)]
pub enum IndexError {
    /// The bytes do not match the verified Release.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The bytes do not decompress.
    #[error(transparent)]
    Lists(#[from] ListsError),
    /// The index does not parse.
    #[error(transparent)]
    Control(Box<ControlError>),
}

/// The packages of an index file whose `bytes` (compressed as `path`'s name
/// says, or plain) are checked against the verified `release` first: the path
/// to hand over is the one the Release lists (`main/binary-amd64/Packages.xz`).
/// A fetcher uses this for downloaded indexes; [`load_universe`] for apt's lists.
pub fn verified_packages(
    release: &Release,
    path: &str,
    bytes: &[u8],
) -> Result<Vec<PackageEntry>, IndexError> {
    release.check(path, bytes)?;
    let plain = decompress(path, bytes)?;
    parse_packages(&plain).map_err(|e| IndexError::Control(Box::new(e)))
}

/// Loads every source of `config` for `arch` from the lists directory `lists`,
/// verifying at `now`. A source without lists is skipped and reported; a bad
/// signature, an expired Release (when checked) or a hash mismatch is an error.
pub fn load_universe(
    config: &AptConfig,
    lists: &Path,
    arch: &str,
    now: SystemTime,
) -> Result<SystemUniverse, SystemError> {
    let mut universe = Universe::new(arch);
    let mut skipped = Vec::new();
    for source in &config.sources {
        if !source.architectures.is_empty() && !source.architectures.iter().any(|a| a == arch) {
            continue;
        }
        let release_error = |e| SystemError::Release {
            uri: source.uri.clone(),
            suite: source.suite.clone(),
            source: e,
        };
        let inrelease = match read_inrelease(lists, source) {
            Ok(bytes) => bytes,
            Err(e @ ListsError::Missing { .. }) => {
                skipped.push((source.clone(), e));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let release = Release::verify(&inrelease, &source.signed_by, config.check_valid_until, now)
            .map_err(release_error)?;
        for component in &source.components {
            let (path, bytes) = match read_packages(lists, source, component, arch) {
                Ok(found) => found,
                Err(e @ ListsError::Missing { .. }) => {
                    skipped.push((source.clone(), e));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let entries = verified_packages(&release, &path, &bytes).map_err(|e| match e {
                IndexError::Release(e) => release_error(e),
                IndexError::Lists(e) => SystemError::Lists(e),
                IndexError::Control(e) => SystemError::Control {
                    uri: source.uri.clone(),
                    suite: source.suite.clone(),
                    path: path.clone(),
                    source: e,
                },
            })?;
            let origin = Origin {
                suite: source.suite.clone(),
                component: component.clone(),
            };
            universe.add_index(&origin, entries);
        }
    }
    Ok(SystemUniverse { universe, skipped })
}

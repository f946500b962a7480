//! The machine's own candidates: every configured source whose lists apt holds in
//! `/var/lib/apt/lists`, each `InRelease` verified with the source's keyrings and
//! each `Packages` index checked against the verified hash before it is parsed.

use std::path::Path;
use std::time::SystemTime;

use thiserror::Error;

use crate::control::{parse_packages, ControlError};
use crate::lists::{read_inrelease, read_packages, ListsError};
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
            release.check(&path, &bytes).map_err(release_error)?;
            let entries = parse_packages(&bytes).map_err(|e| SystemError::Control {
                uri: source.uri.clone(),
                suite: source.suite.clone(),
                path: path.clone(),
                source: Box::new(e),
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

//! One verified `.deb` becomes one store object: its data archive, unpacked by [`crate::unpack`]
//! and added to the store under the name [`object_name`] gives.
//!
//! Invariants:
//! - Nothing is registered unless the bytes read had the expected sha256 (hashed in the same
//!   pass that unpacks them) and the control fields match what the caller expected.
//! - The store path depends only on the `.deb`'s bytes (its data tree, normalised, and its
//!   `Package`/`Version`), not on the deployer: two stores with the same store dir give the
//!   same path.
//! - Each added package is recorded as a realisation keyed by [`deb_recipe_id`], so
//!   [`find_deb_object`] finds it again from the lock's sha256 alone (no `.deb` needed).
//! - [`fetch_and_add`] gives every package the same store path as [`add_deb`]: the same
//!   checks, the same tree, only unpacked in memory and imported instead of copied from disk.
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use ferry_store::{AddOptions, RecipeId, Store, StoreError, StorePath};

use crate::deb::{DebArchive, DebControl};
use crate::fetch::{FetchError, FetchedFile, Sha256, Sha256Reader};
use crate::unpack::{unpack_tar, unpack_tar_in_memory, MemoryTree, UnpackError, UnpackReport};

mod pipeline;
mod stream;
pub use pipeline::{default_unpack_jobs, fetch_and_add, FetchAddError, WantedDeb, MEMORY_LIMIT};

/// The BLAKE3 key-derivation context of [`deb_recipe_id`].
pub const DEB_RECIPE_CONTEXT: &str = "ferry debian deb object v1";

/// What the lock says a `.deb` contains, checked against its control file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedPackage {
    /// `Package:`.
    pub package: String,
    /// `Version:`.
    pub version: String,
    /// `Architecture:`.
    pub architecture: String,
}

/// A package added to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebObject {
    /// The store object holding the package's unpacked data tree.
    pub path: StorePath,
    /// The package's control fields.
    pub control: DebControl,
    /// What unpacking did (files, dropped bits, skipped devices, absolute symlinks).
    pub report: UnpackReport,
}

/// Why a `.deb` could not be added.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The `.deb` could not be read.
    #[error("cannot read {}: {source}", deb.display())]
    Read {
        /// The `.deb`.
        deb: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The `.deb`'s bytes are not the ones expected.
    #[error("{} has the wrong sha256: expected {expected}, got {got} ({size} bytes); nothing was added", deb.display())]
    HashMismatch {
        /// The `.deb`.
        deb: PathBuf,
        /// The digest expected (from the lock).
        expected: Sha256,
        /// The digest of the file.
        got: Sha256,
        /// The file's size.
        size: u64,
    },
    /// A control field differs from what the lock says.
    #[error("{} is not the locked package: its {field} is `{got}`, the lock says `{expected}`", deb.display())]
    ControlMismatch {
        /// The `.deb`.
        deb: PathBuf,
        /// The field, e.g. `Version`.
        field: &'static str,
        /// The lock's value.
        expected: String,
        /// The control file's value.
        got: String,
    },
    /// The `.deb` is malformed or its data archive was refused.
    #[error("cannot unpack {}: {source}", deb.display())]
    Unpack {
        /// The `.deb`.
        deb: PathBuf,
        /// Why.
        source: UnpackError,
    },
    /// The package's name and version make no valid store name (e.g. too long).
    #[error("package {package} {version} gives no valid store name: {source}")]
    Name {
        /// `Package:`.
        package: String,
        /// `Version:`.
        version: String,
        /// The store's refusal.
        source: Box<StoreError>,
    },
    /// No scratch directory could be made.
    #[error("cannot create a scratch directory in {}: {source}", dir.display())]
    Scratch {
        /// The directory given.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The store refused the add or the realisation.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The `.deb` could not be fetched ([`fetch_and_add`]).
    #[error(transparent)]
    Fetch(Box<FetchError>),
}

impl From<StoreError> for ObjectError {
    fn from(error: StoreError) -> ObjectError {
        ObjectError::Store(Box::new(error))
    }
}

/// The store object name of a package: `<package>-<version>`, with the two characters of
/// Debian versions that store names forbid mapped to two that no Debian name or version
/// contains: `:` (epoch) → `=`, `~` → `_`. E.g. `busybox` `1:1.35.0-4` → `busybox-1=1.35.0-4`,
/// `a` `1.0~rc1` → `a-1.0_rc1`.
///
/// The mapping of each part is injective. The joined name is injective unless a package name
/// contains `-<digit>` (e.g. `libgtk-3-0`) and another package's version is contrived to
/// match that tail (`libgtk` `3-0-3.24`). The name is for people: the store path's hash part
/// covers the whole data tree anyway, so such a collision never merges two objects.
pub fn object_name(package: &str, version: &str) -> Result<String, ObjectError> {
    let mapped: String = version
        .chars()
        .map(|c| match c {
            ':' => '=',
            '~' => '_',
            other => other,
        })
        .collect();
    let name = format!("{package}-{mapped}");
    ferry_store::validate_name(&name).map_err(|source| ObjectError::Name {
        package: package.to_string(),
        version: version.to_string(),
        source: Box::new(source),
    })?;
    Ok(name)
}

/// The realisation key of the `.deb` with digest `sha256`:
/// `derive_key("ferry debian deb object v1", sha256)` (BLAKE3, over the 32 raw bytes).
pub fn deb_recipe_id(sha256: &Sha256) -> RecipeId {
    RecipeId(blake3::derive_key(DEB_RECIPE_CONTEXT, &sha256.0))
}

/// The store object made from the `.deb` with digest `sha256`, if this store has added it and
/// it is still valid.
pub fn find_deb_object(store: &Store, sha256: &Sha256) -> Option<StorePath> {
    store.realisation(&deb_recipe_id(sha256))
}

/// [`add_deb`] for a file the fetcher verified.
pub fn add_fetched(
    store: &Store,
    file: &FetchedFile,
    expected: Option<&ExpectedPackage>,
    scratch: &Path,
) -> Result<DebObject, ObjectError> {
    add_deb(store, &file.path, &file.sha256, expected, scratch)
}

/// Unpacks the `.deb` at `deb` (in a temp dir under `scratch`) and adds its data tree to
/// `store` as one object named by [`object_name`]. Refuses, registering nothing, if the file's
/// sha256 is not `sha256` or its control fields differ from `expected`.
pub fn add_deb(
    store: &Store,
    deb: &Path,
    sha256: &Sha256,
    expected: Option<&ExpectedPackage>,
    scratch: &Path,
) -> Result<DebObject, ObjectError> {
    let temp = tempfile::Builder::new()
        .prefix(".ferry-deb-")
        .tempdir_in(scratch)
        .map_err(|source| ObjectError::Scratch {
            dir: scratch.to_path_buf(),
            source,
        })?;
    let tree = temp.path().join("tree");
    let (control, report) = read_verified(deb, sha256, expected, |data| unpack_tar(data, &tree))?;
    let name = object_name(&control.package, &control.version)?;
    let options = AddOptions {
        probably_new: true,
        ..AddOptions::default()
    };
    let path = store.add_path_with(&tree, &name, &options)?;
    store.set_realisation(&deb_recipe_id(sha256), &path)?;
    Ok(DebObject {
        path,
        control,
        report,
    })
}

/// A `.deb` unpacked into memory, verified, not yet in the store.
pub(crate) struct UnpackedDeb {
    pub(crate) control: DebControl,
    pub(crate) tree: MemoryTree,
}

/// Like [`add_deb`] up to the unpack, but into memory: refuses what [`add_deb`] refuses, and
/// fails with [`UnpackError::OverMemoryLimit`] inside [`ObjectError::Unpack`] when the files
/// hold more than `limit` bytes.
pub(crate) fn unpack_deb_in_memory(
    deb: &Path,
    sha256: &Sha256,
    expected: Option<&ExpectedPackage>,
    limit: u64,
) -> Result<UnpackedDeb, ObjectError> {
    let (control, (tree, _report)) = read_verified(deb, sha256, expected, |data| {
        unpack_tar_in_memory(data, limit)
    })?;
    Ok(UnpackedDeb { control, tree })
}

/// Reads the `.deb` at `deb` once, hashing every byte while its control file is checked
/// against `expected` and its data archive is handed to `unpack`; refuses it unless its
/// sha256 is `sha256`. Whatever `unpack` made must be thrown away on an error.
fn read_verified<T>(
    deb: &Path,
    sha256: &Sha256,
    expected: Option<&ExpectedPackage>,
    unpack: impl FnOnce(&mut dyn Read) -> Result<T, UnpackError>,
) -> Result<(DebControl, T), ObjectError> {
    let read_error = |source| ObjectError::Read {
        deb: deb.to_path_buf(),
        source,
    };
    let unpack_error = |source| ObjectError::Unpack {
        deb: deb.to_path_buf(),
        source,
    };
    let file = File::open(deb).map_err(read_error)?;
    let reader = Sha256Reader::new(BufReader::with_capacity(256 * 1024, file));
    // A damaged file is reported as a wrong digest rather than as whatever broke first.
    let or_mismatch = |error: ObjectError| check_file(deb, sha256).err().unwrap_or(error);
    let mut archive = DebArchive::new(reader)
        .map_err(|source| UnpackError::Deb {
            path: deb.to_path_buf(),
            source,
        })
        .map_err(unpack_error)
        .map_err(or_mismatch)?;
    let control = archive.control().clone();
    if let Some(expected) = expected {
        check_control(deb, &control, expected).map_err(or_mismatch)?;
    }
    let unpacked = {
        let (_, mut data) = archive
            .data()
            .map_err(|source| UnpackError::Deb {
                path: deb.to_path_buf(),
                source,
            })
            .map_err(unpack_error)
            .map_err(or_mismatch)?;
        unpack(&mut data)
            .map_err(unpack_error)
            .map_err(or_mismatch)?
    };
    let (got, size) = archive.into_inner().finish().map_err(read_error)?;
    if got != *sha256 {
        return Err(ObjectError::HashMismatch {
            deb: deb.to_path_buf(),
            expected: *sha256,
            got,
            size,
        });
    }
    Ok((control, unpacked))
}

/// Refuses a file whose sha256 is not `sha256` (or that cannot be read).
fn check_file(deb: &Path, sha256: &Sha256) -> Result<(), ObjectError> {
    let file = File::open(deb).map_err(|source| ObjectError::Read {
        deb: deb.to_path_buf(),
        source,
    })?;
    let (got, size) =
        Sha256::of_reader(BufReader::new(file)).map_err(|source| ObjectError::Read {
            deb: deb.to_path_buf(),
            source,
        })?;
    if got == *sha256 {
        return Ok(());
    }
    Err(ObjectError::HashMismatch {
        deb: deb.to_path_buf(),
        expected: *sha256,
        got,
        size,
    })
}

/// Refuses control fields that differ from the lock's.
fn check_control(
    deb: &Path,
    control: &DebControl,
    expected: &ExpectedPackage,
) -> Result<(), ObjectError> {
    let pairs = [
        ("Package", &expected.package, &control.package),
        ("Version", &expected.version, &control.version),
        (
            "Architecture",
            &expected.architecture,
            &control.architecture,
        ),
    ];
    for (field, want, got) in pairs {
        if want != got {
            return Err(ObjectError::ControlMismatch {
                deb: deb.to_path_buf(),
                field,
                expected: want.clone(),
                got: got.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_epoch_and_tilde() {
        assert_eq!(
            object_name("busybox", "1:1.35.0-4+deb12u1+b1").unwrap(),
            "busybox-1=1.35.0-4+deb12u1+b1"
        );
        assert_eq!(object_name("a", "1.0~rc1").unwrap(), "a-1.0_rc1");
        assert_eq!(
            object_name("libstdc++6", "12.2.0-14").unwrap(),
            "libstdc++6-12.2.0-14"
        );
        assert!(matches!(
            object_name("a", &"1".repeat(210)),
            Err(ObjectError::Name { .. })
        ));
        assert!(matches!(
            object_name("a", "1 2"),
            Err(ObjectError::Name { .. })
        ));
    }

    /// Golden vector, computed independently:
    /// `printf %s 4b35…1e29 | xxd -r -p | b3sum --derive-key "ferry debian deb object v1"`.
    #[test]
    fn deb_recipe_id_is_pinned() {
        let sha: Sha256 = "4b355fad07d4fe1f5aa282e949281f8dcb7bcdebb023d7e40f4f8fe475e21e29"
            .parse()
            .unwrap();
        assert_eq!(deb_recipe_id(&sha).to_string(), GOLDEN_RECIPE_ID);
    }

    const GOLDEN_RECIPE_ID: &str =
        "e6f06332be837418a396c3370b6041564a47f0a99f3beeaedbc257d28c3ba569";

    proptest::proptest! {
        /// Distinct (package, version) pairs whose package has no `-digit` tail give distinct
        /// names.
        #[test]
        fn names_are_injective(
            p1 in "[a-z][a-z+.]{1,8}", v1 in "[0-9][0-9a-z.+~:-]{0,8}",
            p2 in "[a-z][a-z+.]{1,8}", v2 in "[0-9][0-9a-z.+~:-]{0,8}",
        ) {
            let n1 = object_name(&p1, &v1).unwrap();
            let n2 = object_name(&p2, &v2).unwrap();
            proptest::prop_assert_eq!(n1 == n2, (p1, v1) == (p2, v2));
        }
    }
}

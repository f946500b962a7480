//! ferry-store: the content-addressed store (DESIGN §4; encodings in `FORMAT.md`).
//!
//! # Public API
//!
//! - [`StorePath`] (`<store_dir>/<32-char base32 hash>-<name>`; `hash_part()`, `name()`,
//!   `base_name()`, `store_dir()`; `Ord`, serde as the full string), [`StoreDir`],
//!   [`validate_name`].
//! - [`Store::open`]`(store_dir, state_dir)`: creates the directories, purges stale staging
//!   dirs (`<store_dir>/.tmp/`); metadata lives in an SQLite database ([`db`]), opened lazily.
//! - Ingest: [`Store::add_path`], [`Store::add_bytes`], and `*_with` variants taking
//!   [`AddOptions`] (candidate references, self-reference markers, deriver).
//! - Queries: [`Store::is_valid`], [`Store::path_info`] → [`PathInfo`], [`Store::closure`]
//!   (dependencies first, deterministic), [`Store::referrers`], [`Store::missing`],
//!   [`Store::all_valid_paths`], [`Store::parse_path`], [`Store::real_path`].
//! - Realisations: [`Store::set_realisation`], [`Store::realisation`] keyed by [`RecipeId`].
//! - Archives: [`Store::export`], [`Store::export_closure`] → [`ExportStats`];
//!   [`Store::import`] / [`Store::import_buffered`] with [`ImportMode`] → [`ImportReport`];
//!   refusals are [`ArchiveError`]s inside [`StoreError::Archive`].
//! - GC: [`Store::add_root`], [`Store::remove_root`], [`Store::temp_roots`] → [`TempRoots`],
//!   [`Store::gc`]`(&`[`GcOptions`]`)` → [`GcReport`].
//! - [`Store::verify`]`(repair)` → [`VerifyReport`].
//!
//! Which operation takes which lock is documented in [`lock`].
//!
//! Invariants: a path is valid exactly when its metadata record exists, and every reference of
//! a valid path is valid (a batch's records are committed in one transaction after its objects
//! are durable, and their references were valid before or are in the same batch; GC and repair
//! remove a referrer-closed set in one transaction). Objects are never modified in place.
#![warn(missing_docs)]
pub mod archive;
mod closure;
pub mod db;
pub mod durable;
pub mod error;
mod fsops;
mod gc;
pub mod hash;
mod ingest;
pub mod lock;
pub mod path;
pub mod realisation;
mod register;
mod roots;
mod scan;
mod store;
mod tree;
mod verify;

pub use archive::{ArchiveError, ExportStats, ImportMode, ImportReport};
pub use db::PathInfo;
pub use error::StoreError;
pub use gc::{GcOptions, GcReport};
pub use hash::Digest;
pub use ingest::AddOptions;
pub use path::{validate_name, StoreDir, StorePath};
pub use realisation::RecipeId;
pub use roots::TempRoots;
pub use store::{Store, STAGING_DIR};
pub use verify::{CorruptPath, VerifyReport};

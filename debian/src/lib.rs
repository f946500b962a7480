//! ferry's Debian package source: reading apt's configuration, verifying signed
//! `InRelease` files, parsing `Packages` indexes, resolving a package's
//! `Depends`/`Pre-Depends` closure the way apt does, and locking the result.
//!
//! The crate does no printing: every fallible step returns its own module's typed
//! error (`SourcesError`, `ReleaseError`, `ControlError`, `ResolveError`, …).
#![warn(missing_docs)]

pub mod control;
pub mod deb822;
pub mod lists;
pub mod lock;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod sources;
pub mod system;
pub mod universe;
pub mod version;

//! ferry-debian: Debian packages as pinned store objects (issue 13).
//!
//! Resolving: reading apt's configuration ([`sources`]), verifying signed
//! `InRelease` files ([`release`]), parsing `Packages` indexes ([`control`],
//! [`deb822`], [`lists`], [`system`]), resolving a package's
//! `Depends`/`Pre-Depends` closure the way apt does ([`universe`], [`relation`],
//! [`version`], [`resolve`]) and locking the result ([`lock`]), from which
//! each package group's closure and fetch items are read offline.
//!
//! Fetching: the `.deb`s a lock names ([`fetch`]) are read ([`deb`]), unpacked
//! safely and deterministically ([`unpack`]) and added each as one store object
//! ([`object`]); `object::fetch_and_add` does all three at once, unpacking each
//! `.deb` in memory as it arrives while the others download. No maintainer script
//! is ever run or even extracted.
//!
//! The crate does no printing: every fallible step returns its own module's typed
//! error (`SourcesError`, `ReleaseError`, `ResolveError`, `FetchError`, `UnpackError`, …).
#![warn(missing_docs)]

pub mod control;
pub mod deb;
pub mod deb822;
pub mod fetch;
pub mod lists;
pub mod lock;
pub mod object;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod sources;
pub mod system;
pub mod universe;
pub mod unpack;
pub mod version;

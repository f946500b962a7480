//! ferry-debian: Debian packages as pinned store objects (issue 13).
//!
//! This half fetches `.deb`s named by a lock file ([`fetch`]), reads them ([`deb`]),
//! unpacks their data safely and deterministically ([`unpack`]) and adds each as one store
//! object ([`object`]). No maintainer script is ever run or even extracted.
#![warn(missing_docs)]
pub mod deb;
pub mod fetch;
pub mod object;
pub mod unpack;

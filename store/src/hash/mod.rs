//! Hashing: the canonical encodings that define tree digests and object ids, and their text forms.
pub mod base32;
pub mod canonical;
pub mod hex;

pub use canonical::Digest;

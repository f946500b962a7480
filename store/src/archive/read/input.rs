//! The archive's primitive fields (FORMAT.md §5): fixed-size integers, digests, flags, and
//! length-prefixed bytes, each checked against its limit before anything is allocated.
use std::io::BufRead;

use super::super::ArchiveError;

/// The archive stream, with the offset of the next byte (for error messages).
pub(super) struct Input<R: BufRead> {
    pub(super) inner: R,
    pub(super) offset: u64,
}

impl<R: BufRead> Input<R> {
    pub(super) fn exact(&mut self, buffer: &mut [u8]) -> Result<(), ArchiveError> {
        match self.inner.read_exact(buffer) {
            Ok(()) => {
                self.offset += buffer.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(ArchiveError::Truncated {
                    offset: self.offset,
                })
            }
            Err(source) => Err(ArchiveError::Read {
                offset: self.offset,
                source,
            }),
        }
    }

    pub(super) fn u8(&mut self) -> Result<u8, ArchiveError> {
        let mut byte = [0u8];
        self.exact(&mut byte)?;
        Ok(byte[0])
    }

    pub(super) fn u64(&mut self) -> Result<u64, ArchiveError> {
        let mut bytes = [0u8; 8];
        self.exact(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    pub(super) fn digest(&mut self) -> Result<[u8; 32], ArchiveError> {
        let mut bytes = [0u8; 32];
        self.exact(&mut bytes)?;
        Ok(bytes)
    }

    /// A `u64` count or size named `what`, refused when it is above `limit`.
    pub(super) fn count(&mut self, what: &'static str, limit: u64) -> Result<u64, ArchiveError> {
        let offset = self.offset;
        let value = self.u64()?;
        if value > limit {
            return Err(ArchiveError::LimitExceeded {
                what,
                value,
                limit,
                offset,
            });
        }
        Ok(value)
    }

    /// A one-byte flag named `field`: 0 or 1, anything else is refused.
    pub(super) fn flag(&mut self, field: &'static str) -> Result<bool, ArchiveError> {
        let offset = self.offset;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(ArchiveError::BadField {
                field,
                offset,
                reason: format!("{other} is neither 0 nor 1"),
            }),
        }
    }

    /// A length (checked against `limit` before anything is allocated) and that many bytes.
    pub(super) fn bytes(
        &mut self,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, ArchiveError> {
        let len = self.count(what, limit)?;
        let mut bytes = vec![0u8; len as usize];
        self.exact(&mut bytes)?;
        Ok(bytes)
    }

    pub(super) fn text(&mut self, what: &'static str, limit: u64) -> Result<String, ArchiveError> {
        let offset = self.offset;
        let bytes = self.bytes(what, limit)?;
        String::from_utf8(bytes).map_err(|_| ArchiveError::BadField {
            field: what,
            offset,
            reason: "not UTF-8".to_string(),
        })
    }
}

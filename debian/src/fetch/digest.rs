//! SHA-256 digests as Debian's indices and ferry's lock write them, and a hashing reader.
use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256 as Sha256Hasher};

use super::CHUNK;

/// A SHA-256 digest, as lock files and `Packages` indices write it (64 hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        Sha256(Sha256Hasher::digest(bytes).into())
    }

    /// The digest of everything `reader` yields.
    pub fn of_reader(mut reader: impl Read) -> io::Result<(Sha256, u64)> {
        let mut hasher = Sha256Hasher::new();
        let mut buffer = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buffer[..n]);
            total += n as u64;
        }
        Ok((Sha256(hasher.finalize().into()), total))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// Text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a sha256 digest (64 hex digits)")]
pub struct BadSha256 {
    /// The text given.
    pub text: String,
}

impl FromStr for Sha256 {
    type Err = BadSha256;
    fn from_str(text: &str) -> Result<Sha256, BadSha256> {
        let bad = || BadSha256 {
            text: text.to_string(),
        };
        let bytes = text.as_bytes();
        if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            digest[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Sha256(digest))
    }
}

/// A reader that computes the sha256 and length of everything read through it.
#[derive(Debug)]
pub struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256Hasher,
    len: u64,
}

impl<R: Read> Sha256Reader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Sha256Reader<R> {
        Sha256Reader {
            inner,
            hasher: Sha256Hasher::new(),
            len: 0,
        }
    }

    /// Reads the rest of the stream and returns the digest and length of all of it.
    pub fn finish(mut self) -> io::Result<(Sha256, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Sha256(self.hasher.finalize().into()), self.len))
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_parses_and_prints_hex() {
        let text = "4b355fad07d4fe1f5aa282e949281f8dcb7bcdebb023d7e40f4f8fe475e21e29";
        let digest: Sha256 = text.parse().unwrap();
        assert_eq!(digest.to_string(), text);
        assert!("4b35".parse::<Sha256>().is_err());
        assert!(text.replace('4', "g").parse::<Sha256>().is_err());
        // FIPS 180-2 test vector.
        assert_eq!(
            Sha256::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest::proptest! {
        #[test]
        fn sha256_text_round_trips(bytes: [u8; 32]) {
            let digest = Sha256(bytes);
            proptest::prop_assert_eq!(digest.to_string().parse::<Sha256>().unwrap(), digest);
        }
    }
}

//! The base32 text form of store path hashes (Nix's alphabet, plain big-endian bit order).

/// 32 symbols: digits and lower-case letters without `e`, `o`, `u`, `t`
/// (so hashes cannot spell common words).
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Bytes of the object id that name a store path.
pub const HASH_BYTES: usize = 20;
/// Characters of the hash part of a store path: 20 bytes × 8 / 5.
pub const HASH_CHARS: usize = 32;

/// Encodes bytes five bits at a time, most significant bit first (RFC 4648 order, no padding).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// True for bytes that can occur in a hash part.
pub fn is_symbol(b: u8) -> bool {
    SYMBOL_TABLE[b as usize]
}

static SYMBOL_TABLE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_bytes_make_thirty_two_symbols() {
        assert_eq!(encode(&[0u8; 20]), "0".repeat(32));
        assert_eq!(encode(&[0xff; 20]), "z".repeat(32));
        // 0x80 = 10000 000.. : first symbol 16 = 'h'.
        let mut bytes = [0u8; 20];
        bytes[0] = 0x80;
        assert_eq!(&encode(&bytes)[..2], "h0");
        assert!(encode(&bytes).bytes().all(is_symbol));
        assert!(!is_symbol(b'e') && !is_symbol(b'-'));
    }
}

//! 64-bit FNV-1a: tiny, and stable across Rust versions (unlike `DefaultHasher`), for
//! hashes that are stored (sync ids, ledgers) or only need to spread keys cheaply
//! (the catalog's shards and endpoint index).

use std::hash::Hasher;

pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = Fnv1a::default();
    for part in parts {
        hasher.write(part);
    }
    hasher.finish()
}

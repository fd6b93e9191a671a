//! Token secrets: `sb_<id>_<64 hex digits>`, 256 random bits after the id. The id finds
//! the token; the whole secret's SHA-256 is what is stored and compared, in constant
//! time, so neither the store nor the timing of a refusal gives the secret away.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "sb_";

/// A stored token's hash.
pub type Hash = [u8; 32];

/// A new token id (16 hex digits) and its secret.
pub fn generate() -> (String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let id = hex(&id);
    let secret = format!("{PREFIX}{id}_{}", hex(&secret));
    (id, secret)
}

/// The id a presented secret claims, if it has the shape of one.
pub fn id_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    let hex_digits =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_digits(id, 16) && hex_digits(random, 64)).then_some(id)
}

pub fn hash(secret: &str) -> Hash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `secret` hashes to `stored`, in time that does not depend on where they differ.
pub fn verify(secret: &str, stored: &Hash) -> bool {
    hash(secret).ct_eq(stored).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string of exactly `N` bytes.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_names_its_id_and_verifies_against_its_hash() {
        let (id, secret) = generate();
        assert_eq!(id_of(&secret), Some(id.as_str()));
        let stored = hash(&secret);
        assert!(verify(&secret, &stored));
        let mut other = secret.clone();
        other.pop();
        other.push(if secret.ends_with('0') { '1' } else { '0' });
        assert!(!verify(&other, &stored));
        assert_ne!(generate().1, secret, "secrets are random");
    }

    #[test]
    fn malformed_secrets_name_no_id() {
        for bad in [
            "",
            "sb_",
            "sb_abc_def",
            "Bearer x",
            &format!("sb_{}_{}", "g".repeat(16), "0".repeat(64)),
        ] {
            assert_eq!(id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes = hash("x");
        assert_eq!(unhex::<32>(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex::<32>("zz"), None);
    }
}

//! What a sync job wrote into its target: one entry per instance (by service and
//! endpoint) with a hash of what was written. The ledger is how a job recognises its own
//! writes coming back, deletes only what it wrote, and writes again only what changed.

use std::hash::Hasher;

use switchboard_connectors::{Instance, ServiceKey};

pub use crate::store::{Ledger, LedgerEntry, Spot};

use crate::fnv::Fnv1a;

/// The entries of service `key`, in ledger order.
pub fn service_entries<'a>(
    ledger: &'a Ledger,
    key: &ServiceKey,
) -> impl Iterator<Item = (&'a Spot, &'a LedgerEntry)> + use<'a> {
    let start = Spot {
        service: key.clone(),
        host: String::new(),
        port: 0,
    };
    let key = key.clone();
    ledger
        .range(start..)
        .take_while(move |(spot, _)| spot.service == key)
}

/// `ledger` without entries about targets other than `to`.
pub fn only_target(mut ledger: Ledger, to: &str) -> Ledger {
    ledger.retain(|_, entry| entry.target == to);
    ledger
}

/// A stable hash of everything a write carries (FNV-1a over its JSON), so it means the
/// same after a restart and an upgrade.
pub fn content_hash(instance: &Instance) -> u64 {
    let mut hasher = Fnv1a::default();
    let bytes = serde_json::to_vec(instance).unwrap_or_default();
    hasher.write(&bytes);
    hasher.finish()
}

/// 32 bits of [`Fnv1a`] over `bytes` (for short, stable ids).
pub fn short_hash(bytes: &[u8]) -> u32 {
    let mut hasher = Fnv1a::default();
    hasher.write(bytes);
    let full = hasher.finish();
    (full ^ (full >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_content_only() {
        let a = Instance::new("a", ServiceKey::named("s"), "10.0.0.1", 80);
        let mut b = a.clone();
        assert_eq!(content_hash(&a), content_hash(&b));
        b.weight = 5;
        assert_ne!(content_hash(&a), content_hash(&b));
        // Same content, same hash.
        assert_eq!(content_hash(&a), content_hash(&a.clone()));
        // Pinned, not just compared with itself: ledgers on disk hold these hashes, so a
        // change to the hash function or to how an instance is serialised (a new field
        // too) makes every stored entry look changed after an upgrade. Update the value
        // only knowing that. It was computed once, independently, as FNV-1a over
        // `{"id":"a","service":{"namespace":"public","group":"DEFAULT","name":"s"},...}`.
        assert_eq!(content_hash(&a), 0xa737_7c94_787c_22a7);
    }

    #[test]
    fn the_short_hash_of_synced_ids_is_pinned() {
        // Synced ids are written into targets, so they must not change across versions:
        // a different value would give an endpoint a second id after an upgrade. Computed
        // once, independently (FNV-1a, upper and lower 32 bits xored).
        assert_eq!(
            short_hash(b"public\0DEFAULT\0svc\x0010.0.0.1\x0080"),
            0x1721_4aee
        );
    }
}

//! A sync job's ledger changes not yet in the store: the latest change per spot, so a job
//! whose store keeps failing holds at most one change for each instance it touched, not
//! one for every write it made while the store was down.

use std::collections::HashMap;

use crate::store::{LedgerChange, LedgerEntry, Spot};

#[derive(Default)]
pub struct Unsaved(HashMap<Spot, Option<LedgerEntry>>);

impl Unsaved {
    /// Records that `spot` now holds `entry` (`None`: removed), replacing any earlier
    /// unsaved change of it.
    pub fn set(&mut self, spot: Spot, entry: Option<LedgerEntry>) {
        self.0.insert(spot, entry);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every change, for one store transaction; this is left empty.
    pub fn take(&mut self) -> Vec<LedgerChange> {
        (self.0.drain())
            .map(|(spot, entry)| match entry {
                Some(entry) => LedgerChange::Put(spot, Box::new(entry)),
                None => LedgerChange::Remove(spot),
            })
            .collect()
    }

    /// Puts back the changes of a save that failed, under any made since: those are newer.
    pub fn restore(&mut self, failed: Vec<LedgerChange>) {
        for change in failed {
            let (spot, entry) = match change {
                LedgerChange::Put(spot, entry) => (spot, Some(*entry)),
                LedgerChange::Remove(spot) => (spot, None),
            };
            self.0.entry(spot).or_insert(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_connectors::ServiceKey;

    use super::*;

    fn spot(port: u16) -> Spot {
        Spot {
            service: ServiceKey::named("svc"),
            host: "10.0.0.1".into(),
            port,
        }
    }

    fn entry(hash: u64) -> LedgerEntry {
        LedgerEntry {
            written: switchboard_connectors::Instance::new(
                "i1",
                ServiceKey::named("svc"),
                "10.0.0.1",
                1,
            ),
            origin: "etcd".into(),
            target: "nacos".into(),
            hash,
            written_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn many_writes_of_one_instance_leave_one_change() {
        let mut unsaved = Unsaved::default();
        for hash in 0..10_000 {
            unsaved.set(spot(1), Some(entry(hash)));
        }
        unsaved.set(spot(2), None);
        assert_eq!(unsaved.len(), 2);
        let changes = unsaved.take();
        assert!(unsaved.is_empty());
        let latest = changes.iter().find_map(|change| match change {
            LedgerChange::Put(spot, entry) if spot.port == 1 => Some(entry.hash),
            _ => None,
        });
        assert_eq!(latest, Some(9_999));
    }

    #[test]
    fn a_failed_save_goes_back_under_newer_changes() {
        let mut unsaved = Unsaved::default();
        unsaved.set(spot(1), Some(entry(1)));
        unsaved.set(spot(2), Some(entry(2)));
        let failed = unsaved.take();
        // While the save was failing, spot 1 was removed.
        unsaved.set(spot(1), None);
        unsaved.restore(failed);
        let mut changes = unsaved.take();
        changes.sort_by_key(|change| match change {
            LedgerChange::Put(spot, _) | LedgerChange::Remove(spot) => spot.port,
        });
        assert!(matches!(&changes[0], LedgerChange::Remove(spot) if spot.port == 1));
        assert!(matches!(&changes[1], LedgerChange::Put(spot, e) if spot.port == 2 && e.hash == 2));
    }
}

//! Sync jobs: definitions created through the API, which jobs are paused, and every
//! job's ledger (what it wrote into its target, one entry per instance).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_connectors::{Instance, ServiceKey};

use super::redb_backend::{
    create, db_err, prefix_range, put_record, read_records, remove_prefix, Records, RedbStore,
};
use super::StoreError;

/// API-created job definitions by id.
const SYNCS: Records = TableDefinition::new("syncs");
/// Ids of paused jobs (file jobs too: a pause outlives a restart).
const PAUSED: Records = TableDefinition::new("sync_paused");
/// Ledger entries by `job\0namespace\0group\0name\0host\0port`.
const LEDGER: Records = TableDefinition::new("sync_ledger");

/// Creates the sync tables in `txn` if they do not exist yet.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    create(txn, &[SYNCS, PAUSED, LEDGER])
}

/// An API-created job as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredSync {
    pub document: Value,
}

/// A change to one job's ledger.
pub enum LedgerChange {
    Put(Spot, Box<LedgerEntry>),
    Remove(Spot),
}

/// Where a written instance lives: its service (as written) and endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spot {
    pub service: ServiceKey,
    pub host: String,
    pub port: u16,
}

impl Spot {
    pub fn of(instance: &Instance) -> Spot {
        Spot {
            service: instance.service.clone(),
            host: instance.host.clone(),
            port: instance.port,
        }
    }

    /// The store key of this spot in job `job`'s ledger.
    pub fn store_key(&self, job: &str) -> String {
        let ServiceKey {
            namespace,
            group,
            name,
        } = &self.service;
        format!(
            "{job}\0{namespace}\0{group}\0{name}\0{}\0{}",
            self.host, self.port
        )
    }
}

/// One instance a job wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The instance as written (with its `switchboard.*` metadata).
    pub written: Instance,
    /// The source it was copied from.
    pub origin: String,
    /// The source (or `native`) it was written into: a ledger is only about its job's
    /// current target.
    pub target: String,
    /// The sync ledger's content hash of `written` (stable across restarts).
    pub hash: u64,
    pub written_at: DateTime<Utc>,
}

/// A job's ledger in memory.
pub type Ledger = BTreeMap<Spot, LedgerEntry>;

/// Sync job definitions, pauses and ledgers.
pub trait SyncStore: Send + Sync + 'static {
    /// Every stored job; an unreadable record is skipped and logged.
    fn syncs(&self) -> Result<Vec<(String, StoredSync)>, StoreError>;
    fn put_sync(&self, id: &str, sync: &StoredSync) -> Result<(), StoreError>;
    /// Forgets a job: its definition, pause and ledger, in one transaction.
    fn delete_sync(&self, id: &str) -> Result<(), StoreError>;
    /// The ids of paused jobs.
    fn paused(&self) -> Result<Vec<String>, StoreError>;
    fn set_paused(&self, id: &str, paused: bool) -> Result<(), StoreError>;
    /// Job `id`'s ledger.
    fn ledger(&self, id: &str) -> Result<Ledger, StoreError>;
    /// Job `id`'s ledger about target `to`; entries about another target are removed
    /// from the store (the job's `to` changed in the config file).
    fn ledger_for(&self, id: &str, to: &str) -> Result<Ledger, StoreError>;
    /// Removes the ledgers and pauses of jobs not in `ids` (file jobs taken out of the
    /// config), so a later job of the same id starts clean.
    fn forget_other_jobs(&self, ids: &[String]) -> Result<(), StoreError>;
    /// Applies `changes` to job `id`'s ledger in one transaction.
    fn commit_ledger(&self, id: &str, changes: &[LedgerChange]) -> Result<(), StoreError>;
}

impl SyncStore for RedbStore {
    /// Every stored job; an unreadable record is skipped and logged.
    fn syncs(&self) -> Result<Vec<(String, StoredSync)>, StoreError> {
        read_records(&self.db, SYNCS, "sync job")
    }

    fn put_sync(&self, id: &str, sync: &StoredSync) -> Result<(), StoreError> {
        put_record(&self.db, SYNCS, id, &serde_json::to_vec(sync)?)
    }

    fn delete_sync(&self, id: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        for table in [SYNCS, PAUSED] {
            txn.open_table(table)
                .map_err(db_err)?
                .remove(id)
                .map_err(db_err)?;
        }
        remove_prefix(&txn, LEDGER, id)?;
        txn.commit().map_err(db_err)
    }

    fn paused(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PAUSED).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db_err)? {
            out.push(row.map_err(db_err)?.0.value().to_owned());
        }
        Ok(out)
    }

    fn set_paused(&self, id: &str, paused: bool) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(PAUSED).map_err(db_err)?;
            if paused {
                table.insert(id, [].as_slice()).map_err(db_err)?;
            } else {
                table.remove(id).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    fn ledger(&self, id: &str) -> Result<Ledger, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(LEDGER).map_err(db_err)?;
        let (from, to) = prefix_range(id);
        let mut ledger = Ledger::new();
        for row in table.range(from.as_str()..to.as_str()).map_err(db_err)? {
            let (key, bytes) = row.map_err(db_err)?;
            match serde_json::from_slice::<LedgerEntry>(bytes.value()) {
                Ok(entry) => {
                    ledger.insert(Spot::of(&entry.written), entry);
                }
                Err(err) => {
                    tracing::error!(key = key.value(), error = %err, "Skipping an unreadable ledger entry")
                }
            }
        }
        Ok(ledger)
    }

    fn ledger_for(&self, id: &str, to: &str) -> Result<Ledger, StoreError> {
        let (ledger, other): (Ledger, Ledger) =
            (self.ledger(id)?.into_iter()).partition(|(_, entry)| entry.target == to);
        if !other.is_empty() {
            tracing::warn!(sync = %id, entries = other.len(), to, "Forgetting ledger entries about another target");
            let removals: Vec<LedgerChange> = other.into_keys().map(LedgerChange::Remove).collect();
            self.commit_ledger(id, &removals)?;
        }
        Ok(ledger)
    }

    fn forget_other_jobs(&self, ids: &[String]) -> Result<(), StoreError> {
        let known: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut gone: std::collections::BTreeSet<String> = self.paused()?.into_iter().collect();
        {
            let txn = self.db.begin_read().map_err(db_err)?;
            let table = txn.open_table(LEDGER).map_err(db_err)?;
            // One seek per job, not one step per entry: each job's entries are one range.
            let mut from = String::new();
            while let Some(row) = table.range(from.as_str()..).map_err(db_err)?.next() {
                let (key, _) = row.map_err(db_err)?;
                let job = key
                    .value()
                    .split('\0')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                from = prefix_range(&job).1;
                gone.insert(job);
            }
        }
        for id in gone.iter().filter(|id| !known.contains(id.as_str())) {
            tracing::info!(sync = %id, "Forgetting the ledger of a sync job that no longer exists");
            self.delete_sync(id)?;
        }
        Ok(())
    }

    fn commit_ledger(&self, id: &str, changes: &[LedgerChange]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(LEDGER).map_err(db_err)?;
            for change in changes {
                match change {
                    LedgerChange::Put(spot, entry) => {
                        let bytes = serde_json::to_vec(entry)?;
                        table
                            .insert(spot.store_key(id).as_str(), bytes.as_slice())
                            .map_err(db_err)?;
                    }
                    LedgerChange::Remove(spot) => {
                        table.remove(spot.store_key(id).as_str()).map_err(db_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use switchboard_connectors::{Instance, ServiceKey};

    use super::*;

    fn entry(port: u16) -> (Spot, LedgerEntry) {
        let written = Instance::new("i", ServiceKey::named("s"), "10.0.0.1", port);
        let entry = LedgerEntry {
            target: "nacos".into(),
            hash: 7,
            origin: "etcd".into(),
            written,
            written_at: Utc::now(),
        };
        (Spot::of(&entry.written), entry)
    }

    #[test]
    fn ledgers_persist_per_job_and_go_with_their_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let (a, first) = entry(1);
        let (b, second) = entry(2);
        store
            .commit_ledger(
                "j1",
                &[LedgerChange::Put(a.clone(), Box::new(first.clone()))],
            )
            .unwrap();
        store
            .commit_ledger("j10", &[LedgerChange::Put(b.clone(), Box::new(second))])
            .unwrap();
        assert_eq!(store.ledger("j1").unwrap().get(&a), Some(&first));
        assert_eq!(
            store.ledger("j1").unwrap().len(),
            1,
            "j10's entry is not j1's"
        );
        store.set_paused("j1", true).unwrap();
        assert_eq!(store.paused().unwrap(), vec!["j1"]);
        store.delete_sync("j1").unwrap();
        assert!(store.ledger("j1").unwrap().is_empty());
        assert!(store.paused().unwrap().is_empty());
        assert_eq!(store.ledger("j10").unwrap().len(), 1);
        store
            .commit_ledger("j10", &[LedgerChange::Remove(b)])
            .unwrap();
        assert!(store.ledger("j10").unwrap().is_empty());
    }

    #[test]
    fn jobs_that_no_longer_exist_are_forgotten_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        for job in ["gone-a", "keep", "gone-b"] {
            let (spot, first) = entry(1);
            let (other, second) = entry(2);
            let changes = [
                LedgerChange::Put(spot, Box::new(first)),
                LedgerChange::Put(other, Box::new(second)),
            ];
            store.commit_ledger(job, &changes).unwrap();
        }
        store.set_paused("gone-c", true).unwrap();
        store.set_paused("keep", true).unwrap();
        store.forget_other_jobs(&["keep".to_owned()]).unwrap();
        assert_eq!(store.ledger("keep").unwrap().len(), 2);
        for job in ["gone-a", "gone-b"] {
            assert!(store.ledger(job).unwrap().is_empty(), "{job}");
        }
        assert_eq!(store.paused().unwrap(), vec!["keep"]);
    }

    #[test]
    fn store_keys_keep_jobs_apart() {
        let spot = Spot {
            service: ServiceKey::named("s"),
            host: "10.0.0.1".into(),
            port: 80,
        };
        assert!(spot.store_key("j1").starts_with("j1\0"));
        assert_ne!(spot.store_key("j1"), spot.store_key("j10"));
    }
}

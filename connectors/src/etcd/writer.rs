//! Writes instances into etcd (for sync-back): each one is a key below the source's
//! prefix holding the value its own watch reads back as that instance (`encode.rs`).
//!
//! Keys carry one lease, granted on the first write and kept alive by a keeper task (a
//! keep-alive every third of `write_lease_ttl`), so etcd removes them by itself once
//! Switchboard stops. When etcd says the lease is gone (an outage outlived its TTL, or
//! someone revoked it), a new one is granted and every key the writer holds is put again.
//! With `write_persistent`, keys carry no lease and stay until deregistered.
//!
//! One lock orders every write, so a key is never put under a lease that is being
//! replaced, nor put again after it was deregistered. Keys the writer no longer wants
//! but could not delete yet are remembered and deleted by later calls and the keeper:
//! a leased key left behind would otherwise be kept alive for ever.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, PutOptions};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::config::EtcdConfig;
use super::encode::Encoder;
use super::link::{Failure, Link};
use crate::task::Task;
use crate::{ConnectorError, Instance, InstanceKey, RegistryWriter};

/// The [`RegistryWriter`] of an etcd source.
pub(super) struct EtcdWriter {
    shared: Arc<Shared>,
    /// A third of `write_lease_ttl`: one keep-alive may be lost without the lease expiring.
    keep_alive_period: Duration,
    keeper: std::sync::Mutex<Option<Task>>,
}

/// What the writer and its keeper share.
struct Shared {
    source_id: String,
    encoder: Encoder,
    link: Link,
    /// The TTL leases are granted with, in seconds; `None` for persistent keys.
    lease_ttl: Option<i64>,
    held: Mutex<Held>,
}

/// What this writer keeps in etcd.
#[derive(Default)]
struct Held {
    /// The lease keys are put with: `None` before the first write and after etcd lost it.
    lease: Option<i64>,
    /// Every instance written and not deregistered, as put, to put again under a new lease.
    written: BTreeMap<InstanceKey, Written>,
    /// Keys the writer may have put and no longer wants, not deleted yet. Never a key of
    /// `written`.
    unwanted: BTreeSet<String>,
    /// Some of `written` may be missing from etcd: putting them under a new lease failed
    /// half-way, and the keeper tries again.
    missing: bool,
}

#[derive(Clone, Debug)]
struct Written {
    key: String,
    value: String,
}

impl EtcdWriter {
    pub(super) fn new(
        source_id: String,
        config: &EtcdConfig,
        watch_in_use: Arc<AtomicUsize>,
    ) -> Result<Self, ConnectorError> {
        let ttl = config.write_lease_ttl;
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let shared = Shared {
            encoder: Encoder::new(config)?,
            link: Link::new(source_id.clone(), config.clone(), watch_in_use),
            lease_ttl: (!config.write_persistent)
                .then(|| i64::try_from(seconds).unwrap_or(i64::MAX)),
            source_id,
            held: Mutex::default(),
        };
        Ok(EtcdWriter {
            shared: Arc::new(shared),
            keep_alive_period: ttl / 3,
            keeper: std::sync::Mutex::new(None),
        })
    }

    /// Starts the task that keeps the lease alive, once.
    fn ensure_keeper(&self) {
        let mut keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner());
        if keeper.is_none() {
            let keeping = keep(self.shared.clone(), self.keep_alive_period);
            *keeper = Some(Task(tokio::spawn(keeping)));
        }
    }
}

impl std::fmt::Debug for EtcdWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdWriter")
            .field("lease_ttl", &self.shared.lease_ttl)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RegistryWriter for EtcdWriter {
    async fn register(&self, instance: &Instance) -> Result<(), ConnectorError> {
        let written = Written {
            key: self.shared.encoder.key(instance)?,
            value: self.shared.encoder.value(instance),
        };
        let shared = &self.shared;
        let mut held = shared.held.lock().await;
        let instance_key = instance.key();
        held.unwanted.remove(&written.key);
        let previous = held.written.insert(instance_key.clone(), written.clone());
        if let Err(failure) = shared.put(&mut held, &written).await {
            // Back as before this call; the key may have been put all the same (a lost
            // answer), so it goes unless it was there before.
            held.written.remove(&instance_key);
            if let Some(previous) = previous {
                held.written.insert(instance_key, previous);
            }
            if !held.written.values().any(|kept| kept.key == written.key) {
                held.unwanted.insert(written.key);
            }
            return Err(failure.into());
        }
        if let Some(previous) = previous.filter(|previous| previous.key != written.key) {
            // The instance moved (a new version in the key): its old key goes.
            held.unwanted.insert(previous.key);
        }
        let result = shared.delete_unwanted(&mut held).await;
        drop(held);
        if shared.lease_ttl.is_some() {
            self.ensure_keeper();
        }
        result
    }

    async fn deregister(&self, key: &InstanceKey) -> Result<(), ConnectorError> {
        let shared = &self.shared;
        let mut held = shared.held.lock().await;
        let etcd_key = match held.written.remove(key) {
            Some(written) => Some(written.key),
            // Not written by this process (or forgotten in a restart): where the key
            // alone says it would be. With `{version}` in the template it cannot say;
            // `deregister_instance` can.
            None => shared.encoder.key_of(key),
        };
        held.unwanted.extend(etcd_key);
        shared.delete_unwanted(&mut held).await
    }

    async fn deregister_instance(&self, instance: &Instance) -> Result<(), ConnectorError> {
        let shared = &self.shared;
        let mut held = shared.held.lock().await;
        if let Some(written) = held.written.remove(&instance.key()) {
            held.unwanted.insert(written.key);
        }
        // An instance the template cannot hold was never written.
        if let Ok(key) = shared.encoder.key(instance) {
            held.unwanted.insert(key);
        }
        shared.delete_unwanted(&mut held).await
    }

    /// Leased keys vanish once nothing keeps their lease alive; persistent ones stay.
    fn keeps_alive(&self) -> bool {
        self.shared.lease_ttl.is_some()
    }
}

impl Shared {
    /// Puts one key (under the lease, granting one first if needed). When etcd lost the
    /// lease, every held key is put again under a new one, this one included.
    async fn put(&self, held: &mut Held, written: &Written) -> Result<(), Failure> {
        if self.lease_ttl.is_some() && held.lease.is_none() {
            return self.restore(held).await;
        }
        match self.put_one(held.lease, written).await {
            Err(Failure::LeaseGone) => {
                lose_lease(held);
                self.restore(held).await
            }
            other => other,
        }
    }

    async fn put_one(&self, lease: Option<i64>, written: &Written) -> Result<(), Failure> {
        let options = lease.map(|lease| PutOptions::new().with_lease(lease));
        let put = |mut client: Client| {
            let (key, value, options) =
                (written.key.clone(), written.value.clone(), options.clone());
            async move { client.put(key, value, options).await }
        };
        self.link.call("writing a key", put).await.map(drop)
    }

    /// Puts every held key under the lease, granting a new one when there is none.
    async fn restore(&self, held: &mut Held) -> Result<(), Failure> {
        held.missing = true;
        let lease = match (self.lease_ttl, held.lease) {
            (Some(ttl), None) => {
                let grant = |mut client: Client| async move { client.lease_grant(ttl, None).await };
                let lease = self.link.call("granting a lease", grant).await?.id();
                info!(source.id = %self.source_id, lease, ttl, "Granted the etcd lease written keys carry");
                held.lease = Some(lease);
                Some(lease)
            }
            (_, lease) => lease,
        };
        for written in held.written.values() {
            self.put_one(lease, written).await?;
        }
        held.missing = false;
        Ok(())
    }

    /// Deletes the unwanted keys; a key that is not there counts as deleted.
    async fn delete_unwanted(&self, held: &mut Held) -> Result<(), ConnectorError> {
        while let Some(key) = held.unwanted.first().cloned() {
            let delete = |mut client: Client| {
                let key = key.clone();
                async move { client.delete(key, None).await }
            };
            self.link.call("deleting a key", delete).await?;
            held.unwanted.remove(&key);
        }
        Ok(())
    }

    /// One round of the keeper: keeps the lease alive, or replaces it when etcd lost it;
    /// finishes what earlier rounds and calls could not.
    async fn keep_once(&self) -> Result<(), ConnectorError> {
        let lease = self.held.lock().await.lease;
        if let Some(lease) = lease {
            let renew = |client: Client| keep_alive(client, lease);
            let alive = self.link.call("keeping the lease alive", renew).await?;
            if !alive {
                let mut held = self.held.lock().await;
                // A write may have replaced it meanwhile.
                if held.lease == Some(lease) {
                    warn!(source.id = %self.source_id, lease, keys = held.written.len(), "etcd lost the lease of the written keys; writing them again under a new one");
                    lose_lease(&mut held);
                }
            }
        }
        let mut held = self.held.lock().await;
        if held.missing {
            self.restore(&mut held).await?;
        }
        self.delete_unwanted(&mut held).await
    }
}

/// The keys put under a lease etcd no longer has are gone: the wanted ones must be put
/// again. (The unwanted ones are still deleted: some may be an earlier process's.)
fn lose_lease(held: &mut Held) {
    held.lease = None;
    held.missing = !held.written.is_empty();
}

/// Sends one keep-alive; `false` when etcd no longer has the lease. Each round opens its
/// own short stream, so there is no long-lived stream to repair after a reconnect or a
/// failover.
async fn keep_alive(mut client: Client, lease: i64) -> Result<bool, etcd_client::Error> {
    match client.lease_keep_alive(lease).await {
        Ok(_) => Ok(true),
        // The client reports an answer without TTL ("lease not found") and a broken
        // request stream with this one error; etcd's TimeToLive tells them apart (-1:
        // no such lease).
        Err(etcd_client::Error::LeaseKeepAliveError(why)) => {
            let ttl = client.lease_time_to_live(lease, None).await?.ttl();
            if ttl == -1 {
                Ok(false)
            } else {
                Err(etcd_client::Error::LeaseKeepAliveError(why))
            }
        }
        Err(err) => Err(err),
    }
}

/// The keeper task: runs [`Shared::keep_once`] every `period` until the writer drops it.
async fn keep(shared: Arc<Shared>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the lease was just granted.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(err) = shared.keep_once().await {
            warn!(source.id = %shared.source_id, error = %err, "Cannot keep the etcd lease of written keys");
        }
    }
}

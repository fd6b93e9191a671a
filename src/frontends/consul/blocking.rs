//! Consul's blocking queries: with `index`, a read waits until what it reads has an index
//! above it, or until `wait` (default 5 m, at most 10 m, plus up to 1/16 of jitter) runs
//! out, then answers with whatever is current. An `index` of 0 answers at once, and so
//! does one ahead of anything this catalog issued (a client that moved between servers
//! or outlived a restart resynchronises instead of hanging).

use std::net::IpAddr;

use switchboard_connectors::ServiceKey;
use tokio::time::Instant;

use super::error::ConsulError;
use super::query::ConsulQuery;
use super::ConsulState;
use crate::catalog::Snapshot;

/// What a blocking query waits on.
#[derive(Clone, Copy)]
pub enum Watch<'a> {
    /// One service (health or catalog of a service, its checks).
    Service(&'a ServiceKey),
    /// Any service (service listing, nodes, check states).
    Catalog,
}

impl Watch<'_> {
    fn index(&self, snapshot: &Snapshot) -> u64 {
        match self {
            Watch::Service(key) => snapshot.service_index(&key.namespace, &key.group, &key.name),
            Watch::Catalog => snapshot.index,
        }
    }
}

/// Waits as Consul's blocking query does (see the module). A parked query holds one of
/// the client's watch slots (`api.max_watches*`); beyond them it is refused with 429.
pub async fn wait(
    state: &ConsulState,
    client: Option<IpAddr>,
    query: &ConsulQuery,
    watch: Watch<'_>,
) -> Result<(), ConsulError> {
    if query.index == 0 {
        return Ok(());
    }
    let deadline = Instant::now() + query.blocking_wait();
    let mut service = match watch {
        Watch::Service(key) => Some(state.catalog.subscribe(key)),
        Watch::Catalog => None,
    };
    let mut catalog = state.catalog.subscribe_catalog();
    let mut parked = None;
    loop {
        // The snapshot is dropped before waiting: a parked query must not keep old
        // snapshots (and every body cached in them) alive.
        let (current, latest) = {
            let snapshot = state.catalog.snapshot();
            (watch.index(&snapshot), snapshot.index)
        };
        if current > query.index || query.index > latest {
            return Ok(());
        }
        if parked.is_none() {
            parked = Some((
                (state.watch_slot)(client)?,
                state.metrics.blocking_queries.park(),
            ));
        }
        let changed = async {
            match &mut service {
                Some(subscription) => subscription.receiver.changed().await.is_ok(),
                None => catalog.changed().await.is_ok(),
            }
        };
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, changed) => {
                if !matches!(changed, Ok(true)) {
                    return Ok(());
                }
            }
            _ = state.stopped() => return Ok(()),
        }
    }
}

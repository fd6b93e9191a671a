//! Durability under concurrency: every registration acknowledged to one of many concurrent
//! clients is on disk, so `kill -9` right after the last acknowledgement loses none.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;

use super::{discovery_view, pooled_client, registry_view, send, str_of, TTL_SECONDS};
use crate::support::BinaryServer;

const CLIENTS: usize = 32;
/// 62 or 63 per client, so every client has many registrations in flight beside the
/// others'. With group commit this takes about 4 s on a 2-core VM; a server that commits
/// each write alone pays an fsync each (90 s there).
const INSTANCES: usize = 2_000;
const SERVICE: &str = "kill-9-concurrent";

/// Registers instances `first, first + CLIENTS, …` (no id: the server names them) one at
/// a time; returns the acknowledged id and address of each.
async fn register_share(base: String, first: usize) -> Result<Vec<(String, String)>, String> {
    let client = pooled_client();
    let mut acked = Vec::new();
    for k in (first..INSTANCES).step_by(CLIENTS) {
        let address = format!("10.50.{}.{}:9000", k / 250, k % 250);
        let body = json!({"service": SERVICE, "address": address, "ttl_seconds": TTL_SECONDS});
        let (status, reply) =
            send(client.post(format!("{base}/api/v1/instances")).json(&body)).await?;
        if status != 201 || reply["address"] != address.as_str() {
            return Err(format!("register {address}: {status} {reply}"));
        }
        acked.push((str_of(&reply, "id"), address));
    }
    Ok(acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_concurrent_registrations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::start(dir.path()).await;
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|first| tokio::spawn(register_share(server.base.clone(), first)))
        .collect();
    let mut acked = BTreeMap::new();
    for client in clients {
        let share = client.await.unwrap().unwrap_or_else(|err| panic!("{err}"));
        acked.extend(share);
    }
    // Killed the moment the last client has its last acknowledgement.
    server.kill_9();
    println!(
        "{} registrations acknowledged in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert_eq!(acked.len(), INSTANCES, "one distinct id per registration");

    let server = BinaryServer::start(dir.path()).await;
    let client = pooled_client();
    let served = discovery_view(&client, &server.base, SERVICE)
        .await
        .unwrap();
    let missing: Vec<&String> = acked
        .keys()
        .filter(|id| !served.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {INSTANCES} acknowledged ids are not served after kill -9: {missing:?}",
        missing.len()
    );
    assert_eq!(served.len(), INSTANCES, "nothing but what was acknowledged");
    for (id, address) in &acked {
        let view = registry_view(&client, &server.base, id).await.unwrap();
        let view = view.unwrap_or_else(|| panic!("{id} answers 404 after kill -9"));
        assert_eq!(view["address"], address.as_str(), "{id}");
        assert_eq!(served[id]["address"], address.as_str(), "{id}");
    }
}

//! Durability: restarts keep every instance; `kill -9` after a 201 loses nothing; restored
//! instances get one TTL of grace.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use switchboard::store::{InstanceOp, Store};

use crate::support::{test_config, wait_until, BinaryServer, TestServer, DEADLINE};

#[tokio::test]
async fn a_restart_with_the_same_data_dir_keeps_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut before = Vec::new();
    for (i, status) in ["active", "maintenance", "inactive"].iter().enumerate() {
        let registered = server
            .register(json!({
                "service": "keep", "address": format!("10.0.0.{i}:80"), "status": status,
                "metadata": {"zone": "a"}, "tags": ["blue"], "version": "1.2.3",
            }))
            .await;
        before.push(registered);
    }
    let id = before[0]["id"].as_str().unwrap().to_owned();
    let (_, beat) = server.heartbeat(&id).await;
    server.stop().await;

    let server = TestServer::start(test_config(dir.path())).await;
    for registered in &before {
        let id = registered["id"].as_str().unwrap();
        let (status, after) = server.get_json(&format!("/api/v1/instances/{id}")).await;
        assert_eq!(status, 200);
        for field in [
            "service",
            "address",
            "status",
            "metadata",
            "tags",
            "version",
            "register_time",
            "start_time",
        ] {
            assert_eq!(after[field], registered[field], "{field} of {id}");
        }
    }
    // The heartbeat time survives (to the millisecond the store keeps).
    let (_, after) = server.get_json(&format!("/api/v1/instances/{id}")).await;
    let stored: DateTime<Utc> = after["last_heartbeat"].as_str().unwrap().parse().unwrap();
    let sent: DateTime<Utc> = beat["last_heartbeat"].as_str().unwrap().parse().unwrap();
    assert_eq!(stored.timestamp_millis(), sent.timestamp_millis());
    let (_, listed) = server.get_json("/api/v1/services/keep/instances").await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn restored_instances_get_one_ttl_of_grace() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let registered = server
        .register(json!({"service": "grace", "address": "10.0.0.1:80", "ttl_seconds": 2}))
        .await;
    let id = registered["id"].as_str().unwrap().to_owned();
    server.stop().await;

    // Down for an hour, as after a long outage: the stored heartbeat is made an hour old
    // rather than waited out, so no test waits for the clock.
    age_stored_heartbeat(dir.path(), &id, chrono::Duration::hours(1));

    let restarted_ms = Utc::now().timestamp_millis();
    let server = TestServer::start(test_config(dir.path())).await;
    let (_, body) = server.get_json(&format!("/api/v1/instances/{id}")).await;
    assert_eq!(
        body["status"], "active",
        "not expired the moment it is loaded"
    );
    let (_, health) = server
        .get_json(&format!("/api/v1/instances/{id}/health"))
        .await;
    assert!(
        health["expires_in_seconds"].as_u64().unwrap() >= 1,
        "{health}"
    );
    // Without heartbeats it expires once the grace ends.
    let expired = wait_until(
        "the instance to expire after its grace",
        DEADLINE,
        || async {
            let (_, body) = server.get_json(&format!("/api/v1/instances/{id}")).await;
            (body["status"] == "offline").then_some(body)
        },
    )
    .await;
    // After the whole TTL: it took the registry's clock, which keeps milliseconds, as
    // this one does.
    let offline: DateTime<Utc> = expired["offline_time"].as_str().unwrap().parse().unwrap();
    let grace = offline.timestamp_millis() - restarted_ms;
    assert!(
        grace >= 2_000,
        "expired {grace} ms after the restart: {expired}"
    );
}

/// Moves the stored last heartbeat of instance `id` back by `by`, with the server down.
fn age_stored_heartbeat(data_dir: &Path, id: &str, by: chrono::Duration) {
    let store = Store::open(data_dir).expect("open the stopped server's store");
    let mut record = (store.instances.load().unwrap().into_iter())
        .find(|record| record.instance.id == id)
        .expect("the instance is stored");
    let aged = record.instance.last_heartbeat.unwrap() - by;
    record.instance.last_heartbeat = Some(aged);
    let put = InstanceOp::Put(Box::new(record));
    store.instances.commit(&[put]).unwrap();
    // The flushed heartbeat is kept apart from the record; the newer of the two counts.
    let beats = [(id.to_owned(), aged.timestamp_millis())];
    store.instances.put_heartbeats(&beats).unwrap();
    let reloaded = store.instances.load().unwrap();
    let stored = reloaded.iter().find(|record| record.instance.id == id);
    assert_eq!(stored.unwrap().instance.last_heartbeat, Some(aged));
}

#[tokio::test]
async fn kill_9_right_after_a_201_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::start(dir.path()).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v1/instances", server.base))
        .json(&json!({"service": "durable", "address": "10.9.9.9:9000", "metadata": {"k": "v"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    server.kill_9();
    let registered: Value = response.json().await.unwrap();
    let id = registered["id"].as_str().unwrap();

    let server = BinaryServer::start(dir.path()).await;
    let response = client
        .get(format!("{}/api/v1/instances/{id}", server.base))
        .timeout(DEADLINE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap();
    assert_eq!(after["address"], "10.9.9.9:9000");
    assert_eq!(after["metadata"]["k"], "v");
    let listed: Value = client
        .get(format!("{}/api/v1/services/durable/instances", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], registered["id"]);
}

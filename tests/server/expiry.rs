//! TTL expiry: offline (kept, with `offline_time`), revival by heartbeat, deregister_after.

use serde_json::{json, Value};

use crate::support::{test_config, wait_until, TestServer, DEADLINE};

async fn status_of(server: &TestServer, id: &str) -> Option<Value> {
    let (status, body) = server.get_json(&format!("/api/v1/instances/{id}")).await;
    (status == 200).then_some(body)
}

#[tokio::test]
async fn a_missed_ttl_marks_offline_and_a_heartbeat_revives() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let registered = server
        .register(json!({"service": "ttl", "address": "10.0.0.1:80", "ttl_seconds": 1, "status": "maintenance"}))
        .await;
    let id = registered["id"].as_str().unwrap().to_owned();

    let offline = wait_until("the instance to expire", DEADLINE, || async {
        let body = status_of(&server, &id).await?;
        (body["status"] == "offline").then_some(body)
    })
    .await;
    assert_eq!(offline["healthy"], false);
    assert!(offline["offline_time"].is_string());
    // Kept, not deleted, and visible as offline in discovery.
    let (_, listed) = server.get_json("/api/v1/services/ttl/instances").await;
    assert_eq!(listed[0]["status"], "offline");
    assert_eq!(server.metric("switchboard_expiries_total").await, 1.0);

    let (_, reply) = server.heartbeat(&id).await;
    assert_eq!(reply["revived"], true);
    // Back to the status it had before it expired.
    assert_eq!(reply["status"], "maintenance");
    let revived = status_of(&server, &id).await.unwrap();
    assert_eq!(revived["status"], "maintenance");
    assert!(revived["offline_time"].is_null());
    let (_, listed) = server.get_json("/api/v1/services/ttl/instances").await;
    assert_eq!(listed[0]["status"], "maintenance");
}

#[tokio::test]
async fn heartbeats_keep_an_instance_alive_past_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let registered = server
        .register(json!({"service": "alive", "address": "10.0.0.1:80", "ttl_seconds": 1}))
        .await;
    let id = registered["id"].as_str().unwrap().to_owned();
    let registered_at = std::time::Instant::now();
    // Heartbeat until three TTLs have passed; the instance must never go offline.
    while registered_at.elapsed() < std::time::Duration::from_secs(3) {
        let (status, _) = server.heartbeat(&id).await;
        assert_eq!(status, 200);
        assert_eq!(status_of(&server, &id).await.unwrap()["status"], "active");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(server.metric("switchboard_expiries_total").await, 0.0);
}

#[tokio::test]
async fn deregister_after_deletes_long_offline_instances() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let registered = server
        .register(json!({"service": "gone", "address": "10.0.0.1:80", "ttl_seconds": 1, "deregister_after_seconds": 1}))
        .await;
    let id = registered["id"].as_str().unwrap().to_owned();
    wait_until("the instance to be deleted", DEADLINE, || async {
        status_of(&server, &id).await.is_none().then_some(())
    })
    .await;
    let (status, _) = server.heartbeat(&id).await;
    assert_eq!(status, 404, "the client learns to re-register");
    let (_, listed) = server.get_json("/api/v1/services/gone/instances").await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn an_operator_offline_is_not_undone_by_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let registered = server
        .register(json!({"service": "manual", "address": "10.0.0.1:80"}))
        .await;
    let id = registered["id"].as_str().unwrap().to_owned();
    server.set_status(&id, "offline").await;
    let (_, reply) = server.heartbeat(&id).await;
    assert_eq!(reply["revived"], false);
    assert_eq!(reply["status"], "offline");
}

//! Every key layout the seeds use, read through the whole server: seed 000's JSON under
//! `{prefix}{service}/{id}`, seed 001's capitalised JSON under `{service}/{version}/{id}`,
//! seed 003's plain `host:port` under `/services/{name}/{instance}`, and seed 004's one
//! `host:port` per service under `/services/{name}`.

use serde_json::{json, Value};

use crate::etcd::harness::{etcd_source, instances, rfc3339, start_server, wait_addresses};
use crate::support::etcd::EtcdServer;
use crate::support::{wait_until, TestServer};

async fn by_id(server: &TestServer, path: &str, id: &str) -> Value {
    let what = format!("instance {id} at {path}");
    wait_until(&what, crate::etcd::harness::SLOW, || async {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        let list = body.as_array().cloned().unwrap_or_default();
        list.into_iter().find(|i| i["id"] == id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_json_values_keep_every_field() {
    let etcd = EtcdServer::start().await;
    let prefix = "/aio/registry/";
    let first = json!({
        "id": "user-service-001",
        "name": "user-service",
        "address": "127.0.0.1:8080",
        "protocol": "http",
        "register_time": "2024-01-01T10:00:00.123456789+08:00",
        "start_time": "2024-01-01T09:59:00+08:00",
        "metadata": {"version": "1.0.0", "env": "production"},
        "weight": 100,
        "status": "active",
    });
    let mut second = first.clone();
    second["id"] = json!("user-service-002");
    second["address"] = json!("127.0.0.1:8081");
    second["protocol"] = json!("grpc");
    second["weight"] = json!(50);
    second["status"] = json!("offline");
    etcd.put(
        &format!("{prefix}user-service/user-service-001"),
        &first.to_string(),
    )
    .await;
    etcd.put(
        &format!("{prefix}user-service/user-service-002"),
        &second.to_string(),
    )
    .await;
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], prefix, "")).await;

    let path = "/api/v1/services/user-service/instances";
    let one = by_id(&server, path, "user-service-001").await;
    assert_eq!(one["service"], "user-service");
    assert_eq!(one["namespace"], "public");
    assert_eq!(one["group"], "DEFAULT");
    assert_eq!(one["address"], "127.0.0.1:8080");
    assert_eq!(one["host"], "127.0.0.1");
    assert_eq!(one["port"], 8080);
    assert_eq!(one["protocol"], "http");
    assert_eq!(one["weight"], 100);
    assert_eq!(one["status"], "active");
    assert_eq!(one["healthy"], true);
    assert_eq!(
        one["metadata"],
        json!({"version": "1.0.0", "env": "production"})
    );
    assert_eq!(one["sources"], json!(["etcd-main"]));
    assert_eq!(one["stale"], false);
    let registered = rfc3339(&one["register_time"], "register_time");
    assert_eq!(registered, rfc3339(&first["register_time"], "written"));
    let started = rfc3339(&one["start_time"], "start_time");
    assert_eq!(started, rfc3339(&first["start_time"], "written"));

    let two = by_id(&server, path, "user-service-002").await;
    assert_eq!(two["protocol"], "grpc");
    assert_eq!(two["weight"], 50);
    assert_eq!(two["status"], "offline");
    assert_eq!(
        two["healthy"], false,
        "an offline instance is not healthy: {two}"
    );

    // Seed 000's logical delete and revival are value updates.
    second["status"] = json!("maintenance");
    etcd.put(
        &format!("{prefix}user-service/user-service-002"),
        &second.to_string(),
    )
    .await;
    wait_until("the status update", crate::etcd::harness::SLOW, || async {
        let two = by_id(&server, path, "user-service-002").await;
        (two["status"] == "maintenance").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_versioned_keys_with_capitalised_json() {
    let etcd = EtcdServer::start().await;
    let prefix = "/fyerrpc/services/";
    // fyer-rpc's numeric status: 1 enabled, 0 disabled.
    for (version, id, address, status) in [
        (
            "1.0.0",
            "6f1c0d3a-8a57-4d0f-9c1e-000000000001",
            "192.168.1.100:8000",
            1,
        ),
        (
            "2.0.0",
            "6f1c0d3a-8a57-4d0f-9c1e-000000000002",
            "192.168.1.101:8000",
            0,
        ),
    ] {
        let value = json!({
            "ID": id,
            "Service": "user-service",
            "Version": version,
            "Address": address,
            "Status": status,
            "Weight": 100,
            "Metadata": {"region": "cn-shanghai", "zone": "cn-shanghai-a"},
        });
        etcd.put(
            &format!("{prefix}user-service/{version}/{id}"),
            &value.to_string(),
        )
        .await;
    }
    let extra =
        "key_template = \"{service}/{version}/{id}\"\nnamespace = \"rpc\"\ngroup = \"fyerrpc\"";
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], prefix, extra)).await;

    let path = "/api/v1/services/user-service/instances?namespace=rpc&group=fyerrpc";
    let one = by_id(&server, path, "6f1c0d3a-8a57-4d0f-9c1e-000000000001").await;
    assert_eq!(one["version"], "1.0.0");
    assert_eq!(one["address"], "192.168.1.100:8000");
    assert_eq!(one["weight"], 100);
    assert_eq!(one["status"], "active");
    assert_eq!(one["namespace"], "rpc");
    assert_eq!(one["group"], "fyerrpc");
    assert_eq!(one["metadata"]["region"], "cn-shanghai");
    assert_eq!(one["metadata"]["zone"], "cn-shanghai-a");
    let two = by_id(&server, path, "6f1c0d3a-8a57-4d0f-9c1e-000000000002").await;
    assert_eq!(two["version"], "2.0.0");
    assert_eq!(two["address"], "192.168.1.101:8000");
    assert_eq!(two["status"], "inactive");
    // The source's namespace and group, not the defaults.
    assert_eq!(
        instances(&server, "user-service").await,
        Vec::<Value>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_plain_values_under_service_and_instance() {
    let etcd = EtcdServer::start().await;
    etcd.put("/services/user-service/instance1", "192.168.1.100:8080")
        .await;
    etcd.put("/services/user-service/instance2", "192.168.1.101:8080")
        .await;
    etcd.put("/services/order-service/instance-2", "[::1]:9090")
        .await;
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", "")).await;

    let path = "/api/v1/services/user-service/instances";
    let one = by_id(&server, path, "instance1").await;
    assert_eq!(one["address"], "192.168.1.100:8080");
    assert_eq!(one["status"], "active");
    assert_eq!(one["healthy"], true);
    wait_addresses(
        &server,
        "user-service",
        &["192.168.1.100:8080", "192.168.1.101:8080"],
    )
    .await;
    let v6 = by_id(
        &server,
        "/api/v1/services/order-service/instances",
        "instance-2",
    )
    .await;
    assert_eq!(
        (v6["host"].clone(), v6["port"].clone()),
        (json!("::1"), json!(9090))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_one_address_per_service_key() {
    let etcd = EtcdServer::start().await;
    etcd.put("/services/notification-server", "10.0.0.9:8080")
        .await;
    etcd.put("/services/mail-server", "10.0.0.10:2525").await;
    let extra = "key_template = \"{service}\"\nempty_confirm = \"1s\"";
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", extra)).await;

    wait_addresses(&server, "notification-server", &["10.0.0.9:8080"]).await;
    wait_addresses(&server, "mail-server", &["10.0.0.10:2525"]).await;
    // The service re-registers elsewhere: the same key, a new value.
    etcd.put("/services/notification-server", "10.0.0.9:8081")
        .await;
    wait_addresses(&server, "notification-server", &["10.0.0.9:8081"]).await;
    // Deregistered on SIGTERM: the key goes, and so does the service.
    etcd.delete("/services/notification-server").await;
    wait_addresses(&server, "notification-server", &[]).await;
    wait_addresses(&server, "mail-server", &["10.0.0.10:2525"]).await;
}

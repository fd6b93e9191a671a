//! Secrets are write-only: a password or token shows as `"***"` in every reply about a
//! source, and `"***"` sent back in a PUT or PATCH keeps the stored secret, which the
//! sources prove by reconnecting to backends that require it.

use consul_double::{ConsulDouble, Options};
use serde_json::{json, Value};

use crate::managed::harness::{
    consul_doc, consul_service, etcd_doc, patch, post, put, source_path, wait_source, with,
};
use crate::sources::{source_status, start_server, wait_addresses, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

const PASSWORD: &str = "etcd-Pa55-never-shown";
const TOKEN: &str = "consul-t0ken-never-shown";

/// Fails unless `body` (the reply to `what`) shows neither secret and, when `stars`,
/// shows `"***"`.
fn assert_hidden(what: &str, body: &Value, stars: bool) {
    let text = body.to_string();
    for secret in [PASSWORD, TOKEN] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
    if stars {
        assert!(text.contains("\"***\""), "{what} shows no \"***\": {text}");
    }
}

/// Every read of the two sources: one, the list, the status object.
async fn assert_reads_hidden(server: &TestServer) {
    for id in ["etcd-s", "consul-s"] {
        let (status, view) = server.get_json(&source_path(id)).await;
        assert_eq!(status, 200, "{view}");
        assert_hidden(&format!("GET {id}"), &view, true);
        let (status, only) = server
            .get_json(&format!("/api/v1/sources/{id}/status"))
            .await;
        assert_eq!(status, 200, "{only}");
        assert_hidden(&format!("GET {id}/status"), &only, false);
    }
    let (status, listed) = server.get_json("/api/v1/sources").await;
    assert_eq!(status, 200, "{listed}");
    assert_hidden("GET /api/v1/sources", &listed, true);
    let metrics = server.client.get(server.url("/metrics")).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    assert_hidden("GET /metrics", &Value::String(metrics), false);
}

/// Waits until `id` is ready with no auth error: its latest connection used the secret.
async fn wait_authenticated(server: &TestServer, id: &str) {
    wait_source(server, id, "ready, no auth error", |view| {
        view["state"] == "ready" && view["last_error"]["kind"] != "auth"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_show_as_stars_everywhere_and_stars_sent_back_keep_them() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/sec/vault/v1", "10.6.0.1:80").await;
    etcd.enable_auth("switchboard", PASSWORD, "/sec/").await;
    let consul = ConsulDouble::start_with(Options {
        token: Some(TOKEN.to_owned()),
        ..Options::default()
    })
    .await;
    consul
        .register(consul_service("ledger", "l1", "10.6.1.1", 80))
        .await;
    let (server, _dir) = start_server("").await;

    let etcd_source = with(
        etcd_doc("etcd-s", &etcd.endpoint(), "/sec/"),
        json!({ "username": "switchboard", "password": PASSWORD }),
    );
    let consul_source = with(
        consul_doc("consul-s", &consul.url()),
        json!({ "token": TOKEN }),
    );
    let (status, body) = post(&server, "/api/v1/sources:validate", &etcd_source).await;
    assert_eq!(status, 200, "{body}");
    assert_hidden("POST sources:validate", &body, false);
    let (status, created) = post(&server, "/api/v1/sources", &etcd_source).await;
    assert_eq!(status, 201, "{created}");
    assert_hidden("POST etcd-s", &created, true);
    assert_eq!(created["config"]["password"], "***", "{created}");
    assert_eq!(created["config"]["username"], "switchboard", "{created}");
    let (status, created) = post(&server, "/api/v1/sources", &consul_source).await;
    assert_eq!(status, 201, "{created}");
    assert_hidden("POST consul-s", &created, true);
    assert_eq!(created["config"]["token"], "***", "{created}");

    wait_addresses(&server, "vault", &["10.6.0.1:80"]).await;
    wait_addresses(&server, "ledger", &["10.6.1.1:80"]).await;
    wait_source_state(&server, "etcd-s", "ready").await;
    wait_source_state(&server, "consul-s", "ready").await;
    assert_reads_hidden(&server).await;

    // PATCH with the stars: the password stays.
    let stars = json!({ "priority": 7, "password": "***" });
    let (status, patched) = patch(&server, &source_path("etcd-s"), &stars).await;
    assert_eq!(status, 200, "{patched}");
    assert_hidden("PATCH etcd-s", &patched, true);
    assert_eq!(patched["config"]["priority"], 7, "{patched}");
    etcd.put("/sec/vault/v2", "10.6.0.2:80").await;
    wait_addresses(&server, "vault", &["10.6.0.1:80", "10.6.0.2:80"]).await;
    wait_authenticated(&server, "etcd-s").await;

    // PUT back each document as GOT.
    let got = source_status(&server, "etcd-s").await["config"].clone();
    assert_eq!(got["password"], "***", "{got}");
    let (status, replaced) = put(&server, &source_path("etcd-s"), &got).await;
    assert_eq!(status, 200, "{replaced}");
    assert_hidden("PUT etcd-s", &replaced, true);
    etcd.put("/sec/vault/v3", "10.6.0.3:80").await;
    let all = ["10.6.0.1:80", "10.6.0.2:80", "10.6.0.3:80"];
    wait_addresses(&server, "vault", &all).await;
    wait_authenticated(&server, "etcd-s").await;

    let got = source_status(&server, "consul-s").await["config"].clone();
    assert_eq!(got["token"], "***", "{got}");
    let (status, replaced) = put(&server, &source_path("consul-s"), &got).await;
    assert_eq!(status, 200, "{replaced}");
    assert_hidden("PUT consul-s", &replaced, true);
    consul
        .register(consul_service("ledger", "l2", "10.6.1.2", 80))
        .await;
    wait_addresses(&server, "ledger", &["10.6.1.1:80", "10.6.1.2:80"]).await;
    wait_authenticated(&server, "consul-s").await;

    assert_reads_hidden(&server).await;
}

//! Warm restart: each source's last view is saved in the data dir, so a Switchboard
//! restarted while a backend is down serves that backend's last instances from the first
//! read, flagged stale, until the backend is back and its live view replaces them (what
//! changed meanwhile included).

use std::time::Duration;

use chrono::Utc;

use serde_json::Value;

use crate::managed::harness::{etcd_doc, etcd_table, poll};
use crate::sources::{
    instances, load_config, rfc3339, sorted_addresses, source_status, wait_fresh, wait_source_state,
};
use crate::support::etcd::EtcdServer;
use crate::support::{BinaryServer, TestServer};

/// Views are saved about once a second: this long after a source's last change, its
/// view is on disk even if Switchboard then dies without any shutdown code running.
const SAVED_AFTER: chrono::TimeDelta = chrono::TimeDelta::milliseconds(2500);

/// Waits until the `last_sync` in `status()` is `SAVED_AFTER` old.
async fn wait_view_saved<F, Fut>(mut status: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    poll("the last view to be saved", Duration::from_secs(10), || {
        let status = status();
        async move {
            let view = status.await;
            let age = match view["last_sync"].is_string() {
                true => Utc::now().signed_duration_since(rfc3339(&view["last_sync"], "last_sync")),
                false => return Err(view.to_string()),
            };
            match age >= SAVED_AFTER {
                true => Ok(()),
                false => Err(format!("last change {age} ago: {view}")),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_etcd_down_serves_its_last_view_stale_at_once() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/w/web/w1", "10.13.0.1:80").await;
    etcd.put("/w/web/w2", "10.13.0.2:80").await;
    let toml = etcd_table("etcd-w", &etcd.endpoint(), "/w/", "");
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(load_config(dir.path(), &toml)).await;
    let expected = [
        ("web".to_owned(), "10.13.0.1:80".to_owned()),
        ("web".to_owned(), "10.13.0.2:80".to_owned()),
    ];
    wait_fresh(&server, "etcd-w", &expected).await;
    wait_source_state(&server, "etcd-w", "ready").await;

    // A graceful stop saves the latest view, however recent.
    server.stop().await;
    // Changed while Switchboard is away: the live view must replace the saved one.
    etcd.delete("/w/web/w2").await;
    etcd.put("/w/web/w3", "10.13.0.3:80").await;
    etcd.kill_9();
    let server = TestServer::start(load_config(dir.path(), &toml)).await;

    let first = instances(&server, "web").await;
    assert_eq!(
        sorted_addresses(&first),
        ["10.13.0.1:80", "10.13.0.2:80"],
        "the first read after ready: {first:?}"
    );
    assert!(first.iter().all(|i| i["stale"] == true), "{first:?}");
    assert!(
        first.iter().all(|i| i["stale_since"].is_string()),
        "{first:?}"
    );
    let status = source_status(&server, "etcd-w").await;
    assert!(status["stale_since"].is_string(), "{status}");
    let state = status["state"].as_str().unwrap_or_default();
    assert!(["connecting", "down"].contains(&state), "{status}");

    etcd.restart().await;
    let live = [
        ("web".to_owned(), "10.13.0.1:80".to_owned()),
        ("web".to_owned(), "10.13.0.3:80".to_owned()),
    ];
    wait_fresh(&server, "etcd-w", &live).await;
    let ready = wait_source_state(&server, "etcd-w", "ready").await;
    assert!(ready["stale_since"].is_null(), "{ready}");
    let fresh = instances(&server, "web").await;
    assert!(fresh.iter().all(|i| i["stale"] == false), "{fresh:?}");
}

/// `GET {base}{path}` as JSON.
async fn get(client: &reqwest::Client, base: &str, path: &str) -> Value {
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    response.json().await.unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_switchboard_restarted_with_etcd_down_serves_the_view_it_had_saved() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/k/api/k1", "10.14.0.1:80").await;
    let data = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::start(data.path()).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/sources", server.base))
        .json(&etcd_doc("etcd-k", &etcd.endpoint(), "/k/"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let base = server.base.clone();
    poll(
        "etcd-k's instance to be served",
        Duration::from_secs(10),
        || async {
            let list = get(&client, &base, "/api/v1/services/api/instances").await;
            match list.as_array().is_some_and(|l| l.len() == 1) {
                true => Ok(()),
                false => Err(list.to_string()),
            }
        },
    )
    .await;
    wait_view_saved(|| get(&client, &base, "/api/v1/sources/etcd-k/status")).await;

    server.kill_9();
    etcd.kill_9();
    let server = BinaryServer::start(data.path()).await;
    let first = get(&client, &server.base, "/api/v1/services/api/instances").await;
    assert_eq!(first[0]["address"], "10.14.0.1:80", "{first}");
    assert_eq!(first[0]["stale"], true, "{first}");
    let source = get(&client, &server.base, "/api/v1/sources/etcd-k").await;
    assert_eq!(source["origin"], "api", "{source}");
    assert!(source["stale_since"].is_string(), "{source}");
}

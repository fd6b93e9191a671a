//! Sources from the config file are listed with `origin: "file"` and are read-only
//! through the API: PUT, PATCH and DELETE answer 409 `source_read_only`, a POST of their
//! id 409 `source_exists`, and nothing changes. They can be disconnected and connected,
//! but that is not stored: a restart connects them again.

use serde_json::json;

use crate::managed::harness::{
    assert_problem, delete, etcd_doc, etcd_table, patch, post, post_empty, put, settled_list,
    source_path, wait_addresses_within, AT_ONCE,
};
use crate::sources::{load_config, source_status, start_server, wait_addresses, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_is_read_only_through_the_api() {
    let etcd = EtcdServer::start().await;
    etcd.put("/f/web/w1", "10.8.0.1:80").await;
    let toml = etcd_table("etcd-file", &etcd.endpoint(), "/f/", "");
    let (server, _dir) = start_server(&toml).await;
    wait_addresses(&server, "web", &["10.8.0.1:80"]).await;
    let view = wait_source_state(&server, "etcd-file", "ready").await;
    assert_eq!(view["origin"], "file", "{view}");
    assert_eq!(view["connected"], true, "{view}");
    assert_eq!(view["config"]["prefix"], "/f/", "{view}");
    let before = settled_list(&server).await;

    let path = source_path("etcd-file");
    let mut document = view["config"].clone();
    document["priority"] = json!(3);
    let replaced = put(&server, &path, &document).await;
    assert_problem("PUT", &replaced, 409, "source_read_only", None);
    let patched = patch(&server, &path, &json!({ "priority": 3 })).await;
    assert_problem("PATCH", &patched, 409, "source_read_only", None);
    let deleted = delete(&server, &path).await;
    assert_problem("DELETE", &deleted, 409, "source_read_only", None);
    let doc = etcd_doc("etcd-file", &etcd.endpoint(), "/other/");
    let created = post(&server, "/api/v1/sources", &doc).await;
    assert_problem("POST its id", &created, 409, "source_exists", None);

    assert_eq!(settled_list(&server).await, before, "nothing changed");
    wait_addresses(&server, "web", &["10.8.0.1:80"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_disconnects_and_connects_but_a_restart_connects_it_again() {
    let etcd = EtcdServer::start().await;
    etcd.put("/f/web/w1", "10.8.1.1:80").await;
    let toml = etcd_table("etcd-file", &etcd.endpoint(), "/f/", "");
    let (server, dir) = start_server(&toml).await;
    wait_addresses(&server, "web", &["10.8.1.1:80"]).await;

    let (status, view) = post_empty(&server, "/api/v1/sources/etcd-file/disconnect").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "disconnected", "{view}");
    assert_eq!(view["connected"], false, "{view}");
    wait_addresses_within(&server, "web", &[], AT_ONCE).await;
    let (status, view) = post_empty(&server, "/api/v1/sources/etcd-file/connect").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["connected"], true, "{view}");
    wait_addresses(&server, "web", &["10.8.1.1:80"]).await;

    let (status, view) = post_empty(&server, "/api/v1/sources/etcd-file/disconnect").await;
    assert_eq!(status, 200, "{view}");
    server.stop().await;
    let server = TestServer::start(load_config(dir.path(), &toml)).await;
    let view = source_status(&server, "etcd-file").await;
    assert_eq!(
        view["connected"], true,
        "not stored for file sources: {view}"
    );
    assert_eq!(view["origin"], "file", "{view}");
    wait_source_state(&server, "etcd-file", "ready").await;
    wait_addresses(&server, "web", &["10.8.1.1:80"]).await;
}

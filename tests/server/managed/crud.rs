//! A source's life through the API: created by POST (and served at once), listed with
//! its config, replaced by PUT, disconnected (its instances leave at once) and connected
//! again, deleted.

use serde_json::json;

use crate::managed::harness::{
    assert_problem, create, delete, etcd_doc, list, post_empty, put, source_path,
    wait_addresses_within, wait_instances, with, AT_ONCE,
};
use crate::sources::{source_status, start_server, wait_addresses, wait_source_state};
use crate::support::etcd::EtcdServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_created_by_post_serves_its_instances_and_is_listed_as_api() {
    let etcd = EtcdServer::start().await;
    etcd.put("/c/web/w1", "10.5.0.1:80").await;
    etcd.put("/c/web/w2", "10.5.0.2:80").await;
    let (server, _dir) = start_server("").await;

    let doc = etcd_doc("etcd-c", &etcd.endpoint(), "/c/");
    let created = create(&server, &doc).await;
    assert_eq!(created["type"], "etcd", "{created}");
    let config = &created["config"];
    assert_eq!(config["endpoints"], json!([etcd.endpoint()]), "{created}");
    assert_eq!(config["prefix"], "/c/", "{created}");
    assert_eq!(config["priority"], 0, "defaults are filled in: {created}");
    assert!(config["empty_confirm"].is_string(), "{created}");

    wait_addresses(&server, "web", &["10.5.0.1:80", "10.5.0.2:80"]).await;
    let served = wait_instances(&server, "web", "both from etcd-c", |list| {
        list.iter().all(|i| i["sources"] == json!(["etcd-c"]))
    })
    .await;
    assert_eq!(served.len(), 2, "{served:?}");

    let ready = wait_source_state(&server, "etcd-c", "ready").await;
    assert_eq!(ready["instances"], 2, "{ready}");
    assert_eq!(ready["services"], 1, "{ready}");
    let listed = list(&server).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let view = &listed[0];
    assert_eq!(view["id"], "etcd-c", "{view}");
    assert_eq!(view["origin"], "api", "{view}");
    assert_eq!(view["connected"], true, "{view}");
    assert_eq!(view["config"]["prefix"], "/c/", "{view}");
    assert_eq!(
        view["config"]["endpoints"],
        json!([etcd.endpoint()]),
        "{view}"
    );

    let (status, only) = server.get_json("/api/v1/sources/etcd-c/status").await;
    assert_eq!(status, 200, "{only}");
    assert_eq!(only["id"], "etcd-c", "{only}");
    assert_eq!(only["state"], "ready", "{only}");
    assert!(
        only.get("config").is_none(),
        "the status object only: {only}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_removes_the_instances_at_once_and_connect_brings_them_back() {
    let etcd = EtcdServer::start().await;
    etcd.put("/d/web/w1", "10.5.1.1:80").await;
    let (server, _dir) = start_server("").await;
    create(&server, &etcd_doc("etcd-d", &etcd.endpoint(), "/d/")).await;
    wait_addresses(&server, "web", &["10.5.1.1:80"]).await;

    let (status, view) = post_empty(&server, "/api/v1/sources/etcd-d/disconnect").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "disconnected", "{view}");
    assert_eq!(view["connected"], false, "{view}");
    wait_addresses_within(&server, "web", &[], AT_ONCE).await;
    let disconnected = source_status(&server, "etcd-d").await;
    assert_eq!(disconnected["state"], "disconnected", "{disconnected}");
    assert_eq!(disconnected["connected"], false, "{disconnected}");
    assert_eq!(disconnected["instances"], 0, "{disconnected}");

    // A change made while disconnected arrives with the reconnect.
    etcd.put("/d/web/w2", "10.5.1.2:80").await;
    let (status, view) = post_empty(&server, "/api/v1/sources/etcd-d/connect").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["connected"], true, "{view}");
    wait_addresses(&server, "web", &["10.5.1.1:80", "10.5.1.2:80"]).await;
    wait_source_state(&server, "etcd-d", "ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_answers_204_removes_the_instances_and_the_source() {
    let etcd = EtcdServer::start().await;
    etcd.put("/x/web/w1", "10.5.2.1:80").await;
    etcd.put("/y/api/a1", "10.5.2.2:80").await;
    let (server, _dir) = start_server("").await;
    create(&server, &etcd_doc("etcd-x", &etcd.endpoint(), "/x/")).await;
    create(&server, &etcd_doc("etcd-y", &etcd.endpoint(), "/y/")).await;
    wait_addresses(&server, "web", &["10.5.2.1:80"]).await;
    wait_addresses(&server, "api", &["10.5.2.2:80"]).await;

    let (status, body) = delete(&server, &source_path("etcd-x")).await;
    assert_eq!(status, 204, "{body}");
    wait_addresses_within(&server, "web", &[], AT_ONCE).await;
    let gone = server.get_json(&source_path("etcd-x")).await;
    assert_problem("GET a deleted source", &gone, 404, "source_not_found", None);
    let ids: Vec<_> = list(&server)
        .await
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(ids, [json!("etcd-y")]);
    // The other source is untouched.
    assert_eq!(
        crate::sources::addresses(&server, "api").await,
        ["10.5.2.2:80"]
    );

    let again = delete(&server, &source_path("etcd-x")).await;
    assert_problem("DELETE it again", &again, 404, "source_not_found", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_the_whole_document_and_may_omit_the_id() {
    let etcd = EtcdServer::start().await;
    etcd.put("/p/web/w1", "10.5.3.1:80").await;
    let (server, _dir) = start_server("").await;
    let doc = with(
        etcd_doc("etcd-p", &etcd.endpoint(), "/p/"),
        json!({ "priority": 5, "service_prefix": "p-" }),
    );
    create(&server, &doc).await;
    wait_addresses(&server, "p-web", &["10.5.3.1:80"]).await;

    // No id, no priority, no prefix: the defaults replace what was there.
    let whole = json!({ "type": "etcd", "endpoints": [etcd.endpoint()], "prefix": "/p/" });
    let (status, view) = put(&server, &source_path("etcd-p"), &whole).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["id"], "etcd-p", "{view}");
    assert_eq!(view["priority"], 0, "{view}");
    assert_eq!(view["config"]["priority"], 0, "{view}");
    assert!(
        view["config"]
            .get("service_prefix")
            .is_none_or(|p| p.is_null() || p == ""),
        "{view}"
    );
    wait_addresses(&server, "web", &["10.5.3.1:80"]).await;
    wait_addresses(&server, "p-web", &[]).await;
}

//! Sources made through the API are stored in the data dir: after a restart they are
//! back with the same config, connected or disconnected as the operator left them.

use serde_json::json;

use crate::managed::harness::{create, etcd_doc, list, listed_ids, post_empty, with};
use crate::sources::{
    addresses, load_config, source_status, start_server, wait_addresses, wait_source_state,
};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_sources_come_back_after_a_restart_connected_or_not_as_they_were() {
    let etcd = EtcdServer::start().await;
    etcd.put("/r1/web/w1", "10.7.1.1:80").await;
    etcd.put("/r2/api/a1", "10.7.2.1:80").await;
    let (server, dir) = start_server("").await;
    // Created in reverse order: the listing is sorted by id.
    let extra = json!({ "priority": 3, "service_prefix": "two-" });
    let doc = with(etcd_doc("etcd-r2", &etcd.endpoint(), "/r2/"), extra);
    create(&server, &doc).await;
    create(&server, &etcd_doc("etcd-r1", &etcd.endpoint(), "/r1/")).await;
    wait_addresses(&server, "web", &["10.7.1.1:80"]).await;
    wait_addresses(&server, "two-api", &["10.7.2.1:80"]).await;
    let (status, view) = post_empty(&server, "/api/v1/sources/etcd-r2/disconnect").await;
    assert_eq!(status, 200, "{view}");
    wait_addresses(&server, "two-api", &[]).await;
    let before: Vec<_> = list(&server)
        .await
        .iter()
        .map(|v| v["config"].clone())
        .collect();
    assert_eq!(listed_ids(&server).await, ["etcd-r1", "etcd-r2"]);

    server.stop().await;
    let server = TestServer::start(load_config(dir.path(), "")).await;

    // Read before anything else: a disconnected source serves nothing, warm or not.
    assert_eq!(addresses(&server, "two-api").await, Vec::<String>::new());
    assert_eq!(listed_ids(&server).await, ["etcd-r1", "etcd-r2"]);
    let after: Vec<_> = list(&server)
        .await
        .iter()
        .map(|v| v["config"].clone())
        .collect();
    assert_eq!(after, before, "the stored documents");

    let connected = wait_source_state(&server, "etcd-r1", "ready").await;
    assert_eq!(connected["origin"], "api", "{connected}");
    assert_eq!(connected["connected"], true, "{connected}");
    wait_addresses(&server, "web", &["10.7.1.1:80"]).await;
    let disconnected = source_status(&server, "etcd-r2").await;
    assert_eq!(disconnected["origin"], "api", "{disconnected}");
    assert_eq!(disconnected["connected"], false, "{disconnected}");
    assert_eq!(disconnected["state"], "disconnected", "{disconnected}");
    assert_eq!(addresses(&server, "two-api").await, Vec::<String>::new());

    // Its stored document is whole: connected, it serves under its prefix again.
    let (status, view) = post_empty(&server, "/api/v1/sources/etcd-r2/connect").await;
    assert_eq!(status, 200, "{view}");
    wait_addresses(&server, "two-api", &["10.7.2.1:80"]).await;
    assert_eq!(source_status(&server, "etcd-r2").await["priority"], 3);
}

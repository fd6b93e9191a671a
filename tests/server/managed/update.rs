//! Updating one source reconnects that source only: a new `service_prefix` switches its
//! services to the new names without a gap and without waiting for `empty_confirm`,
//! while another source's service keeps its index and its connection.

use consul_double::ConsulDouble;
use serde_json::json;
use tokio::time::Instant;

use crate::managed::harness::{
    consul_doc, consul_service, create, etcd_doc, patch, poll, source_path, wait_instances,
    PROMPTLY,
};
use crate::sources::{addresses, source_status, start_server, wait_addresses, wait_source_state};
use crate::support::etcd::EtcdServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patching_service_prefix_renames_at_once_and_leaves_other_sources_alone() {
    let etcd = EtcdServer::start().await;
    etcd.put("/a/orders/o1", "10.1.0.1:80").await;
    let consul = ConsulDouble::start().await;
    consul
        .register(consul_service("billing", "b1", "10.2.0.1", 80))
        .await;
    let (server, _dir) = start_server("").await;
    // `empty_confirm` stays at its 10 s default.
    create(&server, &etcd_doc("etcd-a", &etcd.endpoint(), "/a/")).await;
    create(&server, &consul_doc("consul-b", &consul.url())).await;
    wait_addresses(&server, "orders", &["10.1.0.1:80"]).await;
    wait_addresses(&server, "billing", &["10.2.0.1:80"]).await;
    wait_source_state(&server, "etcd-a", "ready").await;
    let other = wait_source_state(&server, "consul-b", "ready").await;
    let billing_index = server.index_of("billing").await;

    let started = Instant::now();
    let prefixed = json!({ "service_prefix": "a-" });
    let (status, view) = patch(&server, &source_path("etcd-a"), &prefixed).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["config"]["service_prefix"], "a-", "{view}");
    assert_eq!(
        view["config"]["prefix"], "/a/",
        "only the patched key: {view}"
    );
    assert_eq!(
        view["config"]["endpoints"],
        json!([etcd.endpoint()]),
        "{view}"
    );

    // The old name is served until the new one is (read in that order, so a gap between
    // them would show as both empty).
    poll("orders renamed to a-orders", PROMPTLY, || async {
        let old = addresses(&server, "orders").await;
        let new = addresses(&server, "a-orders").await;
        assert!(
            !(old.is_empty() && new.is_empty()),
            "neither orders nor a-orders served after the PATCH"
        );
        match (old.is_empty(), new == ["10.1.0.1:80"]) {
            (true, true) => Ok(()),
            _ => Err(format!("orders {old:?}, a-orders {new:?}")),
        }
    })
    .await;
    println!("renamed {:?} after the PATCH", started.elapsed());
    wait_instances(&server, "a-orders", "fresh, from etcd-a", |list| {
        list.len() == 1 && list[0]["stale"] == false && list[0]["sources"] == json!(["etcd-a"])
    })
    .await;

    assert_eq!(
        server.index_of("billing").await,
        billing_index,
        "the other source's service kept its index"
    );
    let after = source_status(&server, "consul-b").await;
    assert_eq!(after["reconnects"], other["reconnects"], "{after}");
    assert_eq!(after["state"], "ready", "{after}");
}

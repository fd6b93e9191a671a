//! Two etcd sources reporting the same endpoint: one merged instance listing both (highest
//! priority first) with the higher priority's attributes, not stale while one fresh
//! source still vouches for it, stale once only a cut-off source reports it.

use serde_json::{json, Value};

use crate::etcd::harness::{
    assert_status_shape, instances, named_source, source_status, start_server, wait_state, SLOW,
};
use crate::etcd::proxy::{Mode, Proxy};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

async fn the_one_instance(
    server: &TestServer,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let give_up = tokio::time::Instant::now() + SLOW;
    loop {
        let list = instances(server, "shared").await;
        if list.len() == 1 && check(&list[0]) {
            return list[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {SLOW:?} waiting for {what}; last seen: {list:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoint_from_two_sources_is_one_instance_stale_only_when_all_are() {
    let etcd = EtcdServer::start().await;
    let value = |weight: u32| {
        json!({"id": "s1", "name": "shared", "address": "10.7.0.1:80", "weight": weight})
            .to_string()
    };
    etcd.put("/high/shared/s1", &value(10)).await;
    etcd.put("/low/shared/s1", &value(20)).await;
    // The high-priority source goes through a proxy the test can cut.
    let proxy = Proxy::start(etcd.client_port(), Mode::Forward).await;
    let toml = named_source("etcd-main", &[proxy.endpoint()], "/high/", "priority = 10")
        + &named_source(
            "etcd-low",
            &[etcd.endpoint()],
            "/low/",
            "priority = 1\nempty_confirm = \"1s\"",
        );
    let (server, _dir) = start_server(&toml).await;

    let merged = the_one_instance(&server, "one merged instance", |i| {
        i["sources"] == json!(["etcd-main", "etcd-low"])
    })
    .await;
    assert_eq!(
        merged["weight"], 10,
        "attributes of the higher priority: {merged}"
    );
    assert_eq!(merged["stale"], false);
    let high = wait_state(&server, "ready").await;
    assert_status_shape(&high);
    assert_eq!(high["priority"], 10);
    let low = source_status(&server, "etcd-low").await;
    assert_status_shape(&low);
    assert_eq!(low["priority"], 1);

    proxy.set(Mode::Cut);
    wait_state(&server, "down").await;
    // Union keeps the higher priority's attributes even while it is stale; the endpoint
    // is not stale, since etcd-low still vouches for it.
    let cut_off = the_one_instance(&server, "the instance while etcd-main is down", |i| {
        i["sources"] == json!(["etcd-main", "etcd-low"])
    })
    .await;
    assert_eq!(cut_off["weight"], 10, "{cut_off}");
    assert_eq!(cut_off["stale"], false, "etcd-low still vouches: {cut_off}");

    // Now only the cut-off source reports it: served, but stale.
    etcd.delete("/low/shared/s1").await;
    let stale = the_one_instance(&server, "only etcd-main's stale report", |i| {
        i["sources"] == json!(["etcd-main"])
    })
    .await;
    assert_eq!(stale["stale"], true, "{stale}");
    assert!(stale["stale_since"].is_string(), "{stale}");

    proxy.set(Mode::Forward);
    wait_state(&server, "ready").await;
    the_one_instance(&server, "a fresh instance again", |i| i["stale"] == false).await;
}

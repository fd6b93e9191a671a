//! Merge policies: `union` (the default) makes one instance of an endpoint every source
//! reports, across adapters; a `failover` rule serves the highest-priority source that
//! has a healthy, fresh instance, and falls over when its backend dies. Rules come from
//! `[[merge]]` in the file and from `PUT /api/v1/merge`.

use consul_double::ConsulDouble;
use serde_json::{json, Value};

use crate::managed::harness::{
    assert_problem, consul_service, create, etcd_doc, etcd_table, nacos_doc, put, wait_instances,
    with,
};
use crate::sources::{load_config, start_server, wait_addresses, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::rnacos::{Registration, RnacosServer};
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoint_in_etcd_and_nacos_is_one_instance_listing_both_by_priority() {
    let etcd = EtcdServer::start().await;
    etcd.put("/u/shared/e1", "10.10.0.1:80").await;
    let nacos = RnacosServer::start().await;
    nacos
        .register(&Registration::new("shared", "10.10.0.1", 80))
        .await;
    let (server, _dir) = start_server("").await;
    // The etcd source is created first and has the lower priority.
    let low = with(
        etcd_doc("etcd-u", &etcd.endpoint(), "/u/"),
        json!({ "priority": 5 }),
    );
    create(&server, &low).await;
    let high = with(
        nacos_doc("nacos-u", &nacos.endpoint()),
        json!({ "priority": 10 }),
    );
    create(&server, &high).await;

    let merged = wait_instances(&server, "shared", "one instance from both", |list| {
        list.len() == 1 && list[0]["sources"] == json!(["nacos-u", "etcd-u"])
    })
    .await;
    assert_eq!(merged[0]["address"], "10.10.0.1:80", "{merged:?}");
    assert_eq!(merged[0]["stale"], false, "{merged:?}");
}

/// Source A (etcd, priority 10) and B (Consul, priority 5) under a `pay-*` failover rule
/// from the file.
fn failover_config(etcd: &EtcdServer, consul: &ConsulDouble) -> String {
    let rule = "[[merge]]\nservices = \"pay-*\"\npolicy = \"failover\"\n\n";
    let a = etcd_table("etcd-a", &etcd.endpoint(), "/pay/", "priority = 10");
    let b = format!(
        "[[sources]]\nid = \"consul-b\"\ntype = \"consul\"\nendpoints = [{:?}]\npriority = 5\n",
        consul.url()
    );
    format!("{rule}{a}\n{b}")
}

/// Waits until `pay-api` is exactly `address`, fresh, from `source` alone.
async fn wait_pay_api_from(server: &TestServer, source: &str, address: &str) {
    let what = format!("only {address} from {source}, fresh");
    wait_instances(server, "pay-api", &what, |list| {
        list.len() == 1
            && list[0]["address"] == address
            && list[0]["sources"] == json!([source])
            && list[0]["stale"] == false
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_serves_the_preferred_source_and_falls_over_while_its_backend_is_dead() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/pay/pay-api/a1", "10.11.0.1:80").await;
    etcd.put("/pay/web/w1", "10.11.0.2:80").await;
    let consul = ConsulDouble::start().await;
    consul
        .register(consul_service("pay-api", "b1", "10.11.1.1", 80))
        .await;
    consul
        .register(consul_service("web", "w2", "10.11.1.2", 80))
        .await;
    let (server, _dir) = start_server(&failover_config(&etcd, &consul)).await;

    let (status, merge) = server.get_json("/api/v1/merge").await;
    assert_eq!(status, 200, "{merge}");
    assert_eq!(merge["default"], "union", "{merge}");
    let rules = merge["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{merge}");
    assert_eq!(rules[0]["services"], json!(["pay-*"]), "{merge}");
    assert_eq!(rules[0]["policy"], "failover", "{merge}");
    assert_eq!(rules[0]["origin"], "file", "{merge}");

    wait_pay_api_from(&server, "etcd-a", "10.11.0.1:80").await;
    // A service no rule names is a union of both.
    wait_addresses(&server, "web", &["10.11.0.2:80", "10.11.1.2:80"]).await;
    wait_source_state(&server, "consul-b", "ready").await;

    etcd.kill_9();
    wait_pay_api_from(&server, "consul-b", "10.11.1.1:80").await;

    etcd.restart().await;
    wait_source_state(&server, "etcd-a", "ready").await;
    wait_pay_api_from(&server, "etcd-a", "10.11.0.1:80").await;
}

/// The `rules` of `GET /api/v1/merge` without anything but services, policy, origin.
fn rules_of(merge: &Value) -> Vec<Value> {
    let rules = merge["rules"].as_array().cloned().unwrap_or_default();
    rules
        .iter()
        .map(|r| json!({ "services": r["services"], "policy": r["policy"], "origin": r["origin"] }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_rules_put_by_api_follow_the_file_rules_and_survive_a_restart() {
    let toml = "[[merge]]\nservices = [\"db-*\", \"cache-*\"]\npolicy = \"union\"\n";
    let (server, dir) = start_server(toml).await;
    let file_rule = json!({ "services": ["db-*", "cache-*"], "policy": "union", "origin": "file" });

    let body = json!({ "rules": [{ "services": ["pay-*"], "policy": "failover" }] });
    let (status, replied) = put(&server, "/api/v1/merge", &body).await;
    assert_eq!(status, 200, "{replied}");
    let (status, merge) = server.get_json("/api/v1/merge").await;
    assert_eq!(status, 200, "{merge}");
    assert_eq!(replied, merge, "PUT answers with the GET body");
    assert_eq!(merge["default"], "union", "{merge}");
    let api_rule = json!({ "services": ["pay-*"], "policy": "failover", "origin": "api" });
    let expected = vec![file_rule.clone(), api_rule];
    assert_eq!(rules_of(&merge), expected, "{merge}");

    let bad = json!({ "rules": [{ "services": ["x-*"], "policy": "round-robin" }] });
    let refused = put(&server, "/api/v1/merge", &bad).await;
    let what = "PUT a bad policy";
    assert_problem(
        what,
        &refused,
        400,
        "invalid_merge_rule",
        Some("rules[0].policy"),
    );
    let (_, unchanged) = server.get_json("/api/v1/merge").await;
    assert_eq!(unchanged, merge, "a refused PUT changes nothing");

    server.stop().await;
    let server = TestServer::start(load_config(dir.path(), toml)).await;
    let (status, restarted) = server.get_json("/api/v1/merge").await;
    assert_eq!(status, 200, "{restarted}");
    assert_eq!(rules_of(&restarted), expected, "{restarted}");

    // An empty list removes the API rules; the file's stay.
    let (status, cleared) = put(&server, "/api/v1/merge", &json!({ "rules": [] })).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(rules_of(&cleared), [file_rule], "{cleared}");
}

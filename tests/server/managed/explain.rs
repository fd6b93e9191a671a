//! `GET /api/v1/services/{name}/explain`: for each instance any source reports under
//! that name, whether clients get it and, when not, why: `merged` into a preferred
//! source's report of the same endpoint, `lower_priority` under failover, `excluded` by
//! the source's include/exclude, `renamed` by its `service_rename`, `stale_dropped` after
//! `max_stale`. A name nobody reports is 404.

use serde_json::{json, Value};

use crate::managed::harness::{
    assert_problem, create, etcd_doc, explain, explained, explained_source, poll, put,
    wait_instances, with, RECONNECT,
};
use crate::sources::{addresses, start_server, wait_addresses, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

/// `explain` of `name`, which must answer 200 for the given service.
async fn explain_ok(server: &TestServer, name: &str) -> Value {
    let (status, reply) = explain(server, name).await;
    assert_eq!(status, 200, "explain {name}: {reply}");
    assert_eq!(reply["service"], name, "{reply}");
    assert_eq!(reply["namespace"], "public", "{reply}");
    assert_eq!(reply["group"], "DEFAULT", "{reply}");
    reply
}

/// Two etcd sources on one etcd: `etcd-hi` (priority 10, prefix `/hi/`) and `etcd-lo`
/// (priority 1, prefix `/lo/`), made through the API.
async fn high_and_low(server: &TestServer, etcd: &EtcdServer) {
    for (id, prefix, priority) in [("etcd-hi", "/hi/", 10), ("etcd-lo", "/lo/", 1)] {
        let doc = with(
            etcd_doc(id, &etcd.endpoint(), prefix),
            json!({ "priority": priority }),
        );
        create(server, &doc).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_under_union_serves_the_preferred_report_and_marks_the_other_merged() {
    let etcd = EtcdServer::start().await;
    etcd.put("/hi/orders/h1", "10.12.0.1:80").await;
    etcd.put("/lo/orders/l1", "10.12.0.1:80").await;
    etcd.put("/lo/orders/l2", "10.12.0.2:80").await;
    let (server, _dir) = start_server("").await;
    high_and_low(&server, &etcd).await;
    wait_instances(
        &server,
        "orders",
        "10.12.0.1 from both, 10.12.0.2",
        |list| {
            list.len() == 2
                && list
                    .iter()
                    .any(|i| i["sources"] == json!(["etcd-hi", "etcd-lo"]))
        },
    )
    .await;

    let reply = explain_ok(&server, "orders").await;
    assert_eq!(reply["policy"], "union", "{reply}");
    assert!(reply["rule"].is_null(), "{reply}");
    assert_eq!(reply["served"], 2, "{reply}");
    let hi = explained_source(&reply, "etcd-hi");
    assert_eq!(hi["selected"], true, "{reply}");
    assert_eq!(hi["priority"], 10, "{reply}");
    assert_eq!(hi["reported"], 1, "{reply}");
    assert_eq!(hi["stale"], false, "{reply}");
    let lo = explained_source(&reply, "etcd-lo");
    assert_eq!(lo["selected"], true, "l2 is served: {reply}");
    assert_eq!(lo["reported"], 2, "{reply}");

    let winner = explained(&reply, "etcd-hi", "h1");
    assert_eq!(winner["served"], true, "{reply}");
    assert!(winner["reason"].is_null(), "{reply}");
    assert_eq!(winner["address"], "10.12.0.1:80", "{reply}");
    let duplicate = explained(&reply, "etcd-lo", "l1");
    assert_eq!(duplicate["served"], false, "{reply}");
    assert_eq!(duplicate["reason"], "merged", "{reply}");
    assert_eq!(
        duplicate["merged_into"],
        json!({ "source": "etcd-hi", "id": "h1" }),
        "{reply}"
    );
    let alone = explained(&reply, "etcd-lo", "l2");
    assert_eq!(alone["served"], true, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_under_failover_marks_the_other_source_lower_priority() {
    let etcd = EtcdServer::start().await;
    etcd.put("/hi/pay-api/h1", "10.12.1.1:80").await;
    etcd.put("/lo/pay-api/l1", "10.12.1.2:80").await;
    let (server, _dir) = start_server("").await;
    let rules = json!({ "rules": [{ "services": ["pay-*"], "policy": "failover" }] });
    let (status, merge) = put(&server, "/api/v1/merge", &rules).await;
    assert_eq!(status, 200, "{merge}");
    high_and_low(&server, &etcd).await;
    wait_source_state(&server, "etcd-lo", "ready").await;
    wait_addresses(&server, "pay-api", &["10.12.1.1:80"]).await;

    let reply = explain_ok(&server, "pay-api").await;
    assert_eq!(reply["policy"], "failover", "{reply}");
    assert_eq!(reply["rule"], "pay-*", "{reply}");
    assert_eq!(reply["served"], 1, "{reply}");
    assert_eq!(
        explained_source(&reply, "etcd-hi")["selected"],
        true,
        "{reply}"
    );
    assert_eq!(
        explained_source(&reply, "etcd-lo")["selected"],
        false,
        "{reply}"
    );
    assert_eq!(
        explained(&reply, "etcd-hi", "h1")["served"],
        true,
        "{reply}"
    );
    let lower = explained(&reply, "etcd-lo", "l1");
    assert_eq!(lower["served"], false, "{reply}");
    assert_eq!(lower["reason"], "lower_priority", "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_excluded_and_renamed_services() {
    let etcd = EtcdServer::start().await;
    etcd.put("/m/orders/o1", "10.12.2.1:80").await;
    etcd.put("/m/web/w1", "10.12.2.2:80").await;
    etcd.put("/m/internal-db/i1", "10.12.2.3:5432").await;
    etcd.put("/m/other/x1", "10.12.2.4:80").await;
    let (server, _dir) = start_server("").await;
    let mapping = json!({
        "include": ["orders", "web", "internal-*"],
        "exclude": ["internal-*"],
        "service_rename": { "orders": "orders-svc" },
        "service_prefix": "m-",
    });
    let doc = with(etcd_doc("etcd-m", &etcd.endpoint(), "/m/"), mapping);
    create(&server, &doc).await;
    wait_source_state(&server, "etcd-m", "ready").await;
    // Rename wins over the prefix; the prefix applies to the rest.
    wait_addresses(&server, "orders-svc", &["10.12.2.1:80"]).await;
    wait_addresses(&server, "m-web", &["10.12.2.2:80"]).await;
    let never = [
        "orders",
        "m-orders",
        "m-orders-svc",
        "internal-db",
        "m-internal-db",
    ];
    for name in never.into_iter().chain(["other", "m-other", "web"]) {
        assert_eq!(
            addresses(&server, name).await,
            Vec::<String>::new(),
            "{name}"
        );
    }

    // Excluded by `exclude` (although included) and by not being included.
    for (name, id) in [("internal-db", "i1"), ("other", "x1")] {
        let reply = explain_ok(&server, name).await;
        assert_eq!(reply["served"], 0, "{reply}");
        let entry = explained(&reply, "etcd-m", id);
        assert_eq!(entry["served"], false, "{reply}");
        assert_eq!(entry["reason"], "excluded", "{reply}");
    }

    let reply = explain_ok(&server, "orders").await;
    assert_eq!(reply["served"], 0, "{reply}");
    let entry = explained(&reply, "etcd-m", "o1");
    assert_eq!(entry["served"], false, "{reply}");
    assert_eq!(entry["reason"], "renamed", "{reply}");
    let detail = entry["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("orders-svc"),
        "the detail names it: {reply}"
    );

    let reply = explain_ok(&server, "orders-svc").await;
    assert_eq!(reply["served"], 1, "{reply}");
    assert_eq!(
        explained_source(&reply, "etcd-m")["selected"],
        true,
        "{reply}"
    );
    let entry = explained(&reply, "etcd-m", "o1");
    assert_eq!(entry["served"], true, "{reply}");
    assert!(entry["reason"].is_null(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_stale_dropped_once_max_stale_has_passed() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/st/web/w1", "10.12.3.1:80").await;
    let (server, _dir) = start_server("").await;
    let doc = with(
        etcd_doc("etcd-st", &etcd.endpoint(), "/st/"),
        json!({ "max_stale": "1s", "empty_confirm": "1s", "timeout": "1s" }),
    );
    create(&server, &doc).await;
    wait_addresses(&server, "web", &["10.12.3.1:80"]).await;

    etcd.kill_9();
    wait_addresses(&server, "web", &[]).await;
    let reply = poll("explain to say stale_dropped", RECONNECT, || async {
        let (status, reply) = explain(&server, "web").await;
        let entry = reply["instances"]
            .as_array()
            .and_then(|list| list.iter().find(|i| i["id"] == "w1").cloned());
        match (status.as_u16(), entry) {
            (200, Some(entry)) if entry["reason"] == "stale_dropped" => Ok(reply),
            _ => Err(format!("{status} {reply}")),
        }
    })
    .await;
    assert_eq!(reply["served"], 0, "{reply}");
    let entry = explained(&reply, "etcd-st", "w1");
    assert_eq!(entry["served"], false, "{reply}");
    let source = explained_source(&reply, "etcd-st");
    assert_eq!(source["stale"], true, "{reply}");
    assert!(source["stale_since"].is_string(), "{reply}");
    assert_eq!(source["selected"], false, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_of_a_service_nobody_reports_is_404_service_not_found() {
    let etcd = EtcdServer::start().await;
    etcd.put("/n/web/w1", "10.12.4.1:80").await;
    let (server, _dir) = start_server("").await;
    create(&server, &etcd_doc("etcd-n", &etcd.endpoint(), "/n/")).await;
    wait_addresses(&server, "web", &["10.12.4.1:80"]).await;

    let reply = explain(&server, "no-such-service").await;
    assert_problem("explain", &reply, 404, "service_not_found", None);
    explain_ok(&server, "web").await;
}

//! `POST /api/v1/syncs:plan` is the job's own planner: before the job exists it lists the
//! writes the job then makes (no more, no fewer, into exactly those endpoints); once it
//! exists its ledger is used, so a plan of a job at rest is empty and a deleted origin
//! instance plans exactly one delete.
//!
//! Also the helpers the other sync tests of this folder share: job calls, status waits
//! and the Nacos target.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::common::{
    at_rest, create_sync, endpoints_of, plan_of, planned, served, sync_status, wait_sync,
};
use crate::managed::harness::{etcd_table, post_empty};
use crate::sources::{start_server, wait_fresh, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

/// `(service, host, port)` of every instance the native registry reports, as a set.
async fn native_endpoints(server: &TestServer) -> BTreeSet<(String, String, u64)> {
    let (status, all) = server.get_json("/api/v1/admin/all").await;
    assert_eq!(status, 200, "GET /api/v1/admin/all: {all}");
    let services = all.as_object().cloned().unwrap_or_default();
    let native: Vec<Value> = services
        .into_values()
        .flat_map(|list| list.as_array().cloned().unwrap_or_default())
        .filter(|i| {
            i["sources"]
                .as_array()
                .is_some_and(|s| s.contains(&json!("native")))
        })
        .collect();
    endpoints_of(&native)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_lists_exactly_what_the_job_then_writes_and_deletes() {
    let etcd = EtcdServer::start().await;
    let source = [
        ("/p/web/w1", "10.23.0.1:80"),
        ("/p/web/w2", "10.23.0.2:80"),
        ("/p/web/w3", "10.23.0.3:80"),
        ("/p/api/a1", "10.23.1.1:8080"),
        ("/p/api/a2", "10.23.1.2:8080"),
    ];
    for (key, address) in source {
        etcd.put(key, address).await;
    }
    let toml = etcd_table("etcd-p", &etcd.endpoint(), "/p/", "");
    let (server, _dir) = start_server(&toml).await;
    wait_source_state(&server, "etcd-p", "ready").await;
    let all_five = [
        ("web", "10.23.0.1:80"),
        ("web", "10.23.0.2:80"),
        ("web", "10.23.0.3:80"),
        ("api", "10.23.1.1:8080"),
        ("api", "10.23.1.2:8080"),
    ];
    wait_fresh(&server, "etcd-p", &served(&all_five)).await;
    let definition = json!({
        "id": "plan-job",
        "from": ["etcd-p"],
        "to": "native",
        "debounce": "100ms",
    });

    // Before the job exists: five new writes, nothing else, and nothing written.
    let first = plan_of(&server, &definition).await;
    let writes = planned(&first, "writes");
    assert_eq!(writes.len(), 5, "{first}");
    for write in writes {
        assert_eq!(write["reason"], "new", "{write}");
        assert_eq!(write["origin"], "etcd-p", "{write}");
        assert_eq!(write["metadata"]["switchboard.sync"], "plan-job", "{write}");
        assert_eq!(write["metadata"]["switchboard.origin"], "etcd-p", "{write}");
    }
    assert!(planned(&first, "deletes").is_empty(), "{first}");
    assert!(planned(&first, "held_deletes").is_empty(), "{first}");
    assert_eq!(first["foreign"], 0, "{first}");
    let planned_set = endpoints_of(writes);
    let expected: BTreeSet<(String, String, u64)> = all_five
        .iter()
        .map(|(service, address)| {
            let (host, port) = address.split_once(':').unwrap();
            (
                (*service).to_owned(),
                host.to_owned(),
                port.parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(planned_set, expected, "{first}");
    assert_eq!(
        native_endpoints(&server).await,
        BTreeSet::new(),
        "a plan writes nothing"
    );

    // The job performs exactly the plan.
    create_sync(&server, &definition).await;
    let done = wait_sync(&server, "plan-job", "all five written", |s| {
        s["synced"] == 5 && at_rest(s)
    })
    .await;
    assert_eq!(done["writes"], writes.len(), "{done}");
    assert_eq!(done["deletes"], 0, "{done}");
    assert_eq!(done["errors"], 0, "{done}");
    assert_eq!(native_endpoints(&server).await, planned_set, "the target");

    // With the job's ledger, a plan of a job at rest is empty.
    let again = plan_of(&server, &definition).await;
    assert!(planned(&again, "writes").is_empty(), "{again}");
    assert!(planned(&again, "deletes").is_empty(), "{again}");
    assert!(planned(&again, "held_deletes").is_empty(), "{again}");

    // Paused, so the plan is read before the job acts on the delete. Counters run for
    // the whole process, across pauses.
    let writes_before = sync_status(&server, "plan-job").await["writes"].clone();
    let (status, view) = post_empty(&server, "/api/v1/syncs/plan-job/pause").await;
    assert_eq!(status, 200, "{view}");
    etcd.delete("/p/web/w3").await;
    let remaining: Vec<(&str, &str)> = all_five
        .iter()
        .filter(|(_, address)| *address != "10.23.0.3:80")
        .copied()
        .collect();
    wait_fresh(&server, "etcd-p", &served(&remaining)).await;
    let shrunk = plan_of(&server, &definition).await;
    assert!(planned(&shrunk, "writes").is_empty(), "{shrunk}");
    assert!(planned(&shrunk, "held_deletes").is_empty(), "{shrunk}");
    let deletes = planned(&shrunk, "deletes");
    let gone: BTreeSet<_> = [("web".to_owned(), "10.23.0.3".to_owned(), 80)].into();
    assert_eq!(endpoints_of(deletes), gone, "{shrunk}");
    assert_eq!(deletes[0]["origin"], "etcd-p", "{shrunk}");

    let (status, view) = post_empty(&server, "/api/v1/syncs/plan-job/resume").await;
    assert_eq!(status, 200, "{view}");
    let after = wait_sync(&server, "plan-job", "the planned delete made", |s| {
        s["deletes"] == 1 && s["synced"] == 4 && at_rest(s)
    })
    .await;
    assert_eq!(
        after["writes"], writes_before,
        "nothing written again: {after}"
    );
    let left: BTreeSet<_> = planned_set.difference(&gone).cloned().collect();
    assert_eq!(native_endpoints(&server).await, left, "the target");
}

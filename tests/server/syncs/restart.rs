//! A job's ledger is kept in the data dir: a Switchboard stopped in the middle of a sync
//! and started again on the same data dir writes only what it had not written, so every
//! instance reaches the target exactly once; started again with nothing changed, it
//! writes nothing at all.

use serde_json::{json, Value};

use super::common::{at_rest, create_sync, nacos_table, plan_of, planned, wait_sync};
use crate::managed::harness::etcd_table;
use crate::sources::{load_config, wait_fresh, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::rnacos::{Registration, RnacosServer, DEFAULT_GROUP, PUBLIC};
use crate::support::TestServer;

const SERVICES: u8 = 5;
const PER_SERVICE: u8 = 10;
const TOTAL: u64 = SERVICES as u64 * PER_SERVICE as u64;

/// `(service, address)` of every instance in etcd, sorted.
fn source_instances() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = (0..SERVICES)
        .flat_map(|s| {
            (1..=PER_SERVICE).map(move |i| (format!("svc-{s}"), format!("10.24.{s}.{i}:8080")))
        })
        .collect();
    all.sort();
    all
}

/// Every `(service, ip, port)` rnacos holds in the copied services, duplicates kept,
/// with the `switchboard.sync` of each.
async fn nacos_copies(nacos: &RnacosServer) -> Vec<(String, String, u64, Value)> {
    let mut copies = Vec::new();
    for s in 0..SERVICES {
        let service = format!("svc-{s}");
        for host in nacos.hosts(PUBLIC, DEFAULT_GROUP, &service).await {
            let ip = host["ip"].as_str().unwrap_or_default().to_owned();
            let port = host["port"].as_u64().unwrap_or(0);
            let sync = host["metadata"]["switchboard.sync"].clone();
            copies.push((service.clone(), ip, port, sync));
        }
    }
    copies.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    copies
}

/// Asserts rnacos holds each source instance exactly once, written by job `bulk`.
async fn assert_each_copied_once(nacos: &RnacosServer) {
    let copies = nacos_copies(nacos).await;
    let mut endpoints: Vec<(String, String)> = copies
        .iter()
        .map(|(service, ip, port, _)| (service.clone(), format!("{ip}:{port}")))
        .collect();
    endpoints.sort();
    assert_eq!(endpoints, source_instances(), "rnacos's copies");
    let by_others: Vec<_> = copies.iter().filter(|(.., sync)| sync != "bulk").collect();
    assert!(
        by_others.is_empty(),
        "not written by the job: {by_others:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_sync_writes_every_instance_exactly_once() {
    let etcd = EtcdServer::start().await;
    for (service, address) in source_instances() {
        let id = address.replace([':', '.'], "-");
        etcd.put(&format!("/r/{service}/{id}"), &address).await;
    }
    let nacos = RnacosServer::start().await;
    let toml = etcd_table("etcd-r", &etcd.endpoint(), "/r/", "")
        + &nacos_table("nacos-t", &nacos.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(load_config(dir.path(), &toml)).await;
    wait_source_state(&server, "etcd-r", "ready").await;
    wait_source_state(&server, "nacos-t", "ready").await;
    wait_fresh(&server, "etcd-r", &source_instances()).await;
    // 10 writes a second: the 50 take 5 s, long enough to stop in the middle even when
    // a loaded machine (the whole suite at once) makes the stop slow.
    let definition = json!({
        "id": "bulk",
        "from": ["etcd-r"],
        "to": "nacos-t",
        "services": "svc-*",
        "rate_limit": 10,
        "debounce": "100ms",
    });
    create_sync(&server, &definition).await;
    let seen = wait_sync(&server, "bulk", "some copies written", |s| {
        s["writes"].as_u64() >= Some(3)
    })
    .await;
    assert!(
        seen["writes"].as_u64() < Some(TOTAL),
        "not stopped mid-sync: {seen}"
    );
    server.stop().await;

    // rnacos applies a write after answering it; a write of ours queued behind the
    // job's returns once everything before it is applied.
    nacos
        .register(&Registration::new("settled", "10.24.255.1", 1))
        .await;
    let before = nacos_copies(&nacos).await.len() as u64;
    let seen_writes = seen["writes"].as_u64().unwrap();
    assert!(
        (seen_writes..TOTAL).contains(&before),
        "stopped mid-sync: {before} copies in rnacos, {seen}"
    );

    let server = TestServer::start(load_config(dir.path(), &toml)).await;
    let done = wait_sync(&server, "bulk", "every instance synced", |s| {
        s["synced"] == TOTAL && at_rest(s)
    })
    .await;
    let after = done["writes"].as_u64().unwrap();
    assert_eq!(
        before + after,
        TOTAL,
        "{before} written before the stop, {after} after the restart: {done}"
    );
    assert_eq!(done["errors"], 0, "{done}");
    assert_eq!(done["deletes"], 0, "{done}");
    assert_each_copied_once(&nacos).await;

    // Nothing changed: a restart writes nothing.
    server.stop().await;
    let server = TestServer::start(load_config(dir.path(), &toml)).await;
    wait_source_state(&server, "etcd-r", "ready").await;
    wait_fresh(&server, "etcd-r", &source_instances()).await;
    let idle = wait_sync(&server, "bulk", "a pass after the restart", |s| {
        s["synced"] == TOTAL && at_rest(s)
    })
    .await;
    assert_eq!(idle["writes"], 0, "{idle}");
    assert_eq!(idle["deletes"], 0, "{idle}");
    assert_eq!(idle["errors"], 0, "{idle}");
    let plan = plan_of(&server, &definition).await;
    assert!(planned(&plan, "writes").is_empty(), "{plan}");
    assert!(planned(&plan, "deletes").is_empty(), "{plan}");
    assert_each_copied_once(&nacos).await;
}

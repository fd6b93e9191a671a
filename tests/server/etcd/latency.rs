//! Changes in etcd reach `GET /api/v1/services/{name}/instances` within one second: a
//! put, an update, a delete and a lease expiring. Each is timed from the moment etcd
//! holds the change (the write returned; for a lease, etcd no longer has the key) to the
//! moment the API shows it.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::etcd::harness::{etcd_source, start_server, wait_addresses, wait_state};
use crate::support::etcd::EtcdServer;
use crate::support::{wait_until, TestServer};

const BUDGET: Duration = Duration::from_secs(1);

fn assert_within_budget(what: &str, took: Duration) {
    assert!(
        took < BUDGET,
        "{what} took {took:?}, over the budget of {BUDGET:?}"
    );
}

/// Seed 000's value for an instance of `svc`.
fn value(id: &str, address: &str, weight: u32) -> String {
    json!({"id": id, "name": "svc", "address": address, "protocol": "http", "weight": weight, "status": "active"})
        .to_string()
}

async fn weight_of(server: &TestServer, id: &str) -> Option<u64> {
    let (_, list) = server.get_json("/api/v1/services/svc/instances").await;
    let list = list.as_array().cloned().unwrap_or_default();
    list.iter().find(|i| i["id"] == id)?["weight"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_updates_deletes_and_lease_expiry_show_within_a_second() {
    let etcd = EtcdServer::start().await;
    // A second instance keeps the service non-empty, so no emptying guard is involved.
    etcd.put("/services/svc/keep", &value("keep", "10.0.0.1:80", 100))
        .await;
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", "")).await;
    wait_state(&server, "ready").await;
    wait_addresses(&server, "svc", &["10.0.0.1:80"]).await;

    etcd.put("/services/svc/a", &value("a", "10.0.0.2:80", 100))
        .await;
    let put = wait_addresses(&server, "svc", &["10.0.0.1:80", "10.0.0.2:80"]).await;

    etcd.put("/services/svc/a", &value("a", "10.0.0.2:80", 7))
        .await;
    let started = Instant::now();
    wait_until("the new weight", crate::etcd::harness::SLOW, || async {
        (weight_of(&server, "a").await == Some(7)).then_some(())
    })
    .await;
    let update = started.elapsed();

    etcd.put("/services/svc/a", &value("a", "10.0.0.3:80", 7))
        .await;
    let moved = wait_addresses(&server, "svc", &["10.0.0.1:80", "10.0.0.3:80"]).await;

    etcd.delete("/services/svc/a").await;
    let delete = wait_addresses(&server, "svc", &["10.0.0.1:80"]).await;

    // Seed 004 registers under a lease; the process dies and the lease runs out.
    let lease = etcd.grant_lease(2).await;
    let key = "/services/svc/leased";
    etcd.put_with_lease(key, &value("leased", "10.0.0.4:80", 100), lease)
        .await;
    wait_addresses(&server, "svc", &["10.0.0.1:80", "10.0.0.4:80"]).await;
    wait_until(
        "etcd to expire the lease",
        Duration::from_secs(10),
        || async { (!etcd.exists(key).await).then_some(()) },
    )
    .await;
    let expiry = wait_addresses(&server, "svc", &["10.0.0.1:80"]).await;

    println!(
        "etcd -> API: put {put:?}, update {update:?}, move {moved:?}, delete {delete:?}, \
         lease expiry {expiry:?}"
    );
    assert_within_budget("a put", put);
    assert_within_budget("an update", update);
    assert_within_budget("an address change", moved);
    assert_within_budget("a delete", delete);
    assert_within_budget("a lease expiry", expiry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_emptied_in_etcd_is_emptied_after_empty_confirm() {
    let etcd = EtcdServer::start().await;
    etcd.put("/services/lonely/only", "10.0.0.1:80").await;
    let extra = "empty_confirm = \"1s\"";
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", extra)).await;
    wait_addresses(&server, "lonely", &["10.0.0.1:80"]).await;

    etcd.delete("/services/lonely/only").await;
    // Held for confirmation first: a backend that briefly answers "nothing" must not wipe
    // the service out at once; after `empty_confirm` the emptying is applied.
    let emptied = wait_addresses(&server, "lonely", &[]).await;
    println!("emptied after {emptied:?} (empty_confirm 1s)");
    assert!(
        emptied >= Duration::from_millis(800),
        "emptied after {emptied:?}, before empty_confirm (1s) ran out"
    );
    assert!(
        emptied < Duration::from_secs(1) + BUDGET,
        "held for {emptied:?}"
    );
}

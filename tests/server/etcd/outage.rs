//! etcd going away and coming back: Switchboard keeps serving the last view (marked
//! stale) while etcd is down, and afterwards converges to exactly what etcd holds, also
//! when etcd changed meanwhile and its history was compacted away.

use std::time::Duration;

use tokio::time::Instant;

use crate::etcd::harness::{
    assert_status_shape, etcd_source, instances, rfc3339, source_status, start_server,
    wait_addresses, wait_converged, wait_state, SOURCE,
};
use crate::etcd::proxy::{Mode, Proxy};
use crate::support::etcd::EtcdServer;
use crate::support::{wait_until, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_etcd_is_down_and_its_instances_are_served_stale() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/services/orders/o1", "10.0.1.1:80").await;
    etcd.put("/services/orders/o2", "10.0.1.2:80").await;
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", "")).await;
    wait_addresses(&server, "orders", &["10.0.1.1:80", "10.0.1.2:80"]).await;
    let ready = wait_state(&server, "ready").await;
    assert_status_shape(&ready);
    assert_eq!(ready["type"], "etcd");
    assert_eq!(ready["instances"], 2);
    assert_eq!(ready["services"], 1);
    assert!(ready["stale_since"].is_null(), "{ready}");
    rfc3339(&ready["last_sync"], "last_sync");

    etcd.kill_9();
    let killed = Instant::now();
    let down = wait_state(&server, "down").await;
    assert_status_shape(&down);
    println!("etcd killed -> source down after {:?}", killed.elapsed());
    let error = &down["last_error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{down}"
    );
    rfc3339(&error["time"], "last_error.time");
    rfc3339(&down["stale_since"], "stale_since");

    // Fail static: the last view is still served, marked stale, with honest 200s.
    let served = instances(&server, "orders").await;
    assert_eq!(served.len(), 2, "{served:?}");
    for instance in &served {
        assert_eq!(instance["stale"], true, "{instance}");
        rfc3339(&instance["stale_since"], "stale_since");
    }
    let (status, _) = server.get_json("/api/v1/services").await;
    assert_eq!(status, 200);
    let (status, listed) = server.get_json("/api/v1/sources").await;
    assert_eq!(status, 200);
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert!(
        listed
            .iter()
            .any(|s| s["id"] == SOURCE && s["state"] == "down"),
        "{listed:?}"
    );

    etcd.restart().await;
    let restarted = Instant::now();
    let ready = wait_state(&server, "ready").await;
    println!(
        "etcd restarted -> source ready after {:?}",
        restarted.elapsed()
    );
    assert!(ready["stale_since"].is_null(), "{ready}");
    assert!(ready["reconnects"].as_u64().unwrap_or(0) >= 1, "{ready}");
    wait_until(
        "the instances to be fresh again",
        crate::etcd::harness::SLOW,
        || async {
            let served = instances(&server, "orders").await;
            let fresh = served.len() == 2 && served.iter().all(|i| i["stale"] == false);
            fresh.then_some(())
        },
    )
    .await;
}

/// Writes the starting content: three services under the plain layout.
async fn seed(etcd: &EtcdServer) {
    for (key, address) in [
        ("alpha/a1", "10.1.0.1:80"),
        ("alpha/a2", "10.1.0.2:80"),
        ("beta/b1", "10.2.0.1:80"),
        ("gamma/g1", "10.3.0.1:80"),
    ] {
        etcd.put(&format!("/services/{key}"), address).await;
    }
}

/// Changes every kind of thing: a delete, a new instance, a moved instance, a service
/// emptied and a new service.
async fn change_everything(etcd: &EtcdServer) {
    etcd.delete("/services/alpha/a2").await;
    etcd.put("/services/alpha/a3", "10.1.0.3:80").await;
    etcd.put("/services/beta/b1", "10.2.0.1:81").await;
    etcd.delete("/services/gamma/g1").await;
    etcd.put("/services/delta/d1", "10.4.0.1:80").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_switchboard_converges_to_exactly_etcds_content() {
    let mut etcd = EtcdServer::start().await;
    let (proxy, server, _dir) = seeded_behind_proxy(&etcd).await;

    etcd.kill_9();
    wait_state(&server, "down").await;
    // etcd comes back, but Switchboard cannot reach it until the changes are made.
    proxy.set(Mode::Cut);
    etcd.restart().await;
    change_everything(&etcd).await;
    proxy.set(Mode::Forward);

    let took = wait_converged(&server, &etcd, "/services/").await;
    println!("converged {took:?} after etcd became reachable again");
    wait_state(&server, "ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_racing_the_reconnect_converge_too() {
    let mut etcd = EtcdServer::start().await;
    seed(&etcd).await;
    let extra = "empty_confirm = \"1s\"";
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", extra)).await;
    wait_converged(&server, &etcd, "/services/").await;

    etcd.kill_9();
    wait_state(&server, "down").await;
    // Whether Switchboard re-lists before, during or after these is up to its backoff.
    etcd.restart().await;
    change_everything(&etcd).await;
    let took = wait_converged(&server, &etcd, "/services/").await;
    println!("converged {took:?} after changes racing the reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_compacted_during_a_partition_is_recovered_by_a_full_relist() {
    let etcd = EtcdServer::start().await;
    let (proxy, server, _dir) = seeded_behind_proxy(&etcd).await;
    let before = wait_state(&server, "ready").await;

    // etcd stays up; only Switchboard's connection is cut.
    proxy.set(Mode::Cut);
    wait_until(
        "the source to notice the partition",
        crate::etcd::harness::SLOW,
        || async {
            let status = source_status(&server, SOURCE).await;
            (status["state"] != "ready").then_some(())
        },
    )
    .await;
    change_everything(&etcd).await;
    for i in 0..40 {
        etcd.put(&format!("/services/bulk/i{i}"), &format!("10.9.0.{i}:80"))
            .await;
    }
    for i in (0..40).step_by(3) {
        etcd.delete(&format!("/services/bulk/i{i}")).await;
    }
    // Every revision Switchboard saw is gone from etcd's history.
    etcd.compact(etcd.revision().await).await;
    proxy.set(Mode::Forward);

    let took = wait_converged(&server, &etcd, "/services/").await;
    println!("converged {took:?} after the partition healed");
    let after = wait_state(&server, "ready").await;
    let reconnects = |s: &serde_json::Value| s["reconnects"].as_u64().unwrap_or(0);
    assert!(
        reconnects(&after) > reconnects(&before),
        "{before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_keeps_serving_until_max_stale() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/services/short/s1", "10.5.0.1:80").await;
    let extra = "max_stale = \"2s\"";
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", extra)).await;
    wait_addresses(&server, "short", &["10.5.0.1:80"]).await;

    etcd.kill_9();
    let down = wait_state(&server, "down").await;
    let stale_since = rfc3339(&down["stale_since"], "stale_since");
    wait_addresses(&server, "short", &[]).await;
    let kept = chrono::Utc::now().signed_duration_since(stale_since);
    println!("stale view dropped {kept:?} after stale_since (max_stale 2s)");
    assert!(
        kept >= chrono::TimeDelta::milliseconds(1900),
        "dropped after only {kept:?}"
    );
    assert!(kept < chrono::TimeDelta::seconds(6), "kept for {kept:?}");
    assert_eq!(source_status(&server, SOURCE).await["state"], "down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_and_healed() {
    let etcd = EtcdServer::start().await;
    let (proxy, server, _dir) = seeded_behind_proxy(&etcd).await;
    wait_state(&server, "ready").await;

    // No RST, no FIN: packets just stop, as when a firewall drops them. Only keepalives
    // (10s ping, 5s timeout) can tell.
    proxy.set(Mode::Hold);
    let frozen = Instant::now();
    change_everything(&etcd).await;
    let noticed = wait_until(
        "the silent partition to be noticed",
        Duration::from_secs(40),
        || async {
            let status = source_status(&server, SOURCE).await;
            (status["state"] != "ready").then_some(status)
        },
    )
    .await;
    println!(
        "silent partition noticed after {:?} (state {})",
        frozen.elapsed(),
        noticed["state"]
    );
    let stale = instances(&server, "alpha").await;
    assert!(stale.iter().all(|i| i["stale"] == true), "{stale:?}");

    proxy.set(Mode::Forward);
    let took = wait_converged(&server, &etcd, "/services/").await;
    println!("converged {took:?} after the silent partition healed");
}

/// Seeds etcd and starts Switchboard reaching it through a proxy the test can cut, with a
/// short `empty_confirm`; returns once Switchboard shows exactly etcd's content.
async fn seeded_behind_proxy(etcd: &EtcdServer) -> (Proxy, TestServer, tempfile::TempDir) {
    let proxy = Proxy::start(etcd.client_port(), Mode::Forward).await;
    seed(etcd).await;
    let extra = "empty_confirm = \"1s\"";
    let (server, dir) = start_server(&etcd_source(&[proxy.endpoint()], "/services/", extra)).await;
    wait_converged(&server, etcd, "/services/").await;
    (proxy, server, dir)
}

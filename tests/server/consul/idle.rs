//! An idle Consul sees blocking queries, not polling: over 30 s without a change, each of
//! the connector's queries (one on the service list, one per service) is re-armed only
//! when its `wait` runs out, and a change after that still arrives at once.

use std::time::Duration;

use consul_double::ConsulDouble;

use crate::consul::harness::{consul_source, service, wait_state};
use crate::sources::{start_server, wait_addresses};

/// The window the issue names.
const IDLE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_consul_sees_few_requests() {
    let consul = ConsulDouble::start().await;
    for name in ["web", "api", "db"] {
        consul
            .register(service(name, &format!("{name}-1"), "10.0.0.1", 80))
            .await;
    }
    // A 10 s wait re-arms each query about three times in the window.
    let toml = consul_source(&[consul.url()], "wait = \"10s\"");
    let (server, _dir) = start_server(&toml).await;
    wait_state(&server, "ready").await;
    wait_addresses(&server, "db", &["10.0.0.1:80"]).await;

    let before = consul.requests();
    // Not a wait for a condition: the quiet window is what is measured.
    tokio::time::sleep(IDLE).await;
    let during = consul.requests() - before;

    // Four queries (the list and three services), each at most once per `wait`.
    let loops = 4;
    let bound = loops * (IDLE.as_secs() / 10 + 1);
    println!("{during} requests to an idle Consul in {IDLE:?} (bound {bound})");
    assert!(
        during <= bound,
        "{during} requests in {IDLE:?} of idleness; blocking queries allow at most {bound}"
    );

    consul
        .register(service("web", "web-2", "10.0.0.2", 80))
        .await;
    wait_addresses(&server, "web", &["10.0.0.1:80", "10.0.0.2:80"]).await;
}

//! Changes in Consul reach `GET /api/v1/services/{name}/instances` within one second:
//! a registration, check status changes, a move, a deregistration and a new service. Each
//! is timed from the moment the double accepted the write to the moment the API shows it.
//! Also: how Consul's fields map onto Switchboard's, `only_passing` and `tag_filter`.

use std::time::Duration;

use consul_double::ConsulDouble;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::consul::harness::{consul_source, service, service_with_ttl, wait_state, SOURCE};
use crate::sources::{instances, start_server, wait_addresses, SLOW};
use crate::support::{wait_until, TestServer};

const BUDGET: Duration = Duration::from_secs(1);

/// Waits until instance `id` of `web` satisfies `check`; returns how long that took.
async fn wait_instance(
    server: &TestServer,
    id: &str,
    what: &str,
    check: fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    wait_until(what, SLOW, || async {
        let list = instances(server, "web").await;
        list.iter()
            .find(|i| i["id"] == id)
            .filter(|i| check(i))
            .map(|_| ())
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_health_and_deregistrations_show_within_a_second() {
    let consul = ConsulDouble::start().await;
    // A second instance keeps the service non-empty, so no emptying guard is involved.
    consul
        .register(service("web", "keep", "10.0.0.1", 80))
        .await;
    let (server, _dir) = start_server(&consul_source(&[consul.url()], "")).await;
    wait_state(&server, "ready").await;
    wait_addresses(&server, "web", &["10.0.0.1:80"]).await;

    consul
        .register(service_with_ttl("web", "web-2", "10.0.0.2", 80, "passing"))
        .await;
    let register = wait_addresses(&server, "web", &["10.0.0.1:80", "10.0.0.2:80"]).await;

    consul.check("fail", "service:web-2").await;
    let critical = wait_instance(&server, "web-2", "web-2 unhealthy", |i| {
        i["healthy"] == false
    })
    .await;

    consul.check("warn", "service:web-2").await;
    let warning = wait_instance(&server, "web-2", "web-2 in warning", |i| {
        i["healthy"] == true && i["metadata"]["consul.health"] == "warning"
    })
    .await;

    consul.check("pass", "service:web-2").await;
    let passing = wait_instance(&server, "web-2", "web-2 passing", |i| {
        i["healthy"] == true && i["metadata"].get("consul.health").is_none()
    })
    .await;

    consul
        .register(service_with_ttl("web", "web-2", "10.0.0.3", 81, "passing"))
        .await;
    let moved = wait_addresses(&server, "web", &["10.0.0.1:80", "10.0.0.3:81"]).await;

    consul.deregister("web-2").await;
    let deregister = wait_addresses(&server, "web", &["10.0.0.1:80"]).await;

    consul
        .register(service("api", "api-1", "10.0.1.1", 9000))
        .await;
    let new_service = wait_addresses(&server, "api", &["10.0.1.1:9000"]).await;

    println!(
        "Consul -> API: register {register:?}, critical {critical:?}, warning {warning:?}, \
         passing {passing:?}, move {moved:?}, deregister {deregister:?}, \
         new service {new_service:?}"
    );
    for (what, took) in [
        ("a registration", register),
        ("a failing check", critical),
        ("a warning check", warning),
        ("a passing check", passing),
        ("a re-registration at a new address", moved),
        ("a deregistration", deregister),
        ("a new service", new_service),
    ] {
        assert!(
            took < BUDGET,
            "{what} took {took:?}, over the budget of {BUDGET:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_fields_map_onto_instances() {
    let consul = ConsulDouble::start().await;
    consul
        .register(json!({
            "Name": "web", "ID": "web-1", "Address": "", "Port": 8080,
            "Tags": ["v1", "blue"], "Meta": { "version": "1.4.2", "team": "checkout" },
            "Weights": { "Passing": 25, "Warning": 3 },
            "Check": { "TTL": "10m", "Status": "passing" },
        }))
        .await;
    let toml = consul_source(&[consul.url()], "namespace = \"prod\"\ngroup = \"edge\"");
    let (server, _dir) = start_server(&toml).await;
    let path = "/api/v1/services/web/instances?namespace=prod&group=edge";
    let list = wait_until("web-1 in prod/edge", SLOW, || async {
        let (_, list) = server.get_json(path).await;
        list.as_array().filter(|l| l.len() == 1).cloned()
    })
    .await;
    let instance = &list[0];
    // An empty Service.Address means the node's address.
    assert_eq!(instance["address"], "127.0.0.1:8080", "{instance}");
    assert_eq!(instance["id"], "web-1");
    assert_eq!(instance["tags"], json!(["v1", "blue"]));
    assert_eq!(instance["weight"], 2500, "Weights.Passing 25, x100");
    assert_eq!(instance["version"], "1.4.2");
    assert_eq!(instance["healthy"], true);
    assert_eq!(instance["sources"], json!([SOURCE]));
    let metadata = &instance["metadata"];
    assert_eq!(metadata["team"], "checkout");
    assert_eq!(metadata["consul.node"], "node1");
    assert_eq!(metadata["consul.datacenter"], "dc1");

    // Warning: still served and healthy, weighted by Weights.Warning as Consul's DNS does.
    consul.check("warn", "service:web-1").await;
    wait_until("web-1 weighted for warning", SLOW, || async {
        let (_, list) = server.get_json(path).await;
        let warned = list[0]["weight"] == 300 && list[0]["metadata"]["consul.health"] == "warning";
        (warned && list[0]["healthy"] == true).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_passing_and_tag_filter_choose_what_is_served() {
    let consul = ConsulDouble::start().await;
    for (id, address, status, tag) in [
        ("a", "10.0.0.1", "passing", "blue"),
        ("b", "10.0.0.2", "critical", "blue"),
        ("c", "10.0.0.3", "passing", "green"),
    ] {
        let mut body = service_with_ttl("web", id, address, 80, status);
        body["Tags"] = json!([tag]);
        consul.register(body).await;
    }
    let extra = "only_passing = true\ntag_filter = \"blue\"";
    let (server, _dir) = start_server(&consul_source(&[consul.url()], extra)).await;
    wait_addresses(&server, "web", &["10.0.0.1:80"]).await;

    consul.check("pass", "service:b").await;
    wait_addresses(&server, "web", &["10.0.0.1:80", "10.0.0.2:80"]).await;
    consul.check("warn", "service:a").await;
    wait_addresses(&server, "web", &["10.0.0.2:80"]).await;
}

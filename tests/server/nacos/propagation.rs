//! Changes in rnacos reach `GET /api/v1/services/{name}/instances` within 2 s: a
//! registration, an update, `enabled` turned off and on, health changes (which only a
//! gRPC client can make) and a deregistration, written through the HTTP OpenAPI and
//! through `nacos-sdk`. The source re-reads its service list only every 60 s, and the
//! service is known before the change, so only rnacos's pushes (which it batches for
//! about 0.5 s) can deliver them in time. Also: a new service within one
//! `service_refresh`, and how Nacos's fields map onto Switchboard's.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::nacos::harness::{
    addresses_at, nacos_source, wait_addresses_at, wait_instance, wait_state, Placed, SOURCE,
};
use crate::sources::{start_server, SLOW};
use crate::support::rnacos::{Registration, RnacosServer, DEFAULT_GROUP, PUBLIC};
use crate::support::{wait_until, TestServer};
use switchboard_connectors::DEFAULT_GROUP as SWITCHBOARD_DEFAULT;

/// How long a pushed change may take to show in the API.
const PUSHED: Duration = Duration::from_secs(2);

/// Nacos's default namespace keeps its name in Switchboard; its default group
/// (`DEFAULT_GROUP`) is Switchboard's default group.
const WEB: Placed<'static> = (PUBLIC, SWITCHBOARD_DEFAULT, "web");
const ORDERS: Placed<'static> = (PUBLIC, SWITCHBOARD_DEFAULT, "orders");

/// A source that lists services only once a minute: every change below is a push.
fn pushes_only(nacos: &RnacosServer) -> String {
    nacos_source(&nacos.endpoint(), "service_refresh = \"60s\"")
}

/// The addresses served at `placed` that pass `filter` (`status=active`, ...).
async fn addresses_where(
    server: &TestServer,
    (namespace, group, name): Placed<'_>,
    filter: &str,
) -> Vec<String> {
    let path =
        format!("/api/v1/services/{name}/instances?namespace={namespace}&group={group}&{filter}");
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    crate::sources::sorted_addresses(body.as_array().map(Vec::as_slice).unwrap_or_default())
}

/// Waits until exactly `expected` pass `filter` at `placed`; returns how long that took.
async fn wait_where(
    server: &TestServer,
    placed: Placed<'_>,
    filter: &str,
    expected: &[&str],
) -> Duration {
    let started = Instant::now();
    let what = format!("{placed:?} to serve exactly {expected:?} with {filter}");
    wait_until(&what, SLOW, || async {
        (addresses_where(server, placed, filter).await == expected).then_some(())
    })
    .await;
    started.elapsed()
}

/// Asserts every `(what, how long)` took at most [`PUSHED`].
fn assert_pushed(timings: &[(&str, Duration)]) {
    println!("rnacos -> API: {timings:?}");
    for (what, took) in timings {
        assert!(
            *took <= PUSHED,
            "{what} took {took:?}, over the {PUSHED:?} a push may take"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_openapi_writes_are_pushed_within_two_seconds() {
    let nacos = RnacosServer::start().await;
    // Known before Switchboard starts; it also keeps the service non-empty.
    nacos
        .register(&Registration::new("web", "10.0.0.1", 80))
        .await;
    let (server, _dir) = start_server(&pushes_only(&nacos)).await;
    wait_state(&server, "ready").await;
    wait_addresses_at(&server, WEB, &["10.0.0.1:80"]).await;

    // Each change is timed from just before the write to the moment the API shows it.
    let mut second = Registration::new("web", "10.0.0.2", 80);
    let written = Instant::now();
    nacos.register(&second).await;
    wait_addresses_at(&server, WEB, &["10.0.0.1:80", "10.0.0.2:80"]).await;
    let register = written.elapsed();

    second = second.meta("version", "2.0");
    second.weight = 3.0;
    let written = Instant::now();
    nacos.update(&second).await;
    wait_instance(&server, WEB, "10.0.0.2:80", "weight 300, 2.0", |i| {
        i["weight"] == 300 && i["version"] == "2.0"
    })
    .await;
    let update = written.elapsed();

    // rnacos leaves disabled instances out of what it pushes: it is no longer served
    // as active (gone, or `inactive` were it pushed).
    second.enabled = false;
    let written = Instant::now();
    nacos.update(&second).await;
    wait_where(&server, WEB, "status=active", &["10.0.0.1:80"]).await;
    let disable = written.elapsed();

    second.enabled = true;
    let written = Instant::now();
    nacos.update(&second).await;
    let both = ["10.0.0.1:80", "10.0.0.2:80"];
    wait_where(&server, WEB, "status=active", &both).await;
    let enable = written.elapsed();

    let written = Instant::now();
    nacos.deregister(&second).await;
    wait_addresses_at(&server, WEB, &["10.0.0.1:80"]).await;
    let deregister = written.elapsed();

    assert_pushed(&[
        ("a registration", register),
        ("an update of weight and metadata", update),
        ("enabled=false", disable),
        ("enabled=true", enable),
        ("a deregistration", deregister),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_registrations_and_health_are_pushed_within_two_seconds() {
    let nacos = RnacosServer::start().await;
    // Persistent and healthy: the service is known, and never all unhealthy (rnacos
    // would then report every instance healthy).
    nacos
        .register(&Registration::new("orders", "10.0.1.1", 80))
        .await;
    let (server, _dir) = start_server(&pushes_only(&nacos)).await;
    wait_state(&server, "ready").await;
    wait_addresses_at(&server, ORDERS, &["10.0.1.1:80"]).await;

    let client = nacos.sdk_client(PUBLIC).await;
    let mut app = Registration::new("orders", "10.0.1.2", 80);
    app.ephemeral = true;
    let written = Instant::now();
    app.register_with(&client).await;
    let (instance, _) = wait_instance(&server, ORDERS, "10.0.1.2:80", "served", |i| {
        i["healthy"] == true
    })
    .await;
    let register = written.elapsed();
    assert_eq!(
        instance["metadata"]["nacos.ephemeral"], "true",
        "{instance}"
    );

    // rnacos pushes only healthy instances over gRPC: the unhealthy one is no longer
    // served as healthy (gone, or `healthy: false` were it pushed).
    app.healthy = false;
    let written = Instant::now();
    app.register_with(&client).await;
    wait_where(&server, ORDERS, "healthy=true", &["10.0.1.1:80"]).await;
    let unhealthy = written.elapsed();

    app.healthy = true;
    let written = Instant::now();
    app.register_with(&client).await;
    let both = ["10.0.1.1:80", "10.0.1.2:80"];
    wait_where(&server, ORDERS, "healthy=true", &both).await;
    let healthy = written.elapsed();

    let written = Instant::now();
    app.deregister_with(&client).await;
    wait_addresses_at(&server, ORDERS, &["10.0.1.1:80"]).await;
    let deregister = written.elapsed();

    assert_pushed(&[
        ("an SDK registration", register),
        ("healthy=false", unhealthy),
        ("healthy=true", healthy),
        ("an SDK deregistration", deregister),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_service_appears_within_one_service_refresh() {
    let refresh = Duration::from_secs(3);
    let nacos = RnacosServer::start().await;
    nacos
        .register(&Registration::new("web", "10.0.0.1", 80))
        .await;
    let extra = format!("service_refresh = \"{}s\"", refresh.as_secs());
    let (server, _dir) = start_server(&nacos_source(&nacos.endpoint(), &extra)).await;
    wait_state(&server, "ready").await;
    wait_addresses_at(&server, WEB, &["10.0.0.1:80"]).await;

    let api = (PUBLIC, "payments", "api");
    assert!(addresses_at(&server, api).await.is_empty());
    let written = Instant::now();
    nacos
        .register(&Registration::new("api", "10.0.2.1", 9000).placed(PUBLIC, "payments"))
        .await;
    wait_addresses_at(&server, api, &["10.0.2.1:9000"]).await;
    let took = written.elapsed();
    println!("a new service showed after {took:?} (service_refresh {refresh:?})");
    let slack = Duration::from_millis(1500);
    assert!(
        took <= refresh + slack,
        "a new service took {took:?}, more than one service_refresh ({refresh:?}) + {slack:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_fields_map_onto_instances() {
    let nacos = RnacosServer::start().await;
    let mut pay = Registration::new("pay", "10.0.0.1", 8080)
        .meta("version", "1.4.2")
        .meta("team", "checkout");
    pay.weight = 2.5;
    pay.cluster = "east".to_owned();
    nacos.register(&pay).await;
    let mut heavy = Registration::new("pay", "10.0.0.2", 8080);
    heavy.weight = 500.0;
    nacos.register(&heavy).await;
    let (server, _dir) = start_server(&nacos_source(&nacos.endpoint(), "")).await;

    let placed = (PUBLIC, SWITCHBOARD_DEFAULT, "pay");
    wait_addresses_at(&server, placed, &["10.0.0.1:8080", "10.0.0.2:8080"]).await;
    let list = crate::nacos::harness::instances_at(&server, placed).await;
    let find = |address: &str| -> Value {
        let found = list.iter().find(|i| i["address"] == address);
        found
            .cloned()
            .unwrap_or_else(|| panic!("{address} in {list:?}"))
    };
    let listed = nacos.hosts(PUBLIC, DEFAULT_GROUP, "pay").await;
    let nacos_id = listed
        .iter()
        .find(|h| h["ip"] == "10.0.0.1")
        .map(|h| h["instanceId"].clone())
        .unwrap();

    let instance = find("10.0.0.1:8080");
    assert_eq!(instance["id"], nacos_id, "the Nacos instanceId: {instance}");
    assert_eq!(instance["service"], "pay");
    assert_eq!(instance["namespace"], PUBLIC);
    assert_eq!(
        instance["group"], SWITCHBOARD_DEFAULT,
        "Nacos's DEFAULT_GROUP"
    );
    assert_eq!(
        (instance["host"].clone(), instance["port"].clone()),
        (json!("10.0.0.1"), json!(8080))
    );
    assert_eq!(instance["weight"], 250, "Nacos weight 2.5, x100");
    assert_eq!(instance["healthy"], true);
    assert_eq!(instance["status"], "active");
    assert_eq!(instance["version"], "1.4.2");
    assert_eq!(instance["sources"], json!([SOURCE]));
    let metadata = &instance["metadata"];
    assert_eq!(metadata["team"], "checkout");
    assert_eq!(metadata["version"], "1.4.2");
    assert_eq!(metadata["nacos.cluster"], "east");
    assert_eq!(metadata["nacos.ephemeral"], "false");

    let heavy = find("10.0.0.2:8080");
    assert_eq!(
        heavy["weight"], 10_000,
        "Nacos weight 500 x100, capped: {heavy}"
    );
    assert_eq!(heavy["metadata"]["nacos.cluster"], "DEFAULT");
}

//! The Consul door's reads (`/v1/...`) against a Switchboard in this process: Consul's
//! headers and shapes, blocking queries, `passing`, tags, filters, namespaces and groups,
//! fail static through the door, access control, and the door's own listener. Real
//! clients (py-consul, Prometheus) are in `consul_clients/`.

use std::time::{Duration, Instant};

use consul_double::ConsulDouble;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::consul::harness::{consul_source, service, wait_state, SOURCE};
use crate::sources::{start_server, wait_fresh};
use crate::support::{free_port, test_config, wait_until, TestServer, DEADLINE};

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server.client.get(server.url(path)).send().await.unwrap()
}

fn consul_index(response: &reqwest::Response) -> u64 {
    response.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn json_of(server: &TestServer, path: &str) -> (u64, Value) {
    let response = get(server, path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let index = consul_index(&response);
    (index, response.json().await.unwrap())
}

async fn text_of(server: &TestServer, path: &str) -> (StatusCode, String) {
    let response = get(server, path).await;
    (response.status(), response.text().await.unwrap())
}

async fn started() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    (server, dir)
}

fn ids(entries: &Value, pointer: &str) -> Vec<String> {
    (entries.as_array().unwrap().iter())
        .map(|entry| entry.pointer(pointer).unwrap().as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn reads_carry_consuls_headers_and_shapes_in_one_order() {
    let (server, _dir) = started().await;
    for (id, address) in [
        ("web-b", "10.0.0.2:80"),
        ("web-a", "10.0.0.1:80"),
        ("web-c", "10.0.0.3:81"),
    ] {
        server
            .register(
                json!({"id": id, "service": "web", "address": address, "tags": ["v1"],
                "metadata": {"version": "1.2", "not allowed": "x"}}),
            )
            .await;
    }
    let response = get(&server, "/v1/health/service/web?stale").await;
    let headers = response.headers();
    assert!(consul_index(&response) >= 1);
    assert_eq!(headers["x-consul-knownleader"], "true");
    assert_eq!(headers["x-consul-lastcontact"], "0");
    assert_eq!(headers["x-consul-effective-consistency"], "stale");
    assert_eq!(headers["content-type"], "application/json");
    let health: Value = response.json().await.unwrap();
    let entry = &health[0];
    assert_eq!(entry["Service"]["Service"], "web");
    assert_eq!(entry["Service"]["Port"], 80);
    assert_eq!(entry["Service"]["Meta"]["version"], "1.2");
    assert!(entry["Service"]["Meta"].get("not allowed").is_none());
    assert_eq!(entry["Node"]["Datacenter"], "dc1");
    assert_eq!(entry["Checks"][0]["CheckID"], "serfHealth");
    // Traefik v2 pairs the catalog and health answers by position.
    let (_, catalog) = json_of(&server, "/v1/catalog/service/web").await;
    assert_eq!(ids(&health, "/Service/ID"), ids(&catalog, "/ServiceID"));
    assert_eq!(ids(&catalog, "/ServiceID").len(), 3);
    let (_, services) = json_of(&server, "/v1/catalog/services").await;
    assert_eq!(services, json!({"web": ["v1"]}));
    assert!(server.metric("switchboard_consul_meta_dropped_total").await >= 1.0);
    let (_, unknown) = json_of(&server, "/v1/health/service/nothing-here").await;
    assert_eq!(unknown, json!([]));
}

#[tokio::test]
async fn a_blocking_query_wakes_on_a_change_and_otherwise_waits_out_its_wait() {
    let (server, _dir) = started().await;
    server
        .register(json!({"service": "web", "address": "10.0.0.1:80"}))
        .await;
    let (index, _) = json_of(&server, "/v1/health/service/web").await;

    let asked = Instant::now();
    let (unchanged, body) = json_of(
        &server,
        &format!("/v1/health/service/web?index={index}&wait=1s"),
    )
    .await;
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "answered after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1000 + 1000 / 16 + 500),
        "{waited:?}"
    );
    assert_eq!((unchanged, body.as_array().unwrap().len()), (index, 1));

    let client = server.client.clone();
    let url = server.url(&format!("/v1/health/service/web?index={index}&wait=30s"));
    let parked = tokio::spawn(async move {
        let response = client.get(url).send().await.unwrap();
        (
            consul_index(&response),
            response.json::<Value>().await.unwrap(),
        )
    });
    wait_until("the query to park", DEADLINE, || async {
        (server.metric("switchboard_blocking_queries_waiting").await >= 1.0).then_some(())
    })
    .await;
    server
        .register(json!({"service": "web", "address": "10.0.0.2:80"}))
        .await;
    let (woke, body) = parked.await.unwrap();
    assert!(woke > index);
    assert_eq!(body.as_array().unwrap().len(), 2);

    // An index from the future (another server, an earlier run) answers at once.
    let asked = Instant::now();
    json_of(
        &server,
        &format!("/v1/health/service/web?index={}&wait=30s", woke + 1_000_000),
    )
    .await;
    assert!(asked.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_service_listing_blocks_until_any_service_changes() {
    let (server, _dir) = started().await;
    server
        .register(json!({"service": "web", "address": "10.0.0.1:80"}))
        .await;
    let (index, _) = json_of(&server, "/v1/catalog/services").await;
    let client = server.client.clone();
    let url = server.url(&format!("/v1/catalog/services?index={index}&wait=30s"));
    let parked = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    wait_until("the query to park", DEADLINE, || async {
        (server.metric("switchboard_blocking_queries_waiting").await >= 1.0).then_some(())
    })
    .await;
    server
        .register(json!({"service": "api", "address": "10.0.0.9:80", "tags": ["x"]}))
        .await;
    let response = parked.await.unwrap();
    assert!(consul_index(&response) > index);
    let services: Value = response.json().await.unwrap();
    assert_eq!(services, json!({"api": ["x"], "web": []}));
}

#[tokio::test]
async fn passing_tags_and_filters_select_instances() {
    let (server, _dir) = started().await;
    let blue = server
        .register(json!({"service": "web", "address": "10.0.0.1:80", "tags": ["blue"]}))
        .await;
    server
        .register(json!({"service": "web", "address": "10.0.0.2:80", "tags": ["green"], "metadata": {"zone": "a"}}))
        .await;
    let down = server
        .register(json!({"service": "web", "address": "10.0.0.3:80", "tags": ["blue"]}))
        .await;
    server
        .set_status(down["id"].as_str().unwrap(), "maintenance")
        .await;
    let count = |body: &Value| body.as_array().unwrap().len();
    let (_, all) = json_of(&server, "/v1/health/service/web").await;
    assert_eq!(count(&all), 3);
    let (_, passing) = json_of(&server, "/v1/health/service/web?passing").await;
    assert_eq!(count(&passing), 2);
    let (_, passing_false) = json_of(&server, "/v1/health/service/web?passing=false").await;
    assert_eq!(count(&passing_false), 3, "Spring sends passing=false");
    let maintenance = (all.as_array().unwrap().iter())
        .find(|entry| entry["Service"]["ID"] == down["id"])
        .unwrap();
    let check_ids = ids(&maintenance["Checks"], "/CheckID");
    assert!(check_ids.contains(&format!(
        "_service_maintenance:{}",
        down["id"].as_str().unwrap()
    )));
    let (_, blue_passing) = json_of(&server, "/v1/health/service/web?passing=1&tag=blue").await;
    assert_eq!(
        ids(&blue_passing, "/Service/ID"),
        [blue["id"].as_str().unwrap()]
    );
    let (_, zoned) = json_of(
        &server,
        "/v1/health/service/web?filter=Service.Meta.zone%20%3D%3D%20%22a%22",
    )
    .await;
    assert_eq!(count(&zoned), 1);
    let (_, catalog_blue) = json_of(&server, "/v1/catalog/service/web?tag=blue").await;
    assert_eq!(count(&catalog_blue), 2);
    let (_, critical) = json_of(&server, "/v1/health/state/critical").await;
    assert!(ids(&critical, "/ServiceID").contains(&down["id"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn bad_input_gets_consuls_plain_text_answers() {
    let (server, _dir) = started().await;
    for (path, text) in [
        (
            "/v1/health/service/web?index=1&wait=10",
            "Invalid wait time",
        ),
        ("/v1/health/service/web?index=abc", "Invalid index"),
        (
            "/v1/health/service/web?passing=maybe",
            "Invalid value for ?passing",
        ),
        (
            "/v1/health/service/web?stale&consistent",
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ),
        (
            "/v1/health/service/web?dc=elsewhere",
            "No path to datacenter",
        ),
        ("/v1/catalog/service/", "Missing service name"),
        ("/v1/health/state/", "Missing check state"),
        ("/v1/catalog/node/", "Missing node name"),
    ] {
        let (status, body) = text_of(&server, path).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, text),
            "{path}"
        );
    }
    for path in [
        "/v1/health/service/web?filter=Service.ID%20%3D%3D",
        "/v1/health/service/web?filter=Service.Nope%20%3D%3D%20x",
    ] {
        let (status, body) = text_of(&server, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            body.starts_with("Failed to create boolean expression evaluator"),
            "{body}"
        );
    }
    let (status, body) = text_of(&server, "/v1/catalog/node/nowhere").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "null"));
}

#[tokio::test]
async fn namespaces_are_ns_and_groups_prefix_the_name() {
    let (server, _dir) = started().await;
    server
        .register(json!({"service": "web", "namespace": "shop", "group": "blue", "address": "10.0.0.1:80"}))
        .await;
    server
        .register(json!({"service": "web", "address": "10.0.0.2:80"}))
        .await;
    let (_, default) = json_of(&server, "/v1/catalog/services").await;
    assert_eq!(default, json!({"web": []}));
    let (_, explicit_default) = json_of(&server, "/v1/catalog/services?ns=default").await;
    assert_eq!(explicit_default, default);
    let (_, shop) = json_of(&server, "/v1/catalog/services?ns=shop").await;
    assert_eq!(shop, json!({"blue@@web": []}));
    let (_, grouped) = json_of(&server, "/v1/health/service/blue@@web?ns=shop").await;
    assert_eq!(ids(&grouped, "/Service/Address"), ["10.0.0.1"]);
}

#[tokio::test]
async fn agent_self_names_the_datacenter_prometheus_reads() {
    let (server, _dir) = started().await;
    let (status, body) = server.get_json("/v1/agent/self").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Config"]["Datacenter"], "dc1");
    assert_eq!(body["Config"]["NodeName"], "switchboard");
    let (_, leader) = server.get_json("/v1/status/leader").await;
    assert!(
        leader.as_str().unwrap().starts_with("127.0.0.1:"),
        "{leader}"
    );
    let (_, datacenters) = server.get_json("/v1/catalog/datacenters").await;
    assert_eq!(datacenters, json!(["dc1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_instance_stays_passing_and_says_so() {
    let consul = ConsulDouble::start().await;
    consul.register(service("web", "a", "10.0.0.1", 80)).await;
    let (server, _dir) = start_server(&consul_source(&[consul.url()], "")).await;
    wait_fresh(&server, SOURCE, &[("web".into(), "10.0.0.1:80".into())]).await;
    consul.stop().await;
    wait_state(&server, "down").await;
    let (_, passing) = json_of(&server, "/v1/health/service/web?passing").await;
    assert_eq!(
        passing.as_array().unwrap().len(),
        1,
        "the last known view stays: {passing}"
    );
    let status = (passing[0]["Checks"].as_array().unwrap().iter())
        .find(|check| {
            check["CheckID"]
                .as_str()
                .unwrap()
                .starts_with("switchboard:")
        })
        .unwrap();
    assert_eq!(status["Status"], "passing");
    assert!(
        status["Output"].as_str().unwrap().starts_with("Stale"),
        "{status}"
    );
    // A Consul source's node name is kept.
    assert_eq!(passing[0]["Node"]["Node"], "node1", "{passing}");
}

#[tokio::test]
async fn the_door_has_a_listener_of_its_own_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = test_config(dir.path());
    config.consul.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(switchboard::run(listener, config, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let body = json!({"service": "web", "address": "10.0.0.1:80"});
    wait_until("the server to register", DEADLINE, || async {
        let sent = client
            .post(format!("{base}/api/v1/instances"))
            .json(&body)
            .send()
            .await;
        sent.ok().filter(|r| r.status().is_success())
    })
    .await;
    let own = format!("http://127.0.0.1:{port}/v1/catalog/services");
    let services: Value = wait_until("the Consul listener", DEADLINE, || async {
        client.get(&own).send().await.ok()?.json().await.ok()
    })
    .await;
    assert_eq!(services, json!({"web": []}));
    let native = client
        .get(format!("http://127.0.0.1:{port}/api/v1/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(native.status(), StatusCode::NOT_FOUND, "only /v1/ there");
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn tokens_come_from_consuls_places_and_reads_leave_out_what_they_do_not_reach() {
    let guarded = crate::auth::Guarded::start().await;
    guarded
        .seed(json!({"service": "web", "namespace": "shop", "address": "10.0.0.1:80"}))
        .await;
    guarded
        .seed(json!({"service": "web", "address": "10.0.0.2:80"}))
        .await;
    let (_, shop_reader) = guarded.token("read", &["shop"]).await;
    let server = &guarded.server;
    let ask = |path: &str, header: Option<(&'static str, String)>| {
        let mut request = server.client.get(server.url(path));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.send()
    };
    // X-Consul-Token, ?token= and a Bearer header all carry the token.
    for (path, header) in [
        (
            "/v1/health/service/web?ns=shop",
            Some(("x-consul-token", shop_reader.clone())),
        ),
        (
            &*format!("/v1/health/service/web?ns=shop&token={shop_reader}"),
            None,
        ),
        (
            "/v1/health/service/web?ns=shop",
            Some(("authorization", format!("Bearer {shop_reader}"))),
        ),
    ] {
        let response = ask(path, header).await.unwrap();
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_eq!(body.as_array().map(Vec::len), Some(1), "{path}: {body}");
    }
    // The default namespace is beyond the token: filtered, and said so.
    let response = ask(
        "/v1/health/service/web",
        Some(("x-consul-token", shop_reader.clone())),
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers()["x-consul-results-filtered-by-acls"],
        "true"
    );
    assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
    // No token (anonymous access off): nothing, as Consul's anonymous token under deny.
    let response = ask("/v1/catalog/services", None).await.unwrap();
    assert_eq!(response.headers()["x-consul-default-acl-policy"], "deny");
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    // A token this server never issued.
    let response = ask(
        "/v1/catalog/services",
        Some(("x-consul-token", "sb_nope".into())),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.text().await.unwrap(), "ACL not found");
    let response = ask("/v1/agent/self", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response
        .text()
        .await
        .unwrap()
        .starts_with("Permission denied: anonymous token lacks permission 'agent:read'"));
}

#[tokio::test]
async fn a_caller_that_may_not_read_still_waits_out_its_blocking_query() {
    let guarded = crate::auth::Guarded::start().await;
    guarded
        .seed(json!({"service": "web", "address": "10.0.0.1:80"}))
        .await;
    let server = &guarded.server;
    let response = get(server, "/v1/catalog/services").await;
    let index = consul_index(&response);
    // Answered at once, a watch loop would ask again at once, forever.
    let asked = Instant::now();
    let response = get(
        server,
        &format!("/v1/catalog/services?index={index}&wait=1s"),
    )
    .await;
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
}

//! Consul's agent API on a real server: Spring- and py-consul-style registrations land in
//! the native registry and native registrations show in `/v1/agent/services`; TTL check
//! updates and maintenance mode change an instance's health; every refusal has Consul's
//! status and text; and ACL tokens are the native tokens, with their roles and
//! namespaces.

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::auth::Guarded;
use crate::support::{test_config, TestServer};

/// A server with access control off, its data in a temporary directory.
async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // A stop waits out the idle timeout of a connection that never sent a request (the
    // client's pool sometimes opens a spare one), so keep that short here.
    config.api.idle_timeout = std::time::Duration::from_secs(2);
    let server = TestServer::start(config).await;
    (server, dir)
}

/// Sends `method path` with a raw `body`; the status, headers and body text.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, header::HeaderMap, String) {
    let mut request = server.client.request(method, server.url(path));
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

/// `PUT path` with `body` as JSON, expecting Consul's 200 with an empty body.
async fn put_ok(server: &TestServer, path: &str, body: Option<Value>) {
    let body = body.map(|body| body.to_string());
    let (status, _, text) = send(server, Method::PUT, path, body.as_deref()).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""), "PUT {path}");
}

/// Asserts `method path` is refused with `status` and exactly `text`, as plain text.
async fn refused(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<&str>,
    status: u16,
    text: &str,
) {
    let (got, headers, body) = send(server, method.clone(), path, body).await;
    assert_eq!(
        (got.as_u16(), body.as_str()),
        (status, text),
        "{method} {path}"
    );
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
}

/// The native view of instance `id`.
async fn native(server: &TestServer, id: &str) -> Value {
    let (status, instance) = server.get_json(&format!("/api/v1/instances/{id}")).await;
    assert_eq!(status, 200, "{instance}");
    instance
}

fn spring_body() -> Value {
    json!({
        "ID": "orders-8080", "Name": "orders", "Tags": ["secure=false"], "Address": "10.0.0.5",
        "Meta": {"zone": "a"}, "Port": 8080, "EnableTagOverride": false,
        "Check": {
            "Args": null, "DockerContainerID": null, "Shell": null, "Interval": "10s", "TTL": null,
            "HTTP": "http://10.0.0.5:8080/actuator/health", "Method": null,
            "Header": {"X-Probe": ["1"]}, "TCP": null, "Timeout": "2s",
            "DeregisterCriticalServiceAfter": "5m", "TLSSkipVerify": null, "Status": null,
            "GRPC": null, "GRPCUseTLS": null
        },
        "Checks": null
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spring_and_py_consul_registrations_are_native_instances_and_the_reverse() {
    let (server, _dir) = server().await;
    put_ok(&server, "/v1/agent/service/register", Some(spring_body())).await;
    let (status, list) = server.get_json("/api/v1/services/orders/instances").await;
    assert_eq!(status, 200, "{list}");
    let orders = &list[0];
    assert_eq!(
        (orders["id"].as_str(), orders["address"].as_str()),
        (Some("orders-8080"), Some("10.0.0.5:8080"))
    );
    assert_eq!(orders["metadata"], json!({"zone": "a"}));
    assert_eq!(orders["tags"], json!(["secure=false"]));
    assert_eq!(
        orders["healthy"], false,
        "a new HTTP check is critical until it passes"
    );
    assert_eq!(orders["checks"][0]["id"], "service:orders-8080");

    // py-consul: lowercase keys, a `checks` list, no address (the client's own is used).
    let py = json!({"name": "web", "id": "web-1", "port": 81, "tags": ["py"], "meta": {"k": "v"},
                    "weights": {"passing": 7, "warning": 1}, "enabletagoverride": false,
                    "checks": [{"ttl": "30s"}, {"tcp": "127.0.0.1:9", "interval": "10s", "deregister_critical_service_after": "1m"}]});
    put_ok(
        &server,
        "/v1/agent/service/register?replace-existing-checks=true",
        Some(py),
    )
    .await;
    let web = native(&server, "web-1").await;
    assert_eq!(
        (web["host"].as_str(), web["port"].as_u64()),
        (Some("127.0.0.1"), Some(81))
    );
    assert_eq!(web["weight"], 7);
    let check_ids: Vec<&str> = (web["checks"].as_array().unwrap().iter())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(check_ids, ["service:web-1:1", "service:web-1:2"]);

    // A native registration is one of the agent's services, in Consul's shape.
    server
        .register(json!({"id": "native-1", "service": "billing", "address": "10.9.0.1:9000", "weight": 30}))
        .await;
    let (status, services) = server.get_json("/v1/agent/services").await;
    assert_eq!(status, 200);
    assert_eq!(
        services["native-1"],
        json!({"ID": "native-1", "Service": "billing", "Tags": [], "Meta": {}, "Port": 9000,
               "Address": "10.9.0.1",
               "TaggedAddresses": {"lan_ipv4": {"Address": "10.9.0.1", "Port": 9000},
                                   "wan_ipv4": {"Address": "10.9.0.1", "Port": 9000}},
               "Weights": {"Passing": 30, "Warning": 1}, "EnableTagOverride": false,
               "Datacenter": "dc1"})
    );
    assert_eq!(services["orders-8080"]["Service"], "orders");
    assert_eq!(services["web-1"]["Weights"]["Passing"], 7);

    let (status, headers, text) =
        send(&server, Method::GET, "/v1/agent/service/orders-8080", None).await;
    assert_eq!(status, 200);
    let one: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(one["ID"], "orders-8080");
    assert_eq!(
        headers["x-consul-contenthash"].to_str().unwrap(),
        one["ContentHash"]
    );

    let (_, checks) = server.get_json("/v1/agent/checks").await;
    assert_eq!(
        checks["service:orders-8080"],
        json!({"Node": "switchboard", "CheckID": "service:orders-8080", "Name": "Service 'orders' check",
               "Status": "critical", "Notes": "", "Output": "", "ServiceID": "orders-8080",
               "ServiceName": "orders", "ServiceTags": ["secure=false"], "Type": "http",
               "Interval": "10s", "Timeout": "2s", "ExposedPort": 0, "Definition": {},
               "CreateIndex": 0, "ModifyIndex": 0})
    );
    assert_eq!(checks["service:web-1:1"]["Type"], "ttl");
    assert!(checks.get("native-1").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_checks_and_maintenance_change_health() {
    let (server, _dir) = server().await;
    let body = json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Check": {"TTL": "30s"}});
    put_ok(&server, "/v1/agent/service/register", Some(body.clone())).await;
    let healthy = |instance: Value| instance["healthy"].as_bool().unwrap();
    let status = |instance: &Value| instance["status"].as_str().unwrap().to_owned();
    assert!(
        !healthy(native(&server, "web-1").await),
        "a TTL check starts critical"
    );

    put_ok(
        &server,
        "/v1/agent/check/pass/service:web-1?note=all%20good",
        None,
    )
    .await;
    assert!(healthy(native(&server, "web-1").await));
    let (_, checks) = server.get_json("/v1/agent/checks").await;
    assert_eq!(checks["service:web-1"]["Status"], "passing");
    assert_eq!(
        checks["service:web-1"]["Output"], "all good",
        "the note is the output"
    );
    put_ok(&server, "/v1/agent/check/warn/service:web-1", None).await;
    assert!(
        healthy(native(&server, "web-1").await),
        "warning still serves"
    );
    put_ok(
        &server,
        "/v1/agent/check/fail/service:web-1?note=down",
        None,
    )
    .await;
    assert!(!healthy(native(&server, "web-1").await));
    let update = json!({"status": "passing", "output": "back"});
    put_ok(
        &server,
        "/v1/agent/check/update/service:web-1",
        Some(update),
    )
    .await;
    assert!(healthy(native(&server, "web-1").await));

    put_ok(
        &server,
        "/v1/agent/service/maintenance/web-1?enable=true&reason=deploy",
        None,
    )
    .await;
    let instance = native(&server, "web-1").await;
    assert_eq!(
        (status(&instance), healthy(instance)),
        ("maintenance".to_owned(), false)
    );
    let (_, checks) = server.get_json("/v1/agent/checks").await;
    let maintenance = &checks["_service_maintenance:web-1"];
    assert_eq!(
        (maintenance["Notes"].as_str(), maintenance["Type"].as_str()),
        (Some("deploy"), Some("maintenance"))
    );
    assert_eq!(maintenance["Status"], "critical");

    // Registered again, it stays in maintenance and keeps its check's result, as a
    // Consul agent keeps them; with replace-existing-checks only the checks given remain.
    put_ok(&server, "/v1/agent/service/register", Some(body.clone())).await;
    let instance = native(&server, "web-1").await;
    assert_eq!(instance["status"], "maintenance");
    put_ok(
        &server,
        "/v1/agent/service/maintenance/web-1?enable=False",
        None,
    )
    .await;
    let instance = native(&server, "web-1").await;
    assert_eq!(
        (status(&instance), healthy(instance)),
        ("active".to_owned(), true)
    );
    put_ok(
        &server,
        "/v1/agent/service/maintenance/web-1?enable=1",
        None,
    )
    .await;
    put_ok(
        &server,
        "/v1/agent/service/register?replace-existing-checks",
        Some(body),
    )
    .await;
    let instance = native(&server, "web-1").await;
    assert_eq!(instance["status"], "active");
    assert_eq!(instance["checks"].as_array().unwrap().len(), 1);

    put_ok(&server, "/v1/agent/service/deregister/web-1", None).await;
    let (status, _) = server.get_json("/api/v1/instances/web-1").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_consuls_status_and_text() {
    let (server, _dir) = server().await;
    let register = "/v1/agent/service/register";
    refused(
        &server,
        Method::PUT,
        register,
        None,
        400,
        "Request decode failed: EOF",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"Nope":1}"#),
        400,
        r#"Request decode failed: json: unknown field "Nope""#,
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"Check":{"ID":"x","TTL":"1s"}}"#),
        400,
        r#"Request decode failed: json: unknown field "ID""#,
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"Check":{"TTL":"1"}}"#),
        400,
        r#"Request decode failed: time: missing unit in duration "1""#,
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Port":80}"#),
        400,
        "Missing service name",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"Weights":{"Passing":0}}"#),
        400,
        "Invalid Weights: Passing must be greater than 0",
    )
    .await;
    refused(&server, Method::PUT, register, Some(r#"{"Name":"web","Port":80,"Meta":{"consul-x":"1"}}"#), 400, "Invalid Service Meta: Couldn't load metadata pair ('consul-x', '1'): Key prefix 'consul-' is reserved for internal use").await;
    refused(&server, Method::PUT, register, Some(r#"{"Name":"web","Port":80,"Check":{"HTTP":"http://a/"}}"#), 400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks").await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"Check":{"Args":["/bin/true"],"Interval":"5s"}}"#),
        400,
        "Invalid check: Switchboard does not run script checks; use HTTP, TCP or TTL checks",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"Check":{"TTL":"5s","Status":"up"}}"#),
        400,
        "Status for checks must 'passing', 'warning', 'critical'",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"Address":"0.0.0.0"}"#),
        400,
        "Invalid service address",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        register,
        Some(r#"{"Name":"web","Port":80,"ID":"a b"}"#),
        400,
        "Invalid service ID: id must be 1-253 characters of [A-Za-z0-9.:_-]",
    )
    .await;
    let (status, _, text) = send(&server, Method::PUT, register, Some(r#"{"Name":"web"}"#)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.starts_with("Invalid service port"), "{text}");

    refused(
        &server,
        Method::PUT,
        "/v1/agent/service/deregister/nope",
        None,
        404,
        r#"Unknown service ID "nope". Ensure that the service ID is passed, not the service name."#,
    )
    .await;
    refused(
        &server,
        Method::GET,
        "/v1/agent/service/nope",
        None,
        404,
        "unknown service ID: nope",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        "/v1/agent/service/maintenance/nope?enable=true",
        None,
        404,
        r#"Unknown service ID "nope". Ensure that the service ID is passed, not the service name."#,
    )
    .await;

    let body = json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80,
                      "Checks": [{"CheckID": "alive", "HTTP": "http://10.0.0.1/", "Interval": "10s"}, {"CheckID": "beat", "TTL": "10s"}]});
    put_ok(&server, register, Some(body)).await;
    refused(
        &server,
        Method::PUT,
        "/v1/agent/service/maintenance/web-1",
        None,
        400,
        "Missing value for enable",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        "/v1/agent/service/maintenance/web-1?enable=yes",
        None,
        400,
        r#"Invalid value for enable: "yes""#,
    )
    .await;
    refused(
        &server,
        Method::PUT,
        "/v1/agent/check/pass/nope",
        None,
        404,
        r#"Unknown check ID "nope". Ensure that the check ID is passed, not the check name."#,
    )
    .await;
    refused(
        &server,
        Method::PUT,
        "/v1/agent/check/fail/alive",
        None,
        500,
        r#"CheckID "alive" does not have associated TTL"#,
    )
    .await;
    refused(
        &server,
        Method::PUT,
        "/v1/agent/check/update/beat",
        Some(r#"{"Status":"ok"}"#),
        400,
        "Invalid check status: 'ok'",
    )
    .await;
    refused(
        &server,
        Method::PUT,
        "/v1/agent/check/update/beat",
        Some(r#"{"Status":"passing","Note":"x"}"#),
        400,
        r#"Request decode failed: json: unknown field "Note""#,
    )
    .await;
    put_ok(&server, "/v1/agent/check/pass/beat", None).await;
    refused(
        &server,
        Method::GET,
        "/v1/agent/services?filter=Service%20%3D%3D%20web",
        None,
        400,
        "filter is not supported on this endpoint",
    )
    .await;

    let (status, headers, text) = send(&server, Method::GET, register, None).await;
    assert_eq!(
        (status.as_u16(), text.as_str()),
        (405, "method GET not allowed")
    );
    assert_eq!(headers[header::ALLOW], "OPTIONS,PUT");
    let (status, headers, _) = send(&server, Method::PUT, "/v1/agent/services", None).await;
    assert_eq!(
        (status.as_u16(), headers[header::ALLOW].to_str().unwrap()),
        (405, "GET,OPTIONS")
    );
    let (status, headers, _) =
        send(&server, Method::OPTIONS, "/v1/agent/check/pass/beat", None).await;
    assert_eq!(
        (status.as_u16(), headers[header::ALLOW].to_str().unwrap()),
        (200, "OPTIONS,PUT")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_the_native_tokens_with_their_roles_and_namespaces() {
    let guarded = Guarded::start().await;
    let (register_id, register) = guarded.token("register", &["team-a"]).await;
    let (_, reader) = guarded.token("read", &["team-a"]).await;
    guarded
        .seed(json!({"id": "core-1", "service": "core", "host": "10.2.0.1", "port": 80}))
        .await;
    let call = |method: Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = guarded
            .server
            .client
            .request(method, guarded.server.url(path));
        if let Some(token) = token {
            request = request.header("X-Consul-Token", token);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let filtered = response
                .headers()
                .contains_key("x-consul-results-filtered-by-acls");
            (status, response.text().await.unwrap(), filtered)
        }
    };
    let web = json!({"Name": "web", "ID": "web-1", "Address": "10.2.0.2", "Port": 80, "Check": {"TTL": "30s"}});
    let path = "/v1/agent/service/register";

    let (status, text, _) = call(Method::PUT, path, None, Some(web.clone())).await;
    assert_eq!((status, text.as_str()), (403, "Permission denied: anonymous token lacks permission 'service:write' on \"web\". The anonymous token is used implicitly when a request does not specify a token."));
    let (status, text, _) = call(Method::PUT, path, Some("not-a-token"), Some(web.clone())).await;
    assert_eq!((status, text.as_str()), (403, "ACL not found"));
    let (status, text, _) = call(
        Method::PUT,
        &format!("{path}?ns=team-b"),
        Some(&register),
        Some(web.clone()),
    )
    .await;
    let denied = format!("Permission denied: token with AccessorID '{register_id}' lacks permission 'service:write' on \"web\"");
    assert_eq!((status, text.as_str()), (403, denied.as_str()));
    let (status, text, _) = call(
        Method::PUT,
        &format!("{path}?ns=team-a"),
        Some(&reader),
        Some(web.clone()),
    )
    .await;
    assert_eq!(status, 403, "a read token does not register: {text}");
    let (status, text, _) = call(
        Method::PUT,
        &format!("{path}?ns=team-a"),
        Some(&register),
        Some(web),
    )
    .await;
    assert_eq!((status, text.as_str()), (200, ""));

    // Reads show only the namespaces the token reaches, and say that some were left out.
    let (status, text, filtered) =
        call(Method::GET, "/v1/agent/services", Some(&reader), None).await;
    let services: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        services.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["web-1"]
    );
    assert_eq!(services["web-1"]["Namespace"], "team-a");
    assert!(filtered);
    let (_, text, _) = call(Method::GET, "/v1/agent/checks", Some(&reader), None).await;
    let checks: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        checks.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["service:web-1"]
    );
    let (status, _, _) = call(Method::GET, "/v1/agent/service/core-1", Some(&reader), None).await;
    assert_eq!(status, 403);
    let (_, text, _) = call(Method::GET, "/v1/agent/services", None, None).await;
    assert_eq!(text, "{}", "the anonymous token reads nothing");
    let (_, text, _) = call(
        Method::GET,
        "/v1/agent/services",
        Some(&guarded.admin),
        None,
    )
    .await;
    let all: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(all.as_object().unwrap().len(), 2);

    // Writes on what is registered need the register role over its namespace.
    let (status, _, _) = call(
        Method::PUT,
        "/v1/agent/check/pass/service:web-1",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(
        Method::PUT,
        "/v1/agent/service/deregister/core-1",
        Some(&register),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(
        Method::PUT,
        "/v1/agent/check/pass/service:web-1",
        Some(&register),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        Method::PUT,
        "/v1/agent/service/deregister/web-1",
        Some(&register),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ttl_check_failed_again_publishes_nothing() {
    let (server, _dir) = server().await;
    let body = json!({"ID": "w1", "Name": "w", "Address": "10.0.0.1", "Port": 80,
        "Check": {"TTL": "30s", "Status": "critical"}});
    put_ok(&server, "/v1/agent/service/register", Some(body)).await;
    let index = |server: &TestServer| {
        let url = server.url("/v1/health/service/w");
        let client = server.client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            response.headers()["x-consul-index"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let before = index(&server).await;
    put_ok(
        &server,
        "/v1/agent/check/fail/service:w1?note=still+down",
        None,
    )
    .await;
    // A fail on a failing check renews the TTL without a pass in between: no change is
    // published, so no watcher wakes to see the check flap.
    assert_eq!(index(&server).await, before);
    let (_, checks) = server.get_json("/v1/agent/checks").await;
    assert_eq!(checks["service:w1"]["Status"], "critical");
    assert_eq!(checks["service:w1"]["Output"], "still down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_check_id_belongs_to_one_instance() {
    let (server, _dir) = server().await;
    let body = |id: &str, port: u16| {
        json!({"ID": id, "Name": "app", "Address": "10.0.0.1", "Port": port,
            "Check": {"CheckID": "app-ttl", "TTL": "30s"}})
    };
    put_ok(
        &server,
        "/v1/agent/service/register",
        Some(body("app-1", 80)),
    )
    .await;
    let (status, _, text) = send(
        &server,
        Method::PUT,
        "/v1/agent/service/register",
        Some(&body("app-2", 81).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("`app-ttl` is already used by instance `app-1`"),
        "{text}"
    );
    // The same instance registered again keeps it; so does its successor at the same
    // endpoint (a restarted process with a new id).
    put_ok(
        &server,
        "/v1/agent/service/register",
        Some(body("app-1", 80)),
    )
    .await;
    put_ok(
        &server,
        "/v1/agent/service/register",
        Some(body("app-3", 80)),
    )
    .await;
}

/// Waits until instance `id` has `status` in the native view.
async fn wait_status(server: &TestServer, id: &str, status: &str) {
    crate::support::wait_until(
        "the instance's status",
        crate::support::DEADLINE,
        || async { (native(server, id).await["status"] == status).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_instance_comes_back_through_its_ttl_check_in_one_change() {
    let (server, _dir) = server().await;
    let body = json!({"ID": "x1", "Name": "x", "Address": "10.0.0.1", "Port": 80,
        "Check": {"TTL": "1s", "Status": "passing"}});
    put_ok(&server, "/v1/agent/service/register", Some(body)).await;
    wait_status(&server, "x1", "offline").await;
    let index = |server: &TestServer| {
        let url = server.url("/v1/health/service/x");
        let client = server.client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            let index = response.headers()["x-consul-index"].to_str().unwrap();
            index.parse::<u64>().unwrap()
        }
    };
    // A fail revives it with the check failing: one change, never a pass in between.
    let before = index(&server).await;
    put_ok(&server, "/v1/agent/check/fail/service:x1?note=broken", None).await;
    assert_eq!(index(&server).await, before + 1);
    let instance = native(&server, "x1").await;
    assert_eq!(
        (instance["status"].as_str(), instance["healthy"].as_bool()),
        (Some("active"), Some(false))
    );

    // Disabling maintenance on an expired instance it was never in leaves the expiry:
    // the next pass still revives it.
    wait_status(&server, "x1", "offline").await;
    put_ok(
        &server,
        "/v1/agent/service/maintenance/x1?enable=false",
        None,
    )
    .await;
    put_ok(&server, "/v1/agent/check/pass/service:x1", None).await;
    let instance = native(&server, "x1").await;
    assert_eq!(
        (instance["status"].as_str(), instance["healthy"].as_bool()),
        (Some("active"), Some(true))
    );
}

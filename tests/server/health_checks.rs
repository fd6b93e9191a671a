//! Health checks Switchboard runs for native instances: HTTP and TCP checks against
//! targets the test starts (and stops, and starts again on the same port), TTL checks
//! fed by heartbeats, deregistration after critical, refused definitions and metrics.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::tls::TlsProxy;
use crate::support::{
    free_port, metrics_text, poll, test_config, wait_until, BinaryServer, TestServer, DEADLINE,
};

/// A health endpoint the test controls: `GET /health` answers `status` with body `ok`
/// and keeps the headers of the last request.
struct Target {
    port: u16,
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Option<HeaderMap>>>,
    task: Option<JoinHandle<()>>,
}

impl Target {
    async fn start() -> Target {
        let mut target = Target {
            port: 0,
            status: Arc::new(AtomicU16::new(200)),
            seen: Arc::new(Mutex::new(None)),
            task: None,
        };
        target.serve().await;
        target
    }

    /// Serves on `self.port` (a free one the first time).
    async fn serve(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.port = listener.local_addr().unwrap().port();
        let (status, seen) = (self.status.clone(), self.seen.clone());
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move |headers: HeaderMap| async move {
                *seen.lock().unwrap() = Some(headers);
                let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                (code, "ok")
            }),
        );
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Stops serving: the port refuses connections until [`Target::serve`].
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    fn header(&self, name: &str) -> Option<String> {
        let seen = self.seen.lock().unwrap();
        let value = seen.as_ref()?.get(name)?;
        Some(value.to_str().unwrap().to_owned())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// (healthy, the first check) of instance `id` as discovery serves it.
async fn served(
    client: &reqwest::Client,
    base: &str,
    service: &str,
    id: &str,
) -> Option<(bool, Value)> {
    let url = format!("{base}/api/v1/services/{service}/instances");
    let listed: Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let instance = listed.as_array()?.iter().find(|i| i["id"] == id)?.clone();
    Some((
        instance["healthy"].as_bool()?,
        instance["checks"][0].clone(),
    ))
}

/// Waits until instance `id`'s first check has `status` (and the instance `healthy`);
/// returns the check.
async fn wait_for_check(
    server: &TestServer,
    service: &str,
    id: &str,
    status: &str,
    healthy: bool,
) -> Value {
    poll(&format!("check of {id} {status}"), DEADLINE, || async {
        let seen = served(&server.client, &server.base, service, id).await;
        match seen {
            Some((is_healthy, check)) if check["status"] == status && is_healthy == healthy => {
                Ok(check)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn register(server: &TestServer, body: Value) -> String {
    let registered = server.register(body).await;
    registered["id"].as_str().unwrap().to_owned()
}

/// The value of the labelled series `series` (name and labels, as exposed) in `/metrics`.
async fn series(server: &TestServer, series: &str) -> f64 {
    let text = metrics_text(&server.client, &server.base).await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_http_check_follows_its_target_down_and_back_and_429_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut target = Target::start().await;
    let id = register(
        &server,
        json!({"service": "web", "address": "10.0.0.1:80", "checks": [{
            "http": target.url(), "interval": "1s",
            "header": {"Host": ["web.internal"], "X-Probe": ["switchboard"]},
        }]}),
    )
    .await;
    let (healthy, check) = served(&server.client, &server.base, "web", &id)
        .await
        .unwrap();
    assert!(!healthy, "a new check is critical until it passes: {check}");
    assert_eq!(check["status"], "critical");
    assert_eq!(check["id"], format!("service:{id}"));
    assert_eq!(check["kind"], "http");

    let check = wait_for_check(&server, "web", &id, "passing", true).await;
    let url = target.url();
    assert_eq!(
        check["output"],
        format!("HTTP GET {url}: 200 OK Output: ok")
    );
    assert_eq!(target.header("host").as_deref(), Some("web.internal"));
    assert_eq!(target.header("x-probe").as_deref(), Some("switchboard"));
    assert_eq!(
        target.header("user-agent").as_deref(),
        Some("Switchboard Health Check")
    );
    assert_eq!(
        target.header("accept").as_deref(),
        Some("text/plain, text/*, */*")
    );

    target.stop().await;
    let check = wait_for_check(&server, "web", &id, "critical", false).await;
    let output = check["output"].as_str().unwrap();
    // The transport error with its causes: `error sending request for url (…): …:
    // Connection refused (os error 111)`.
    assert!(
        output.contains(&url) && output.contains("Connection refused"),
        "{output}"
    );

    target.serve().await;
    wait_for_check(&server, "web", &id, "passing", true).await;

    target.status.store(429, Ordering::SeqCst);
    let check = wait_for_check(&server, "web", &id, "warning", true).await;
    let output = check["output"].as_str().unwrap();
    assert!(
        output.contains(": 429 Too Many Requests Output: ok"),
        "{output}"
    );

    target.status.store(500, Ordering::SeqCst);
    let check = wait_for_check(&server, "web", &id, "critical", false).await;
    let output = check["output"].as_str().unwrap();
    assert!(output.contains(": 500 Internal Server Error"), "{output}");

    // The health endpoint shows the latest output of each check.
    let (status, health) = server
        .get_json(&format!("/api/v1/instances/{id}/health"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(health["checks"][0]["status"], "critical");

    let runs = |status: &str| {
        format!("switchboard_health_checks_total{{kind=\"http\",status=\"{status}\"}}")
    };
    for status in ["passing", "warning", "critical"] {
        assert!(
            series(&server, &runs(status)).await >= 1.0,
            "{status} runs counted"
        );
    }
    let failures = "switchboard_health_check_failures_total{kind=\"http\"}";
    assert!(series(&server, failures).await >= 2.0);
    let timed = "switchboard_health_check_duration_seconds_count{kind=\"http\"}";
    assert!(series(&server, timed).await >= 4.0);
    server.stop().await;
}

#[tokio::test]
async fn tls_skip_verify_accepts_a_certificate_no_trusted_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let target = Target::start().await;
    let backend = format!("127.0.0.1:{}", target.port).parse().unwrap();
    let proxy = TlsProxy::start(backend, false).await;
    let url = format!("{}/health", proxy.url());
    let check = |skip: bool| json!([{"http": url, "interval": "1s", "tls_skip_verify": skip}]);
    let trusting = json!({"service": "tls", "address": "10.0.0.6:80", "checks": check(true)});
    let trusting = register(&server, trusting).await;
    let verifying = json!({"service": "tls", "address": "10.0.0.7:80", "checks": check(false)});
    let verifying = register(&server, verifying).await;

    let check = wait_for_check(&server, "tls", &trusting, "passing", true).await;
    assert_eq!(
        check["output"],
        format!("HTTP GET {url}: 200 OK Output: ok")
    );
    // The other has run too, and failed on the certificate.
    let check = poll("the verifying check to run", DEADLINE, || async {
        let (_, health) = server
            .get_json(&format!("/api/v1/instances/{verifying}/health"))
            .await;
        let check = health["checks"][0].clone();
        match check["output"].as_str() {
            Some(output) if !output.is_empty() => Ok(check),
            _ => Err(format!("{health}")),
        }
    })
    .await;
    assert_eq!(check["status"], "critical", "{check}");
    let output = check["output"].as_str().unwrap();
    assert!(output.contains("certificate"), "{output}");
    server.stop().await;
}

#[tokio::test]
async fn a_tcp_check_passes_while_its_port_accepts_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let id = register(
        &server,
        json!({"service": "db", "address": address, "checks": [
            {"tcp": address, "interval": "1s", "timeout": "500ms"}
        ]}),
    )
    .await;
    let check = wait_for_check(&server, "db", &id, "passing", true).await;
    assert_eq!(check["output"], format!("TCP connect {address}: Success"));
    assert_eq!(check["kind"], "tcp");

    drop(listener);
    let check = wait_for_check(&server, "db", &id, "critical", false).await;
    let output = check["output"].as_str().unwrap();
    assert!(
        output.starts_with(&format!("TCP connect {address}: ")),
        "{output}"
    );

    let _listener = std::net::TcpListener::bind(&address).unwrap();
    wait_for_check(&server, "db", &id, "passing", true).await;
    let passing = "switchboard_health_checks_total{kind=\"tcp\",status=\"passing\"}";
    assert!(series(&server, passing).await >= 2.0);
    server.stop().await;
}

#[tokio::test]
async fn a_ttl_check_passes_with_heartbeats_and_fails_when_they_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let id = register(
        &server,
        json!({"service": "batch", "address": "10.0.0.2:80", "checks": [{"ttl": "2s"}]}),
    )
    .await;
    let (healthy, check) = served(&server.client, &server.base, "batch", &id)
        .await
        .unwrap();
    assert_eq!(
        (healthy, check["status"].as_str()),
        (false, Some("critical"))
    );

    let (status, _) = server.heartbeat(&id).await;
    assert_eq!(status, 200);
    let (healthy, check) = served(&server.client, &server.base, "batch", &id)
        .await
        .unwrap();
    assert!(healthy, "a heartbeat is a TTL pass: {check}");
    assert_eq!(check["status"], "passing");

    let check = wait_for_check(&server, "batch", &id, "critical", false).await;
    assert_eq!(check["output"], "TTL expired");
    let (_, instance) = server.get_json(&format!("/api/v1/instances/{id}")).await;
    assert_eq!(instance["status"], "offline");

    let (_, reply) = server.heartbeat(&id).await;
    assert_eq!(reply["revived"], true);
    let (healthy, check) = served(&server.client, &server.base, "batch", &id)
        .await
        .unwrap();
    assert!(healthy, "{check}");
    assert_eq!(check["status"], "passing");
    server.stop().await;
}

#[tokio::test]
async fn a_ttl_check_deregisters_after_critical_through_the_registrys_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let id = register(
        &server,
        json!({"service": "cron", "address": "10.0.0.3:80", "checks": [
            {"ttl": "1s", "deregister_critical_after": "1s"}
        ]}),
    )
    .await;
    wait_until("the expired instance to be deleted", DEADLINE, || async {
        let (status, _) = server.get_json(&format!("/api/v1/instances/{id}")).await;
        (status == 404).then_some(())
    })
    .await;
    assert_eq!(
        server
            .metric("switchboard_auto_deregistrations_total")
            .await,
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_check_critical_past_deregister_critical_after_removes_its_instance() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        BinaryServer::start_with_env(dir.path(), &[("SWITCHBOARD_HEALTH__DEREGISTER_MIN", "1s")])
            .await;
    let client = reqwest::Client::new();
    let nothing_listens = format!("http://127.0.0.1:{}/health", free_port());
    let body = json!({"service": "flaky", "address": "10.0.0.4:80", "checks": [
        {"http": nothing_listens, "interval": "1s", "deregister_critical_after": "1s"}
    ]});
    let url = format!("{}/api/v1/instances", server.base);
    let response = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A neighbour without a deregistering check stays.
    let keeper = json!({"service": "flaky", "address": "10.0.0.5:80", "checks": [
        {"http": nothing_listens, "interval": "1s"}
    ]});
    let response = client.post(&url).json(&keeper).send().await.unwrap();
    assert_eq!(response.status(), 201);

    let instance_url = format!("{}/api/v1/instances/{id}", server.base);
    wait_until(
        "the critical instance to be deregistered",
        DEADLINE,
        || async {
            let status = client.get(&instance_url).send().await.ok()?.status();
            (status == 404).then_some(())
        },
    )
    .await;
    let text = metrics_text(&client, &server.base).await;
    assert_eq!(
        crate::support::metric_in(&text, "switchboard_health_deregistrations_total"),
        1.0
    );
    let listed: Value = client
        .get(format!("{}/api/v1/services/flaky/instances", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["healthy"], false);
}

#[tokio::test]
async fn bad_check_definitions_are_refused_with_invalid_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let bad = [
        json!({}),
        json!({"http": "http://127.0.0.1:1/"}),
        json!({"http": "ftp://127.0.0.1/", "interval": "10s"}),
        json!({"tcp": "no-port", "interval": "10s"}),
        json!({"ttl": "10s", "interval": "10s"}),
        json!({"ttl": "10s", "http": "http://127.0.0.1:1/", "interval": "10s"}),
        json!({"ttl": "forever"}),
        json!({"http": "http://127.0.0.1:1/", "interval": "10s", "method": "GET POST"}),
        json!({"http": "http://127.0.0.1:1/", "interval": "10s", "status": "fine"}),
        json!({"tcp": "127.0.0.1:1", "interval": "10s", "timeout": "0s"}),
    ];
    for check in bad {
        let body = json!({"service": "bad", "address": "10.0.0.9:80", "checks": [check]});
        let response = (server.client.post(server.url("/api/v1/instances")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{check}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_check", "{check}: {problem}");
    }
    let (_, listed) = server.get_json("/api/v1/services/bad/instances").await;
    assert_eq!(listed, json!([]), "nothing was registered");
    server.stop().await;
}

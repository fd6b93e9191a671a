//! A Spring Cloud Consul application's registration: `PUT /v1/agent/service/register` with
//! the body its `NewService` serializes (Jackson writes the unset fields as `null`), an
//! HTTP check against `/actuator/health` of an app the test serves, and discovery as
//! Spring asks, `GET /v1/health/service/<name>?passing=true|false` (research17 §9). The
//! check goes critical when the app stops and passing when it returns; with
//! `DeregisterCriticalServiceAfter` the registration goes once critical that long
//! (`SWITCHBOARD_HEALTH__DEREGISTER_MIN=1s` lets it be seconds, as Consul's 1 min floor
//! would not).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::harness::{Door, Switchboard, SLOW};
use crate::support::poll;

/// The application: answers every request `200 {"status":"UP"}` and closes the
/// connection (nothing stays open across a stop).
struct App {
    port: u16,
    task: Option<JoinHandle<()>>,
}

impl App {
    /// Serves on `port` (0: any free one).
    async fn start_on(port: u16) -> App {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let mut request = [0u8; 4096];
                let read = stream.read(&mut request);
                let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
                let body = r#"{"status":"UP"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        App {
            port,
            task: Some(task),
        }
    }

    /// Stops serving: the listening socket is closed when this returns.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The body Spring Cloud Consul 5 sends for an app `orders` on `port` with an HTTP check
/// every second (`NewService`; unset fields are `null`).
fn spring_registration(id: &str, port: u16, deregister_after: Option<&str>) -> Value {
    json!({
        "ID": id,
        "Name": "orders",
        "Tags": ["secure=false"],
        "Address": "127.0.0.1",
        "Meta": {"secure": "false"},
        "Port": port,
        "EnableTagOverride": null,
        "Check": {
            "Args": null,
            "DockerContainerID": null,
            "Shell": null,
            "Interval": "1s",
            "TTL": null,
            "HTTP": format!("http://127.0.0.1:{port}/actuator/health"),
            "Method": null,
            "Header": {},
            "TCP": null,
            "Timeout": null,
            "DeregisterCriticalServiceAfter": deregister_after,
            "TLSSkipVerify": null,
            "Status": null,
            "GRPC": null,
            "GRPCUseTLS": null
        },
        "Checks": null
    })
}

async fn register(switchboard: &Switchboard, body: &Value) {
    let url = switchboard.consul_url("/v1/agent/service/register");
    let response = switchboard.http.put(url).json(body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "PUT /v1/agent/service/register {body}: {text}");
}

/// Waits until check `service:<id>` of `orders` has `status`; returns the check.
async fn wait_check(switchboard: &Switchboard, id: &str, status: &str) -> Value {
    let check_id = format!("service:{id}");
    poll(&format!("{check_id} to be {status}"), SLOW, || async {
        let (code, checks) = switchboard.consul_get("/v1/health/checks/orders").await;
        let check = (checks.as_array().map(Vec::as_slice).unwrap_or_default())
            .iter()
            .find(|check| check["CheckID"] == check_id.as_str())
            .cloned();
        match check {
            Some(check) if check["Status"] == status => Ok(check),
            _ => Err(format!("{code} {checks}")),
        }
    })
    .await
}

/// The ids `GET /v1/health/service/orders?passing=<passing>` lists, as Spring asks.
async fn discovered(switchboard: &Switchboard, passing: bool) -> Vec<String> {
    let path = format!("/v1/health/service/orders?passing={passing}");
    let (status, entries) = switchboard.consul_get(&path).await;
    assert_eq!(status, 200, "GET {path}: {entries}");
    let mut ids: Vec<String> = (entries.as_array().map(Vec::as_slice).unwrap_or_default())
        .iter()
        .map(|entry| entry["Service"]["ID"].as_str().unwrap_or("?").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spring_registration_goes_critical_when_the_app_stops_and_passing_when_it_returns() {
    let mut app = App::start_on(0).await;
    let port = app.port;
    let switchboard = Switchboard::start("", &[], Door::OwnListener).await;
    let id = format!("orders-{port}");
    register(&switchboard, &spring_registration(&id, port, None)).await;

    wait_check(&switchboard, &id, "passing").await;
    assert_eq!(discovered(&switchboard, true).await, [id.as_str()]);

    app.stop().await;
    let check = wait_check(&switchboard, &id, "critical").await;
    assert!(
        check["Output"].as_str().is_some_and(|o| !o.is_empty()),
        "a critical HTTP check says why in Output: {check}"
    );
    assert_eq!(
        discovered(&switchboard, true).await,
        Vec::<String>::new(),
        "?passing=true leaves the critical instance out"
    );
    assert_eq!(
        discovered(&switchboard, false).await,
        [id.as_str()],
        "?passing=false (Spring's default) still lists it"
    );

    let _app = App::start_on(port).await;
    wait_check(&switchboard, &id, "passing").await;
    assert_eq!(discovered(&switchboard, true).await, [id.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregister_critical_service_after_removes_a_spring_registration_whose_app_stopped() {
    let mut app = App::start_on(0).await;
    let port = app.port;
    let switchboard = Switchboard::start(
        "",
        &[("SWITCHBOARD_HEALTH__DEREGISTER_MIN", "1s")],
        Door::OwnListener,
    )
    .await;
    let id = format!("orders-{port}");
    register(&switchboard, &spring_registration(&id, port, Some("2s"))).await;
    wait_check(&switchboard, &id, "passing").await;

    app.stop().await;
    let stopped = Instant::now();
    wait_check(&switchboard, &id, "critical").await;
    poll("the critical registration to be removed", SLOW, || async {
        let (_, nodes) = switchboard.consul_get("/v1/catalog/service/orders").await;
        let (_, local) = switchboard.consul_get("/v1/agent/services").await;
        let gone = nodes == json!([]) && local.get(&id).is_none();
        gone.then_some(())
            .ok_or_else(|| format!("catalog {nodes}, agent {local}"))
    })
    .await;
    let took = stopped.elapsed();
    println!("removed {took:?} after the app stopped");
    assert!(
        took >= Duration::from_secs(2),
        "removed {took:?} after the app stopped, before it was critical for the 2s asked"
    );
    assert_eq!(discovered(&switchboard, false).await, Vec::<String>::new());
}

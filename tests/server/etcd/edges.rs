//! The awkward cases: a value that is neither JSON nor `host:port`, a first endpoint
//! that is dead, credentials that must never show, and `/ready` waiting for the first
//! full view (or the first failed attempt) of every source.

use tokio::task::JoinHandle;

use crate::etcd::harness::{
    addresses, etcd_source, load_config, source_status, start_server, wait_addresses, wait_state,
    SLOW, SOURCE,
};
use crate::etcd::proxy::{Mode, Proxy};
use crate::support::etcd::EtcdServer;
use crate::support::{free_port, wait_until, TestServer};

const GARBAGE: &str = "not json and not host:port";

fn error_message(status: &serde_json::Value) -> String {
    status["last_error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_value_is_skipped_and_reported_while_the_rest_works() {
    let etcd = EtcdServer::start().await;
    etcd.put("/services/web/good", "10.0.0.1:80").await;
    etcd.put("/services/web/bad", GARBAGE).await;
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", "")).await;
    wait_addresses(&server, "web", &["10.0.0.1:80"]).await;
    let status = wait_until("the skipped key to be reported", SLOW, || async {
        let status = source_status(&server, SOURCE).await;
        error_message(&status)
            .contains("/services/web/bad")
            .then_some(status)
    })
    .await;
    assert!(status["skipped"].as_u64().unwrap_or(0) >= 1, "{status}");
    assert!(status["last_error"]["time"].is_string(), "{status}");
    println!("state with a skipped value: {}", status["state"]);
    assert!(
        ["ready", "degraded"].contains(&status["state"].as_str().unwrap_or_default()),
        "{status}"
    );

    // Live, too: a bad value arriving on the watch, next to a good one.
    let skipped = status["skipped"].as_u64().unwrap();
    etcd.put("/services/web/bad2", GARBAGE).await;
    etcd.put("/services/web/good2", "10.0.0.2:80").await;
    wait_addresses(&server, "web", &["10.0.0.1:80", "10.0.0.2:80"]).await;
    let status = wait_until("the second skipped key", SLOW, || async {
        let status = source_status(&server, SOURCE).await;
        error_message(&status)
            .contains("/services/web/bad2")
            .then_some(status)
    })
    .await;
    assert!(status["skipped"].as_u64().unwrap() > skipped, "{status}");
    assert_eq!(
        addresses(&server, "web").await,
        ["10.0.0.1:80", "10.0.0.2:80"]
    );
    // A good value overwritten with garbage: etcd no longer says where it is, so it goes.
    etcd.put("/services/web/good2", GARBAGE).await;
    wait_addresses(&server, "web", &["10.0.0.1:80"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_endpoint_fails_over_to_the_second() {
    let etcd = EtcdServer::start().await;
    etcd.put("/services/pay/p1", "10.0.2.1:80").await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let endpoints = [dead, etcd.endpoint()];
    let (server, _dir) = start_server(&etcd_source(&endpoints, "/services/", "")).await;
    let ready = wait_state(&server, "ready").await;
    println!(
        "two endpoints, first dead: endpoint shown {}",
        ready["endpoint"]
    );
    wait_addresses(&server, "pay", &["10.0.2.1:80"]).await;
    etcd.put("/services/pay/p2", "10.0.2.2:80").await;
    wait_addresses(&server, "pay", &["10.0.2.1:80", "10.0.2.2:80"]).await;
}

/// Fails the test if any status or metrics page shows `secret`.
async fn assert_not_shown(server: &TestServer, secret: &str) {
    for path in ["/api/v1/sources", "/api/v1/sources/etcd-main", "/metrics"] {
        let body = server.client.get(server.url(path)).send().await.unwrap();
        let body = body.text().await.unwrap();
        assert!(!body.contains(secret), "{path} shows the password: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_sources_read_and_never_show_their_password() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/services/vault/v1", "10.0.4.1:80").await;
    let secret = "Pa55-w0rd-never-shown";
    etcd.enable_auth("switchboard", secret, "/services/").await;

    let extra = format!("username = \"switchboard\"\npassword = \"{secret}\"");
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", &extra)).await;
    wait_addresses(&server, "vault", &["10.0.4.1:80"]).await;
    etcd.put("/services/vault/v2", "10.0.4.2:80").await;
    wait_addresses(&server, "vault", &["10.0.4.1:80", "10.0.4.2:80"]).await;
    assert_eq!(wait_state(&server, "ready").await["state"], "ready");
    assert_not_shown(&server, secret).await;
    // A restart invalidates etcd's simple tokens: the source must log in again.
    etcd.restart().await;
    etcd.put("/services/vault/v3", "10.0.4.3:80").await;
    wait_addresses(
        &server,
        "vault",
        &["10.0.4.1:80", "10.0.4.2:80", "10.0.4.3:80"],
    )
    .await;

    let wrong = "Wr0ng-pa55-never-shown";
    let extra = format!("username = \"switchboard\"\npassword = \"{wrong}\"");
    let (server, _dir) = start_server(&etcd_source(&[etcd.endpoint()], "/services/", &extra)).await;
    let status = wait_state(&server, "down").await;
    println!("wrong password: {}", status["last_error"]);
    assert!(error_message(&status).contains("auth"), "{status}");
    assert_not_shown(&server, wrong).await;
}

/// Switchboard served from this process without waiting for `/ready`.
struct Unready {
    base: String,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Unready {
    async fn start(toml: &str, dir: &std::path::Path) -> Unready {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = load_config(dir, toml);
        let task = tokio::spawn(switchboard::run(listener, config, std::future::pending()));
        Unready { base, task }
    }

    async fn ready(&self) -> u16 {
        let url = format!("{}/ready", self.base);
        reqwest::get(url).await.unwrap().status().as_u16()
    }
}

impl Drop for Unready {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_the_first_full_view() {
    let etcd = EtcdServer::start().await;
    etcd.put("/services/boot/b1", "10.0.3.1:80").await;
    etcd.put("/services/boot/b2", "10.0.3.2:80").await;
    // A slow etcd: connections are accepted but not answered until released.
    let proxy = Proxy::start(etcd.client_port(), Mode::Hold).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = etcd_source(&[proxy.endpoint()], "/services/", "");
    let server = Unready::start(&toml, dir.path()).await;
    assert_eq!(
        server.ready().await,
        503,
        "ready before the source's first view"
    );

    proxy.set(Mode::Forward);
    wait_until("/ready to answer 200", SLOW, || async {
        (server.ready().await == 200).then_some(())
    })
    .await;
    // Ready means the first view is served: no window where ready answers with nothing.
    let url = format!("{}/api/v1/services/boot/instances", server.base);
    let listed: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_does_not_wait_forever_for_an_unreachable_source() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(dir.path(), &etcd_source(&[dead], "/services/", ""));
    // `TestServer::start` waits for `/ready`: the failed first attempt must release it.
    let server = TestServer::start(config).await;
    let status = source_status(&server, SOURCE).await;
    assert_ne!(status["state"], "ready", "{status}");
    assert!(!status["last_error"].is_null(), "{status}");
    let (code, _) = server.get_json("/api/v1/services").await;
    assert_eq!(code, 200);
}

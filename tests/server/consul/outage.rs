//! Consul misbehaving: its index going backwards (a snapshot restore), the agent gone and
//! back, answering 500s, a dead first endpoint, and a token it refuses. Switchboard keeps
//! serving the last view (stale) while it cannot read, says why in the source's status,
//! and converges to exactly Consul's content once it can.

use consul_double::{ConsulDouble, Options};
use tempfile::TempDir;

use crate::consul::harness::{consul_source, service, wait_state, SOURCE};
use crate::sources::{assert_status_shape, instances, start_server, wait_addresses, wait_fresh};
use crate::support::{free_port, TestServer};

/// `(service, address)` pairs, as `served_from` lists them.
fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = expected
        .iter()
        .map(|(s, a)| ((*s).to_owned(), (*a).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Waits until Switchboard serves exactly `expected` from Consul (each once), none stale.
async fn wait_served(server: &TestServer, expected: &[(&str, &str)]) {
    wait_fresh(server, SOURCE, &pairs(expected)).await;
}

/// A double with `web` at 10.0.0.1:80 and 10.0.0.2:80, and a Switchboard serving both.
async fn serving_two() -> (ConsulDouble, TestServer, TempDir) {
    let consul = ConsulDouble::start().await;
    consul.register(service("web", "a", "10.0.0.1", 80)).await;
    consul.register(service("web", "b", "10.0.0.2", 80)).await;
    let (server, dir) = start_server(&consul_source(&[consul.url()], "")).await;
    wait_served(&server, &[("web", "10.0.0.1:80"), ("web", "10.0.0.2:80")]).await;
    (consul, server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_going_backwards_resyncs_without_duplicates() {
    let (consul, server, _dir) = serving_two().await;

    // Every parked query wakes with an index far below the one it blocked on.
    let high = consul.index();
    consul.restore_index(1);
    assert!(consul.index() < high);
    consul.register(service("web", "c", "10.0.0.3", 80)).await;
    consul.deregister("a").await;
    consul
        .register(service("api", "api-1", "10.0.1.1", 90))
        .await;
    wait_served(
        &server,
        &[
            ("api", "10.0.1.1:90"),
            ("web", "10.0.0.2:80"),
            ("web", "10.0.0.3:80"),
        ],
    )
    .await;
    let status = wait_state(&server, "ready").await;
    assert_eq!(status["reconnects"], 0, "resynced in place: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_down_serves_stale_and_converges_when_back() {
    let (consul, server, _dir) = serving_two().await;

    consul.stop().await;
    let down = wait_state(&server, "down").await;
    assert_status_shape(&down);
    assert_eq!(down["last_error"]["kind"], "connection", "{down}");
    assert!(!down["stale_since"].is_null(), "{down}");
    let served = instances(&server, "web").await;
    assert_eq!(served.len(), 2, "the last view is still served: {served:?}");
    assert!(served.iter().all(|i| i["stale"] == true), "{served:?}");

    consul.resume().await;
    consul.deregister("a").await;
    consul.register(service("web", "c", "10.0.0.3", 80)).await;
    wait_served(&server, &[("web", "10.0.0.2:80"), ("web", "10.0.0.3:80")]).await;
    let ready = wait_state(&server, "ready").await;
    assert!(ready["stale_since"].is_null(), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_answering_500_is_an_outage_of_the_source() {
    let consul = ConsulDouble::start().await;
    consul.register(service("web", "a", "10.0.0.1", 80)).await;
    let (server, _dir) = start_server(&consul_source(&[consul.url()], "")).await;
    wait_served(&server, &[("web", "10.0.0.1:80")]).await;

    consul.set_failing(true);
    let down = wait_state(&server, "down").await;
    let message = down["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("500"), "{down}");
    wait_addresses(&server, "web", &["10.0.0.1:80"]).await;

    consul.set_failing(false);
    consul.register(service("web", "b", "10.0.0.2", 80)).await;
    wait_served(&server, &[("web", "10.0.0.1:80"), ("web", "10.0.0.2:80")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_endpoint_fails_over_to_the_next() {
    let consul = ConsulDouble::start().await;
    consul.register(service("web", "a", "10.0.0.1", 80)).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let toml = consul_source(&[dead, consul.url()], "timeout = \"1s\"");
    let (server, _dir) = start_server(&toml).await;
    let ready = wait_state(&server, "ready").await;
    assert_eq!(ready["endpoint"], consul.url(), "{ready}");
    wait_served(&server, &[("web", "10.0.0.1:80")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_an_auth_error_and_never_shown() {
    let options = Options {
        token: Some("the-right-token".to_owned()),
        ..Options::default()
    };
    let consul = ConsulDouble::start_with(options).await;
    consul.set_token(None);
    consul.register(service("web", "a", "10.0.0.1", 80)).await;
    consul.set_token(Some("the-right-token"));

    let wrong = consul_source(&[consul.url()], "token = \"a-wrong-token\"");
    let (server, _dir) = start_server(&wrong).await;
    let down = wait_state(&server, "down").await;
    assert_eq!(down["last_error"]["kind"], "auth", "{down}");
    let message = down["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("403"), "{down}");
    let (_, everything) = server.get_json("/api/v1/sources").await;
    assert!(
        !everything.to_string().contains("a-wrong-token"),
        "{everything}"
    );
    drop(server);

    let right = consul_source(&[consul.url()], "token = \"the-right-token\"");
    let (server, _dir) = start_server(&right).await;
    wait_state(&server, "ready").await;
    wait_served(&server, &[("web", "10.0.0.1:80")]).await;
}

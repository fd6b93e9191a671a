//! Reads of a Switchboard that federates sources, shared by the tests of every adapter:
//! a server configured through a real TOML file with `[[sources]]`, its discovery and
//! source-status API, and waits on both.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use switchboard::config::{Config, Overrides};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::support::{wait_until, TestServer};

/// How long the server-level waits may take; a source's reconnect backoff counts too.
pub const SLOW: Duration = Duration::from_secs(20);

/// Checks that a source status has every documented field, with the right types.
pub fn assert_status_shape(status: &Value) {
    let strings = ["id", "type", "state"];
    let numbers = ["priority", "instances", "services", "reconnects", "skipped"];
    let nullable = ["endpoint", "last_error", "last_sync", "stale_since"];
    for key in strings {
        assert!(status[key].is_string(), "`{key}` is not a string: {status}");
    }
    for key in numbers {
        assert!(status[key].is_number(), "`{key}` is not a number: {status}");
    }
    for key in nullable {
        assert!(status.get(key).is_some(), "`{key}` is missing: {status}");
    }
    let states = [
        "connecting",
        "syncing",
        "ready",
        "degraded",
        "down",
        "disconnected",
    ];
    let state = status["state"].as_str().unwrap_or_default();
    assert!(states.contains(&state), "unknown state: {status}");
    if !status["last_error"].is_null() {
        assert!(status["last_error"]["message"].is_string(), "{status}");
        rfc3339(&status["last_error"]["time"], "last_error.time");
    }
    for key in ["last_sync", "stale_since"] {
        if !status[key].is_null() {
            rfc3339(&status[key], key);
        }
    }
}

/// Loads a config the way `switchboard serve --config FILE --data-dir DIR` does, with the
/// fast sweeps of `support::test_config`.
pub fn load_config(dir: &Path, toml: &str) -> Config {
    let file = dir.join("switchboard.toml");
    std::fs::write(&file, toml).unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.join("data")),
        ..Overrides::default()
    };
    let mut config = Config::load_from(Some(&file), std::iter::empty(), &overrides)
        .unwrap_or_else(|err| panic!("config rejected: {err}\n{toml}"));
    config.registry.expiry_interval = Duration::from_millis(50);
    config.registry.heartbeat_flush_interval = Duration::from_millis(100);
    config
}

/// Switchboard (in this process) watching etcd through the given source tables.
pub async fn start_server(toml: &str) -> (TestServer, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(load_config(dir.path(), toml)).await;
    (server, dir)
}

/// `GET /api/v1/services/{service}/instances`, which must answer 200.
pub async fn instances(server: &TestServer, service: &str) -> Vec<Value> {
    let path = format!("/api/v1/services/{service}/instances");
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body.as_array().cloned().unwrap_or_default()
}

/// The sorted addresses of a service's instances.
pub async fn addresses(server: &TestServer, service: &str) -> Vec<String> {
    sorted_addresses(&instances(server, service).await)
}

/// The `address` of each instance, sorted.
pub fn sorted_addresses(instances: &[Value]) -> Vec<String> {
    let mut found: Vec<String> = instances
        .iter()
        .map(|i| i["address"].as_str().unwrap_or_default().to_owned())
        .collect();
    found.sort();
    found
}

/// Waits until `service` has exactly `expected` addresses; returns how long that took.
pub async fn wait_addresses(server: &TestServer, service: &str, expected: &[&str]) -> Duration {
    let mut expected: Vec<String> = expected.iter().map(|a| (*a).to_owned()).collect();
    expected.sort();
    let started = Instant::now();
    let what = format!("{service} to have exactly {expected:?}");
    wait_until(&what, SLOW, || async {
        (addresses(server, service).await == expected).then_some(())
    })
    .await;
    started.elapsed()
}

/// `GET /api/v1/sources/{id}`, which must answer 200.
pub async fn source_status(server: &TestServer, id: &str) -> Value {
    let path = format!("/api/v1/sources/{id}");
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits until source `id`'s `state` is `state`; returns its status then.
pub async fn wait_source_state(server: &TestServer, id: &str, state: &str) -> Value {
    let what = format!("source {id} to be {state}");
    wait_until(&what, SLOW, || async {
        let status = source_status(server, id).await;
        (status["state"] == state).then_some(status)
    })
    .await
}

/// Every `(service, address)` Switchboard serves from source `id`, as a sorted list, so
/// an endpoint served twice shows up twice.
pub async fn served_from(server: &TestServer, id: &str) -> Vec<(String, String)> {
    let (status, listing) = server.get_json("/api/v1/services").await;
    assert_eq!(status, 200, "GET /api/v1/services: {listing}");
    let mut found = Vec::new();
    for service in listing.as_array().cloned().unwrap_or_default() {
        let name = service["name"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/services/{name}/instances?source={id}");
        let (_, list) = server.get_json(&path).await;
        for instance in list.as_array().cloned().unwrap_or_default() {
            let address = instance["address"].as_str().unwrap_or_default().to_owned();
            found.push((name.clone(), address));
        }
    }
    found.sort();
    found
}

/// Waits until Switchboard serves from source `id` exactly `expected` (sorted
/// `(service, address)` pairs, as [`served_from`] lists them: no leftovers, no duplicates)
/// and nothing of it is stale; returns how long that took.
pub async fn wait_fresh(server: &TestServer, id: &str, expected: &[(String, String)]) -> Duration {
    let started = Instant::now();
    let give_up = started + SLOW;
    loop {
        let found = served_from(server, id).await;
        if found == expected && !any_stale(server, &found).await {
            return started.elapsed();
        }
        assert!(
            Instant::now() < give_up,
            "Switchboard did not converge to the source's content within {SLOW:?}\n\
             source:      {expected:?}\nSwitchboard: {found:?}\nstatus: {}",
            source_status(server, id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn any_stale(server: &TestServer, found: &[(String, String)]) -> bool {
    let services: BTreeSet<&str> = found.iter().map(|(s, _)| s.as_str()).collect();
    for service in services {
        let list = instances(server, service).await;
        if list.iter().any(|i| i["stale"] == true) {
            return true;
        }
    }
    false
}

/// Parses an RFC 3339 time the API returned, naming the field when it is not one.
pub fn rfc3339(value: &Value, field: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {value}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|err| panic!("{field} {text}: {err}"))
}

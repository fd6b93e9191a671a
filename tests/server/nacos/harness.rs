//! What the Nacos tests share: `[[sources]]` tables for a Nacos source, reads of a
//! service placed in any namespace and group, and the source's state.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::sources::{wait_source_state, SLOW};
use crate::support::{wait_until, TestServer};

/// The source id most tests use.
pub const SOURCE: &str = "nacos-main";

/// A `[[sources]]` table for the Nacos source `nacos-main` on `endpoint`, plus `extra`
/// lines (`namespace = "dev"`, `service_refresh = "60s"`, ...).
pub fn nacos_source(endpoint: &str, extra: &str) -> String {
    named_source(SOURCE, endpoint, extra)
}

/// [`nacos_source`] with another id.
pub fn named_source(id: &str, endpoint: &str, extra: &str) -> String {
    format!("[[sources]]\nid = {id:?}\ntype = \"nacos\"\nendpoints = [{endpoint:?}]\n{extra}\n")
}

/// Where Switchboard serves a service: `(namespace, group, name)`.
pub type Placed<'a> = (&'a str, &'a str, &'a str);

/// `GET /api/v1/services/{name}/instances?namespace=..&group=..`, which must answer 200.
pub async fn instances_at(server: &TestServer, (namespace, group, name): Placed<'_>) -> Vec<Value> {
    let path = format!("/api/v1/services/{name}/instances?namespace={namespace}&group={group}");
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body.as_array().cloned().unwrap_or_default()
}

/// The sorted addresses Switchboard serves at `placed`.
pub async fn addresses_at(server: &TestServer, placed: Placed<'_>) -> Vec<String> {
    crate::sources::sorted_addresses(&instances_at(server, placed).await)
}

/// Waits until `placed` has exactly `expected` addresses; returns how long that took.
pub async fn wait_addresses_at(
    server: &TestServer,
    placed: Placed<'_>,
    expected: &[&str],
) -> Duration {
    let mut expected: Vec<String> = expected.iter().map(|a| (*a).to_owned()).collect();
    expected.sort();
    let started = Instant::now();
    loop {
        let found = addresses_at(server, placed).await;
        if found == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < SLOW,
            "{placed:?} did not have exactly {expected:?} within {SLOW:?}; it has {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the instance at `address` of `placed` satisfies `check`; returns it and
/// how long that took.
pub async fn wait_instance(
    server: &TestServer,
    placed: Placed<'_>,
    address: &str,
    what: &str,
    check: fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    let what = format!("{address} of {placed:?}: {what}");
    let instance = wait_until(&what, SLOW, || async {
        let list = instances_at(server, placed).await;
        list.into_iter()
            .find(|i| i["address"] == address)
            .filter(check)
    })
    .await;
    (instance, started.elapsed())
}

/// Waits until `nacos-main`'s `state` is `state`; returns its status then.
pub async fn wait_state(server: &TestServer, state: &str) -> Value {
    wait_source_state(server, SOURCE, state).await
}

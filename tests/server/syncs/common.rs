//! What the sync-back tests share: job calls and waits, plans, rnacos reads.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::managed::harness::{poll, poll_json, post};
use crate::sources::SLOW;
use crate::support::rnacos::{RnacosServer, DEFAULT_GROUP, PUBLIC};
use crate::support::TestServer;
use consul_double::ConsulDouble;

/// `/api/v1/syncs/{id}`.
pub fn sync_path(id: &str) -> String {
    format!("/api/v1/syncs/{id}")
}

/// `GET /api/v1/syncs/{id}/status`, which must answer 200.
pub async fn sync_status(server: &TestServer, id: &str) -> Value {
    let path = format!("{}/status", sync_path(id));
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits until job `id`'s status satisfies `check`; returns the status then.
pub async fn wait_sync(
    server: &TestServer,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("sync {id}: {what}");
    poll_json(&what, SLOW, || sync_status(server, id), check).await
}

/// A job has finished a pass and nothing waits to be written.
pub fn at_rest(status: &Value) -> bool {
    status["last_run"].is_string() && status["pending_services"] == 0
}

/// `POST /api/v1/syncs`, which must answer 201 with a running API job; returns the view.
pub async fn create_sync(server: &TestServer, definition: &Value) -> Value {
    let (status, view) = post(server, "/api/v1/syncs", definition).await;
    assert_eq!(status, 201, "POST /api/v1/syncs {definition}: {view}");
    assert_eq!(view["id"], definition["id"], "{view}");
    assert_eq!(view["origin"], "api", "{view}");
    assert_eq!(view["paused"], false, "{view}");
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["to"], definition["to"], "{view}");
    for field in ["from", "debounce", "delete"] {
        if !definition[field].is_null() {
            assert_eq!(view["config"][field], definition[field], "{field}: {view}");
        }
    }
    view
}

/// `POST /api/v1/syncs:plan`, which must answer 200; returns the plan.
pub async fn plan_of(server: &TestServer, definition: &Value) -> Value {
    let (status, plan) = post(server, "/api/v1/syncs:plan", definition).await;
    assert_eq!(status, 200, "POST /api/v1/syncs:plan {definition}: {plan}");
    plan
}

/// The entries of a plan's list `field` (`writes`, `deletes`, `held_deletes`).
pub fn planned<'a>(plan: &'a Value, field: &str) -> &'a [Value] {
    plan[field]
        .as_array()
        .unwrap_or_else(|| panic!("`{field}` is not an array: {plan}"))
}

/// `(service, host, port)` of planned instances (`service` an object) or served ones
/// (`service` the name), as a set.
pub fn endpoints_of(entries: &[Value]) -> BTreeSet<(String, String, u64)> {
    entries
        .iter()
        .map(|entry| {
            let service = &entry["service"];
            let name = service["name"].as_str().or(service.as_str());
            let name = name.unwrap_or_default();
            let host = entry["host"].as_str().unwrap_or_default();
            (
                name.to_owned(),
                host.to_owned(),
                entry["port"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A `[[sources]]` table for a Nacos source with the default placement, which reads
/// `DEFAULT_GROUP` as Switchboard's `DEFAULT`: an etcd service and its copies meet, and
/// copies land in `DEFAULT_GROUP`.
pub fn nacos_table(id: &str, endpoint: &str) -> String {
    format!("[[sources]]\nid = {id:?}\ntype = \"nacos\"\nendpoints = [{endpoint:?}]\n")
}

/// The `ip:port` of every instance rnacos lists in `service` (public, `DEFAULT_GROUP`),
/// sorted, duplicates kept.
pub async fn nacos_addresses(nacos: &RnacosServer, service: &str) -> Vec<String> {
    let hosts = nacos_hosts(nacos, service).await;
    let mut addresses: Vec<String> = hosts
        .iter()
        .map(|h| format!("{}:{}", h["ip"].as_str().unwrap_or_default(), h["port"]))
        .collect();
    addresses.sort();
    addresses
}

/// Waits until rnacos lists exactly `expected` (any order) in `service`.
pub async fn wait_nacos_addresses(nacos: &RnacosServer, service: &str, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|a| (*a).to_owned()).collect();
    expected.sort();
    let what = format!("rnacos's {service} to be exactly {expected:?}");
    poll(&what, SLOW, || async {
        let found = nacos_addresses(nacos, service).await;
        match found == expected {
            true => Ok(()),
            false => Err(format!("{found:?}")),
        }
    })
    .await;
}

/// `(service, address)` pairs, sorted, as `wait_fresh` takes them.
pub fn served(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(s, a)| ((*s).to_owned(), (*a).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// rnacos's entries of `service` in `public`/`DEFAULT_GROUP`.
pub async fn nacos_hosts(nacos: &RnacosServer, service: &str) -> Vec<Value> {
    nacos.hosts(PUBLIC, DEFAULT_GROUP, service).await
}

/// The Consul double's `GET /v1/health/service/{name}`: one entry (`Service`, `Checks`)
/// per registration.
pub async fn consul_health(consul: &ConsulDouble, name: &str) -> Vec<Value> {
    let url = format!("{}/v1/health/service/{name}", consul.url());
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body.as_array().cloned().unwrap_or_default()
}

pub fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

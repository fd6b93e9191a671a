//! Native writes under load: a mutation cut off by a client's hang-up happens entirely or
//! not at all, an acknowledged one survives `kill -9`, the steps of one client keep their
//! order while others write beside it, and removing a service reports what it removed.
//! Each test drives a real server (the binary where a restart or `kill -9` matters, in
//! process otherwise) with many concurrent clients, and reads the result back through
//! both the registry (`GET /api/v1/instances/{id}`) and discovery.

mod hang_up;
mod kill_9;
mod order;
mod remove_service;

use std::collections::BTreeMap;

use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};

use crate::support::DEADLINE;

/// Registration, status and state values a test picks from.
const REGISTER_STATUSES: [&str; 3] = ["active", "inactive", "maintenance"];
const STATUSES: [&str; 4] = ["active", "inactive", "maintenance", "offline"];
/// Long enough that nothing a test registers expires while it runs.
const TTL_SECONDS: u64 = 600;

/// A client that opens a connection per request: a request cut off by a hang-up leaves no
/// pooled connection behind, and an acknowledged one never meets a connection the server
/// is closing. Every request it sends gives up after [`DEADLINE`].
fn one_shot_client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(DEADLINE)
        .build()
        .expect("build a reqwest client")
}

/// `POST /api/v1/instances` with an explicit id.
async fn register(
    client: &Client,
    base: &str,
    id: &str,
    service: &str,
    address: &str,
    status: &str,
) -> Result<(u16, Value), String> {
    let body = json!({
        "id": id, "service": service, "address": address, "status": status,
        "ttl_seconds": TTL_SECONDS,
    });
    send(client.post(format!("{base}/api/v1/instances")).json(&body)).await
}

/// `DELETE /api/v1/instances/{id}`.
async fn deregister(client: &Client, base: &str, id: &str) -> Result<(u16, Value), String> {
    send(client.delete(format!("{base}/api/v1/instances/{id}"))).await
}

/// `PUT /api/v1/instances/{id}/status`.
async fn set_status(
    client: &Client,
    base: &str,
    id: &str,
    status: &str,
) -> Result<(u16, Value), String> {
    let url = format!("{base}/api/v1/instances/{id}/status");
    send(client.put(url).json(&json!({ "status": status }))).await
}

/// A keep-alive client for reads; every request gives up after [`DEADLINE`].
fn pooled_client() -> Client {
    Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("build a reqwest client")
}

/// Sends `request` through its builder's client (so that client's pool and timeout apply)
/// and reads the JSON reply (`Null` when the body is not JSON). `Err` names the request
/// when the transport failed.
async fn send(request: RequestBuilder) -> Result<(u16, Value), String> {
    let (client, request) = request.build_split();
    let request = request.map_err(|err| err.to_string())?;
    let what = format!("{} {}", request.method(), request.url().path());
    let response = client
        .execute(request)
        .await
        .map_err(|err| format!("{what}: {err}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("{what}: {err}"))?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// What the registry says of `id`: its instance, or `None` on a 404.
async fn registry_view(client: &Client, base: &str, id: &str) -> Result<Option<Value>, String> {
    match send(client.get(format!("{base}/api/v1/instances/{id}"))).await? {
        (200, body) => Ok(Some(body)),
        (404, body) if body["code"] == "instance_not_found" => Ok(None),
        (status, body) => Err(format!("GET instance {id}: {status} {body}")),
    }
}

/// What discovery serves for `service`: its instances by id.
async fn discovery_view(
    client: &Client,
    base: &str,
    service: &str,
) -> Result<BTreeMap<String, Value>, String> {
    let url = format!("{base}/api/v1/services/{service}/instances");
    let (status, body) = send(client.get(url)).await?;
    let Some(instances) = body.as_array().filter(|_| status == 200) else {
        return Err(format!("GET {service} instances: {status} {body}"));
    };
    Ok(instances
        .iter()
        .map(|instance| (str_of(instance, "id"), instance.clone()))
        .collect())
}

/// A string field of a JSON reply, or `""`.
fn str_of(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_default().to_owned()
}

//! What the managed-source tests share: JSON calls of any method returning `(status,
//! body)`, source documents for each adapter, problem and view checks, and waits that
//! say what they last saw when they give up.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::sources::{addresses, assert_status_shape, instances, source_status, SLOW};
use crate::support::TestServer;

/// "At once" in the contract (instances removed on disconnect or delete): a read or two.
pub const AT_ONCE: Duration = Duration::from_secs(1);

/// How long a rename by PATCH may take: well under the default `empty_confirm` (10 s).
pub const PROMPTLY: Duration = Duration::from_secs(5);

/// `SLOW` from the shared reads, for waits that include a reconnect backoff.
pub const RECONNECT: Duration = SLOW;

/// One request with an optional JSON body; the status and the body (JSON, or the raw
/// text as a JSON string when it is not JSON, or `null` when empty).
pub async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = server.client.request(method.clone(), server.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body = match text.is_empty() {
        true => Value::Null,
        false => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    };
    (status, body)
}

pub async fn post(server: &TestServer, path: &str, body: &Value) -> (StatusCode, Value) {
    send(server, Method::POST, path, Some(body)).await
}

/// A POST without a body (`connect`, `disconnect`).
pub async fn post_empty(server: &TestServer, path: &str) -> (StatusCode, Value) {
    send(server, Method::POST, path, None).await
}

pub async fn put(server: &TestServer, path: &str, body: &Value) -> (StatusCode, Value) {
    send(server, Method::PUT, path, Some(body)).await
}

/// A JSON merge patch, sent as `application/json` like every other body of the API.
pub async fn patch(server: &TestServer, path: &str, body: &Value) -> (StatusCode, Value) {
    send(server, Method::PATCH, path, Some(body)).await
}

pub async fn delete(server: &TestServer, path: &str) -> (StatusCode, Value) {
    send(server, Method::DELETE, path, None).await
}

/// `/api/v1/sources/{id}`.
pub fn source_path(id: &str) -> String {
    format!("/api/v1/sources/{id}")
}

/// An etcd source document: plain `{prefix}{service}/{id}` = `host:port` keys.
pub fn etcd_doc(id: &str, endpoint: &str, prefix: &str) -> Value {
    json!({ "id": id, "type": "etcd", "endpoints": [endpoint], "prefix": prefix })
}

/// A Consul source document.
pub fn consul_doc(id: &str, endpoint: &str) -> Value {
    json!({ "id": id, "type": "consul", "endpoints": [endpoint] })
}

/// A Nacos source document placing every group in `DEFAULT`, so its services meet other
/// sources' in the default group.
pub fn nacos_doc(id: &str, endpoint: &str) -> Value {
    json!({ "id": id, "type": "nacos", "endpoints": [endpoint], "group": "DEFAULT" })
}

/// A `[[sources]]` table for an etcd source, plus `extra` lines (`priority = 10`, ...).
pub fn etcd_table(id: &str, endpoint: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nid = {id:?}\ntype = \"etcd\"\nendpoints = [{endpoint:?}]\n\
         prefix = {prefix:?}\n{extra}\n"
    )
}

/// A Consul agent registration without checks (so healthy).
pub fn consul_service(name: &str, id: &str, address: &str, port: u16) -> Value {
    json!({ "Name": name, "ID": id, "Address": address, "Port": port })
}

/// `doc` with `extra`'s keys added or replaced.
pub fn with(mut doc: Value, extra: Value) -> Value {
    let (Some(fields), Value::Object(extra)) = (doc.as_object_mut(), extra) else {
        panic!("documents are JSON objects");
    };
    fields.extend(extra);
    doc
}

/// `POST /api/v1/sources`, which must answer 201 with a well-formed view; returns it.
pub async fn create(server: &TestServer, doc: &Value) -> Value {
    let (status, view) = post(server, "/api/v1/sources", doc).await;
    assert_eq!(status, 201, "POST /api/v1/sources {doc}: {view}");
    assert_view_shape(&view);
    assert_eq!(view["id"], doc["id"], "{view}");
    assert_eq!(view["origin"], "api", "{view}");
    assert_eq!(view["connected"], true, "{view}");
    view
}

/// `GET /api/v1/sources`, which must answer 200 with an array.
pub async fn list(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.get_json("/api/v1/sources").await;
    assert_eq!(status, 200, "GET /api/v1/sources: {body}");
    body.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not an array: {body}"))
}

/// The ids `GET /api/v1/sources` lists, in its order.
pub async fn listed_ids(server: &TestServer) -> Vec<String> {
    list(server)
        .await
        .iter()
        .map(|view| view["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `GET /api/v1/sources` without `last_sync`, the one field an idle source may still
/// move: what "nothing changed" compares.
pub async fn settled_list(server: &TestServer) -> Vec<Value> {
    let mut views = list(server).await;
    for view in &mut views {
        if let Some(fields) = view.as_object_mut() {
            fields.remove("last_sync");
        }
    }
    views
}

/// A SourceView: the status fields plus `origin`, `connected` and `config`.
pub fn assert_view_shape(view: &Value) {
    assert_status_shape(view);
    assert!(
        view.get("guard_holds").is_some(),
        "`guard_holds` missing: {view}"
    );
    let origin = view["origin"].as_str().unwrap_or_default();
    assert!(["file", "api"].contains(&origin), "bad `origin`: {view}");
    assert!(
        view["connected"].is_boolean(),
        "`connected` not a bool: {view}"
    );
    assert!(view["config"].is_object(), "`config` not an object: {view}");
    assert_eq!(view["config"]["id"], view["id"], "{view}");
    assert_eq!(view["config"]["type"], view["type"], "{view}");
}

/// A problem document with `status`, `code` and, when given, `field`.
pub fn assert_problem(
    what: &str,
    (status, body): &(StatusCode, Value),
    expected: u16,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(status.as_u16(), expected, "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: {body}");
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{what}: {body}");
    }
}

pub use crate::support::poll;

/// Waits up to `deadline` until `service` has exactly `expected` addresses.
pub async fn wait_addresses_within(
    server: &TestServer,
    service: &str,
    expected: &[&str],
    deadline: Duration,
) {
    let mut expected: Vec<String> = expected.iter().map(|a| (*a).to_owned()).collect();
    expected.sort();
    let what = format!("{service} to have exactly {expected:?}");
    poll(&what, deadline, || async {
        let found = addresses(server, service).await;
        match found == expected {
            true => Ok(()),
            false => Err(format!("{found:?}")),
        }
    })
    .await;
}

/// Waits until the instances of `service` satisfy `check`; returns them.
pub async fn wait_instances(
    server: &TestServer,
    service: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let what = format!("{service}: {what}");
    poll(&what, RECONNECT, || async {
        let list = instances(server, service).await;
        match check(&list) {
            true => Ok(list),
            false => Err(Value::Array(list).to_string()),
        }
    })
    .await
}

/// Waits until source `id` satisfies `check`; returns its view then.
pub async fn wait_source(
    server: &TestServer,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("source {id}: {what}");
    poll_json(&what, RECONNECT, || source_status(server, id), check).await
}

/// Polls `fetch` until what it returns satisfies `check`; returns that. A timeout shows
/// the last one.
pub async fn poll_json<Fut>(
    what: &str,
    deadline: std::time::Duration,
    fetch: impl Fn() -> Fut,
    check: impl Fn(&Value) -> bool,
) -> Value
where
    Fut: std::future::Future<Output = Value>,
{
    poll(what, deadline, || async {
        let value = fetch().await;
        match check(&value) {
            true => Ok(value),
            false => Err(value.to_string()),
        }
    })
    .await
}

/// `GET /api/v1/services/{name}/explain` (public, DEFAULT).
pub async fn explain(server: &TestServer, name: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/services/{name}/explain?namespace=public&group=DEFAULT");
    server.get_json(&path).await
}

/// The `instances` entry of an explain reply reported by `source` as instance `id`.
pub fn explained<'a>(reply: &'a Value, source: &str, id: &str) -> &'a Value {
    let entries = reply["instances"].as_array();
    entries
        .and_then(|list| list.iter().find(|i| i["source"] == source && i["id"] == id))
        .unwrap_or_else(|| panic!("no instance {id} of {source} in {reply}"))
}

/// The `sources` entry of an explain reply for `source`.
pub fn explained_source<'a>(reply: &'a Value, source: &str) -> &'a Value {
    let entries = reply["sources"].as_array();
    entries
        .and_then(|list| list.iter().find(|s| s["id"] == source))
        .unwrap_or_else(|| panic!("no source {source} in {reply}"))
}

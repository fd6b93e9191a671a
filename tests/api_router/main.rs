//! Router-level tests of the HTTP API, driven in-process with `tower::ServiceExt::oneshot`
//! (no sockets): every request goes through the same `axum::Router` `switchboard serve`
//! uses, with its body limit, problem+json errors and fallbacks.
//!
//! This file owns the shared harness: starting (and restarting) an app on a private data
//! directory, sending requests and buffering the answers, registration bodies, and the
//! assertions every module uses, above all [`assert_well_formed_problem`], which checks
//! `application/problem+json` and the `type`, `title`, `status`, `detail` and `code` fields
//! of an error against its status line. The tests live in the modules:
//!
//! - `validation`: the rules of `POST /api/v1/instances`, each at its boundaries.
//! - `errors`: transport and routing errors (413, malformed JSON, wrong types, 415, 404,
//!   405), unknown instances and malformed query parameters.
//! - `rejections`: a batch of invalid requests changes nothing and is never a 5xx.
//! - `endpoints`: the happy paths of the per-instance endpoints and the system endpoints.
//! - `discovery`: the service listing, instance filters, stats and the admin endpoints.

mod discovery;
mod endpoints;
mod errors;
mod rejections;
mod validation;

use std::collections::BTreeSet;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use switchboard::config::Config;
use switchboard::App;
use tempfile::TempDir;
use tower::ServiceExt;

/// The configured (default) request body limit.
const BODY_LIMIT: usize = 64 * 1024;

/// The registration endpoint.
const INSTANCES: &str = "/api/v1/instances";

/// The `Content-Type` of JSON request bodies.
const JSON: Option<&str> = Some("application/json");

/// A started app on a private temporary data directory, and its router.
struct Harness {
    router: axum::Router,
    app: App,
    dir: TempDir,
}

/// A buffered response. `json` is `Value::Null` when the body is not JSON.
struct Reply {
    /// `METHOD uri` of the request, for assertion messages.
    request: String,
    status: StatusCode,
    headers: HeaderMap,
    bytes: Bytes,
    json: Value,
}

impl Reply {
    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Asserts a 2xx JSON answer with exactly `status`.
    #[track_caller]
    fn expect(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}: {}", self.request, self.text());
        assert!(
            self.content_type().starts_with("application/json"),
            "{}: content-type {:?}",
            self.request,
            self.content_type()
        );
        &self.json
    }

    /// The `X-Switchboard-Index` header as a number.
    #[track_caller]
    fn index_header(&self) -> u64 {
        self.headers
            .get("x-switchboard-index")
            .unwrap_or_else(|| panic!("{}: no X-Switchboard-Index header", self.request))
            .to_str()
            .expect("ASCII header")
            .parse()
            .expect("numeric index")
    }
}

impl Harness {
    /// Starts Switchboard with the default config on a fresh temporary data directory.
    async fn start() -> anyhow::Result<Harness> {
        Harness::start_in(tempfile::tempdir()?).await
    }

    async fn start_in(dir: TempDir) -> anyhow::Result<Harness> {
        let config = Config {
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let app = App::start(config).await?;
        Ok(Harness {
            router: app.router(),
            app,
            dir,
        })
    }

    /// Shuts the app down cleanly and starts a new one on the same data directory.
    async fn restart(self) -> anyhow::Result<Harness> {
        let Harness { router, app, dir } = self;
        drop(router);
        app.shutdown().await?;
        Harness::start_in(dir).await
    }

    /// Sends one request through the router and buffers the answer.
    async fn request(&self, request: Request<Body>) -> anyhow::Result<Reply> {
        let label = format!("{} {}", request.method(), request.uri());
        let response = self.router.clone().oneshot(request).await?;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            request: label,
            status: parts.status,
            headers: parts.headers,
            bytes,
            json,
        })
    }

    /// Sends `body` as-is with the given `Content-Type` (none when `None`).
    async fn send_raw(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> anyhow::Result<Reply> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        self.request(builder.body(body.into())?).await
    }

    /// Sends a JSON body (`application/json`), or no body at all when `None`.
    async fn send(&self, method: Method, uri: &str, body: Option<Value>) -> anyhow::Result<Reply> {
        match body {
            Some(body) => self.send_raw(method, uri, JSON, body.to_string()).await,
            None => self.send_raw(method, uri, None, Body::empty()).await,
        }
    }

    async fn get(&self, uri: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, uri, None).await
    }

    /// `GET uri`, asserting a 200 JSON answer; returns the body.
    async fn get_ok(&self, uri: &str) -> anyhow::Result<Value> {
        let reply = self.get(uri).await?;
        reply.expect(StatusCode::OK);
        Ok(reply.json)
    }

    async fn delete(&self, uri: &str) -> anyhow::Result<Reply> {
        self.send(Method::DELETE, uri, None).await
    }

    /// `POST /api/v1/instances` with `body`.
    async fn post_instance(&self, body: Value) -> anyhow::Result<Reply> {
        self.send(Method::POST, INSTANCES, Some(body)).await
    }

    /// `POST /api/v1/instances` with `body` sent as-is, as `application/json`.
    async fn post_raw(&self, body: impl Into<Body>) -> anyhow::Result<Reply> {
        self.send_raw(Method::POST, INSTANCES, JSON, body).await
    }

    /// Registers `body`, asserting it was accepted (201 or 200); returns the instance.
    async fn register(&self, body: Value) -> anyhow::Result<Value> {
        let reply = self.post_instance(body).await?;
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "registration rejected: {} {}",
            reply.status,
            reply.text()
        );
        Ok(reply.json)
    }

    /// Registers `body` like [`Harness::register`]; returns the instance's id.
    async fn register_id(&self, body: Value) -> anyhow::Result<String> {
        let instance = self.register(body).await?;
        Ok(instance["id"].as_str().expect("id").to_owned())
    }

    /// `PUT /api/v1/instances/{id}/heartbeat` without a body.
    async fn heartbeat(&self, id: &str) -> anyhow::Result<Reply> {
        let uri = format!("{INSTANCES}/{id}/heartbeat");
        self.send(Method::PUT, &uri, None).await
    }

    /// `PUT /api/v1/instances/{id}/status` with `{"status": status}`.
    async fn set_status(&self, id: &str, status: &str) -> anyhow::Result<Reply> {
        let uri = format!("{INSTANCES}/{id}/status");
        self.send(Method::PUT, &uri, Some(json!({ "status": status })))
            .await
    }

    /// Posts each body and asserts it is rejected: 400, `code`, and `field` at fault.
    async fn assert_all_invalid(
        &self,
        bodies: impl IntoIterator<Item = Value>,
        code: &str,
        field: &str,
    ) -> anyhow::Result<()> {
        for body in bodies {
            assert_invalid(&self.post_instance(body).await?, code, field);
        }
        Ok(())
    }

    /// Posts each body and asserts it is rejected as 400 `invalid_body`.
    async fn assert_all_invalid_body(
        &self,
        bodies: impl IntoIterator<Item = Value>,
    ) -> anyhow::Result<()> {
        for body in bodies {
            let reply = self.post_instance(body).await?;
            assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_body");
        }
        Ok(())
    }
}

/// A minimal registration body.
fn registration(service: &str, address: &str) -> Value {
    json!({ "service": service, "address": address })
}

/// `base` with `key` set to `value` (base must be an object).
fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

/// Every endpoint of one instance: method, uri and JSON body (a status change to
/// `status` for `PUT .../status`, none for the others).
fn instance_endpoints(id: &str, status: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("{INSTANCES}/{id}"), None),
        (Method::PUT, format!("{INSTANCES}/{id}/heartbeat"), None),
        (
            Method::PUT,
            format!("{INSTANCES}/{id}/status"),
            Some(json!({ "status": status })),
        ),
        (Method::DELETE, format!("{INSTANCES}/{id}"), None),
        (Method::GET, format!("{INSTANCES}/{id}/health"), None),
    ]
}

/// Asserts `reply` is an RFC 9457 problem document with `status` and `code`.
#[track_caller]
fn assert_problem(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}: expected {status} {code}, got {}",
        reply.request,
        reply.text()
    );
    // Checks `type` against the body's own `code` too.
    assert_well_formed_problem(reply);
    assert_eq!(
        reply.json["code"],
        code,
        "{}: {}",
        reply.request,
        reply.text()
    );
}

/// Asserts `reply` is a problem document consistent with its own status line.
#[track_caller]
fn assert_well_formed_problem(reply: &Reply) {
    let what = format!("{} -> {} {}", reply.request, reply.status, reply.text());
    assert_eq!(reply.content_type(), "application/problem+json", "{what}");
    let problem = &reply.json;
    assert!(problem.is_object(), "{what}");
    let code = problem["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "missing code: {what}");
    assert_eq!(
        problem["type"],
        format!("urn:switchboard:problem:{code}"),
        "{what}"
    );
    assert_eq!(
        problem["title"],
        reply.status.canonical_reason().unwrap_or("Error"),
        "{what}"
    );
    assert_eq!(problem["status"], reply.status.as_u16(), "{what}");
    assert!(
        problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "missing detail: {what}"
    );
}

/// Asserts a rejected registration: 400, `code`, and the field at fault.
#[track_caller]
fn assert_invalid(reply: &Reply, code: &str, field: &str) {
    assert_problem(reply, StatusCode::BAD_REQUEST, code);
    assert_eq!(reply.json["field"], field, "{}", reply.text());
}

/// The sorted `id`s of a JSON array of instances.
#[track_caller]
fn ids(instances: &Value) -> Vec<String> {
    let mut ids: Vec<String> = instances
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {instances}"))
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Asserts `object` is a JSON object with (at least) these keys; values may be null.
#[track_caller]
fn assert_has_keys(object: &Value, expected: &[&str]) {
    let present = keys(object);
    for key in expected {
        assert!(present.contains(key), "missing `{key}` in {object}");
    }
}

/// Asserts `object` has these keys, each with a non-null value.
#[track_caller]
fn assert_non_null(object: &Value, expected: &[&str]) {
    for key in expected {
        assert!(!object[key].is_null(), "missing {key}: {object}");
    }
}

/// Asserts each `(key, value)` pair of `object`.
#[track_caller]
fn assert_fields(object: &Value, expected: &[(&str, Value)]) {
    for (key, value) in expected {
        assert_eq!(&object[key], value, "{key} in {object}");
    }
}

/// The key set of a JSON object.
#[track_caller]
fn keys(object: &Value) -> BTreeSet<&str> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[track_caller]
fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
        .parse()
        .expect("RFC 3339 timestamp")
}

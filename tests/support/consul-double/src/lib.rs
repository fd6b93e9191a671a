//! An in-process test double of Consul's HTTP API: one agent on one node, serving the
//! endpoints a service-discovery client uses, with Consul's blocking queries, error texts and
//! headers, plus hooks to make it misbehave the way a real cluster does (ACLs, lost leader,
//! snapshot restore, crash and restart) or the way a lossy registry does (`strip_meta`: one
//! that drops every service's `Meta` on registration).
//!
//! ```text
//!   test ──► ConsulDouble (lib.rs) ── hooks ──────────────┐
//!                 │ start/stop/resume                      ▼
//!            server.rs (accept loop, JoinSet) ──► routes/ (gate: count, failing, ACL)
//!                                                  ├─ read.rs   catalog, health (blocking.rs)
//!                                                  └─ agent.rs  register, deregister, checks
//!                                                          │ (register.rs decodes bodies,
//!                                                          ▼  fields.rs reads them like Consul)
//!            timers.rs (TTL, reaper) ──────────► shared.rs ─► state/ (store, indexes;
//!                                                          │   checks.rs: TTL, reaper)
//!                                                          └► model.rs (response JSON)
//! ```
//!
//! Endpoints: `GET /v1/catalog/services`, `GET /v1/health/service/:name` (`passing`, `tag`),
//! `GET /v1/agent/services`, `GET /v1/status/leader`, `PUT /v1/agent/service/register`
//! (`replace-existing-checks`), `PUT /v1/agent/service/deregister/:id`,
//! `PUT /v1/agent/check/{pass,warn,fail}/:id` (`note`), `PUT /v1/agent/check/update/:id`.
//!
//! Deliberate differences from Consul: HTTP, TCP, gRPC and other probe checks are stored but
//! never run (they keep the status they were registered with, `critical` by default, and
//! refuse pass/warn/fail like Consul does for non-TTL checks); output-only check changes are
//! visible at once (Consul may defer them by `check_update_interval`); reaping happens at the
//! exact deadline and accepts durations under Consul's 1 minute minimum; there is no
//! `filter`, `near`, namespaces, partitions, peering, Connect or hash-based blocking; the ACL
//! gate runs before parameter checks and knows one token with every right.

mod blocking;
mod duration;
mod error;
mod fields;
mod model;
mod register;
mod routes;
mod server;
mod shared;
mod state;
mod timers;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::model::NodeInfo;
use crate::server::Running;
use crate::shared::Shared;

/// How a double starts.
#[derive(Clone, Debug)]
pub struct Options {
    pub datacenter: String,
    pub node: String,
    pub node_address: String,
    /// The ACL token every request must present; `None`: no ACLs.
    pub token: Option<String>,
    /// Port on 127.0.0.1 to listen on; 0 (the default) picks a free one.
    pub port: u16,
    /// Act like a registry that drops service metadata: every service registered while this
    /// is on is stored with an empty `Meta`, so every read shows `"Meta": {}` for it (tags,
    /// address, port, weights and checks are kept as given). Lets tests show that a client
    /// which marks its writes in `Meta` copes when the marks never come back. Default
    /// `false`; see also [`ConsulDouble::set_strip_meta`].
    pub strip_meta: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            datacenter: "dc1".to_owned(),
            node: "node1".to_owned(),
            node_address: "127.0.0.1".to_owned(),
            token: None,
            port: 0,
            strip_meta: false,
        }
    }
}

/// A running Consul double on `127.0.0.1`. Dropping it stops the server and every
/// background task.
pub struct ConsulDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    router: axum::Router,
    /// `None` while stopped.
    server: Mutex<Option<Running>>,
    timers: JoinHandle<()>,
    client: reqwest::Client,
}

impl ConsulDouble {
    /// Starts a double with `Options::default()` on a free port.
    pub async fn start() -> ConsulDouble {
        ConsulDouble::start_with(Options::default()).await
    }

    /// Starts a double on `127.0.0.1`, on `options.port` or a free port.
    pub async fn start_with(options: Options) -> ConsulDouble {
        let node = NodeInfo {
            datacenter: options.datacenter,
            node: options.node,
            address: options.node_address,
            id: uuid::Uuid::new_v4().to_string(),
        };
        let shared = Arc::new(Shared::new(node, options.token, options.strip_meta));
        let router = routes::router(shared.clone());
        let listener = server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port)))
            .unwrap_or_else(|err| {
                panic!("binding the Consul double to port {}: {err}", options.port)
            });
        let addr = listener.local_addr().expect("the listener's address");
        let running = Running::spawn(listener, router.clone());
        let timers = tokio::spawn(timers::run(shared.clone()));
        let client = reqwest::Client::builder()
            .no_proxy()
            // A pooled connection would be broken by `stop()`; open one per call instead.
            .pool_max_idle_per_host(0)
            .build()
            .expect("building the double's own HTTP client");
        ConsulDouble {
            shared,
            addr,
            router,
            server: Mutex::new(Some(running)),
            timers,
            client,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current global (Raft) index.
    pub fn index(&self) -> u64 {
        self.shared.read(|s| s.index())
    }

    /// HTTP requests received so far, on any path (counted on arrival).
    pub fn requests(&self) -> u64 {
        self.shared.requests()
    }

    /// Requests received so far whose path starts with `path_prefix`.
    pub fn requests_to(&self, path_prefix: &str) -> u64 {
        self.shared.requests_to(path_prefix)
    }

    /// Requires this ACL token from now on (`None`: no ACLs).
    pub fn set_token(&self, token: Option<&str>) {
        self.shared.set_token(token.map(str::to_owned));
    }

    /// Turns [`Options::strip_meta`] on or off for later registrations. Services already
    /// stored keep the `Meta` they were stored with, as a real registry's data would.
    pub fn set_strip_meta(&self, strip: bool) {
        self.shared.set_strip_meta(strip);
    }

    /// "Snapshot restore": the global index and every stored index drop to `index` (min
    /// with their value), and every parked blocking query is woken at once and answers
    /// with the new, lower index (real Consul abandons its state store on restore, which
    /// wakes all watchers).
    pub fn restore_index(&self, index: u64) {
        self.shared.write(|s| s.restore(index));
        self.shared.interrupt();
    }

    /// From now on every request (also parked ones, which are woken) answers 500
    /// `rpc error: No cluster leader`; `false` ends it.
    pub fn set_failing(&self, failing: bool) {
        self.shared.set_failing(failing);
    }

    /// Stops accepting connections and drops every open one (in-flight blocking queries get
    /// a broken connection), like a crashed agent. State is kept.
    pub async fn stop(&self) {
        let running = self.lock_server().take();
        if let Some(running) = running {
            running.stop().await;
        }
    }

    /// Listens again on the same port with the same state; returns once it accepts
    /// connections.
    pub async fn resume(&self) {
        if self.lock_server().is_some() {
            return;
        }
        let listener = server::rebind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("rebinding the Consul double to {}: {e}", self.addr));
        let running = Running::spawn(listener, self.router.clone());
        if let Some(raced) = self.lock_server().replace(running) {
            raced.abort();
        }
    }

    /// `PUT /v1/agent/service/register` with `service` as the body; panics unless 200.
    pub async fn register(&self, service: Value) {
        let body = Some(&service);
        self.put_ok("/v1/agent/service/register", body).await;
    }

    /// `PUT /v1/agent/service/deregister/:id`; panics unless 200.
    pub async fn deregister(&self, service_id: &str) {
        let path = format!("/v1/agent/service/deregister/{}", encode(service_id));
        self.put_ok(&path, None).await;
    }

    /// `PUT /v1/agent/check/{pass,warn,fail}/:id`; panics unless 200.
    pub async fn check(&self, action: &str, check_id: &str) {
        assert!(
            matches!(action, "pass" | "warn" | "fail"),
            "check action must be pass, warn or fail, not {action:?}"
        );
        let path = format!("/v1/agent/check/{action}/{}", encode(check_id));
        self.put_ok(&path, None).await;
    }

    /// A PUT through the double's own HTTP API, with the required token if any.
    async fn put_ok(&self, path: &str, body: Option<&Value>) {
        let mut request = self.client.put(format!("{}{path}", self.url()));
        if let Some(token) = self.shared.token() {
            request = request.header("X-Consul-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path} to the Consul double: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "PUT {path} to the Consul double: {text}");
    }

    fn lock_server(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        self.timers.abort();
        if let Some(running) = self.lock_server().take() {
            running.abort();
        }
    }
}

/// Percent-encodes an ID for a path segment (keeping RFC 3986 `pchar`s such as `:`).
fn encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&byte);
        match keep {
            true => encoded.push(char::from(byte)),
            false => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<ConsulDouble>();
    }

    #[test]
    fn ids_are_percent_encoded_for_paths() {
        assert_eq!(encode("service:web-1"), "service:web-1");
        assert_eq!(encode("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}

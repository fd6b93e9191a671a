//! Consul's HTTP API over the merged catalog, so Consul clients (Prometheus, Traefik,
//! Spring Cloud Consul, consul-template, py-consul, ...) work with nothing changed but
//! the address. Served under `/v1/` on the main listener, and on `[consul] listen` too
//! when set.
//!
//! - `reads.rs`: catalog, health, status and agent-info reads, with blocking queries.
//! - `agent.rs`: agent registration, deregistration, maintenance and check updates,
//!   into the native registry.
//! - `encode.rs`: the instance shapes, encoded per chunk into the catalog's slots.
//! - `error.rs`: Consul's plain-text errors.
//! - `acl.rs`: Consul's token locations, checked by `auth` with the native roles.
//!
//! How Switchboard maps onto Consul is documented in `docs/consul.md`.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::registry::Registry;
use crate::telemetry::Metrics;

/// `[consul]`: the Consul-compatible API.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsulConfig {
    /// Serve `/v1/` on the main listener.
    pub enabled: bool,
    /// A listener of its own as well (e.g. `127.0.0.1:8500`, for clients that assume
    /// Consul's port). Unset: the main listener only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The one datacenter Switchboard reports.
    pub datacenter: String,
    /// The agent's node name (`/v1/agent/self`, native instances' node).
    pub node_name: String,
}

impl Default for ConsulConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            datacenter: "dc1".to_owned(),
            node_name: "switchboard".to_owned(),
        }
    }
}

/// What the Consul door's handlers reach.
#[derive(Clone)]
pub struct ConsulState(Arc<ConsulShared>);

pub struct ConsulShared {
    pub catalog: Catalog,
    pub registry: Arc<Registry>,
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    pub config: ConsulConfig,
    /// Turns true when the server is shutting down: blocking queries answer then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Encodes instances in Consul's shapes.
    pub shapes: encode::ConsulShapes,
    /// Takes one of a client's watch slots for a parked blocking query (the API's
    /// `api.max_watches*` limits); the slot is given back when the returned guard drops.
    pub watch_slot: WatchSlot,
    /// The address `/v1/status/leader` and `/v1/agent/self` report (the main listener).
    pub advertise: SocketAddr,
}

/// See [`ConsulShared::watch_slot`].
pub type WatchSlot = Box<
    dyn Fn(Option<std::net::IpAddr>) -> Result<Box<dyn Send + Sync>, error::ConsulError>
        + Send
        + Sync,
>;

impl std::ops::Deref for ConsulState {
    type Target = ConsulShared;

    fn deref(&self) -> &ConsulShared {
        &self.0
    }
}

impl ConsulState {
    pub fn new(shared: ConsulShared) -> ConsulState {
        ConsulState(Arc::new(shared))
    }

    /// Consul's `X-Consul-Default-ACL-Policy`: `deny` when access control is on and
    /// requests without a token may not read.
    pub fn default_policy(&self) -> &'static str {
        if self.auth.enabled() && !self.auth.anonymous_reads() {
            "deny"
        } else {
            "allow"
        }
    }

    /// Completes when the server starts shutting down.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.clone();
        let _ = stopping.wait_for(|stop| *stop).await;
    }
}

pub mod acl;
pub mod agent;
mod agent_checks;
mod agent_reads;
mod agent_register;
pub mod blocking;
mod check_type;
pub mod checks;
mod decode;
mod definition;
pub mod encode;
pub mod error;
pub mod filter;
pub mod info;
pub mod nodes;
pub mod query;
pub mod reads;

use axum::Router;
use switchboard_connectors::{DEFAULT_GROUP, DEFAULT_NAMESPACE};

/// Consul's name for the default namespace.
pub const CONSUL_DEFAULT_NAMESPACE: &str = "default";

/// The Consul API's routes (all under `/v1/`).
pub fn router(state: ConsulState) -> Router {
    reads::routes().merge(agent::routes()).with_state(state)
}

/// The Switchboard namespace of Consul's `ns` (absent, empty or `default`: Switchboard's
/// default namespace).
pub fn namespace_from(ns: Option<&str>) -> &str {
    match ns {
        None | Some("") | Some(CONSUL_DEFAULT_NAMESPACE) => DEFAULT_NAMESPACE,
        Some(ns) => ns,
    }
}

/// Consul's name for a Switchboard namespace.
pub fn consul_namespace(namespace: &str) -> &str {
    if namespace == DEFAULT_NAMESPACE {
        CONSUL_DEFAULT_NAMESPACE
    } else {
        namespace
    }
}

/// The Consul service name of a Switchboard service: its name in the default group,
/// `<group>@@<name>` in any other (Nacos's own spelling of a grouped name).
pub fn consul_service_name(group: &str, name: &str) -> String {
    if group == DEFAULT_GROUP {
        name.to_owned()
    } else {
        format!("{group}@@{name}")
    }
}

/// The Switchboard (group, name) of a Consul service name.
pub fn split_service_name(name: &str) -> (&str, &str) {
    match name.split_once("@@") {
        Some((group, name)) if !group.is_empty() && !name.is_empty() => (group, name),
        _ => (DEFAULT_GROUP, name),
    }
}

/// The connecting client's address (for its watch slots), when the server knows it.
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let info = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>();
        Ok(Peer(info.map(|info| info.0.ip())))
    }
}

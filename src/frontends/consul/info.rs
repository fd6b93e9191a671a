//! What Consul clients ask about the cluster: datacenters, the leader and peers, the
//! agent itself and its members. Switchboard is one server in one datacenter; it says
//! it follows Consul 1.16's API (`Config.Version`), and its own version in `Meta`.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::acl;
use super::encode::node_id;
use super::error::ConsulError;
use super::ConsulState;
use crate::auth::Role;

/// The Consul version whose HTTP API this door follows.
pub const CONSUL_API_VERSION: &str = "1.16.4";

pub fn routes() -> Router<ConsulState> {
    Router::new()
        .route("/v1/catalog/datacenters", get(datacenters))
        .route("/v1/status/leader", get(leader))
        .route("/v1/status/peers", get(peers))
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/members", get(members))
}

async fn datacenters(State(state): State<ConsulState>) -> Json<Vec<String>> {
    Json(vec![state.config.datacenter.clone()])
}

/// Where Consul would say its server RPC listens; here the main listener.
fn server_address(state: &ConsulState) -> String {
    state.advertise.to_string()
}

async fn leader(State(state): State<ConsulState>) -> Json<String> {
    Json(server_address(&state))
}

async fn peers(State(state): State<ConsulState>) -> Json<Vec<String>> {
    Json(vec![server_address(&state)])
}

/// The agent as a serf member: alive, a server, in the configured datacenter.
fn member(state: &ConsulState) -> Value {
    json!({
        "Name": state.config.node_name,
        "Addr": state.advertise.ip().to_string(),
        "Port": state.advertise.port(),
        "Tags": {
            "dc": state.config.datacenter,
            "role": "consul",
            "port": state.advertise.port().to_string(),
            "build": format!("{CONSUL_API_VERSION}:switchboard"),
            "vsn": "2",
        },
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

/// Agent information needs `agent:read` in Consul: here the `read` role.
fn agent_read(
    state: &ConsulState,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), ConsulError> {
    let caller = acl::identify(state, query, headers)?;
    if caller.has(Role::Read) {
        return Ok(());
    }
    let accessor = (caller.0.as_ref())
        .and_then(|caller| caller.token())
        .map(|token| token.id.clone());
    state.metrics.auth_failed("forbidden");
    Err(ConsulError::permission_denied(
        accessor.as_deref(),
        "agent:read",
        &state.config.node_name,
    ))
}

async fn agent_self(
    State(state): State<ConsulState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ConsulError> {
    agent_read(&state, query.as_deref(), &headers)?;
    let config = &state.config;
    Ok(Json(json!({
        "Config": {
            "Datacenter": config.datacenter,
            "PrimaryDatacenter": config.datacenter,
            "NodeName": config.node_name,
            "NodeID": node_id(&config.node_name),
            "Revision": "",
            "Server": true,
            "Version": CONSUL_API_VERSION,
            "BuildDate": "2024-01-01T00:00:00Z",
        },
        "DebugConfig": {},
        "Coord": null,
        "Member": member(&state),
        "Stats": {},
        "Meta": {"switchboard-version": env!("CARGO_PKG_VERSION")},
    }))
    .into_response())
}

async fn members(
    State(state): State<ConsulState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ConsulError> {
    agent_read(&state, query.as_deref(), &headers)?;
    Ok(Json(vec![member(&state)]))
}

//! `/v1/catalog/nodes` and `/v1/catalog/node/{node}`: the nodes merged instances are
//! shown on (an instance's host, or its Consul node; see `encode.rs`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::blocking::Watch;
use super::encode::{self, HealthShape};
use super::error::ConsulError;
use super::reads::{entry_json, Read};
use super::ConsulState;
use crate::catalog::Snapshot;

/// Every visible node with the health entries of its instances, by node name.
fn nodes(read: &Read, state: &ConsulState, snapshot: &Snapshot) -> BTreeMap<String, Vec<Value>> {
    let mut nodes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    if !read.allowed() || read.query.peer.is_some() {
        return nodes;
    }
    let shape = HealthShape(&state.shapes);
    for view in snapshot.services() {
        if view.key.namespace != read.namespace {
            continue;
        }
        for instance in view.instances() {
            let node = encode::node_name(instance).to_owned();
            nodes
                .entry(node)
                .or_default()
                .push(entry_json(&shape, instance));
        }
    }
    nodes
}

/// `GET /v1/catalog/nodes`.
pub async fn list(State(state): State<ConsulState>, read: Read) -> Result<Response, ConsulError> {
    read.query
        .check_filter(|| encode::sample(&HealthShape(&state.shapes))["Node"].take())?;
    read.block(&state, Watch::Catalog).await?;
    let snapshot = state.catalog.snapshot();
    let list: Vec<Value> = nodes(&read, &state, &snapshot)
        .into_values()
        .filter_map(|entries| entries.into_iter().next())
        .map(|mut entry| entry["Node"].take())
        .filter(|node| read.query.node_meta.is_empty() && matches(&read, node))
        .collect();
    let body = Bytes::from(serde_json::to_vec(&list).expect("nodes serialize"));
    Ok(read.reply(&state, body, snapshot.index))
}

fn matches(read: &Read, node: &Value) -> bool {
    (read.query.filter.as_ref()).is_none_or(|filter| filter.matches(node))
}

/// `GET /v1/catalog/node/{node}`: `{Node, Services: {id: service}}`, or `null`.
pub async fn one(
    State(state): State<ConsulState>,
    Path(name): Path<String>,
    read: Read,
) -> Result<Response, ConsulError> {
    read.block(&state, Watch::Catalog).await?;
    let snapshot = state.catalog.snapshot();
    let mut nodes = nodes(&read, &state, &snapshot);
    let body = match nodes.remove(&name) {
        None => Value::Null,
        Some(entries) => {
            let mut services = Map::new();
            let mut node = Value::Null;
            for mut entry in entries {
                node = entry["Node"].take();
                let service = entry["Service"].take();
                let id = service["ID"].as_str().unwrap_or_default().to_owned();
                services.insert(id, service);
            }
            serde_json::json!({"Node": node, "Services": services})
        }
    };
    let body = Bytes::from(serde_json::to_vec(&body).expect("nodes serialize"));
    Ok(read.reply(&state, body, snapshot.index))
}

pub async fn missing() -> ConsulError {
    ConsulError::bad_request("Missing node name")
}

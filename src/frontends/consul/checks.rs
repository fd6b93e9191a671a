//! `/v1/health/checks/{service}` and `/v1/health/state/{state}`: the checks of one
//! service, or every check in a given state (Traefik's watch mode blocks on `any`).

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::blocking::Watch;
use super::encode::{self, HealthCheck};
use super::error::ConsulError;
use super::reads::{service_key, Read};
use super::{consul_service_name, ConsulState};
use crate::catalog::ServiceView;

/// The states `/v1/health/state/{state}` knows (py-consul's list).
const STATES: &[&str] = &["any", "passing", "warning", "critical", "unknown"];

/// Every check of every instance of `view` (the node's `serfHealth` when `with_node`).
fn checks_of(view: &ServiceView, with_node: bool, mut push: impl FnMut(&HealthCheck<'_>)) {
    let name = consul_service_name(&view.key.group, &view.key.name);
    for instance in view.instances() {
        let node = encode::node_name(instance);
        for check in encode::checks(instance, node, &name) {
            if with_node || !check.service_id.is_empty() {
                push(&check);
            }
        }
    }
}

fn keep(read: &Read, check: &HealthCheck<'_>) -> Option<Value> {
    let json = serde_json::to_value(check).expect("checks serialize");
    (read.query.filter.as_ref())
        .is_none_or(|filter| filter.matches(&json))
        .then_some(json)
}

/// `GET /v1/health/checks/{service}`.
pub async fn service_checks(
    State(state): State<ConsulState>,
    Path(name): Path<String>,
    read: Read,
) -> Result<Response, ConsulError> {
    read.query.check_filter(encode::sample_check)?;
    let key = service_key(&read.namespace, &name);
    read.block(&state, Watch::Service(&key)).await?;
    let snapshot = state.catalog.snapshot();
    let index = snapshot.service_index(&key.namespace, &key.group, &key.name);
    let mut out = Vec::new();
    if let Some(view) = (snapshot.service(&key.namespace, &key.group, &key.name))
        .filter(|_| read.allowed() && read.query.peer.is_none())
    {
        checks_of(view, false, |check| out.extend(keep(&read, check)));
    }
    let body = Bytes::from(serde_json::to_vec(&out).expect("checks serialize"));
    Ok(read.reply(&state, body, index))
}

/// `GET /v1/health/state/{state}`: `any`, `passing`, `warning` or `critical`.
pub async fn state(
    State(state): State<ConsulState>,
    Path(wanted): Path<String>,
    read: Read,
) -> Result<Response, ConsulError> {
    if !STATES.contains(&wanted.as_str()) {
        return Err(ConsulError::bad_request(format!(
            "Invalid check state {wanted:?}: use any, passing, warning or critical"
        )));
    }
    read.query.check_filter(encode::sample_check)?;
    read.block(&state, Watch::Catalog).await?;
    let snapshot = state.catalog.snapshot();
    let mut out = Vec::new();
    let mut nodes = std::collections::HashSet::new();
    if read.allowed() && read.query.peer.is_none() {
        for view in snapshot.services() {
            if view.key.namespace != read.namespace {
                continue;
            }
            checks_of(view, true, |check| {
                // A node's own check once per node, however many instances it has.
                if check.service_id.is_empty() && !nodes.insert(check.node.to_owned()) {
                    return;
                }
                if wanted == "any" || check.status == wanted {
                    out.extend(keep(&read, check));
                }
            });
        }
    }
    let body = Bytes::from(serde_json::to_vec(&out).expect("checks serialize"));
    Ok(read.reply(&state, body, snapshot.index))
}

pub async fn missing_state() -> ConsulError {
    ConsulError::bad_request("Missing check state")
}

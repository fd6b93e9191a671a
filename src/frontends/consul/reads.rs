//! Catalog, health, status and agent-info reads, from the snapshot, with Consul's
//! blocking queries.

use axum::Router;

use super::ConsulState;

pub fn routes() -> Router<ConsulState> {
    Router::new()
}

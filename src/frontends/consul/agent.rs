//! The agent API's writes and local reads: registration into the native registry,
//! deregistration, maintenance mode, check updates, `/v1/agent/services` and `/checks`.

use axum::Router;

use super::ConsulState;

pub fn routes() -> Router<ConsulState> {
    Router::new()
}

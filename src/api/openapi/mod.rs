//! The OpenAPI 3 document, generated from the handlers' annotations. It is meant to be
//! exact (what the server accepts and answers, errors included), and schemathesis checks
//! that it is (`tests/server/openapi.rs`).

pub mod params;
pub mod responses;
pub mod schemas;
pub mod security;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use utoipa::OpenApi;

use security::Security;

use crate::api::{
    admin, explain, instances, merge, services, sources, stats, syncs, system, tokens, watch,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "One service-discovery endpoint in front of many registries. Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`."
    ),
    paths(
        services::list, services::instances, explain::explain, watch::watch,
        instances::register, instances::get, instances::heartbeat, instances::set_status,
        instances::deregister, instances::health,
        stats::catalog, stats::service,
        admin::all, admin::remove_service,
        sources::list, sources::get, sources::status, sources::create, sources::replace,
        sources::patch, sources::delete, sources::connect, sources::disconnect,
        sources::validate, merge::get, merge::replace,
        syncs::list, syncs::get, syncs::status, syncs::create, syncs::replace, syncs::delete,
        syncs::pause, syncs::resume, syncs::plan,
        tokens::create, tokens::list, tokens::get, tokens::revoke, tokens::own,
        system::health, system::ready, system::metrics, openapi,
    ),
    // Parameter schemas are not collected from the paths; the response bodies are.
    components(schemas(
        schemas::Name, schemas::InstanceId, schemas::Index, schemas::Wait, schemas::WatchEvent, schemas::WatchChange,
    )),
    modifiers(&Security),
    tags(
        (name = "discovery", description = "Merged catalog reads, blocking queries and watches"),
        (name = "registry", description = "The native registry"),
        (name = "stats", description = "Totals"),
        (name = "admin", description = "Operator endpoints"),
        (name = "sources", description = "External registries: status, runtime management, merge rules"),
        (name = "syncs", description = "Sync-back jobs: copy the merged view into a store"),
        (name = "tokens", description = "Access tokens: roles over namespaces"),
        (name = "system", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json", body = Object))
)]
pub async fn openapi() -> impl IntoResponse {
    // The document cannot change while the process runs: build it once.
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        Bytes::from(
            serde_json::to_vec(&ApiDoc::openapi()).expect("the OpenAPI document serializes"),
        )
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone())
}

//! `GET /api/v1/watch`: Server-Sent Events, one event per change of a watched service.

use std::convert::Infallible;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::stream::{self, StreamExt};
use switchboard_connectors::ServiceKey;
use tokio_stream::wrappers::WatchStream;

use super::error::ApiError;
use super::extract::ClientIp;
use super::limits;
use super::AppState;
use crate::catalog::Catalog;
use crate::vocab::validate_name;

/// Most services one stream may watch.
const MAX_WATCHED: usize = 100;

/// Stream changes of one or more services. Each event (`event: change`, `id:` the index)
/// carries `{service, namespace, group, index, instances}`; the first event per service
/// is its current state. Rapid changes coalesce into the latest state.
#[utoipa::path(
    get, path = "/api/v1/watch", tag = "discovery",
    params(
        ("service" = Vec<String>, Query, description = "Service to watch (repeatable, at least one)"),
        ("namespace" = Option<String>, Query, description = "Default `public`"),
        ("group" = Option<String>, Query, description = "Default `DEFAULT`"),
    ),
    responses(
        (status = 200, description = "text/event-stream of changes", content_type = "text/event-stream"),
        (status = 400, description = "No or invalid service", body = super::error::Problem),
        (status = 429, description = "too_many_watches: this client holds `api.max_watches_per_client` parked blocking queries and streams (`Retry-After`)", body = super::error::Problem),
        (status = 503, description = "watch_capacity: all clients together hold `api.max_watches` (`Retry-After`)", body = super::error::Problem),
    )
)]
pub async fn watch(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let (namespace, group, services) = parse(query.as_deref())?;
    let slot = state.watches.try_hold(client).map_err(|refusal| {
        state.metrics.refused("watches", refusal.scope());
        limits::watch_refused(refusal, &state.watches)
    })?;
    // Held by the stream: given back when the stream ends or the client goes away.
    let open = (slot, state.metrics.watch_streams.park());
    let streams = services.into_iter().map(|name| {
        let key = ServiceKey::new(namespace.clone(), group.clone(), name);
        let catalog = state.catalog.clone();
        WatchStream::new(catalog.subscribe(&key))
            .map(move |_| Ok::<_, Infallible>(event(&catalog, &key)))
    });
    let stopping = state.clone();
    let events = stream::select_all(streams)
        .take_until(Box::pin(async move { stopping.stopped().await }))
        .map(move |event| {
            let _held = &open;
            event
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn parse(query: Option<&str>) -> Result<(String, String, Vec<String>), ApiError> {
    let mut namespace = switchboard_connectors::DEFAULT_NAMESPACE.to_owned();
    let mut group = switchboard_connectors::DEFAULT_GROUP.to_owned();
    let mut services = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "service" => {
                validate_name(&value, "invalid_service_name", "service")?;
                if !services.contains(&value.to_string()) {
                    services.push(value.into_owned());
                }
            }
            "namespace" => {
                validate_name(&value, "invalid_namespace", "namespace")?;
                namespace = value.into_owned();
            }
            "group" => {
                validate_name(&value, "invalid_group", "group")?;
                group = value.into_owned();
            }
            _ => {}
        }
    }
    if services.is_empty() {
        return Err(
            ApiError::bad_request("invalid_query", "name at least one `service` to watch")
                .with_field("service"),
        );
    }
    if services.len() > MAX_WATCHED {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("at most {MAX_WATCHED} services per watch"),
        )
        .with_field("service"));
    }
    Ok((namespace, group, services))
}

/// The event for a service's current state, built around its pre-encoded instance list.
fn event(catalog: &Catalog, key: &ServiceKey) -> Event {
    let snapshot = catalog.snapshot();
    let view = snapshot.service(&key.namespace, &key.group, &key.name);
    let index = view.map_or(0, |view| view.index);
    let body = view.map_or(bytes::Bytes::from_static(b"[]"), |view| view.encoded());
    let instances = std::str::from_utf8(&body).expect("serde_json writes UTF-8");
    let data = format!(
        "{{\"service\":{},\"namespace\":{},\"group\":{},\"index\":{index},\"instances\":{instances}}}",
        serde_json::Value::from(key.name.as_str()),
        serde_json::Value::from(key.namespace.as_str()),
        serde_json::Value::from(key.group.as_str()),
    );
    Event::default()
        .event("change")
        .id(index.to_string())
        .data(data)
}

//! `GET /api/v1/watch`: Server-Sent Events, one event per change of a watched service.

use std::convert::Infallible;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::stream::{self, StreamExt};
use switchboard_connectors::ServiceKey;

use super::error::ApiError;
use super::extract::ClientIp;
use super::limits;
use super::openapi::params::Placement;
use super::openapi::responses::{BadParameters, WatchLimits};
use super::openapi::schemas::{Name, WatchEvent};
use super::AppState;
use crate::catalog::Catalog;
use crate::vocab::validate_name;

/// Most services one stream may watch (the document's `maxItems` says it too).
pub const MAX_WATCHED: usize = 100;

/// Stream changes of one or more services. Each event (`event: change`, `id:` the index)
/// carries `{service, namespace, group, index, instances}`; the first event per service
/// is its current state. Rapid changes coalesce into the latest state.
#[utoipa::path(
    get, path = "/api/v1/watch", tag = "discovery", operation_id = "watch_services",
    params(
        ("service" = Vec<Name>, Query, description = "Service to watch (repeatable, 1-100)", max_items = 100, min_items = 1),
        Placement,
    ),
    responses(
        (status = 200, description = "A stream of `change` events", content_type = "text/event-stream", body = WatchEvent),
        BadParameters,
        WatchLimits,
    )
)]
pub async fn watch(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let (namespace, group, services) = parse(query.as_deref())?;
    let slot = (state.watches).hold(&limits::WATCHES, client, &state.metrics)?;
    // Held by the stream: given back when the stream ends or the client goes away.
    let open = (slot, state.metrics.watch_streams.park());
    let streams = services.into_iter().map(|name| {
        let key = ServiceKey::new(namespace.clone(), group.clone(), name);
        let catalog = state.catalog.clone();
        (catalog.subscribe(&key).into_stream())
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
    // Every `service` given counts toward the limit, repeats too: the document's
    // `maxItems` counts parameters, and a client cannot send an unbounded list.
    let mut given = 0;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "service" => {
                validate_name(&value, "invalid_service_name", "service")?;
                given += 1;
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
    if given > MAX_WATCHED {
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
    let index = view.map_or(snapshot.absent_index, |view| view.index);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_parameter_counts_toward_the_limit_repeats_too() {
        let query = |n: usize| vec!["service=a"; n].join("&");
        let (_, _, services) = parse(Some(&query(MAX_WATCHED))).unwrap();
        assert_eq!(services, ["a"]);
        let err = parse(Some(&query(MAX_WATCHED + 1))).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            ("invalid_query", Some("service"))
        );
    }
}

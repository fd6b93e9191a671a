//! Catalog and health reads, from the snapshot, with Consul's blocking queries and
//! headers. The unfiltered `/v1/health/service/{name}` (with or without `passing`) and
//! `/v1/catalog/service/{name}` bodies are cached per service, and each instance's
//! encoding per chunk, so those reads copy a pointer; `tag`, `node-meta` and `filter`
//! select from the cached encodings per request.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use switchboard_connectors::ServiceKey;

use super::acl::{self, ConsulCaller};
use super::blocking::{self, Watch};
use super::encode::{self, CatalogShape, HealthShape};
use super::error::ConsulError;
use super::query::ConsulQuery;
use super::{consul_service_name, namespace_from, split_service_name, ConsulState, Peer};
use crate::catalog::formats::{BodySlot, FormatSlot, InstanceEncoder};
use crate::catalog::{InstanceView, ServiceView, Snapshot};
use crate::frontends::slots;

pub fn routes() -> Router<ConsulState> {
    Router::new()
        .route("/v1/catalog/services", get(catalog_services))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route("/v1/catalog/service/", get(missing_service))
        .route("/v1/health/service/{name}", get(health_service))
        .route("/v1/health/service/", get(missing_service))
        .route(
            "/v1/health/checks/{name}",
            get(super::checks::service_checks),
        )
        .route("/v1/health/checks/", get(missing_service))
        .route("/v1/health/state/{state}", get(super::checks::state))
        .route("/v1/health/state/", get(super::checks::missing_state))
        .route("/v1/catalog/nodes", get(super::nodes::list))
        .route("/v1/catalog/node/{node}", get(super::nodes::one))
        .route("/v1/catalog/node/", get(super::nodes::missing))
        .merge(super::info::routes())
}

/// A parsed read: its parameters, its caller and its namespace.
pub struct Read {
    pub query: ConsulQuery,
    pub caller: ConsulCaller,
    /// Switchboard's namespace for Consul's `ns`.
    pub namespace: String,
    /// Who holds the watch slot while a blocking query waits.
    pub client: Option<std::net::IpAddr>,
}

/// Every Consul read starts here: the caller, then the parameters (refused in Consul's
/// words), the namespace, and who holds a watch slot if it blocks.
impl axum::extract::FromRequestParts<ConsulState> for Read {
    type Rejection = ConsulError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ConsulState,
    ) -> Result<Read, ConsulError> {
        let Peer(client) = Peer::from_request_parts(parts, state)
            .await
            .unwrap_or(Peer(None));
        Read::begin(state, parts.uri.query(), &parts.headers, client)
    }
}

impl Read {
    pub fn begin(
        state: &ConsulState,
        query: Option<&str>,
        headers: &HeaderMap,
        client: Option<std::net::IpAddr>,
    ) -> Result<Read, ConsulError> {
        // Who is asking first: a request with a bad token is refused before its
        // parameters cost anything.
        let caller = acl::identify(state, query, headers)?;
        let parsed = ConsulQuery::parse(query)?;
        if let Some(dc) = &parsed.datacenter {
            if *dc != state.config.datacenter {
                return Err(ConsulError::bad_request("No path to datacenter"));
            }
        }
        let namespace = namespace_from(parsed.namespace.as_deref()).to_owned();
        Ok(Read {
            query: parsed,
            caller,
            namespace,
            client,
        })
    }

    /// Waits as a blocking query. A caller who may not read waits too (for an answer
    /// that stays empty), as Consul's filtered reads do: answered at once, a watching
    /// client would ask again at once, in a loop.
    pub async fn block(&self, state: &ConsulState, watch: Watch<'_>) -> Result<(), ConsulError> {
        blocking::wait(state, self.client, &self.query, watch).await
    }

    /// Whether the caller may read this read's namespace; when not, the answer is
    /// empty, as Consul filters what a token may not see.
    pub fn allowed(&self) -> bool {
        self.caller.reads(&self.namespace)
    }

    /// A 200 with Consul's query metadata headers.
    pub fn reply(&self, state: &ConsulState, body: Bytes, index: u64) -> Response {
        let filtered = !self.allowed() && self.caller.named_token();
        reply(
            state,
            body,
            index,
            self.query.consistency.as_str(),
            filtered,
        )
    }
}

/// A JSON 200 with `X-Consul-Index` (never 0: a 0 sends blocking clients into a busy
/// loop), `X-Consul-KnownLeader`, `X-Consul-LastContact` and the consistency served.
pub fn reply(
    state: &ConsulState,
    body: Bytes,
    index: u64,
    consistency: &'static str,
    filtered: bool,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-consul-index", HeaderValue::from(index.max(1)));
    headers.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    headers.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    headers.insert(
        "x-consul-effective-consistency",
        HeaderValue::from_static(consistency),
    );
    headers.insert(
        "x-consul-default-acl-policy",
        HeaderValue::from_static(state.default_policy()),
    );
    if filtered {
        headers.insert(
            "x-consul-results-filtered-by-acls",
            HeaderValue::from_static("true"),
        );
    }
    response
}

pub async fn missing_service() -> ConsulError {
    ConsulError::bad_request("Missing service name")
}

/// The service a Consul name means in a namespace.
pub fn service_key(namespace: &str, name: &str) -> ServiceKey {
    let (group, name) = split_service_name(name);
    ServiceKey::new(namespace, group, name)
}

/// Whether an instance carries every tag asked for.
fn has_tags(view: &InstanceView, tags: &[String]) -> bool {
    tags.iter().all(|tag| view.tags.contains(tag))
}

/// Whether a request selects instances beyond what the cached bodies hold.
fn selects(query: &ConsulQuery) -> bool {
    !query.tags.is_empty() || !query.node_meta.is_empty() || query.filter.is_some()
}

/// One instance in `encoder`'s shape, as JSON a filter can read.
pub fn entry_json(encoder: &dyn InstanceEncoder, view: &InstanceView) -> Value {
    let mut out = Vec::new();
    encoder.encode(view, &mut out);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

/// The selection `tag`, `node-meta`, `filter` and `passing` make.
fn selector<'a>(
    query: &'a ConsulQuery,
    encoder: &'a dyn InstanceEncoder,
    passing: bool,
) -> impl Fn(&InstanceView) -> bool + 'a {
    move |view| {
        (!passing || encode::passing(view))
            && has_tags(view, &query.tags)
            // Nodes carry no metadata here, so any node-meta condition leaves nothing.
            && query.node_meta.is_empty()
            && (query.filter.as_ref()).is_none_or(|f| f.matches(&entry_json(encoder, view)))
    }
}

/// Reads one service's view after a blocking query, or answers `[]`.
async fn service_read(
    state: &ConsulState,
    read: &Read,
    name: &str,
) -> Result<(std::sync::Arc<Snapshot>, ServiceKey, u64), ConsulError> {
    let key = service_key(&read.namespace, name);
    read.block(state, Watch::Service(&key)).await?;
    let snapshot = state.catalog.snapshot();
    let index = snapshot.service_index(&key.namespace, &key.group, &key.name);
    Ok((snapshot, key, index))
}

/// The view a read shows, if any: none when the caller may not see it or it names a peer.
fn visible<'a>(read: &Read, snapshot: &'a Snapshot, key: &ServiceKey) -> Option<&'a ServiceView> {
    if !read.allowed() || read.query.peer.is_some() {
        return None;
    }
    snapshot
        .service(&key.namespace, &key.group, &key.name)
        .map(|view| &**view)
}

/// Where one shape of a service's instances is cached: its chunk format, and the bodies
/// of every instance and (for the health shape) of the passing ones.
struct Slots {
    format: FormatSlot,
    all: BodySlot,
    passing: Option<BodySlot>,
}

/// A service's instances in `shape`: the cached body when the request selects nothing
/// beyond `passing`, else the selection from the cached encodings.
async fn service_entries(
    state: &ConsulState,
    read: &Read,
    name: &str,
    shape: &dyn InstanceEncoder,
    slots: Slots,
) -> Result<Response, ConsulError> {
    read.query.check_filter(|| encode::sample(shape))?;
    let (snapshot, key, index) = service_read(state, read, name).await?;
    let Some(view) = visible(read, &snapshot, &key) else {
        return Ok(read.reply(state, Bytes::from_static(b"[]"), index));
    };
    let passing = read.query.passing && slots.passing.is_some();
    let body = match slots.passing {
        _ if selects(&read.query) => {
            view.select_as(slots.format, shape, &selector(&read.query, shape, passing))
        }
        Some(cached) if passing => view.body_as(cached, slots.format, shape, &encode::passing),
        _ => view.body_as(slots.all, slots.format, shape, &|_| true),
    };
    Ok(read.reply(state, body, index))
}

/// `GET /v1/health/service/{name}`: `[{Node, Service, Checks}]`.
async fn health_service(
    State(state): State<ConsulState>,
    Path(name): Path<String>,
    read: Read,
) -> Result<Response, ConsulError> {
    let slots = Slots {
        format: slots::CONSUL_HEALTH,
        all: slots::CONSUL_HEALTH_ALL,
        passing: Some(slots::CONSUL_HEALTH_PASSING),
    };
    service_entries(&state, &read, &name, &HealthShape(&state.shapes), slots).await
}

/// `GET /v1/catalog/service/{name}`: `[ServiceNode]`, in the same order as the health
/// read (Traefik v2 pairs the two by position).
async fn catalog_service(
    State(state): State<ConsulState>,
    Path(name): Path<String>,
    read: Read,
) -> Result<Response, ConsulError> {
    let slots = Slots {
        format: slots::CONSUL_CATALOG,
        all: slots::CONSUL_CATALOG_ALL,
        passing: None,
    };
    service_entries(&state, &read, &name, &CatalogShape(&state.shapes), slots).await
}

/// A service's `"name":[tags]` member of `/v1/catalog/services`: its tags, each once.
fn tags_member(view: &ServiceView) -> Bytes {
    let mut seen = std::collections::HashSet::new();
    let tags: Vec<&str> = (view.instances())
        .flat_map(|instance| instance.tags.iter().map(String::as_str))
        .filter(|tag| seen.insert(*tag))
        .collect();
    let name = consul_service_name(&view.key.group, &view.key.name);
    let mut out = serde_json::to_vec(&name).expect("names serialize");
    out.push(b':');
    serde_json::to_writer(&mut out, &tags).expect("tags serialize");
    Bytes::from(out)
}

/// The services of `namespace` as Consul's `{name: [tags]}` object.
fn services_object(snapshot: &Snapshot, namespace: &str) -> Bytes {
    let mut out = vec![b'{'];
    for view in snapshot.services() {
        if view.key.namespace != namespace {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&view.cached(slots::CONSUL_SERVICE_TAGS, tags_member));
    }
    out.push(b'}');
    Bytes::from(out)
}

/// `GET /v1/catalog/services`: `{name: [tags]}` of a namespace. Blocks on any change.
async fn catalog_services(
    State(state): State<ConsulState>,
    read: Read,
) -> Result<Response, ConsulError> {
    let shape = CatalogShape(&state.shapes);
    read.query.check_filter(|| encode::sample(&shape))?;
    read.block(&state, Watch::Catalog).await?;
    let snapshot = state.catalog.snapshot();
    let body = if !read.allowed() || read.query.peer.is_some() {
        Bytes::from_static(b"{}")
    } else if read.query.node_meta.is_empty() && read.query.filter.is_none() {
        if read.namespace == switchboard_connectors::DEFAULT_NAMESPACE {
            snapshot.body(slots::CONSUL_SERVICES, |snapshot| {
                services_object(snapshot, switchboard_connectors::DEFAULT_NAMESPACE)
            })
        } else {
            services_object(&snapshot, &read.namespace)
        }
    } else {
        let keep = selector(&read.query, &shape, false);
        let mut services: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for view in snapshot.services() {
            if view.key.namespace != read.namespace {
                continue;
            }
            for instance in view.instances().filter(|instance| keep(instance)) {
                let name = consul_service_name(&view.key.group, &view.key.name);
                let tags = services.entry(name).or_default();
                for tag in &instance.tags {
                    if !tags.contains(&tag.as_str()) {
                        tags.push(tag);
                    }
                }
            }
        }
        Bytes::from(serde_json::to_vec(&services).expect("services serialize"))
    };
    Ok(read.reply(&state, body, snapshot.index))
}

//! The agent's local reads: `/v1/agent/services`, `/v1/agent/service/<id>` and
//! `/v1/agent/checks`. The agent's services are the native registry's instances (however
//! they were registered), in Consul's `AgentService` and `HealthCheck` shapes.
//!
//! Reads leave out the namespaces the caller does not reach, as Consul filters by ACL, and
//! say so in `X-Consul-Results-Filtered-By-ACLs` when the request named a token.
//! `?ns=` shows one namespace (`*` or none: every namespace the caller reads). `?filter=`
//! is refused (400) rather than ignored. `/v1/agent/service/<id>` answers at once: its
//! `?hash=` blocking is not implemented.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::net::IpAddr;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_connectors::{Check, Instance, Status, DEFAULT_NAMESPACE};

use super::agent_register::{param, requested_namespace};
use super::decode::format_go_duration;
use super::error::ConsulError;
use super::{acl, consul_service_name, namespace_from, ConsulState};
use crate::auth::Role;
use crate::fnv::Fnv1a;
use crate::registry::{maintenance_check_id, DEFAULT_MAINTENANCE_REASON};
use crate::store::StoredInstance;

/// Consul's `api.AgentService`, fields in Consul's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentService<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    service: String,
    tags: &'a [String],
    meta: &'a BTreeMap<String, String>,
    port: u16,
    address: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tagged_addresses: BTreeMap<&'static str, ServiceAddress<'a>>,
    weights: Weights,
    enable_tag_override: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_hash: Option<String>,
    /// Only outside the default namespace (Consul CE has no namespaces to show).
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    datacenter: &'a str,
}

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceAddress<'a> {
    address: &'a str,
    port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Weights {
    passing: u32,
    warning: u32,
}

impl<'a> AgentService<'a> {
    pub fn of(instance: &'a Instance, datacenter: &'a str) -> AgentService<'a> {
        let address = ServiceAddress {
            address: &instance.host,
            port: instance.port,
        };
        let family = match instance.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => Some(("lan_ipv4", "wan_ipv4")),
            Ok(IpAddr::V6(_)) => Some(("lan_ipv6", "wan_ipv6")),
            Err(_) => None,
        };
        let mut tagged_addresses = BTreeMap::new();
        if let Some((lan, wan)) = family {
            tagged_addresses.insert(lan, address);
            tagged_addresses.insert(wan, address);
        }
        let namespace = &instance.service.namespace;
        AgentService {
            id: &instance.id,
            service: consul_service_name(&instance.service.group, &instance.service.name),
            tags: &instance.tags,
            meta: &instance.metadata,
            port: instance.port,
            address: &instance.host,
            tagged_addresses,
            // The native weight is Consul's `Passing` weight (see `definition.rs`).
            weights: Weights {
                passing: instance.weight,
                warning: 1,
            },
            enable_tag_override: false,
            content_hash: None,
            namespace: (namespace != DEFAULT_NAMESPACE).then_some(namespace.as_str()),
            datacenter,
        }
    }
}

/// Consul's `structs.HealthCheck`, fields in Consul's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthCheck<'a> {
    node: &'a str,
    #[serde(rename = "CheckID")]
    check_id: &'a str,
    name: &'a str,
    status: &'static str,
    notes: &'a str,
    output: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: String,
    service_tags: &'a [String],
    #[serde(rename = "Type")]
    kind: &'a str,
    interval: String,
    timeout: String,
    exposed_port: u16,
    definition: Empty,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize)]
struct Empty {}

/// The checks of a native instance: its check results, plus Consul's maintenance check
/// when it was put in maintenance without one (natively).
fn checks_of(record: &StoredInstance) -> Vec<Check> {
    let instance = &record.instance;
    let mut checks = instance.checks.clone();
    let maintenance = maintenance_check_id(&instance.id);
    if instance.status == Status::Maintenance && !checks.iter().any(|c| c.id == maintenance) {
        checks.push(Check {
            id: maintenance,
            name: "Service Maintenance Mode".to_owned(),
            kind: "maintenance".to_owned(),
            status: switchboard_connectors::CheckStatus::Critical,
            output: String::new(),
            notes: DEFAULT_MAINTENANCE_REASON.to_owned(),
        });
    }
    checks
}

/// What `?ns=` and `?filter=` ask of a listing: the namespace to show (none: all).
fn listing_scope(query: Option<&str>, headers: &HeaderMap) -> Result<Option<String>, ConsulError> {
    if param(query, "filter").is_some_and(|filter| !filter.is_empty()) {
        return Err(ConsulError::bad_request(
            "filter is not supported on this endpoint",
        ));
    }
    Ok(requested_namespace(query, headers)
        .filter(|ns| ns != "*")
        .map(|ns| namespace_from(Some(&ns)).to_owned()))
}

/// The instances a listing shows (the caller's, narrowed by `?ns=`), and whether access
/// control left any out.
async fn listed(
    state: &ConsulState,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Vec<StoredInstance>, bool), ConsulError> {
    let caller = acl::identify(state, query, headers)?;
    let scope = listing_scope(query, headers)?;
    let scope = scope.as_deref();
    let mut filtered = false;
    let records = (state.registry.records().await.into_iter())
        .filter(|record| scope.is_none_or(|ns| record.instance.service.namespace == ns))
        .filter(|record| {
            let readable = caller.reads(&record.instance.service.namespace);
            filtered |= !readable;
            readable
        })
        .collect();
    Ok((records, filtered && caller.named_token()))
}

fn json_response(body: &impl Serialize, filtered: bool) -> Response {
    let mut response = axum::Json(body).into_response();
    if filtered {
        let headers = response.headers_mut();
        headers.insert(
            "x-consul-results-filtered-by-acls",
            HeaderValue::from_static("true"),
        );
    }
    response
}

pub async fn services(
    State(state): State<ConsulState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ConsulError> {
    let (records, filtered) = listed(&state, query.as_deref(), &headers).await?;
    let datacenter = &state.config.datacenter;
    let services: BTreeMap<&str, AgentService<'_>> = (records.iter())
        .map(|record| {
            (
                record.instance.id.as_str(),
                AgentService::of(&record.instance, datacenter),
            )
        })
        .collect();
    Ok(json_response(&services, filtered))
}

pub async fn service(
    State(state): State<ConsulState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ConsulError> {
    let caller = acl::identify(&state, query.as_deref(), &headers)?;
    let unknown = || ConsulError::not_found(format!("unknown service ID: {id}"));
    let view = state.registry.get(&id).await.map_err(|_| unknown())?;
    let key = &view.service;
    let name = consul_service_name(&key.group, &key.name);
    acl::require(
        &state,
        &caller,
        Role::Read,
        &key.namespace,
        "service:read",
        &name,
    )?;
    let mut service = AgentService::of(&view.instance, &state.config.datacenter);
    let mut hasher = Fnv1a::default();
    hasher.write(&serde_json::to_vec(&service).unwrap_or_default());
    let hash = format!("{:x}", hasher.finish());
    service.content_hash = Some(hash.clone());
    let mut response = json_response(&service, false);
    if let Ok(value) = HeaderValue::try_from(hash) {
        response.headers_mut().insert("x-consul-contenthash", value);
    }
    Ok(response)
}

pub async fn checks(
    State(state): State<ConsulState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ConsulError> {
    let (records, filtered) = listed(&state, query.as_deref(), &headers).await?;
    let node = &state.config.node_name;
    let all: Vec<(&StoredInstance, Vec<Check>)> = (records.iter())
        .map(|record| (record, checks_of(record)))
        .collect();
    let mut checks = BTreeMap::new();
    for (record, results) in &all {
        let instance = &record.instance;
        for check in results {
            let definition = record.checks.iter().find(|d| d.id == check.id);
            let period =
                |pick: fn(&crate::store::CheckDefinition) -> Option<std::time::Duration>| {
                    (definition.and_then(pick)).map_or_else(String::new, format_go_duration)
                };
            checks.insert(
                check.id.as_str(),
                HealthCheck {
                    node,
                    check_id: &check.id,
                    name: &check.name,
                    status: check.status.as_str(),
                    notes: &check.notes,
                    output: &check.output,
                    service_id: &instance.id,
                    service_name: consul_service_name(
                        &instance.service.group,
                        &instance.service.name,
                    ),
                    service_tags: &instance.tags,
                    kind: &check.kind,
                    interval: period(|d| d.interval),
                    timeout: period(|d| d.timeout),
                    exposed_port: 0,
                    definition: Empty {},
                    create_index: 0,
                    modify_index: 0,
                },
            );
        }
    }
    Ok(json_response(&checks, filtered))
}

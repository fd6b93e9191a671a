//! [`InstanceView`]: an instance as clients see it, sharing the partition's copy.
//!
//! The catalog may hold hundreds of thousands of instances, so a view does not copy the
//! instance it shows: it points at the source partition's `Arc<Instance>` and adds only
//! what merging decided (which sources report it, whether it is stale). Its JSON is
//! written field by field, so the wire format stays flat.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use switchboard_connectors::{Instance, Status};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

/// An instance as clients see it: the merge of every source that reports its endpoint.
/// Optional fields without a value are left out rather than sent as `null`: lists of
/// hundreds of instances are mostly copied bytes, and absent reads as null everywhere.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceView {
    /// The winning source's instance (fields come from it).
    pub instance: Arc<Instance>,
    /// Every source reporting this endpoint, highest priority first.
    pub sources: Vec<Arc<str>>,
    /// True when every source reporting it is currently unreachable.
    pub stale: bool,
    pub stale_since: Option<DateTime<Utc>>,
}

impl InstanceView {
    /// The view of one source's instance, before merging.
    pub fn from_source(instance: &Instance, source: &str) -> InstanceView {
        InstanceView {
            instance: Arc::new(instance.clone()),
            sources: vec![Arc::from(source)],
            stale: false,
            stale_since: None,
        }
    }

    /// Whether `source` reports this instance.
    pub fn reported_by(&self, source: &str) -> bool {
        self.sources.iter().any(|s| &**s == source)
    }
}

impl Deref for InstanceView {
    type Target = Instance;

    fn deref(&self) -> &Instance {
        &self.instance
    }
}

impl Serialize for InstanceView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let i = &*self.instance;
        let mut out = serializer.serialize_struct("InstanceView", 22)?;
        out.serialize_field("id", &i.id)?;
        out.serialize_field("service", &i.service.name)?;
        out.serialize_field("namespace", &i.service.namespace)?;
        out.serialize_field("group", &i.service.group)?;
        out.serialize_field("address", &i.address())?;
        out.serialize_field("host", &i.host)?;
        out.serialize_field("port", &i.port)?;
        out.serialize_field("protocol", &i.protocol)?;
        optional(&mut out, "version", &i.version)?;
        out.serialize_field("weight", &i.weight)?;
        out.serialize_field("status", &i.status)?;
        out.serialize_field("healthy", &i.healthy)?;
        out.serialize_field("metadata", &i.metadata)?;
        out.serialize_field("tags", &i.tags)?;
        optional(&mut out, "register_time", &i.register_time)?;
        optional(&mut out, "start_time", &i.start_time)?;
        optional(&mut out, "last_heartbeat", &i.last_heartbeat)?;
        optional(&mut out, "offline_time", &i.offline_time)?;
        if i.checks.is_empty() {
            out.skip_field("checks")?;
        } else {
            out.serialize_field("checks", &i.checks)?;
        }
        out.serialize_field("sources", &self.sources)?;
        out.serialize_field("stale", &self.stale)?;
        optional(&mut out, "stale_since", &self.stale_since)?;
        out.end()
    }
}

fn optional<S: SerializeStruct, T: Serialize>(
    out: &mut S,
    name: &'static str,
    value: &Option<T>,
) -> Result<(), S::Error> {
    match value {
        Some(value) => out.serialize_field(name, value),
        None => out.skip_field(name),
    }
}

/// The JSON shape of [`InstanceView`], for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)] // Never built: it only describes the JSON `InstanceView` writes.
struct InstanceJson {
    id: String,
    /// Service name.
    service: String,
    namespace: String,
    group: String,
    /// `host:port` (IPv6 hosts in brackets).
    address: String,
    host: String,
    port: u16,
    protocol: String,
    version: Option<String>,
    weight: u32,
    status: Status,
    healthy: bool,
    metadata: BTreeMap<String, String>,
    tags: Vec<String>,
    register_time: Option<DateTime<Utc>>,
    start_time: Option<DateTime<Utc>>,
    /// Last heartbeat as of the instance's last change. Heartbeats alone do not change the
    /// catalog (they would wake every watcher); `GET /api/v1/instances/{id}` is live.
    last_heartbeat: Option<DateTime<Utc>>,
    offline_time: Option<DateTime<Utc>>,
    /// Health checks Switchboard runs for this (native) instance and their latest
    /// results; absent when it has none.
    checks: Option<Vec<switchboard_connectors::Check>>,
    /// Every source reporting this endpoint, highest priority first.
    sources: Vec<String>,
    /// True when every source reporting it is currently unreachable.
    stale: bool,
    stale_since: Option<DateTime<Utc>>,
}

impl utoipa::PartialSchema for InstanceView {
    fn schema() -> RefOr<Schema> {
        InstanceJson::schema()
    }
}

impl ToSchema for InstanceView {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("InstanceView")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        InstanceJson::schemas(schemas);
    }
}

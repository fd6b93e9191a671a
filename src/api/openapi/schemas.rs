//! Schemas of what the API reads and writes beyond its Rust types: wait times and watch
//! events; names and ids come from [`crate::vocab::schemas`].

use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

pub use crate::vocab::schemas::{InstanceId, Name};

/// A blocking query's `index`: any unsigned 64-bit integer (one above the catalog's
/// answers at once).
pub struct Index;

impl PartialSchema for Index {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(u64::MAX as usize))
            .into()
    }
}

impl ToSchema for Index {}

/// A wait time, as `wait=` takes it.
pub struct Wait;

/// A bare number of seconds, or numbers each with a unit (`1m30s`, `1.5s`, `250ms`);
/// what [`crate::duration::parse`] reads.
pub const WAIT_PATTERN: &str =
    r"^(?:[0-9]+|(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+)$";

impl PartialSchema for Wait {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(WAIT_PATTERN))
            .description(Some(
                "Seconds (`30`) or a Go-style duration (`30s`, `1m30s`, `250ms`); longer \
                 than the server's maximum wait counts as the maximum",
            ))
            .into()
    }
}

impl ToSchema for Wait {}

/// One event of `GET /api/v1/watch`, as an event-stream reader sees it (OpenAPI 3.1 has
/// a `text/event-stream` schema describe each event): `event: change`, `id:` the
/// service's index, and `data:` a [`WatchChange`] as JSON.
pub struct WatchEvent;

impl PartialSchema for WatchEvent {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["change"])),
            )
            .required("event")
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$"))
                    .description(Some("The service's index")),
            )
            .required("id")
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .description(Some("A `WatchChange`, as JSON")),
            )
            .required("data")
            .into()
    }
}

impl ToSchema for WatchEvent {}

/// The `data` of a watch event: a service's state after a change.
pub struct WatchChange;

impl PartialSchema for WatchChange {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property("service", Name::schema())
            .required("service")
            .property("namespace", Name::schema())
            .required("namespace")
            .property("group", Name::schema())
            .required("group")
            .property(
                "index",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0)),
            )
            .required("index")
            .property(
                "instances",
                ArrayBuilder::new().items(RefOr::Ref(Ref::from_schema_name("InstanceView"))),
            )
            .required("instances")
            .into()
    }
}

impl ToSchema for WatchChange {}

//! The catalog's cache slots each front door owns, in one place so no two share one.

use crate::catalog::formats::{BodySlot, FormatSlot, BODIES, FORMATS};

/// Consul's `/v1/health/service` entry (`{Node, Service, Checks}`) per instance.
pub const CONSUL_HEALTH: FormatSlot = FormatSlot(0);
/// Consul's `/v1/catalog/service` entry (a `ServiceNode`) per instance.
pub const CONSUL_CATALOG: FormatSlot = FormatSlot(1);

/// Per service: every instance as health entries.
pub const CONSUL_HEALTH_ALL: BodySlot = BodySlot(0);
/// Per service: the passing instances as health entries (`?passing`).
pub const CONSUL_HEALTH_PASSING: BodySlot = BodySlot(1);
/// Per service: every instance as catalog entries.
pub const CONSUL_CATALOG_ALL: BodySlot = BodySlot(2);
/// Per service: its `"name":[tags]` member of `/v1/catalog/services`.
pub const CONSUL_SERVICE_TAGS: BodySlot = BodySlot(3);
/// Per snapshot: `/v1/catalog/services` of the default namespace.
pub const CONSUL_SERVICES: BodySlot = BodySlot(4);

const _: () = assert!(CONSUL_CATALOG.0 < FORMATS && CONSUL_SERVICES.0 < BODIES);

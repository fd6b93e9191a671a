//! The contract between Switchboard and the registries it federates.
//!
//! This crate is deliberately small: it owns the service model every source speaks
//! ([`Instance`], [`ServiceKey`], [`Status`]), the [`Update`] stream a source emits, and the
//! [`Connector`] trait an adapter implements. Adapters (etcd, Consul, Nacos) live in their
//! own folders behind cargo features; the server never names their internals.
//!
//! A connector only connects, lists and streams changes. Everything about recovery
//! (backoff, staleness, guards against wipe-outs) belongs to the server's supervisor.

#[cfg(test)]
mod config_checks;
mod connector;
pub mod duration;
#[cfg(any(feature = "etcd", feature = "consul", feature = "nacos"))]
mod endpoint;
mod error;
#[cfg(any(feature = "consul", feature = "nacos"))]
mod http_error;
mod model;
mod one_or_many;
#[cfg(all(test, any(feature = "etcd", feature = "consul", feature = "nacos")))]
mod redirect_tests;
#[cfg(any(feature = "consul", feature = "nacos"))]
mod session;
mod source;
#[cfg(any(feature = "consul", feature = "etcd", feature = "nacos"))]
mod task;

#[cfg(feature = "consul")]
pub mod consul;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "nacos")]
pub mod nacos;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use connector::{BoxUpdateStream, Connector, RegistryWriter, Update};
#[cfg(any(feature = "etcd", feature = "consul", feature = "nacos"))]
pub use endpoint::{Secret, TlsConfig, SECRET_MASK};
pub use error::{excerpt, ConnectorError, EXCERPT_CHARS};
pub use model::{
    Check, CheckStatus, Instance, InstanceKey, ServiceKey, Status, DEFAULT_GROUP, DEFAULT_NAMESPACE,
};
pub use one_or_many::one_or_many;
pub use source::{
    build, is_glob, is_id, AdapterConfig, SourceCommon, SourceConfig, SourceConfigError,
    ADAPTER_TYPES,
};

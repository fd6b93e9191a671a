//! The trait an adapter implements, and the updates it streams.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::{ConnectorError, Instance, InstanceKey, ServiceKey};

/// One change reported by a source. The catalog applies it to that source's partition.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// The source's complete view; replaces everything it reported before.
    Reset(Vec<Instance>),
    /// The complete view of one service; empty means the service is gone.
    Service(ServiceKey, Vec<Instance>),
    /// Instances added or changed.
    Upsert(Vec<Instance>),
    /// Instances removed.
    Remove(Vec<InstanceKey>),
}

/// The stream a [`Connector::watch`] returns.
pub type BoxUpdateStream = BoxStream<'static, Result<Update, ConnectorError>>;

/// A source of service instances.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Opens a watch. The first item MUST be a complete view ([`Update::Reset`]); later
    /// items are deltas. Called again after every failure.
    async fn watch(&self) -> Result<BoxUpdateStream, ConnectorError>;

    /// Writable sources (sync-back targets) return `Some`.
    fn writer(&self) -> Option<&dyn RegistryWriter> {
        None
    }
}

/// Writes instances into a registry (used by sync-back).
#[async_trait]
pub trait RegistryWriter: Send + Sync {
    async fn register(&self, instance: &Instance) -> Result<(), ConnectorError>;
    async fn deregister(&self, key: &InstanceKey) -> Result<(), ConnectorError>;
}

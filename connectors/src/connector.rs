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
    /// Not a change: the source holds something unusable (e.g. a value that does not
    /// parse), which was skipped. The rest of the source keeps working; the supervisor
    /// counts it and shows it as the source's last error.
    Skipped { key: String, reason: String },
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

    /// The endpoint currently in use (for the source's status), when known. Never
    /// includes credentials.
    fn endpoint(&self) -> Option<String> {
        None
    }
}

/// Writes instances into a registry (used by sync-back).
#[async_trait]
pub trait RegistryWriter: Send + Sync {
    async fn register(&self, instance: &Instance) -> Result<(), ConnectorError>;
    async fn deregister(&self, key: &InstanceKey) -> Result<(), ConnectorError>;

    /// Deregisters `instance` as it was written. Writers that address an instance by
    /// more than its key (an endpoint, a rendered path) use the whole instance, so this
    /// works after a restart, when the writer no longer remembers what it wrote.
    async fn deregister_instance(&self, instance: &Instance) -> Result<(), ConnectorError> {
        self.deregister(&instance.key()).await
    }

    /// True when what this writer registers expires unless it keeps it alive (an etcd
    /// lease, a Consul TTL check): a new writer must register it again to keep it.
    fn keeps_alive(&self) -> bool {
        false
    }
}

//! Where a job writes: the native registry (durable, never expired) or an external
//! source's writer (etcd, Consul, Nacos). External writers belong to a connector the job
//! builds from the target source's configuration, so their keep-alive tasks (etcd lease,
//! Consul TTL checks) live exactly as long as the job.

use std::sync::Arc;

use switchboard_connectors::{Connector, ConnectorError, Instance, SourceConfig};

use crate::registry::{Registry, RegistryError};

pub enum Target {
    Native(Arc<Registry>),
    External(Arc<dyn Connector>),
}

/// Why a write failed, as the job's status shows it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Connector(#[from] ConnectorError),
    #[error("{0}")]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    NotWritable(String),
}

impl WriteError {
    /// The target will refuse this again however often it is tried (an invalid
    /// instance, a layout that cannot hold it); connection trouble is not permanent.
    pub fn is_permanent(&self) -> bool {
        match self {
            WriteError::Registry(RegistryError::Invalid(_)) => true,
            WriteError::Connector(err) => matches!(err, ConnectorError::Config(_)),
            _ => false,
        }
    }
}

impl Target {
    /// The writer of source `config`, or why it has none.
    pub fn external(config: &SourceConfig) -> Result<Target, WriteError> {
        let connector = switchboard_connectors::build(config)?;
        if connector.writer().is_none() {
            return Err(WriteError::NotWritable(format!(
                "source `{}` cannot be written to",
                config.id()
            )));
        }
        Ok(Target::External(connector))
    }

    pub async fn register(&self, instance: &Instance) -> Result<(), WriteError> {
        match self {
            Target::Native(registry) => {
                registry.register_persistent(instance).await?;
                Ok(())
            }
            Target::External(connector) => Ok(writer(connector)?.register(instance).await?),
        }
    }

    /// Removes `instance` as it was written. Already gone is success.
    pub async fn deregister(&self, instance: &Instance) -> Result<(), WriteError> {
        match self {
            Target::Native(registry) => match registry.deregister(&instance.id).await {
                Ok(_) | Err(RegistryError::NotFound(_)) => Ok(()),
                Err(err) => Err(err.into()),
            },
            Target::External(connector) => {
                Ok(writer(connector)?.deregister_instance(instance).await?)
            }
        }
    }
}

fn writer(
    connector: &Arc<dyn Connector>,
) -> Result<&dyn switchboard_connectors::RegistryWriter, WriteError> {
    connector
        .writer()
        .ok_or_else(|| WriteError::NotWritable("the target has no writer".to_owned()))
}

//! The writer's connection to etcd: one client on one endpoint, made on first use
//! (starting at the endpoint the watch last used) and replaced by one on the next
//! endpoint that answers when it stops answering. Each request has the source's
//! `timeout`; etcd refusing a lease that is gone is told apart from other failures.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use etcd_client::{Client, GetOptions};
use tokio::sync::Mutex;
use tracing::debug;

use super::client::{deadline, is_lease_not_found, map_error, on_any_endpoint, within};
use super::config::EtcdConfig;
use crate::ConnectorError;

/// Why a request failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// etcd no longer has the lease the request named (it expired or was revoked).
    LeaseGone,
    Other(ConnectorError),
}

impl From<ConnectorError> for Failure {
    fn from(err: ConnectorError) -> Self {
        Failure::Other(err)
    }
}

impl From<Failure> for ConnectorError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::LeaseGone => ConnectorError::Connection(
                "etcd no longer has the writer's lease (it expired or was revoked)".to_owned(),
            ),
            Failure::Other(err) => err,
        }
    }
}

pub(super) struct Link {
    source_id: String,
    config: EtcdConfig,
    /// The connector's endpoint in use (the watch's): where the first client starts.
    watch_in_use: Arc<AtomicUsize>,
    /// The client and the index of its endpoint.
    current: Mutex<Option<(Client, usize)>>,
}

impl Link {
    pub(super) fn new(
        source_id: String,
        config: EtcdConfig,
        watch_in_use: Arc<AtomicUsize>,
    ) -> Self {
        Link {
            source_id,
            config,
            watch_in_use,
            current: Mutex::new(None),
        }
    }

    /// Runs `request` on the current client; when its endpoint does not answer, once more
    /// on a client of the next endpoint that does.
    pub(super) async fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T, Failure>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let (client, index) = self.client(None).await?;
        match self.attempt(what, &request, client).await {
            Err(Failure::Other(ConnectorError::Connection(why))) => {
                let endpoint = &self.config.endpoints[index];
                debug!(source.id = %self.source_id, %endpoint, error = %why, "etcd endpoint failed while writing; trying the others");
                let (client, _) = self.client(Some(index)).await?;
                self.attempt(what, &request, client).await
            }
            other => other,
        }
    }

    async fn attempt<T, F, Fut>(
        &self,
        what: &str,
        request: &F,
        client: Client,
    ) -> Result<T, Failure>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        match deadline(self.config.timeout, what, request(client)).await? {
            Ok(answer) => Ok(answer),
            Err(err) if is_lease_not_found(&err) => Err(Failure::LeaseGone),
            Err(err) => Err(Failure::Other(map_error(err))),
        }
    }

    /// The current client, or, after the endpoint at `failed` did not answer, a client of
    /// the next one that does (unless a concurrent call already replaced it).
    async fn client(&self, failed: Option<usize>) -> Result<(Client, usize), ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some((client, index)) = current.as_ref() {
            if failed != Some(*index) {
                return Ok((client.clone(), *index));
            }
        }
        let first = match failed {
            Some(failed) => failed + 1,
            None => self.watch_in_use.load(Ordering::Relaxed),
        };
        // Connecting is lazy without a user: a read proves the endpoint answers (and has
        // a leader, since the client requires one).
        let probe_key = self.config.effective_prefix();
        let timeout = self.config.timeout;
        let probe = |mut client: Client| {
            let key = probe_key.clone();
            async move {
                let options = GetOptions::new().with_keys_only();
                within(timeout, "probing", client.get(key, Some(options))).await?;
                Ok(())
            }
        };
        let (client, index, ()) =
            on_any_endpoint(&self.config, first, &self.source_id, probe).await?;
        *current = Some((client.clone(), index));
        Ok((client, index))
    }
}

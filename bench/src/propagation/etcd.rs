//! The etcd side of the propagation samples: writes are puts (`{prefix}{svc}/i{k}` =
//! `10.1.x.y:80`) and deletes through `etcd-client`, and the direct observer is an etcd
//! watch on the service's prefix over its own gRPC connection, opened before the first
//! sample, which reports each write's revision with the time its response arrived.

use anyhow::{bail, Context};
use etcd_client::{Client, WatchOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Backend, Change, STUCK};
use crate::etcd::PREFIX;
use crate::servers::Server;

/// The service the samples write to.
pub const SERVICE: &str = "bench-etcd";

/// Writes to one etcd and watches the writes directly.
pub struct Etcd<'a> {
    etcd: &'a Server,
    writer: Client,
    /// `{PREFIX}{SERVICE}/`.
    service_prefix: String,
    /// The revision of the last write.
    revision: i64,
    watch: Option<(mpsc::UnboundedReceiver<(i64, Instant)>, WatchTask)>,
}

impl Etcd<'_> {
    pub async fn connect(etcd: &Server) -> anyhow::Result<Etcd<'_>> {
        Ok(Etcd {
            etcd,
            writer: crate::etcd::connect(etcd).await?,
            service_prefix: format!("{PREFIX}{SERVICE}/"),
            revision: 0,
            watch: None,
        })
    }
}

impl Backend for Etcd<'_> {
    const SERVICE: &'static str = SERVICE;

    fn observer(&self) -> &'static str {
        "a direct etcd watch"
    }

    async fn write(&mut self, change: &Change) -> anyhow::Result<()> {
        let key = format!("{}{}", self.service_prefix, change.id);
        let revision = if change.put {
            let response = self.writer.put(key, change.address(), None).await?;
            response.header().map(|h| h.revision())
        } else {
            let response = self.writer.delete(key, None).await?;
            response.header().map(|h| h.revision())
        };
        self.revision = revision.context("etcd answered a write without a header")?;
        Ok(())
    }

    async fn ready(&mut self) -> anyhow::Result<()> {
        self.watch = Some(watch(self.etcd, &self.service_prefix).await?);
        Ok(())
    }

    /// The watch is always listening.
    async fn arm(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn observed(&mut self, _change: &Change) -> anyhow::Result<Instant> {
        let (events, _) = self.watch.as_mut().context("the watch was never opened")?;
        let revision = self.revision;
        wait_revision(events, revision)
            .await
            .with_context(|| format!("it did not deliver revision {revision}"))
    }
}

/// Aborts the watch task when dropped.
pub(crate) struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A direct watch on `prefix` over its own connection, already created on return.
/// Sends the revision of every event with the time its response arrived.
pub(crate) async fn watch(
    etcd: &Server,
    prefix: &str,
) -> anyhow::Result<(mpsc::UnboundedReceiver<(i64, Instant)>, WatchTask)> {
    let mut client: Client = crate::etcd::connect(etcd).await?;
    let mut stream = client
        .watch(prefix, Some(WatchOptions::new().with_prefix()))
        .await
        .context("cannot open the direct etcd watch")?;
    let created = stream
        .message()
        .await
        .context("the direct etcd watch failed")?
        .context("the direct etcd watch closed at once")?;
    if !created.created() {
        bail!("the direct etcd watch's first response is not its creation");
    }
    let (sender, receiver) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        // The client owns the connection; keep it alive as long as the stream.
        let _client = client;
        while let Ok(Some(response)) = stream.message().await {
            let at = Instant::now();
            for event in response.events() {
                if let Some(kv) = event.kv() {
                    if sender.send((kv.mod_revision(), at)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok((receiver, WatchTask(task)))
}

/// When the direct watch delivered `revision`.
pub(crate) async fn wait_revision(
    events: &mut mpsc::UnboundedReceiver<(i64, Instant)>,
    revision: i64,
) -> anyhow::Result<Instant> {
    loop {
        let event = tokio::time::timeout(STUCK, events.recv())
            .await
            .with_context(|| format!("no event within {STUCK:?}"))?;
        match event {
            Some((seen, at)) if seen == revision => return Ok(at),
            Some((seen, _)) if seen < revision => continue,
            Some((seen, _)) => bail!("it skipped to revision {seen}"),
            None => bail!("the watch ended"),
        }
    }
}

//! Reading etcd: list the prefix page by page at one revision, and the update stream of
//! one `watch()` call. The stream starts with the listing's `Reset`, then follows a
//! prefix watch from the next revision, so nothing between list and watch is missed. When the watch breaks (compaction, cancel, transport error) it
//! re-lists and sends a fresh `Reset` in the same stream; when the re-list fails too, the
//! stream ends with the error and the supervisor reconnects. The endpoint it lists on is
//! the one `endpoint()` reports; `client.rs` fails over to the next ones.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchResponse, WatchStream};
use futures::StreamExt;
use tracing::{debug, info, warn};

use super::client::{error_chain, on_any_endpoint, within};
use super::config::EtcdConfig;
use super::state::{coalesce, Entry, Step, Tracker};
use crate::{BoxUpdateStream, ConnectorError, Update};

/// Keys fetched per listing request; big registries are read in pages at one revision.
const PAGE_SIZE: i64 = 500;
/// Largest response accepted. etcd values reach 1.5 MiB, so a page or a catching-up watch
/// response can pass gRPC's default 4 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// A watch that broke this many times in a row, each time soon after being opened, ends
/// the stream rather than re-listing forever; the supervisor then backs off.
const MAX_QUICK_RECOVERIES: u32 = 5;
/// A watch that lived this long counts as healthy: its failure starts a new count.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// A client on one endpoint with the listing it made, ready to watch.
struct Opened {
    client: Client,
    index: usize,
    revision: i64,
    entries: Vec<Entry>,
}

/// Connects to the endpoints in turn, starting at `first`, until one lists the prefix.
async fn open_any(
    config: &EtcdConfig,
    prefix: &[u8],
    first: usize,
    source_id: &str,
) -> Result<Opened, ConnectorError> {
    let timeout = config.timeout;
    let listing = |client: Client| async move { list(&client, prefix, timeout).await };
    let (client, index, (revision, entries)) =
        on_any_endpoint(config, first, source_id, listing).await?;
    Ok(Opened {
        client,
        index,
        revision,
        entries,
    })
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Empty or all 0xff: to the end of the keyspace.
    vec![0]
}

/// Reads every key below `prefix` at one revision; returns that revision and the keys.
async fn list(
    client: &Client,
    prefix: &[u8],
    timeout: Duration,
) -> Result<(i64, Vec<Entry>), ConnectorError> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let end = prefix_end(prefix);
    let mut start = if prefix.is_empty() {
        vec![0]
    } else {
        prefix.to_vec()
    };
    let mut revision = 0;
    let mut entries = Vec::new();
    loop {
        let mut options = GetOptions::new()
            .with_range(end.clone())
            .with_limit(PAGE_SIZE);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let mut response = within(timeout, "listing", kv.get(start.clone(), Some(options))).await?;
        if revision == 0 {
            revision = response.header().map_or(0, |header| header.revision());
        }
        let more = response.more();
        let kvs = response.take_kvs();
        let Some(last) = kvs.last() else { break };
        start = last.key().to_vec();
        start.push(0);
        entries.extend(kvs.into_iter().map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let mod_revision = kv.mod_revision();
            Entry {
                key,
                value: kv.into_key_value().1,
                mod_revision,
            }
        }));
        if !more {
            break;
        }
    }
    Ok((revision, entries))
}

/// One `watch()` call's state; the update stream unfolds over it.
pub(crate) struct Session {
    source_id: String,
    config: EtcdConfig,
    /// Index into `config.endpoints` of the endpoint in use, shared with the connector.
    in_use: Arc<AtomicUsize>,
    client: Client,
    prefix: Vec<u8>,
    tracker: Tracker,
    /// Revision of the last complete listing; the watch starts right after it.
    revision: i64,
    watch: Option<(WatchStream, Instant)>,
    queue: VecDeque<Result<Update, ConnectorError>>,
    finished: bool,
    quick_recoveries: u32,
}

impl Session {
    /// Connects and lists the prefix; the stream's first item is the listing's `Reset`.
    pub(crate) async fn start(
        source_id: String,
        config: EtcdConfig,
        in_use: Arc<AtomicUsize>,
        tracker: Tracker,
    ) -> Result<BoxUpdateStream, ConnectorError> {
        let prefix = config.effective_prefix().into_bytes();
        let first = in_use.load(Ordering::Relaxed);
        let opened = open_any(&config, &prefix, first, &source_id).await?;
        let mut session = Session {
            source_id,
            config,
            in_use,
            client: opened.client.clone(),
            prefix,
            tracker,
            revision: 0,
            watch: None,
            queue: VecDeque::new(),
            finished: false,
            quick_recoveries: 0,
        };
        session.use_listing(opened);
        let stream = futures::stream::unfold(session, |mut session| async move {
            let item = session.next().await?;
            Some((item, session))
        });
        Ok(stream.boxed())
    }

    /// Re-lists on the endpoint in use, or fails over to the others.
    async fn relist(&mut self) -> Result<(), ConnectorError> {
        let current = self.in_use.load(Ordering::Relaxed);
        let opened = match list(&self.client, &self.prefix, self.config.timeout).await {
            Ok((revision, entries)) => Opened {
                client: self.client.clone(),
                index: current,
                revision,
                entries,
            },
            // Reconnecting (to this endpoint last) also names the endpoints in the error.
            Err(ConnectorError::Connection(_)) => {
                open_any(&self.config, &self.prefix, current + 1, &self.source_id).await?
            }
            Err(err) => return Err(err),
        };
        self.use_listing(opened);
        Ok(())
    }

    fn use_listing(&mut self, opened: Opened) {
        let Opened {
            client,
            index,
            revision,
            entries,
        } = opened;
        let keys = entries.len();
        self.client = client;
        self.in_use.store(index, Ordering::Relaxed);
        self.revision = revision;
        let updates = self.tracker.reset(entries);
        info!(
            source.id = %self.source_id,
            endpoint = %self.config.endpoints[index],
            revision,
            keys,
            instances = self.tracker.len(),
            skipped = updates.len() - 1,
            "Listed etcd prefix"
        );
        self.queue.extend(updates.into_iter().map(Ok));
    }

    async fn next(&mut self) -> Option<Result<Update, ConnectorError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            let failure = match self.watch.as_mut() {
                None => match self.open_watch().await {
                    Ok(stream) => {
                        self.watch = Some((stream, Instant::now()));
                        continue;
                    }
                    Err(err) => err.to_string(),
                },
                Some((stream, _)) => match stream.message().await {
                    Ok(Some(response)) => match self.on_response(response).await {
                        Ok(()) => continue,
                        Err(reason) => reason,
                    },
                    Ok(None) => "etcd closed the watch stream".to_owned(),
                    Err(err) => error_chain(&err),
                },
            };
            self.recover(failure).await;
        }
    }

    async fn open_watch(&mut self) -> Result<WatchStream, ConnectorError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.revision + 1);
        let key = if self.prefix.is_empty() {
            vec![0]
        } else {
            self.prefix.clone()
        };
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let stream = within(
            self.config.timeout,
            "opening the watch",
            client.watch(key, Some(options)),
        )
        .await?;
        debug!(source.id = %self.source_id, from_revision = self.revision + 1, "Watching etcd prefix");
        Ok(stream)
    }

    /// Applies one watch response; `Err` says why the watch is no longer usable.
    async fn on_response(&mut self, response: WatchResponse) -> Result<(), String> {
        if response.compact_revision() > 0 {
            return Err(format!(
                "revision {} was compacted (oldest kept: {})",
                self.revision + 1,
                response.compact_revision()
            ));
        }
        if response.canceled() {
            let reason = response.cancel_reason();
            return Err(if reason.is_empty() {
                "etcd canceled the watch".to_owned()
            } else {
                format!("etcd canceled the watch: {reason}")
            });
        }
        let mut updates = Vec::new();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let steps = match event.event_type() {
                EventType::Put => self.tracker.put(Entry {
                    key,
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                }),
                EventType::Delete => self.tracker.delete(&key, kv.mod_revision()),
            };
            for step in steps {
                match step {
                    Step::Send(update) => updates.push(update),
                    // Rare: the fallback of an instance several keys held lands on the
                    // key whose instance the tracker did not keep.
                    Step::Fetch(fetch) => {
                        let read = self
                            .read(&fetch.key, fetch.at)
                            .await
                            .map_err(|err| format!("cannot read `{}` again: {err}", fetch.key))?;
                        updates.push(self.tracker.fetched(fetch, read)?);
                    }
                }
            }
        }
        if !updates.is_empty() {
            debug!(source.id = %self.source_id, events = response.events().len(), "Applied etcd events");
        }
        self.queue.extend(coalesce(updates).into_iter().map(Ok));
        Ok(())
    }

    /// One key as it was at `revision`.
    async fn read(&self, key: &str, revision: i64) -> Result<Option<Entry>, ConnectorError> {
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let options = GetOptions::new().with_revision(revision);
        let mut response = within(
            self.config.timeout,
            "reading a key",
            kv.get(key, Some(options)),
        )
        .await?;
        Ok(response.take_kvs().into_iter().next().map(|kv| {
            let mod_revision = kv.mod_revision();
            let (key, value) = kv.into_key_value();
            Entry {
                key: String::from_utf8_lossy(&key).into_owned(),
                value,
                mod_revision,
            }
        }))
    }

    /// The watch broke: re-list and send a fresh `Reset`, or end the stream with the error.
    async fn recover(&mut self, reason: String) {
        if let Some((_, opened)) = self.watch.take() {
            if opened.elapsed() >= HEALTHY_AFTER {
                self.quick_recoveries = 0;
            }
        }
        self.quick_recoveries += 1;
        if self.quick_recoveries > MAX_QUICK_RECOVERIES {
            warn!(source.id = %self.source_id, %reason, "etcd watch keeps failing; giving up this stream");
            self.fail(ConnectorError::Connection(format!(
                "the etcd watch keeps failing: {reason}"
            )));
            return;
        }
        warn!(source.id = %self.source_id, %reason, "etcd watch broke; re-listing");
        if let Err(err) = self.relist().await {
            warn!(source.id = %self.source_id, error = %err, "Re-listing etcd failed; ending the stream");
            self.fail(err);
        }
    }

    fn fail(&mut self, err: ConnectorError) {
        self.queue.push_back(Err(err));
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_covers_the_prefix() {
        assert_eq!(prefix_end(b"/services/"), b"/services0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b""), [0]);
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
    }
}

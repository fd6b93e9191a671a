//! Propagation latency: how long a write to etcd takes to come out of a Switchboard
//! blocking query, measured alongside its floor, a direct etcd watch on the same writes.
//!
//! Method, per sample:
//! 1. A blocking query `GET /api/v1/services/bench-etcd/instances?index=I&wait=30s` is sent
//!    with the index of the previous answer, on its own keep-alive connection.
//! 2. The bench polls `GET /metrics` until `switchboard_blocking_queries_waiting` is 1.
//!    Switchboard counts a query there only after it has subscribed to the service's
//!    changes, so from then on the write below cannot slip past it unseen; the write
//!    never races the request still travelling to the server.
//! 3. The clock starts just before the write (alternately a put of `i{k}` = `10.1.x.y:80`
//!    and its delete, so the answer stays two instances small), then stops separately
//!    when the blocking query has returned its whole body and when the direct watch (its
//!    own gRPC connection, opened before the first sample) delivers the write's revision.
//!
//! A permanent `anchor` instance keeps the service from ever emptying, so the wipe-out
//! guard (which holds emptying updates for confirmation) plays no part. Each answer is
//! checked to show the write, so a query returning for any other reason is an error.

use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, WatchOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::etcd::PREFIX;
use crate::servers::Server;

/// The service the samples write to.
pub const SERVICE: &str = "bench-etcd";
/// How many writes are timed.
pub const SAMPLES: usize = 1000;
/// Longest time one observer may take to see a write before the run is declared broken.
const STUCK: Duration = Duration::from_secs(10);

/// The times from "about to write" to "seen", one per sample, in sample order.
pub struct Latencies {
    pub switchboard: Vec<Duration>,
    pub watch: Vec<Duration>,
}

/// Runs `samples` writes through `etcd` and times both observers. Switchboard must already
/// have `etcd` configured as a source.
pub async fn measure(
    etcd: &Server,
    switchboard: &mut Server,
    http: &reqwest::Client,
    samples: usize,
) -> anyhow::Result<Latencies> {
    let mut writer = crate::etcd::connect(etcd).await?;
    let service_prefix = format!("{PREFIX}{SERVICE}/");
    writer
        .put(format!("{service_prefix}anchor"), "10.0.0.1:80", None)
        .await
        .context("cannot write the anchor instance to etcd")?;
    let read_path = format!("/api/v1/services/{SERVICE}/instances");
    switchboard
        .wait_for(http, &read_path, Duration::from_secs(20), |body| {
            if contains(body, "10.0.0.1:80") {
                Ok(())
            } else {
                Err("the anchor instance from etcd is not listed yet".to_owned())
            }
        })
        .await?;
    let mut index = read_index(http, &switchboard.url(&read_path)).await?;

    let (mut events, _watcher) = watch(etcd, &service_prefix).await?;
    // Blocking queries get a client of their own, so each reuses the one warm connection
    // the previous query left idle rather than the one the /metrics polls use.
    let blocking = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let metrics_url = switchboard.url("/metrics");
    let mut latencies = Latencies {
        switchboard: Vec::with_capacity(samples),
        watch: Vec::with_capacity(samples),
    };
    for n in 0..samples {
        let k = n / 2;
        let key = format!("{service_prefix}i{k}");
        let address = format!("10.1.{}.{}:80", k / 256 % 256, k % 256);
        let put = n % 2 == 0;

        let url = format!("{}?index={index}&wait=30s", switchboard.url(&read_path));
        let query = tokio::spawn(blocking_read(blocking.clone(), url));
        wait_parked(http, &metrics_url, &query, switchboard).await?;

        let started = Instant::now();
        let revision = if put {
            let response = writer.put(key.as_str(), address.as_str(), None).await?;
            response.header().map(|h| h.revision())
        } else {
            let response = writer.delete(key.as_str(), None).await?;
            response.header().map(|h| h.revision())
        }
        .context("etcd answered a write without a header")?;

        let answer = tokio::time::timeout(STUCK, query)
            .await
            .with_context(|| {
                format!(
                    "sample {n}: Switchboard's blocking query did not return within {STUCK:?} \
                     of the write to {key}; its log ends with:\n{}",
                    switchboard.log_tail()
                )
            })?
            .context("the blocking query task panicked")??;
        let watched_at = wait_revision(&mut events, revision)
            .await
            .with_context(|| {
                format!("sample {n}: the direct watch did not deliver revision {revision}")
            })?;

        if contains(&answer.body, &address) != put {
            bail!(
                "sample {n}: Switchboard's blocking query returned without the {} of {key} \
                 (index {index} -> {}): {}",
                if put { "put" } else { "delete" },
                answer.index,
                String::from_utf8_lossy(&answer.body)
            );
        }
        if answer.index <= index {
            bail!(
                "sample {n}: the blocking query returned index {} after index {index}",
                answer.index
            );
        }
        index = answer.index;
        latencies.switchboard.push(answer.at - started);
        latencies.watch.push(watched_at - started);
    }
    Ok(latencies)
}

/// One answered blocking query.
struct Answer {
    /// When the whole body had arrived.
    at: Instant,
    index: u64,
    body: bytes::Bytes,
}

async fn blocking_read(client: reqwest::Client, url: String) -> anyhow::Result<Answer> {
    let response = client.get(&url).send().await?;
    let status = response.status();
    let index = header_index(&response);
    let body = response.bytes().await?;
    let at = Instant::now();
    if !status.is_success() {
        bail!(
            "blocking query {url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(Answer {
        at,
        index: index.with_context(|| format!("{url} answered without X-Switchboard-Index"))?,
        body,
    })
}

async fn read_index(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let response = client.get(url).send().await?.error_for_status()?;
    header_index(&response).with_context(|| format!("{url} answered without X-Switchboard-Index"))
}

fn header_index(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("x-switchboard-index")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Polls Switchboard's metrics until the blocking query is parked.
async fn wait_parked(
    http: &reqwest::Client,
    metrics_url: &str,
    query: &tokio::task::JoinHandle<anyhow::Result<Answer>>,
    switchboard: &mut Server,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + STUCK;
    loop {
        let text = http.get(metrics_url).send().await?.text().await?;
        let waiting = parked_queries(&text)
            .context("GET /metrics has no switchboard_blocking_queries_waiting gauge")?;
        if waiting >= 1.0 {
            return Ok(());
        }
        if query.is_finished() {
            bail!(
                "the blocking query returned before any write, so it never waited \
                 (is the index it was given stale?)"
            );
        }
        if Instant::now() > deadline {
            switchboard.check_alive()?;
            bail!("the blocking query was not parked after {STUCK:?}");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// The value of `switchboard_blocking_queries_waiting` in a Prometheus text exposition.
fn parked_queries(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix("switchboard_blocking_queries_waiting ")?;
        value.trim().parse().ok()
    })
}

/// Aborts the watch task when dropped.
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A direct watch on `prefix` over its own connection, already created on return.
/// Sends the revision of every event with the time its response arrived.
async fn watch(
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
async fn wait_revision(
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

fn contains(body: &[u8], address: &str) -> bool {
    let quoted = format!("\"{address}\"");
    body.windows(quoted.len()).any(|w| w == quoted.as_bytes())
}

/// The nearest-rank percentile `p` (0 < p <= 100) of `samples`.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn reads_the_parked_gauge() {
        let text = "# HELP switchboard_blocking_queries_waiting Blocking queries\n\
                    # TYPE switchboard_blocking_queries_waiting gauge\n\
                    switchboard_blocking_queries_waiting 1\n";
        assert_eq!(parked_queries(text), Some(1.0));
        assert_eq!(parked_queries("other 1\n"), None);
    }

    #[test]
    fn finds_whole_addresses_only() {
        let body = br#"[{"address":"10.1.0.12:80"}]"#;
        assert!(contains(body, "10.1.0.12:80"));
        assert!(!contains(body, "10.1.0.1:80"));
    }
}

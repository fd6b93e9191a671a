//! Propagation latency: how long a write to a federated registry takes to come out of a
//! Switchboard blocking query, measured alongside its floor, the registry's own direct
//! observer of the same writes. This file owns the per-sample loop every registry shares;
//! a [`Backend`] supplies the writes and the direct observer (`propagation/etcd.rs`: a
//! gRPC watch; `propagation/consul.rs`: the Consul double's own blocking query;
//! `propagation/nacos.rs`: a `nacos-sdk` subscription to rnacos's pushes).
//!
//! Method, per sample:
//! 1. A blocking query `GET /api/v1/services/{svc}/instances?index=I&wait=30s` (plus
//!    `group=G` where the backend's service is not in the default group) is sent with the
//!    index of the previous answer, on its own keep-alive connection.
//! 2. The bench polls `GET /metrics` until `switchboard_blocking_queries_waiting` is 1.
//!    Switchboard counts a query there only after it has subscribed to the service's
//!    changes, so from then on the write below cannot slip past it unseen; the write
//!    never races the request still travelling to the server.
//! 3. The backend arms its direct observer ([`Backend::arm`]), so it too waits for the
//!    write before the write is made.
//! 4. The clock starts just before the write (alternately a registration of `i{k}` at
//!    `10.1.x.y:80` and its removal, so the answer stays two instances small), then stops
//!    separately when the blocking query has returned its whole body and when the direct
//!    observer has seen the write. Both observers start from the same instant.
//!
//! A permanent `anchor` instance keeps the service from ever emptying, so the wipe-out
//! guard (which holds emptying updates for confirmation) plays no part. Each answer is
//! checked to show the write and to move the index forward, so a query returning for any
//! other reason is an error.

pub mod consul;
pub mod etcd;
pub mod nacos;
pub(crate) mod query;

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;

use crate::servers::Server;
use query::{blocking_read, read_index, Answer, SWITCHBOARD_INDEX};

/// How many writes are timed, unless the backend says otherwise ([`Backend::SAMPLES`]).
pub const SAMPLES: usize = 1000;
/// Longest time one observer may take to see a write before the run is declared broken.
const STUCK: Duration = Duration::from_secs(10);

/// The times from "about to write" to "seen", one per sample, in sample order.
pub struct Latencies {
    pub switchboard: Vec<Duration>,
    /// The backend's direct observer: the floor Switchboard is compared against.
    pub direct: Vec<Duration>,
}

/// One write: instance `id` at `host:port` registered (`put`) or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub host: String,
    pub port: u16,
    pub put: bool,
}

impl Change {
    /// The instance that stays registered for the whole run.
    pub fn anchor() -> Change {
        Change {
            id: "anchor".to_owned(),
            host: "10.0.0.1".to_owned(),
            port: 80,
            put: true,
        }
    }

    /// Sample `n`: even samples register `i{n/2}`, odd ones remove it again.
    pub fn sample(n: usize) -> Change {
        let k = n / 2;
        Change {
            id: format!("i{k}"),
            host: format!("10.1.{}.{}", k / 256 % 256, k % 256),
            port: 80,
            put: n % 2 == 0,
        }
    }

    /// `host:port`, as Switchboard lists it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn verb(&self) -> &'static str {
        if self.put {
            "registration"
        } else {
            "removal"
        }
    }
}

/// A registry the samples write to, with its direct observer of those writes.
pub trait Backend {
    /// The service the samples write to.
    const SERVICE: &'static str;
    /// The Switchboard group the service lands in, when not the default one.
    const GROUP: Option<&'static str> = None;
    /// How many writes are timed: fewer where each takes long to propagate.
    const SAMPLES: usize = SAMPLES;
    /// What the direct observer is, for progress lines and errors.
    fn observer(&self) -> &'static str;
    /// Makes `change`; returns once the registry has acknowledged it.
    async fn write(&mut self, change: &Change) -> anyhow::Result<()>;
    /// Called once, when Switchboard lists the anchor: sets the direct observer up.
    async fn ready(&mut self) -> anyhow::Result<()>;
    /// Called before each write, with Switchboard's query parked: on return the direct
    /// observer is waiting for the write too.
    async fn arm(&mut self) -> anyhow::Result<()>;
    /// When the direct observer saw the write of `change` just made; an error if what it
    /// saw does not show that change.
    async fn observed(&mut self, change: &Change) -> anyhow::Result<Instant>;
}

/// Runs [`Backend::SAMPLES`] writes through `backend` and times both observers.
/// Switchboard must already have the backend configured as a source.
pub async fn measure<B: Backend>(
    backend: &mut B,
    switchboard: &mut Server,
    http: &reqwest::Client,
) -> anyhow::Result<Latencies> {
    let samples = B::SAMPLES;
    let anchor = Change::anchor();
    backend
        .write(&anchor)
        .await
        .context("cannot write the anchor instance")?;
    let (read_path, next) = match B::GROUP {
        None => (format!("/api/v1/services/{}/instances", B::SERVICE), '?'),
        Some(group) => (
            format!("/api/v1/services/{}/instances?group={group}", B::SERVICE),
            '&',
        ),
    };
    switchboard
        .wait_for(http, &read_path, Duration::from_secs(20), |body| {
            if contains(body, &anchor.address()) {
                Ok(())
            } else {
                Err("the anchor instance is not listed yet".to_owned())
            }
        })
        .await?;
    let mut index = read_index(http, &switchboard.url(&read_path)).await?;
    backend.ready().await?;
    crate::progress(&format!(
        "propagation: {samples} writes, each timed through switchboard and {}",
        backend.observer()
    ));

    // Blocking queries get a client of their own, so each reuses the one warm connection
    // the previous query left idle rather than the one the /metrics polls use.
    let blocking = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let metrics_url = switchboard.url("/metrics");
    let mut latencies = Latencies {
        switchboard: Vec::with_capacity(samples),
        direct: Vec::with_capacity(samples),
    };
    for n in 0..samples {
        let change = Change::sample(n);
        let url = format!(
            "{}{next}index={index}&wait=30s",
            switchboard.url(&read_path)
        );
        let query = tokio::spawn(blocking_read(blocking.clone(), url, SWITCHBOARD_INDEX));
        wait_parked(http, &metrics_url, &query, switchboard).await?;
        backend
            .arm()
            .await
            .with_context(|| format!("sample {n}: {} did not get ready", backend.observer()))?;

        let started = Instant::now();
        backend.write(&change).await.with_context(|| {
            format!("sample {n}: the {} of {} failed", change.verb(), change.id)
        })?;
        let answer = tokio::time::timeout(STUCK, query)
            .await
            .with_context(|| {
                format!(
                    "sample {n}: Switchboard's blocking query did not return within {STUCK:?} \
                     of the {} of {}; its log ends with:\n{}",
                    change.verb(),
                    change.id,
                    switchboard.log_tail()
                )
            })?
            .context("the blocking query task panicked")??;
        let seen = backend
            .observed(&change)
            .await
            .with_context(|| format!("sample {n}: {}", backend.observer()))?;

        check_answer(&answer, index, &change)
            .with_context(|| format!("sample {n}: Switchboard's blocking query"))?;
        index = answer.index;
        latencies.switchboard.push(answer.at - started);
        latencies.direct.push(seen - started);
    }
    crate::progress(&format!(
        "propagation p99: switchboard {:?}, {} {:?}",
        percentile(&latencies.switchboard, 99.0),
        backend.observer(),
        percentile(&latencies.direct, 99.0)
    ));
    Ok(latencies)
}

/// Fails unless Switchboard's `answer` to a query on `index` shows `change`.
fn check_answer(answer: &Answer, index: u64, change: &Change) -> anyhow::Result<()> {
    if contains(&answer.body, &change.address()) != change.put {
        bail!(
            "returned without the {} of {} (index {index} -> {}): {}",
            change.verb(),
            change.id,
            answer.index,
            String::from_utf8_lossy(&answer.body)
        );
    }
    if answer.index <= index {
        bail!("returned index {} after index {index}", answer.index);
    }
    Ok(())
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

    #[test]
    fn samples_register_then_remove_each_instance() {
        let first = Change::sample(0);
        assert_eq!((first.id.as_str(), first.put), ("i0", true));
        assert_eq!(first.address(), "10.1.0.0:80");
        let second = Change::sample(1);
        assert_eq!(
            second,
            Change {
                put: false,
                ..first
            }
        );
        let later = Change::sample(2 * 300 + 1);
        assert_eq!((later.id.as_str(), later.put), ("i300", false));
        assert_eq!(later.address(), "10.1.1.44:80");
        assert_eq!(Change::anchor().address(), "10.0.0.1:80");
    }

    #[test]
    fn an_answer_must_show_the_change_and_move_on() {
        let answer = |index: u64, body: &'static str| Answer {
            at: Instant::now(),
            index,
            body: bytes::Bytes::from_static(body.as_bytes()),
        };
        let put = Change::sample(0);
        let listed = r#"[{"address":"10.0.0.1:80"},{"address":"10.1.0.0:80"}]"#;
        let anchor_only = r#"[{"address":"10.0.0.1:80"}]"#;
        assert!(check_answer(&answer(8, listed), 7, &put).is_ok());
        assert!(check_answer(&answer(8, anchor_only), 7, &put).is_err());
        assert!(check_answer(&answer(7, listed), 7, &put).is_err());
        let removal = Change::sample(1);
        assert!(check_answer(&answer(9, anchor_only), 8, &removal).is_ok());
        assert!(check_answer(&answer(9, listed), 8, &removal).is_err());
    }
}

//! The registration load of the writes part: many concurrent clients (tokio tasks, each
//! with its own keep-alive connection) registering instances into one service, of
//! Switchboard (`POST /api/v1/instances`) or of rnacos (`POST /nacos/v1/ns/instance`,
//! persistent). One driver serves both the timed runs (unique endpoints until a deadline)
//! and the untimed pre-loads and storms (a fixed list), so every number comes from the
//! same client code.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::Url;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::SERVICE;
use crate::progress;
use crate::propagation::percentile;

/// How often a long [`register_all`] reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// The server a load writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Switchboard,
    /// Persistent instances (`ephemeral=false`), which need no heartbeats to stay.
    Rnacos,
}

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Switchboard's instance id; `None` lets Switchboard generate one. rnacos keys an
    /// instance by its endpoint, so it needs none.
    pub id: Option<String>,
    pub host: String,
    pub port: u16,
    /// Written as metadata `round`, so a read can tell which registration it shows.
    pub round: Option<u32>,
}

impl Registration {
    /// Endpoint `k` of block `block`: `10.{block}.{k/256 % 256}.{k % 256}:{8000 + k/65536}`,
    /// distinct for every `k` below 3.7 million, and per block, so a pre-load and the run
    /// after it never share an endpoint (which would replace rather than add).
    pub fn unique(block: u8, k: usize) -> Registration {
        Registration {
            id: None,
            host: format!("10.{block}.{}.{}", k / 256 % 256, k % 256),
            port: 8000 + (k / 65536) as u16,
            round: None,
        }
    }
}

/// How one request went.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    pub started: Instant,
    pub latency: Duration,
}

/// What the clients register.
#[derive(Clone)]
pub enum Work {
    /// Fresh endpoints of a block until the deadline (no request starts after it).
    Unique { block: u8, until: Instant },
    /// This list, each once, in order across the clients.
    Listed(Arc<Vec<Registration>>),
}

impl Work {
    fn get(&self, k: usize) -> Option<Registration> {
        match self {
            Work::Unique { block, until } => {
                (Instant::now() < *until).then(|| Registration::unique(*block, k))
            }
            Work::Listed(list) => list.get(k).cloned(),
        }
    }
}

/// `clients` concurrent clients work through `work` against `target` at `base` (the
/// server's URL without a path), counting acknowledged requests in `acknowledged`. Every
/// response must be a success. Returns every request's timing, in no particular order.
async fn drive(
    target: Target,
    base: &str,
    clients: usize,
    work: Work,
    acknowledged: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<Done>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        // One client per task: each keeps its own connection alive, as separate
        // registering processes would, rather than sharing one pool.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .build()?;
        let (base, next, work) = (base.to_owned(), next.clone(), work.clone());
        let acknowledged = acknowledged.clone();
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(registration) = work.get(k) else {
                    return anyhow::Ok(done);
                };
                let started = Instant::now();
                register(target, &client, &base, &registration).await?;
                acknowledged.fetch_add(1, Ordering::Relaxed);
                done.push(Done {
                    started,
                    latency: started.elapsed(),
                });
            }
        });
    }
    let mut all = Vec::new();
    // An error drops the set, which aborts the other clients.
    while let Some(finished) = tasks.join_next().await {
        all.extend(finished.context("a registering client panicked")??);
    }
    Ok(all)
}

/// Sends one registration and checks the answer.
async fn register(
    target: Target,
    client: &reqwest::Client,
    base: &str,
    registration: &Registration,
) -> anyhow::Result<()> {
    let Registration {
        id,
        host,
        port,
        round,
    } = registration;
    let request = match target {
        Target::Switchboard => {
            let mut body = json!({
                "service": SERVICE,
                "address": format!("{host}:{port}"),
                "ttl_seconds": 3600,
            });
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            if let Some(round) = round {
                body["metadata"] = json!({ "round": round.to_string() });
            }
            client.post(format!("{base}/api/v1/instances")).json(&body)
        }
        Target::Rnacos => {
            let mut url = Url::parse(&format!("{base}/nacos/v1/ns/instance"))?;
            url.query_pairs_mut()
                .append_pair("serviceName", SERVICE)
                .append_pair("ip", host)
                .append_pair("port", &port.to_string())
                .append_pair("ephemeral", "false");
            if let Some(round) = round {
                let metadata = json!({ "round": round.to_string() });
                url.query_pairs_mut()
                    .append_pair("metadata", &metadata.to_string());
            }
            client.post(url)
        }
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("{target:?}: the registration of {host}:{port} got no answer"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        bail!("{target:?} refused the registration of {host}:{port}: {status}: {text}");
    }
    // Read the whole answer, so the connection is free for the next request.
    let text = response.text().await?;
    if target == Target::Rnacos && text.trim() != "ok" {
        bail!("rnacos answered the registration of {host}:{port} with {text:?}");
    }
    Ok(())
}

/// Requests per second and latencies of the requests in a measured window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    /// Requests that started and finished inside the window.
    pub requests: usize,
    pub per_sec: f64,
    pub mean: Duration,
    pub p99: Duration,
    /// Every request the clients made, warm-up and window edges included: how many
    /// registrations the server took.
    pub total: usize,
    /// The bench process's CPU over the run, as a share of one core. Its clients have
    /// core 1 to themselves, so near 1.0 they, not the server, set the pace.
    pub client_cpu: f64,
}

impl Throughput {
    /// The requests of `done` that started at or after `from` and finished by `to`.
    pub fn of(done: &[Done], from: Instant, to: Instant) -> Throughput {
        let inside: Vec<Duration> = done
            .iter()
            .filter(|d| d.started >= from && d.started + d.latency <= to)
            .map(|d| d.latency)
            .collect();
        let mean = if inside.is_empty() {
            Duration::ZERO
        } else {
            inside.iter().sum::<Duration>() / inside.len() as u32
        };
        Throughput {
            requests: inside.len(),
            per_sec: inside.len() as f64 / (to - from).as_secs_f64(),
            mean,
            p99: percentile(&inside, 99.0),
            total: done.len(),
            client_cpu: 0.0,
        }
    }
}

/// A timed run: `clients` clients register fresh endpoints of `block` for `warm_up` and
/// then `measured`; only the requests inside the measured window count.
pub async fn timed(
    target: Target,
    base: &str,
    clients: usize,
    block: u8,
    (warm_up, measured): (Duration, Duration),
) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    let cpu_before = crate::sync::cpu(std::process::id())?;
    let from = started + warm_up;
    let to = from + measured;
    let work = Work::Unique { block, until: to };
    let done = drive(target, base, clients, work, Arc::default()).await?;
    let cpu = crate::sync::cpu(std::process::id())?.saturating_sub(cpu_before);
    Ok(Throughput {
        client_cpu: cpu.as_secs_f64() / started.elapsed().as_secs_f64(),
        ..Throughput::of(&done, from, to)
    })
}

/// Registers `list` with `clients` clients; returns the time from the first request
/// until the last answer. A long one (a slow server, a large service) says every
/// [`PROGRESS_EVERY`] how far it got, labelled `what`.
pub async fn register_all(
    target: Target,
    base: &str,
    clients: usize,
    list: Vec<Registration>,
    what: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let total = list.len();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let work = Work::Listed(Arc::new(list));
    let run = drive(target, base, clients, work, acknowledged.clone());
    tokio::pin!(run);
    let mut every = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            result = &mut run => {
                result?;
                return Ok(started.elapsed());
            }
            _ = every.tick() => progress(&format!(
                "{what}: {} of {total} acknowledged after {:.0?}",
                acknowledged.load(Ordering::Relaxed),
                started.elapsed()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_endpoints_do_not_repeat() {
        let first = Registration::unique(1, 0);
        assert_eq!((first.host.as_str(), first.port), ("10.1.0.0", 8000));
        let later = Registration::unique(1, 65536 + 258);
        assert_eq!((later.host.as_str(), later.port), ("10.1.1.2", 8001));
        let mut seen = std::collections::HashSet::new();
        for k in 0..200_000 {
            let r = Registration::unique(7, k);
            assert!(seen.insert((r.host, r.port)), "endpoint {k} repeats");
        }
        assert_ne!(Registration::unique(0, 5), Registration::unique(1, 5));
    }

    #[test]
    fn counts_only_requests_inside_the_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let done = |start: u64, latency: u64| Done {
            started: t0 + ms(start),
            latency: ms(latency),
        };
        let all = [
            done(0, 5),     // warm-up
            done(98, 5),    // starts before the window
            done(100, 2),   // inside
            done(150, 4),   // inside
            done(1098, 1),  // inside, ends at the edge
            done(1099, 10), // ends after the window
        ];
        let run = Throughput::of(&all, t0 + ms(100), t0 + ms(1100));
        assert_eq!(run.requests, 3);
        assert_eq!(run.total, 6);
        assert!((run.per_sec - 3.0).abs() < 1e-9);
        assert_eq!(run.mean, ms(7) / 3);
        assert_eq!(run.p99, ms(4));
    }
}

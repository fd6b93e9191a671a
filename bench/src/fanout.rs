//! Watch fan-out: 10 000 parked blocking queries on one service, then 10 000 SSE streams
//! on it; after one change, the time until every watcher has its answer, and Switchboard's
//! resident memory per parked watcher (from `/proc/PID/status`).
//!
//! The watchers are plain sockets in this process (pinned to core 1) writing one request
//! each, so the client costs next to nothing and every byte measured is the server's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::memory::{mib, settled_rss};
use crate::servers::{self, Server};

/// Parked watchers per kind.
pub const WATCHERS: usize = 10_000;
const SERVICE: &str = "fanout-svc";
/// Connections being opened at once: enough to be quick, few enough for the accept queue.
const OPENING: usize = 256;
/// How long the watchers may take to park, and to answer after the change.
const DEADLINE: Duration = Duration::from_secs(60);

/// The two kinds of watcher.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Blocking = 0,
    Sse,
    /// Blocking queries through the Consul door (`/v1/health/service/..?index=`).
    Consul,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Blocking => "blocking queries (GET ..instances?index=..&wait=120s)",
            Kind::Sse => "SSE streams (GET /api/v1/watch?service=..)",
            Kind::Consul => "Consul blocking queries (GET /v1/health/service/..)",
        }
    }

    fn request(self, index: u64) -> String {
        let target = match self {
            Kind::Blocking => {
                format!("/api/v1/services/{SERVICE}/instances?index={index}&wait=120s")
            }
            Kind::Sse => format!("/api/v1/watch?service={SERVICE}"),
            Kind::Consul => format!("/v1/health/service/{SERVICE}?index={index}&wait=120s"),
        };
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    }

    /// How many `event: change` a stream shows before the change (its current state).
    fn events_when_parked(self) -> usize {
        match self {
            Kind::Blocking | Kind::Consul => 0,
            Kind::Sse => 1,
        }
    }
}

/// One kind's readings.
pub struct FanOut {
    pub kind: Kind,
    pub watchers: usize,
    pub rss_before: u64,
    pub rss_parked: u64,
    /// From just before the change until the first, median and last watcher had it.
    pub first: Duration,
    pub median: Duration,
    pub all: Duration,
}

impl FanOut {
    pub fn per_watcher(&self) -> f64 {
        self.rss_parked.saturating_sub(self.rss_before) as f64 / self.watchers as f64
    }
}

/// Measures both kinds, each against a fresh Switchboard with limits wide enough for the
/// watchers (one client address holds them all).
pub async fn bench(binary: &Path) -> anyhow::Result<Vec<FanOut>> {
    check_fd_limit()?;
    let client = crate::pinned_client().await?;
    let wide = (2 * WATCHERS).to_string();
    let envs = [
        ("SWITCHBOARD_API__MAX_CONNECTIONS", wide.clone()),
        ("SWITCHBOARD_API__MAX_CONNECTIONS_PER_CLIENT", wide.clone()),
        ("SWITCHBOARD_API__MAX_WATCHES", wide.clone()),
        ("SWITCHBOARD_API__MAX_WATCHES_PER_CLIENT", wide),
    ];
    let mut results = Vec::new();
    for kind in [Kind::Blocking, Kind::Sse, Kind::Consul] {
        // A fresh process per kind: memory the first kind freed is not always returned
        // to the system, and would hide the second kind's growth.
        crate::progress("fan-out: starting switchboard");
        let mut switchboard =
            servers::start_switchboard_with_env(binary, &client, None, &envs).await?;
        if matches!(kind, Kind::Consul)
            && !crate::consul_reads::has_consul_door(&switchboard, &client).await?
        {
            crate::progress("fan-out: this switchboard has no Consul door: skipped");
            continue;
        }
        let result = measure(kind, &mut switchboard, &client).await?;
        switchboard.check_alive()?;
        results.push(result);
    }
    Ok(results)
}

/// Parks [`WATCHERS`] watchers of `kind`, reads the memory, makes one change and times
/// the answers.
async fn measure(
    kind: Kind,
    switchboard: &mut Server,
    client: &reqwest::Client,
) -> anyhow::Result<FanOut> {
    let index = register(switchboard, client, 2 * kind as u16).await?;
    let rss_before = settled_rss(switchboard.pid()).await?;
    crate::progress(&format!(
        "fan-out: parking {WATCHERS} {} (RSS {})",
        kind.label(),
        mib(rss_before)
    ));
    let address = format!("127.0.0.1:{}", switchboard.port());
    let request: Arc<str> = kind.request(index).into();
    let (parked_tx, mut parked_rx) = mpsc::unbounded_channel::<()>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<anyhow::Result<Instant>>();
    let opening = Arc::new(Semaphore::new(OPENING));
    for _ in 0..WATCHERS {
        let permit = opening.clone().acquire_owned().await?;
        let (address, request) = (address.clone(), request.clone());
        let (parked_tx, done_tx) = (parked_tx.clone(), done_tx.clone());
        tokio::spawn(async move {
            let answered = watch(kind, &address, &request, permit, parked_tx).await;
            let _ = done_tx.send(answered);
        });
    }
    drop((parked_tx, done_tx));
    let parked = async {
        for _ in 0..WATCHERS {
            parked_rx
                .recv()
                .await
                .context("a watcher ended before parking")?;
        }
        wait_parked(kind, switchboard, client).await
    };
    tokio::time::timeout(DEADLINE, parked)
        .await
        .context("the watchers did not all park in time")??;
    let rss_parked = settled_rss(switchboard.pid()).await?;
    crate::progress(&format!(
        "fan-out: {WATCHERS} parked, RSS {}; changing the service",
        mib(rss_parked)
    ));

    let changed = Instant::now();
    register(switchboard, client, 2 * kind as u16 + 1).await?;
    let mut answered = Vec::with_capacity(WATCHERS);
    let collect = async {
        while let Some(at) = done_rx.recv().await {
            answered.push(at?.saturating_duration_since(changed));
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(DEADLINE, collect)
        .await
        .context("not every watcher had its answer in time")??;
    if answered.len() != WATCHERS {
        bail!("{} of {WATCHERS} watchers answered", answered.len());
    }
    answered.sort();
    let result = FanOut {
        kind,
        watchers: WATCHERS,
        rss_before,
        rss_parked,
        first: answered[0],
        median: answered[WATCHERS / 2],
        all: answered[WATCHERS - 1],
    };
    crate::progress(&format!(
        "fan-out: all answered {:.2?} after the change; {:.0} B per watcher",
        result.all,
        result.per_watcher()
    ));
    Ok(result)
}

/// One watcher: connects, asks, tells `parked` once it waits, and returns when it has
/// seen the change.
async fn watch(
    kind: Kind,
    address: &str,
    request: &str,
    opening: tokio::sync::OwnedSemaphorePermit,
    parked: mpsc::UnboundedSender<()>,
) -> anyhow::Result<Instant> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let events = |seen: &[u8]| seen.windows(13).filter(|w| w == b"event: change").count();
    while events(&seen) < kind.events_when_parked() {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the stream closed before its first event");
        }
        seen.extend_from_slice(&buf[..n]);
    }
    drop(opening);
    let _ = parked.send(());
    loop {
        let n = stream.read(&mut buf).await?;
        match kind {
            // `Connection: close`: the answer is complete when the server closes.
            Kind::Blocking | Kind::Consul if n == 0 => return Ok(Instant::now()),
            Kind::Sse if n == 0 => bail!("the stream closed before the change"),
            _ => seen.extend_from_slice(&buf[..n]),
        }
        if matches!(kind, Kind::Sse) && events(&seen) > kind.events_when_parked() {
            return Ok(Instant::now());
        }
    }
}

/// Waits until Switchboard counts every blocking query as waiting (an SSE stream is
/// parked once it has its first event).
async fn wait_parked(
    kind: Kind,
    switchboard: &Server,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    if matches!(kind, Kind::Sse) {
        return Ok(());
    }
    loop {
        let metrics = client
            .get(switchboard.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let waiting = metrics
            .lines()
            .find_map(|line| line.strip_prefix("switchboard_blocking_queries_waiting "))
            .and_then(|value| value.trim().parse::<usize>().ok());
        if waiting == Some(WATCHERS) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers one more instance in the service (`n` tells it apart) and returns the
/// service's index after it.
async fn register(switchboard: &Server, client: &reqwest::Client, n: u16) -> anyhow::Result<u64> {
    let body = serde_json::json!({
        "service": SERVICE,
        "address": format!("10.0.0.1:{}", 8000 + n),
        "ttl_seconds": 3600,
    });
    let response = (client.post(switchboard.url("/api/v1/instances")))
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("switchboard refused a registration: {}", response.status());
    }
    let read = client
        .get(switchboard.url(&format!("/api/v1/services/{SERVICE}/instances")))
        .send()
        .await?;
    let index = read
        .headers()
        .get("x-switchboard-index")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .context("the read has no x-switchboard-index")?;
    Ok(index)
}

/// The bench holds every watcher's socket: refuse early, with the fix, when it cannot.
fn check_fd_limit() -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|value| value.parse::<usize>().ok());
    match soft {
        Some(soft) if soft < WATCHERS + 1000 => bail!(
            "the fan-out part holds {WATCHERS} sockets but `ulimit -n` is {soft}; raise it \
             (e.g. `ulimit -n 20000`) and run again"
        ),
        _ => Ok(()),
    }
}

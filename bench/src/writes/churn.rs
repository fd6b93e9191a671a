//! Propagation under load, the writes part's last run: Switchboard with an etcd source
//! holding one service of 10 000 instances, while a writer changes random instances of it
//! in etcd at 1 000 writes/s. During that load the probe (`probe.rs`) times sampled
//! writes until a Switchboard blocking query on the service returns them, beside a direct
//! etcd watch of the same prefix (the floor), and the CPU Switchboard used over the load
//! window is read from `/proc`. Afterwards every instance Switchboard serves must match
//! etcd's last value: a writer that coalesces changes may drop none.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use etcd_client::GetOptions;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::probe::{self, Probe};
use crate::propagation::etcd::watch;
use crate::propagation::query::read_index;
use crate::propagation::Latencies;
use crate::servers::{self, Server};
use crate::{etcd, progress, sync};

/// The service the load changes.
pub const SERVICE: &str = "write-etcd";
pub const INSTANCES: usize = 10_000;
/// Writes per second, the probe's included.
pub const RATE: u32 = 1000;
pub const WINDOW: Duration = Duration::from_secs(10);
/// Sampled writes, spread evenly over the window; each goes to an instance of its own
/// (`w0` to `w199`) that the background writer never touches, so no later write hides it.
pub const SAMPLES: usize = 200;
/// Puts the background writer may have in flight; a tick finding that many waiting is
/// skipped (and counted), so an etcd that falls behind shows as a lower rate.
const MAX_IN_FLIGHT: usize = 256;
/// Steps the background writer through its instances in a scattered order that reaches
/// each once per round (prime, so coprime with the 9 800 instances it writes).
const STRIDE: usize = 7919;
/// How long after the load the probe keeps waiting for samples Switchboard has not
/// shown yet (a server that falls behind shows them late, or not in this time).
const GIVE_UP: Duration = Duration::from_secs(30);
/// How long after the last write Switchboard may take to serve what etcd holds; the
/// probe's wait for late samples counts against it.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// What the run measured.
pub struct Churn {
    /// Samples not shown by the end are counted at the time the probe gave up.
    pub latencies: Latencies,
    pub unseen: usize,
    /// Writes made in the window (background and samples) and ticks skipped.
    pub writes: usize,
    pub skipped: usize,
    pub window: Duration,
    pub switchboard_cpu: Duration,
    pub etcd_cpu: Duration,
    /// Blocking-query answers the probe read, and the size of the service's list.
    pub answers: usize,
    pub body_bytes: usize,
    /// Instances Switchboard serves exactly as etcd holds them, after the writes stop.
    pub matching: usize,
    /// From the last write until every instance matched, if it did within [`CONVERGE`].
    pub converged: Option<Duration>,
}

/// Instance `i`'s key and value: `{PREFIX}write-etcd/w{i}` = a JSON instance at
/// `10.3.{i/256}.{i%256}:8000` with `weight` and `metadata`.
fn entry(i: usize, weight: usize, metadata: Value) -> (String, String) {
    let value = json!({
        "address": format!("10.3.{}.{}:8000", i / 256, i % 256),
        "weight": weight,
        "metadata": metadata,
    });
    (format!("{}{SERVICE}/w{i}", etcd::PREFIX), value.to_string())
}

/// Background write `n`: a scattered instance past the probe's, a new weight and `rev`.
fn background(n: usize) -> (String, String) {
    let i = SAMPLES + n * STRIDE % (INSTANCES - SAMPLES);
    entry(i, 1 + n % 1000, json!({ "rev": (n + 1).to_string() }))
}

/// Sample `s`: instance `w{s}` carrying a marker no other write has.
pub(super) fn sample(s: usize) -> (String, String) {
    entry(s, 1 + s, json!({ "probe": s.to_string() }))
}

/// How a sample shows in Switchboard's JSON (metadata values are strings), before its
/// number and closing quote.
pub(super) const MARKER: &str = "\"probe\":\"";

pub async fn measure(
    switchboard_binary: &Path,
    etcd_binary: &Path,
    client: &reqwest::Client,
) -> anyhow::Result<Churn> {
    progress("churn: starting etcd");
    let mut etcd = etcd::start(etcd_binary, client).await?;
    let writer = etcd::connect(&etcd).await?;
    let keys = (0..INSTANCES)
        .map(|i| entry(i, 100, json!({ "rev": "0" })))
        .collect();
    etcd::put_all(&writer, keys, 16).await?;
    progress(&format!(
        "churn: etcd holds {INSTANCES} instances of {SERVICE}; starting switchboard"
    ));
    let config = etcd::switchboard_config(&etcd);
    let mut switchboard =
        servers::start_switchboard(switchboard_binary, client, Some(&config)).await?;
    sync::wait_source(&mut switchboard, client, etcd::SOURCE_ID, INSTANCES).await?;
    let read_url = switchboard.url(&format!("/api/v1/services/{SERVICE}/instances"));
    let body_bytes = client.get(&read_url).send().await?.bytes().await?.len();
    let (mut events, _watch) = watch(&etcd, &format!("{}{SERVICE}/", etcd::PREFIX)).await?;
    let probe = Probe {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        url: read_url.clone(),
        index: read_index(client, &read_url).await?,
    };

    progress(&format!(
        "churn: {RATE} writes/s for {WINDOW:?}, {SAMPLES} of them timed"
    ));
    let cpu_before = (sync::cpu(switchboard.pid())?, sync::cpu(etcd.pid())?);
    let started = Instant::now();
    let background_rate = RATE - (SAMPLES as f64 / WINDOW.as_secs_f64()) as u32;
    let load = async {
        let made = churn(writer.clone(), started + WINDOW, background_rate).await?;
        // Read when the writes stop, before the probe's wait for late samples.
        let cpu = (sync::cpu(switchboard.pid())?, sync::cpu(etcd.pid())?);
        anyhow::Ok((made, started.elapsed(), cpu))
    };
    let samples = probe::make_samples(writer.clone(), started);
    let following = probe.follow(started + WINDOW + GIVE_UP);
    // Any of them failing drops the others: no writes outlive a failed probe.
    let (((made, skipped), window, cpu_after), puts, followed) =
        tokio::try_join!(load, samples, following)?;
    let switchboard_cpu = cpu_after.0.saturating_sub(cpu_before.0);
    let etcd_cpu = cpu_after.1.saturating_sub(cpu_before.1);
    progress(&format!(
        "churn: {} writes in {window:.2?} ({skipped} ticks skipped); switchboard used \
         {switchboard_cpu:.2?} of CPU; {} samples not shown",
        made + SAMPLES,
        followed.unseen()
    ));
    let latencies = probe::latencies(&puts, &followed, &mut events).await?;

    let (matching, converged) = converge(
        &mut switchboard,
        client,
        &writer,
        &read_url,
        started + window,
    )
    .await?;
    etcd.check_alive()?;
    Ok(Churn {
        latencies,
        unseen: followed.unseen(),
        writes: made + SAMPLES,
        skipped,
        window,
        switchboard_cpu,
        etcd_cpu,
        answers: followed.answers,
        body_bytes,
        matching,
        converged,
    })
}

/// Writes at `per_sec` until `until`; returns the writes made and the ticks skipped.
async fn churn(
    client: etcd_client::Client,
    until: Instant,
    per_sec: u32,
) -> anyhow::Result<(usize, usize)> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_sec);
    // The timer fires at most once a millisecond: catch up in bursts, keeping the rate.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut in_flight = JoinSet::new();
    let (mut made, mut skipped) = (0, 0);
    loop {
        ticks.tick().await;
        if Instant::now() >= until {
            break;
        }
        while let Some(done) = in_flight.try_join_next() {
            done.context("a churn write panicked")??;
        }
        if in_flight.len() >= MAX_IN_FLIGHT {
            skipped += 1;
            continue;
        }
        let (key, value) = background(made);
        made += 1;
        let mut client = client.clone();
        in_flight.spawn(async move {
            client
                .put(key, value, None)
                .await
                .context("etcd refused a churn write")?;
            anyhow::Ok(())
        });
    }
    while let Some(done) = in_flight.join_next().await {
        done.context("a churn write panicked")??;
    }
    Ok((made, skipped))
}

/// Waits until Switchboard serves every instance as etcd holds it; returns how many
/// matched at the end and, if all did in time, the time from `since`.
async fn converge(
    switchboard: &mut Server,
    http: &reqwest::Client,
    etcd: &etcd_client::Client,
    read_url: &str,
    since: Instant,
) -> anyhow::Result<(usize, Option<Duration>)> {
    let prefix = format!("{}{SERVICE}/", etcd::PREFIX);
    let stored = etcd
        .clone()
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .context("cannot read the service back from etcd")?;
    let mut expected = HashMap::new();
    for kv in stored.kvs() {
        let value: Value = serde_json::from_slice(kv.value()).context("a value is not JSON")?;
        let address = value["address"].as_str().unwrap_or_default().to_owned();
        expected.insert(
            address,
            (value["weight"].clone(), value["metadata"].clone()),
        );
    }
    let deadline = since + CONVERGE;
    loop {
        switchboard.check_alive()?;
        let listed: Value = http.get(read_url).send().await?.json().await?;
        let listed = listed
            .as_array()
            .context("the instance list is not an array")?;
        let matching = listed
            .iter()
            .filter(|instance| {
                let address = instance["address"].as_str().unwrap_or_default();
                expected.get(address).is_some_and(|(weight, metadata)| {
                    instance["weight"] == *weight && instance["metadata"] == *metadata
                })
            })
            .count();
        if matching == expected.len() && listed.len() == expected.len() {
            return Ok((matching, Some(since.elapsed())));
        }
        if Instant::now() > deadline {
            progress(&format!(
                "churn: switchboard serves {} instances, {matching} of {} as etcd holds them, \
                 {CONVERGE:?} after the last write",
                listed.len(),
                expected.len()
            ));
            return Ok((matching, None));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_writes_spare_the_probes_instances_and_reach_all_others() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..INSTANCES - SAMPLES {
            let (key, _) = background(n);
            let i: usize = key.rsplit_once("/w").unwrap().1.parse().unwrap();
            assert!((SAMPLES..INSTANCES).contains(&i), "write {n} hits w{i}");
            seen.insert(i);
        }
        assert_eq!(seen.len(), INSTANCES - SAMPLES);
    }

    #[test]
    fn samples_carry_their_number_after_the_marker() {
        let (key, value) = sample(7);
        assert_eq!(key, "/services/write-etcd/w7");
        let value: Value = serde_json::from_str(&value).unwrap();
        assert_eq!(value["address"], "10.3.0.7:8000");
        let listed = json!([{ "metadata": value["metadata"] }]).to_string();
        assert!(listed.contains(&format!("{MARKER}7\"")), "{listed}");
    }
}

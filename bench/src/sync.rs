//! The sync-back part (`BENCH_ONLY=sync`): Switchboard with an etcd source and a Nacos
//! source (rnacos), 10 000 instances (1 000 services of 10) loaded into etcd, then a sync
//! job copying them from etcd into rnacos. Timed from the job's creation: until its status
//! shows every instance synced and nothing pending, and until rnacos lists them all.
//!
//! The baseline is a direct client writing the same instances into a fresh rnacos through
//! the same HTTP OpenAPI call the job's writer makes (persistent, `ephemeral=false`), one
//! request at a time as the job writes (`sync/rnacos.rs`). It runs before and after the
//! job, and the faster run is the floor, so a busy moment on a shared machine does not
//! flatter the job.
//!
//! After convergence (Switchboard's Nacos source has read the copies back, the job is
//! quiet) one instance is added in etcd and timed until rnacos lists it; the job's
//! `writes` counter must then be exactly one more than the instances: nothing is written
//! twice. etcd, rnacos and Switchboard run pinned to core 0, the bench's clients on core 1.

mod report;
mod rnacos;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use self::rnacos::Baseline;
use crate::servers::{self, Server};
use crate::{etcd, nacos, progress};

pub const SERVICES: usize = 1000;
pub const PER_SERVICE: usize = 10;
pub const INSTANCES: usize = SERVICES * PER_SERVICE;
/// The sync job's id.
const JOB: &str = "bench";
/// Transactions in flight while loading etcd.
const ETCD_WRITERS: usize = 16;
/// How long Switchboard may take to serve every instance once etcd holds them.
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
/// How long the job may take to copy every instance.
const SYNC_DEADLINE: Duration = Duration::from_secs(120);
/// How long Switchboard's Nacos source may take to read the copies back: it reads the
/// list of services every 10 s (by default) and subscribes to new ones one at a time.
const SOURCE_DEADLINE: Duration = Duration::from_secs(90);
/// How long one change may take to reach rnacos.
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// How long the job must show nothing pending before its counters are read as final.
const QUIET: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);

/// What the part measured; times of the job are from just before its creation.
pub struct SyncResults {
    /// From the first put until etcd had committed them all.
    pub etcd_load: Duration,
    /// From the first put until Switchboard's etcd source served them all.
    pub catalog_ready: Duration,
    /// The direct client, before and after the job.
    pub baselines: [Baseline; 2],
    /// Until the job's status showed `synced` = every instance and nothing pending.
    pub synced: Duration,
    /// Until rnacos's catalog counted every instance.
    pub listed: Duration,
    /// CPU time Switchboard and the target rnacos used from the job's creation until it
    /// had synced and rnacos listed everything.
    pub sync_switchboard_cpu: Duration,
    pub sync_rnacos_cpu: Duration,
    /// Until Switchboard's Nacos source served every copy, if it did in time.
    pub source_view: Option<Duration>,
    /// Copies rnacos lists, read service by service once the job had synced.
    pub exact_listed: usize,
    /// The job's `writes` when it first showed everything synced.
    pub writes_at_sync: u64,
    /// The job's `writes` once the Nacos source had read the copies back and the job
    /// had been quiet for [`QUIET`].
    pub writes_settled: u64,
    /// One instance added in etcd until rnacos listed it.
    pub one_change: Duration,
    /// The job's `writes` after that change, once quiet again.
    pub writes_after_change: u64,
    pub errors: u64,
    /// The whole part, servers' start included.
    pub total: Duration,
}

impl SyncResults {
    /// The faster direct run: the floor the job is compared with.
    pub fn baseline(&self) -> Duration {
        self.baselines[0].time.min(self.baselines[1].time)
    }
}

/// Runs the part and prints its report.
pub async fn bench(
    switchboard_binary: &Path,
    etcd_binary: &Path,
    rnacos_binary: &Path,
) -> anyhow::Result<()> {
    let began = Instant::now();
    let client = crate::pinned_client().await?;

    progress("starting etcd and rnacos");
    let mut etcd = etcd::start(etcd_binary, &client).await?;
    let mut rnacos = nacos::start(rnacos_binary, &client).await?;
    let config = format!(
        "{}\n{}",
        etcd::switchboard_config(&etcd),
        nacos::switchboard_config(&rnacos)
    );
    progress("starting switchboard with an etcd and a nacos source");
    let mut switchboard = servers::start_switchboard(switchboard_binary, &client, Some(&config))
        .await
        .context("switchboard did not start with an etcd and a nacos source")?;

    progress(&format!(
        "loading {INSTANCES} instances into etcd ({SERVICES} services x {PER_SERVICE})"
    ));
    let writer = etcd::connect(&etcd).await?;
    let started = Instant::now();
    etcd::put_all(
        &writer,
        etcd::spread_keys(NAME, SERVICES, PER_SERVICE),
        ETCD_WRITERS,
    )
    .await?;
    let etcd_load = started.elapsed();
    wait_source(&mut switchboard, &client, etcd::SOURCE_ID, INSTANCES).await?;
    wait_source(&mut switchboard, &client, nacos::SOURCE_ID, 0).await?;
    let catalog_ready = started.elapsed();
    progress(&format!(
        "etcd holds them after {etcd_load:.2?}; switchboard serves them after {catalog_ready:.2?}"
    ));

    let before = direct_run(rnacos_binary, "before the job").await?;

    progress("creating the sync job etcd -> nacos");
    let cpu_before = (cpu(switchboard.pid())?, cpu(rnacos.pid())?);
    let started = Instant::now();
    create_job(&switchboard, &client).await?;
    let (synced, writes_at_sync, listed) =
        wait_synced(&mut switchboard, &mut rnacos, &client, started).await?;
    let sync_switchboard_cpu = cpu(switchboard.pid())?.saturating_sub(cpu_before.0);
    let sync_rnacos_cpu = cpu(rnacos.pid())?.saturating_sub(cpu_before.1);
    progress(&format!(
        "job synced after {synced:.2?} ({writes_at_sync} writes); rnacos lists all after \
         {listed:.2?}"
    ));
    let exact_listed = rnacos::listed_copies(&client, &rnacos).await?;
    let source_view = wait_source_view(&mut switchboard, &client, started).await?;
    let writes_settled = quiet_status(&mut switchboard, &client).await?["writes"]
        .as_u64()
        .context("the job's status has no `writes`")?;

    progress("one change: adding an instance in etcd");
    let one_change = one_change(&writer, &rnacos, &client).await?;
    progress(&format!("rnacos lists it after {one_change:.2?}"));
    // The copy comes back through the Nacos source; the job must not write it again.
    if source_view.is_some() {
        wait_source(&mut switchboard, &client, nacos::SOURCE_ID, INSTANCES + 1).await?;
    }
    let status = quiet_status(&mut switchboard, &client).await?;
    let writes_after_change = status["writes"].as_u64().unwrap_or_default();
    let errors = status["errors"].as_u64().unwrap_or_default();

    let after = direct_run(rnacos_binary, "after the job").await?;
    etcd.check_alive()?;
    rnacos.check_alive()?;
    switchboard.check_alive()?;

    let results = SyncResults {
        etcd_load,
        catalog_ready,
        baselines: [before, after],
        synced,
        listed,
        sync_switchboard_cpu,
        sync_rnacos_cpu,
        source_view,
        exact_listed,
        writes_at_sync,
        writes_settled,
        one_change,
        writes_after_change,
        errors,
        total: began.elapsed(),
    };
    print!("{}", report::render(&results));
    Ok(())
}

/// One run of the baseline, with progress lines.
async fn direct_run(rnacos_binary: &Path, when: &str) -> anyhow::Result<Baseline> {
    progress(&format!(
        "baseline ({when}): a direct client writing them one at a time into a fresh rnacos"
    ));
    let run = rnacos::baseline(rnacos_binary).await?;
    progress(&format!(
        "baseline ({when}): {INSTANCES} writes in {:.2?} ({:.0}/s)",
        run.time,
        INSTANCES as f64 / run.time.as_secs_f64()
    ));
    Ok(run)
}

/// The services' names start with this (see [`etcd::spread_instance`]).
const NAME: &str = "sync";

/// Waits until source `id` is ready and serves `instances`.
pub(crate) async fn wait_source(
    switchboard: &mut Server,
    client: &reqwest::Client,
    id: &str,
    instances: usize,
) -> anyhow::Result<()> {
    let url = switchboard.url(&format!("/api/v1/sources/{id}"));
    let deadline = Instant::now() + LOAD_DEADLINE;
    loop {
        switchboard.check_alive()?;
        let source: Value = client.get(&url).send().await?.json().await?;
        if source["state"] == "ready" && source["instances"].as_u64() == Some(instances as u64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "source {id} did not serve {instances} instances within {LOAD_DEADLINE:?}: it \
                 reports {source}; switchboard's log ends with:\n{}",
                switchboard.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_job(switchboard: &Server, client: &reqwest::Client) -> anyhow::Result<()> {
    let body = json!({
        "id": JOB,
        "from": [etcd::SOURCE_ID],
        "to": nacos::SOURCE_ID,
        "rate_limit": 100_000,
        "debounce": "100ms",
    });
    let response = client
        .post(switchboard.url("/api/v1/syncs"))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    if status != StatusCode::CREATED {
        let text = response.text().await.unwrap_or_default();
        bail!("POST /api/v1/syncs answered {status}: {text}");
    }
    Ok(())
}

async fn job_status(switchboard: &Server, client: &reqwest::Client) -> anyhow::Result<Value> {
    let url = switchboard.url(&format!("/api/v1/syncs/{JOB}/status"));
    let response = client.get(&url).send().await?;
    let status = response.status();
    if !status.is_success() {
        bail!("GET {url} answered {status}");
    }
    Ok(response.json().await?)
}

fn is_synced(status: &Value) -> bool {
    status["synced"].as_u64() == Some(INSTANCES as u64) && status["pending_services"] == 0
}

/// Polls the job and rnacos until the job shows every instance synced and rnacos counts
/// them all; returns both times (from `started`) and the job's `writes` when synced.
async fn wait_synced(
    switchboard: &mut Server,
    rnacos: &mut Server,
    client: &reqwest::Client,
    started: Instant,
) -> anyhow::Result<(Duration, u64, Duration)> {
    let mut synced = None;
    let mut listed = None;
    // Each side is read only until it is done: rnacos's catalog pages cost it CPU, which
    // is counted as the job's.
    let mut status = Value::Null;
    let mut counted = 0;
    loop {
        switchboard.check_alive()?;
        rnacos.check_alive()?;
        if synced.is_none() {
            status = job_status(switchboard, client).await?;
            if is_synced(&status) {
                let writes = status["writes"].as_u64().unwrap_or_default();
                synced = Some((started.elapsed(), writes));
            }
        }
        if listed.is_none() {
            counted = rnacos::catalog_count(client, rnacos).await?;
            if counted == INSTANCES {
                listed = Some(started.elapsed());
            }
        }
        if let (Some((synced, writes)), Some(listed)) = (synced, listed) {
            return Ok((synced, writes, listed));
        }
        if started.elapsed() > SYNC_DEADLINE {
            bail!(
                "the job did not sync {INSTANCES} instances within {SYNC_DEADLINE:?}: rnacos \
                 counts {counted}, the job reports {status}; switchboard's log ends with:\n{}",
                switchboard.log_tail()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Time (from `started`) until Switchboard's Nacos source serves every copy; `None` if
/// not within [`SOURCE_DEADLINE`], which is reported, not failed.
async fn wait_source_view(
    switchboard: &mut Server,
    client: &reqwest::Client,
    started: Instant,
) -> anyhow::Result<Option<Duration>> {
    let url = switchboard.url(&format!("/api/v1/sources/{}", nacos::SOURCE_ID));
    let deadline = Instant::now() + SOURCE_DEADLINE;
    let mut next_progress = Instant::now() + Duration::from_secs(10);
    loop {
        switchboard.check_alive()?;
        let source: Value = client.get(&url).send().await?.json().await?;
        if source["instances"].as_u64() == Some(INSTANCES as u64) {
            return Ok(Some(started.elapsed()));
        }
        if Instant::now() > next_progress {
            next_progress += Duration::from_secs(10);
            let job = job_status(switchboard, client).await?;
            progress(&format!(
                "switchboard's nacos source serves {} instances of {} services after {:.1?}; \
                 the job has made {} writes",
                source["instances"],
                source["services"],
                started.elapsed(),
                job["writes"]
            ));
        }
        if Instant::now() > deadline {
            progress(&format!(
                "switchboard's nacos source does not serve every copy after \
                 {SOURCE_DEADLINE:?}: {source}"
            ));
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The job's status once it has shown nothing pending for [`QUIET`].
async fn quiet_status(switchboard: &mut Server, client: &reqwest::Client) -> anyhow::Result<Value> {
    let deadline = Instant::now() + SYNC_DEADLINE;
    let mut quiet_since: Option<Instant> = None;
    loop {
        switchboard.check_alive()?;
        let status = job_status(switchboard, client).await?;
        if status["pending_services"] == 0 {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= QUIET {
                return Ok(status);
            }
        } else {
            quiet_since = None;
        }
        if Instant::now() > deadline {
            bail!("the job never went quiet within {SYNC_DEADLINE:?}: {status}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Adds an eleventh instance to service 0 in etcd and times it until rnacos lists it.
async fn one_change(
    writer: &etcd_client::Client,
    rnacos: &Server,
    client: &reqwest::Client,
) -> anyhow::Result<Duration> {
    let (service, host, port) = etcd::spread_instance(NAME, 0, PER_SERVICE);
    let (key, value) = etcd::spread_key(NAME, 0, PER_SERVICE);
    let mut writer = writer.clone();
    let started = Instant::now();
    writer
        .put(key, value, None)
        .await
        .context("etcd refused the one change")?;
    loop {
        let hosts = rnacos::list_service(client, rnacos, &service).await?;
        let shows = |h: &Value| h["ip"] == host.as_str() && h["port"] == port;
        if hosts.iter().any(shows) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > CHANGE_DEADLINE {
            bail!("rnacos does not list {host}:{port} in {service} after {CHANGE_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// User plus system CPU time of process `pid` (all its threads) from `/proc/PID/stat`.
pub(crate) fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu(&stat).with_context(|| format!("{path} has no utime and stime"))
}

/// Fields 14 and 15 (utime, stime), counted after the `)` that ends the command name;
/// in clock ticks, which Linux fixes at 100 per second for user space.
fn parse_cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_etcd_layout() {
        let keys = etcd::spread_keys(NAME, SERVICES, PER_SERVICE);
        assert_eq!(keys.len(), INSTANCES);
        assert_eq!(
            keys[0],
            ("/services/sync-0/0".into(), "10.0.0.0:8000".into())
        );
        assert_eq!(
            keys[INSTANCES - 1],
            ("/services/sync-999/9".into(), "10.3.231.9:8009".into())
        );
        assert_eq!(
            etcd::spread_key(NAME, 0, PER_SERVICE),
            ("/services/sync-0/10".into(), "10.0.0.10:8010".into())
        );
    }

    #[test]
    fn reads_cpu_time_from_proc_stat() {
        let stat = "42 (tokio (rt)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_cpu(stat), Some(Duration::from_millis(3250)));
        assert_eq!(parse_cpu("42 (x) S 1"), None);
    }
}

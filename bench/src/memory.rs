//! Memory per cached instance: Switchboard's resident set before and after its etcd
//! source delivers 100 000 instances (1 000 services of 100), read from
//! `/proc/PID/status`. etcd's own growth on the same keys is shown for scale.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;

use crate::etcd::SOURCE_ID;
use crate::servers::Server;

pub const SERVICES: usize = 1000;
pub const PER_SERVICE: usize = 100;
pub const INSTANCES: usize = SERVICES * PER_SERVICE;
/// Transactions in flight while loading etcd.
const WRITERS: usize = 16;
/// How long Switchboard may take to serve every instance once etcd holds them.
const SYNC_DEADLINE: Duration = Duration::from_secs(120);

/// Resident-set readings, in bytes.
pub struct Memory {
    pub instances: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    /// Switchboard's peak resident set (VmHWM) over its whole life, read at the end.
    pub peak: u64,
    pub etcd_before: u64,
    pub etcd_after: u64,
    /// From the first put until etcd had committed them all.
    pub load: Duration,
    /// From the first put until Switchboard's catalog served them all.
    pub visible: Duration,
}

impl Memory {
    pub fn per_instance(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.instances as f64
    }
}

/// Measures `switchboard`, freshly started on `etcd` whose prefix is empty.
pub async fn measure(
    etcd: &Server,
    switchboard: &mut Server,
    http: &reqwest::Client,
) -> anyhow::Result<Memory> {
    wait_counts(switchboard, http, 0, Duration::from_secs(30)).await?;
    settle().await;
    let rss_before = settled_rss(switchboard.pid()).await?;
    let etcd_before = rss(etcd.pid())?;
    crate::progress(&format!(
        "switchboard (source synced, empty): RSS {}",
        mib(rss_before)
    ));

    let keys = crate::etcd::spread_keys("mem", SERVICES, PER_SERVICE);
    let client = crate::etcd::connect(etcd).await?;
    crate::progress(&format!(
        "loading {INSTANCES} instances into etcd ({SERVICES} services x {PER_SERVICE})"
    ));
    let started = Instant::now();
    crate::etcd::put_all(&client, keys, WRITERS).await?;
    let load = started.elapsed();
    crate::progress(&format!("etcd holds them after {load:.2?}"));
    wait_counts(switchboard, http, INSTANCES, SYNC_DEADLINE).await?;
    let visible = started.elapsed();
    crate::progress(&format!("switchboard serves them after {visible:.2?}"));

    settle().await;
    let rss_after = settled_rss(switchboard.pid()).await?;
    let peak = status_field(switchboard.pid(), "VmHWM:")?;
    let etcd_after = rss(etcd.pid())?;
    switchboard.check_alive()?;
    Ok(Memory {
        instances: INSTANCES,
        rss_before,
        rss_after,
        peak,
        etcd_before,
        etcd_after,
        load,
        visible,
    })
}

/// Waits until the source reports `instances` and the catalog totals agree.
async fn wait_counts(
    switchboard: &mut Server,
    http: &reqwest::Client,
    instances: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let source_url = switchboard.url(&format!("/api/v1/sources/{SOURCE_ID}"));
    let stats_url = switchboard.url("/api/v1/stats");
    let deadline = Instant::now() + timeout;
    loop {
        switchboard.check_alive()?;
        let source: serde_json::Value = http.get(&source_url).send().await?.json().await?;
        let ready = source["state"] == "ready";
        let from_source = source["instances"].as_u64();
        let mut total = None;
        if ready && from_source == Some(instances as u64) {
            let stats: serde_json::Value = http.get(&stats_url).send().await?.json().await?;
            total = stats["total_instances"].as_u64();
            if total == Some(instances as u64) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "switchboard did not reach {instances} instances from {SOURCE_ID} within \
                 {timeout:?}: the source reports {source}, the catalog total {total:?}; \
                 its log ends with:\n{}",
                switchboard.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Lets background work (flushes, sweeps, freed buffers) finish before a reading.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// The resident set once two readings half a second apart agree within 1% (or after 10 s).
pub async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut last = rss(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss(pid)?;
        if now.abs_diff(last) * 100 <= last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

fn rss(pid: u32) -> anyhow::Result<u64> {
    status_field(pid, "VmRSS:")
}

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_field(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_kb(&status, field).with_context(|| format!("{path} has no {field} line"))
}

fn parse_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_status_fields() {
        let status = "Name:\tswitchboard\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_kb(status, "VmRSS:"), Some(10 * 1024 * 1024));
        assert_eq!(parse_kb(status, "VmHWM:"), Some(20 * 1024 * 1024));
        assert_eq!(parse_kb(status, "VmSwap:"), None);
    }
}

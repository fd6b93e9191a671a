//! The writes part (`BENCH_ONLY=writes`, after the reads part): Switchboard's native write
//! path under load, each figure printed beside a baseline measured in the same run. Every
//! server runs pinned to core 0, the bench's clients on core 1.
//!
//! 1. Registrations/s into one service: 16 clients (`load.rs`) register unique endpoints
//!    for 5 s after a 1 s warm-up into a fresh Switchboard, against the same run of
//!    persistent registrations into a fresh rnacos through its HTTP OpenAPI.
//! 2. The same Switchboard run into a service already holding 20 000 instances, against
//!    run 1: what a large service costs each write.
//! 3. A restart storm (`restart.rs`): 10 000 instances re-registered right after a
//!    graceful restart, until all are served, against rnacos taking the same writes.
//! 4. Propagation under load (`churn.rs`, `probe.rs`): etcd writes at 1 000/s into a
//!    10 000-instance service, sampled writes timed to a Switchboard blocking query
//!    beside a direct etcd watch, and Switchboard's CPU over the load.
//!
//! Every Switchboard and rnacos starts fresh, so no run inherits another's data or
//! connections; a server that dies or answers a write with a non-2xx status fails the
//! part.

mod churn;
mod load;
mod probe;
mod report;
mod restart;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::time::Instant;

use self::load::{Registration, Target, Throughput};
use crate::servers::{self, Server};
use crate::{nacos, progress};

/// The service every registration run writes to.
pub const SERVICE: &str = "write-svc";
/// Switchboard's read of that service.
pub const READ_PATH: &str = "/api/v1/services/write-svc/instances";
/// Clients of the timed registration runs.
pub const CLIENTS: usize = 16;
pub const WARM_UP: Duration = Duration::from_secs(1);
pub const MEASURED: Duration = Duration::from_secs(5);
/// Instances already in the service before run 2.
pub const PRELOADED: usize = 20_000;
/// Clients of the untimed pre-load.
const PRELOAD_CLIENTS: usize = 64;
/// Endpoint blocks (see [`Registration::unique`]): the pre-load's and the runs'.
const PRELOAD_BLOCK: u8 = 1;
const RUN_BLOCK: u8 = 2;

/// Runs 1 and 2.
pub struct Registrations {
    pub fresh: Run,
    pub preloaded: Run,
    pub rnacos: Throughput,
    /// How long the untimed pre-load of run 2 took.
    pub preload: Duration,
}

/// A timed Switchboard run and what the service listed after it.
pub struct Run {
    pub throughput: Throughput,
    /// Instances acknowledged (pre-load included) and listed once the run ended.
    pub acknowledged: usize,
    pub listed: usize,
}

/// Everything the part measured.
pub struct WritesResults {
    pub registrations: Registrations,
    pub storm: restart::Storm,
    pub churn: churn::Churn,
    /// The whole part, servers' start included.
    pub total: Duration,
}

/// Runs the part and prints its report.
pub async fn bench(
    switchboard_binary: &Path,
    rnacos_binary: &Path,
    etcd_binary: &Path,
) -> anyhow::Result<()> {
    let began = Instant::now();
    let client = crate::pinned_client().await?;
    let registrations = registrations(switchboard_binary, rnacos_binary, &client).await?;
    let storm = restart::measure(switchboard_binary, rnacos_binary, &client).await?;
    let churn = churn::measure(switchboard_binary, etcd_binary, &client).await?;
    let results = WritesResults {
        registrations,
        storm,
        churn,
        total: began.elapsed(),
    };
    print!("{}", report::render(&results));
    Ok(())
}

async fn registrations(
    switchboard_binary: &Path,
    rnacos_binary: &Path,
    client: &reqwest::Client,
) -> anyhow::Result<Registrations> {
    let window = (WARM_UP, MEASURED);
    progress(&format!(
        "registrations: {CLIENTS} clients into a fresh switchboard, {WARM_UP:?} warm-up + \
         {MEASURED:?}"
    ));
    let mut switchboard = servers::start_switchboard(switchboard_binary, client, None).await?;
    let fresh = switchboard_run(&mut switchboard, client, 0).await?;
    drop(switchboard);

    progress(&format!(
        "registrations: {CLIENTS} clients into a fresh rnacos (persistent instances)"
    ));
    let mut rnacos = nacos::start(rnacos_binary, client).await?;
    let rnacos_run = load::timed(Target::Rnacos, &rnacos.url(""), CLIENTS, RUN_BLOCK, window)
        .await
        .context("the rnacos registration run")?;
    rnacos.check_alive()?;
    report_run("rnacos", &rnacos_run);
    drop(rnacos);

    progress(&format!(
        "registrations: pre-loading {PRELOADED} instances into a fresh switchboard \
         ({PRELOAD_CLIENTS} clients)"
    ));
    let mut switchboard = servers::start_switchboard(switchboard_binary, client, None).await?;
    let list = (0..PRELOADED)
        .map(|k| Registration::unique(PRELOAD_BLOCK, k))
        .collect();
    let preload = load::register_all(
        Target::Switchboard,
        &switchboard.url(""),
        PRELOAD_CLIENTS,
        list,
        "pre-load",
    )
    .await
    .context("the pre-load")?;
    progress(&format!(
        "registrations: pre-loaded in {preload:.2?} ({:.0}/s)",
        PRELOADED as f64 / preload.as_secs_f64()
    ));
    let preloaded = switchboard_run(&mut switchboard, client, PRELOADED).await?;
    Ok(Registrations {
        fresh,
        preloaded,
        rnacos: rnacos_run,
        preload,
    })
}

/// A timed run into `switchboard`, which holds `held` instances of the service already.
async fn switchboard_run(
    switchboard: &mut Server,
    client: &reqwest::Client,
    held: usize,
) -> anyhow::Result<Run> {
    let throughput = load::timed(
        Target::Switchboard,
        &switchboard.url(""),
        CLIENTS,
        RUN_BLOCK,
        (WARM_UP, MEASURED),
    )
    .await
    .context("the switchboard registration run")?;
    switchboard.check_alive()?;
    report_run("switchboard", &throughput);
    Ok(Run {
        throughput,
        acknowledged: held + throughput.total,
        listed: instance_count(client, switchboard).await?,
    })
}

fn report_run(target: &str, run: &Throughput) {
    progress(&format!(
        "{target}: {:.0} registrations/s, mean {:?}, p99 {:?}",
        run.per_sec, run.mean, run.p99
    ));
}

/// How many instances Switchboard lists in [`SERVICE`], from the service listing (counts
/// only, so cheap however large the service).
pub async fn instance_count(
    client: &reqwest::Client,
    switchboard: &Server,
) -> anyhow::Result<usize> {
    let url = switchboard.url("/api/v1/services");
    let listing: Value = client
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let services = listing
        .as_array()
        .context("the service listing is not an array")?;
    Ok(services
        .iter()
        .find(|service| service["name"] == SERVICE)
        .and_then(|service| service["instance_count"].as_u64())
        .unwrap_or(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_path_names_the_service() {
        assert_eq!(READ_PATH, format!("/api/v1/services/{SERVICE}/instances"));
    }
}

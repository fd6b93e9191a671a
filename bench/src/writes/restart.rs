//! The restart storm: a Switchboard holding 10 000 instances of one service (the hard
//! case: every registration changes the same, largest service) is stopped with SIGTERM
//! and started again on the same data dir; right after `/ready`, 64 clients register all
//! 10 000 again with the same ids, as a fleet does when its registry comes back. Timed
//! from the first re-registration until the service read shows every instance's new
//! registration (metadata `round` = 2). The baseline is the same 10 000 registrations
//! into a fresh rnacos (persistent, 64 clients), timed until its list read shows them.
//!
//! The read is polled only once every registration has been acknowledged, so the polls
//! (each the whole service) do not compete with the storm.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::time::Instant;

use super::load::{register_all, Registration, Target};
use super::{instance_count, READ_PATH, SERVICE};
use crate::servers::{self, Server};
use crate::{nacos, progress};

pub const INSTANCES: usize = 10_000;
pub const CLIENTS: usize = 64;
/// The endpoints' block (see [`Registration::unique`]).
const BLOCK: u8 = 3;
/// Longest a server may take to serve every registration once all are acknowledged.
const SERVE_DEADLINE: Duration = Duration::from_secs(120);
/// Longest a graceful stop may take.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// What the storm measured.
pub struct Storm {
    /// Loading the 10 000 before the restart (not part of the storm).
    pub preload: Duration,
    /// From SIGTERM until the process exited.
    pub stop: Duration,
    /// From the restart until `/ready`.
    pub ready: Duration,
    /// Instances the service listed right after `/ready`.
    pub restored: usize,
    /// From the first re-registration until the last was acknowledged, and until every
    /// instance was served with its new registration.
    pub acknowledged: Duration,
    pub served: Duration,
    pub rnacos_acknowledged: Duration,
    pub rnacos_listed: Duration,
}

/// The fleet's registrations in `round`: the same ids and endpoints every round.
fn fleet(round: u32) -> Vec<Registration> {
    (0..INSTANCES)
        .map(|i| Registration {
            id: Some(format!("storm-{i}")),
            round: Some(round),
            ..Registration::unique(BLOCK, i)
        })
        .collect()
}

pub async fn measure(
    switchboard_binary: &Path,
    rnacos_binary: &Path,
    client: &reqwest::Client,
) -> anyhow::Result<Storm> {
    progress(&format!(
        "restart storm: a fresh switchboard, {INSTANCES} instances of {SERVICE}"
    ));
    let mut switchboard = servers::start_switchboard(switchboard_binary, client, None).await?;
    let base = switchboard.url("");
    let preload = register_all(
        Target::Switchboard,
        &base,
        CLIENTS,
        fleet(1),
        "restart storm: load",
    )
    .await?;
    let held = instance_count(client, &switchboard).await?;
    if held != INSTANCES {
        bail!("switchboard lists {held} of the {INSTANCES} instances it acknowledged");
    }
    progress(&format!(
        "restart storm: loaded in {preload:.2?}; stopping switchboard with SIGTERM"
    ));
    let stop = switchboard.stop(STOP_DEADLINE).await?;
    let restarted = Instant::now();
    switchboard.restart()?;
    servers::wait_ready(&mut switchboard, client).await?;
    let ready = restarted.elapsed();
    let restored = instance_count(client, &switchboard).await?;
    progress(&format!(
        "restart storm: stopped in {stop:.2?}, ready {ready:.2?} after the restart with \
         {restored} instances; {CLIENTS} clients register all {INSTANCES} again"
    ));
    let began = Instant::now();
    let acknowledged = register_all(
        Target::Switchboard,
        &base,
        CLIENTS,
        fleet(2),
        "restart storm",
    )
    .await?;
    wait_served(&mut switchboard, client, READ_PATH, |body| {
        count_round(body, |list| list.as_array(), 2)
    })
    .await?;
    let served = began.elapsed();
    progress(&format!(
        "restart storm: acknowledged after {acknowledged:.2?}, all served after {served:.2?}"
    ));
    drop(switchboard);

    progress(&format!(
        "restart storm baseline: {INSTANCES} registrations into a fresh rnacos"
    ));
    let mut rnacos = nacos::start(rnacos_binary, client).await?;
    let began = Instant::now();
    let rnacos_acknowledged = register_all(
        Target::Rnacos,
        &rnacos.url(""),
        CLIENTS,
        fleet(2),
        "restart storm baseline",
    )
    .await?;
    let list = format!("/nacos/v1/ns/instance/list?serviceName={SERVICE}&healthyOnly=false");
    wait_served(&mut rnacos, client, &list, |body| {
        count_round(body, |list| list["hosts"].as_array(), 2)
    })
    .await?;
    let rnacos_listed = began.elapsed();
    progress(&format!(
        "restart storm baseline: acknowledged after {rnacos_acknowledged:.2?}, all listed \
         after {rnacos_listed:.2?}"
    ));
    Ok(Storm {
        preload,
        stop,
        ready,
        restored,
        acknowledged,
        served,
        rnacos_acknowledged,
        rnacos_listed,
    })
}

/// Polls `path` on `server` until `count` finds every instance in it.
async fn wait_served(
    server: &mut Server,
    client: &reqwest::Client,
    path: &str,
    count: impl Fn(&[u8]) -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    let url = server.url(path);
    let deadline = Instant::now() + SERVE_DEADLINE;
    loop {
        server.check_alive()?;
        let body = client
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let counted = count(&body).with_context(|| format!("GET {url}"))?;
        if counted == INSTANCES {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} serves {counted} of {INSTANCES} re-registrations {SERVE_DEADLINE:?} after \
                 acknowledging them all; its log ends with:\n{}",
                server.name(),
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The instances of a list read (found in the JSON by `list`) registered in `round`.
fn count_round(
    body: &[u8],
    list: impl Fn(&Value) -> Option<&Vec<Value>>,
    round: u32,
) -> anyhow::Result<usize> {
    let json: Value = serde_json::from_slice(body).context("the list is not JSON")?;
    let instances = list(&json).context("the list has no instances array")?;
    let round = round.to_string();
    Ok(instances
        .iter()
        .filter(|instance| instance["metadata"]["round"] == round.as_str())
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_registers_the_same_fleet() {
        let (first, second) = (fleet(1), fleet(2));
        assert_eq!(first.len(), INSTANCES);
        assert_eq!(first[9].id.as_deref(), Some("storm-9"));
        assert_eq!((first[9].host.as_str(), first[9].port), ("10.3.0.9", 8000));
        for (a, b) in first.iter().zip(&second) {
            assert_eq!((&a.id, &a.host, a.port), (&b.id, &b.host, b.port));
        }
        assert_eq!(second[0].round, Some(2));
    }

    #[test]
    fn counts_the_instances_of_a_round() {
        let switchboard = br#"[{"metadata":{"round":"2"}},{"metadata":{"round":"1"}},{}]"#;
        let n = count_round(switchboard, |list| list.as_array(), 2).unwrap();
        assert_eq!(n, 1);
        let rnacos = br#"{"hosts":[{"metadata":{"round":"2"}},{"metadata":{"round":"2"}}]}"#;
        let n = count_round(rnacos, |list| list["hosts"].as_array(), 2).unwrap();
        assert_eq!(n, 2);
        assert!(count_round(b"{}", |list| list.as_array(), 2).is_err());
    }
}

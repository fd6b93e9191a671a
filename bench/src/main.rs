//! `switchboard-bench` (`make bench`): Switchboard under load, printed as ratios against
//! baselines measured in the same run, so the numbers compare across machines.
//!
//! Every server is pinned to core 0 and `wrk` drives one at a time from core 1:
//! 1. Switchboard with 100 registered instances: the discovery read, then heartbeats.
//! 2. A static axum server answering Switchboard's exact response bytes: the ceiling.
//! 3. rnacos with the same instances, read through the Nacos v1 OpenAPI.
//!
//! 4. Switchboard with access control on, the same read carrying a `read` token
//!    (`guarded.rs`): what the check costs.
//! 5. The Consul door's `/v1/health/service/{name}?passing` read of the same instances,
//!    against a static server answering its bytes (`consul_reads.rs`).
//!
//! The reads run in alternating rounds and each reports its median round.
//!
//! Then Switchboard's native write path (servers on core 0, the bench's clients on core 1;
//! `writes.rs`):
//! 4. Registrations/s into one service from 16 clients, fresh and with 20 000 instances
//!    already in it, against rnacos's persistent registrations.
//! 5. A restart storm: 10 000 instances re-registered right after a graceful restart,
//!    until all are served, against rnacos taking the same registrations.
//! 6. Propagation under 1 000 etcd writes/s, against a direct etcd watch, and
//!    Switchboard's CPU over that load.
//!
//! Then Switchboard federating an etcd (both on core 0, the bench's clients on core 1):
//! 7. Propagation: a write to etcd until a parked blocking query returns it, against a
//!    direct etcd watch on the same writes (the floor).
//! 8. Memory: resident bytes per instance with 100 000 instances cached from etcd.
//!
//! Then Switchboard federating the Consul test double (in this process, on core 1):
//! 9. Propagation: a write in the double until a parked blocking query returns it, against
//!    the double's own blocking query on the same writes (`consul.rs`).
//!
//! Then Switchboard with an etcd and a Nacos source (all on core 0, clients on core 1):
//! 10. Sync-back: a sync job copying 10 000 instances from etcd into rnacos, against a
//!     direct client writing them one at a time through the same OpenAPI (`sync.rs`).
//!
//! Then Switchboard federating rnacos (both on core 0, the bench's clients on core 1):
//! 11. Propagation: a registration in rnacos until a parked blocking query returns it,
//!     against a direct `nacos-sdk` subscriber on the same writes (`nacos.rs`).
//!
//! Then Switchboard alone, with 10 000 watchers on one service (`fanout.rs`):
//! 12. Fan-out: after one change, the time until 10 000 parked blocking queries (then
//!     10 000 SSE streams, then 10 000 Consul blocking queries) all have their answer,
//!     and the resident memory per watcher.
//! 13. Name churn (`name_churn.rs`): 100 000 short-lived service names registered and
//!     deregistered, and the resident memory before and after.
//!
//! Environment: `BENCH_DURATION` (wrk duration, default `10s`), `BENCH_CONNECTIONS`
//! (default 64), `BENCH_ONLY` (`reads`, `writes`, `etcd`, `consul`, `sync`, `nacos`,
//! `fanout` or `churn`: run one part; default all).
//! A missed target is printed, not failed; a failed step exits non-zero.

mod consul;
mod consul_reads;
mod etcd;
mod fanout;
mod guarded;
mod memory;
mod nacos;
mod name_churn;
mod propagation;
mod report;
mod servers;
mod sync;
mod writes;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;

use crate::report::{Results, Row};
use crate::servers::{Server, INSTANCES, SWITCHBOARD_READ_PATH};
use crate::wrk::Load;

/// Lets connections, caches and allocators settle before the measured run.
const WARM_UP: &str = "1s";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => run_bench(),
        // Hidden: the static baseline runs as a child of the bench, pinned like the others.
        Some("static-server") => servers::serve_static(&args[1..]),
        Some("-h" | "--help") => {
            println!("{}", HELP.trim());
            Ok(())
        }
        Some(other) => Err(anyhow!("unknown argument {other:?}; see --help")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("switchboard-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "
switchboard-bench: Switchboard's read and heartbeat throughput against a static axum
server and rnacos, each pinned to core 0 and driven by wrk on core 1; then its
registrations/s (fresh, and into a service of 20 000), a restart storm of 10 000
re-registrations and propagation under 1 000 etcd writes/s, against rnacos and a direct
etcd watch; then, with an etcd
source, the latency from an etcd write to a blocking query's answer (against a direct
etcd watch) and the memory per cached instance; then, with a Consul source reading the
in-process Consul double, the latency from a write in the double to a blocking query's
answer (against the double's own blocking query); then, with an etcd and a Nacos
source, a sync job copying 10 000 instances from etcd into rnacos (against a direct
client writing them one at a time); then, with a Nacos source reading rnacos, the
latency from a registration in rnacos to a blocking query's answer (against a direct
nacos-sdk subscriber); then the time until 10 000 parked blocking queries (and 10 000
SSE streams) on one service all have their answer after one change, and the memory
each parked watcher costs, and the memory left after 100 000 short-lived service names
came and went. Run it with `make bench`, which builds target/release/switchboard
first.

Environment:
  BENCH_DURATION     wrk duration per measured run (default 10s)
  BENCH_CONNECTIONS  wrk connections (default 64)
  BENCH_ONLY         run one part: `reads` (reads, heartbeats), `writes`
                     (registrations, restart storm, propagation under load; about
                     three minutes), `etcd` (propagation, memory), `consul`
                     (propagation), `sync` (sync-back into rnacos) or `nacos`
                     (propagation, about nine minutes) `fanout` (10 000
                     watchers; needs `ulimit -n` above 11 000) or `churn`
                     (100 000 short-lived names) (default: all eight)
";

/// Which parts of the bench run (`BENCH_ONLY`).
#[derive(Clone, Copy, Debug)]
struct Parts {
    reads: bool,
    writes: bool,
    etcd: bool,
    consul: bool,
    sync: bool,
    nacos: bool,
    fanout: bool,
    churn: bool,
}

impl Parts {
    fn from_env() -> anyhow::Result<Parts> {
        Parts::parse(&std::env::var("BENCH_ONLY").unwrap_or_default())
    }

    /// Every part when `only` is empty, else the one it names.
    fn parse(only: &str) -> anyhow::Result<Parts> {
        let none = Parts {
            reads: false,
            writes: false,
            etcd: false,
            consul: false,
            sync: false,
            nacos: false,
            fanout: false,
            churn: false,
        };
        match only {
            "" => Ok(Parts {
                reads: true,
                writes: true,
                etcd: true,
                consul: true,
                sync: true,
                nacos: true,
                fanout: true,
                churn: true,
            }),
            "reads" => Ok(Parts {
                reads: true,
                ..none
            }),
            "writes" => Ok(Parts {
                writes: true,
                ..none
            }),
            "etcd" => Ok(Parts { etcd: true, ..none }),
            "consul" => Ok(Parts {
                consul: true,
                ..none
            }),
            "sync" => Ok(Parts { sync: true, ..none }),
            "nacos" => Ok(Parts {
                nacos: true,
                ..none
            }),
            "fanout" => Ok(Parts {
                fanout: true,
                ..none
            }),
            "churn" => Ok(Parts {
                churn: true,
                ..none
            }),
            other => {
                bail!(
                    "BENCH_ONLY={other:?} is not `reads`, `writes`, `etcd`, `consul`, `sync`, \
                     `nacos`, `fanout` or `churn`"
                )
            }
        }
    }
}

/// What the bench runs besides itself; only what the chosen parts need is looked for.
struct Tools {
    switchboard: PathBuf,
    rnacos: Option<PathBuf>,
    etcd: Option<PathBuf>,
    this_binary: PathBuf,
}

impl Tools {
    fn find(parts: Parts) -> anyhow::Result<Tools> {
        let hint = "run `make bench-deps` (or `bash scripts/deps.sh bench`) to install it";
        let needed: &[&str] = if parts.reads {
            &["wrk", "taskset"]
        } else {
            &["taskset"]
        };
        for tool in needed {
            if find_in_path(tool).is_none() {
                bail!("`{tool}` is not on PATH: {hint}");
            }
        }
        let rnacos = if parts.reads || parts.writes || parts.sync || parts.nacos {
            let missing = || format!("`rnacos` is not on PATH nor in ~/.cargo/bin: {hint}");
            Some(nacos::find_rnacos().with_context(missing)?)
        } else {
            None
        };
        let etcd = if parts.writes || parts.etcd || parts.sync {
            let hint = "run `make deps` (Debian packages etcd-server, etcd-client)";
            Some(etcd::find_etcd().with_context(|| format!("`etcd` is not on PATH: {hint}"))?)
        } else {
            None
        };
        let this_binary = std::env::current_exe().context("cannot locate this binary")?;
        let switchboard = this_binary.with_file_name("switchboard");
        if !switchboard.is_file() {
            bail!(
                "{} is missing: run `make bench` (it builds it), or `make bench-deps` and \
                 `cargo build --release --bin switchboard`",
                switchboard.display()
            );
        }
        Ok(Tools {
            switchboard,
            rnacos,
            etcd,
            this_binary,
        })
    }
}

/// The first executable `name` on PATH.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn load_from_env() -> anyhow::Result<Load> {
    let duration = std::env::var("BENCH_DURATION").unwrap_or_else(|_| "10s".to_owned());
    let digits = duration.trim_end_matches(['s', 'm', 'h']);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits == "0" {
        bail!("BENCH_DURATION={duration:?} is not a wrk duration such as 10s or 1m");
    }
    let connections = match std::env::var("BENCH_CONNECTIONS") {
        Ok(value) => value
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("BENCH_CONNECTIONS={value:?} is not a positive number"))?,
        Err(_) => 64,
    };
    Ok(Load {
        duration,
        connections,
    })
}

fn run_bench() -> anyhow::Result<()> {
    let parts = Parts::from_env()?;
    let load = load_from_env()?;
    let tools = Tools::find(parts)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let all = async {
            if parts.reads {
                bench(&load, &tools).await?;
            }
            // After the reads, whose servers are gone by now, so they are measured alone.
            if parts.writes {
                writes::bench(
                    &tools.switchboard,
                    tools
                        .rnacos
                        .as_deref()
                        .context("rnacos was not looked for")?,
                    tools.etcd.as_deref().context("etcd was not looked for")?,
                )
                .await?;
            }
            if parts.etcd {
                bench_etcd(&tools).await?;
            }
            if parts.consul {
                consul::bench(&tools.switchboard).await?;
            }
            if parts.sync {
                let etcd = tools.etcd.as_deref().context("etcd was not looked for")?;
                let rnacos = tools
                    .rnacos
                    .as_deref()
                    .context("rnacos was not looked for")?;
                sync::bench(&tools.switchboard, etcd, rnacos).await?;
            }
            if parts.fanout {
                let results = fanout::bench(&tools.switchboard).await?;
                print!("{}", report::render_fanout(&results));
            }
            if parts.churn {
                let churn = name_churn::bench(&tools.switchboard).await?;
                print!("{}", report::render_churn(&churn));
            }
            // Last: the nacos-sdk client cannot be shut down, only dropped, and its
            // runtime keeps retrying the stopped rnacos in the background.
            if parts.nacos {
                let rnacos = tools
                    .rnacos
                    .as_deref()
                    .context("rnacos was not looked for")?;
                nacos::bench(&tools.switchboard, rnacos).await?;
            }
            Ok(())
        };
        // Dropping the bench future drops its server guards, which kill the servers.
        tokio::select! {
            result = all => result,
            signal = interrupted() => Err(anyhow!("interrupted by {signal}; servers stopped")),
        }
    })
}

async fn interrupted() -> &'static str {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "Ctrl-C";
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// Measured rounds of the three read targets. Each round runs them back to back, and each
/// target reports its median round, so a slow minute on a shared machine skews all three
/// alike instead of one.
const ROUNDS: usize = 3;

async fn bench(load: &Load, tools: &Tools) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    // All three servers stay up for the whole run, idle (so using no CPU) while another is
    // measured; each is pinned to core 0.
    progress("starting switchboard");
    let mut switchboard = servers::start_switchboard(&tools.switchboard, &client, None).await?;
    let ids = servers::register_switchboard(&switchboard, &client, None).await?;
    let body = switchboard
        .wait_for(
            &client,
            SWITCHBOARD_READ_PATH,
            Duration::from_secs(10),
            lists_all_instances,
        )
        .await?;
    progress(&format!(
        "switchboard: {INSTANCES} instances registered; the read is {} bytes",
        body.len()
    ));
    progress("starting the static baseline");
    let mut static_server = servers::start_static(&tools.this_binary, &body, &client).await?;
    progress("starting rnacos");
    let rnacos_binary = tools
        .rnacos
        .as_deref()
        .context("rnacos was not looked for")?;
    let mut rnacos = nacos::start(rnacos_binary, &client).await?;
    let rnacos_bytes = nacos::register(&mut rnacos, &client).await?;
    progress(&format!(
        "rnacos: {INSTANCES} instances registered; the read is {rnacos_bytes} bytes"
    ));

    let switchboard_url = switchboard.url(SWITCHBOARD_READ_PATH);
    let static_url = static_server.url(SWITCHBOARD_READ_PATH);
    let rnacos_url = rnacos.url(nacos::READ_PATH);
    progress("starting switchboard with access control on");
    let mut guarded = guarded::start(&tools.switchboard, &client).await?;
    let consul_body = consul_reads::body(&switchboard, &client).await?;
    let mut consul_static = match &consul_body {
        Some(body) => Some(servers::start_static(&tools.this_binary, body, &client).await?),
        None => None,
    };
    let consul_url = switchboard.url(consul_reads::CONSUL_READ_PATH);
    let (mut sb_runs, mut static_runs, mut rnacos_runs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut guarded_runs, mut consul_runs, mut consul_static_runs) =
        (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        progress(&format!("round {round} of {ROUNDS}"));
        sb_runs.push(measure(load, &mut switchboard, &switchboard_url, None, None).await?);
        static_runs.push(measure(load, &mut static_server, &static_url, None, None).await?);
        rnacos_runs.push(measure(load, &mut rnacos, &rnacos_url, None, None).await?);
        if let Some(guarded) = &mut guarded {
            let url = guarded.server.url(SWITCHBOARD_READ_PATH);
            let header = Some(guarded.header.as_str());
            guarded_runs.push(measure(load, &mut guarded.server, &url, None, header).await?);
        }
        if let Some(ceiling) = &mut consul_static {
            consul_runs.push(measure(load, &mut switchboard, &consul_url, None, None).await?);
            let url = ceiling.url(consul_reads::CONSUL_READ_PATH);
            consul_static_runs.push(measure(load, ceiling, &url, None, None).await?);
        }
    }

    let script = switchboard.dir().join("heartbeat.lua");
    std::fs::write(&script, wrk::heartbeat_script(&ids)?)
        .context("cannot write the heartbeat script")?;
    let base_url = switchboard.url("/");
    let heartbeat_report = measure(load, &mut switchboard, &base_url, Some(&script), None).await?;

    let results = Results {
        switchboard: Row {
            target: "switchboard",
            request: "GET /api/v1/services/bench-svc/instances",
            body_bytes: Some(body.len()),
            report: median(sb_runs),
        },
        heartbeat: Row {
            target: "switchboard heartbeat",
            request: "PUT /api/v1/instances/{id}/heartbeat",
            body_bytes: None,
            report: heartbeat_report,
        },
        static_baseline: Row {
            target: "static axum",
            request: "GET (Switchboard's bytes, Bytes clone)",
            body_bytes: Some(body.len()),
            report: median(static_runs),
        },
        rnacos: Row {
            target: "rnacos",
            request: "GET /nacos/v1/ns/instance/list?serviceName=..",
            body_bytes: Some(rnacos_bytes),
            report: median(rnacos_runs),
        },
        guarded: (!guarded_runs.is_empty()).then(|| Row {
            target: "switchboard + token",
            request: "the same GET, access control on, Bearer",
            body_bytes: Some(body.len()),
            report: median(guarded_runs),
        }),
        consul: consul_body.map(|body| {
            let row = |target, request, runs| Row {
                target,
                request,
                body_bytes: Some(body.len()),
                report: median(runs),
            };
            (
                row(
                    "switchboard consul",
                    "GET /v1/health/service/bench-svc?passing",
                    consul_runs,
                ),
                row(
                    "static axum",
                    "GET (the Consul door's bytes)",
                    consul_static_runs,
                ),
            )
        }),
    };
    print!("{}", report::render(&results, load, ROUNDS));
    Ok(())
}

/// The etcd part: propagation latency, then memory, each with its own Switchboard on the
/// same etcd, so the memory reading starts from a process that never held anything.
async fn bench_etcd(tools: &Tools) -> anyhow::Result<()> {
    let etcd_binary = tools.etcd.as_deref().context("etcd was not looked for")?;
    let client = pinned_client().await?;

    progress("starting etcd");
    let mut etcd = etcd::start(etcd_binary, &client).await?;
    let config = etcd::switchboard_config(&etcd);
    progress("starting switchboard with etcd as a source");
    let mut switchboard =
        servers::start_switchboard(&tools.switchboard, &client, Some(&config)).await?;
    let mut backend = propagation::etcd::Etcd::connect(&etcd).await?;
    let latencies = propagation::measure(&mut backend, &mut switchboard, &client).await?;
    drop((backend, switchboard));

    let mut writer = etcd::connect(&etcd).await?;
    etcd::clear(&mut writer, etcd::PREFIX).await?;
    progress("memory: starting a fresh switchboard on the emptied prefix");
    let mut switchboard =
        servers::start_switchboard(&tools.switchboard, &client, Some(&config)).await?;
    let memory = memory::measure(&etcd, &mut switchboard, &client).await?;
    etcd.check_alive()?;

    let results = report::EtcdResults { latencies, memory };
    print!("{}", report::render_etcd(&results));
    Ok(())
}

/// The client of a propagation part, after moving every thread of this process to core 1,
/// where wrk runs in the read part, so the part's clients (and the Consul double) do not
/// take CPU from the servers on core 0. The pinning is best effort: on failure the
/// clients float, and the bench says so.
pub async fn pinned_client() -> anyhow::Result<reqwest::Client> {
    let pinned = tokio::process::Command::new("taskset")
        .args(["-a", "-p", "-c", "1"])
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if !matches!(pinned, Ok(status) if status.success()) {
        progress("warning: cannot pin the bench's clients to core 1; they may share core 0");
    }
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// The run with the median throughput (its p99 comes from the same run).
fn median(mut runs: Vec<wrk::Report>) -> wrk::Report {
    runs.sort_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec));
    runs.swap_remove(runs.len() / 2)
}

/// A warm-up run, then the measured one; every response must have been a success and the
/// server must have survived, or the numbers mean nothing.
async fn measure(
    load: &Load,
    server: &mut Server,
    url: &str,
    script: Option<&Path>,
    header: Option<&str>,
) -> anyhow::Result<wrk::Report> {
    let what = if script.is_some() {
        "heartbeats"
    } else {
        "reads"
    };
    wrk::run(load, WARM_UP, url, script, header).await?;
    let report = wrk::run(load, &load.duration, url, script, header).await?;
    progress(&format!(
        "{}: {what} {:.0}/s, p99 {:?}",
        server.name(),
        report.requests_per_sec,
        report.p99
    ));
    server.check_alive()?;
    if report.non_2xx > 0 {
        bail!(
            "{} answered {} of {} {what} with a non-2xx status; its log ends with:\n{}",
            server.name(),
            report.non_2xx,
            report.requests,
            server.log_tail()
        );
    }
    Ok(report)
}

pub fn lists_all_instances(body: &Bytes) -> Result<(), String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(list)) if list.len() == INSTANCES => Ok(()),
        Ok(serde_json::Value::Array(list)) => {
            Err(format!("it lists {} of {INSTANCES} instances", list.len()))
        }
        _ => Err("the instance list is not a JSON array".to_owned()),
    }
}

pub fn progress(message: &str) {
    eprintln!("bench: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_only_names_one_part() {
        let all = Parts::parse("").unwrap();
        assert!(all.reads && all.writes && all.etcd && all.consul && all.sync && all.nacos);
        let writes = Parts::parse("writes").unwrap();
        assert!(writes.writes && !writes.reads && !writes.etcd && !writes.sync && !writes.nacos);
        let consul = Parts::parse("consul").unwrap();
        assert!(consul.consul && !consul.reads && !consul.etcd && !consul.nacos);
        let etcd = Parts::parse("etcd").unwrap();
        assert!(etcd.etcd && !etcd.reads && !etcd.consul && !etcd.nacos);
        let reads = Parts::parse("reads").unwrap();
        assert!(reads.reads && !reads.writes && !reads.etcd && !reads.consul && !reads.nacos);
        let nacos = Parts::parse("nacos").unwrap();
        assert!(nacos.nacos && !nacos.reads && !nacos.etcd && !nacos.consul);
        let sync = Parts::parse("sync").unwrap();
        assert!(sync.sync && !sync.reads && !sync.etcd && !sync.consul && !sync.nacos);
        let fanout = Parts::parse("fanout").unwrap();
        assert!(fanout.fanout && !fanout.churn && !fanout.reads && !fanout.nacos);
        let churn = Parts::parse("churn").unwrap();
        assert!(churn.churn && !churn.fanout && !churn.reads);
        let err = Parts::parse("zookeeper").unwrap_err().to_string();
        assert!(err.contains("`nacos`") && err.contains("`writes`"), "{err}");
    }
}

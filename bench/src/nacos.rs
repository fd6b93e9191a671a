//! rnacos, the Nacos server the bench runs: the read baseline (a Nacos server holding the
//! same 100 instances, read through the Nacos v1 OpenAPI that Nacos clients poll), and
//! the Nacos part (`BENCH_ONLY=nacos`): Switchboard with a `type = "nacos"` source
//! reading rnacos, and the propagation latency from a registration in rnacos to a
//! Switchboard blocking query, printed beside a direct `nacos-sdk` subscriber on the same
//! writes (`propagation/nacos.rs`). rnacos and Switchboard run pinned to core 0, the
//! bench's clients (the subscriber included) on core 1.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::Url;

use crate::progress;
use crate::propagation::{self, nacos::Nacos};
use crate::servers::{self, Server, INSTANCES, SERVICE};

/// The read the bench drives, the Nacos counterpart of Switchboard's instance list.
pub const READ_PATH: &str = "/nacos/v1/ns/instance/list?serviceName=bench-svc";

/// rnacos on PATH, else where `cargo install` puts it.
pub fn find_rnacos() -> Option<PathBuf> {
    crate::find_in_path("rnacos").or_else(|| {
        let installed = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/rnacos");
        installed.is_file().then_some(installed)
    })
}

/// Starts rnacos on free ports with an empty data dir and waits until it answers reads.
pub async fn start(binary: &Path, client: &reqwest::Client) -> anyhow::Result<Server> {
    let dir = servers::temp_dir("rnacos")?;
    let http = http_port()?;
    let console = loop {
        let port = servers::free_port()?;
        if port != http + 1000 {
            break port;
        }
    };
    let envs = [
        ("RNACOS_HTTP_PORT", http.to_string()),
        ("RNACOS_GRPC_PORT", (http + 1000).to_string()),
        ("RNACOS_HTTP_CONSOLE_PORT", console.to_string()),
        (
            "RNACOS_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        // rnacos logs every request at its default `info`; Switchboard logs none, so
        // leaving it on would measure rnacos's logging rather than its serving.
        ("RUST_LOG", "warn".to_owned()),
        // 0 turns off rnacos's probe of persistent instances (a TCP connect every 60 s by
        // default): the bench's addresses are not listening, so a probe would mark them
        // unhealthy in the middle of a run, a change pushed to every subscriber.
        (
            "RNACOS_NAMING_PERPETUAL_INSTANCE_PROBE_INTERVAL_SECOND",
            "0".to_owned(),
        ),
    ];
    let no_args: [OsString; 0] = [];
    let mut server = Server::spawn_pinned("rnacos", dir, http, binary, &no_args, &envs)?;
    server
        .wait_for(client, READ_PATH, Duration::from_secs(30), |_| Ok(()))
        .await?;
    Ok(server)
}

/// rnacos puts gRPC at the HTTP port + 1000, so both must be free.
fn http_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let port = servers::free_port()?;
        if port < u16::MAX - 1000 && servers::port_is_free(port + 1000) {
            return Ok(port);
        }
    }
    bail!("cannot find two free ports 1000 apart for rnacos")
}

/// Registers the same instances as persistent ones, which need no heartbeats to stay,
/// then waits until the list read shows all of them and returns that read's size.
pub async fn register(server: &mut Server, client: &reqwest::Client) -> anyhow::Result<usize> {
    let url = server.url("/nacos/v1/ns/instance");
    for i in 0..INSTANCES {
        let mut url = Url::parse(&url)?;
        url.query_pairs_mut()
            .append_pair("serviceName", SERVICE)
            .append_pair("ip", &format!("10.0.{}.{}", i / 256, i % 256))
            .append_pair("port", "8080")
            .append_pair("ephemeral", "false")
            .append_pair("metadata", r#"{"zone":"a"}"#);
        let response = client.post(url).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() || text.trim() != "ok" {
            bail!("rnacos refused registration {i}: {status}: {text}");
        }
    }
    let body = server
        .wait_for(
            client,
            READ_PATH,
            Duration::from_secs(30),
            |body| match host_count(body) {
                Ok(n) if n == INSTANCES => Ok(()),
                Ok(n) => Err(format!("it lists {n} of {INSTANCES} hosts")),
                Err(err) => Err(err.to_string()),
            },
        )
        .await?;
    Ok(body.len())
}

fn host_count(body: &[u8]) -> anyhow::Result<usize> {
    let list: serde_json::Value =
        serde_json::from_slice(body).context("the instance list is not JSON")?;
    list["hosts"]
        .as_array()
        .map(Vec::len)
        .context("the instance list has no `hosts` array")
}

/// The id of the source in Switchboard's config.
pub const SOURCE_ID: &str = "nacos-main";

/// The `[[sources]]` config pointing Switchboard at `rnacos`, every field at its default.
pub fn switchboard_config(rnacos: &Server) -> String {
    servers::source_config(SOURCE_ID, "nacos", &rnacos.url(""), "")
}

/// Runs the Nacos part and prints its report.
pub async fn bench(switchboard_binary: &Path, rnacos_binary: &Path) -> anyhow::Result<()> {
    let client = crate::pinned_client().await?;

    progress("starting rnacos");
    let mut rnacos = start(rnacos_binary, &client).await?;
    let config = switchboard_config(&rnacos);
    progress("starting switchboard with rnacos as a source");
    let mut switchboard = servers::start_switchboard(switchboard_binary, &client, Some(&config))
        .await
        .context("switchboard did not start with a nacos source")?;
    let mut backend = Nacos::new(&rnacos)?;
    let latencies = propagation::measure(&mut backend, &mut switchboard, &client).await?;
    switchboard.check_alive()?;
    rnacos.check_alive()?;
    print!("{}", crate::report::render_nacos(&latencies));
    // Dropped in reverse order: the subscriber, then Switchboard, then rnacos with its
    // temp dir (the subscriber's disk cache included).
    Ok(())
}

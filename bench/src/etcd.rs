//! The etcd the federation part reads from: Debian's etcd 3.4 (installed by `make deps`)
//! pinned to core 0 like every server, on free ports with a private data dir, plus the
//! client-side writes the bench makes through `etcd-client`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions, DeleteOptions, Txn, TxnOp};

use crate::servers::{self, Server};

/// The key prefix Switchboard's source watches.
pub const PREFIX: &str = "/services/";

/// Service `s`'s instance `i` as the bench lays out many of them: service `{name}-{s}`,
/// endpoint `10.{s/256}.{s%256}.{i}:{8000+i}`.
pub fn spread_instance(name: &str, s: usize, i: usize) -> (String, String, u16) {
    let host = format!("10.{}.{}.{i}", s / 256, s % 256);
    (format!("{name}-{s}"), host, 8000 + i as u16)
}

/// That instance's key and value in the source layout the parts use:
/// `{PREFIX}{service}/{i}` = `host:port`.
pub fn spread_key(name: &str, s: usize, i: usize) -> (String, String) {
    let (service, host, port) = spread_instance(name, s, i);
    (format!("{PREFIX}{service}/{i}"), format!("{host}:{port}"))
}

/// The keys of `services` services of `per_service` instances each.
pub fn spread_keys(name: &str, services: usize, per_service: usize) -> Vec<(String, String)> {
    (0..services)
        .flat_map(|s| (0..per_service).map(move |i| spread_key(name, s, i)))
        .collect()
}
/// The id of the source in Switchboard's config.
pub const SOURCE_ID: &str = "etcd-main";
/// etcd refuses a txn with more operations than this (`--max-txn-ops`, default 128).
pub const MAX_TXN_OPS: usize = 128;
/// etcd refuses a request larger than this (`--max-request-bytes`, default 1.5 MiB).
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// `etcd` on PATH.
pub fn find_etcd() -> Option<PathBuf> {
    crate::find_in_path("etcd")
}

/// Starts a single-member etcd cluster and waits until `/health` says so.
pub async fn start(binary: &Path, client: &reqwest::Client) -> anyhow::Result<Server> {
    let dir = servers::temp_dir("etcd")?;
    // Bind both at once so they differ; released just before etcd binds them.
    let (client_listener, peer_listener) = (free_listener()?, free_listener()?);
    let client_port = client_listener.local_addr()?.port();
    let peer_port = peer_listener.local_addr()?.port();
    drop((client_listener, peer_listener));
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let args: Vec<OsString> = [
        "--name",
        "b",
        "--data-dir",
        &dir.path().join("data").display().to_string(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &format!("b={peer_url}"),
        "--logger",
        "zap",
        "--log-level",
        "warn",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let mut server = Server::spawn_pinned("etcd", dir, client_port, binary, &args, &[])?;
    server
        .wait_for(client, "/health", Duration::from_secs(30), |body| {
            let health: serde_json::Value =
                serde_json::from_slice(body).map_err(|err| err.to_string())?;
            if health["health"] == "true" {
                Ok(())
            } else {
                Err(format!("it reports {health}"))
            }
        })
        .await?;
    Ok(server)
}

fn free_listener() -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")
}

/// A gRPC client of `etcd` (one HTTP/2 connection; clones share it).
pub async fn connect(etcd: &Server) -> anyhow::Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    Client::connect([etcd.url("")], Some(options))
        .await
        .context("cannot connect to etcd")
}

/// The `[[sources]]` config pointing Switchboard at `etcd`.
pub fn switchboard_config(etcd: &Server) -> String {
    let prefix = format!("prefix = \"{PREFIX}\"\n");
    servers::source_config(SOURCE_ID, "etcd", &etcd.url(""), &prefix)
}

/// Deletes every key under `prefix`.
pub async fn clear(client: &mut Client, prefix: &str) -> anyhow::Result<()> {
    client
        .delete(prefix, Some(DeleteOptions::new().with_prefix()))
        .await
        .with_context(|| format!("cannot delete {prefix}* from etcd"))?;
    Ok(())
}

/// Writes `keys` in transactions that stay under etcd's per-request limits, `parallel`
/// transactions in flight at a time. Returns once etcd has committed every one.
pub async fn put_all(
    client: &Client,
    keys: Vec<(String, String)>,
    parallel: usize,
) -> anyhow::Result<()> {
    let batches = batches(keys);
    let total = batches.len();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(batches));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallel.max(1) {
        let queue = queue.clone();
        let mut client = client.clone();
        workers.spawn(async move {
            loop {
                let batch = queue.lock().expect("batch queue").pop();
                let Some(batch) = batch else {
                    return anyhow::Ok(());
                };
                let ops: Vec<TxnOp> = batch
                    .into_iter()
                    .map(|(key, value)| TxnOp::put(key, value, None))
                    .collect();
                client
                    .txn(Txn::new().and_then(ops))
                    .await
                    .context("etcd refused a batch of puts")?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.context("a writer task panicked")??;
    }
    if !queue.lock().expect("batch queue").is_empty() {
        bail!("not all {total} batches were written");
    }
    Ok(())
}

/// Splits `keys` into groups of at most [`MAX_TXN_OPS`] puts and well under
/// [`MAX_REQUEST_BYTES`] of keys and values (leaving room for framing).
fn batches(keys: Vec<(String, String)>) -> Vec<Vec<(String, String)>> {
    let byte_budget = MAX_REQUEST_BYTES / 2;
    let mut batches = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    let mut bytes = 0;
    for (key, value) in keys {
        let size = key.len() + value.len() + 16;
        if current.len() == MAX_TXN_OPS || (!current.is_empty() && bytes + size > byte_budget) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((key, value));
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_etcds_limits() {
        let keys: Vec<(String, String)> = (0..300)
            .map(|i| (format!("/k/{i}"), "v".to_owned()))
            .collect();
        let sizes: Vec<usize> = batches(keys).iter().map(Vec::len).collect();
        assert_eq!(sizes, [128, 128, 44]);

        let big = "x".repeat(300 * 1024);
        let keys: Vec<(String, String)> =
            (0..5).map(|i| (format!("/k/{i}"), big.clone())).collect();
        let sizes: Vec<usize> = batches(keys).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
    }
}

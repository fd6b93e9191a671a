//! Switchboard: one service-discovery endpoint in front of many registries.
//!
//! How the pieces fit:
//!
//! ```text
//!  clients ─HTTP─▶ api ──reads──▶ catalog::Snapshot (lock-free, pre-encoded JSON)
//!                   │                   ▲ publishes          ▲ explain, reports
//!                   ├─writes─▶ registry ┴─changes─▶ catalog writer ◀─changes─ federation
//!                   │             │                     │ change feed          (a supervisor
//!                   └─▶ sync ◀────┼─────────────────────┘                     per source)
//!                        │        ▼                                                │
//!                        └─────▶ store (redb: instances, sources and views, ◀───────┘
//!                                       settings, sync jobs and ledgers)
//! ```
//!
//! Where each responsibility lives, lowest layer first. A module imports only modules
//! listed before it, so no two modules import each other (`layering_tests.rs` checks):
//!
//! - [`vocab`], [`fnv`], [`telemetry`]: the shared words (the native source's name,
//!   `Origin`, `SourceState`, `StatusCell`, the name and status rules), stable hashing,
//!   logs and metrics.
//! - [`store`]: everything on disk, one trait per kind of record; redb is the embedded
//!   backend. Opened once in [`App::start`].
//! - [`catalog`]: one writer task merges every source's partition and publishes immutable
//!   snapshots; readers never wait for it. Its queue carries changes only; explain and
//!   sync reports read the partitions directly. Merge rules live here.
//! - [`registry`]: the native registry (register, heartbeat, status, expiry) with group
//!   commits; it is the catalog's `native` source.
//! - [`health`]: the HTTP and TCP checks Switchboard runs for native instances; results
//!   go through the registry's write path.
//! - [`federation`]: one supervised connector per external source; saves each source's
//!   view for warm restarts by following the catalog's change feed.
//! - [`sync`]: sync-back jobs writing the merged view into the native registry or an
//!   external source.
//! - [`auth`]: tokens with a role over namespaces, hashed in the store; the one check
//!   every front door calls with the credential it extracted.
//! - [`frontends`]: doors imitating other systems (Consul's HTTP API), each reading the
//!   same snapshot through its own cached encodings.
//! - [`config`]: defaults < file < env < flags, gathering each part's settings.
//! - [`api`]: the axum router, one file per resource.
//!
//! [`run`] takes a bound listener, so tests bind `127.0.0.1:0`.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod federation;
pub mod fnv;
pub mod frontends;
pub mod health;
#[cfg(test)]
mod layering_tests;
pub mod registry;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod vocab;

/// Go-style durations, shared with the connectors crate.
pub use switchboard_connectors::duration;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{AppState, Shared};
use crate::auth::Auth;
use crate::catalog::{Catalog, MergeSettings};
use crate::config::Config;
use crate::federation::Federation;
use crate::registry::Registry;
use crate::store::Store;
use crate::sync::Syncs;
use crate::telemetry::Metrics;

/// A started Switchboard: store loaded, catalog published, background work running.
/// [`App::router`] serves it; [`App::shutdown`] stops the background work cleanly.
pub struct App {
    pub state: AppState,
    /// Tells long-lived requests (blocking queries, SSE) to finish.
    stopping: Arc<watch::Sender<bool>>,
    stop: watch::Sender<bool>,
    background: tokio::task::JoinHandle<()>,
    /// The health-check runner, stopped with the sweeps.
    health: tokio::task::JoinHandle<()>,
}

impl App {
    /// Opens the store in `config.data_dir`, loads the native registry and starts the
    /// catalog writer, the registry's sweeps and the health checks.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        let metrics = Arc::new(Metrics::new());
        let store = Store::open(&config.data_dir).map_err(|err| {
            anyhow::anyhow!(
                "cannot open the store in {}: {err} (is another Switchboard using this data dir?)",
                config.data_dir.display()
            )
        })?;
        // Each start-up gets its own range of 2^32 indexes, so an index a client holds
        // from an earlier run is always below what this run issues.
        let epoch = store.settings.next_epoch()?;
        let catalog = Catalog::start_at(metrics.clone(), epoch << 32);
        let registry = Registry::open(
            store.instances.clone(),
            catalog.clone(),
            config.registry.clone(),
            metrics.clone(),
        )
        .await?;
        let (stop, stopped) = watch::channel(false);
        let background = registry::spawn_background(registry.clone(), stopped.clone());
        let health = health::spawn(registry.clone(), &config.health, metrics.clone(), stopped)?;
        let (stopping, stopping_rx) = watch::channel(false);
        let merge = MergeSettings::start(
            config.merge.clone(),
            store.settings.clone(),
            catalog.clone(),
        )
        .await?;
        let federation = Arc::new(
            Federation::start(
                &config.sources,
                &catalog,
                &metrics,
                &stopping_rx,
                store.sources.clone(),
            )
            .await?,
        );
        let syncs = Syncs::start(
            &config.syncs,
            &catalog,
            &federation,
            &registry,
            &metrics,
            store.syncs.clone(),
        )
        .await?;
        let auth = Arc::new(
            Auth::start(config.auth.clone(), store.tokens.clone(), &config.data_dir).await?,
        );
        let validations = tokio::sync::Semaphore::new(config.api.validate_concurrency);
        let watches =
            api::limits::Occupancy::new(config.api.max_watches, config.api.max_watches_per_client);
        let consul = frontends::consul::ConsulState::new(frontends::consul::ConsulShared {
            catalog: catalog.clone(),
            registry: registry.clone(),
            auth: auth.clone(),
            metrics: metrics.clone(),
            config: config.consul.clone(),
            stopping: stopping_rx.clone(),
            shapes: frontends::consul::encode::ConsulShapes::new(
                &config.consul.datacenter,
                metrics.consul_meta_dropped.clone(),
            ),
            watch_slot: watch_slot(&watches, &metrics),
            advertise: config.listen,
        });
        let state = AppState::new(Shared {
            federation,
            syncs,
            merge,
            catalog,
            registry,
            metrics,
            watches,
            config: Arc::new(config),
            stopping: stopping_rx,
            validations,
            auth,
            consul,
        });
        Ok(App {
            state,
            stopping: Arc::new(stopping),
            stop,
            background,
            health,
        })
    }

    /// The HTTP API over this app.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Ends blocking queries and watch streams so connections can drain.
    pub fn begin_shutdown(&self) {
        let _ = self.stopping.send(true);
    }

    /// Stops health checks and sweeps, writes the last heartbeat times and every source's latest view.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.begin_shutdown();
        self.state.syncs.shutdown().await;
        self.state.federation.shutdown().await;
        let _ = self.stop.send(true);
        self.health.await?;
        self.background.await?;
        self.state.registry.close().await;
        Ok(())
    }
}

/// The Consul door's watch slots: the API's (`api.max_watches*`), shared, so a client's
/// blocking queries count the same through either door.
fn watch_slot(
    watches: &Arc<api::limits::Occupancy>,
    metrics: &Arc<Metrics>,
) -> frontends::consul::WatchSlot {
    let (watches, metrics) = (watches.clone(), metrics.clone());
    Box::new(move |client| {
        let client = client.map_or(api::limits::UNKNOWN_CLIENT, api::limits::client_of);
        watches
            .hold(&api::limits::WATCHES, client, &metrics)
            .map(|held| Box::new(held) as Box<dyn Send + Sync>)
            .map_err(|refused| {
                frontends::consul::error::ConsulError::new(refused.status, refused.detail)
            })
    })
}

/// Serves Switchboard on `listener` until `shutdown` completes, then flushes heartbeat
/// times and returns. Over HTTPS when `config.tls` says so; its files are read before
/// the store is opened.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = api::serve::tls::server_config(&config.tls)?;
    run_with_tls(listener, config, tls, shutdown).await
}

/// Serves the Consul door on its own listener (`[consul] listen`) until shutdown begins.
async fn serve_consul(
    app: &App,
    address: std::net::SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {address} for [consul] listen: {err}"))?;
    tracing::info!(listen = %address, "Consul API serving");
    let router = api::consul_router(&app.state);
    let config = app.state.config.api.clone();
    let metrics = app.state.metrics.clone();
    let mut stopping = app.stopping.subscribe();
    Ok(tokio::spawn(async move {
        api::serve::serve(listener, router, &config, tls, metrics, async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .await;
    }))
}

/// [`run`] with the TLS files already read by [`api::serve::tls::server_config`]: `main`
/// reads them before it binds, so a bad one is reported as a config error.
pub async fn run_with_tls(
    listener: TcpListener,
    config: Config,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    // What the app reports as its address (the Consul door's leader) is where it listens.
    let mut config = config;
    config.listen = address;
    let app = App::start(config).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %address, %scheme, "Switchboard serving");
    if !address.ip().is_loopback() {
        if !app.state.auth.enabled() {
            tracing::warn!(listen = %address, "Listening beyond this machine with access control off: anyone who reaches the port can register, delete and reconfigure everything; set [auth] enabled = true");
        } else if tls.is_none() {
            tracing::warn!(listen = %address, "Listening beyond this machine over plain HTTP: tokens cross the network readable; set [tls] cert and key (docs/tls.md)");
        }
    }
    let stopping = app.stopping.clone();
    let consul = match app.state.config.consul.listen {
        Some(address) => Some(serve_consul(&app, address, tls.clone()).await?),
        None => None,
    };
    api::serve::serve(
        listener,
        app.router(),
        &app.state.config.api,
        tls,
        app.state.metrics.clone(),
        async move {
            shutdown.await;
            let _ = stopping.send(true);
        },
    )
    .await;
    if let Some(consul) = consul {
        let _ = consul.await;
    }
    app.shutdown().await?;
    tracing::info!("Switchboard stopped");
    Ok(())
}

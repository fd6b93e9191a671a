//! One task per source: connect, apply what the connector streams, recover.
//!
//! Everything about recovery lives here, so a connector only connects, lists and streams:
//! exponential backoff with jitter (reset after a healthy minute); fail static (a source
//! that goes down keeps its last view in the catalog, flagged stale, until it comes back
//! or `max_stale` runs out); and the first item after every (re)connect is a full view
//! that replaces the partition atomically and turns it fresh in the same batch.
//!
//! A source whose configuration was just changed starts with its old view (stale), and
//! its first full view replaces that without the wipe-out guard: services the new
//! configuration no longer yields are gone by design, not by a backend's hiccup. The same
//! holds for a view loaded from the store at start-up, and for a view that `max_stale`
//! had taken out of service: the live view replaces them outright.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use switchboard_connectors::{Connector, ConnectorError, SourceConfig, Update};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::backoff::Backoff;
use super::status::{LastError, SourceState, StatusCell};
use super::Readiness;
use crate::catalog::{Catalog, NameMap, SourceMeta};
use crate::telemetry::{Metrics, SourceLabels, SourceStateLabels};

/// A connection that lasted this long resets the backoff.
const HEALTHY_RESET: Duration = Duration::from_secs(60);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Everything one supervisor task needs.
pub struct Supervisor {
    config: SourceConfig,
    source: Arc<str>,
    connector: Arc<dyn Connector>,
    catalog: Catalog,
    status: Arc<StatusCell>,
    metrics: SourceMetrics,
    readiness: Arc<Readiness>,
    names: Arc<NameMap>,
    /// Set until the first full view is applied when it must replace the partition
    /// without the wipe-out guard (see the module docs).
    replace_unguarded: AtomicBool,
    /// Set while the source's stale view is past `max_stale` and not served.
    expired: AtomicBool,
    /// The monotonic instant `max_stale` runs out for the stale period that began at the
    /// paired `stale_since`. Taken once per period: re-reading the wall clock on every
    /// backoff would let a clock step (or a test's paused clock) stretch or cut it short.
    drop_at: Mutex<Option<(DateTime<Utc>, Instant)>>,
}

/// This source's metric handles, looked up once rather than on every update.
pub(super) struct SourceMetrics {
    errors: Counter,
    skipped: Counter,
    last_sync: Gauge<f64, AtomicU64>,
    /// One gauge per state, in [`SourceState::ALL`] order.
    states: Vec<(SourceState, Gauge)>,
}

impl SourceMetrics {
    pub(super) fn new(metrics: &Metrics, source: &str) -> SourceMetrics {
        let labels = SourceLabels {
            source: source.to_owned(),
        };
        SourceMetrics {
            errors: metrics.source_errors.get_or_create(&labels).clone(),
            skipped: metrics.source_skipped.get_or_create(&labels).clone(),
            last_sync: metrics.source_last_sync.get_or_create(&labels).clone(),
            states: SourceState::ALL
                .into_iter()
                .map(|state| {
                    let labels = SourceStateLabels {
                        source: source.to_owned(),
                        state: state.as_str(),
                    };
                    (state, metrics.source_state.get_or_create(&labels).clone())
                })
                .collect(),
        }
    }
}

impl SourceMetrics {
    /// Shows `state` as the source's one current state.
    pub(super) fn show_state(&self, state: SourceState) {
        for (each, gauge) in &self.states {
            gauge.set(i64::from(*each == state));
        }
    }

    /// Drops a deleted source's series.
    pub(super) fn forget(metrics: &Metrics, source: &str) {
        let labels = SourceLabels {
            source: source.to_owned(),
        };
        metrics.source_errors.remove(&labels);
        metrics.source_skipped.remove(&labels);
        metrics.source_last_sync.remove(&labels);
        for state in SourceState::ALL {
            metrics.source_state.remove(&SourceStateLabels {
                source: source.to_owned(),
                state: state.as_str(),
            });
        }
    }
}

/// Why a connection ended.
enum Ended {
    Failed(ConnectorError),
    Stopped,
}

impl Supervisor {
    /// `replace_unguarded`: the partition holds a view from before this supervisor (a
    /// configuration change or the store), which its first full view replaces outright.
    pub fn new(
        config: SourceConfig,
        connector: Arc<dyn Connector>,
        catalog: Catalog,
        status: Arc<StatusCell>,
        metrics: &Metrics,
        readiness: Arc<Readiness>,
        replace_unguarded: bool,
    ) -> Supervisor {
        let source: Arc<str> = Arc::from(config.id());
        let expired = super::past_max_stale(&config, status.get().stale_since);
        Supervisor {
            metrics: SourceMetrics::new(metrics, &source),
            names: Arc::new(super::names_of(&config)),
            config,
            source,
            connector,
            catalog,
            status,
            readiness,
            replace_unguarded: AtomicBool::new(replace_unguarded),
            expired: AtomicBool::new(expired),
            drop_at: Mutex::new(None),
        }
    }

    pub async fn run(self, stop: watch::Receiver<bool>) {
        let span = tracing::info_span!(
            "source",
            source.id = %self.source,
            source.type = self.config.type_name()
        );
        self.supervise(stop).instrument(span).await
    }

    fn meta(&self, stale_since: Option<chrono::DateTime<Utc>>) -> SourceMeta {
        super::meta_of(
            &self.config,
            self.names.clone(),
            stale_since,
            self.expired.load(Ordering::Relaxed),
        )
    }

    async fn supervise(self, mut stop: watch::Receiver<bool>) {
        // A view loaded from the store, or kept across a configuration change, stays
        // stale until this source delivers its own.
        let stale_since = self.status.get().stale_since;
        self.catalog
            .set_source(&self.source, self.meta(stale_since))
            .await;
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_MAX);
        let mut attempts: u64 = 0;
        loop {
            if attempts > 0 {
                self.status.update(|s| s.reconnects += 1);
            }
            attempts += 1;
            self.set_state(SourceState::Connecting);
            let connected_at = Instant::now();
            let ended = tokio::select! {
                ended = self.connection() => ended,
                _ = stop.wait_for(|stop| *stop) => Ended::Stopped,
            };
            let error = match ended {
                Ended::Stopped => return,
                Ended::Failed(error) => error,
            };
            if connected_at.elapsed() >= HEALTHY_RESET {
                backoff.reset();
            }
            self.fail(&error).await;
            // A source that never answered counts as settled for readiness: it is `down`
            // and Switchboard serves without it.
            self.readiness.settle(&self.source);
            let delay = backoff.next_delay();
            tracing::info!(retry_in = ?delay, "Reconnecting after backoff");
            if self.wait_out(delay, &mut stop).await {
                return;
            }
        }
    }

    /// One connection: open the watch, take the full view, then apply deltas until the
    /// stream fails.
    async fn connection(&self) -> Ended {
        let mut stream = match self.connector.watch().await {
            Ok(stream) => stream,
            Err(error) => return Ended::Failed(error),
        };
        self.status
            .update(|s| s.endpoint = self.connector.endpoint());
        // This connection's state, kept here so that each update does not read it back.
        let mut state = SourceState::Syncing;
        self.set_state(state);
        loop {
            let update = match stream.next().await {
                Some(Ok(update)) => update,
                Some(Err(error)) => return Ended::Failed(error),
                None => {
                    return Ended::Failed(ConnectorError::Connection(
                        "the source closed its stream".to_owned(),
                    ))
                }
            };
            match update {
                Update::Reset(instances) => {
                    let count = instances.len();
                    let was_expired = self.expired.swap(false, Ordering::Relaxed);
                    if self.replace_unguarded.swap(false, Ordering::Relaxed) || was_expired {
                        self.catalog
                            .replace_source(&self.source, instances, self.meta(None))
                            .await;
                    } else {
                        self.catalog
                            .apply_with_meta(
                                &self.source,
                                Update::Reset(instances),
                                self.meta(None),
                            )
                            .await;
                    }
                    self.synced();
                    self.status.update(|s| s.stale_since = None);
                    state = SourceState::Ready;
                    self.set_state(state);
                    self.readiness.settle(&self.source);
                    tracing::info!(instances = count, "Full view applied");
                }
                Update::Skipped { key, reason } => {
                    tracing::warn!(key = %key, reason = %reason, "Skipped a value the source holds");
                    self.metrics.skipped.inc();
                    self.status.update(|s| {
                        s.skipped += 1;
                        s.last_error = Some(LastError {
                            kind: "skipped",
                            message: format!("skipped `{key}`: {reason}"),
                            time: Utc::now(),
                        });
                    });
                    if state == SourceState::Ready {
                        state = SourceState::Degraded;
                        self.set_state(state);
                    }
                }
                delta => {
                    if state == SourceState::Syncing {
                        return Ended::Failed(ConnectorError::Protocol(
                            "the first update after connecting was not a full view".to_owned(),
                        ));
                    }
                    self.catalog.apply(&self.source, delta).await;
                    self.synced();
                }
            }
        }
    }

    fn synced(&self) {
        let now = Utc::now();
        self.status.update(|s| s.last_sync = Some(now));
        self.metrics
            .last_sync
            .set(now.timestamp_millis() as f64 / 1000.0);
    }

    /// Records a failure and keeps the source's data, flagged stale.
    async fn fail(&self, error: &ConnectorError) {
        tracing::warn!(error = %error, "Source failed; serving its last view as stale");
        self.metrics.errors.inc();
        let now = Utc::now();
        let newly_stale = self.status.update(|s| {
            s.last_error = Some(LastError {
                kind: error.kind(),
                message: error.to_string(),
                time: now,
            });
            s.endpoint = None;
            let newly = s.stale_since.is_none();
            if newly {
                s.stale_since = Some(now);
            }
            newly
        });
        if newly_stale {
            self.catalog
                .set_source(&self.source, self.meta(Some(now)))
                .await;
        }
        self.set_state(SourceState::Down);
    }

    /// Sleeps `delay`, ceasing to serve the source's data if `max_stale` runs out meanwhile.
    /// Returns true when asked to stop.
    async fn wait_out(&self, delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        let wake = Instant::now() + delay;
        loop {
            let drop_at = self.drop_deadline();
            let until = drop_at.map_or(wake, |at| at.min(wake));
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.wait_for(|stop| *stop) => return true,
            }
            if drop_at.is_some_and(|at| at <= Instant::now()) {
                tracing::warn!(
                    "Source stale longer than max_stale; no longer serving its instances"
                );
                self.expired.store(true, Ordering::Relaxed);
                let since = self.status.get().stale_since;
                self.catalog
                    .set_source(&self.source, self.meta(since))
                    .await;
            }
            if Instant::now() >= wake {
                return false;
            }
        }
    }

    /// When this source's stale data must go, if it has a `max_stale` and is stale.
    fn drop_deadline(&self) -> Option<Instant> {
        if self.expired.load(Ordering::Relaxed) {
            return None;
        }
        let max_stale = self.config.common.max_stale?;
        let since = self.status.get().stale_since?;
        let mut drop_at = self.drop_at.lock().unwrap_or_else(|e| e.into_inner());
        match *drop_at {
            Some((period, at)) if period == since => Some(at),
            _ => {
                // The wall clock is read once, for what passed before this supervisor
                // saw the view go stale (a view loaded from the store, say).
                let stale_for = (Utc::now() - since).to_std().unwrap_or_default();
                let at = Instant::now().checked_add(max_stale.saturating_sub(stale_for))?;
                *drop_at = Some((since, at));
                Some(at)
            }
        }
    }

    fn set_state(&self, state: SourceState) {
        let previous = self
            .status
            .update(|s| std::mem::replace(&mut s.state, state));
        if previous != state {
            tracing::info!(
                from = previous.as_str(),
                to = state.as_str(),
                "Source state changed"
            );
        }
        self.metrics.show_state(state);
    }
}

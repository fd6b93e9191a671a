//! Logging setup and the Prometheus metrics every part of the server reports into.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Libraries whose INFO level is per-event chatter (the Nacos SDK logs every push with
/// all its instances), held at WARN unless the filter names them itself.
const QUIETED: &[(&str, &str)] = &[("nacos_sdk", "nacos_sdk=warn")];

/// Library code that logs credentials at DEBUG, held at INFO whatever the filter says:
/// the Nacos SDK's HTTP login logs the password it posts.
const LEAKS_SECRETS: &[&str] = &["nacos_sdk::api::plugin::auth=info"];

/// Installs the global tracing subscriber. `RUST_LOG` wins over the configured filter.
pub fn init_tracing(filter: &str) {
    let filter = env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env().ok(),
        filter,
    );
    // A second call (tests start several servers in one process) keeps the first subscriber.
    // Colours only for people at a terminal, not for log files and collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .try_init();
}

/// The filter from `RUST_LOG` when set, else the configured one with [`QUIETED`];
/// either way with [`LEAKS_SECRETS`] added last, so that it wins.
fn env_filter(
    from_env: Option<tracing_subscriber::EnvFilter>,
    configured: &str,
) -> tracing_subscriber::EnvFilter {
    let mut filter =
        from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(quieted(configured)));
    for directive in LEAKS_SECRETS {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    filter
}

/// `filter` plus the [`QUIETED`] directives it does not override.
fn quieted(filter: &str) -> String {
    let mut directives = filter.to_owned();
    for (target, directive) in QUIETED {
        if !filter.contains(target) {
            directives.push(',');
            directives.push_str(directive);
        }
    }
    directives
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub method: &'static str,
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceStateLabels {
    pub source: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    pub sync: String,
}

/// A request access control refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthFailureLabels {
    /// `missing`, `invalid`, `expired` (401s), `forbidden` (403s) or `revoked` (a
    /// request or stream cut when its token was revoked or expired).
    pub reason: &'static str,
}

/// A request or connection refused by a limit: which limit (`connections`, `watches`)
/// and whose share was full (`client`, `total`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub limit: &'static str,
    pub scope: &'static str,
}

/// A health check's run: the kind of check and the status it gave.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub kind: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckKindLabels {
    pub kind: &'static str,
}

/// What the health-check runner reports.
pub struct HealthMetrics {
    pub checks: Family<CheckLabels, Counter>,
    pub failures: Family<CheckKindLabels, Counter>,
    pub latency: Family<CheckKindLabels, Histogram>,
    pub deregistrations: Counter,
}

impl HealthMetrics {
    fn register(registry: &mut Registry) -> HealthMetrics {
        let metrics = HealthMetrics {
            checks: Family::default(),
            failures: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            deregistrations: Counter::default(),
        };
        registry.register(
            "health_checks",
            "Health checks run, by kind (http, tcp) and resulting status",
            metrics.checks.clone(),
        );
        registry.register(
            "health_check_failures",
            "Health checks that ran critical, by kind",
            metrics.failures.clone(),
        );
        registry.register(
            "health_check_duration_seconds",
            "How long a health check took, by kind",
            metrics.latency.clone(),
        );
        registry.register(
            "health_deregistrations",
            "Native instances deregistered because a check stayed critical longer than its \
             deregister_critical_after",
            metrics.deregistrations.clone(),
        );
        metrics
    }

    /// Counts one check run of `kind` that gave `status` after `took`.
    pub fn ran(&self, kind: &'static str, status: &'static str, took: Duration) {
        let labels = CheckKindLabels { kind };
        self.checks
            .get_or_create(&CheckLabels { kind, status })
            .inc();
        if status == "critical" {
            self.failures.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// What every sync-back job reports, by job id.
#[derive(Default)]
pub struct SyncMetrics {
    pub writes: Family<SyncLabels, Counter>,
    pub deletes: Family<SyncLabels, Counter>,
    pub errors: Family<SyncLabels, Counter>,
    pub lag_seconds: Family<SyncLabels, Gauge<f64, AtomicU64>>,
    pub ledger_instances: Family<SyncLabels, Gauge>,
    pub deletes_paused: Family<SyncLabels, Gauge>,
}

impl SyncMetrics {
    fn register(registry: &mut Registry) -> SyncMetrics {
        let metrics = SyncMetrics::default();
        registry.register(
            "sync_writes",
            "Instances a sync job wrote into its target",
            metrics.writes.clone(),
        );
        registry.register(
            "sync_deletes",
            "Instances a sync job deleted from its target",
            metrics.deletes.clone(),
        );
        registry.register(
            "sync_errors",
            "Writes and deletes a sync job's target refused or failed",
            metrics.errors.clone(),
        );
        registry.register(
            "sync_lag_seconds",
            "Age of a sync job's oldest change not yet written",
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "sync_ledger_instances",
            "Instances a sync job has written and keeps in its ledger",
            metrics.ledger_instances.clone(),
        );
        registry.register(
            "sync_deletes_paused",
            "1 while a sync job holds back deletes because a source is down or stale",
            metrics.deletes_paused.clone(),
        );
        metrics
    }

    /// Drops a deleted job's series.
    pub fn forget(&self, sync: &str) {
        let labels = SyncLabels {
            sync: sync.to_owned(),
        };
        self.writes.remove(&labels);
        self.deletes.remove(&labels);
        self.errors.remove(&labels);
        self.lag_seconds.remove(&labels);
        self.ledger_instances.remove(&labels);
        self.deletes_paused.remove(&labels);
    }
}

/// All metrics of one server instance (tests run several servers in one process, so this
/// is owned, not global).
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_latency: Family<LatencyLabels, Histogram>,
    pub source_instances: Family<SourceLabels, Gauge>,
    pub catalog_services: Gauge,
    pub catalog_index: Gauge<u64, AtomicU64>,
    pub registrations: Counter,
    pub deregistrations: Counter,
    pub heartbeats: Counter,
    pub expiries: Counter,
    pub revivals: Counter,
    pub auto_deregistrations: Counter,
    pub blocking_queries: ParkedGauge,
    /// 1 for a source's current state, 0 for the others.
    pub source_state: Family<SourceStateLabels, Gauge>,
    pub source_errors: Family<SourceLabels, Counter>,
    pub source_skipped: Family<SourceLabels, Counter>,
    pub source_last_sync: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    pub sync: SyncMetrics,
    pub health: HealthMetrics,
    /// Open HTTP connections.
    pub connections: ParkedGauge,
    /// Open SSE watch streams.
    pub watch_streams: ParkedGauge,
    /// Connections and watches refused by `api.max_*` limits.
    pub refusals: Family<RefusalLabels, Counter>,
    /// Requests access control refused, by reason.
    pub auth_failures: Family<AuthFailureLabels, Counter>,
    /// Metadata keys the Consul door left out because Consul would refuse them.
    pub consul_meta_dropped: Counter,
}

/// Counts requests currently parked in a blocking wait.
#[derive(Clone, Default)]
pub struct ParkedGauge(Gauge);

impl ParkedGauge {
    /// Counts one parked request until the returned guard drops.
    pub fn park(&self) -> Parked {
        self.0.inc();
        Parked(self.0.clone())
    }

    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// Un-counts a parked request on drop (also when its connection is dropped).
pub struct Parked(Gauge);

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Counts one refusal by `limit` (`connections`, `watches`).
    pub fn refused(&self, limit: &'static str, scope: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels { limit, scope })
            .inc();
    }

    /// Counts one request access control refused.
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&AuthFailureLabels { reason })
            .inc();
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let http_requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status",
            http_requests.clone(),
        );
        let http_latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
                5.0, 30.0, 300.0,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route (blocking queries include their wait)",
            http_latency.clone(),
        );
        let source_instances = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "source_instances",
            "Instances each source contributes to the catalog",
            source_instances.clone(),
        );
        let catalog_services = Gauge::default();
        registry.register(
            "catalog_services",
            "Services with at least one instance",
            catalog_services.clone(),
        );
        let catalog_index = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "catalog_index",
            "Latest catalog index",
            catalog_index.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let registrations = counter(
            &mut registry,
            "registrations",
            "Native registrations accepted",
        );
        let deregistrations = counter(
            &mut registry,
            "deregistrations",
            "Native instances deregistered",
        );
        let heartbeats = counter(&mut registry, "heartbeats", "Native heartbeats accepted");
        let expiries = counter(
            &mut registry,
            "expiries",
            "Native instances marked offline by TTL expiry",
        );
        let revivals = counter(
            &mut registry,
            "revivals",
            "Expired native instances revived by a heartbeat",
        );
        let auto_deregistrations = counter(
            &mut registry,
            "auto_deregistrations",
            "Native instances deleted after deregister_after offline",
        );
        let source_state = Family::<SourceStateLabels, Gauge>::default();
        registry.register(
            "source_state",
            "1 for each source's current state (connecting, syncing, ready, degraded, down, disconnected)",
            source_state.clone(),
        );
        let source_errors = Family::<SourceLabels, Counter>::default();
        registry.register(
            "source_errors",
            "Connection and stream failures per source",
            source_errors.clone(),
        );
        let source_skipped = Family::<SourceLabels, Counter>::default();
        registry.register(
            "source_skipped",
            "Values a source holds that could not be used and were skipped",
            source_skipped.clone(),
        );
        let source_last_sync = Family::<SourceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "source_last_sync_timestamp_seconds",
            "When each source last delivered a change or a full view",
            source_last_sync.clone(),
        );
        let blocking_queries = ParkedGauge::default();
        registry.register(
            "blocking_queries_waiting",
            "Blocking queries currently waiting for a change",
            blocking_queries.0.clone(),
        );
        let connections = ParkedGauge::default();
        registry.register(
            "http_connections_open",
            "Open HTTP connections",
            connections.0.clone(),
        );
        let watch_streams = ParkedGauge::default();
        registry.register(
            "watch_streams_open",
            "Open SSE watch streams (GET /api/v1/watch)",
            watch_streams.0.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "limit_refusals",
            "Connections and watches refused by a limit, by limit and by whose share was \
             full (client or total)",
            refusals.clone(),
        );
        let auth_failures = Family::<AuthFailureLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Requests refused by access control, by reason (missing, invalid, expired, \
             forbidden, revoked)",
            auth_failures.clone(),
        );
        let sync = SyncMetrics::register(&mut registry);
        let consul_meta_dropped = counter(
            &mut registry,
            "consul_meta_dropped",
            "Instance metadata keys left out of Consul API answers because Consul would refuse them (counted per encoding)",
        );
        let health = HealthMetrics::register(&mut registry);
        Self {
            consul_meta_dropped,
            connections,
            watch_streams,
            refusals,
            auth_failures,
            sync,
            health,
            source_state,
            source_errors,
            source_skipped,
            source_last_sync,
            blocking_queries,
            registry,
            http_requests,
            http_latency,
            source_instances,
            catalog_services,
            catalog_index,
            registrations,
            deregistrations,
            heartbeats,
            expiries,
            revivals,
            auto_deregistrations,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::EnvFilter;

    use super::{env_filter, quieted};

    #[test]
    fn chatty_libraries_are_quieted_unless_named() {
        assert_eq!(quieted("info"), "info,nacos_sdk=warn");
        assert_eq!(quieted("debug,nacos_sdk=info"), "debug,nacos_sdk=info");
    }

    /// What `filter` lets through of a DEBUG line from the SDK's login and one from
    /// elsewhere in the SDK.
    fn logged(filter: EnvFilter) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            const LOGIN: &str = "nacos_sdk::api::plugin::auth::auth_by_http";
            tracing::debug!(target: LOGIN, "password=hunter2");
            tracing::debug!(target: "nacos_sdk::naming", "a push");
        });
        let text = out.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_nacos_login_never_logs_its_password_even_at_debug() {
        let unguarded = logged(EnvFilter::new("debug"));
        assert!(
            unguarded.contains("hunter2"),
            "the probe line is seen: {unguarded}"
        );
        let configured = logged(env_filter(None, "debug,nacos_sdk=debug"));
        assert!(configured.contains("a push"), "{configured}");
        assert!(!configured.contains("hunter2"), "{configured}");
        let from_env = EnvFilter::new("nacos_sdk::api::plugin::auth=trace,debug");
        let from_env = logged(env_filter(Some(from_env), "info"));
        assert!(from_env.contains("a push"), "{from_env}");
        assert!(!from_env.contains("hunter2"), "{from_env}");
    }
}

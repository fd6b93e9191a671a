//! Supervisor behaviour against a scripted connector: fail static, atomic resets on
//! reconnect, `max_stale`, readiness, and the first-update-is-a-full-view rule.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_connectors::{
    BoxUpdateStream, Connector, ConnectorError, Instance, ServiceKey, SourceConfig, Update,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::status::{SourceState, SourceStatus, StatusCell};
use super::supervisor::Supervisor;
use super::Readiness;
use crate::catalog::Catalog;
use crate::telemetry::Metrics;

type Session = mpsc::UnboundedSender<Result<Update, ConnectorError>>;

/// Each `watch()` takes the next scripted session; with none left the source is down.
#[derive(Default)]
struct Scripted {
    sessions: Mutex<VecDeque<UnboundedReceiverStream<Result<Update, ConnectorError>>>>,
}

impl Scripted {
    /// Queues a session and returns the sender that feeds it.
    fn session(&self) -> Session {
        let (tx, rx) = mpsc::unbounded_channel();
        self.sessions
            .lock()
            .unwrap()
            .push_back(UnboundedReceiverStream::new(rx));
        tx
    }
}

#[async_trait]
impl Connector for Scripted {
    async fn watch(&self) -> Result<BoxUpdateStream, ConnectorError> {
        match self.sessions.lock().unwrap().pop_front() {
            Some(stream) => Ok(Box::pin(stream)),
            None => Err(ConnectorError::Connection("connection refused".into())),
        }
    }
}

fn config(extra: &str) -> SourceConfig {
    let text =
        format!(r#"{{"id": "fake", "type": "etcd", "endpoints": ["http://127.0.0.1:1"]{extra}}}"#);
    serde_json::from_str(&text).unwrap()
}

fn instance(id: &str, port: u16) -> Instance {
    Instance::new(id, ServiceKey::named("svc"), "10.0.0.1", port)
}

struct Harness {
    catalog: Catalog,
    status: Arc<StatusCell>,
    readiness: Arc<Readiness>,
    connector: Arc<Scripted>,
    _stop: watch::Sender<bool>,
}

fn start(config: SourceConfig) -> Harness {
    let metrics = Arc::new(Metrics::new());
    let catalog = Catalog::start(metrics.clone());
    let connector = Arc::new(Scripted::default());
    let status = Arc::new(StatusCell::new(SourceStatus::initial(&config)));
    let readiness = Arc::new(Readiness::default());
    readiness.wait_for("fake");
    let (stop, stopped) = watch::channel(false);
    let supervisor = Supervisor::new(
        config,
        connector.clone(),
        catalog.clone(),
        status.clone(),
        &metrics,
        readiness.clone(),
        false,
    );
    tokio::spawn(supervisor.run(stopped));
    Harness {
        catalog,
        status,
        readiness,
        connector,
        _stop: stop,
    }
}

/// Polls until `check` holds; time is paused, so waiting costs no real time.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw: {what}");
}

fn served(h: &Harness) -> Vec<(String, bool)> {
    let snapshot = h.catalog.snapshot();
    snapshot
        .service("public", "DEFAULT", "svc")
        .map(|view| view.instances().map(|i| (i.id.clone(), i.stale)).collect())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_failed_source_keeps_serving_its_last_view_as_stale() {
    let h = start(config(""));
    let session = h.connector.session();
    session
        .send(Ok(Update::Reset(vec![instance("a1", 1)])))
        .unwrap();
    until("ready", || h.status.get().state == SourceState::Ready).await;
    assert!(h.readiness.is_ready());
    assert_eq!(served(&h), vec![("a1".to_owned(), false)]);

    session
        .send(Err(ConnectorError::Connection("reset by peer".into())))
        .unwrap();
    until("down", || h.status.get().state == SourceState::Down).await;
    until("stale", || served(&h) == vec![("a1".to_owned(), true)]).await;
    let status = h.status.get();
    assert!(status.stale_since.is_some());
    assert!(status.last_error.unwrap().message.contains("reset by peer"));
    // Retries keep failing (no session queued): still served, still stale.
    until("a reconnect attempt", || h.status.get().reconnects >= 2).await;
    assert_eq!(served(&h), vec![("a1".to_owned(), true)]);
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_replaces_the_partition_with_the_new_full_view() {
    let h = start(config(""));
    let first = h.connector.session();
    first
        .send(Ok(Update::Reset(vec![
            instance("a1", 1),
            instance("a2", 2),
        ])))
        .unwrap();
    until("ready", || h.status.get().state == SourceState::Ready).await;
    drop(first);
    until("stale", || served(&h).iter().all(|(_, stale)| *stale)).await;

    let second = h.connector.session();
    second
        .send(Ok(Update::Reset(vec![
            instance("a2", 2),
            instance("a3", 3),
        ])))
        .unwrap();
    until("fresh again", || {
        served(&h) == vec![("a2".to_owned(), false), ("a3".to_owned(), false)]
    })
    .await;
    assert!(h.status.get().stale_since.is_none());
    // Deltas after the reset apply as usual.
    second
        .send(Ok(Update::Upsert(vec![instance("a4", 4)])))
        .unwrap();
    until("delta applied", || served(&h).len() == 3).await;
}

#[tokio::test(start_paused = true)]
async fn max_stale_stops_serving_a_down_sources_instances() {
    const MAX_STALE: Duration = Duration::from_secs(2);
    let h = start(config(r#", "max_stale": "2s""#));
    let session = h.connector.session();
    session
        .send(Ok(Update::Reset(vec![instance("a1", 1)])))
        .unwrap();
    until("ready", || h.status.get().state == SourceState::Ready).await;
    let went_down = Instant::now();
    drop(session);
    until("stale", || served(&h) == vec![("a1".to_owned(), true)]).await;
    // Served, stale, for the whole of `max_stale`, through several backoff rounds... (The
    // margin is for real time: the deadline takes off the wall-clock time since
    // `stale_since`, which a paused clock does not stop.)
    tokio::time::sleep_until(went_down + MAX_STALE - Duration::from_millis(100)).await;
    assert_eq!(served(&h), vec![("a1".to_owned(), true)]);
    assert!(h.status.get().reconnects >= 2, "{:?}", h.status.get());
    // ...and dropped once it has run out, not a backoff later.
    until("no longer served", || served(&h).is_empty()).await;
    let dropped_after = went_down.elapsed();
    assert!(
        dropped_after < MAX_STALE + Duration::from_millis(100),
        "dropped {dropped_after:?} after going down"
    );
    assert_eq!(h.status.get().state, SourceState::Down);
    assert!(
        h.status.get().stale_since.is_some(),
        "still stale, not forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn a_source_back_after_max_stale_serves_its_new_view_without_the_old_held() {
    let h = start(config(r#", "max_stale": "2s""#));
    let first = h.connector.session();
    first
        .send(Ok(Update::Reset(vec![instance("a1", 1)])))
        .unwrap();
    until("ready", || h.status.get().state == SourceState::Ready).await;
    drop(first);
    until("no longer served", || served(&h).is_empty()).await;

    // Back, without `svc`: the wipe-out guard must not bring the dropped view back.
    let second = h.connector.session();
    let other = Instance::new("b1", ServiceKey::named("other"), "10.0.0.2", 1);
    second.send(Ok(Update::Reset(vec![other]))).unwrap();
    until("ready again", || h.status.get().state == SourceState::Ready).await;
    assert!(served(&h).is_empty(), "{:?}", served(&h));
    assert!(h
        .catalog
        .snapshot()
        .service("public", "DEFAULT", "other")
        .is_some());
}

#[tokio::test(start_paused = true)]
async fn a_source_that_never_answers_settles_readiness_as_down() {
    let h = start(config(""));
    until("down", || h.status.get().state == SourceState::Down).await;
    assert!(h.readiness.is_ready());
    assert!(served(&h).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_delta_before_the_full_view_is_a_protocol_error() {
    let h = start(config(""));
    let session = h.connector.session();
    session
        .send(Ok(Update::Upsert(vec![instance("a1", 1)])))
        .unwrap();
    until("down", || h.status.get().state == SourceState::Down).await;
    let message = h.status.get().last_error.unwrap().message;
    assert!(message.contains("full view"), "{message}");
    assert!(served(&h).is_empty());
}

#[tokio::test(start_paused = true)]
async fn skipped_values_degrade_the_source_and_name_the_key() {
    let h = start(config(""));
    let session = h.connector.session();
    session
        .send(Ok(Update::Reset(vec![instance("a1", 1)])))
        .unwrap();
    session
        .send(Ok(Update::Skipped {
            key: "/services/svc/bad".into(),
            reason: "not JSON nor host:port".into(),
        }))
        .unwrap();
    until("degraded", || h.status.get().state == SourceState::Degraded).await;
    let status = h.status.get();
    assert_eq!(status.skipped, 1);
    assert!(status
        .last_error
        .unwrap()
        .message
        .contains("/services/svc/bad"));
    assert_eq!(served(&h), vec![("a1".to_owned(), false)]);
}

#[tokio::test(start_paused = true)]
async fn a_reset_that_empties_a_service_is_held_for_empty_confirm() {
    const EMPTY_CONFIRM: Duration = Duration::from_secs(5);
    let h = start(config(r#", "empty_confirm": "5s""#));
    let session = h.connector.session();
    session
        .send(Ok(Update::Reset(vec![instance("a1", 1)])))
        .unwrap();
    until("ready", || served(&h).len() == 1).await;
    let emptied_at = Instant::now();
    session.send(Ok(Update::Reset(vec![]))).unwrap();
    // Held: still served for a while...
    until("hold counted", || {
        h.catalog
            .snapshot()
            .sources()
            .get("fake")
            .is_some_and(|c| c.guard_holds == 1)
    })
    .await;
    assert_eq!(served(&h).len(), 1);
    // ...for the whole confirmation time (the clock is paused, so this is exact)...
    tokio::time::sleep_until(emptied_at + EMPTY_CONFIRM - Duration::from_millis(1)).await;
    assert_eq!(served(&h).len(), 1);
    // ...and applied when the confirmation time has passed with no instances back.
    until("emptied", || served(&h).is_empty()).await;
    let emptied_after = emptied_at.elapsed();
    assert!(
        emptied_after < EMPTY_CONFIRM + Duration::from_millis(100),
        "applied {emptied_after:?} after the empty view"
    );
}

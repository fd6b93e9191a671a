//! Group commit when the store refuses a write: the refused batch, and every change
//! decided on top of it, are taken back from memory; nothing reaches the catalog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_connectors::ServiceKey;

use super::*;
use crate::store::{InstanceOp, RedbStore};

/// A store whose next commit can be held until released, and made to fail.
struct FlakyStore {
    inner: RedbStore,
    fail: AtomicBool,
    /// (tell the test the commit started, wait for the test's go-ahead)
    hold: Mutex<Option<(std_mpsc::Sender<()>, std_mpsc::Receiver<()>)>>,
}

impl InstanceStore for FlakyStore {
    fn load(&self) -> Result<Vec<StoredInstance>, StoreError> {
        self.inner.load()
    }

    fn commit(&self, ops: &[InstanceOp]) -> Result<(), StoreError> {
        let hold = self.hold.lock().unwrap().take();
        if let Some((started, go)) = hold {
            started.send(()).unwrap();
            go.recv().unwrap();
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Refused("disk full".into()));
        }
        self.inner.commit(ops)
    }

    fn put_heartbeats(&self, beats: &[(String, i64)]) -> Result<(), StoreError> {
        self.inner.put_heartbeats(beats)
    }
}

fn request(id: &str, port: i64) -> RegisterRequest {
    RegisterRequest {
        id: Some(id.into()),
        service: Some("svc".into()),
        host: Some("10.0.0.1".into()),
        port: Some(port),
        ..RegisterRequest::default()
    }
}

fn served_ids(catalog: &Catalog) -> Vec<String> {
    let snapshot = catalog.snapshot();
    let view = snapshot.service("public", "DEFAULT", "svc");
    let mut ids: Vec<String> = (view.into_iter().flat_map(|view| view.instances()))
        .map(|i| i.id.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_taken_back_with_every_change_decided_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore {
        inner: RedbStore::open(dir.path()).unwrap(),
        fail: AtomicBool::new(false),
        hold: Mutex::new(None),
    });
    let metrics = Arc::new(Metrics::new());
    let catalog = Catalog::start(metrics.clone());
    let registry = Registry::open(
        store.clone(),
        catalog.clone(),
        RegistryConfig::default(),
        metrics,
    )
    .await
    .unwrap();
    registry.register(request("a", 1)).await.unwrap();

    // The next commit (holding `b`) waits; `a`'s removal and `c` are decided meanwhile.
    let (started_tx, started) = std_mpsc::channel();
    let (go, go_rx) = std_mpsc::channel();
    *store.hold.lock().unwrap() = Some((started_tx, go_rx));
    store.fail.store(true, Ordering::SeqCst);
    let b = tokio::spawn({
        let registry = registry.clone();
        async move { registry.register(request("b", 2)).await }
    });
    tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the commit holding b started");
    let gone_a = tokio::spawn({
        let registry = registry.clone();
        async move { registry.deregister("a").await }
    });
    let c = tokio::spawn({
        let registry = registry.clone();
        async move { registry.register(request("c", 3)).await }
    });
    // Both are decided (in the table) before the refused commit ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while registry.table.entries.contains_key("a") || !registry.table.entries.contains_key("c") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a and c were never decided"
        );
        tokio::task::yield_now().await;
    }
    go.send(()).unwrap();

    assert!(matches!(b.await.unwrap(), Err(RegistryError::Store(_))));
    assert!(matches!(
        gone_a.await.unwrap(),
        Err(RegistryError::Store(_))
    ));
    assert!(matches!(c.await.unwrap(), Err(RegistryError::Store(_))));
    assert!(
        registry.get("a").await.is_ok(),
        "a's removal was taken back"
    );
    assert!(matches!(
        registry.get("b").await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        registry.get("c").await,
        Err(RegistryError::NotFound(_))
    ));
    assert_eq!(served_ids(&catalog), ["a"]);

    // The endpoint index was taken back too: a registration at b's endpoint is new.
    store.fail.store(false, Ordering::SeqCst);
    let (_, created) = registry.register(request("d", 2)).await.unwrap();
    assert!(created);
    assert_eq!(served_ids(&catalog), ["a", "d"]);
    let mut stored: Vec<String> = (store.load().unwrap().into_iter())
        .map(|record| record.instance.id)
        .collect();
    stored.sort();
    assert_eq!(stored, ["a", "d"]);
}

#[tokio::test]
async fn after_close_changes_are_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let catalog = Catalog::start(metrics.clone());
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let registry = Registry::open(store, catalog.clone(), RegistryConfig::default(), metrics)
        .await
        .unwrap();
    registry.register(request("a", 1)).await.unwrap();
    registry.close().await;
    assert!(matches!(
        registry.register(request("b", 2)).await,
        Err(RegistryError::Store(StoreError::Closed))
    ));
    assert!(matches!(
        registry.remove_service(&ServiceKey::named("svc")).await,
        Err(RegistryError::Store(StoreError::Closed))
    ));
    assert!(registry.get("a").await.is_ok());
    assert_eq!(served_ids(&catalog), ["a"]);
}

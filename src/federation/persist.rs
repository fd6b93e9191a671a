//! Saving every source's last view for warm restarts: asynchronously and coalesced. About
//! once a second the catalog hands over the views that changed (pointers only), and they
//! are encoded and written on a blocking thread, so neither the catalog writer nor any
//! read waits for the disk.

use std::time::Duration;

use tokio::sync::mpsc;

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::store::{view_key, Blocking, SavedView, SourceStore, StoreError, ViewChanges};

/// How often changed views are written: changes within it are coalesced.
const SAVE_EVERY: Duration = Duration::from_secs(1);

enum Request {
    /// Removes a source's saved view (disconnected or deleted).
    Forget(String),
    /// Saves what changed, then ends the task (and its hold on the store).
    Stop,
}

/// A handle to the task that saves views.
pub struct ViewSaver {
    requests: mpsc::UnboundedSender<Request>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ViewSaver {
    /// Starts the saving task; it ends on [`ViewSaver::stop`] or when the handle drops.
    pub fn start(catalog: Catalog, store: Arc<dyn SourceStore>) -> ViewSaver {
        let (requests, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(catalog, store, receiver));
        ViewSaver {
            requests,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Removes `source`'s saved view. Ordered after any save already under way, so a
    /// view taken before the source was dropped cannot outlive this.
    pub fn forget(&self, source: &str) {
        let _ = self.requests.send(Request::Forget(source.to_owned()));
    }

    /// Writes every changed view and waits until the task has ended, so the store can be
    /// opened again by the next start (at shutdown).
    pub async fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            let _ = self.requests.send(Request::Stop);
            let _ = task.await;
        }
    }
}

async fn run(
    catalog: Catalog,
    store: Arc<dyn SourceStore>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut forget = Vec::new();
        let mut stopping = false;
        let mut take = |request: Option<Request>| match request {
            Some(Request::Forget(source)) => forget.push(source),
            Some(Request::Stop) | None => stopping = true,
        };
        tokio::select! {
            _ = tick.tick() => {}
            request = requests.recv() => take(request),
        }
        // Every request already made counts before the views are taken, so a removal
        // asked for earlier never erases a view saved later (they share a transaction,
        // removals first).
        while let Ok(request) = requests.try_recv() {
            take(Some(request));
        }
        let views = catalog.export_changed().await;
        if !views.is_empty() || !forget.is_empty() {
            let saved = store
                .blocking(move |store| save(store, views, &forget))
                .await;
            if let Err(err) = saved {
                tracing::error!(error = %err, "Cannot save source views; they are saved again on their next change");
            }
        }
        if stopping {
            return;
        }
    }
}

/// Encoded instances written per transaction. Saving a large source's first view in one
/// piece would hold all of it, encoded, in memory at once (about 300 bytes an instance);
/// in pieces the cost stays this small whatever the catalog's size.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Removes `forget`'s views, then writes the changed services, a chunk per transaction.
fn save(
    store: &dyn SourceStore,
    views: Vec<(Arc<str>, SavedView)>,
    forget: &[String],
) -> Result<(), StoreError> {
    let mut chunk: Vec<ViewChanges> = Vec::new();
    let mut bytes = 0;
    let mut forget = forget;
    for (source, view) in views {
        let changes = || ViewChanges {
            source: source.to_string(),
            stale_since: view.stale_since,
            services: Vec::new(),
        };
        let mut current = changes();
        for saved in &view.services {
            let key = view_key(&source, &saved.service);
            if saved.instances.is_empty() {
                current.services.push((key, None));
                continue;
            }
            // Instances always encode; should one not, its service keeps what was saved
            // before rather than being saved empty.
            match serde_json::to_vec(&saved.instances) {
                Ok(encoded) => {
                    bytes += encoded.len();
                    current.services.push((key, Some(encoded)));
                }
                Err(err) => {
                    tracing::error!(source.id = %source, error = %err, "Cannot encode a service's instances");
                }
            }
            if bytes >= CHUNK_BYTES {
                chunk.push(std::mem::replace(&mut current, changes()));
                store.save_views(&chunk, forget)?;
                (chunk, bytes, forget) = (Vec::new(), 0, &[]);
            }
        }
        chunk.push(current);
    }
    store.save_views(&chunk, forget)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchboard_connectors::{Instance, ServiceKey};

    use super::*;
    use crate::store::{RedbStore, SavedService};

    #[test]
    fn a_view_larger_than_a_chunk_is_saved_whole_and_removals_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let view = |services: usize| SavedView {
            stale_since: None,
            services: (0..services)
                .map(|s| {
                    let service = ServiceKey::named(format!("svc-{s}"));
                    let instances = (0..100)
                        .map(|i| {
                            let id = format!("svc-{s}-{i}");
                            Arc::new(Instance::new(id, service.clone(), "10.0.0.1", 80))
                        })
                        .collect();
                    SavedService { service, instances }
                })
                .collect(),
        };
        save(&store, vec![(Arc::from("a"), view(2))], &[]).unwrap();
        // About 3 MB encoded: several transactions. `a` is removed before any of them.
        let views = vec![(Arc::from("b"), view(100))];
        save(&store, views, &["a".to_owned()]).unwrap();
        assert!(store.view("a").unwrap().is_none());
        let saved = store.view("b").unwrap().unwrap();
        assert_eq!(saved.services.len(), 100);
        assert!(saved.services.iter().all(|s| s.instances.len() == 100));
    }
}

//! Saving every source's last view for warm restarts: asynchronously and coalesced. About
//! once a second the catalog hands over the views that changed (pointers only), and they
//! are encoded and written on a blocking thread, so neither the catalog writer nor any
//! read waits for the disk.

use std::time::Duration;

use tokio::sync::mpsc;

use std::sync::Arc;

use super::store::{view_key, SourceStore, ViewChanges};
use crate::catalog::{Catalog, SavedView};

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
    pub fn start(catalog: Catalog, store: SourceStore) -> ViewSaver {
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

async fn run(catalog: Catalog, store: SourceStore, mut requests: mpsc::UnboundedReceiver<Request>) {
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
        if views.is_empty() && forget.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let saved = store
            .blocking(move |store| store.save_views(&encode(views), &forget))
            .await;
        if let Err(err) = saved {
            tracing::error!(error = %err, "Cannot save source views; they are saved again on their next change");
        }
        if stopping {
            return;
        }
    }
}

/// Encodes each changed service's instances (a gone service has none: its record goes).
fn encode(views: Vec<(Arc<str>, SavedView)>) -> Vec<ViewChanges> {
    views
        .into_iter()
        .map(|(source, view)| ViewChanges {
            services: view
                .services
                .iter()
                .filter_map(|saved| {
                    let key = view_key(&source, &saved.service);
                    if saved.instances.is_empty() {
                        return Some((key, None));
                    }
                    // Instances always encode; should one not, its service keeps what was
                    // saved before rather than being saved empty.
                    match serde_json::to_vec(&saved.instances) {
                        Ok(bytes) => Some((key, Some(bytes))),
                        Err(err) => {
                            tracing::error!(source.id = %source, error = %err, "Cannot encode a service's instances");
                            None
                        }
                    }
                })
                .collect(),
            source: source.to_string(),
            stale_since: view.stale_since,
        })
        .collect()
}

//! Saving every source's last view for warm restarts: asynchronously and coalesced. About
//! once a second the catalog hands over the views that changed (pointers only), and they
//! are encoded and written on a blocking thread, so neither the catalog writer nor any
//! read waits for the disk.

use std::time::Duration;

use tokio::sync::mpsc;

use super::store::SourceStore;
use crate::catalog::Catalog;

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
        tokio::select! {
            _ = tick.tick() => {}
            request = requests.recv() => match request {
                Some(Request::Forget(source)) => forget.push(source),
                Some(Request::Stop) | None => stopping = true,
            },
        }
        let views = if forget.is_empty() {
            catalog.export_changed().await
        } else {
            Vec::new()
        };
        if views.is_empty() && forget.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let saved = store
            .blocking(move |store| {
            let puts: Vec<(String, Vec<u8>)> = views
                .into_iter()
                .filter_map(|(source, view)| match serde_json::to_vec(&view) {
                    Ok(bytes) => Some((source.to_string(), bytes)),
                    Err(err) => {
                        tracing::error!(source.id = %source, error = %err, "Cannot encode a source's view");
                        None
                    }
                })
                .collect();
            store.save_views(&puts, &forget)
        })
        .await;
        if let Err(err) = saved {
            tracing::error!(error = %err, "Cannot save source views; they are saved again on their next change");
        }
        if stopping {
            return;
        }
    }
}

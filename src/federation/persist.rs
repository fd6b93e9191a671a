//! Saving every source's last view for warm restarts: asynchronously and coalesced. The
//! saver follows the catalog's change feed and keeps its own list of what changed in each
//! source's view; about once a second it takes those services from the catalog (pointers
//! only) and encodes and writes them on a blocking thread, so neither the catalog writer
//! nor any read waits for the disk.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchboard_connectors::ServiceKey;
use tokio::sync::{broadcast, mpsc};

use crate::catalog::{Catalog, Changes};
use crate::store::{view_key, Blocking, SavedView, SourceStore, StoreError, ViewChanges};
use crate::vocab::NATIVE_SOURCE;

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
    /// It follows the catalog's changes from now on, so start it before any source's view
    /// reaches the catalog.
    pub fn start(catalog: Catalog, store: Arc<dyn SourceStore>) -> ViewSaver {
        let (requests, receiver) = mpsc::unbounded_channel();
        let feed = catalog.changes();
        let task = tokio::spawn(run(catalog, feed, store, receiver));
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

/// What changed in one source's view since it was last saved.
enum Unsaved {
    /// These services (the source's own keys; none when only its staleness changed).
    Services(HashSet<ServiceKey>),
    /// Possibly anything (the saver fell behind the change feed): the whole view is
    /// written again in place of the saved one.
    Whole,
}

/// The saver's list of unsaved changes, by source.
#[derive(Default)]
struct Pending {
    sources: HashMap<Arc<str>, Unsaved>,
    /// The change feed ran ahead of the saver: every source is saved whole.
    lagged: bool,
}

impl Pending {
    fn note(&mut self, changes: &Changes) {
        for (source, changed) in &changes.sources {
            match self.sources.entry(source.clone()) {
                Entry::Vacant(vacant) => {
                    vacant.insert(Unsaved::Services(changed.clone()));
                }
                Entry::Occupied(mut occupied) => {
                    if let Unsaved::Services(services) = occupied.get_mut() {
                        services.extend(changed.iter().cloned());
                    }
                }
            }
        }
    }

    /// Notes what the feed gave; true when it has closed.
    fn follow(&mut self, changed: Result<Arc<Changes>, broadcast::error::RecvError>) -> bool {
        match changed {
            Ok(changes) => self.note(&changes),
            Err(broadcast::error::RecvError::Lagged(_)) => self.lagged = true,
            Err(broadcast::error::RecvError::Closed) => return true,
        }
        false
    }

    /// What to save now, by source (every source whole after a lag); the list starts
    /// again empty.
    fn drain(&mut self, catalog: &Catalog) -> Vec<(Arc<str>, Unsaved)> {
        if std::mem::take(&mut self.lagged) {
            for source in catalog.snapshot().sources().keys() {
                if source != NATIVE_SOURCE {
                    self.sources
                        .insert(Arc::from(source.as_str()), Unsaved::Whole);
                }
            }
        }
        self.sources.drain().collect()
    }
}

/// The views to write for `unsaved`, as the catalog holds them now, and the sources whose
/// saved view they replace whole. Reads the catalog under its read lock, so it runs on
/// the blocking thread that writes them.
fn views_of(
    catalog: &Catalog,
    unsaved: Vec<(Arc<str>, Unsaved)>,
) -> (Vec<(Arc<str>, SavedView)>, Vec<String>) {
    let mut views = Vec::new();
    let mut replaced = Vec::new();
    for (source, unsaved) in unsaved {
        let services = match &unsaved {
            Unsaved::Services(services) => Some(services),
            Unsaved::Whole => None,
        };
        // A source dropped since is not saved (its view is being forgotten).
        let Some(view) = catalog.source_view(&source, services) else {
            continue;
        };
        if matches!(unsaved, Unsaved::Whole) {
            replaced.push(source.to_string());
        }
        views.push((source, view));
    }
    (views, replaced)
}

async fn run(
    catalog: Catalog,
    mut feed: broadcast::Receiver<Arc<Changes>>,
    store: Arc<dyn SourceStore>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = Pending::default();
    let mut forget = Vec::new();
    let mut stopping = false;
    loop {
        // A tick or a request saves now; a change is only noted.
        let save_now = tokio::select! {
            _ = tick.tick() => true,
            request = requests.recv() => {
                take(request, &mut forget, &mut stopping);
                true
            }
            changed = feed.recv() => {
                stopping |= pending.follow(changed);
                stopping
            }
        };
        if !save_now {
            continue;
        }
        // Every request already made counts before the views are taken, so a removal
        // asked for earlier never erases a view saved later (they share a transaction,
        // removals first); every change already announced is in the views taken, and at
        // shutdown every change sent before it.
        while let Ok(request) = requests.try_recv() {
            take(Some(request), &mut forget, &mut stopping);
        }
        if stopping {
            catalog.flush().await;
        }
        loop {
            match feed.try_recv() {
                Ok(changes) => pending.note(&changes),
                Err(broadcast::error::TryRecvError::Lagged(_)) => pending.lagged = true,
                Err(_) => break,
            }
        }
        let unsaved = pending.drain(&catalog);
        if !unsaved.is_empty() || !forget.is_empty() {
            let mut removals = std::mem::take(&mut forget);
            let catalog = catalog.clone();
            let save = store.blocking(move |store| {
                let (views, replaced) = views_of(&catalog, unsaved);
                removals.extend(replaced);
                save(store, views, &removals)
            });
            tokio::pin!(save);
            // A long save (a large source's first view) must not leave the feed unread:
            // falling behind it would mean saving every view whole.
            let saved = loop {
                tokio::select! {
                    saved = &mut save => break saved,
                    changed = feed.recv() => stopping |= pending.follow(changed),
                }
            };
            if let Err(err) = saved {
                tracing::error!(error = %err, "Cannot save source views; they are saved again on their next change");
            }
        }
        if stopping {
            return;
        }
    }
}

/// Notes a request to the saver.
fn take(request: Option<Request>, forget: &mut Vec<String>, stopping: &mut bool) {
    match request {
        Some(Request::Forget(source)) => forget.push(source),
        Some(Request::Stop) | None => *stopping = true,
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
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use switchboard_connectors::{Instance, ServiceKey, Update};

    use super::*;
    use crate::catalog::SourceMeta;
    use crate::store::{RedbStore, SavedService};
    use crate::telemetry::Metrics;

    fn instance(service: &str, id: &str) -> Instance {
        Instance::new(id, ServiceKey::named(service), "10.0.0.1", 80)
    }

    fn names(view: &SavedView) -> BTreeSet<String> {
        (view.services.iter())
            .map(|saved| saved.service.name.clone())
            .collect()
    }

    /// Takes what the feed announced so far into `pending`.
    fn follow(feed: &mut broadcast::Receiver<Arc<Changes>>, pending: &mut Pending) {
        while let Ok(changes) = feed.try_recv() {
            pending.note(&changes);
        }
    }

    #[tokio::test]
    async fn the_last_save_has_what_was_sent_before_stop_and_a_forgotten_source_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SourceStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let saver = ViewSaver::start(catalog.clone(), store.clone());
        let etcd: Arc<str> = Arc::from("etcd");
        catalog
            .apply(&etcd, Update::Upsert(vec![instance("a", "a1")]))
            .await;
        catalog.drop_source(&etcd).await;
        saver.forget("etcd");
        // Back with another service, sent (not yet published) right before the stop.
        let published =
            (catalog.submit(&etcd, vec![Update::Upsert(vec![instance("b", "b1")])])).await;
        saver.stop().await;
        let view = store.view("etcd").unwrap().expect("the view is saved");
        assert_eq!(names(&view), BTreeSet::from(["b".into()]));
        assert!(published.await.is_ok());
    }

    #[tokio::test]
    async fn the_saver_takes_what_the_feed_announced_and_a_lag_saves_views_whole() {
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let mut feed = catalog.changes();
        let mut pending = Pending::default();
        let etcd: Arc<str> = Arc::from("etcd");
        let native: Arc<str> = Arc::from(NATIVE_SOURCE);
        let both = vec![instance("a", "a1"), instance("b", "b1")];
        catalog.apply(&etcd, Update::Upsert(both)).await;
        catalog
            .apply(&native, Update::Upsert(vec![instance("n", "n1")]))
            .await;
        follow(&mut feed, &mut pending);
        let (views, replaced) = views_of(&catalog, pending.drain(&catalog));
        assert_eq!(views.len(), 1, "the native registry keeps its own records");
        assert_eq!(&*views[0].0, "etcd");
        assert_eq!(names(&views[0].1), BTreeSet::from(["a".into(), "b".into()]));
        assert!(
            replaced.is_empty(),
            "a change replaces only what it touched"
        );
        assert!(
            views_of(&catalog, pending.drain(&catalog)).0.is_empty(),
            "nothing new to save"
        );

        // One service changes: only it is saved.
        catalog
            .apply(&etcd, Update::Upsert(vec![instance("b", "b2")]))
            .await;
        follow(&mut feed, &mut pending);
        let (views, _) = views_of(&catalog, pending.drain(&catalog));
        assert_eq!(names(&views[0].1), BTreeSet::from(["b".into()]));
        assert_eq!(views[0].1.services[0].instances.len(), 2);

        // Turning stale saves the staleness, with no service.
        let stale = SourceMeta {
            stale_since: Some(chrono::Utc::now()),
            ..SourceMeta::default()
        };
        catalog.set_source(&etcd, stale).await;
        follow(&mut feed, &mut pending);
        let (views, _) = views_of(&catalog, pending.drain(&catalog));
        assert!(views[0].1.services.is_empty());
        assert!(views[0].1.stale_since.is_some());

        // Behind the feed: every source's view is saved whole, replacing the saved one.
        pending.lagged = true;
        let (views, replaced) = views_of(&catalog, pending.drain(&catalog));
        assert_eq!(replaced, vec!["etcd".to_owned()]);
        assert_eq!(names(&views[0].1), BTreeSet::from(["a".into(), "b".into()]));
    }

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

//! One `watch()` of a Consul source: connect to the first endpoint that answers, read the
//! service list and every service's health into a complete view, then keep one blocking
//! query on `/v1/catalog/services` and one per service on `/v1/health/service/{name}`,
//! starting and stopping the latter as services come and go.
//!
//! The queries run as tasks that report to the session; the session alone turns their
//! reports into updates, so a watcher stopped while its answer is in flight can never
//! bring back a service the catalog just dropped (each watcher has a generation). Any
//! failure ends the session; the supervisor reconnects and the next session starts with
//! a complete view again. Dropping the stream stops every task.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use reqwest::Url;
use tokio::sync::mpsc;

use super::blocking::BlockingQuery;
use super::config::ConsulConfig;
use super::convert::{Catalog, Converted, Converter, Entry};
use super::http::Http;
use super::Task;
use crate::{BoxUpdateStream, ConnectorError, Instance, Update};

/// Health reads in flight at once while building the first view.
const FIRST_VIEW_CONCURRENCY: usize = 16;
/// Reports buffered between the query tasks and the session.
const REPORTS: usize = 1024;

/// What a query task tells the session.
enum Report {
    /// The set of watched service names changed.
    Services(BTreeSet<String>),
    /// A watcher's service changed.
    Service {
        name: String,
        generation: u64,
        converted: Converted,
    },
    Failed(ConnectorError),
}

/// What every task of a session shares.
struct Context {
    http: Http,
    base: String,
    converter: Converter,
    reports: mpsc::Sender<Report>,
}

impl Context {
    fn health_url(&self, name: &str) -> Result<Url, ConnectorError> {
        self.http
            .url(&self.base, &["v1", "health", "service", name])
            .map(|mut url| {
                if self.converter.only_passing() {
                    url.query_pairs_mut().append_key_only("passing");
                }
                url
            })
    }
}

/// A running health watcher.
struct Watcher {
    generation: u64,
    /// Whether the last update sent for this service held instances.
    served: bool,
    _task: Task,
}

/// The session's state; the update stream unfolds over it.
struct Session {
    context: Arc<Context>,
    reports: mpsc::Receiver<Report>,
    watchers: HashMap<String, Watcher>,
    next_generation: u64,
    queue: VecDeque<Result<Update, ConnectorError>>,
    ended: bool,
    _catalog: Task,
}

/// Connects, builds the complete view and starts the watchers.
pub(super) async fn start(
    config: &ConsulConfig,
    converter: Converter,
    in_use: &AtomicUsize,
) -> Result<BoxUpdateStream, ConnectorError> {
    let http = Http::new(config).await?;
    let (base, catalog_url, catalog, catalog_index) = connect(&http, config, in_use).await?;
    let (sender, receiver) = mpsc::channel(REPORTS);
    let context = Arc::new(Context {
        http,
        base,
        converter,
        reports: sender,
    });
    let names = context.converter.watched(&catalog);
    let first: Vec<(String, Converted, u64)> = futures::stream::iter(names.iter().cloned())
        .map(|name| first_read(&context, name))
        .buffer_unordered(FIRST_VIEW_CONCURRENCY)
        .try_collect()
        .await?;

    let catalog_task = spawn_catalog(&context, catalog_url, catalog_index, names);
    let mut session = Session {
        context,
        reports: receiver,
        watchers: HashMap::new(),
        next_generation: 0,
        queue: VecDeque::new(),
        ended: false,
        _catalog: catalog_task,
    };
    let mut view: Vec<Instance> = Vec::new();
    let mut skipped = Vec::new();
    for (name, converted, index) in first {
        view.extend(converted.instances.iter().cloned());
        skipped.extend(converted.skipped.iter().cloned());
        session.watch(name, index, converted)?;
    }
    session.queue.push_back(Ok(Update::Reset(view)));
    session.queue_skipped(skipped);

    let stream = futures::stream::unfold(session, |mut session| async move {
        let item = session.next().await?;
        Some((item, session))
    });
    Ok(stream.boxed())
}

/// Tries the endpoints in order from the one last used; returns the first that lists the
/// services. An auth error stops the search: the token is the same everywhere.
async fn connect(
    http: &Http,
    config: &ConsulConfig,
    in_use: &AtomicUsize,
) -> Result<(String, Url, Catalog, u64), ConnectorError> {
    let count = config.endpoints.len();
    let first = in_use.load(Ordering::Relaxed) % count;
    let mut last_error = None;
    for offset in 0..count {
        let index = (first + offset) % count;
        let base = &config.endpoints[index];
        let url = http.url(base, &["v1", "catalog", "services"])?;
        match http.get::<Catalog>(&url, 0).await {
            Ok(answer) => {
                in_use.store(index, Ordering::Relaxed);
                return Ok((base.clone(), url, answer.body, answer.index));
            }
            Err(err @ (ConnectorError::Auth(_) | ConnectorError::Config(_))) => return Err(err),
            Err(err) => {
                tracing::debug!(endpoint = %base, error = %err, "Consul endpoint failed");
                last_error = Some(err);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ConnectorError::Config("no endpoints".into())))
}

/// One service's health, read at once; returns its converted view and index.
async fn first_read(
    context: &Context,
    name: String,
) -> Result<(String, Converted, u64), ConnectorError> {
    let url = context.health_url(&name)?;
    let answer = context.http.get::<Vec<Entry>>(&url, 0).await?;
    let converted = context.converter.convert(&name, answer.body);
    Ok((name, converted, answer.index))
}

/// The loop on `/v1/catalog/services`: reports the watched names when they change.
fn spawn_catalog(
    context: &Arc<Context>,
    url: Url,
    index: u64,
    mut names: BTreeSet<String>,
) -> Task {
    let context = context.clone();
    let mut query = BlockingQuery::new(context.http.clone(), url, index);
    Task(tokio::spawn(async move {
        loop {
            let report = match query.next::<Catalog>().await {
                Ok(catalog) => {
                    let now = context.converter.watched(&catalog);
                    if now == names {
                        continue;
                    }
                    names = now.clone();
                    Report::Services(now)
                }
                Err(err) => Report::Failed(err),
            };
            let failed = matches!(report, Report::Failed(_));
            if context.reports.send(report).await.is_err() || failed {
                return;
            }
        }
    }))
}

/// The loop on one service's health: reports its instances when they change.
fn spawn_service(
    context: &Arc<Context>,
    name: String,
    generation: u64,
    url: Url,
    index: u64,
    mut last: Converted,
) -> Task {
    let context = context.clone();
    let mut query = BlockingQuery::new(context.http.clone(), url, index);
    Task(tokio::spawn(async move {
        loop {
            let report = match query.next::<Vec<Entry>>().await {
                Ok(entries) => {
                    let converted = context.converter.convert(&name, entries);
                    // Blocking queries also return when nothing changed.
                    if converted == last {
                        continue;
                    }
                    last = converted.clone();
                    Report::Service {
                        name: name.clone(),
                        generation,
                        converted,
                    }
                }
                Err(err) => Report::Failed(err),
            };
            let failed = matches!(report, Report::Failed(_));
            if context.reports.send(report).await.is_err() || failed {
                return;
            }
        }
    }))
}

impl Session {
    /// The next update; `None` once the session has failed and said so.
    async fn next(&mut self) -> Option<Result<Update, ConnectorError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            // The session holds a sender itself, so the channel never closes.
            let report = self.reports.recv().await?;
            if let Err(err) = self.handle(report) {
                self.ended = true;
                self.queue.clear();
                return Some(Err(err));
            }
        }
    }

    fn handle(&mut self, report: Report) -> Result<(), ConnectorError> {
        match report {
            Report::Failed(err) => return Err(err),
            Report::Services(names) => {
                let gone: Vec<String> = self
                    .watchers
                    .keys()
                    .filter(|name| !names.contains(*name))
                    .cloned()
                    .collect();
                for name in gone {
                    let watcher = self.watchers.remove(&name);
                    if watcher.is_some_and(|w| w.served) {
                        let key = self.context.converter.service_key(&name);
                        self.queue.push_back(Ok(Update::Service(key, Vec::new())));
                    }
                }
                for name in names {
                    if !self.watchers.contains_key(&name) {
                        self.watch(name, 0, Converted::default())?;
                    }
                }
            }
            Report::Service {
                name,
                generation,
                converted,
            } => {
                let Some(watcher) = self.watchers.get_mut(&name) else {
                    return Ok(());
                };
                if watcher.generation != generation {
                    return Ok(());
                }
                watcher.served = !converted.instances.is_empty();
                let key = self.context.converter.service_key(&name);
                self.queue
                    .push_back(Ok(Update::Service(key, converted.instances)));
                self.queue_skipped(converted.skipped);
            }
        }
        Ok(())
    }

    /// Starts watching `name` from `index`, with `last` as what was already reported.
    fn watch(&mut self, name: String, index: u64, last: Converted) -> Result<(), ConnectorError> {
        let url = self.context.health_url(&name)?;
        self.next_generation += 1;
        let generation = self.next_generation;
        let served = !last.instances.is_empty();
        let task = spawn_service(&self.context, name.clone(), generation, url, index, last);
        let watcher = Watcher {
            generation,
            served,
            _task: task,
        };
        self.watchers.insert(name, watcher);
        Ok(())
    }

    fn queue_skipped(&mut self, skipped: Vec<(String, String)>) {
        for (key, reason) in skipped {
            self.queue.push_back(Ok(Update::Skipped { key, reason }));
        }
    }
}

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

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use reqwest::Url;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::blocking::BlockingQuery;
use super::config::ConsulConfig;
use super::convert::{Catalog, Converted, Converter, Entry};
use super::http::Http;
use crate::session::{self, Pending};
use crate::task::Task;
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

/// The path of the service list.
const CATALOG: [&str; 3] = ["v1", "catalog", "services"];

/// What every task of a session shares.
struct Context {
    http: Http,
    /// The endpoint this session reads from.
    endpoint: usize,
    /// Ask Consul for instances whose checks all pass (`?passing`).
    only_passing: bool,
    converter: Converter,
    reports: mpsc::Sender<Report>,
}

impl Context {
    fn health_url(&self, name: &str) -> Url {
        let mut url = self
            .http
            .url(self.endpoint, &["v1", "health", "service", name]);
        if self.only_passing {
            url.query_pairs_mut().append_key_only("passing");
        }
        url
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
    pending: Pending,
    _catalog: Task,
}

/// Connects, builds the complete view and starts the watchers.
pub(super) async fn start(
    config: &ConsulConfig,
    converter: Converter,
    in_use: &AtomicUsize,
) -> Result<BoxUpdateStream, ConnectorError> {
    let http = Http::new(config).await?;
    let (endpoint, catalog, catalog_index) = connect(&http, in_use).await?;
    let (sender, receiver) = mpsc::channel(REPORTS);
    let catalog_url = http.url(endpoint, &CATALOG);
    let context = Arc::new(Context {
        http,
        endpoint,
        only_passing: config.only_passing,
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
        pending: Pending::default(),
        _catalog: catalog_task,
    };
    let mut view: Vec<Instance> = Vec::new();
    let mut skipped = Vec::new();
    for (name, converted, index) in first {
        view.extend(converted.instances.iter().cloned());
        skipped.extend(converted.skipped.iter().cloned());
        session.watch(name, index, converted);
    }
    session.pending.push(Update::Reset(view));
    session.pending.skipped(skipped);
    Ok(session::into_stream(session))
}

/// Tries the endpoints in order from the one last used; returns the first that lists the
/// services, with the list and its index. An auth error stops the search: the token is
/// the same everywhere.
async fn connect(
    http: &Http,
    in_use: &AtomicUsize,
) -> Result<(usize, Catalog, u64), ConnectorError> {
    let fail_over =
        |err: &ConnectorError| !matches!(err, ConnectorError::Auth(_) | ConnectorError::Config(_));
    let first = in_use.load(Ordering::Relaxed);
    let (endpoint, answer) = http
        .on_any_endpoint(first, fail_over, |endpoint| async move {
            http.get::<Catalog>(&http.url(endpoint, &CATALOG), 0).await
        })
        .await?;
    in_use.store(endpoint, Ordering::Relaxed);
    Ok((endpoint, answer.body, answer.index))
}

/// One service's health, read at once; returns its converted view and index.
async fn first_read(
    context: &Context,
    name: String,
) -> Result<(String, Converted, u64), ConnectorError> {
    let answer = context
        .http
        .get::<Vec<Entry>>(&context.health_url(&name), 0)
        .await?;
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
    spawn_loop(context, url, index, move |context, catalog: Catalog| {
        let now = context.converter.watched(&catalog);
        (now != names).then(|| {
            names = now.clone();
            Report::Services(now)
        })
    })
}

/// The loop on one service's health: reports its instances when they change.
fn spawn_service(
    context: &Arc<Context>,
    name: String,
    generation: u64,
    index: u64,
    mut last: Converted,
) -> Task {
    let url = context.health_url(&name);
    spawn_loop(context, url, index, move |context, entries: Vec<Entry>| {
        let converted = context.converter.convert(&name, entries);
        (converted != last).then(|| {
            last = converted.clone();
            Report::Service {
                name: name.clone(),
                generation,
                converted,
            }
        })
    })
}

/// A blocking query on `url` from `index`, as a task. Each answer goes through `report`,
/// which says what to tell the session, or nothing when the answer changed nothing
/// (blocking queries also return when nothing changed). An error is told and ends it.
fn spawn_loop<T, F>(context: &Arc<Context>, url: Url, index: u64, mut report: F) -> Task
where
    T: DeserializeOwned + Send + 'static,
    F: FnMut(&Context, T) -> Option<Report> + Send + 'static,
{
    let context = context.clone();
    let mut query = BlockingQuery::new(context.http.clone(), url, index);
    Task(tokio::spawn(async move {
        loop {
            let (told, failed) = match query.next::<T>().await {
                Ok(answer) => match report(&context, answer) {
                    Some(told) => (told, false),
                    None => continue,
                },
                Err(err) => (Report::Failed(err), true),
            };
            if context.reports.send(told).await.is_err() || failed {
                return;
            }
        }
    }))
}

impl session::Session for Session {
    fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }

    async fn step(&mut self) -> Result<(), ConnectorError> {
        // The session's context holds a sender, so the channel never closes.
        let Some(report) = self.reports.recv().await else {
            return Err(ConnectorError::Connection("Consul session closed".into()));
        };
        self.handle(report)
    }
}

impl Session {
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
                        self.pending.push(Update::Service(key, Vec::new()));
                    }
                }
                for name in names {
                    if !self.watchers.contains_key(&name) {
                        self.watch(name, 0, Converted::default());
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
                self.pending.push(Update::Service(key, converted.instances));
                self.pending.skipped(converted.skipped);
            }
        }
        Ok(())
    }

    /// Starts watching `name` from `index`, with `last` as what was already reported.
    fn watch(&mut self, name: String, index: u64, last: Converted) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let served = !last.instances.is_empty();
        let task = spawn_service(&self.context, name.clone(), generation, index, last);
        let watcher = Watcher {
            generation,
            served,
            _task: task,
        };
        self.watchers.insert(name, watcher);
    }
}

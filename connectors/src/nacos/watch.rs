//! One `watch()` of a Nacos source: read the service list over HTTP (which also fails
//! fast when the server is down or refuses the login), subscribe to every federated
//! service through the SDK, query each one for the complete view, then follow pushes.
//!
//! A push only says which service changed; the session then reads that service's newest
//! state from the SDK's cache and reports it if it differs from what it last reported.
//! Nacos pushes no service list, so a task re-reads it every `service_refresh`, and
//! probes the server every `probe_interval` in between (one one-item page of the list):
//! a failed probe ends the session, so an outage shows as a stale source within the
//! probe interval, and a changed service count re-reads the list at once. Dropping the
//! stream stops the task; the subscriptions stay with the SDK client for the next
//! session.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use nacos_sdk::api::naming::{NamingService, ServiceInstance};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::Client;
use super::config::NacosConfig;
use super::convert::{Converted, Converter};
use super::http::Http;
use super::NacosService;
use crate::session::{self, Pending};
use crate::task::Task;
use crate::{BoxUpdateStream, ConnectorError, Instance, ServiceKey, Update};

/// Services subscribed to and queried at once (the complete view, new services).
const CONCURRENCY: usize = 16;

/// What the refresh task tells the session.
enum Report {
    Services(BTreeSet<NacosService>),
    Failed(ConnectorError),
}

/// What one session holds; the update stream unfolds over it.
struct Session {
    client: Arc<Client>,
    naming: NamingService,
    converter: Converter,
    changes: mpsc::UnboundedReceiver<NacosService>,
    reports: mpsc::Receiver<Report>,
    /// Every watched service with what was last reported for it.
    watched: BTreeMap<NacosService, Converted>,
    /// The watched services placed in each Switchboard service: several Nacos groups
    /// can land in one, and an update of that service must carry all of them.
    placed: BTreeMap<ServiceKey, BTreeSet<NacosService>>,
    pending: Pending,
    _refresh: Task,
}

/// Everything a session needs from its connector.
#[derive(Clone, Copy)]
pub(super) struct Parts<'a> {
    pub config: &'a NacosConfig,
    pub http: &'a Arc<Http>,
    pub client: &'a Arc<Client>,
    pub converter: &'a Converter,
}

pub(super) async fn start(parts: Parts<'_>) -> Result<BoxUpdateStream, ConnectorError> {
    let list = parts.http.services().await?;
    let count = list.count;
    let services = parts.converter.watched(list.services);
    let client = parts.client.clone();
    let naming = client.naming().await?;
    let (changes_sender, changes) = mpsc::unbounded_channel();
    client.attach(changes_sender);
    for gone in client.subscribed().await.difference(&services) {
        client.unsubscribe(&naming, gone).await;
    }
    let first: Vec<(NacosService, Converted)> =
        subscribe_and_read(&client, &naming, services.iter().cloned())
            .await?
            .into_iter()
            .map(|(service, hosts)| {
                let converted = parts.converter.convert(&service, hosts);
                (service, converted)
            })
            .collect();

    let (report_sender, reports) = mpsc::channel(16);
    let refresh = spawn_refresh(parts, &naming, services, count, report_sender);
    let mut session = Session {
        client,
        naming,
        converter: parts.converter.clone(),
        changes,
        reports,
        watched: BTreeMap::new(),
        placed: BTreeMap::new(),
        pending: Pending::default(),
        _refresh: refresh,
    };
    let mut skipped = Vec::new();
    for (service, converted) in first {
        skipped.extend(converted.skipped.iter().cloned());
        session.watch(service, converted);
    }
    let view = (session.placed.keys())
        .flat_map(|key| session.instances_of(key))
        .collect();
    session.pending.push(Update::Reset(view));
    session.pending.skipped(skipped);
    Ok(session::into_stream(session))
}

/// Subscribes to each of `services` and then reads its instances, several services at
/// once (one at a time, a thousand new services took over a minute to show). Subscribing
/// before reading means a change after the read is pushed, never lost.
async fn subscribe_and_read(
    client: &Client,
    naming: &NamingService,
    services: impl Iterator<Item = NacosService>,
) -> Result<Vec<(NacosService, Vec<ServiceInstance>)>, ConnectorError> {
    futures::stream::iter(services)
        .map(|service| async move {
            client.subscribe(naming, &service).await?;
            let hosts = Client::instances(naming, &service, false).await?;
            Ok::<_, ConnectorError>((service, hosts))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

/// The task that re-reads the service list every `service_refresh` and probes the
/// server every `probe_interval` in between.
fn spawn_refresh(
    parts: Parts<'_>,
    naming: &NamingService,
    mut services: BTreeSet<NacosService>,
    mut count: u64,
    reports: mpsc::Sender<Report>,
) -> Task {
    let http = parts.http.clone();
    let naming = naming.clone();
    let converter = parts.converter.clone();
    let refresh = parts.config.service_refresh;
    let probe_interval = parts.config.probe_interval;
    Task(tokio::spawn(async move {
        let mut listed_at = Instant::now();
        loop {
            tokio::time::sleep(probe_interval).await;
            // The list is read when due, or at once when the probe's count moved.
            let listed = async {
                if listed_at.elapsed() < refresh && probe(&http, &naming).await? == count {
                    return Ok(None);
                }
                http.services().await.map(Some)
            };
            let report = match listed.await {
                Ok(None) => continue,
                Ok(Some(list)) => {
                    listed_at = Instant::now();
                    count = list.count;
                    let now = converter.watched(list.services);
                    if now == services {
                        continue;
                    }
                    services = now.clone();
                    Report::Services(now)
                }
                Err(err) => Report::Failed(err),
            };
            let failed = matches!(report, Report::Failed(_));
            if reports.send(report).await.is_err() || failed {
                return;
            }
        }
    }))
}

/// Checks both ways to the server: the HTTP API (answering the service count) and the
/// SDK's gRPC connection, which carries the pushes and which the SDK re-establishes on
/// its own, silently. Returns the service count.
async fn probe(http: &Http, naming: &NamingService) -> Result<u64, ConnectorError> {
    let count = http.service_count().await?;
    naming
        .get_service_list(1, 1, None)
        .await
        .map_err(super::client::sdk_error)?;
    Ok(count)
}

impl session::Session for Session {
    fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }

    async fn step(&mut self) -> Result<(), ConnectorError> {
        tokio::select! {
            // The refresh task ends only after reporting a failure.
            Some(report) = self.reports.recv() => self.handle(report).await,
            Some(service) = self.changes.recv() => self.changed(service).await,
            else => Err(ConnectorError::Connection("Nacos session closed".into())),
        }
    }
}

impl Session {
    async fn handle(&mut self, report: Report) -> Result<(), ConnectorError> {
        let services = match report {
            Report::Failed(err) => return Err(err),
            Report::Services(services) => services,
        };
        let gone: Vec<NacosService> = self
            .watched
            .keys()
            .filter(|service| !services.contains(*service))
            .cloned()
            .collect();
        for service in gone {
            self.client.unsubscribe(&self.naming, &service).await;
            let key = self.converter.service_key(&service);
            let last = self.watched.remove(&service).unwrap_or_default();
            if let Some(members) = self.placed.get_mut(&key) {
                members.remove(&service);
                if members.is_empty() {
                    self.placed.remove(&key);
                }
            }
            if !last.instances.is_empty() {
                let instances = self.instances_of(&key);
                self.pending.push(Update::Service(key, instances));
            }
        }
        let new: Vec<NacosService> = (services.into_iter())
            .filter(|service| !self.watched.contains_key(service))
            .collect();
        for service in &new {
            self.watch(service.clone(), Converted::default());
        }
        let read = subscribe_and_read(&self.client, &self.naming, new.into_iter()).await?;
        for (service, hosts) in read {
            self.report(service, hosts);
        }
        Ok(())
    }

    /// A push for `service`: report its newest state if it differs from the last.
    async fn changed(&mut self, service: NacosService) -> Result<(), ConnectorError> {
        if !self.watched.contains_key(&service) {
            return Ok(());
        }
        let hosts = Client::instances(&self.naming, &service, true).await?;
        self.report(service, hosts);
        Ok(())
    }

    fn report(
        &mut self,
        service: NacosService,
        hosts: Vec<nacos_sdk::api::naming::ServiceInstance>,
    ) {
        let converted = self.converter.convert(&service, hosts);
        let Some(last) = self.watched.get_mut(&service) else {
            return;
        };
        if *last == converted {
            return;
        }
        let skipped = converted.skipped.clone();
        *last = converted;
        let key = self.converter.service_key(&service);
        let instances = self.instances_of(&key);
        self.pending.push(Update::Service(key, instances));
        self.pending.skipped(skipped);
    }

    /// Starts following `service`, with `last` as what is known of it.
    fn watch(&mut self, service: NacosService, last: Converted) {
        let key = self.converter.service_key(&service);
        self.placed.entry(key).or_default().insert(service.clone());
        self.watched.insert(service, last);
    }

    /// Every instance placed in `key`, from all the Nacos services placed there. An id
    /// two groups share gets the second group's name appended, so none is lost.
    fn instances_of(&self, key: &ServiceKey) -> Vec<Instance> {
        let Some(members) = self.placed.get(key) else {
            return Vec::new();
        };
        let mut ids = HashSet::new();
        let mut instances = Vec::new();
        for service in members {
            let Some(converted) = self.watched.get(service) else {
                continue;
            };
            for instance in &converted.instances {
                let mut instance = instance.clone();
                if !ids.insert(instance.id.clone()) {
                    instance.id = format!("{}@{}", instance.id, service.group);
                    ids.insert(instance.id.clone());
                }
                instances.push(instance);
            }
        }
        instances
    }
}

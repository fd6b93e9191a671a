//! The conformance suite every connector passes, run against a real registry.
//!
//! An adapter's test implements [`Backend`] for its registry (write an instance, delete
//! one, make the registry unreachable and reachable again) and calls
//! [`run_conformance`]. The suite checks the [`Connector`] contract the supervisor
//! relies on:
//!
//! 1. `watch()` first yields a complete view ([`Update::Reset`]) holding everything
//!    written before, with no instance twice.
//! 2. A put, a change of address and deletes written after that view arrive as updates
//!    (deltas, or a fresh `Reset`) within the deadline; a service whose last instance is
//!    deleted disappears.
//! 3. When the registry becomes unreachable the stream ends, or yields an error, within
//!    the deadline; a `watch()` while it is unreachable fails (or its stream does).
//! 4. Once it is reachable again, a new `watch()` first yields a complete view that
//!    reflects the changes made while the connector was cut off, and deltas flow again.
//!
//! Only services named `conformance-*` are looked at, so a registry holding other data
//! passes too. The instance ids a connector reports are its own business: the suite
//! compares `(service, host, port)`. Each step waits for a condition with a deadline and
//! panics naming the step and what the connector had reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::{BoxUpdateStream, Connector, Instance, InstanceKey, Update};

/// The services the suite writes.
const ALPHA: &str = "conformance-alpha";
const BETA: &str = "conformance-beta";

/// A registry the suite can drive, with a connector watching it.
///
/// The methods return `impl Future + Send`, so an implementation can simply write
/// `async fn put(...)`.
pub trait Backend: Send {
    /// The connector under test. Called once; the suite calls `watch()` on it repeatedly.
    fn connector(&self) -> Arc<dyn Connector>;

    /// Writes (or overwrites) instance `id` of `service` at `host:port`, returning once
    /// the registry has accepted it.
    fn put(
        &mut self,
        service: &str,
        id: &str,
        host: &str,
        port: u16,
    ) -> impl Future<Output = ()> + Send;

    /// Deletes instance `id` of `service`.
    fn delete(&mut self, service: &str, id: &str) -> impl Future<Output = ()> + Send;

    /// Makes the registry unreachable for the connector (kill it, cut the network).
    fn interrupt(&mut self) -> impl Future<Output = ()> + Send;

    /// Makes it reachable again with its data intact; returns once it accepts writes.
    fn resume(&mut self) -> impl Future<Output = ()> + Send;

    /// How long any one step may take.
    fn deadline(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// How long each step took, for the test to print.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub first_view: Duration,
    pub put: Duration,
    pub moved: Duration,
    pub delete: Duration,
    pub service_gone: Duration,
    pub failure_noticed: Duration,
    pub view_after_resume: Duration,
    pub put_after_resume: Duration,
}

/// Runs the whole suite; panics on the first violation.
pub async fn run_conformance<B: Backend>(backend: &mut B) -> Timings {
    let connector = backend.connector();
    let deadline = backend.deadline();
    let mut timings = Timings::default();
    let mut model = Model::default();

    for (service, id, host, port) in [
        (ALPHA, "a1", "10.0.0.1", 8001),
        (ALPHA, "a2", "10.0.0.2", 8002),
        (BETA, "b1", "10.0.0.3", 8003),
    ] {
        backend.put(service, id, host, port).await;
        model.put(service, id, host, port);
    }

    let started = Instant::now();
    let mut watch = Watch::open(&connector, deadline).await;
    watch.expect_view("the first complete view", &model).await;
    timings.first_view = started.elapsed();

    backend.put(ALPHA, "a3", "10.0.0.4", 8004).await;
    model.put(ALPHA, "a3", "10.0.0.4", 8004);
    timings.put = watch.wait_for("a new instance", &model).await;

    backend.put(ALPHA, "a1", "10.0.0.1", 9001).await;
    model.put(ALPHA, "a1", "10.0.0.1", 9001);
    timings.moved = watch.wait_for("an instance's new port", &model).await;

    backend.delete(ALPHA, "a2").await;
    model.delete(ALPHA, "a2");
    timings.delete = watch.wait_for("a deleted instance", &model).await;

    backend.delete(BETA, "b1").await;
    model.delete(BETA, "b1");
    timings.service_gone = watch
        .wait_for("a service's last instance gone", &model)
        .await;

    backend.interrupt().await;
    timings.failure_noticed = watch.expect_failure().await;
    drop(watch);
    expect_watch_fails(&connector, deadline).await;

    // Changed while the connector could not see it: only a full re-list shows this.
    backend.resume().await;
    backend.put(BETA, "b2", "10.0.0.5", 8005).await;
    model.put(BETA, "b2", "10.0.0.5", 8005);
    backend.delete(ALPHA, "a3").await;
    model.delete(ALPHA, "a3");

    let started = Instant::now();
    let mut watch = Watch::open(&connector, deadline).await;
    watch
        .expect_view("the complete view after resume", &model)
        .await;
    timings.view_after_resume = started.elapsed();

    backend.put(ALPHA, "a4", "10.0.0.6", 8006).await;
    model.put(ALPHA, "a4", "10.0.0.6", 8006);
    timings.put_after_resume = watch.wait_for("a new instance after resume", &model).await;
    timings
}

/// An endpoint as the suite compares it.
type Endpoint = (String, String, u16);

/// What the suite wrote.
#[derive(Default)]
struct Model(BTreeMap<(String, String), (String, u16)>);

impl Model {
    fn put(&mut self, service: &str, id: &str, host: &str, port: u16) {
        let key = (service.to_owned(), id.to_owned());
        self.0.insert(key, (host.to_owned(), port));
    }

    fn delete(&mut self, service: &str, id: &str) {
        self.0.remove(&(service.to_owned(), id.to_owned()));
    }

    fn endpoints(&self) -> BTreeSet<Endpoint> {
        let entries = self.0.iter();
        entries
            .map(|((service, _), (host, port))| (service.clone(), host.clone(), *port))
            .collect()
    }
}

/// What the connector reported, with updates applied the way the catalog applies them.
#[derive(Default)]
struct View(BTreeMap<InstanceKey, Instance>);

impl View {
    fn apply(&mut self, update: Update) {
        match update {
            Update::Reset(instances) => {
                assert_no_duplicates(&instances);
                self.0 = instances.into_iter().map(|i| (i.key(), i)).collect();
            }
            Update::Service(service, instances) => {
                assert!(
                    instances.iter().all(|i| i.service == service),
                    "Update::Service({service}) holds another service's instance: {instances:?}"
                );
                assert_no_duplicates(&instances);
                self.0.retain(|key, _| key.service != service);
                self.0.extend(instances.into_iter().map(|i| (i.key(), i)));
            }
            Update::Upsert(instances) => self.0.extend(instances.into_iter().map(|i| (i.key(), i))),
            Update::Remove(keys) => {
                for key in keys {
                    self.0.remove(&key);
                }
            }
            Update::Skipped { .. } => {}
        }
    }

    /// The suite's services only. A list, so an endpoint reported twice shows.
    fn endpoints(&self) -> Vec<Endpoint> {
        let ours = self
            .0
            .values()
            .filter(|i| i.service.name.starts_with("conformance-"));
        ours.map(|i| (i.service.name.clone(), i.host.clone(), i.port))
            .collect()
    }

    fn matches(&self, model: &Model) -> bool {
        let endpoints = self.endpoints();
        let set: BTreeSet<Endpoint> = endpoints.iter().cloned().collect();
        set.len() == endpoints.len() && set == model.endpoints()
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.endpoints())
    }
}

fn assert_no_duplicates(instances: &[Instance]) {
    let mut seen = BTreeSet::new();
    for instance in instances {
        assert!(
            seen.insert(instance.key()),
            "instance {:?} reported twice in one update",
            instance.key()
        );
    }
}

/// One open watch and the view built from it.
struct Watch {
    stream: BoxUpdateStream,
    view: View,
    deadline: Duration,
}

impl Watch {
    async fn open(connector: &Arc<dyn Connector>, deadline: Duration) -> Watch {
        let stream = tokio::time::timeout(deadline, connector.watch()).await;
        let stream = stream.unwrap_or_else(|_| panic!("watch() did not return in {deadline:?}"));
        let stream = stream.unwrap_or_else(|err| panic!("watch() failed: {err}"));
        Watch {
            stream,
            view: View::default(),
            deadline,
        }
    }

    /// The next item must be a `Reset` equal to `model`.
    async fn expect_view(&mut self, what: &str, model: &Model) {
        let next = tokio::time::timeout(self.deadline, self.stream.next()).await;
        let deadline = self.deadline;
        let item = next.unwrap_or_else(|_| panic!("no {what} within {deadline:?}"));
        match item {
            Some(Ok(update @ Update::Reset(_))) => self.view.apply(update),
            Some(Ok(other)) => {
                panic!("{what}: the first item must be Update::Reset, got {other:?}")
            }
            Some(Err(err)) => panic!("{what}: the stream failed: {err}"),
            None => panic!("{what}: the stream ended before its first item"),
        }
        assert!(
            self.view.matches(model),
            "{what}: expected {:?}, the connector reported {}",
            model.endpoints(),
            self.view
        );
    }

    /// Applies updates until the view equals `model`; returns how long that took.
    async fn wait_for(&mut self, what: &str, model: &Model) -> Duration {
        let started = Instant::now();
        let give_up = started + self.deadline;
        while !self.view.matches(model) {
            let next = tokio::time::timeout_at(give_up, self.stream.next()).await;
            match next {
                Ok(Some(Ok(update))) => self.view.apply(update),
                Ok(Some(Err(err))) => panic!("{what}: the stream failed: {err}"),
                Ok(None) => panic!("{what}: the stream ended"),
                Err(_) => panic!(
                    "{what}: not seen within {:?}; expected {:?}, the connector reported {}",
                    self.deadline,
                    model.endpoints(),
                    self.view
                ),
            }
        }
        started.elapsed()
    }

    /// The registry is gone: the stream must end or fail. Updates before that are fine.
    async fn expect_failure(&mut self) -> Duration {
        let started = Instant::now();
        let give_up = started + self.deadline;
        loop {
            match tokio::time::timeout_at(give_up, self.stream.next()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return started.elapsed(),
                Err(_) => panic!(
                    "the stream neither failed nor ended within {:?} of the registry \
                     becoming unreachable",
                    self.deadline
                ),
            }
        }
    }
}

/// While the registry is unreachable, `watch()` must fail, or its stream must.
async fn expect_watch_fails(connector: &Arc<dyn Connector>, deadline: Duration) {
    let attempt = async {
        match connector.watch().await {
            Err(_) => Ok(()),
            Ok(mut stream) => match stream.next().await {
                Some(Err(_)) | None => Ok(()),
                Some(Ok(update)) => Err(update),
            },
        }
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(Ok(())) => {}
        Ok(Err(update)) => {
            panic!("watch() on an unreachable registry yielded {update:?} instead of failing")
        }
        Err(_) => panic!("watch() on an unreachable registry did not fail within {deadline:?}"),
    }
}

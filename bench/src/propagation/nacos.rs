//! The Nacos side of the propagation samples: writes are registrations of persistent
//! instances `i{k}` (`10.1.x.y:80`, `ephemeral=false`) and their removals in rnacos, and the
//! direct observer is a `nacos-sdk` subscription to the same service, the client
//! Switchboard's connector is built on, over its own gRPC connection.
//!
//! Writes go through Nacos's HTTP OpenAPI (`POST`/`DELETE /nacos/v1/ns/instance`) on a
//! warm keep-alive connection rather than through the SDK: the answer `ok` comes once
//! rnacos has applied the write, with no SDK machinery in between (its own runtime thread,
//! its redo bookkeeping), and the subscribing SDK client stays a pure observer, on a
//! connection of its own like the etcd part's watch. Persistent instances need no
//! heartbeat and are not tied to the writer's connection.
//!
//! The SDK calls its listener on its own runtime's thread; the listener stamps the time
//! there and forwards the instance list over a channel.
//!
//! rnacos batches its pushes: a change is due 500 ms after it is made, and due changes go
//! out on a 500 ms tick, to every subscriber in the same batch, so both observers wait for
//! the same tick and a write is seen 0.5 to 1 s after it is made, depending on where in
//! the tick it lands. Left alone, the samples would lock onto the tick (each write follows
//! the previous push by the same few milliseconds) and time one phase only, so
//! [`Backend::arm`] first waits a spread delay ([`phase`]) that walks the writes evenly
//! across the tick. A sample thus takes about a second, hence [`SAMPLES`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use nacos_sdk::api::naming::{
    NamingChangeEvent, NamingEventListener, NamingService, NamingServiceBuilder,
};
use nacos_sdk::api::props::ClientProps;
use reqwest::Url;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Backend, Change, STUCK};
use crate::servers::Server;

/// The service the samples write to.
pub const SERVICE: &str = "bench-nacos";
/// Nacos's default group, where the samples are written; Switchboard's connector places
/// it in Switchboard's default group, so the service is read without a `group`.
pub const GROUP: &str = "DEFAULT_GROUP";
/// Writes timed: each waits for rnacos's push tick, so fewer than the other parts.
pub const SAMPLES: usize = 500;
/// rnacos's push tick (and the delay before a change is due).
const TICK: Duration = Duration::from_millis(500);

/// Writes to one rnacos and observes the writes through a `nacos-sdk` subscription.
pub struct Nacos {
    /// `POST`/`DELETE` here (rnacos's instance endpoint).
    instance_url: String,
    /// `host:port` of rnacos's HTTP API, as the SDK takes it.
    server_addr: String,
    /// The writer's own client, so each write reuses the previous one's connection.
    client: reqwest::Client,
    /// Where the SDK keeps its disk cache (it always writes one): inside rnacos's temp
    /// dir, removed only after rnacos and Switchboard are stopped, so after the SDK's
    /// last write to it, which may still be in flight when the samples end.
    cache_dir: PathBuf,
    subscriber: Option<Subscriber>,
    /// The last change the subscriber showed (what a stray event came after).
    shown: Option<Change>,
    /// Writes armed so far.
    armed: u32,
}

impl Nacos {
    pub fn new(rnacos: &Server) -> anyhow::Result<Nacos> {
        let base = rnacos.url("");
        let server_addr = base
            .strip_prefix("http://")
            .context("rnacos is not http://")?;
        Ok(Nacos {
            instance_url: format!("{base}/nacos/v1/ns/instance"),
            server_addr: server_addr.to_owned(),
            client: reqwest::Client::builder().timeout(STUCK).build()?,
            cache_dir: rnacos.dir().join("nacos-sdk-cache"),
            subscriber: None,
            shown: None,
            armed: 0,
        })
    }

    fn events(&mut self) -> anyhow::Result<&mut mpsc::UnboundedReceiver<Event>> {
        let subscriber = self.subscriber.as_mut();
        let subscriber = subscriber.context("the subscriber was never set up")?;
        Ok(&mut subscriber.events)
    }
}

impl Backend for Nacos {
    const SERVICE: &'static str = SERVICE;
    const SAMPLES: usize = SAMPLES;

    fn observer(&self) -> &'static str {
        "a nacos-sdk subscriber"
    }

    async fn write(&mut self, change: &Change) -> anyhow::Result<()> {
        let mut url = Url::parse(&self.instance_url)?;
        url.query_pairs_mut()
            .append_pair("serviceName", SERVICE)
            .append_pair("groupName", GROUP)
            .append_pair("ip", &change.host)
            .append_pair("port", &change.port.to_string())
            .append_pair("ephemeral", "false");
        let request = if change.put {
            self.client.post(url)
        } else {
            self.client.delete(url)
        };
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() || text.trim() != "ok" {
            bail!("rnacos answered {status}: {text}");
        }
        Ok(())
    }

    /// Subscribes and waits for the first event, which must list the anchor.
    async fn ready(&mut self) -> anyhow::Result<()> {
        let subscriber = Subscriber::start(&self.server_addr, &self.cache_dir).await?;
        self.subscriber = Some(subscriber);
        let anchor = Change::anchor();
        let first = next_event(self.events()?)
            .await
            .context("the subscription delivered nothing")?;
        if !first.lists(&anchor.address()) {
            bail!(
                "the subscription's first event lacks the anchor: {:?}",
                first.addresses
            );
        }
        self.shown = Some(anchor);
        Ok(())
    }

    /// The subscription is always listening. This moves the write to its [`phase`] of
    /// rnacos's tick, then checks that nothing arrived since the last write was seen, so
    /// the next event can only come from the next write.
    async fn arm(&mut self) -> anyhow::Result<()> {
        tokio::time::sleep(phase(self.armed)).await;
        self.armed += 1;
        if let Ok(event) = self.events()?.try_recv() {
            let shown = self.shown.as_ref().context("ready() was not called")?;
            bail!(
                "an event arrived after the {} of {} was seen, before the next write: {:?}",
                shown.verb(),
                shown.id,
                event.addresses
            );
        }
        Ok(())
    }

    async fn observed(&mut self, change: &Change) -> anyhow::Result<Instant> {
        let event = next_event(self.events()?)
            .await
            .with_context(|| format!("nothing after the {} of {}", change.verb(), change.id))?;
        let shown = event.lists(&change.address()) == change.put;
        if !shown || !event.lists(&Change::anchor().address()) {
            bail!(
                "its first event after the {} of {} does not show it: {:?}",
                change.verb(),
                change.id,
                event.addresses
            );
        }
        self.shown = Some(change.clone());
        Ok(event.at)
    }
}

/// How long to wait before write `n`: the fractional parts of `n` times the golden ratio
/// spread evenly over [0, 1) in any run of writes, and so do the writes over the tick.
fn phase(n: u32) -> Duration {
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    TICK.mul_f64((f64::from(n) * golden).fract())
}

/// One listener call: when it came, and the `ip:port` of every instance it listed.
struct Event {
    at: Instant,
    addresses: Vec<String>,
}

impl Event {
    fn lists(&self, address: &str) -> bool {
        self.addresses.iter().any(|listed| listed == address)
    }
}

/// The next event, within [`STUCK`].
async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> anyhow::Result<Event> {
    tokio::time::timeout(STUCK, events.recv())
        .await
        .with_context(|| format!("no event within {STUCK:?}"))?
        .context("the subscriber's listener is gone")
}

/// A `nacos-sdk` naming client subscribed to [`SERVICE`], with its events.
struct Subscriber {
    /// Held for the whole run. Dropping it does not stop the SDK's tasks (it has no
    /// shutdown), which end with the process.
    _naming: NamingService,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Subscriber {
    async fn start(server_addr: &str, cache_dir: &Path) -> anyhow::Result<Subscriber> {
        let props = ClientProps::new()
            .server_addr(server_addr)
            // Nacos's `public` namespace.
            .namespace("")
            .app_name("switchboard-bench")
            .cache_dir(cache_dir)
            // Only these settings: no NACOS_CLIENT_* variable of the user's may change them.
            .env_first(false);
        let naming = NamingServiceBuilder::new(props)
            .build()
            .await
            .context("cannot start the nacos-sdk naming client")?;
        let (sender, events) = mpsc::unbounded_channel();
        naming
            .subscribe(
                SERVICE.to_owned(),
                Some(GROUP.to_owned()),
                Vec::new(),
                Arc::new(Forward(sender)),
            )
            .await
            .context("the nacos-sdk subscription failed")?;
        Ok(Subscriber {
            _naming: naming,
            events,
        })
    }
}

/// The listener: stamps each event on the SDK's thread and forwards it.
struct Forward(mpsc::UnboundedSender<Event>);

impl NamingEventListener for Forward {
    fn event(&self, event: Arc<NamingChangeEvent>) {
        let at = Instant::now();
        let addresses = event
            .instances
            .iter()
            .flatten()
            .map(|instance| instance.ip_and_port())
            .collect();
        // The receiver is gone only once the bench has finished with this backend.
        let _ = self.0.send(Event { at, addresses });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_cover_the_tick_evenly() {
        let tenth = TICK / 10;
        let mut tenths = [0; 10];
        for n in 0..20 {
            let phase = phase(n);
            assert!(phase < TICK, "{phase:?}");
            tenths[(phase.as_nanos() / tenth.as_nanos()) as usize] += 1;
        }
        assert!(tenths.iter().all(|&count| count > 0), "{tenths:?}");
        assert_eq!(phase(0), Duration::ZERO);
    }

    #[test]
    fn an_event_lists_whole_addresses() {
        let event = Event {
            at: Instant::now(),
            addresses: vec!["10.0.0.1:80".to_owned(), "10.1.0.12:80".to_owned()],
        };
        assert!(event.lists("10.1.0.12:80"));
        assert!(!event.lists("10.1.0.1:80"));
    }
}

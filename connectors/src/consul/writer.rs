//! Writes instances into Consul (for sync-back): each one is registered on an agent with a
//! TTL check that Switchboard keeps passing (or failing, for an unhealthy instance), so
//! Consul itself marks the copies critical if Switchboard stops, and deregisters them
//! after `deregister_critical_after` when that is set.
//!
//! Agent registrations live on the agent that took them: the keeper refreshes each check
//! on that agent, and registers the instance again (on any endpoint that answers) when
//! the agent has forgotten it or cannot be reached.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use super::config::ConsulConfig;
use super::convert::WEIGHT_SCALE;
use super::http::Http;
use crate::task::Task;
use crate::{ConnectorError, Instance, InstanceKey, RegistryWriter};

/// Consul's limits on service metadata.
const MAX_META_KEYS: usize = 64;
const MAX_META_KEY_LEN: usize = 128;
const MAX_META_VALUE_LEN: usize = 512;

/// One instance Switchboard registered.
#[derive(Clone)]
struct Registration {
    /// The endpoint (its position in `endpoints`) of the agent that holds it.
    endpoint: usize,
    body: Value,
    healthy: bool,
}

/// The [`RegistryWriter`] of a Consul source.
pub(super) struct ConsulWriter {
    config: ConsulConfig,
    in_use: Arc<AtomicUsize>,
    http: OnceCell<Http>,
    registered: Arc<Mutex<BTreeMap<String, Registration>>>,
    keeper: Mutex<Option<Task>>,
}

impl ConsulWriter {
    pub fn new(config: ConsulConfig, in_use: Arc<AtomicUsize>) -> ConsulWriter {
        ConsulWriter {
            config,
            in_use,
            http: OnceCell::new(),
            registered: Arc::default(),
            keeper: Mutex::new(None),
        }
    }

    async fn http(&self) -> Result<&Http, ConnectorError> {
        self.http.get_or_try_init(|| Http::new(&self.config)).await
    }

    /// Starts the task that keeps every registered check alive, once.
    fn ensure_keeper(&self, http: &Http) {
        let mut keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner());
        if keeper.is_some() {
            return;
        }
        let keeper_state = Keeper {
            http: http.clone(),
            period: self.config.check_ttl / 3,
            in_use: self.in_use.clone(),
            registered: self.registered.clone(),
        };
        *keeper = Some(Task(tokio::spawn(keeper_state.run())));
    }
}

#[async_trait]
impl RegistryWriter for ConsulWriter {
    async fn register(&self, instance: &Instance) -> Result<(), ConnectorError> {
        let http = self.http().await?;
        let body = registration_body(instance, &self.config);
        let endpoint = put_anywhere(http, &self.in_use, &REGISTER, &body).await?;
        let registration = Registration {
            endpoint,
            body,
            healthy: instance.healthy,
        };
        let registered = &self.registered;
        let mut registered = registered.lock().unwrap_or_else(|e| e.into_inner());
        registered.insert(instance.id.clone(), registration);
        drop(registered);
        self.ensure_keeper(http);
        Ok(())
    }

    async fn deregister(&self, key: &InstanceKey) -> Result<(), ConnectorError> {
        let http = self.http().await?;
        let known = {
            let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
            registered.remove(&key.id)
        };
        let endpoint = match known {
            Some(registration) => registration.endpoint,
            None => self.in_use.load(Ordering::Relaxed),
        };
        deregister(http, endpoint, &key.id).await
    }

    /// Every registration carries a TTL check only this writer's keeper passes.
    fn keeps_alive(&self) -> bool {
        true
    }
}

/// The path of agent registrations.
const REGISTER: [&str; 4] = ["v1", "agent", "service", "register"];

/// Deregisters service `id` from the agent at `endpoint`. A 404 (the agent does not
/// have it) is what was asked for.
async fn deregister(http: &Http, endpoint: usize, id: &str) -> Result<(), ConnectorError> {
    let url = http.url(endpoint, &["v1", "agent", "service", "deregister", id]);
    http.put(url, None).await.map(|_| ())
}

fn check_id(service_id: &str) -> String {
    format!("switchboard:{service_id}")
}

/// The agent registration of `instance`, with its TTL check.
fn registration_body(instance: &Instance, config: &ConsulConfig) -> Value {
    let mut check = json!({
        "CheckID": check_id(&instance.id),
        "Name": "Kept alive by Switchboard",
        "TTL": crate::duration::format(config.check_ttl),
        "Status": if instance.healthy { "passing" } else { "critical" },
    });
    if let Some(after) = config.deregister_critical_after {
        check["DeregisterCriticalServiceAfter"] = json!(crate::duration::format(after));
    }
    json!({
        "ID": instance.id,
        "Name": instance.service.name,
        "Address": instance.host,
        "Port": instance.port,
        "Tags": instance.tags,
        "Meta": consul_meta(instance),
        "Weights": { "Passing": consul_weight(instance.weight), "Warning": 1 },
        "Check": check,
    })
}

/// Switchboard's weight in Consul's scale (see `convert::WEIGHT_SCALE`); Consul wants at
/// least 1.
fn consul_weight(weight: u32) -> u32 {
    weight.div_ceil(WEIGHT_SCALE).max(1)
}

/// Metadata Consul accepts: keys of `[A-Za-z0-9_-]` (others become `_`), none of the
/// `consul.*` keys Switchboard adds when reading, within Consul's size limits.
fn consul_meta(instance: &Instance) -> Map<String, Value> {
    let mut meta = Map::new();
    let version = instance
        .version
        .as_deref()
        .filter(|_| !instance.metadata.contains_key("version"))
        .map(|version| ("version", version));
    let entries = instance.metadata.iter();
    let entries = entries.map(|(key, value)| (key.as_str(), value.as_str()));
    for (key, value) in entries.chain(version) {
        if meta.len() == MAX_META_KEYS {
            break;
        }
        if key.starts_with("consul") || key.len() > MAX_META_KEY_LEN {
            continue;
        }
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let value: String = value.chars().take(MAX_META_VALUE_LEN).collect();
        meta.insert(key, Value::String(value));
    }
    meta
}

/// PUTs `body` to the endpoint in use, then to the others while they fail to connect;
/// returns the endpoint that took it.
async fn put_anywhere(
    http: &Http,
    in_use: &AtomicUsize,
    path: &[&str],
    body: &Value,
) -> Result<usize, ConnectorError> {
    let fail_over = |err: &ConnectorError| matches!(err, ConnectorError::Connection(_));
    let first = in_use.load(Ordering::Relaxed);
    let put = |endpoint| async move {
        match http.put(http.url(endpoint, path), Some(body)).await? {
            true => Ok(()),
            false => {
                let message = format!("{} answered 404", path.join("/"));
                Err(ConnectorError::Protocol(message))
            }
        }
    };
    let (endpoint, ()) = http.on_any_endpoint(first, fail_over, put).await?;
    Ok(endpoint)
}

/// Refreshes every registered check three times per TTL.
struct Keeper {
    http: Http,
    /// A third of the checks' TTL.
    period: Duration,
    in_use: Arc<AtomicUsize>,
    registered: Arc<Mutex<BTreeMap<String, Registration>>>,
}

impl Keeper {
    async fn run(self) {
        let mut ticks = tokio::time::interval(self.period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let snapshot: Vec<(String, Registration)> = {
                let registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
                registered
                    .iter()
                    .map(|(id, r)| (id.clone(), r.clone()))
                    .collect()
            };
            for (id, registration) in snapshot {
                if let Err(err) = self.refresh(&id, registration).await {
                    tracing::warn!(instance = %id, error = %err, "Cannot keep a Consul check alive");
                }
            }
        }
    }

    /// Passes (or fails) one check; registers the instance again if its agent lost it.
    async fn refresh(&self, id: &str, registration: Registration) -> Result<(), ConnectorError> {
        let action = if registration.healthy { "pass" } else { "fail" };
        let check = check_id(id);
        let url = self.http.url(
            registration.endpoint,
            &["v1", "agent", "check", action, &check],
        );
        match self.http.put(url, None).await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(ConnectorError::Connection(_)) => {}
            Err(err) => return Err(err),
        }
        let endpoint =
            put_anywhere(&self.http, &self.in_use, &REGISTER, &registration.body).await?;
        let still_wanted = {
            let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
            registered
                .get_mut(id)
                .map(|current| current.endpoint = endpoint)
        };
        if still_wanted.is_none() {
            // Deregistered while this registered it again: take it back out.
            deregister(&self.http, endpoint, id).await?;
        }
        Ok(())
    }
}

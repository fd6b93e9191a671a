//! Checks the etcd writer against a real etcd (the harness of `live_tests.rs`): what it
//! writes comes back through the same source's watch, leased keys are kept alive and
//! come back when etcd loses their lease, persistent keys carry none, and a
//! deregistration removes the key also after a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use futures::StreamExt;
use tokio::time::Instant;

use super::live_tests::{connector, free_port, ikey, Etcd, DEADLINE};
use super::{EtcdConfig, EtcdConnector};
use crate::{BoxUpdateStream, Connector, Instance, InstanceKey, ServiceKey, Update};

/// A source's view as its watch reports it, kept up to date from its updates.
struct Seen {
    stream: BoxUpdateStream,
    instances: BTreeMap<InstanceKey, Instance>,
}

impl Seen {
    async fn open(source: &EtcdConnector) -> Seen {
        Seen {
            stream: source.watch().await.unwrap(),
            instances: BTreeMap::new(),
        }
    }

    /// Applies updates until `check` holds for the instances seen, or fails with them.
    async fn until(
        &mut self,
        what: &str,
        check: impl Fn(&BTreeMap<InstanceKey, Instance>) -> bool,
    ) {
        let deadline = Instant::now() + DEADLINE;
        while !check(&self.instances) {
            let update = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(update)) => update.unwrap(),
                Ok(None) => panic!("the stream ended waiting for {what}"),
                Err(_) => panic!("no {what} within {DEADLINE:?}; seen: {:#?}", self.instances),
            };
            self.apply(update);
        }
    }

    fn apply(&mut self, update: Update) {
        let by_key = |list: Vec<Instance>| list.into_iter().map(|i| (i.key(), i));
        match update {
            Update::Reset(list) => self.instances = by_key(list).collect(),
            Update::Service(service, list) => {
                self.instances.retain(|key, _| key.service != service);
                self.instances.extend(by_key(list));
            }
            Update::Upsert(list) => self.instances.extend(by_key(list)),
            Update::Remove(keys) => {
                for key in keys {
                    self.instances.remove(&key);
                }
            }
            Update::Skipped { key, reason } => panic!("the watch skipped `{key}`: {reason}"),
        }
    }
}

fn instance(service: &str, id: &str, host: &str, port: u16) -> Instance {
    let mut instance = Instance::new(id, ServiceKey::named(service), host, port);
    instance.metadata.insert("zone".into(), "a".into());
    instance.tags = vec!["synced".into()];
    instance
}

/// The lease a key carries (0: none); `None` when the key is not there.
async fn lease_of(kv: &mut Client, key: &str) -> Option<i64> {
    let response = kv.get(key, None).await.unwrap();
    response.kvs().first().map(|kv| kv.lease())
}

/// Polls etcd until `check` holds for the leases of `keys`, or fails with what it saw.
async fn until_leases(
    kv: &mut Client,
    keys: &[&str],
    what: &str,
    check: impl Fn(&[Option<i64>]) -> bool,
) -> Vec<Option<i64>> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut leases = Vec::new();
        for key in keys {
            leases.push(lease_of(kv, key).await);
        }
        if check(&leases) {
            return leases;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {DEADLINE:?}: {keys:?} have leases {leases:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn written_instances_come_back_through_the_source_watch() {
    let etcd = Etcd::start().await;
    let source = connector(EtcdConfig::new([etcd.endpoint()]));
    let writer = source.writer().expect("an etcd source is writable");
    let mut seen = Seen::open(&source).await;

    let first = instance("pay", "pay-1", "10.0.0.1", 8080);
    let second = instance("pay", "pay-2", "::1", 8081);
    writer.register(&first).await.unwrap();
    writer.register(&second).await.unwrap();
    seen.until("both instances", |seen| seen.len() == 2).await;
    for written in [&first, &second] {
        assert_eq!(seen.instances[&written.key()], *written);
    }

    let mut heavier = first.clone();
    heavier.weight = 300;
    writer.register(&heavier).await.unwrap();
    seen.until("the new weight", |seen| seen[&first.key()].weight == 300)
        .await;

    writer.deregister(&first.key()).await.unwrap();
    seen.until("pay-1 gone", |seen| !seen.contains_key(&first.key()))
        .await;
    writer
        .deregister(&ikey("pay", "never-written"))
        .await
        .unwrap();

    // After a restart the writer remembers nothing: the instance says where its key is.
    drop(source);
    let restarted = connector(EtcdConfig::new([etcd.endpoint()]));
    let writer = restarted.writer().unwrap();
    writer.deregister_instance(&second).await.unwrap();
    seen.until("pay-2 gone", BTreeMap::is_empty).await;
    writer.deregister_instance(&second).await.unwrap();
}

#[tokio::test]
async fn a_new_version_moves_the_key_and_unwritable_instances_are_refused() {
    let etcd = Etcd::start().await;
    let mut kv = etcd.client().await;
    let mut config = EtcdConfig::new([etcd.endpoint()]);
    config.prefix = "/rpc".into();
    config.key_template = "{service}/{version}/{id}".into();
    let source = connector(config.clone());
    let writer = source.writer().unwrap();

    let mut versioned = instance("user", "u-1", "10.0.0.2", 9000);
    let err = writer.register(&versioned).await.unwrap_err();
    assert!(
        err.to_string().contains("`{version}` has no value"),
        "{err}"
    );
    versioned.version = Some("1.0".into());
    writer.register(&versioned).await.unwrap();
    versioned.version = Some("2.0".into());
    writer.register(&versioned).await.unwrap();
    let keys = ["/rpc/user/1.0/u-1", "/rpc/user/2.0/u-1"];
    until_leases(&mut kv, &keys, "the move to 2.0", |l| {
        l[0].is_none() && l[1].is_some()
    })
    .await;
    let mut seen = Seen::open(&source).await;
    seen.until("version 2.0", |seen| seen.len() == 1).await;
    assert_eq!(seen.instances[&versioned.key()], versioned);

    config.key_template = "{service}".into();
    let per_service = connector(config);
    let err = per_service
        .writer()
        .unwrap()
        .register(&versioned)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no `{id}`"), "{err}");
}

#[tokio::test]
async fn leased_keys_carry_a_lease_and_persistent_ones_none() {
    let etcd = Etcd::start().await;
    let mut kv = etcd.client().await;
    let leased = connector(EtcdConfig::new([etcd.endpoint()]));
    leased
        .writer()
        .unwrap()
        .register(&instance("a", "1", "10.0.0.1", 80))
        .await
        .unwrap();
    let lease = lease_of(&mut kv, "/services/a/1").await;
    assert!(matches!(lease, Some(id) if id != 0), "{lease:?}");

    // Failing over from an endpoint that does not answer, too.
    let dead = format!(
        "http://127.0.0.1:{}",
        free_port().local_addr().unwrap().port()
    );
    let mut config = EtcdConfig::new([dead, etcd.endpoint()]);
    config.prefix = "/kept/".into();
    config.write_persistent = true;
    let persistent = connector(config);
    persistent
        .writer()
        .unwrap()
        .register(&instance("b", "1", "10.0.0.2", 80))
        .await
        .unwrap();
    assert_eq!(lease_of(&mut kv, "/kept/b/1").await, Some(0));
    let value = kv.get("/kept/b/1", None).await.unwrap();
    let value: serde_json::Value = serde_json::from_slice(value.kvs()[0].value()).unwrap();
    assert_eq!(
        (value["name"].as_str(), value["address"].as_str()),
        (Some("b"), Some("10.0.0.2:80"))
    );
}

#[tokio::test]
async fn a_lost_lease_is_granted_again_and_the_keys_come_back() {
    let etcd = Etcd::start().await;
    let mut kv = etcd.client().await;
    let mut config = EtcdConfig::new([etcd.endpoint()]);
    // etcd reports whole seconds left: with 6s, a keep-alive every 2s shows as 4 -> 5.
    config.write_lease_ttl = Duration::from_secs(6);
    let source = connector(config);
    let writer = source.writer().unwrap();
    writer
        .register(&instance("a", "1", "10.0.0.1", 80))
        .await
        .unwrap();
    writer
        .register(&instance("a", "2", "10.0.0.2", 80))
        .await
        .unwrap();
    let keys = ["/services/a/1", "/services/a/2"];
    let lease = lease_of(&mut kv, keys[0]).await.unwrap();

    // Kept alive: the lease's remaining time goes back up.
    let deadline = Instant::now() + DEADLINE;
    let mut lowest = i64::MAX;
    loop {
        let left = kv.lease_time_to_live(lease, None).await.unwrap().ttl();
        assert!(left > 0, "the lease expired");
        if left > lowest {
            break;
        }
        lowest = lowest.min(left);
        assert!(
            Instant::now() < deadline,
            "no keep-alive within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    kv.lease_revoke(lease).await.unwrap();
    let back = |leases: &[Option<i64>]| {
        leases
            .iter()
            .all(|l| matches!(l, Some(id) if *id != 0 && *id != lease))
    };
    let leases = until_leases(&mut kv, &keys, "keys under a new lease", back).await;
    assert_eq!(leases[0], leases[1], "one lease for all keys");
    let mut seen = Seen::open(&source).await;
    seen.until("both instances", |seen| seen.len() == 2).await;

    // Without the writer nothing keeps the lease: etcd removes the keys.
    drop(source);
    until_leases(&mut kv, &keys, "the keys expiring", |l| {
        l.iter().all(Option::is_none)
    })
    .await;
    let rest = kv
        .get("/services/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(rest.kvs().is_empty());
}

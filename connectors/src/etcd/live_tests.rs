//! Checks the connector against a real etcd (Debian's 3.4 `etcd`, installed by
//! `make deps`), started here on free ports with a private data dir and killed when the
//! test ends. The cross-connector conformance suite and the server-level etcd tests live
//! elsewhere; these cover what only this adapter does: the list-then-watch handover,
//! leases, compaction, auth and an unreachable cluster. `writer_tests.rs` reuses the
//! harness for the writer.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, PutOptions};
use futures::StreamExt;

use super::{EtcdConfig, EtcdConnector};
use crate::{
    BoxUpdateStream, Connector, ConnectorError, InstanceKey, ServiceKey, SourceCommon, Update,
};

pub(super) const DEADLINE: Duration = Duration::from_secs(30);

pub(super) struct Etcd {
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    pub(super) async fn start() -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!(
            "switchboard-etcd-{}-{}",
            std::process::id(),
            client.local_addr().unwrap().port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut etcd = Etcd {
            client_port: client.local_addr().unwrap().port(),
            peer_port: peer.local_addr().unwrap().port(),
            dir,
            child: None,
        };
        drop((client, peer));
        etcd.spawn().await;
        etcd
    }

    pub(super) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    async fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .arg("--name=t")
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={}", self.endpoint()))
            .arg(format!("--advertise-client-urls={}", self.endpoint()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=t={peer}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        match child {
            Ok(child) => self.child = Some(child),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                panic!("`etcd` is not installed; run `make deps` (Debian etcd-server)")
            }
            Err(err) => panic!("cannot start etcd: {err}"),
        }
        let started = Instant::now();
        loop {
            if let Ok(mut client) = Client::connect([self.endpoint()], None).await {
                let probe = tokio::time::timeout(Duration::from_secs(1), client.get("probe", None));
                if matches!(probe.await, Ok(Ok(_))) {
                    return;
                }
            }
            if started.elapsed() > DEADLINE {
                let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
                panic!("etcd did not become ready; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(super) async fn client(&self) -> Client {
        Client::connect([self.endpoint()], None).await.unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn free_port() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

fn common() -> SourceCommon {
    SourceCommon {
        id: "etcd-live".into(),
        priority: 0,
        namespace: None,
        group: None,
        max_stale: None,
        empty_confirm: Duration::from_secs(1),
        ..SourceCommon::new("etcd-live")
    }
}

pub(super) fn connector(config: EtcdConfig) -> EtcdConnector {
    EtcdConnector::new(common(), config).unwrap()
}

async fn next(stream: &mut BoxUpdateStream) -> Result<Update, ConnectorError> {
    match tokio::time::timeout(DEADLINE, stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the stream ended"),
        Err(_) => panic!("no update within {DEADLINE:?}"),
    }
}

pub(super) fn ikey(service: &str, id: &str) -> InstanceKey {
    InstanceKey {
        service: ServiceKey::named(service),
        id: id.into(),
    }
}

#[tokio::test]
async fn lists_then_streams_puts_deletes_and_lease_expiry() {
    let etcd = Etcd::start().await;
    let mut kv = etcd.client().await;
    kv.put("/services/a/1", "10.0.0.1:80", None).await.unwrap();
    kv.put("/services/a/bad", "nonsense", None).await.unwrap();
    kv.put("/other/x/1", "10.9.9.9:80", None).await.unwrap();

    let source = connector(EtcdConfig::new([etcd.endpoint()]));
    assert_eq!(source.endpoint(), Some(etcd.endpoint()));
    let mut stream = source.watch().await.unwrap();
    match next(&mut stream).await.unwrap() {
        Update::Reset(list) => assert_eq!(
            list.iter().map(|i| i.address()).collect::<Vec<_>>(),
            ["10.0.0.1:80"]
        ),
        other => panic!("first item must be a Reset: {other:?}"),
    }
    assert!(
        matches!(next(&mut stream).await.unwrap(), Update::Skipped { key, .. } if key == "/services/a/bad")
    );

    let json = r#"{"id":"b-1","name":"b","address":"[::1]:8080","status":"maintenance"}"#;
    kv.put("/services/b/b-1", json, None).await.unwrap();
    match next(&mut stream).await.unwrap() {
        Update::Upsert(list) => assert_eq!(
            (list[0].id.as_str(), list[0].address()),
            ("b-1", "[::1]:8080".to_owned())
        ),
        other => panic!("expected an Upsert: {other:?}"),
    }
    kv.delete("/services/a/1", None).await.unwrap();
    assert_eq!(
        next(&mut stream).await.unwrap(),
        Update::Remove(vec![ikey("a", "1")])
    );

    let lease = kv.lease_grant(1, None).await.unwrap().id();
    kv.put(
        "/services/c/1",
        "10.0.0.3:80",
        Some(PutOptions::new().with_lease(lease)),
    )
    .await
    .unwrap();
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        Update::Upsert(_)
    ));
    // The lease is not kept alive: etcd deletes the key within a few seconds.
    assert_eq!(
        next(&mut stream).await.unwrap(),
        Update::Remove(vec![ikey("c", "1")])
    );
}

#[tokio::test]
async fn a_compacted_start_revision_relists_in_the_same_stream() {
    let etcd = Etcd::start().await;
    let mut kv = etcd.client().await;
    kv.put("/services/a/1", "10.0.0.1:80", None).await.unwrap();
    let source = connector(EtcdConfig::new([etcd.endpoint()]));
    let mut stream = source.watch().await.unwrap();
    assert!(matches!(next(&mut stream).await.unwrap(), Update::Reset(list) if list.len() == 1));

    // The watch opens when the next item is asked for; by then its start revision is gone.
    kv.put("/services/a/2", "10.0.0.2:80", None).await.unwrap();
    let revision = kv
        .put("/services/a/3", "10.0.0.3:80", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    kv.compact(revision, None).await.unwrap();
    match next(&mut stream).await.unwrap() {
        Update::Reset(list) => assert_eq!(list.len(), 3),
        other => panic!("expected a fresh Reset after compaction: {other:?}"),
    }
    kv.put("/services/a/4", "10.0.0.4:80", None).await.unwrap();
    assert!(matches!(next(&mut stream).await.unwrap(), Update::Upsert(list) if list[0].id == "4"));
}

#[tokio::test]
async fn an_unreachable_cluster_ends_the_stream_and_watch_fails_until_it_is_back() {
    let mut etcd = Etcd::start().await;
    let mut config = EtcdConfig::new([etcd.endpoint()]);
    config.timeout = Duration::from_secs(2);
    let source = connector(config);
    let mut stream = source.watch().await.unwrap();
    assert!(matches!(next(&mut stream).await.unwrap(), Update::Reset(_)));

    etcd.kill();
    let started = Instant::now();
    match next(&mut stream).await {
        Err(ConnectorError::Connection(message)) => {
            assert!(message.contains(&etcd.endpoint()), "{message}")
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(tokio::time::timeout(DEADLINE, stream.next())
        .await
        .unwrap()
        .is_none());
    let err = source
        .watch()
        .await
        .err()
        .expect("watch must fail while etcd is down");
    assert!(matches!(err, ConnectorError::Connection(_)), "{err:?}");

    etcd.spawn().await;
    let mut stream = source.watch().await.unwrap();
    assert!(matches!(next(&mut stream).await.unwrap(), Update::Reset(_)));
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error() {
    let etcd = Etcd::start().await;
    let mut admin = etcd.client().await;
    admin.user_add("root", "secret-pw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    let mut config = EtcdConfig::new([etcd.endpoint()]);
    config.username = Some("root".into());
    config.password = Some("wrong-pw".into());
    let err = connector(config.clone())
        .watch()
        .await
        .err()
        .expect("wrong password must fail");
    assert!(matches!(err, ConnectorError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");

    config.password = Some("secret-pw".into());
    let mut stream = connector(config.clone()).watch().await.unwrap();
    assert!(matches!(next(&mut stream).await.unwrap(), Update::Reset(_)));

    config.username = None;
    config.password = None;
    let err = connector(config)
        .watch()
        .await
        .err()
        .expect("no credentials must fail");
    assert!(matches!(err, ConnectorError::Auth(_)), "{err:?}");
}

#[tokio::test]
async fn fails_over_to_the_next_endpoint_within_the_stream() {
    // Two single-member clusters stand in for two members; their data differ so the
    // test can see which one answered.
    let (mut first, mut second) = (Etcd::start().await, Etcd::start().await);
    first
        .client()
        .await
        .put("/services/a/1", "10.0.0.1:80", None)
        .await
        .unwrap();
    second
        .client()
        .await
        .put("/services/b/1", "10.0.0.2:80", None)
        .await
        .unwrap();
    let dead = format!(
        "http://127.0.0.1:{}",
        free_port().local_addr().unwrap().port()
    );

    let source = connector(EtcdConfig::new([dead, first.endpoint(), second.endpoint()]));
    let mut stream = source.watch().await.unwrap();
    assert!(
        matches!(next(&mut stream).await.unwrap(), Update::Reset(list) if list[0].service.name == "a")
    );
    assert_eq!(source.endpoint(), Some(first.endpoint()));

    first.kill();
    match next(&mut stream).await.unwrap() {
        Update::Reset(list) => assert_eq!(list[0].service.name, "b"),
        other => panic!("expected a Reset from the second endpoint: {other:?}"),
    }
    assert_eq!(source.endpoint(), Some(second.endpoint()));

    second.kill();
    match next(&mut stream).await {
        Err(ConnectorError::Connection(message)) => {
            assert!(message.contains(&second.endpoint()), "{message}")
        }
        other => panic!("expected a connection error: {other:?}"),
    }
}

#[tokio::test]
async fn lists_in_pages_at_one_revision() {
    use etcd_client::{Txn, TxnOp};
    let etcd = Etcd::start().await;
    let mut kv = etcd.client().await;
    for batch in 0..12 {
        let puts: Vec<TxnOp> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                TxnOp::put(
                    format!("/services/big/{n:04}"),
                    format!("10.1.{}.{}:80", n / 250, n % 250 + 1),
                    None,
                )
            })
            .collect();
        kv.txn(Txn::new().and_then(puts)).await.unwrap();
    }
    let mut stream = connector(EtcdConfig::new([etcd.endpoint()]))
        .watch()
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        Update::Reset(list) => assert_eq!(list.len(), 1200),
        other => panic!("expected a Reset: {other:?}"),
    }
    kv.put("/services/big/new", "10.2.0.1:80", None)
        .await
        .unwrap();
    assert!(
        matches!(next(&mut stream).await.unwrap(), Update::Upsert(list) if list[0].id == "new")
    );
}

#[tokio::test]
async fn falls_back_to_a_key_whose_instance_was_not_kept_by_reading_it_again() {
    use etcd_client::{Txn, TxnOp};
    let etcd = Etcd::start().await;
    let mut kv = etcd.client().await;
    let mut stream = connector(EtcdConfig::new([etcd.endpoint()]))
        .watch()
        .await
        .unwrap();
    assert!(matches!(next(&mut stream).await.unwrap(), Update::Reset(list) if list.is_empty()));
    async fn address(stream: &mut BoxUpdateStream) -> String {
        match next(stream).await.unwrap() {
            Update::Upsert(list) if list.len() == 1 => list[0].address(),
            other => panic!("expected one Upsert: {other:?}"),
        }
    }
    // Two keys for one instance; the first held it alone, so only the second is kept.
    let same = |address: &str| format!(r#"{{"id":"x","address":"{address}"}}"#);
    kv.put("/services/a/k1", same("10.0.0.1:80"), None)
        .await
        .unwrap();
    assert_eq!(address(&mut stream).await, "10.0.0.1:80");
    kv.put("/services/a/k2", same("10.0.0.2:80"), None)
        .await
        .unwrap();
    assert_eq!(address(&mut stream).await, "10.0.0.2:80");
    kv.delete("/services/a/k2", None).await.unwrap();
    assert_eq!(address(&mut stream).await, "10.0.0.1:80", "k1 read again");

    // The same in one transaction that deletes k1 too: k1 is read just before it.
    kv.put("/services/a/k2", same("10.0.0.2:80"), None)
        .await
        .unwrap();
    assert_eq!(address(&mut stream).await, "10.0.0.2:80");
    let deletes = [
        TxnOp::delete("/services/a/k2", None),
        TxnOp::delete("/services/a/k1", None),
    ];
    kv.txn(Txn::new().and_then(deletes)).await.unwrap();
    assert_eq!(address(&mut stream).await, "10.0.0.1:80");
    assert_eq!(
        next(&mut stream).await.unwrap(),
        Update::Remove(vec![ikey("a", "x")])
    );
}

//! rnacos failing: killed with SIGKILL, Switchboard keeps serving the last view (stale)
//! and says why in the source's status; restarted on the same ports and data, it
//! converges to exactly rnacos's content, changes made meanwhile included. A wrong
//! password is an auth error, and never shown.
//!
//! These sources place every Nacos group in `DEFAULT` (the common `group`), so the
//! shared reads of `crate::sources` apply.

use std::time::Duration;

use tokio::time::Instant;

use crate::nacos::harness::{nacos_source, wait_state, SOURCE};
use crate::sources::{assert_status_shape, instances, start_server, wait_fresh};
use crate::support::rnacos::{Registration, RnacosServer};
use crate::support::TestServer;

/// `(service, address)` pairs, as `served_from` lists them.
fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = expected
        .iter()
        .map(|(s, a)| ((*s).to_owned(), (*a).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Waits until Switchboard serves exactly `expected` from rnacos (each once), none
/// stale; returns how long that took.
async fn wait_served(server: &TestServer, expected: &[(&str, &str)]) -> Duration {
    wait_fresh(server, SOURCE, &pairs(expected)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rnacos_killed_serves_stale_and_restarted_converges() {
    let mut nacos = RnacosServer::start().await;
    let a = Registration::new("web", "10.0.0.1", 80);
    nacos.register(&a).await;
    nacos
        .register(&Registration::new("web", "10.0.0.2", 80))
        .await;
    let extra = "group = \"DEFAULT\"\nservice_refresh = \"2s\"\nprobe_interval = \"500ms\"\n\
                 timeout = \"1s\"";
    let (server, _dir) = start_server(&nacos_source(&nacos.endpoint(), extra)).await;
    wait_served(&server, &[("web", "10.0.0.1:80"), ("web", "10.0.0.2:80")]).await;

    nacos.kill_9();
    let killed = Instant::now();
    let down = wait_state(&server, "down").await;
    let noticed = killed.elapsed();
    assert_status_shape(&down);
    assert_eq!(down["last_error"]["kind"], "connection", "{down}");
    assert!(!down["stale_since"].is_null(), "{down}");
    let served = instances(&server, "web").await;
    assert_eq!(served.len(), 2, "the last view is still served: {served:?}");
    assert!(served.iter().all(|i| i["stale"] == true), "{served:?}");

    nacos.restart().await;
    nacos.deregister(&a).await;
    nacos
        .register(&Registration::new("web", "10.0.0.3", 80))
        .await;
    nacos
        .register(&Registration::new("api", "10.0.1.1", 90))
        .await;
    let converged = wait_served(
        &server,
        &[
            ("api", "10.0.1.1:90"),
            ("web", "10.0.0.2:80"),
            ("web", "10.0.0.3:80"),
        ],
    )
    .await;
    let ready = wait_state(&server, "ready").await;
    assert!(ready["stale_since"].is_null(), "{ready}");
    println!("rnacos killed: down after {noticed:?}; restarted: converged after {converged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_auth_error_and_never_shown() {
    let nacos = RnacosServer::start_with_auth("admin", "the-right-password").await;
    nacos
        .register(&Registration::new("web", "10.0.0.1", 80))
        .await;
    assert!(nacos.login("admin", "a-wrong-password").await.is_err());

    let wrong = "group = \"DEFAULT\"\nusername = \"admin\"\npassword = \"a-wrong-password\"";
    let (server, _dir) = start_server(&nacos_source(&nacos.endpoint(), wrong)).await;
    let down = wait_state(&server, "down").await;
    assert_status_shape(&down);
    assert_eq!(down["last_error"]["kind"], "auth", "{down}");
    let (_, everything) = server.get_json("/api/v1/sources").await;
    assert!(
        !everything.to_string().contains("a-wrong-password"),
        "{everything}"
    );
    drop(server);

    let right = "group = \"DEFAULT\"\nusername = \"admin\"\npassword = \"the-right-password\"";
    let (server, _dir) = start_server(&nacos_source(&nacos.endpoint(), right)).await;
    wait_state(&server, "ready").await;
    wait_served(&server, &[("web", "10.0.0.1:80")]).await;
}

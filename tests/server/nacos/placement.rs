//! Where a Nacos source's services land: the Nacos namespace it reads (`namespace`),
//! the groups it federates (`groups`), and where they are placed (`place_namespace`,
//! `place_groups`, the common `group`); by default a namespace and its groups keep their
//! names, but for Nacos's default group, which is Switchboard's default group (unless
//! `place_groups` says otherwise). The same rnacos holds a decoy in the `public`
//! namespace and in a group that is not federated; neither may show.

use serde_json::Value;

use crate::nacos::harness::{nacos_source, named_source, wait_addresses_at, SOURCE};
use crate::sources::{start_server, SLOW};
use crate::support::rnacos::{Registration, RnacosServer, DEFAULT_GROUP, PUBLIC};
use crate::support::{wait_until, TestServer};
use switchboard_connectors::DEFAULT_GROUP as SWITCHBOARD_DEFAULT;

/// rnacos with `web` in groups A, B and C of namespace `dev`, `api` in group A, and a
/// decoy `web` in `public`.
async fn nacos_with_groups() -> RnacosServer {
    let nacos = RnacosServer::start().await;
    for (service, ip, port, group) in [
        ("web", "10.0.0.1", 80, "A"),
        ("web", "10.0.0.2", 80, "B"),
        ("web", "10.0.0.3", 80, "C"),
        ("api", "10.0.0.4", 90, "A"),
    ] {
        let instance = Registration::new(service, ip, port).placed("dev", group);
        nacos.register(&instance).await;
    }
    nacos
        .register(&Registration::new("web", "10.0.0.9", 80))
        .await;
    nacos
}

/// Every `(namespace, group, name)` the listing shows source `id` contributing to,
/// sorted.
async fn placed_by(server: &TestServer, id: &str) -> Vec<(String, String, String)> {
    let (status, listing) = server.get_json("/api/v1/services").await;
    assert_eq!(status, 200, "GET /api/v1/services: {listing}");
    let text = |service: &Value, key: &str| service[key].as_str().unwrap_or_default().to_owned();
    let mut placed: Vec<(String, String, String)> = listing
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|s| {
            s["sources"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x == id))
        })
        .map(|s| (text(s, "namespace"), text(s, "group"), text(s, "name")))
        .collect();
    placed.sort();
    placed
}

/// Waits until source `id` contributes to exactly `expected` services.
async fn wait_placed(server: &TestServer, id: &str, expected: &[(&str, &str, &str)]) {
    let mut expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(n, g, s)| ((*n).to_owned(), (*g).to_owned(), (*s).to_owned()))
        .collect();
    expected.sort();
    let what = format!("source {id} to place exactly {expected:?}");
    wait_until(&what, SLOW, || async {
        (placed_by(server, id).await == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_of_a_namespace_are_placed_as_configured() {
    let nacos = nacos_with_groups().await;
    let extra = "namespace = \"dev\"\ngroups = [\"A\", \"B\"]\nplace_namespace = \"prod\"\n\
                 place_groups = { A = \"alpha\" }";
    let (server, _dir) = start_server(&nacos_source(&nacos.endpoint(), extra)).await;

    wait_placed(
        &server,
        SOURCE,
        &[
            ("prod", "alpha", "api"),
            ("prod", "alpha", "web"),
            ("prod", "B", "web"),
        ],
    )
    .await;
    wait_addresses_at(&server, ("prod", "alpha", "web"), &["10.0.0.1:80"]).await;
    wait_addresses_at(&server, ("prod", "alpha", "api"), &["10.0.0.4:90"]).await;
    wait_addresses_at(&server, ("prod", "B", "web"), &["10.0.0.2:80"]).await;

    // Placed instances keep following Nacos.
    let moved_in = Registration::new("web", "10.0.0.5", 80).placed("dev", "B");
    nacos.register(&moved_in).await;
    wait_addresses_at(
        &server,
        ("prod", "B", "web"),
        &["10.0.0.2:80", "10.0.0.5:80"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_namespace_and_its_groups_keep_their_names() {
    let nacos = nacos_with_groups().await;
    let kept = "place_groups = { DEFAULT_GROUP = \"DEFAULT_GROUP\" }";
    let toml = [
        named_source("nacos-dev", &nacos.endpoint(), "namespace = \"dev\""),
        named_source("nacos-public", &nacos.endpoint(), ""),
        named_source("nacos-kept", &nacos.endpoint(), kept),
    ]
    .concat();
    let (server, _dir) = start_server(&toml).await;

    wait_placed(
        &server,
        "nacos-dev",
        &[
            ("dev", "A", "api"),
            ("dev", "A", "web"),
            ("dev", "B", "web"),
            ("dev", "C", "web"),
        ],
    )
    .await;
    // Nacos's default group is Switchboard's; placed by name, it keeps its own.
    let default = (PUBLIC, SWITCHBOARD_DEFAULT, "web");
    wait_placed(&server, "nacos-public", &[default]).await;
    wait_placed(&server, "nacos-kept", &[(PUBLIC, DEFAULT_GROUP, "web")]).await;
    wait_addresses_at(&server, ("dev", "C", "web"), &["10.0.0.3:80"]).await;
    wait_addresses_at(&server, default, &["10.0.0.9:80"]).await;
    wait_addresses_at(&server, (PUBLIC, DEFAULT_GROUP, "web"), &["10.0.0.9:80"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_gathered_in_the_common_group_stay_whole() {
    let nacos = nacos_with_groups().await;
    let extra = "namespace = \"dev\"\ngroup = \"edge\"\nplace_groups = { B = \"bravo\" }";
    let (server, _dir) = start_server(&nacos_source(&nacos.endpoint(), extra)).await;

    // Groups A and C both land in `edge`: one Switchboard service fed by two Nacos ones.
    wait_placed(
        &server,
        SOURCE,
        &[
            ("dev", "bravo", "web"),
            ("dev", "edge", "api"),
            ("dev", "edge", "web"),
        ],
    )
    .await;
    wait_addresses_at(&server, ("dev", "bravo", "web"), &["10.0.0.2:80"]).await;
    let edge = ("dev", "edge", "web");
    wait_addresses_at(&server, edge, &["10.0.0.1:80", "10.0.0.3:80"]).await;
    // A push about one of them must not drop the other's instances.
    let added = Registration::new("web", "10.0.0.6", 80).placed("dev", "A");
    nacos.register(&added).await;
    let all = ["10.0.0.1:80", "10.0.0.3:80", "10.0.0.6:80"];
    wait_addresses_at(&server, edge, &all).await;
}

//! The Consul source over `https://`, end to end: the double behind a TLS-terminating
//! proxy (`support::tls`) with certificates made at test time, and the source's `tls`
//! table pointing at their PEM files. A trusted server is served from; a server signed
//! by another CA, a refused client and an unreadable CA file each show up as the
//! source's error, of the kind an operator would look for.

use std::path::Path;

use consul_double::ConsulDouble;
use tempfile::TempDir;

use crate::consul::harness::{consul_source, service, wait_state, SOURCE};
use crate::sources::{served_from, source_status, start_server, wait_addresses, SLOW};
use crate::support::tls::TlsProxy;
use crate::support::{wait_until, TestServer};

/// A double with `web` at 10.0.0.1:80, behind a TLS proxy.
async fn consul_behind_tls(require_client_cert: bool) -> (ConsulDouble, TlsProxy) {
    let consul = ConsulDouble::start().await;
    consul
        .register(service("web", "web-1", "10.0.0.1", 80))
        .await;
    let proxy = TlsProxy::start(consul.addr(), require_client_cert).await;
    (consul, proxy)
}

/// Switchboard reading Consul through `proxy`, with `tls = { ca, [cert, key] }`.
async fn switchboard(
    proxy: &TlsProxy,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> (TestServer, TempDir) {
    let identity = identity
        .map(|(cert, key)| format!(", cert = {cert:?}, key = {key:?}"))
        .unwrap_or_default();
    let tls = format!("tls = {{ ca = {ca:?}{identity} }}");
    start_server(&consul_source(&[proxy.url()], &tls)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_ca_serves_the_instances() {
    let (_consul, proxy) = consul_behind_tls(false).await;
    let (server, _dir) = switchboard(&proxy, &proxy.ca_path(), None).await;
    wait_addresses(&server, "web", &["10.0.0.1:80"]).await;
    let ready = wait_state(&server, "ready").await;
    assert_eq!(ready["endpoint"], proxy.url(), "{ready}");
    assert!(proxy.handshakes() > 0, "no TLS connection went through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_the_proxy_requires_one() {
    let (_consul, proxy) = consul_behind_tls(true).await;
    let (cert, key) = (proxy.client_cert_path(), proxy.client_key_path());
    let (server, _dir) = switchboard(&proxy, &proxy.ca_path(), Some((&cert, &key))).await;
    wait_addresses(&server, "web", &["10.0.0.1:80"]).await;
    wait_state(&server, "ready").await;
    assert_eq!(proxy.handshakes_failed(), 0);
}

/// Waits until the source's last error says `why`: the operator sees the TLS reason, not
/// just "cannot connect".
async fn wait_error_naming(server: &TestServer, why: &str) {
    let what = format!("the last error to name {why}");
    wait_until(&what, SLOW, || async {
        let status = source_status(server, SOURCE).await;
        let message = status["last_error"]["message"].as_str().unwrap_or_default();
        message.contains(why).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_the_handshake_fails_and_the_source_is_down() {
    let (_consul, proxy) = consul_behind_tls(true).await;
    let (server, _dir) = switchboard(&proxy, &proxy.ca_path(), None).await;
    let down = wait_state(&server, "down").await;
    assert_eq!(down["last_error"]["kind"], "connection", "{down}");
    wait_error_naming(&server, "CertificateRequired").await;
    assert!(proxy.handshakes_failed() > 0, "the proxy refused nobody");
    assert_eq!(proxy.handshakes(), 0);
    assert!(served_from(&server, SOURCE).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let (_consul, proxy) = consul_behind_tls(false).await;
    let (server, _dir) = switchboard(&proxy, &proxy.unrelated_ca_path(), None).await;
    let down = wait_state(&server, "down").await;
    assert_eq!(down["last_error"]["kind"], "connection", "{down}");
    wait_error_naming(&server, "UnknownIssuer").await;
    assert_eq!(proxy.handshakes(), 0);
    assert!(served_from(&server, SOURCE).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_ca_is_a_config_error_naming_tls_ca() {
    let (_consul, proxy) = consul_behind_tls(false).await;
    let missing = proxy.ca_path().with_file_name("no-such-ca.pem");
    let (server, _dir) = switchboard(&proxy, &missing, None).await;
    // Read on every connect (so renewed files are picked up), hence not refused at load.
    let down = wait_state(&server, "down").await;
    assert_eq!(down["last_error"]["kind"], "config", "{down}");
    let message = down["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`tls.ca`"), "{down}");
    assert_eq!(proxy.handshakes() + proxy.handshakes_failed(), 0);
}
